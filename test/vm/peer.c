/*
 * peer: a stream endpoint for the VM tests that checks data integrity and half-close, and
 * needs nothing from nsign (so a harness fault is never mistaken for an nsign bug). Test code:
 * built static with musl-gcc by test/vm/lib.sh; AF_VSOCK is used only inside the qemu guest.
 *
 *   peer listen|connect ADDR [--send BYTES] [--expect BYTES] [--order ORDER] [--timeout S]
 *     ADDR   tcp:IPV4:PORT | vsock:CID:PORT (listen: vsock:any:PORT)
 *     ORDER  send-first  send BYTES, shutdown(SHUT_WR), then read to EOF
 *            recv-first  read to EOF, then send BYTES, shutdown(SHUT_WR)
 *            duplex      send and read at the same time (default)
 *   The connecting side retries until the listener is up or the timeout passes; the listening
 *   side prints "peer listen: listening on ADDR" to stderr once bound, then accepts one
 *   connection. Each direction carries a known pattern (seeded by who sends
 *   it); the reader checks every byte and that exactly --expect bytes arrive before EOF. A
 *   peer that waits for an EOF that never comes (half-close not propagated) fails at the
 *   timeout. Prints "peer: ok ..." and exits 0, or names what failed and exits 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vm_sockets.h"

#define CHUNK 65536
#define RETRY_NS 50000000L

static const char *g_role = "peer";

static void die(const char *what)
{
    fprintf(stderr, "peer %s: %s: %s\n", g_role, what, errno ? strerror(errno) : "failed");
    exit(1);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "peer: timeout (an EOF or data never arrived: half-close lost?)\n";
    (void)!write(2, m, sizeof m - 1);
    _exit(1);
}

/* Byte i of the stream sent by role r (0 = connector, 1 = listener). */
static unsigned char pattern(uint64_t i, unsigned r)
{
    uint64_t x = (i / 8 + 1) * 0x9E3779B97F4A7C15ull ^ (r + 1) * 0xD1B54A32D192ED03ull;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (unsigned char)(x >> (8 * (i % 8)));
}

static uint64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) {
        fprintf(stderr, "peer: bad size '%s'\n", s);
        exit(2);
    }
    if (*end == 'K') {
        v <<= 10;
    } else if (*end == 'M') {
        v <<= 20;
    } else if (*end != '\0') {
        fprintf(stderr, "peer: bad size '%s'\n", s);
        exit(2);
    }
    return v;
}

/* Fills *ss from ADDR; returns its length. */
static socklen_t parse_addr(const char *s, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (strncmp(s, "tcp:", 4) == 0) {
        char host[64];
        const char *colon = strrchr(s + 4, ':');
        size_t hl = colon ? (size_t)(colon - (s + 4)) : 0;
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        if (!colon || hl == 0 || hl >= sizeof host) {
            goto bad;
        }
        memcpy(host, s + 4, hl);
        host[hl] = '\0';
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)atoi(colon + 1));
        if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
            goto bad;
        }
        return sizeof *in;
    }
    if (strncmp(s, "vsock:", 6) == 0) {
        struct sockaddr_vm *vm = (struct sockaddr_vm *)ss;
        const char *colon = strrchr(s + 6, ':');
        if (!colon) {
            goto bad;
        }
        vm->svm_family = AF_VSOCK;
        vm->svm_cid =
            strncmp(s + 6, "any:", 4) == 0 ? VMADDR_CID_ANY : (unsigned)strtoul(s + 6, NULL, 10);
        vm->svm_port = (unsigned)strtoul(colon + 1, NULL, 10);
        return sizeof *vm;
    }
bad:
    fprintf(stderr, "peer: bad address '%s' (tcp:IPV4:PORT or vsock:CID:PORT)\n", s);
    exit(2);
}

static int open_conn(int listening, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = parse_addr(addr, &ss);
    if (listening) {
        int l = socket(ss.ss_family, SOCK_STREAM, 0);
        int one = 1;
        if (l < 0) {
            die("socket");
        }
        (void)setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(l, (struct sockaddr *)&ss, len) != 0 || listen(l, 1) != 0) {
            die("bind/listen");
        }
        /* Readiness for scripts: a vsock listener cannot be seen from outside (no netstat). */
        fprintf(stderr, "peer listen: listening on %s\n", addr);
        int c = accept(l, NULL, NULL);
        if (c < 0) {
            die("accept");
        }
        close(l);
        return c;
    }
    for (;;) {
        int c = socket(ss.ss_family, SOCK_STREAM, 0);
        if (c < 0) {
            die("socket");
        }
        if (connect(c, (struct sockaddr *)&ss, len) == 0) {
            return c;
        }
        if (errno != ECONNREFUSED && errno != ECONNRESET && errno != ETIMEDOUT && errno != EAGAIN) {
            die("connect");
        }
        close(c);
        struct timespec ts = {0, RETRY_NS};
        nanosleep(&ts, NULL); /* bounded by the alarm */
    }
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "listen") != 0 && strcmp(argv[1], "connect") != 0)) {
        fprintf(stderr, "usage: peer listen|connect ADDR [--send N] [--expect N] "
                        "[--order send-first|recv-first|duplex] [--timeout S]\n");
        return 2;
    }
    int listening = strcmp(argv[1], "listen") == 0;
    g_role = argv[1];
    uint64_t to_send = 0, expect = 0;
    const char *order = "duplex";
    unsigned timeout = 60;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--send") == 0) {
            to_send = parse_size(argv[i + 1]);
        } else if (strcmp(argv[i], "--expect") == 0) {
            expect = parse_size(argv[i + 1]);
        } else if (strcmp(argv[i], "--order") == 0) {
            order = argv[i + 1];
        } else if (strcmp(argv[i], "--timeout") == 0) {
            timeout = (unsigned)strtoul(argv[i + 1], NULL, 10);
        } else {
            fprintf(stderr, "peer: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    int send_first = strcmp(order, "send-first") == 0;
    int recv_first = strcmp(order, "recv-first") == 0;
    if (!send_first && !recv_first && strcmp(order, "duplex") != 0) {
        fprintf(stderr, "peer: bad --order %s\n", order);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(timeout);

    int fd = open_conn(listening, argv[2]);
    unsigned me = listening ? 1 : 0;
    uint64_t sent = 0, got = 0;
    int send_done = 0, recv_done = 0;
    static unsigned char buf[CHUNK];
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        die("fcntl");
    }
    while (!send_done || !recv_done) {
        /* The order only gates when each direction may start. */
        int may_send = !send_done && (!recv_first || recv_done);
        int may_recv = !recv_done && (!send_first || send_done);
        if (may_send && sent == to_send) {
            if (shutdown(fd, SHUT_WR) != 0) {
                die("shutdown(SHUT_WR)");
            }
            send_done = 1;
            continue;
        }
        struct pollfd p = {.fd = fd,
                           .events = (short)((may_send ? POLLOUT : 0) | (may_recv ? POLLIN : 0))};
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("poll");
        }
        if (may_recv && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(fd, buf, sizeof buf);
            if (r < 0 && errno != EAGAIN) {
                die("read");
            }
            if (r == 0) {
                recv_done = 1;
            }
            for (ssize_t i = 0; i < r; i++) {
                if (got + (uint64_t)i >= expect || buf[i] != pattern(got + (uint64_t)i, 1 - me)) {
                    fprintf(stderr, "peer %s: wrong data at byte %llu (expected %llu bytes)\n",
                            g_role, (unsigned long long)(got + (uint64_t)i),
                            (unsigned long long)expect);
                    return 1;
                }
            }
            if (r > 0) {
                got += (uint64_t)r;
            }
        }
        if (may_send && (p.revents & (POLLOUT | POLLERR))) {
            size_t n = 0;
            for (; n < sizeof buf && sent + n < to_send; n++) {
                buf[n] = pattern(sent + n, me);
            }
            ssize_t w = write(fd, buf, n);
            if (w < 0 && errno != EAGAIN) {
                die("write");
            }
            if (w > 0) {
                sent += (uint64_t)w;
            }
        }
    }
    if (got != expect) {
        fprintf(stderr, "peer %s: EOF after %llu bytes, expected %llu\n", g_role,
                (unsigned long long)got, (unsigned long long)expect);
        return 1;
    }
    close(fd);
    printf("peer %s: ok sent %llu received %llu (%s)\n", g_role, (unsigned long long)sent,
           (unsigned long long)got, order);
    return 0;
}
