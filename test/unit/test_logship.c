/* Unit tests: logship's bounded ring and sender (order, drops under a stalled reader, the drop
 * notice when sending resumes, reconnection, a ring that queues before its destination is known)
 * and the line receiver. */
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iox.h"
#include "log.h"
#include "logship.h"
#include "t.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static ns_buf got;
static size_t got_lines;

static void collect(void *arg, const char *line, size_t n)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    if (ns_buf_append(&got, line, n) != NS_OK || ns_buf_append_u8(&got, '\n') != NS_OK) {
        abort();
    }
    got_lines++;
    pthread_mutex_unlock(&mu);
}

static size_t lines_now(void)
{
    pthread_mutex_lock(&mu);
    size_t n = got_lines;
    pthread_mutex_unlock(&mu);
    return n;
}

static int wait_lines(size_t n)
{
    for (int i = 0; i < 500 && lines_now() < n; i++) {
        usleep(10000);
    }
    return lines_now() >= n;
}

int main(void)
{
    char path[64], a_s[80], line[128];
    snprintf(path, sizeof path, "/tmp/ns-logship-%d.sock", (int)getpid());
    snprintf(a_s, sizeof a_s, "unix:%s", path);
    ns_addr a;
    CHECK(ns_addr_parse(&a, a_s) == NS_OK, "address");
    ns_buf_init(&got, 1 << 24);
    ns_log_init("test");

    /* 1. Order and completeness, sender started before the receiver listens. */
    ns_logship *ls;
    CHECK_ERR(ns_logship_start(&ls, &a, 64 * 1024), NS_OK, "sender started (nobody listens yet)");
    for (int i = 0; i < 100; i++) {
        int k = snprintf(line, sizeof line, "line %d\n", i);
        ns_logship_write(ls, line, (size_t)k);
    }
    ns_logrecv *r;
    CHECK_ERR(ns_logrecv_start(&r, &a, NULL, collect, NULL), NS_OK, "receiver listening");
    CHECK(wait_lines(100), "all 100 lines arrive once the receiver listens");
    CHECK(ns_buf_cstr(&got) == NS_OK, "cstr");
    CHECK(strncmp((char *)got.data, "line 0\nline 1\n", 14) == 0 &&
              strstr((char *)got.data, "line 98\nline 99\n") != NULL,
          "in order");
    CHECK(ns_logship_dropped(ls) == 0, "nothing dropped");
    /* Through the log module's sink. */
    ns_log_set_sink((void (*)(void *, const char *, size_t))ns_logship_write, ls);
    ns_info("via the log module key=%d", 7);
    ns_log_set_sink(NULL, NULL);
    CHECK(wait_lines(101), "a log line arrives through ns_log_set_sink");
    CHECK(ns_buf_cstr(&got) == NS_OK && strstr((char *)got.data, "nsign test: info via the log "
                                                                 "module key=7\n"),
          "formatted as on stderr");
    ns_logship_stop(ls, 2000);
    ns_logrecv_stop(r);

    /* 2. A stalled reader: the writer never blocks, lines are dropped and counted, and the
     * count is reported when sending resumes. */
    int lfd;
    CHECK(ns_addr_listen(&a, 4, 0, &lfd) == NS_OK, "stalling listener");
    CHECK_ERR(ns_logship_start(&ls, &a, 4096), NS_OK, "sender with a 4 KiB ring");
    int cfd = accept(lfd, NULL, NULL);
    CHECK(cfd >= 0, "sender connected");
    int small = 4096;
    setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    char big[200];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\n';
    for (int i = 0; i < 20000; i++) {
        ns_logship_write(ls, big, sizeof big); /* 4 MB into a 4 KiB ring and a stalled socket */
    }
    uint64_t dropped = ns_logship_dropped(ls);
    CHECK(dropped > 10000, "most lines dropped while the reader stalls (%llu)",
          (unsigned long long)dropped);
    /* Resume reading: drain, then a new line comes after the notice. */
    ns_set_nonblock(cfd, 1);
    ns_buf rd;
    ns_buf_init(&rd, 1 << 24);
    int written_after = 0;
    for (int i = 0; i < 1000; i++) {
        char buf[65536];
        ssize_t k = read(cfd, buf, sizeof buf);
        if (k > 0 && ns_buf_append(&rd, buf, (size_t)k) != NS_OK) {
            break;
        }
        if (k <= 0 && !written_after && ns_logship_pending(ls) == 0) { /* the backlog is out */
            ns_logship_write(ls, "after the stall\n", 16);
            written_after = 1;
        }
        if (rd.len > 16 && memcmp(rd.data + rd.len - 16, "after the stall\n", 16) == 0) {
            break;
        }
        usleep(5000);
    }
    CHECK(ns_buf_cstr(&rd) == NS_OK, "cstr");
    /* Notices come whenever a line fits again (also during the flood): they add up. */
    const char *want = "nsign test: warn log lines dropped count=";
    char *after = strstr((char *)rd.data, "after the stall\n");
    unsigned long long reported = 0;
    for (char *p = (char *)rd.data; (p = strstr(p, want)) != NULL && (!after || p < after); p++) {
        reported += strtoull(p + strlen(want), NULL, 10);
    }
    CHECK(after != NULL, "sending resumed");
    CHECK(reported == dropped,
          "the drop counts reported before the next line add up to %llu "
          "(got %llu)",
          (unsigned long long)dropped, reported);
    size_t whole = 0;
    for (char *p = (char *)rd.data;
         (p = memmem(p, rd.len - (size_t)(p - (char *)rd.data), big, sizeof big)) != NULL;
         p += sizeof big) {
        whole++;
    }
    CHECK(whole + dropped == 20000, "every line either arrived whole or was counted (%zu + %llu)",
          whole, (unsigned long long)dropped);
    ns_buf_free(&rd);
    /* 3. The reader goes away: the sender reconnects to a new one. */
    close(cfd);
    close(lfd);
    unlink(path);
    got.len = 0;
    got_lines = 0;
    CHECK_ERR(ns_logrecv_start(&r, &a, NULL, collect, NULL), NS_OK, "new receiver");
    ns_logship_write(ls, "again\n", 6);
    CHECK(wait_lines(1), "sender reconnected");
    ns_logship_stop(ls, 2000);

    /* 4. Receiver: an over-long line is cut, the next line is whole. */
    int fd;
    CHECK(ns_addr_connect(&a, 1000, &fd) == NS_OK, "raw client");
    size_t n = NS_LOGRECV_LINE_MAX + 100;
    char *longl = malloc(n + 10);
    memset(longl, 'y', n);
    memcpy(longl + n, "\nok\n", 4);
    CHECK(ns_write_all(fd, longl, n + 4) == NS_OK, "sent");
    close(fd);
    CHECK(wait_lines(3), "long line (cut) and the next line delivered");
    CHECK(ns_buf_cstr(&got) == NS_OK, "cstr");
    CHECK(strstr((char *)got.data, "\nok\n") != NULL &&
              strlen((char *)got.data) == 6 + NS_LOGRECV_LINE_MAX + 1 + 3,
          "cut at NS_LOGRECV_LINE_MAX");
    free(longl);

    /* 5. A ring whose destination is not known yet (a boot's first lines): it queues within its
     * bound, counting what does not fit, then sends what it queued first, in order, then the
     * drop notice and the later lines. */
    pthread_mutex_lock(&mu);
    got.len = 0;
    got_lines = 0;
    pthread_mutex_unlock(&mu);
    CHECK_ERR(ns_logship_new(&ls, 4096), NS_OK, "a ring with no destination yet");
    size_t queued = 0;
    for (int i = 0; i < 10; i++) {
        int k = snprintf(line, sizeof line, "early %d\n", i);
        ns_logship_write(ls, line, (size_t)k);
        queued += (size_t)k;
    }
    CHECK(ns_logship_pending(ls) == queued && ns_logship_dropped(ls) == 0,
          "lines queued, none sent or dropped (%zu bytes)", queued);
    for (int i = 0; i < 100; i++) {
        ns_logship_write(ls, big, sizeof big); /* 20 KB into what is left of 4 KiB */
    }
    uint64_t early_dropped = ns_logship_dropped(ls);
    size_t early_kept = 100 - (size_t)early_dropped;
    CHECK(early_dropped > 0 && early_kept > 0 &&
              ns_logship_pending(ls) == queued + early_kept * sizeof big,
          "bounded before sending too: %zu kept, %llu dropped and counted", early_kept,
          (unsigned long long)early_dropped);
    CHECK_ERR(ns_logship_send_to(ls, &a), NS_OK, "the destination is known: sending starts");
    CHECK_ERR(ns_logship_send_to(ls, &a), NS_OK, "a second start keeps the sender");
    for (int i = 0; i < 500 && ns_logship_pending(ls) > 0; i++) {
        usleep(10000); /* the backlog out first, so the later lines fit the small ring */
    }
    CHECK(ns_logship_pending(ls) == 0, "the queued lines are sent");
    ns_logship_write(ls, "late 0\n", 7);
    ns_logship_write(ls, "late 1\n", 7);
    CHECK(wait_lines(10 + early_kept + 1 + 2), "every queued line, the notice and the later lines");
    CHECK(ns_buf_cstr(&got) == NS_OK, "cstr");
    char want5[256];
    snprintf(want5, sizeof want5,
             "nsign test: warn log lines dropped count=%llu (the log reader was too slow or "
             "absent)\nlate 0\nlate 1\n",
             (unsigned long long)early_dropped);
    const char *g5 = (const char *)got.data;
    CHECK(strncmp(g5, "early 0\nearly 1\n", 16) == 0 && strstr(g5, "early 9\n") != NULL &&
              strstr(g5, "early 9\n") < strchr(g5, 'x') && strstr(g5, want5) != NULL &&
              strchr(g5, 'x') < strstr(g5, want5) &&
              strlen(strstr(g5, want5)) == strlen(want5),
          "the queued lines first, in order, then the drop notice, then the later lines");
    ns_logship_stop(ls, 2000);

    /* 6. A ring that never gets a destination is freed with its lines unsent. */
    CHECK_ERR(ns_logship_new(&ls, 0), NS_OK, "a default-sized ring");
    ns_logship_write(ls, "never sent\n", 11);
    CHECK(ns_logship_pending(ls) == 11, "queued");
    ns_logship_stop(ls, 2000); /* returns at once: no sender to wait for */
    CHECK(lines_now() == 10 + early_kept + 1 + 2, "nothing more reached the reader");

    ns_logrecv_stop(r);
    ns_buf_free(&got);
    T_DONE();
}
