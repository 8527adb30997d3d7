/*
 * runcfg: see runcfg.h. The loader is a sequence of named parts (the enclave, the S3 sources,
 * the pushes, ingress and egress, the KMS proxy, timing, observability); an empty variable means
 * its default, as in the seed's shell scripts.
 */
#include "runcfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "iox.h"

#define RUNCFG_U32 0xFFFFFFFFull
#define RUNCFG_REGION_MAX 128

typedef struct {
    ns_enclave_getenv_fn get;
    void *ctx;
} env;

/* NAME when set and not empty, else def. */
static const char *env_or(const env *v, const char *name, const char *def)
{
    const char *s = v->get(name, v->ctx);
    return (s && *s) ? s : def;
}

static ns_err copy_str(char *out, size_t cap, const char *v, const char *what)
{
    ENSURE(strlen(v) < cap, NS_E_TOO_BIG, "%s: longer than %zu bytes", what, cap - 1);
    memcpy(out, v, strlen(v) + 1);
    return NS_OK;
}

static ns_err env_str(const env *v, const char *name, const char *def, char *out, size_t cap)
{
    return copy_str(out, cap, env_or(v, name, def), name);
}

static ns_err env_uint(const env *v, const char *name, uint64_t def, uint64_t max, uint64_t *out)
{
    const char *s = v->get(name, v->ctx);
    if (s == NULL || *s == '\0') {
        *out = def;
        return NS_OK;
    }
    if (ns_parse_uint(s, max, out) != NS_OK) {
        BAIL(NS_E_USAGE, "%s=%s: want a number up to %llu", name, s, (unsigned long long)max);
    }
    return NS_OK;
}

static ns_err env_bool(const env *v, const char *name, int def, int *out)
{
    const char *s = v->get(name, v->ctx);
    if (s == NULL || *s == '\0') {
        *out = def;
    } else if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0) {
        *out = 1;
    } else if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0) {
        *out = 0;
    } else {
        BAIL(NS_E_USAGE, "%s=%s: want 1 or 0", name, s);
    }
    return NS_OK;
}

/* An address: NAME if set, else the default text; validated with the address parser. */
static ns_err env_addr(const env *v, const char *name, const char *def, char *out)
{
    const char *s = env_or(v, name, def);
    ns_addr a;
    ns_err e = ns_addr_parse(&a, s);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "%s", name);
    }
    return copy_str(out, NS_ADDR_STR_MAX, s, name);
}

/* The same, where "none" disables (out = ""). */
static ns_err env_addr_opt(const env *v, const char *name, const char *def, char *out)
{
    if (strcmp(env_or(v, name, def), "none") == 0) {
        out[0] = '\0';
        return NS_OK;
    }
    return env_addr(v, name, def, out);
}

/* The default address of a vsock port: vsock on Nitro, the emulator's unix socket with --emulator.
 * enclave_side: a port the enclave listens on (else one the host listens on for the enclave). */
static ns_err vsock_default(ns_runcfg *c, char *def, size_t cap, int enclave_side, uint64_t port)
{
    if (!c->emu && enclave_side) {
        snprintf(def, cap, "vsock:%s:%llu", c->cid, (unsigned long long)port);
        return NS_OK;
    }
    if (!c->emu) {
        snprintf(def, cap, "vsock:any:%llu", (unsigned long long)port);
        return NS_OK;
    }
    ns_emu_cfg *e = &c->emu_cfg;
    uint32_t *ports = enclave_side ? e->enclave_ports : e->parent_ports;
    size_t *n = enclave_side ? &e->n_enclave : &e->n_parent;
    ENSURE(*n < NS_EMU_MAX_PORTS - 1, NS_E_USAGE, "too many vsock ports for the emulator");
    ports[(*n)++] = (uint32_t)port;
    return ns_emu_addr(def, cap, c->emu_dir, enclave_side, (uint32_t)port);
}

/* A port's default address, overridden by the variable NAME. */
static ns_err port_addr(ns_runcfg *c, const env *v, const char *name, int enclave_side,
                        uint64_t port, char *out)
{
    char def[NS_RUNCFG_STR];
    GUARD(vsock_default(c, def, sizeof def, enclave_side, port));
    return env_addr(v, name, def, out);
}

static ns_err load_common(ns_runcfg_common *c, const env *v)
{
    memset(c, 0, sizeof *c);
    GUARD(env_str(v, "ENCLAVE_NAME", "sign-service-enclave", c->name, sizeof c->name));
    GUARD(env_str(v, "NSIGN_RUN_DIR", "/run/nsign", c->run_dir, sizeof c->run_dir));
    GUARD(env_str(v, "NITRO_CLI", "nitro-cli", c->nitro_name, sizeof c->nitro_name));
    for (const char *p = c->name; *p; p++) {
        ENSURE(*p != '/' && *p != '\n', NS_E_USAGE, "ENCLAVE_NAME must not contain '/'");
    }
    const char *emu = v->get("NSIGN_EMULATOR", v->ctx);
    c->emu = emu != NULL && strcmp(emu, "1") == 0;
    return NS_OK;
}

ns_err ns_runcfg_common_load(ns_runcfg_common *c, ns_enclave_getenv_fn get, void *ctx)
{
    env v = {get, ctx};
    return load_common(c, &v);
}

/* Which enclave: the EIF, its name and resources, debug mode, the emulator. */
static ns_err load_enclave(ns_runcfg *c, const env *v)
{
    ns_runcfg_common com;
    uint64_t cid, cpu, mem;
    GUARD(env_str(v, "EIF_PATH", "target/sign-service.enclave.eif", c->eif, sizeof c->eif));
    GUARD(env_str(v, "ENCLAVE_NAME", "sign-service-enclave", c->name, sizeof c->name));
    GUARD(env_str(v, "CONSOLE_FILE", "target/sign-service-enclave-console.log", c->console_file,
                  sizeof c->console_file));
    GUARD(load_common(&com, v));
    memcpy(c->run_dir, com.run_dir, sizeof c->run_dir);
    memcpy(c->nitro_name, com.nitro_name, sizeof c->nitro_name);
    c->emu = c->emu || com.emu;
    GUARD(env_uint(v, "ENCLAVE_CID", 16, 0xFFFFFFFEull, &cid));
    ENSURE(cid > 3, NS_E_USAGE, "ENCLAVE_CID=%llu: CIDs 0-3 are reserved; use 4 or more",
           (unsigned long long)cid);
    GUARD(env_uint(v, "CPU_COUNT", 2, 1024, &cpu));
    GUARD(env_uint(v, "MEMORY_MIB", 512, 1 << 24, &mem));
    ENSURE(cpu > 0 && mem > 0, NS_E_USAGE, "CPU_COUNT and MEMORY_MIB must be positive");
    snprintf(c->cid, sizeof c->cid, "%llu", (unsigned long long)cid);
    snprintf(c->cpu, sizeof c->cpu, "%llu", (unsigned long long)cpu);
    snprintf(c->mem, sizeof c->mem, "%llu", (unsigned long long)mem);
    GUARD(env_bool(v, "DEBUG_MODE", 0, &c->debug));
    GUARD(env_bool(v, "CONSOLE_STREAM_ENABLED", c->debug, &c->console_stream));
    if (c->emu) {
        uint64_t boot;
        snprintf(c->emu_dir, sizeof c->emu_dir, "%s/%s.emu", c->run_dir, c->name);
        GUARD(env_uint(v, "NSIGN_EMU_BOOT_TIMEOUT_SECONDS", NS_RUNCFG_EMU_BOOT_TIMEOUT_S, 86400,
                       &boot));
        c->emu_boot_s = (int)boot;
    }
    return NS_OK;
}

/* The two S3 objects the enclave's secrets come from. */
static ns_err load_sources(ns_runcfg *c, const env *v)
{
    GUARD(env_str(v, "AGE_KEY_S3_URI", "", c->age_uri, sizeof c->age_uri));
    GUARD(env_str(v, "KEY_SHARES_S3_URI", "", c->shares_uri, sizeof c->shares_uri));
    ENSURE(c->age_uri[0] && c->shares_uri[0], NS_E_USAGE,
           "AGE_KEY_S3_URI and KEY_SHARES_S3_URI must be set, e.g. "
           "AGE_KEY_S3_URI=s3://bucket/enclave/age-private.key.enc "
           "KEY_SHARES_S3_URI=s3://bucket/enclave/service_key_shares.json.age");
    ENSURE(strncmp(c->age_uri, "s3://", 5) == 0 && strncmp(c->shares_uri, "s3://", 5) == 0,
           NS_E_USAGE, "AGE_KEY_S3_URI and KEY_SHARES_S3_URI must start with s3://");
    return NS_OK;
}

/* Where the four frames go (the configuration frame may be "none"). */
static ns_err load_pushes(ns_runcfg *c, const env *v)
{
    uint64_t p_creds, p_age, p_shares, p_config;
    GUARD(env_uint(v, "AWS_CREDS_VSOCK_PORT", 7100, RUNCFG_U32, &p_creds));
    GUARD(env_uint(v, "AGE_KEY_VSOCK_PORT", 7101, RUNCFG_U32, &p_age));
    GUARD(env_uint(v, "KEY_SHARES_VSOCK_PORT", 7102, RUNCFG_U32, &p_shares));
    GUARD(port_addr(c, v, "NSIGN_HOST_CREDS_ADDR", 1, p_creds, c->creds_push));
    GUARD(port_addr(c, v, "NSIGN_HOST_AGE_KEY_ADDR", 1, p_age, c->age_push));
    GUARD(port_addr(c, v, "NSIGN_HOST_SHARES_ADDR", 1, p_shares, c->shares_push));
    GUARD(env_uint(v, "CONFIG_VSOCK_PORT", 7103, RUNCFG_U32, &p_config));
    char def[NS_RUNCFG_STR];
    GUARD(vsock_default(c, def, sizeof def, 1, p_config));
    if (strcmp(env_or(v, "NSIGN_HOST_CONFIG_ADDR", ""), "none") != 0) {
        GUARD(env_addr(v, "NSIGN_HOST_CONFIG_ADDR", def, c->config_push));
    }
    return NS_OK;
}

/* The ingress (gRPC clients to the enclave) and the egress (the enclave to one host target). */
static ns_err load_bridges(ns_runcfg *c, const env *v)
{
    uint64_t grpc, vport, eg_t, eg_v;
    char def[NS_RUNCFG_STR];
    GUARD(env_uint(v, "HOST_GRPC_PORT", 50051, 65535, &grpc));
    GUARD(env_uint(v, "VSOCK_PORT", 50051, RUNCFG_U32, &vport));
    snprintf(def, sizeof def, "tcp:0.0.0.0:%llu", (unsigned long long)grpc);
    GUARD(env_addr(v, "NSIGN_HOST_GRPC_LISTEN", def, c->grpc_listen));
    GUARD(port_addr(c, v, "NSIGN_HOST_GRPC_CONNECT", 1, vport, c->grpc_connect));

    GUARD(env_bool(v, "HOST_EGRESS_ENABLED", 1, &c->egress));
    GUARD(env_uint(v, "HOST_EGRESS_TARGET_PORT", 8080, 65535, &eg_t));
    GUARD(env_uint(v, "HOST_EGRESS_VSOCK_PORT", 8080, RUNCFG_U32, &eg_v));
    GUARD(port_addr(c, v, "NSIGN_HOST_EGRESS_LISTEN", 0, eg_v, c->egress_listen));
    const char *eh = env_or(v, "HOST_EGRESS_TARGET_HOST", "127.0.0.1");
    snprintf(def, sizeof def, strchr(eh, ':') ? "tcp:[%s]:%llu" : "tcp:%s:%llu", eh,
             (unsigned long long)eg_t);
    return env_addr(v, "NSIGN_HOST_EGRESS_CONNECT", def, c->egress_connect);
}

/* The KMS proxy: vsock KMS_PROXY_PORT to KMS of the region, allow-listed to that one target. */
static ns_err load_kms(ns_runcfg *c, const env *v, char *region, size_t region_cap)
{
    uint64_t kms_p, kms_dp;
    char def[NS_RUNCFG_STR], dest[NS_RUNCFG_STR];
    GUARD(env_bool(v, "KMS_PROXY_ENABLE", 1, &c->kms));
    GUARD(env_uint(v, "KMS_PROXY_PORT", 5000, RUNCFG_U32, &kms_p));
    GUARD(env_uint(v, "KMS_PROXY_DEST_PORT", 443, 65535, &kms_dp));
    snprintf(region, region_cap, "%s", env_or(v, "AWS_REGION", "us-east-1"));
    ENSURE(ns_enclave_region_ok(region), NS_E_USAGE,
           "AWS_REGION=%s: not a region name (like eu-west-1)", region);
    snprintf(def, sizeof def, "kms.%s.amazonaws.com", region);
    GUARD(env_str(v, "KMS_PROXY_DEST_HOST", def, dest, sizeof dest));
    snprintf(c->kms_allow, sizeof c->kms_allow, "%s:%llu", dest, (unsigned long long)kms_dp);
    GUARD(port_addr(c, v, "NSIGN_HOST_KMS_PROXY_LISTEN", 0, kms_p, c->kms_listen));
    snprintf(def, sizeof def, "tcp:%s:%llu", dest, (unsigned long long)kms_dp);
    GUARD(env_addr(v, "NSIGN_HOST_KMS_PROXY_CONNECT", def, c->kms_connect));
    if (v->get("NSIGN_HOST_KMS_PROXY_CONNECT", v->ctx) != NULL) {
        /* The allow-list entry follows the overridden target. */
        ns_addr a;
        GUARD(ns_addr_parse(&a, c->kms_connect));
        if (a.kind == NS_ADDR_TCP) {
            snprintf(c->kms_allow, sizeof c->kms_allow, strchr(a.host, ':') ? "[%s]:%u" : "%s:%u",
                     a.host, a.port);
        } else {
            c->kms_allow[0] = '\0';
        }
    }
    return NS_OK;
}

/* Appends ,"name":"value" (or the first member) to the configuration document. */
static ns_err doc_member(ns_buf *b, const char *name, const char *value)
{
    GUARD(ns_buf_append_str(b, b->len > 1 ? ",\"" : "\""));
    GUARD(ns_buf_append_str(b, name));
    GUARD(ns_buf_append_str(b, "\":"));
    return ns_buf_append_json_str(b, value, strlen(value));
}

/*
 * The enclave's run-time configuration (port 7103): the region the KMS proxy forwards to, and
 * KMS_KEY_ID and AWS_ENDPOINT_URL_KMS when set, so the enclave signs for the region its proxy
 * reaches and names the same TLS host, whatever its image's environment says.
 */
static ns_err config_doc(ns_runcfg *c, const env *v, const char *region)
{
    const char *key = env_or(v, "KMS_KEY_ID", "");
    const char *endpoint = env_or(v, "AWS_ENDPOINT_URL_KMS", "");
    ns_buf b;
    ns_buf_init(&b, NS_RUNCFG_DOC_MAX - 1);
    ns_err e = ns_buf_append_str(&b, "{");
    if (e == NS_OK) {
        e = doc_member(&b, "region", region);
    }
    if (e == NS_OK && *key) {
        e = doc_member(&b, "kms_key_id", key);
    }
    if (e == NS_OK && *endpoint) {
        e = doc_member(&b, "kms_endpoint", endpoint);
    }
    if (e == NS_OK) {
        e = ns_buf_append_str(&b, "}");
    }
    if (e == NS_OK) {
        memcpy(c->config, b.data, b.len);
        c->config[b.len] = '\0';
        memcpy(c->kms_key_id, key, strlen(key) + 1); /* shorter than the document */
    } else {
        e = ns_fail(NS_E_USAGE,
                    "the enclave configuration (AWS_REGION, KMS_KEY_ID, "
                    "AWS_ENDPOINT_URL_KMS) is over %d bytes",
                    NS_RUNCFG_DOC_MAX - 1);
    }
    ns_buf_free(&b);
    return e;
}

/* How long the pushes retry, how often the enclave is checked. */
static ns_err load_timing(ns_runcfg *c, const env *v)
{
    uint64_t sleep_s, retries, ready, watch;
    GUARD(env_uint(v, "READINESS_SLEEP_SECONDS", 5, 3600, &sleep_s));
    GUARD(env_uint(v, "VSOC_TRANSFER_RETRIES", 20, 3600, &retries));
    GUARD(env_uint(v, "READINESS_TIMEOUT_SECONDS", sleep_s + retries + 35, 86400, &ready));
    ENSURE(ready > 0, NS_E_USAGE, "READINESS_TIMEOUT_SECONDS must be positive");
    c->readiness_s = (int)ready;
    GUARD(env_uint(v, "NSIGN_HOST_WATCH_SECONDS", 10, 86400, &watch));
    c->watch_s = (int)watch;
    uint64_t drain, delay;
    GUARD(env_uint(v, "NSIGN_HOST_DRAIN_SECONDS", 30, 3600, &drain));
    GUARD(env_uint(v, "NSIGN_HOST_DRAIN_DELAY_SECONDS", 0, 3600, &delay));
    c->drain_s = (int)drain;
    c->drain_delay_s = (int)delay;
    return NS_OK;
}

/* The enclave's log lines, audit trail and metrics, and the host's readiness endpoint. */
static ns_err load_observability(ns_runcfg *c, const env *v)
{
    uint64_t p_log, p_audit, p_metrics, age;
    char def[NS_RUNCFG_STR];
    GUARD(env_uint(v, "ENCLAVE_LOG_VSOCK_PORT", 7110, RUNCFG_U32, &p_log));
    GUARD(env_uint(v, "AUDIT_VSOCK_PORT", 7111, RUNCFG_U32, &p_audit));
    GUARD(env_uint(v, "METRICS_VSOCK_PORT", 7112, RUNCFG_U32, &p_metrics));
    /* vsock on Nitro; with --emulator the backend's unix sockets (vsock_default), so the
     * emulator never needs AF_VSOCK on the host. */
    GUARD(vsock_default(c, def, sizeof def, 0, p_log));
    GUARD(env_addr_opt(v, "NSIGN_HOST_LOG_LISTEN", def, c->log_listen));
    GUARD(vsock_default(c, def, sizeof def, 0, p_audit));
    GUARD(env_addr_opt(v, "NSIGN_HOST_AUDIT_LISTEN", def, c->audit_listen));
    GUARD(env_addr_opt(v, "NSIGN_HOST_METRICS_LISTEN", "tcp:127.0.0.1:9100", c->metrics_listen));
    GUARD(vsock_default(c, def, sizeof def, 1, p_metrics));
    GUARD(env_addr_opt(v, "NSIGN_HOST_METRICS_CONNECT", def, c->metrics_connect));
    GUARD(env_addr_opt(v, "NSIGN_HOST_READY_LISTEN", "tcp:127.0.0.1:9101", c->ready_listen));
    GUARD(env_str(v, "ENCLAVE_LOG_FILE", "", c->log_file, sizeof c->log_file));
    /* systemd's StateDirectory= (the first of a colon-separated list) outlives a reboot. */
    const char *state = env_or(v, "STATE_DIRECTORY", "");
    size_t state_len = strcspn(state, ":");
    if (state_len > 0) {
        snprintf(def, sizeof def, "%.*s/%s.audit.jsonl", (int)state_len, state, c->name);
    } else {
        snprintf(def, sizeof def, "%s/%s.audit.jsonl", c->run_dir, c->name);
    }
    GUARD(env_str(v, "AUDIT_LOG_FILE", def, c->audit_file, sizeof c->audit_file));
    GUARD(env_uint(v, "READY_MAX_AGE_SECONDS", 15, 86400, &age));
    ENSURE(age > 0, NS_E_USAGE, "READY_MAX_AGE_SECONDS must be positive");
    c->ready_max_age_s = (int)age;
    /* Only the enclave may write its log, status and audit lines: its CID by default. A test
     * that runs the enclave as a local process over vsock loopback names CID 1 here. */
    uint64_t peer;
    GUARD(env_uint(v, "NSIGN_HOST_LOG_PEER_CID", strtoull(c->cid, NULL, 10), 0xFFFFFFFEu, &peer));
    c->log_peer_cid = (uint32_t)peer;
    return NS_OK;
}

ns_err ns_runcfg_load(ns_runcfg *c, ns_enclave_getenv_fn get, void *ctx, int emulator)
{
    env v = {get, ctx};
    char region[RUNCFG_REGION_MAX];
    memset(c, 0, sizeof *c);
    c->emu = emulator;
    GUARD(load_enclave(c, &v));
    GUARD(load_sources(c, &v));
    GUARD(load_pushes(c, &v));
    GUARD(load_bridges(c, &v));
    GUARD(load_kms(c, &v, region, sizeof region));
    GUARD(config_doc(c, &v, region));
    GUARD(load_timing(c, &v));
    return load_observability(c, &v);
}
