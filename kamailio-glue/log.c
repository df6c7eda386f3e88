/*
 * Logging through Kamailio's LM_* machinery. The message is formatted in Rust
 * and always passed as an argument, never as the format string. The location
 * prefix ("uac [file.rs:line]: ") and the function name come from Rust, so log
 * lines point at the Rust source like the C module's point at its .c files.
 */
#include "core/dprint.h"
#include "ksr_rs_glue.h"

int ksr_rs_log_enabled(int level)
{
	return is_printable(level) ? 1 : 0;
}

void ksr_rs_log(int level, const char *loc, const char *func, const char *msg,
		int len)
{
	LOG_FX(DEFAULT_FACILITY, level, NULL, loc, func, "%.*s\n", len, msg);
}
