/*
 * Unit tests for h2server's output bound (issue 22): an nghttp2 client in memory that opens its
 * flow-control window late or never, against one ns_h2_conn. Checks that answers wait (deferral)
 * instead of piling up, that reading stops once waiting requests fill NS_H2_DEFER_IN_MAX, that
 * opening the window lets every request be answered, that a stream whose window stays shut is
 * reset while its connection goes on, that a connection none of whose answers move gets
 * GOAWAY(ENHANCE_YOUR_CALM) and is closed, that connections and streams are refused when the
 * process-wide budget is full, and that freeing returns the budget to where it started.
 */
#include <nghttp2/nghttp2.h>
#include <string.h>
#include <time.h>

#include "grpc.h"
#include "h2server.h"
#include "iox.h"
#include "t.h"

#define ANSWER 4096 /* bytes of each answer */

static int calls;

static int route(void *app, const char *path, int *streaming)
{
    (void)app;
    *streaming = strcmp(path, "/t.S/Stream") == 0;
    return *streaming || strcmp(path, "/t.S/Unary") == 0 ? 0 : -1;
}

static int call(void *app, int method, const ns_h2_req *req, ns_buf *out, char *msg, size_t cap)
{
    (void)app, (void)method, (void)req, (void)msg, (void)cap;
    static uint8_t a[ANSWER];
    calls++;
    return ns_buf_append(out, a, sizeof a) == NS_OK ? NS_GRPC_OK : NS_GRPC_RESOURCE_EXHAUSTED;
}

/* The client side: what it received. */
typedef struct {
    nghttp2_session *s;
    size_t data;      /* DATA bytes received */
    int rst_cancel;   /* RST_STREAM(CANCEL) received */
    int rst_refused;  /* RST_STREAM(REFUSED_STREAM) received */
    int goaway;       /* GOAWAY error code + 1, 0 none */
    int32_t reset_id; /* the last stream reset */
} client;

static int cl_frame(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
    (void)s;
    client *cl = u;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        cl->rst_cancel += f->rst_stream.error_code == NGHTTP2_CANCEL;
        cl->rst_refused += f->rst_stream.error_code == NGHTTP2_REFUSED_STREAM;
        cl->reset_id = f->hd.stream_id;
    } else if (f->hd.type == NGHTTP2_GOAWAY) {
        cl->goaway = (int)f->goaway.error_code + 1;
    }
    return 0;
}

static int cl_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                   void *u)
{
    (void)s, (void)flags, (void)id, (void)d;
    ((client *)u)->data += n;
    return 0;
}

/* window: the client's SETTINGS_INITIAL_WINDOW_SIZE; its connection window is left at 64 KiB
 * and never grows unless the test opens it; automatic WINDOW_UPDATE is off. */
static void cl_new(client *cl, uint32_t window)
{
    memset(cl, 0, sizeof *cl);
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cl_frame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cl_data);
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_session_client_new2(&cl->s, cb, cl, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};
    (void)nghttp2_submit_settings(cl->s, NGHTTP2_FLAG_NONE, iv, 1);
}

/* Opens a stream on path with body (NULL: headers only, stream left open). */
typedef struct {
    const uint8_t *p;
    size_t len, off;
    int end;
} body;

static ssize_t cl_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *u)
{
    (void)s, (void)id, (void)u;
    body *b = src->ptr;
    size_t n = b->len - b->off < len ? b->len - b->off : len;
    memcpy(buf, b->p + b->off, n);
    b->off += n;
    if (b->off == b->len) {
        *flags |= b->end ? NGHTTP2_DATA_FLAG_EOF
                         : NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
}

static int32_t cl_open(client *cl, const char *path, body *b)
{
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"t", 10, 1, 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0},
    };
    nghttp2_data_provider prov = {.source = {.ptr = b}, .read_callback = cl_read};
    return nghttp2_submit_request(cl->s, NULL, nv, 5, &prov, NULL);
}

/* n gRPC messages of len bytes each. */
static size_t messages(uint8_t *out, int n, size_t len)
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        ns_grpc_frame_prefix(out + o, (uint32_t)len);
        memset(out + o + NS_GRPC_PREFIX_LEN, 'm', len);
        o += NS_GRPC_PREFIX_LEN + len;
    }
    return o;
}

/* Moves bytes both ways until neither side has more; the server's input only while it wants to
 * read (as h2loop does). Returns 1 when the server has finished (done and drained). */
static int pump(client *cl, ns_h2_conn *c)
{
    for (int round = 0; round < 10000; round++) {
        int moved = 0;
        if (ns_h2_conn_want_read(c)) {
            const uint8_t *d;
            ssize_t k = nghttp2_session_mem_send(cl->s, &d);
            if (k > 0) {
                if (ns_h2_conn_recv(c, d, (size_t)k) != NS_OK) {
                    return 1;
                }
                moved = 1;
            }
        }
        const uint8_t *p;
        size_t n;
        if (ns_h2_conn_pending(c, &p, &n) != NS_OK) {
            return 1;
        }
        if (n) {
            (void)nghttp2_session_mem_recv(cl->s, p, n);
            ns_h2_conn_sent(c, n);
            moved = 1;
        }
        if (!moved) {
            return ns_h2_conn_done(c);
        }
    }
    return 0;
}

static ns_h2_handler handler(int stall_ms, size_t max_output)
{
    return (ns_h2_handler){
        .route = route, .call = call, .stall_ms = stall_ms, .max_output = max_output};
}

static size_t held(void)
{
    ns_h2_output_stats st;
    ns_h2_output_stats_get(&st);
    return st.held;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* 10 streams of 20 messages against a shut window: answers wait; opening it answers all. */
static void test_deferral_and_resume(void)
{
    static uint8_t msgs[20 * (NS_GRPC_PREFIX_LEN + 100)];
    size_t mlen = messages(msgs, 20, 100);
    ns_h2_handler h = handler(0, 0);
    size_t start = held();
    ns_h2_conn *c;
    client cl;
    CHECK(ns_h2_conn_new(&c, &h, "t", 0) == NS_OK, "deferral: connection");
    cl_new(&cl, 0);
    body b[10];
    for (int i = 0; i < 10; i++) {
        b[i] = (body){.p = msgs, .len = mlen, .end = 1};
        (void)cl_open(&cl, "/t.S/Stream", &b[i]);
    }
    calls = 0;
    (void)pump(&cl, c);
    size_t max_calls = (NS_H2_CONN_OUT_MAX + 10 * NS_H2_STREAM_OUT_MAX) / ANSWER + 10;
    CHECK(calls > 0 && calls < 200 && (size_t)calls <= max_calls,
          "deferral: %d of 200 messages answered while the window is shut (at most %zu)", calls,
          max_calls);
    CHECK(cl.data == 0, "deferral: no DATA through a shut window");
    CHECK(held() - start <
              NS_H2_CONN_COST + 10 * NS_H2_STREAM_COST + NS_H2_CONN_OUT_MAX + 64 * 1024,
          "deferral: the connection holds %zu bytes (bounded)", held() - start);
    /* Open the window: every message is answered and the client gets every byte. */
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20}};
    (void)nghttp2_submit_settings(cl.s, NGHTTP2_FLAG_NONE, iv, 1);
    (void)nghttp2_submit_window_update(cl.s, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    (void)pump(&cl, c);
    CHECK(calls == 200, "resume: all 200 messages answered once the window opened (%d)", calls);
    CHECK(cl.data == 200 * (NS_GRPC_PREFIX_LEN + ANSWER), "resume: the client got every answer");
    nghttp2_session_del(cl.s);
    ns_h2_conn_free(c);
    CHECK(held() == start, "deferral: freeing returns the budget (%zu -> %zu)", start, held());
}

/* A large upload on one stream while another waits for output room: reading goes on (only the
 * waiting requests count towards NS_H2_DEFER_IN_MAX), so the client's window opening, sent
 * after the upload began, arrives and every answer goes out. */
static void test_upload_while_waiting(void)
{
    static uint8_t msgs[20 * (NS_GRPC_PREFIX_LEN + 100)];
    static uint8_t big[NS_GRPC_PREFIX_LEN + 300 * 1024];
    size_t mlen = messages(msgs, 20, 100);
    size_t blen = messages(big, 1, 300 * 1024);
    ns_h2_handler h = handler(0, 0);
    ns_h2_conn *c;
    client cl;
    CHECK(ns_h2_conn_new(&c, &h, "t", 0) == NS_OK, "upload: connection");
    cl_new(&cl, 0);
    body bs = {.p = msgs, .len = mlen, .end = 1};
    (void)cl_open(&cl, "/t.S/Stream", &bs);
    calls = 0;
    (void)pump(&cl, c);
    CHECK(calls > 0 && calls < 20, "upload: the stream's answers wait (%d of 20 run)", calls);
    body bu = {.p = big, .len = blen, .end = 1};
    (void)cl_open(&cl, "/t.S/Unary", &bu);
    for (int i = 0; i < 8; i++) { /* a part of the upload only */
        const uint8_t *d;
        ssize_t k = nghttp2_session_mem_send(cl.s, &d);
        if (k > 0 && ns_h2_conn_want_read(c) && ns_h2_conn_recv(c, d, (size_t)k) != NS_OK) {
            break;
        }
    }
    CHECK(ns_h2_conn_want_read(c), "upload: still read while a large request arrives");
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20}};
    (void)nghttp2_submit_settings(cl.s, NGHTTP2_FLAG_NONE, iv, 1);
    (void)nghttp2_submit_window_update(cl.s, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    (void)pump(&cl, c);
    CHECK(calls == 21 && cl.data == 21 * (NS_GRPC_PREFIX_LEN + ANSWER),
          "upload: the window opened behind the upload: all 21 answers delivered (%d calls)",
          calls);
    nghttp2_session_del(cl.s);
    ns_h2_conn_free(c);
}

/* Requests that wait fill NS_H2_DEFER_IN_MAX: reading stops; the stall reaper closes it. */
static void test_reap_connection(void)
{
    static uint8_t msgs[200 * (NS_GRPC_PREFIX_LEN + 1000)];
    size_t mlen = messages(msgs, 200, 1000);
    ns_h2_handler h = handler(1000, 0);
    size_t start = held();
    ns_h2_conn *c;
    client cl;
    CHECK(ns_h2_conn_new(&c, &h, "t", 0) == NS_OK, "reap: connection");
    cl_new(&cl, 0);
    body b = {.p = msgs, .len = mlen, .end = 0};
    (void)cl_open(&cl, "/t.S/Stream", &b);
    (void)pump(&cl, c);
    CHECK(!ns_h2_conn_want_read(c), "reap: reading stops once waiting requests fill %u bytes",
          NS_H2_DEFER_IN_MAX);
    int64_t now = ns_now_ms();
    CHECK(ns_h2_conn_tick(c, now + 500) == 0 && cl.goaway == 0, "reap: not before the timeout");
    CHECK(ns_h2_conn_tick(c, now + 1001) == 1, "reap: after the timeout");
    (void)pump(&cl, c);
    CHECK(cl.goaway == NGHTTP2_ENHANCE_YOUR_CALM + 1,
          "reap: the client got GOAWAY(ENHANCE_YOUR_CALM) (%d)", cl.goaway - 1);
    CHECK(ns_h2_conn_done(c), "reap: the connection is done once GOAWAY is out");
    nghttp2_session_del(cl.s);
    ns_h2_conn_free(c);
    CHECK(held() == start, "reap: freeing returns the budget");
}

/* A client that does not read: GOAWAY cannot go out either; closed after the grace period. */
static void test_reap_unread(void)
{
    static uint8_t msgs[40 * (NS_GRPC_PREFIX_LEN + 10)];
    size_t mlen = messages(msgs, 40, 10);
    ns_h2_handler h = handler(1000, 0);
    ns_h2_conn *c;
    client cl;
    CHECK(ns_h2_conn_new(&c, &h, "t", 0) == NS_OK, "unread: connection");
    cl_new(&cl, 1u << 20);
    (void)nghttp2_submit_window_update(cl.s, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    body b = {.p = msgs, .len = mlen, .end = 1};
    (void)cl_open(&cl, "/t.S/Stream", &b);
    for (int i = 0; i < 100; i++) { /* the client sends but never takes a byte */
        const uint8_t *d;
        ssize_t k = nghttp2_session_mem_send(cl.s, &d);
        if (k <= 0 || ns_h2_conn_recv(c, d, (size_t)k) != NS_OK) {
            break;
        }
    }
    const uint8_t *p;
    size_t n;
    CHECK(ns_h2_conn_pending(c, &p, &n) == NS_OK && n > 0, "unread: output waits (%zu bytes)", n);
    int64_t now = ns_now_ms();
    CHECK(ns_h2_conn_tick(c, now + 1001) == 1, "unread: reaped after the timeout");
    CHECK(ns_h2_conn_tick(c, now + 1001 + NS_H2_REAP_GRACE_MS) == 1 &&
              ns_h2_conn_pending(c, &p, &n) == NS_OK && n == 0 && ns_h2_conn_done(c),
          "unread: closed after the grace period, unsent bytes dropped");
    nghttp2_session_del(cl.s);
    ns_h2_conn_free(c);
}

/* Two streams: A's window is opened, B's stays shut. B is reset; the connection goes on. */
static void test_reap_stream(void)
{
    static uint8_t one[NS_GRPC_PREFIX_LEN + 10];
    size_t mlen = messages(one, 1, 10);
    ns_h2_handler h = handler(1000, 0);
    ns_h2_conn *c;
    client cl;
    CHECK(ns_h2_conn_new(&c, &h, "t", 0) == NS_OK, "stream reap: connection");
    cl_new(&cl, 0);
    (void)nghttp2_submit_window_update(cl.s, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    body ba = {.p = one, .len = mlen, .end = 0}, bb = {.p = one, .len = mlen, .end = 1};
    int32_t a = cl_open(&cl, "/t.S/Stream", &ba);
    int32_t bid = cl_open(&cl, "/t.S/Stream", &bb);
    (void)pump(&cl, c);
    int64_t t2 = ns_now_ms(); /* B's answer is queued by now */
    sleep_ms(50);
    (void)nghttp2_submit_window_update(cl.s, NGHTTP2_FLAG_NONE, a, 1 << 20);
    (void)pump(&cl, c); /* A's answer moves: the connection made progress after B's stalled */
    CHECK(cl.data == NS_GRPC_PREFIX_LEN + ANSWER, "stream reap: A's answer arrived");
    CHECK(ns_h2_conn_tick(c, t2 + 1001) == 1, "stream reap: B stalled for the timeout");
    (void)pump(&cl, c);
    CHECK(cl.rst_cancel == 1 && cl.reset_id == bid && cl.goaway == 0,
          "stream reap: B reset with CANCEL, no GOAWAY");
    CHECK(!ns_h2_conn_done(c), "stream reap: the connection goes on");
    nghttp2_session_del(cl.s);
    ns_h2_conn_free(c);
}

/* The process-wide budget: a connection it cannot take is refused; a connection that holds
 * unsent answers gets no new streams beyond the reserve; freeing returns everything. */
static void test_budget(void)
{
    size_t limit = 2 * NS_H2_OUTPUT_RESERVE;
    ns_h2_handler h = handler(0, limit);
    size_t start = held();
    ns_h2_conn *big;
    CHECK_ERR(ns_h2_conn_new(&big, &h, "t", limit), NS_E_UNAVAILABLE,
              "budget: a connection whose state exceeds the budget is refused");
    ns_h2_conn *c[300];
    int n = 0;
    while (n < 300 && ns_h2_conn_new(&c[n], &h, "t", 32u * 1024) == NS_OK) {
        n++;
    }
    size_t want = (limit - start) / (NS_H2_CONN_COST + 32u * 1024);
    CHECK((size_t)n == want, "budget: %d connections of %u bytes fit in %zu (want %zu)", n,
          NS_H2_CONN_COST + 32u * 1024, limit, want);
    ns_h2_output_stats st;
    ns_h2_output_stats_get(&st);
    CHECK(st.limit == limit && st.conns_refused >= 2,
          "budget: stats report the limit and refusals");
    for (int i = 0; i < n; i++) {
        ns_h2_conn_free(c[i]);
    }
    CHECK(held() == start, "budget: freeing returns it");
    /* Streams: fill the budget to just below the reserve, then a connection holding unsent
     * answers is refused new streams while one that holds nothing still gets them. */
    ns_h2_conn *hog;
    size_t fill = limit - NS_H2_OUTPUT_RESERVE - NS_H2_CONN_COST - held() - 1024;
    CHECK(ns_h2_conn_new(&hog, &h, "t", fill) == NS_OK, "budget: a large connection");
    ns_h2_conn *blocked;
    client cl;
    CHECK(ns_h2_conn_new(&blocked, &h, "t", 0) == NS_OK, "budget: a client with a shut window");
    cl_new(&cl, 0);
    static uint8_t one[NS_GRPC_PREFIX_LEN + 10];
    size_t mlen = messages(one, 1, 10);
    body b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = (body){.p = one, .len = mlen, .end = 1};
        (void)cl_open(&cl, "/t.S/Unary", &b[i]);
        (void)pump(&cl, blocked); /* the first answer waits: the others find unsent answers */
    }
    CHECK(cl.rst_refused == 7,
          "budget: past the reserve, a connection with unsent answers is refused streams (%d "
          "of 7)",
          cl.rst_refused);
    client ok;
    ns_h2_conn *fresh;
    CHECK(ns_h2_conn_new(&fresh, &h, "t", 0) == NS_OK, "budget: a reading client connects");
    cl_new(&ok, 1u << 20);
    body bo = {.p = one, .len = mlen, .end = 1};
    (void)cl_open(&ok, "/t.S/Unary", &bo);
    (void)pump(&ok, fresh);
    CHECK(ok.rst_refused == 0 && ok.data == NS_GRPC_PREFIX_LEN + ANSWER,
          "budget: a client that holds nothing is served from the reserve");
    nghttp2_session_del(ok.s);
    nghttp2_session_del(cl.s);
    ns_h2_conn_free(fresh);
    ns_h2_conn_free(blocked);
    ns_h2_conn_free(hog);
    CHECK(held() == start, "budget: all returned");
}

int main(void)
{
    test_deferral_and_resume();
    test_upload_while_waiting();
    test_reap_connection();
    test_reap_unread();
    test_reap_stream();
    test_budget();
    return t_failed ? 1 : 0;
}
