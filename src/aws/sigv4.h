/*
 * sigv4: AWS Signature Version 4 as a pure function (no I/O, no clock, no allocation beyond the
 * caller's bounded buffers).
 *
 * Spec: AWS General Reference, "Signature Version 4 signing process"; conformance: both suites in
 * ../shared/vectors/sigv4 and botocore's SigV4Auth/S3SigV4Auth (test/it/test_sigv4_botocore.py).
 *
 *   canonical request = METHOD \n canonical-uri \n canonical-query \n canonical-headers \n
 *                       \n signed-headers \n payload-hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n amz-date \n scope \n hex(sha256(creq))
 *   signing key       = HMAC chain "AWS4"+secret -> date -> region -> service -> "aws4_request"
 *
 * Canonical URI: non-S3 services (default) remove dot segments and repeated slashes
 * (unless NS_SIGV4_NO_NORMALIZE) and then URI-encode the path as given (so a path already
 * percent-encoded on the wire is encoded a second time, as AWS specifies); with NS_SIGV4_S3 the
 * path is used exactly as sent. Canonical query: split on '&' and the first '=' (an empty pair
 * counts as "="), each key and value percent-decoded and re-encoded (RFC 3986 unreserved kept,
 * uppercase hex), sorted by key then value. Canonical headers: names lowercased, values trimmed
 * with inner whitespace runs collapsed to one space, repeated names joined with ',' in the order
 * given, sorted by name. Every header passed in is signed: the caller chooses (host and x-amz-date
 * at least; the session token header unless the service wants it added after signing). The secret
 * key and the derived signing key live only on the stack of ns_sigv4_sign* and are wiped before
 * return.
 */
#ifndef NS_SIGV4_H
#define NS_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "err.h"

#define NS_SIGV4_MAX_HEADERS 64
#define NS_SIGV4_CREQ_MAX (64 * 1024) /* canonical request and its parts */
#define NS_SIGV4_AUTHZ_MAX 2048       /* Authorization header value */
#define NS_SIGV4_AMZ_DATE_LEN 16      /* "20150830T123600Z" */
#define NS_SIGV4_HASH_HEX_LEN 64
#define NS_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* hex(sha256("")): the payload hash of every GET. */
#define NS_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define NS_SIGV4_S3 1u           /* canonical URI = path exactly as sent */
#define NS_SIGV4_NO_NORMALIZE 2u /* non-S3 without dot-segment/slash normalisation */

typedef struct {
    const char *name;  /* any case; NUL-terminated */
    const char *value; /* NUL-terminated; trimmed and collapsed when canonicalised */
} ns_sigv4_hdr;

typedef struct {
    const char *access_key_id;
    const char *secret_access_key; /* secret: read, never copied outside the stack (wiped) */
    const char *region;            /* "us-east-1" */
    const char *service;           /* "s3", "kms" */
    const char *amz_date;          /* "YYYYMMDDTHHMMSSZ"; its first 8 chars are the scope date */
    unsigned flags;                /* NS_SIGV4_* */
} ns_sigv4_params;

typedef struct {
    const char *method; /* "GET" */
    const char *path;   /* request-target path as sent, e.g. "/bucket/a%20b" */
    const char *query;  /* after '?', as sent; NULL or "" for none */
    const ns_sigv4_hdr *headers;
    size_t n_headers;         /* <= NS_SIGV4_MAX_HEADERS; all are signed */
    const char *payload_hash; /* lowercase hex sha256 of the body, or UNSIGNED-PAYLOAD */
} ns_sigv4_req;

/* Canonical request into creq (appended); signed_headers (optional) gets "host;x-amz-date". */
ns_err ns_sigv4_canonical_request(const ns_sigv4_params *p, const ns_sigv4_req *r, ns_buf *creq,
                                  ns_buf *signed_headers) NS_MUST_CHECK;
/* String to sign for a canonical request (appended to sts). */
ns_err ns_sigv4_string_to_sign(const ns_sigv4_params *p, const uint8_t *creq, size_t creq_len,
                               ns_buf *sts) NS_MUST_CHECK;
/* key = the derived signing key for date8 ("YYYYMMDD"). Wipe it after use. */
ns_err ns_sigv4_signing_key(uint8_t key[32], const char *secret_access_key, const char *date8,
                            const char *region, const char *service) NS_MUST_CHECK;
/* sig_hex (65 bytes) = hex(HMAC-SHA256(signing key, string to sign)). */
ns_err ns_sigv4_signature(char sig_hex[65], const ns_sigv4_params *p, const uint8_t *sts,
                          size_t sts_len) NS_MUST_CHECK;
/*
 * The whole chain: writes the Authorization header value
 * "AWS4-HMAC-SHA256 Credential=AKID/scope, SignedHeaders=..., Signature=..." into authz.
 */
ns_err ns_sigv4_sign(const ns_sigv4_params *p, const ns_sigv4_req *r, char *authz,
                     size_t authz_cap) NS_MUST_CHECK;

/* hex(sha256(data)) into out (65 bytes). */
void ns_sigv4_sha256_hex(char out[65], const void *data, size_t n);
/* "YYYYMMDDTHHMMSSZ" for a UNIX time (UTC) into out (17 bytes). */
ns_err ns_sigv4_amz_date(char out[17], time_t t) NS_MUST_CHECK;
/*
 * Appends s URI-encoded the AWS way: A-Z a-z 0-9 - . _ ~ kept, every other byte as %XX
 * (uppercase); '/' kept when keep_slash. Used for S3 keys and query values.
 */
ns_err ns_sigv4_uri_encode(ns_buf *out, const char *s, size_t n, int keep_slash) NS_MUST_CHECK;

#endif
