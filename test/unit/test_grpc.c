/* Unit tests for grpc (framing, grpc-timeout, grpc-message, statuses) and the h2server
 * connection state machine's preface handling. */
#include <string.h>

#include "grpc.h"
#include "h2server.h"
#include "t.h"

static void test_frames(void)
{
    const uint8_t two[] = {0, 0, 0, 0, 2, 'h', 'i', 0, 0, 0, 0, 0};
    ns_cur c;
    const uint8_t *m;
    size_t n;
    ns_cur_init(&c, two, sizeof two);
    CHECK(ns_grpc_frame_next(&c, 100, &m, &n) == NS_OK && n == 2 && memcmp(m, "hi", 2) == 0,
          "frame: first message");
    CHECK(ns_grpc_frame_next(&c, 100, &m, &n) == NS_OK && n == 0, "frame: empty message");
    CHECK_ERR(ns_grpc_frame_next(&c, 100, &m, &n), NS_E_TRUNCATED, "frame: end of input");
    const uint8_t part[] = {0, 0, 0, 0, 9, 'a'};
    ns_cur_init(&c, part, sizeof part);
    CHECK_ERR(ns_grpc_frame_next(&c, 100, &m, &n), NS_E_TRUNCATED, "frame: partial body");
    CHECK(c.pos == 0, "frame: cursor unchanged on a partial message");
    ns_cur_init(&c, part, 3);
    CHECK_ERR(ns_grpc_frame_next(&c, 100, &m, &n), NS_E_TRUNCATED, "frame: partial prefix");
    ns_cur_init(&c, part, sizeof part);
    CHECK_ERR(ns_grpc_frame_next(&c, 8, &m, &n), NS_E_TOO_BIG, "frame: over max from the prefix");
    const uint8_t comp[] = {1, 0, 0, 0, 0};
    ns_cur_init(&c, comp, sizeof comp);
    CHECK_ERR(ns_grpc_frame_next(&c, 8, &m, &n), NS_E_UNSUPPORTED, "frame: compressed flag");
    const uint8_t flag[] = {2, 0, 0, 0, 0};
    ns_cur_init(&c, flag, sizeof flag);
    CHECK_ERR(ns_grpc_frame_next(&c, 8, &m, &n), NS_E_PARSE, "frame: bad flag byte");
    const uint8_t huge[] = {0, 0xff, 0xff, 0xff, 0xff};
    ns_cur_init(&c, huge, sizeof huge);
    CHECK_ERR(ns_grpc_frame_next(&c, NS_GRPC_MAX_MSG_DEFAULT, &m, &n), NS_E_TOO_BIG,
              "frame: 4 GiB declared length");
    uint8_t p[5];
    ns_grpc_frame_prefix(p, 0x01020304);
    CHECK(p[0] == 0 && p[1] == 1 && p[4] == 4, "frame: prefix is flag + big-endian length");
}

static void test_timeout(void)
{
    int64_t ms = -1;
    CHECK(ns_grpc_parse_timeout("5S", 2, &ms) == NS_OK && ms == 5000, "timeout: 5S");
    CHECK(ns_grpc_parse_timeout("100m", 4, &ms) == NS_OK && ms == 100, "timeout: 100m");
    CHECK(ns_grpc_parse_timeout("2M", 2, &ms) == NS_OK && ms == 120000, "timeout: 2M");
    CHECK(ns_grpc_parse_timeout("1H", 2, &ms) == NS_OK && ms == 3600000, "timeout: 1H");
    CHECK(ns_grpc_parse_timeout("1500u", 5, &ms) == NS_OK && ms == 2, "timeout: 1500u rounds up");
    CHECK(ns_grpc_parse_timeout("1n", 2, &ms) == NS_OK && ms == 1, "timeout: 1n is 1 ms, not 0");
    CHECK(ns_grpc_parse_timeout("0m", 2, &ms) == NS_OK && ms == 0, "timeout: 0m");
    CHECK(ns_grpc_parse_timeout("99999999H", 9, &ms) == NS_OK && ms == NS_GRPC_TIMEOUT_MAX_MS,
          "timeout: clamped");
    CHECK_ERR(ns_grpc_parse_timeout("123456789S", 10, &ms), NS_E_PARSE, "timeout: 9 digits");
    CHECK_ERR(ns_grpc_parse_timeout("S", 1, &ms), NS_E_PARSE, "timeout: no digits");
    CHECK_ERR(ns_grpc_parse_timeout("5s", 2, &ms), NS_E_PARSE, "timeout: unknown unit");
    CHECK_ERR(ns_grpc_parse_timeout("-5S", 3, &ms), NS_E_PARSE, "timeout: sign");
    CHECK_ERR(ns_grpc_parse_timeout("5 S", 3, &ms), NS_E_PARSE, "timeout: space");
}

static void test_message(void)
{
    char out[32];
    CHECK(ns_grpc_percent_encode(out, sizeof out, "ok fine") == 7 && strcmp(out, "ok fine") == 0,
          "grpc-message: printable ASCII kept");
    ns_grpc_percent_encode(out, sizeof out, "100%\n\xc3\xa9");
    CHECK(strcmp(out, "100%25%0A%C3%A9") == 0, "grpc-message: %% and non-ASCII escaped (%s)", out);
    ns_grpc_percent_encode(out, 6, "abc\n");
    CHECK(strcmp(out, "abc") == 0, "grpc-message: truncation never splits an escape");
    CHECK(ns_grpc_percent_encode(out, 0, "x") == 0, "grpc-message: zero capacity");
}

static void test_status(void)
{
    CHECK(strcmp(ns_grpc_status_name(NS_GRPC_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED") == 0 &&
              strcmp(ns_grpc_status_name(16), "UNAUTHENTICATED") == 0 &&
              strcmp(ns_grpc_status_name(99), "UNKNOWN") == 0,
          "status names");
    CHECK(ns_grpc_status_from_err(NS_E_UNAVAILABLE) == NS_GRPC_UNAVAILABLE &&
              ns_grpc_status_from_err(NS_E_NOT_FOUND) == NS_GRPC_NOT_FOUND &&
              ns_grpc_status_from_err(NS_E_PARSE) == NS_GRPC_INVALID_ARGUMENT &&
              ns_grpc_status_from_err(NS_E_TOO_BIG) == NS_GRPC_RESOURCE_EXHAUSTED &&
              ns_grpc_status_from_err(NS_E_CRYPTO) == NS_GRPC_INTERNAL,
          "errors map to gRPC statuses");
}

static int route_none(void *app, const char *path, int *streaming)
{
    (void)app, (void)path, (void)streaming;
    return -1;
}

static void test_conn_preface(void)
{
    ns_h2_handler h = {.route = route_none};
    ns_h2_conn *c;
    const uint8_t *p;
    size_t n;
    CHECK(ns_h2_conn_new(&c, &h, "test", 0) == NS_OK, "conn: new");
    const char *get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_ERR(ns_h2_conn_recv(c, (const uint8_t *)get, strlen(get)), NS_E_PROTO,
              "conn: HTTP/1.1 request refused");
    CHECK(ns_h2_conn_pending(c, &p, &n) == NS_OK && n > 12 && memcmp(p, "HTTP/1.1 505", 12) == 0,
          "conn: HTTP/1.1 505 answer queued");
    CHECK(ns_h2_conn_done(c), "conn: done after the HTTP/1 answer");
    ns_h2_conn_free(c);

    CHECK(ns_h2_conn_new(&c, &h, "test", 0) == NS_OK, "conn: new (split preface)");
    const char *magic = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    for (size_t i = 0; i < 24; i++) {
        if (ns_h2_conn_recv(c, (const uint8_t *)magic + i, 1) != NS_OK) {
            break;
        }
    }
    CHECK(ns_h2_conn_pending(c, &p, &n) == NS_OK && n >= 9 && p[3] == 0x04,
          "conn: preface byte by byte, then our SETTINGS frame");
    ns_h2_conn_sent(c, n);
    const uint8_t junk[] = {0, 0, 4, 0xff, 0, 0, 0, 0, 0};
    ns_err e = ns_h2_conn_recv(c, junk, sizeof junk); /* unknown frame type: ignored (RFC 9113) */
    CHECK(e == NS_OK, "conn: unknown frame type ignored");
    const uint8_t bad[] = {0, 0, 1, 0x04, 0, 0, 0, 0, 0, 0}; /* SETTINGS of length 1 */
    CHECK_ERR(ns_h2_conn_recv(c, bad, sizeof bad), NS_OK, "conn: bad SETTINGS handled by nghttp2");
    CHECK(ns_h2_conn_pending(c, &p, &n) == NS_OK && n >= 9 && p[3] == 0x07,
          "conn: bad SETTINGS answered with GOAWAY");
    ns_h2_conn_free(c);
}

int main(void)
{
    test_frames();
    test_timeout();
    test_message();
    test_status();
    test_conn_preface();
    T_DONE();
}
