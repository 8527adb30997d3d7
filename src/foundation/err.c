/* err: code table and the thread-local detail message. See err.h. */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NS_ERR_DETAIL_MAX 1024 /* room for an AccessDenied naming five PCRs */

static __thread char detail[NS_ERR_DETAIL_MAX];

static const char *const names[] = {
#define X(name, msg) msg,
#include "err.def"
#undef X
};

const char *ns_err_name(ns_err code)
{
    if ((unsigned)code >= NS_ERR_COUNT) {
        return "unknown error";
    }
    return names[code];
}

const char *ns_err_msg(void)
{
    return detail;
}

void ns_err_clear(void)
{
    detail[0] = '\0';
}

ns_err ns_fail(ns_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return code;
}

ns_err ns_fail_ctx(ns_err code, const char *fmt, ...)
{
    char old[NS_ERR_DETAIL_MAX];
    char ctx[NS_ERR_DETAIL_MAX];
    va_list ap;
    memcpy(old, detail, sizeof old);
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    if (old[0] != '\0') {
        snprintf(detail, sizeof detail, "%s: %s", ctx, old);
    } else {
        snprintf(detail, sizeof detail, "%s: %s", ctx, ns_err_name(code));
    }
    return code;
}

ns_err ns_fail_errno(ns_err code, const char *fmt, ...)
{
    int saved = errno;
    char msg[NS_ERR_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(detail, sizeof detail, "%s: %s", msg, strerror(saved));
    errno = saved;
    return code;
}
