/* supervise: see supervise.h. */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iox.h"
#include "secret.h"

#define SUP_POLL_MS 20
#define SUP_CANCEL_CHECK_MS 100

static ns_stop *sup_cancel;

void ns_supervise_set_cancel(ns_stop *flag)
{
    sup_cancel = flag;
}

static int cancelled(void)
{
    return sup_cancel != NULL && *sup_cancel != 0;
}
#define SUP_READ_CHUNK 65536

ns_err ns_supervise_which(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/') != NULL) {
        ENSURE(strlen(name) < cap, NS_E_TOO_BIG, "path too long: %s", name);
        ENSURE(access(name, X_OK) == 0, NS_E_NOT_FOUND, "%s: not found or not executable", name);
        memcpy(out, name, strlen(name) + 1);
        return NS_OK;
    }
    const char *path = getenv("PATH");
    if (path == NULL) {
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    }
    while (*path) {
        const char *end = strchr(path, ':');
        size_t dl = end ? (size_t)(end - path) : strlen(path);
        if (dl > 0 && dl + 1 + strlen(name) < cap) {
            struct stat st;
            memcpy(out, path, dl);
            out[dl] = '/';
            memcpy(out + dl + 1, name, strlen(name) + 1);
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0) {
                return NS_OK;
            }
        }
        if (!end) {
            break;
        }
        path = end + 1;
    }
    BAIL(NS_E_NOT_FOUND, "%s: not found in PATH", name);
}

ns_err ns_self_exe(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n < 0) {
        return ns_fail_errno(NS_E_IO, "readlink /proc/self/exe");
    }
    ENSURE((size_t)n < cap - 1, NS_E_TOO_BIG, "executable path too long");
    out[n] = '\0';
    return NS_OK;
}

static void child_exec(char *const argv[], const char *prog, int in_r, int out_w, int stdout_fd,
                       unsigned flags)
{
    sigset_t none;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < 32; s++) {
        if (s != SIGKILL && s != SIGSTOP) {
            signal(s, SIG_DFL);
        }
    }
    if (in_r >= 0) {
        dup2(in_r, 0);
    } else if (flags & NS_SPAWN_STDIN_NULL) {
        int n = open("/dev/null", O_RDONLY);
        if (n >= 0) {
            dup2(n, 0);
        }
    }
    if (out_w >= 0) {
        dup2(out_w, 1);
        if (flags & NS_SPAWN_STDERR_OUT) {
            dup2(out_w, 2);
        }
    } else if (stdout_fd >= 0) {
        dup2(stdout_fd, 1);
    }
    execv(prog, argv);
    dprintf(2, "nsign: cannot execute %s: %s\n", prog, strerror(errno));
    _exit(127);
}

ns_err ns_supervise_spawn(ns_supervise_child *c, char *const argv[], unsigned flags, int stdout_fd)
{
    char prog[4096];
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    c->pid = 0;
    c->in_fd = c->out_fd = -1;
    GUARD(ns_supervise_which(argv[0], prog, sizeof prog));
    if ((flags & NS_SPAWN_STDIN_PIPE) && pipe2(in, O_CLOEXEC) != 0) {
        return ns_fail_errno(NS_E_IO, "pipe");
    }
    if ((flags & NS_SPAWN_STDOUT_PIPE) && pipe2(out, O_CLOEXEC) != 0) {
        ns_err e = ns_fail_errno(NS_E_IO, "pipe");
        if (in[0] >= 0) {
            close(in[0]);
            close(in[1]);
        }
        return e;
    }
    pid_t pid = fork();
    if (pid == 0) {
        child_exec(argv, prog, in[0], out[1], stdout_fd, flags);
    }
    int saved = errno;
    if (in[0] >= 0) {
        close(in[0]);
    }
    if (out[1] >= 0) {
        close(out[1]);
    }
    if (pid < 0) {
        if (in[1] >= 0) {
            close(in[1]);
        }
        if (out[0] >= 0) {
            close(out[0]);
        }
        errno = saved;
        return ns_fail_errno(NS_E_IO, "fork for %s", argv[0]);
    }
    c->pid = pid;
    c->in_fd = in[1];
    c->out_fd = out[0];
    return NS_OK;
}

ns_err ns_supervise_poll(ns_supervise_child *c, int *exited, int *status)
{
    *exited = 0;
    if (c->pid <= 0) {
        *exited = 1;
        return NS_OK;
    }
    pid_t r = waitpid(c->pid, status, WNOHANG);
    if (r < 0 && errno != EINTR) {
        return ns_fail_errno(NS_E_INTERNAL, "waitpid %d", (int)c->pid);
    }
    if (r == c->pid) {
        *exited = 1;
        c->pid = 0;
    }
    return NS_OK;
}

ns_err ns_supervise_wait(ns_supervise_child *c, int timeout_ms, int *status)
{
    int64_t deadline = timeout_ms < 0 ? -1 : ns_now_ms() + timeout_ms;
    for (;;) {
        int exited = 0;
        GUARD(ns_supervise_poll(c, &exited, status));
        if (exited) {
            return NS_OK;
        }
        if (deadline >= 0 && ns_now_ms() >= deadline) {
            BAIL(NS_E_TIMEOUT, "process %d still running after %d ms", (int)c->pid, timeout_ms);
        }
        usleep(SUP_POLL_MS * 1000);
    }
}

void ns_supervise_stop(ns_supervise_child *c, int grace_ms)
{
    int st;
    if (c->in_fd >= 0) {
        close(c->in_fd);
        c->in_fd = -1;
    }
    if (c->out_fd >= 0) {
        close(c->out_fd);
        c->out_fd = -1;
    }
    if (c->pid <= 0) {
        return;
    }
    kill(c->pid, SIGTERM);
    if (ns_supervise_wait(c, grace_ms, &st) != NS_OK) {
        kill(c->pid, SIGKILL);
        if (ns_supervise_wait(c, -1, &st) != NS_OK) {
            c->pid = 0;
        }
    }
}

ns_err ns_supervise_run(char *const argv[], const uint8_t *in, size_t in_len, ns_buf *out,
                        int timeout_ms, int *status)
{
    return ns_supervise_run_ex(argv, in, in_len, out, timeout_ms, status, 0);
}

ns_err ns_supervise_run_ex(char *const argv[], const uint8_t *in, size_t in_len, ns_buf *out,
                           int timeout_ms, int *status, unsigned extra)
{
    ns_supervise_child c;
    unsigned flags = (in ? NS_SPAWN_STDIN_PIPE : NS_SPAWN_STDIN_NULL) |
                     (out ? NS_SPAWN_STDOUT_PIPE | (extra & NS_SPAWN_STDERR_OUT) : 0);
    GUARD(ns_supervise_spawn(&c, argv, flags, -1));
    int64_t deadline = timeout_ms < 0 ? -1 : ns_now_ms() + timeout_ms;
    size_t written = 0;
    ns_err e = NS_OK;
    if (c.in_fd >= 0) {
        ns_set_nonblock(c.in_fd, 1);
        if (in_len == 0) {
            close(c.in_fd);
            c.in_fd = -1;
        }
    }
    while (c.in_fd >= 0 || c.out_fd >= 0) {
        struct pollfd p[2];
        int n = 0, iw = -1, io = -1;
        if (c.in_fd >= 0) {
            p[n] = (struct pollfd){.fd = c.in_fd, .events = POLLOUT};
            iw = n++;
        }
        if (c.out_fd >= 0) {
            p[n] = (struct pollfd){.fd = c.out_fd, .events = POLLIN};
            io = n++;
        }
        int left = ns_ms_left(deadline);
        if (deadline >= 0 && left == 0) {
            e = ns_fail(NS_E_TIMEOUT, "%s did not finish within %d ms", argv[0], timeout_ms);
            break;
        }
        if (cancelled()) {
            e = ns_fail(NS_E_CLOSED, "%s stopped: a stop was requested", argv[0]);
            break;
        }
        if (left < 0 || left > SUP_CANCEL_CHECK_MS) {
            left = SUP_CANCEL_CHECK_MS;
        }
        int r = poll(p, (nfds_t)n, left);
        if (r < 0 && errno != EINTR) {
            e = ns_fail_errno(NS_E_IO, "poll");
            break;
        }
        if (iw >= 0 && (p[iw].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(c.in_fd, in + written, in_len - written);
            if (w > 0) {
                written += (size_t)w;
            }
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == in_len) {
                close(c.in_fd); /* EPIPE: the child stopped reading; its status says why */
                c.in_fd = -1;
            }
        }
        if (io >= 0 && (p[io].revents & (POLLIN | POLLERR | POLLHUP))) {
            uint8_t tmp[4096];
            ssize_t got = read(c.out_fd, tmp, sizeof tmp);
            if (got > 0) {
                e = ns_buf_append(out, tmp, (size_t)got);
                ns_wipe_if(out->secret, tmp, sizeof tmp);
                if (e != NS_OK) {
                    e = ns_fail(NS_E_TOO_BIG, "%s wrote more than %zu bytes", argv[0], out->max);
                    break;
                }
            } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(c.out_fd);
                c.out_fd = -1;
            }
        }
    }
    if (e != NS_OK) {
        ns_supervise_stop(&c, 1000);
        *status = -1;
        return e;
    }
    for (;;) {
        int exited = 0;
        e = ns_supervise_poll(&c, &exited, status);
        if (e != NS_OK || exited) {
            return e;
        }
        if (cancelled()) {
            ns_supervise_stop(&c, 1000);
            return ns_fail(NS_E_CLOSED, "%s stopped: a stop was requested", argv[0]);
        }
        if (deadline >= 0 && ns_ms_left(deadline) == 0) {
            ns_supervise_stop(&c, 1000);
            return ns_fail(NS_E_TIMEOUT, "%s did not finish within %d ms", argv[0], timeout_ms);
        }
        usleep(SUP_POLL_MS * 1000);
    }
}

void ns_status_str(int status, char *out, size_t cap)
{
    if (status < 0) {
        snprintf(out, cap, "not run");
    } else if (WIFEXITED(status)) {
        snprintf(out, cap, "exit %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(out, cap, "killed by signal %d", WTERMSIG(status));
    } else {
        snprintf(out, cap, "status %d", status);
    }
}

int ns_status_ok(int status)
{
    return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
