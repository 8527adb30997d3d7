/*
 * enclave: see enclave.h. The receivers run on their own threads so the host may push in any
 * order; the first failure (or a stop request) makes a cancel pipe readable, which every waiting
 * receiver polls, so a bad payload fails the boot at once instead of at the timeout. The
 * configuration receiver is optional: once the three required frames are in, it is cancelled
 * like the others (the host sends the configuration first and waits for its acknowledgement,
 * so a configuration the host sent is always in by then).
 */
#include "enclave.h"

#include <cJSON.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "iox.h"
#include "log.h"
#include "pcr.h"

#define ENCLAVE_DETAIL_MAX 512
#define ENCLAVE_DEFAULT_RECV_TIMEOUT_MS (600 * 1000)
#define ENCLAVE_DEFAULT_HEARTBEAT_TIMEOUT_MS (10 * 1000)
#define ENCLAVE_THREADS_MAX 256
#define ENCLAVE_STOP_POLL_MS 50

static const char *const step_names[NS_STEP_COUNT] = {
    [NS_STEP_RECEIVE] = "receive",
    [NS_STEP_RECV_CREDS] = "receive-credentials",
    [NS_STEP_RECV_AGE_KEY] = "receive-age-key",
    [NS_STEP_RECV_SHARES] = "receive-shares",
    [NS_STEP_RECV_CONFIG] = "receive-config",
    [NS_STEP_PREFLIGHT] = "preflight",
    [NS_STEP_MEASURE] = "measure",
    [NS_STEP_CONFIG] = "configure",
    [NS_STEP_KMS] = "kms-decrypt",
    [NS_STEP_WIPE] = "wipe-credentials",
    [NS_STEP_AGE] = "age-decrypt",
    [NS_STEP_LOAD_KEYS] = "load-keys",
    [NS_STEP_SERVE] = "sign-service",
};

const char *ns_enclave_step_name(ns_enclave_step s)
{
    return (s >= 0 && s < NS_STEP_COUNT) ? step_names[s] : "?";
}

/* ---- configuration ---- */

const char *ns_enclave_getenv(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

static ns_err cfg_port(ns_enclave_getenv_fn get, void *ctx, const char *name, uint32_t def,
                       uint32_t *out)
{
    const char *v = get(name, ctx);
    uint64_t n;
    if (v == NULL || *v == '\0') {
        *out = def;
        return NS_OK;
    }
    if (ns_parse_uint(v, 0xFFFFFFFFull, &n) != NS_OK || n == 0) {
        BAIL(NS_E_USAGE, "%s=%s: want a port number", name, v);
    }
    *out = (uint32_t)n;
    return NS_OK;
}

static ns_err cfg_flag(ns_enclave_getenv_fn get, void *ctx, const char *name, int def, int *out)
{
    const char *v = get(name, ctx);
    if (v == NULL || *v == '\0') {
        *out = def;
    } else if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) {
        *out = 1;
    } else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) {
        *out = 0;
    } else if (def == -1 && strcmp(v, "auto") == 0) {
        *out = -1;
    } else {
        BAIL(NS_E_USAGE, "%s=%s: want 1 or 0%s", name, v, def == -1 ? " or auto" : "");
    }
    return NS_OK;
}

/* NAME overrides the default address text; "none" sets *enabled = 0 when enabled != NULL. */
static ns_err cfg_addr(ns_enclave_getenv_fn get, void *ctx, const char *name, const char *def,
                       ns_addr *out, int *enabled)
{
    const char *v = get(name, ctx);
    if (v == NULL || *v == '\0') {
        v = def;
    }
    if (enabled != NULL && strcmp(v, "none") == 0) {
        *enabled = 0;
        return NS_OK;
    }
    ns_err e = ns_addr_parse(out, v);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "%s", name);
    }
    return NS_OK;
}

static ns_err cfg_str(ns_enclave_getenv_fn get, void *ctx, const char *name, const char *def,
                      char *out, size_t cap)
{
    const char *v = get(name, ctx);
    if (v == NULL) {
        v = def;
    }
    ENSURE(strlen(v) < cap, NS_E_TOO_BIG, "%s: longer than %zu bytes", name, cap - 1);
    memcpy(out, v, strlen(v) + 1);
    return NS_OK;
}

/* An observability address: NAME, else the default when on by default, else none. */
static ns_err cfg_obs(ns_enclave_getenv_fn get, void *ctx, const char *name, const char *def,
                      int on, char *out)
{
    const char *v = get(name, ctx);
    ns_addr a;
    if (v == NULL || *v == '\0') {
        v = on ? def : "none";
    }
    if (strcmp(v, "none") == 0) {
        out[0] = '\0';
        return NS_OK;
    }
    ns_err e = ns_addr_parse(&a, v);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "%s", name);
    }
    ns_addr_format(&a, out, NS_ADDR_STR_MAX);
    return NS_OK;
}

static ns_err cfg_obs_all(ns_enclave_cfg *cfg, ns_enclave_getenv_fn get, void *ctx, int on,
                          uint32_t parent)
{
    uint32_t p_log, p_audit, p_metrics;
    char a[NS_ADDR_STR_MAX];
    GUARD(cfg_port(get, ctx, "ENCLAVE_LOG_VSOCK_PORT", 7110, &p_log));
    GUARD(cfg_port(get, ctx, "AUDIT_VSOCK_PORT", 7111, &p_audit));
    GUARD(cfg_port(get, ctx, "METRICS_VSOCK_PORT", 7112, &p_metrics));
    snprintf(a, sizeof a, "vsock:%u:%u", parent, p_log);
    GUARD(cfg_obs(get, ctx, "NSIGN_ENCLAVE_LOG_ADDR", a, on, cfg->log_out));
    snprintf(a, sizeof a, "vsock:%u:%u", parent, p_audit);
    GUARD(cfg_obs(get, ctx, "NSIGN_ENCLAVE_AUDIT_ADDR", a, on, cfg->audit_out));
    snprintf(a, sizeof a, "vsock:any:%u", p_metrics);
    GUARD(cfg_obs(get, ctx, "NSIGN_ENCLAVE_METRICS_ADDR", a, on, cfg->metrics));
    const char *v = get("NSIGN_ENCLAVE_AUDIT_EVERY", ctx);
    uint64_t n;
    if (v != NULL && *v != '\0') {
        ENSURE(ns_parse_uint(v, 1000000, &n) == NS_OK && n > 0, NS_E_USAGE,
               "NSIGN_ENCLAVE_AUDIT_EVERY=%s: want 1..1000000 entries", v);
        cfg->audit_every_n = (uint32_t)n;
    }
    v = get("NSIGN_ENCLAVE_AUDIT_INTERVAL", ctx);
    int64_t ms;
    if (v != NULL && *v != '\0') {
        ENSURE(ns_parse_seconds(v, &ms) == NS_OK && ms > 0 && ms <= 86400 * 1000, NS_E_USAGE,
               "NSIGN_ENCLAVE_AUDIT_INTERVAL=%s: want seconds, 0 < S <= 86400", v);
        cfg->audit_every_ms = (uint32_t)ms;
    }
    v = get("NSIGN_ENCLAVE_STATUS_INTERVAL", ctx);
    if (v != NULL && *v != '\0') {
        ENSURE(ns_parse_seconds(v, &ms) == NS_OK && ms > 0 && ms <= 3600 * 1000, NS_E_USAGE,
               "NSIGN_ENCLAVE_STATUS_INTERVAL=%s: want seconds, 0 < S <= 3600", v);
        cfg->status_every_ms = (uint32_t)ms;
    }
    return NS_OK;
}

void ns_enclave_log_addr(ns_enclave_getenv_fn get, void *ctx, int on, char out[NS_ADDR_STR_MAX])
{
    uint32_t parent, port;
    char a[NS_ADDR_STR_MAX];
    if (cfg_port(get, ctx, "PARENT_CID", 3, &parent) != NS_OK) {
        parent = 3;
    }
    if (cfg_port(get, ctx, "ENCLAVE_LOG_VSOCK_PORT", 7110, &port) != NS_OK) {
        port = 7110;
    }
    snprintf(a, sizeof a, "vsock:%u:%u", parent, port);
    if (cfg_obs(get, ctx, "NSIGN_ENCLAVE_LOG_ADDR", a, on, out) != NS_OK) {
        snprintf(out, NS_ADDR_STR_MAX, "%s", on ? a : ""); /* not an address: as if unset */
    }
    ns_err_clear(); /* best effort: what did not parse is the boot's own error to report */
}

ns_err ns_enclave_cfg_load(ns_enclave_cfg *cfg, ns_enclave_getenv_fn get, void *ctx, int is_pid1)
{
    return ns_enclave_cfg_load_ex(cfg, get, ctx, is_pid1, 0);
}

ns_err ns_enclave_cfg_load_ex(ns_enclave_cfg *cfg, ns_enclave_getenv_fn get, void *ctx, int is_pid1,
                              int in_enclave)
{
    uint32_t p_creds, p_age, p_shares, p_config, p_grpc, p_egress, p_kms, parent;
    char a[NS_ADDR_STR_MAX];
    memset(cfg, 0, sizeof *cfg);

    GUARD(cfg_port(get, ctx, "AWS_CREDS_VSOCK_PORT", 7100, &p_creds));
    GUARD(cfg_port(get, ctx, "AGE_KEY_VSOCK_PORT", 7101, &p_age));
    GUARD(cfg_port(get, ctx, "KEY_SHARES_VSOCK_PORT", 7102, &p_shares));
    GUARD(cfg_port(get, ctx, "CONFIG_VSOCK_PORT", 7103, &p_config));
    GUARD(cfg_port(get, ctx, "VSOCK_PORT", 50051, &p_grpc));
    GUARD(cfg_port(get, ctx, "HOST_EGRESS_VSOCK_PORT", 8080, &p_egress));
    GUARD(cfg_port(get, ctx, "KMS_PROXY_PORT", 5000, &p_kms));
    GUARD(cfg_port(get, ctx, "PARENT_CID", 3, &parent));
    ENSURE(p_grpc <= 65535 && p_egress <= 65535, NS_E_USAGE,
           "VSOCK_PORT and HOST_EGRESS_VSOCK_PORT double as tcp ports: at most 65535");

    snprintf(a, sizeof a, "vsock:any:%u", p_creds);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_CREDS_ADDR", a, &cfg->creds_listen, NULL));
    snprintf(a, sizeof a, "vsock:any:%u", p_age);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_AGE_KEY_ADDR", a, &cfg->age_key_listen, NULL));
    snprintf(a, sizeof a, "vsock:any:%u", p_shares);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_SHARES_ADDR", a, &cfg->shares_listen, NULL));
    cfg->config_enabled = 1;
    snprintf(a, sizeof a, "vsock:any:%u", p_config);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_CONFIG_ADDR", a, &cfg->config_listen,
                   &cfg->config_enabled));

    snprintf(a, sizeof a, "tcp:127.0.0.1:%u", p_grpc);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_SIGN_ADDR", a, &cfg->sign_listen, NULL));
    cfg->ingress_enabled = 1;
    snprintf(a, sizeof a, "vsock:any:%u", p_grpc);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_INGRESS_ADDR", a, &cfg->ingress_listen,
                   &cfg->ingress_enabled));

    GUARD(cfg_flag(get, ctx, "HOST_EGRESS_ENABLED", 1, &cfg->egress_enabled));
    if (cfg->egress_enabled) {
        snprintf(a, sizeof a, "tcp:127.0.0.1:%u", p_egress);
        GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_EGRESS_LISTEN_ADDR", a, &cfg->egress_listen,
                       &cfg->egress_enabled));
    }
    if (cfg->egress_enabled) {
        snprintf(a, sizeof a, "vsock:%u:%u", parent, p_egress);
        GUARD(
            cfg_addr(get, ctx, "NSIGN_ENCLAVE_EGRESS_CONNECT_ADDR", a, &cfg->egress_connect, NULL));
    }

    snprintf(a, sizeof a, "vsock:%u:%u", parent, p_kms);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_KMS_PROXY_ADDR", a, &cfg->kms_proxy, NULL));
    GUARD(cfg_str(get, ctx, "AWS_REGION", "us-east-1", cfg->region, sizeof cfg->region));
    cfg->region_from_env = cfg->region[0] != '\0' && get("AWS_REGION", ctx) != NULL;
    if (cfg->region[0] == '\0') {
        memcpy(cfg->region, "us-east-1", sizeof "us-east-1");
    }
    ENSURE(ns_enclave_region_ok(cfg->region), NS_E_USAGE,
           "AWS_REGION=%s: not a region name (like eu-west-1)", cfg->region);
    GUARD(
        cfg_str(get, ctx, "AWS_ENDPOINT_URL_KMS", "", cfg->kms_endpoint, sizeof cfg->kms_endpoint));
    GUARD(cfg_str(get, ctx, "KMS_KEY_ID", "", cfg->kms_key_id, sizeof cfg->kms_key_id));
    GUARD(cfg_str(get, ctx, "AWS_CA_BUNDLE", "", cfg->ca_bundle, sizeof cfg->ca_bundle));
    GUARD(cfg_flag(get, ctx, "NSIGN_ENCLAVE_ATTEST", -1, &cfg->attest));
    GUARD(cfg_flag(get, ctx, "NSIGN_ALLOW_DEBUG_MODE", 0, &cfg->allow_debug));
    int anon = 0;
    GUARD(cfg_flag(get, ctx, "NSIGN_ALLOW_ANONYMOUS_CLIENTS", 0, &anon));
    cfg->require_client_auth = !anon;
    const char *ep = get("NSIGN_MIN_POLICY_EPOCH", ctx);
    if (ep != NULL && *ep != '\0' &&
        ns_parse_uint(ep, 4294967295u, &cfg->min_policy_epoch) != NS_OK) {
        BAIL(NS_E_USAGE, "NSIGN_MIN_POLICY_EPOCH=%s: want an integer 0..4294967295", ep);
    }
    GUARD(cfg_flag(get, ctx, "NSIGN_ENCLAVE_PSEUDONYMOUS_CLIENTS", 0, &cfg->pseudonymous_clients));
    cfg->is_pid1 = is_pid1;

    const char *t = get("NSIGN_ENCLAVE_RECV_TIMEOUT", ctx);
    int64_t ms = ENCLAVE_DEFAULT_RECV_TIMEOUT_MS;
    if (t != NULL && *t != '\0') {
        if (ns_parse_seconds(t, &ms) != NS_OK || ms <= 0 || ms > 86400 * 1000) {
            BAIL(NS_E_USAGE, "NSIGN_ENCLAVE_RECV_TIMEOUT=%s: want seconds, 0 < S <= 86400", t);
        }
    }
    cfg->recv_timeout_ms = (int)ms;

    const char *th = get("NSIGN_ENCLAVE_SIGN_THREADS", ctx);
    if (th != NULL && *th != '\0') {
        uint64_t n;
        if (ns_parse_uint(th, ENCLAVE_THREADS_MAX, &n) != NS_OK) {
            BAIL(NS_E_USAGE, "NSIGN_ENCLAVE_SIGN_THREADS=%s: want 0..%d (0 = one per core)", th,
                 ENCLAVE_THREADS_MAX);
        }
        cfg->sign_threads = (int)n;
    }

    cfg->heartbeat_enabled = is_pid1 ? 1 : 0;
    const char *hb = get("NSIGN_ENCLAVE_HEARTBEAT_ADDR", ctx);
    if (hb != NULL && *hb != '\0') {
        cfg->heartbeat_enabled = 1;
    }
    snprintf(a, sizeof a, "vsock:%u:9000", parent);
    GUARD(cfg_addr(get, ctx, "NSIGN_ENCLAVE_HEARTBEAT_ADDR", a, &cfg->heartbeat,
                   &cfg->heartbeat_enabled));
    cfg->heartbeat_timeout_ms = ENCLAVE_DEFAULT_HEARTBEAT_TIMEOUT_MS;
    GUARD(cfg_str(get, ctx, "NSIGN_MODULES", is_pid1 ? "/nsm.ko" : "", cfg->modules,
                  sizeof cfg->modules));
    GUARD(cfg_obs_all(cfg, get, ctx, is_pid1 || in_enclave, parent));
    return NS_OK;
}

/* ---- the run-time configuration document ---- */

int ns_enclave_region_ok(const char *s)
{
    /* two letters, then one or more "-word", then "-digits": us-east-1, us-gov-west-1 */
    size_t n = strlen(s), i = 0, words = 0;
    if (n < 4 || n >= NS_ENCLAVE_REGION_MAX || s[0] < 'a' || s[0] > 'z' || s[1] < 'a' ||
        s[1] > 'z' || s[2] != '-') {
        return 0;
    }
    i = 3;
    for (;;) {
        size_t start = i;
        while (i < n && s[i] >= 'a' && s[i] <= 'z') {
            i++;
        }
        if (i == start) {
            break;
        }
        words++;
        if (i >= n || s[i] != '-') {
            return 0;
        }
        i++;
    }
    size_t digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    return words >= 1 && digits >= 1 && digits <= 2 && i == n;
}

static int key_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= NS_ENCLAVE_KEY_ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(":/_-.", c) != NULL)) {
            return 0;
        }
    }
    return 1;
}

static ns_err endpoint_check(const char *s)
{
    ns_url u;
    ENSURE(strlen(s) < NS_ENCLAVE_URL_MAX, NS_E_PARSE, "kms_endpoint: longer than %d bytes",
           NS_ENCLAVE_URL_MAX - 1);
    if (ns_url_parse(&u, s) != NS_OK) {
        BAIL(NS_E_PARSE, "kms_endpoint: %s", ns_err_msg());
    }
    ENSURE(u.tls, NS_E_PARSE, "kms_endpoint \"%.100s\": must be https://", s);
    ENSURE(u.base[0] == '\0', NS_E_PARSE, "kms_endpoint \"%.100s\": no path allowed", s);
    for (const char *h = u.host; *h; h++) {
        ENSURE((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
                   *h == '.' || *h == '-' || *h == ':',
               NS_E_PARSE, "kms_endpoint \"%.100s\": bad character in the host", s);
    }
    return NS_OK;
}

ns_err ns_enclave_doc_parse(ns_enclave_doc *doc, const uint8_t *p, size_t n)
{
    static const char *const names[] = {"region", "kms_key_id", "kms_endpoint"};
    char *dst[3] = {doc->region, doc->kms_key_id, doc->kms_endpoint};
    const size_t caps[3] = {sizeof doc->region, sizeof doc->kms_key_id, sizeof doc->kms_endpoint};
    const char *end = NULL;
    ns_err e = NS_OK;
    memset(doc, 0, sizeof *doc);
    ENSURE(n <= NS_ENCLAVE_CONFIG_MAX, NS_E_TOO_BIG, "configuration: %zu bytes, at most %d", n,
           NS_ENCLAVE_CONFIG_MAX);
    ENSURE(n > 0 && memchr(p, 0, n) == NULL, NS_E_PARSE,
           "configuration: empty, or holds a NUL byte: want one JSON object");
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p, n, &end, 0);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        BAIL(NS_E_PARSE, "configuration: not a JSON object");
    }
    while (end < (const char *)p + n && strchr(" \t\r\n", *end) != NULL) {
        end++;
    }
    if (end != (const char *)p + n) {
        e = ns_fail(NS_E_PARSE, "configuration: bytes after the JSON object");
    }
    int seen[3] = {0, 0, 0};
    for (const cJSON *c = root->child; e == NS_OK && c != NULL; c = c->next) {
        int k = -1;
        for (int i = 0; i < 3; i++) {
            if (c->string != NULL && strcmp(c->string, names[i]) == 0) {
                k = i;
            }
        }
        if (k < 0) {
            e = ns_fail(NS_E_PARSE,
                        "configuration: unknown member \"%.64s\" (allowed: region, kms_key_id, "
                        "kms_endpoint)",
                        c->string ? c->string : "");
        } else if (seen[k]++) {
            e = ns_fail(NS_E_PARSE, "configuration: duplicate member %s", names[k]);
        } else if (!cJSON_IsString(c) || c->valuestring == NULL) {
            e = ns_fail(NS_E_PARSE, "configuration: %s must be a string", names[k]);
        } else if (strlen(c->valuestring) >= caps[k]) {
            e = ns_fail(NS_E_PARSE, "configuration: %s longer than %zu bytes", names[k],
                        caps[k] - 1);
        } else {
            memcpy(dst[k], c->valuestring, strlen(c->valuestring) + 1);
        }
    }
    cJSON_Delete(root);
    if (e == NS_OK && seen[0] && !ns_enclave_region_ok(doc->region)) {
        e = ns_fail(NS_E_PARSE,
                    "configuration: region \"%.64s\" is not a region name (like "
                    "eu-west-1)",
                    doc->region);
    }
    if (e == NS_OK && seen[1] && !key_id_ok(doc->kms_key_id)) {
        e = ns_fail(NS_E_PARSE, "configuration: kms_key_id is not a key id, alias or ARN");
    }
    if (e == NS_OK && seen[2]) {
        e = endpoint_check(doc->kms_endpoint);
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "configuration");
        }
    }
    if (e != NS_OK) {
        memset(doc, 0, sizeof *doc);
    }
    return e;
}

/* The region of a full KMS ARN (arn:PARTITION:kms:REGION:ACCOUNT:...), "" otherwise. */
static void arn_region(const char *id, char *out, size_t cap)
{
    const char *f[5];
    const char *p = id;
    out[0] = '\0';
    for (int i = 0; i < 5; i++) {
        f[i] = p;
        p = strchr(p, ':');
        if (p == NULL) {
            return;
        }
        p++;
    }
    size_t rl = (size_t)(f[4] - f[3] - 1);
    if (strncmp(f[0], "arn:", 4) != 0 || strncmp(f[2], "kms:", 4) != 0 || rl == 0 || rl >= cap) {
        return;
    }
    memcpy(out, f[3], rl);
    out[rl] = '\0';
}

ns_err ns_enclave_cfg_apply(ns_enclave_cfg *cfg, const ns_enclave_doc *doc, const char **source)
{
    char r[NS_ENCLAVE_REGION_MAX];
    if (doc != NULL && doc->kms_key_id[0]) {
        memcpy(cfg->kms_key_id, doc->kms_key_id, strlen(doc->kms_key_id) + 1);
    }
    if (doc != NULL && doc->kms_endpoint[0]) {
        memcpy(cfg->kms_endpoint, doc->kms_endpoint, strlen(doc->kms_endpoint) + 1);
    }
    arn_region(cfg->kms_key_id, r, sizeof r);
    if (r[0]) {
        ENSURE(ns_enclave_region_ok(r), NS_E_PARSE,
               "kms_key_id: the ARN's region \"%s\" is not a "
               "region name",
               r);
        *source = "key-arn";
    } else if (doc != NULL && doc->region[0]) {
        memcpy(r, doc->region, strlen(doc->region) + 1);
        *source = "config";
    } else if (cfg->region_from_env) {
        memcpy(r, cfg->region, strlen(cfg->region) + 1);
        *source = "env";
    } else {
        memcpy(r, "us-east-1", sizeof "us-east-1");
        *source = "default";
    }
    memcpy(cfg->region, r, strlen(r) + 1);
    return NS_OK;
}

/* ---- the run ---- */

#define RECV_JOBS 4     /* credentials, age key, shares, configuration */
#define RECV_REQUIRED 3 /* the configuration is optional */

struct recv_run;

typedef struct {
    struct recv_run *run;
    ns_enclave_step step;
    int fd;
    int optional;
    ns_buf *out;
    ns_err e;
    char detail[ENCLAVE_DETAIL_MAX];
    int64_t ms;
    int finished; /* under run->mu */
} recv_job;

/* The receivers of one boot and what they share (the fields below mu are under it). */
typedef struct recv_run {
    const ns_enclave_ops *ops;
    int timeout_ms;
    recv_job jobs[RECV_JOBS];
    pthread_t th[RECV_JOBS];
    int njobs, started;
    int cancel[2]; /* a byte in the pipe wakes every receiver: shut down */
    pthread_mutex_t mu;
    int failed;  /* set by the first receiver that fails (or on stop) */
    int first;   /* index of the first receiver that failed by itself, -1 if none */
    int done;    /* finished receivers */
    int closing; /* the required frames are in: the optional receiver was cancelled */
} recv_run;

static void recv_cancel(recv_run *r)
{
    char b = 1;
    if (write(r->cancel[1], &b, 1) != 1) {
        /* the pipe is empty and ours: this cannot fail short of a bug */
    }
}

static void *recv_thread(void *arg)
{
    recv_job *j = arg;
    recv_run *r = j->run;
    int64_t t0 = ns_now_ms();
    j->e = r->ops->recv(r->ops->ctx, j->fd, r->cancel[0], r->timeout_ms, j->out);
    j->ms = ns_now_ms() - t0;
    pthread_mutex_lock(&r->mu);
    if (j->e != NS_OK && j->optional && r->closing && j->e == NS_E_CLOSED) {
        j->e = NS_OK; /* no configuration was sent: closed once the rest was in */
        j->detail[0] = '\0';
        ns_buf_reset(j->out);
    } else if (j->e != NS_OK) {
        snprintf(j->detail, sizeof j->detail, "%s", ns_err_msg());
        ns_buf_reset(j->out);
        if (!r->failed) {
            r->failed = 1;
            r->first = (int)(j - r->jobs);
            recv_cancel(r);
        }
    }
    j->finished = 1;
    r->done++;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void step_done(const ns_enclave_ops *ops, ns_enclave_step s, int64_t t0, ns_err e,
                      const char *detail)
{
    if (ops->on_step) {
        ops->on_step(ops->ctx, s, ns_now_ms() - t0, e, detail ? detail : ns_err_msg());
    }
}

typedef struct {
    ns_buf creds, age_ct, shares_ct, config, age_key, keys;
} enclave_bufs;

static void bufs_free(enclave_bufs *b)
{
    ns_buf_free(&b->creds);
    ns_buf_free(&b->age_ct);
    ns_buf_free(&b->shares_ct);
    ns_buf_free(&b->config);
    ns_buf_free(&b->age_key);
    ns_buf_free(&b->keys);
}

static const ns_enclave_step recv_steps[RECV_JOBS] = {NS_STEP_RECV_CREDS, NS_STEP_RECV_AGE_KEY,
                                                      NS_STEP_RECV_SHARES, NS_STEP_RECV_CONFIG};

static void recv_addrs(const ns_enclave_cfg *cfg, const ns_addr *addrs[RECV_JOBS])
{
    addrs[0] = &cfg->creds_listen;
    addrs[1] = &cfg->age_key_listen;
    addrs[2] = &cfg->shares_listen;
    addrs[3] = &cfg->config_listen;
}

/* Listens on every receiver's address first: the host's pushes retry until all are up.
 * *bad is the job whose listener failed. */
static ns_err recv_listen(recv_run *r, const ns_addr *const addrs[RECV_JOBS], int *bad)
{
    for (int i = 0; i < r->njobs; i++) {
        char name[NS_ADDR_STR_MAX];
        ns_addr_format(addrs[i], name, sizeof name);
        ns_err e = ns_addr_listen(addrs[i], 4, NS_LISTEN_NONBLOCK, &r->jobs[i].fd);
        if (e != NS_OK) {
            *bad = i;
            return ns_fail_ctx(e, "listen on %s", name);
        }
    }
    return NS_OK;
}

/* One thread per receiver; *bad is the one that could not start (the others are cancelled). */
static ns_err recv_start(recv_run *r, int *bad)
{
    for (int i = 0; i < r->njobs; i++) {
        if (pthread_create(&r->th[i], NULL, recv_thread, &r->jobs[i]) != 0) {
            pthread_mutex_lock(&r->mu);
            r->failed = 1;
            recv_cancel(r);
            pthread_mutex_unlock(&r->mu);
            *bad = i;
            return ns_fail(NS_E_INTERNAL, "cannot start a receiver thread");
        }
        r->started++;
    }
    return NS_OK;
}

/* Until every started receiver is done. A stop request (SIGTERM) shuts the listeners down like a
 * failure does; the required frames all in closes the optional one. */
static void recv_wait(recv_run *r, ns_stop *stop)
{
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int finished = r->done == r->started;
        if (!finished && *stop && !r->failed) {
            r->failed = 1;
            recv_cancel(r);
        }
        int required = r->started >= RECV_REQUIRED;
        for (int i = 0; i < RECV_REQUIRED && i < r->started; i++) {
            required &= r->jobs[i].finished && r->jobs[i].e == NS_OK;
        }
        if (!finished && required && !r->closing && !r->failed) {
            r->closing = 1;
            recv_cancel(r);
        }
        pthread_mutex_unlock(&r->mu);
        if (finished) {
            break;
        }
        usleep(ENCLAVE_STOP_POLL_MS * 1000);
    }
    for (int i = 0; i < r->started; i++) {
        pthread_join(r->th[i], NULL);
    }
}

/* Reports each receiver. The step that failed is the first one that failed by itself, not one
 * shut down because of it (or, on a stop request, the first still waiting). */
static ns_err recv_report(recv_run *r, ns_enclave_step *failed)
{
    int pick = r->first;
    for (int i = 0; i < r->njobs; i++) {
        recv_job *j = &r->jobs[i];
        if (r->ops->on_step) {
            const char *d = j->detail;
            if (j->optional && j->e == NS_OK) {
                d = j->out->len ? "" : "none sent";
            }
            r->ops->on_step(r->ops->ctx, j->step, j->ms, j->e, d);
        }
        if (pick < 0 && j->e != NS_OK) {
            pick = i;
        }
    }
    if (pick < 0) {
        return NS_OK;
    }
    *failed = r->jobs[pick].step;
    return ns_fail(r->jobs[pick].e, "%s", r->jobs[pick].detail);
}

/* On success the listeners stay open in lfds (the caller refuses late frames on them). */
static ns_err receive_all(const ns_enclave_cfg *cfg, const ns_enclave_ops *ops, enclave_bufs *b,
                          ns_stop *stop, ns_enclave_step *failed, int lfds[RECV_JOBS])
{
    const ns_addr *addrs[RECV_JOBS];
    ns_buf *outs[RECV_JOBS] = {&b->creds, &b->age_ct, &b->shares_ct, &b->config};
    recv_run *r = calloc(1, sizeof *r);
    int64_t t0 = ns_now_ms();
    int bad = 0;
    ns_err e;

    if (r == NULL) {
        *failed = recv_steps[0];
        return ns_fail(NS_E_NOMEM, "out of memory for the receivers");
    }
    recv_addrs(cfg, addrs);
    r->ops = ops;
    r->timeout_ms = cfg->recv_timeout_ms;
    r->njobs = cfg->config_enabled ? RECV_JOBS : RECV_REQUIRED;
    r->first = -1;
    r->cancel[0] = r->cancel[1] = -1;
    pthread_mutex_init(&r->mu, NULL);
    for (int i = 0; i < RECV_JOBS; i++) {
        r->jobs[i] = (recv_job){.run = r,
                                .step = recv_steps[i],
                                .fd = -1,
                                .optional = i >= RECV_REQUIRED,
                                .out = outs[i]};
    }
    if (pipe2(r->cancel, O_CLOEXEC) != 0) {
        e = ns_fail_errno(NS_E_INTERNAL, "pipe");
    } else {
        e = recv_listen(r, addrs, &bad);
    }
    if (e == NS_OK) {
        e = recv_start(r, &bad);
        recv_wait(r, stop); /* when a thread did not start, the others were cancelled */
        if (e == NS_OK) {
            e = recv_report(r, failed); /* names its own step */
            bad = -1;
        }
    }
    if (e != NS_OK && bad >= 0) {
        *failed = recv_steps[bad];
        step_done(ops, recv_steps[bad], t0, e, NULL);
    }
    for (int i = 0; i < r->njobs; i++) {
        if (e == NS_OK) {
            lfds[i] = r->jobs[i].fd;
        } else {
            ns_addr_unlisten(addrs[i], r->jobs[i].fd);
        }
    }
    for (int i = 0; i < 2; i++) {
        if (r->cancel[i] >= 0) {
            close(r->cancel[i]);
        }
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
    return e;
}

ns_err ns_enclave_preflight(const ns_enclave_facts *f)
{
    static const uint8_t zero[48];
    ENSURE(f->nsm_ok, NS_E_DENIED,
           "refusing to decrypt: check=nsm: the NSM does not answer (%s); nothing can be measured "
           "or attested",
           f->nsm_error ? f->nsm_error : "no device");
    ENSURE(memcmp(f->pcr0, zero, sizeof zero) != 0 || f->allow_debug, NS_E_DENIED,
           "refusing to decrypt: check=debug-mode: PCR0 is all zero (a debug-mode enclave, whose "
           "memory the parent can read); build the image with ALLOW_DEBUG_MODE=1 to allow it");
    ENSURE(!f->is_pid1 || (f->hwrng != NULL && strcmp(f->hwrng, "nsm-hwrng") == 0), NS_E_DENIED,
           "refusing to decrypt: check=hwrng: the kernel's hwrng is \"%s\", not the NSM's "
           "(nsm-hwrng): a kernel without the NSM driver, or with another hwrng it prefers",
           f->hwrng ? f->hwrng : "unreadable");
    ENSURE(f->pool_ready, NS_E_DENIED,
           "refusing to decrypt: check=random-pool: the kernel's random pool is not initialised "
           "(keys made now would be guessable)");
    return NS_OK;
}

/* After the receive phase: every connection to a receiver's address is refused (status 06). */
typedef struct {
    const ns_enclave_ops *ops;
    const int *fds;
    int n;
    ns_stop done;
} refuser;

static void *refuse_thread(void *arg)
{
    refuser *r = arg;
    while (!r->done) {
        struct pollfd p[RECV_JOBS];
        int n = 0;
        for (int i = 0; i < r->n; i++) {
            if (r->fds[i] >= 0) {
                p[n++] = (struct pollfd){.fd = r->fds[i], .events = POLLIN};
            }
        }
        if (n == 0 || poll(p, (nfds_t)n, ENCLAVE_STOP_POLL_MS) <= 0) {
            if (n == 0) {
                usleep(ENCLAVE_STOP_POLL_MS * 1000);
            }
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (p[i].revents & POLLIN) {
                r->ops->refuse(r->ops->ctx, p[i].fd);
            }
        }
    }
    return NULL;
}

/* Applies the configuration document, if one came, to a copy of the configuration. */
static ns_err configure(const ns_enclave_cfg *cfg, const ns_buf *doc_bytes, ns_enclave_cfg *eff,
                        char *detail, size_t cap)
{
    ns_enclave_doc doc;
    const char *src = "default";
    *eff = *cfg;
    if (doc_bytes->len > 0) {
        GUARD(ns_enclave_doc_parse(&doc, doc_bytes->data, doc_bytes->len));
    }
    GUARD(ns_enclave_cfg_apply(eff, doc_bytes->len > 0 ? &doc : NULL, &src));
    snprintf(detail, cap, "region=%s region_from=%s document=%s kms_key_id=%s kms_endpoint=%s",
             eff->region, src, doc_bytes->len > 0 ? "yes" : "none",
             eff->kms_key_id[0] ? eff->kms_key_id : "-",
             eff->kms_endpoint[0] ? eff->kms_endpoint : "default");
    return NS_OK;
}

/* Reports step S (started at t0) and, when it failed, names it in *failed. Returns e. */
static ns_err step_end(const ns_enclave_ops *ops, ns_enclave_step s, int64_t t0, ns_err e,
                       const char *detail, ns_enclave_step *failed)
{
    if (e != NS_OK) {
        *failed = s;
        detail = NULL; /* the error's message */
    }
    step_done(ops, s, t0, e, detail);
    return e;
}

/* The fail-closed checks, then PCR16 <- the inputs, locked (skipped with attest=0). */
static ns_err run_measure(const ns_enclave_cfg *cfg, const ns_enclave_ops *ops,
                          const enclave_bufs *b, ns_enclave_step *failed)
{
    char detail[ENCLAVE_DETAIL_MAX];
    if (cfg->attest == 0) {
        step_done(ops, NS_STEP_MEASURE, ns_now_ms(), NS_OK,
                  "skipped: NSIGN_ENCLAVE_ATTEST=0 (development only: no fail-closed checks, "
                  "PCR16 not measured)");
        return NS_OK;
    }
    int64_t t0 = ns_now_ms();
    GUARD(step_end(ops, NS_STEP_PREFLIGHT, t0, ops->preflight(ops->ctx, cfg), "", failed));
    /* The order is the measurement's: age-key ciphertext, shares ciphertext, config. */
    const ns_buf *inputs[3] = {&b->age_ct, &b->shares_ct, &b->config};
    const size_t n = b->config.len > 0 ? 3 : 2;
    uint8_t pcr[NS_PCR_LEN];
    char hex[NS_PCR_HEX_LEN];
    t0 = ns_now_ms();
    ns_err e = ops->measure(ops->ctx, inputs, n, pcr);
    if (e == NS_OK) {
        ns_pcr_hex(hex, pcr);
        snprintf(detail, sizeof detail, "pcr16=%s inputs=age-key,shares%s locked=1", hex,
                 n == 3 ? ",config" : "");
    }
    return step_end(ops, NS_STEP_MEASURE, t0, e, detail, failed);
}

/* KMS, then age, then the keys into the service; each input is wiped once it has been used,
 * whatever happened. */
static ns_err run_decrypt(const ns_enclave_cfg *cfg, const ns_enclave_ops *ops, enclave_bufs *b,
                          ns_enclave_step *failed)
{
    int64_t t0 = ns_now_ms();
    ns_err e = ops->kms_decrypt(ops->ctx, cfg, &b->creds, &b->age_ct, &b->age_key);
    ns_buf_free(&b->creds);
    ns_buf_free(&b->age_ct);
    GUARD(step_end(ops, NS_STEP_KMS, t0, e, "", failed));
    step_done(ops, NS_STEP_WIPE, ns_now_ms(), NS_OK, "");

    t0 = ns_now_ms();
    e = ops->age_decrypt(ops->ctx, &b->age_key, &b->shares_ct, &b->keys);
    ns_buf_free(&b->age_key);
    ns_buf_free(&b->shares_ct);
    GUARD(step_end(ops, NS_STEP_AGE, t0, e, "", failed));

    t0 = ns_now_ms();
    e = ops->load_keys(ops->ctx, &b->keys);
    ns_buf_free(&b->keys);
    return step_end(ops, NS_STEP_LOAD_KEYS, t0, e, "", failed);
}

ns_err ns_enclave_run(const ns_enclave_cfg *cfg, const ns_enclave_ops *ops, ns_stop *stop,
                      ns_enclave_step *failed)
{
    enclave_bufs b;
    ns_err e;
    int64_t t0;
    char detail[ENCLAVE_DETAIL_MAX];
    int lfds[RECV_JOBS] = {-1, -1, -1, -1};
    refuser ref = {.ops = ops, .fds = lfds, .n = RECV_JOBS};
    pthread_t ref_th;
    int ref_started = 0;
    ns_enclave_cfg *eff = malloc(sizeof *eff);
    *failed = NS_STEP_CONFIG;
    ENSURE(eff != NULL, NS_E_NOMEM, "out of memory for the configuration");

    ns_buf_init_secret(&b.creds, NS_ENCLAVE_CREDS_MAX);
    ns_buf_init_secret(&b.age_ct, NS_ENCLAVE_AGE_KEY_CT_MAX);
    ns_buf_init_secret(&b.shares_ct, NS_ENCLAVE_SHARES_CT_MAX);
    ns_buf_init_secret(&b.config, NS_ENCLAVE_CONFIG_MAX);
    ns_buf_init_secret(&b.age_key, NS_ENCLAVE_AGE_KEY_MAX);
    ns_buf_init_secret(&b.keys, NS_ENCLAVE_SHARES_MAX);
    *failed = NS_STEP_COUNT;

    t0 = ns_now_ms();
    e = receive_all(cfg, ops, &b, stop, failed, lfds);
    if (e != NS_OK) {
        goto out;
    }
    step_done(ops, NS_STEP_RECEIVE, t0, NS_OK, "");
    /* From here on no input changes: a late frame is refused, not taken. */
    if (ops->refuse != NULL && pthread_create(&ref_th, NULL, refuse_thread, &ref) == 0) {
        ref_started = 1;
    }
    e = run_measure(cfg, ops, &b, failed);
    if (e != NS_OK) {
        goto out;
    }
    t0 = ns_now_ms();
    e = step_end(ops, NS_STEP_CONFIG, t0, configure(cfg, &b.config, eff, detail, sizeof detail),
                 detail, failed);
    if (e != NS_OK) {
        goto out;
    }
    e = run_decrypt(eff, ops, &b, failed);
    if (e != NS_OK) {
        goto out;
    }
    t0 = ns_now_ms();
    e = ops->serve(ops->ctx, eff, stop);
    e = step_end(ops, NS_STEP_SERVE, t0, e, "", failed);
out:
    if (ref_started) {
        ref.done = 1;
        pthread_join(ref_th, NULL);
    }
    const ns_addr *addrs[RECV_JOBS];
    recv_addrs(cfg, addrs);
    for (int i = 0; i < RECV_JOBS; i++) {
        if (lfds[i] >= 0) {
            ns_addr_unlisten(addrs[i], lfds[i]);
        }
    }
    bufs_free(&b);
    free(eff);
    return e;
}
