/*
 * libFuzzer target: raw bytes from a client into the whole request path: the HTTP/2 preface
 * (prepended), nghttp2, the gRPC framing and routing in h2server, nanopb decoding and the real
 * handlers of signsvc with test keys. Output is drained as a server would; deadlines are
 * fired by a tick far in the future; some inputs are drained (GOAWAY notice, then final) part
 * way. Any crash, leak or sanitizer report is a bug.
 */
#include <stdint.h>
#include <string.h>

#include "h2server.h"
#include "log.h"
#include "signsvc.h"

static const char KEYS[] =
    "{\"version\":1,\"keys\":["
    "{\"id\":\"payments\",\"algorithm\":\"ed25519\","
    "\"private_key\":\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"},"
    "{\"id\":\"eth-hot\",\"algorithm\":\"ecdsa-secp256k1\",\"private_key\":"
    "\"0000000000000000000000000000000000000000000000000000000000000001\"},"
    "{\"id\":\"api\",\"algorithm\":\"ecdsa-p256\",\"private_key\":"
    "\"c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721\"}]}";

static ns_signsvc_keys *keys;
static ns_h2_handler handler;

static void drain(ns_h2_conn *c)
{
    const uint8_t *p;
    size_t n;
    for (int i = 0; i < 64; i++) {
        if (ns_h2_conn_pending(c, &p, &n) != NS_OK || n == 0) {
            return;
        }
        ns_h2_conn_sent(c, n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (keys == NULL) {
        ns_log_set_level(NS_LOG_ERROR);
        if (ns_signsvc_load_keys(&keys, (const uint8_t *)KEYS, sizeof KEYS - 1) != NS_OK) {
            __builtin_trap();
        }
        static ns_signsvc_ctx ctx;
        ctx.keys = keys;
        ns_signsvc_handler(&handler, &ctx, 64 * 1024);
    }
    ns_h2_conn *c;
    if (ns_h2_conn_new(&c, &handler, "fuzz", 0) != NS_OK) {
        return 0;
    }
    ns_err e = ns_h2_conn_recv(c, (const uint8_t *)magic, 24);
    /* Feed in a few chunks so partial frames and messages are exercised too. The first byte
     * also picks a drain (h2loop's): none, the notice GOAWAY after the first chunk, or the
     * notice and then the final GOAWAY after the second, so requests arrive after each. */
    int mode = size ? data[0] % 3 : 0;
    size_t off = 0;
    size_t chunk = size / 3 + 1;
    for (int k = 0; e == NS_OK && off < size; k++) {
        size_t n = size - off < chunk ? size - off : chunk;
        e = ns_h2_conn_recv(c, data + off, n);
        drain(c);
        off += n;
        if (mode >= 1 && k == 0) {
            (void)ns_h2_conn_drain_notice(c);
        }
        if (mode == 2 && k == 1) {
            (void)ns_h2_conn_drain_final(c);
        }
        drain(c);
    }
    (void)ns_h2_conn_tick(c, INT64_MAX / 2);
    drain(c);
    ns_h2_conn_shutdown(c);
    drain(c);
    (void)ns_h2_conn_done(c);
    ns_h2_conn_free(c);
    return 0;
}
