/*
 * h2server: one gRPC connection over HTTP/2 with nghttp2 (see h2server.h for the contract); the
 * sockets and threads that run it are h2loop.c's.
 *
 * nghttp2 does HPACK, flow control (automatic WINDOW_UPDATE) and frame validation, including
 * the rapid-reset and CONTINUATION-flood mitigations of the pinned version. This file owns the
 * gRPC layer: per-stream request buffers with hard caps, routing, deadlines, and the
 * response shapes (headers + DATA + trailers, or Trailers-Only for an early error).
 * Invariant: a stream is answered at most once (s->answered); after that its input is dropped.
 * Output accounting (issue 22): every byte this file allocates for a peer's answers (the streams'
 * queues, c->out) and the fixed costs of its connections and streams are in g_output, and a
 * connection's share in c->charged, so freeing a connection returns exactly what it took.
 */
#include "h2server.h"

#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"
#include "iox.h"
#include "log.h"
#include "tcache.h"

#define PATH_MAX_LEN 128
#define OUT_MAX (NS_H2_OUT_HIGH + 64u * 1024) /* mem_send chunks are at most ~16 KiB each */
#define RESP_MAX (64u * 1024) /* one stream's answer buffer (largest answer: ~33 KiB Attest) */
#define OUT_KEEP (16u * 1024) /* c->out allocation kept when drained; a larger one is freed */

static const char HTTP1_REPLY[] =
    "HTTP/1.1 505 HTTP Version Not Supported\r\n"
    "Content-Type: text/plain\r\nContent-Length: 60\r\n"
    "Connection: close\r\n\r\n"
    "this is a gRPC server: HTTP/2 with prior knowledge only.\r\n\r\n";

typedef struct stream {
    struct stream *prev, *next;
    int32_t id;
    int method;    /* route() result; -1 unknown */
    int streaming; /* bidi: answer each message */
    int is_post;
    int ct_ok;
    int path_too_long;
    int answered;       /* response headers (or Trailers-Only) submitted */
    int done;           /* the final status is known; trailers follow the queued data */
    int status;         /* final gRPC status */
    int64_t deadline;   /* ms on CLOCK_MONOTONIC; -1 none */
    size_t nmsg;        /* request messages handled (streaming) or seen (unary) */
    size_t resv;        /* request bytes counted against the budgets (see in_account) */
    int64_t last_in;    /* ms: when request headers or data last arrived */
    int deferred;       /* a complete message waits for output room (out_room) */
    int ended;          /* the request half-closed */
    int reset;          /* reaped: RST_STREAM submitted, nothing more is sent */
    size_t out_charged; /* s->out's allocation, counted in the output budget */
    int64_t out_since;  /* ms: since when its queued answer bytes have not moved; -1 none */
    char path[PATH_MAX_LEN];
    char msg[NS_GRPC_MSG_MAX];
    ns_buf in;  /* request bytes not yet consumed */
    ns_buf out; /* framed response bytes not yet handed to nghttp2 */
    size_t out_off;
} stream;

struct ns_h2_conn {
    nghttp2_session *s;
    const ns_h2_handler *h;
    size_t max_msg;
    size_t in_total; /* sum of all streams' resv */
    size_t in_cap;
    int64_t last_active; /* ms: last time a stream was open (for the idle timeout) */
    int idle_closing;    /* GOAWAY sent for idleness */
    size_t preface_got;  /* bytes of the client magic matched so far */
    int preface_ok;
    int64_t created; /* ms; a client must send its preface within NS_H2_PREFACE_TIMEOUT_MS */
    int fatal;       /* HTTP/1 client or protocol error: flush and close */
    stream *streams;
    ns_buf out;
    size_t out_off;
    char peer[NS_H2_PEER_MAX];
    int client; /* -1 until a transport authenticates one */
    char client_id[NS_H2_CLIENT_ID_MAX + 1];
    size_t charged;       /* all this connection counts in the output budget */
    size_t out_charged;   /* of which c->out's allocation */
    size_t queued;        /* answer bytes in its streams' queues, not yet taken by nghttp2 */
    size_t queue_mem;     /* the allocations of those queues (the sum of s->out_charged) */
    int ndeferred;        /* streams with s->deferred */
    int64_t queued_since; /* ms: since when none of the queued answer bytes moved; -1 none */
    int64_t unsent_since; /* ms: since when c->out has had bytes and none were sent; -1 none */
    int64_t reap_at;      /* ms: reaped for a stall, closed at this time at the latest; -1 */
};

/* Request bytes buffered (or announced by a message prefix and reserved) by every connection of
 * the process: the budget all connections share. */
static size_t g_buffered;

size_t ns_h2_buffered(void)
{
    return __atomic_load_n(&g_buffered, __ATOMIC_RELAXED);
}

static size_t budget_of(const ns_h2_handler *h)
{
    return h->max_buffered ? h->max_buffered : NS_H2_BUFFERED_DEFAULT;
}

/* Adds n to a process-wide counter when the total stays within limit. */
static int counter_take(size_t *ctr, size_t n, size_t limit)
{
    size_t cur = __atomic_load_n(ctr, __ATOMIC_RELAXED);
    do {
        if (cur > limit || n > limit - cur) {
            return -1;
        }
    } while (
        !__atomic_compare_exchange_n(ctr, &cur, cur + n, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return 0;
}

/* Takes n bytes of the process-wide request budget when the total stays within limit. */
static int budget_take(size_t n, size_t limit)
{
    return counter_take(&g_buffered, n, limit);
}

static void budget_put(size_t n)
{
    __atomic_sub_fetch(&g_buffered, n, __ATOMIC_RELAXED);
}

/* The output budget (h2server.h): bytes held for peers by every connection of the process. */
static size_t g_output;
static size_t g_output_limit = NS_H2_OUTPUT_DEFAULT;
static atomic_ulong st_conns_refused, st_streams_refused, st_conns_reaped, st_streams_reaped;

void ns_h2_output_stats_get(ns_h2_output_stats *st)
{
    st->held = __atomic_load_n(&g_output, __ATOMIC_RELAXED);
    st->limit = __atomic_load_n(&g_output_limit, __ATOMIC_RELAXED);
    st->conns_refused = atomic_load_explicit(&st_conns_refused, memory_order_relaxed);
    st->streams_refused = atomic_load_explicit(&st_streams_refused, memory_order_relaxed);
    st->conns_reaped = atomic_load_explicit(&st_conns_reaped, memory_order_relaxed);
    st->streams_reaped = atomic_load_explicit(&st_streams_reaped, memory_order_relaxed);
}

static size_t output_limit(const ns_h2_handler *h)
{
    return h->max_output ? h->max_output : NS_H2_OUTPUT_DEFAULT;
}

void ns_h2_output_configure(const ns_h2_handler *h)
{
    __atomic_store_n(&g_output_limit, output_limit(h), __ATOMIC_RELAXED);
}

/* Memory c holds for answers not sent yet: its streams' queues and its unsent output. */
static size_t conn_pending_out(const ns_h2_conn *c)
{
    return c->queue_mem + (c->out.len - c->out_off);
}

/* What c may fill the output budget up to: all of it while c holds no unsent answer, all but
 * NS_H2_OUTPUT_RESERVE once it does (the reserve is for clients that read their answers). */
static size_t output_cap(const ns_h2_conn *c)
{
    size_t lim = output_limit(c->h);
    if (conn_pending_out(c) == 0) {
        return lim;
    }
    return lim > NS_H2_OUTPUT_RESERVE ? lim - NS_H2_OUTPUT_RESERVE : 0;
}

/* Takes n bytes of the output budget for c when the total stays within limit. */
static int output_take(ns_h2_conn *c, size_t n, size_t limit)
{
    if (counter_take(&g_output, n, limit) != 0) {
        return -1;
    }
    c->charged += n;
    return 0;
}

static void output_put(ns_h2_conn *c, size_t n)
{
    __atomic_sub_fetch(&g_output, n, __ATOMIC_RELAXED);
    c->charged -= n;
}

/* Brings the charge *slot of a buffer to its allocation (always allowed: the decision to let it
 * grow was out_room's). */
static void output_sync(ns_h2_conn *c, size_t *slot, size_t cap)
{
    if (cap > *slot) {
        __atomic_add_fetch(&g_output, cap - *slot, __ATOMIC_RELAXED);
        c->charged += cap - *slot;
    } else if (cap < *slot) {
        output_put(c, *slot - cap);
    }
    *slot = cap;
}

/* Brings the charge of s's answer queue to its allocation. */
static void queue_sync(ns_h2_conn *c, stream *s)
{
    c->queue_mem = c->queue_mem - s->out_charged + s->out.cap;
    output_sync(c, &s->out_charged, s->out.cap);
}

/* Whether s may run its next message now: the stream, its connection and the process have
 * output room. Otherwise the message waits in s->in (s->deferred). */
static int out_room(const ns_h2_conn *c, const stream *s)
{
    if (s->out.len - s->out_off >= NS_H2_STREAM_OUT_MAX ||
        conn_pending_out(c) >= NS_H2_CONN_OUT_MAX) {
        return 0;
    }
    return __atomic_load_n(&g_output, __ATOMIC_RELAXED) < output_cap(c);
}

static void defer(ns_h2_conn *c, stream *s, int on)
{
    if (s->deferred != on) {
        s->deferred = on;
        c->ndeferred += on ? 1 : -1;
    }
}

/* n answer bytes entered (added) or left s's queue: the queue sizes and the stall clocks. */
static void queue_add(ns_h2_conn *c, stream *s, size_t n)
{
    if (n == 0) {
        return;
    }
    int64_t now = ns_now_ms();
    if (s->out_since < 0) {
        s->out_since = now;
    }
    if (c->queued == 0) {
        c->queued_since = now;
    }
    c->queued += n;
}

static void queue_took(ns_h2_conn *c, stream *s, size_t n)
{
    int64_t now = ns_now_ms();
    c->queued -= n;
    c->queued_since = c->queued ? now : -1;
    s->out_since = s->out.len > s->out_off ? now : -1;
}

/* Brings s->resv to what the stream's buffer holds or will hold: its length, or the whole
 * message its head prefix announces, whichever is larger. So a large message is admitted or
 * refused when its prefix arrives, not half-way. Returns -1 (nothing taken) when the growth fits
 * neither this connection's cap nor the process budget; a message above NS_H2_SMALL_MSG may use
 * the budget only up to NS_H2_SMALL_RESERVE below its end, which stays for small requests. */
static int in_account(ns_h2_conn *c, stream *s)
{
    size_t want = s->in.len;
    if (s->in.len >= NS_GRPC_PREFIX_LEN) {
        size_t mlen = ((size_t)s->in.data[1] << 24) | ((size_t)s->in.data[2] << 16) |
                      ((size_t)s->in.data[3] << 8) | s->in.data[4];
        if (mlen <= c->max_msg && mlen + NS_GRPC_PREFIX_LEN > want) {
            want = mlen + NS_GRPC_PREFIX_LEN;
        }
    }
    if (want <= s->resv) {
        c->in_total -= s->resv - want;
        budget_put(s->resv - want);
        s->resv = want;
        return 0;
    }
    size_t more = want - s->resv;
    if (c->in_total + more > c->in_cap) {
        return -1;
    }
    size_t limit = budget_of(c->h);
    if (want > NS_H2_SMALL_MSG) {
        limit = limit > NS_H2_SMALL_RESERVE ? limit - NS_H2_SMALL_RESERVE : 0;
    }
    if (budget_take(more, limit) != 0) {
        return -1;
    }
    c->in_total += more;
    s->resv = want;
    return 0;
}

static void in_release(ns_h2_conn *c, stream *s)
{
    c->in_total -= s->resv;
    budget_put(s->resv);
    s->resv = 0;
}

/* Process-wide gauges for the metrics (ns_h2_stats): relaxed, one add per open and close. */
static _Atomic long stat_conns, stat_streams;

void ns_h2_stats(long *conns, long *streams)
{
    *conns = atomic_load_explicit(&stat_conns, memory_order_relaxed);
    *streams = atomic_load_explicit(&stat_streams, memory_order_relaxed);
}

static void stream_free(ns_h2_conn *c, stream *s)
{
    atomic_fetch_sub_explicit(&stat_streams, 1, memory_order_relaxed);
    defer(c, s, 0);
    c->queued -= s->out.len - s->out_off;
    if (c->queued == 0) {
        c->queued_since = -1;
    }
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        c->streams = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    in_release(c, s);
    ns_buf_free(&s->in);
    ns_buf_free(&s->out);
    queue_sync(c, s);
    output_put(c, NS_H2_STREAM_COST);
    ns_tc_free(s);
}

static void in_drop(ns_h2_conn *c, stream *s)
{
    in_release(c, s);
    ns_buf_free(&s->in);
}

static void in_consume(ns_h2_conn *c, stream *s, size_t n)
{
    ns_buf_consume(&s->in, n);
    (void)in_account(c, s); /* shrinks, or stays within what the consumed message held */
}

/* --- responses --- */

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)source;
    ns_h2_conn *c = user;
    stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (s == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (s->reset) {
        return NGHTTP2_ERR_DEFERRED; /* its RST_STREAM closes it */
    }
    size_t left = s->out.len - s->out_off;
    size_t n = left < length ? left : length;
    if (n) {
        memcpy(buf, s->out.data + s->out_off, n);
        s->out_off += n;
        queue_took(c, s, n);
    }
    if (s->out_off == s->out.len) {
        ns_buf_free(&s->out); /* a stream that waits holds nothing */
        queue_sync(c, s);
        s->out_off = 0;
        if (s->done) {
            char st[16], enc[NS_GRPC_MSG_MAX * 3 + 1];
            snprintf(st, sizeof st, "%d", s->status);
            size_t elen = ns_grpc_percent_encode(enc, sizeof enc, s->msg);
            nghttp2_nv tr[2] = {
                {(uint8_t *)"grpc-status", (uint8_t *)st, 11, strlen(st), NGHTTP2_NV_FLAG_NONE},
                {(uint8_t *)"grpc-message", (uint8_t *)enc, 12, elen, NGHTTP2_NV_FLAG_NONE},
            };
            if (nghttp2_submit_trailer(session, id, tr, elen ? 2 : 1) != 0) {
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            }
            *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        } else if (n == 0) {
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE             \
    }

/* Sends the response headers with a body that read_body streams from s->out. */
static int start_body(ns_h2_conn *c, stream *s)
{
    nghttp2_nv hdr[2] = {NV(":status", "200"), NV("content-type", "application/grpc")};
    nghttp2_data_provider prov = {.source = {.ptr = s}, .read_callback = read_body};
    s->answered = 1;
    return nghttp2_submit_response(c->s, s->id, hdr, 2, &prov);
}

/* The final status of a stream: in the trailers after queued data, or Trailers-Only. */
static void finish(ns_h2_conn *c, stream *s, int status, const char *msg)
{
    if (s->done) {
        return;
    }
    s->done = 1;
    defer(c, s, 0);
    s->status = status;
    snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "");
    in_drop(c, s);
    if (s->answered) {
        (void)nghttp2_session_resume_data(c->s, s->id);
        return;
    }
    s->answered = 1;
    char st[16], enc[NS_GRPC_MSG_MAX * 3 + 1];
    snprintf(st, sizeof st, "%d", status);
    size_t elen = ns_grpc_percent_encode(enc, sizeof enc, s->msg);
    nghttp2_nv hdr[4] = {
        NV(":status", "200"),
        NV("content-type", "application/grpc"),
        {(uint8_t *)"grpc-status", (uint8_t *)st, 11, strlen(st), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"grpc-message", (uint8_t *)enc, 12, elen, NGHTTP2_NV_FLAG_NONE},
    };
    if (nghttp2_submit_response(c->s, s->id, hdr, elen ? 4 : 3, NULL) != 0) {
        (void)nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    }
}

/* A plain HTTP error (not gRPC): wrong method or content type. */
static void http_error(ns_h2_conn *c, stream *s, const char *code)
{
    nghttp2_nv hdr[1] = {{(uint8_t *)":status", (uint8_t *)code, 7, strlen(code), 0}};
    s->answered = s->done = 1;
    in_drop(c, s);
    if (nghttp2_submit_response(c->s, s->id, hdr, 1, NULL) != 0) {
        (void)nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    }
}

/* Runs the handler on one message; queues its framed response. Returns the gRPC status. */
static int run_call(ns_h2_conn *c, stream *s, const uint8_t *msg, size_t len)
{
    if (s->deadline >= 0 && ns_now_ms() >= s->deadline) {
        finish(c, s, NS_GRPC_DEADLINE_EXCEEDED, "deadline exceeded before the request was handled");
        return NS_GRPC_DEADLINE_EXCEEDED;
    }
    if (s->out.max == 0) {
        ns_buf_init_cached(&s->out, RESP_MAX);
    }
    if (s->out_off != 0) { /* room for the next answer: RESP_MAX - NS_H2_STREAM_OUT_MAX */
        ns_buf_consume(&s->out, s->out_off);
        s->out_off = 0;
    }
    size_t start = s->out.len;
    uint8_t prefix[NS_GRPC_PREFIX_LEN] = {0};
    char emsg[NS_GRPC_MSG_MAX] = "";
    if (ns_buf_append(&s->out, prefix, sizeof prefix) != NS_OK) {
        finish(c, s, NS_GRPC_RESOURCE_EXHAUSTED, "response queue full");
        return NS_GRPC_RESOURCE_EXHAUSTED;
    }
    ns_h2_req req = {
        .peer = c->peer, .client = c->client, .client_id = c->client_id, .msg = msg, .len = len};
    int st = c->h->call(c->h->app, s->method, &req, &s->out, emsg, sizeof emsg);
    if (st != NS_GRPC_OK) {
        s->out.len = start;
        queue_sync(c, s);
        finish(c, s, st, emsg[0] ? emsg : ns_grpc_status_name(st));
        return st;
    }
    ns_grpc_frame_prefix(s->out.data + start, (uint32_t)(s->out.len - start - NS_GRPC_PREFIX_LEN));
    queue_add(c, s, s->out.len - start);
    queue_sync(c, s);
    s->nmsg++;
    return NS_GRPC_OK;
}

/* Streaming: handle every complete message buffered so far. */
static void pump_streaming(ns_h2_conn *c, stream *s)
{
    for (;;) {
        ns_cur cur;
        const uint8_t *msg;
        size_t len;
        ns_cur_init(&cur, s->in.data, s->in.len);
        ns_err e = ns_grpc_frame_next(&cur, c->max_msg, &msg, &len);
        if (e == NS_E_TRUNCATED) {
            break;
        }
        if (e != NS_OK) {
            finish(c, s, ns_grpc_status_from_err(e), ns_err_msg());
            return;
        }
        if (!out_room(c, s)) {
            defer(c, s, 1); /* resumed when its answers move (resume) */
            break;
        }
        defer(c, s, 0);
        if (!s->answered && start_body(c, s) != 0) {
            finish(c, s, NS_GRPC_INTERNAL, "cannot start the response");
            return;
        }
        if (run_call(c, s, msg, len) != NS_GRPC_OK) {
            return;
        }
        in_consume(c, s, cur.pos);
    }
    if (s->answered) {
        (void)nghttp2_session_resume_data(c->s, s->id);
    }
}

/* The request half-closed: answer it. */
static void end_of_request(ns_h2_conn *c, stream *s)
{
    if (s->done) {
        return;
    }
    if (s->streaming) {
        pump_streaming(c, s);
        if (s->deferred) {
            return; /* resume ends it once its last messages ran */
        }
        if (!s->done) {
            if (s->in.len != 0) {
                finish(c, s, NS_GRPC_INTERNAL, "request ended inside a message");
            } else {
                if (!s->answered && start_body(c, s) != 0) {
                    finish(c, s, NS_GRPC_INTERNAL, "cannot start the response");
                    return;
                }
                finish(c, s, NS_GRPC_OK, NULL);
            }
        }
        return;
    }
    ns_cur cur;
    const uint8_t *msg;
    size_t len;
    ns_cur_init(&cur, s->in.data, s->in.len);
    ns_err e = ns_grpc_frame_next(&cur, c->max_msg, &msg, &len);
    if (e == NS_E_TRUNCATED) {
        finish(c, s, NS_GRPC_INTERNAL,
               s->in.len ? "request ended inside a message"
                         : "unary call without a request message");
        return;
    }
    if (e != NS_OK) {
        finish(c, s, ns_grpc_status_from_err(e), ns_err_msg());
        return;
    }
    if (ns_cur_left(&cur) != 0) {
        finish(c, s, NS_GRPC_INTERNAL, "unary call with more than one request message");
        return;
    }
    if (!out_room(c, s)) {
        defer(c, s, 1);
        return;
    }
    defer(c, s, 0);
    if (run_call(c, s, msg, len) != NS_GRPC_OK) {
        return;
    }
    in_drop(c, s);
    if (start_body(c, s) != 0) {
        s->answered = 0;
        finish(c, s, NS_GRPC_INTERNAL, "cannot start the response");
        return;
    }
    finish(c, s, NS_GRPC_OK, NULL);
}

/* The request headers are complete: validate and route. */
static void headers_done(ns_h2_conn *c, stream *s)
{
    char m[NS_GRPC_MSG_MAX];
    if (!s->is_post) {
        http_error(c, s, "405");
        return;
    }
    if (!s->ct_ok) {
        http_error(c, s, "415");
        return;
    }
    s->method = s->path_too_long ? -1 : c->h->route(c->h->app, s->path, &s->streaming);
    if (s->method < 0) {
        snprintf(m, sizeof m, "unknown method %.*s", 100, s->path);
        finish(c, s, NS_GRPC_UNIMPLEMENTED, m);
    }
}

/* --- nghttp2 callbacks --- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *f, void *user)
{
    ns_h2_conn *c = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    if (output_take(c, NS_H2_STREAM_COST, output_cap(c)) != 0) {
        /* Retryable by the client (RFC 9113 8.7); its frames find no stream and are dropped. */
        atomic_fetch_add_explicit(&st_streams_refused, 1, memory_order_relaxed);
        return nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                         NGHTTP2_REFUSED_STREAM) == 0
                   ? 0
                   : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    stream *s = ns_tc_calloc(1, sizeof *s);
    if (s == NULL) {
        output_put(c, NS_H2_STREAM_COST);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    atomic_fetch_add_explicit(&stat_streams, 1, memory_order_relaxed);
    s->id = f->hd.stream_id;
    s->method = -1;
    s->deadline = -1;
    s->out_since = -1;
    s->last_in = ns_now_ms();
    ns_buf_init_cached(&s->in, c->max_msg + NS_GRPC_PREFIX_LEN);
    s->next = c->streams;
    if (c->streams) {
        c->streams->prev = s;
    }
    c->streams = s;
    nghttp2_session_set_stream_user_data(session, s->id, s);
    return 0;
}

static int hdr_is(const uint8_t *name, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(name, want, n) == 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)flags, (void)user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0; /* client trailers carry nothing we use */
    }
    stream *s = nghttp2_session_get_stream_user_data(session, f->hd.stream_id);
    if (s == NULL) {
        return 0;
    }
    if (hdr_is(name, nlen, ":method")) {
        s->is_post = vlen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (hdr_is(name, nlen, ":path")) {
        if (vlen >= sizeof s->path) {
            s->path_too_long = 1;
        } else {
            memcpy(s->path, value, vlen);
            s->path[vlen] = 0;
            s->path_too_long = memchr(value, 0, vlen) != NULL;
        }
    } else if (hdr_is(name, nlen, "content-type")) {
        /* application/grpc, optionally +proto or ;params */
        s->ct_ok = vlen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                   (vlen == 16 || value[16] == '+' || value[16] == ';');
    } else if (hdr_is(name, nlen, "grpc-timeout")) {
        int64_t ms;
        if (ns_grpc_parse_timeout((const char *)value, vlen, &ms) == NS_OK) {
            s->deadline = ns_now_ms() + ms;
        }
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *f, void *user)
{
    ns_h2_conn *c = user;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) {
        return 0;
    }
    stream *s = nghttp2_session_get_stream_user_data(session, f->hd.stream_id);
    if (s == NULL) {
        return 0;
    }
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        headers_done(c, s);
    }
    if (f->hd.type == NGHTTP2_DATA && s->streaming && !s->done && !s->deferred) {
        pump_streaming(c, s);
    }
    if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !s->done) {
        s->ended = 1;
        if (!s->deferred) {
            end_of_request(c, s);
        }
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    ns_h2_conn *c = user;
    stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (s == NULL || s->done) {
        return 0; /* answered already (error or deadline): drop the rest */
    }
    s->last_in = ns_now_ms();
    if (ns_buf_append(&s->in, data, len) != NS_OK) {
        char m[NS_GRPC_MSG_MAX];
        snprintf(m, sizeof m, "request message exceeds the limit of %zu bytes", c->max_msg);
        finish(c, s, NS_GRPC_RESOURCE_EXHAUSTED, m);
        return 0;
    }
    /* Refuse an oversized message from its prefix, before buffering it. */
    ns_cur cur;
    const uint8_t *msg;
    size_t mlen;
    ns_cur_init(&cur, s->in.data, s->in.len);
    ns_err e = ns_grpc_frame_next(&cur, c->max_msg, &msg, &mlen);
    if (e != NS_OK && e != NS_E_TRUNCATED) {
        finish(c, s, ns_grpc_status_from_err(e), ns_err_msg());
    } else if (e == NS_OK && !s->streaming && ns_cur_left(&cur) != 0) {
        finish(c, s, NS_GRPC_INTERNAL, "unary call with more than one request message");
    } else if (in_account(c, s) != 0) {
        /* A chunk is at most one DATA frame (16 KiB by default): the overshoot is bounded. */
        finish(c, s, NS_GRPC_RESOURCE_EXHAUSTED,
               "server busy: too many request bytes buffered; retry later");
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *user)
{
    (void)code;
    stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (s != NULL) {
        nghttp2_session_set_stream_user_data(session, id, NULL);
        stream_free(user, s);
    }
    return 0;
}

/* --- the connection state machine --- */

/* nghttp2 allocates and frees a handful of small objects per stream: serve them from the
 * per-thread cache (see tcache.h). */
static void *mem_malloc(size_t n, void *u)
{
    (void)u;
    return ns_tc_malloc(n);
}

static void mem_free(void *p, void *u)
{
    (void)u;
    ns_tc_free(p);
}

static void *mem_calloc(size_t nmemb, size_t size, void *u)
{
    (void)u;
    return ns_tc_calloc(nmemb, size);
}

static void *mem_realloc(void *p, size_t n, void *u)
{
    (void)u;
    return ns_tc_realloc(p, n);
}

static nghttp2_mem tc_mem = {NULL, mem_malloc, mem_free, mem_calloc, mem_realloc};

ns_err ns_h2_conn_new(ns_h2_conn **cp, const ns_h2_handler *h, const char *peer, size_t extra)
{
    ns_h2_conn *c = calloc(1, sizeof *c);
    nghttp2_session_callbacks *cb = NULL;
    ENSURE(c != NULL, NS_E_NOMEM, "h2: out of memory for a connection");
    c->h = h;
    ns_h2_output_configure(h);
    if (extra > output_limit(h) || output_take(c, NS_H2_CONN_COST + extra, output_limit(h)) != 0) {
        atomic_fetch_add_explicit(&st_conns_refused, 1, memory_order_relaxed);
        free(c);
        BAIL(NS_E_UNAVAILABLE,
             "h2: connection from %s refused: the output budget of %zu bytes is in use (clients "
             "that do not read their answers are reaped after the stall timeout)",
             peer ? peer : "?", output_limit(h));
    }
    c->queued_since = c->unsent_since = c->reap_at = -1;
    c->max_msg = h->max_msg ? h->max_msg : NS_GRPC_MAX_MSG_DEFAULT;
    c->in_cap = c->max_msg + NS_GRPC_PREFIX_LEN + NS_H2_CONN_IN_SMALL;
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "");
    c->client = -1;
    snprintf(c->client_id, sizeof c->client_id, "-");
    c->created = ns_now_ms();
    c->last_active = c->created;
    ns_buf_init_cached(&c->out, OUT_MAX);
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        output_put(c, c->charged);
        free(c);
        BAIL(NS_E_NOMEM, "h2: out of memory for nghttp2 callbacks");
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    int rv = nghttp2_session_server_new3(&c->s, cb, c, NULL, &tc_mem);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) {
        output_put(c, c->charged);
        free(c);
        BAIL(NS_E_NOMEM, "h2: cannot create an nghttp2 session: %s", nghttp2_strerror(rv));
    }
    atomic_fetch_add_explicit(&stat_conns, 1, memory_order_relaxed);
    *cp = c;
    return NS_OK;
}

void ns_h2_conn_set_client(ns_h2_conn *c, int client, const char *id)
{
    c->client = client;
    snprintf(c->client_id, sizeof c->client_id, "%s", id && id[0] ? id : "-");
}

static ns_err check_preface(ns_h2_conn *c, const uint8_t *p, size_t n)
{
    static const char magic[] = NGHTTP2_CLIENT_MAGIC;
    size_t want = NGHTTP2_CLIENT_MAGIC_LEN - c->preface_got;
    size_t k = n < want ? n : want;
    if (memcmp(p, magic + c->preface_got, k) != 0) {
        c->fatal = 1;
        ns_buf_reset(&c->out);
        c->out_off = 0;
        GUARD(ns_buf_append(&c->out, HTTP1_REPLY, sizeof HTTP1_REPLY - 1));
        BAIL(NS_E_PROTO, "h2: client did not send the HTTP/2 preface (an HTTP/1 client?)");
    }
    c->preface_got += k;
    if (c->preface_got == NGHTTP2_CLIENT_MAGIC_LEN) {
        c->preface_ok = 1;
        nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, NS_H2_MAX_STREAMS},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384},
        };
        int rv = nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 2);
        ENSURE(rv == 0, NS_E_INTERNAL, "h2: cannot queue SETTINGS: %s", nghttp2_strerror(rv));
    }
    return NS_OK;
}

ns_err ns_h2_conn_recv(ns_h2_conn *c, const uint8_t *p, size_t n)
{
    if (c->fatal) {
        return NS_E_CLOSED;
    }
    if (!c->preface_ok) {
        GUARD(check_preface(c, p, n));
    }
    ssize_t rv = nghttp2_session_mem_recv(c->s, p, n);
    if (rv < 0) {
        c->fatal = 1;
        BAIL(NS_E_PROTO, "h2: protocol error from %s: %s", c->peer, nghttp2_strerror((int)rv));
    }
    return NS_OK;
}

/* Runs the messages that waited for output room while there is room; returns how many streams
 * moved on. Called outside nghttp2's callbacks (pending, tick). */
static int resume(ns_h2_conn *c)
{
    int n = 0;
    for (stream *s = c->streams; s != NULL && c->ndeferred > 0; s = s->next) {
        if (!s->deferred || s->done || !out_room(c, s)) {
            continue;
        }
        defer(c, s, 0);
        if (s->streaming) {
            pump_streaming(c, s);
        }
        if (s->ended && !s->deferred) {
            end_of_request(c, s);
        }
        n++;
    }
    return n;
}

/* Moves nghttp2's output into c->out until NS_H2_OUT_HIGH. */
static ns_err fill_out(ns_h2_conn *c)
{
    while (c->preface_ok && !c->fatal && c->out.len < NS_H2_OUT_HIGH) {
        const uint8_t *data;
        ssize_t k = nghttp2_session_mem_send(c->s, &data);
        if (k < 0) {
            c->fatal = 1;
            BAIL(NS_E_PROTO, "h2: cannot send to %s: %s", c->peer, nghttp2_strerror((int)k));
        }
        if (k == 0) {
            break;
        }
        ns_err e = ns_buf_append(&c->out, data, (size_t)k);
        output_sync(c, &c->out_charged, c->out.cap);
        GUARD(e);
    }
    return NS_OK;
}

ns_err ns_h2_conn_pending(ns_h2_conn *c, const uint8_t **p, size_t *n)
{
    if (c->out_off == c->out.len) {
        if (c->out.cap > OUT_KEEP) {
            ns_buf_free(&c->out);
        } else {
            ns_buf_reset(&c->out);
        }
        output_sync(c, &c->out_charged, c->out.cap);
        c->out_off = 0;
    }
    GUARD(fill_out(c));
    /* Answers leaving the queues make room for the messages that waited: run them too. */
    while (c->ndeferred > 0 && !c->fatal && c->reap_at < 0 && c->out.len < NS_H2_OUT_HIGH &&
           resume(c) > 0) {
        ns_log_flush(); /* their audit lines go out before their answers */
        GUARD(fill_out(c));
    }
    output_sync(c, &c->out_charged, c->out.cap); /* also what check_preface wrote */
    *n = c->out.len - c->out_off;
    *p = *n ? c->out.data + c->out_off : NULL;
    if (*n == 0) {
        c->unsent_since = -1;
    } else if (c->unsent_since < 0) {
        c->unsent_since = ns_now_ms();
    }
    return NS_OK;
}

void ns_h2_conn_sent(ns_h2_conn *c, size_t n)
{
    c->out_off += n;
    if (n != 0) {
        c->unsent_since = c->out_off < c->out.len ? ns_now_ms() : -1;
    }
}

/* Gives up on a peer that does not take its answers: GOAWAY now, closed when that is sent or
 * NS_H2_REAP_GRACE_MS later, whichever comes first. */
static void reap(ns_h2_conn *c, int64_t now, const char *why, int stall_ms)
{
    atomic_fetch_add_explicit(&st_conns_reaped, 1, memory_order_relaxed);
    ns_info("closing connection peer=%s client=%s reason=\"%s for %d ms\" queued=%zu unsent=%zu",
            c->peer, c->client_id, why, stall_ms, c->queued, c->out.len - c->out_off);
    c->reap_at = now + NS_H2_REAP_GRACE_MS;
    if (!c->preface_ok || c->fatal ||
        nghttp2_session_terminate_session(c->s, NGHTTP2_ENHANCE_YOUR_CALM) != 0) {
        c->reap_at = now;
    }
}

/* Drops the unsent output of a connection that is closed without sending it. */
static void drop_out(ns_h2_conn *c)
{
    ns_buf_free(&c->out);
    output_sync(c, &c->out_charged, 0);
    c->out_off = 0;
    c->unsent_since = -1;
}

/* A stream whose peer kept its window shut for stall_ms: its answers dropped now, reset (nghttp2
 * closes it as the RST_STREAM goes out). */
static void stream_reap(ns_h2_conn *c, stream *s)
{
    atomic_fetch_add_explicit(&st_streams_reaped, 1, memory_order_relaxed);
    ns_debug("resetting stream peer=%s stream=%d reason=\"flow-control window shut\" queued=%zu",
             c->peer, (int)s->id, s->out.len - s->out_off);
    s->reset = s->done = 1;
    defer(c, s, 0);
    in_drop(c, s);
    c->queued -= s->out.len - s->out_off;
    if (c->queued == 0) {
        c->queued_since = -1;
    }
    ns_buf_free(&s->out);
    s->out_off = 0;
    queue_sync(c, s);
    s->out_since = -1;
    if (nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL) != 0) {
        c->reap_at = ns_now_ms(); /* cannot even reset: close the connection */
    }
}

/* The stall reaper (h2server.h); returns 1 when it acted. */
static int tick_stalls(ns_h2_conn *c, int64_t now)
{
    int stall_ms = c->h->stall_ms ? c->h->stall_ms : NS_H2_STALL_MS_DEFAULT;
    if (c->reap_at >= 0) {
        if (now < c->reap_at) {
            return 0;
        }
        c->fatal = 1; /* GOAWAY not taken in time: close without it */
        drop_out(c);
        return 1;
    }
    if (c->unsent_since >= 0 && now - c->unsent_since >= stall_ms) {
        reap(c, now, "the peer does not read", stall_ms);
        return 1;
    }
    if (c->fatal || !c->preface_ok) {
        return 0;
    }
    if (c->queued_since >= 0 && now - c->queued_since >= stall_ms) {
        reap(c, now, "the peer keeps its flow-control window shut", stall_ms);
        return 1;
    }
    int n = 0;
    for (stream *s = c->streams; s; s = s->next) {
        if (s->out_since >= 0 && !s->reset && now - s->out_since >= stall_ms) {
            stream_reap(c, s);
            n = 1;
        }
    }
    return n;
}

int ns_h2_conn_tick(ns_h2_conn *c, int64_t now)
{
    int n = 0;
    if (!c->preface_ok && !c->fatal && now - c->created >= NS_H2_PREFACE_TIMEOUT_MS) {
        c->fatal = 1; /* silent or too slow to even start: free the slot */
        return 1;
    }
    if (tick_stalls(c, now)) {
        return 1;
    }
    int body_ms = c->h->body_idle_ms ? c->h->body_idle_ms : NS_H2_BODY_IDLE_MS_DEFAULT;
    int paused = !ns_h2_conn_want_read(c);
    for (stream *s = c->streams; s; s = s->next) {
        if (paused || s->deferred) {
            s->last_in = now; /* its body is not arriving because of us, not the client */
        }
        if (!s->done && s->deadline >= 0 && now >= s->deadline) {
            finish(c, s, NS_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
            n++;
        } else if (!s->done && (!s->streaming || s->in.len != 0) && now - s->last_in >= body_ms) {
            /* A unary request or a begun message that stopped arriving: free what it holds. */
            char m[NS_GRPC_MSG_MAX];
            snprintf(m, sizeof m, "request body idle for %d ms: send each message promptly",
                     body_ms);
            finish(c, s, NS_GRPC_DEADLINE_EXCEEDED, m);
            n++;
        }
    }
    if (c->ndeferred > 0 && !c->fatal && c->reap_at < 0) {
        n += resume(c); /* the process-wide budget may have room again */
    }
    if (c->preface_ok && !c->fatal && !c->idle_closing) {
        int idle_ms = c->h->idle_ms ? c->h->idle_ms : NS_H2_IDLE_MS_DEFAULT;
        if (c->streams != NULL) {
            c->last_active = now;
        } else if (now - c->last_active >= idle_ms) {
            /* Only open streams count as activity: PINGs, SETTINGS and the like do not. */
            c->idle_closing = 1;
            if (nghttp2_session_terminate_session(c->s, NGHTTP2_NO_ERROR) != 0) {
                c->fatal = 1;
            }
            n++;
        }
    }
    return n;
}

int ns_h2_conn_done(const ns_h2_conn *c)
{
    if (c->fatal) {
        return 1;
    }
    if (!c->preface_ok) {
        return 0;
    }
    return !nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s);
}

/* Request bytes buffered by the streams that wait for output room. Only theirs count: a large
 * upload on another stream must not stop the reading that brings the client's WINDOW_UPDATEs. */
static size_t deferred_in(const ns_h2_conn *c)
{
    size_t n = 0;
    for (const stream *s = c->streams; s != NULL && c->ndeferred > 0; s = s->next) {
        n += s->deferred ? s->in.len : 0;
    }
    return n;
}

int ns_h2_conn_want_read(const ns_h2_conn *c)
{
    return !c->fatal && c->reap_at < 0 && c->out.len - c->out_off < NS_H2_OUT_HIGH &&
           (c->ndeferred == 0 || deferred_in(c) < NS_H2_DEFER_IN_MAX);
}

const char *ns_h2_conn_peer(const ns_h2_conn *c)
{
    return c->peer;
}

void ns_h2_conn_shutdown(ns_h2_conn *c)
{
    if (c->preface_ok && !c->fatal) {
        (void)nghttp2_session_terminate_session(c->s, NGHTTP2_NO_ERROR);
    }
}

int ns_h2_conn_drain_notice(ns_h2_conn *c)
{
    if (c->fatal) {
        return 1;
    }
    if (!c->preface_ok) {
        return 0;
    }
    if (nghttp2_submit_shutdown_notice(c->s) != 0) {
        c->fatal = 1;
    }
    return 1;
}

int ns_h2_conn_drain_final(ns_h2_conn *c)
{
    if (c->fatal) {
        return 1;
    }
    if (!c->preface_ok) {
        return 0;
    }
    int32_t last = nghttp2_session_get_last_proc_stream_id(c->s);
    if (nghttp2_submit_goaway(c->s, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0) != 0) {
        c->fatal = 1;
    }
    return 1;
}

void ns_h2_conn_free(ns_h2_conn *c)
{
    if (c == NULL) {
        return;
    }
    atomic_fetch_sub_explicit(&stat_conns, 1, memory_order_relaxed);
    nghttp2_session_del(c->s);
    while (c->streams) {
        stream_free(c, c->streams);
    }
    drop_out(c);
    output_put(c, c->charged); /* the fixed costs */
    free(c);
}
