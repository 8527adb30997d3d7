/*
 * svcobs: sign-service's observability, shared by the sign-service applet and
 * enclave-entrypoint: the Prometheus metrics (served by httpd on an address), log lines shipped
 * through logship, and the audit trail (audit.h) written to a file or shipped to an address.
 *
 * Metrics (all prefixed nsign_):
 *   sign_requests_total{key,algorithm,client,status}  counter  (client: peer address, no port)
 *   sign_duration_seconds{key,algorithm}               histogram of the Sign handler's time
 *   requests_in_flight, connections_open               gauges (HTTP/2 streams, connections)
 *   tls_handshake_failures_total, policy_denials_total{key,client}   counters (see README)
 *   boot_step_duration_seconds{step}                   gauge, set by enclave-entrypoint
 *   log_lines_dropped_total                            counter, logship's drops
 *   audit_entries_total                                counter
 *   build_info{version}                                gauge, 1
 * Label sets are bounded (metrics.h), so hostile clients cannot grow memory.
 */
#ifndef NS_SVCOBS_H
#define NS_SVCOBS_H

#include <stdint.h>

#include "err.h"
#include "signsvc.h"

typedef struct {
    const char *metrics;     /* ADDR for GET /metrics, or NULL */
    const char *log_out;     /* ADDR to ship log lines to, or NULL */
    const char *audit_out;   /* FILE or tcp:/unix:/vsock: ADDR, or NULL (no trail) */
    uint32_t audit_every_n;  /* 0 = 100 */
    uint32_t audit_every_ms; /* 0 = 10000 */
} ns_svcobs_cfg;

typedef struct ns_svcobs ns_svcobs;

/* Metrics server and log shipping (what needs no keys). Addresses are checked here. */
ns_err ns_svcobs_start(ns_svcobs **o, const ns_svcobs_cfg *cfg) NS_MUST_CHECK;
/* With the keys loaded: starts the audit trail (if configured) and hooks signsvc. */
ns_err ns_svcobs_attach(ns_svcobs *o, const ns_signsvc_keys *keys) NS_MUST_CHECK;
void ns_svcobs_boot_step(ns_svcobs *o, const char *step, double seconds);
/* The bound metrics port (tcp/vsock), 0 without one. */
uint32_t ns_svcobs_metrics_port(const ns_svcobs *o);
/* Signs the final audit head, flushes shipped lines (bounded), stops everything. */
void ns_svcobs_stop(ns_svcobs *o);

#endif
