/*
 * logship: see logship.h. The ring is a plain circular byte buffer: head (write) and tail (read)
 * offsets under one mutex. The sender copies up to SEND_CHUNK bytes out, writes them without the
 * lock (poll with a short timeout so stop is noticed), then consumes what was written.
 */
#include "logship.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "iox.h"
#include "log.h"
#include "stop.h"

#define SEND_CHUNK (64u * 1024)
#define POLL_MS 100

struct ns_logship {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int stop;
    int sending; /* the sender thread runs (ns_logship_send_to) */
    ns_addr to;
    char *ring;
    size_t cap, head, len; /* data is ring[(head - len) .. head) modulo cap */
    uint64_t dropped_total;
    uint64_t dropped_pending;
    int mid_line; /* the last byte sent was not a '\n' (cut by a broken connection) */
};

static size_t count_lines(const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        k += p[i] == '\n';
    }
    return k ? k : 1;
}

static void ring_put(ns_logship *ls, const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t at = ls->head % ls->cap;
        size_t k = ls->cap - at < n - i ? ls->cap - at : n - i;
        memcpy(ls->ring + at, p + i, k);
        ls->head = (ls->head + k) % ls->cap;
        i += k;
    }
    ls->len += n;
}

void ns_logship_write(ns_logship *ls, const char *p, size_t n)
{
    char note[160];
    if (ls == NULL || n == 0) {
        return;
    }
    pthread_mutex_lock(&ls->mu);
    /* The drop path stays cheap (no formatting): a full ring is when writers are busiest. */
    if (ls->len + n + (ls->dropped_pending > 0 ? sizeof note : 0) > ls->cap) {
        size_t k = count_lines(p, n);
        ls->dropped_total += k;
        ls->dropped_pending += k;
        pthread_mutex_unlock(&ls->mu);
        return;
    }
    if (ls->dropped_pending > 0) {
        int k = snprintf(note, sizeof note,
                         "nsign %s: warn log lines dropped count=%llu (the log reader was too slow "
                         "or absent)\n",
                         ns_log_applet(), (unsigned long long)ls->dropped_pending);
        if (k > 0 && (size_t)k < sizeof note) {
            ring_put(ls, note, (size_t)k);
        }
        ls->dropped_pending = 0;
    }
    ring_put(ls, p, n);
    pthread_cond_signal(&ls->cv);
    pthread_mutex_unlock(&ls->mu);
}

uint64_t ns_logship_dropped(ns_logship *ls)
{
    pthread_mutex_lock(&ls->mu);
    uint64_t d = ls->dropped_total;
    pthread_mutex_unlock(&ls->mu);
    return d;
}

size_t ns_logship_pending(ns_logship *ls)
{
    pthread_mutex_lock(&ls->mu);
    size_t n = ls->len;
    pthread_mutex_unlock(&ls->mu);
    return n;
}

/* Copies up to cap bytes from the ring's start (under mu). */
static size_t ring_peek(ns_logship *ls, char *out, size_t cap)
{
    size_t n = ls->len < cap ? ls->len : cap;
    size_t start = (ls->head + ls->cap - ls->len) % ls->cap;
    for (size_t i = 0; i < n;) {
        size_t at = (start + i) % ls->cap;
        size_t k = ls->cap - at < n - i ? ls->cap - at : n - i;
        memcpy(out + i, ls->ring + at, k);
        i += k;
    }
    return n;
}

/* After a broken connection: drops what is left of a partly sent line (under mu). */
static void drop_partial(ns_logship *ls)
{
    if (ls->mid_line) {
        ls->dropped_total++;
        ls->dropped_pending++;
    }
    while (ls->mid_line && ls->len > 0) {
        size_t start = (ls->head + ls->cap - ls->len) % ls->cap;
        ls->len--;
        ls->mid_line = ls->ring[start] != '\n';
    }
    ls->mid_line = 0;
}

static void wait_ms(ns_logship *ls, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_cond_timedwait(&ls->cv, &ls->mu, &ts);
}

/* Sends buf[0..n) on fd; returns bytes written before an error or stop, -1 on error. */
static ssize_t send_some(ns_logship *ls, int fd, const char *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int k = poll(&pf, 1, POLL_MS);
        if (ls->stop && k == 0) {
            return (ssize_t)done; /* stalled reader at shutdown: give up */
        }
        if (k <= 0) {
            continue;
        }
        if (pf.revents & (POLLERR | POLLHUP)) {
            return done ? (ssize_t)done : -1;
        }
        ssize_t w = send(fd, buf + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        if (w <= 0) {
            return done ? (ssize_t)done : -1;
        }
        done += (size_t)w;
    }
    return (ssize_t)done;
}

static void *sender(void *arg)
{
    ns_logship *ls = arg;
    char *buf = malloc(SEND_CHUNK);
    int fd = -1;
    pthread_mutex_lock(&ls->mu);
    while (buf != NULL && !(ls->stop && (ls->len == 0 || fd < 0))) {
        if (fd < 0) {
            pthread_mutex_unlock(&ls->mu);
            int ok = ns_addr_connect(&ls->to, 1000, &fd) == NS_OK;
            pthread_mutex_lock(&ls->mu);
            if (!ok) {
                fd = -1;
                ns_err_clear();
                if (!ls->stop) {
                    wait_ms(ls, NS_LOGSHIP_RETRY_MS);
                }
                continue;
            }
            ns_set_nonblock(fd, 1);
            drop_partial(ls);
        }
        if (ls->len == 0) {
            wait_ms(ls, 1000);
            continue;
        }
        size_t n = ring_peek(ls, buf, SEND_CHUNK);
        pthread_mutex_unlock(&ls->mu);
        ssize_t w = send_some(ls, fd, buf, n);
        pthread_mutex_lock(&ls->mu);
        if (w > 0) {
            ls->len -= (size_t)w;
            ls->mid_line = buf[w - 1] != '\n';
        }
        if (w < 0 || (size_t)w < n) {
            close(fd);
            fd = -1;
            if (ls->stop) {
                break;
            }
        }
    }
    pthread_mutex_unlock(&ls->mu);
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return NULL;
}

ns_err ns_logship_new(ns_logship **out, size_t ring_bytes)
{
    ns_logship *ls = calloc(1, sizeof *ls);
    ENSURE(ls != NULL, NS_E_NOMEM, "out of memory");
    ls->cap = ring_bytes ? ring_bytes : NS_LOGSHIP_RING_DEFAULT;
    ls->ring = malloc(ls->cap);
    if (ls->ring == NULL) {
        free(ls);
        BAIL(NS_E_NOMEM, "cannot allocate the log ring (%zu bytes)", ring_bytes);
    }
    pthread_mutex_init(&ls->mu, NULL);
    pthread_cond_init(&ls->cv, NULL);
    *out = ls;
    return NS_OK;
}

ns_err ns_logship_send_to(ns_logship *ls, const ns_addr *to)
{
    pthread_mutex_lock(&ls->mu);
    if (ls->sending) {
        pthread_mutex_unlock(&ls->mu);
        return NS_OK;
    }
    ls->to = *to;
    int rc = pthread_create(&ls->th, NULL, sender, ls);
    ls->sending = rc == 0;
    pthread_mutex_unlock(&ls->mu);
    ENSURE(rc == 0, NS_E_NOMEM, "cannot start the log sender thread");
    return NS_OK;
}

static void ls_free(ns_logship *ls)
{
    pthread_mutex_destroy(&ls->mu);
    pthread_cond_destroy(&ls->cv);
    free(ls->ring);
    free(ls);
}

ns_err ns_logship_start(ns_logship **out, const ns_addr *to, size_t ring_bytes)
{
    ns_logship *ls;
    GUARD(ns_logship_new(&ls, ring_bytes));
    ns_err e = ns_logship_send_to(ls, to);
    if (e != NS_OK) {
        ls_free(ls);
        return e;
    }
    *out = ls;
    return NS_OK;
}

void ns_logship_stop(ns_logship *ls, int flush_ms)
{
    if (ls == NULL) {
        return;
    }
    int64_t deadline = ns_now_ms() + flush_ms;
    pthread_mutex_lock(&ls->mu);
    while (ls->sending && ls->len > 0 && ns_now_ms() < deadline) {
        pthread_cond_signal(&ls->cv);
        wait_ms(ls, 50);
    }
    ls->stop = 1;
    ls->len = 0; /* what is left after the flush time is not sent */
    pthread_cond_signal(&ls->cv);
    int joined = ls->sending;
    pthread_mutex_unlock(&ls->mu);
    if (joined) {
        pthread_join(ls->th, NULL);
    }
    ls_free(ls);
}

/* --- receiver --- */

typedef struct {
    int fd;
    size_t len;
    int cut; /* discarding the rest of an over-long line */
    char line[NS_LOGRECV_LINE_MAX];
} rconn;

struct ns_logrecv {
    int lfd;
    ns_addr addr;
    int has_peer;
    ns_addr_peer_rule peer;
    _Atomic uint64_t refused;
    ns_logrecv_fn fn;
    void *arg;
    ns_stop stop;
    pthread_t th;
    rconn *c[NS_LOGRECV_CONNS];
};

static void rconn_feed(ns_logrecv *r, rconn *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (!c->cut) {
                r->fn(r->arg, c->line, c->len);
            }
            c->len = 0;
            c->cut = 0;
        } else if (c->cut) {
            continue;
        } else if (c->len < sizeof c->line) {
            c->line[c->len++] = p[i];
        } else {
            r->fn(r->arg, c->line, c->len); /* over-long: deliver what fits, skip the rest */
            c->len = 0;
            c->cut = 1;
        }
    }
}

static int any_open(const ns_logrecv *r)
{
    for (int i = 0; i < NS_LOGRECV_CONNS; i++) {
        if (r->c[i] != NULL) {
            return 1;
        }
    }
    return 0;
}

static void *receiver(void *arg)
{
    ns_logrecv *r = arg;
    char buf[16384];
    int64_t drain_until = 0;
    for (;;) {
        if (r->stop && drain_until == 0) {
            drain_until = ns_now_ms() + NS_LOGRECV_DRAIN_MS;
        }
        if (r->stop && (!any_open(r) || ns_now_ms() >= drain_until)) {
            break;
        }
        struct pollfd pf[NS_LOGRECV_CONNS + 1];
        pf[0] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
        for (int i = 0; i < NS_LOGRECV_CONNS; i++) {
            pf[i + 1] = (struct pollfd){.fd = r->c[i] ? r->c[i]->fd : -1, .events = POLLIN};
        }
        if (poll(pf, NS_LOGRECV_CONNS + 1, POLL_MS) <= 0) {
            continue;
        }
        for (int i = 0; i < NS_LOGRECV_CONNS; i++) {
            rconn *c = r->c[i];
            if (c == NULL || pf[i + 1].revents == 0) {
                continue;
            }
            ssize_t k = read(c->fd, buf, sizeof buf);
            if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            if (k <= 0) {
                if (c->len > 0) {
                    r->fn(r->arg, c->line, c->len);
                }
                close(c->fd);
                free(c);
                r->c[i] = NULL;
                continue;
            }
            rconn_feed(r, c, buf, (size_t)k);
        }
        if ((pf[0].revents & POLLIN) && !r->stop) {
            int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            char who[96];
            if (fd >= 0 && r->has_peer && !ns_addr_peer_allowed(fd, &r->peer, who, sizeof who)) {
                /* Not the enclave: nothing it sends is read. Logged at powers of two so a
                 * flood of attempts costs a few lines. */
                uint64_t n = atomic_fetch_add(&r->refused, 1) + 1;
                if ((n & (n - 1)) == 0) {
                    char on[NS_ADDR_STR_MAX];
                    ns_addr_format(&r->addr, on, sizeof on);
                    ns_warn("refused peer=%s on=%s refused_total=%llu: not the enclave", who, on,
                            (unsigned long long)n);
                }
                close(fd);
                fd = -1;
            }
            int placed = 0;
            for (int i = 0; fd >= 0 && i < NS_LOGRECV_CONNS && !placed; i++) {
                if (r->c[i] == NULL && (r->c[i] = calloc(1, sizeof(rconn))) != NULL) {
                    r->c[i]->fd = fd;
                    placed = 1;
                }
            }
            if (fd >= 0 && !placed) {
                close(fd);
            }
        }
    }
    return NULL;
}

ns_err ns_logrecv_start(ns_logrecv **out, const ns_addr *listen, const ns_addr_peer_rule *peer,
                        ns_logrecv_fn fn, void *arg)
{
    ns_logrecv *r = calloc(1, sizeof *r);
    ENSURE(r != NULL, NS_E_NOMEM, "out of memory");
    r->fn = fn;
    r->arg = arg;
    r->addr = *listen;
    if (peer != NULL) {
        r->has_peer = 1;
        r->peer = *peer;
    }
    ns_err e = ns_addr_listen(listen, 8, NS_LISTEN_NONBLOCK, &r->lfd);
    if (e != NS_OK) {
        free(r);
        return e;
    }
    if (pthread_create(&r->th, NULL, receiver, r) != 0) {
        close(r->lfd);
        free(r);
        BAIL(NS_E_NOMEM, "cannot start the log receiver thread");
    }
    *out = r;
    return NS_OK;
}

uint64_t ns_logrecv_refused(ns_logrecv *r)
{
    return r == NULL ? 0 : atomic_load(&r->refused);
}

void ns_logrecv_stop(ns_logrecv *r)
{
    if (r == NULL) {
        return;
    }
    r->stop = 1;
    pthread_join(r->th, NULL);
    for (int i = 0; i < NS_LOGRECV_CONNS; i++) {
        if (r->c[i] != NULL) {
            close(r->c[i]->fd);
            free(r->c[i]);
        }
    }
    close(r->lfd);
    if (r->addr.kind == NS_ADDR_UNIX && r->addr.path[0] != '@') {
        (void)unlink(r->addr.path);
    }
    free(r);
}
