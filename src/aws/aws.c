/*
 * aws: see aws.h.
 *
 * ns_aws_request owns the retry loop: each attempt opens a connection, re-signs (a retry after a
 * long backoff must not reuse a stale X-Amz-Date), sends, reads the head and the bounded body.
 * Retryable outcomes: transport errors that say nothing about the request having been rejected,
 * HTTP 429/5xx and the AWS throttling codes (read from X-Amzn-ErrorType or the JSON __type).
 */
#include "aws.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iox.h"
#include "json.h"
#include "log.h"
#include "rng.h"
#include "secret.h"

ns_err ns_aws_region(char out[NS_AWS_REGION_MAX], const char *cli)
{
    const char *r = cli;
    if (r == NULL || r[0] == '\0') {
        r = getenv("AWS_REGION");
    }
    if (r == NULL || r[0] == '\0') {
        r = getenv("AWS_DEFAULT_REGION");
    }
    if (r == NULL || r[0] == '\0') {
        r = NS_AWS_DEFAULT_REGION;
    }
    size_t n = strlen(r);
    ENSURE(n > 0 && n < NS_AWS_REGION_MAX, NS_E_USAGE, "region \"%.70s\" is too long", r);
    for (size_t i = 0; i < n; i++) {
        ENSURE((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-',
               NS_E_USAGE, "region \"%s\" is not a region name like us-east-1", r);
    }
    memcpy(out, r, n + 1);
    return NS_OK;
}

ns_err ns_aws_endpoint(ns_url *u, const char *service, const char *region, int *custom)
{
    char var[64];
    int n = snprintf(var, sizeof var, "AWS_ENDPOINT_URL_%s", service);
    ENSURE(n > 0 && (size_t)n < sizeof var, NS_E_USAGE, "service name too long");
    for (char *c = var; *c; c++) {
        *c = (char)toupper((unsigned char)*c);
        if (*c == '-') {
            *c = '_';
        }
    }
    const char *v = getenv(var);
    const char *which = var;
    if (v == NULL || v[0] == '\0') {
        v = getenv("AWS_ENDPOINT_URL");
        which = "AWS_ENDPOINT_URL";
    }
    if (v != NULL && v[0] != '\0') {
        *custom = 1;
        ns_err e = ns_url_parse(u, v);
        return e == NS_OK ? e : ns_fail_ctx(e, "%s", which);
    }
    *custom = 0;
    char url[NS_HTTP_HOST_MAX + 16];
    snprintf(url, sizeof url, "https://%s.%s.amazonaws.com", service, region);
    return ns_url_parse(u, url);
}

ns_err ns_aws_check_scheme(const ns_url *u, const char *what)
{
    ENSURE(u->tls || ns_addr_host_is_loopback(u->host), NS_E_USAGE,
           "%s: plain http:// to %s refused: the request would carry the session token in "
           "cleartext; use https:// (http:// is accepted only to a loopback address)",
           what, u->host);
    return NS_OK;
}

ns_err ns_aws_trust(ns_tls_ca **ca, const char *cli_bundle)
{
    const char *b = cli_bundle;
    if (b == NULL || b[0] == '\0') {
        b = getenv("AWS_CA_BUNDLE");
    }
    if (b != NULL && b[0] != '\0') {
        return ns_tls_ca_from_file(ca, b);
    }
    return ns_tls_ca_embedded(ca);
}

ns_err ns_aws_creds(ns_creds **out, const char *cli_path)
{
    ns_creds *c;
    GUARD(ns_creds_new(&c));
    ns_err e;
    if (cli_path != NULL) {
        e = ns_creds_load_file(c, cli_path);
    } else {
        e = ns_creds_from_env(c);
        if (e == NS_E_NOT_FOUND) {
            e = ns_fail(NS_E_NOT_FOUND, "no credentials: give --creds FILE|- or set "
                                        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
        }
    }
    if (e == NS_OK) {
        e = ns_creds_check_fresh(c, time(NULL));
    }
    if (e != NS_OK) {
        ns_creds_free(c);
        return e;
    }
    *out = c;
    return NS_OK;
}

void ns_retry_default(ns_retry *r)
{
    r->max_attempts = NS_AWS_MAX_ATTEMPTS_DEFAULT;
    r->base_ms = NS_AWS_RETRY_BASE_MS;
    r->cap_ms = NS_AWS_RETRY_CAP_MS;
    r->budget_ms = NS_AWS_RETRY_BUDGET_MS;
    const char *v = getenv("AWS_MAX_ATTEMPTS");
    uint64_t n;
    if (v && ns_parse_uint(v, NS_AWS_MAX_ATTEMPTS_LIMIT, &n) == NS_OK && n >= 1) {
        r->max_attempts = (int)n;
    } else {
        ns_err_clear();
    }
}

int ns_retry_delay_ms(const ns_retry *r, int attempt)
{
    int64_t ceil = r->base_ms;
    for (int i = 1; i < attempt && ceil < r->cap_ms; i++) {
        ceil *= 2;
    }
    if (ceil > r->cap_ms) {
        ceil = r->cap_ms;
    }
    return ceil <= 0 ? 0 : (int)ns_rng_uniform((uint32_t)ceil + 1);
}

int ns_aws_retryable_status(int status, const char *code)
{
    static const char *throttling[] = {"Throttling",
                                       "ThrottlingException",
                                       "ThrottledException",
                                       "RequestThrottledException",
                                       "TooManyRequestsException",
                                       "ProvisionedThroughputExceededException",
                                       "TransactionInProgressException",
                                       "RequestLimitExceeded",
                                       "BandwidthLimitExceeded",
                                       "LimitExceededException",
                                       "RequestThrottled",
                                       "SlowDown",
                                       "PriorRequestNotComplete",
                                       "EC2ThrottledException",
                                       "RequestTimeout",
                                       "RequestTimeoutException",
                                       "InternalError",
                                       "KMSInternalException",
                                       "ServiceUnavailable"};
    if (status == 429 || status == 500 || status == 502 || status == 503 || status == 504) {
        return 1;
    }
    if (code != NULL && code[0] != '\0') {
        for (size_t i = 0; i < sizeof throttling / sizeof throttling[0]; i++) {
            if (strcmp(code, throttling[i]) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

int ns_aws_retryable_err(ns_err e)
{
    return e == NS_E_CONNECT || e == NS_E_TIMEOUT || e == NS_E_CLOSED || e == NS_E_TRUNCATED ||
           e == NS_E_RESOLVE || e == NS_E_IO;
}

ns_err ns_aws_sign(const ns_aws_client *c, ns_aws_signed *s, const char *method, const char *path,
                   const char *query, const ns_http_hdr *extra, size_t n_extra, const uint8_t *body,
                   size_t body_len, time_t now)
{
    ENSURE(n_extra + 6 <= NS_SIGV4_MAX_HEADERS, NS_E_TOO_BIG, "too many request headers");
    memset(s, 0, sizeof *s);
    GUARD(ns_sigv4_amz_date(s->amz_date, now));
    ns_sigv4_sha256_hex(s->payload_hash, body ? (const void *)body : "", body_len);
    char *host = s->host;
    ns_url_host_header(c->endpoint, s->host, sizeof s->host);
    ns_sigv4_hdr sh[NS_SIGV4_MAX_HEADERS];
    size_t n = 0;
    sh[n++] = (ns_sigv4_hdr){"host", host};
    for (size_t i = 0; i < n_extra; i++) {
        sh[n++] = (ns_sigv4_hdr){extra[i].name, extra[i].value};
        s->hdrs[s->n++] = extra[i];
    }
    s->hdrs[s->n++] = (ns_http_hdr){"Host", host};
    sh[n++] = (ns_sigv4_hdr){"x-amz-date", s->amz_date};
    s->hdrs[s->n++] = (ns_http_hdr){"X-Amz-Date", s->amz_date};
    if (c->creds->session_token[0]) {
        sh[n++] = (ns_sigv4_hdr){"x-amz-security-token", c->creds->session_token};
        s->hdrs[s->n++] = (ns_http_hdr){"X-Amz-Security-Token", c->creds->session_token};
    }
    if (c->sigv4_flags & NS_SIGV4_S3) {
        sh[n++] = (ns_sigv4_hdr){"x-amz-content-sha256", s->payload_hash};
        s->hdrs[s->n++] = (ns_http_hdr){"X-Amz-Content-SHA256", s->payload_hash};
    }
    ns_sigv4_params p = {
        c->creds->access_key_id, c->creds->secret_access_key, c->region, c->service, s->amz_date,
        c->sigv4_flags};
    ns_sigv4_req r = {method, path, query, sh, n, s->payload_hash};
    GUARD(ns_sigv4_sign(&p, &r, s->authz, sizeof s->authz));
    s->hdrs[s->n++] = (ns_http_hdr){"Authorization", s->authz};
    return NS_OK;
}

/* The error code of an AWS response: X-Amzn-ErrorType, else JSON __type, else "". */
static void error_code(const ns_http_resp *hr, const ns_buf *body, char *code, size_t cap)
{
    code[0] = '\0';
    const char *t = ns_http_header(hr, "x-amzn-errortype");
    if (t) {
        size_t n = strcspn(t, ":");
        snprintf(code, cap, "%.*s", (int)n, t);
        return;
    }
    char msg[8];
    ns_aws_json_error(body->data, body->len, code, cap, msg, sizeof msg);
}

ns_err ns_aws_request(const ns_aws_client *c, const char *method, const char *path,
                      const char *query, const ns_http_hdr *extra, size_t n_extra,
                      const uint8_t *body, size_t body_len, int *status, ns_buf *resp)
{
    char full[NS_HTTP_BASE_MAX + 4096];
    int fl = snprintf(full, sizeof full, "%s%s", c->endpoint->base, path);
    ENSURE(fl > 0 && (size_t)fl < sizeof full, NS_E_TOO_BIG, "request path too long");
    ns_buf target;
    ns_buf_init(&target, sizeof full + 8192);
    ns_err e =
        ns_buf_printf(&target, "%s%s%s", full, query && query[0] ? "?" : "", query ? query : "");
    if (e == NS_OK) {
        e = ns_buf_cstr(&target);
    }
    if (e != NS_OK) {
        ns_buf_free(&target);
        return e;
    }
    int timeout = c->timeout_ms > 0 ? c->timeout_ms : NS_HTTP_TIMEOUT_MS_DEFAULT;
    /* Small exchanges (KMS, S3 errors): the whole of one bounded by the timeout too. */
    ns_http_dest d = {c->endpoint, c->via, c->ca, timeout, timeout, 0};
    int64_t start = ns_now_ms();
    ns_aws_signed s;
    for (int attempt = 1;; attempt++) {
        ns_http *h = NULL;
        ns_http_resp hr;
        ns_buf_reset(resp);
        e = ns_aws_sign(c, &s, method, full, query, extra, n_extra, body, body_len, time(NULL));
        if (e == NS_OK) {
            e = ns_http_open(&h, &d);
        }
        if (e == NS_OK) {
            e = ns_http_send(h, method, (const char *)target.data, s.hdrs, s.n, body, body_len);
        }
        if (e == NS_OK) {
            e = ns_http_read_head(h, &hr);
        }
        if (e == NS_OK) {
            e = ns_http_read_body_all(h, resp);
        }
        char code[96] = "";
        if (e == NS_OK) {
            *status = hr.status;
            error_code(&hr, resp, code, sizeof code);
        }
        ns_http_close(h);
        ns_wipe(&s, sizeof s);
        int retry = e == NS_OK ? (hr.status >= 300 && ns_aws_retryable_status(hr.status, code))
                               : ns_aws_retryable_err(e);
        if (!retry || attempt >= c->retry.max_attempts) {
            break;
        }
        int delay = ns_retry_delay_ms(&c->retry, attempt);
        if (ns_now_ms() - start + delay > c->retry.budget_ms) {
            break;
        }
        if (e == NS_OK) {
            ns_warn("retrying service=%s status=%d code=%s attempt=%d delay_ms=%d", c->service,
                    hr.status, code[0] ? code : "-", attempt + 1, delay);
        } else {
            ns_warn("retrying service=%s error=\"%s\" attempt=%d delay_ms=%d", c->service,
                    ns_err_msg(), attempt + 1, delay);
        }
        usleep((useconds_t)delay * 1000);
    }
    ns_buf_free(&target);
    return e;
}

ns_err ns_aws_json_call(const ns_aws_client *c, const char *target, const uint8_t *body,
                        size_t body_len, int *status, ns_buf *resp)
{
    ns_http_hdr h[] = {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", target}};
    return ns_aws_request(c, "POST", "/", NULL, h, 2, body, body_len, status, resp);
}

void ns_aws_json_error(const uint8_t *body, size_t len, char *code, size_t code_cap, char *msg,
                       size_t msg_cap)
{
    code[0] = '\0';
    msg[0] = '\0';
    ns_buf b;
    ns_buf_init(&b, 4096);
    if (ns_json_get_string(body, len, "__type", &b) == NS_OK && ns_buf_cstr(&b) == NS_OK) {
        const char *t = strrchr((const char *)b.data, '#');
        snprintf(code, code_cap, "%s", t ? t + 1 : (const char *)b.data);
    }
    ns_buf_reset(&b);
    if ((ns_json_get_string(body, len, "message", &b) == NS_OK ||
         ns_json_get_string(body, len, "Message", &b) == NS_OK) &&
        ns_buf_cstr(&b) == NS_OK) {
        snprintf(msg, msg_cap, "%s", (const char *)b.data);
    }
    ns_buf_free(&b);
    ns_err_clear();
}
