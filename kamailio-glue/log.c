/*
 * Logging through Kamailio's LM_* machinery. The message is formatted in Rust
 * and always passed as an argument, never as the format string.
 */
#include "core/dprint.h"
#include "ksr_rs_glue.h"

int ksr_rs_log_enabled(int level)
{
	return is_printable(level) ? 1 : 0;
}

void ksr_rs_log(int level, const char *msg, int len)
{
	LM_GEN1(level, "%.*s\n", len, msg);
}
