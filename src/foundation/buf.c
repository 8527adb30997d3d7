/* buf: see buf.h. Growth doubles up to max; secret buffers use secret.c allocations, cached
 * ones tcache.c's. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"
#include "tcache.h"

#define NS_BUF_MIN_CAP 64

void ns_buf_init(ns_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void ns_buf_init_secret(ns_buf *b, size_t max)
{
    ns_buf_init(b, max);
    b->secret = 1;
}

void ns_buf_init_cached(ns_buf *b, size_t max)
{
    ns_buf_init(b, max);
    b->cached = 1;
}

ns_err ns_buf_reserve(ns_buf *b, size_t extra)
{
    ENSURE(extra <= b->max && b->len <= b->max - extra, NS_E_TOO_BIG,
           "buffer limit of %zu bytes exceeded", b->max);
    size_t need = b->len + extra;
    if (need <= b->cap) {
        return NS_OK;
    }
    size_t cap = b->cap ? b->cap : NS_BUF_MIN_CAP;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    if (cap > b->max + 1) {
        cap = b->max + 1; /* +1 leaves room for ns_buf_cstr's NUL */
    }
    uint8_t *p;
    if (b->secret) {
        p = ns_secret_alloc(cap);
        ENSURE(p != NULL, NS_E_NOMEM, "cannot allocate %zu bytes of locked memory", cap);
        if (b->data != NULL) {
            memcpy(p, b->data, b->len);
            ns_secret_free(b->data, b->cap);
        }
    } else if (b->cached) {
        p = ns_tc_realloc(b->data, cap);
        ENSURE(p != NULL, NS_E_NOMEM, "cannot allocate %zu bytes", cap);
    } else {
        p = realloc(b->data, cap);
        ENSURE(p != NULL, NS_E_NOMEM, "cannot allocate %zu bytes", cap);
    }
    b->data = p;
    b->cap = cap;
    return NS_OK;
}

ns_err ns_buf_append(ns_buf *b, const void *p, size_t n)
{
    if (n == 0) {
        return NS_OK;
    }
    GUARD(ns_buf_reserve(b, n));
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return NS_OK;
}

ns_err ns_buf_append_u8(ns_buf *b, uint8_t v)
{
    return ns_buf_append(b, &v, 1);
}

ns_err ns_buf_append_str(ns_buf *b, const char *s)
{
    return ns_buf_append(b, s, strlen(s));
}

ns_err ns_buf_printf(ns_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ENSURE(n >= 0, NS_E_INTERNAL, "format error");
    GUARD(ns_buf_reserve(b, (size_t)n + 1));
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return NS_OK;
}

ns_err ns_buf_append_json_str(ns_buf *b, const char *s, size_t n)
{
    GUARD(ns_buf_append_u8(b, '"'));
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = (uint8_t)s[i];
        if (ch == '"' || ch == '\\') {
            GUARD(ns_buf_append_u8(b, '\\'));
            GUARD(ns_buf_append_u8(b, ch));
        } else if (ch < 0x20) {
            GUARD(ns_buf_printf(b, "\\u%04x", ch));
        } else {
            GUARD(ns_buf_append_u8(b, ch));
        }
    }
    return ns_buf_append_u8(b, '"');
}

ns_err ns_buf_cstr(ns_buf *b)
{
    if (b->len + 1 > b->cap) {
        /* reserve counts against max; the NUL is allowed one past it */
        size_t saved = b->max;
        b->max = b->max + 1;
        ns_err e = ns_buf_reserve(b, 1);
        b->max = saved;
        GUARD(e);
    }
    b->data[b->len] = 0;
    return NS_OK;
}

void ns_buf_consume(ns_buf *b, size_t n)
{
    if (n >= b->len) {
        ns_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    if (b->secret) {
        ns_wipe(b->data + b->len - n, n);
    }
    b->len -= n;
}

void ns_buf_reset(ns_buf *b)
{
    if (b->secret && b->data != NULL) {
        ns_wipe(b->data, b->cap);
    }
    b->len = 0;
}

void ns_buf_free(ns_buf *b)
{
    if (b->data != NULL) {
        if (b->secret) {
            ns_secret_free(b->data, b->cap);
        } else if (b->cached) {
            ns_tc_free(b->data);
        } else {
            free(b->data);
        }
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void ns_cur_init(ns_cur *c, const void *p, size_t len)
{
    c->p = p;
    c->len = len;
    c->pos = 0;
}

size_t ns_cur_left(const ns_cur *c)
{
    return c->len - c->pos;
}

ns_err ns_cur_slice(ns_cur *c, const uint8_t **out, size_t n)
{
    ENSURE(n <= ns_cur_left(c), NS_E_TRUNCATED, "truncated: need %zu bytes at offset %zu, have %zu",
           n, c->pos, ns_cur_left(c));
    *out = c->p + c->pos;
    c->pos += n;
    return NS_OK;
}

ns_err ns_cur_copy(ns_cur *c, void *out, size_t n)
{
    const uint8_t *p = NULL;
    GUARD(ns_cur_slice(c, &p, n));
    if (n > 0) {
        memcpy(out, p, n);
    }
    return NS_OK;
}

ns_err ns_cur_skip(ns_cur *c, size_t n)
{
    const uint8_t *p = NULL;
    return ns_cur_slice(c, &p, n);
}

ns_err ns_cur_sub(ns_cur *c, ns_cur *sub, size_t n)
{
    const uint8_t *p = NULL;
    GUARD(ns_cur_slice(c, &p, n));
    ns_cur_init(sub, p, n);
    return NS_OK;
}

ns_err ns_cur_u8(ns_cur *c, uint8_t *out)
{
    return ns_cur_copy(c, out, 1);
}

static uint64_t load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t load_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i > 0; i--) {
        v = (v << 8) | p[i - 1];
    }
    return v;
}

ns_err ns_cur_be16(ns_cur *c, uint16_t *out)
{
    const uint8_t *p = NULL;
    GUARD(ns_cur_slice(c, &p, 2));
    *out = (uint16_t)load_be(p, 2);
    return NS_OK;
}

ns_err ns_cur_be32(ns_cur *c, uint32_t *out)
{
    const uint8_t *p = NULL;
    GUARD(ns_cur_slice(c, &p, 4));
    *out = (uint32_t)load_be(p, 4);
    return NS_OK;
}

ns_err ns_cur_be64(ns_cur *c, uint64_t *out)
{
    const uint8_t *p = NULL;
    GUARD(ns_cur_slice(c, &p, 8));
    *out = load_be(p, 8);
    return NS_OK;
}

ns_err ns_cur_le64(ns_cur *c, uint64_t *out)
{
    const uint8_t *p = NULL;
    GUARD(ns_cur_slice(c, &p, 8));
    *out = load_le(p, 8);
    return NS_OK;
}

static void store_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--) {
        p[i - 1] = (uint8_t)v;
        v >>= 8;
    }
}

static void store_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

void ns_put_be16(uint8_t *p, uint16_t v)
{
    store_be(p, v, 2);
}

void ns_put_be32(uint8_t *p, uint32_t v)
{
    store_be(p, v, 4);
}

void ns_put_be64(uint8_t *p, uint64_t v)
{
    store_be(p, v, 8);
}

void ns_put_le32(uint8_t *p, uint32_t v)
{
    store_le(p, v, 4);
}

