/* kiln/log.h - the one piece of global state: verbosity and the sink.
 * Library code may log warnings and debug lines; errors travel as kiln_error.
 * The format arguments are only read; nothing is kept. */
#ifndef KILN_LOG_H
#define KILN_LOG_H

enum kiln_log_level { KILN_LOG_QUIET = 0, KILN_LOG_WARN, KILN_LOG_INFO, KILN_LOG_DEBUG };

void kiln_log_set_level (enum kiln_log_level level);
enum kiln_log_level kiln_log_get_level (void);
void kiln_log_warn (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void kiln_log_info (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void kiln_log_debug (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

#endif
