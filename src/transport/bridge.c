/*
 * bridge: see bridge.h. Level-triggered epoll; after any event on a connection the engine
 * "pumps" both directions until nothing moves, then registers exactly the interest each socket
 * needs: EPOLLIN while its direction has room and has not seen EOF, EPOLLOUT while data waits
 * for it. A socket with no interest is removed from the epoll set (so a hung-up socket whose
 * direction is stalled cannot spin the loop) and re-added when it matters again.
 *
 * splice(2) reports EAGAIN both when the source is empty and when the pipe is full (a pipe
 * fills by slots, not bytes). EAGAIN with data already in the pipe is taken as "full": reading
 * pauses until the pipe drains, which the EPOLLOUT interest on the destination guarantees.
 * Closed connections are parked on a dead list and freed after the epoll batch, because later
 * events of the same batch may still point at them.
 */
#include "bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "iox.h"
#include "log.h"

#define BRIDGE_MAX_ALLOW 64
/* Bytes in flight per direction: the pipe is asked for this size (best effort)... */
#define BRIDGE_PIPE_SIZE (256 * 1024)
/* ...and the read/write fallback buffer has this size. */
#define BRIDGE_COPY_BUF (64 * 1024)
/* Largest single splice request (the kernel caps it to the pipe's room). */
#define BRIDGE_SPLICE_MAX (1024 * 1024)
#define BRIDGE_EVENTS 128
#define BRIDGE_ACCEPT_BURST 64
/* Passes over both directions per event before yielding to other connections. */
#define BRIDGE_PUMP_ROUNDS 8
/* When accept fails for lack of descriptors, stop accepting for this long. */
#define BRIDGE_ACCEPT_PAUSE_MS 100
#define BRIDGE_BACKLOG 512
/* Consecutive hang-up events that moved nothing before a connection is declared dead. */
#define BRIDGE_MAX_HUP_SPINS 64

enum { TAG_LISTENER = 1, TAG_SIDE = 2 };

typedef struct conn conn;

typedef struct {
    int tag; /* first: the epoll cookie is either a listener or a side */
    int fd;
    size_t pair;
    int registered;
} listener;

typedef struct {
    int tag;
    int fd;
    conn *c;
    uint32_t mask;
    int registered;
} side;

/* One direction: data read from side i is written to side 1-i. */
typedef struct {
    int pipe_r, pipe_w; /* -1 until the first read */
    size_t inpipe;
    int pipe_full;
    int copy; /* read/write fallback in use */
    uint8_t *buf;
    size_t off, len;
    int eof;  /* source reached EOF */
    int shut; /* destination got SHUT_WR */
    uint64_t bytes;
} dir;

struct conn {
    side s[2]; /* 0: accepted client, 1: connect target */
    dir d[2];  /* 0: client -> target, 1: target -> client */
    int connecting;
    int dead;
    int hup_spins;
    uint64_t id;
    size_t pair;
    int64_t t_start, t_last, connect_deadline;
    char from[NS_ADDR_STR_MAX];
    conn *prev, *next;
};

struct ns_bridge {
    ns_bridge_pair pairs[NS_BRIDGE_MAX_PAIRS];
    char names[NS_BRIDGE_MAX_PAIRS][2][NS_ADDR_STR_MAX];
    listener ls[NS_BRIDGE_MAX_PAIRS];
    size_t npairs;
    ns_addr allow[BRIDGE_MAX_ALLOW];
    size_t nallow;
    int max_conns, max_per_peer, idle_ms, connect_ms;
    int no_splice;
    int ep;
    conn *live, *dead;
    size_t nconns;
    uint64_t next_id;
    int64_t accept_resume;  /* 0: accepting */
    const ns_stop *quiesce; /* ns_bridge_set_quiesce, or NULL */
    int quiesced;           /* the listeners are closed */
};

static ns_err parse_allow(ns_addr *a, const char *s)
{
    if (strncmp(s, "tcp:", 4) == 0 || strncmp(s, "unix:", 5) == 0 || strncmp(s, "vsock:", 6) == 0) {
        GUARD(ns_addr_parse(a, s));
    } else {
        char tmp[NS_ADDR_STR_MAX];
        ENSURE(strlen(s) + 5 <= sizeof tmp, NS_E_USAGE, "--allow entry too long");
        snprintf(tmp, sizeof tmp, "tcp:%s", s);
        GUARD(ns_addr_parse(a, tmp));
    }
    ENSURE(a->kind != NS_ADDR_TCP || a->host[0] != '\0', NS_E_USAGE,
           "--allow '%s' needs a host name or address", s);
    return NS_OK;
}

static int allowed(const ns_bridge *b, const ns_addr *t)
{
    if (b->nallow == 0) {
        return 1;
    }
    for (size_t i = 0; i < b->nallow; i++) {
        const ns_addr *a = &b->allow[i];
        if (a->kind != t->kind) {
            continue;
        }
        if (a->kind == NS_ADDR_TCP && a->port == t->port && strcasecmp(a->host, t->host) == 0) {
            return 1;
        }
        if (a->kind == NS_ADDR_UNIX && strcmp(a->path, t->path) == 0) {
            return 1;
        }
        if (a->kind == NS_ADDR_VSOCK && a->cid == t->cid && a->vport == t->vport) {
            return 1;
        }
    }
    return 0;
}

static void ep_set(ns_bridge *b, int fd, void *cookie, uint32_t mask, int *registered)
{
    struct epoll_event ev = {.events = mask, .data.ptr = cookie};
    if (mask == 0) {
        if (*registered) {
            (void)epoll_ctl(b->ep, EPOLL_CTL_DEL, fd, NULL);
            *registered = 0;
        }
        return;
    }
    if (*registered) {
        (void)epoll_ctl(b->ep, EPOLL_CTL_MOD, fd, &ev);
    } else if (epoll_ctl(b->ep, EPOLL_CTL_ADD, fd, &ev) == 0) {
        *registered = 1;
    }
}

static void side_set(ns_bridge *b, side *s, uint32_t mask)
{
    if (s->registered && s->mask == mask) {
        return;
    }
    s->mask = mask;
    ep_set(b, s->fd, s, mask, &s->registered);
}

static void listeners_set(ns_bridge *b, int on)
{
    for (size_t i = 0; i < b->npairs; i++) {
        ep_set(b, b->ls[i].fd, &b->ls[i], on ? EPOLLIN : 0, &b->ls[i].registered);
    }
}

static void conn_close(ns_bridge *b, conn *c, const char *reason)
{
    if (c->dead) {
        return;
    }
    c->dead = 1;
    ns_info("closed id=%llu from=%s to=%s up=%llu down=%llu ms=%lld reason=%s",
            (unsigned long long)c->id, c->from, b->names[c->pair][1],
            (unsigned long long)c->d[0].bytes, (unsigned long long)c->d[1].bytes,
            (long long)(ns_now_ms() - c->t_start), reason);
    for (int i = 0; i < 2; i++) {
        side_set(b, &c->s[i], 0);
        if (c->s[i].fd >= 0) {
            close(c->s[i].fd);
            c->s[i].fd = -1;
        }
        dir *d = &c->d[i];
        if (d->pipe_r >= 0) {
            close(d->pipe_r);
            close(d->pipe_w);
            d->pipe_r = d->pipe_w = -1;
        }
        free(d->buf);
        d->buf = NULL;
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        b->live = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->next = b->dead;
    b->dead = c;
    b->nconns--;
}

/* Closes with the current error detail as a quoted reason. */
static void conn_close_err(ns_bridge *b, conn *c)
{
    char reason[256];
    snprintf(reason, sizeof reason, "\"%s\"", ns_err_msg());
    conn_close(b, c, reason);
}

static void free_dead(ns_bridge *b)
{
    while (b->dead) {
        conn *c = b->dead;
        b->dead = c->next;
        free(c);
    }
}

static int splice_unsupported(int err)
{
    return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP;
}

/* Reads from src into the direction's pipe or buffer. */
static ns_err dir_fill(conn *c, int i, int *progress)
{
    dir *d = &c->d[i];
    int src = c->s[i].fd;
    if (d->eof) {
        return NS_OK;
    }
    if (!d->copy && d->pipe_r < 0) {
        /* Pipes only for a direction that carries data: an idle connection holds its two
         * sockets and nothing more. */
        uint8_t probe;
        ssize_t pk = recv(src, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
        if (pk < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return NS_OK;
        }
        if (pk < 0) { /* the socket's pending error is reported once: report it now */
            return ns_fail_errno(NS_E_IO, "read from %s", i == 0 ? "client" : "target");
        }
        if (pk == 0) {
            d->eof = 1;
            *progress = 1;
            return NS_OK;
        }
        int p[2];
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
            d->copy = 1; /* out of descriptors: this direction copies instead */
        } else {
            d->pipe_r = p[0];
            d->pipe_w = p[1];
            (void)fcntl(d->pipe_w, F_SETPIPE_SZ, BRIDGE_PIPE_SIZE);
        }
    }
    if (!d->copy) {
        if (d->pipe_full) {
            return NS_OK;
        }
        ssize_t n = splice(src, NULL, d->pipe_w, NULL, BRIDGE_SPLICE_MAX,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            d->inpipe += (size_t)n;
            *progress = 1;
            return NS_OK;
        }
        if (n == 0 && d->inpipe > 0) {
            /* tcp_splice_read answers 0, not EAGAIN, when the pipe is full and a FIN is queued
             * behind unread data: only an empty pipe makes 0 mean EOF */
            d->pipe_full = 1;
            return NS_OK;
        }
        if (n == 0) {
            d->eof = 1;
            *progress = 1;
            return NS_OK;
        }
        if (errno == EAGAIN || errno == EINTR) {
            d->pipe_full = d->inpipe > 0;
            return NS_OK;
        }
        if (!splice_unsupported(errno) || d->inpipe > 0) {
            return ns_fail_errno(NS_E_IO, "read from %s", i == 0 ? "client" : "target");
        }
        d->copy = 1;
    }
    if (d->buf == NULL) {
        d->buf = malloc(BRIDGE_COPY_BUF);
        ENSURE(d->buf != NULL, NS_E_NOMEM, "out of memory");
        d->off = d->len = 0;
    }
    if (d->off + d->len >= BRIDGE_COPY_BUF) {
        return NS_OK;
    }
    ssize_t n = recv(src, d->buf + d->off + d->len, BRIDGE_COPY_BUF - d->off - d->len, 0);
    if (n > 0) {
        d->len += (size_t)n;
        *progress = 1;
    } else if (n == 0) {
        d->eof = 1;
        *progress = 1;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return ns_fail_errno(NS_E_IO, "read from %s", i == 0 ? "client" : "target");
    }
    return NS_OK;
}

/* Writes what is in flight to dst, then propagates EOF as SHUT_WR. */
static ns_err dir_drain(conn *c, int i, int *progress)
{
    dir *d = &c->d[i];
    int dst = c->s[1 - i].fd;
    if (d->inpipe > 0) {
        ssize_t n =
            splice(d->pipe_r, NULL, dst, NULL, d->inpipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            d->inpipe -= (size_t)n;
            d->bytes += (uint64_t)n;
            d->pipe_full = 0;
            *progress = 1;
        } else if (n < 0 && splice_unsupported(errno)) {
            /* the destination refuses splice: move what is in the pipe to the buffer */
            free(d->buf); /* empty: the copy buffer is only used once splice is off */
            d->buf = malloc(BRIDGE_PIPE_SIZE);
            ENSURE(d->buf != NULL, NS_E_NOMEM, "out of memory");
            ssize_t r = read(d->pipe_r, d->buf, d->inpipe);
            ENSURE(r == (ssize_t)d->inpipe, NS_E_IO, "pipe read failed");
            d->off = 0;
            d->len = d->inpipe;
            d->inpipe = 0;
            d->copy = 1;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return ns_fail_errno(NS_E_IO, "write to %s", i == 0 ? "target" : "client");
        }
    }
    if (d->len > 0) {
        ssize_t n = send(dst, d->buf + d->off, d->len, MSG_NOSIGNAL);
        if (n > 0) {
            d->off += (size_t)n;
            d->len -= (size_t)n;
            d->bytes += (uint64_t)n;
            if (d->len == 0) {
                d->off = 0;
            }
            *progress = 1;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return ns_fail_errno(NS_E_IO, "write to %s", i == 0 ? "target" : "client");
        }
    }
    if (d->eof && d->inpipe == 0 && d->len == 0 && !d->shut) {
        if (shutdown(dst, SHUT_WR) != 0 && errno != ENOTCONN) {
            return ns_fail_errno(NS_E_IO, "shutdown of %s", i == 0 ? "target" : "client");
        }
        d->shut = 1;
        *progress = 1;
    }
    return NS_OK;
}

static int dir_wants_read(const dir *d)
{
    if (d->eof) {
        return 0;
    }
    return d->copy ? d->off + d->len < BRIDGE_COPY_BUF : !d->pipe_full;
}

static int dir_wants_write(const dir *d)
{
    return d->inpipe > 0 || d->len > 0;
}

/* Moves data both ways until nothing moves; closes the connection when it ended or failed. */
static void conn_pump(ns_bridge *b, conn *c, uint32_t ev, int hit)
{
    int any = 0;
    for (int round = 0; round < BRIDGE_PUMP_ROUNDS; round++) {
        int progress = 0;
        for (int i = 0; i < 2; i++) {
            ns_err e = dir_fill(c, i, &progress);
            if (e == NS_OK) {
                e = dir_drain(c, i, &progress);
            }
            if (e != NS_OK) {
                conn_close_err(b, c);
                return;
            }
        }
        any |= progress;
        if (!progress) {
            break;
        }
    }
    if (any) {
        c->t_last = ns_now_ms();
    }
    if (c->d[0].shut && c->d[1].shut) {
        conn_close(b, c, "done");
        return;
    }
    if (!any && hit >= 0 && (ev & EPOLLERR)) {
        /* a pending socket error that no read or write surfaced */
        int err = 0;
        socklen_t len = sizeof err;
        (void)getsockopt(c->s[hit].fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            char reason[160];
            snprintf(reason, sizeof reason, "\"%s: %s\"", hit == 0 ? "client" : "target",
                     strerror(err));
            conn_close(b, c, reason);
            return;
        }
    }
    /*
     * A hang-up with nothing to do is normal (e.g. the target closed while its data waits for a
     * slow client: the socket leaves the epoll set below). Many in a row would be a spin.
     */
    c->hup_spins = (!any && (ev & (EPOLLHUP | EPOLLERR))) ? c->hup_spins + 1 : 0;
    if (c->hup_spins > BRIDGE_MAX_HUP_SPINS) {
        conn_close(b, c, "hangup");
        return;
    }
    for (int k = 0; k < 2; k++) {
        uint32_t m = (dir_wants_read(&c->d[k]) ? EPOLLIN : 0) |
                     (dir_wants_write(&c->d[1 - k]) ? EPOLLOUT : 0);
        side_set(b, &c->s[k], m);
    }
}

static void conn_connected(ns_bridge *b, conn *c)
{
    ns_err e = ns_addr_connect_finish(c->s[1].fd);
    if (e != NS_OK) {
        conn_close_err(b, c);
        return;
    }
    c->connecting = 0;
    c->t_last = ns_now_ms();
    conn_pump(b, c, 0, -1);
}

/* The length of the host part of a peer name: "tcp:10.0.0.1:5555" -> "tcp:10.0.0.1". */
static size_t peer_host_len(const char *from)
{
    const char *colon = strrchr(from, ':');
    return colon ? (size_t)(colon - from) : strlen(from);
}

/* Whether a tcp client already holds max_per_peer connections (a linear scan: at most
 * max_conns live connections, once per accept). */
static int peer_over_cap(const ns_bridge *b, const char *from)
{
    if (b->max_per_peer <= 0 || strncmp(from, "tcp:", 4) != 0) {
        return 0;
    }
    size_t n = peer_host_len(from);
    int count = 0;
    for (const conn *c = b->live; c; c = c->next) {
        if (peer_host_len(c->from) == n && memcmp(c->from, from, n) == 0 &&
            ++count >= b->max_per_peer) {
            return 1;
        }
    }
    return 0;
}

static void on_accept(ns_bridge *b, listener *l)
{
    for (int n = 0; n < BRIDGE_ACCEPT_BURST; n++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                ns_warn("accept paused on=%s reason=%s", b->names[l->pair][0], strerror(errno));
                listeners_set(b, 0);
                b->accept_resume = ns_now_ms() + BRIDGE_ACCEPT_PAUSE_MS;
            }
            return; /* EAGAIN, or a transient error of one connection */
        }
        char from[NS_ADDR_STR_MAX];
        ns_addr_peer(fd, from, sizeof from);
        const ns_bridge_pair *p = &b->pairs[l->pair];
        if (b->nconns >= (size_t)b->max_conns) {
            ns_warn("rejected from=%s on=%s reason=max-conns max=%d", from, b->names[l->pair][0],
                    b->max_conns);
            close(fd);
            continue;
        }
        if (peer_over_cap(b, from)) {
            ns_warn("rejected from=%s on=%s reason=max-per-peer max=%d", from, b->names[l->pair][0],
                    b->max_per_peer);
            close(fd);
            continue;
        }
        if (!allowed(b, &p->connect)) {
            ns_warn("rejected from=%s to=%s reason=not-allowed", from, b->names[l->pair][1]);
            close(fd);
            continue;
        }
        conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            ns_warn("rejected from=%s reason=out-of-memory", from);
            close(fd);
            continue;
        }
        c->id = ++b->next_id;
        c->pair = l->pair;
        c->t_start = c->t_last = ns_now_ms();
        snprintf(c->from, sizeof c->from, "%s", from);
        for (int i = 0; i < 2; i++) {
            c->s[i].tag = TAG_SIDE;
            c->s[i].c = c;
            c->d[i].pipe_r = c->d[i].pipe_w = -1;
            /* splice where both families allow it; the runtime fallback covers the rest */
            c->d[i].copy =
                b->no_splice || !ns_addr_can_splice(&p->listen) || !ns_addr_can_splice(&p->connect);
        }
        c->s[0].fd = fd;
        c->s[1].fd = -1;
        c->next = b->live;
        if (b->live) {
            b->live->prev = c;
        }
        b->live = c;
        b->nconns++;
        int inprog = 0;
        int tfd = -1;
        ns_err e = ns_addr_connect_start(&p->connect, &tfd, &inprog);
        if (e != NS_OK) {
            conn_close_err(b, c);
            continue;
        }
        c->s[1].fd = tfd;
        if (inprog) {
            c->connecting = 1;
            c->connect_deadline = c->t_start + b->connect_ms;
            side_set(b, &c->s[1], EPOLLOUT);
        } else {
            conn_connected(b, c);
        }
    }
}

static void check_timers(ns_bridge *b)
{
    int64_t now = ns_now_ms();
    conn *next;
    for (conn *c = b->live; c; c = next) {
        next = c->next;
        if (c->connecting && now >= c->connect_deadline) {
            conn_close(b, c, "connect-timeout");
        } else if (!c->connecting && b->idle_ms > 0 && now - c->t_last >= b->idle_ms) {
            conn_close(b, c, "idle-timeout");
        }
    }
    if (b->accept_resume != 0 && now >= b->accept_resume && !b->quiesced) {
        b->accept_resume = 0;
        listeners_set(b, 1);
    }
}

ns_err ns_bridge_listen(const ns_bridge_cfg *cfg, ns_bridge **out)
{
    ENSURE(cfg->npairs > 0, NS_E_USAGE, "bridge: no LISTEN CONNECT pair given");
    ENSURE(cfg->npairs <= NS_BRIDGE_MAX_PAIRS, NS_E_USAGE, "bridge: more than %d pairs",
           NS_BRIDGE_MAX_PAIRS);
    ENSURE(cfg->nallow <= BRIDGE_MAX_ALLOW, NS_E_USAGE, "bridge: more than %d --allow entries",
           BRIDGE_MAX_ALLOW);
    ns_bridge *b = calloc(1, sizeof *b);
    ENSURE(b != NULL, NS_E_NOMEM, "bridge: out of memory");
    b->ep = -1;
    for (size_t i = 0; i < NS_BRIDGE_MAX_PAIRS; i++) {
        b->ls[i].fd = -1;
    }
    b->max_conns = cfg->max_conns > 0 ? cfg->max_conns : NS_BRIDGE_DEFAULT_MAX_CONNS;
    b->max_per_peer = cfg->max_per_peer > 0 ? cfg->max_per_peer : 0;
    b->idle_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : 0;
    b->no_splice = cfg->no_splice;
    b->connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms
                                                : NS_BRIDGE_DEFAULT_CONNECT_TIMEOUT_MS;
    ns_err e = NS_OK;
    for (size_t i = 0; i < cfg->nallow && e == NS_OK; i++) {
        e = parse_allow(&b->allow[i], cfg->allow[i]);
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "--allow '%s'", cfg->allow[i]);
        }
        b->nallow = i + 1;
    }
    b->npairs = cfg->npairs;
    for (size_t i = 0; i < cfg->npairs && e == NS_OK; i++) {
        b->pairs[i] = cfg->pairs[i];
        ns_addr_format(&b->pairs[i].listen, b->names[i][0], sizeof b->names[i][0]);
        ns_addr_format(&b->pairs[i].connect, b->names[i][1], sizeof b->names[i][1]);
        if (!allowed(b, &b->pairs[i].connect)) {
            e = ns_fail(NS_E_DENIED,
                        "connect target %s is not on the --allow list: add --allow for it "
                        "or fix the target",
                        b->names[i][1]);
        }
    }
    if (e == NS_OK) {
        b->ep = epoll_create1(EPOLL_CLOEXEC);
        if (b->ep < 0) {
            e = ns_fail_errno(NS_E_IO, "epoll_create1");
        }
    }
    for (size_t i = 0; i < b->npairs && e == NS_OK; i++) {
        b->ls[i].tag = TAG_LISTENER;
        b->ls[i].pair = i;
        e = ns_addr_listen(&b->pairs[i].listen, BRIDGE_BACKLOG, NS_LISTEN_NONBLOCK, &b->ls[i].fd);
    }
    if (e != NS_OK) {
        ns_bridge_free(b);
        return e;
    }
    listeners_set(b, 1);
    for (size_t i = 0; i < b->npairs; i++) {
        ns_info("listening on=%s port=%u to=%s", b->names[i][0], ns_bridge_port(b, i),
                b->names[i][1]);
    }
    *out = b;
    return NS_OK;
}

unsigned ns_bridge_port(const ns_bridge *b, size_t i)
{
    uint32_t port = 0;
    if (i >= b->npairs || b->ls[i].fd < 0 || b->pairs[i].listen.kind == NS_ADDR_UNIX) {
        return 0;
    }
    if (ns_addr_local_port(b->ls[i].fd, &port) != NS_OK) {
        return 0;
    }
    return port;
}

void ns_bridge_set_quiesce(ns_bridge *b, const ns_stop *quiesce)
{
    b->quiesce = quiesce;
}

/* Closes the listeners for good; the connections stay. */
static void quiesce_now(ns_bridge *b)
{
    listeners_set(b, 0);
    b->accept_resume = 0;
    for (size_t i = 0; i < b->npairs; i++) {
        if (b->ls[i].fd >= 0) {
            close(b->ls[i].fd);
            b->ls[i].fd = -1;
            const ns_addr *a = &b->pairs[i].listen;
            if (a->kind == NS_ADDR_UNIX && a->path[0] != '@') {
                ns_io_unlink_stale_socket(a->path);
            }
        }
    }
    b->quiesced = 1;
    ns_info("quiesced: listeners closed, %zu connection(s) still relayed", b->nconns);
}

ns_err ns_bridge_serve(ns_bridge *b, ns_stop *stop)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    /* splice to a closed socket raises SIGPIPE (no MSG_NOSIGNAL there): keep it pending */
    (void)pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    struct epoll_event evs[BRIDGE_EVENTS];
    int64_t next_scan = 0;
    ns_err rc = NS_OK;
    while (!*stop) {
        int n = epoll_wait(b->ep, evs, BRIDGE_EVENTS, NS_BRIDGE_TICK_MS);
        if (n < 0 && errno != EINTR) {
            rc = ns_fail_errno(NS_E_INTERNAL, "epoll_wait failed");
            break;
        }
        for (int i = 0; i < n; i++) {
            int tag = *(int *)evs[i].data.ptr;
            if (tag == TAG_LISTENER) {
                on_accept(b, evs[i].data.ptr);
                continue;
            }
            side *s = evs[i].data.ptr;
            conn *c = s->c;
            if (c->dead) {
                continue;
            }
            int hit = s == &c->s[0] ? 0 : 1;
            if (c->connecting) {
                if (hit == 1) {
                    conn_connected(b, c);
                }
                continue;
            }
            conn_pump(b, c, evs[i].events, hit);
        }
        free_dead(b);
        if (b->quiesce != NULL && *b->quiesce && !b->quiesced) {
            quiesce_now(b);
        }
        int64_t now = ns_now_ms();
        if (now >= next_scan) {
            check_timers(b);
            free_dead(b);
            next_scan = now + NS_BRIDGE_TICK_MS / 2;
        }
    }
    while (b->live) {
        conn_close(b, b->live, "shutdown");
    }
    free_dead(b);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE) {
    }
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

void ns_bridge_free(ns_bridge *b)
{
    if (b == NULL) {
        return;
    }
    while (b->live) {
        conn_close(b, b->live, "shutdown");
    }
    free_dead(b);
    for (size_t i = 0; i < b->npairs; i++) {
        if (b->ls[i].fd >= 0) {
            close(b->ls[i].fd);
            const ns_addr *a = &b->pairs[i].listen;
            if (a->kind == NS_ADDR_UNIX && a->path[0] != '@') {
                ns_io_unlink_stale_socket(a->path);
            }
        }
    }
    if (b->ep >= 0) {
        close(b->ep);
    }
    free(b);
}
