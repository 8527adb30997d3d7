/*
 * pid1: see pid1.h. The boot duties of AWS's enclave init (aws-nitro-enclaves-sdk-bootstrap),
 * done in-process so an EIF needs nothing but a kernel and nsign.
 */
#include "pid1.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "iox.h"
#include "nsm.h"
#include "secret.h"

#define PID1_PATH_MAX 4096
#define PID1_ENV_LINE_MAX 4096
/* From <linux/random.h> (musl-gcc has no kernel headers): _IOW('R', 0x03, int[2]). */
#ifndef RNDADDENTROPY
#define RNDADDENTROPY 0x40085203
#endif

typedef struct {
    const char *dir;
    const char *fstype;
    const char *source;
    unsigned long flags;
    const char *data;
} pid1_mount;

static const pid1_mount pid1_mounts[] = {
    {"proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
    {"sys", "sysfs", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
    {"dev", "devtmpfs", "devtmpfs", MS_NOSUID, "mode=0755"},
};

/* A directory is a mount point when it lives on another device than its parent. */
static int is_mountpoint(const char *dir)
{
    char parent[PID1_PATH_MAX];
    struct stat a, b;
    int n = snprintf(parent, sizeof parent, "%s/..", dir);
    if (n < 0 || (size_t)n >= sizeof parent || stat(dir, &a) != 0 || stat(parent, &b) != 0) {
        return 0;
    }
    return a.st_dev != b.st_dev;
}

ns_err ns_pid1_mount_all(const char *root)
{
    for (size_t i = 0; i < sizeof pid1_mounts / sizeof pid1_mounts[0]; i++) {
        const pid1_mount *m = &pid1_mounts[i];
        char dir[PID1_PATH_MAX];
        int n = snprintf(dir, sizeof dir, "%s/%s", root, m->dir);
        ENSURE(n > 0 && (size_t)n < sizeof dir, NS_E_USAGE, "mount root path too long: %s", root);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            return ns_fail_errno(NS_E_IO, "mkdir %s", dir);
        }
        if (is_mountpoint(dir)) {
            continue;
        }
        if (mount(m->source, dir, m->fstype, m->flags, m->data) != 0) {
            return ns_fail_errno(NS_E_IO, "mount %s on %s", m->fstype, dir);
        }
    }
    return NS_OK;
}

ns_err ns_pid1_load_module(const char *path, const char *params)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return ns_fail_errno(NS_E_NOT_FOUND, "kernel module %s", path);
    }
    long r = syscall(SYS_finit_module, fd, params ? params : "", 0);
    int saved = errno;
    close(fd);
    if (r != 0 && saved != EEXIST) {
        errno = saved;
        return ns_fail_errno(NS_E_IO,
                             "finit_module %s (is it built for this kernel, and are its "
                             "dependencies loaded first?)",
                             path);
    }
    return NS_OK;
}

ns_err ns_pid1_load_modules(const char *list, int *loaded)
{
    *loaded = 0;
    const char *p = list;
    int count = 0;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            char path[PID1_PATH_MAX];
            ENSURE(len < sizeof path, NS_E_USAGE, "module path too long in NSIGN_MODULES");
            ENSURE(++count <= NS_PID1_MODULES_MAX, NS_E_TOO_BIG, "more than %d modules listed",
                   NS_PID1_MODULES_MAX);
            memcpy(path, p, len);
            path[len] = '\0';
            GUARD(ns_pid1_load_module(path, NULL));
            (*loaded)++;
        }
        p = end ? end + 1 : NULL;
    }
    return NS_OK;
}

static ns_err netif_flags(const char *ifname, int set_up, int *up)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ENSURE(strlen(ifname) < sizeof ifr.ifr_name, NS_E_USAGE, "interface name too long: %s", ifname);
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        return ns_fail_errno(NS_E_IO, "socket for interface %s", ifname);
    }
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
        ns_err e = ns_fail_errno(NS_E_NOT_FOUND, "SIOCGIFFLAGS %s", ifname);
        close(s);
        return e;
    }
    if (set_up && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) {
            ns_err e = ns_fail_errno(NS_E_IO, "SIOCSIFFLAGS %s up", ifname);
            close(s);
            return e;
        }
    }
    close(s);
    if (up) {
        *up = (ifr.ifr_flags & IFF_UP) ? 1 : 0;
    }
    return NS_OK;
}

ns_err ns_netif_up(const char *ifname)
{
    return netif_flags(ifname, 1, NULL);
}

ns_err ns_netif_is_up(const char *ifname, int *up)
{
    return netif_flags(ifname, 0, up);
}

ns_err ns_pid1_heartbeat(const ns_addr *addr, int timeout_ms)
{
    char name[NS_ADDR_STR_MAX];
    ns_addr_format(addr, name, sizeof name);
    int64_t deadline = ns_now_ms() + timeout_ms;
    int fd = -1;
    ns_err e = ns_addr_connect(addr, timeout_ms, &fd);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "heartbeat to %s", name);
    }
    uint8_t b = NS_PID1_HEARTBEAT_BYTE;
    e = ns_write_all(fd, &b, 1);
    if (e == NS_OK) {
        b = 0;
        e = ns_read_full(fd, &b, 1, ns_ms_left(deadline));
    }
    close(fd);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "heartbeat to %s", name);
    }
    ENSURE(b == NS_PID1_HEARTBEAT_BYTE, NS_E_PROTO, "heartbeat to %s: echoed 0x%02x, want 0x%02x",
           name, b, NS_PID1_HEARTBEAT_BYTE);
    return NS_OK;
}

ns_err ns_pid1_seed_entropy(const char *dev_path, size_t n)
{
    struct {
        int entropy_count;
        int buf_size;
        uint8_t buf[NS_PID1_ENTROPY_BYTES];
    } * req;
    ENSURE(n > 0 && n <= NS_PID1_ENTROPY_BYTES, NS_E_USAGE, "entropy size %zu out of range", n);
    req = ns_secret_alloc(sizeof *req);
    ENSURE(req != NULL, NS_E_NOMEM, "no memory for entropy");
    ns_err e = ns_nsm_random(req->buf, n);
    if (e != NS_OK) {
        ns_secret_free(req, sizeof *req);
        return ns_fail_ctx(e, "NSM GetRandom");
    }
    req->entropy_count = (int)(n * 8);
    req->buf_size = (int)n;
    int fd = open(dev_path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        e = ns_fail_errno(NS_E_IO, "open %s", dev_path);
    } else {
        if (ioctl(fd, RNDADDENTROPY, req) != 0) {
            e = ns_fail_errno(NS_E_IO, "RNDADDENTROPY on %s", dev_path);
        }
        close(fd);
    }
    ns_secret_free(req, sizeof *req);
    return e;
}

static int env_key_ok(const char *k, size_t n)
{
    if (n == 0 || !((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_')) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return 0;
        }
    }
    return 1;
}

ns_err ns_pid1_env_parse(const uint8_t *p, size_t n, ns_pid1_env_fn fn, void *ctx)
{
    char line[PID1_ENV_LINE_MAX];
    size_t pos = 0;
    int lineno = 0;
    while (pos < n) {
        size_t start = pos;
        while (pos < n && p[pos] != '\n') {
            pos++;
        }
        size_t len = pos - start;
        pos++; /* past the newline (or the end) */
        lineno++;
        if (len == 0 || p[start] == '#') {
            continue;
        }
        ENSURE(len < sizeof line, NS_E_TOO_BIG, "line %d: longer than %d bytes", lineno,
               PID1_ENV_LINE_MAX - 1);
        int printable = 1;
        for (size_t i = 0; i < len; i++) {
            if (p[start + i] < 0x20 || p[start + i] == 0x7f) {
                printable = 0;
            }
        }
        memcpy(line, p + start, len);
        line[len] = '\0';
        char *eq = printable ? strchr(line, '=') : NULL;
        ENSURE(eq != NULL && env_key_ok(line, (size_t)(eq - line)), NS_E_PARSE,
               "line %d: want KEY=VALUE with KEY [A-Za-z_][A-Za-z0-9_]* and printable bytes",
               lineno);
        *eq = '\0';
        GUARD(fn(ctx, line, eq + 1));
    }
    return NS_OK;
}

static ns_err env_set(void *ctx, const char *key, const char *value)
{
    int *count = ctx;
    if (getenv(key) == NULL) {
        if (setenv(key, value, 0) != 0) {
            return ns_fail_errno(NS_E_NOMEM, "setenv %s", key);
        }
        (*count)++;
    }
    return NS_OK;
}

ns_err ns_pid1_load_env(const char *path, int *count)
{
    *count = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return NS_OK;
        }
        return ns_fail_errno(NS_E_IO, "open %s", path);
    }
    ns_buf b;
    ns_buf_init(&b, NS_PID1_ENV_FILE_MAX);
    ns_err e = ns_read_fd_all(fd, &b);
    close(fd);
    if (e == NS_OK) {
        e = ns_pid1_env_parse(b.data, b.len, env_set, count);
    }
    ns_buf_free(&b);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "%s", path);
    }
    return NS_OK;
}

static void pid1_on_sigchld(int sig)
{
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

ns_err ns_pid1_reap_children(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pid1_on_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, NULL) != 0) {
        return ns_fail_errno(NS_E_INTERNAL, "sigaction SIGCHLD");
    }
    return NS_OK;
}
