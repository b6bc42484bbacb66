/* log.c - verbosity and the stderr sink: the only global mutable state. */
#include <stdarg.h>
#include <stdio.h>
#include "kiln/log.h"

static enum kiln_log_level level = KILN_LOG_WARN;

void
kiln_log_set_level (enum kiln_log_level l)
{
  level = l;
}

enum kiln_log_level
kiln_log_get_level (void)
{
  return level;
}

static void
emit (enum kiln_log_level l, const char *prefix, const char *fmt, va_list ap)
{
  if (level < l)
    return;
  /* one line, whole: the layers of a pull and stages running at once log
   * from several threads, and stdio locks each call, not the three */
  flockfile (stderr);
  fputs (prefix, stderr);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  funlockfile (stderr);
}

#define KILN_LOG_FN(name, lvl, prefix)                                                                                 \
  void name (const char *fmt, ...)                                                                                     \
  {                                                                                                                    \
    va_list ap;                                                                                                        \
    va_start (ap, fmt);                                                                                                \
    emit (lvl, prefix, fmt, ap);                                                                                       \
    va_end (ap);                                                                                                       \
  }

KILN_LOG_FN (kiln_log_warn, KILN_LOG_WARN, "kiln: warning: ")
KILN_LOG_FN (kiln_log_info, KILN_LOG_INFO, "")
KILN_LOG_FN (kiln_log_debug, KILN_LOG_DEBUG, "kiln: debug: ")
