/*
 * log: one line per event on stderr: "nsign <applet>: <level> <msg> key=value...".
 * Never pass a secret. Thread-safe (one write(2) per line).
 */
#ifndef NS_LOG_H
#define NS_LOG_H

#include "err.h"

typedef enum { NS_LOG_DEBUG, NS_LOG_INFO, NS_LOG_WARN, NS_LOG_ERROR } ns_log_level;

void ns_log_init(const char *applet);
const char *ns_log_applet(void);
void ns_log_set_level(ns_log_level min);
/* Parses NSIGN_LOG=debug|info|warn|error if set. */
void ns_log_from_env(void);
void ns_log(ns_log_level level, const char *fmt, ...) NS_PRINTF(2, 3);

#define ns_debug(...) ns_log(NS_LOG_DEBUG, __VA_ARGS__)
#define ns_info(...) ns_log(NS_LOG_INFO, __VA_ARGS__)
#define ns_warn(...) ns_log(NS_LOG_WARN, __VA_ARGS__)
#define ns_error(...) ns_log(NS_LOG_ERROR, __VA_ARGS__)

/* Logs the current error detail once as an error line, prefixed by what: "what: detail". */
void ns_log_err(ns_err e, const char *what);

#endif
