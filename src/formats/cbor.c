/*
 * cbor: bounded reader and writer (see cbor.h). Heads must be minimal, lengths definite, and
 * every length/count fit in the bytes that remain (each item takes at least one byte), so a
 * count can never ask for more work than the input can pay for.
 */
#include "cbor.h"

#include <string.h>

ns_err ns_cbor_head(ns_cur *c, ns_cbor_item *it)
{
    uint8_t b;
    it->start = c->pos;
    it->data = NULL;
    GUARD(ns_cur_u8(c, &b));
    it->major = (ns_cbor_major)(b >> 5);
    it->ai = b & 0x1f;
    uint64_t v;
    if (it->ai < 24) {
        v = it->ai;
    } else if (it->ai == 24) {
        uint8_t x;
        GUARD(ns_cur_u8(c, &x));
        v = x;
        /* Simple values below 32 must use the one-byte form (RFC 8949 3.3). */
        ENSURE(v >= 24 && !(it->major == NS_CBOR_SIMPLE && v < 32), NS_E_PARSE,
               "cbor: non-minimal head at offset %zu", it->start);
    } else if (it->ai == 25) {
        uint16_t x;
        GUARD(ns_cur_be16(c, &x));
        v = x;
        ENSURE(v > 0xff || it->major == NS_CBOR_SIMPLE, NS_E_PARSE,
               "cbor: non-minimal head at offset %zu", it->start);
    } else if (it->ai == 26) {
        uint32_t x;
        GUARD(ns_cur_be32(c, &x));
        v = x;
        ENSURE(v > 0xffff || it->major == NS_CBOR_SIMPLE, NS_E_PARSE,
               "cbor: non-minimal head at offset %zu", it->start);
    } else if (it->ai == 27) {
        GUARD(ns_cur_be64(c, &v));
        ENSURE(v > 0xffffffffu || it->major == NS_CBOR_SIMPLE, NS_E_PARSE,
               "cbor: non-minimal head at offset %zu", it->start);
    } else if (it->ai == 31) {
        BAIL(NS_E_UNSUPPORTED, "cbor: indefinite length at offset %zu is not accepted", it->start);
    } else {
        BAIL(NS_E_PARSE, "cbor: reserved additional information %u at offset %zu", (unsigned)it->ai,
             it->start);
    }
    it->val = v;
    size_t left = ns_cur_left(c);
    switch (it->major) {
    case NS_CBOR_BSTR:
    case NS_CBOR_TSTR:
        ENSURE(v <= left, NS_E_TRUNCATED,
               "cbor: string of %llu bytes at offset %zu runs past "
               "the end (%zu left)",
               (unsigned long long)v, it->start, left);
        GUARD(ns_cur_slice(c, &it->data, (size_t)v));
        break;
    case NS_CBOR_ARRAY:
        ENSURE(v <= left, NS_E_TRUNCATED,
               "cbor: array of %llu items at offset %zu cannot fit "
               "in %zu bytes",
               (unsigned long long)v, it->start, left);
        break;
    case NS_CBOR_MAP:
        ENSURE(v <= left / 2, NS_E_TRUNCATED,
               "cbor: map of %llu pairs at offset %zu cannot "
               "fit in %zu bytes",
               (unsigned long long)v, it->start, left);
        break;
    default:
        break;
    }
    return NS_OK;
}

ns_err ns_cbor_skip(ns_cur *c)
{
    uint64_t pending = 1, seen = 0;
    while (pending > 0) {
        ns_cbor_item it;
        GUARD(ns_cbor_head(c, &it));
        pending--;
        ENSURE(++seen <= NS_CBOR_MAX_ITEMS, NS_E_TOO_BIG, "cbor: more than %d nested items",
               NS_CBOR_MAX_ITEMS);
        /* Counts were checked against the bytes left, so pending stays below the input size. */
        if (it.major == NS_CBOR_ARRAY) {
            pending += it.val;
        } else if (it.major == NS_CBOR_MAP) {
            pending += 2 * it.val;
        } else if (it.major == NS_CBOR_TAG) {
            pending += 1;
        }
    }
    return NS_OK;
}

static const char *major_name(ns_cbor_major m)
{
    static const char *const names[] = {
        "unsigned integer", "negative integer", "byte string", "text string", "array", "map", "tag",
        "simple value"};
    return names[m & 7];
}

ns_err ns_cbor_expect(ns_cur *c, ns_cbor_major major, ns_cbor_item *it, const char *what)
{
    GUARD(ns_cbor_head(c, it));
    ENSURE(it->major == major, NS_E_PARSE, "cbor: %s: expected a %s, got a %s at offset %zu", what,
           major_name(major), major_name(it->major), it->start);
    return NS_OK;
}

ns_err ns_cbor_bstr_or_null(ns_cur *c, const uint8_t **p, size_t *n, int *is_null, const char *what)
{
    ns_cbor_item it;
    GUARD(ns_cbor_head(c, &it));
    if (it.major == NS_CBOR_SIMPLE && it.ai == NS_CBOR_NULL) {
        *p = NULL;
        *n = 0;
        *is_null = 1;
        return NS_OK;
    }
    ENSURE(it.major == NS_CBOR_BSTR, NS_E_PARSE,
           "cbor: %s: expected a byte string or null, got a %s at offset %zu", what,
           major_name(it.major), it.start);
    *p = it.data;
    *n = (size_t)it.val;
    *is_null = 0;
    return NS_OK;
}

int ns_cbor_tstr_eq(const ns_cbor_item *it, const char *s)
{
    size_t n = strlen(s);
    return it->major == NS_CBOR_TSTR && it->val == n && memcmp(it->data, s, n) == 0;
}

ns_err ns_cbor_keys_init(ns_cbor_keys *ks, uint64_t npairs, const char *what)
{
    ks->count = 0;
    ENSURE(npairs <= NS_CBOR_MAP_KEYS_MAX, NS_E_TOO_BIG, "cbor: %s has %llu keys (max %d)", what,
           (unsigned long long)npairs, NS_CBOR_MAP_KEYS_MAX);
    return NS_OK;
}

ns_err ns_cbor_keys_add(ns_cbor_keys *ks, const ns_cur *c, size_t start, const char *what)
{
    ENSURE(ks->count < NS_CBOR_MAP_KEYS_MAX && start <= c->pos, NS_E_INTERNAL,
           "cbor: %s: key bookkeeping out of range", what);
    const uint8_t *p = c->p + start;
    size_t n = c->pos - start;
    for (size_t i = 0; i < ks->count; i++) {
        ENSURE(!(ks->n[i] == n && memcmp(ks->p[i], p, n) == 0), NS_E_PARSE,
               "cbor: %s has a duplicate key (a map's keys must be unique)", what);
    }
    ks->p[ks->count] = p;
    ks->n[ks->count] = n;
    ks->count++;
    return NS_OK;
}

ns_err ns_cbor_put_head(ns_buf *b, ns_cbor_major major, uint64_t val)
{
    uint8_t h[9];
    size_t n;
    uint8_t m = (uint8_t)(major << 5);
    if (val < 24) {
        h[0] = m | (uint8_t)val;
        n = 1;
    } else if (val <= 0xff) {
        h[0] = m | 24;
        h[1] = (uint8_t)val;
        n = 2;
    } else if (val <= 0xffff) {
        h[0] = m | 25;
        ns_put_be16(h + 1, (uint16_t)val);
        n = 3;
    } else if (val <= 0xffffffffu) {
        h[0] = m | 26;
        ns_put_be32(h + 1, (uint32_t)val);
        n = 5;
    } else {
        h[0] = m | 27;
        ns_put_be64(h + 1, val);
        n = 9;
    }
    return ns_buf_append(b, h, n);
}

ns_err ns_cbor_put_bstr(ns_buf *b, const uint8_t *p, size_t n)
{
    GUARD(ns_cbor_put_head(b, NS_CBOR_BSTR, n));
    return ns_buf_append(b, p, n);
}

ns_err ns_cbor_put_tstr(ns_buf *b, const char *s)
{
    size_t n = strlen(s);
    GUARD(ns_cbor_put_head(b, NS_CBOR_TSTR, n));
    return ns_buf_append(b, s, n);
}

ns_err ns_cbor_put_null(ns_buf *b)
{
    return ns_buf_append_u8(b, 0xf6);
}
