/*
 * libFuzzer target: h2server's output bound (issue 22) under a client that takes its answers
 * slowly or never. The first byte picks how the "socket" drains (never, in pieces of up to
 * 64 * the second byte, or fully) and when the clock jumps; the rest is what the client sends
 * after the preface (prepended), fed in chunks to the real request path (nghttp2, h2server,
 * signsvc's handlers) under a small output budget, so answers wait, requests defer and resume,
 * streams are refused and stalls are reaped. Any crash, leak, sanitizer report, or budget not
 * returned when the connection is freed is a bug.
 */
#include <stdint.h>
#include <string.h>

#include "h2server.h"
#include "iox.h"
#include "log.h"
#include "signsvc.h"

static const char KEYS[] = "{\"version\":1,\"keys\":["
                           "{\"id\":\"payments\",\"algorithm\":\"ed25519\","
                           "\"private_key\":\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"}]}";

static ns_signsvc_keys *keys;
static ns_h2_handler handler;

/* Takes up to max bytes of output (all when max is 0); returns how many. */
static size_t drain(ns_h2_conn *c, size_t max)
{
    size_t took = 0;
    for (int i = 0; i < 64; i++) {
        const uint8_t *p;
        size_t n;
        if (ns_h2_conn_pending(c, &p, &n) != NS_OK || n == 0) {
            break;
        }
        if (max != 0 && n > max - took) {
            n = max - took;
        }
        ns_h2_conn_sent(c, n);
        took += n;
        if (max != 0 && took == max) {
            break;
        }
    }
    return took;
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
        handler.max_output = 256 * 1024;
        handler.stall_ms = 1000;
    }
    if (size < 2) {
        return 0;
    }
    int mode = data[0] & 3;
    int late = data[0] & 4;
    size_t piece = mode == 1 ? (size_t)(data[1] + 1) * 64 : 0;
    data += 2;
    size -= 2;
    ns_h2_output_stats before;
    ns_h2_output_stats_get(&before);
    ns_h2_conn *c;
    if (ns_h2_conn_new(&c, &handler, "fuzz", 0) != NS_OK) {
        return 0;
    }
    ns_err e = ns_h2_conn_recv(c, (const uint8_t *)magic, 24);
    size_t off = 0;
    size_t chunk = size / 4 + 1;
    int64_t now = ns_now_ms();
    for (int round = 0; e == NS_OK && off < size && round < 256 && !ns_h2_conn_done(c); round++) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (ns_h2_conn_want_read(c)) {
            e = ns_h2_conn_recv(c, data + off, n);
            off += n;
        } else if (mode == 0) {
            break; /* back-pressure with a client that never reads: only the clock goes on */
        }
        if (mode != 0) {
            (void)drain(c, piece);
        }
        now += late ? 700 : 10;
        (void)ns_h2_conn_tick(c, now);
    }
    for (int i = 0; i < 4; i++) { /* the stall reaper, then its grace period */
        now += 1100;
        (void)ns_h2_conn_tick(c, now);
        if (mode != 0) {
            (void)drain(c, piece);
        }
    }
    (void)ns_h2_conn_done(c);
    ns_h2_conn_free(c);
    ns_h2_output_stats after;
    ns_h2_output_stats_get(&after);
    if (after.held != before.held) {
        __builtin_trap(); /* a connection must return exactly what it took */
    }
    return 0;
}
