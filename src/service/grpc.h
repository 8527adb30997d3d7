/*
 * grpc: the parts of the gRPC-over-HTTP/2 protocol that are pure functions: status codes, the
 * 5-byte length-prefixed message framing, the grpc-timeout header and grpc-message's
 * percent-encoding (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
 *
 * No I/O, no allocation: h2server.c feeds it bytes; unit-tested and fuzzed directly.
 */
#ifndef NS_GRPC_H
#define NS_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NS_GRPC_PREFIX_LEN 5
#define NS_GRPC_MAX_MSG_DEFAULT (4u * 1024 * 1024) /* grpc's default max receive size */
#define NS_GRPC_MSG_MAX 256                        /* a grpc-message we send, before encoding */
#define NS_GRPC_TIMEOUT_MAX_MS (100LL * 24 * 3600 * 1000) /* longer deadlines are clamped */

typedef enum {
    NS_GRPC_OK = 0,
    NS_GRPC_CANCELLED = 1,
    NS_GRPC_UNKNOWN = 2,
    NS_GRPC_INVALID_ARGUMENT = 3,
    NS_GRPC_DEADLINE_EXCEEDED = 4,
    NS_GRPC_NOT_FOUND = 5,
    NS_GRPC_ALREADY_EXISTS = 6,
    NS_GRPC_PERMISSION_DENIED = 7,
    NS_GRPC_RESOURCE_EXHAUSTED = 8,
    NS_GRPC_FAILED_PRECONDITION = 9,
    NS_GRPC_ABORTED = 10,
    NS_GRPC_OUT_OF_RANGE = 11,
    NS_GRPC_UNIMPLEMENTED = 12,
    NS_GRPC_INTERNAL = 13,
    NS_GRPC_UNAVAILABLE = 14,
    NS_GRPC_DATA_LOSS = 15,
    NS_GRPC_UNAUTHENTICATED = 16,
} ns_grpc_status;

/* "OK", "INVALID_ARGUMENT", ...; "UNKNOWN" for codes outside 0..16. */
const char *ns_grpc_status_name(int status);
/* The gRPC status a library error maps to (NS_E_NOT_FOUND -> NOT_FOUND, ...). */
ns_grpc_status ns_grpc_status_from_err(ns_err e);

/*
 * Reads the next length-prefixed message from c. On success *msg and *len point into c's bytes.
 * NS_E_TRUNCATED: not all of it has arrived yet (c is left unchanged).
 * NS_E_TOO_BIG: the declared length exceeds max_msg (known from the prefix alone).
 * NS_E_UNSUPPORTED: the compressed flag is set (we announce no grpc-accept-encoding).
 * NS_E_PARSE: a flag byte other than 0 or 1.
 */
ns_err ns_grpc_frame_next(ns_cur *c, size_t max_msg, const uint8_t **msg,
                          size_t *len) NS_MUST_CHECK;
/* Writes the 5-byte prefix of an uncompressed message of len bytes. */
void ns_grpc_frame_prefix(uint8_t out[NS_GRPC_PREFIX_LEN], uint32_t len);

/*
 * Parses a grpc-timeout value (1-8 ASCII digits and a unit H M S m u n) into milliseconds,
 * rounded up (a 1ns deadline is 1 ms, never 0 = no deadline), clamped to NS_GRPC_TIMEOUT_MAX_MS.
 */
ns_err ns_grpc_parse_timeout(const char *v, size_t n, int64_t *ms) NS_MUST_CHECK;

/*
 * Percent-encodes msg for the grpc-message trailer (bytes outside 0x20-0x7E and '%' become
 * %XX). Truncates to fit outcap (always NUL-terminated, never splitting an escape); returns the
 * length written.
 */
size_t ns_grpc_percent_encode(char *out, size_t outcap, const char *msg);

#endif
