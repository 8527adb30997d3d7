/*
 * imds: the EC2 Instance Metadata Service, version 2 only (session tokens).
 *
 *   PUT /latest/api/token            X-aws-ec2-metadata-token-ttl-seconds: TTL  -> token
 *   GET /latest/meta-data/iam/security-credentials/         -> role name (first line)
 *   GET /latest/meta-data/iam/security-credentials/ROLE     -> credentials JSON
 * every GET with X-aws-ec2-metadata-token. Endpoint: AWS_EC2_METADATA_SERVICE_ENDPOINT or
 * http://169.254.169.254; AWS_EC2_METADATA_DISABLED=true refuses. Short timeouts, a few retries:
 * a PUT that times out is the classic hop-limit symptom (a container one hop too far), and the
 * error says so. Errors a user can act on: no role attached (404), IMDS unreachable, IMDSv1-only
 * (the PUT is refused with 403/405), malformed JSON, a non-Success "Code".
 */
#ifndef NS_IMDS_H
#define NS_IMDS_H

#include <stddef.h>

#include "creds.h"
#include "err.h"
#include "http.h"

#define NS_IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define NS_IMDS_TOKEN_TTL_S 21600
#define NS_IMDS_TIMEOUT_MS 2000
#define NS_IMDS_ATTEMPTS 3
#define NS_IMDS_ROLE_MAX 128
#define NS_IMDS_TOKEN_MAX 512

typedef struct {
    ns_url url;
    int timeout_ms;
    int token_ttl_s;
    int attempts;
} ns_imds;

/* endpoint: NULL = AWS_EC2_METADATA_SERVICE_ENDPOINT or the default; refuses when disabled. */
ns_err ns_imds_init(ns_imds *m, const char *endpoint) NS_MUST_CHECK;
/*
 * Fetches the role's credentials into c. role NULL or "": discovered (and copied to role_out
 * when non-NULL). Refuses expired credentials.
 */
ns_err ns_imds_fetch_creds(const ns_imds *m, const char *role, ns_creds *c, char *role_out,
                           size_t role_cap) NS_MUST_CHECK;

#endif
