/*
 * vsock_dev: see vsock_dev.h. One connection struct per guest stream, keyed by (guest port,
 * host-side port). Control packets owed to the guest are flags on the connection (RST for
 * packets that match no connection go through a small bounded ring), and connections with
 * something to send wait on a FIFO "ready" list that the rx pump serves round-robin, one packet
 * per turn. A host socket's EPOLLIN is one-shot in effect: when it fires the socket is marked
 * readable and its read interest dropped until a read finds it empty, so a socket the guest has
 * no credit or buffers for never spins the loop.
 *
 * Close sequence (as Linux's virtio transport does it): host EOF -> SHUTDOWN(SEND) to the guest;
 * guest SHUTDOWN(SEND) -> shutdown(SHUT_WR) on the host socket once its bytes are written; both
 * directions done -> SHUTDOWN(RCV|SEND) and wait for the guest's RST (or reset after a timeout);
 * guest SHUTDOWN(RCV|SEND) -> write what is buffered, RST, free.
 */
#include "vsock_dev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "iox.h"
#include "log.h"

#define VD_LISTEN_BACKLOG 64
#define VD_RST_RING 64
#define VD_CLOSE_TIMEOUT_MS 8000
#define VD_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define VD_HYBRID_LINE_MAX 32
#define VD_LOCAL_PORT_FIRST 1024u
#define VD_MAX_CONNS_LIMIT 65536u
#define VD_BUF_MIN 4096u
#define VD_BUF_MAX (16u * 1024 * 1024)

/* Pending control packets of a connection. */
#define P_REQUEST 1u
#define P_RESPONSE 2u
#define P_CREDIT_UPDATE 4u
#define P_CREDIT_REQUEST 8u
#define P_SHUTDOWN 16u
#define P_RST 32u

typedef enum {
    ST_HYBRID_LINE,   /* host client on the hybrid socket, reading "CONNECT P\n" */
    ST_CONNECT_HOST,  /* guest asked; our connect to the host address is in progress */
    ST_CONNECT_GUEST, /* host client waiting; REQUEST sent or owed to the guest */
    ST_OPEN,
    ST_CLOSING, /* sent SHUTDOWN(RCV|SEND), waiting for the guest's RST */
    ST_DEAD,    /* RST owed to the guest; the host socket is already closed */
} conn_state;

typedef struct vconn vconn;
struct vconn {
    int tag; /* NS_VTAG_CONN: first, the epoll cookie */
    int fd;
    uint32_t epmask;
    int registered;
    conn_state st;
    int hybrid;
    uint32_t gport, hport;
    uint32_t pending;
    uint32_t shut_to_send;
    int64_t deadline; /* ms, 0 = none */
    /* guest -> host */
    uint8_t *in;
    uint32_t in_off, in_len;
    uint32_t fwd_cnt, fwd_told;
    uint32_t guest_shut; /* SHUTDOWN flags received */
    int host_wr_shut;
    /* host -> guest */
    uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
    int readable; /* EPOLLIN seen, not yet read empty */
    int host_eof;
    uint32_t sent_shut;
    /* the hybrid line, then "OK PORT\n" written before any data */
    char line[VD_HYBRID_LINE_MAX];
    uint32_t line_len;
    char ok[24];
    uint32_t ok_len, ok_off;
    int in_ready;
    vconn *next, *rnext;
};

typedef struct {
    int tag; /* NS_VTAG_LISTENER */
    int fd;
    int hybrid;
    uint32_t gport;
} vlistener;

typedef struct {
    uint32_t gport, hport;
} rst_entry;

struct ns_vsock_dev {
    ns_vsock_cfg cfg;
    ns_vsock_route connect[NS_VSOCK_MAX_ROUTES];
    ns_vsock_route listen[NS_VSOCK_MAX_ROUTES];
    ns_addr hybrid;
    int epfd;
    const ns_vmem *mem;
    ns_vq *rx, *tx;
    vlistener *lis;
    size_t nlis;
    vconn *conns;
    size_t nconns;
    vconn *rhead, *rtail;
    rst_entry rst[VD_RST_RING];
    size_t rst_head, rst_len;
    uint32_t next_local_port;
    ns_vsock_stats stats;
};

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

void ns_vsock_hdr_parse(ns_vsock_hdr *h, const uint8_t b[NS_VSOCK_HDR_LEN])
{
    h->src_cid = get_le(b, 8);
    h->dst_cid = get_le(b + 8, 8);
    h->src_port = (uint32_t)get_le(b + 16, 4);
    h->dst_port = (uint32_t)get_le(b + 20, 4);
    h->len = (uint32_t)get_le(b + 24, 4);
    h->type = (uint16_t)get_le(b + 28, 2);
    h->op = (uint16_t)get_le(b + 30, 2);
    h->flags = (uint32_t)get_le(b + 32, 4);
    h->buf_alloc = (uint32_t)get_le(b + 36, 4);
    h->fwd_cnt = (uint32_t)get_le(b + 40, 4);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

void ns_vsock_hdr_encode(uint8_t b[NS_VSOCK_HDR_LEN], const ns_vsock_hdr *h)
{
    put_le(b, h->src_cid, 8);
    put_le(b + 8, h->dst_cid, 8);
    put_le(b + 16, h->src_port, 4);
    put_le(b + 20, h->dst_port, 4);
    put_le(b + 24, h->len, 4);
    put_le(b + 28, h->type, 2);
    put_le(b + 30, h->op, 2);
    put_le(b + 32, h->flags, 4);
    put_le(b + 36, h->buf_alloc, 4);
    put_le(b + 40, h->fwd_cnt, 4);
}

/* ---- connections ---- */

static void ep_update(ns_vsock_dev *d, vconn *c)
{
    uint32_t want = 0;
    if (c->fd >= 0) {
        if (c->st == ST_HYBRID_LINE) {
            want |= EPOLLIN;
        } else if (c->st == ST_CONNECT_HOST) {
            want |= EPOLLOUT;
        } else if (c->st == ST_OPEN || c->st == ST_CLOSING) {
            if (!c->readable && !c->host_eof && !(c->guest_shut & NS_VSOCK_SHUTDOWN_RCV)) {
                want |= EPOLLIN;
            }
            if (c->in_len > 0 || c->ok_off < c->ok_len) {
                want |= EPOLLOUT;
            }
        }
    }
    if (c->fd < 0) {
        return;
    }
    if (want == 0) {
        if (c->registered) {
            (void)epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
            c->registered = 0;
        }
        c->epmask = 0;
        return;
    }
    if (c->registered && want == c->epmask) {
        return;
    }
    struct epoll_event ev = {.events = want, .data.ptr = c};
    if (epoll_ctl(d->epfd, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == 0) {
        c->registered = 1;
        c->epmask = want;
    }
}

static void close_host(ns_vsock_dev *d, vconn *c)
{
    if (c->fd >= 0) {
        if (c->registered) {
            (void)epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        }
        close(c->fd);
        c->fd = -1;
        c->registered = 0;
    }
}

static void ready(ns_vsock_dev *d, vconn *c)
{
    if (c->in_ready) {
        return;
    }
    c->in_ready = 1;
    c->rnext = NULL;
    if (d->rtail) {
        d->rtail->rnext = c;
    } else {
        d->rhead = c;
    }
    d->rtail = c;
}

static vconn *ready_pop(ns_vsock_dev *d)
{
    vconn *c = d->rhead;
    if (c) {
        d->rhead = c->rnext;
        if (!d->rhead) {
            d->rtail = NULL;
        }
        c->in_ready = 0;
        c->rnext = NULL;
    }
    return c;
}

static void conn_free(ns_vsock_dev *d, vconn *c)
{
    close_host(d, c);
    if (c->in_ready) {
        vconn **pp = &d->rhead;
        vconn *prev = NULL;
        while (*pp && *pp != c) {
            prev = *pp;
            pp = &(*pp)->rnext;
        }
        if (*pp) {
            *pp = c->rnext;
            if (d->rtail == c) {
                d->rtail = prev;
            }
        }
    }
    for (vconn **pp = &d->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    d->nconns--;
    d->stats.closed++;
    free(c->in);
    free(c);
}

/* The connection is over: the host socket closes now, the guest gets a RST, then it is freed. */
static void conn_reset(ns_vsock_dev *d, vconn *c, const char *why)
{
    ns_debug("vsock reset guest_port=%u host_port=%u reason=\"%s\"", c->gport, c->hport, why);
    close_host(d, c);
    if (c->st == ST_HYBRID_LINE || (c->pending & P_REQUEST)) {
        conn_free(d, c); /* the guest never heard of it */
        return;
    }
    c->st = ST_DEAD;
    c->pending = P_RST;
    ready(d, c);
}

static vconn *conn_find(ns_vsock_dev *d, uint32_t gport, uint32_t hport)
{
    for (vconn *c = d->conns; c; c = c->next) {
        if (c->gport == gport && c->hport == hport && c->st != ST_HYBRID_LINE) {
            return c;
        }
    }
    return NULL;
}

static vconn *conn_new(ns_vsock_dev *d, int fd)
{
    if (d->nconns >= d->cfg.max_conns) {
        return NULL;
    }
    vconn *c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->tag = NS_VTAG_CONN;
    c->fd = fd;
    c->next = d->conns;
    d->conns = c;
    d->nconns++;
    d->stats.opened++;
    return c;
}

static uint32_t peer_credit(const vconn *c)
{
    uint32_t inflight = c->tx_cnt - c->peer_fwd_cnt;
    return inflight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - inflight;
}

/* A local port for a host-initiated connection: unused with this guest port. */
static int alloc_local_port(ns_vsock_dev *d, uint32_t gport, uint32_t *out)
{
    for (uint32_t tries = 0; tries < 65536 - VD_LOCAL_PORT_FIRST; tries++) {
        uint32_t p = d->next_local_port++;
        if (d->next_local_port >= 65536) {
            d->next_local_port = VD_LOCAL_PORT_FIRST;
        }
        if (!conn_find(d, gport, p)) {
            *out = p;
            return 1;
        }
    }
    return 0;
}

static void start_guest_connect(ns_vsock_dev *d, vconn *c, uint32_t gport, int64_t now)
{
    c->gport = gport;
    if (!alloc_local_port(d, gport, &c->hport)) {
        close_host(d, c);
        conn_free(d, c);
        return;
    }
    c->st = ST_CONNECT_GUEST;
    c->pending |= P_REQUEST;
    c->deadline = now + d->cfg.connect_timeout_ms;
    ep_update(d, c);
    ready(d, c);
}

/* Writes buffered guest bytes to the host socket; completes a pending half-close. */
static void flush_in(ns_vsock_dev *d, vconn *c)
{
    while (c->fd >= 0 && c->ok_off < c->ok_len) {
        ssize_t n = send(c->fd, c->ok + c->ok_off, c->ok_len - c->ok_off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            break;
        }
        if (n <= 0) {
            conn_reset(d, c, "host write failed");
            return;
        }
        c->ok_off += (uint32_t)n;
    }
    while (c->fd >= 0 && c->ok_off == c->ok_len && c->in_len > 0) {
        ssize_t n = send(c->fd, c->in + c->in_off, c->in_len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            break;
        }
        if (n <= 0) {
            conn_reset(d, c, "host write failed");
            return;
        }
        c->in_off += (uint32_t)n;
        c->in_len -= (uint32_t)n;
        c->fwd_cnt += (uint32_t)n;
        d->stats.bytes_to_host += (uint64_t)n;
        if (c->in_len == 0) {
            c->in_off = 0;
        }
    }
    if (c->st != ST_OPEN && c->st != ST_CLOSING) {
        return;
    }
    /* Tell the guest about freed room before it runs dry: when its view is under half. */
    uint32_t told_free = d->cfg.buf_size - (c->fwd_cnt - c->fwd_told + c->in_len);
    if (c->fwd_cnt != c->fwd_told && told_free < d->cfg.buf_size / 2) {
        c->pending |= P_CREDIT_UPDATE;
        ready(d, c);
    }
    if (c->in_len == 0 && (c->guest_shut & NS_VSOCK_SHUTDOWN_SEND) && !c->host_wr_shut &&
        c->fd >= 0) {
        (void)shutdown(c->fd, SHUT_WR);
        c->host_wr_shut = 1;
    }
    if (c->in_len == 0 && c->guest_shut == (NS_VSOCK_SHUTDOWN_RCV | NS_VSOCK_SHUTDOWN_SEND)) {
        conn_reset(d, c, "closed by the guest");
        return;
    }
    /* Both directions finished: ask the guest to close (it answers with RST). */
    if (c->st == ST_OPEN && c->host_wr_shut && (c->sent_shut & NS_VSOCK_SHUTDOWN_SEND)) {
        c->shut_to_send = NS_VSOCK_SHUTDOWN_RCV | NS_VSOCK_SHUTDOWN_SEND;
        c->pending |= P_SHUTDOWN;
        ready(d, c);
    }
    if (c->fd >= 0) {
        ep_update(d, c);
    }
}

/* ---- packets from the guest ---- */

static void queue_orphan_rst(ns_vsock_dev *d, const ns_vsock_hdr *h)
{
    if (h->op == NS_VSOCK_OP_RST || d->rst_len == VD_RST_RING) {
        return; /* never answer a RST; a full ring drops (the guest times out) */
    }
    rst_entry *e = &d->rst[(d->rst_head + d->rst_len) % VD_RST_RING];
    e->gport = h->src_port;
    e->hport = h->dst_port;
    d->rst_len++;
}

static const ns_vsock_route *route_find(const ns_vsock_route *r, size_t n, uint32_t port)
{
    for (size_t i = 0; i < n; i++) {
        if (r[i].port == port) {
            return &r[i];
        }
    }
    return NULL;
}

static void guest_request(ns_vsock_dev *d, const ns_vsock_hdr *h, int64_t now)
{
    const ns_vsock_route *r = route_find(d->connect, d->cfg.nconnect, h->dst_port);
    if (!r) {
        ns_debug("vsock refused guest_port=%u port=%u reason=\"no route\"", h->src_port,
                 h->dst_port);
        queue_orphan_rst(d, h);
        return;
    }
    int fd = -1, in_progress = 0;
    if (ns_addr_connect_start(&r->addr, &fd, &in_progress) != NS_OK) {
        ns_warn("vsock connect failed port=%u err=\"%s\"", h->dst_port, ns_err_msg());
        queue_orphan_rst(d, h);
        return;
    }
    vconn *c = conn_new(d, fd);
    if (!c) {
        close(fd);
        ns_warn("vsock refused port=%u reason=\"connection limit %zu reached\"", h->dst_port,
                d->cfg.max_conns);
        queue_orphan_rst(d, h);
        return;
    }
    c->gport = h->src_port;
    c->hport = h->dst_port;
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    if (in_progress) {
        c->st = ST_CONNECT_HOST;
        c->deadline = now + d->cfg.connect_timeout_ms;
    } else {
        c->st = ST_OPEN;
        c->pending |= P_RESPONSE;
        ready(d, c);
    }
    ep_update(d, c);
}

static void guest_packet(ns_vsock_dev *d, const ns_vsock_hdr *h, const ns_vq_chain *ch, int64_t now)
{
    if (h->src_cid != d->cfg.guest_cid) {
        ns_debug("vsock dropped packet from cid %llu (the guest is %llu)",
                 (unsigned long long)h->src_cid, (unsigned long long)d->cfg.guest_cid);
        return;
    }
    if (h->dst_cid != d->cfg.parent_cid || h->type != NS_VSOCK_TYPE_STREAM) {
        queue_orphan_rst(d, h);
        return;
    }
    vconn *c = conn_find(d, h->src_port, h->dst_port);
    int bad_len = h->len > NS_VSOCK_MAX_PAYLOAD || h->len > ch->rd_len - NS_VSOCK_HDR_LEN ||
                  (h->op != NS_VSOCK_OP_RW && h->len != 0);
    if (!c) {
        if (h->op == NS_VSOCK_OP_REQUEST && !bad_len) {
            guest_request(d, h, now);
        } else {
            queue_orphan_rst(d, h);
        }
        return;
    }
    if (c->st == ST_DEAD) {
        return; /* our RST is on its way */
    }
    if (bad_len) {
        ns_warn("vsock malformed packet guest_port=%u op=%u len=%u: resetting", h->src_port, h->op,
                h->len);
        conn_reset(d, c, "malformed packet");
        return;
    }
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    if (c->readable && peer_credit(c) > 0) {
        ready(d, c); /* any packet may carry new credit */
    }
    switch (h->op) {
    case NS_VSOCK_OP_RESPONSE:
        if (c->st != ST_CONNECT_GUEST || (c->pending & P_REQUEST)) {
            conn_reset(d, c, "unexpected RESPONSE");
            return;
        }
        c->st = ST_OPEN;
        c->deadline = 0;
        if (c->hybrid) {
            int n = snprintf(c->ok, sizeof c->ok, "OK %u\n", c->hport);
            c->ok_len = n > 0 ? (uint32_t)n : 0;
        }
        flush_in(d, c);
        if (c->st == ST_OPEN) {
            ep_update(d, c);
        }
        return;
    case NS_VSOCK_OP_RST:
        conn_free(d, c);
        return;
    case NS_VSOCK_OP_SHUTDOWN:
        if (c->st != ST_OPEN && c->st != ST_CLOSING) {
            conn_reset(d, c, "SHUTDOWN before the connection was set up");
            return;
        }
        c->guest_shut |= h->flags & (NS_VSOCK_SHUTDOWN_RCV | NS_VSOCK_SHUTDOWN_SEND);
        flush_in(d, c);
        return;
    case NS_VSOCK_OP_RW: {
        if (c->st != ST_OPEN && c->st != ST_CLOSING) {
            conn_reset(d, c, "data before the connection was set up");
            return;
        }
        if (c->guest_shut & NS_VSOCK_SHUTDOWN_SEND) {
            conn_reset(d, c, "data after SHUTDOWN(SEND)");
            return;
        }
        if (h->len > d->cfg.buf_size - c->in_len) {
            ns_warn("vsock guest exceeded its credit guest_port=%u port=%u: resetting", c->gport,
                    c->hport);
            conn_reset(d, c, "credit exceeded");
            return;
        }
        if (h->len == 0) {
            return;
        }
        if (!c->in) {
            c->in = malloc(d->cfg.buf_size);
            if (!c->in) {
                conn_reset(d, c, "out of memory");
                return;
            }
        }
        if (c->in_off + c->in_len + h->len > d->cfg.buf_size) {
            memmove(c->in, c->in + c->in_off, c->in_len);
            c->in_off = 0;
        }
        size_t got = ns_vq_read(ch, NS_VSOCK_HDR_LEN, c->in + c->in_off + c->in_len, h->len);
        c->in_len += (uint32_t)got;
        flush_in(d, c);
        return;
    }
    case NS_VSOCK_OP_CREDIT_UPDATE:
        ready(d, c); /* more room may let data move */
        return;
    case NS_VSOCK_OP_CREDIT_REQUEST:
        c->pending |= P_CREDIT_UPDATE;
        ready(d, c);
        return;
    default:
        conn_reset(d, c, h->op == NS_VSOCK_OP_REQUEST ? "duplicate REQUEST" : "unknown op");
        return;
    }
}

static ns_err run_tx(ns_vsock_dev *d, int *tx_used)
{
    int64_t now = ns_now_ms();
    for (;;) {
        ns_vq_chain ch;
        ns_err e = ns_vq_pop(d->tx, d->mem, &ch);
        if (e == NS_E_NOT_FOUND) {
            return NS_OK;
        }
        GUARD(e);
        ENSURE(ch.nwrite == 0, NS_E_PROTO, "tx: chain %u has device-writable buffers", ch.head);
        if (ch.rd_len >= NS_VSOCK_HDR_LEN) {
            uint8_t b[NS_VSOCK_HDR_LEN];
            ns_vsock_hdr h;
            (void)ns_vq_read(&ch, 0, b, sizeof b);
            ns_vsock_hdr_parse(&h, b);
            guest_packet(d, &h, &ch, now);
        } else {
            ns_warn("vsock dropped a %llu-byte tx buffer (shorter than a header)",
                    (unsigned long long)ch.rd_len);
        }
        ns_vq_push(d->tx, ch.head, 0);
        *tx_used = 1;
    }
}

/* ---- packets to the guest ---- */

static void hdr_for(const ns_vsock_dev *d, const vconn *c, ns_vsock_hdr *h, uint16_t op)
{
    memset(h, 0, sizeof *h);
    h->src_cid = d->cfg.parent_cid;
    h->dst_cid = d->cfg.guest_cid;
    h->src_port = c->hport;
    h->dst_port = c->gport;
    h->type = NS_VSOCK_TYPE_STREAM;
    h->op = op;
    h->buf_alloc = d->cfg.buf_size;
    h->fwd_cnt = c->fwd_cnt;
}

/* What the connection would send next, or INVALID when nothing. */
static uint16_t next_op(const vconn *c)
{
    if (c->pending & P_RST) {
        return NS_VSOCK_OP_RST;
    }
    if (c->pending & P_REQUEST) {
        return NS_VSOCK_OP_REQUEST;
    }
    if (c->pending & P_RESPONSE) {
        return NS_VSOCK_OP_RESPONSE;
    }
    if (c->pending & P_CREDIT_UPDATE) {
        return NS_VSOCK_OP_CREDIT_UPDATE;
    }
    if (c->st == ST_OPEN && c->readable && !c->host_eof && c->fd >= 0 &&
        !(c->guest_shut & NS_VSOCK_SHUTDOWN_RCV) && peer_credit(c) > 0) {
        return NS_VSOCK_OP_RW;
    }
    if (c->pending & P_CREDIT_REQUEST) {
        return NS_VSOCK_OP_CREDIT_REQUEST;
    }
    if (c->pending & P_SHUTDOWN) {
        return NS_VSOCK_OP_SHUTDOWN;
    }
    return NS_VSOCK_OP_INVALID;
}

/* Reads host bytes straight into the chain after the header. Returns bytes, 0 at EOF, -1 EAGAIN,
 * -2 error. */
static ssize_t read_into(vconn *c, ns_vq_chain *ch, uint32_t max)
{
    struct iovec iov[NS_VQ_MAX_SEGS];
    int n = 0;
    uint64_t skip = NS_VSOCK_HDR_LEN;
    uint32_t left = max;
    for (size_t i = 0; i < ch->nwrite && left > 0; i++) {
        uint32_t len = ch->wr[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        uint32_t k = len - (uint32_t)skip;
        if (k > left) {
            k = left;
        }
        iov[n].iov_base = ch->wr[i].p + skip;
        iov[n].iov_len = k;
        n++;
        left -= k;
        skip = 0;
    }
    for (;;) {
        ssize_t r = readv(c->fd, iov, n);
        if (r >= 0) {
            return r;
        }
        if (errno == EINTR) {
            continue;
        }
        return errno == EAGAIN ? -1 : -2;
    }
}

static void put_packet(ns_vsock_dev *d, ns_vq_chain *ch, const ns_vsock_hdr *h, int *rx_used)
{
    uint8_t b[NS_VSOCK_HDR_LEN];
    ns_vsock_hdr_encode(b, h);
    (void)ns_vq_write(ch, 0, b, sizeof b);
    ns_vq_push(d->rx, ch->head, NS_VSOCK_HDR_LEN + h->len);
    *rx_used = 1;
}

static ns_err pop_rx(ns_vsock_dev *d, ns_vq_chain *ch)
{
    ns_err e = ns_vq_pop(d->rx, d->mem, ch);
    if (e != NS_OK) {
        return e;
    }
    ENSURE(ch->nread == 0 && ch->wr_len > NS_VSOCK_HDR_LEN, NS_E_PROTO,
           "rx: chain %u is not a writable buffer of more than %d bytes (%llu readable, %llu "
           "writable)",
           ch->head, NS_VSOCK_HDR_LEN, (unsigned long long)ch->rd_len,
           (unsigned long long)ch->wr_len);
    return NS_OK;
}

/* One packet of connection c into the rx queue. NS_E_NOT_FOUND: no rx buffer. */
static ns_err send_one(ns_vsock_dev *d, vconn *c, uint16_t op, int *rx_used, int *more)
{
    ns_vq_chain ch;
    GUARD(pop_rx(d, &ch));
    ns_vsock_hdr h;
    hdr_for(d, c, &h, op);
    *more = 1;
    switch (op) {
    case NS_VSOCK_OP_RST:
        put_packet(d, &ch, &h, rx_used);
        d->stats.resets_sent++;
        conn_free(d, c);
        *more = 0;
        return NS_OK;
    case NS_VSOCK_OP_REQUEST:
        c->pending &= ~P_REQUEST;
        break;
    case NS_VSOCK_OP_RESPONSE:
        c->pending &= ~P_RESPONSE;
        break;
    case NS_VSOCK_OP_CREDIT_UPDATE:
        c->pending &= ~P_CREDIT_UPDATE;
        break;
    case NS_VSOCK_OP_CREDIT_REQUEST:
        c->pending &= ~P_CREDIT_REQUEST;
        break;
    case NS_VSOCK_OP_SHUTDOWN:
        c->pending &= ~P_SHUTDOWN;
        h.flags = c->shut_to_send;
        c->sent_shut |= c->shut_to_send;
        if (c->sent_shut == (NS_VSOCK_SHUTDOWN_RCV | NS_VSOCK_SHUTDOWN_SEND)) {
            c->st = ST_CLOSING;
            c->deadline = ns_now_ms() + VD_CLOSE_TIMEOUT_MS;
        }
        break;
    case NS_VSOCK_OP_RW: {
        uint32_t max = peer_credit(c);
        uint64_t room = ch.wr_len - NS_VSOCK_HDR_LEN;
        if (max > room) {
            max = (uint32_t)room;
        }
        if (max > NS_VSOCK_MAX_PAYLOAD) {
            max = NS_VSOCK_MAX_PAYLOAD;
        }
        if (max == 0) { /* next_op checked credit and pop_rx the room: cannot happen */
            ns_vq_unpop(d->rx);
            return NS_E_NOT_FOUND;
        }
        ssize_t r = read_into(c, &ch, max);
        if (r == -1) {
            ns_vq_unpop(d->rx);
            c->readable = 0;
            ep_update(d, c);
            return NS_OK;
        }
        if (r == -2) {
            ns_vq_unpop(d->rx);
            conn_reset(d, c, "host read failed");
            return NS_OK;
        }
        if (r == 0) {
            /* Host EOF: the guest's end of this direction, as a SHUTDOWN in this buffer. */
            c->host_eof = 1;
            c->readable = 0;
            h.op = NS_VSOCK_OP_SHUTDOWN;
            c->shut_to_send = NS_VSOCK_SHUTDOWN_SEND;
            if (c->host_wr_shut) {
                c->shut_to_send |= NS_VSOCK_SHUTDOWN_RCV;
            }
            h.flags = c->shut_to_send;
            c->sent_shut |= c->shut_to_send;
            if (c->sent_shut == (NS_VSOCK_SHUTDOWN_RCV | NS_VSOCK_SHUTDOWN_SEND)) {
                c->st = ST_CLOSING;
                c->deadline = ns_now_ms() + VD_CLOSE_TIMEOUT_MS;
            }
            ep_update(d, c);
            break;
        }
        h.len = (uint32_t)r;
        c->tx_cnt += (uint32_t)r;
        d->stats.bytes_to_guest += (uint64_t)r;
        if (peer_credit(c) == 0) {
            c->pending |= P_CREDIT_REQUEST;
        }
        break;
    }
    default:
        ns_vq_unpop(d->rx);
        *more = 0;
        return NS_OK;
    }
    c->fwd_told = c->fwd_cnt;
    put_packet(d, &ch, &h, rx_used);
    return NS_OK;
}

static ns_err run_rx(ns_vsock_dev *d, int *rx_used)
{
    while (d->rst_len > 0) {
        ns_vq_chain ch;
        ns_err e = pop_rx(d, &ch);
        if (e == NS_E_NOT_FOUND) {
            return NS_OK;
        }
        GUARD(e);
        rst_entry *r = &d->rst[d->rst_head];
        vconn tmp = {.gport = r->gport, .hport = r->hport};
        ns_vsock_hdr h;
        hdr_for(d, &tmp, &h, NS_VSOCK_OP_RST);
        h.fwd_cnt = 0;
        put_packet(d, &ch, &h, rx_used);
        d->stats.resets_sent++;
        d->rst_head = (d->rst_head + 1) % VD_RST_RING;
        d->rst_len--;
    }
    /* Round-robin, one packet per turn; a connection that has more goes to the back. */
    vconn *c;
    while ((c = d->rhead) != NULL) {
        uint16_t op = next_op(c);
        if (op == NS_VSOCK_OP_INVALID) {
            (void)ready_pop(d);
            continue;
        }
        int more = 0;
        ns_err e = send_one(d, c, op, rx_used, &more);
        if (e == NS_E_NOT_FOUND) {
            return NS_OK; /* no rx buffer: c keeps its place until the guest adds some */
        }
        GUARD(e);
        if (more) { /* else c was freed, and with it its place in the list */
            (void)ready_pop(d);
            if (next_op(c) != NS_VSOCK_OP_INVALID) {
                ready(d, c);
            }
        }
    }
    return NS_OK;
}

ns_err ns_vsock_dev_run(ns_vsock_dev *d, int *rx_used, int *tx_used)
{
    if (!d->mem) {
        return NS_OK;
    }
    if (d->tx) {
        GUARD(run_tx(d, tx_used));
    }
    if (d->rx) {
        GUARD(run_rx(d, rx_used));
    }
    return NS_OK;
}

/* ---- host sockets ---- */

static void hybrid_line(ns_vsock_dev *d, vconn *c)
{
    for (;;) {
        char ch;
        ssize_t n = read(c->fd, &ch, 1); /* byte by byte: nothing past the line is consumed */
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            conn_free(d, c);
            return;
        }
        if (ch != '\n') {
            if (c->line_len + 1 >= sizeof c->line) {
                ns_warn("vsock hybrid: line too long; expected \"CONNECT PORT\\n\"");
                conn_free(d, c);
                return;
            }
            c->line[c->line_len++] = ch;
            continue;
        }
        c->line[c->line_len] = '\0';
        uint64_t port;
        if (c->line_len > 0 && c->line[c->line_len - 1] == '\r') {
            c->line[--c->line_len] = '\0';
        }
        if (strncmp(c->line, "CONNECT ", 8) != 0 ||
            ns_parse_uint(c->line + 8, 0xFFFFFFFFu, &port) != NS_OK) {
            ns_warn("vsock hybrid: bad request line; expected \"CONNECT PORT\\n\"");
            conn_free(d, c);
            return;
        }
        start_guest_connect(d, c, (uint32_t)port, ns_now_ms());
        return;
    }
}

static void on_accept(ns_vsock_dev *d, vlistener *l)
{
    for (int i = 0; i < VD_LISTEN_BACKLOG; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        vconn *c = conn_new(d, fd);
        if (!c) {
            ns_warn("vsock refused a host client: connection limit %zu reached", d->cfg.max_conns);
            close(fd);
            continue;
        }
        if (l->hybrid) {
            c->hybrid = 1;
            c->st = ST_HYBRID_LINE;
            c->deadline = ns_now_ms() + d->cfg.connect_timeout_ms;
            ep_update(d, c);
        } else {
            start_guest_connect(d, c, l->gport, ns_now_ms());
        }
    }
}

void ns_vsock_dev_event(ns_vsock_dev *d, void *cookie, uint32_t events)
{
    int tag = *(int *)cookie;
    if (tag == NS_VTAG_LISTENER) {
        on_accept(d, cookie);
        return;
    }
    vconn *c = cookie;
    if (c->fd < 0) {
        return;
    }
    switch (c->st) {
    case ST_HYBRID_LINE:
        hybrid_line(d, c);
        return;
    case ST_CONNECT_HOST:
        if (ns_addr_connect_finish(c->fd) != NS_OK) {
            ns_warn("vsock connect failed port=%u err=\"%s\"", c->hport, ns_err_msg());
            conn_reset(d, c, "host connect failed");
            return;
        }
        c->st = ST_OPEN;
        c->deadline = 0;
        c->pending |= P_RESPONSE;
        ready(d, c);
        ep_update(d, c);
        return;
    case ST_OPEN:
    case ST_CLOSING:
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            flush_in(d, c);
            if (c->fd < 0) {
                return;
            }
        }
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            c->readable = 1;
            ep_update(d, c);
            ready(d, c);
        }
        return;
    default:
        return;
    }
}

int ns_vsock_dev_tick(ns_vsock_dev *d, int64_t now)
{
    int64_t next = -1;
    vconn *c = d->conns;
    while (c) {
        vconn *nx = c->next;
        if (c->deadline != 0 && now >= c->deadline) {
            c->deadline = 0;
            if (c->st == ST_HYBRID_LINE) {
                conn_free(d, c);
            } else if (c->st == ST_CONNECT_GUEST || c->st == ST_CONNECT_HOST) {
                ns_warn("vsock connect timed out guest_port=%u port=%u", c->gport, c->hport);
                conn_reset(d, c, "connect timed out");
            } else if (c->st == ST_CLOSING) {
                conn_reset(d, c, "close timed out");
            }
        } else if (c->deadline != 0 && (next < 0 || c->deadline - now < next)) {
            next = c->deadline - now;
        }
        c = nx;
    }
    return next < 0 ? -1 : (int)(next > 1000 ? 1000 : next);
}

/* ---- setup ---- */

static ns_err add_listener(ns_vsock_dev *d, const ns_addr *a, int hybrid, uint32_t gport)
{
    char name[NS_ADDR_STR_MAX];
    ns_addr_format(a, name, sizeof name);
    ENSURE(a->kind == NS_ADDR_UNIX || a->kind == NS_ADDR_TCP, NS_E_USAGE,
           "vsock listen address %s: only unix: and tcp: are served on the host", name);
    if (a->kind == NS_ADDR_UNIX) {
        ns_io_unlink_stale_socket(a->path);
    }
    vlistener *l = &d->lis[d->nlis];
    l->tag = NS_VTAG_LISTENER;
    l->hybrid = hybrid;
    l->gport = gport;
    GUARD(ns_addr_listen(a, VD_LISTEN_BACKLOG, NS_LISTEN_NONBLOCK, &l->fd));
    d->nlis++;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
    ENSURE(epoll_ctl(d->epfd, EPOLL_CTL_ADD, l->fd, &ev) == 0, NS_E_IO,
           "cannot watch the listener %s", name);
    return NS_OK;
}

ns_err ns_vsock_dev_new(const ns_vsock_cfg *cfg, int epfd, ns_vsock_dev **out)
{
    ENSURE(cfg->nconnect <= NS_VSOCK_MAX_ROUTES && cfg->nlisten <= NS_VSOCK_MAX_ROUTES, NS_E_USAGE,
           "at most %d connect and %d listen routes", NS_VSOCK_MAX_ROUTES, NS_VSOCK_MAX_ROUTES);
    ENSURE(cfg->guest_cid > 2 && cfg->guest_cid < 0xFFFFFFFFull, NS_E_USAGE,
           "guest CID %llu is reserved (use 3..4294967294)", (unsigned long long)cfg->guest_cid);
    for (size_t i = 0; i < cfg->nconnect; i++) {
        ENSURE(
            cfg->connect[i].addr.kind == NS_ADDR_UNIX || cfg->connect[i].addr.kind == NS_ADDR_TCP,
            NS_E_USAGE, "vsock port %u: only unix: and tcp: host addresses", cfg->connect[i].port);
    }
    ns_vsock_dev *d = calloc(1, sizeof *d);
    ENSURE(d, NS_E_NOMEM, "vsock device: out of memory");
    d->cfg = *cfg;
    if (cfg->nconnect) {
        memcpy(d->connect, cfg->connect, cfg->nconnect * sizeof *cfg->connect);
    }
    if (cfg->nlisten) {
        memcpy(d->listen, cfg->listen, cfg->nlisten * sizeof *cfg->listen);
    }
    d->cfg.connect = d->connect;
    d->cfg.listen = d->listen;
    if (cfg->hybrid) {
        d->hybrid = *cfg->hybrid;
        d->cfg.hybrid = &d->hybrid;
    }
    if (d->cfg.max_conns == 0) {
        d->cfg.max_conns = NS_VSOCK_DEFAULT_MAX_CONNS;
    }
    if (d->cfg.max_conns > VD_MAX_CONNS_LIMIT) {
        d->cfg.max_conns = VD_MAX_CONNS_LIMIT;
    }
    if (d->cfg.buf_size == 0) {
        d->cfg.buf_size = NS_VSOCK_DEFAULT_BUF;
    }
    if (d->cfg.buf_size < VD_BUF_MIN) {
        d->cfg.buf_size = VD_BUF_MIN;
    }
    if (d->cfg.buf_size > VD_BUF_MAX) {
        d->cfg.buf_size = VD_BUF_MAX;
    }
    if (d->cfg.connect_timeout_ms <= 0) {
        d->cfg.connect_timeout_ms = VD_DEFAULT_CONNECT_TIMEOUT_MS;
    }
    d->epfd = epfd;
    d->next_local_port = VD_LOCAL_PORT_FIRST;
    d->lis = calloc(cfg->nlisten + 1, sizeof *d->lis);
    if (!d->lis) {
        free(d);
        BAIL(NS_E_NOMEM, "vsock device: out of memory");
    }
    ns_err e = NS_OK;
    for (size_t i = 0; i < cfg->nlisten && e == NS_OK; i++) {
        e = add_listener(d, &cfg->listen[i].addr, 0, cfg->listen[i].port);
    }
    if (e == NS_OK && cfg->hybrid) {
        ENSURE(cfg->hybrid->kind == NS_ADDR_UNIX, NS_E_USAGE,
               "the hybrid socket must be a unix: address");
        e = add_listener(d, cfg->hybrid, 1, 0);
    }
    if (e != NS_OK) {
        ns_vsock_dev_free(d);
        return e;
    }
    *out = d;
    return NS_OK;
}

void ns_vsock_dev_reset(ns_vsock_dev *d)
{
    while (d->conns) {
        conn_free(d, d->conns);
    }
    d->rhead = d->rtail = NULL;
    d->rst_len = 0;
}

void ns_vsock_dev_attach(ns_vsock_dev *d, const ns_vmem *mem, ns_vq *rx, ns_vq *tx)
{
    if (!mem || (!rx && !tx)) {
        ns_vsock_dev_reset(d);
    }
    d->mem = mem;
    d->rx = rx;
    d->tx = tx;
}

void ns_vsock_dev_free(ns_vsock_dev *d)
{
    if (!d) {
        return;
    }
    ns_vsock_dev_reset(d);
    for (size_t i = 0; i < d->nlis; i++) {
        ns_addr_unlisten(i < d->cfg.nlisten ? &d->listen[i].addr : &d->hybrid, d->lis[i].fd);
    }
    free(d->lis);
    free(d);
}

void ns_vsock_dev_stats(const ns_vsock_dev *d, ns_vsock_stats *s)
{
    *s = d->stats;
    s->conns = d->nconns;
}
