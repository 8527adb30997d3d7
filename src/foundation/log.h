/*
 * log: one line per event on stderr: "nsign <applet>: <level> <msg> key=value...".
 * Never pass a secret. Thread-safe (one write(2) per line).
 *
 * Batching: a thread that logs many lines per event (sign-service's audit line per Sign) turns
 * it on for itself; its lines then collect in a per-thread buffer and go out with one write(2)
 * at ns_log_flush(), which the thread calls before acting on what it logged (sign-service: before
 * the responses are sent, so no signature leaves ahead of its audit line). A full buffer is
 * flushed on its own; turning batching off flushes.
 */
#ifndef NS_LOG_H
#define NS_LOG_H

#include <stddef.h>

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

/* Batches this thread's lines (on = 1) or writes them one by one again (on = 0, flushing). */
void ns_log_batch(int on);
/* Writes this thread's batched lines, if any. */
void ns_log_flush(void);

/* Also hands every line written (or batch of lines, each ending in '\n') to fn, e.g. logship's
 * ring. Set once, before other threads log; fn must not block and must not log. NULL: none. */
void ns_log_set_sink(void (*fn)(void *arg, const char *p, size_t n), void *arg);

/* Logs the current error detail once as an error line, prefixed by what: "what: detail". */
void ns_log_err(ns_err e, const char *what);

#endif
