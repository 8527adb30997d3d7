/*
 * cbor: a bounded CBOR (RFC 8949) reader and a small writer, for the NSM protocol and COSE.
 *
 * The reader works on an ns_cur: ns_cbor_head reads one item header (and, for byte and text
 * strings, points at their bytes without copying). Containers are walked by the caller, which
 * reads exactly as the schema says; ns_cbor_skip skips one whole item of any shape with a
 * counter of pending items instead of recursion, so hostile nesting costs no stack. Every count
 * and length is checked against the bytes left before it is used. Indefinite lengths are
 * rejected (the NSM and COSE never use them), as are reserved additional-info values and
 * non-minimal ("overlong") heads, so each value has one accepted encoding.
 */
#ifndef NS_CBOR_H
#define NS_CBOR_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NS_CBOR_MAX_ITEMS 100000 /* ns_cbor_skip: most items one skipped value may hold */

typedef enum {
    NS_CBOR_UINT = 0,
    NS_CBOR_NINT = 1, /* value is -1 - val */
    NS_CBOR_BSTR = 2,
    NS_CBOR_TSTR = 3,
    NS_CBOR_ARRAY = 4,
    NS_CBOR_MAP = 5,
    NS_CBOR_TAG = 6,
    NS_CBOR_SIMPLE = 7, /* val: 20 false, 21 true, 22 null, 23 undefined; floats as raw bits */
} ns_cbor_major;

#define NS_CBOR_FALSE 20
#define NS_CBOR_TRUE 21
#define NS_CBOR_NULL 22

typedef struct {
    ns_cbor_major major;
    uint8_t ai;          /* additional information of the head (25..27 for floats) */
    uint64_t val;        /* integer argument, string length, item/pair count, tag, simple */
    const uint8_t *data; /* BSTR/TSTR: the bytes (val of them) */
    size_t start;        /* cursor offset of the head */
} ns_cbor_item;

/* Reads one head; strings are sliced; counts are checked against the bytes left. */
ns_err ns_cbor_head(ns_cur *c, ns_cbor_item *it) NS_MUST_CHECK;
/* Skips one complete item (nested arrays, maps, tags), iteratively. */
ns_err ns_cbor_skip(ns_cur *c) NS_MUST_CHECK;
/* Reads a head that must have the given major type (what names the field for the message). */
ns_err ns_cbor_expect(ns_cur *c, ns_cbor_major major, ns_cbor_item *it,
                      const char *what) NS_MUST_CHECK;
/* Reads a byte string, or null when allow_null (then *p = NULL, *n = 0, *is_null = 1). */
ns_err ns_cbor_bstr_or_null(ns_cur *c, const uint8_t **p, size_t *n, int *is_null,
                            const char *what) NS_MUST_CHECK;
/* True when the text string item equals the NUL-terminated s. */
int ns_cbor_tstr_eq(const ns_cbor_item *it, const char *s);

/* The keys of one map read so far, to refuse a duplicate whatever its value (RFC 8949 5.6: such
 * a map is not valid, and a reader keeping the first value and one keeping the last would see
 * two different documents). Keys compare by their encoding, which is unique (minimal heads). A
 * map of more than NS_CBOR_MAP_KEYS_MAX pairs is refused, which bounds the comparisons. */
#define NS_CBOR_MAP_KEYS_MAX 64
typedef struct {
    const uint8_t *p[NS_CBOR_MAP_KEYS_MAX];
    size_t n[NS_CBOR_MAP_KEYS_MAX];
    size_t count;
} ns_cbor_keys;

/* Starts a map of npairs pairs (from its head); NS_E_TOO_BIG beyond NS_CBOR_MAP_KEYS_MAX. */
ns_err ns_cbor_keys_init(ns_cbor_keys *ks, uint64_t npairs, const char *what) NS_MUST_CHECK;
/* Records the key that was just read: from offset start (its head's) to c's position.
 * NS_E_PARSE when the map already had it. */
ns_err ns_cbor_keys_add(ns_cbor_keys *ks, const ns_cur *c, size_t start,
                        const char *what) NS_MUST_CHECK;

/* Writer: appends a head, byte string, text string, or simple value. */
ns_err ns_cbor_put_head(ns_buf *b, ns_cbor_major major, uint64_t val) NS_MUST_CHECK;
ns_err ns_cbor_put_bstr(ns_buf *b, const uint8_t *p, size_t n) NS_MUST_CHECK;
ns_err ns_cbor_put_tstr(ns_buf *b, const char *s) NS_MUST_CHECK;
ns_err ns_cbor_put_null(ns_buf *b) NS_MUST_CHECK;

#endif
