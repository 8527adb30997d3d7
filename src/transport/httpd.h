/*
 * httpd: a tiny HTTP/1.1 server for GET endpoints (sign-service's /metrics, run-enclave's
 * readiness check). One thread, one poll loop, every connection non-blocking.
 *
 * Bounded against hostile clients: a request head is at most NS_HTTPD_HEAD_MAX bytes and must
 * arrive within NS_HTTPD_TIMEOUT_MS of the connection; at most NS_HTTPD_CONNS_MAX connections
 * are open (further ones are accepted and closed at once); one request per connection (the
 * answer says "Connection: close"); a request with a body (Content-Length other than 0, or any
 * Transfer-Encoding) is refused with 400, since no endpoint takes one. Only GET and HEAD
 * (others: 405), and POST without a body, which reaches the endpoint function only to be refused
 * (405) unless it acts on it (an admin action such as sign-service's POST /drain). The parser
 * (ns_httpd_parse) is separate from the I/O and fuzzed.
 */
#ifndef NS_HTTPD_H
#define NS_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "buf.h"
#include "err.h"

#define NS_HTTPD_HEAD_MAX 4096
#define NS_HTTPD_PATH_MAX 256
#define NS_HTTPD_CONNS_MAX 32
#define NS_HTTPD_TIMEOUT_MS 5000
#define NS_HTTPD_BODY_MAX (8u * 1024 * 1024)

typedef struct {
    char method[8];               /* "GET", "HEAD", or another token (answered 405) */
    char path[NS_HTTPD_PATH_MAX]; /* the target without its query string */
    int minor;                    /* HTTP/1.minor */
} ns_httpd_req;

/*
 * Parses a request head from the first n bytes received. NS_OK: *head_len bytes hold a whole
 * head (request line, headers, empty line; CRLF line ends). NS_E_TRUNCATED: more bytes needed.
 * NS_E_TOO_BIG: no end of head within NS_HTTPD_HEAD_MAX (431), or a target over
 * NS_HTTPD_PATH_MAX (414). NS_E_UNSUPPORTED: not HTTP/1.x (505). NS_E_PARSE: malformed, or a
 * body announced (400).
 */
ns_err ns_httpd_parse(ns_httpd_req *r, const uint8_t *p, size_t n, size_t *head_len) NS_MUST_CHECK;

/* Answers one GET/HEAD (or bodyless POST) request: fills body and *ctype (static string),
 * returns the status. A function that takes no POST returns 405 for it (ns_httpd_get_only). */
typedef int (*ns_httpd_fn)(void *arg, const ns_httpd_req *r, ns_buf *body, const char **ctype);

/* 1 when r is a GET or HEAD; an endpoint function that takes no POST answers 405 otherwise. */
int ns_httpd_get_only(const ns_httpd_req *r);

typedef struct ns_httpd ns_httpd;

/* Listens on a (tcp, unix or vsock) and serves on a thread until ns_httpd_stop. */
ns_err ns_httpd_start(ns_httpd **h, const ns_addr *a, ns_httpd_fn fn, void *arg) NS_MUST_CHECK;
/* The bound port (tcp/vsock; 0 for unix). */
uint32_t ns_httpd_port(const ns_httpd *h);
/* Stops the thread, closes every connection and the listener (a unix socket file is removed). */
void ns_httpd_stop(ns_httpd *h);

#endif
