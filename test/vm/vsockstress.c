/*
 * vsockstress: test code for test/vm/test_enclave_kernel.sh. Sustained two-way vsock traffic
 * over many connections at once, to show that an enclave kernel's virtio-vsock driver keeps
 * moving when both directions are saturated (the queued_replies pushback removed by
 * eif/kernel-patches/0001-*.patch could stall it). Built static with musl-gcc; needs nothing
 * from nsign.
 *
 *   vsockstress                 guest side (run as init, or exec'd by devprobe): AF_VSOCK,
 *                               connects to CID 3 port 7000, listens on port 7001; powers the
 *                               VM off at the end when it is PID 1
 *   vsockstress host ACCEPT CONNECT   host side: AF_UNIX, listens on the unix socket ACCEPT
 *                               (nsign vhost-vsock --connect 7000=unix:ACCEPT) and connects to
 *                               CONNECT (nsign vhost-vsock --listen unix:CONNECT=7001)
 * Settings (environment; the kernel hands NAME=VALUE command-line words to init as such):
 *   STRESS_SECONDS=20   how long every stream keeps writing
 *   STRESS_STREAMS=12   streams this side opens (the other side accepts as many)
 *   STRESS_PEER_STREAMS=12   streams the other side opens
 *   STRESS_CHURN=4      short connections this side keeps opening while the streams run
 *                       (each one makes the peer send a connection response: a "reply")
 *   STRESS_ROLE=guest   host mode with the guest's byte streams (two host processes, a check of
 *                       this program itself)
 *   STRESS_STALL=30     seconds without a byte moved on any stream that count as a stall
 *   STRESS_START=300    seconds to wait for the first stream (the peer may still be booting);
 *                       STRESS_SECONDS counts from then
 *
 * Each connection starts with a 16-byte header from the side that opened it ("NSVS", id, kind)
 * that the other side echoes. A stream then carries data both ways at once: each side writes
 * its pseudo-random byte stream (a pure function of the stream id, which side opened it, the
 * direction and the offset) in 64 KiB writes as fast as the socket takes it, and reads the
 * other's in 4 KiB reads, at most 16 KiB per stream per round, so the writers are always ahead
 * of the readers and every queue on the way stays full. Every byte read is compared with the
 * expected stream. After STRESS_SECONDS a writer shuts its direction down; a stream ends when
 * both directions have. Output, one line each, all starting with "vsockstress: ":
 *   stream opened|accepted ID sent=BYTES/FNV1A64 recv=BYTES/FNV1A64   one per stream
 *   result ... PASS | FAIL: REASON
 * The test compares each stream's sent line with the other side's recv line (counts and
 * FNV-1a digests). Memory is bounded: fixed tables of at most MAX_CONNS connections.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vm_sockets.h"

#define MAX_CONNS 256
#define PORT_OUT 7000u /* guest -> CID 3 */
#define PORT_IN 7001u  /* host -> guest */
#define PARENT_CID 3u
#define WRITE_CHUNK 65536
#define READ_CHUNK 4096
#define READ_ROUND_CAP 16384
#define HDR_LEN 16
#define KIND_STREAM 1u
#define KIND_CHURN 2u

enum { C_FREE, C_CONNECTING, C_WAIT_ACK, C_WAIT_HDR, C_STREAM, C_CHURN_END };

typedef struct {
    int fd, st;
    int opened;    /* 1: this side opened it */
    uint32_t id, kind;
    uint8_t hdr[HDR_LEN], in[HDR_LEN]; /* sent (or received) header; its echo */
    size_t hdr_len;
    uint64_t sent, recvd, hs, hr; /* counts and FNV-1a digests */
    int wr_done, rd_done;
} conn;

static conn conns[MAX_CONNS];
static int is_host, host_role, lfd = -1; /* host_role: seeds as the host side */
static const char *host_accept, *host_connect;
static long seconds = 20, n_streams = 12, n_peer = 12, n_churn = 4, stall_s = 30, start_s = 300;
static long opened_done, accepted_done, opened_active, churn_active, churn_done, churn_acc;
static long retries, failures;
static uint32_t next_id;
/* Streams of this side to open again (the peer did not listen yet), from pend_at on. */
static uint32_t pend[MAX_CONNS];
static long n_pend;
static int64_t pend_at;
static int64_t t0, t_end = INT64_MAX, last_progress; /* t_end: set when a stream opens */
static int started;
static uint8_t wbuf[WRITE_CHUNK], rbuf[READ_CHUNK];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

/* The byte at offset off of a stream: seed = (id, opened-by-host, direction). */
static uint8_t stream_byte(uint64_t seed, uint64_t off)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + (off >> 3) + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint8_t)(z >> (8 * (off & 7)));
}

static uint64_t seed_of(const conn *c, int writing)
{
    /* Which side opened it, as the host sees it: both sides compute the same seed. */
    int host_opened = host_role ? c->opened : !c->opened;
    int from_opener = writing ? c->opened : !c->opened;
    return ((uint64_t)c->id << 2) | ((uint64_t)host_opened << 1) | (uint64_t)from_opener;
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001B3ull;
    }
    return h;
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("vsockstress: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static conn *slot(void)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        if (conns[i].st == C_FREE) {
            memset(&conns[i], 0, sizeof conns[i]);
            conns[i].hs = conns[i].hr = 0xCBF29CE484222325ull;
            return &conns[i];
        }
    }
    return NULL;
}

static void drop(conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->st = C_FREE;
}

static int open_socket(void)
{
    int fd;
    if (is_host) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", host_connect);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
    } else {
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = PARENT_CID, .svm_port = PORT_OUT};
        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* Opens a connection of kind with id (a new stream, a retried one, or a churn). */
static void open_conn(uint32_t kind, uint32_t id)
{
    conn *c = slot();
    if (c == NULL) {
        return;
    }
    c->fd = open_socket();
    if (c->fd < 0) {
        c->st = C_FREE;
        if (kind == KIND_STREAM) {
            retries++;
            pend[n_pend++] = id;
            pend_at = now_ms() + 100;
        }
        return;
    }
    c->st = C_CONNECTING;
    c->opened = 1;
    c->kind = kind;
    c->id = id;
    if (kind == KIND_STREAM) {
        opened_active++;
    } else {
        churn_active++;
    }
}

static void conn_failed(conn *c)
{
    /* An opened connection that ends before the header's echo is retried (the peer may not
     * listen yet); a failure later in a stream is a test failure. */
    if (c->opened && c->kind == KIND_STREAM) {
        opened_active--;
        if (c->st == C_CONNECTING || c->st == C_WAIT_ACK) {
            retries++;
            uint32_t id = c->id;
            drop(c);
            if (now_ms() < (started ? t_end : t0 + start_s * 1000)) {
                pend[n_pend++] = id;
                pend_at = now_ms() + 100;
            } else {
                failures++;
                out("stream %u never opened", id);
            }
            return;
        }
        failures++;
        out("stream opened %u failed after sent=%" PRIu64 " recv=%" PRIu64 ": %s", c->id, c->sent,
            c->recvd, strerror(errno));
    } else if (c->opened) {
        churn_active--;
    } else if (c->kind == KIND_STREAM) {
        failures++;
        out("stream accepted %u failed after sent=%" PRIu64 " recv=%" PRIu64 ": %s", c->id,
            c->sent, c->recvd, strerror(errno));
    }
    drop(c);
}

static void stream_finish(conn *c)
{
    out("stream %s %u sent=%" PRIu64 "/%016" PRIx64 " recv=%" PRIu64 "/%016" PRIx64,
        c->opened ? "opened" : "accepted", c->id, c->sent, c->hs, c->recvd, c->hr);
    if (c->opened) {
        opened_active--;
        opened_done++;
    } else {
        accepted_done++;
    }
    drop(c);
}

static void header(conn *c, uint32_t kind, uint32_t id)
{
    memcpy(c->hdr, "NSVS", 4);
    memcpy(c->hdr + 4, &id, 4);
    memcpy(c->hdr + 8, &kind, 4);
    memset(c->hdr + 12, 0, 4);
}

/* Reads the 16-byte header (or its echo); 1 when complete, 0 not yet, -1 closed or bad. */
static int read_hdr(conn *c, uint8_t *buf)
{
    ssize_t n = read(c->fd, buf + c->hdr_len, HDR_LEN - c->hdr_len);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        return -1;
    }
    if (n > 0) {
        c->hdr_len += (size_t)n;
    }
    return c->hdr_len == HDR_LEN ? 1 : 0;
}

/* The first stream to open starts the clock on this side (the guest may still be booting when
 * the host side starts). */
static void stream_open(int64_t t)
{
    if (!started) {
        started = 1;
        t_end = t + seconds * 1000;
        last_progress = t;
        out("first stream open after %.1fs", (double)(t - t0) / 1000.0);
    }
}

static void on_event(conn *c, short re)
{
    int64_t t = now_ms();
    if (c->st == C_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err != 0 || (re & (POLLERR | POLLHUP))) {
            errno = err;
            conn_failed(c);
            return;
        }
        header(c, c->kind, c->id);
        if (send(c->fd, c->hdr, HDR_LEN, MSG_NOSIGNAL) != HDR_LEN) {
            conn_failed(c);
            return;
        }
        c->st = C_WAIT_ACK;
        c->hdr_len = 0;
        return;
    }
    if (c->st == C_WAIT_ACK) {
        int r = read_hdr(c, c->in);
        if (r < 0 || (r == 1 && memcmp(c->in, c->hdr, HDR_LEN) != 0)) {
            conn_failed(c);
        } else if (r == 1 && c->kind == KIND_STREAM) {
            stream_open(t);
            c->st = C_STREAM;
        } else if (r == 1) {
            churn_active--;
            churn_done++;
            drop(c);
        }
        return;
    }
    if (c->st == C_WAIT_HDR) {
        int r = read_hdr(c, c->hdr);
        uint32_t kind = 0, id = 0;
        if (r == 1) {
            memcpy(&id, c->hdr + 4, 4);
            memcpy(&kind, c->hdr + 8, 4);
        }
        if (r < 0 || (r == 1 && (memcmp(c->hdr, "NSVS", 4) != 0 ||
                                 (kind != KIND_STREAM && kind != KIND_CHURN)))) {
            drop(c); /* a churn the peer gave up, or garbage: not a stream yet */
            return;
        }
        if (r == 1) {
            if (send(c->fd, c->hdr, HDR_LEN, MSG_NOSIGNAL) != HDR_LEN) {
                drop(c);
                return;
            }
            c->id = id;
            c->kind = kind;
            c->st = kind == KIND_STREAM ? C_STREAM : C_CHURN_END;
            if (kind == KIND_STREAM) {
                stream_open(t);
            }
        }
        return;
    }
    if (c->st == C_CHURN_END) {
        ssize_t n = read(c->fd, rbuf, sizeof rbuf);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            churn_acc++;
            drop(c);
        }
        return;
    }
    /* C_STREAM */
    if (!c->rd_done && (re & (POLLIN | POLLHUP | POLLERR))) {
        size_t round = 0;
        while (round < READ_ROUND_CAP) {
            ssize_t n = read(c->fd, rbuf, sizeof rbuf);
            if (n < 0 && errno == EAGAIN) {
                break;
            }
            if (n < 0) {
                conn_failed(c);
                return;
            }
            if (n == 0) {
                c->rd_done = 1;
                break;
            }
            uint64_t seed = seed_of(c, 0);
            for (ssize_t i = 0; i < n; i++) {
                if (rbuf[i] != stream_byte(seed, c->recvd + (uint64_t)i)) {
                    failures++;
                    out("stream %s %u: wrong byte at offset %" PRIu64, c->opened ? "opened" : "accepted",
                        c->id, c->recvd + (uint64_t)i);
                    conn_failed(c);
                    return;
                }
            }
            c->hr = fnv(c->hr, rbuf, (size_t)n);
            c->recvd += (uint64_t)n;
            round += (size_t)n;
            last_progress = t;
        }
    }
    if (!c->wr_done && t >= t_end) {
        shutdown(c->fd, SHUT_WR);
        c->wr_done = 1;
    }
    if (!c->wr_done && (re & POLLOUT)) {
        uint64_t seed = seed_of(c, 1);
        for (size_t i = 0; i < sizeof wbuf; i++) {
            wbuf[i] = stream_byte(seed, c->sent + i);
        }
        ssize_t n = send(c->fd, wbuf, sizeof wbuf, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            conn_failed(c);
            return;
        }
        if (n > 0) {
            c->hs = fnv(c->hs, wbuf, (size_t)n);
            c->sent += (uint64_t)n;
            last_progress = t;
        }
    }
    if (c->wr_done && c->rd_done) {
        stream_finish(c);
    }
}

static int listen_socket(void)
{
    int fd;
    if (is_host) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", host_accept);
        unlink(host_accept);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            return -1;
        }
    } else {
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = PORT_IN};
        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            return -1;
        }
    }
    return listen(fd, 128) == 0 ? fd : -1;
}

static int run(void)
{
    lfd = listen_socket();
    if (lfd < 0) {
        out("result FAIL: cannot listen: %s", strerror(errno));
        return 1;
    }
    t0 = last_progress = now_ms();
    for (long i = 0; i < n_streams; i++) {
        open_conn(KIND_STREAM, next_id++);
    }
    static struct pollfd pfd[MAX_CONNS + 1];
    static int idx[MAX_CONNS + 1];
    for (;;) {
        int64_t t = now_ms();
        if (opened_done + accepted_done == n_streams + n_peer && churn_active == 0) {
            break;
        }
        if (failures > 0) {
            break;
        }
        if (!started && t - t0 > start_s * 1000) {
            out("no stream opened in %ld s", start_s);
            failures++;
            break;
        }
        if (started && t - last_progress > stall_s * 1000) {
            out("STALL: no stream moved a byte for %ld s (streams done %ld+%ld of %ld+%ld)",
                stall_s, opened_done, accepted_done, n_streams, n_peer);
            for (int i = 0; i < MAX_CONNS; i++) {
                const conn *c = &conns[i];
                if (c->st == C_STREAM) {
                    out("  stalled stream %s %u sent=%" PRIu64 " recv=%" PRIu64 " wr_done=%d rd_done=%d",
                        c->opened ? "opened" : "accepted", c->id, c->sent, c->recvd, c->wr_done,
                        c->rd_done);
                }
            }
            failures++;
            break;
        }
        if (n_pend > 0 && t >= pend_at) {
            long k = n_pend;
            n_pend = 0;
            for (long i = 0; i < k; i++) {
                open_conn(KIND_STREAM, pend[i]);
            }
        }
        while (started && t < t_end && churn_active < n_churn) {
            long before = churn_active;
            open_conn(KIND_CHURN, 0x80000000u | next_id++);
            if (churn_active == before) {
                break;
            }
        }
        int n = 0;
        pfd[n] = (struct pollfd){.fd = lfd, .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < MAX_CONNS; i++) {
            conn *c = &conns[i];
            if (c->st == C_FREE) {
                continue;
            }
            short ev = POLLIN;
            if (c->st == C_CONNECTING || (c->st == C_STREAM && !c->wr_done)) {
                ev |= POLLOUT;
            }
            if (c->st == C_STREAM && c->rd_done) {
                ev = POLLOUT;
            }
            pfd[n] = (struct pollfd){.fd = c->fd, .events = ev};
            idx[n++] = i;
        }
        int64_t wait = t < t_end ? t_end - t : 1000;
        if (n_pend > 0) {
            wait = 100;
        }
        if (poll(pfd, (nfds_t)n, (int)(wait < 1000 ? wait : 1000)) < 0 && errno != EINTR) {
            out("result FAIL: poll: %s", strerror(errno));
            return 1;
        }
        if (pfd[0].revents & POLLIN) {
            for (;;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    break;
                }
                conn *c = slot();
                if (c == NULL) {
                    close(fd);
                    continue;
                }
                c->fd = fd;
                c->st = C_WAIT_HDR;
            }
        }
        for (int k = 1; k < n; k++) {
            conn *c = &conns[idx[k]];
            if (c->st != C_FREE && (pfd[k].revents || (c->st == C_STREAM && !c->wr_done && now_ms() >= t_end))) {
                on_event(c, pfd[k].revents);
            }
        }
    }
    double el = (double)(now_ms() - t0) / 1000.0;
    if (failures == 0) {
        out("result streams=%ld+%ld churn=%ld/%ld retries=%ld elapsed=%.1fs PASS", opened_done,
            accepted_done, churn_done, churn_acc, retries, el);
        return 0;
    }
    out("result streams=%ld+%ld churn=%ld/%ld retries=%ld elapsed=%.1fs FAIL: %ld failure(s)",
        opened_done, accepted_done, churn_done, churn_acc, retries, el, failures);
    return 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    is_host = argc >= 4 && strcmp(argv[1], "host") == 0;
    if (is_host) {
        host_accept = argv[2];
        host_connect = argv[3];
    }
    /* STRESS_ROLE=guest: the guest's seeds over unix sockets (two host processes checking
     * this program itself). */
    host_role = is_host && !(getenv("STRESS_ROLE") && strcmp(getenv("STRESS_ROLE"), "guest") == 0);
    seconds = env_long("STRESS_SECONDS", seconds);
    n_streams = env_long("STRESS_STREAMS", n_streams);
    n_peer = env_long("STRESS_PEER_STREAMS", n_peer);
    n_churn = env_long("STRESS_CHURN", n_churn);
    stall_s = env_long("STRESS_STALL", stall_s);
    start_s = env_long("STRESS_START", start_s);
    if (n_streams + n_peer + n_churn * 2 + 8 > MAX_CONNS) {
        out("result FAIL: too many connections for %d slots", MAX_CONNS);
        return 2;
    }
    out("%s side: %lds, %ld streams opened here, %ld by the peer, %ld churn", is_host ? "host" : "guest",
        seconds, n_streams, n_peer, n_churn);
    int rc = run();
    if (!is_host && getpid() == 1) {
        out("powering off");
        sync();
        reboot(RB_POWER_OFF);
    }
    return rc;
}
