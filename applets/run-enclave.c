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
 * step is also a command a user can run alone; --dry-run prints them; --preflight checks the
 * host and the account first (preflight.h) and starts nothing. Secrets go to children
 * through pipes. A lock file (NSIGN_RUN_DIR/ENCLAVE_NAME.pid) lets stop-enclave find us.
 *
 * This file coordinates: the environment is read and validated by runcfg.h; nitro-cli (run,
 * describe, terminate, console), the lock file and the liveness watch are nitro.h's, shared with
 * stop-enclave; --emulator's local Nitro is emu.h's; the enclave's log lines, audit trail and
 * readiness are hostobs.h's. run_enclave_main reads as its steps.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "addr.h"
#include "bridge.h"
#include "buf.h"
#include "cli.h"
#include "emu.h"
#include "hostobs.h"
#include "iox.h"
#include "log.h"
#include "nitro.h"
#include "pcr.h"
#include "preflight.h"
#include "runcfg.h"
#include "secret.h"
#include "supervise.h"

#define RE_CREDS_MAX (64 * 1024)
#define RE_AGE_KEY_MAX (64 * 1024)
#define RE_SHARES_MAX (16 * 1024 * 1024)
#define RE_FETCH_TIMEOUT_MS (120 * 1000)
#define RE_S3_TIMEOUT_MS (30 * 60 * 1000)
#define RE_STOP_GRACE_MS 3000
#define RE_CONSOLE_DRAIN_MS 5000
#define RE_RESTARTS_MAX 5
#define RE_RESTART_BACKOFF_MS 1000
#define RE_TICK_MS 100
#define RE_PROBE_EVERY_MS 2000 /* the ingress probe, while it cannot decide */
#define RE_PROBE_TIMEOUT_MS 5000
#define RE_PATH_MAX 4096

static const char usage_text[] =
    "usage: nsign run-enclave [--dry-run [--fetch]] [--emulator] | --preflight\n"
    "\n"
    "Starts the signing enclave and stays in the foreground supervising its bridges: fetches\n"
    "credentials (IMDSv2), downloads the KMS-encrypted age key and the age-encrypted key shares\n"
    "from S3 into memory, starts the KMS proxy, runs `nitro-cli run-enclave`, starts the ingress\n"
    "and egress bridges and pushes the run-time configuration (region, KMS key) and the three\n"
    "payloads (retrying until the enclave listens).\n"
    "SIGTERM drains first (NSIGN_HOST_DRAIN_SECONDS; docs/fleet.md): /ready turns 503, the\n"
    "enclave is asked to drain (POST /drain on its metrics address: GOAWAY, new connections\n"
    "refused, calls in flight answered) and exits; then, or at the end of the drain time, the\n"
    "bridges stop and the enclave is terminated. SIGINT, or a second SIGTERM, stops at once.\n"
    "`nsign stop-enclave [--drain SECONDS]` sends that SIGTERM.\n"
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
    "  --preflight check this host and account before starting anything, one line per check\n"
    "              (ok, FAIL with the fix, skip with why) and exit 0 only when none failed:\n"
    "              the EIF and its PCR0; /dev/nitro_enclaves and the nitro_enclaves driver;\n"
    "              allocator.yaml's memory_mib/cpu_count against MEMORY_MIB/CPU_COUNT, the\n"
    "              allocator's CPU pool and free hugepages; MEMORY_MIB >= 4x the EIF (nitro-cli\n"
    "              E26); nitro-cli and its version; the host listeners' ports free; IMDSv2 and\n"
    "              the instance role; both S3 objects readable (HeadObject); KMS_KEY_ID's key\n"
    "              policy naming the EIF's PCR0 (kms:DescribeKey for an alias, then\n"
    "              kms:GetKeyPolicy; skipped, saying why, when KMS_KEY_ID is unset or the\n"
    "              role may not read the key).\n"
    "              NSIGN_PREFLIGHT_ROOT=DIR (tests only) reads /dev, /sys, /etc below DIR\n"
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
    "    pinned clients can sign (a version-2 keys file) and its server, asked through\n"
    "    127.0.0.1, refuses a client without a certificate, then on all addresses; with a\n"
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
    "  NSIGN_HOST_DRAIN_SECONDS=30 the drain on SIGTERM, at most (0: stop at once)\n"
    "  NSIGN_HOST_DRAIN_DELAY_SECONDS=0  /ready is 503 this long before the enclave drains\n"
    "                              (the load balancer's time to see it: interval x fall)\n"
    "observability (\"none\" disables each):\n"
    "  ENCLAVE_LOG_VSOCK_PORT=7110  the enclave's log lines, received on vsock:any:7110, go to\n"
    "                              stderr prefixed 'enclave: ' and to ENCLAVE_LOG_FILE if set\n"
    "  AUDIT_VSOCK_PORT=7111        the signed audit trail, appended to AUDIT_LOG_FILE (default\n"
    "                              STATE_DIRECTORY/ENCLAVE_NAME.audit.jsonl under a systemd\n"
    "                              unit with StateDirectory=, else NSIGN_RUN_DIR/ENCLAVE_NAME\n"
    "                              .audit.jsonl; nsign audit-verify)\n"
    "  METRICS_VSOCK_PORT=7112      bridged from NSIGN_HOST_METRICS_LISTEN=tcp:127.0.0.1:9100\n"
    "                              (GET /metrics, Prometheus text format)\n"
    "  NSIGN_HOST_READY_LISTEN=tcp:127.0.0.1:9101  GET /ready: 200 once the enclave reports\n"
    "                              SERVING and its last status line is at most\n"
    "                              READY_MAX_AGE_SECONDS=15 old, 503 otherwise\n"
    "  NSIGN_HOST_LOG_LISTEN, NSIGN_HOST_AUDIT_LISTEN, NSIGN_HOST_METRICS_CONNECT (addresses)\n"
    "  only the enclave may write the log and audit channels: a vsock peer must be\n"
    "    NSIGN_HOST_LOG_PEER_CID=$ENCLAVE_CID (a unix peer: this user); any other is closed\n"
    "    unread, logged and counted (GET /metrics on NSIGN_HOST_READY_LISTEN:\n"
    "    nsign_host_log_refused_peers_total, nsign_host_audit_refused_peers_total)\n"
    "  every address can be overridden (tcp:, unix: or vsock: syntax), e.g. to run the flow on\n"
    "  one machine: NSIGN_HOST_CREDS_ADDR, NSIGN_HOST_AGE_KEY_ADDR, NSIGN_HOST_SHARES_ADDR,\n"
    "  NSIGN_HOST_CONFIG_ADDR (push targets; CONFIG \"none\": no configuration frame, for\n"
    "  images older than the frame), NSIGN_HOST_GRPC_LISTEN, NSIGN_HOST_GRPC_CONNECT, "
    "NSIGN_HOST_EGRESS_LISTEN,\n"
    "  NSIGN_HOST_EGRESS_CONNECT, NSIGN_HOST_KMS_PROXY_LISTEN, NSIGN_HOST_KMS_PROXY_CONNECT\n"
    "  fetch-creds, s3-get and the bridges read their own variables too (AWS_ENDPOINT_URL_S3,\n"
    "  AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_CA_BUNDLE...).\n"
    "\n"
    "exit status: 0 stopped by a signal after a successful start, 1 a step failed, 2 usage;\n"
    "--preflight: 0 no check failed (skipped ones say why), 1 one or more failed, 2 usage.\n";

/* ---- steps ---- */

static int g_dry;
static int g_preflight;
static int g_fetch; /* --dry-run --fetch: the read-only steps run, to predict PCR16 */
static int g_step;
static ns_stop g_stop;
static ns_stop g_signals;      /* signals received: a second one during the drain stops at once */
static ns_stop g_drain_s = -1; /* stop-enclave --drain N (sigqueue's value); -1: the config's */

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (sig == SIGTERM && si != NULL && si->si_code == SI_QUEUE) {
        g_drain_s = si->si_value.sival_int;
    }
    g_signals += 1;
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
    ns_runcfg *c;
    ns_supervise_child kms, bridges, console;
    ns_emu emu;
    ns_hostobs *obs; /* the enclave's logs, audit trail and readiness */
    int kms_restarts, bridge_restarts;
    int enclave_started;
    int left_running; /* DEBUG_MODE=1 failure: the enclave stays up for its console */
    ns_nitro_watch watch;
    ns_nitro_lock lock;
    char self[RE_PATH_MAX];  /* this binary: the applets the steps run */
    char nitro[RE_PATH_MAX]; /* nitro-cli's path ("(emulator)" under the emulator) */
    char qemu[RE_PATH_MAX];
    ns_buf creds, age_ct, shares_ct;
    /* The ingress listens on loopback (ingress_narrow) until the enclave reports that only
     * pinned clients can sign; then on NSIGN_HOST_GRPC_LISTEN (issue 13). */
    int ingress_wide;
    int ingress_warned;
    int serving; /* the enclave reported SERVING (hostobs' readiness) */
    int ingress_probe_warned;
    int64_t ingress_probe_next_ms;
    char ingress_narrow[NS_ADDR_STR_MAX];
} re_state;

static void build_kms_argv(re_state *s, char **av)
{
    int n = 0;
    av[n++] = s->self;
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
    av[n++] = s->self;
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

/* --emulator: the EIF and a QEMU with the nitro-enclave machine (the lock refuses a second run). */
static ns_err step_emu_check(re_state *s)
{
    ns_runcfg *c = s->c;
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

static ns_err step_check(re_state *s)
{
    ns_runcfg *c = s->c;
    struct stat st;
    if (c->emu) {
        return step_emu_check(s);
    }
    char *av[4] = {s->nitro, "describe-enclaves", NULL, NULL};
    show("check", av, "refuse to start twice; EIF and nitro-cli present");
    if (g_dry) {
        return NS_OK;
    }
    int64_t t0 = ns_now_ms();
    if (stat(c->eif, &st) != 0) {
        BAIL(NS_E_NOT_FOUND, "EIF not found at %s: build it (make eif) or set EIF_PATH", c->eif);
    }
    uint64_t need = ns_pf_min_memory_mib((uint64_t)st.st_size); /* nitro-cli's E26 rule */
    if (need > strtoull(c->mem, NULL, 10)) {
        ns_warn("MEMORY_MIB=%s is below 4x the EIF size (%llu MiB); nitro-cli will likely refuse",
                c->mem, (unsigned long long)need);
    }
    int listed = 0;
    ns_err e = ns_nitro_describe(s->nitro, c->name, &listed);
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
    if (e == NS_OK) {
        step_ok("check", t0);
    }
    return e;
}

static ns_err step_downloads(re_state *s)
{
    ns_runcfg *c = s->c;
    char *fc[] = {s->self, "fetch-creds", NULL};
    /* s3-get uses the credentials just fetched (on its stdin), like `aws s3 cp` on the role. */
    char *s1[] = {s->self, "s3-get", "--creds", "-", c->age_uri, "-", NULL};
    char *s2[] = {s->self, "s3-get", "--creds", "-", c->shares_uri, "-", NULL};
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
    ns_runcfg *c = s->c;
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
    ns_runcfg *c = s->c;
    ns_emu_cfg *ec = &c->emu_cfg;
    ec->self = s->self;
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
    ns_runcfg *c = s->c;
    char *av[NS_NITRO_RUN_ARGV_MAX];
    ns_nitro_run_args a = {c->eif, c->cpu, c->mem, c->cid, c->name, c->debug};
    ns_nitro_enclave started;
    if (c->emu) {
        return step_emu_run(s);
    }
    ns_nitro_run_argv(av, s->nitro, &a);
    show("nitro-cli", av, c->debug ? "DEBUG MODE: PCRs are all zeros, never in production" : NULL);
    if (g_dry) {
        return NS_OK;
    }
    int64_t t0 = ns_now_ms();
    ns_buf said;
    ns_buf_init(&said, NS_NITRO_OUT_MAX);
    ns_err e = ns_nitro_run(av, &a, c->console_file, c->nitro_name, &started, &said);
    if (e == NS_OK) {
        s->enclave_started = 1;
        if (started.id[0]) {
            ns_info("enclave started name=%s id=%s cid=%s", c->name, started.id, c->cid);
        }
        step_ok("nitro-cli", t0);
    } else {
        /* Echo nitro-cli's own words: they carry its error code and log path. */
        if (e == NS_E_REMOTE && said.len) {
            ns_warn("nitro-cli said: %.*s", (int)(said.len > 2000 ? 2000 : said.len),
                    (const char *)said.data);
        }
        /* nitro-cli may have started it before failing (e.g. no heartbeat): clean up quietly. */
        s->enclave_started = 2;
    }
    ns_buf_free(&said);
    return e;
}

static ns_err step_console(re_state *s)
{
    ns_runcfg *c = s->c;
    char *av[5];
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
    ns_nitro_console_argv(av, s->nitro, c->name);
    show("console", av, c->console_file);
    if (g_dry) {
        return NS_OK;
    }
    return ns_nitro_console_start(&s->console, av, c->console_file);
}

/* ---- observability: the enclave's log lines, audit trail and readiness (hostobs.h) ---- */

static ns_err step_observability(re_state *s)
{
    ns_runcfg *c = s->c;
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
    /* Only the enclave may write its log, status and audit lines: on vsock its CID (assigned by
     * the hypervisor, so no other enclave or local process can claim it), on the emulator's
     * and the tests' unix sockets a process of this user (the backend, a local enclave). */
    const ns_addr_peer_rule peer = {.vsock_cid = c->log_peer_cid, .unix_uid = (uint32_t)geteuid()};
    const ns_hostobs_cfg hc = {.log_listen = c->log_listen,
                               .log_file = c->log_file,
                               .audit_listen = c->audit_listen,
                               .audit_file = c->audit_file,
                               .ready_listen = c->ready_listen,
                               .ready_max_age_s = c->ready_max_age_s,
                               .peer = &peer};
    GUARD(ns_hostobs_start(&s->obs, &hc));
    ns_info("step=observe ok ms=%lld logs=%s audit=%s audit_file=%s ready=%s metrics=%s",
            (long long)(ns_now_ms() - t0), c->log_listen[0] ? c->log_listen : "none",
            c->audit_listen[0] ? c->audit_listen : "none", c->audit_file,
            c->ready_listen[0] ? c->ready_listen : "none",
            c->metrics_listen[0] ? c->metrics_listen : "none");
    return NS_OK;
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
                 "; the ingress moves to %s once the enclave reports client_auth=required and "
                 "its server refuses a client without a certificate (a version-2 keys file: only "
                 "pinned clients sign)",
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
    ns_runcfg *c = s->c;
    char tmo[32];
    snprintf(tmo, sizeof tmo, "%d", c->readiness_s);
    char *p1[] = {s->self, "vsock-push", "--timeout", tmo, c->creds_push, "-", NULL};
    char *p2[] = {s->self, "vsock-push", "--timeout", tmo, c->age_push, "-", NULL};
    char *p3[] = {s->self, "vsock-push", "--timeout", tmo, c->shares_push, "-", NULL};
    char *p0[] = {s->self, "vsock-push", "--timeout", tmo, c->config_push, "-", NULL};
    char note[NS_RUNCFG_DOC_MAX + 64];
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
    ns_runcfg *c = s->c;
    if (c->emu) {
        return ns_emu_poll(&s->emu);
    }
    ns_err e = ns_nitro_watch_check(&s->watch, s->nitro, c->name);
    if (s->watch.failures) {
        ns_warn("nitro-cli describe-enclaves failed (%s; %d in a row): cannot tell whether %s "
                "still runs; retrying in %d s",
                s->watch.error, s->watch.failures, c->name, c->watch_s);
    }
    if (s->watch.recovered) {
        ns_info("nitro-cli describe-enclaves answers again after %d failures", s->watch.recovered);
    }
    if (e == NS_E_CLOSED) {
        s->enclave_started = 0;
        BAIL(NS_E_CLOSED,
             "enclave %s is no longer running: it exited or was terminated; its console (debug "
             "mode: %s, `%s console --enclave-name %s`) says why",
             c->name, c->console_file, c->nitro_name, c->name);
    }
    return e;
}

static void terminate_enclave(re_state *s)
{
    if (!s->enclave_started) {
        return;
    }
    if (s->c->emu) {
        ns_info("stopping the emulated enclave name=%s (QEMU, then its vsock backend)", s->c->name);
        ns_emu_stop(&s->emu, RE_STOP_GRACE_MS);
        s->enclave_started = 0;
        return;
    }
    ns_info("terminating enclave name=%s", s->c->name);
    if (ns_nitro_terminate(s->nitro, s->c->name) != NS_OK && s->enclave_started == 1) {
        ns_warn("nitro-cli terminate-enclave --enclave-name %s failed: run it by hand", s->c->name);
    }
    s->enclave_started = 0;
}

static void stop_all(re_state *s)
{
    ns_supervise_stop(&s->bridges, RE_STOP_GRACE_MS);
    ns_supervise_stop(&s->kms, RE_STOP_GRACE_MS);
    terminate_enclave(s);
    /* nitro-cli console exits by itself once the enclave is gone, after its last lines, which
     * are usually why the enclave stopped: let it finish writing CONSOLE_FILE first. */
    if (s->left_running) {
        ns_supervise_stop(&s->console, RE_STOP_GRACE_MS);
    } else if (ns_nitro_console_drain(&s->console, RE_CONSOLE_DRAIN_MS, RE_STOP_GRACE_MS) !=
               NS_OK) {
        ns_warn("%s; CONSOLE_FILE %s may lack the last lines", ns_err_msg(), s->c->console_file);
    }
}

/* Whether the enclave's server, asked through the loopback ingress, refuses a client without
 * a certificate (hostobs.h): 1 confirmed, 0 not (or not yet decidable: asked again later). */
static int ingress_confirm_auth(re_state *s)
{
    if (ns_now_ms() < s->ingress_probe_next_ms) {
        return 0;
    }
    s->ingress_probe_next_ms = ns_now_ms() + RE_PROBE_EVERY_MS;
    int required = 0;
    if (ns_hostobs_probe_client_auth(s->ingress_narrow, RE_PROBE_TIMEOUT_MS, &required) != NS_OK) {
        return 0; /* nothing decided (not listening yet, a handshake that failed) */
    }
    if (!required && !s->ingress_probe_warned) {
        s->ingress_probe_warned = 1;
        ns_warn("ingress: a status line says client_auth=required, but the enclave's server "
                "served a client without a certificate through %s: keeping the ingress there "
                "(a forged status line, or a server without mutual TLS)",
                s->ingress_narrow);
    }
    return required;
}

/* Widens the ingress once the enclave says only pinned clients can sign and its server, asked
 * directly, refuses a client without a certificate; warns once when it says anyone could (a
 * version-1 keys file), and keeps it on loopback. */
static ns_err ingress_follow_auth(re_state *s)
{
    if (s->ingress_wide || s->bridges.pid == 0) {
        return NS_OK;
    }
    char auth[sizeof((ns_hostobs_status *)0)->client_auth];
    ns_hostobs_client_auth(s->obs, auth, sizeof auth);
    if (strcmp(auth, "required") == 0 && ingress_confirm_auth(s)) {
        ns_info("ingress: the enclave serves pinned clients only (client_auth=required, and its "
                "server refused a client without a certificate through %s): moving the ingress "
                "from %s to %s",
                s->ingress_narrow, s->ingress_narrow, s->c->grpc_listen);
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

/* ---- run_enclave_main's parts ---- */

/* Options; -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, int *emulator)
{
    if (ns_cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return NS_EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) {
            g_dry = 1;
        } else if (strcmp(argv[i], "--emulator") == 0) {
            *emulator = 1;
        } else if (strcmp(argv[i], "--fetch") == 0) {
            g_fetch = 1;
        } else if (strcmp(argv[i], "--preflight") == 0) {
            g_preflight = 1;
        } else {
            return ns_cli_usage_error("unknown argument '%s'", argv[i]);
        }
    }
    if (g_fetch && !g_dry) {
        return ns_cli_usage_error("--fetch goes with --dry-run");
    }
    if (g_preflight && (g_dry || *emulator)) {
        return ns_cli_usage_error("--preflight checks a Nitro host: not with --dry-run or "
                                  "--emulator");
    }
    return -1;
}

static void state_init(re_state *s, ns_runcfg *c)
{
    memset(s, 0, sizeof *s);
    s->c = c;
    s->lock.fd = -1;
    s->kms.in_fd = s->kms.out_fd = s->bridges.in_fd = s->bridges.out_fd = -1;
    s->console.in_fd = s->console.out_fd = -1;
    ns_emu_init(&s->emu);
    ns_buf_init_secret(&s->creds, RE_CREDS_MAX);
    ns_buf_init(&s->age_ct, RE_AGE_KEY_MAX);
    ns_buf_init(&s->shares_ct, RE_SHARES_MAX);
}

/* This binary, and nitro-cli (or QEMU under the emulator); a dry run names them anyway. */
static ns_err find_tools(re_state *s)
{
    ns_runcfg *c = s->c;
    GUARD(ns_self_exe(s->self, sizeof s->self));
    if (c->emu) {
        snprintf(s->nitro, sizeof s->nitro, "(emulator)");
        if (ns_emu_find_qemu(s->self, s->qemu, sizeof s->qemu) == NS_OK) {
            c->emu_cfg.qemu = s->qemu;
        } else if (g_dry) {
            c->emu_cfg.qemu = "qemu-system-x86_64";
        } else {
            return NS_E_NOT_FOUND; /* ns_emu_find_qemu's message says where it looked */
        }
        return NS_OK;
    }
    if (ns_supervise_which(c->nitro_name, s->nitro, sizeof s->nitro) != NS_OK) {
        ENSURE(g_dry, NS_E_NOT_FOUND,
               "%s not found: install the AWS Nitro Enclaves CLI (aws-nitro-enclaves-cli) or set "
               "NITRO_CLI to its path",
               c->nitro_name);
        snprintf(s->nitro, sizeof s->nitro, "%s", c->nitro_name);
    }
    return NS_OK;
}

/* A real run: signals stop it, nothing dumps its memory, the lock says who runs the enclave. */
static ns_err prepare_run(re_state *s)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    ns_supervise_set_cancel(&g_stop);
    if (ns_secret_process_init() != NS_OK) {
        ns_warn("cannot make the process non-dumpable: %s", ns_err_msg());
    }
    GUARD(ns_nitro_lock_take(&s->lock, s->c->run_dir, s->c->name));
    /* The emulator's vsock sockets live here; the KMS proxy and the observability listeners
     * bind in it before QEMU starts. */
    if (s->c->emu && mkdir(s->c->emu_dir, 0700) != 0 && errno != EEXIST) {
        return ns_fail_errno(NS_E_IO, "mkdir %s", s->c->emu_dir);
    }
    return NS_OK;
}

/* The start-up steps in order; *failed names the one that failed. */
static ns_err start_enclave(re_state *s, const char **failed)
{
    *failed = "check";
    GUARD(step_check(s));
    *failed = "download";
    GUARD(step_downloads(s));
    GUARD(predict_pcr16(s));
    GUARD(check_stop());
    *failed = "kms-proxy";
    GUARD(step_kms_proxy(s));
    *failed = "observe";
    GUARD(step_observability(s));
    *failed = "nitro-cli";
    GUARD(step_nitro_run(s));
    GUARD(check_stop());
    *failed = "console";
    GUARD(step_console(s));
    *failed = "bridges";
    GUARD(step_bridges(s));
    GUARD(check_stop());
    *failed = "push";
    ns_err e = step_push(s);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "the enclave did not take its secrets (did it boot? %s)",
                           s->c->debug ? "see CONSOLE_FILE"
                                       : "rerun with DEBUG_MODE=1 to see its console");
    }
    return NS_OK;
}

/* The dry run's last line: what supervising would do. */
static void show_supervise_plan(re_state *s)
{
    if (s->c->emu) {
        printf("%2d %-12s until SIGTERM/SIGINT or QEMU/the backend exits: restart a dead "
               "bridge (at most %d times), then stop the bridges, QEMU and the backend\n",
               ++g_step, "supervise", RE_RESTARTS_MAX);
        return;
    }
    printf("%2d %-12s until SIGTERM/SIGINT: restart a dead bridge (at most %d times), then "
           "stop the bridges and `%s terminate-enclave --enclave-name %s`\n",
           ++g_step, "supervise", RE_RESTARTS_MAX, s->nitro, s->c->name);
}

/* ---- the drain on SIGTERM (issue 23; docs/fleet.md) ---- */

/* Asks the enclave to drain: POST /drain on its metrics address (the only way in: a Nitro host
 * cannot signal a process inside the enclave). Returns the HTTP status, or -1. */
static int ask_enclave_drain(const char *addr)
{
    ns_addr a;
    int fd = -1, status = -1;
    static const char req[] = "POST /drain HTTP/1.1\r\nHost: enclave\r\nContent-Length: 0\r\n\r\n";
    char resp[64];
    size_t got = 0;
    if (ns_addr_parse(&a, addr) != NS_OK || ns_addr_connect(&a, 5000, &fd) != NS_OK) {
        return -1;
    }
    if (ns_write_all(fd, req, sizeof req - 1) == NS_OK &&
        ns_read_some(fd, resp, sizeof resp - 1, &got, 5000) == NS_OK && got >= 12) {
        resp[got] = 0;
        if (sscanf(resp, "HTTP/1.%*1[01] %3d", &status) != 1) {
            status = -1;
        }
    }
    close(fd);
    return status;
}

/*
 * SIGTERM with a drain time (NSIGN_HOST_DRAIN_SECONDS, or stop-enclave --drain N): /ready turns
 * 503 at once, so a load balancer stops sending new connections; after
 * NSIGN_HOST_DRAIN_DELAY_SECONDS the ingress stops accepting (SIGUSR1 to the bridges) and the
 * enclave is asked to drain (GOAWAY, its listener closed,
 * calls in flight answered; then it exits by itself); stop_all then stops the bridges and
 * terminates whatever is left when the drain time is up. A second signal ends the drain.
 */
static void drain(re_state *s)
{
    ns_runcfg *c = s->c;
    int secs = g_drain_s >= 0 ? (int)g_drain_s : c->drain_s;
    if (g_stop != SIGTERM || secs <= 0 || !s->enclave_started) {
        return;
    }
    ns_supervise_set_cancel(NULL); /* the drain's nitro-cli checks must run */
    ns_hostobs_set_draining(s->obs);
    int64_t t0 = ns_now_ms(), end = t0 + (int64_t)secs * 1000;
    int delay = c->drain_delay_s < secs ? c->drain_delay_s : secs;
    ns_info("draining: /ready is 503; the enclave is asked to drain in %d s; at most %d s in all",
            delay, secs);
    while (g_signals < 2 && ns_now_ms() < t0 + (int64_t)delay * 1000) {
        usleep(RE_TICK_MS * 1000);
    }
    /* The host's ingress stops taking clients (the bridges close their listeners and keep
     * relaying what is open), then the enclave drains what it has. */
    if (s->bridges.pid > 0 && kill(s->bridges.pid, SIGUSR1) != 0) {
        ns_warn("cannot ask the bridges to stop accepting: %s", strerror(errno));
    }
    int st = g_signals < 2 && c->metrics_connect[0] ? ask_enclave_drain(c->metrics_connect) : -1;
    if (st != 202) {
        ns_warn("cannot ask the enclave to drain (POST /drain on %s: %s): stopping it now",
                c->metrics_connect[0] ? c->metrics_connect : "no metrics address",
                st < 0 ? "no answer" : "refused");
        return;
    }
    int64_t next_watch = 0;
    while (g_signals < 2 && ns_now_ms() < end) {
        if (ns_now_ms() >= next_watch) {
            if (watch_enclave(s) == NS_E_CLOSED) {
                ns_info("drained: the enclave finished its calls and exited ms=%lld",
                        (long long)(ns_now_ms() - t0));
                return;
            }
            next_watch = ns_now_ms() + 1000;
        }
        usleep(RE_TICK_MS * 1000);
    }
    ns_warn("drain: %s after %lld ms; stopping the enclave with whatever it still serves",
            g_signals >= 2 ? "a second signal" : "time is up", (long long)(ns_now_ms() - t0));
}

/* Until a signal: watch the enclave, restart dead bridges, follow the enclave's client policy. */
static ns_err supervise(re_state *s)
{
    ns_runcfg *c = s->c;
    /* The enclave took its secrets but is still decrypting and loading keys: it is booting
     * until its status line says SERVING (what /ready reports). */
    ns_info("enclave %s is booting: it took its secrets; waiting for it to report SERVING%s",
            c->name, c->log_listen[0] ? "" : " (cannot be told: NSIGN_HOST_LOG_LISTEN=none)");
    int64_t next_watch = ns_now_ms() + (int64_t)c->watch_s * 1000;
    while (!g_stop) {
        /* Under the emulator the check is a waitpid: every tick. */
        if ((c->watch_s > 0 && ns_now_ms() >= next_watch) || c->emu) {
            GUARD(watch_enclave(s));
            next_watch = ns_now_ms() + (int64_t)c->watch_s * 1000;
        }
        GUARD(supervise_child(s, &s->bridges, &s->bridge_restarts, "ingress/egress",
                              build_bridges_argv));
        GUARD(ingress_follow_auth(s));
        char ready[96];
        if (!s->serving && s->obs != NULL && ns_hostobs_ready(s->obs, ready, sizeof ready) == 200) {
            s->serving = 1;
            ns_info("enclave %s is serving: gRPC at %s; waiting for SIGTERM", c->name,
                    c->grpc_listen);
        }
        GUARD(supervise_child(s, &s->kms, &s->kms_restarts, "KMS proxy", build_kms_argv));
        usleep(RE_TICK_MS * 1000);
    }
    drain(s);
    ns_info("signal %d: stopping bridges and the enclave", (int)g_stop);
    return NS_OK;
}

/* Wipes the ciphertexts and credentials; a real run also stops everything it started. */
static int finish(re_state *s, ns_err e, const char *failed)
{
    ns_runcfg *c = s->c;
    ns_buf_free(&s->creds); /* --fetch: wiped like in a real run */
    ns_buf_free(&s->age_ct);
    ns_buf_free(&s->shares_ct);
    if (g_dry) {
        if (e != NS_OK) {
            ns_log_err(e, failed);
        }
        return e == NS_OK ? NS_EXIT_OK : NS_EXIT_FAIL;
    }
    ns_supervise_set_cancel(NULL); /* the clean-up (terminate-enclave) must run to completion */
    if (e != NS_OK) {
        ns_log_err(e, failed);
        if (c->debug && s->enclave_started && !c->emu) {
            ns_warn("DEBUG_MODE=1: leaving enclave %s running for `%s console --enclave-name %s`;"
                    " stop it with nsign stop-enclave",
                    c->name, c->nitro_name, c->name);
            s->enclave_started = 0;
            s->left_running = 1;
        }
    }
    stop_all(s);
    ns_hostobs_stop(s->obs); /* after the enclave: its last lines and final audit head are in */
    s->obs = NULL;
    ns_nitro_lock_release(&s->lock);
    ns_info("stopped");
    return e == NS_OK ? NS_EXIT_OK : NS_EXIT_FAIL;
}

/* --preflight: each check's line on stdout (preflight.h decides, this prints). */
static void preflight_line(const ns_pf_result *r, void *arg)
{
    static const char *const word[] = {"ok", "FAIL", "skip"};
    (void)arg;
    printf("%-4s  %-10s  %s\n", word[r->status], r->check, r->text);
    fflush(stdout);
}

static int preflight(ns_runcfg *c)
{
    char nitro[RE_PATH_MAX];
    const char *root = getenv("NSIGN_PREFLIGHT_ROOT");
    ns_pf_cfg pc = {c, root ? root : "", NULL};
    if (ns_supervise_which(c->nitro_name, nitro, sizeof nitro) == NS_OK) {
        pc.nitro = nitro;
    }
    int failed = ns_preflight_run(&pc, preflight_line, NULL);
    if (failed) {
        printf("preflight: %d check%s FAILED: fix %s, then rerun run-enclave --preflight\n", failed,
               failed == 1 ? "" : "s", failed == 1 ? "it" : "them");
        return NS_EXIT_FAIL;
    }
    printf("preflight: every check passed\n");
    return NS_EXIT_OK;
}

int run_enclave_main(int argc, char **argv)
{
    static ns_runcfg cfg;
    static re_state st;
    int emulator = 0;
    const char *failed = "run-enclave";

    int rc = parse_args(argc, argv, &emulator);
    if (rc >= 0) {
        return rc;
    }
    ns_err e = ns_runcfg_load(&cfg, ns_enclave_getenv, NULL, emulator);
    if (e != NS_OK) {
        ns_log_err(e, "configuration");
        return e == NS_E_USAGE ? NS_EXIT_USAGE : NS_EXIT_FAIL;
    }
    if (g_preflight) {
        return preflight(&cfg);
    }
    state_init(&st, &cfg);
    e = find_tools(&st);
    if (e == NS_OK && !g_dry) {
        e = prepare_run(&st);
    }
    if (e != NS_OK) {
        ns_log_err(e, "run-enclave");
        return NS_EXIT_FAIL;
    }
    if (g_dry) {
        printf("run-enclave plan for enclave %s (cid %s, %s vCPUs, %s MiB, eif %s):\n", cfg.name,
               cfg.cid, cfg.cpu, cfg.mem, cfg.eif);
    }
    e = start_enclave(&st, &failed);
    if (e == NS_OK && g_dry) {
        show_supervise_plan(&st);
    } else if (e == NS_OK) {
        failed = "supervise";
        e = supervise(&st);
    }
    return finish(&st, e, failed);
}
