/*
 * grpc: status codes, message framing, grpc-timeout and grpc-message encoding (see grpc.h).
 */
#include "grpc.h"

#include <string.h>

static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *ns_grpc_status_name(int status)
{
    if (status < 0 || status > NS_GRPC_UNAUTHENTICATED) {
        return "UNKNOWN";
    }
    return status_names[status];
}

ns_grpc_status ns_grpc_status_from_err(ns_err e)
{
    switch (e) {
    case NS_OK:
        return NS_GRPC_OK;
    case NS_E_USAGE:
    case NS_E_PARSE:
    case NS_E_TRUNCATED:
        return NS_GRPC_INVALID_ARGUMENT;
    case NS_E_NOT_FOUND:
    case NS_E_NO_MATCH:
        return NS_GRPC_NOT_FOUND;
    case NS_E_TOO_BIG:
    case NS_E_NOMEM:
        return NS_GRPC_RESOURCE_EXHAUSTED;
    case NS_E_UNSUPPORTED:
        return NS_GRPC_UNIMPLEMENTED;
    case NS_E_TIMEOUT:
    case NS_E_EXPIRED:
        return NS_GRPC_DEADLINE_EXCEEDED;
    case NS_E_UNAVAILABLE:
    case NS_E_CONNECT:
    case NS_E_CLOSED:
        return NS_GRPC_UNAVAILABLE;
    case NS_E_DENIED:
    case NS_E_AUTH:
        return NS_GRPC_PERMISSION_DENIED;
    default:
        return NS_GRPC_INTERNAL;
    }
}

ns_err ns_grpc_frame_next(ns_cur *c, size_t max_msg, const uint8_t **msg, size_t *len)
{
    if (ns_cur_left(c) < NS_GRPC_PREFIX_LEN) {
        return NS_E_TRUNCATED;
    }
    const uint8_t *p = c->p + c->pos;
    uint32_t n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    ENSURE(p[0] <= 1, NS_E_PARSE, "grpc: message flag byte 0x%02x is neither 0 nor 1", p[0]);
    ENSURE(p[0] == 0, NS_E_UNSUPPORTED,
           "grpc: compressed message received: this server accepts identity encoding only");
    ENSURE(n <= max_msg, NS_E_TOO_BIG, "grpc: message of %u bytes exceeds the limit of %zu bytes",
           n, max_msg);
    if (ns_cur_left(c) - NS_GRPC_PREFIX_LEN < n) {
        return NS_E_TRUNCATED;
    }
    c->pos += NS_GRPC_PREFIX_LEN;
    *msg = c->p + c->pos;
    *len = n;
    c->pos += n;
    return NS_OK;
}

void ns_grpc_frame_prefix(uint8_t out[NS_GRPC_PREFIX_LEN], uint32_t len)
{
    out[0] = 0;
    ns_put_be32(out + 1, len);
}

ns_err ns_grpc_parse_timeout(const char *v, size_t n, int64_t *ms)
{
    ENSURE(n >= 2 && n <= 9, NS_E_PARSE, "grpc-timeout: expected 1-8 digits and a unit");
    int64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        ENSURE(v[i] >= '0' && v[i] <= '9', NS_E_PARSE, "grpc-timeout: expected 1-8 digits");
        x = x * 10 + (v[i] - '0');
    }
    int64_t out;
    switch (v[n - 1]) {
    case 'H':
        out = x * 3600 * 1000;
        break;
    case 'M':
        out = x * 60 * 1000;
        break;
    case 'S':
        out = x * 1000;
        break;
    case 'm':
        out = x;
        break;
    case 'u':
        out = (x + 999) / 1000;
        break;
    case 'n':
        out = (x + 999999) / 1000000;
        break;
    default:
        BAIL(NS_E_PARSE, "grpc-timeout: unit must be one of H M S m u n");
    }
    if (out > NS_GRPC_TIMEOUT_MAX_MS) {
        out = NS_GRPC_TIMEOUT_MAX_MS;
    }
    *ms = out;
    return NS_OK;
}

size_t ns_grpc_percent_encode(char *out, size_t outcap, const char *msg)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (outcap == 0) {
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            if (o + 1 >= outcap) {
                break;
            }
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= outcap) {
                break;
            }
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
    return o;
}
