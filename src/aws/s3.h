/*
 * s3: GetObject, streamed to an atomic output with constant memory.
 *
 * Addressing: virtual-hosted style (https://BUCKET.s3.REGION.amazonaws.com/KEY) on AWS,
 * path style (ENDPOINT/BUCKET/KEY) on a custom endpoint or for bucket names that are not DNS
 * labels. The key is URI-encoded once ('/' kept) and signed as sent (S3 canonical URI).
 * Integrity: Content-Length must match the bytes received; when the response carries an
 * x-amz-checksum-{sha256,sha1,crc32,crc32c} (requested with x-amz-checksum-mode: ENABLED), the
 * object is verified before the output is committed. The ETag is not checked as an MD5 (the
 * mbedtls configuration carries no MD5, and multipart ETags are not digests of the object).
 * Resume: a connection lost mid-body is retried with "Range: bytes=N-" and "If-Match: ETAG",
 * so the parts come from the same object version (a changed object -> 412 -> start over).
 * Region: a 301/400 with x-amz-bucket-region (or a PermanentRedirect naming the region) is
 * followed once, re-signing for the bucket's region.
 */
#ifndef NS_S3_H
#define NS_S3_H

#include <stdint.h>

#include "aws.h"
#include "err.h"

#define NS_S3_BUCKET_MAX 63
#define NS_S3_KEY_MAX 1024
#define NS_S3_CHUNK (64 * 1024) /* the one body buffer */
#define NS_S3_ERRBODY_MAX (16 * 1024)

typedef struct {
    char bucket[NS_S3_BUCKET_MAX + 1];
    char key[NS_S3_KEY_MAX + 1];
} ns_s3_uri;

/* "s3://BUCKET/KEY" (KEY non-empty, UTF-8, no NUL). */
ns_err ns_s3_uri_parse(ns_s3_uri *u, const char *s) NS_MUST_CHECK;

typedef struct {
    const ns_creds *creds;
    const char *region;     /* initial region */
    const ns_url *endpoint; /* NULL: AWS (virtual-hosted, regional); else custom (path style) */
    const ns_addr *via;     /* NULL: direct */
    const ns_tls_ca *ca;
    int timeout_ms;
    ns_retry retry;
    int progress_fd; /* >= 0: a progress line on this fd (a TTY); -1: none */
    int total_ms;    /* each request's whole-exchange deadline (a resume is a new one); 0 none */
    int min_bps;     /* the body's speed floor over each timeout_ms window; 0 none */
} ns_s3_opts;

typedef struct {
    uint64_t bytes;                 /* object size written */
    int resumed;                    /* number of Range resumes */
    char checksum[32];              /* algorithm verified ("sha256", "sha1", "crc32", "crc32c", "" = none) */
    char region[NS_AWS_REGION_MAX]; /* region finally used */
} ns_s3_result;

/*
 * HeadObject: whether u is readable with these credentials (S3 answers HEAD only with
 * s3:GetObject). The errors are ns_s3_get's (S3 sends no body
 * with a HEAD error, so the status alone names the cause); a region redirect is not followed.
 */
ns_err ns_s3_head(const ns_s3_opts *o, const ns_s3_uri *u) NS_MUST_CHECK;

/* Downloads u into outpath ("-" = stdout, streamed; a file: atomic, 0600). */
ns_err ns_s3_get(const ns_s3_opts *o, const ns_s3_uri *u, const char *outpath,
                 ns_s3_result *res) NS_MUST_CHECK;

#endif
