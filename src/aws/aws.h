/*
 * aws: the AWS SDK conventions and the signed-request loop shared by fetch-creds, s3-get and
 * kms-decrypt.
 *
 * Environment (as the AWS SDKs read it): AWS_REGION, then AWS_DEFAULT_REGION, default us-east-1
 * (the seed's default); AWS_ENDPOINT_URL_<SERVICE> (S3, KMS), then AWS_ENDPOINT_URL, else
 * https://SERVICE.REGION.amazonaws.com; AWS_CA_BUNDLE (after --ca-bundle) else the embedded
 * Amazon roots; AWS_MAX_ATTEMPTS. Retries: throttling (429, Throttling*, RequestLimitExceeded,
 * SlowDown...), 5xx and connection errors are retried with exponential backoff and full jitter
 * (delay = uniform(0, min(cap, base * 2^attempt))), bounded in attempts and in total time.
 * A request is re-signed on every attempt (fresh X-Amz-Date).
 */
#ifndef NS_AWS_H
#define NS_AWS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "addr.h"
#include "buf.h"
#include "creds.h"
#include "err.h"
#include "http.h"
#include "sigv4.h"
#include "tls.h"

#define NS_AWS_REGION_MAX 64
#define NS_AWS_DEFAULT_REGION "us-east-1"
#define NS_AWS_MAX_ATTEMPTS_DEFAULT 5
#define NS_AWS_MAX_ATTEMPTS_LIMIT 20
#define NS_AWS_RETRY_BASE_MS 200
#define NS_AWS_RETRY_CAP_MS 5000
#define NS_AWS_RETRY_BUDGET_MS 60000
#define NS_AWS_RESP_MAX (1u << 20) /* default bound of a buffered response body */

/* Region: cli (if non-NULL), AWS_REGION, AWS_DEFAULT_REGION, us-east-1; checked [a-z0-9-]. */
ns_err ns_aws_region(char out[NS_AWS_REGION_MAX], const char *cli) NS_MUST_CHECK;
/*
 * Endpoint of a service ("s3", "kms"): AWS_ENDPOINT_URL_<SERVICE uppercased>, AWS_ENDPOINT_URL,
 * else https://SERVICE.REGION.amazonaws.com. *custom = 1 when it came from the environment.
 */
/* Refuses a plain http:// endpoint unless its host is a loopback address (requests carry the
 * session token and answers may carry secrets). what names the setting for the message. */
ns_err ns_aws_check_scheme(const ns_url *u, const char *what) NS_MUST_CHECK;
ns_err ns_aws_endpoint(ns_url *u, const char *service, const char *region,
                       int *custom) NS_MUST_CHECK;
/* Trust store: cli_bundle (if non-NULL), AWS_CA_BUNDLE, else the embedded Amazon roots. */
ns_err ns_aws_trust(ns_tls_ca **ca, const char *cli_bundle) NS_MUST_CHECK;
/*
 * Credentials: cli_path (--creds FILE|-, if non-NULL), else the AWS_* variables; refused when
 * expired. NS_E_NOT_FOUND when neither is present (the caller may then try IMDS).
 * *c is allocated (ns_creds_free it).
 */
ns_err ns_aws_creds(ns_creds **c, const char *cli_path) NS_MUST_CHECK;

typedef struct {
    int max_attempts; /* total attempts including the first */
    int base_ms;
    int cap_ms;
    int budget_ms; /* no new attempt starts after this much time */
} ns_retry;

/* Defaults above; AWS_MAX_ATTEMPTS overrides max_attempts (1..NS_AWS_MAX_ATTEMPTS_LIMIT). */
void ns_retry_default(ns_retry *r);
/* Full-jitter delay before attempt number attempt (1 = first retry). */
int ns_retry_delay_ms(const ns_retry *r, int attempt);
/* Whether an HTTP status / AWS error code ("ThrottlingException", may be NULL) is retried. */
int ns_aws_retryable_status(int status, const char *code);
/* Whether a transport error is retried (connect, timeout, reset, truncated, resolve). */
int ns_aws_retryable_err(ns_err e);

typedef struct {
    const char *service; /* signing name: "s3", "kms" */
    const char *region;
    const ns_creds *creds;
    const ns_url *endpoint; /* scheme/host/port (and base path) */
    const ns_addr *via;     /* NULL = connect to the endpoint; else e.g. vsock:3:5000 */
    const ns_tls_ca *ca;
    int timeout_ms; /* per socket wait; <= 0: NS_HTTP_TIMEOUT_MS_DEFAULT */
    ns_retry retry;
    unsigned sigv4_flags; /* NS_SIGV4_S3 for S3 */
} ns_aws_client;

/* Headers of one signed request: pass hdrs/n to ns_http_send (Host is added by http). */
typedef struct {
    char host[NS_HTTP_HOST_MAX + 8];
    char amz_date[NS_SIGV4_AMZ_DATE_LEN + 1];
    char payload_hash[NS_SIGV4_HASH_HEX_LEN + 1];
    char authz[NS_SIGV4_AUTHZ_MAX];
    ns_http_hdr hdrs[NS_SIGV4_MAX_HEADERS];
    size_t n;
} ns_aws_signed;

/*
 * Signs method + path (+ query, already encoded) + extra headers (all signed) + body at time
 * now: adds X-Amz-Date, X-Amz-Security-Token (when a token), X-Amz-Content-SHA256 (S3),
 * Authorization. Pointers in s->hdrs refer to s, c->creds and extra: keep them alive.
 */
ns_err ns_aws_sign(const ns_aws_client *c, ns_aws_signed *s, const char *method, const char *path,
                   const char *query, const ns_http_hdr *extra, size_t n_extra, const uint8_t *body,
                   size_t body_len, time_t now) NS_MUST_CHECK;

/*
 * One signed request with retries. path is relative to the endpoint's base path. The final
 * response status goes to *status and its body to resp (bounded by resp->max); non-2xx is NOT an
 * error here (the caller turns the AWS error into a message); transport failures after the last
 * attempt are.
 */
ns_err ns_aws_request(const ns_aws_client *c, const char *method, const char *path,
                      const char *query, const ns_http_hdr *extra, size_t n_extra,
                      const uint8_t *body, size_t body_len, int *status,
                      ns_buf *resp) NS_MUST_CHECK;
/* AWS JSON 1.1: POST / with X-Amz-Target: target, Content-Type: application/x-amz-json-1.1. */
ns_err ns_aws_json_call(const ns_aws_client *c, const char *target, const uint8_t *body,
                        size_t body_len, int *status, ns_buf *resp) NS_MUST_CHECK;
/*
 * The error of an AWS JSON response body ({"__type": "ns#Code", "message": "..."}): the code
 * after '#' and the message, each truncated to its capacity ("" when absent). Never fails.
 */
void ns_aws_json_error(const uint8_t *body, size_t len, char *code, size_t code_cap, char *msg,
                       size_t msg_cap);

#endif
