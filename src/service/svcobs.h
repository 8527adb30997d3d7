/*
 * svcobs: sign-service's observability, shared by the sign-service applet and
 * enclave-entrypoint: the Prometheus metrics (served by httpd on an address), log lines shipped
 * through logship, and the audit trail (audit.h) written to a file or shipped to an address.
 *
 * Metrics (all prefixed nsign_):
 *   sign_requests_total{key,algorithm,client,status}  counter  (client: peer address, no port)
 *   sign_duration_seconds{key,algorithm}               histogram of the Sign handler's time
 *   frost_requests_total{key,rpc,client,status}        counter, FrostCommit (rpc "commit") and
 *                                                      FrostSign ("sign")
 *   frost_duration_seconds{key,rpc}                    histogram of their handlers' time
 *   requests_in_flight, connections_open               gauges (HTTP/2 streams, connections)
 *   policy_denials_total{key,client}   Sign/Frost* refused by the keys file's client policy
 *                                      (PERMISSION_DENIED or UNAUTHENTICATED)
 *   tls_handshake_failures_total       counter (refused or failed TLS handshakes)
 *   boot_step_duration_seconds{step}                   gauge, set by enclave-entrypoint
 *   log_lines_dropped_total                            counter, logship's drops
 *   audit_entries_total                                counter
 *   build_info{version}                                gauge, 1
 * Label sets are bounded (metrics.h), so hostile clients cannot grow memory. The metrics address
 * also answers GET /ready: 200 "SERVING", or 503 with the state (STARTING, DRAINING, STOPPING).
 */
#ifndef NS_SVCOBS_H
#define NS_SVCOBS_H

#include <stdint.h>

#include "err.h"
#include "signsvc.h"
#include "stop.h"

typedef struct {
    const char *metrics;      /* ADDR for GET /metrics, or NULL */
    const char *log_out;      /* ADDR to ship log lines to, or NULL */
    const char *audit_out;    /* FILE or tcp:/unix:/vsock: ADDR, or NULL (no trail) */
    uint32_t audit_every_n;   /* 0 = 100 */
    uint32_t audit_every_ms;  /* 0 = 10000 */
    uint32_t status_every_ms; /* 0 = 5000: the status heartbeat on log_out */
} ns_svcobs_cfg;

/* With log_out, a status line goes to the log reader (not to stderr) on every state change
 * and every status_every_ms: "nsign APPLET: status state=STATE seq=N client_auth=AUTH", AUTH
 * "required" (the keys file has a client policy: only pinned clients sign), "none" (anyone
 * who reaches the service signs) or "-" (keys not loaded yet). run-enclave's readiness check
 * reads it (the state, and that the enclave is alive), and its ingress widens past loopback
 * only on "required". */
#define NS_SVCOBS_CLIENT_AUTH_TAG " client_auth="
#define NS_SVCOBS_STATUS_TAG ": status state="
/* The key label of every Sign that named no loaded key (metrics: bounded series). */
#define NS_SVCOBS_UNKNOWN_KEY "(unknown)"

typedef struct ns_svcobs ns_svcobs;

/* Metrics server and log shipping (what needs no keys). Addresses are checked here. With
 * log_out and an early ring (ns_svcobs_early), the ring's lines are sent first; without
 * log_out, the early ring is discarded. On failure the early ring is left for
 * ns_svcobs_early_flush. */
ns_err ns_svcobs_start(ns_svcobs **o, const ns_svcobs_cfg *cfg) NS_MUST_CHECK;

/*
 * Early log lines: a boot logs before it knows where its log lines go (the address comes from
 * the image's environment or the configuration), and a production enclave has no console. From
 * ns_svcobs_early() on, every log line also goes into a bounded logship ring that sends nowhere
 * yet (NS_LOGSHIP_RING_DEFAULT bytes; lines that do not fit are dropped and counted, and the
 * count is reported like any other drop). ns_svcobs_start takes it over. Call it before other
 * threads log; a second call does nothing.
 */
ns_err ns_svcobs_early(void) NS_MUST_CHECK;
/* A run that ends before ns_svcobs_start succeeded: sends the early ring's lines to addr (the
 * known or default log address) for at most NS_SVCOBS_FLUSH_MS, then frees the ring. addr
 * NULL, "" or unparsable: the lines are discarded. No early ring: nothing to do. The log sink
 * changes: call it while no other thread logs. */
void ns_svcobs_early_flush(const char *addr);

#define NS_SVCOBS_FLUSH_MS 2000 /* the bounded flush of shipped lines at exit */
/* With the keys loaded: starts the audit trail (if configured) and hooks signsvc. */
ns_err ns_svcobs_attach(ns_svcobs *o, const ns_signsvc_keys *keys) NS_MUST_CHECK;
void ns_svcobs_boot_step(ns_svcobs *o, const char *step, double seconds);
/* STARTING at first; SERVING once listening; STOPPING on the way out. A static string. */
void ns_svcobs_set_state(ns_svcobs *o, const char *state);
/* From now on, while *drain is non-zero a SERVING state is reported as DRAINING (status lines,
 * and GET /ready on the metrics address: 200 only while SERVING, else 503), so a load
 * balancer and the host stop sending new connections as soon as a drain begins; and a POST
 * /drain (no body) on the metrics address sets *drain (202): the channel by which a Nitro host,
 * which cannot signal a process in the enclave, asks it to drain. Anyone who reaches that address
 * can already stop the enclave (it is the host's, bridged to its loopback), so it grants nothing.
 * NULL drain: POST /drain is 404. */
void ns_svcobs_watch_drain(ns_svcobs *o, ns_stop *drain);
/* The bound metrics port (tcp/vsock), 0 without one. */
uint32_t ns_svcobs_metrics_port(const ns_svcobs *o);
/* Signs the final audit head, flushes shipped lines (bounded), stops everything. */
void ns_svcobs_stop(ns_svcobs *o);

#endif
