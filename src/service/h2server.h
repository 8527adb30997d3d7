/*
 * h2server: one gRPC server connection on HTTP/2 (prior knowledge) with nghttp2, as a
 * byte-in/byte-out state machine (ns_h2_conn: no sockets), so the whole request path can be
 * unit-tested and fuzzed in memory. h2loop runs these connections over sockets, in cleartext or
 * over a byte-layer transport (TLS from tls.c) that may also name the client.
 *
 * Per request: POST only (else HTTP 405), content-type application/grpc[+...] (else 415), the
 * path routed by the handler (unknown: UNIMPLEMENTED), grpc-timeout honoured (DEADLINE_EXCEEDED
 * when it passes before the answer), messages above max_msg refused (RESOURCE_EXHAUSTED) from
 * their prefix alone. Unary methods are answered when the request half-closes with exactly one
 * message; streaming methods answer each message as it completes. Errors before any response
 * use a Trailers-Only response. A client that does not start with the HTTP/2 preface gets an
 * HTTP/1.1 505 answer and the connection is closed.
 *
 * A client that has not sent the HTTP/2 preface within NS_H2_PREFACE_TIMEOUT_MS is dropped. A
 * connection without an open stream for idle_ms (default 60 s) gets GOAWAY and is closed: PINGs
 * and other connection-level frames do not count as activity, so keep-alive pings alone do not
 * hold a connection open. A unary request, or a streaming request inside a message, whose body
 * stops arriving for body_idle_ms (default 10 s) is answered DEADLINE_EXCEEDED and its buffer
 * freed.
 *
 * Memory is bounded per connection and per process. Per connection: at most NS_H2_MAX_STREAMS
 * concurrent streams, each request buffer at most max_msg + 5 bytes, all request buffers together
 * at most max_msg + 5 + NS_H2_CONN_IN_SMALL, one answer at most 64 KiB, output at most
 * NS_H2_OUT_HIGH before reading stops. Per process: the request bytes buffered by all
 * connections together stay within max_buffered (default NS_H2_BUFFERED_DEFAULT, overshoot at
 * most one DATA frame per connection). A message is counted whole from its 5-byte prefix, so it
 * is admitted or refused (RESOURCE_EXHAUSTED, "server busy") as it starts; messages above
 * NS_H2_SMALL_MSG may fill the budget only up to NS_H2_SMALL_RESERVE below its end, which keeps
 * room for the small requests (Sign, ListKeys) of well-behaved clients.
 *
 * Output is bounded the same way (issue 22: a client that never opens its flow-control window
 * must not make the server hold its answers without limit). A stream runs its next message only
 * while it holds less than NS_H2_STREAM_OUT_MAX of unsent answers, a connection only while it
 * holds less than NS_H2_CONN_OUT_MAX (the memory of its streams' queues plus its unsent bytes;
 * a stream that waits holds no buffer); otherwise the
 * request waits, its bytes counted as request bytes above, and once a waiting connection has
 * taken NS_H2_DEFER_IN_MAX of such bytes it is no longer read (ns_h2_conn_want_read) until its
 * output drains. Per process, one output budget (max_output, default NS_H2_OUTPUT_DEFAULT)
 * counts every connection's held output and its state: NS_H2_CONN_COST per connection plus what
 * its transport declares (a TLS session: tls.c), NS_H2_STREAM_COST per open stream. A
 * connection is refused when the budget is full; a connection that already holds output may
 * open streams and queue answers only up to NS_H2_OUTPUT_RESERVE below the end, which keeps room
 * for clients that read their answers. Answers that do not move for stall_ms (default
 * NS_H2_STALL_MS_DEFAULT) are reaped: a stream whose peer keeps its window shut while other
 * answers of its connection move is reset (RST_STREAM CANCEL, its answers dropped); a connection
 * none of whose queued answers moved, or whose unsent bytes the peer does not read, gets GOAWAY
 * (ENHANCE_YOUR_CALM) and is closed at most NS_H2_REAP_GRACE_MS later, unsent bytes or not.
 * A connection whose requests wait is still read, up to NS_H2_DEFER_IN_MAX of them, so that the
 * WINDOW_UPDATE that lets its answers go can arrive.
 */
#ifndef NS_H2SERVER_H
#define NS_H2SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"
#include "buf.h"
#include "err.h"
#include "stop.h"

#define NS_H2_MAX_STREAMS 128
#define NS_H2_CONN_IN_SMALL (256u * 1024)
#define NS_H2_BUFFERED_DEFAULT (32u * 1024 * 1024)
#define NS_H2_SMALL_MSG (64u * 1024)
#define NS_H2_SMALL_RESERVE (4u * 1024 * 1024)
#define NS_H2_IDLE_MS_DEFAULT 60000
#define NS_H2_BODY_IDLE_MS_DEFAULT 10000
#define NS_H2_OUT_HIGH (256u * 1024)
#define NS_H2_MAX_CONNS_PER_THREAD 4096
#define NS_H2_PEER_MAX 128
#define NS_H2_PREFACE_TIMEOUT_MS 10000
#define NS_H2_STREAM_OUT_MAX (16u * 1024)
#define NS_H2_CONN_OUT_MAX (128u * 1024)
#define NS_H2_DEFER_IN_MAX (64u * 1024)
#define NS_H2_OUTPUT_DEFAULT (32u * 1024 * 1024)
#define NS_H2_OUTPUT_RESERVE (4u * 1024 * 1024)
#define NS_H2_CONN_COST (16u * 1024)
#define NS_H2_STREAM_COST (2u * 1024)
#define NS_H2_STALL_MS_DEFAULT 10000
#define NS_H2_REAP_GRACE_MS 1000

#define NS_H2_CLIENT_ID_MAX 64

/* One request message handed to the application. */
typedef struct {
    const char *peer;      /* "tcp:127.0.0.1:5555", for audit logs */
    int client;            /* the transport's authenticated client (index), -1 when none */
    const char *client_id; /* its name, "-" when none */
    const uint8_t *msg;    /* the message bytes (no prefix) */
    size_t len;
} ns_h2_req;

typedef struct {
    void *app;
    size_t max_msg;      /* 0 = NS_GRPC_MAX_MSG_DEFAULT */
    size_t max_buffered; /* process-wide request-byte budget; 0 = NS_H2_BUFFERED_DEFAULT */
    int idle_ms;         /* close a connection without streams after this; 0 = default */
    int body_idle_ms;    /* answer a request whose body stalls this long; 0 = default */
    size_t max_output;   /* process-wide output budget (see above); 0 = NS_H2_OUTPUT_DEFAULT */
    int stall_ms;        /* reap answers that do not move for this long; 0 = default */
    /* A method index >= 0 for a known path ("/pkg.Service/Method"), -1 otherwise.
     * *streaming = 1 when each request message is answered as it arrives. */
    int (*route)(void *app, const char *path, int *streaming);
    /* Handles one message: appends the response message (no prefix) to out and returns
     * NS_GRPC_OK, or returns another status and writes a human message into msg. */
    int (*call)(void *app, int method, const ns_h2_req *req, ns_buf *out, char *msg, size_t msgcap);
} ns_h2_handler;

typedef struct ns_h2_conn ns_h2_conn;

/* extra: bytes of state the caller keeps for this connection (its transport), counted in the
 * output budget with NS_H2_CONN_COST. NS_E_UNAVAILABLE when the budget cannot take them. */
ns_err ns_h2_conn_new(ns_h2_conn **c, const ns_h2_handler *h, const char *peer,
                      size_t extra) NS_MUST_CHECK;
/* Feeds bytes received from the peer. NS_E_PROTO/NS_E_CLOSED: close after flushing output. */
ns_err ns_h2_conn_recv(ns_h2_conn *c, const uint8_t *p, size_t n) NS_MUST_CHECK;
/* Bytes to send (pointer into the connection's buffer; valid until the next call). */
ns_err ns_h2_conn_pending(ns_h2_conn *c, const uint8_t **p, size_t *n) NS_MUST_CHECK;
/* Marks n bytes of the pending output as written. */
void ns_h2_conn_sent(ns_h2_conn *c, size_t n);
/* Answers requests whose deadline has passed or whose body stalled, and starts closing an idle
 * connection; returns how many (output may be pending). A connection without a complete client
 * preface after NS_H2_PREFACE_TIMEOUT_MS becomes done. */
int ns_h2_conn_tick(ns_h2_conn *c, int64_t now_ms);
/* Whether the connection has nothing left to do and may be closed (after output drains). */
int ns_h2_conn_done(const ns_h2_conn *c);
/* Whether more input should be read now (false while output is above NS_H2_OUT_HIGH, or while
 * requests wait for output room and NS_H2_DEFER_IN_MAX of them is buffered). */
int ns_h2_conn_want_read(const ns_h2_conn *c);
/* Records the authenticated client of the connection (the transport calls it once it knows,
 * before any request bytes are fed). */
void ns_h2_conn_set_client(ns_h2_conn *c, int client, const char *id);
/* The peer address given to ns_h2_conn_new (for log lines). */
const char *ns_h2_conn_peer(const ns_h2_conn *c);
/* Starts a graceful shutdown (GOAWAY). */
void ns_h2_conn_shutdown(ns_h2_conn *c);
/*
 * The two steps of a drain (RFC 9113 section 6.8). ns_h2_conn_drain_notice sends a GOAWAY
 * naming stream 2^31-1: the client opens no new streams but those already in flight are still
 * taken. After a round trip, ns_h2_conn_drain_final sends the GOAWAY naming the last stream
 * processed: a stream above it was never seen, so the client may retry it elsewhere; those at or
 * below it run to their answers, then the connection is done. Each returns 1 when done (sent,
 * or nothing to send on a failing connection), 0 while the client preface has not arrived yet
 * (call it again later).
 */
int ns_h2_conn_drain_notice(ns_h2_conn *c);
int ns_h2_conn_drain_final(ns_h2_conn *c);
void ns_h2_conn_free(ns_h2_conn *c);
/* Request bytes counted against the process-wide budget right now (for tests and metrics). */
size_t ns_h2_buffered(void);
/* Connections and request streams open right now, over every ns_h2_conn of the process. */
void ns_h2_stats(long *conns, long *streams);

/* The output budget and what it refused or reaped since start, over the whole process. */
typedef struct {
    size_t held;                   /* bytes counted against the budget now */
    size_t limit;                  /* the budget (max_output of the last connection made) */
    unsigned long conns_refused;   /* connections refused: budget full */
    unsigned long streams_refused; /* streams refused (REFUSED_STREAM): budget full */
    unsigned long conns_reaped;    /* connections closed: answers or bytes not taken for stall_ms */
    unsigned long streams_reaped;  /* streams reset: window shut for stall_ms */
} ns_h2_output_stats;

void ns_h2_output_stats_get(ns_h2_output_stats *st);
/* Records h's budget for the stats before the first connection (ns_h2_serve calls it). */
void ns_h2_output_configure(const ns_h2_handler *h);

#endif
