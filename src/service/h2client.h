/*
 * h2client: unary gRPC calls on one HTTP/2 connection (nghttp2), over any blocking byte stream
 * (a TLS session for `nsign sign`, memory in the unit tests). Several calls run one after the
 * other on the same connection, which is what lets a client attest the very session it then
 * signs on.
 *
 * Per call: POST path with content-type application/grpc and te: trailers, one length-prefixed
 * message, then the response: HTTP 200, at most one uncompressed message of at most resp->max
 * bytes, and grpc-status in the trailers (or a Trailers-Only answer). Anything else is NS_E_PROTO
 * naming what was wrong; a gRPC error status is reported as such, not as an ns_err.
 */
#ifndef NS_H2CLIENT_H
#define NS_H2CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NS_H2C_MSG_MAX 256 /* grpc-message kept */

typedef struct {
    void *arg;
    /* Writes all of p. */
    ns_err (*write)(void *arg, const uint8_t *p, size_t n);
    /* Reads up to n bytes; *got = 0 at the end of the stream. */
    ns_err (*read)(void *arg, uint8_t *p, size_t n, size_t *got);
} ns_h2c_io;

typedef struct ns_h2c ns_h2c;

/* Starts the connection (preface and SETTINGS are sent with the first call). */
ns_err ns_h2c_new(ns_h2c **c, const ns_h2c_io *io, const char *authority) NS_MUST_CHECK;
/*
 * One unary call. On NS_OK, *status is the gRPC status and msg its grpc-message; resp holds the
 * response message when *status is 0.
 */
ns_err ns_h2c_unary(ns_h2c *c, const char *path, const uint8_t *req, size_t len, ns_buf *resp,
                    int *status, char msg[NS_H2C_MSG_MAX]) NS_MUST_CHECK;
void ns_h2c_free(ns_h2c *c);

#endif
