/*
 * libFuzzer target: h2client reading a hostile server. The input is everything the "server"
 * sends (served in chunks whose sizes come from the input too); whatever it is, a unary call
 * ends with an error or a well-formed answer within the response limit, without reading out of
 * bounds.
 */
#include <stdint.h>
#include <string.h>

#include "h2client.h"

typedef struct {
    const uint8_t *p;
    size_t n, off;
} src;

static ns_err w(void *arg, const uint8_t *p, size_t n)
{
    (void)arg;
    (void)p;
    (void)n;
    return NS_OK;
}

static ns_err r(void *arg, uint8_t *p, size_t n, size_t *got)
{
    src *s = arg;
    size_t left = s->n - s->off;
    size_t k = left < n ? left : n;
    if (k > 0 && s->p[s->off] < 64) { /* a short read now and then */
        k = 1 + s->p[s->off] % (k < 64 ? k : 64);
        k = k > left ? left : k;
    }
    memcpy(p, s->p + s->off, k);
    s->off += k;
    *got = k;
    return NS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A valid server preface first (empty SETTINGS), so the fuzz reaches the answer frames. */
    static const uint8_t settings[] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    uint8_t buf[1 << 16];
    if (size > sizeof buf - sizeof settings) {
        return 0;
    }
    memcpy(buf, settings, sizeof settings);
    memcpy(buf + sizeof settings, data, size);
    src s = {buf, size + sizeof settings, 0};
    ns_h2c_io io = {&s, w, r};
    ns_h2c *c = NULL;
    if (ns_h2c_new(&c, &io, "fuzz") != NS_OK) {
        return 0;
    }
    ns_buf resp;
    ns_buf_init(&resp, 4096);
    int st = -1;
    char msg[NS_H2C_MSG_MAX];
    if (ns_h2c_unary(c, "/nsign.v1.Signer/ListKeys", NULL, 0, &resp, &st, msg) == NS_OK) {
        if (resp.len > 4096 || (st != 0 && resp.len != 0) || strlen(msg) >= NS_H2C_MSG_MAX) {
            __builtin_trap();
        }
    }
    ns_buf_free(&resp);
    ns_h2c_free(c);
    return 0;
}
