/*
 * h2loop: see h2loop.h. One epoll loop per thread; each connection (econn) pairs a descriptor, its
 * optional transport and an h2server connection, and lives on its loop's list until closed.
 */
#include "h2loop.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iox.h"
#include "log.h"
#include "tcache.h"

#define READ_CHUNK (16u * 1024)
#define READS_PER_WAKE 8
#define EVENTS_MAX 64
#define TICK_MS 50
#define LOOP_WAIT_MS 100
#define ACCEPT_PAUSE_MS 100
#define FD_WARN_EVERY_MS 10000

typedef struct econn {
    struct econn *prev, *next;
    int fd;
    uint32_t events;
    ns_h2_conn *c;
    const ns_h2_transport *tr; /* NULL: plain socket */
    void *t;                   /* the transport's state */
    int drained;               /* drain GOAWAYs submitted: 0, 1 (notice), 2 (final) */
} econn;

typedef struct worker {
    const ns_h2_handler *h;
    const ns_h2_transport *tr;
    ns_stop *stop;
    ns_stop *drain; /* cfg.drain, or NULL */
    int drain_ms;
    int draining;      /* this loop saw *drain and released the listener */
    int64_t drain_end; /* ms: when whatever is left is closed */
    int64_t final_at;  /* ms: when the final GOAWAYs go out */
    int *released;     /* loops that released the listener (atomic; shared) */
    int lfd;
    int handoff[2]; /* pipe: descriptors accepted by another loop for this one, 4 bytes each */
    int nconn;      /* connections owned or handed over (atomic: other loops read it) */
    struct worker *all;
    int nworkers;
    int index;
    pthread_t tid;
    int64_t last_budget_warn; /* ms; -1 never */
    ns_err err;
    char errmsg[256];
} worker;

/* The epoll tag of a loop's hand-off pipe (the listener's is NULL, connections' their econn). */
static char handoff_tag;

static void econn_close(int ep, econn **head, econn *e)
{
    (void)epoll_ctl(ep, EPOLL_CTL_DEL, e->fd, NULL);
    if (e->tr) {
        e->tr->close(e->t);
    }
    close(e->fd);
    ns_h2_conn_free(e->c);
    if (e->prev) {
        e->prev->next = e->next;
    } else {
        *head = e->next;
    }
    if (e->next) {
        e->next->prev = e->prev;
    }
    free(e);
}

/* The I/O seam: the transport when there is one, else the socket. */
static ssize_t econn_recv(econn *e, uint8_t *buf, size_t n)
{
    return e->tr ? e->tr->recv(e->t, buf, n) : recv(e->fd, buf, n, 0);
}

static ssize_t econn_send(econn *e, const uint8_t *p, size_t n)
{
    return e->tr ? e->tr->send(e->t, p, n) : send(e->fd, p, n, MSG_NOSIGNAL);
}

/* Writes what it can. Returns -1 on a write error. */
static int econn_flush(econn *e)
{
    for (;;) {
        const uint8_t *p;
        size_t n;
        if (ns_h2_conn_pending(e->c, &p, &n) != NS_OK) {
            return -1;
        }
        if (n == 0 || (e->tr && !e->tr->ready(e->t))) {
            /* A transport may still owe bytes of its own (a handshake): let it move. */
            if (e->tr && e->tr->want_write(e->t) && e->tr->send(e->t, NULL, 0) < 0 &&
                errno != EAGAIN && errno != EWOULDBLOCK) {
                return -1;
            }
            return 0;
        }
        ssize_t w = econn_send(e, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
        ns_h2_conn_sent(e->c, (size_t)w);
    }
}

/* Services one connection; returns 0 to keep it, -1 to close it. */
static int econn_service(int ep, econn *e, uint32_t ev)
{
    uint8_t buf[READ_CHUNK];
    int eof = 0;
    int buffered = e->tr && e->tr->pending(e->t);
    if ((buffered || (ev & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))) &&
        ns_h2_conn_want_read(e->c)) {
        for (int i = 0; i < READS_PER_WAKE && ns_h2_conn_want_read(e->c); i++) {
            ssize_t r = econn_recv(e, buf, sizeof buf);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            }
            if (r <= 0) {
                eof = 1;
                break;
            }
            if (ns_h2_conn_recv(e->c, buf, (size_t)r) != NS_OK) {
                ns_debug("closing connection peer=%s reason=\"%s\"", ns_h2_conn_peer(e->c),
                         ns_err_msg());
                break;
            }
        }
    }
    ns_log_flush(); /* the audit lines of these requests go out before their answers */
    if (econn_flush(e) != 0 || eof) {
        return -1;
    }
    const uint8_t *p;
    size_t n;
    if (ns_h2_conn_pending(e->c, &p, &n) != NS_OK) {
        return -1;
    }
    if (n == 0 && ns_h2_conn_done(e->c)) {
        return -1;
    }
    int tw = e->tr && e->tr->want_write(e->t);
    int ready = !e->tr || e->tr->ready(e->t);
    uint32_t want = EPOLLRDHUP | (ns_h2_conn_want_read(e->c) ? EPOLLIN : 0) |
                    ((n && ready) || tw ? EPOLLOUT : 0);
    if (want != e->events) {
        struct epoll_event ee = {.events = want, .data.ptr = e};
        if (epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &ee) != 0) {
            return -1;
        }
        e->events = want;
    }
    return 0;
}

/* Takes over an accepted connection. */
static void adopt(worker *w, int ep, econn **head, int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails on unix: fine */
    econn *e = calloc(1, sizeof *e);
    char peer[NS_H2_PEER_MAX];
    ns_addr_peer(fd, peer, sizeof peer);
    if (e == NULL) {
        goto drop;
    }
    ns_err err = ns_h2_conn_new(&e->c, w->h, peer, w->tr ? w->tr->conn_cost : 0);
    if (err != NS_OK) {
        int64_t now = ns_now_ms();
        if (err == NS_E_UNAVAILABLE &&
            (w->last_budget_warn < 0 || now - w->last_budget_warn >= FD_WARN_EVERY_MS)) {
            ns_warn("%s", ns_err_msg()); /* counted in nsign_connections_refused_total */
            w->last_budget_warn = now;
        }
        goto drop;
    }
    e->tr = w->tr;
    if (e->tr && (e->t = e->tr->open(e->tr->arg, fd, e->c, peer)) == NULL) {
        ns_h2_conn_free(e->c);
        goto drop;
    }
    e->fd = fd;
    e->events = EPOLLIN | EPOLLRDHUP;
    struct epoll_event ee = {.events = e->events, .data.ptr = e};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ee) != 0) {
        if (e->tr) {
            e->tr->close(e->t);
        }
        ns_h2_conn_free(e->c);
        goto drop;
    }
    e->next = *head;
    if (*head) {
        (*head)->prev = e;
    }
    *head = e;
    ns_debug("connection peer=%s loop=%d open=%d", peer, w->index,
             __atomic_load_n(&w->nconn, __ATOMIC_RELAXED));
    return;
drop:
    free(e);
    close(fd);
    __atomic_sub_fetch(&w->nconn, 1, __ATOMIC_RELAXED);
}

/* The loop with the fewest connections, this one on a tie. Whichever loop wins the accept, the
 * connections end up spread evenly, so a few busy clients use every core. */
static worker *least_loaded(worker *w)
{
    worker *best = w;
    int min = __atomic_load_n(&w->nconn, __ATOMIC_RELAXED);
    for (int i = 0; i < w->nworkers; i++) {
        int n = __atomic_load_n(&w->all[i].nconn, __ATOMIC_RELAXED);
        if (n < min) {
            min = n;
            best = &w->all[i];
        }
    }
    return best;
}

/* Returns -1 when out of descriptors: the caller pauses accepting (the listener stays readable,
 * so a level-triggered loop would otherwise spin). */
static int accept_some(worker *w, int ep, econn **head)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                return -1;
            }
            return 0; /* EAGAIN: another loop took it; ECONNABORTED and the like: next time */
        }
        worker *t = least_loaded(w);
        if (__atomic_add_fetch(&t->nconn, 1, __ATOMIC_RELAXED) > NS_H2_MAX_CONNS_PER_THREAD) {
            __atomic_sub_fetch(&t->nconn, 1, __ATOMIC_RELAXED);
            close(fd);
            continue;
        }
        if (t != w) {
            /* A pipe write of 4 bytes is atomic. */
            if (write(t->handoff[1], &fd, sizeof fd) == (ssize_t)sizeof fd) {
                continue;
            }
            /* The pipe is full: keep the connection here. */
            __atomic_sub_fetch(&t->nconn, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&w->nconn, 1, __ATOMIC_RELAXED);
        }
        adopt(w, ep, head, fd);
    }
    return 0;
}

/* Connections another loop accepted for this one. */
static void take_handoffs(worker *w, int ep, econn **head)
{
    int fds[64];
    ssize_t r;
    while ((r = read(w->handoff[0], fds, sizeof fds)) > 0) {
        for (size_t i = 0; i < (size_t)r / sizeof fds[0]; i++) {
            adopt(w, ep, head, fds[i]);
        }
    }
}

/* ---- the drain (cfg.drain, see h2loop.h): kept apart from the serving path ---- */

/* Closes a connection of this loop. */
static void worker_close(worker *w, int ep, econn **head, econn *e)
{
    econn_close(ep, head, e);
    __atomic_sub_fetch(&w->nconn, 1, __ATOMIC_RELAXED);
}

/* Called once per loop turn. Returns 1 once this loop is done: every connection closed after
 * the final GOAWAYs, or the drain's time is up. */
static int drain_tick(worker *w, int ep, econn **head)
{
    int64_t now = ns_now_ms();
    if (!w->draining) {
        if (w->drain == NULL || !*w->drain) {
            return 0;
        }
        int notice =
            w->drain_ms / 2 < NS_H2_DRAIN_NOTICE_MS ? w->drain_ms / 2 : NS_H2_DRAIN_NOTICE_MS;
        w->draining = 1;
        w->drain_end = now + w->drain_ms;
        w->final_at = now + notice;
        (void)epoll_ctl(ep, EPOLL_CTL_DEL, w->lfd, NULL);
        __atomic_add_fetch(w->released, 1, __ATOMIC_SEQ_CST);
        if (w->index == 0) {
            ns_info("draining: new connections refused, GOAWAY sent, up to %d ms for the "
                    "calls in flight",
                    w->drain_ms);
        }
    }
    int want = now >= w->final_at ? 2 : 1;
    for (econn *e = *head, *next; e; e = next) {
        next = e->next;
        if (e->drained >= want) {
            continue;
        }
        while (e->drained < want &&
               (e->drained == 0 ? ns_h2_conn_drain_notice(e->c) : ns_h2_conn_drain_final(e->c))) {
            e->drained++;
        }
        if (econn_service(ep, e, 0) != 0) {
            worker_close(w, ep, head, e);
        }
    }
    return (want == 2 && *head == NULL) || now >= w->drain_end;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    econn *head = NULL;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        w->err = ns_fail_errno(NS_E_IO, "epoll_create1");
        snprintf(w->errmsg, sizeof w->errmsg, "%s", ns_err_msg());
        *w->stop = 1;
        return NULL;
    }
    struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL};
    struct epoll_event hev = {.events = EPOLLIN, .data.ptr = &handoff_tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, w->lfd, &lev) != 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, w->handoff[0], &hev) != 0) {
        w->err = ns_fail_errno(NS_E_IO, "epoll_ctl on the listener or hand-off pipe");
        snprintf(w->errmsg, sizeof w->errmsg, "%s", ns_err_msg());
        close(ep);
        *w->stop = 1;
        return NULL;
    }
    ns_log_batch(1);
    int64_t last_tick = ns_now_ms();
    int64_t accept_paused_until = -1;
    int64_t last_fd_warn = -1;
    struct epoll_event evs[EVENTS_MAX];
    while (!*w->stop) {
        int n = epoll_wait(ep, evs, EVENTS_MAX, LOOP_WAIT_MS);
        for (int i = 0; i < n; i++) {
            econn *e = evs[i].data.ptr;
            if (e == (void *)&handoff_tag) {
                take_handoffs(w, ep, &head);
            } else if (e == NULL) {
                if (accept_paused_until < 0 && accept_some(w, ep, &head) != 0) {
                    int64_t t = ns_now_ms();
                    if (last_fd_warn < 0 || t - last_fd_warn >= FD_WARN_EVERY_MS) {
                        ns_warn("out of file descriptors: pausing accept open=%d "
                                "(raise the descriptor limit or reduce clients)",
                                __atomic_load_n(&w->nconn, __ATOMIC_RELAXED));
                        last_fd_warn = t;
                    }
                    (void)epoll_ctl(ep, EPOLL_CTL_DEL, w->lfd, NULL);
                    accept_paused_until = t + ACCEPT_PAUSE_MS;
                }
            } else if (econn_service(ep, e, evs[i].events) != 0) {
                econn_close(ep, &head, e);
                __atomic_sub_fetch(&w->nconn, 1, __ATOMIC_RELAXED);
            }
        }
        int64_t now = ns_now_ms();
        if (accept_paused_until >= 0 && now >= accept_paused_until && !w->draining &&
            epoll_ctl(ep, EPOLL_CTL_ADD, w->lfd, &lev) == 0) {
            accept_paused_until = -1;
        }
        if (now - last_tick >= TICK_MS) {
            last_tick = now;
            for (econn *e = head, *next; e; e = next) {
                next = e->next;
                if (ns_h2_conn_tick(e->c, now) != 0 && econn_service(ep, e, 0) != 0) {
                    econn_close(ep, &head, e);
                    __atomic_sub_fetch(&w->nconn, 1, __ATOMIC_RELAXED);
                }
            }
        }
        ns_log_flush();
        if (drain_tick(w, ep, &head)) {
            break;
        }
    }
    /* Clean shutdown: GOAWAY to every client, one best-effort flush, close. */
    while (head) {
        ns_h2_conn_shutdown(head->c);
        (void)econn_flush(head);
        econn_close(ep, &head, head);
    }
    ns_log_batch(0);
    ns_tc_drain();
    close(ep);
    return NULL;
}

ns_err ns_h2_serve(const ns_h2_serve_cfg *cfg, const ns_h2_handler *h, ns_stop *stop)
{
    enum { MAX_THREADS = 256 };
    int n = cfg->threads > 0 ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) {
        n = 1;
    }
    if (n > MAX_THREADS) {
        n = MAX_THREADS;
    }
    int lfd;
    ns_h2_output_configure(h);
    GUARD(ns_addr_listen(&cfg->listen, 1024, NS_LISTEN_NONBLOCK, &lfd));
    ns_addr bound = cfg->listen;
    if (bound.kind == NS_ADDR_TCP) {
        uint32_t port;
        if (ns_addr_local_port(lfd, &port) == NS_OK) {
            bound.port = (uint16_t)port;
        }
    }
    worker *ws = calloc((size_t)n, sizeof *ws);
    if (ws == NULL) {
        close(lfd);
        BAIL(NS_E_NOMEM, "out of memory for %d event loops", n);
    }
    int started = 0;
    ns_err rc = NS_OK;
    int piped = 0;
    int released = 0;
    for (; piped < n; piped++) {
        ws[piped] = (worker){.h = h,
                             .tr = cfg->transport,
                             .stop = stop,
                             .drain = cfg->drain,
                             .drain_ms = cfg->drain_ms,
                             .released = &released,
                             .lfd = lfd,
                             .all = ws,
                             .nworkers = n,
                             .index = piped,
                             .last_budget_warn = -1};
        if (pipe2(ws[piped].handoff, O_NONBLOCK | O_CLOEXEC) != 0) {
            rc = ns_fail_errno(NS_E_IO, "pipe2 for event loop %d", piped);
            break;
        }
    }
    for (; rc == NS_OK && started < n; started++) {
        if (pthread_create(&ws[started].tid, NULL, worker_main, &ws[started]) != 0) {
            rc = ns_fail(NS_E_NOMEM, "cannot start event loop %d of %d", started, n);
            *stop = 1;
            break;
        }
    }
    if (rc == NS_OK && cfg->on_listening) {
        char name[NS_ADDR_STR_MAX];
        ns_addr_format(&bound, name, sizeof name);
        cfg->on_listening(name, cfg->on_listening_arg);
    }
    /* A drain closes the listener once no loop waits on it any more: from then on a connection
     * is refused by the kernel rather than left in the backlog. */
    while (rc == NS_OK && cfg->drain && !*stop &&
           __atomic_load_n(&released, __ATOMIC_SEQ_CST) < started) {
        usleep(50 * 1000);
    }
    if (rc == NS_OK && cfg->drain && __atomic_load_n(&released, __ATOMIC_SEQ_CST) == started) {
        ns_addr_unlisten(&cfg->listen, lfd);
        lfd = -1;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].tid, NULL);
        if (rc == NS_OK && ws[i].err != NS_OK) {
            rc = ns_fail(ws[i].err, "%s", ws[i].errmsg);
        }
    }
    /* Connections handed over as the loops stopped were never adopted: close them. */
    for (int i = 0; i < piped; i++) {
        int fd;
        while (read(ws[i].handoff[0], &fd, sizeof fd) == (ssize_t)sizeof fd) {
            close(fd);
        }
        close(ws[i].handoff[0]);
        close(ws[i].handoff[1]);
    }
    free(ws);
    if (lfd >= 0) {
        ns_addr_unlisten(&cfg->listen, lfd);
    }
    return rc;
}
