/*
 * enclave-entrypoint: the enclave image's ENTRYPOINT, replacing enclave-entrypoint.sh. One
 * process, no shell, no files: the secrets arrive over vsock into locked memory, are decrypted
 * in memory and handed to sign-service in memory.
 *
 *   [pid1]     mount /proc /sys /dev, read /env, load NSIGN_MODULES (nsm.ko), reap orphans
 *   loopback   lo up (a Nitro enclave boots with it down)
 *   [heartbeat] 0xB7 to vsock:3:9000 (nitro-cli's boot check) when PID 1
 *   [entropy]  NSM randomness credited to /dev/random when PID 1 and an NSM exists
 *   bridges    ingress vsock:any:50051 -> sign-service, egress tcp:127.0.0.1:8080 -> vsock:3:8080
 *   receive    credentials, age key ciphertext, shares ciphertext, any order, and the optional
 *              run-time configuration (region, KMS key, KMS endpoint) on 7103 (enclave.c)
 *   configure  the region: a full KMS key ARN's, else the configuration's, else AWS_REGION,
 *              else us-east-1, logged with where it came from
 *   preflight  fail closed: NSM answers, no debug mode unless the image allows it, the NSM's
 *              hwrng (PID 1), an initialised random pool
 *   measure    PCR16 <- SHA-384 of the ciphertexts and the configuration, locked; later
 *              frames are refused
 *   kms-decrypt, wipe-credentials, age-decrypt, load-keys, sign-service
 *
 * Every step logs one line with its duration; a failure logs the step and the reason and
 * exits 1 (as PID 1 it then powers the enclave off so the host sees it end). Log lines go to
 * the console and, from the start, into a bounded ring that the observability step sends to the
 * log address first; a boot that fails before that step sends the ring to the configured (else
 * the default) log address, bounded, before it ends.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "age.h"
#include "bridge.h"
#include "cli.h"
#include "creds.h"
#include "enclave.h"
#include "frame.h"
#include "iox.h"
#include "kms.h"
#include "log.h"
#include "nsm.h"
#include "pcr.h"
#include "pid1.h"
#include "secret.h"
#include "signsvc.h"
#include "svcobs.h"

static const char usage_text[] =
    "usage: nsign enclave-entrypoint [--pid1]\n"
    "\n"
    "The enclave's boot, in one process: brings lo up, starts the ingress and egress bridges,\n"
    "receives the credentials, the KMS-encrypted age key and the age-encrypted key shares (in\n"
    "any order) and the optional run-time configuration, decrypts the age key with KMS (with NSM "
    "attestation) through the KMS proxy,\n"
    "decrypts the shares, wipes the credentials and the age key, and serves the keys with\n"
    "sign-service over TLS (always: its key is made here at each start and bound in Attest;\n"
    "mutual TLS when the keys file has a client policy), so the host relays only ciphertext.\n"
    "Each step logs its duration; a failure names the step and exits 1.\n"
    "As PID 1 (or with --pid1) it also mounts /proc, /sys and /dev, loads /env and the kernel\n"
    "modules in NSIGN_MODULES (default /nsm.ko), reaps orphans, seeds /dev/random from the NSM\n"
    "and sends the Nitro boot heartbeat.\n"
    "\n"
    "environment (the seed's names and defaults):\n"
    "  AWS_CREDS_VSOCK_PORT=7100 AGE_KEY_VSOCK_PORT=7101 KEY_SHARES_VSOCK_PORT=7102\n"
    "  VSOCK_PORT=50051 (ingress, and sign-service on 127.0.0.1)  HOST_EGRESS_ENABLED=1\n"
    "  HOST_EGRESS_VSOCK_PORT=8080  KMS_PROXY_PORT=5000  PARENT_CID=3  AWS_REGION=us-east-1\n"
    "  KMS_KEY_ID, AWS_ENDPOINT_URL_KMS, AWS_CA_BUNDLE (tests), NSM_DEVICE (tests)\n"
    "  CONFIG_VSOCK_PORT=7103: the optional run-time configuration frame, a JSON object of at\n"
    "  most 4 KiB with only the string members region, kms_key_id and kms_endpoint (https URL);\n"
    "  it replaces AWS_REGION, KMS_KEY_ID and AWS_ENDPOINT_URL_KMS. The region is taken from a\n"
    "  full KMS key ARN, else the configuration, else AWS_REGION, else us-east-1 (logged).\n"
    "overrides (any nsign address; \"none\" disables ingress, egress or heartbeat):\n"
    "  NSIGN_ENCLAVE_CREDS_ADDR, NSIGN_ENCLAVE_AGE_KEY_ADDR, NSIGN_ENCLAVE_SHARES_ADDR,\n"
    "  NSIGN_ENCLAVE_CONFIG_ADDR (\"none\": no configuration frame),\n"
    "  NSIGN_ENCLAVE_SIGN_ADDR, NSIGN_ENCLAVE_INGRESS_ADDR, NSIGN_ENCLAVE_EGRESS_LISTEN_ADDR,\n"
    "  NSIGN_ENCLAVE_EGRESS_CONNECT_ADDR, NSIGN_ENCLAVE_KMS_PROXY_ADDR,\n"
    "  NSIGN_ENCLAVE_HEARTBEAT_ADDR, NSIGN_ENCLAVE_RECV_TIMEOUT=600 (seconds),\n"
    "  NSIGN_ENCLAVE_SIGN_THREADS=0 (one per core), NSIGN_ENCLAVE_ATTEST=auto|1|0,\n"
    "  NSIGN_MODULES=/nsm.ko (comma-separated, PID 1 only)\n"
    "observability (on by default in an enclave: PID 1 or /dev/nsm; \"none\" disables):\n"
    "  ENCLAVE_LOG_VSOCK_PORT=7110  log lines to vsock:PARENT_CID:7110 (never blocking), the\n"
    "                               first ones (kept in a bounded ring until the address is\n"
    "                               known) first; a boot that fails early still sends them\n"
    "  AUDIT_VSOCK_PORT=7111        the signed audit trail to vsock:PARENT_CID:7111\n"
    "  METRICS_VSOCK_PORT=7112      Prometheus metrics at GET /metrics on vsock:any:7112\n"
    "  NSIGN_ENCLAVE_LOG_ADDR, NSIGN_ENCLAVE_AUDIT_ADDR, NSIGN_ENCLAVE_METRICS_ADDR (any\n"
    "  address), NSIGN_ENCLAVE_AUDIT_EVERY=100 (entries per signed head),\n"
    "  NSIGN_ENCLAVE_AUDIT_INTERVAL=10 (seconds), NSIGN_ENCLAVE_STATUS_INTERVAL=5 (seconds\n"
    "  between the status lines run-enclave's readiness check reads)\n"
    "measured boot: before anything is decrypted, PCR16 is extended with the SHA-384 of the\n"
    "age-key ciphertext, the shares ciphertext and the configuration (when sent), then locked;\n"
    "frames arriving later are refused (status 06). It refuses to decrypt when the NSM does not\n"
    "answer, when PCR0 is all zero (debug mode) unless the image sets NSIGN_ALLOW_DEBUG_MODE=1,\n"
    "as PID 1 when the kernel's hwrng is not nsm-hwrng, and when the random pool is not ready.\n"
    "NSIGN_ENCLAVE_ATTEST=0 (development outside an enclave) skips all of it.\n"
    "\n"
    "exit status: 0 stopped by SIGTERM/SIGINT, 1 a step failed, 2 usage.\n";

static ns_stop g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* ---- the steps' work, bound to the modules ---- */

typedef struct {
    const ns_enclave_cfg *cfg;
    int64_t t_start; /* for the boot-to-serving figure in the log */
    ns_signsvc_keys *keys;
    ns_svcobs *obs;
} ee_ctx;

/* Waits for a sender or a cancel, then lets the frame module accept and verify the frame. */
static ns_err ee_recv(void *ctx, int listen_fd, int cancel_fd, int timeout_ms, ns_buf *out)
{
    int64_t deadline = ns_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p[2] = {{.fd = listen_fd, .events = POLLIN},
                              {.fd = cancel_fd, .events = POLLIN}};
        int left = ns_ms_left(deadline);
        ENSURE(left > 0, NS_E_TIMEOUT, "no sender connected within %d ms", timeout_ms);
        int r = poll(p, 2, left);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return ns_fail_errno(NS_E_IO, "poll");
        }
        if (p[1].revents) {
            BAIL(NS_E_CLOSED, "cancelled: another step failed or a stop was requested");
        }
        if (p[0].revents) {
            return ns_frame_recv_on(listen_fd, out->max, ns_ms_left(deadline), out);
        }
    }
}

static ns_err ee_kms(void *vctx, const ns_enclave_cfg *cfg, const ns_buf *creds_json,
                     const ns_buf *ct, ns_buf *out)
{
    ns_creds *creds = NULL;
    GUARD(ns_creds_new(&creds));
    ns_err e = ns_creds_parse_json(creds, creds_json->data, creds_json->len);
    if (e == NS_OK) {
        e = ns_creds_check_fresh(creds, time(NULL));
    }
    if (e != NS_OK) {
        ns_creds_free(creds);
        return ns_fail_ctx(e, "credentials received on the credentials port");
    }
    ns_kms_decrypt_req req;
    memset(&req, 0, sizeof req);
    req.region = cfg->region;
    req.endpoint = cfg->kms_endpoint[0] ? cfg->kms_endpoint : NULL;
    req.proxy = &cfg->kms_proxy;
    req.key_id = cfg->kms_key_id[0] ? cfg->kms_key_id : NULL;
    req.attest = cfg->attest < 0 ? ns_nsm_available() : cfg->attest;
    req.ca_bundle = cfg->ca_bundle[0] ? cfg->ca_bundle : NULL;
    e = ns_kms_decrypt(out, &req, creds, ct->data, ct->len);
    ns_creds_free(creds);
    return e;
}

static ns_err ee_age(void *ctx, const ns_buf *identity, const ns_buf *ct, ns_buf *out)
{
    return ns_age_decrypt_mem(out, ct->data, ct->len, (const char *)identity->data, identity->len);
}

static ns_err ee_load_keys(void *vctx, const ns_buf *keys_json)
{
    ee_ctx *c = vctx;
    return ns_signsvc_load_keys(&c->keys, keys_json->data, keys_json->len);
}

static void ee_on_listening(const char *addr, void *arg)
{
    ee_ctx *c = arg;
    ns_svcobs_set_state(c->obs, "SERVING");
    ns_info("SERVING addr=%s since_start_ms=%lld", addr, (long long)(ns_now_ms() - c->t_start));
}

static ns_err ee_serve(void *vctx, const ns_enclave_cfg *cfg, ns_stop *stop)
{
    ee_ctx *c = vctx;
    ns_signsvc_cfg scfg;
    char a[NS_ADDR_STR_MAX];
    memset(&scfg, 0, sizeof scfg);
    scfg.listen = cfg->sign_listen;
    scfg.threads = cfg->sign_threads;
    scfg.tls = 1; /* TLS ends here, in the enclave: the host relays only ciphertext (issue 13) */
    ns_addr_format(&cfg->sign_listen, a, sizeof a);
    scfg.on_listening = ee_on_listening;
    scfg.on_listening_arg = c;
    ns_info("step=sign-service starting listen=%s", a);
    ns_err e = ns_svcobs_attach(c->obs, c->keys);
    if (e == NS_OK) {
        e = ns_signsvc_run(&scfg, c->keys, stop);
    } else {
        e = ns_fail_ctx(e, "audit trail");
    }
    ns_signsvc_keys_free(c->keys);
    c->keys = NULL;
    return e;
}

/* The facts behind the fail-closed checks (ns_enclave_preflight decides). */
static ns_err ee_preflight(void *vctx, const ns_enclave_cfg *cfg)
{
    ns_enclave_facts f;
    char why[256] = "", hwrng[64] = "";
    int locked = 0;
    memset(&f, 0, sizeof f);
    f.allow_debug = cfg->allow_debug;
    f.is_pid1 = cfg->is_pid1;
    if (!ns_nsm_available()) {
        snprintf(why, sizeof why, "no /dev/nsm and no NSM_DEVICE");
    } else if (ns_nsm_describe_pcr(0, &locked, f.pcr0) != NS_OK) {
        snprintf(why, sizeof why, "%s", ns_err_msg());
    } else {
        f.nsm_ok = 1;
    }
    f.nsm_error = why;
    if (cfg->is_pid1) {
        ns_buf b;
        ns_buf_init(&b, sizeof hwrng - 1);
        if (ns_read_path("/sys/class/misc/hw_random/rng_current", &b) == NS_OK) {
            memcpy(hwrng, b.data, b.len);
            hwrng[strcspn(hwrng, "\n")] = '\0';
            f.hwrng = hwrng;
        }
        ns_buf_free(&b);
    }
    uint8_t one;
    f.pool_ready = getrandom(&one, 1, GRND_NONBLOCK) == 1;
    return ns_enclave_preflight(&f);
}

/* PCR16 through the NSM, checked against the same computation done here. */
static ns_err ee_measure(void *vctx, const ns_buf *const *in, size_t n, uint8_t pcr[48])
{
    uint8_t d[NS_PCR_LEN], want[NS_PCR_LEN], got[NS_PCR_LEN];
    int locked = 1;
    GUARD(ns_nsm_describe_pcr(NS_PCR_MEASURED, &locked, got));
    ENSURE(!locked, NS_E_DENIED, "PCR%d is already locked: something measured before us",
           NS_PCR_MEASURED);
    memset(want, 0, sizeof want);
    for (size_t i = 0; i < n; i++) {
        GUARD(ns_sha384(d, in[i]->data, in[i]->len));
        GUARD(ns_pcr_extend(want, d, sizeof d));
        GUARD(ns_nsm_extend_pcr(NS_PCR_MEASURED, d, sizeof d, got));
    }
    GUARD(ns_nsm_lock_pcr(NS_PCR_MEASURED));
    GUARD(ns_nsm_describe_pcr(NS_PCR_MEASURED, &locked, got));
    ENSURE(locked && memcmp(got, want, sizeof want) == 0, NS_E_DENIED,
           "PCR%d after the lock is not what the inputs give (locked=%d): the NSM or another "
           "process changed it",
           NS_PCR_MEASURED, locked);
    memcpy(pcr, got, NS_PCR_LEN);
    return NS_OK;
}

static void ee_refuse(void *vctx, int listen_fd)
{
    int c = -1;
    if (ns_frame_accept(listen_fd, 0, &c) != NS_OK) {
        return;
    }
    ns_warn("refused a frame after the inputs were measured and locked");
    if (ns_frame_reply(c, NS_FRAME_ST_LOCKED) != NS_OK) {
        /* the sender went away: nothing to tell it */
    }
    close(c);
}

static void ee_on_step(void *ctx, ns_enclave_step step, int64_t ms, ns_err e, const char *detail)
{
    ee_ctx *c = ctx;
    if (c->obs != NULL && step != NS_STEP_SERVE) {
        ns_svcobs_boot_step(c->obs, ns_enclave_step_name(step), (double)ms / 1000.0);
    }
    if (e == NS_OK) {
        ns_info("step=%s ok ms=%lld%s%s", ns_enclave_step_name(step), (long long)ms,
                detail && detail[0] ? " " : "", detail ? detail : "");
    } else {
        ns_error("step=%s failed ms=%lld error=\"%s: %s\"", ns_enclave_step_name(step),
                 (long long)ms, ns_err_name(e), detail ? detail : "");
    }
}

/* ---- PID-1 and early steps ---- */

/* Runs one early step, logging its duration; returns its result. */
#define EARLY(name, expr)                                                                          \
    do {                                                                                           \
        int64_t t0_ = ns_now_ms();                                                                 \
        ns_err e_ = (expr);                                                                        \
        if (e_ != NS_OK) {                                                                         \
            ns_error("step=%s failed ms=%lld error=\"%s: %s\"", name,                              \
                     (long long)(ns_now_ms() - t0_), ns_err_name(e_), ns_err_msg());               \
            return e_;                                                                             \
        }                                                                                          \
        ns_info("step=%s ok ms=%lld", name, (long long)(ns_now_ms() - t0_));                       \
    } while (0)

static ns_err pid1_setup(void)
{
    int n = 0;
    EARLY("mount", ns_pid1_mount_all(""));
    EARLY("env", ns_pid1_load_env("/env", &n));
    EARLY("reaper", ns_pid1_reap_children());
    return NS_OK;
}

static ns_err early_steps(const ns_enclave_cfg *cfg, int is_pid1)
{
    int n = 0;
    if (cfg->modules[0] && getenv("NSIGN_MODULES") == NULL && access(cfg->modules, R_OK) != 0) {
        /* Only the default (/nsm.ko) may be absent: a kernel with the driver built in. */
        ns_warn("step=modules skipped: no %s and NSIGN_MODULES unset", cfg->modules);
    } else if (cfg->modules[0]) {
        EARLY("modules", ns_pid1_load_modules(cfg->modules, &n));
    }
    EARLY("loopback", ns_netif_up("lo"));
    if (cfg->heartbeat_enabled) {
        EARLY("heartbeat", ns_pid1_heartbeat(&cfg->heartbeat, cfg->heartbeat_timeout_ms));
    }
    if (is_pid1 && ns_nsm_available()) {
        int64_t t0 = ns_now_ms();
        ns_err e = ns_pid1_seed_entropy("/dev/random", NS_PID1_ENTROPY_BYTES);
        if (e != NS_OK) {
            /* The nsm hwrng feeds the pool anyway; this only speeds early boot up. */
            ns_warn("step=entropy skipped error=\"%s\"", ns_err_msg());
        } else {
            ns_info("step=entropy ok ms=%lld bytes=%d", (long long)(ns_now_ms() - t0),
                    NS_PID1_ENTROPY_BYTES);
        }
    }
    return NS_OK;
}

typedef struct {
    ns_bridge *b;
    ns_err e;
    char detail[256];
} bridge_job;

static void *bridge_thread(void *arg)
{
    bridge_job *j = arg;
    j->e = ns_bridge_serve(j->b, &g_stop);
    if (j->e != NS_OK) {
        ns_error("bridges stopped error=\"%s: %s\"", ns_err_name(j->e), ns_err_msg());
    }
    return NULL;
}

static ns_err start_bridges(const ns_enclave_cfg *cfg, bridge_job *job, pthread_t *th, int *started)
{
    static ns_bridge_pair pairs[2];
    ns_bridge_cfg bc;
    size_t n = 0;
    *started = 0;
    if (cfg->ingress_enabled) {
        pairs[n].listen = cfg->ingress_listen;
        pairs[n].connect = cfg->sign_listen;
        n++;
    }
    if (cfg->egress_enabled) {
        pairs[n].listen = cfg->egress_listen;
        pairs[n].connect = cfg->egress_connect;
        n++;
    }
    if (n == 0) {
        ns_info("step=bridges skipped (ingress and egress disabled)");
        return NS_OK;
    }
    memset(&bc, 0, sizeof bc);
    bc.pairs = pairs;
    bc.npairs = n;
    /* A silent or half-closed client must not hold a slot forever (issue 15); the peers of a
     * vsock listener are the host, so no per-peer cap here (run-enclave's tcp ingress has it). */
    bc.idle_timeout_ms = NS_BRIDGE_INGRESS_IDLE_S * 1000;
    int64_t t0 = ns_now_ms();
    ns_err e = ns_bridge_listen(&bc, &job->b);
    if (e != NS_OK) {
        ns_error("step=bridges failed error=\"%s: %s\"", ns_err_name(e), ns_err_msg());
        return e;
    }
    if (pthread_create(th, NULL, bridge_thread, job) != 0) {
        ns_bridge_free(job->b);
        job->b = NULL;
        e = ns_fail(NS_E_INTERNAL, "cannot start the bridge thread");
        ns_error("step=bridges failed error=\"%s\"", ns_err_msg());
        return e;
    }
    *started = 1;
    char l1[NS_ADDR_STR_MAX] = "-", l2[NS_ADDR_STR_MAX] = "-";
    if (cfg->ingress_enabled) {
        ns_addr_format(&cfg->ingress_listen, l1, sizeof l1);
    }
    if (cfg->egress_enabled) {
        ns_addr_format(&cfg->egress_listen, l2, sizeof l2);
    }
    ns_info("step=bridges ok ms=%lld ingress=%s egress=%s idle_timeout_s=%d",
            (long long)(ns_now_ms() - t0), l1, l2, NS_BRIDGE_INGRESS_IDLE_S);
    return NS_OK;
}

static int finish(int rc, int is_pid1)
{
    if (is_pid1) {
        /* PID 1 must not return. An enclave has no ACPI, so RB_POWER_OFF only halts the CPU
         * ("Power off not available: System halted instead") and the enclave would never end;
         * a reboot ends a Nitro enclave (it cannot restart) and QEMU run with -no-reboot (the
         * emulator, the test VMs): reboot=k, the i8042's reset line (Firecracker's, and the
         * emulator's -device i8042); without one the kernel falls back to the firmware's reset
         * vector, then a triple fault. */
        ns_info("powering off (exit status %d) by a reboot, which ends an enclave", rc);
        sync();
        reboot(RB_AUTOBOOT);
    }
    return rc;
}

/* A boot that fails before the observability step: its log lines are still in the early ring
 * (a production enclave has no console), so they go to the log address before the enclave
 * ends: the configured one when the configuration was read (cfg, "" when disabled), else the
 * image's or the default one (bounded: NS_SVCOBS_FLUSH_MS). */
static int fail_early(int rc, const ns_enclave_cfg *cfg, int is_pid1)
{
    char addr[NS_ADDR_STR_MAX];
    if (cfg != NULL) {
        snprintf(addr, sizeof addr, "%s", cfg->log_out);
    } else {
        ns_enclave_log_addr(ns_enclave_getenv, NULL, is_pid1 || access("/dev/nsm", F_OK) == 0,
                            addr);
    }
    if (addr[0] != '\0') {
        ns_info("boot failed before the observability step: sending its log lines to %s", addr);
    }
    ns_svcobs_early_flush(addr);
    return finish(rc, is_pid1);
}

int enclave_entrypoint_main(int argc, char **argv)
{
    static ns_enclave_cfg cfg;
    int is_pid1 = getpid() == 1;
    if (ns_cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return NS_EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pid1") == 0) {
            is_pid1 = 1;
        } else {
            return ns_cli_usage_error("unknown argument '%s'", argv[i]);
        }
    }
    int64_t t_start = ns_now_ms();
    /* Every line from here on is kept (bounded) for the log address, known only once the
     * configuration is read: the observability step sends these first. */
    if (ns_svcobs_early() != NS_OK) {
        ns_warn("the first log lines reach only the console: %s", ns_err_msg());
    }
    ns_info("starting pid=%d pid1=%d", (int)getpid(), is_pid1);
    if (is_pid1 && pid1_setup() != NS_OK) {
        return fail_early(NS_EXIT_FAIL, NULL, is_pid1);
    }
    if (ns_secret_process_init() != NS_OK) {
        ns_warn("cannot make the process non-dumpable: %s", ns_err_msg());
    }
    ns_io_raise_nofile(); /* the bridges and sign-service hold descriptors per connection */
    ns_err e = ns_enclave_cfg_load_ex(&cfg, ns_enclave_getenv, NULL, is_pid1,
                                      access("/dev/nsm", F_OK) == 0);
    if (e != NS_OK) {
        ns_error("step=config failed error=\"%s: %s\"", ns_err_name(e), ns_err_msg());
        return fail_early(NS_EXIT_USAGE, NULL, is_pid1);
    }
    if (cfg.log_out[0] == '\0') {
        /* No log address (a development run): nothing to keep the lines for. Dropped here,
         * before the bridge thread logs, as the log sink may change only then. */
        ns_svcobs_early_flush(NULL);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (early_steps(&cfg, is_pid1) != NS_OK) {
        return fail_early(NS_EXIT_FAIL, &cfg, is_pid1);
    }
    bridge_job bj;
    pthread_t bth;
    int bridges = 0;
    memset(&bj, 0, sizeof bj);
    if (start_bridges(&cfg, &bj, &bth, &bridges) != NS_OK) {
        return fail_early(NS_EXIT_FAIL, &cfg, is_pid1);
    }
    ee_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = &cfg;
    ctx.t_start = t_start;
    ns_svcobs_cfg ocfg = {.metrics = cfg.metrics[0] ? cfg.metrics : NULL,
                          .log_out = cfg.log_out[0] ? cfg.log_out : NULL,
                          .audit_out = cfg.audit_out[0] ? cfg.audit_out : NULL,
                          .audit_every_n = cfg.audit_every_n,
                          .audit_every_ms = cfg.audit_every_ms,
                          .status_every_ms = cfg.status_every_ms};
    int64_t t_obs = ns_now_ms();
    e = ns_svcobs_start(&ctx.obs, &ocfg);
    if (e != NS_OK) {
        ns_error("step=observability failed error=\"%s: %s\"", ns_err_name(e), ns_err_msg());
        g_stop = 1;
        if (bridges) {
            pthread_join(bth, NULL);
            ns_bridge_free(bj.b);
        }
        return fail_early(NS_EXIT_FAIL, &cfg, is_pid1);
    }
    ns_info("step=observability ok ms=%lld logs=%s audit=%s metrics=%s",
            (long long)(ns_now_ms() - t_obs), ocfg.log_out ? ocfg.log_out : "none",
            ocfg.audit_out ? ocfg.audit_out : "none", ocfg.metrics ? ocfg.metrics : "none");
    ns_enclave_ops ops = {&ctx,     ee_recv,    ee_kms,       ee_age,     ee_load_keys,
                          ee_serve, ee_on_step, ee_preflight, ee_measure, ee_refuse};
    ns_enclave_step failed = NS_STEP_COUNT;
    ns_info("waiting for secrets (timeout %d s)", cfg.recv_timeout_ms / 1000);
    e = ns_enclave_run(&cfg, &ops, &g_stop, &failed);
    g_stop = 1;
    if (bridges) {
        pthread_join(bth, NULL);
        ns_bridge_free(bj.b);
    }
    if (e != NS_OK) {
        ns_error("boot failed step=%s: no key material was kept", ns_enclave_step_name(failed));
    } else {
        ns_info("stopped");
    }
    ns_svcobs_stop(ctx.obs); /* the final audit head; the last lines flushed (bounded) */
    return finish(e != NS_OK ? NS_EXIT_FAIL : NS_EXIT_OK, is_pid1);
}
