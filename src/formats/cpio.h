/*
 * cpio: deterministic "newc" (SVR4, magic 070701) archives for the enclave's initramfs.
 *
 * The archive depends only on the names, types, executable bits and contents of the files:
 * entries are sorted by path (bytewise), owner and group are 0, every mtime is the caller's
 * (SOURCE_DATE_EPOCH), inode numbers count from 1 in archive order, directories are 0755,
 * files 0755 when any execute bit is set and 0644 otherwise, symlinks 0777. Only directories,
 * regular files and symlinks are accepted; the kernel's built-in initramfs supplies
 * /dev/console. Format: Linux Documentation/driver-api/early-userspace/buffer-format.rst.
 */
#ifndef NS_CPIO_H
#define NS_CPIO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NS_CPIO_HEADER_LEN 110
#define NS_CPIO_MAX_NAME 4096          /* bytes of a path inside the archive, without the NUL */
#define NS_CPIO_MAX_ENTRIES 65536      /* files + directories + symlinks in one tree */
#define NS_CPIO_MAX_BYTES (1ull << 31) /* a whole archive (the buffer's cap) */

/* Entry types, as the st_mode type bits of the archive. */
#define NS_CPIO_DIR 0040000u
#define NS_CPIO_REG 0100000u
#define NS_CPIO_LNK 0120000u

/* Appends one entry. mode holds the type (NS_CPIO_*) and the permission bits; data is the file
 * contents or the symlink target (NULL/0 for a directory). name must be relative, non-empty,
 * without "." or ".." components, a leading '/', a trailing '/' or "//". */
ns_err ns_cpio_add(ns_buf *out, uint32_t ino, const char *name, uint32_t mode, uint32_t mtime,
                   const uint8_t *data, size_t len) NS_MUST_CHECK;
/* Appends the TRAILER!!! entry that ends an archive. */
ns_err ns_cpio_trailer(ns_buf *out) NS_MUST_CHECK;
/* Appends the whole tree under dir (not dir itself) and the trailer, normalised as above. */
ns_err ns_cpio_write_dir(ns_buf *out, const char *dir, uint32_t mtime) NS_MUST_CHECK;

#endif
