/*
 * Unit tests for frame: header encoding and strict parsing (every field's negative case),
 * status mapping, and ns_frame_read/ns_frame_send/ns_frame_recv over unix sockets: a good
 * frame, a corrupted, truncated and oversized one, and a sender started before the receiver.
 */
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "codec.h"
#include "frame.h"
#include "iox.h"
#include "t.h"

static ns_err sink_buf(void *ctx, const uint8_t *p, size_t n)
{
    return ns_buf_append((ns_buf *)ctx, p, n);
}

/* Writes hdr+payload (optionally only the first `cut` bytes) into one end of a socketpair and
 * runs ns_frame_read on the other. */
static ns_err read_frame(const uint8_t *frame, size_t n, uint64_t max, ns_buf *out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        return NS_E_IO;
    }
    if (ns_write_all(sv[0], frame, n) != NS_OK) {
        return NS_E_IO;
    }
    shutdown(sv[0], SHUT_WR);
    uint64_t len = 0;
    ns_err e = ns_frame_read(sv[1], max, 2000, sink_buf, out, &len);
    close(sv[0]);
    close(sv[1]);
    return e;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    uint8_t d[NS_FRAME_DIGEST_LEN];
    char hex[NS_FRAME_DIGEST_LEN * 2 + 1];
    CHECK_ERR(ns_frame_digest(d, (const uint8_t *)"abc", 3), NS_OK, "digest of abc");
    CHECK_ERR(ns_hex_encode(hex, sizeof hex, d, sizeof d), NS_OK, "hex");
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
          "SHA-256 of abc is the FIPS 180-2 value");

    uint8_t h[NS_FRAME_HEADER_LEN];
    ns_frame_header_encode(h, 3, d);
    CHECK(memcmp(h, "NSFR\x01\x00\x00\x00", 8) == 0, "magic, version, reserved");
    CHECK(memcmp(h + 8, "\0\0\0\0\0\0\0\x03", 8) == 0, "big-endian length");
    ns_frame_header fh;
    CHECK_ERR(ns_frame_header_parse(&fh, h, sizeof h, 3), NS_OK, "parse what we encode");
    CHECK(fh.len == 3 && memcmp(fh.digest, d, sizeof d) == 0, "fields round-trip");
    CHECK_ERR(ns_frame_header_parse(&fh, h, sizeof h, 2), NS_E_TOO_BIG, "length over max_size");
    CHECK_ERR(ns_frame_header_parse(&fh, h, sizeof h - 1, 3), NS_E_TRUNCATED, "47 bytes");
    CHECK_ERR(ns_frame_header_parse(&fh, h, 0, 3), NS_E_TRUNCATED, "empty");
    uint8_t bad[NS_FRAME_HEADER_LEN];
    memcpy(bad, h, sizeof h);
    bad[0] = 'X';
    CHECK_ERR(ns_frame_header_parse(&fh, bad, sizeof bad, 3), NS_E_PROTO, "bad magic");
    memcpy(bad, h, sizeof h);
    bad[4] = 2;
    CHECK_ERR(ns_frame_header_parse(&fh, bad, sizeof bad, 3), NS_E_PROTO, "version 2");
    for (int i = 5; i < 8; i++) {
        memcpy(bad, h, sizeof h);
        bad[i] = 1;
        CHECK_ERR(ns_frame_header_parse(&fh, bad, sizeof bad, 3), NS_E_PROTO,
                  "non-zero reserved byte %d", i);
    }
    memcpy(bad, h, sizeof h);
    memset(bad + 8, 0xff, 8);
    CHECK_ERR(ns_frame_header_parse(&fh, bad, sizeof bad, UINT64_MAX), NS_E_TOO_BIG,
              "length 2^64-1 is over the absolute limit");

    CHECK(ns_frame_status_for(NS_OK) == NS_FRAME_ST_OK, "status ok");
    CHECK(ns_frame_status_for(NS_E_AUTH) == NS_FRAME_ST_BAD_DIGEST, "status digest");
    CHECK(ns_frame_status_for(NS_E_TOO_BIG) == NS_FRAME_ST_TOO_BIG, "status too big");
    CHECK(ns_frame_status_for(NS_E_TRUNCATED) == NS_FRAME_ST_TRUNCATED, "status truncated");
    CHECK(ns_frame_status_for(NS_E_IO) == NS_FRAME_ST_STORE_FAILED, "status store");
    CHECK(strcmp(ns_frame_status_str(0x77), "unknown status") == 0, "unknown status text");
    CHECK(strstr(ns_frame_status_str(NS_FRAME_ST_LOCKED), "no more frames") != NULL,
          "status 06: the receiver takes no more frames");

    /* ns_frame_read over a socketpair */
    uint8_t frame[NS_FRAME_HEADER_LEN + 3];
    memcpy(frame, h, sizeof h);
    memcpy(frame + NS_FRAME_HEADER_LEN, "abc", 3);
    ns_buf out;
    ns_buf_init(&out, 1024);
    CHECK_ERR(read_frame(frame, sizeof frame, 1024, &out), NS_OK, "read a good frame");
    CHECK(out.len == 3 && memcmp(out.data, "abc", 3) == 0, "payload delivered");
    ns_buf_reset(&out);
    frame[NS_FRAME_HEADER_LEN + 1] ^= 1;
    CHECK_ERR(read_frame(frame, sizeof frame, 1024, &out), NS_E_AUTH, "corrupted payload");
    frame[NS_FRAME_HEADER_LEN + 1] ^= 1;
    ns_buf_reset(&out);
    CHECK_ERR(read_frame(frame, sizeof frame - 1, 1024, &out), NS_E_TRUNCATED, "truncated payload");
    ns_buf_reset(&out);
    {
        /* issue 15: one frame per connection, then end of stream */
        uint8_t longer[sizeof frame + 1];
        memcpy(longer, frame, sizeof frame);
        longer[sizeof frame] = 'x';
        CHECK_ERR(read_frame(longer, sizeof longer, 1024, &out), NS_E_PROTO,
                  "a trailing byte after a valid frame refused");
        CHECK(ns_frame_status_for(NS_E_PROTO) == NS_FRAME_ST_BAD_HEADER,
              "trailing data answers status 1");
        ns_buf_reset(&out);
    }
    CHECK_ERR(read_frame(frame, 20, 1024, &out), NS_E_TRUNCATED, "truncated header");
    ns_buf_reset(&out);
    CHECK_ERR(read_frame(frame, sizeof frame, 2, &out), NS_E_TOO_BIG, "oversized frame");
    CHECK(out.len == 0, "nothing delivered for an oversized frame");
    uint8_t empty[NS_FRAME_HEADER_LEN];
    uint8_t d0[NS_FRAME_DIGEST_LEN];
    CHECK_ERR(ns_frame_digest(d0, NULL, 0), NS_OK, "digest of nothing");
    ns_frame_header_encode(empty, 0, d0);
    ns_buf_reset(&out);
    CHECK_ERR(read_frame(empty, sizeof empty, 0, &out), NS_OK, "empty payload with max 0");

    /* send before the receiver listens; then a rejected send */
    char dir[] = "/tmp/ns-test-frame-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    char as[200];
    snprintf(as, sizeof as, "unix:%s/s", dir);
    ns_addr a;
    CHECK_ERR(ns_addr_parse(&a, as), NS_OK, "parse %s", as);
    static uint8_t big[200000];
    for (size_t i = 0; i < sizeof big; i++) {
        big[i] = (uint8_t)(i * 7 + 3);
    }
    pid_t pid = fork();
    if (pid == 0) {
        _exit(ns_frame_send(&a, big, sizeof big, 5000, 20) == NS_OK ? 0 : 1);
    }
    usleep(200000);
    ns_buf_reset(&out);
    ns_buf big_out;
    ns_buf_init_secret(&big_out, sizeof big);
    CHECK_ERR(ns_frame_recv(&a, sizeof big, 5000, &big_out), NS_OK, "receive from early sender");
    CHECK(big_out.len == sizeof big && memcmp(big_out.data, big, sizeof big) == 0,
          "payload intact");
    int st = -1;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sender saw a positive acknowledgement");

    pid = fork();
    if (pid == 0) {
        ns_err e = ns_frame_send(&a, big, sizeof big, 3000, 20);
        _exit(e == NS_E_REMOTE ? 0 : e == NS_OK ? 1 : 2);
    }
    CHECK_ERR(ns_frame_recv(&a, 1000, 5000, &big_out), NS_E_TOO_BIG, "receiver rejects oversize");
    CHECK(big_out.len == 0, "out left empty");
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sender saw the rejection (status %d)",
          WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    CHECK_ERR(ns_frame_send(&a, big, 10, 300, 50), NS_E_TIMEOUT, "no receiver: timeout");
    CHECK(strstr(ns_err_msg(), "is vsock-recv listening") != NULL, "timeout says what to do");
    ns_buf_free(&big_out);
    ns_buf_free(&out);
    rmdir(dir);
    /* a listener shut down by the caller (cancellation) ends the wait instead of spinning */
    {
        char sp[64];
        snprintf(sp, sizeof sp, "unix:/tmp/ns-test-frame-shut-%d.sock", (int)getpid());
        ns_addr la;
        int sfd = -1;
        CHECK_ERR(ns_addr_parse(&la, sp), NS_OK, "parse shutdown-test address");
        CHECK_ERR(ns_addr_listen(&la, 4, NS_LISTEN_NONBLOCK, &sfd), NS_OK, "listen (non-blocking)");
        CHECK(shutdown(sfd, SHUT_RDWR) == 0, "shutdown the listener");
        ns_buf sb;
        ns_buf_init(&sb, 1024);
        CHECK_ERR(ns_frame_recv_on(sfd, 1024, 5000, &sb), NS_E_CLOSED,
                  "receive on a shut-down listener fails as closed, not after the timeout");
        ns_buf_free(&sb);
        close(sfd);
        unlink(sp + 5);
    }
    T_DONE();
}
