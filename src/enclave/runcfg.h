/*
 * runcfg: run-enclave's configuration, read from its environment (the seed's variable names and
 * defaults, nsign's address overrides) through an injected lookup, as enclave.h's is: getenv in
 * production, a table in tests. Every value is validated here, so a bad variable fails before
 * any step runs, with the variable named; the applet only runs steps.
 *
 * Besides the values it derives the addresses (vsock on Nitro; with the emulator the unix
 * sockets of emu.h, whose ports it registers in emu_cfg) and the enclave's run-time
 * configuration document (port 7103). No I/O: unit-tested directly.
 */
#ifndef NS_RUNCFG_H
#define NS_RUNCFG_H

#include "addr.h"
#include "emu.h"
#include "enclave.h"
#include "err.h"

#define NS_RUNCFG_STR 512
#define NS_RUNCFG_DOC_MAX 4096 /* the enclave's limit for the configuration document */
#define NS_RUNCFG_EMU_BOOT_TIMEOUT_S 600

/* What run-enclave and stop-enclave both read: which enclave, where its lock is, which CLI. */
typedef struct {
    char name[NS_RUNCFG_STR];       /* ENCLAVE_NAME=sign-service-enclave; no '/' or newline */
    char run_dir[NS_RUNCFG_STR];    /* NSIGN_RUN_DIR=/run/nsign: the lock file's folder */
    char nitro_name[NS_RUNCFG_STR]; /* NITRO_CLI=nitro-cli */
    int emu;                        /* NSIGN_EMULATOR=1 (or run-enclave --emulator) */
} ns_runcfg_common;

typedef struct {
    char eif[NS_RUNCFG_STR], name[NS_RUNCFG_STR], console_file[NS_RUNCFG_STR];
    char run_dir[NS_RUNCFG_STR], nitro_name[NS_RUNCFG_STR];
    char cpu[32], mem[32], cid[32]; /* decimal, validated: nitro-cli's arguments */
    int debug, console_stream;
    char age_uri[NS_RUNCFG_STR], shares_uri[NS_RUNCFG_STR];
    char creds_push[NS_ADDR_STR_MAX], age_push[NS_ADDR_STR_MAX], shares_push[NS_ADDR_STR_MAX];
    char config_push[NS_ADDR_STR_MAX]; /* "" = no configuration frame */
    char config[NS_RUNCFG_DOC_MAX];    /* the run-time configuration document */
    char grpc_listen[NS_ADDR_STR_MAX], grpc_connect[NS_ADDR_STR_MAX];
    int egress;
    char egress_listen[NS_ADDR_STR_MAX], egress_connect[NS_ADDR_STR_MAX];
    int kms;
    char kms_listen[NS_ADDR_STR_MAX], kms_connect[NS_ADDR_STR_MAX];
    char kms_allow[NS_RUNCFG_STR]; /* the KMS proxy's --allow entry; "" = none (not tcp) */
    int readiness_s;
    int watch_s; /* how often to check that the enclave still runs; 0 = never */
    /* The drain on SIGTERM (NSIGN_HOST_DRAIN_SECONDS, 0 = none: stop at once) and how long
     * /ready is 503 before the enclave is asked to drain (NSIGN_HOST_DRAIN_DELAY_SECONDS: the
     * load balancer's time to notice). */
    int drain_s, drain_delay_s;
    /* Observability; "" when disabled. */
    char log_listen[NS_ADDR_STR_MAX], audit_listen[NS_ADDR_STR_MAX];
    char metrics_listen[NS_ADDR_STR_MAX], metrics_connect[NS_ADDR_STR_MAX];
    char ready_listen[NS_ADDR_STR_MAX];
    char log_file[NS_RUNCFG_STR], audit_file[NS_RUNCFG_STR + 64];
    char kms_key_id[NS_RUNCFG_DOC_MAX]; /* KMS_KEY_ID, "" when unset (--preflight reads its policy)
                                         */
    int ready_max_age_s;
    uint32_t log_peer_cid; /* the vsock CID the log, status and audit channels accept
                            * (NSIGN_HOST_LOG_PEER_CID, default ENCLAVE_CID) */
    int emu; /* --emulator or NSIGN_EMULATOR=1: QEMU's nitro-enclave machine, see emu.h */
    char emu_dir[NS_RUNCFG_STR + 16];
    ns_emu_cfg emu_cfg; /* the ports (the rest is filled when the emulator starts) */
    int emu_boot_s;
} ns_runcfg;

/*
 * ENCLAVE_NAME, NSIGN_RUN_DIR, NITRO_CLI and NSIGN_EMULATOR, with run-enclave's defaults and
 * checks (stop-enclave reads only these).
 */
ns_err ns_runcfg_common_load(ns_runcfg_common *c, ns_enclave_getenv_fn get,
                             void *ctx) NS_MUST_CHECK;

/*
 * Fills c from the environment (run-enclave --help lists every variable and default).
 * AUDIT_LOG_FILE defaults to STATE_DIRECTORY/ENCLAVE_NAME.audit.jsonl when systemd's
 * STATE_DIRECTORY is set (a unit's StateDirectory=, which survives a reboot), else to
 * NSIGN_RUN_DIR/ENCLAVE_NAME.audit.jsonl.
 * emulator: --emulator was given (NSIGN_EMULATOR=1 has the same effect). NS_E_USAGE (or
 * NS_E_TOO_BIG for an over-long value) naming the variable when one is malformed.
 */
ns_err ns_runcfg_load(ns_runcfg *c, ns_enclave_getenv_fn get, void *ctx,
                      int emulator) NS_MUST_CHECK;

#endif
