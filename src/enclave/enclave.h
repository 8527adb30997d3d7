/*
 * enclave: the in-enclave boot of nsign (enclave-entrypoint), as a sequence of named steps.
 *
 *   receive   credentials (7100), KMS-encrypted age key (7101), age-encrypted shares (7102),
 *             concurrently and in any order, into memory (secret buffers), and the optional
 *             run-time configuration (7103): a JSON object {region, kms_key_id, kms_endpoint}
 *             the host sends first; once the other three are in, its port closes
 *   preflight the fail-closed checks (ns_enclave_preflight): NSM answers, not a debug-mode
 *             enclave unless the image allows it, the NSM's hwrng (PID 1), random pool ready
 *   measure   PCR16 extended with the SHA-384 of the age-key ciphertext, the shares
 *             ciphertext and the configuration frame (when sent), then locked (pcr.h); from
 *             here on every frame that arrives is refused (status 06)
 *   configure the configuration document applied (region precedence below)
 *   kms       decrypt the age key through the KMS proxy, with NSM attestation
 *   wipe      the credentials and the age-key ciphertext
 *   age       decrypt the shares with the age identity; wipe the identity
 *   serve     hand the keys to sign-service in memory; it runs until stop is set
 *
 * The configuration comes from the seed's environment variables (ports, CIDs, region,
 * timeouts) with NSIGN_ENCLAVE_* overrides for every address, so the same flow runs over
 * unix/tcp on a development machine. The steps' real work is behind ns_enclave_ops so the
 * orchestration (order, concurrency, wiping, which step failed) is unit-tested with fakes and
 * this module does not depend on the modules doing the work. Nothing here prints: each step
 * is reported through ops->on_step with its duration and result.
 */
#ifndef NS_ENCLAVE_H
#define NS_ENCLAVE_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "buf.h"
#include "err.h"
#include "stop.h"

#define NS_ENCLAVE_CREDS_MAX (64 * 1024)            /* the credentials JSON */
#define NS_ENCLAVE_AGE_KEY_CT_MAX (64 * 1024)       /* KMS ciphertext of the age identity */
#define NS_ENCLAVE_AGE_KEY_MAX (16 * 1024)          /* the age identity file, plaintext */
#define NS_ENCLAVE_SHARES_CT_MAX (16 * 1024 * 1024) /* age ciphertext of the key shares */
#define NS_ENCLAVE_SHARES_MAX (16 * 1024 * 1024)    /* key shares JSON, plaintext */
#define NS_ENCLAVE_REGION_MAX 64
#define NS_ENCLAVE_KEY_ID_MAX 2048
#define NS_ENCLAVE_URL_MAX 512
#define NS_ENCLAVE_MODULES_MAX 1024
#define NS_ENCLAVE_CONFIG_MAX 4096 /* the run-time configuration document */

typedef struct {
    /* Receivers of the three payloads (default vsock:any:7100/7101/7102). */
    ns_addr creds_listen;
    ns_addr age_key_listen;
    ns_addr shares_listen;
    int config_enabled;    /* the optional configuration frame (default on) */
    ns_addr config_listen; /* default vsock:any:7103 */
    int recv_timeout_ms;   /* whole receive phase; default 600 s */
    /* sign-service (default tcp:127.0.0.1:50051) and the ingress bridge to it. */
    ns_addr sign_listen;
    int ingress_enabled;
    ns_addr ingress_listen;   /* default vsock:any:50051 */
    int sign_threads;         /* 0 = one per core */
    int pseudonymous_clients; /* sign-service --pseudonymous-clients (signsvc.h) */
    /* Egress bridge tcp:127.0.0.1:8080 -> vsock:3:8080. */
    int egress_enabled;
    ns_addr egress_listen;
    ns_addr egress_connect;
    /* KMS. */
    ns_addr kms_proxy; /* default vsock:3:5000 */
    char region[NS_ENCLAVE_REGION_MAX];
    int region_from_env;                    /* AWS_REGION was set in the image's environment */
    char kms_endpoint[NS_ENCLAVE_URL_MAX];  /* "" = https://kms.REGION.amazonaws.com */
    char kms_key_id[NS_ENCLAVE_KEY_ID_MAX]; /* "" = none (symmetric keys need none) */
    char ca_bundle[NS_ENCLAVE_URL_MAX];     /* "" = the embedded Amazon roots */
    int attest;      /* 1 on, 0 off (development: no measured boot either), -1 auto (= 1) */
    int allow_debug; /* NSIGN_ALLOW_DEBUG_MODE=1 in the image: a debug-mode enclave may decrypt */
    /* The image's minimum keys-file policy (signkeys.h ns_signkeys_floor), from its measured
     * environment: client authentication required unless NSIGN_ALLOW_ANONYMOUS_CLIENTS=1, and
     * NSIGN_MIN_POLICY_EPOCH (default 0). */
    int require_client_auth;
    uint64_t min_policy_epoch;
    int is_pid1;
    /* PID 1 duties. */
    int heartbeat_enabled;
    ns_addr heartbeat; /* default vsock:3:9000 */
    int heartbeat_timeout_ms;
    char modules[NS_ENCLAVE_MODULES_MAX]; /* comma-separated .ko paths */
    /* Observability (README "Observability"): log lines and the audit trail to the parent,
     * metrics served on a listener. Each "" when disabled. */
    char log_out[NS_ADDR_STR_MAX];   /* default vsock:PARENT:7110 */
    char audit_out[NS_ADDR_STR_MAX]; /* default vsock:PARENT:7111 */
    char metrics[NS_ADDR_STR_MAX];   /* default vsock:any:7112 */
    uint32_t audit_every_n;          /* 0 = sign-service's default */
    uint32_t audit_every_ms;
    uint32_t status_every_ms; /* status lines for the host's readiness check; 0 = 5 s */
} ns_enclave_cfg;

/* Looks a variable up (getenv in production, a table in tests); NULL when unset. */
typedef const char *(*ns_enclave_getenv_fn)(const char *name, void *ctx);
/* The production lookup: getenv(3); ctx unused. */
const char *ns_enclave_getenv(const char *name, void *ctx);

/*
 * Fills cfg from the environment. Seed variables: AWS_CREDS_VSOCK_PORT (7100),
 * AGE_KEY_VSOCK_PORT (7101), KEY_SHARES_VSOCK_PORT (7102), VSOCK_PORT (50051),
 * HOST_EGRESS_VSOCK_PORT (8080), KMS_PROXY_PORT (5000), PARENT_CID (3), AWS_REGION
 * (us-east-1), HOST_EGRESS_ENABLED (1), CONFIG_VSOCK_PORT (7103). nsign's:
 * NSIGN_ENCLAVE_{CREDS,AGE_KEY,SHARES,CONFIG,SIGN,
 * INGRESS,EGRESS_LISTEN,EGRESS_CONNECT,KMS_PROXY,HEARTBEAT}_ADDR ("none" disables the config
 * frame, ingress, egress and heartbeat), NSIGN_ENCLAVE_RECV_TIMEOUT (seconds),
 * NSIGN_ENCLAVE_SIGN_THREADS, NSIGN_ENCLAVE_PSEUDONYMOUS_CLIENTS (0/1: client ids kept out of
 * what the host receives, signsvc.h), NSIGN_ENCLAVE_ATTEST (1/0/auto), NSIGN_ALLOW_DEBUG_MODE,
 * NSIGN_ALLOW_ANONYMOUS_CLIENTS (1/0, default 0), NSIGN_MIN_POLICY_EPOCH (0..4294967295, default
 * 0), NSIGN_MODULES, KMS_KEY_ID,
 * AWS_ENDPOINT_URL_KMS, AWS_CA_BUNDLE. is_pid1 turns the heartbeat on by default.
 * Observability: ENCLAVE_LOG_VSOCK_PORT (7110), AUDIT_VSOCK_PORT (7111), METRICS_VSOCK_PORT
 * (7112), overridden by NSIGN_ENCLAVE_{LOG,AUDIT,METRICS}_ADDR ("none" disables), on by default
 * only in an enclave (is_pid1, or in_enclave: /dev/nsm exists) so that a development run never
 * opens AF_VSOCK by surprise; NSIGN_ENCLAVE_AUDIT_EVERY (entries), NSIGN_ENCLAVE_AUDIT_INTERVAL
 * (seconds), NSIGN_ENCLAVE_STATUS_INTERVAL (seconds between status lines, default 5).
 */
ns_err ns_enclave_cfg_load(ns_enclave_cfg *cfg, ns_enclave_getenv_fn get, void *ctx,
                           int is_pid1) NS_MUST_CHECK;
/* The same, saying whether this runs in an enclave (observability on by default). */
ns_err ns_enclave_cfg_load_ex(ns_enclave_cfg *cfg, ns_enclave_getenv_fn get, void *ctx, int is_pid1,
                              int in_enclave) NS_MUST_CHECK;

/*
 * The log address of a boot that failed before its configuration was complete, best effort
 * (never fails): NSIGN_ENCLAVE_LOG_ADDR when it is an address ("none": none), else, when on (in
 * an enclave), vsock:PARENT_CID:ENCLAVE_LOG_VSOCK_PORT, taking 3 and 7110 for a value that does
 * not parse; else "" (none).
 */
void ns_enclave_log_addr(ns_enclave_getenv_fn get, void *ctx, int on, char out[NS_ADDR_STR_MAX]);

typedef enum {
    NS_STEP_RECEIVE,
    NS_STEP_RECV_CREDS,
    NS_STEP_RECV_AGE_KEY,
    NS_STEP_RECV_SHARES,
    NS_STEP_RECV_CONFIG,
    NS_STEP_PREFLIGHT,
    NS_STEP_MEASURE,
    NS_STEP_CONFIG,
    NS_STEP_KMS,
    NS_STEP_WIPE,
    NS_STEP_AGE,
    NS_STEP_LOAD_KEYS,
    NS_STEP_SERVE,
    NS_STEP_COUNT
} ns_enclave_step;

const char *ns_enclave_step_name(ns_enclave_step s);

/*
 * The run-time configuration document (port 7103): one JSON object, at most
 * NS_ENCLAVE_CONFIG_MAX bytes, with only the optional string members region (like eu-west-1),
 * kms_key_id (key id, alias or ARN) and kms_endpoint (https://HOST[:PORT], tests and private
 * endpoints). Unknown or duplicate members, a value that is not a string, a malformed region,
 * key id or URL are refused (NS_E_PARSE) with an error naming the member.
 */
typedef struct {
    char region[NS_ENCLAVE_REGION_MAX];     /* "" = not given */
    char kms_key_id[NS_ENCLAVE_KEY_ID_MAX]; /* "" = not given */
    char kms_endpoint[NS_ENCLAVE_URL_MAX];  /* "" = not given */
} ns_enclave_doc;

ns_err ns_enclave_doc_parse(ns_enclave_doc *doc, const uint8_t *p, size_t n) NS_MUST_CHECK;

/* Whether s is an AWS region name (us-east-1, eu-west-1, us-gov-west-1, ap-southeast-2...). */
int ns_enclave_region_ok(const char *s);

/*
 * Applies a document (NULL: none was sent) to cfg. The region comes from the KMS key when it is
 * a full ARN (arn:PARTITION:kms:REGION:...), else the document, else the image's AWS_REGION,
 * else us-east-1; *source names which ("key-arn", "config", "env", "default"). The document's
 * kms_key_id and kms_endpoint replace KMS_KEY_ID and AWS_ENDPOINT_URL_KMS.
 */
ns_err ns_enclave_cfg_apply(ns_enclave_cfg *cfg, const ns_enclave_doc *doc,
                            const char **source) NS_MUST_CHECK;

/*
 * The work of each step. ctx is passed back. Every function must leave its outputs either
 * filled or empty, and must not keep pointers to its inputs after returning.
 */
typedef struct {
    void *ctx;
    /* Accept one frame on the (non-blocking) listening socket into out (initialised, secret,
     * with its max). Must return promptly (NS_E_CLOSED) once cancel_fd becomes readable. */
    ns_err (*recv)(void *ctx, int listen_fd, int cancel_fd, int timeout_ms, ns_buf *out);
    /* KMS-decrypt ct with the credentials JSON; plaintext into out (secret). */
    ns_err (*kms_decrypt)(void *ctx, const ns_enclave_cfg *cfg, const ns_buf *creds_json,
                          const ns_buf *ct, ns_buf *out);
    /* age-decrypt ct with the identity file; plaintext into out (secret). */
    ns_err (*age_decrypt)(void *ctx, const ns_buf *identity, const ns_buf *ct, ns_buf *out);
    /* Parse the keys JSON into the signer's own secret memory (keys_json is wiped after). */
    ns_err (*load_keys)(void *ctx, const ns_buf *keys_json);
    /* Serve until *stop; returns when stopped or on a fatal error. */
    ns_err (*serve)(void *ctx, const ns_enclave_cfg *cfg, ns_stop *stop);
    /* Called after each step with its duration; e is NS_OK or the failure (detail in
     * ns_err_msg on the calling thread). */
    void (*on_step)(void *ctx, ns_enclave_step step, int64_t ms, ns_err e, const char *detail);
    /* The fail-closed checks before anything is decrypted (gathers the facts, then
     * ns_enclave_preflight). */
    ns_err (*preflight)(void *ctx, const ns_enclave_cfg *cfg);
    /* Extends PCR16 with SHA-384 of each input in order, locks it, leaves its value in pcr. */
    ns_err (*measure)(void *ctx, const ns_buf *const *inputs, size_t n, uint8_t pcr[48]);
    /* Accepts one pending connection on a listener and refuses its frame (status 06). */
    void (*refuse)(void *ctx, int listen_fd);
} ns_enclave_ops;

/* What the fail-closed checks look at. */
typedef struct {
    int nsm_ok;            /* DescribePCR answered */
    const char *nsm_error; /* why not */
    uint8_t pcr0[48];      /* when nsm_ok */
    int allow_debug;       /* the image allows a debug-mode enclave */
    int is_pid1;           /* then the kernel's hwrng must be the NSM's */
    const char *hwrng;     /* /sys/class/misc/hw_random/rng_current, NULL: unreadable */
    int pool_ready;        /* getrandom(GRND_NONBLOCK) succeeds */
} ns_enclave_facts;

/*
 * The checks, in order; the first that fails returns NS_E_DENIED with one line naming it:
 * "check=nsm" (no answer), "check=debug-mode" (PCR0 all zero and the image does not allow it),
 * "check=hwrng" (PID 1 and rng_current is not nsm-hwrng), "check=random-pool" (not ready).
 */
ns_err ns_enclave_preflight(const ns_enclave_facts *f) NS_MUST_CHECK;

/*
 * Runs receive -> kms -> wipe -> age -> load_keys -> serve. On failure returns the error of
 * the first failing step (its name in *failed). Every secret buffer is wiped before return,
 * on every path.
 */
ns_err ns_enclave_run(const ns_enclave_cfg *cfg, const ns_enclave_ops *ops, ns_stop *stop,
                      ns_enclave_step *failed) NS_MUST_CHECK;

#endif
