/*
 * h2client: see h2client.h. nghttp2 does the framing, HPACK and flow control; this file drives
 * one stream at a time over the blocking I/O callbacks and checks the gRPC answer's shape.
 */
#include "h2client.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"

#define READ_CHUNK (16u * 1024)

struct ns_h2c {
    nghttp2_session *s;
    ns_h2c_io io;
    char authority[256];
    ns_err io_err; /* the failure of a write inside nghttp2's send callback */
    /* the call in progress */
    int32_t id;
    int closed;
    uint32_t close_code;
    int http_status;
    int grpc_status; /* -1 until seen */
    char grpc_msg[NS_H2C_MSG_MAX];
    int bad_ctype;
    ns_buf *resp; /* the raw DATA of the response (prefix included) */
    int too_big;
    const uint8_t *body; /* the request: prefix and message */
    size_t body_len, body_off;
};

static ssize_t on_send(nghttp2_session *session, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    ns_h2c *c = user;
    (void)session;
    (void)flags;
    c->io_err = c->io.write(c->io.arg, data, len);
    return c->io_err == NS_OK ? (ssize_t)len : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    ns_h2c *c = user;
    (void)session;
    (void)flags;
    if (f->hd.stream_id != c->id) {
        return 0;
    }
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        c->http_status = vlen == 3 ? atoi((const char *)value) : -1;
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        char v[8];
        snprintf(v, sizeof v, "%.*s", (int)(vlen < 7 ? vlen : 7), (const char *)value);
        c->grpc_status = (vlen >= 1 && vlen <= 2) ? atoi(v) : 2;
    } else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        snprintf(c->grpc_msg, sizeof c->grpc_msg, "%.*s", (int)vlen, (const char *)value);
    } else if (nlen == 12 && memcmp(name, "content-type", 12) == 0) {
        c->bad_ctype = !(vlen >= 16 && memcmp(value, "application/grpc", 16) == 0);
    }
    return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user)
{
    ns_h2c *c = user;
    (void)session;
    (void)flags;
    if (id == c->id && !c->too_big && ns_buf_append(c->resp, data, len) != NS_OK) {
        c->too_big = 1;
    }
    return 0;
}

static int on_close(nghttp2_session *session, int32_t id, uint32_t code, void *user)
{
    ns_h2c *c = user;
    (void)session;
    if (id == c->id) {
        c->closed = 1;
        c->close_code = code;
    }
    return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    ns_h2c *c = user;
    (void)session;
    (void)id;
    (void)src;
    size_t n = c->body_len - c->body_off;
    if (n > length) {
        n = length;
    }
    memcpy(buf, c->body + c->body_off, n);
    c->body_off += n;
    if (c->body_off == c->body_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

ns_err ns_h2c_new(ns_h2c **out, const ns_h2c_io *io, const char *authority)
{
    *out = NULL;
    ns_h2c *c = calloc(1, sizeof *c);
    nghttp2_session_callbacks *cb = NULL;
    ENSURE(c != NULL, NS_E_NOMEM, "h2 client: out of memory");
    c->io = *io;
    snprintf(c->authority, sizeof c->authority, "%s", authority);
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        free(c);
        BAIL(NS_E_NOMEM, "h2 client: out of memory");
    }
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    int rv = nghttp2_session_client_new(&c->s, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) {
        free(c);
        BAIL(NS_E_NOMEM, "h2 client: %s", nghttp2_strerror(rv));
    }
    nghttp2_settings_entry st[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 16}};
    rv = nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, st, 2);
    if (rv != 0) {
        ns_h2c_free(c);
        BAIL(NS_E_INTERNAL, "h2 client: %s", nghttp2_strerror(rv));
    }
    *out = c;
    return NS_OK;
}

/* Sends what nghttp2 has, then reads and feeds until the call's stream closes. */
static ns_err pump(ns_h2c *c)
{
    uint8_t buf[READ_CHUNK];
    while (!c->closed) {
        int rv = nghttp2_session_send(c->s);
        if (rv != 0) {
            if (c->io_err != NS_OK) {
                return c->io_err;
            }
            BAIL(NS_E_PROTO, "h2 client: sending failed: %s", nghttp2_strerror(rv));
        }
        if (c->closed) {
            break;
        }
        ENSURE(nghttp2_session_want_read(c->s), NS_E_CLOSED,
               "h2 client: the server ended the connection before answering");
        size_t got = 0;
        GUARD(c->io.read(c->io.arg, buf, sizeof buf, &got));
        ENSURE(got > 0, NS_E_CLOSED, "h2 client: the server closed the connection mid-call");
        ssize_t n = nghttp2_session_mem_recv(c->s, buf, got);
        ENSURE(n >= 0, NS_E_PROTO, "h2 client: bad HTTP/2 from the server: %s",
               nghttp2_strerror((int)n));
    }
    /* Flush what the answer made nghttp2 owe (WINDOW_UPDATE, SETTINGS ACK). */
    if (nghttp2_session_send(c->s) != 0 && c->io_err != NS_OK) {
        return c->io_err;
    }
    return NS_OK;
}

ns_err ns_h2c_unary(ns_h2c *c, const char *path, const uint8_t *req, size_t len, ns_buf *resp,
                    int *status, char msg[NS_H2C_MSG_MAX])
{
    ns_buf body;
    ns_buf_init(&body, len + NS_GRPC_PREFIX_LEN);
    uint8_t prefix[NS_GRPC_PREFIX_LEN];
    ns_grpc_frame_prefix(prefix, (uint32_t)len);
    ns_err e = ns_buf_append(&body, prefix, sizeof prefix);
    if (e == NS_OK && len > 0) {
        e = ns_buf_append(&body, req, len);
    }
    if (e != NS_OK) {
        ns_buf_free(&body);
        return e;
    }
    size_t max = resp->max;
    ns_buf_reset(resp);
    resp->max = max + NS_GRPC_PREFIX_LEN;
    c->closed = 0;
    c->close_code = 0;
    c->http_status = 0;
    c->grpc_status = -1;
    c->grpc_msg[0] = 0;
    c->bad_ctype = 0;
    c->resp = resp;
    c->too_big = 0;
    c->body = body.data;
    c->body_len = body.len;
    c->body_off = 0;
#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME     \
    }
    const nghttp2_nv hdrs[] = {
        NV(":method", "POST"),
        NV(":scheme", "https"),
        NV(":path", path),
        NV(":authority", c->authority),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
        NV("user-agent", "nsign"),
    };
#undef NV
    nghttp2_data_provider dp = {.source.ptr = NULL, .read_callback = read_body};
    c->id = nghttp2_submit_request(c->s, NULL, hdrs, sizeof hdrs / sizeof *hdrs, &dp, c);
    if (c->id < 0) {
        e = ns_fail(NS_E_PROTO, "h2 client: cannot start a request: %s", nghttp2_strerror(c->id));
    } else {
        e = pump(c);
    }
    ns_buf_free(&body);
    resp->max = max;
    c->resp = NULL;
    GUARD(e);
    ENSURE(c->http_status == 200, NS_E_PROTO, "%s: HTTP status %d, expected 200", path,
           c->http_status);
    ENSURE(c->grpc_status >= 0, NS_E_PROTO, "%s: the answer has no grpc-status (stream reset %u)",
           path, c->close_code);
    ENSURE(!c->bad_ctype, NS_E_PROTO, "%s: the answer is not application/grpc", path);
    ENSURE(!c->too_big, NS_E_TOO_BIG, "%s: the answer exceeds %zu bytes", path, max);
    *status = c->grpc_status;
    snprintf(msg, NS_H2C_MSG_MAX, "%s", c->grpc_msg);
    if (c->grpc_status != 0) {
        ns_buf_reset(resp);
        return NS_OK;
    }
    ENSURE(resp->len >= NS_GRPC_PREFIX_LEN && resp->data[0] == 0, NS_E_PROTO,
           "%s: the answer holds no uncompressed message", path);
    uint32_t n = ((uint32_t)resp->data[1] << 24) | ((uint32_t)resp->data[2] << 16) |
                 ((uint32_t)resp->data[3] << 8) | resp->data[4];
    ENSURE(n == resp->len - NS_GRPC_PREFIX_LEN, NS_E_PROTO,
           "%s: the answer is not exactly one message", path);
    ns_buf_consume(resp, NS_GRPC_PREFIX_LEN);
    return NS_OK;
}

void ns_h2c_free(ns_h2c *c)
{
    if (c) {
        nghttp2_session_del(c->s);
        free(c);
    }
}
