/*
 * imds: see imds.h.
 *
 * Plain HTTP to a link-local address (TLS is not offered by IMDS). Each call is retried a few
 * times on transport errors and 5xx; 4xx answers are final and mapped to what a user can do.
 */
#include "imds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "aws.h"
#include "secret.h"

#define NS_IMDS_BODY_MAX (64 * 1024)
#define NS_IMDS_PATH_CREDS "/latest/meta-data/iam/security-credentials/"

ns_err ns_imds_init(ns_imds *m, const char *endpoint)
{
    memset(m, 0, sizeof *m);
    const char *dis = getenv("AWS_EC2_METADATA_DISABLED");
    ENSURE(dis == NULL || strcasecmp(dis, "true") != 0, NS_E_UNAVAILABLE,
           "IMDS is disabled by AWS_EC2_METADATA_DISABLED=true: give credentials with --creds "
           "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
    const char *ep = endpoint;
    if (ep == NULL || ep[0] == '\0') {
        ep = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    }
    if (ep == NULL || ep[0] == '\0') {
        ep = NS_IMDS_DEFAULT_ENDPOINT;
    }
    ns_err e = ns_url_parse(&m->url, ep);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "IMDS endpoint");
    }
    ENSURE(!m->url.tls, NS_E_USAGE, "IMDS endpoint %s: IMDS speaks plain http://", ep);
    m->timeout_ms = NS_IMDS_TIMEOUT_MS;
    m->token_ttl_s = NS_IMDS_TOKEN_TTL_S;
    m->attempts = NS_IMDS_ATTEMPTS;
    return NS_OK;
}

/* One call with retries on transport errors and 5xx; the final status and body are returned. */
static ns_err imds_call(const ns_imds *m, const char *method, const char *path, const char *hname,
                        const char *hval, int *status, ns_buf *body)
{
    char host[NS_HTTP_HOST_MAX + 8];
    ns_url_host_header(&m->url, host, sizeof host);
    char target[NS_HTTP_BASE_MAX + 512];
    int n = snprintf(target, sizeof target, "%s%s", m->url.base, path);
    ENSURE(n > 0 && (size_t)n < sizeof target, NS_E_TOO_BIG, "IMDS path too long");
    ns_http_hdr h[2] = {{"Host", host}, {hname, hval}};
    ns_http_dest d = {&m->url, NULL, NULL, m->timeout_ms, m->timeout_ms > 0 ? m->timeout_ms : 0,
                      0};
    ns_err e = NS_OK;
    for (int attempt = 1; attempt <= m->attempts; attempt++) {
        ns_http *c = NULL;
        ns_http_resp r;
        ns_buf_reset(body);
        e = ns_http_open(&c, &d);
        if (e == NS_OK) {
            e = ns_http_send(c, method, target, h, hname ? 2 : 1, NULL, 0);
        }
        if (e == NS_OK) {
            e = ns_http_read_head(c, &r);
        }
        if (e == NS_OK) {
            e = ns_http_read_body_all(c, body);
        }
        ns_http_close(c);
        if (e == NS_OK) {
            *status = r.status;
            if (r.status < 500) {
                return NS_OK;
            }
        } else if (!ns_aws_retryable_err(e)) {
            return e;
        }
        if (attempt < m->attempts) {
            usleep((useconds_t)(100 * attempt) * 1000);
        }
    }
    return e;
}

static ns_err get_token(const ns_imds *m, ns_buf *tok)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", m->token_ttl_s);
    int st = 0;
    ns_err e = imds_call(m, "PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", ttl,
                         &st, tok);
    if (e == NS_E_TIMEOUT) {
        return ns_fail(NS_E_TIMEOUT,
                       "IMDS at %s did not answer the token PUT within %d ms: from a container "
                       "this is usually the instance's metadata hop limit (set "
                       "HttpPutResponseHopLimit to 2 with aws ec2 modify-instance-metadata-"
                       "options), else IMDS is unreachable from here",
                       m->url.host, m->timeout_ms);
    }
    if (e != NS_OK) {
        return ns_fail_ctx(e,
                           "IMDS at %s unreachable (is this an EC2 instance? "
                           "AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the address)",
                           m->url.host);
    }
    if (st == 403) {
        BAIL(NS_E_DENIED, "IMDS refused a session token (403): the instance metadata endpoint "
                          "may be disabled (HttpEndpoint=enabled in the instance's metadata "
                          "options)");
    }
    if (st == 404 || st == 405 || st == 501) {
        BAIL(NS_E_UNSUPPORTED,
             "IMDS answered the token PUT with %d: this endpoint only speaks "
             "IMDSv1, which nsign does not use; enable IMDSv2 "
             "(HttpTokens=required)",
             st);
    }
    ENSURE(st == 200, NS_E_REMOTE, "IMDS token PUT answered HTTP %d", st);
    ENSURE(tok->len > 0 && tok->len <= NS_IMDS_TOKEN_MAX, NS_E_PROTO,
           "IMDS returned a token of %zu bytes", tok->len);
    for (size_t i = 0; i < tok->len; i++) {
        ENSURE(tok->data[i] > 0x20 && tok->data[i] < 0x7f, NS_E_PROTO,
               "IMDS returned a token with a non-printable byte");
    }
    return ns_buf_cstr(tok);
}

ns_err ns_imds_fetch_creds(const ns_imds *m, const char *role, ns_creds *c, char *role_out,
                           size_t role_cap)
{
    ns_buf tok, body;
    ns_buf_init_secret(&tok, NS_IMDS_TOKEN_MAX + 1);
    ns_buf_init_secret(&body, NS_IMDS_BODY_MAX);
    char rname[NS_IMDS_ROLE_MAX + 1];
    char path[sizeof NS_IMDS_PATH_CREDS + NS_IMDS_ROLE_MAX + 1];
    int st = 0;
    ns_err e;
    GUARD_GOTO(get_token(m, &tok), e, out);
    if (role && role[0]) {
        ENSURE(strlen(role) <= NS_IMDS_ROLE_MAX && strpbrk(role, "/ \r\n?#%") == NULL, NS_E_USAGE,
               "role name \"%.60s\" is not a valid IAM role name", role);
        snprintf(rname, sizeof rname, "%s", role);
    } else {
        GUARD_GOTO(imds_call(m, "GET", NS_IMDS_PATH_CREDS, "X-aws-ec2-metadata-token",
                             (const char *)tok.data, &st, &body),
                   e, out);
        if (st == 404) {
            e = ns_fail(NS_E_NOT_FOUND, "no IAM role is attached to this instance (IMDS "
                                        "answered 404): attach an instance profile, or give "
                                        "--role NAME");
            goto out;
        }
        if (st == 401) {
            e = ns_fail(NS_E_AUTH, "IMDS rejected its own session token (401)");
            goto out;
        }
        if (st != 200) {
            e = ns_fail(NS_E_REMOTE, "IMDS role listing answered HTTP %d", st);
            goto out;
        }
        size_t n = 0;
        while (n < body.len && body.data[n] != '\n' && body.data[n] != '\r') {
            n++;
        }
        if (n == 0 || n > NS_IMDS_ROLE_MAX) {
            e = ns_fail(n == 0 ? NS_E_NOT_FOUND : NS_E_PROTO,
                        "IMDS listed %s role name: attach an instance profile",
                        n == 0 ? "no" : "an over-long");
            goto out;
        }
        memcpy(rname, body.data, n);
        rname[n] = '\0';
        if (strpbrk(rname, "/ ?#%") != NULL) {
            e = ns_fail(NS_E_PROTO, "IMDS listed a malformed role name");
            goto out;
        }
    }
    snprintf(path, sizeof path, "%s%s", NS_IMDS_PATH_CREDS, rname);
    GUARD_GOTO(
        imds_call(m, "GET", path, "X-aws-ec2-metadata-token", (const char *)tok.data, &st, &body),
        e, out);
    if (st == 404) {
        e = ns_fail(NS_E_NOT_FOUND,
                    "IMDS has no credentials for role \"%s\" (404): check the "
                    "name of the instance profile's role",
                    rname);
        goto out;
    }
    if (st != 200) {
        e = ns_fail(st == 401 ? NS_E_AUTH : NS_E_REMOTE,
                    "IMDS credentials GET for role \"%s\" answered HTTP %d", rname, st);
        goto out;
    }
    e = ns_creds_parse_json(c, body.data, body.len);
    if (e != NS_OK) {
        e = ns_fail_ctx(e, "IMDS credentials of role \"%s\"", rname);
        goto out;
    }
    GUARD_GOTO(ns_creds_check_fresh(c, time(NULL)), e, out);
    if (role_out && role_cap > 0) {
        snprintf(role_out, role_cap, "%s", rname);
    }
out:
    ns_buf_free(&tok);
    ns_buf_free(&body);
    return e;
}
