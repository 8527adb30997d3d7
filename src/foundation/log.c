/* log: see log.h. Lines are assembled in a stack buffer and written with one write(2), or
 * appended to the calling thread's batch buffer while batching is on. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NS_LOG_LINE_MAX 1024
#define NS_LOG_BATCH_MAX (16u * 1024)

static const char *log_applet = "nsign";
static ns_log_level log_min = NS_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void (*sink_fn)(void *arg, const char *p, size_t n);
static void *sink_arg;

static __thread char *batch_buf; /* NS_LOG_BATCH_MAX bytes while batching, else NULL */
static __thread size_t batch_len;

/* Not ns_write_all (iox.h): a failed log write must not replace the thread's error detail,
 * which the line being logged may be reporting, nor block on a non-blocking stderr. */
static void write_all(const char *p, size_t n)
{
    if (sink_fn != NULL) {
        sink_fn(sink_arg, p, n);
    }
    while (n > 0) {
        ssize_t w = write(2, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return; /* stderr is gone: nothing better to do with a log line */
        }
        p += w;
        n -= (size_t)w;
    }
}

void ns_log_flush(void)
{
    if (batch_len > 0) {
        write_all(batch_buf, batch_len);
        batch_len = 0;
    }
}

void ns_log_batch(int on)
{
    if (on && batch_buf == NULL) {
        batch_buf = malloc(NS_LOG_BATCH_MAX); /* without it, lines are written one by one */
    } else if (!on && batch_buf != NULL) {
        ns_log_flush();
        free(batch_buf);
        batch_buf = NULL;
    }
}

void ns_log_set_sink(void (*fn)(void *arg, const char *p, size_t n), void *arg)
{
    if (fn == NULL) {
        sink_fn = NULL; /* arg stays valid for a thread that already read fn */
        return;
    }
    sink_arg = arg;
    sink_fn = fn;
}

void ns_log_init(const char *applet)
{
    log_applet = applet;
    ns_log_from_env();
}

const char *ns_log_applet(void)
{
    return log_applet;
}

void ns_log_set_level(ns_log_level min)
{
    log_min = min;
}

void ns_log_from_env(void)
{
    const char *v = getenv("NSIGN_LOG");
    if (v == NULL) {
        return;
    }
    for (int i = 0; i < 4; i++) {
        if (strcmp(v, level_names[i]) == 0) {
            log_min = (ns_log_level)i;
        }
    }
}

/* Copies src to dst (at most cap bytes), control bytes written as \xHH: C0 controls, DEL and
 * the UTF-8 encodings of C1 controls (U+0080..U+009F). So a value from a peer (an error message
 * of KMS or S3, a header) can neither start a forged line nor carry a terminal escape. */
static size_t escape(char *dst, size_t cap, const char *src, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        int c1 = c == 0xc2 && i + 1 < n && (unsigned char)src[i + 1] >= 0x80 &&
                 (unsigned char)src[i + 1] <= 0x9f;
        if (c < 0x20 || c == 0x7f || c1) {
            size_t k = c1 ? 8 : 4;
            if (o + k > cap) {
                break;
            }
            for (size_t j = 0; j < k / 4; j++) {
                unsigned char b = (unsigned char)src[i + j];
                dst[o++] = '\\';
                dst[o++] = 'x';
                dst[o++] = "0123456789abcdef"[b >> 4];
                dst[o++] = "0123456789abcdef"[b & 15];
            }
            i += c1;
            continue;
        }
        if (o + 1 > cap) {
            break;
        }
        dst[o++] = (char)c;
    }
    return o;
}

void ns_log(ns_log_level level, const char *fmt, ...)
{
    char line[NS_LOG_LINE_MAX];
    if (level < log_min) {
        return;
    }
    int n = snprintf(line, sizeof line, "nsign %s: %s ", log_applet, level_names[level]);
    if (n < 0) {
        return;
    }
    char msg[NS_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    size_t len = (size_t)n + escape(line + n, sizeof line - (size_t)n - 2, msg, mlen);
    line[len++] = '\n';
    if (batch_buf == NULL) {
        write_all(line, len);
        return;
    }
    if (batch_len + len > NS_LOG_BATCH_MAX) {
        ns_log_flush();
    }
    memcpy(batch_buf + batch_len, line, len);
    batch_len += len;
}

void ns_log_err(ns_err e, const char *what)
{
    const char *d = ns_err_msg();
    if (what != NULL && what[0] != '\0') {
        ns_error("%s: %s", what, d[0] ? d : ns_err_name(e));
    } else {
        ns_error("%s", d[0] ? d : ns_err_name(e));
    }
}
