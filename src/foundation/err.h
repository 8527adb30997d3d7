/*
 * err: the one result type of nsign (s2n-style).
 *
 * Every function that can fail returns ns_err (NS_OK == 0) and is declared NS_MUST_CHECK so the
 * compiler refuses an ignored result. The failing function records a human message with
 * ns_fail(); the coordinator (an applet) logs ns_err_msg() once and picks the exit code.
 * Library code never prints and never exits. The detail buffer is thread-local.
 *
 * Who writes which part of a message (one owner per prefix):
 * - The applet owns "nsign APPLET:" and the level: ns_log adds them, and only the coordinator
 *   (the applet's main and its helpers in applets/) logs an error, once.
 * - A module's ns_fail text starts with what failed on what ("connect tcp:10.0.0.1:443:
 *   connection refused"), never with an applet's name and never with its module's name as a
 *   mere label: the caller knows which step it was. Naming the party that failed is the "what"
 *   ("nsm: ioctl on /dev/nsm", "kms: the Decrypt response has no Plaintext").
 * - A caller that adds context uses ns_fail_ctx with the step ("downloading s3://b/k"), never a
 *   word the detail already starts with.
 *
 * In the clang builds (ASan, fuzz) the attribute also sits on the type itself, so no prototype
 * can forget it, and those builds fail on an ignored result (-Werror=unused-result).
 */
#ifndef NS_ERR_H
#define NS_ERR_H

#include <stdarg.h>

#if defined(__clang__)
#define NS_RESULT_TYPE_ATTR __attribute__((warn_unused_result))
#else
#define NS_RESULT_TYPE_ATTR /* gcc accepts the attribute on functions only */
#endif

typedef enum NS_RESULT_TYPE_ATTR {
#define X(name, msg) name,
#include "err.def"
#undef X
    NS_ERR_COUNT
} ns_err;

#define NS_MUST_CHECK __attribute__((warn_unused_result))
#define NS_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Records code and a formatted detail ("what failed, on what, what to do"); returns code. */
ns_err ns_fail(ns_err code, const char *fmt, ...) NS_PRINTF(2, 3);
/* Prefixes the current detail with more context: "ctx: old detail". Returns code. */
ns_err ns_fail_ctx(ns_err code, const char *fmt, ...) NS_PRINTF(2, 3);
/* ns_fail with ": strerror(errno)" appended. */
ns_err ns_fail_errno(ns_err code, const char *fmt, ...) NS_PRINTF(2, 3);
/* The short message of a code. */
const char *ns_err_name(ns_err code);
/* The detail recorded by the last ns_fail on this thread ("" if none). */
const char *ns_err_msg(void);
void ns_err_clear(void);

/* Propagate a failure. */
#define GUARD(expr)                                                                                \
    do {                                                                                           \
        ns_err guard_e_ = (expr);                                                                  \
        if (guard_e_ != NS_OK) {                                                                   \
            return guard_e_;                                                                       \
        }                                                                                          \
    } while (0)
/* Fail with code and message unless cond holds. */
#define ENSURE(cond, code, ...)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            return ns_fail((code), __VA_ARGS__);                                                   \
        }                                                                                          \
    } while (0)
#define BAIL(code, ...) return ns_fail((code), __VA_ARGS__)
/* Propagate, running a cleanup label first: GUARD_GOTO(expr, rc, out). */
#define GUARD_GOTO(expr, rcvar, label)                                                             \
    do {                                                                                           \
        (rcvar) = (expr);                                                                          \
        if ((rcvar) != NS_OK) {                                                                    \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)

#endif
