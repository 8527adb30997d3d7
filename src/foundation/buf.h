/*
 * buf: bounded growable byte buffers and read cursors.
 *
 * An ns_buf never grows past its max (set at init); growth beyond returns NS_E_TOO_BIG. A buffer
 * made with ns_buf_init_secret lives in locked, non-dumpable memory and is wiped on every
 * reallocation and on free. An ns_cur reads a byte range front to back; every read is bounds-
 * checked and returns NS_E_TRUNCATED instead of walking off the end.
 */
#ifndef NS_BUF_H
#define NS_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;
    int secret;
    int cached; /* allocated from the calling thread's block cache (tcache.h) */
} ns_buf;

void ns_buf_init(ns_buf *b, size_t max);
void ns_buf_init_secret(ns_buf *b, size_t max);
/* For buffers an event loop makes and frees per request: small allocations come from the
 * thread's block cache (tcache.h) instead of malloc. Not for secrets. */
void ns_buf_init_cached(ns_buf *b, size_t max);
ns_err ns_buf_reserve(ns_buf *b, size_t extra) NS_MUST_CHECK;
ns_err ns_buf_append(ns_buf *b, const void *p, size_t n) NS_MUST_CHECK;
ns_err ns_buf_append_u8(ns_buf *b, uint8_t v) NS_MUST_CHECK;
ns_err ns_buf_append_str(ns_buf *b, const char *s) NS_MUST_CHECK;
ns_err ns_buf_printf(ns_buf *b, const char *fmt, ...) NS_MUST_CHECK NS_PRINTF(2, 3);
/* Appends s[0..n) as a JSON string (RFC 8259): quoted, '"' and '\' escaped, control bytes as
 * \u00XX, every other byte as it is (UTF-8 passes through). */
ns_err ns_buf_append_json_str(ns_buf *b, const char *s, size_t n) NS_MUST_CHECK;
/* Makes data a NUL-terminated C string (the NUL is not counted in len). */
ns_err ns_buf_cstr(ns_buf *b) NS_MUST_CHECK;
/* Drops the first n bytes. */
void ns_buf_consume(ns_buf *b, size_t n);
/* Wipes contents (when secret) and sets len to 0; keeps the allocation. */
void ns_buf_reset(ns_buf *b);
/* Wipes (when secret) and frees. Safe on a zeroed or already-freed buffer. */
void ns_buf_free(ns_buf *b);

typedef struct {
    const uint8_t *p;
    size_t len;
    size_t pos;
} ns_cur;

void ns_cur_init(ns_cur *c, const void *p, size_t len);
size_t ns_cur_left(const ns_cur *c);
ns_err ns_cur_u8(ns_cur *c, uint8_t *out) NS_MUST_CHECK;
ns_err ns_cur_be16(ns_cur *c, uint16_t *out) NS_MUST_CHECK;
ns_err ns_cur_be32(ns_cur *c, uint32_t *out) NS_MUST_CHECK;
ns_err ns_cur_be64(ns_cur *c, uint64_t *out) NS_MUST_CHECK;
ns_err ns_cur_le64(ns_cur *c, uint64_t *out) NS_MUST_CHECK;
/* Copies n bytes out. */
ns_err ns_cur_copy(ns_cur *c, void *out, size_t n) NS_MUST_CHECK;
/* Points *out at the next n bytes (no copy) and advances. */
ns_err ns_cur_slice(ns_cur *c, const uint8_t **out, size_t n) NS_MUST_CHECK;
/* A sub-cursor over the next n bytes; advances this one past them. */
ns_err ns_cur_sub(ns_cur *c, ns_cur *sub, size_t n) NS_MUST_CHECK;
ns_err ns_cur_skip(ns_cur *c, size_t n) NS_MUST_CHECK;

void ns_put_be16(uint8_t *p, uint16_t v);
void ns_put_be32(uint8_t *p, uint32_t v);
void ns_put_be64(uint8_t *p, uint64_t v);
void ns_put_le32(uint8_t *p, uint32_t v);

#endif
