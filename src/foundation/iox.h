/*
 * iox: file descriptor and file helpers shared by the applets.
 *
 * Full reads/writes that retry on EINTR and short transfers, deadlines on a monotonic clock,
 * bounded whole-file reads, and ns_out: output that is either stdout ("-") or a file written
 * atomically (0600 temp file in the same directory, fsync, rename on commit, unlink on abort), so
 * a failed run never leaves partial output behind.
 */
#ifndef NS_IOX_H
#define NS_IOX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t ns_now_ms(void);
/* Remaining ms until deadline (0 if passed); deadline < 0 means none and returns -1. */
int ns_ms_left(int64_t deadline);

ns_err ns_write_all(int fd, const void *p, size_t n) NS_MUST_CHECK;
/* Sends what the socket takes now (at least one byte), waiting up to timeout_ms (< 0: none)
 * for room; never blocks past it, even on a blocking socket. NS_E_TIMEOUT when no room came. */
ns_err ns_send_some(int fd, const void *p, size_t n, size_t *put, int timeout_ms) NS_MUST_CHECK;
/* Reads exactly n bytes; NS_E_TRUNCATED on early EOF. timeout_ms < 0: none. */
ns_err ns_read_full(int fd, void *p, size_t n, int timeout_ms) NS_MUST_CHECK;
/* Reads up to n bytes (one read, retrying EINTR); *got = 0 at EOF. timeout_ms < 0: none. */
ns_err ns_read_some(int fd, void *p, size_t n, size_t *got, int timeout_ms) NS_MUST_CHECK;
/* Appends the whole of fd to b; NS_E_TOO_BIG if b's max is exceeded. */
ns_err ns_read_fd_all(int fd, ns_buf *b) NS_MUST_CHECK;
/* Reads a path ("-" = stdin, "fd:N" = descriptor N) into b. */
ns_err ns_read_path(const char *path, ns_buf *b) NS_MUST_CHECK;
/* Opens a path for reading ("-" = stdin, "fd:N"). */
ns_err ns_open_input(const char *path, int *fd) NS_MUST_CHECK;

void ns_set_nonblock(int fd, int on);
/* How ns_open_private opens: an append-only log, a lock file (read-write, created if missing),
 * or an existing lock file (NS_E_NOT_FOUND when there is none). */
typedef enum { NS_OPEN_APPEND, NS_OPEN_LOCK, NS_OPEN_LOCK_EXISTING } ns_open_mode;
/* Opens a file nsign writes in place (logs, audit trails, console captures, lock files), the one
 * way every such file is opened: created 0600 when missing, never through a symbolic link in its
 * last component (O_NOFOLLOW: a link planted there would otherwise redirect the write or, for a
 * lock file, truncate its target), and only a regular file (a FIFO, device or directory is
 * refused without blocking). Both refusals are NS_E_USAGE; WHAT names the setting in the error
 * ("ENCLAVE_LOG_FILE"). The descriptor is close-on-exec and blocking. */
ns_err ns_open_private(int *fd, const char *path, ns_open_mode mode,
                       const char *what) NS_MUST_CHECK;
/* Removes path if it is a unix socket (a stale listener); never touches other file types. */
void ns_io_unlink_stale_socket(const char *path);
/* Raises the soft RLIMIT_NOFILE to the hard limit (servers: descriptors per connection). */
void ns_io_raise_nofile(void);
/* Parses a non-negative integer with an optional k/K/m/M/g/G suffix (powers of 1024). */
ns_err ns_parse_size(const char *s, uint64_t max, uint64_t *out) NS_MUST_CHECK;
/* Parses a non-negative decimal integer. */
ns_err ns_parse_uint(const char *s, uint64_t max, uint64_t *out) NS_MUST_CHECK;
/* Parses seconds as a decimal with an optional fraction ("2.5"), into ms. */
ns_err ns_parse_seconds(const char *s, int64_t *ms) NS_MUST_CHECK;

typedef struct {
    int fd;
    int is_stdout;
    int is_direct; /* an existing non-regular file (/dev/null, a FIFO): written in place */
    char path[4096];
    char tmp[4096];
} ns_out;

/* A path naming an existing device, FIFO or socket (/dev/null) is written in place: renaming a
 * temp file over it would replace the device node itself. What the path names is checked on an
 * O_PATH|O_NOFOLLOW descriptor and the opened file must be that same inode; a symbolic link is
 * refused (NS_E_USAGE), so a link swapped in cannot redirect the write. */
ns_err ns_out_open(ns_out *o, const char *path) NS_MUST_CHECK;
ns_err ns_out_write(ns_out *o, const void *p, size_t n) NS_MUST_CHECK;
/* fsync + rename (file) or flush (stdout). */
ns_err ns_out_commit(ns_out *o) NS_MUST_CHECK;
/* Unlinks the temp file. Safe after commit (does nothing). */
void ns_out_abort(ns_out *o);

#endif
