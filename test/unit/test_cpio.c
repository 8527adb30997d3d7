/* Unit tests for cpio: exact newc bytes of one entry, the trailer, name and type rules, and a
 * directory walk that is sorted and independent of permissions and mtimes on disk. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpio.h"
#include "t.h"

static char tmpl[] = "/tmp/ns-cpio-XXXXXX";

static void put(const char *dir, const char *rel, const char *data, mode_t mode)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    if (f != NULL) {
        fputs(data, f);
        fclose(f);
    }
    chmod(p, mode);
}

static void make_tree(const char *d, mode_t dmode, mode_t fmode)
{
    char p[512];
    mkdir(d, dmode);
    snprintf(p, sizeof p, "%s/bin", d);
    mkdir(p, dmode);
    snprintf(p, sizeof p, "%s/etc", d);
    mkdir(p, dmode);
    put(d, "bin/nsign", "ELF", fmode | 0100);
    put(d, "etc/conf", "x=1\n", fmode);
    put(d, "a-b", "", fmode);
    snprintf(p, sizeof p, "%s/bin/bridge", d);
    if (symlink("nsign", p) != 0) {
        perror("symlink");
    }
}

/* Names of the entries in archive order, joined by ','. */
static int names(const ns_buf *b, char *out, size_t cap)
{
    size_t pos = 0, o = 0;
    out[0] = 0;
    while (pos + NS_CPIO_HEADER_LEN <= b->len) {
        const char *h = (const char *)b->data + pos;
        if (memcmp(h, "070701", 6) != 0) {
            return 0;
        }
        char f[9] = {0};
        memcpy(f, h + 6 + 8 * 11, 8);
        size_t ns = strtoul(f, NULL, 16);
        memcpy(f, h + 6 + 8 * 6, 8);
        size_t fs = strtoul(f, NULL, 16);
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "," : "", h + NS_CPIO_HEADER_LEN);
        pos += (NS_CPIO_HEADER_LEN + ns + 3) & ~(size_t)3;
        pos += (fs + 3) & ~(size_t)3;
    }
    return pos == b->len;
}

int main(void)
{
    ns_buf b;
    ns_buf_init(&b, 1 << 20);
    CHECK_ERR(
        ns_cpio_add(&b, 1, "init", NS_CPIO_REG | 0755, 1700000000, (const uint8_t *)"hello", 5),
        NS_OK, "add a file");
    /* clang-format off */
    static const char want[] = "070701"
        "00000001" "000081ED" "00000000" "00000000"  /* ino, mode, uid, gid */
        "00000001" "6553F100" "00000005" "00000000"  /* nlink, mtime, filesize, devmajor */
        "00000000" "00000000" "00000000" "00000005"  /* devminor, rdevmajor, rdevminor, namesize */
        "00000000"                                   /* check */
        "init\0\0"                                   /* name + NUL, padded to 4 from the start */
        "hello\0\0\0";                              /* data, padded to 4 */
    /* clang-format on */
    CHECK(b.len == sizeof want - 1 && memcmp(b.data, want, b.len) == 0,
          "newc header, name padded to 4, data padded to 4");
    ns_buf_reset(&b);
    CHECK_ERR(ns_cpio_trailer(&b), NS_OK, "trailer");
    CHECK(b.len == 124 && memcmp(b.data + 110, "TRAILER!!!", 11) == 0, "trailer entry");

    static const char *const bad[] = {"",  "/abs", "a/../b", "a//b",      "a/",
                                      ".", "./a",  "..",     "TRAILER!!!"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_ERR(ns_cpio_add(&b, 1, bad[i], NS_CPIO_REG | 0644, 0, NULL, 0), NS_E_USAGE,
                  "rejects name '%s'", bad[i]);
    }
    CHECK_ERR(ns_cpio_add(&b, 1, "dev/console", 0020600, 0, NULL, 0), NS_E_UNSUPPORTED,
              "rejects a character device");
    CHECK_ERR(ns_cpio_add(&b, 1, "l", NS_CPIO_LNK | 0777, 0, NULL, 0), NS_E_USAGE,
              "rejects a symlink without target");
    CHECK_ERR(ns_cpio_add(&b, 1, "d", NS_CPIO_DIR | 0755, 0, (const uint8_t *)"x", 1), NS_E_USAGE,
              "rejects a directory with contents");
    static char longname[NS_CPIO_MAX_NAME + 2];
    memset(longname, 'a', NS_CPIO_MAX_NAME + 1);
    CHECK_ERR(ns_cpio_add(&b, 1, longname, NS_CPIO_REG | 0644, 0, NULL, 0), NS_E_TOO_BIG,
              "rejects a name over %d bytes", NS_CPIO_MAX_NAME);
    ns_buf small;
    ns_buf_init(&small, 100);
    CHECK_ERR(ns_cpio_trailer(&small), NS_E_TOO_BIG, "respects the buffer cap");
    ns_buf_free(&small);

    char *root = mkdtemp(tmpl);
    CHECK(root != NULL, "temp dir");
    if (root == NULL) {
        T_DONE();
    }
    char d1[256], d2[256];
    snprintf(d1, sizeof d1, "%s/one", root);
    snprintf(d2, sizeof d2, "%s/two", root);
    make_tree(d1, 0755, 0644);
    make_tree(d2, 0700, 0600);
    ns_buf a, c;
    ns_buf_init(&a, 1 << 20);
    ns_buf_init(&c, 1 << 20);
    CHECK_ERR(ns_cpio_write_dir(&a, d1, 42), NS_OK, "archive tree one");
    CHECK_ERR(ns_cpio_write_dir(&c, d2, 42), NS_OK, "archive tree two (other modes)");
    CHECK(a.len == c.len && memcmp(a.data, c.data, a.len) == 0,
          "same names and contents give the same bytes whatever the modes on disk");
    char list[1024];
    CHECK(names(&a, list, sizeof list), "archive walks cleanly to its end");
    CHECK(strcmp(list, "a-b,bin,bin/bridge,bin/nsign,etc,etc/conf,TRAILER!!!") == 0,
          "sorted bytewise, parents first, trailer last (got %s)", list);
    put(d2, "etc/conf", "x=2\n", 0644);
    ns_buf_reset(&c);
    CHECK_ERR(ns_cpio_write_dir(&c, d2, 42), NS_OK, "archive again");
    CHECK(a.len == c.len && memcmp(a.data, c.data, a.len) != 0, "contents change the bytes");
    ns_buf_reset(&c);
    char p[300];
    snprintf(p, sizeof p, "%s/missing", root);
    CHECK_ERR(ns_cpio_write_dir(&c, p, 0), NS_E_IO, "missing directory is an i/o error");
    snprintf(p, sizeof p, "%s/fifo", d1);
    CHECK(mkfifo(p, 0600) == 0, "mkfifo");
    ns_buf_reset(&c);
    CHECK_ERR(ns_cpio_write_dir(&c, d1, 0), NS_E_UNSUPPORTED, "a fifo in the tree is refused");
    ns_buf_free(&a);
    ns_buf_free(&b);
    ns_buf_free(&c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0, "cleanup");
    T_DONE();
}
