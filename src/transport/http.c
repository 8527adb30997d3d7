/*
 * http: see http.h.
 *
 * The response is read through one fixed read buffer; the head is copied into a fixed head
 * buffer and parsed in place (headers point into it). Body framing is a small state machine:
 * Content-Length, chunked (size line -> data -> CRLF ... -> 0 -> trailers) or until close.
 * Request heads refuse CR/LF/NUL in any field, so a caller's value can never inject a header.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "codec.h"
#include "iox.h"
#include "secret.h"

#define NS_HTTP_RBUF 16384
#define NS_HTTP_CHUNK_LINE_MAX 1024

enum { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE };
enum { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILER, CH_DONE };

struct ns_http {
    int fd;
    ns_tls *tls;
    int timeout_ms;
    int64_t deadline;      /* the whole exchange (total_ms); -1 none */
    int64_t head_deadline; /* while reading the head; -1 none */
    int min_bps;           /* body speed floor (ns_http_dest.min_bps); 0 none */
    int in_body;           /* the head is read: fill() counts body bytes */
    int64_t win_start;     /* the speed floor's current window */
    uint64_t win_bytes;
    int head_request;
    char host[NS_HTTP_HOST_MAX];
    uint8_t rbuf[NS_HTTP_RBUF];
    size_t rpos, rlen;
    int eof;
    char head[NS_HTTP_HEAD_MAX + 1];
    int body_mode;
    uint64_t left; /* BODY_LENGTH: bytes left; BODY_CHUNKED: bytes left in this chunk */
    int chunk_state;
    int body_done;
};

/* ------------------------------------------------------------------------------ URL */

ns_err ns_url_parse(ns_url *u, const char *s)
{
    memset(u, 0, sizeof *u);
    const char *p;
    if (strncasecmp(s, "https://", 8) == 0) {
        u->tls = 1;
        u->port = 443;
        p = s + 8;
    } else if (strncasecmp(s, "http://", 7) == 0) {
        u->port = 80;
        p = s + 7;
    } else {
        BAIL(NS_E_USAGE, "endpoint URL \"%.200s\" must start with https:// or http://", s);
    }
    ENSURE(strpbrk(p, "?#@ \t\r\n") == NULL, NS_E_USAGE,
           "endpoint URL \"%.200s\": no user info, query, fragment or spaces allowed", s);
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    const char *portp = NULL;
    if (hl > 0 && p[0] == '[') {
        const char *rb = memchr(p, ']', hl);
        ENSURE(rb != NULL, NS_E_USAGE, "endpoint URL \"%.200s\": unterminated [IPv6]", s);
        ENSURE((size_t)(rb - p - 1) < sizeof u->host, NS_E_USAGE, "endpoint host too long");
        memcpy(u->host, p + 1, (size_t)(rb - p - 1));
        if (rb + 1 < p + hl) {
            ENSURE(rb[1] == ':', NS_E_USAGE, "endpoint URL \"%.200s\": bad port", s);
            portp = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', hl);
        size_t n = colon ? (size_t)(colon - p) : hl;
        ENSURE(n < sizeof u->host, NS_E_USAGE, "endpoint host too long");
        memcpy(u->host, p, n);
        if (colon) {
            portp = colon + 1;
        }
    }
    ENSURE(u->host[0] != '\0', NS_E_USAGE, "endpoint URL \"%.200s\" has no host", s);
    if (portp) {
        char pb[8];
        size_t pl = (size_t)(p + hl - portp);
        ENSURE(pl > 0 && pl < sizeof pb, NS_E_USAGE, "endpoint URL \"%.200s\": bad port", s);
        memcpy(pb, portp, pl);
        pb[pl] = '\0';
        uint64_t v;
        ENSURE(ns_parse_uint(pb, 65535, &v) == NS_OK && v > 0, NS_E_USAGE,
               "endpoint URL \"%.200s\": bad port", s);
        u->port = (uint16_t)v;
        u->port_given = 1;
    }
    if (slash) {
        size_t bl = strlen(slash);
        while (bl > 0 && slash[bl - 1] == '/') {
            bl--;
        }
        ENSURE(bl < sizeof u->base, NS_E_USAGE, "endpoint URL path too long");
        memcpy(u->base, slash, bl);
        u->base[bl] = '\0';
    }
    return NS_OK;
}

void ns_url_host_header(const ns_url *u, char *out, size_t cap)
{
    int v6 = strchr(u->host, ':') != NULL;
    if (u->port_given) {
        snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
    } else {
        snprintf(out, cap, "%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "");
    }
}

/* ------------------------------------------------------------------------------ I/O */

ns_err ns_http_open(ns_http **out, const ns_http_dest *d)
{
    *out = NULL;
    ns_addr a;
    if (d->via) {
        a = *d->via;
    } else {
        char s[NS_ADDR_STR_MAX];
        int v6 = strchr(d->url->host, ':') != NULL;
        snprintf(s, sizeof s, "tcp:%s%s%s:%u", v6 ? "[" : "", d->url->host, v6 ? "]" : "",
                 d->url->port);
        GUARD(ns_addr_parse(&a, s));
    }
    ENSURE(!d->url->tls || d->ca != NULL, NS_E_INTERNAL, "https without a trust store");
    /* Secret memory: the read buffer and head hold TLS plaintext (credentials from IMDS, a KMS
     * Plaintext); wiped when freed. */
    ns_http *h = ns_secret_alloc(sizeof *h);
    ENSURE(h != NULL, NS_E_NOMEM, "out of memory");
    h->fd = -1;
    h->timeout_ms = d->timeout_ms;
    h->deadline = d->total_ms > 0 ? ns_now_ms() + d->total_ms : -1;
    h->head_deadline = -1;
    h->min_bps = d->min_bps;
    snprintf(h->host, sizeof h->host, "%s", d->url->host);
    int fd;
    ns_err e = ns_addr_connect(&a, d->timeout_ms, &fd);
    if (e != NS_OK) {
        ns_secret_free(h, sizeof *h);
        char as[NS_ADDR_STR_MAX];
        ns_addr_format(&a, as, sizeof as);
        return ns_fail_ctx(e, "connecting to %s%s%s", d->url->host, d->via ? " through " : "",
                           d->via ? as : "");
    }
    if (d->url->tls) {
        e = ns_tls_connect(&h->tls, fd, d->url->host, d->ca, d->timeout_ms);
        if (e != NS_OK) {
            ns_secret_free(h, sizeof *h);
            return e;
        }
    } else {
        h->fd = fd;
    }
    *out = h;
    return NS_OK;
}

void ns_http_close(ns_http *h)
{
    if (h == NULL) {
        return;
    }
    if (h->tls) {
        ns_tls_close(h->tls);
    } else if (h->fd >= 0) {
        close(h->fd);
    }
    ns_secret_free(h, sizeof *h);
}

/* The wait for the next read or write: timeout_ms, cut to what is left of the deadlines. */
static ns_err wait_ms(const ns_http *h, int *ms)
{
    *ms = h->timeout_ms;
    const int64_t dl[2] = {h->deadline, h->head_deadline};
    for (int i = 0; i < 2; i++) {
        if (dl[i] < 0) {
            continue;
        }
        int left = ns_ms_left(dl[i]);
        ENSURE(left > 0, NS_E_TIMEOUT,
               "http: %s from %s did not complete in time (%s); the server is too slow or "
               "stalling",
               i == 0 ? "the exchange" : "the response head", h->host,
               i == 0 ? "whole-request deadline" : "head deadline = the read timeout");
        if (*ms < 0 || left < *ms) {
            *ms = left;
        }
    }
    return NS_OK;
}

static ns_err raw_write(ns_http *h, const void *p, size_t n)
{
    if (h->tls) {
        int ms;
        GUARD(wait_ms(h, &ms));
        return ns_tls_write(h->tls, p, n, ms);
    }
    const uint8_t *q = p;
    while (n > 0) {
        int ms;
        GUARD(wait_ms(h, &ms));
        size_t put = 0;
        ns_err e = ns_send_some(h->fd, q, n, &put, ms);
        if (e != NS_OK) {
            if (e == NS_E_TIMEOUT) {
                GUARD(wait_ms(h, &ms)); /* a deadline, not the write timeout: say which */
            }
            return ns_fail_ctx(e, "sending to %s", h->host);
        }
        q += put;
        n -= put;
    }
    return NS_OK;
}

/* The body's speed floor: a server that drips bytes just often enough to never trip the read
 * timeout is cut off once a whole timeout_ms window averaged under min_bps. */
static ns_err speed_floor(ns_http *h, size_t got)
{
    if (!h->in_body || h->min_bps <= 0 || h->timeout_ms <= 0) {
        return NS_OK;
    }
    int64_t now = ns_now_ms();
    h->win_bytes += got;
    int64_t el = now - h->win_start;
    if (el < h->timeout_ms) {
        return NS_OK;
    }
    ENSURE(h->win_bytes * 1000 >= (uint64_t)h->min_bps * (uint64_t)el, NS_E_TIMEOUT,
           "http: the body from %s came at %llu bytes/s over the last %lld ms, under the "
           "minimum of %d bytes/s; the server is too slow or stalling (see --min-speed)",
           h->host, (unsigned long long)(h->win_bytes * 1000 / (uint64_t)el), (long long)el,
           h->min_bps);
    h->win_start = now;
    h->win_bytes = 0;
    return NS_OK;
}

/* Refills the read buffer when empty; sets eof at end of stream. */
static ns_err fill(ns_http *h)
{
    if (h->rpos < h->rlen || h->eof) {
        return NS_OK;
    }
    size_t got = 0;
    ns_err e;
    int ms;
    GUARD(wait_ms(h, &ms));
    if (h->tls) {
        e = ns_tls_read(h->tls, h->rbuf, sizeof h->rbuf, &got, ms);
    } else {
        e = ns_read_some(h->fd, h->rbuf, sizeof h->rbuf, &got, ms);
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "reading from %s", h->host);
        }
    }
    if (e == NS_E_TIMEOUT) {
        GUARD(wait_ms(h, &ms)); /* a deadline, not the read timeout: say which */
    }
    GUARD(e);
    h->rpos = 0;
    h->rlen = got;
    if (got == 0) {
        h->eof = 1;
    }
    return speed_floor(h, got);
}

static int bad_field(const char *s)
{
    return s == NULL || strpbrk(s, "\r\n") != NULL;
}

ns_err ns_http_send(ns_http *h, const char *method, const char *target, const ns_http_hdr *hdrs,
                    size_t n_hdrs, const void *body, size_t body_len)
{
    ENSURE(!bad_field(method) && !bad_field(target) && strchr(target, ' ') == NULL &&
               target[0] == '/',
           NS_E_USAGE, "http: bad method or request target");
    h->head_request = strcmp(method, "HEAD") == 0;
    ns_buf b;
    ns_buf_init_secret(&b, NS_HTTP_REQ_HEAD_MAX); /* carries the session token */
    ns_err e;
    GUARD_GOTO(ns_buf_printf(&b, "%s %s HTTP/1.1\r\n", method, target), e, out);
    int have_host = 0;
    for (size_t i = 0; i < n_hdrs; i++) {
        if (bad_field(hdrs[i].name) || bad_field(hdrs[i].value) || hdrs[i].name[0] == '\0' ||
            strchr(hdrs[i].name, ':') != NULL) {
            e = ns_fail(NS_E_USAGE, "http: header \"%.40s\" has a bad name or value",
                        hdrs[i].name ? hdrs[i].name : "");
            goto out;
        }
        have_host |= strcasecmp(hdrs[i].name, "host") == 0;
        GUARD_GOTO(ns_buf_printf(&b, "%s: %s\r\n", hdrs[i].name, hdrs[i].value), e, out);
    }
    if (!have_host) {
        e = ns_fail(NS_E_INTERNAL, "http: the caller must pass the Host header");
        goto out;
    }
    if (body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        GUARD_GOTO(ns_buf_printf(&b, "Content-Length: %zu\r\n", body_len), e, out);
    }
    GUARD_GOTO(ns_buf_append_str(&b, "Connection: close\r\n\r\n"), e, out);
    GUARD_GOTO(raw_write(h, b.data, b.len), e, out);
    if (body_len > 0) {
        GUARD_GOTO(raw_write(h, body, body_len), e, out);
    }
out:
    ns_buf_free(&b);
    return e;
}

/* ------------------------------------------------------------------------------ parsing */

static int is_tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* One line of head [*pos, len): NUL-terminates it in place (CRLF or bare LF). */
static char *next_line(char *head, size_t len, size_t *pos)
{
    if (*pos >= len) {
        return NULL;
    }
    char *start = head + *pos;
    char *nl = memchr(start, '\n', len - *pos);
    if (nl == NULL) {
        return NULL;
    }
    *pos = (size_t)(nl - head) + 1;
    if (nl > start && nl[-1] == '\r') {
        nl[-1] = '\0';
    }
    *nl = '\0';
    return start;
}

ns_err ns_http_parse_head(ns_http_resp *r, char *head, size_t len)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    ENSURE(memchr(head, '\0', len) == NULL, NS_E_PROTO, "http: NUL byte in the response head");
    size_t pos = 0;
    char *sl = next_line(head, len, &pos);
    ENSURE(sl != NULL, NS_E_PROTO, "http: no status line");
    ENSURE(strncmp(sl, "HTTP/1.", 7) == 0 && (sl[7] == '0' || sl[7] == '1') && sl[8] == ' ' &&
               sl[9] >= '1' && sl[9] <= '5' && sl[10] >= '0' && sl[10] <= '9' && sl[11] >= '0' &&
               sl[11] <= '9' && (sl[12] == ' ' || sl[12] == '\0'),
           NS_E_PROTO, "http: bad status line \"%.60s\"", sl);
    r->status = (sl[9] - '0') * 100 + (sl[10] - '0') * 10 + (sl[11] - '0');
    snprintf(r->reason, sizeof r->reason, "%s", sl[12] ? sl + 13 : "");
    int te_chunked = 0;
    for (;;) {
        char *l = next_line(head, len, &pos);
        ENSURE(l != NULL, NS_E_PROTO, "http: response head not terminated by an empty line");
        if (l[0] == '\0') {
            break;
        }
        ENSURE(l[0] != ' ' && l[0] != '\t', NS_E_PROTO, "http: folded header line refused");
        char *colon = strchr(l, ':');
        ENSURE(colon != NULL && colon > l, NS_E_PROTO, "http: bad header line \"%.60s\"", l);
        for (char *c = l; c < colon; c++) {
            ENSURE(is_tchar((uint8_t)*c), NS_E_PROTO, "http: bad header name \"%.60s\"", l);
        }
        ENSURE(r->n_headers < NS_HTTP_MAX_HEADERS, NS_E_TOO_BIG,
               "http: more than %d response headers", NS_HTTP_MAX_HEADERS);
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        char *end = v + strlen(v);
        while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
            *--end = '\0';
        }
        r->headers[r->n_headers].name = l;
        r->headers[r->n_headers].value = v;
        r->n_headers++;
        if (strcasecmp(l, "content-length") == 0) {
            uint64_t cl;
            ENSURE(v[0] >= '0' && v[0] <= '9' && ns_parse_uint(v, (1ull << 62), &cl) == NS_OK,
                   NS_E_PROTO, "http: bad Content-Length \"%.30s\"", v);
            ENSURE(r->content_length < 0 || (uint64_t)r->content_length == cl, NS_E_PROTO,
                   "http: conflicting Content-Length headers");
            r->content_length = (int64_t)cl;
        } else if (strcasecmp(l, "transfer-encoding") == 0) {
            ENSURE(strcasecmp(v, "chunked") == 0, NS_E_UNSUPPORTED,
                   "http: unsupported Transfer-Encoding \"%.30s\"", v);
            te_chunked = 1;
        }
    }
    if (te_chunked) {
        r->chunked = 1;
        r->content_length = -1; /* RFC 9112 6.3: chunked overrides Content-Length */
    }
    return NS_OK;
}

const char *ns_http_header(const ns_http_resp *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            return r->headers[i].value;
        }
    }
    return NULL;
}

static ns_err read_head(ns_http *h, ns_http_resp *r);

ns_err ns_http_read_head(ns_http *h, ns_http_resp *r)
{
    h->head_deadline = h->timeout_ms >= 0 ? ns_now_ms() + h->timeout_ms : -1;
    ns_err rc = read_head(h, r);
    h->head_deadline = -1;
    h->in_body = 1;
    h->win_start = ns_now_ms();
    h->win_bytes = h->rlen - h->rpos; /* body bytes that came with the head */
    return rc;
}

static ns_err read_head(ns_http *h, ns_http_resp *r)
{
    int interim = 0;
    for (;;) {
        size_t n = 0;
        int done = 0;
        while (!done) {
            GUARD(fill(h));
            if (h->eof) {
                BAIL(n == 0 ? NS_E_CLOSED : NS_E_TRUNCATED,
                     "%s closed the connection %s the response head", h->host,
                     n == 0 ? "before" : "in the middle of");
            }
            while (h->rpos < h->rlen) {
                ENSURE(n < NS_HTTP_HEAD_MAX, NS_E_TOO_BIG,
                       "http: response head from %s larger than %d bytes", h->host,
                       NS_HTTP_HEAD_MAX);
                char c = (char)h->rbuf[h->rpos++];
                h->head[n++] = c;
                if (c == '\n' && ((n >= 2 && h->head[n - 2] == '\n') ||
                                  (n >= 4 && memcmp(h->head + n - 4, "\r\n\r\n", 4) == 0))) {
                    done = 1;
                    break;
                }
            }
        }
        h->head[n] = '\0';
        ns_err e = ns_http_parse_head(r, h->head, n);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "response from %s", h->host);
        }
        if (r->status >= 100 && r->status < 200) {
            /* 100 Continue and friends: the real answer follows, after a few at most */
            ENSURE(++interim <= NS_HTTP_MAX_1XX, NS_E_PROTO,
                   "http: %s sent more than %d interim (1xx) responses", h->host,
                   NS_HTTP_MAX_1XX);
            continue;
        }
        break;
    }
    h->body_done = 0;
    if (h->head_request || r->status == 204 || r->status == 304) {
        h->body_mode = BODY_NONE;
        h->body_done = 1;
    } else if (r->chunked) {
        h->body_mode = BODY_CHUNKED;
        h->chunk_state = CH_SIZE;
    } else if (r->content_length >= 0) {
        h->body_mode = BODY_LENGTH;
        h->left = (uint64_t)r->content_length;
        h->body_done = h->left == 0;
    } else {
        h->body_mode = BODY_CLOSE;
    }
    return NS_OK;
}

/* Reads one CRLF-terminated line (without it) of at most cap-1 bytes. */
static ns_err read_line(ns_http *h, char *line, size_t cap, size_t *len)
{
    size_t n = 0;
    for (;;) {
        GUARD(fill(h));
        ENSURE(!h->eof, NS_E_TRUNCATED, "%s closed the connection inside a chunked body", h->host);
        char c = (char)h->rbuf[h->rpos++];
        if (c == '\n') {
            if (n > 0 && line[n - 1] == '\r') {
                n--;
            }
            line[n] = '\0';
            *len = n;
            return NS_OK;
        }
        ENSURE(n + 1 < cap, NS_E_PROTO, "http: chunk line from %s too long", h->host);
        line[n++] = c;
    }
}

static ns_err chunk_advance(ns_http *h)
{
    char line[NS_HTTP_CHUNK_LINE_MAX];
    size_t n;
    if (h->chunk_state == CH_DATA_CRLF) {
        GUARD(read_line(h, line, sizeof line, &n));
        ENSURE(n == 0, NS_E_PROTO, "http: chunk from %s not followed by CRLF", h->host);
        h->chunk_state = CH_SIZE;
    }
    if (h->chunk_state == CH_SIZE) {
        GUARD(read_line(h, line, sizeof line, &n));
        uint64_t v = 0;
        size_t i = 0;
        for (; i < n; i++) {
            int d = ns_hex_digit((unsigned char)line[i]);
            if (d < 0) {
                break;
            }
            ENSURE(v < (1ull << 58), NS_E_PROTO, "http: chunk size from %s too large", h->host);
            v = v * 16 + (uint64_t)d;
        }
        ENSURE(i > 0 && (i == n || line[i] == ';' || line[i] == ' ' || line[i] == '\t'), NS_E_PROTO,
               "http: bad chunk size line from %s", h->host);
        if (v == 0) {
            /* trailers: skipped, bounded like a head */
            size_t total = 0;
            for (;;) {
                GUARD(read_line(h, line, sizeof line, &n));
                total += n + 2;
                ENSURE(total <= NS_HTTP_HEAD_MAX, NS_E_TOO_BIG, "http: trailers too large");
                if (n == 0) {
                    break;
                }
            }
            h->chunk_state = CH_DONE;
            h->body_done = 1;
            return NS_OK;
        }
        h->left = v;
        h->chunk_state = CH_DATA;
    }
    return NS_OK;
}

ns_err ns_http_read_body(ns_http *h, void *p, size_t cap, size_t *got)
{
    *got = 0;
    if (h->body_done || cap == 0) {
        return NS_OK;
    }
    if (h->body_mode == BODY_CHUNKED) {
        while (h->chunk_state != CH_DATA) {
            GUARD(chunk_advance(h));
            if (h->body_done) {
                return NS_OK;
            }
        }
    }
    GUARD(fill(h));
    if (h->eof) {
        if (h->body_mode == BODY_CLOSE) {
            h->body_done = 1;
            return NS_OK;
        }
        BAIL(NS_E_TRUNCATED, "%s closed the connection with %llu bytes of the body missing",
             h->host, (unsigned long long)h->left);
    }
    size_t n = h->rlen - h->rpos;
    if (n > cap) {
        n = cap;
    }
    if (h->body_mode != BODY_CLOSE && n > h->left) {
        n = (size_t)h->left;
    }
    memcpy(p, h->rbuf + h->rpos, n);
    h->rpos += n;
    *got = n;
    if (h->body_mode != BODY_CLOSE) {
        h->left -= n;
        if (h->left == 0) {
            if (h->body_mode == BODY_LENGTH) {
                h->body_done = 1;
            } else {
                h->chunk_state = CH_DATA_CRLF;
            }
        }
    }
    return NS_OK;
}

ns_err ns_http_read_body_all(ns_http *h, ns_buf *out)
{
    uint8_t tmp[4096];
    for (;;) {
        size_t got;
        GUARD(ns_http_read_body(h, tmp, sizeof tmp, &got));
        if (got == 0) {
            return NS_OK;
        }
        ns_err e = ns_buf_append(out, tmp, got);
        if (e != NS_OK) {
            return ns_fail(e, "response body from %s larger than %zu bytes", h->host, out->max);
        }
    }
}
