/*
 * MODULE_VERSION: the core compares these with its own at load time, so they
 * must be compiled with the same -D set as Kamailio itself.
 */
#include "core/ver_defs.h"
#include "ksr_rs_glue.h"

const char ksr_rs_full_version[] = SER_FULL_VERSION;
const char ksr_rs_compile_flags[] = SER_COMPILE_FLAGS;
