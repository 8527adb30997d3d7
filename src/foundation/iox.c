/* iox: see iox.h. */
#include "iox.h"

#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NS_IO_CHUNK 65536

int64_t ns_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ns_ms_left(int64_t deadline)
{
    if (deadline < 0) {
        return -1;
    }
    int64_t left = deadline - ns_now_ms();
    if (left <= 0) {
        return 0;
    }
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

ns_err ns_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *q = p;
    while (n > 0) {
        ssize_t w = write(fd, q, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                (void)poll(&pfd, 1, -1);
                continue;
            }
            return ns_fail_errno(errno == EPIPE || errno == ECONNRESET ? NS_E_CLOSED : NS_E_IO,
                                 "write failed");
        }
        q += w;
        n -= (size_t)w;
    }
    return NS_OK;
}

ns_err ns_send_some(int fd, const void *p, size_t n, size_t *put, int timeout_ms)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int rc;
        do {
            rc = poll(&pfd, 1, timeout_ms);
        } while (rc < 0 && errno == EINTR);
        ENSURE(rc != 0, NS_E_TIMEOUT, "write timed out after %d ms (the peer is not reading)",
               timeout_ms);
        ENSURE(rc > 0, NS_E_IO, "poll failed");
        ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return ns_fail_errno(errno == EPIPE || errno == ECONNRESET ? NS_E_CLOSED : NS_E_IO,
                                 "send failed");
        }
        *put = (size_t)w;
        return NS_OK;
    }
}

static ns_err wait_readable(int fd, int timeout_ms)
{
    if (timeout_ms < 0) {
        return NS_OK;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int rc;
    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    ENSURE(rc != 0, NS_E_TIMEOUT, "read timed out after %d ms", timeout_ms);
    ENSURE(rc > 0, NS_E_IO, "poll failed");
    return NS_OK;
}

ns_err ns_read_some(int fd, void *p, size_t n, size_t *got, int timeout_ms)
{
    for (;;) {
        GUARD(wait_readable(fd, timeout_ms));
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                if (timeout_ms < 0) {
                    struct pollfd pfd = {.fd = fd, .events = POLLIN};
                    (void)poll(&pfd, 1, -1);
                }
                continue;
            }
            return ns_fail_errno(errno == ECONNRESET ? NS_E_CLOSED : NS_E_IO, "read failed");
        }
        *got = (size_t)r;
        return NS_OK;
    }
}

ns_err ns_read_full(int fd, void *p, size_t n, int timeout_ms)
{
    uint8_t *q = p;
    int64_t deadline = timeout_ms < 0 ? -1 : ns_now_ms() + timeout_ms;
    size_t done = 0;
    while (done < n) {
        size_t got;
        int left = ns_ms_left(deadline);
        ENSURE(deadline < 0 || left > 0, NS_E_TIMEOUT, "read timed out after %d ms", timeout_ms);
        GUARD(ns_read_some(fd, q + done, n - done, &got, left));
        ENSURE(got > 0, NS_E_TRUNCATED, "unexpected end of input after %zu of %zu bytes", done, n);
        done += got;
    }
    return NS_OK;
}

ns_err ns_read_fd_all(int fd, ns_buf *b)
{
    for (;;) {
        size_t want = NS_IO_CHUNK;
        if (b->max - b->len < want) {
            want = b->max - b->len + 1; /* one more byte tells "too big" from "exactly max" */
        }
        uint8_t tmp[NS_IO_CHUNK];
        size_t got;
        ns_err e = ns_read_some(fd, tmp, want, &got, -1);
        if (e != NS_OK) {
            ns_wipe_if(b->secret, tmp, sizeof tmp);
            return e;
        }
        if (got == 0) {
            ns_wipe_if(b->secret, tmp, sizeof tmp);
            return NS_OK;
        }
        e = ns_buf_append(b, tmp, got);
        ns_wipe_if(b->secret, tmp, got);
        GUARD(e);
    }
}

ns_err ns_open_input(const char *path, int *fd)
{
    if (strcmp(path, "-") == 0) {
        *fd = 0;
        return NS_OK;
    }
    if (strncmp(path, "fd:", 3) == 0) {
        uint64_t n;
        GUARD(ns_parse_uint(path + 3, 1 << 20, &n));
        ENSURE(fcntl((int)n, F_GETFD) >= 0, NS_E_USAGE, "descriptor %s is not open", path);
        *fd = (int)n;
        return NS_OK;
    }
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        return ns_fail_errno(errno == ENOENT ? NS_E_NOT_FOUND : NS_E_IO, "cannot open %s", path);
    }
    *fd = f;
    return NS_OK;
}

ns_err ns_read_path(const char *path, ns_buf *b)
{
    int fd;
    GUARD(ns_open_input(path, &fd));
    ns_err e = ns_read_fd_all(fd, b);
    if (fd > 2 && strncmp(path, "fd:", 3) != 0) {
        close(fd);
    }
    if (e != NS_OK) {
        return ns_fail_ctx(e, "reading %s", strcmp(path, "-") == 0 ? "standard input" : path);
    }
    return NS_OK;
}

void ns_set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) {
        (void)fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
    }
}

ns_err ns_open_private(int *fd, const char *path, ns_open_mode mode, const char *what)
{
    /* O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader before the type
     * check below could refuse it. */
    int flags = O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
    flags |= mode == NS_OPEN_APPEND ? O_WRONLY | O_CREAT | O_APPEND
             : mode == NS_OPEN_LOCK ? O_RDWR | O_CREAT
                                    : O_RDWR;
    *fd = open(path, flags, 0600);
    if (*fd < 0) {
        int e = errno;
        ENSURE(e != ELOOP, NS_E_USAGE,
               "%s %s is a symbolic link: nsign does not write through links, give the real path",
               what, path);
        ENSURE(e != ENXIO && e != EISDIR, NS_E_USAGE,
               "%s %s is not a regular file (a FIFO, device or directory): give a file path", what,
               path);
        ENSURE(!(e == ENOENT && mode == NS_OPEN_LOCK_EXISTING), NS_E_NOT_FOUND, "%s %s: none", what,
               path);
        errno = e;
        return ns_fail_errno(NS_E_IO, "open %s %s", what, path);
    }
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(*fd);
        *fd = -1;
        BAIL(NS_E_USAGE,
             "%s %s is not a regular file (a FIFO, device or directory): give a file path", what,
             path);
    }
    int fl = fcntl(*fd, F_GETFL);
    if (fl < 0 || fcntl(*fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        ns_err err = ns_fail_errno(NS_E_IO, "open %s %s", what, path);
        close(*fd);
        *fd = -1;
        return err;
    }
    return NS_OK;
}

void ns_io_unlink_stale_socket(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        (void)unlink(path);
    }
}

ns_err ns_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    ENSURE(s != NULL && *s != '\0', NS_E_USAGE, "expected a number");
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        ENSURE(*p >= '0' && *p <= '9', NS_E_USAGE, "'%s' is not a non-negative integer", s);
        uint64_t d = (uint64_t)(*p - '0');
        /* v * 10 + d <= max, written so that no term can wrap */
        ENSURE(v <= max / 10 && d <= max - v * 10, NS_E_USAGE, "'%s' is larger than %llu", s,
               (unsigned long long)max);
        v = v * 10 + d;
    }
    *out = v;
    return NS_OK;
}

ns_err ns_parse_size(const char *s, uint64_t max, uint64_t *out)
{
    char num[32];
    size_t n = strlen(s);
    uint64_t mul = 1;
    ENSURE(n > 0 && n < sizeof num, NS_E_USAGE, "invalid size '%s'", s);
    memcpy(num, s, n + 1);
    switch (num[n - 1]) {
    case 'k':
    case 'K':
        mul = 1024;
        break;
    case 'm':
    case 'M':
        mul = 1024 * 1024;
        break;
    case 'g':
    case 'G':
        mul = 1024ull * 1024 * 1024;
        break;
    default:
        break;
    }
    if (mul != 1) {
        num[n - 1] = '\0';
    }
    uint64_t v;
    GUARD(ns_parse_uint(num, max / mul, &v));
    *out = v * mul;
    return NS_OK;
}

ns_err ns_parse_seconds(const char *s, int64_t *ms)
{
    char whole[24];
    const char *dot = strchr(s, '.');
    size_t wl = dot ? (size_t)(dot - s) : strlen(s);
    ENSURE(wl > 0 && wl < sizeof whole, NS_E_USAGE, "invalid number of seconds '%s'", s);
    memcpy(whole, s, wl);
    whole[wl] = '\0';
    uint64_t w;
    GUARD(ns_parse_uint(whole, 86400ull * 365, &w));
    int64_t frac = 0;
    if (dot) {
        int digits = 0;
        for (const char *p = dot + 1; *p; p++) {
            ENSURE(*p >= '0' && *p <= '9', NS_E_USAGE, "invalid number of seconds '%s'", s);
            if (digits < 3) {
                frac = frac * 10 + (*p - '0');
                digits++;
            }
        }
        ENSURE(dot[1] != '\0', NS_E_USAGE, "invalid number of seconds '%s'", s);
        while (digits++ < 3) {
            frac *= 10;
        }
    }
    *ms = (int64_t)w * 1000 + frac;
    return NS_OK;
}

ns_err ns_out_open(ns_out *o, const char *path)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    if (strcmp(path, "-") == 0) {
        o->fd = 1;
        o->is_stdout = 1;
        return NS_OK;
    }
    ENSURE(strlen(path) + 16 < sizeof o->path, NS_E_USAGE, "output path too long");
    snprintf(o->path, sizeof o->path, "%s", path);
    /* Look at what is there through a descriptor, never through the name twice and never
     * through a symbolic link: a link swapped in between a check and an open would redirect the
     * write (O_PATH opens nothing for I/O and does not block on a FIFO). */
    int pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (pfd >= 0) {
        struct stat st, st2;
        if (fstat(pfd, &st) != 0) {
            ns_err e = ns_fail_errno(NS_E_IO, "cannot stat %s", path);
            close(pfd);
            return e;
        }
        if (S_ISLNK(st.st_mode)) {
            close(pfd);
            BAIL(NS_E_USAGE, "%s is a symbolic link: give the real path (or - for stdout)", path);
        }
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
            int dfd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
            if (dfd < 0) {
                ns_err e = ns_fail_errno(NS_E_IO, "cannot open %s for writing", path);
                close(pfd);
                return e;
            }
            int same = fstat(dfd, &st2) == 0 && st2.st_dev == st.st_dev && st2.st_ino == st.st_ino;
            close(pfd);
            if (!same) {
                close(dfd);
                BAIL(NS_E_IO, "%s was replaced while being opened: not writing to it", path);
            }
            o->fd = dfd;
            o->is_direct = 1;
            return NS_OK;
        }
        close(pfd);
    }
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    char *base = strrchr(dirbuf, '/');
    const char *fname = base ? base + 1 : dirbuf;
    if (base) {
        *base = '\0';
        snprintf(o->tmp, sizeof o->tmp, "%s/.%s.nsign-XXXXXX", dirbuf[0] ? dirbuf : "",
                 fname);
        if (dirbuf[0] == '\0') {
            snprintf(o->tmp, sizeof o->tmp, "/.%s.nsign-XXXXXX", fname);
        }
    } else {
        snprintf(o->tmp, sizeof o->tmp, ".%s.nsign-XXXXXX", fname);
    }
    int fd = mkostemp(o->tmp, O_CLOEXEC);
    if (fd < 0) {
        o->tmp[0] = '\0';
        return ns_fail_errno(NS_E_IO, "cannot create a temporary file next to %s", path);
    }
    (void)fchmod(fd, 0600);
    o->fd = fd;
    return NS_OK;
}

ns_err ns_out_write(ns_out *o, const void *p, size_t n)
{
    ns_err e = ns_write_all(o->fd, p, n);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "writing %s", o->is_stdout ? "standard output" : o->path);
    }
    return NS_OK;
}

ns_err ns_out_commit(ns_out *o)
{
    if (o->is_stdout) {
        return NS_OK;
    }
    ENSURE(o->fd >= 0, NS_E_INTERNAL, "output not open");
    if (o->is_direct) {
        int rc = close(o->fd);
        o->fd = -1;
        ENSURE(rc == 0, NS_E_IO, "closing %s failed", o->path);
        return NS_OK;
    }
    if (fsync(o->fd) != 0) {
        ns_err e = ns_fail_errno(NS_E_IO, "fsync %s", o->tmp);
        ns_out_abort(o);
        return e;
    }
    close(o->fd);
    o->fd = -1;
    if (rename(o->tmp, o->path) != 0) {
        ns_err e = ns_fail_errno(NS_E_IO, "cannot rename the output into place as %s", o->path);
        (void)unlink(o->tmp);
        o->tmp[0] = '\0';
        return e;
    }
    o->tmp[0] = '\0';
    return NS_OK;
}

void ns_out_abort(ns_out *o)
{
    if (o->is_stdout) {
        return;
    }
    if (o->fd >= 0) {
        close(o->fd);
        o->fd = -1;
    }
    if (o->tmp[0] != '\0') {
        (void)unlink(o->tmp);
        o->tmp[0] = '\0';
    }
}

void ns_io_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}
