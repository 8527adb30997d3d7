/* test_http: URL parsing, response head parsing, and body framing over a real unix socket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "iox.h"
#include "secret.h"
#include "t.h"

static char sock_path[64];
static int g_open_secret;

/* Serves one canned response: the kernel queues the connect, so one thread suffices. */
static ns_err exchange(const char *resp, ns_http_resp *r, ns_buf *body, char *req, size_t reqcap)
{
    ns_addr a;
    char as[128];
    snprintf(as, sizeof as, "unix:%s", sock_path);
    GUARD(ns_addr_parse(&a, as));
    unlink(sock_path);
    int lfd;
    GUARD(ns_addr_listen(&a, 4, 0, &lfd));
    ns_url u;
    GUARD(ns_url_parse(&u, "http://example.test:8080/base"));
    ns_http_dest d = {&u, &a, NULL, 2000, 0, 0};
    ns_http *h;
    size_t before = ns_secret_allocs();
    ns_err e = ns_http_open(&h, &d);
    if (e != NS_OK) {
        close(lfd);
        return e;
    }
    /* issue 15: the read buffer holds response plaintext: it must be secret memory */
    g_open_secret = ns_secret_allocs() > before;
    int sfd = accept(lfd, NULL, NULL);
    close(lfd);
    ns_http_hdr hd[] = {{"Host", "example.test:8080"}};
    e = ns_http_send(h, "GET", "/base/x", hd, 1, NULL, 0);
    if (e == NS_OK) {
        ssize_t n = read(sfd, req, reqcap - 1);
        req[n > 0 ? n : 0] = '\0';
        e = ns_write_all(sfd, resp, strlen(resp));
    }
    shutdown(sfd, SHUT_WR);
    if (e == NS_OK) {
        e = ns_http_read_head(h, r);
    }
    if (e == NS_OK) {
        e = ns_http_read_body_all(h, body);
    }
    close(sfd);
    ns_http_close(h);
    return e;
}

static void body_case(const char *what, const char *resp, ns_err want, const char *want_body)
{
    ns_http_resp r;
    ns_buf b;
    ns_buf_init(&b, 1024);
    char req[1024];
    ns_err e = exchange(resp, &r, &b, req, sizeof req);
    CHECK(e == want, "%s: %s", what, ns_err_name(e));
    if (want == NS_OK && want_body) {
        CHECK(b.len == strlen(want_body) && (b.len == 0 || memcmp(b.data, want_body, b.len) == 0),
              "%s: body", what);
    }
    ns_buf_free(&b);
}

/* issue 15: a plain (no TLS) peer that accepts and never reads must not hold the sender: the
 * request write has the same timeout as every read. The body is far over the socket buffers. */
static void write_to_a_peer_that_never_reads(void)
{
    ns_addr a;
    char as[128];
    snprintf(as, sizeof as, "unix:%s", sock_path);
    unlink(sock_path);
    int lfd = -1;
    ns_url u;
    ns_http *h = NULL;
    if (ns_addr_parse(&a, as) != NS_OK || ns_addr_listen(&a, 4, 0, &lfd) != NS_OK ||
        ns_url_parse(&u, "http://example.test/") != NS_OK) {
        CHECK(0, "write timeout: setup");
        return;
    }
    ns_http_dest d = {&u, &a, NULL, 300, 0, 0};
    ns_err e = ns_http_open(&h, &d);
    int sfd = e == NS_OK ? accept(lfd, NULL, NULL) : -1;
    size_t n = 32u << 20;
    char *body = calloc(1, n);
    ns_http_hdr hd[] = {{"Host", "example.test"}};
    int64_t t0 = ns_now_ms();
    if (e == NS_OK && body) {
        e = ns_http_send(h, "POST", "/", hd, 1, body, n);
    }
    CHECK(e == NS_E_TIMEOUT && strstr(ns_err_msg(), "not reading") != NULL,
          "a peer that never reads: the write times out (%s: %s, after %lld ms)", ns_err_name(e),
          ns_err_msg(), (long long)(ns_now_ms() - t0));
    free(body);
    ns_http_close(h);
    if (sfd >= 0) {
        close(sfd);
    }
    close(lfd);
    unlink(sock_path);
}

int main(void)
{
    snprintf(sock_path, sizeof sock_path, "/tmp/nsign-http-%d.sock", (int)getpid());
    ns_url u;
    CHECK(ns_url_parse(&u, "https://kms.us-east-1.amazonaws.com") == NS_OK && u.tls &&
              u.port == 443 && !u.port_given &&
              strcmp(u.host, "kms.us-east-1.amazonaws.com") == 0 && u.base[0] == '\0',
          "https URL");
    char hh[300];
    CHECK(ns_url_parse(&u, "http://[::1]:9000/prefix/") == NS_OK && !u.tls && u.port == 9000 &&
              strcmp(u.host, "::1") == 0 && strcmp(u.base, "/prefix") == 0,
          "IPv6 URL with port and base");
    ns_url_host_header(&u, hh, sizeof hh);
    CHECK(strcmp(hh, "[::1]:9000") == 0, "Host header of an IPv6 URL");
    CHECK_ERR(ns_url_parse(&u, "ftp://x"), NS_E_USAGE, "other scheme refused");
    CHECK_ERR(ns_url_parse(&u, "https://u:p@x"), NS_E_USAGE, "user info refused");
    CHECK_ERR(ns_url_parse(&u, "https://x:99999"), NS_E_USAGE, "bad port refused");
    CHECK_ERR(ns_url_parse(&u, "https://"), NS_E_USAGE, "empty host refused");
    CHECK_ERR(ns_url_parse(&u, "https://x/?a"), NS_E_USAGE, "query refused");

    ns_http_resp r;
    char h1[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  v  \r\n\r\n";
    CHECK(ns_http_parse_head(&r, h1, strlen(h1)) == NS_OK && r.status == 200 &&
              r.content_length == 5 && strcmp(ns_http_header(&r, "x-a"), "v") == 0,
          "head parsed, values trimmed, names case-insensitive");
    static const char *bad[] = {"HTTP/2 200 OK\r\n\r\n",
                                "HTTP/1.1 20 OK\r\n\r\n",
                                "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
                                "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
                                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                                "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                                "HTTP/1.1 200 OK\r\nA: b\r\n",
                                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char tmp[200];
        snprintf(tmp, sizeof tmp, "%s", bad[i]);
        ns_err e = ns_http_parse_head(&r, tmp, strlen(tmp));
        CHECK(e == NS_E_PROTO || e == NS_E_UNSUPPORTED, "bad head %zu refused (%s)", i,
              ns_err_name(e));
    }

    body_case("Content-Length body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
              NS_OK, "hello");
    CHECK(g_open_secret, "the connection's buffers (response plaintext) are secret memory");
    {
        /* issue 15: at most NS_HTTP_MAX_1XX interim answers before the final one */
        static char many[64 * 12];
        many[0] = 0;
        for (int k = 0; k < NS_HTTP_MAX_1XX; k++) {
            strcat(many, "HTTP/1.1 100 Continue\r\n\r\n");
        }
        strcat(many, "HTTP/1.1 204 No\r\n\r\n");
        body_case("8 interim responses then the answer", many, NS_OK, "");
        memmove(many + 25, many, strlen(many) + 1);
        memcpy(many, "HTTP/1.1 102 Processing\r\n", 25);
        body_case("9 interim responses refused", many, NS_E_PROTO, NULL);
    }
    body_case("chunked body with extension and trailer",
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n"
              "A\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
              NS_OK, "abc0123456789");
    body_case("100 Continue skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No\r\n\r\n", NS_OK,
              "");
    body_case("body until close", "HTTP/1.0 200 OK\r\n\r\nall of it", NS_OK, "all of it");
    body_case("short Content-Length body", "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nabc",
              NS_E_TRUNCATED, NULL);
    body_case("bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
              NS_E_PROTO, NULL);
    body_case("chunk without CRLF",
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
              NS_E_PROTO, NULL);
    body_case("truncated chunked body",
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", NS_E_TRUNCATED,
              NULL);
    body_case("closed before the head", "", NS_E_CLOSED, NULL);
    {
        static char lb[2100];
        strcpy(lb, "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n");
        size_t l = strlen(lb);
        memset(lb + l, 'b', 2000);
        lb[l + 2000] = '\0';
        body_case("body larger than the caller's bound", lb, NS_E_TOO_BIG, NULL);
    }
    {
        static char big[NS_HTTP_HEAD_MAX + 100];
        strcpy(big, "HTTP/1.1 200 OK\r\nX: ");
        memset(big + strlen(big), 'a', NS_HTTP_HEAD_MAX);
        big[sizeof big - 1] = '\0';
        body_case("head over the bound", big, NS_E_TOO_BIG, NULL);
    }
    ns_http_resp rr;
    ns_buf b;
    ns_buf_init(&b, 64);
    char req[1024];
    CHECK(exchange("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &rr, &b, req, sizeof req) ==
                  NS_OK &&
              strncmp(req, "GET /base/x HTTP/1.1\r\nHost: example.test:8080\r\n", 46) == 0 &&
              strstr(req, "Connection: close\r\n\r\n") != NULL,
          "request line, Host, Connection: close");
    ns_buf_free(&b);
    unlink(sock_path);
    write_to_a_peer_that_never_reads();
    T_DONE();
}
