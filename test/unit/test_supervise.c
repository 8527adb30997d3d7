/*
 * test_supervise: child processes as run-enclave uses them: PATH lookup, stdin fed from memory
 * and stdout collected (also past the pipe size), the output bound, exit statuses, the
 * deadline, stderr collection, and stopping a child that ignores nothing and one that runs on.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "supervise.h"
#include "t.h"

static ns_stop t_cancel;

static void *cancel_later(void *arg)
{
    (void)arg;
    usleep(200 * 1000);
    t_cancel = 1;
    return NULL;
}

int main(void)
{
    char p[4096], s[64];
    int st = -1;
    ns_buf out;

    CHECK_ERR(ns_supervise_which("sh", p, sizeof p), NS_OK, "sh found in PATH");
    CHECK(p[0] == '/', "absolute path %s", p);
    CHECK_ERR(ns_supervise_which("ns-no-such-program", p, sizeof p), NS_E_NOT_FOUND,
              "unknown program");
    CHECK_ERR(ns_supervise_which("/nonexistent/prog", p, sizeof p), NS_E_NOT_FOUND, "missing path");
    CHECK_ERR(ns_self_exe(p, sizeof p), NS_OK, "self exe");
    CHECK(strstr(p, "test_supervise") != NULL, "self exe is this test (%s)", p);

    /* 1 MiB through cat: stdin and stdout both exceed the pipe buffer. */
    size_t n = 1 << 20;
    uint8_t *in = malloc(n);
    for (size_t i = 0; i < n; i++) {
        in[i] = (uint8_t)(i * 7 + 3);
    }
    char *cat[] = {"cat", NULL};
    ns_buf_init_secret(&out, 2 << 20);
    CHECK_ERR(ns_supervise_run(cat, in, n, &out, 20000, &st), NS_OK, "cat 1 MiB");
    CHECK(ns_status_ok(st) && out.len == n && memcmp(out.data, in, n) == 0, "round trip intact");
    ns_buf_free(&out);

    ns_buf_init(&out, 1000);
    CHECK_ERR(ns_supervise_run(cat, in, n, &out, 20000, &st), NS_E_TOO_BIG,
              "output over the bound");
    ns_buf_free(&out);
    free(in);

    char *ex3[] = {"sh", "-c", "exit 3", NULL};
    CHECK_ERR(ns_supervise_run(ex3, NULL, 0, NULL, 5000, &st), NS_OK, "exit 3 runs");
    ns_status_str(st, s, sizeof s);
    CHECK(!ns_status_ok(st) && strcmp(s, "exit 3") == 0, "status 'exit 3' (%s)", s);

    char *kill9[] = {"sh", "-c", "kill -9 $$", NULL};
    CHECK_ERR(ns_supervise_run(kill9, NULL, 0, NULL, 5000, &st), NS_OK, "self-kill runs");
    ns_status_str(st, s, sizeof s);
    CHECK(strcmp(s, "killed by signal 9") == 0, "status 'killed by signal 9' (%s)", s);

    char *slow[] = {"sleep", "30", NULL};
    CHECK_ERR(ns_supervise_run(slow, NULL, 0, NULL, 300, &st), NS_E_TIMEOUT,
              "deadline kills a slow child");

    /* A cancel flag (set by a signal handler in run-enclave) stops a long child promptly. */
    pthread_t th;
    ns_supervise_set_cancel(&t_cancel);
    pthread_create(&th, NULL, cancel_later, NULL);
    CHECK_ERR(ns_supervise_run(slow, NULL, 0, NULL, 30000, &st), NS_E_CLOSED,
              "cancel stops a slow child");
    pthread_join(th, NULL);
    t_cancel = 0;
    ns_supervise_set_cancel(NULL);

    char *err[] = {"sh", "-c", "echo to-stderr >&2; echo to-stdout", NULL};
    ns_buf_init(&out, 4096);
    CHECK_ERR(ns_supervise_run_ex(err, NULL, 0, &out, 5000, &st, NS_SPAWN_STDERR_OUT), NS_OK,
              "stderr run");
    CHECK(ns_buf_cstr(&out) == NS_OK && strstr((char *)out.data, "to-stderr") &&
              strstr((char *)out.data, "to-stdout"),
          "stderr collected with stdout");
    ns_buf_free(&out);

    char *nostdin[] = {"sh", "-c", "read x; echo \"[$x]\"", NULL};
    ns_buf_init(&out, 4096);
    CHECK_ERR(ns_supervise_run(nostdin, NULL, 0, &out, 5000, &st), NS_OK, "stdin is /dev/null");
    CHECK(out.len == 3 && memcmp(out.data, "[]\n", 3) == 0, "read sees EOF");
    ns_buf_free(&out);

    ns_supervise_child c;
    CHECK_ERR(ns_supervise_spawn(&c, slow, NS_SPAWN_STDIN_NULL, -1), NS_OK, "spawn sleep");
    int exited = -1;
    CHECK_ERR(ns_supervise_poll(&c, &exited, &st), NS_OK, "poll");
    CHECK(exited == 0, "still running");
    ns_supervise_stop(&c, 2000);
    CHECK(c.pid == 0, "stopped and reaped");
    char *trap[] = {"sh", "-c", "trap '' TERM; sleep 30", NULL};
    CHECK_ERR(ns_supervise_spawn(&c, trap, NS_SPAWN_STDIN_NULL, -1), NS_OK,
              "spawn TERM-ignoring child");
    usleep(200 * 1000);
    ns_supervise_stop(&c, 300);
    CHECK(c.pid == 0, "SIGKILL after the grace period");
    CHECK_ERR(ns_supervise_spawn(&c, (char *[]){"ns-no-such-program", NULL}, 0, -1), NS_E_NOT_FOUND,
              "spawning a missing program fails before fork");
    T_DONE();
}
