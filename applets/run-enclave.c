/*
 * run-enclave: the whole host side of the seed's run-enclave.sh, in one supervised process.
 *
 *   check        nitro-cli present, EIF present, no enclave of the same name running
 *   fetch-creds  IMDSv2 credentials, kept in memory (secret), never in argv or a file
 *   s3-get       AGE_KEY_S3_URI and KEY_SHARES_S3_URI, ciphertext, kept in memory
 *   kms-proxy    bridge vsock:any:KMS_PROXY_PORT -> KMS_PROXY_DEST_HOST:PORT (allow-listed)
 *   nitro-cli    run-enclave --eif-path --cpu-count --memory --enclave-cid --enclave-name
 *   bridges      ingress tcp:0.0.0.0:HOST_GRPC_PORT -> vsock:CID:VSOCK_PORT (on 127.0.0.1 until
 *                the enclave reports client_auth=required), egress
 *                vsock:any:HOST_EGRESS_VSOCK_PORT -> HOST_EGRESS_TARGET_HOST:PORT
 *   observability  the enclave's log lines (to stderr, prefixed "enclave: ", and ENCLAVE_LOG_FILE)
 *                and audit trail (AUDIT_LOG_FILE) received over vsock; readiness over HTTP;
 *                the metrics bridge tcp:127.0.0.1:9100 -> vsock:CID:7112 runs with the bridges
 *   push         the three payloads with vsock-push, retried until the enclave listens
 *   supervise    restarts a bridge that dies (bounded); SIGTERM/SIGINT stops the bridges and
 *                terminates the enclave
 *
 * The applets it runs (fetch-creds, s3-get, bridge, vsock-push) are this same binary, so each
 * step is also a command a user can run alone; --dry-run prints them. Secrets go to children
 * through pipes. A lock file (NSIGN_RUN_DIR/ENCLAVE_NAME.pid) lets stop-enclave find us.
 */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "addr.h"
#include "buf.h"
#include "bridge.h"
#include "cli.h"
#include "emu.h"
#include "enclave.h"
#include "iox.h"
#include "httpd.h"
#include "log.h"
#include "logship.h"
#include "pcr.h"
#include "secret.h"
#include "supervise.h"
#include "svcobs.h"

#define RE_CREDS_MAX (64 * 1024)
#define RE_AGE_KEY_MAX (64 * 1024)
#define RE_SHARES_MAX (16 * 1024 * 1024)
#define RE_NITRO_OUT_MAX (256 * 1024)
#define RE_FETCH_TIMEOUT_MS (120 * 1000)
#define RE_S3_TIMEOUT_MS (30 * 60 * 1000)
#define RE_NITRO_TIMEOUT_MS (10 * 60 * 1000)
#define RE_STOP_GRACE_MS 3000
#define RE_CONSOLE_DRAIN_MS 5000
#define RE_RESTARTS_MAX 5
#define RE_RESTART_BACKOFF_MS 1000
#define RE_TICK_MS 100
#define RE_STR 512
#define RE_EMU_BOOT_TIMEOUT_S 600
#define RE_CONFIG_MAX 4096 /* the enclave's limit for the configuration document */

static const char usage_text[] =
    "usage: nsign run-enclave [--dry-run [--fetch]] [--emulator]\n"
    "\n"
    "Starts the signing enclave and stays in the foreground supervising its bridges: fetches\n"
    "credentials (IMDSv2), downloads the KMS-encrypted age key and the age-encrypted key shares\n"
    "from S3 into memory, starts the KMS proxy, runs `nitro-cli run-enclave`, starts the ingress\n"
    "and egress bridges and pushes the run-time configuration (region, KMS key) and the three\n"
    "payloads (retrying until the enclave listens).\n"
    "SIGTERM or SIGINT stops the bridges and terminates the enclave; so does `nsign "
    "stop-enclave`.\n"
    "\n"
    "options:\n"
    "  --dry-run   print every step (the exact commands) and exit\n"
    "  --emulator  a local Nitro instead of nitro-cli (also NSIGN_EMULATOR=1): QEMU's\n"
    "              nitro-enclave machine boots the same EIF (TCG, no KVM needed) with nsign\n"
    "              vhost-vsock as its vsock; every vsock port becomes a unix socket in\n"
    "              NSIGN_RUN_DIR/ENCLAVE_NAME.emu/ (enclave-PORT.sock, parent-PORT.sock); the\n"
    "              heartbeat is answered here; the console always goes to CONSOLE_FILE.\n"
    "              Same variables and defaults. NSIGN_QEMU=path (default build/qemu/, then\n"
    "              PATH), NSIGN_EMU_BOOT_TIMEOUT_SECONDS=600. Attestation documents from\n"
    "              QEMU's NSM are unsigned: real KMS refuses them.\n"
    "  --fetch     with --dry-run: also run the read-only steps (fetch-creds, s3-get) and print\n"
    "              the PCR16 the enclave will measure (publish it beside PCR0); a real run\n"
    "              logs it as expected pcr16=...\n"
    "\n"
    "environment (the seed's names and defaults):\n"
    "  AGE_KEY_S3_URI, KEY_SHARES_S3_URI   required: s3://BUCKET/KEY of the two ciphertexts\n"
    "  AWS_REGION=us-east-1  EIF_PATH=target/sign-service.enclave.eif\n"
    "  ENCLAVE_NAME=sign-service-enclave  ENCLAVE_CID=16  CPU_COUNT=2  MEMORY_MIB=512\n"
    "  DEBUG_MODE=0  CONSOLE_FILE=target/sign-service-enclave-console.log\n"
    "  CONSOLE_STREAM_ENABLED=$DEBUG_MODE  (debug mode: nitro-cli console appended to "
    "CONSOLE_FILE)\n"
    "  HOST_GRPC_PORT=50051  VSOCK_PORT=50051\n"
    "    (the ingress bridge closes a connection idle both ways for 120 s and takes at most 32\n"
    "    concurrent connections from one client IP address). The enclave serves TLS; the\n"
    "    ingress listens on 127.0.0.1:HOST_GRPC_PORT until the enclave reports that only\n"
    "    pinned clients can sign (a version-2 keys file), then on all addresses; with a\n"
    "    version-1 keys file (anyone could sign) it stays on 127.0.0.1, with a warning\n"
    "  HOST_EGRESS_ENABLED=1  HOST_EGRESS_TARGET_HOST=127.0.0.1  HOST_EGRESS_TARGET_PORT=8080\n"
    "  HOST_EGRESS_VSOCK_PORT=8080\n"
    "  AWS_CREDS_VSOCK_PORT=7100  AGE_KEY_VSOCK_PORT=7101  KEY_SHARES_VSOCK_PORT=7102\n"
    "  CONFIG_VSOCK_PORT=7103      the run-time configuration, pushed first: {\"region\":\n"
    "                              AWS_REGION, \"kms_key_id\": KMS_KEY_ID, \"kms_endpoint\":\n"
    "                              AWS_ENDPOINT_URL_KMS} (the last two when set)\n"
    "  KMS_PROXY_ENABLE=1  KMS_PROXY_PORT=5000  KMS_PROXY_DEST_HOST=kms.$AWS_REGION.amazonaws.com\n"
    "  KMS_PROXY_DEST_PORT=443\n"
    "  READINESS_TIMEOUT_SECONDS   how long the pushes retry until the enclave listens; default\n"
    "                              READINESS_SLEEP_SECONDS (5) + VSOC_TRANSFER_RETRIES (20) + 35\n"
    "  NITRO_CLI=nitro-cli         the nitro-cli executable\n"
    "  NSIGN_RUN_DIR=/run/nsign    where the lock file ENCLAVE_NAME.pid lives\n"
    "  NSIGN_HOST_WATCH_SECONDS=10 how often to check that the enclave still runs (0: never);\n"
    "                              when it is gone, run-enclave stops its bridges and exits 1\n"
    "observability (\"none\" disables each):\n"
    "  ENCLAVE_LOG_VSOCK_PORT=7110  the enclave's log lines, received on vsock:any:7110, go to\n"
    "                              stderr prefixed 'enclave: ' and to ENCLAVE_LOG_FILE if set\n"
    "  AUDIT_VSOCK_PORT=7111        the signed audit trail, appended to AUDIT_LOG_FILE (default\n"
    "                              NSIGN_RUN_DIR/ENCLAVE_NAME.audit.jsonl; nsign audit-verify)\n"
    "  METRICS_VSOCK_PORT=7112      bridged from NSIGN_HOST_METRICS_LISTEN=tcp:127.0.0.1:9100\n"
    "                              (GET /metrics, Prometheus text format)\n"
    "  NSIGN_HOST_READY_LISTEN=tcp:127.0.0.1:9101  GET /ready: 200 once the enclave reports\n"
    "                              SERVING and its last status line is at most\n"
    "                              READY_MAX_AGE_SECONDS=15 old, 503 otherwise\n"
    "  NSIGN_HOST_LOG_LISTEN, NSIGN_HOST_AUDIT_LISTEN, NSIGN_HOST_METRICS_CONNECT (addresses)\n"
    "  every address can be overridden (tcp:, unix: or vsock: syntax), e.g. to run the flow on\n"
    "  one machine: NSIGN_HOST_CREDS_ADDR, NSIGN_HOST_AGE_KEY_ADDR, NSIGN_HOST_SHARES_ADDR,\n"
    "  NSIGN_HOST_CONFIG_ADDR (push targets; CONFIG \"none\": no configuration frame, for\n"
    "  images older than the frame), NSIGN_HOST_GRPC_LISTEN, NSIGN_HOST_GRPC_CONNECT, "
    "NSIGN_HOST_EGRESS_LISTEN,\n"
    "  NSIGN_HOST_EGRESS_CONNECT, NSIGN_HOST_KMS_PROXY_LISTEN, NSIGN_HOST_KMS_PROXY_CONNECT\n"
    "  fetch-creds, s3-get and the bridges read their own variables too (AWS_ENDPOINT_URL_S3,\n"
    "  AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_CA_BUNDLE...).\n"
    "\n"
    "exit status: 0 stopped by a signal after a successful start, 1 a step failed, 2 usage.\n";

typedef struct {
    char self[4096];
    char nitro[4096];
    char nitro_name[RE_STR];
    char eif[RE_STR], name[RE_STR], console_file[RE_STR], run_dir[RE_STR];
    char cpu[32], mem[32], cid[32];
    int debug, console_stream;
    char age_uri[RE_STR], shares_uri[RE_STR];
    char creds_push[NS_ADDR_STR_MAX], age_push[NS_ADDR_STR_MAX], shares_push[NS_ADDR_STR_MAX];
    char config_push[NS_ADDR_STR_MAX]; /* "" = no configuration frame */
    char config[RE_CONFIG_MAX];        /* the run-time configuration document */
    char grpc_listen[NS_ADDR_STR_MAX], grpc_connect[NS_ADDR_STR_MAX];
    int egress;
    char egress_listen[NS_ADDR_STR_MAX], egress_connect[NS_ADDR_STR_MAX];
    int kms;
    char kms_listen[NS_ADDR_STR_MAX], kms_connect[NS_ADDR_STR_MAX], kms_allow[RE_STR];
    int readiness_s;
    int watch_s; /* how often to check that the enclave still runs; 0 = never */
    /* Observability; "" when disabled. */
    char log_listen[NS_ADDR_STR_MAX], audit_listen[NS_ADDR_STR_MAX];
    char metrics_listen[NS_ADDR_STR_MAX], metrics_connect[NS_ADDR_STR_MAX];
    char ready_listen[NS_ADDR_STR_MAX];
    char log_file[RE_STR], audit_file[RE_STR + 64];
    int ready_max_age_s;
    int emu;     /* --emulator: QEMU's nitro-enclave machine, see src/enclave/emu.h */
    char emu_dir[RE_STR + 16];
    ns_emu_cfg emu_cfg;
    int emu_boot_s;
} re_cfg;

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v && *v) ? v : def;
}

static ns_err copy_str(char *out, size_t cap, const char *v, const char *what)
{
    ENSURE(strlen(v) < cap, NS_E_TOO_BIG, "%s: longer than %zu bytes", what, cap - 1);
    memcpy(out, v, strlen(v) + 1);
    return NS_OK;
}

static ns_err env_uint(const char *name, uint64_t def, uint64_t max, uint64_t *out)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        *out = def;
        return NS_OK;
    }
    if (ns_parse_uint(v, max, out) != NS_OK) {
        BAIL(NS_E_USAGE, "%s=%s: want a number up to %llu", name, v, (unsigned long long)max);
    }
    return NS_OK;
}

static ns_err env_bool(const char *name, int def, int *out)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        *out = def;
    } else if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) {
        *out = 1;
    } else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) {
        *out = 0;
    } else {
        BAIL(NS_E_USAGE, "%s=%s: want 1 or 0", name, v);
    }
    return NS_OK;
}

/* An address: NAME if set, else the default text; validated with the address parser. */
static ns_err env_addr(const char *name, const char *def, char *out)
{
    const char *v = env_or(name, def);
    ns_addr a;
    ns_err e = ns_addr_parse(&a, v);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "%s", name);
    }
    return copy_str(out, NS_ADDR_STR_MAX, v, name);
}

/* The same, where "none" disables (out = ""). */
static ns_err env_addr_opt(const char *name, const char *def, char *out)
{
    if (strcmp(env_or(name, def), "none") == 0) {
        out[0] = '\0';
        return NS_OK;
    }
    return env_addr(name, def, out);
}

/* The default address of a vsock port: vsock on Nitro, the emulator's unix socket with --emulator.
 * enclave_side: a port the enclave listens on (else one the host listens on for the enclave). */
static ns_err vsock_default(re_cfg *c, char *def, size_t cap, int enclave_side, uint64_t port)
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
static ns_err config_doc(re_cfg *c, const char *region)
{
    ns_buf b;
    ns_buf_init(&b, RE_CONFIG_MAX - 1);
    ns_err e = ns_buf_append_str(&b, "{");
    if (e == NS_OK) {
        e = doc_member(&b, "region", region);
    }
    if (e == NS_OK && getenv("KMS_KEY_ID") && *getenv("KMS_KEY_ID")) {
        e = doc_member(&b, "kms_key_id", getenv("KMS_KEY_ID"));
    }
    if (e == NS_OK && getenv("AWS_ENDPOINT_URL_KMS") && *getenv("AWS_ENDPOINT_URL_KMS")) {
        e = doc_member(&b, "kms_endpoint", getenv("AWS_ENDPOINT_URL_KMS"));
    }
    if (e == NS_OK) {
        e = ns_buf_append_str(&b, "}");
    }
    if (e == NS_OK) {
        memcpy(c->config, b.data, b.len);
        c->config[b.len] = '\0';
    } else {
        e = ns_fail(NS_E_USAGE,
                    "the enclave configuration (AWS_REGION, KMS_KEY_ID, "
                    "AWS_ENDPOINT_URL_KMS) is over %d bytes",
                    RE_CONFIG_MAX - 1);
    }
    ns_buf_free(&b);
    return e;
}

static ns_err cfg_load(re_cfg *c)
{
    uint64_t cid, cpu, mem, grpc, vport, eg_t, eg_v, p_creds, p_age, p_shares, p_config, kms_p;
    uint64_t kms_dp;
    uint64_t sleep_s, retries, ready;
    char def[RE_STR], region[128];
    int emu = c->emu;
    memset(c, 0, sizeof *c);
    c->emu = emu;

    GUARD(copy_str(c->eif, sizeof c->eif, env_or("EIF_PATH", "target/sign-service.enclave.eif"),
                   "EIF_PATH"));
    GUARD(copy_str(c->name, sizeof c->name, env_or("ENCLAVE_NAME", "sign-service-enclave"),
                   "ENCLAVE_NAME"));
    GUARD(copy_str(c->console_file, sizeof c->console_file,
                   env_or("CONSOLE_FILE", "target/sign-service-enclave-console.log"),
                   "CONSOLE_FILE"));
    GUARD(copy_str(c->run_dir, sizeof c->run_dir, env_or("NSIGN_RUN_DIR", "/run/nsign"),
                   "NSIGN_RUN_DIR"));
    GUARD(copy_str(c->nitro_name, sizeof c->nitro_name, env_or("NITRO_CLI", "nitro-cli"),
                   "NITRO_CLI"));
    for (const char *p = c->name; *p; p++) {
        ENSURE(*p != '/' && *p != '\n', NS_E_USAGE, "ENCLAVE_NAME must not contain '/'");
    }
    GUARD(env_uint("ENCLAVE_CID", 16, 0xFFFFFFFEull, &cid));
    ENSURE(cid > 3, NS_E_USAGE, "ENCLAVE_CID=%llu: CIDs 0-3 are reserved; use 4 or more",
           (unsigned long long)cid);
    GUARD(env_uint("CPU_COUNT", 2, 1024, &cpu));
    GUARD(env_uint("MEMORY_MIB", 512, 1 << 24, &mem));
    ENSURE(cpu > 0 && mem > 0, NS_E_USAGE, "CPU_COUNT and MEMORY_MIB must be positive");
    snprintf(c->cid, sizeof c->cid, "%llu", (unsigned long long)cid);
    snprintf(c->cpu, sizeof c->cpu, "%llu", (unsigned long long)cpu);
    snprintf(c->mem, sizeof c->mem, "%llu", (unsigned long long)mem);
    GUARD(env_bool("DEBUG_MODE", 0, &c->debug));
    GUARD(env_bool("CONSOLE_STREAM_ENABLED", c->debug, &c->console_stream));
    if (c->emu) {
        snprintf(c->emu_dir, sizeof c->emu_dir, "%s/%s.emu", c->run_dir, c->name);
        uint64_t boot;
        GUARD(env_uint("NSIGN_EMU_BOOT_TIMEOUT_SECONDS", RE_EMU_BOOT_TIMEOUT_S, 86400, &boot));
        c->emu_boot_s = (int)boot;
    }

    GUARD(copy_str(c->age_uri, sizeof c->age_uri, env_or("AGE_KEY_S3_URI", ""), "AGE_KEY_S3_URI"));
    GUARD(copy_str(c->shares_uri, sizeof c->shares_uri, env_or("KEY_SHARES_S3_URI", ""),
                   "KEY_SHARES_S3_URI"));
    ENSURE(c->age_uri[0] && c->shares_uri[0], NS_E_USAGE,
           "AGE_KEY_S3_URI and KEY_SHARES_S3_URI must be set, e.g. "
           "AGE_KEY_S3_URI=s3://bucket/enclave/age-private.key.enc "
           "KEY_SHARES_S3_URI=s3://bucket/enclave/service_key_shares.json.age");
    ENSURE(strncmp(c->age_uri, "s3://", 5) == 0 && strncmp(c->shares_uri, "s3://", 5) == 0,
           NS_E_USAGE, "AGE_KEY_S3_URI and KEY_SHARES_S3_URI must start with s3://");

    GUARD(env_uint("AWS_CREDS_VSOCK_PORT", 7100, 0xFFFFFFFFull, &p_creds));
    GUARD(env_uint("AGE_KEY_VSOCK_PORT", 7101, 0xFFFFFFFFull, &p_age));
    GUARD(env_uint("KEY_SHARES_VSOCK_PORT", 7102, 0xFFFFFFFFull, &p_shares));
    GUARD(vsock_default(c, def, sizeof def, 1, p_creds));
    GUARD(env_addr("NSIGN_HOST_CREDS_ADDR", def, c->creds_push));
    GUARD(vsock_default(c, def, sizeof def, 1, p_age));
    GUARD(env_addr("NSIGN_HOST_AGE_KEY_ADDR", def, c->age_push));
    GUARD(vsock_default(c, def, sizeof def, 1, p_shares));
    GUARD(env_addr("NSIGN_HOST_SHARES_ADDR", def, c->shares_push));
    GUARD(env_uint("CONFIG_VSOCK_PORT", 7103, 0xFFFFFFFFull, &p_config));
    GUARD(vsock_default(c, def, sizeof def, 1, p_config));
    if (strcmp(env_or("NSIGN_HOST_CONFIG_ADDR", ""), "none") != 0) {
        GUARD(env_addr("NSIGN_HOST_CONFIG_ADDR", def, c->config_push));
    }

    GUARD(env_uint("HOST_GRPC_PORT", 50051, 65535, &grpc));
    GUARD(env_uint("VSOCK_PORT", 50051, 0xFFFFFFFFull, &vport));
    snprintf(def, sizeof def, "tcp:0.0.0.0:%llu", (unsigned long long)grpc);
    GUARD(env_addr("NSIGN_HOST_GRPC_LISTEN", def, c->grpc_listen));
    GUARD(vsock_default(c, def, sizeof def, 1, vport));
    GUARD(env_addr("NSIGN_HOST_GRPC_CONNECT", def, c->grpc_connect));

    GUARD(env_bool("HOST_EGRESS_ENABLED", 1, &c->egress));
    GUARD(env_uint("HOST_EGRESS_TARGET_PORT", 8080, 65535, &eg_t));
    GUARD(env_uint("HOST_EGRESS_VSOCK_PORT", 8080, 0xFFFFFFFFull, &eg_v));
    GUARD(vsock_default(c, def, sizeof def, 0, eg_v));
    GUARD(env_addr("NSIGN_HOST_EGRESS_LISTEN", def, c->egress_listen));
    const char *eh = env_or("HOST_EGRESS_TARGET_HOST", "127.0.0.1");
    snprintf(def, sizeof def, strchr(eh, ':') ? "tcp:[%s]:%llu" : "tcp:%s:%llu", eh,
             (unsigned long long)eg_t);
    GUARD(env_addr("NSIGN_HOST_EGRESS_CONNECT", def, c->egress_connect));

    GUARD(env_bool("KMS_PROXY_ENABLE", 1, &c->kms));
    GUARD(env_uint("KMS_PROXY_PORT", 5000, 0xFFFFFFFFull, &kms_p));
    GUARD(env_uint("KMS_PROXY_DEST_PORT", 443, 65535, &kms_dp));
    snprintf(region, sizeof region, "%s", env_or("AWS_REGION", "us-east-1"));
    ENSURE(ns_enclave_region_ok(region), NS_E_USAGE,
           "AWS_REGION=%s: not a region name (like "
           "eu-west-1)",
           region);
    snprintf(def, sizeof def, "kms.%s.amazonaws.com", region);
    char dest[RE_STR];
    GUARD(copy_str(dest, sizeof dest, env_or("KMS_PROXY_DEST_HOST", def), "KMS_PROXY_DEST_HOST"));
    snprintf(c->kms_allow, sizeof c->kms_allow, "%s:%llu", dest, (unsigned long long)kms_dp);
    GUARD(vsock_default(c, def, sizeof def, 0, kms_p));
    GUARD(env_addr("NSIGN_HOST_KMS_PROXY_LISTEN", def, c->kms_listen));
    snprintf(def, sizeof def, "tcp:%s:%llu", dest, (unsigned long long)kms_dp);
    GUARD(env_addr("NSIGN_HOST_KMS_PROXY_CONNECT", def, c->kms_connect));
    if (getenv("NSIGN_HOST_KMS_PROXY_CONNECT") != NULL) {
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

    GUARD(config_doc(c, region));

    GUARD(env_uint("READINESS_SLEEP_SECONDS", 5, 3600, &sleep_s));
    GUARD(env_uint("VSOC_TRANSFER_RETRIES", 20, 3600, &retries));
    GUARD(env_uint("READINESS_TIMEOUT_SECONDS", sleep_s + retries + 35, 86400, &ready));
    ENSURE(ready > 0, NS_E_USAGE, "READINESS_TIMEOUT_SECONDS must be positive");
    c->readiness_s = (int)ready;
    uint64_t watch;
    GUARD(env_uint("NSIGN_HOST_WATCH_SECONDS", 10, 86400, &watch));
    c->watch_s = (int)watch;

    uint64_t p_log, p_audit, p_metrics, age;
    GUARD(env_uint("ENCLAVE_LOG_VSOCK_PORT", 7110, 0xFFFFFFFFull, &p_log));
    GUARD(env_uint("AUDIT_VSOCK_PORT", 7111, 0xFFFFFFFFull, &p_audit));
    GUARD(env_uint("METRICS_VSOCK_PORT", 7112, 0xFFFFFFFFull, &p_metrics));
    /* vsock on Nitro; with --emulator the backend's unix sockets (vsock_default), so the
     * emulator never needs AF_VSOCK on the host. */
    GUARD(vsock_default(c, def, sizeof def, 0, p_log));
    GUARD(env_addr_opt("NSIGN_HOST_LOG_LISTEN", def, c->log_listen));
    GUARD(vsock_default(c, def, sizeof def, 0, p_audit));
    GUARD(env_addr_opt("NSIGN_HOST_AUDIT_LISTEN", def, c->audit_listen));
    GUARD(env_addr_opt("NSIGN_HOST_METRICS_LISTEN", "tcp:127.0.0.1:9100", c->metrics_listen));
    GUARD(vsock_default(c, def, sizeof def, 1, p_metrics));
    GUARD(env_addr_opt("NSIGN_HOST_METRICS_CONNECT", def, c->metrics_connect));
    GUARD(env_addr_opt("NSIGN_HOST_READY_LISTEN", "tcp:127.0.0.1:9101", c->ready_listen));
    GUARD(copy_str(c->log_file, sizeof c->log_file, env_or("ENCLAVE_LOG_FILE", ""),
                   "ENCLAVE_LOG_FILE"));
    snprintf(def, sizeof def, "%s/%s.audit.jsonl", c->run_dir, c->name);
    GUARD(copy_str(c->audit_file, sizeof c->audit_file, env_or("AUDIT_LOG_FILE", def),
                   "AUDIT_LOG_FILE"));
    GUARD(env_uint("READY_MAX_AGE_SECONDS", 15, 86400, &age));
    ENSURE(age > 0, NS_E_USAGE, "READY_MAX_AGE_SECONDS must be positive");
    c->ready_max_age_s = (int)age;
    return NS_OK;
}

/* ---- steps ---- */

static int g_dry;
static int g_fetch; /* --dry-run --fetch: the read-only steps run, to predict PCR16 */
static int g_step;
static ns_stop g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
}

/* A signal during the start-up steps stops before the next one (then everything is undone). */
static ns_err check_stop(void)
{
    ENSURE(!g_stop, NS_E_CLOSED, "stopped by signal %d before the enclave was up", (int)g_stop);
    return NS_OK;
}

/* Prints the command of a step (dry run) or logs that it starts. */
static void show(const char *step, char *const argv[], const char *note)
{
    char line[4096];
    size_t n = 0;
    for (int i = 0; argv[i] && n < sizeof line - 1; i++) {
        int w = snprintf(line + n, sizeof line - n, "%s%s", i ? " " : "", argv[i]);
        if (w < 0) {
            break;
        }
        n += (size_t)w;
    }
    if (n >= sizeof line) {
        n = sizeof line - 1;
    }
    line[n] = '\0';
    g_step++;
    if (g_dry) {
        printf("%2d %-12s %s%s%s\n", g_step, step, line, note ? "   # " : "", note ? note : "");
    } else {
        ns_info("step=%s run=\"%s\"%s%s", step, line, note ? " note=" : "", note ? note : "");
    }
}

static void step_ok(const char *step, int64_t t0)
{
    ns_info("step=%s ok ms=%lld", step, (long long)(ns_now_ms() - t0));
}

/* Runs a child to completion; out may be NULL. */
static ns_err run_step(const char *step, char *const argv[], const uint8_t *in, size_t in_len,
                       ns_buf *out, int timeout_ms)
{
    int st = -1;
    char s[64];
    ns_err e = ns_supervise_run(argv, in, in_len, out, timeout_ms, &st);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "%s", step);
    }
    if (!ns_status_ok(st)) {
        ns_status_str(st, s, sizeof s);
        BAIL(NS_E_REMOTE, "%s failed (%s); its error is logged above", step, s);
    }
    return NS_OK;
}

typedef struct {
    re_cfg *c;
    ns_supervise_child kms, bridges, console;
    ns_emu emu;
    int kms_restarts, bridge_restarts;
    int enclave_started;
    int left_running;   /* DEBUG_MODE=1 failure: the enclave stays up for its console */
    int watch_failures; /* describe-enclaves failures in a row */
    int lock_fd;
    char lock_path[RE_STR + 64];
    ns_buf creds, age_ct, shares_ct;
    /* The ingress listens on loopback (ingress_narrow) until the enclave reports that only
     * pinned clients can sign; then on NSIGN_HOST_GRPC_LISTEN (issue 13). */
    int ingress_wide;
    int ingress_warned;
    char ingress_narrow[NS_ADDR_STR_MAX];
} re_state;

static void build_kms_argv(re_state *s, char **av)
{
    int n = 0;
    av[n++] = s->c->self;
    av[n++] = "bridge";
    if (s->c->kms_allow[0]) {
        av[n++] = "--allow";
        av[n++] = s->c->kms_allow;
    }
    av[n++] = s->c->kms_listen;
    av[n++] = s->c->kms_connect;
    av[n] = NULL;
}

#define RE_STRINGIFY(x) #x
#define RE_XSTR(x) RE_STRINGIFY(x)

static void build_bridges_argv(re_state *s, char **av)
{
    int n = 0;
    av[n++] = s->c->self;
    av[n++] = "bridge";
    /* Idle clients and one address's flood must not starve the others (issue 15). */
    av[n++] = "--idle-timeout";
    av[n++] = RE_XSTR(NS_BRIDGE_INGRESS_IDLE_S);
    av[n++] = "--max-per-peer";
    av[n++] = RE_XSTR(NS_BRIDGE_INGRESS_PER_PEER);
    av[n++] = s->ingress_wide ? s->c->grpc_listen : s->ingress_narrow;
    av[n++] = s->c->grpc_connect;
    if (s->c->egress) {
        av[n++] = s->c->egress_listen;
        av[n++] = s->c->egress_connect;
    }
    if (s->c->metrics_listen[0] && s->c->metrics_connect[0]) {
        av[n++] = s->c->metrics_listen;
        av[n++] = s->c->metrics_connect;
    }
    av[n] = NULL;
}

static ns_err nitro_error(const ns_buf *out, const char *what, re_cfg *c, int st)
{
    char s[64];
    const char *text = out->len ? (const char *)out->data : "";
    ns_status_str(st, s, sizeof s);
    /* Echo nitro-cli's own words: they carry its error code and log path. */
    if (out->len) {
        ns_warn("nitro-cli said: %.*s", (int)(out->len > 2000 ? 2000 : out->len), text);
    }
    if (strstr(text, "llocator") || strstr(text, "nsufficient memory") || strstr(text, "E26") ||
        strstr(text, "E27") || strstr(text, "hugepage")) {
        BAIL(NS_E_REMOTE,
             "%s failed (%s): the enclave allocator has too little memory or CPUs: set "
             "memory_mib >= %s and cpu_count >= %s in /etc/nitro_enclaves/allocator.yaml, then "
             "`systemctl restart nitro-enclaves-allocator.service`",
             what, s, c->mem, c->cpu);
    }
    BAIL(NS_E_REMOTE,
         "%s failed (%s): see nitro-cli's message above and /var/log/nitro_enclaves/; if the "
         "enclave failed to boot, rerun with DEBUG_MODE=1 and read its console (%s, or "
         "`%s console --enclave-name %s`)",
         what, s, c->console_file, c->nitro_name, c->name);
}

/* --emulator: the EIF and a QEMU with the nitro-enclave machine (the lock refuses a second run). */
static ns_err step_emu_check(re_state *s)
{
    re_cfg *c = s->c;
    struct stat st;
    char *av[] = {c->emu_cfg.qemu ? (char *)c->emu_cfg.qemu : "qemu-system-x86_64", "-M", "help",
                  NULL};
    show("check", av, "EIF present; QEMU has the nitro-enclave machine");
    if (g_dry) {
        return NS_OK;
    }
    ENSURE(stat(c->eif, &st) == 0, NS_E_NOT_FOUND,
           "EIF not found at %s: build it (make eif) or set EIF_PATH", c->eif);
    if (c->debug) {
        ns_warn("DEBUG_MODE=1 under the emulator: QEMU measures the real PCRs (no zeros) and the "
                "console always goes to CONSOLE_FILE");
    }
    return ns_emu_check_qemu(c->emu_cfg.qemu);
}

/*
 * Whether nitro-cli's describe-enclaves output (a JSON array of objects) lists an enclave named
 * name: 1 listed, 0 not, NS_E_PARSE when the output is not that array (then nothing is known).
 */
static ns_err describe_lists(const ns_buf *out, const char *name, int *listed)
{
    cJSON *arr = cJSON_ParseWithLength((const char *)out->data, out->len);
    *listed = 0;
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        BAIL(NS_E_PARSE, "nitro-cli describe-enclaves did not print a JSON array");
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "EnclaveName");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
            *listed = 1;
        }
    }
    cJSON_Delete(arr);
    return NS_OK;
}

static ns_err step_check(re_state *s)
{
    re_cfg *c = s->c;
    struct stat st;
    if (c->emu) {
        return step_emu_check(s);
    }
    char *av[4] = {c->nitro, "describe-enclaves", NULL, NULL};
    show("check", av, "refuse to start twice; EIF and nitro-cli present");
    if (g_dry) {
        return NS_OK;
    }
    int64_t t0 = ns_now_ms();
    if (stat(c->eif, &st) != 0) {
        BAIL(NS_E_NOT_FOUND, "EIF not found at %s: build it (make eif) or set EIF_PATH", c->eif);
    }
    uint64_t need = (uint64_t)st.st_size * 4 / (1024 * 1024) + 1;
    if (need > strtoull(c->mem, NULL, 10)) {
        ns_warn("MEMORY_MIB=%s is below 4x the EIF size (%llu MiB); nitro-cli will likely refuse",
                c->mem, (unsigned long long)need);
    }
    ns_buf out;
    int rc = -1, listed = 0;
    ns_buf_init(&out, RE_NITRO_OUT_MAX);
    ns_err e = ns_supervise_run(av, NULL, 0, &out, RE_NITRO_TIMEOUT_MS, &rc);
    if (e == NS_OK && ns_status_ok(rc)) {
        e = describe_lists(&out, c->name, &listed);
    } else if (e == NS_OK) {
        e = ns_fail(NS_E_REMOTE, "exit status %d", rc);
    }
    if (e != NS_OK) {
        /* Not fatal: nitro-cli run-enclave refuses a name or CID in use by itself. */
        ns_warn("nitro-cli describe-enclaves failed (%s); cannot check that %s is not already "
                "running: nitro-cli run-enclave will refuse a duplicate",
                ns_err_msg(), c->name);
        e = NS_OK;
    } else if (listed) {
        e = ns_fail(NS_E_USAGE, "enclave %s is already running: stop it first (nsign stop-enclave)",
                    c->name);
    }
    ns_buf_free(&out);
    if (e == NS_OK) {
        step_ok("check", t0);
    }
    return e;
}

static ns_err step_downloads(re_state *s)
{
    re_cfg *c = s->c;
    char *fc[] = {c->self, "fetch-creds", NULL};
    /* s3-get uses the credentials just fetched (on its stdin), like `aws s3 cp` on the role. */
    char *s1[] = {c->self, "s3-get", "--creds", "-", c->age_uri, "-", NULL};
    char *s2[] = {c->self, "s3-get", "--creds", "-", c->shares_uri, "-", NULL};
    int64_t t0;

    show("fetch-creds", fc, "stdout kept in locked memory, never on disk");
    if (!g_dry || g_fetch) {
        t0 = ns_now_ms();
        GUARD(run_step("fetch-creds", fc, NULL, 0, &s->creds, RE_FETCH_TIMEOUT_MS));
        step_ok("fetch-creds", t0);
    }
    show("s3-get", s1, "credentials on stdin; age key ciphertext kept in memory");
    if (!g_dry || g_fetch) {
        t0 = ns_now_ms();
        GUARD(run_step("s3-get age key", s1, s->creds.data, s->creds.len, &s->age_ct,
                       RE_S3_TIMEOUT_MS));
        step_ok("s3-get", t0);
    }
    show("s3-get", s2, "credentials on stdin; key shares ciphertext kept in memory");
    if (!g_dry || g_fetch) {
        t0 = ns_now_ms();
        GUARD(run_step("s3-get key shares", s2, s->creds.data, s->creds.len, &s->shares_ct,
                       RE_S3_TIMEOUT_MS));
        step_ok("s3-get", t0);
    }
    return NS_OK;
}

/*
 * The PCR16 the enclave will measure from what this host sends (pcr.h): publish it beside PCR0;
 * a client pins both. Dry run without --fetch: how to get it.
 */
static ns_err predict_pcr16(re_state *s)
{
    re_cfg *c = s->c;
    uint8_t pcr[NS_PCR_LEN];
    char hex[NS_PCR_HEX_LEN];
    if (g_dry && !g_fetch) {
        printf(" -- pcr16       predicted from the ciphertexts: rerun with --dry-run --fetch "
               "(downloads them, read-only), or `nsign eif pcr16 AGE_KEY_CT SHARES_CT%s`%s%s\n",
               c->config_push[0] ? " CONFIG" : "",
               c->config_push[0] ? " with CONFIG holding exactly: " : "",
               c->config_push[0] ? c->config : "");
        return NS_OK;
    }
    GUARD(ns_pcr16_predict(pcr, s->age_ct.data, s->age_ct.len, s->shares_ct.data, s->shares_ct.len,
                           c->config_push[0] ? (const uint8_t *)c->config : NULL,
                           c->config_push[0] ? strlen(c->config) : 0));
    ns_pcr_hex(hex, pcr);
    if (g_dry) {
        printf(" -- pcr16       %s   # expected in the enclave's attestation documents\n", hex);
    } else {
        ns_info("expected pcr16=%s (the enclave measures its inputs into PCR16 and locks it; "
                "publish it beside PCR0)",
                hex);
    }
    return NS_OK;
}

static ns_err step_kms_proxy(re_state *s)
{
    char *av[8];
    if (!s->c->kms) {
        if (!g_dry) {
            ns_info("step=kms-proxy skipped (KMS_PROXY_ENABLE=0)");
        } else {
            printf("   kms-proxy    skipped (KMS_PROXY_ENABLE=0)\n");
        }
        return NS_OK;
    }
    build_kms_argv(s, av);
    show("kms-proxy", av, "supervised");
    if (g_dry) {
        return NS_OK;
    }
    GUARD(ns_supervise_spawn(&s->kms, av, NS_SPAWN_STDIN_NULL, -1));
    return NS_OK;
}

/* --emulator: the vsock backend and QEMU, then the enclave's heartbeat (as nitro-cli waits). */
static ns_err step_emu_run(re_state *s)
{
    re_cfg *c = s->c;
    ns_emu_cfg *ec = &c->emu_cfg;
    ec->self = c->self;
    ec->eif = c->eif;
    ec->name = c->name;
    ec->cpu = c->cpu;
    ec->mem = c->mem;
    ec->cid = c->cid;
    ec->console_file = c->console_file;
    ec->dir = c->emu_dir;
    GUARD(ns_emu_build(&s->emu, ec));
    show("vsock", s->emu.argv_backend, "the enclave's vsock (vhost-user backend), supervised");
    show("qemu", s->emu.argv_qemu, "QEMU's nitro-enclave machine; serial console to CONSOLE_FILE");
    if (g_dry) {
        return NS_OK;
    }
    int64_t t0 = ns_now_ms();
    s->enclave_started = 1;
    GUARD(ns_emu_start(&s->emu, ec));
    ns_info("enclave starting under QEMU name=%s cid=%s console=%s; waiting for its heartbeat",
            c->name, c->cid, c->console_file);
    GUARD(ns_emu_wait_heartbeat(&s->emu, c->emu_boot_s * 1000, &g_stop));
    ns_info("enclave booted: heartbeat answered boot_ms=%lld", (long long)s->emu.boot_ms);
    step_ok("qemu", t0);
    return NS_OK;
}

static ns_err step_nitro_run(re_state *s)
{
    re_cfg *c = s->c;
    char *av[16];
    int n = 0;
    if (c->emu) {
        return step_emu_run(s);
    }
    av[n++] = c->nitro;
    av[n++] = "run-enclave";
    av[n++] = "--eif-path";
    av[n++] = c->eif;
    av[n++] = "--cpu-count";
    av[n++] = c->cpu;
    av[n++] = "--memory";
    av[n++] = c->mem;
    av[n++] = "--enclave-cid";
    av[n++] = c->cid;
    av[n++] = "--enclave-name";
    av[n++] = c->name;
    if (c->debug) {
        av[n++] = "--debug-mode";
    }
    av[n] = NULL;
    show("nitro-cli", av, c->debug ? "DEBUG MODE: PCRs are all zeros, never in production" : NULL);
    if (g_dry) {
        return NS_OK;
    }
    int64_t t0 = ns_now_ms();
    ns_buf out;
    int st = -1;
    ns_buf_init(&out, RE_NITRO_OUT_MAX);
    ns_err e =
        ns_supervise_run_ex(av, NULL, 0, &out, RE_NITRO_TIMEOUT_MS, &st, NS_SPAWN_STDERR_OUT);
    if (e == NS_OK && !ns_status_ok(st)) {
        e = nitro_error(&out, "nitro-cli run-enclave", c, st);
    }
    if (e == NS_OK) {
        s->enclave_started = 1;
        const char *id = NULL;
        if (ns_buf_cstr(&out) == NS_OK) {
            id = strstr((const char *)out.data, "\"EnclaveID\"");
        }
        char idbuf[128] = "";
        if (id && sscanf(id, "\"EnclaveID\": \"%127[^\"]\"", idbuf) == 1) {
            ns_info("enclave started name=%s id=%s cid=%s", c->name, idbuf, c->cid);
        }
        step_ok("nitro-cli", t0);
    } else {
        /* nitro-cli may have started it before failing (e.g. no heartbeat): clean up quietly. */
        s->enclave_started = 2;
    }
    ns_buf_free(&out);
    return e;
}

static ns_err step_console(re_state *s)
{
    re_cfg *c = s->c;
    char *av[] = {c->nitro, "console", "--enclave-name", c->name, NULL};
    if (c->emu) {
        return NS_OK; /* QEMU's serial console already goes to CONSOLE_FILE */
    }
    if (!c->debug || !c->console_stream) {
        if (!g_dry) {
            ns_info("console not streamed (%s)",
                    c->debug ? "CONSOLE_STREAM_ENABLED=0" : "production mode has no console");
        }
        return NS_OK;
    }
    show("console", av, c->console_file);
    if (g_dry) {
        return NS_OK;
    }
    int fd = open(c->console_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        return ns_fail_errno(NS_E_IO, "open CONSOLE_FILE %s", c->console_file);
    }
    ns_err e = ns_supervise_spawn(&s->console, av, NS_SPAWN_STDIN_NULL, fd);
    close(fd);
    return e;
}

/* ---- observability: the enclave's log lines, audit trail and readiness ---- */

typedef struct {
    ns_logrecv *logs, *audit;
    ns_httpd *ready;
    int log_fd, audit_fd;
    pthread_mutex_t mu;
    char state[32];
    char client_auth[16];   /* from the status line: "required", "none", "-"; "" never seen */
    int64_t last_status_ms; /* 0: never */
    int max_age_ms;
} re_obs;

static re_obs g_obs = {.log_fd = -1, .audit_fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

/* One write per line: "enclave: LINE\n" on stderr (and LINE\n in ENCLAVE_LOG_FILE). Status
 * lines feed the readiness check instead. */
static void on_enclave_line(void *arg, const char *line, size_t n)
{
    char buf[NS_LOGRECV_LINE_MAX + 16];
    re_obs *o = arg;
    const char *tag = memmem(line, n, NS_SVCOBS_STATUS_TAG, strlen(NS_SVCOBS_STATUS_TAG));
    if (tag != NULL && n > 6 && memcmp(line, "nsign ", 6) == 0) {
        const char *st = tag + strlen(NS_SVCOBS_STATUS_TAG);
        size_t k = 0;
        pthread_mutex_lock(&o->mu);
        while (st + k < line + n && st[k] != ' ' && k + 1 < sizeof o->state) {
            o->state[k] = st[k];
            k++;
        }
        o->state[k] = '\0';
        const char *au = memmem(line, n, NS_SVCOBS_CLIENT_AUTH_TAG, strlen(NS_SVCOBS_CLIENT_AUTH_TAG));
        k = 0;
        if (au != NULL) {
            au += strlen(NS_SVCOBS_CLIENT_AUTH_TAG);
            while (au + k < line + n && au[k] != ' ' && k + 1 < sizeof o->client_auth) {
                o->client_auth[k] = au[k];
                k++;
            }
        }
        o->client_auth[k] = '\0';
        o->last_status_ms = ns_now_ms();
        pthread_mutex_unlock(&o->mu);
        return;
    }
    /* Only printable bytes reach the terminal or journal: an enclave cannot send escapes. */
    memcpy(buf, "enclave: ", 9);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        buf[9 + i] = (c >= 0x20 && c != 0x7f) || c == '\t' ? (char)c : '?';
    }
    buf[9 + n] = '\n';
    ssize_t w = write(2, buf, n + 10);
    if (o->log_fd >= 0) {
        w = write(o->log_fd, buf + 9, n + 1);
    }
    (void)w;
}

static void on_audit_line(void *arg, const char *line, size_t n)
{
    re_obs *o = arg;
    char buf[NS_LOGRECV_LINE_MAX + 1];
    memcpy(buf, line, n);
    buf[n] = '\n';
    ssize_t w = write(o->audit_fd, buf, n + 1);
    (void)w;
}

static int serve_ready(void *arg, const ns_httpd_req *r, ns_buf *body, const char **ctype)
{
    re_obs *o = arg;
    if (strcmp(r->path, "/ready") != 0 && strcmp(r->path, "/") != 0) {
        return 404;
    }
    pthread_mutex_lock(&o->mu);
    int64_t age = o->last_status_ms ? ns_now_ms() - o->last_status_ms : -1;
    int ok = age >= 0 && age <= o->max_age_ms && strcmp(o->state, "SERVING") == 0;
    ns_err e =
        ns_buf_printf(body, "%s state=%s last_status_ms_ago=%lld\n", ok ? "ready" : "not ready",
                      o->state[0] ? o->state : "none", (long long)age);
    pthread_mutex_unlock(&o->mu);
    *ctype = "text/plain; charset=utf-8";
    return e != NS_OK ? 500 : ok ? 200 : 503;
}

static ns_err step_observability(re_state *s)
{
    re_cfg *c = s->c;
    ns_addr a;
    if (g_dry) {
        printf("%2d %-12s logs %s -> stderr 'enclave: '%s%s; audit %s -> %s; readiness %s; "
               "metrics %s -> %s (with the bridges)\n",
               ++g_step, "observe", c->log_listen[0] ? c->log_listen : "none",
               c->log_file[0] ? " and " : "", c->log_file,
               c->audit_listen[0] ? c->audit_listen : "none", c->audit_file,
               c->ready_listen[0] ? c->ready_listen : "none",
               c->metrics_listen[0] ? c->metrics_listen : "none", c->metrics_connect);
        return NS_OK;
    }
    int64_t t0 = ns_now_ms();
    g_obs.max_age_ms = c->ready_max_age_s * 1000;
    if (c->log_file[0]) {
        g_obs.log_fd = open(c->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (g_obs.log_fd < 0) {
            return ns_fail_errno(NS_E_IO, "open ENCLAVE_LOG_FILE %s", c->log_file);
        }
    }
    if (c->log_listen[0]) {
        GUARD(ns_addr_parse(&a, c->log_listen));
        GUARD(ns_logrecv_start(&g_obs.logs, &a, on_enclave_line, &g_obs));
    }
    if (c->audit_listen[0]) {
        g_obs.audit_fd = open(c->audit_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (g_obs.audit_fd < 0) {
            return ns_fail_errno(NS_E_IO, "open AUDIT_LOG_FILE %s", c->audit_file);
        }
        GUARD(ns_addr_parse(&a, c->audit_listen));
        GUARD(ns_logrecv_start(&g_obs.audit, &a, on_audit_line, &g_obs));
    }
    if (c->ready_listen[0]) {
        GUARD(ns_addr_parse(&a, c->ready_listen));
        ns_err e = ns_httpd_start(&g_obs.ready, &a, serve_ready, &g_obs);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "readiness listener %s", c->ready_listen);
        }
    }
    ns_info("step=observe ok ms=%lld logs=%s audit=%s audit_file=%s ready=%s metrics=%s",
            (long long)(ns_now_ms() - t0), c->log_listen[0] ? c->log_listen : "none",
            c->audit_listen[0] ? c->audit_listen : "none", c->audit_file,
            c->ready_listen[0] ? c->ready_listen : "none",
            c->metrics_listen[0] ? c->metrics_listen : "none");
    return NS_OK;
}

static void stop_observability(void)
{
    ns_httpd_stop(g_obs.ready);
    ns_logrecv_stop(g_obs.logs);
    ns_logrecv_stop(g_obs.audit);
    g_obs.ready = NULL;
    g_obs.logs = g_obs.audit = NULL;
    if (g_obs.log_fd >= 0) {
        close(g_obs.log_fd);
    }
    if (g_obs.audit_fd >= 0) {
        (void)fsync(g_obs.audit_fd);
        close(g_obs.audit_fd);
    }
    g_obs.log_fd = g_obs.audit_fd = -1;
}

/* A TCP ingress on a non-loopback address starts on the same port of loopback: the host does
 * not know yet whether the enclave's (encrypted) keys file lets anyone sign. */
static void ingress_plan(re_state *s)
{
    ns_addr a;
    s->ingress_wide = 1;
    if (ns_addr_parse(&a, s->c->grpc_listen) != NS_OK || a.kind != NS_ADDR_TCP ||
        ns_addr_host_is_loopback(a.host)) {
        return;
    }
    snprintf(s->ingress_narrow, sizeof s->ingress_narrow,
             strchr(a.host, ':') ? "tcp:[::1]:%u" : "tcp:127.0.0.1:%u", (unsigned)a.port);
    s->ingress_wide = 0;
}

static ns_err step_bridges(re_state *s)
{
    char *av[18];
    ingress_plan(s);
    build_bridges_argv(s, av);
    char note[2 * NS_ADDR_STR_MAX + 160];
    int k = snprintf(note, sizeof note, "%s, supervised",
                     s->c->egress ? "ingress and egress" : "ingress");
    if (!s->ingress_wide) {
        snprintf(note + k, sizeof note - (size_t)k,
                 "; the ingress moves to %s once the enclave reports client_auth=required (a "
                 "version-2 keys file: only pinned clients sign)",
                 s->c->grpc_listen);
    }
    show("bridges", av, note);
    if (!s->ingress_wide && !s->c->log_listen[0]) {
        ns_warn("ingress: the enclave's log channel is off (NSIGN_HOST_LOG_LISTEN=none), so its "
                "client policy cannot be learnt: the ingress stays on %s",
                s->ingress_narrow);
    }
    if (g_dry) {
        return NS_OK;
    }
    GUARD(ns_supervise_spawn(&s->bridges, av, NS_SPAWN_STDIN_NULL, -1));
    return NS_OK;
}

static ns_err step_push(re_state *s)
{
    re_cfg *c = s->c;
    char tmo[32];
    snprintf(tmo, sizeof tmo, "%d", c->readiness_s);
    char *p1[] = {c->self, "vsock-push", "--timeout", tmo, c->creds_push, "-", NULL};
    char *p2[] = {c->self, "vsock-push", "--timeout", tmo, c->age_push, "-", NULL};
    char *p3[] = {c->self, "vsock-push", "--timeout", tmo, c->shares_push, "-", NULL};
    char *p0[] = {c->self, "vsock-push", "--timeout", tmo, c->config_push, "-", NULL};
    char note[RE_CONFIG_MAX + 64];
    int64_t t0;
    ns_err e;
    if (c->config_push[0]) {
        /* First, acknowledged before anything else: the enclave closes its configuration port
         * once the other three frames are in. */
        snprintf(note, sizeof note, "configuration first: %s", c->config);
        show("push", p0, note);
    }
    show("push", p1, "credentials through a pipe");
    show("push", p2, "age key ciphertext");
    show("push", p3, "key shares ciphertext");
    if (g_dry) {
        return NS_OK;
    }
    t0 = ns_now_ms();
    if (c->config_push[0]) {
        e = run_step("push configuration", p0, (const uint8_t *)c->config, strlen(c->config), NULL,
                     (c->readiness_s + 30) * 1000);
        if (e != NS_OK) {
            ns_buf_free(&s->creds);
            return e;
        }
    }
    e = run_step("push credentials", p1, s->creds.data, s->creds.len, NULL,
                 (c->readiness_s + 30) * 1000);
    ns_buf_free(&s->creds);
    GUARD(e);
    GUARD(run_step("push age key", p2, s->age_ct.data, s->age_ct.len, NULL,
                   (c->readiness_s + 30) * 1000));
    GUARD(run_step("push key shares", p3, s->shares_ct.data, s->shares_ct.len, NULL,
                   (c->readiness_s + 120) * 1000));
    ns_buf_free(&s->age_ct);
    ns_buf_free(&s->shares_ct);
    step_ok("push", t0);
    return NS_OK;
}

/*
 * NS_E_CLOSED when nitro-cli no longer lists the enclave (it exited or was terminated). A
 * describe-enclaves that fails (exit status, timeout, output that is not its JSON array: e.g. a
 * nitro-cli that cannot read some EIF's metadata) proves nothing: it is logged and tried again
 * at the next watch, never a reason to stop the enclave.
 */
static ns_err watch_enclave(re_state *s)
{
    char *av[] = {s->c->nitro, "describe-enclaves", NULL};
    ns_buf out;
    int st = -1, listed = 0;
    if (s->c->emu) {
        return ns_emu_poll(&s->emu);
    }
    ns_buf_init(&out, RE_NITRO_OUT_MAX);
    ns_err e = ns_supervise_run(av, NULL, 0, &out, RE_NITRO_TIMEOUT_MS, &st);
    if (e == NS_OK && !ns_status_ok(st)) {
        char sts[64];
        ns_status_str(st, sts, sizeof sts);
        e = ns_fail(NS_E_REMOTE, "%s", sts);
    }
    if (e == NS_OK) {
        e = describe_lists(&out, s->c->name, &listed);
    }
    ns_buf_free(&out);
    if (e != NS_OK) {
        s->watch_failures++;
        ns_warn("nitro-cli describe-enclaves failed (%s; %d in a row): cannot tell whether %s "
                "still runs; retrying in %d s",
                ns_err_msg(), s->watch_failures, s->c->name, s->c->watch_s);
        return NS_OK;
    }
    if (s->watch_failures) {
        ns_info("nitro-cli describe-enclaves answers again after %d failures", s->watch_failures);
        s->watch_failures = 0;
    }
    if (!listed) {
        s->enclave_started = 0;
        BAIL(NS_E_CLOSED,
             "enclave %s is no longer running: it exited or was terminated; its console (debug "
             "mode: %s, `%s console --enclave-name %s`) says why",
             s->c->name, s->c->console_file, s->c->nitro_name, s->c->name);
    }
    return NS_OK;
}

static void terminate_enclave(re_state *s)
{
    char *av[] = {s->c->nitro, "terminate-enclave", "--enclave-name", s->c->name, NULL};
    ns_buf out;
    int st = -1;
    if (!s->enclave_started) {
        return;
    }
    if (s->c->emu) {
        ns_info("stopping the emulated enclave name=%s (QEMU, then its vsock backend)",
                s->c->name);
        ns_emu_stop(&s->emu, RE_STOP_GRACE_MS);
        s->enclave_started = 0;
        return;
    }
    ns_buf_init(&out, RE_NITRO_OUT_MAX);
    ns_info("terminating enclave name=%s", s->c->name);
    if ((ns_supervise_run(av, NULL, 0, &out, RE_NITRO_TIMEOUT_MS, &st) != NS_OK ||
         !ns_status_ok(st)) &&
        s->enclave_started == 1) {
        ns_warn("nitro-cli terminate-enclave --enclave-name %s failed: run it by hand", s->c->name);
    }
    ns_buf_free(&out);
    s->enclave_started = 0;
}

static void stop_all(re_state *s)
{
    ns_supervise_stop(&s->bridges, RE_STOP_GRACE_MS);
    ns_supervise_stop(&s->kms, RE_STOP_GRACE_MS);
    terminate_enclave(s);
    /* nitro-cli console exits by itself once the enclave is gone, after its last lines, which
     * are usually why the enclave stopped: let it finish writing CONSOLE_FILE first. */
    int st;
    if (!s->left_running && s->console.pid > 0 &&
        ns_supervise_wait(&s->console, RE_CONSOLE_DRAIN_MS, &st) != NS_OK) {
        ns_warn("nitro-cli console still running %d ms after the enclave stopped: stopping it; "
                "CONSOLE_FILE %s may lack the last lines",
                RE_CONSOLE_DRAIN_MS, s->c->console_file);
    }
    ns_supervise_stop(&s->console, RE_STOP_GRACE_MS);
}

/* Widens the ingress once the enclave says only pinned clients can sign; warns once when it
 * says anyone could (a version-1 keys file), and keeps it on loopback. */
static ns_err ingress_follow_auth(re_state *s)
{
    if (s->ingress_wide || s->bridges.pid == 0) {
        return NS_OK;
    }
    char auth[sizeof g_obs.client_auth];
    pthread_mutex_lock(&g_obs.mu);
    memcpy(auth, g_obs.client_auth, sizeof auth);
    pthread_mutex_unlock(&g_obs.mu);
    if (strcmp(auth, "required") == 0) {
        ns_info("ingress: the enclave serves pinned clients only (client_auth=required): moving "
                "the ingress from %s to %s",
                s->ingress_narrow, s->c->grpc_listen);
        s->ingress_wide = 1;
        ns_supervise_stop(&s->bridges, RE_STOP_GRACE_MS);
        char *av[18];
        build_bridges_argv(s, av);
        return ns_supervise_spawn(&s->bridges, av, NS_SPAWN_STDIN_NULL, -1);
    }
    if (strcmp(auth, "none") == 0 && !s->ingress_warned) {
        s->ingress_warned = 1;
        ns_warn("ingress: the enclave's keys file has no client policy (version 1): anyone who "
                "reached %s could sign with every key, so the ingress stays on %s. Give the "
                "enclave a version-2 keys file (\"clients\" pinned by certificate, \"allow\" per "
                "key) to serve other hosts, or set NSIGN_HOST_GRPC_LISTEN to a loopback address",
                s->c->grpc_listen, s->ingress_narrow);
    }
    return NS_OK;
}

/* Restarts a dead bridge (bounded); a bridge that keeps dying fails the run. */
static ns_err supervise_child(re_state *s, ns_supervise_child *ch, int *restarts, const char *what,
                              void (*build)(re_state *, char **))
{
    int exited = 0, st = 0;
    char buf[64];
    if (ch->pid == 0) {
        return NS_OK;
    }
    GUARD(ns_supervise_poll(ch, &exited, &st));
    if (!exited) {
        return NS_OK;
    }
    ns_status_str(st, buf, sizeof buf);
    ENSURE(*restarts < RE_RESTARTS_MAX, NS_E_REMOTE,
           "the %s bridge exited (%s) %d times; giving up (its errors are logged above)", what, buf,
           RE_RESTARTS_MAX + 1);
    (*restarts)++;
    ns_warn("%s bridge exited (%s); restarting (%d/%d)", what, buf, *restarts, RE_RESTARTS_MAX);
    usleep(RE_RESTART_BACKOFF_MS * 1000);
    char *av[18];
    build(s, av);
    return ns_supervise_spawn(ch, av, NS_SPAWN_STDIN_NULL, -1);
}

static ns_err take_lock(re_state *s)
{
    re_cfg *c = s->c;
    if (mkdir(c->run_dir, 0700) != 0 && errno != EEXIST) {
        return ns_fail_errno(NS_E_IO, "mkdir NSIGN_RUN_DIR %s", c->run_dir);
    }
    /* The emulator's vsock sockets live here; the KMS proxy and the observability listeners
     * bind in it before QEMU starts. */
    if (c->emu && mkdir(c->emu_dir, 0700) != 0 && errno != EEXIST) {
        return ns_fail_errno(NS_E_IO, "mkdir %s", c->emu_dir);
    }
    snprintf(s->lock_path, sizeof s->lock_path, "%s/%s.pid", c->run_dir, c->name);
    s->lock_fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        return ns_fail_errno(NS_E_IO, "open lock file %s", s->lock_path);
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(s->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        close(s->lock_fd);
        s->lock_fd = -1;
        BAIL(NS_E_USAGE, "another run-enclave for %s is running (pid %s, lock %s)", c->name,
             strtok(pid, "\n") ? pid : "?", s->lock_path);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, pid, (size_t)n, 0) != n) {
        return ns_fail_errno(NS_E_IO, "write lock file %s", s->lock_path);
    }
    return NS_OK;
}

static void release_lock(re_state *s)
{
    if (s->lock_fd >= 0) {
        unlink(s->lock_path);
        close(s->lock_fd);
        s->lock_fd = -1;
    }
}

int run_enclave_main(int argc, char **argv)
{
    static re_cfg cfg;
    static re_state st;
    ns_err e;

    if (ns_cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return NS_EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) {
            g_dry = 1;
        } else if (strcmp(argv[i], "--emulator") == 0) {
            cfg.emu = 1;
        } else if (strcmp(argv[i], "--fetch") == 0) {
            g_fetch = 1;
        } else {
            return ns_cli_usage_error("unknown argument '%s'", argv[i]);
        }
    }
    const char *emu_env = getenv("NSIGN_EMULATOR");
    if (emu_env && strcmp(emu_env, "1") == 0) {
        cfg.emu = 1;
    }
    if (g_fetch && !g_dry) {
        return ns_cli_usage_error("--fetch goes with --dry-run");
    }
    e = cfg_load(&cfg);
    if (e != NS_OK) {
        ns_log_err(e, "configuration");
        return e == NS_E_USAGE ? NS_EXIT_USAGE : NS_EXIT_FAIL;
    }
    memset(&st, 0, sizeof st);
    st.c = &cfg;
    st.lock_fd = -1;
    st.kms.pid = st.bridges.pid = st.console.pid = 0;
    st.kms.in_fd = st.kms.out_fd = st.bridges.in_fd = st.bridges.out_fd = -1;
    st.console.in_fd = st.console.out_fd = -1;
    ns_emu_init(&st.emu);
    ns_buf_init_secret(&st.creds, RE_CREDS_MAX);
    ns_buf_init(&st.age_ct, RE_AGE_KEY_MAX);
    ns_buf_init(&st.shares_ct, RE_SHARES_MAX);

    e = ns_self_exe(cfg.self, sizeof cfg.self);
    static char qemu[4096];
    if (e == NS_OK && cfg.emu) {
        snprintf(cfg.nitro, sizeof cfg.nitro, "(emulator)");
        if (ns_emu_find_qemu(cfg.self, qemu, sizeof qemu) == NS_OK) {
            cfg.emu_cfg.qemu = qemu;
        } else if (g_dry) {
            cfg.emu_cfg.qemu = "qemu-system-x86_64";
        } else {
            e = ns_fail(NS_E_NOT_FOUND, "%s", ns_err_msg());
        }
    } else if (e == NS_OK &&
               ns_supervise_which(cfg.nitro_name, cfg.nitro, sizeof cfg.nitro) != NS_OK) {
        if (g_dry) {
            snprintf(cfg.nitro, sizeof cfg.nitro, "%s", cfg.nitro_name);
        } else {
            e = ns_fail(NS_E_NOT_FOUND,
                        "%s not found: install the AWS Nitro Enclaves CLI "
                        "(aws-nitro-enclaves-cli) or set NITRO_CLI to its path",
                        cfg.nitro_name);
        }
    }
    if (e != NS_OK) {
        ns_log_err(e, "run-enclave");
        return NS_EXIT_FAIL;
    }
    if (g_dry) {
        printf("run-enclave plan for enclave %s (cid %s, %s vCPUs, %s MiB, eif %s):\n", cfg.name,
               cfg.cid, cfg.cpu, cfg.mem, cfg.eif);
    } else {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        ns_supervise_set_cancel(&g_stop);
        if (ns_secret_process_init() != NS_OK) {
            ns_warn("cannot make the process non-dumpable: %s", ns_err_msg());
        }
        e = take_lock(&st);
        if (e != NS_OK) {
            ns_log_err(e, "run-enclave");
            return NS_EXIT_FAIL;
        }
    }

    const char *failed = "check";
    GUARD_GOTO(step_check(&st), e, out);
    failed = "download";
    GUARD_GOTO(step_downloads(&st), e, out);
    GUARD_GOTO(predict_pcr16(&st), e, out);
    GUARD_GOTO(check_stop(), e, out);
    failed = "kms-proxy";
    GUARD_GOTO(step_kms_proxy(&st), e, out);
    failed = "observe";
    GUARD_GOTO(step_observability(&st), e, out);
    failed = "nitro-cli";
    GUARD_GOTO(step_nitro_run(&st), e, out);
    GUARD_GOTO(check_stop(), e, out);
    failed = "console";
    GUARD_GOTO(step_console(&st), e, out);
    failed = "bridges";
    GUARD_GOTO(step_bridges(&st), e, out);
    GUARD_GOTO(check_stop(), e, out);
    failed = "push";
    e = step_push(&st);
    if (e != NS_OK) {
        e = ns_fail_ctx(e, "the enclave did not take its secrets (did it boot? %s)",
                        cfg.debug ? "see CONSOLE_FILE"
                                  : "rerun with DEBUG_MODE=1 to see its console");
        goto out;
    }
    if (g_dry) {
        if (cfg.emu) {
            printf("%2d %-12s until SIGTERM/SIGINT or QEMU/the backend exits: restart a dead "
                   "bridge (at most %d times), then stop the bridges, QEMU and the backend\n",
                   ++g_step, "supervise", RE_RESTARTS_MAX);
            return NS_EXIT_OK;
        }
        printf("%2d %-12s until SIGTERM/SIGINT: restart a dead bridge (at most %d times), then "
               "stop the bridges and `%s terminate-enclave --enclave-name %s`\n",
               ++g_step, "supervise", RE_RESTARTS_MAX, cfg.nitro, cfg.name);
        return NS_EXIT_OK;
    }
    ns_info("enclave %s is running: gRPC at %s; waiting for SIGTERM", cfg.name, cfg.grpc_listen);
    failed = "supervise";
    int64_t next_watch = ns_now_ms() + (int64_t)cfg.watch_s * 1000;
    while (!g_stop) {
        /* Under the emulator the check is a waitpid: every tick. */
        if ((cfg.watch_s > 0 && ns_now_ms() >= next_watch) || cfg.emu) {
            GUARD_GOTO(watch_enclave(&st), e, out);
            next_watch = ns_now_ms() + (int64_t)cfg.watch_s * 1000;
        }
        GUARD_GOTO(supervise_child(&st, &st.bridges, &st.bridge_restarts, "ingress/egress",
                                   build_bridges_argv),
                   e, out);
        GUARD_GOTO(ingress_follow_auth(&st), e, out);
        GUARD_GOTO(supervise_child(&st, &st.kms, &st.kms_restarts, "KMS proxy", build_kms_argv), e,
                   out);
        usleep(RE_TICK_MS * 1000);
    }
    ns_info("signal %d: stopping bridges and the enclave", (int)g_stop);
out:
    if (g_dry) {
        ns_buf_free(&st.creds); /* --fetch: wiped like in a real run */
        ns_buf_free(&st.age_ct);
        ns_buf_free(&st.shares_ct);
        if (e != NS_OK) {
            ns_log_err(e, failed);
        }
        return e == NS_OK ? NS_EXIT_OK : NS_EXIT_FAIL;
    }
    ns_buf_free(&st.creds);
    ns_buf_free(&st.age_ct);
    ns_buf_free(&st.shares_ct);
    ns_supervise_set_cancel(NULL); /* the clean-up (terminate-enclave) must run to completion */
    if (e != NS_OK) {
        ns_log_err(e, failed);
        if (cfg.debug && st.enclave_started && !cfg.emu) {
            ns_warn("DEBUG_MODE=1: leaving enclave %s running for `%s console --enclave-name %s`;"
                    " stop it with nsign stop-enclave",
                    cfg.name, cfg.nitro_name, cfg.name);
            st.enclave_started = 0;
            st.left_running = 1;
        }
    }
    stop_all(&st);
    stop_observability(); /* after the enclave: its last lines and final audit head are in */
    release_lock(&st);
    ns_info("stopped");
    return e == NS_OK ? NS_EXIT_OK : NS_EXIT_FAIL;
}
