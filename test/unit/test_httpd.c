/* Unit tests: the HTTP/1.1 request head parser of httpd, and the server against raw clients. */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"
#include "iox.h"
#include "t.h"

static ns_err parse(const char *s, ns_httpd_req *r)
{
    size_t hl;
    return ns_httpd_parse(r, (const uint8_t *)s, strlen(s), &hl);
}

static int answer(void *arg, const ns_httpd_req *r, ns_buf *body, const char **ctype)
{
    (void)arg;
    *ctype = "text/plain";
    if (!ns_httpd_get_only(r)) {
        return strcmp(r->path, "/act") == 0 ? 202 : 405;
    }
    if (strcmp(r->path, "/metrics") != 0) {
        return 404;
    }
    return ns_buf_append_str(body, "hello\n") == NS_OK ? 200 : 500;
}

/* Sends raw bytes, half-closes when asked, reads the answer until the server closes. */
static void exchange(uint32_t port, const char *req, size_t len, int half_close, char *out,
                     size_t cap)
{
    ns_addr a;
    char s[64];
    snprintf(s, sizeof s, "tcp:127.0.0.1:%u", port);
    out[0] = 0;
    int fd;
    if (ns_addr_parse(&a, s) != NS_OK || ns_addr_connect(&a, 2000, &fd) != NS_OK) {
        return;
    }
    if (len > 0 && write(fd, req, len) < 0) {
        close(fd);
        return;
    }
    if (half_close) {
        shutdown(fd, SHUT_WR);
    }
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && (k = read(fd, out + n, cap - 1 - n)) > 0) {
        n += (size_t)k;
    }
    out[n] = 0;
    close(fd);
}

int main(void)
{
    ns_httpd_req r;
    size_t hl;
    const char *ok = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
    CHECK_ERR(ns_httpd_parse(&r, (const uint8_t *)ok, strlen(ok), &hl), NS_OK, "valid GET");
    CHECK(hl == strlen(ok) && strcmp(r.method, "GET") == 0 && strcmp(r.path, "/metrics") == 0 &&
              r.minor == 1,
          "method, path without query, version");
    CHECK_ERR(parse("GET / HTTP/1.0\r\n\r\n", &r), NS_OK, "HTTP/1.0 without headers");
    CHECK_ERR(parse("GET /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r), NS_OK,
              "Content-Length 0 accepted");
    CHECK_ERR(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n", &r), NS_E_TRUNCATED,
              "incomplete head waits");
    CHECK_ERR(parse("\x16\x03\x01\x02", &r), NS_E_PARSE, "TLS ClientHello refused at once");
    CHECK_ERR(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &r), NS_E_PARSE,
              "HTTP/2 preface refused (not an absolute path)");
    CHECK_ERR(parse("GET / HTTP/2.0\r\n\r\n", &r), NS_E_UNSUPPORTED, "HTTP/2.0 version: 505");
    CHECK_ERR(parse("GET / HTTP/1.1\nHost: a\n\n", &r), NS_E_TRUNCATED,
              "bare LF never ends a head");
    CHECK_ERR(parse("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", &r), NS_E_PARSE, "bare LF refused");
    CHECK_ERR(parse("GET / HTTP/1.1\r\n folded\r\n\r\n", &r), NS_E_PARSE,
              "obsolete line folding refused");
    CHECK_ERR(parse("GET / HTTP/1.1\r\nBad Name: a\r\n\r\n", &r), NS_E_PARSE,
              "space in a field name refused");
    CHECK_ERR(parse("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", &r), NS_E_PARSE,
              "control byte in a value refused");
    CHECK_ERR(parse("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\n", &r), NS_E_PARSE,
              "a body is refused");
    CHECK_ERR(parse("GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &r), NS_E_PARSE,
              "chunked body refused");
    CHECK_ERR(parse("GET  / HTTP/1.1\r\n\r\n", &r), NS_E_PARSE, "double space refused");
    CHECK_ERR(parse("GETTINGLONG / HTTP/1.1\r\n\r\n", &r), NS_E_PARSE, "over-long method refused");
    CHECK_ERR(parse("GET http://x/ HTTP/1.1\r\n\r\n", &r), NS_E_PARSE, "absolute-form refused");
    char big[NS_HTTPD_HEAD_MAX + 64];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    memcpy(big + 300, " HTTP/1.1\r\n\r\n", 13);
    CHECK_ERR(ns_httpd_parse(&r, (const uint8_t *)big, 313, &hl), NS_E_TOO_BIG,
              "target over the path limit refused");
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', sizeof big - 19);
    CHECK_ERR(ns_httpd_parse(&r, (const uint8_t *)big, sizeof big, &hl), NS_E_TOO_BIG,
              "head over NS_HTTPD_HEAD_MAX refused");

    /* The server. */
    ns_httpd *h;
    ns_addr a;
    CHECK(ns_addr_parse(&a, "tcp:127.0.0.1:0") == NS_OK, "address");
    CHECK_ERR(ns_httpd_start(&h, &a, answer, NULL), NS_OK, "server starts");
    uint32_t port = ns_httpd_port(h);
    char out[4096];
    const char *get = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    exchange(port, get, strlen(get), 0, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(out, "\r\n\r\nhello\n") &&
              strstr(out, "Content-Length: 6\r\n") && strstr(out, "Connection: close\r\n"),
          "GET /metrics answered 200 with the body");
    exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n", 26, 0, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(out, "hello") == NULL,
          "HEAD: headers only");
    exchange(port, "GET /other HTTP/1.1\r\n\r\n", 23, 0, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 404 ", 13) == 0, "unknown path 404");
    exchange(port, "DELETE /metrics HTTP/1.1\r\n\r\n", 28, 0, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 405 ", 13) == 0 && strstr(out, "Allow: GET, HEAD"),
          "other method 405 with Allow");
    const char *post0 = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    exchange(port, post0, strlen(post0), 0, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 405 ", 13) == 0,
          "bodyless POST to a GET endpoint: the endpoint refuses it, 405");
    const char *post1 = "POST /act HTTP/1.1\r\n\r\n";
    exchange(port, post1, strlen(post1), 0, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 202 ", 13) == 0, "bodyless POST reaches an endpoint that acts");
    exchange(port, "\x16\x03\x01\x00\x10", 5, 0, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "garbage 400");
    exchange(port, big, sizeof big, 0, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 431 ", 13) == 0, "head over the limit 431");
    exchange(port, "GET /metrics HTTP/1.1\r\n", 23, 1, out, sizeof out);
    CHECK(out[0] == 0, "half a head then EOF: closed without an answer");
    /* Hold many idle connections open: the limit closes extra ones, then a real GET still works
     * once they are gone. */
    int idle[NS_HTTPD_CONNS_MAX + 8];
    char s[64];
    snprintf(s, sizeof s, "tcp:127.0.0.1:%u", port);
    ns_addr ca;
    CHECK(ns_addr_parse(&ca, s) == NS_OK, "client address");
    int opened = 0;
    for (int i = 0; i < NS_HTTPD_CONNS_MAX + 8; i++) {
        if (ns_addr_connect(&ca, 2000, &idle[i]) == NS_OK) {
            opened++;
        } else {
            idle[i] = -1;
        }
    }
    CHECK(opened == NS_HTTPD_CONNS_MAX + 8, "idle clients connected");
    /* The extra ones are closed by the server: their read sees EOF. */
    int eofs = 0;
    usleep(500000); /* well under NS_HTTPD_TIMEOUT_MS */
    for (int i = 0; i < NS_HTTPD_CONNS_MAX + 8; i++) {
        struct pollfd pf = {.fd = idle[i], .events = POLLIN};
        char c;
        if (poll(&pf, 1, 0) == 1 && read(idle[i], &c, 1) == 0) {
            eofs++;
        }
    }
    CHECK(eofs == 8, "connections past NS_HTTPD_CONNS_MAX closed at once (got %d)", eofs);
    for (int i = 0; i < NS_HTTPD_CONNS_MAX + 8; i++) {
        close(idle[i]);
    }
    usleep(300000);
    exchange(port, get, strlen(get), 0, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "serves again after the flood");
    ns_httpd_stop(h);
    T_DONE();
}
