/*
 * emu: see emu.h. The heartbeat listener exists before QEMU starts, so the enclave's first
 * connection never meets an empty port; the backend's socket exists before QEMU starts too
 * (QEMU connects to it at machine creation and gives up if nobody listens).
 */
#include "emu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "iox.h"

#define EMU_BACKEND_WAIT_MS 10000
#define EMU_HB_READ_MS 10000
#define EMU_TICK_MS 200
#define EMU_HELP_MAX (64 * 1024)
#define EMU_QEMU_CHECK_MS 30000
#define EMU_QEMU_EXIT_GRACE_MS 5000

ns_err ns_emu_addr(char *out, size_t cap, const char *dir, int enclave_side, uint32_t port)
{
    int n = snprintf(out, cap, "unix:%s/%s-%u.sock", dir, enclave_side ? "enclave" : "parent",
                     port);
    ENSURE(n > 0 && (size_t)n < cap && (size_t)n - 5 < NS_ADDR_PATH_MAX, NS_E_TOO_BIG,
           "emulator socket path under %s is too long for a unix socket (< %d bytes): set "
           "NSIGN_RUN_DIR to a shorter directory",
           dir, NS_ADDR_PATH_MAX);
    return NS_OK;
}

ns_err ns_emu_find_qemu(const char *self, char *out, size_t cap)
{
    const char *env = getenv("NSIGN_QEMU");
    if (env && *env) {
        ENSURE(access(env, X_OK) == 0, NS_E_NOT_FOUND,
               "NSIGN_QEMU=%s is not an executable file", env);
        ENSURE(strlen(env) < cap, NS_E_TOO_BIG, "NSIGN_QEMU is too long");
        memcpy(out, env, strlen(env) + 1);
        return NS_OK;
    }
    const char *slash = strrchr(self, '/');
    if (slash) {
        int n = snprintf(out, cap, "%.*s/qemu/qemu-system-x86_64", (int)(slash - self), self);
        if (n > 0 && (size_t)n < cap && access(out, X_OK) == 0) {
            return NS_OK;
        }
    }
    if (ns_supervise_which("qemu-system-x86_64", out, cap) == NS_OK) {
        return NS_OK;
    }
    BAIL(NS_E_NOT_FOUND, "no QEMU with the nitro-enclave machine: run `make qemu` (it builds "
                         "build/qemu/qemu-system-x86_64) or set NSIGN_QEMU to one");
}

ns_err ns_emu_check_qemu(const char *qemu)
{
    char *av[] = {(char *)qemu, "-M", "help", NULL};
    ns_buf out;
    int st = -1;
    ns_buf_init(&out, EMU_HELP_MAX);
    ns_err e = ns_supervise_run(av, NULL, 0, &out, EMU_QEMU_CHECK_MS, &st);
    if (e == NS_OK && (!ns_status_ok(st) || ns_buf_cstr(&out) != NS_OK)) {
        e = ns_fail(NS_E_UNAVAILABLE, "`%s -M help` failed", qemu);
    }
    if (e == NS_OK && !strstr((const char *)out.data, "nitro-enclave")) {
        e = ns_fail(NS_E_UNSUPPORTED,
                    "%s has no nitro-enclave machine (Debian's QEMU is built without libcbor): "
                    "run `make qemu` or set NSIGN_QEMU to a QEMU >= 9.2 built with it",
                    qemu);
    }
    ns_buf_free(&out);
    return e;
}

void ns_emu_init(ns_emu *e)
{
    memset(e, 0, sizeof *e);
    e->backend.in_fd = e->backend.out_fd = -1;
    e->qemu.in_fd = e->qemu.out_fd = -1;
    e->hb_fd = -1;
}

/* Appends a formatted argument to e->argbuf and returns it (NULL when the buffer is full). */
static char *arg(ns_emu *e, size_t *used, const char *fmt, ...) NS_PRINTF(3, 4);
static char *arg(ns_emu *e, size_t *used, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->argbuf + *used, sizeof e->argbuf - *used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof e->argbuf - *used) {
        return NULL;
    }
    char *s = e->argbuf + *used;
    *used += (size_t)n + 1;
    return s;
}

ns_err ns_emu_build(ns_emu *e, const ns_emu_cfg *c)
{
    size_t used = 0, nb = 0, nq = 0;
    char a[NS_ADDR_STR_MAX];
    ENSURE(c->n_enclave <= NS_EMU_MAX_PORTS && c->n_parent < NS_EMU_MAX_PORTS, NS_E_USAGE,
           "too many emulated vsock ports");
    char **b = e->argv_backend, **q = e->argv_qemu;
    b[nb++] = (char *)c->self;
    b[nb++] = "vhost-vsock";
    b[nb++] = "--socket";
    b[nb++] = arg(e, &used, "%s/vhost.sock", c->dir);
    b[nb++] = "--guest-cid";
    b[nb++] = (char *)c->cid;
    for (size_t i = 0; i < c->n_enclave; i++) {
        GUARD(ns_emu_addr(a, sizeof a, c->dir, 1, c->enclave_ports[i]));
        b[nb++] = "--listen";
        b[nb++] = arg(e, &used, "%s=%u", a, c->enclave_ports[i]);
    }
    for (size_t i = 0; i <= c->n_parent; i++) {
        uint32_t p = i < c->n_parent ? c->parent_ports[i] : NS_EMU_HEARTBEAT_PORT;
        GUARD(ns_emu_addr(a, sizeof a, c->dir, 0, p));
        b[nb++] = "--connect";
        b[nb++] = arg(e, &used, "%u=%s", p, a);
    }
    b[nb] = NULL;

    q[nq++] = (char *)c->qemu;
    q[nq++] = "-M";
    q[nq++] = "nitro-enclave,vsock=c0";
    q[nq++] = "-accel";
    q[nq++] = "tcg";
    q[nq++] = "-cpu";
    q[nq++] = "max";
    q[nq++] = "-smp";
    q[nq++] = (char *)c->cpu;
    q[nq++] = "-m";
    q[nq++] = arg(e, &used, "%sM", c->mem);
    q[nq++] = "-nodefaults";
    q[nq++] = "-display";
    q[nq++] = "none";
    q[nq++] = "-no-reboot";
    /* Firecracker's (so Nitro's) one legacy device: the i8042 whose reset line (0xFE to port
     * 0x64, the kernel's reboot=k) ends the VM. microvm has none, and without it the kernel's
     * next fallback jumps to the firmware's reset vector, which may spin instead of ending. */
    q[nq++] = "-device";
    q[nq++] = "i8042";
    /* The NSM's queue kicked synchronously, not through an ioeventfd. The kernel's nsm driver
     * exposes a request in two steps (the request buffer, then the response buffer, then the
     * kick), and QEMU's virtio-nsm pops both at once. With ioeventfd on, QEMU kicks every queue
     * itself when the driver sets DRIVER_OK, which the kernel does after nsm's probe has started
     * the hwrng thread; if QEMU's main loop takes that kick between the thread's two steps,
     * virtio-nsm finds no response buffer, marks the device broken ("Expected response buffer
     * after request buffer in virtqueue") and every later NSM call waits out its 2-minute
     * timeout. Rare (seen twice in some 60 boots). The vhost-user vsock keeps its own
     * notifiers. */
    q[nq++] = "-global";
    q[nq++] = "virtio-mmio.ioeventfd=off";
    q[nq++] = "-serial";
    q[nq++] = "stdio";
    q[nq++] = "-kernel";
    q[nq++] = (char *)c->eif;
    q[nq++] = "-chardev";
    q[nq++] = arg(e, &used, "socket,id=c0,path=%s/vhost.sock", c->dir);
    /* Firmware (microvm's qboot) from Debian's qemu-system-data when present. */
    static const char *fw[] = {"/usr/share/qemu", "/usr/share/seabios"};
    for (size_t i = 0; i < sizeof fw / sizeof fw[0]; i++) {
        if (access(fw[i], R_OK) == 0) {
            q[nq++] = "-L";
            q[nq++] = (char *)fw[i];
        }
    }
    q[nq] = NULL;
    for (size_t i = 0; i < nb; i++) {
        ENSURE(b[i], NS_E_TOO_BIG, "emulator command line too long");
    }
    for (size_t i = 0; i < nq; i++) {
        ENSURE(q[i], NS_E_TOO_BIG, "emulator command line too long");
    }
    return NS_OK;
}

/* *gone = 1 and st when ch has exited (a child never started counts as running). */
static ns_err child_gone(ns_supervise_child *ch, int *gone, char *st, size_t cap)
{
    int exited = 0, status = 0;
    *gone = 0;
    if (ch->pid == 0) {
        return NS_OK;
    }
    GUARD(ns_supervise_poll(ch, &exited, &status));
    if (exited) {
        ns_status_str(status, st, cap);
        *gone = 1;
    }
    return NS_OK;
}

ns_err ns_emu_poll(ns_emu *e)
{
    /* Either end stops the other (the backend ends when its front-end goes away, QEMU may end
     * when its vsock back-end does), so when both are found gone in one poll both are named. */
    int q_gone, b_gone;
    char qs[64], bs[64];
    GUARD(child_gone(&e->qemu, &q_gone, qs, sizeof qs));
    GUARD(child_gone(&e->backend, &b_gone, bs, sizeof bs));
    if (b_gone && !q_gone && e->qemu.pid > 0) {
        /* The backend ends when its front-end disconnects, which QEMU does as it exits: on a
         * loaded host QEMU may still be on its way out. Give it a moment, so that an enclave
         * that stopped is not reported as a lost backend. */
        int st = 0;
        if (ns_supervise_wait(&e->qemu, EMU_QEMU_EXIT_GRACE_MS, &st) == NS_OK) {
            ns_status_str(st, qs, sizeof qs);
            q_gone = 1;
        }
    }
    if (q_gone && b_gone) {
        BAIL(NS_E_CLOSED,
             "the enclave (QEMU) exited (%s) and the vsock backend (nsign vhost-vsock) exited "
             "(%s): the console (CONSOLE_FILE) and the messages above say which went first",
             qs, bs);
    }
    ENSURE(!q_gone, NS_E_CLOSED,
           "the enclave (QEMU) exited (%s): its console (CONSOLE_FILE) and QEMU's message above "
           "say why",
           qs);
    ENSURE(!b_gone, NS_E_CLOSED,
           "the vsock backend (nsign vhost-vsock) exited (%s): the enclave lost its vsock; its "
           "error is logged above",
           bs);
    return NS_OK;
}

ns_err ns_emu_start(ns_emu *e, const ns_emu_cfg *c)
{
    char a[NS_ADDR_STR_MAX], sock[NS_ADDR_PATH_MAX + 16];
    ns_addr hb;
    GUARD(ns_emu_build(e, c));
    if (mkdir(c->dir, 0700) != 0 && errno != EEXIST) {
        return ns_fail_errno(NS_E_IO, "mkdir %s", c->dir);
    }
    GUARD(ns_emu_addr(a, sizeof a, c->dir, 0, NS_EMU_HEARTBEAT_PORT));
    GUARD(ns_addr_parse(&hb, a));
    ns_io_unlink_stale_socket(hb.path);
    GUARD(ns_addr_listen(&hb, 4, NS_LISTEN_NONBLOCK, &e->hb_fd));

    snprintf(sock, sizeof sock, "%s/vhost.sock", c->dir);
    ns_io_unlink_stale_socket(sock);
    GUARD(ns_supervise_spawn(&e->backend, e->argv_backend, NS_SPAWN_STDIN_NULL, -1));
    struct stat st;
    int64_t deadline = ns_now_ms() + EMU_BACKEND_WAIT_MS;
    while (stat(sock, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        GUARD(ns_emu_poll(e));
        ENSURE(ns_now_ms() < deadline, NS_E_TIMEOUT,
               "the vsock backend did not create %s within %d ms", sock, EMU_BACKEND_WAIT_MS);
        usleep(20 * 1000);
    }
    int fd;
    GUARD(ns_open_private(&fd, c->console_file, NS_OPEN_APPEND, "CONSOLE_FILE"));
    ns_err err = ns_supervise_spawn(&e->qemu, e->argv_qemu, NS_SPAWN_STDIN_NULL, fd);
    close(fd);
    e->boot_ms = ns_now_ms();
    return err;
}

ns_err ns_emu_wait_heartbeat(ns_emu *e, int timeout_ms, ns_stop *stop)
{
    int64_t deadline = ns_now_ms() + timeout_ms;
    ENSURE(e->hb_fd >= 0, NS_E_INTERNAL, "heartbeat listener not open");
    for (;;) {
        ENSURE(!stop || !*stop, NS_E_CLOSED, "stopped before the enclave booted");
        GUARD(ns_emu_poll(e));
        ENSURE(ns_now_ms() < deadline, NS_E_TIMEOUT,
               "no heartbeat from the enclave within %d s (it did not boot: see CONSOLE_FILE)",
               timeout_ms / 1000);
        struct pollfd p = {.fd = e->hb_fd, .events = POLLIN};
        if (poll(&p, 1, EMU_TICK_MS) <= 0) {
            continue;
        }
        int c = accept4(e->hb_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            continue;
        }
        uint8_t b = 0;
        ns_err err = ns_read_full(c, &b, 1, EMU_HB_READ_MS);
        if (err == NS_OK && b != NS_EMU_HEARTBEAT_BYTE) {
            err = ns_fail(NS_E_PROTO, "the enclave's heartbeat was 0x%02x, not 0x%02X", b,
                          NS_EMU_HEARTBEAT_BYTE);
        }
        if (err == NS_OK) {
            err = ns_write_all(c, &b, 1);
        }
        close(c);
        GUARD(err);
        e->boot_ms = ns_now_ms() - e->boot_ms;
        close(e->hb_fd);
        e->hb_fd = -1;
        return NS_OK;
    }
}

void ns_emu_stop(ns_emu *e, int grace_ms)
{
    ns_supervise_stop(&e->qemu, grace_ms);
    ns_supervise_stop(&e->backend, grace_ms);
    if (e->hb_fd >= 0) {
        close(e->hb_fd);
        e->hb_fd = -1;
    }
}
