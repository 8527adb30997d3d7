/*
 * cpio: deterministic newc writer (see cpio.h for the normalisation rules).
 *
 * The directory walk is iterative (a growing list of relative paths, each directory expanded
 * once), so a deep tree cannot exhaust the stack; the list is sorted once at the end.
 */
#include "cpio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iox.h"

#define CPIO_MAGIC "070701"
#define CPIO_TRAILER "TRAILER!!!"
#define CPIO_MAX_FILE (1ull << 30) /* one file's contents */

static size_t pad4(size_t n)
{
    return (4 - (n & 3)) & 3;
}

static int name_ok(const char *name, size_t len)
{
    if (len == 0 || name[0] == '/' || name[len - 1] == '/') {
        return 0;
    }
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
            return 0;
        }
        p += n;
        if (*p == '/') {
            p++;
        }
    }
    return 1;
}

static ns_err put_header(ns_buf *out, uint32_t ino, uint32_t mode, uint32_t nlink, uint32_t mtime,
                         uint64_t filesize, size_t namesize)
{
    char h[NS_CPIO_HEADER_LEN + 1];
    int n = snprintf(h, sizeof h, "%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
                     CPIO_MAGIC, ino, mode, 0u, 0u, nlink, mtime, (uint32_t)filesize, 0u, 0u, 0u,
                     0u, (uint32_t)namesize, 0u);
    ENSURE(n == NS_CPIO_HEADER_LEN, NS_E_INTERNAL, "cpio: header formatting failed");
    return ns_buf_append(out, h, NS_CPIO_HEADER_LEN);
}

static ns_err put_entry(ns_buf *out, uint32_t ino, const char *name, uint32_t mode, uint32_t nlink,
                        uint32_t mtime, const uint8_t *data, size_t len)
{
    static const uint8_t zeros[4] = {0};
    size_t namesize = strlen(name) + 1;
    GUARD(put_header(out, ino, mode, nlink, mtime, len, namesize));
    GUARD(ns_buf_append(out, name, namesize));
    GUARD(ns_buf_append(out, zeros, pad4(NS_CPIO_HEADER_LEN + namesize)));
    if (len > 0) {
        GUARD(ns_buf_append(out, data, len));
        GUARD(ns_buf_append(out, zeros, pad4(len)));
    }
    return NS_OK;
}

ns_err ns_cpio_add(ns_buf *out, uint32_t ino, const char *name, uint32_t mode, uint32_t mtime,
                   const uint8_t *data, size_t len)
{
    size_t nlen = strnlen(name, NS_CPIO_MAX_NAME + 1);
    ENSURE(nlen <= NS_CPIO_MAX_NAME, NS_E_TOO_BIG, "cpio: path longer than %d bytes",
           NS_CPIO_MAX_NAME);
    ENSURE(name_ok(name, nlen), NS_E_USAGE,
           "cpio: bad path '%s': must be relative, without '.', '..' or empty components", name);
    ENSURE(strcmp(name, CPIO_TRAILER) != 0, NS_E_USAGE, "cpio: '%s' is the reserved end marker",
           name);
    uint32_t type = mode & 0170000u;
    ENSURE(type == NS_CPIO_DIR || type == NS_CPIO_REG || type == NS_CPIO_LNK, NS_E_UNSUPPORTED,
           "cpio: '%s': only directories, regular files and symlinks are supported", name);
    ENSURE(type != NS_CPIO_DIR || len == 0, NS_E_USAGE, "cpio: directory '%s' with contents", name);
    ENSURE(type != NS_CPIO_LNK || (len > 0 && memchr(data, 0, len) == NULL), NS_E_USAGE,
           "cpio: symlink '%s' needs a target without NUL bytes", name);
    ENSURE(len <= UINT32_MAX, NS_E_TOO_BIG, "cpio: '%s' is larger than 4 GiB (newc limit)", name);
    return put_entry(out, ino, name, mode & 0177777u, type == NS_CPIO_DIR ? 2 : 1, mtime, data,
                     len);
}

ns_err ns_cpio_trailer(ns_buf *out)
{
    return put_entry(out, 0, CPIO_TRAILER, 0, 1, 0, NULL, 0);
}

typedef struct {
    char **v;
    size_t n;
    size_t cap;
} path_list;

static void list_free(path_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static ns_err list_push(path_list *l, const char *parent, const char *name)
{
    ENSURE(l->n < NS_CPIO_MAX_ENTRIES, NS_E_TOO_BIG, "cpio: more than %d entries in the tree",
           NS_CPIO_MAX_ENTRIES);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        ENSURE(v != NULL, NS_E_NOMEM, "cpio: out of memory listing the tree");
        l->v = v;
        l->cap = cap;
    }
    size_t plen = strlen(parent), nlen = strlen(name);
    size_t total = plen + (plen ? 1 : 0) + nlen;
    ENSURE(total <= NS_CPIO_MAX_NAME, NS_E_TOO_BIG, "cpio: path %s/%s longer than %d bytes", parent,
           name, NS_CPIO_MAX_NAME);
    char *s = malloc(total + 1);
    ENSURE(s != NULL, NS_E_NOMEM, "cpio: out of memory listing the tree");
    snprintf(s, total + 1, "%s%s%s", parent, plen ? "/" : "", name);
    l->v[l->n++] = s;
    return NS_OK;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the entries of directory root/rel to the list. */
static ns_err list_dir(path_list *l, const char *root, const char *rel)
{
    char path[NS_CPIO_MAX_NAME * 2 + 2];
    snprintf(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(path);
    if (d == NULL) {
        return ns_fail_errno(NS_E_IO, "cpio: cannot open directory %s", path);
    }
    ns_err e = NS_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        e = list_push(l, rel, de->d_name);
        if (e != NS_OK) {
            break;
        }
    }
    closedir(d);
    return e;
}

static ns_err add_path(ns_buf *out, const char *root, const char *rel, uint32_t ino, uint32_t mtime,
                       int *is_dir)
{
    char path[NS_CPIO_MAX_NAME * 2 + 2];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    struct stat st;
    if (lstat(path, &st) != 0) {
        return ns_fail_errno(NS_E_IO, "cpio: cannot stat %s", path);
    }
    *is_dir = 0;
    if (S_ISDIR(st.st_mode)) {
        *is_dir = 1;
        return ns_cpio_add(out, ino, rel, NS_CPIO_DIR | 0755, mtime, NULL, 0);
    }
    if (S_ISLNK(st.st_mode)) {
        char target[NS_CPIO_MAX_NAME + 1];
        ssize_t n = readlink(path, target, sizeof target);
        if (n < 0) {
            return ns_fail_errno(NS_E_IO, "cpio: cannot read symlink %s", path);
        }
        ENSURE((size_t)n < sizeof target, NS_E_TOO_BIG, "cpio: symlink %s target too long", path);
        return ns_cpio_add(out, ino, rel, NS_CPIO_LNK | 0777, mtime, (const uint8_t *)target,
                           (size_t)n);
    }
    ENSURE(S_ISREG(st.st_mode), NS_E_UNSUPPORTED,
           "cpio: %s is not a directory, regular file or symlink; remove it from the tree", path);
    ns_buf data;
    ns_buf_init(&data, CPIO_MAX_FILE);
    ns_err e = ns_read_path(path, &data);
    if (e == NS_OK) {
        uint32_t perm = (st.st_mode & 0111) ? 0755 : 0644;
        e = ns_cpio_add(out, ino, rel, NS_CPIO_REG | perm, mtime, data.data, data.len);
    } else {
        e = ns_fail_ctx(e, "cpio: reading %s", path);
    }
    ns_buf_free(&data);
    return e;
}

ns_err ns_cpio_write_dir(ns_buf *out, const char *dir, uint32_t mtime)
{
    ENSURE(strlen(dir) <= NS_CPIO_MAX_NAME, NS_E_TOO_BIG, "cpio: directory path too long");
    path_list l = {0};
    ns_err e = list_dir(&l, dir, "");
    /* Expand directories breadth-first: each new directory is listed when the scan reaches it. */
    for (size_t i = 0; e == NS_OK && i < l.n; i++) {
        char path[NS_CPIO_MAX_NAME * 2 + 2];
        snprintf(path, sizeof path, "%s/%s", dir, l.v[i]);
        struct stat st;
        if (lstat(path, &st) != 0) {
            e = ns_fail_errno(NS_E_IO, "cpio: cannot stat %s", path);
        } else if (S_ISDIR(st.st_mode)) {
            e = list_dir(&l, dir, l.v[i]);
        }
    }
    if (e == NS_OK) {
        qsort(l.v, l.n, sizeof *l.v, cmp_path);
        for (size_t i = 0; e == NS_OK && i < l.n; i++) {
            int is_dir;
            e = add_path(out, dir, l.v[i], (uint32_t)(i + 1), mtime, &is_dir);
        }
    }
    if (e == NS_OK) {
        e = ns_cpio_trailer(out);
    }
    list_free(&l);
    return e;
}
