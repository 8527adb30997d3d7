/*
 * hostobs: the host's side of the enclave's observability, for run-enclave. The enclave's log
 * lines arrive over vsock (logship's receiver) and go to stderr prefixed "enclave: " and, if
 * set, to a log file, with every unprintable byte replaced (an enclave cannot send terminal
 * escapes); its signed audit trail is appended to a file; its status lines (svcobs.h) are not
 * printed but feed a readiness endpoint (GET /ready: 200 while the last status says SERVING and
 * is recent, else 503) and tell the coordinator the enclave's client policy.
 *
 * Only the enclave may write these channels: every accepted connection's peer is checked against
 * cfg.peer (the enclave's CID on vsock; addr.h) and any other is closed unread, logged and
 * counted (GET /metrics on the readiness listener: nsign_host_refused_peers_total). A status
 * line is still only the enclave's word: what widens the ingress is confirmed by
 * ns_hostobs_probe_client_auth, which asks the enclave's TLS server itself.
 */
#ifndef NS_HOSTOBS_H
#define NS_HOSTOBS_H

#include <stddef.h>

#include "addr.h"
#include "err.h"

typedef struct {
    const char *log_listen;        /* the enclave's log lines, or "" */
    const char *log_file;          /* also append them here, or "" */
    const char *audit_listen;      /* the audit trail, or "" */
    const char *audit_file;        /* where the audit trail is appended (with audit_listen) */
    const char *ready_listen;      /* GET /ready, or "" */
    int ready_max_age_s;           /* a status line older than this is not ready */
    const ns_addr_peer_rule *peer; /* who may connect to log_listen and audit_listen; NULL:
                                    * anyone (tests of this module only) */
} ns_hostobs_cfg;

/* What one status line says: state (SERVING, STARTING...) and client_auth ("required",
 * "none", "-", "" when the line has none). Both are truncated to fit, never overrun. */
typedef struct {
    char state[32];
    char client_auth[16];
} ns_hostobs_status;

/* 1 and *st filled when LINE (N bytes, not terminated) is a status line ("nsign APPLET: status
 * state=S ... client_auth=A"), 0 for any other line. */
int ns_hostobs_status_parse(const char *line, size_t n, ns_hostobs_status *st);

typedef struct ns_hostobs ns_hostobs;

/* Opens the files and starts what the configuration names. On failure nothing is left running
 * and the error names the file or address. */
ns_err ns_hostobs_start(ns_hostobs **o, const ns_hostobs_cfg *c) NS_MUST_CHECK;

/* The client_auth of the latest status line ("" before one arrived). */
void ns_hostobs_client_auth(ns_hostobs *o, char *out, size_t cap);

/* Connections refused by the peer rule: on the log channel, on the audit channel. */
void ns_hostobs_refused(ns_hostobs *o, uint64_t *log, uint64_t *audit);

/*
 * Whether the gRPC server behind ADDR (run-enclave's loopback ingress, which the bridge connects
 * to the enclave's vsock port: only the enclave can listen there) refuses a client without a
 * certificate. A TLS handshake is made without one, then the HTTP/2 preface is sent: a server
 * that requires client certificates fails the connection (TLS 1.3: its alert follows the
 * client's Finished) and nothing of HTTP/2 comes back; one that does not answers with its
 * SETTINGS frame. *required: 1 refused, 0 served. An error (nothing listening yet, no TLS,
 * a handshake that fails) decides nothing: the caller keeps the ingress narrow and asks again.
 */
ns_err ns_hostobs_probe_client_auth(const char *addr, int timeout_ms, int *required) NS_MUST_CHECK;

/* From now on /ready answers 503 (state=DRAINING), whatever the enclave says: run-enclave's
 * drain, so a load balancer stops sending new connections first. */
void ns_hostobs_set_draining(ns_hostobs *o);

/* The readiness answer: 200 (ready) or 503, with a one-line text BODY. */
int ns_hostobs_ready(ns_hostobs *o, char *body, size_t cap);

/* Stops the receivers (open senders may finish: logship's drain), syncs the audit file, frees
 * O. NULL does nothing. */
void ns_hostobs_stop(ns_hostobs *o);

#endif
