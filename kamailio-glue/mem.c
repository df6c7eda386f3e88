/*
 * pkg and shm allocators: macros whose arguments change with DBG_SR_MEMORY.
 */
#include "core/mem/mem.h"
#include "core/mem/shm_mem.h"
#include "ksr_rs_glue.h"

void *ksr_rs_pkg_malloc(size_t size)
{
	return pkg_malloc(size);
}

void ksr_rs_pkg_free(void *p)
{
	pkg_free(p);
}

void *ksr_rs_shm_malloc(size_t size)
{
	return shm_malloc(size);
}

void ksr_rs_shm_free(void *p)
{
	shm_free(p);
}
