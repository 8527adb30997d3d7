/*
 * test_enclave: the enclave-entrypoint configuration (seed variables, overrides, bad values)
 * and the orchestration of ns_enclave_run with fake steps: payloads received in any order,
 * each step reported, the failing step named, later steps never run after a failure, and
 * every buffer handed to a step in secret memory.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "enclave.h"
#include "iox.h"
#include "t.h"

/* ---- config ---- */

static int addr_is(const ns_addr *a, const char *want)
{
    char s[NS_ADDR_STR_MAX];
    ns_addr_format(a, s, sizeof s);
    if (strcmp(s, want) != 0) {
        printf("#   got %s want %s\n", s, want);
        return 0;
    }
    return 1;
}

static void test_cfg(void)
{
    ns_enclave_cfg c;
    t_env = NULL;
    CHECK_ERR(ns_enclave_cfg_load(&c, t_getenv, NULL, 0), NS_OK, "defaults load");
    CHECK(addr_is(&c.creds_listen, "vsock:any:7100"), "creds on vsock:any:7100");
    CHECK(addr_is(&c.age_key_listen, "vsock:any:7101"), "age key on vsock:any:7101");
    CHECK(addr_is(&c.shares_listen, "vsock:any:7102"), "shares on vsock:any:7102");
    CHECK(addr_is(&c.sign_listen, "tcp:127.0.0.1:50051"), "sign-service on 127.0.0.1:50051");
    CHECK(c.ingress_enabled && addr_is(&c.ingress_listen, "vsock:any:50051"), "ingress 50051");
    CHECK(c.egress_enabled && addr_is(&c.egress_listen, "tcp:127.0.0.1:8080") &&
              addr_is(&c.egress_connect, "vsock:3:8080"),
          "egress tcp:127.0.0.1:8080 -> vsock:3:8080");
    CHECK(addr_is(&c.kms_proxy, "vsock:3:5000"), "kms proxy vsock:3:5000");
    CHECK(strcmp(c.region, "us-east-1") == 0, "region us-east-1");
    CHECK(c.attest == -1, "attestation auto");
    CHECK(c.require_client_auth == 1 && c.min_policy_epoch == 0,
          "minimum policy: client authentication required, epoch 0, by default");
    CHECK(!c.heartbeat_enabled && c.modules[0] == '\0', "no heartbeat or modules unless PID 1");
    CHECK_ERR(ns_enclave_cfg_load(&c, t_getenv, NULL, 1), NS_OK, "pid1 defaults load");
    CHECK(c.heartbeat_enabled && addr_is(&c.heartbeat, "vsock:3:9000"), "pid1: heartbeat 9000");
    CHECK(strcmp(c.modules, "/nsm.ko") == 0, "pid1: loads /nsm.ko");

    static const char *const env1[] = {"AWS_CREDS_VSOCK_PORT",
                                       "8100",
                                       "KMS_PROXY_PORT",
                                       "6000",
                                       "PARENT_CID",
                                       "5",
                                       "VSOCK_PORT",
                                       "9051",
                                       "HOST_EGRESS_ENABLED",
                                       "0",
                                       "AWS_REGION",
                                       "eu-west-1",
                                       "NSIGN_ENCLAVE_SHARES_ADDR",
                                       "unix:/tmp/x.sock",
                                       "NSIGN_ENCLAVE_INGRESS_ADDR",
                                       "none",
                                       "NSIGN_ENCLAVE_HEARTBEAT_ADDR",
                                       "tcp:127.0.0.1:9",
                                       "NSIGN_ENCLAVE_RECV_TIMEOUT",
                                       "2.5",
                                       "NSIGN_ENCLAVE_ATTEST",
                                       "0",
                                       "NSIGN_ALLOW_ANONYMOUS_CLIENTS",
                                       "1",
                                       "NSIGN_MIN_POLICY_EPOCH",
                                       "4294967295",
                                       NULL};
    t_env = env1;
    CHECK_ERR(ns_enclave_cfg_load(&c, t_getenv, NULL, 0), NS_OK, "overrides load");
    CHECK(addr_is(&c.creds_listen, "vsock:any:8100"), "AWS_CREDS_VSOCK_PORT honoured");
    CHECK(addr_is(&c.kms_proxy, "vsock:5:6000"), "KMS_PROXY_PORT and PARENT_CID honoured");
    CHECK(addr_is(&c.sign_listen, "tcp:127.0.0.1:9051"), "VSOCK_PORT moves the sign-service");
    CHECK(!c.egress_enabled, "HOST_EGRESS_ENABLED=0 disables egress");
    CHECK(!c.ingress_enabled, "ingress none");
    CHECK(addr_is(&c.shares_listen, "unix:/tmp/x.sock"), "address override");
    CHECK(c.heartbeat_enabled && addr_is(&c.heartbeat, "tcp:127.0.0.1:9"),
          "explicit heartbeat address enables it");
    CHECK(c.recv_timeout_ms == 2500, "receive timeout 2.5 s");
    CHECK(c.attest == 0 && strcmp(c.region, "eu-west-1") == 0, "attest off, region");
    CHECK(c.require_client_auth == 0 && c.min_policy_epoch == 4294967295u,
          "NSIGN_ALLOW_ANONYMOUS_CLIENTS=1, NSIGN_MIN_POLICY_EPOCH=4294967295");

    static const char *const bad[][3] = {
        {"AWS_CREDS_VSOCK_PORT", "70x", "non-numeric port"},
        {"AGE_KEY_VSOCK_PORT", "0", "port 0"},
        {"VSOCK_PORT", "70000", "tcp port > 65535"},
        {"NSIGN_ENCLAVE_CREDS_ADDR", "vsock:nope:1", "bad address"},
        {"NSIGN_ENCLAVE_CREDS_ADDR", "none", "creds cannot be none"},
        {"NSIGN_ENCLAVE_RECV_TIMEOUT", "-1", "negative timeout"},
        {"NSIGN_ENCLAVE_ATTEST", "maybe", "bad attest flag"},
        {"HOST_EGRESS_ENABLED", "yes", "bad egress flag"},
        {"NSIGN_ENCLAVE_SIGN_THREADS", "100000", "too many threads"},
        {"NSIGN_ALLOW_ANONYMOUS_CLIENTS", "yes", "bad anonymous-clients flag"},
        {"NSIGN_MIN_POLICY_EPOCH", "4294967296", "epoch above 2^32-1"},
        {"NSIGN_MIN_POLICY_EPOCH", "-1", "negative epoch"},
        {"NSIGN_MIN_POLICY_EPOCH", "2x", "epoch not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *env[] = {bad[i][0], bad[i][1], NULL};
        t_env = env;
        CHECK_ERR(ns_enclave_cfg_load(&c, t_getenv, NULL, 0), NS_E_USAGE, "rejects %s", bad[i][2]);
        CHECK(strstr(ns_err_msg(), bad[i][0]) != NULL, "error names %s", bad[i][0]);
    }
    t_env = NULL;
}

static void test_cfg_obs(void)
{
    ns_enclave_cfg c;
    t_env = NULL;
    CHECK_ERR(ns_enclave_cfg_load_ex(&c, t_getenv, NULL, 0, 0), NS_OK, "obs: dev defaults");
    CHECK(!c.log_out[0] && !c.audit_out[0] && !c.metrics[0],
          "obs: off outside an enclave (no AF_VSOCK unasked)");
    CHECK_ERR(ns_enclave_cfg_load_ex(&c, t_getenv, NULL, 0, 1), NS_OK, "obs: in an enclave");
    CHECK(strcmp(c.log_out, "vsock:3:7110") == 0 && strcmp(c.audit_out, "vsock:3:7111") == 0 &&
              strcmp(c.metrics, "vsock:any:7112") == 0,
          "obs: in an enclave, logs 7110 and audit 7111 to the parent, metrics on 7112");
    CHECK_ERR(ns_enclave_cfg_load_ex(&c, t_getenv, NULL, 1, 0), NS_OK, "obs: pid1");
    CHECK(c.log_out[0] && c.audit_out[0] && c.metrics[0], "obs: on as PID 1");
    static const char *const env[] = {"PARENT_CID",
                                      "5",
                                      "ENCLAVE_LOG_VSOCK_PORT",
                                      "8110",
                                      "NSIGN_ENCLAVE_AUDIT_ADDR",
                                      "none",
                                      "NSIGN_ENCLAVE_METRICS_ADDR",
                                      "unix:/tmp/m.sock",
                                      "NSIGN_ENCLAVE_AUDIT_EVERY",
                                      "7",
                                      "NSIGN_ENCLAVE_AUDIT_INTERVAL",
                                      "0.5",
                                      "NSIGN_ENCLAVE_STATUS_INTERVAL",
                                      "2",
                                      NULL};
    t_env = env;
    CHECK_ERR(ns_enclave_cfg_load_ex(&c, t_getenv, NULL, 0, 1), NS_OK, "obs: overrides");
    CHECK(strcmp(c.log_out, "vsock:5:8110") == 0, "obs: port and parent CID honoured");
    CHECK(!c.audit_out[0], "obs: none disables the audit address");
    CHECK(strcmp(c.metrics, "unix:/tmp/m.sock") == 0, "obs: metrics address override");
    CHECK(c.audit_every_n == 7 && c.audit_every_ms == 500 && c.status_every_ms == 2000,
          "obs: audit every 7 entries / 0.5 s, status every 2 s");
    static const char *const bad[][2] = {{"NSIGN_ENCLAVE_LOG_ADDR", "vsock:x:1"},
                                         {"NSIGN_ENCLAVE_AUDIT_EVERY", "0"},
                                         {"NSIGN_ENCLAVE_AUDIT_INTERVAL", "-2"},
                                         {"NSIGN_ENCLAVE_STATUS_INTERVAL", "abc"},
                                         {"METRICS_VSOCK_PORT", "0"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *e1[] = {bad[i][0], bad[i][1], NULL};
        t_env = e1;
        ns_err e = ns_enclave_cfg_load_ex(&c, t_getenv, NULL, 0, 1);
        CHECK(e != NS_OK && strstr(ns_err_msg(), bad[i][0]) != NULL, "obs: rejects %s=%s",
              bad[i][0], bad[i][1]);
    }
    t_env = NULL;
}

/* The log address of a boot that failed before its configuration was complete. */
static void test_log_addr(void)
{
    char a[NS_ADDR_STR_MAX];
    t_env = NULL;
    ns_enclave_log_addr(t_getenv, NULL, 1, a);
    CHECK(strcmp(a, "vsock:3:7110") == 0, "log addr: the default in an enclave (%s)", a);
    ns_enclave_log_addr(t_getenv, NULL, 0, a);
    CHECK(a[0] == '\0', "log addr: none outside an enclave (no AF_VSOCK unasked)");
    static const char *const e1[] = {"PARENT_CID", "5", "ENCLAVE_LOG_VSOCK_PORT", "8110", NULL};
    t_env = e1;
    ns_enclave_log_addr(t_getenv, NULL, 1, a);
    CHECK(strcmp(a, "vsock:5:8110") == 0, "log addr: port and parent CID honoured (%s)", a);
    /* What does not parse is the boot's error to report: the default stands in for it. */
    static const char *const e2[] = {
        "PARENT_CID", "x", "ENCLAVE_LOG_VSOCK_PORT", "0", "NSIGN_ENCLAVE_LOG_ADDR",
        "vsock:x:1",  NULL};
    t_env = e2;
    ns_enclave_log_addr(t_getenv, NULL, 1, a);
    CHECK(strcmp(a, "vsock:3:7110") == 0 && ns_err_msg()[0] == '\0',
          "log addr: unparsable values fall back to the default, no error left (%s)", a);
    ns_enclave_log_addr(t_getenv, NULL, 0, a);
    CHECK(a[0] == '\0', "log addr: unparsable override outside an enclave: none");
    static const char *const e3[] = {"NSIGN_ENCLAVE_LOG_ADDR", "unix:/tmp/l.sock", NULL};
    t_env = e3;
    ns_enclave_log_addr(t_getenv, NULL, 0, a);
    CHECK(strcmp(a, "unix:/tmp/l.sock") == 0, "log addr: the override, also outside an enclave");
    static const char *const e4[] = {"NSIGN_ENCLAVE_LOG_ADDR", "none", NULL};
    t_env = e4;
    ns_enclave_log_addr(t_getenv, NULL, 1, a);
    CHECK(a[0] == '\0', "log addr: none disables");
    t_env = NULL;
}

/* ---- the configuration document ---- */

static void test_doc(void)
{
    ns_enclave_doc d;
    const char *ok1 = "{\"region\":\"eu-west-1\",\"kms_key_id\":\"alias/nsign\","
                      "\"kms_endpoint\":\"https://kms.eu-west-1.amazonaws.com\"}";
    CHECK_ERR(ns_enclave_doc_parse(&d, (const uint8_t *)ok1, strlen(ok1)), NS_OK, "doc: all three");
    CHECK(strcmp(d.region, "eu-west-1") == 0 && strcmp(d.kms_key_id, "alias/nsign") == 0 &&
              strcmp(d.kms_endpoint, "https://kms.eu-west-1.amazonaws.com") == 0,
          "doc: values");
    CHECK_ERR(ns_enclave_doc_parse(&d, (const uint8_t *)"{}\n", 3), NS_OK, "doc: empty object");
    CHECK(d.region[0] == '\0', "doc: nothing given");
    static const char *const bad[][2] = {
        {"{\"region\":\"eu-west-1\",\"region\":\"us-east-1\"}", "region"},
        {"{\"Region\":\"eu-west-1\"}", "Region"},
        {"{\"region\":1}", "region"},
        {"{\"region\":null}", "region"},
        {"{\"kms_key_id\":[\"a\"]}", "kms_key_id"},
        {"{\"region\":\"EU-WEST-1\"}", "region"},
        {"{\"region\":\"eu-west\"}", "region"},
        {"{\"region\":\"eu-west-1.evil.com\"}", "region"},
        {"{\"region\":\"\"}", "region"},
        {"{\"kms_key_id\":\"alias/a b\"}", "kms_key_id"},
        {"{\"kms_key_id\":\"\"}", "kms_key_id"},
        {"{\"kms_endpoint\":\"http://kms.eu-west-1.amazonaws.com\"}", "kms_endpoint"},
        {"{\"kms_endpoint\":\"https://kms.eu-west-1.amazonaws.com/x\"}", "kms_endpoint"},
        {"{\"kms_endpoint\":\"kms.eu-west-1.amazonaws.com\"}", "kms_endpoint"},
        {"{\"kms_endpoint\":\"https://a_b.example\"}", "kms_endpoint"},
        {"[\"region\"]", "object"},
        {"{\"region\":\"eu-west-1\"} {}", "after"},
        {"{\"region\":\"eu-west-1\"", "object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ns_err e = ns_enclave_doc_parse(&d, (const uint8_t *)bad[i][0], strlen(bad[i][0]));
        CHECK(e == NS_E_PARSE && strstr(ns_err_msg(), bad[i][1]) != NULL,
              "doc rejects %s, naming %s", bad[i][0], bad[i][1]);
    }
    static char big[NS_ENCLAVE_CONFIG_MAX + 2];
    memset(big, ' ', sizeof big - 1);
    big[0] = '{';
    big[sizeof big - 2] = '}';
    CHECK_ERR(ns_enclave_doc_parse(&d, (const uint8_t *)big, strlen(big)), NS_E_TOO_BIG,
              "doc over 4 KiB refused");
    CHECK(ns_enclave_region_ok("us-gov-west-1") && ns_enclave_region_ok("ap-southeast-2") &&
              ns_enclave_region_ok("cn-north-1") && !ns_enclave_region_ok("us-east-") &&
              !ns_enclave_region_ok("useast1") && !ns_enclave_region_ok("us-east-1a"),
          "region names");

    /* Precedence: key ARN > document > image env > us-east-1. */
    ns_enclave_cfg c;
    const char *src = NULL;
    static const char *const env_r[] = {"AWS_REGION", "sa-east-1", NULL};
    t_env = NULL;
    CHECK_ERR(ns_enclave_cfg_load(&c, t_getenv, NULL, 0), NS_OK, "cfg");
    CHECK_ERR(ns_enclave_cfg_apply(&c, NULL, &src), NS_OK, "apply nothing");
    CHECK(strcmp(c.region, "us-east-1") == 0 && strcmp(src, "default") == 0, "default us-east-1");
    t_env = env_r;
    CHECK_ERR(ns_enclave_cfg_load(&c, t_getenv, NULL, 0), NS_OK, "cfg env");
    CHECK_ERR(ns_enclave_cfg_apply(&c, NULL, &src), NS_OK, "apply nothing, env");
    CHECK(strcmp(c.region, "sa-east-1") == 0 && strcmp(src, "env") == 0, "image env next");
    const char *doc1 = "{\"region\":\"eu-west-1\",\"kms_endpoint\":\"https://k.example:8443\"}";
    CHECK_ERR(ns_enclave_doc_parse(&d, (const uint8_t *)doc1, strlen(doc1)), NS_OK, "doc1");
    CHECK_ERR(ns_enclave_cfg_apply(&c, &d, &src), NS_OK, "apply doc over env");
    CHECK(strcmp(c.region, "eu-west-1") == 0 && strcmp(src, "config") == 0 &&
              strcmp(c.kms_endpoint, "https://k.example:8443") == 0,
          "document over the image env; endpoint replaced");
    const char *doc2 = "{\"region\":\"eu-west-1\",\"kms_key_id\":"
                       "\"arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x\"}";
    CHECK_ERR(ns_enclave_doc_parse(&d, (const uint8_t *)doc2, strlen(doc2)), NS_OK, "doc2");
    CHECK_ERR(ns_enclave_cfg_apply(&c, &d, &src), NS_OK, "apply ARN");
    CHECK(strcmp(c.region, "us-gov-west-1") == 0 && strcmp(src, "key-arn") == 0,
          "a full key ARN (any partition) wins");
    t_env = NULL;
}

/* ---- the fail-closed checks ---- */

static void test_preflight(void)
{
    ns_enclave_facts f;
    memset(&f, 0, sizeof f);
    f.nsm_ok = 1;
    f.pcr0[0] = 1;
    f.pool_ready = 1;
    CHECK_ERR(ns_enclave_preflight(&f), NS_OK, "preflight: all good (not PID 1)");
    f.is_pid1 = 1;
    f.hwrng = "nsm-hwrng";
    CHECK_ERR(ns_enclave_preflight(&f), NS_OK, "preflight: PID 1 with the NSM's hwrng");
    static const struct {
        int what;
        const char *line;
    } cases[] = {{0, "check=nsm"},
                 {1, "check=debug-mode"},
                 {2, "check=hwrng"},
                 {3, "check=hwrng"},
                 {4, "check=random-pool"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ns_enclave_facts g = f;
        switch (cases[i].what) {
        case 0:
            g.nsm_ok = 0;
            g.nsm_error = "timed out";
            break;
        case 1:
            memset(g.pcr0, 0, sizeof g.pcr0);
            break;
        case 2:
            g.hwrng = "virtio_rng.0";
            break;
        case 3:
            g.hwrng = NULL;
            break;
        case 4:
            g.pool_ready = 0;
            break;
        }
        ns_err e = ns_enclave_preflight(&g);
        CHECK(e == NS_E_DENIED && strstr(ns_err_msg(), cases[i].line) != NULL &&
                  strstr(ns_err_msg(), "refusing to decrypt") != NULL,
              "preflight fails %s: %s", cases[i].line, ns_err_msg());
    }
    memset(f.pcr0, 0, sizeof f.pcr0);
    f.allow_debug = 1;
    CHECK_ERR(ns_enclave_preflight(&f), NS_OK, "debug mode accepted when the image allows it");
    f.is_pid1 = 0;
    f.hwrng = NULL;
    f.allow_debug = 0;
    f.pcr0[5] = 9;
    CHECK_ERR(ns_enclave_preflight(&f), NS_OK, "hwrng not checked when not PID 1");
}

/* ---- orchestration with fake steps ---- */

typedef struct {
    int fail_at;    /* ns_enclave_step to fail, or NS_STEP_COUNT */
    int block_recv; /* which recv blocks until shut down (-1: none) */
    int calls[NS_STEP_COUNT];
    ns_err reported[NS_STEP_COUNT];
    int reports;
    int order[16];
    pthread_mutex_t mu;
    char keys_seen[64];
    const char *config; /* the configuration frame, NULL: none sent (its receiver waits) */
    char region_seen[64];
    char measured[128]; /* the measured inputs, joined with '|' */
    int kms_after_measure;
} fake;

/* Which receiver a listening fd belongs to: the last character of its unix socket path. */
static int fake_index(int fd)
{
    struct sockaddr_un sa;
    socklen_t n = sizeof sa;
    memset(&sa, 0, sizeof sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &n) != 0 || sa.sun_family != AF_UNIX) {
        return -1;
    }
    size_t l = strlen(sa.sun_path);
    return l ? sa.sun_path[l - 1] - '0' : -1;
}

static ns_err fake_recv(void *ctx, int fd, int cancel_fd, int timeout_ms, ns_buf *out)
{
    fake *f = ctx;
    int idx = fake_index(fd);
    ENSURE(idx >= 0 && idx < 4, NS_E_INTERNAL, "unexpected listener");
    ENSURE(out->secret, NS_E_INTERNAL, "receive buffer is not secret memory");
    ns_enclave_step s = (ns_enclave_step)(NS_STEP_RECV_CREDS + idx);
    pthread_mutex_lock(&f->mu);
    f->calls[s]++;
    pthread_mutex_unlock(&f->mu);
    if (f->block_recv == idx || (idx == 3 && f->config == NULL)) {
        /* Waits like a receiver whose sender never comes, until the run shuts it down. */
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = cancel_fd, .events = POLLIN}};
        int r = poll(p, 2, timeout_ms);
        ENSURE(r > 0, NS_E_TIMEOUT, "fake receiver timed out");
        ENSURE(p[1].revents & POLLIN, NS_E_INTERNAL, "nobody should connect");
        BAIL(NS_E_CLOSED, "receiver cancelled");
    }
    if (f->fail_at == (int)s) {
        BAIL(NS_E_AUTH, "fake frame digest mismatch on receiver %d", idx);
    }
    if (idx == 3) {
        return ns_buf_append_str(out, f->config);
    }
    static const char *const payloads[] = {"{creds}", "age-ct", "shares-ct"};
    return ns_buf_append_str(out, payloads[idx]);
}

static int buf_is(const ns_buf *b, const char *s)
{
    return b->len == strlen(s) && memcmp(b->data, s, b->len) == 0;
}

static ns_err fake_kms(void *ctx, const ns_enclave_cfg *cfg, const ns_buf *creds, const ns_buf *ct,
                       ns_buf *out)
{
    fake *f = ctx;
    f->calls[NS_STEP_KMS]++;
    f->kms_after_measure = f->calls[NS_STEP_MEASURE] == 1;
    snprintf(f->region_seen, sizeof f->region_seen, "%s", cfg->region);
    ENSURE(buf_is(creds, "{creds}") && buf_is(ct, "age-ct"), NS_E_INTERNAL, "kms inputs wrong");
    if (f->fail_at == NS_STEP_KMS) {
        BAIL(NS_E_REMOTE, "fake KMS: AccessDeniedException");
    }
    ENSURE(out->secret, NS_E_INTERNAL, "age key buffer is not secret memory");
    return ns_buf_append_str(out, "AGE-SECRET-KEY-1FAKE");
}

static ns_err fake_age(void *ctx, const ns_buf *id, const ns_buf *ct, ns_buf *out)
{
    fake *f = ctx;
    f->calls[NS_STEP_AGE]++;
    ENSURE(out->secret, NS_E_INTERNAL, "keys buffer is not secret memory");
    ENSURE(buf_is(id, "AGE-SECRET-KEY-1FAKE") && buf_is(ct, "shares-ct"), NS_E_INTERNAL,
           "age inputs wrong");
    if (f->fail_at == NS_STEP_AGE) {
        BAIL(NS_E_AUTH, "fake age: header MAC mismatch");
    }
    return ns_buf_append_str(out, "{\"version\":1}");
}

static ns_err fake_load(void *ctx, const ns_buf *keys)
{
    fake *f = ctx;
    f->calls[NS_STEP_LOAD_KEYS]++;
    snprintf(f->keys_seen, sizeof f->keys_seen, "%.*s", (int)keys->len, (const char *)keys->data);
    if (f->fail_at == NS_STEP_LOAD_KEYS) {
        BAIL(NS_E_PARSE, "fake keys: entry 0 has no id");
    }
    return NS_OK;
}

static ns_err fake_serve(void *ctx, const ns_enclave_cfg *cfg, ns_stop *stop)
{
    fake *f = ctx;
    f->calls[NS_STEP_SERVE]++;
    if (f->fail_at == NS_STEP_SERVE) {
        BAIL(NS_E_IO, "fake serve: address in use");
    }
    return NS_OK;
}

static ns_err fake_preflight(void *ctx, const ns_enclave_cfg *cfg)
{
    fake *f = ctx;
    f->calls[NS_STEP_PREFLIGHT]++;
    if (f->fail_at == NS_STEP_PREFLIGHT) {
        BAIL(NS_E_DENIED, "refusing to decrypt: check=debug-mode: fake");
    }
    return NS_OK;
}

static ns_err fake_measure(void *ctx, const ns_buf *const *in, size_t n, uint8_t pcr[48])
{
    fake *f = ctx;
    f->calls[NS_STEP_MEASURE]++;
    f->measured[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(f->measured);
        snprintf(f->measured + l, sizeof f->measured - l, "%s%.*s", i ? "|" : "", (int)in[i]->len,
                 (const char *)in[i]->data);
    }
    memset(pcr, 0xAB, 48);
    return NS_OK;
}

static void fake_refuse(void *ctx, int fd)
{
    int c = accept(fd, NULL, NULL);
    if (c >= 0) {
        close(c);
    }
}

static void fake_step(void *ctx, ns_enclave_step s, int64_t ms, ns_err e, const char *detail)
{
    fake *f = ctx;
    f->reported[s] = e;
    if (f->reports < 16) {
        f->order[f->reports] = s;
    }
    f->reports++;
    CHECK(ms >= 0 && detail != NULL, "step %s reported with a duration and detail",
          ns_enclave_step_name(s));
}

static char t_dir[64];

static ns_stop t_stop;

static void *stop_later(void *arg)
{
    (void)arg;
    usleep(200 * 1000);
    t_stop = 1;
    return NULL;
}

static const char *t_config; /* the next run_case's configuration frame (NULL: none) */

static void run_case(fake *f, int fail_at, int block, ns_err want, ns_enclave_step want_step,
                     const char *what)
{
    ns_enclave_cfg c;
    char p[128];
    t_env = NULL;
    CHECK_ERR(ns_enclave_cfg_load(&c, t_getenv, NULL, 0), NS_OK, "%s: config", what);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "unix:%s/r%d", t_dir, i);
        ns_addr *a = i == 0   ? &c.creds_listen
                     : i == 1 ? &c.age_key_listen
                     : i == 2 ? &c.shares_listen
                              : &c.config_listen;
        CHECK_ERR(ns_addr_parse(a, p), NS_OK, "%s: address %d", what, i);
    }
    c.recv_timeout_ms = 20000;
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->fail_at = fail_at;
    f->block_recv = block;
    f->config = t_config;
    ns_enclave_ops ops = {f,          fake_recv, fake_kms,       fake_age,     fake_load,
                          fake_serve, fake_step, fake_preflight, fake_measure, fake_refuse};
    ns_enclave_step failed = NS_STEP_COUNT;
    pthread_t th;
    t_stop = 0;
    if (fail_at == NS_STEP_COUNT && block >= 0) {
        pthread_create(&th, NULL, stop_later, NULL); /* SIGTERM while waiting for a payload */
    }
    CHECK_ERR(ns_enclave_run(&c, &ops, &t_stop, &failed), want, "%s: result", what);
    if (fail_at == NS_STEP_COUNT && block >= 0) {
        pthread_join(th, NULL);
    }
    CHECK(failed == want_step, "%s: failed step is %s (got %s)", what,
          ns_enclave_step_name(want_step), ns_enclave_step_name(failed));
    pthread_mutex_destroy(&f->mu);
}

static void test_run(void)
{
    fake f;
    snprintf(t_dir, sizeof t_dir, "/tmp/ns-test-enclave-%d", (int)getpid());
    CHECK(mkdir(t_dir, 0700) == 0, "scratch dir");

    run_case(&f, NS_STEP_COUNT, -1, NS_OK, NS_STEP_COUNT, "happy path");
    CHECK(f.calls[NS_STEP_RECV_CREDS] == 1 && f.calls[NS_STEP_RECV_AGE_KEY] == 1 &&
              f.calls[NS_STEP_RECV_SHARES] == 1 && f.calls[NS_STEP_KMS] == 1 &&
              f.calls[NS_STEP_AGE] == 1 && f.calls[NS_STEP_LOAD_KEYS] == 1 &&
              f.calls[NS_STEP_SERVE] == 1,
          "every step ran once");
    CHECK(strcmp(f.keys_seen, "{\"version\":1}") == 0, "keys handed over in memory");
    CHECK(f.reports >= 8 && f.order[f.reports - 1] == NS_STEP_SERVE, "serve reported last");
    int wipe_after_kms = 0;
    for (int i = 1; i < f.reports && i < 16; i++) {
        if (f.order[i] == NS_STEP_WIPE && f.order[i - 1] == NS_STEP_KMS) {
            wipe_after_kms = 1;
        }
    }
    CHECK(wipe_after_kms, "credentials wiped right after kms-decrypt");
    CHECK(strcmp(f.measured, "age-ct|shares-ct") == 0, "measured: age-key ciphertext, shares");
    CHECK(f.kms_after_measure && f.calls[NS_STEP_PREFLIGHT] == 1, "checks and measure before kms");

    CHECK(f.reported[NS_STEP_RECV_CONFIG] == NS_OK && f.reported[NS_STEP_CONFIG] == NS_OK,
          "no configuration sent: its receiver closed once the rest was in, configure ok");
    CHECK(strcmp(f.region_seen, "us-east-1") == 0, "no configuration, no AWS_REGION: us-east-1");

    t_config = "{\"region\":\"eu-west-1\"}";
    run_case(&f, NS_STEP_COUNT, -1, NS_OK, NS_STEP_COUNT, "configuration frame");
    CHECK(strcmp(f.region_seen, "eu-west-1") == 0, "KMS runs in the configuration's region");
    CHECK(strcmp(f.measured, "age-ct|shares-ct|{\"region\":\"eu-west-1\"}") == 0,
          "measured: the configuration frame last");
    t_config = "{\"region\":\"eu-west-1\",\"kms_key_id\":"
               "\"arn:aws:kms:ap-south-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\"}";
    run_case(&f, NS_STEP_COUNT, -1, NS_OK, NS_STEP_COUNT, "configuration with a key ARN");
    CHECK(strcmp(f.region_seen, "ap-south-1") == 0, "a full key ARN's region wins");
    t_config = "{\"region\":\"eu-west-1\",\"color\":\"blue\"}";
    run_case(&f, NS_STEP_COUNT, -1, NS_E_PARSE, NS_STEP_CONFIG, "configuration, unknown member");
    CHECK(f.calls[NS_STEP_KMS] == 0, "nothing decrypted with a bad configuration");
    CHECK(strstr(ns_err_msg(), "color") != NULL, "the error names the member");
    t_config = NULL;

    run_case(&f, NS_STEP_RECV_AGE_KEY, 2, NS_E_AUTH, NS_STEP_RECV_AGE_KEY,
             "bad age-key frame while shares never come");
    CHECK(f.calls[NS_STEP_KMS] == 0 && f.calls[NS_STEP_SERVE] == 0, "nothing after a bad frame");
    CHECK(f.reported[NS_STEP_RECV_SHARES] == NS_E_CLOSED, "waiting receiver was shut down");
    CHECK(strstr(ns_err_msg(), "digest mismatch") != NULL, "error carries the receiver's detail");

    run_case(&f, NS_STEP_COUNT, 0, NS_E_CLOSED, NS_STEP_RECV_CREDS,
             "stop requested while credentials never come");
    CHECK(f.calls[NS_STEP_KMS] == 0, "nothing after a stop during receive");

    run_case(&f, NS_STEP_PREFLIGHT, -1, NS_E_DENIED, NS_STEP_PREFLIGHT, "a check fails");
    CHECK(f.calls[NS_STEP_MEASURE] == 0 && f.calls[NS_STEP_KMS] == 0,
          "nothing measured or decrypted after a failed check");
    run_case(&f, NS_STEP_KMS, -1, NS_E_REMOTE, NS_STEP_KMS, "kms fails");
    CHECK(f.calls[NS_STEP_AGE] == 0 && f.calls[NS_STEP_SERVE] == 0, "no age/serve after kms");
    CHECK(strstr(ns_err_msg(), "AccessDenied") != NULL, "kms detail kept");
    run_case(&f, NS_STEP_AGE, -1, NS_E_AUTH, NS_STEP_AGE, "age fails");
    CHECK(f.calls[NS_STEP_LOAD_KEYS] == 0, "no key load after age failure");
    run_case(&f, NS_STEP_LOAD_KEYS, -1, NS_E_PARSE, NS_STEP_LOAD_KEYS, "bad keys");
    CHECK(f.calls[NS_STEP_SERVE] == 0, "no serve with bad keys");
    run_case(&f, NS_STEP_SERVE, -1, NS_E_IO, NS_STEP_SERVE, "serve fails");

    /* A listener that cannot be created names its receiver. */
    ns_enclave_cfg c;
    CHECK_ERR(ns_enclave_cfg_load(&c, t_getenv, NULL, 0), NS_OK, "config");
    CHECK_ERR(ns_addr_parse(&c.creds_listen, "unix:/nonexistent-dir/x"), NS_OK, "bad path");
    c.config_enabled = 0; /* never a vsock listener on this machine */
    memset(&f, 0, sizeof f);
    ns_enclave_ops ops = {&f,         fake_recv, fake_kms,       fake_age,     fake_load,
                          fake_serve, fake_step, fake_preflight, fake_measure, fake_refuse};
    ns_enclave_step failed;
    t_stop = 0;
    CHECK(ns_enclave_run(&c, &ops, &t_stop, &failed) != NS_OK && failed == NS_STEP_RECV_CREDS,
          "unusable listen address fails receive-credentials");
    CHECK(strstr(ns_err_msg(), "/nonexistent-dir/x") != NULL, "error names the address");
    rmdir(t_dir);
}

int main(void)
{
    test_cfg();
    test_cfg_obs();
    test_log_addr();
    test_doc();
    test_preflight();
    test_run();
    T_DONE();
}
