/* Unit tests for log: the line format, the level filter, and batching (held until flush, one
 * write per flush, flushed when full and when turned off, per thread). stderr is a pipe here. */
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "log.h"
#include "t.h"

static int rfd;

/* Everything written to stderr so far (the pipe is non-blocking). */
static size_t drain(char *out, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(rfd, out + n, cap - 1 - n)) > 0) {
        n += (size_t)r;
    }
    out[n] = 0;
    return n;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

static void *other_thread(void *arg)
{
    (void)arg;
    ns_info("from another thread");
    return NULL;
}

int main(void)
{
    static char got[64 * 1024];
    int p[2];
    if (pipe(p) != 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) != 0 ||
        fcntl(p[1], F_SETPIPE_SZ, 1 << 20) < 0 || dup2(p[1], 2) < 0) {
        printf("not ok - cannot redirect stderr to a pipe\n");
        return 1;
    }
    rfd = p[0];
    ns_log_init("unit");
    ns_log_set_level(NS_LOG_INFO);

    ns_info("hello n=%d", 1);
    drain(got, sizeof got);
    CHECK(strcmp(got, "nsign unit: info hello n=1\n") == 0, "line format: nsign applet: level msg");
    /* issue 15: a peer's text can neither forge a line nor carry a terminal escape */
    ns_warn("kms said: %s", "bad\nnsign kms-decrypt: info forged\x1b[31m\r\x7f\tx");
    drain(got, sizeof got);
    CHECK(strcmp(got, "nsign unit: warn kms said: bad\\x0ansign kms-decrypt: info forged"
                      "\\x1b[31m\\x0d\\x7f\\x09x\n") == 0,
          "control bytes in a logged value are escaped: one line, no raw escape");
    ns_info("v=%s", "caf\xc3\xa9 \xc2\x9b" "2J \xc2\xa0");
    drain(got, sizeof got);
    CHECK(strcmp(got, "nsign unit: info v=caf\xc3\xa9 \\xc2\\x9b2J \xc2\xa0\n") == 0,
          "UTF-8 passes, a C1 control (U+009B CSI) is escaped");
    {
        static char longv[3000];
        memset(longv, '\n', sizeof longv - 1);
        ns_info("%s", longv);
        drain(got, sizeof got);
        CHECK(count_lines(got) == 1 && strlen(got) <= 1024,
              "a long escaped value is cut to one line of at most 1024 bytes");
    }
    ns_debug("hidden");
    CHECK(drain(got, sizeof got) == 0, "lines below the level are dropped");

    ns_log_batch(1);
    ns_info("one");
    ns_warn("two");
    CHECK(drain(got, sizeof got) == 0, "batched lines wait for the flush");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0 && pthread_join(t, NULL) == 0,
          "another thread logs");
    drain(got, sizeof got);
    CHECK(strcmp(got, "nsign unit: info from another thread\n") == 0,
          "batching is per thread: another thread's line goes out at once");
    ns_log_flush();
    drain(got, sizeof got);
    CHECK(strcmp(got, "nsign unit: info one\nnsign unit: warn two\n") == 0,
          "flush writes the batched lines in order");
    ns_log_flush();
    CHECK(drain(got, sizeof got) == 0, "a second flush writes nothing");

    /* 200 lines of ~100 bytes overflow the 16 KiB batch: whole lines come out early. */
    for (int i = 0; i < 200; i++) {
        ns_info("line %03d %s", i,
                "................................................................");
    }
    size_t n = drain(got, sizeof got);
    CHECK(n > 0 && got[n - 1] == '\n' && count_lines(got) < 200,
          "a full batch is written on its own, in whole lines (%zu lines early)", count_lines(got));
    ns_log_batch(0);
    n += drain(got + n, sizeof got - n);
    CHECK(count_lines(got) == 200 && strstr(got, "line 199") != NULL,
          "turning batching off writes the rest");
    ns_info("direct");
    drain(got, sizeof got);
    CHECK(strcmp(got, "nsign unit: info direct\n") == 0, "after batching, lines go out at once");

    char longmsg[3000];
    memset(longmsg, 'x', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = 0;
    ns_info("%s", longmsg);
    n = drain(got, sizeof got);
    CHECK(n == 1024 - 1 && got[n - 1] == '\n',
          "an overlong line is cut to 1023 bytes plus newline");
    T_DONE();
}
