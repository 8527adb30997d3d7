/* Unit tests for iox: atomic output (commit and abort), bounded reads, number parsing. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iox.h"
#include "t.h"

int main(void)
{
    char dir[] = "/tmp/ns-test-iox-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    char path[128];
    snprintf(path, sizeof path, "%s/out.bin", dir);

    ns_out o;
    CHECK_ERR(ns_out_open(&o, path), NS_OK, "open output");
    CHECK_ERR(ns_out_write(&o, "hello", 5), NS_OK, "write");
    CHECK(access(path, F_OK) != 0, "nothing at the final path before commit");
    CHECK_ERR(ns_out_commit(&o), NS_OK, "commit");
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 5, "committed file has the content");
    CHECK((st.st_mode & 0777) == 0600, "committed file is 0600");

    char path2[160];
    snprintf(path2, sizeof path2, "%s/aborted.bin", dir);
    CHECK_ERR(ns_out_open(&o, path2), NS_OK, "open second output");
    CHECK_ERR(ns_out_write(&o, "partial", 7), NS_OK, "write partial");
    ns_out_abort(&o);
    CHECK(access(path2, F_OK) != 0, "abort leaves no file");
    int n = 0;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
    FILE *p = popen(cmd, "r");
    if (p && fscanf(p, "%d", &n) != 1) {
        n = -1;
    }
    if (p) {
        pclose(p);
    }
    CHECK(n == 1, "abort leaves no temp file either (%d entries)", n);

    CHECK_ERR(ns_out_open(&o, "/nonexistent-dir/x"), NS_E_IO, "unwritable directory is an error");

    /* issue 15: the output is checked through the opened descriptor, never through a link */
    {
        char lnk[600], victim[600];
        snprintf(lnk, sizeof lnk, "%s.link", path);
        snprintf(victim, sizeof victim, "%s.victim", path);
        FILE *vf = fopen(victim, "w");
        if (vf) {
            fputs("victim", vf);
            fclose(vf);
        }
        unlink(lnk);
        CHECK(symlink("/dev/null", lnk) == 0, "symlink to a device made");
        CHECK_ERR(ns_out_open(&o, lnk), NS_E_USAGE, "an output path that is a symlink to a "
                                                   "device is refused (not followed)");
        CHECK(strstr(ns_err_msg(), "symbolic link") != NULL, "the refusal says why");
        unlink(lnk);
        CHECK(symlink(victim, lnk) == 0, "symlink to a regular file made");
        CHECK_ERR(ns_out_open(&o, lnk), NS_E_USAGE, "an output path that is a symlink to a file "
                                                   "is refused");
        char vb[16] = "";
        vf = fopen(victim, "r");
        if (vf) {
            (void)!fgets(vb, sizeof vb, vf);
            fclose(vf);
        }
        struct stat lst;
        CHECK(strcmp(vb, "victim") == 0 && lstat(lnk, &lst) == 0 && S_ISLNK(lst.st_mode),
              "neither the link nor its target was touched");
        unlink(lnk);
        unlink(victim);
        CHECK_ERR(ns_out_open(&o, "/dev/null"), NS_OK, "a device is still written in place");
        CHECK(o.is_direct, "/dev/null opened directly (no temp file, no rename)");
        CHECK_ERR(ns_out_write(&o, "x", 1), NS_OK, "write to /dev/null");
        CHECK_ERR(ns_out_commit(&o), NS_OK, "commit to /dev/null");
    }

    ns_buf b;
    ns_buf_init(&b, 4);
    CHECK_ERR(ns_read_path(path, &b), NS_E_TOO_BIG, "read_path enforces the cap");
    ns_buf_free(&b);
    ns_buf_init(&b, 5);
    CHECK_ERR(ns_read_path(path, &b), NS_OK, "read_path exactly at the cap");
    CHECK(b.len == 5 && memcmp(b.data, "hello", 5) == 0, "read_path content");
    ns_buf_free(&b);
    ns_buf_init(&b, 5);
    CHECK_ERR(ns_read_path("/nonexistent", &b), NS_E_NOT_FOUND, "missing file is NOT_FOUND");
    ns_buf_free(&b);

    uint64_t v;
    CHECK_ERR(ns_parse_size("64K", UINT64_MAX, &v), NS_OK, "size 64K");
    CHECK(v == 65536, "size 64K value");
    CHECK_ERR(ns_parse_size("2G", UINT64_MAX, &v), NS_OK, "size 2G");
    CHECK(v == 2147483648ull, "size 2G value");
    CHECK_ERR(ns_parse_size("1X", UINT64_MAX, &v), NS_E_USAGE, "bad suffix");
    CHECK_ERR(ns_parse_size("99999999999999999999", UINT64_MAX, &v), NS_E_USAGE, "overflow");
    CHECK_ERR(ns_parse_uint("-1", 100, &v), NS_E_USAGE, "negative");
    CHECK_ERR(ns_parse_uint("101", 100, &v), NS_E_USAGE, "over max");
    CHECK_ERR(ns_parse_uint("100", 100, &v), NS_OK, "exactly max");
    CHECK_ERR(ns_parse_uint("5", 3, &v), NS_E_USAGE, "single digit over a max below 10");
    CHECK_ERR(ns_parse_uint("3", 3, &v), NS_OK, "single digit equal to a max below 10");
    CHECK_ERR(ns_parse_uint("18446744073709551615", UINT64_MAX, &v), NS_OK, "UINT64_MAX");
    CHECK_ERR(ns_parse_uint("18446744073709551616", UINT64_MAX, &v), NS_E_USAGE, "UINT64_MAX + 1");
    CHECK_ERR(ns_parse_size("2G", 1ull << 30, &v), NS_E_USAGE, "size over a max with suffix");
    CHECK_ERR(ns_parse_size("1G", 1ull << 30, &v), NS_OK, "size equal to max with suffix");
    int64_t ms;
    CHECK_ERR(ns_parse_seconds("2.5", &ms), NS_OK, "seconds 2.5");
    CHECK(ms == 2500, "seconds 2.5 value");
    CHECK_ERR(ns_parse_seconds("3", &ms), NS_OK, "seconds 3");
    CHECK(ms == 3000, "seconds 3 value");
    CHECK_ERR(ns_parse_seconds("1.", &ms), NS_E_USAGE, "seconds '1.'");
    CHECK_ERR(ns_parse_seconds("x", &ms), NS_E_USAGE, "seconds 'x'");

    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    CHECK(write(fds[1], "abc", 3) == 3, "pipe write");
    close(fds[1]);
    char rb[8];
    CHECK_ERR(ns_read_full(fds[0], rb, 4, 1000), NS_E_TRUNCATED, "read_full on short input");
    close(fds[0]);
    CHECK(pipe(fds) == 0, "pipe 2");
    CHECK_ERR(ns_read_full(fds[0], rb, 1, 100), NS_E_TIMEOUT, "read_full times out");
    close(fds[0]);
    close(fds[1]);

    /* ns_open_private: regular files only, never through a link (issue 22 item 5). */
    char lp[160], tp[160];
    snprintf(lp, sizeof lp, "%s/app.log", dir);
    snprintf(tp, sizeof tp, "%s/target", dir);
    int fd;
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_APPEND, "LOG"), NS_OK, "append: created");
    CHECK(write(fd, "a\n", 2) == 2 && fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0600,
          "append: 0600");
    close(fd);
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_APPEND, "LOG"), NS_OK, "append: reopened");
    CHECK(write(fd, "b\n", 2) == 2 && fstat(fd, &st) == 0 && st.st_size == 4, "append: appends");
    CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC),
          "append: blocking, close-on-exec");
    close(fd);
    CHECK(rename(lp, tp) == 0 && symlink(tp, lp) == 0, "the log replaced by a link to it");
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_APPEND, "LOG"), NS_E_USAGE, "append: link refused");
    CHECK(fd == -1 && strstr(ns_err_msg(), "LOG ") && strstr(ns_err_msg(), "symbolic link"),
          "append: the error names the setting and the link (%s)", ns_err_msg());
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_LOCK, "LOCK"), NS_E_USAGE, "lock: link refused");
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_LOCK_EXISTING, "LOCK"), NS_E_USAGE,
              "existing lock: link refused");
    CHECK(stat(tp, &st) == 0 && st.st_size == 4, "the link's target untouched");
    unlink(lp);
    CHECK(symlink("/nonexistent/dangling", lp) == 0, "a dangling link");
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_APPEND, "LOG"), NS_E_USAGE,
              "append: a dangling link refused (not created through)");
    unlink(lp);
    CHECK(mkfifo(lp, 0600) == 0, "a FIFO without a reader");
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_APPEND, "LOG"), NS_E_USAGE,
              "append: a FIFO refused without blocking");
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_LOCK, "LOG"), NS_E_USAGE, "lock: a FIFO refused");
    CHECK(strstr(ns_err_msg(), "not a regular file"), "FIFO: says why (%s)", ns_err_msg());
    unlink(lp);
    CHECK_ERR(ns_open_private(&fd, dir, NS_OPEN_APPEND, "LOG"), NS_E_USAGE, "a directory refused");
    CHECK_ERR(ns_open_private(&fd, "/dev/null", NS_OPEN_APPEND, "LOG"), NS_E_USAGE,
              "a device refused");
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_LOCK_EXISTING, "LOCK"), NS_E_NOT_FOUND,
              "existing lock: none is NOT_FOUND");
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_LOCK, "LOCK"), NS_OK, "lock: created");
    close(fd);
    CHECK_ERR(ns_open_private(&fd, lp, NS_OPEN_LOCK_EXISTING, "LOCK"), NS_OK, "existing lock");
    close(fd);
    unlink(lp);
    unlink(tp);

    unlink(path);
    rmdir(dir);
    T_DONE();
}
