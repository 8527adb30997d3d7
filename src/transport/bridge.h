/*
 * bridge: the forwarding engine of `nsign bridge` (replaces socat and vsock-proxy).
 *
 * Each pair listens on one address and forwards every accepted connection to its connect
 * address (vsock, tcp or unix on either side). One thread, one epoll loop, non-blocking
 * sockets, non-blocking connects. Data moves by splice(2) through a pipe per direction (zero
 * copy) and falls back to read/write through a 64 KiB buffer where a socket family refuses
 * splice. Invariants:
 *   - bounded: at most one pipe (or one buffer) of data in flight per direction; a slow reader
 *     stalls its writer (the engine stops reading) instead of buffering;
 *   - half-close: EOF read on one side becomes shutdown(SHUT_WR) on the other once the data in
 *     flight is written; a connection ends when both directions ended;
 *   - an error (reset, refused, timeout) closes only its connection; the loop never fails
 *     because of a peer;
 *   - --allow: when an allow-list is given, every connect target must be on it; checked when
 *     the bridge starts and again at each connect. Names are resolved at connect time, inside
 *     the loop (getaddrinfo blocks it for the lookup: fine for the few connections a KMS
 *     proxy sees; use an address, not a name, for a busy target).
 * The engine logs one line per closed connection (it is a daemon loop: there is no caller to
 * return a per-connection event to) and nothing else besides listener start and rejections.
 * It blocks SIGPIPE in the calling thread while it runs. No global state: several bridges may
 * run in threads of one process.
 */
#ifndef NS_BRIDGE_H
#define NS_BRIDGE_H

#include <stddef.h>

#include "addr.h"
#include "err.h"
#include "stop.h"

#define NS_BRIDGE_MAX_PAIRS 64
#define NS_BRIDGE_DEFAULT_MAX_CONNS 1024
#define NS_BRIDGE_DEFAULT_CONNECT_TIMEOUT_MS 10000
/* What run-enclave and enclave-entrypoint give their ingress bridges (issue 15): an idle
 * connection is closed after this, and one client address holds at most this many. */
#define NS_BRIDGE_INGRESS_IDLE_S 120
#define NS_BRIDGE_INGRESS_PER_PEER 32
/* *stop is checked at least this often. */
#define NS_BRIDGE_TICK_MS 100

typedef struct {
    ns_addr listen;
    ns_addr connect;
} ns_bridge_pair;

typedef struct {
    const ns_bridge_pair *pairs;
    size_t npairs;
    /* Allowed connect targets: "HOST:PORT" (tcp) or a full address; NULL/0 = no allow-list. */
    const char *const *allow;
    size_t nallow;
    int max_conns; /* concurrent connections over all pairs; <= 0: default */
    /* concurrent connections from one client IP address on tcp listeners; <= 0: no cap (vsock
     * and unix peers are not capped: a vsock listener's peers are one VM or the host) */
    int max_per_peer;
    int idle_timeout_ms; /* close a connection with no data either way for this long; <= 0: never */
    int connect_timeout_ms; /* <= 0: default */
    int no_splice;          /* always read/write (the fallback path; for tests and debugging) */
} ns_bridge_cfg;

typedef struct ns_bridge ns_bridge;

/*
 * Validates cfg (allow-list included) and binds every listener, so that when this returns
 * NS_OK connections are already being queued. The cfg is copied.
 */
ns_err ns_bridge_listen(const ns_bridge_cfg *cfg, ns_bridge **out) NS_MUST_CHECK;
/* The bound port of pair i's listener (tcp/vsock; useful with port 0), 0 for unix. */
unsigned ns_bridge_port(const ns_bridge *b, size_t i);
/*
 * Runs the loop until *stop becomes non-zero; then closes every connection (logged with
 * reason=shutdown) and returns NS_OK. Fails only if epoll itself fails.
 */
ns_err ns_bridge_serve(ns_bridge *b, ns_stop *stop) NS_MUST_CHECK;
/* From now on, once *quiesce is non-zero (checked like stop), the loop closes its listeners (new
 * connections are refused; unix socket files unlinked) and keeps relaying the connections it
 * has until they end or *stop: a host stops taking clients for a draining enclave (issue 23).
 * Call before ns_bridge_serve. */
void ns_bridge_set_quiesce(ns_bridge *b, const ns_stop *quiesce);
/* Closes the listeners (unlinking unix socket files it created) and frees b. NULL is fine. */
void ns_bridge_free(ns_bridge *b);

#endif
