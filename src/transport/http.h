/*
 * http: a small HTTP/1.1 client over plain TCP or TLS, over any nsign address.
 *
 * One request per connection ("Connection: close"), which is all AWS calls here need and keeps
 * the state machine small. Responses are parsed with named bounds: status line and headers
 * (NS_HTTP_HEAD_MAX bytes, NS_HTTP_MAX_HEADERS lines), bodies by Content-Length, chunked
 * transfer encoding (chunk-size lines bounded, trailers skipped within the head bound) or until
 * close; bodies stream through ns_http_read_body with constant memory. Every socket wait has a
 * timeout. The destination of the TCP connection (via) can differ from the URL's host: a proxy or
 * vsock address; TLS SNI, certificate verification and the Host header always use the URL host.
 */
#ifndef NS_HTTP_H
#define NS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "buf.h"
#include "err.h"
#include "tls.h"

#define NS_HTTP_HOST_MAX 256
#define NS_HTTP_BASE_MAX 1024 /* path prefix of an endpoint URL */
#define NS_HTTP_HEAD_MAX (32 * 1024)
#define NS_HTTP_MAX_HEADERS 64
#define NS_HTTP_REQ_HEAD_MAX (16 * 1024)
#define NS_HTTP_TIMEOUT_MS_DEFAULT 30000
#define NS_HTTP_MAX_1XX 8 /* interim responses skipped before the final one */

/* "https://host[:port][/base]" or "http://..."; host may be [IPv6]. */
typedef struct {
    int tls;                     /* https */
    char host[NS_HTTP_HOST_MAX]; /* without brackets */
    uint16_t port;               /* 443/80 unless given */
    int port_given;              /* the URL named a port (then Host carries it) */
    char base[NS_HTTP_BASE_MAX]; /* path prefix without trailing '/', "" for none */
} ns_url;

ns_err ns_url_parse(ns_url *u, const char *s) NS_MUST_CHECK;
/* The Host header value: host, [v6], plus ":port" when given. */
void ns_url_host_header(const ns_url *u, char *out, size_t cap);

typedef struct {
    const char *name;
    const char *value;
} ns_http_hdr;

typedef struct {
    const ns_url *url;   /* scheme, host (SNI/verify/Host) and port */
    const ns_addr *via;  /* NULL: connect to url host:port; else to this address */
    const ns_tls_ca *ca; /* required when url->tls */
    int timeout_ms;      /* each connect/handshake/read/write wait; < 0: none. The whole
                          * response head (interim 1xx answers included) must arrive within
                          * it too, however the server drips it. */
    int total_ms;        /* the whole exchange, from connect to the last body byte; 0: none */
    int min_bps;         /* the body must average at least this many bytes/s over each
                          * timeout_ms window (a drip that never stalls a read); 0: none */
} ns_http_dest;

typedef struct {
    int status; /* 200 */
    char reason[64];
    size_t n_headers;
    ns_http_hdr headers[NS_HTTP_MAX_HEADERS]; /* point into the connection's head buffer */
    int64_t content_length;                   /* -1 when absent */
    int chunked;
} ns_http_resp;

typedef struct ns_http ns_http;

/* Connects (and handshakes when https). */
ns_err ns_http_open(ns_http **h, const ns_http_dest *d) NS_MUST_CHECK;
/*
 * Sends "METHOD target HTTP/1.1", Host, the given headers, Content-Length (when body or a method
 * with a body), Connection: close, then the body. target = path[?query], already encoded.
 */
ns_err ns_http_send(ns_http *h, const char *method, const char *target, const ns_http_hdr *hdrs,
                    size_t n_hdrs, const void *body, size_t body_len) NS_MUST_CHECK;
/* Reads and parses the status line and headers (at most NS_HTTP_MAX_1XX 1xx responses are
 * skipped; more is NS_E_PROTO). */
ns_err ns_http_read_head(ns_http *h, ns_http_resp *r) NS_MUST_CHECK;
/* Case-insensitive header lookup (the first one); NULL when absent. */
const char *ns_http_header(const ns_http_resp *r, const char *name);
/*
 * Streams the body: up to cap bytes into p; *got = 0 at the end of the body. A body shorter than
 * its Content-Length, or a broken chunk, is NS_E_TRUNCATED / NS_E_PROTO.
 */
ns_err ns_http_read_body(ns_http *h, void *p, size_t cap, size_t *got) NS_MUST_CHECK;
/* The whole body into out (bounded by out->max: NS_E_TOO_BIG beyond). */
ns_err ns_http_read_body_all(ns_http *h, ns_buf *out) NS_MUST_CHECK;
/* Closes the connection and frees. Safe on NULL. */
void ns_http_close(ns_http *h);

/* Parses a response head from memory (the same parser; for tests and fuzzing). */
ns_err ns_http_parse_head(ns_http_resp *r, char *head, size_t len) NS_MUST_CHECK;

#endif
