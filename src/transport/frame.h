/*
 * frame: one verified payload over a stream socket (vsock-push / vsock-recv; README "Frame
 * protocol").
 *
 *   offset  size  field
 *        0     4  magic "NSFR"
 *        4     1  version (1)
 *        5     3  reserved, zero
 *        8     8  payload length, big-endian
 *       16    32  SHA-256 of the payload
 *       48     n  payload
 *   then the sender half-closes (end of stream: trailing bytes are refused) and the receiver
 *   answers one status byte (NS_FRAME_ST_*); 0 means verified and stored.
 *
 * Exactly one encoding is valid: any other magic, version or a non-zero reserved byte is
 * rejected. The receiver hands out nothing before the digest matches, and acknowledges only
 * after the caller stored the payload. The sender half-closes after the payload and succeeds
 * only on a positive acknowledgement; when a connection ends before any status byte (e.g. a
 * bridge whose target is not up yet) it sends the frame again until its deadline.
 * Works on any stream socket of the addr module (vsock, tcp, unix); nothing assumes tcp.
 */
#ifndef NS_FRAME_H
#define NS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "buf.h"
#include "err.h"

#define NS_FRAME_MAGIC "NSFR"
#define NS_FRAME_VERSION 1
#define NS_FRAME_DIGEST_LEN 32
#define NS_FRAME_HEADER_LEN 48
/* Largest length the header may state at all; callers choose a smaller max_size. */
#define NS_FRAME_MAX_PAYLOAD (1ull << 40)
/* A connected peer that sends nothing for this long fails the transfer. */
#define NS_FRAME_STALL_MS 30000
/* A whole frame (header, payload, end of stream) must arrive within this once accepted. */
#define NS_FRAME_TRANSFER_MS_DEFAULT 300000

/* Status byte values. */
#define NS_FRAME_ST_OK 0x00
#define NS_FRAME_ST_BAD_HEADER 0x01
#define NS_FRAME_ST_TOO_BIG 0x02
#define NS_FRAME_ST_TRUNCATED 0x03
#define NS_FRAME_ST_BAD_DIGEST 0x04
#define NS_FRAME_ST_STORE_FAILED 0x05
#define NS_FRAME_ST_LOCKED 0x06 /* the receiver takes no more frames (enclave: inputs locked) */

typedef struct {
    uint64_t len;
    uint8_t digest[NS_FRAME_DIGEST_LEN];
} ns_frame_header;

/* Pure encoding and parsing (no I/O). */
void ns_frame_header_encode(uint8_t out[NS_FRAME_HEADER_LEN], uint64_t len,
                            const uint8_t digest[NS_FRAME_DIGEST_LEN]);
/*
 * Parses exactly NS_FRAME_HEADER_LEN bytes from p (n must be at least that; extra bytes are
 * the caller's). NS_E_TRUNCATED if short, NS_E_PROTO for bad magic/version/reserved,
 * NS_E_TOO_BIG when the length exceeds max_size.
 */
ns_err ns_frame_header_parse(ns_frame_header *h, const uint8_t *p, size_t n,
                             uint64_t max_size) NS_MUST_CHECK;
/* The status byte the receiver answers for a receive/store error code. */
uint8_t ns_frame_status_for(ns_err e);
/* Human text of a status byte. */
const char *ns_frame_status_str(uint8_t st);
/* SHA-256 of p. */
ns_err ns_frame_digest(uint8_t out[NS_FRAME_DIGEST_LEN], const uint8_t *p, size_t n) NS_MUST_CHECK;

/*
 * Sends p as one frame to `to`, retrying the connection every retry_interval_ms until
 * timeout_ms (< 0: forever) passes. NS_OK only on a positive acknowledgement; NS_E_REMOTE when
 * the receiver rejected the frame; NS_E_TIMEOUT when no receiver acknowledged in time.
 */
ns_err ns_frame_send(const ns_addr *to, const uint8_t *p, size_t n, int timeout_ms,
                     int retry_interval_ms) NS_MUST_CHECK;

/* Receives the payload in pieces; return non-OK to abort the transfer. */
typedef ns_err (*ns_frame_sink)(void *ctx, const uint8_t *p, size_t n);

/*
 * Accepts one connection on a listening fd (blocking or not) within timeout_ms (< 0: none).
 * The returned fd is blocking-agnostic: the frame functions poll it themselves.
 */
ns_err ns_frame_accept(int listen_fd, int timeout_ms, int *conn_fd) NS_MUST_CHECK;
/*
 * Reads one frame from a connected fd: header, then the payload into sink, then verifies the
 * digest and that the sender ended its side right after the payload (trailing bytes:
 * NS_E_PROTO). The sink sees unverified data: it must not release it before this returns NS_OK.
 * Does not answer: call ns_frame_reply once the payload is stored (or on error). The whole frame
 * must arrive within NS_FRAME_TRANSFER_MS_DEFAULT (and timeout_ms when >= 0), however the sender
 * paces it; each wait is also bounded by NS_FRAME_STALL_MS.
 */
ns_err ns_frame_read(int fd, uint64_t max_size, int timeout_ms, ns_frame_sink sink, void *ctx,
                     uint64_t *len) NS_MUST_CHECK;
/* The same with the total transfer deadline given (ms; <= 0: none besides timeout_ms). */
ns_err ns_frame_read_within(int fd, uint64_t max_size, int timeout_ms, int transfer_ms,
                            ns_frame_sink sink, void *ctx, uint64_t *len) NS_MUST_CHECK;
/* Sends the status byte; on a negative one also drains the sender briefly so it reads it. */
ns_err ns_frame_reply(int fd, uint8_t status) NS_MUST_CHECK;

/*
 * Accepts one sender on an already-listening fd, verifies its frame, acknowledges it and
 * leaves the payload in out (the caller picks a secret buffer for secrets). A bad frame gets a
 * negative acknowledgement, an error, and out is left empty.
 */
ns_err ns_frame_recv_on(int listen_fd, uint64_t max_size, int timeout_ms,
                        ns_buf *out) NS_MUST_CHECK;
/* Listens on `listen`, then ns_frame_recv_on, then closes the listener. */
ns_err ns_frame_recv(const ns_addr *listen, uint64_t max_size, int timeout_ms,
                     ns_buf *out) NS_MUST_CHECK;

#endif
