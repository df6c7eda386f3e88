/*
 * Remote registration: macro-only pieces of the config framework.
 */
#include "core/cfg/cfg_struct.h"
#include "ksr_rs_glue.h"

void ksr_rs_cfg_update(void)
{
	cfg_update();
}
