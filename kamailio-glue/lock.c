/*
 * gen_lock_t in shared memory: lock_get/lock_release are inline asm or futex
 * macros depending on FAST_LOCK / USE_FUTEX.
 */
#include "core/locking.h"
#include "ksr_rs_glue.h"

void *ksr_rs_lock_alloc(void)
{
	return (void *)lock_alloc();
}

int ksr_rs_lock_init(void *lock)
{
	return lock_init((gen_lock_t *)lock) == 0 ? -1 : 0;
}

void ksr_rs_lock_get(void *lock)
{
	lock_get((gen_lock_t *)lock);
}

void ksr_rs_lock_release(void *lock)
{
	lock_release((gen_lock_t *)lock);
}

void ksr_rs_lock_dealloc(void *lock)
{
	lock_destroy((gen_lock_t *)lock);
	lock_dealloc((gen_lock_t *)lock);
}
