/*
 * signsvc: the sign-service gRPC services over h2server: nsign.v1.Signer (ListKeys,
 * GetPublicKey, Sign, Attest), grpc.health.v1.Health/Check and
 * grpc.reflection.v1alpha.ServerReflection (file descriptors embedded at build time), with one
 * audit log line per Sign (key id, digest prefix, peer, status; never key material).
 *
 * FROST (RFC 9591, docs/frost.md): for a key whose entry is a FROST share, FrostCommit makes
 * round-one commitments whose nonces stay in a frostnonce store (secret memory, single use,
 * bounded per key and client, expiring) and FrostSign answers this participant's signature share.
 * Both go through the same policy as Sign (client, allow list, one rate token per call) and the
 * same observer (metrics, audit trail: message digest, signing set, commitment id). A FrostSign
 * that names a commitment id consumes it, whatever the outcome (even refused by the policy).
 *
 * Policy (keys file version 2, see signkeys.h): the transport names the client (TLS client
 * certificate pinned by SPKI SHA-256). Without an authenticated client, ListKeys, GetPublicKey
 * and Sign are UNAUTHENTICATED; a client on a key it is not allowed gets PERMISSION_DENIED;
 * above its max_signs_per_second (a token bucket holding one second's worth) RESOURCE_EXHAUSTED;
 * ListKeys lists only the client's keys. Audit lines name the client ("-" without a policy).
 * Attest and Health answer anyone who completed the handshake. Health/Check answers SERVING, or
 * NOT_SERVING once a drain began (Watch is not served: UNIMPLEMENTED).
 *
 * Status mapping: unknown key NOT_FOUND; malformed protobuf, wrong digest length or a
 * message/digest mismatch INVALID_ARGUMENT; no NSM (outside an enclave) UNAVAILABLE; the
 * transport adds UNIMPLEMENTED, RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED (see h2server.h).
 */
#ifndef NS_SIGNSVC_H
#define NS_SIGNSVC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "err.h"
#include "h2loop.h"
#include "signkeys.h"
#include "stop.h"

typedef struct ns_signkeys ns_signsvc_keys;

typedef struct {
    ns_addr listen;
    int tls;               /* 1: TLS (tls.c's server; mutual with a version-2 keys file); 0: h2c */
    int threads;           /* 0 = one per core */
    size_t max_msg;        /* 0 = 4 MiB */
    size_t max_buffered;   /* request bytes buffered by all connections; 0 = h2server's default */
    int idle_ms;           /* 0 = h2server's default (60 s) */
    int body_idle_ms;      /* 0 = h2server's default (10 s) */
    size_t max_output;     /* h2server's output budget; 0 = its default */
    int stall_ms;          /* reap answers not taken for this long; 0 = h2server's default */
    uint32_t frost_ttl_ms; /* FROST commitments expire after this; 0 = 5 minutes */
    uint32_t frost_per_owner; /* outstanding commitments per (client, key); 0 = 1024 */
    /* 1: an authenticated client is named "c-" + 12 hex digits of HMAC-SHA256(a key drawn at
     * start and never shown, its id) wherever the service names it (log lines, metrics, the
     * audit trail, error messages), so those host-visible channels carry no client identity:
     * stable for one run, unlinkable across runs, not reversible without the key. */
    int pseudonymous_clients;
    /* Optional: called once the listener is bound, with the actual address (port 0 resolved). */
    void (*on_listening)(const char *addr, void *arg);
    void *on_listening_arg;
    /* Optional graceful drain (h2loop.h): once *drain is non-zero the health service answers
     * NOT_SERVING and the server drains for at most drain_ms, then ns_signsvc_run returns. */
    ns_stop *drain;
    int drain_ms;
} ns_signsvc_cfg;

/* Validates strictly and copies into secret memory; the caller then wipes its json. */
ns_err ns_signsvc_load_keys(ns_signsvc_keys **keys, const uint8_t *json, size_t len) NS_MUST_CHECK;
/* Serves until *stop (checked at least every 200 ms). keys must outlive the call. */
ns_err ns_signsvc_run(const ns_signsvc_cfg *cfg, ns_signsvc_keys *keys,
                      ns_stop *stop) NS_MUST_CHECK;
/* Wipes and frees. */
void ns_signsvc_keys_free(ns_signsvc_keys *keys);

/* The RPCs an event can come from. */
typedef enum { NS_SIGNSVC_SIGN = 0, NS_SIGNSVC_FROST_COMMIT, NS_SIGNSVC_FROST_SIGN } ns_signsvc_rpc;

/* What one Sign (or FrostCommit / FrostSign) did, for metrics and the audit trail (never key
 * material). */
typedef struct {
    const char *key_id;          /* the requested id, cleaned to the id alphabet ('?' else) */
    const char *alg;             /* "ed25519", ... or "-" when no such key */
    const char *peer;            /* the connection's peer address */
    const char *client;          /* the authenticated client id, "-" without a policy */
    int status;                  /* gRPC status */
    const uint8_t *input_sha256; /* SHA-256 of the signing input (message, or the digest as
                                  * sent); NULL when the request did not parse */
    int input_is_digest;
    double seconds; /* time spent in the handler */
    ns_signsvc_rpc rpc;
    /* FROST only, printable ASCII: "sign commitment=<32 hex> set=1,3" (input_sha256: the
     * message's SHA-256) or "commit count=N" (input_sha256: SHA-256 of the issued ids). */
    const char *frost;
} ns_signsvc_sign_event;

typedef struct {
    /* Called on the serving thread after each Sign, before its answer is sent. Must not block. */
    void (*on_sign)(void *arg, const ns_signsvc_sign_event *ev);
    void *arg;
    /* With an audit trail: its public key and Attest's user_data (the v2 commitment, audit.h),
     * both 32 bytes; NULL keeps user_data = the keys commitment of signkeys.h. */
    const uint8_t *audit_pub;
    const uint8_t *user_data;
} ns_signsvc_obs;

/* Process-wide; set before serving (copied). NULL clears. */
void ns_signsvc_set_obs(const ns_signsvc_obs *o);

/* The state of the services: keys, the TLS identity that Attest binds, per-client rates. */
typedef struct {
    ns_signsvc_keys *keys;
    const uint8_t *tls_spki; /* DER SubjectPublicKeyInfo of the TLS key, or NULL (h2c) */
    size_t tls_spki_len;
    const uint8_t *tls_cert; /* the TLS certificate (DER), or NULL */
    size_t tls_cert_len;
    pthread_mutex_t rate_mu;
    int64_t rate_mt[NS_SIGNKEYS_CLIENTS_MAX];   /* milli-tokens left */
    int64_t rate_last[NS_SIGNKEYS_CLIENTS_MAX]; /* ms of the last refill; 0: never */
    /* FROST round-one nonces (made by ns_signsvc_handler when a key is FROST; NULL otherwise);
     * the two limits are read there (0: frostnonce.h's defaults). */
    struct ns_frostnonce *frost_nonces;
    uint32_t frost_ttl_ms;
    uint32_t frost_per_owner;
    const ns_stop *draining; /* non-zero once a drain began (Health: NOT_SERVING); or NULL */
} ns_signsvc_ctx;

/* The gRPC handler over ctx (ctx->keys and the TLS fields set by the caller; the rest is
 * initialised here), for ns_signsvc_run and for the request path without sockets (tests,
 * fuzzing). */
void ns_signsvc_handler(ns_h2_handler *h, ns_signsvc_ctx *ctx, size_t max_msg);
/* Frees what ns_signsvc_handler made (the FROST nonce store, wiped). */
void ns_signsvc_handler_free(ns_signsvc_ctx *ctx);

#endif
