/*
 * httpd: see httpd.h. The parser reads the head as the grammar of RFC 9112 reads: request-line
 * = method SP request-target SP HTTP-version CRLF, then field lines "name: value" CRLF, then
 * CRLF. Field names are tokens; values may hold visible bytes, SP and HTAB only. Obsolete line
 * folding and bare LF are refused.
 */
#include "httpd.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iox.h"
#include "stop.h"

#define POLL_MS 100
/* After the answer, unread input would make close() send a reset that can destroy the answer in
 * flight (RFC 9112 9.6): read and discard up to DRAIN_MAX bytes for up to DRAIN_MS first. */
#define DRAIN_MAX (64u * 1024)
#define DRAIN_MS 1000

static int is_tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Finds CRLF CRLF within the first n bytes; returns the head length or 0. */
static size_t head_end(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            return i + 4;
        }
    }
    return 0;
}

static ns_err parse_field(const uint8_t *p, size_t n, int *has_body)
{
    size_t i = 0;
    while (i < n && is_tchar(p[i])) {
        i++;
    }
    ENSURE(i > 0 && i < n && p[i] == ':', NS_E_PARSE, "malformed header field name");
    size_t name_len = i++;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    size_t v0 = i;
    for (; i < n; i++) {
        ENSURE(p[i] == '\t' || (p[i] >= 0x20 && p[i] != 0x7f), NS_E_PARSE,
               "control byte in a header value");
    }
    size_t v1 = n;
    while (v1 > v0 && (p[v1 - 1] == ' ' || p[v1 - 1] == '\t')) {
        v1--;
    }
    if (name_len == 17 && strncasecmp((const char *)p, "transfer-encoding", 17) == 0) {
        *has_body = 1;
    } else if (name_len == 14 && strncasecmp((const char *)p, "content-length", 14) == 0) {
        if (!(v1 - v0 == 1 && p[v0] == '0')) {
            *has_body = 1;
        }
    }
    return NS_OK;
}

ns_err ns_httpd_parse(ns_httpd_req *r, const uint8_t *p, size_t n, size_t *head_len)
{
    memset(r, 0, sizeof *r);
    size_t limit = n < NS_HTTPD_HEAD_MAX ? n : NS_HTTPD_HEAD_MAX;
    /* A request line must start with a token: fail early on garbage instead of waiting. */
    for (size_t i = 0; i < limit && p[i] != ' '; i++) {
        ENSURE(is_tchar(p[i]), NS_E_PARSE, "malformed request method");
    }
    size_t end = head_end(p, limit);
    if (end == 0) {
        ENSURE(n < NS_HTTPD_HEAD_MAX, NS_E_TOO_BIG, "request head over %u bytes",
               NS_HTTPD_HEAD_MAX);
        return NS_E_TRUNCATED;
    }
    /* Request line. */
    size_t i = 0, m = 0;
    while (p[i] != ' ') {
        ENSURE(m + 1 < sizeof r->method, NS_E_PARSE, "unknown method");
        r->method[m++] = (char)p[i++];
    }
    ENSURE(m > 0, NS_E_PARSE, "empty method");
    i++;
    size_t t0 = i;
    while (p[i] > 0x20 && p[i] != 0x7f) {
        i++;
    }
    size_t tlen = i - t0;
    ENSURE(tlen > 0 && p[i] == ' ', NS_E_PARSE, "malformed request target");
    ENSURE(p[t0] == '/', NS_E_PARSE, "request target must be an absolute path");
    size_t plen = 0;
    while (plen < tlen && p[t0 + plen] != '?') {
        plen++;
    }
    ENSURE(plen < sizeof r->path, NS_E_TOO_BIG, "request target over %u bytes", NS_HTTPD_PATH_MAX);
    memcpy(r->path, p + t0, plen);
    i++;
    ENSURE(end - i >= 10 && memcmp(p + i, "HTTP/", 5) == 0, NS_E_PARSE, "malformed HTTP version");
    ENSURE(p[i + 5] == '1' && p[i + 6] == '.' && p[i + 7] >= '0' && p[i + 7] <= '9',
           NS_E_UNSUPPORTED, "only HTTP/1.x is served");
    r->minor = p[i + 7] - '0';
    i += 8;
    ENSURE(p[i] == '\r' && p[i + 1] == '\n', NS_E_PARSE, "malformed request line");
    i += 2;
    /* Header fields, up to the empty line. */
    int has_body = 0;
    while (i < end - 2) {
        size_t e = i;
        while (p[e] != '\r' && p[e] != '\n') {
            e++;
        }
        ENSURE(p[e] == '\r' && p[e + 1] == '\n', NS_E_PARSE, "bare LF or CR in the head");
        GUARD(parse_field(p + i, e - i, &has_body));
        i = e + 2;
    }
    ENSURE(!has_body, NS_E_PARSE, "a request body is not accepted here");
    *head_len = end;
    return NS_OK;
}

/* --- the server --- */

typedef struct {
    int fd;
    int64_t deadline;
    size_t in_len;
    ns_buf out;
    size_t out_pos;
    int answered;
    int draining;   /* answer sent, write side shut: reading what the client still sends */
    size_t drained; /* bytes discarded while draining (bounded by DRAIN_MAX) */
    uint8_t in[NS_HTTPD_HEAD_MAX];
} conn;

struct ns_httpd {
    int lfd;
    uint32_t port;
    ns_addr addr;
    ns_httpd_fn fn;
    void *arg;
    ns_stop stop;
    pthread_t th;
    conn *conns[NS_HTTPD_CONNS_MAX];
};

static const char *reason(int st)
{
    switch (st) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return st >= 500 ? "Server Error" : "Error";
    }
}

int ns_httpd_get_only(const ns_httpd_req *r)
{
    return strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
}

static void respond(ns_httpd *h, conn *c, int st, const ns_httpd_req *r)
{
    ns_buf body;
    ns_buf_init(&body, NS_HTTPD_BODY_MAX);
    const char *ctype = "text/plain; charset=utf-8";
    if (st == 200 && r != NULL) {
        if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0 &&
            strcmp(r->method, "POST") != 0) {
            st = 405;
        } else {
            st = h->fn(h->arg, r, &body, &ctype);
        }
    }
    if (st != 200 && body.len == 0 && ns_buf_printf(&body, "%d %s\n", st, reason(st)) != NS_OK) {
        body.len = 0;
    }
    ns_buf_init(&c->out, NS_HTTPD_BODY_MAX + 512);
    int head_only = r != NULL && strcmp(r->method, "HEAD") == 0;
    if (ns_buf_printf(&c->out,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                      "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                      st, reason(st), ctype, body.len,
                      st == 405 ? "Allow: GET, HEAD\r\n" : "") != NS_OK ||
        (!head_only && ns_buf_append(&c->out, body.data, body.len) != NS_OK)) {
        c->out.len = 0;
    }
    ns_buf_free(&body);
    c->answered = 1;
}

static void conn_close(ns_httpd *h, int i)
{
    conn *c = h->conns[i];
    close(c->fd);
    ns_buf_free(&c->out);
    free(c);
    h->conns[i] = NULL;
}

static void conn_read(ns_httpd *h, conn *c)
{
    ssize_t k = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (k <= 0) {
        c->deadline = 0; /* peer gone before a whole request: close */
        return;
    }
    c->in_len += (size_t)k;
    ns_httpd_req r;
    size_t hl;
    ns_err e = ns_httpd_parse(&r, c->in, c->in_len, &hl);
    if (e == NS_E_TRUNCATED) {
        return;
    }
    ns_err_clear();
    respond(h, c,
            e == NS_OK              ? 200
            : e == NS_E_TOO_BIG     ? (c->in_len >= NS_HTTPD_HEAD_MAX ? 431 : 414)
            : e == NS_E_UNSUPPORTED ? 505
                                    : 400,
            e == NS_OK ? &r : NULL);
}

static void conn_write(conn *c)
{
    while (c->out_pos < c->out.len) {
        ssize_t k = send(c->fd, c->out.data + c->out_pos, c->out.len - c->out_pos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            if (k < 0 && errno == EAGAIN) {
                return;
            }
            c->deadline = 0;
            return;
        }
        c->out_pos += (size_t)k;
    }
}

static void accept_one(ns_httpd *h, int64_t now)
{
    int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        return;
    }
    for (int i = 0; i < NS_HTTPD_CONNS_MAX; i++) {
        if (h->conns[i] == NULL) {
            conn *c = calloc(1, sizeof *c);
            if (c == NULL) {
                break;
            }
            c->fd = fd;
            c->deadline = now + NS_HTTPD_TIMEOUT_MS;
            h->conns[i] = c;
            return;
        }
    }
    close(fd); /* full: the client retries on its next scrape */
}

static void *serve(void *arg)
{
    ns_httpd *h = arg;
    struct pollfd pf[NS_HTTPD_CONNS_MAX + 1];
    int idx[NS_HTTPD_CONNS_MAX + 1];
    while (!h->stop) {
        int n = 0;
        pf[n] = (struct pollfd){.fd = h->lfd, .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < NS_HTTPD_CONNS_MAX; i++) {
            conn *c = h->conns[i];
            if (c != NULL) {
                pf[n] = (struct pollfd){.fd = c->fd,
                                        .events = c->answered && !c->draining ? POLLOUT : POLLIN};
                idx[n++] = i;
            }
        }
        int k = poll(pf, (nfds_t)n, POLL_MS);
        int64_t now = ns_now_ms();
        if (k < 0 && errno != EINTR) {
            break;
        }
        for (int j = 1; j < n && k > 0; j++) {
            conn *c = h->conns[idx[j]];
            if (pf[j].revents == 0) {
                continue;
            }
            if (c->draining) {
                uint8_t sink[4096];
                ssize_t r = read(c->fd, sink, sizeof sink);
                if (r > 0) {
                    c->drained += (size_t)r;
                }
                if ((r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR))) ||
                    c->drained > DRAIN_MAX) {
                    c->deadline = 0;
                }
            } else if (c->answered) {
                conn_write(c);
            } else {
                conn_read(h, c);
                if (c->answered) {
                    conn_write(c);
                }
            }
        }
        for (int j = 1; j < n; j++) {
            conn *c = h->conns[idx[j]];
            if (c->answered && !c->draining && c->out_pos >= c->out.len && c->deadline > now) {
                (void)shutdown(c->fd, SHUT_WR);
                c->draining = 1;
                c->deadline = now + DRAIN_MS;
            }
            if (c->deadline <= now) {
                conn_close(h, idx[j]);
            }
        }
        if (k > 0 && (pf[0].revents & POLLIN)) {
            accept_one(h, now);
        }
    }
    return NULL;
}

ns_err ns_httpd_start(ns_httpd **out, const ns_addr *a, ns_httpd_fn fn, void *arg)
{
    ns_httpd *h = calloc(1, sizeof *h);
    ENSURE(h != NULL, NS_E_NOMEM, "out of memory");
    h->fn = fn;
    h->arg = arg;
    h->addr = *a;
    ns_err e = ns_addr_listen(a, 64, NS_LISTEN_NONBLOCK, &h->lfd);
    if (e != NS_OK) {
        free(h);
        return e;
    }
    if (a->kind != NS_ADDR_UNIX && ns_addr_local_port(h->lfd, &h->port) != NS_OK) {
        h->port = 0;
    }
    if (pthread_create(&h->th, NULL, serve, h) != 0) {
        close(h->lfd);
        free(h);
        BAIL(NS_E_NOMEM, "cannot start the HTTP server thread");
    }
    *out = h;
    return NS_OK;
}

uint32_t ns_httpd_port(const ns_httpd *h)
{
    return h->port;
}

void ns_httpd_stop(ns_httpd *h)
{
    if (h == NULL) {
        return;
    }
    h->stop = 1;
    pthread_join(h->th, NULL);
    for (int i = 0; i < NS_HTTPD_CONNS_MAX; i++) {
        if (h->conns[i] != NULL) {
            conn_close(h, i);
        }
    }
    close(h->lfd);
    if (h->addr.kind == NS_ADDR_UNIX && h->addr.path[0] != '@') {
        (void)unlink(h->addr.path);
    }
    free(h);
}
