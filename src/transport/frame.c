/*
 * frame: see frame.h for the wire format. Sockets are switched to non-blocking and every wait
 * is a poll bounded by the caller's deadline (and NS_FRAME_STALL_MS once connected), so a
 * silent peer can never hang a sender or a receiver. Sends use MSG_NOSIGNAL: a peer that goes
 * away is an error, not a SIGPIPE.
 */
#include "frame.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "iox.h"
#include "secret.h"

/* Payload bytes read per step; wiped after use (it may hold secrets). */
#define FRAME_CHUNK 16384
/* After a negative status, discard at most this much of the sender's data... */
#define FRAME_DRAIN_MAX (256u << 20)
/* ...for at most this long, so the sender reads the status instead of a reset. */
#define FRAME_DRAIN_MS 1000

void ns_frame_header_encode(uint8_t out[NS_FRAME_HEADER_LEN], uint64_t len,
                            const uint8_t digest[NS_FRAME_DIGEST_LEN])
{
    memcpy(out, NS_FRAME_MAGIC, 4);
    out[4] = NS_FRAME_VERSION;
    out[5] = out[6] = out[7] = 0;
    ns_put_be64(out + 8, len);
    memcpy(out + 16, digest, NS_FRAME_DIGEST_LEN);
}

ns_err ns_frame_header_parse(ns_frame_header *h, const uint8_t *p, size_t n, uint64_t max_size)
{
    ns_cur c;
    const uint8_t *magic;
    uint8_t version, r0, r1, r2;
    ns_cur_init(&c, p, n);
    ENSURE(n >= NS_FRAME_HEADER_LEN, NS_E_TRUNCATED, "frame header truncated: %zu of %d bytes", n,
           NS_FRAME_HEADER_LEN);
    GUARD(ns_cur_slice(&c, &magic, 4));
    ENSURE(memcmp(magic, NS_FRAME_MAGIC, 4) == 0, NS_E_PROTO,
           "not an nsign frame (bad magic): is the sender vsock-push?");
    GUARD(ns_cur_u8(&c, &version));
    ENSURE(version == NS_FRAME_VERSION, NS_E_PROTO, "unsupported frame version %u (want %u)",
           version, NS_FRAME_VERSION);
    GUARD(ns_cur_u8(&c, &r0));
    GUARD(ns_cur_u8(&c, &r1));
    GUARD(ns_cur_u8(&c, &r2));
    ENSURE((r0 | r1 | r2) == 0, NS_E_PROTO, "frame header reserved bytes are not zero");
    GUARD(ns_cur_be64(&c, &h->len));
    ENSURE(h->len <= max_size && h->len <= NS_FRAME_MAX_PAYLOAD, NS_E_TOO_BIG,
           "frame payload of %llu bytes exceeds the limit of %llu: raise --max-size if expected",
           (unsigned long long)h->len, (unsigned long long)max_size);
    GUARD(ns_cur_copy(&c, h->digest, NS_FRAME_DIGEST_LEN));
    return NS_OK;
}

uint8_t ns_frame_status_for(ns_err e)
{
    switch (e) {
    case NS_OK:
        return NS_FRAME_ST_OK;
    case NS_E_PROTO:
        return NS_FRAME_ST_BAD_HEADER;
    case NS_E_TOO_BIG:
        return NS_FRAME_ST_TOO_BIG;
    case NS_E_TRUNCATED:
    case NS_E_TIMEOUT:
    case NS_E_CLOSED:
        return NS_FRAME_ST_TRUNCATED;
    case NS_E_AUTH:
        return NS_FRAME_ST_BAD_DIGEST;
    default:
        return NS_FRAME_ST_STORE_FAILED;
    }
}

const char *ns_frame_status_str(uint8_t st)
{
    switch (st) {
    case NS_FRAME_ST_OK:
        return "ok";
    case NS_FRAME_ST_BAD_HEADER:
        return "malformed frame header";
    case NS_FRAME_ST_TOO_BIG:
        return "payload larger than the receiver's --max-size";
    case NS_FRAME_ST_TRUNCATED:
        return "payload truncated";
    case NS_FRAME_ST_BAD_DIGEST:
        return "SHA-256 mismatch";
    case NS_FRAME_ST_STORE_FAILED:
        return "receiver could not store the payload";
    case NS_FRAME_ST_LOCKED:
        return "refused: the receiver takes no more frames (the enclave's inputs are measured "
               "and locked)";
    default:
        return "unknown status";
    }
}

ns_err ns_frame_digest(uint8_t out[NS_FRAME_DIGEST_LEN], const uint8_t *p, size_t n)
{
    ENSURE(mbedtls_sha256(p, n, out, 0) == 0, NS_E_CRYPTO, "SHA-256 failed");
    return NS_OK;
}

/* Waits for events on fd until deadline (< 0: none) or stall_ms (< 0: none), whichever first. */
static ns_err wait_fd(int fd, short events, int64_t deadline, int stall_ms, const char *what)
{
    for (;;) {
        int t = ns_ms_left(deadline);
        if (stall_ms >= 0 && (t < 0 || t > stall_ms)) {
            t = stall_ms;
        }
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, t);
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        ENSURE(rc >= 0, NS_E_IO, "poll failed while %s", what);
        ENSURE(rc > 0, NS_E_TIMEOUT, "timed out while %s", what);
        return NS_OK;
    }
}

static ns_err send_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            GUARD(wait_fd(fd, POLLOUT, deadline, NS_FRAME_STALL_MS, "sending the frame"));
            continue;
        }
        return ns_fail_errno(NS_E_CLOSED, "sending the frame");
    }
    return NS_OK;
}

/* Reads up to n bytes (at least 1, or 0 at EOF). */
static ns_err recv_some(int fd, uint8_t *p, size_t n, int64_t deadline, size_t *got,
                        const char *what)
{
    for (;;) {
        ssize_t r = recv(fd, p, n, 0);
        if (r >= 0) {
            *got = (size_t)r;
            return NS_OK;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            GUARD(wait_fd(fd, POLLIN, deadline, NS_FRAME_STALL_MS, what));
            continue;
        }
        return ns_fail_errno(NS_E_CLOSED, "%s", what);
    }
}

static ns_err recv_full(int fd, uint8_t *p, size_t n, int64_t deadline, const char *what)
{
    size_t off = 0;
    while (off < n) {
        size_t got;
        GUARD(recv_some(fd, p + off, n - off, deadline, &got, what));
        ENSURE(got > 0, NS_E_TRUNCATED, "connection closed after %zu of %zu bytes while %s", off, n,
               what);
        off += got;
    }
    return NS_OK;
}

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : ns_now_ms() + timeout_ms;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * One attempt on a connected fd. *retry is set when the frame may be sent again: the
 * connection ended before any status byte arrived.
 */
static ns_err send_once(int fd, const uint8_t hdr[NS_FRAME_HEADER_LEN], const uint8_t *p, size_t n,
                        int64_t deadline, int *retry)
{
    *retry = 0;
    ns_set_nonblock(fd, 1);
    ns_err e = send_all(fd, hdr, NS_FRAME_HEADER_LEN, deadline);
    if (e == NS_OK) {
        e = send_all(fd, p, n, deadline);
    }
    if (e == NS_OK) {
        (void)shutdown(fd, SHUT_WR);
    } else if (e == NS_E_TIMEOUT) {
        return e;
    }
    /* even after a failed send, a rejecting receiver may have answered: read its status */
    uint8_t st;
    size_t got = 0;
    ns_err r = recv_some(fd, &st, 1, deadline, &got, "waiting for the receiver's acknowledgement");
    if (r == NS_E_TIMEOUT) {
        return r;
    }
    if (r != NS_OK || got == 0) {
        *retry = 1;
        return ns_fail(NS_E_CLOSED, "connection closed before the receiver acknowledged the frame");
    }
    ENSURE(st == NS_FRAME_ST_OK, NS_E_REMOTE, "receiver rejected the frame: %s (status %u)",
           ns_frame_status_str(st), st);
    return e;
}

ns_err ns_frame_send(const ns_addr *to, const uint8_t *p, size_t n, int timeout_ms,
                     int retry_interval_ms)
{
    char name[NS_ADDR_STR_MAX];
    char last[512] = "no attempt";
    uint8_t digest[NS_FRAME_DIGEST_LEN];
    uint8_t hdr[NS_FRAME_HEADER_LEN];
    int64_t deadline = deadline_of(timeout_ms);
    ns_addr_format(to, name, sizeof name);
    ENSURE(n <= NS_FRAME_MAX_PAYLOAD, NS_E_TOO_BIG, "payload too large for a frame");
    GUARD(ns_frame_digest(digest, p, n));
    ns_frame_header_encode(hdr, n, digest);
    if (retry_interval_ms < 1) {
        retry_interval_ms = 1;
    }
    for (unsigned attempt = 1;; attempt++) {
        int fd = -1;
        int left = ns_ms_left(deadline);
        ns_err e = ns_addr_connect(to, left, &fd);
        if (e == NS_OK) {
            int retry = 0;
            e = send_once(fd, hdr, p, n, deadline, &retry);
            close(fd);
            if (e == NS_OK) {
                return NS_OK;
            }
            if (!retry && e != NS_E_TIMEOUT) {
                return ns_fail_ctx(e, "sending to %s", name);
            }
        }
        snprintf(last, sizeof last, "%s", ns_err_msg());
        left = ns_ms_left(deadline);
        if (left == 0) {
            return ns_fail(NS_E_TIMEOUT,
                           "no receiver acknowledged on %s within %d ms after %u attempts (last: "
                           "%s): is vsock-recv listening there?",
                           name, timeout_ms, attempt, last);
        }
        sleep_ms(left >= 0 && left < retry_interval_ms ? left : retry_interval_ms);
    }
}

ns_err ns_frame_accept(int listen_fd, int timeout_ms, int *conn_fd)
{
    int64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            *conn_fd = fd;
            return NS_OK;
        }
        if (errno == EINTR || errno == ECONNABORTED) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return ns_fail_errno(NS_E_IO, "accept failed");
        }
        /*
         * A unix listener that was shut down (how a caller cancels a pending receive) polls
         * readable with POLLHUP forever while accept keeps answering EAGAIN (a tcp one answers
         * EINVAL, handled above): stop instead of spinning.
         */
        struct pollfd hup = {.fd = listen_fd, .events = POLLIN};
        if (poll(&hup, 1, 0) == 1 && (hup.revents & (POLLHUP | POLLERR | POLLNVAL))) {
            return ns_fail(NS_E_CLOSED, "the listening socket was shut down while waiting for a "
                                        "sender");
        }
        ns_err e = wait_fd(listen_fd, POLLIN, deadline, -1, "waiting for a sender");
        if (e != NS_OK) {
            return ns_fail(e, "no sender connected within %d ms", timeout_ms);
        }
    }
}

ns_err ns_frame_read(int fd, uint64_t max_size, int timeout_ms, ns_frame_sink sink, void *ctx,
                     uint64_t *len)
{
    return ns_frame_read_within(fd, max_size, timeout_ms, NS_FRAME_TRANSFER_MS_DEFAULT, sink, ctx,
                                len);
}

ns_err ns_frame_read_within(int fd, uint64_t max_size, int timeout_ms, int transfer_ms,
                            ns_frame_sink sink, void *ctx, uint64_t *len)
{
    int64_t deadline = deadline_of(timeout_ms);
    /* A sender dripping a byte just inside the stall timer must still finish in time. */
    int64_t transfer_end = ns_now_ms() + transfer_ms;
    if (transfer_ms > 0 && (deadline < 0 || transfer_end < deadline)) {
        deadline = transfer_end;
    }
    uint8_t hdr[NS_FRAME_HEADER_LEN];
    uint8_t chunk[FRAME_CHUNK];
    uint8_t digest[NS_FRAME_DIGEST_LEN];
    ns_frame_header h;
    mbedtls_sha256_context sha;
    ns_err e;

    ns_set_nonblock(fd, 1);
    GUARD(recv_full(fd, hdr, sizeof hdr, deadline, "reading the frame header"));
    GUARD(ns_frame_header_parse(&h, hdr, sizeof hdr, max_size));
    mbedtls_sha256_init(&sha);
    e = mbedtls_sha256_starts(&sha, 0) == 0 ? NS_OK : ns_fail(NS_E_CRYPTO, "SHA-256 failed");
    uint64_t left = h.len;
    while (e == NS_OK && left > 0) {
        size_t want = left < sizeof chunk ? (size_t)left : sizeof chunk;
        size_t got = 0;
        e = recv_some(fd, chunk, want, deadline, &got, "reading the frame payload");
        if (e != NS_OK) {
            break;
        }
        if (got == 0) {
            e = ns_fail(NS_E_TRUNCATED, "frame payload truncated: %llu of %llu bytes",
                        (unsigned long long)(h.len - left), (unsigned long long)h.len);
            break;
        }
        if (mbedtls_sha256_update(&sha, chunk, got) != 0) {
            e = ns_fail(NS_E_CRYPTO, "SHA-256 failed");
            break;
        }
        e = sink(ctx, chunk, got);
        left -= got;
    }
    if (e == NS_OK && mbedtls_sha256_finish(&sha, digest) != 0) {
        e = ns_fail(NS_E_CRYPTO, "SHA-256 failed");
    }
    if (e == NS_OK && !ns_ct_equal(digest, h.digest, sizeof digest)) {
        e = ns_fail(NS_E_AUTH, "frame payload does not match its SHA-256: corrupted in transit");
    }
    if (e == NS_OK) {
        /* Exactly one frame per connection: the sender half-closes right after the payload. */
        size_t got = 0;
        e = recv_some(fd, chunk, 1, deadline, &got, "waiting for the sender to end the frame");
        if (e == NS_OK && got != 0) {
            e = ns_fail(NS_E_PROTO, "trailing data after the frame payload: a sender must close "
                                    "its side after one frame");
        }
    }
    mbedtls_sha256_free(&sha);
    ns_wipe(chunk, sizeof chunk);
    if (e == NS_OK) {
        *len = h.len;
    }
    return e;
}

ns_err ns_frame_reply(int fd, uint8_t status)
{
    int64_t deadline = ns_now_ms() + NS_FRAME_STALL_MS;
    ns_set_nonblock(fd, 1);
    GUARD(send_all(fd, &status, 1, deadline));
    if (status != NS_FRAME_ST_OK) {
        /* let the status reach the sender before close() turns unread data into a reset */
        (void)shutdown(fd, SHUT_WR);
        uint8_t junk[4096];
        size_t drained = 0;
        int64_t until = ns_now_ms() + FRAME_DRAIN_MS;
        while (drained < FRAME_DRAIN_MAX) {
            size_t got = 0;
            if (recv_some(fd, junk, sizeof junk, until, &got, "draining") != NS_OK || got == 0) {
                break;
            }
            drained += got;
        }
    }
    return NS_OK;
}

static ns_err sink_buf(void *ctx, const uint8_t *p, size_t n)
{
    return ns_buf_append((ns_buf *)ctx, p, n);
}

ns_err ns_frame_recv_on(int listen_fd, uint64_t max_size, int timeout_ms, ns_buf *out)
{
    int64_t deadline = deadline_of(timeout_ms);
    int fd = -1;
    uint64_t len = 0;
    ns_buf_reset(out);
    if (max_size > out->max) {
        max_size = out->max;
    }
    GUARD(ns_frame_accept(listen_fd, timeout_ms, &fd));
    int left = ns_ms_left(deadline);
    ns_err e = ns_frame_read(fd, max_size, left, sink_buf, out, &len);
    if (e != NS_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", ns_err_msg());
        ns_buf_reset(out);
        if (ns_frame_reply(fd, ns_frame_status_for(e)) != NS_OK) {
            /* the sender went away: it fails on its own */
        }
        close(fd);
        return ns_fail(e, "%s", msg);
    }
    e = ns_frame_reply(fd, NS_FRAME_ST_OK);
    close(fd);
    if (e != NS_OK) {
        ns_buf_reset(out);
        return ns_fail_ctx(e, "acknowledging the frame");
    }
    return NS_OK;
}

ns_err ns_frame_recv(const ns_addr *listen, uint64_t max_size, int timeout_ms, ns_buf *out)
{
    int lfd = -1;
    GUARD(ns_addr_listen(listen, 4, NS_LISTEN_NONBLOCK, &lfd));
    ns_err e = ns_frame_recv_on(lfd, max_size, timeout_ms, out);
    ns_addr_unlisten(listen, lfd);
    return e;
}
