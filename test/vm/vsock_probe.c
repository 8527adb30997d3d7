/*
 * vsock_probe: the VM harness's own check that AF_VSOCK works in the guest, independent of
 * nsign (so a harness fault is never mistaken for an nsign bug, and the other way round).
 * Test code, built static with musl-gcc by test/vm/test_smoke.sh; runs only inside the guest.
 *
 *   vsock_probe [PORT]   listen on vsock:any:PORT (default 5999); a child connects to
 *                        vsock:1:PORT, sends 1 MiB of a known pattern, half-closes, and reads
 *                        the reply; the parent reads to EOF, checks the pattern, replies with
 *                        the byte count and closes. Prints "vsock-probe: ok ..." and exits 0,
 *                        or names the failing step and exits 1.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* musl ships no <linux/vm_sockets.h>: the kernel ABI (include/uapi/linux/vm_sockets.h). */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define VMADDR_CID_ANY 0xFFFFFFFFu
#define VMADDR_CID_LOCAL 1u
struct sockaddr_vm {
    sa_family_t svm_family;
    unsigned short svm_reserved1;
    unsigned int svm_port;
    unsigned int svm_cid;
    unsigned char svm_flags;
    unsigned char svm_zero[sizeof(struct sockaddr) - sizeof(sa_family_t) - sizeof(unsigned short) -
                           sizeof(unsigned int) - sizeof(unsigned int) - sizeof(unsigned char)];
};

#define PROBE_BYTES (1u << 20)
#define CHUNK 8192

static int fail(const char *what)
{
    fprintf(stderr, "vsock-probe: %s: %s\n", what, strerror(errno));
    return 1;
}

static unsigned char pattern(uint32_t i)
{
    return (unsigned char)((i * 2654435761u) >> 24);
}

static int client(unsigned port)
{
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (s < 0) {
        return fail("client socket");
    }
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_LOCAL, .svm_port = port};
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        return fail("connect vsock:1");
    }
    unsigned char buf[CHUNK];
    for (uint32_t off = 0; off < PROBE_BYTES;) {
        size_t n = 0;
        for (; n < sizeof buf && off + n < PROBE_BYTES; n++) {
            buf[n] = pattern(off + (uint32_t)n);
        }
        ssize_t w = write(s, buf, n);
        if (w <= 0) {
            return fail("client write");
        }
        off += (uint32_t)w;
    }
    if (shutdown(s, SHUT_WR) != 0) {
        return fail("client shutdown(SHUT_WR)");
    }
    char reply[64] = {0};
    size_t got = 0;
    for (;;) {
        ssize_t r = read(s, reply + got, sizeof reply - 1 - got);
        if (r < 0) {
            return fail("client read reply");
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
        if (got == sizeof reply - 1) {
            break;
        }
    }
    if (strtoul(reply, NULL, 10) != PROBE_BYTES) {
        fprintf(stderr, "vsock-probe: server reply '%s', want %u\n", reply, PROBE_BYTES);
        return 1;
    }
    close(s);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned port = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 5999;
    int l = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (l < 0) {
        return fail("socket(AF_VSOCK) (vsock module not loaded?)");
    }
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4) != 0) {
        return fail("bind/listen vsock:any");
    }
    pid_t pid = fork();
    if (pid < 0) {
        return fail("fork");
    }
    if (pid == 0) {
        close(l);
        _exit(client(port));
    }
    int c = accept(l, NULL, NULL);
    if (c < 0) {
        return fail("accept");
    }
    unsigned char buf[CHUNK];
    uint32_t total = 0;
    for (;;) {
        ssize_t r = read(c, buf, sizeof buf);
        if (r < 0) {
            return fail("server read");
        }
        if (r == 0) {
            break; /* the client's half-close */
        }
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] != pattern(total + (uint32_t)i)) {
                fprintf(stderr, "vsock-probe: data mismatch at byte %u\n", total + (unsigned)i);
                return 1;
            }
        }
        total += (uint32_t)r;
    }
    char reply[32];
    int n = snprintf(reply, sizeof reply, "%u", total);
    if (write(c, reply, (size_t)n) != n) {
        return fail("server write reply");
    }
    close(c);
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "vsock-probe: client failed (status %d)\n", st);
        return 1;
    }
    printf("vsock-probe: ok %u bytes over vsock:1:%u with half-close\n", total, port);
    return 0;
}
