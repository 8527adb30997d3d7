/*
 * signclient: a sign-service client that verifies before it signs. One TLS connection (client
 * certificate, ALPN h2), one HTTP/2 connection on it; Attest with a fresh random nonce on that
 * same connection; the document must verify (chain to the trusted root at its own time, ES384,
 * expected PCRs and user_data, our nonce) and its public_key must be the SubjectPublicKeyInfo of
 * the certificate that ended this TLS session (and equal the certificate Attest returned).
 * Only then does ns_signclient_sign send anything to sign: before, it refuses (NS_E_DENIED).
 * A server swapped after the Attest (another connection, another key) cannot pass: the binding
 * is to this session's certificate.
 *
 * The keys file behind the enclave: when Attest returns its keys commitment (signkeys.h), the
 * commitment is recomputed from its parts and user_data from it (plus the audit key, audit.h),
 * and the document's user_data must equal it; then the caller's policy demands hold (client
 * authentication required unless allowed, a minimum policy_epoch, an exact policy commitment).
 */
#ifndef NS_SIGNCLIENT_H
#define NS_SIGNCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "attest.h"
#include "buf.h"
#include "err.h"

#define NS_SIGNCLIENT_NONCE_LEN 32
#define NS_SIGNCLIENT_SIG_MAX 72

typedef struct ns_signclient ns_signclient;

typedef struct {
    uint8_t signature[64];
    size_t signature_len;
    uint8_t signature_der[NS_SIGNCLIENT_SIG_MAX];
    size_t signature_der_len;
    uint32_t recovery_id;
    char algorithm[24]; /* "ed25519", "ecdsa-p256", "ecdsa-secp256k1" */
    uint8_t digest[32];
    size_t digest_len;
} ns_signclient_sig;

/* What a client demands of the enclave's keys file, beyond the PCRs. */
typedef struct {
    int allow_anonymous;       /* 0: refuse a service without client authentication */
    uint64_t min_policy_epoch; /* 0: any */
    int policy_set;            /* 1: policy_commitment must equal */
    uint8_t policy_commitment[32];
} ns_signclient_policy;

/* The commitment fields of an Attest answer (nsign.proto), each pointer with its length. */
typedef struct {
    const uint8_t *user_data, *keys, *key_set, *policy, *audit_pub;
    size_t user_data_len, keys_len, key_set_len, policy_len, audit_pub_len;
    uint64_t policy_epoch;
    int client_auth;
} ns_signclient_commitments;

/*
 * The checks above, on an answer whose document verified (doc_ud: the document's user_data, or
 * NULL). NS_E_AUTH naming what differs; an answer without a keys commitment (an older server)
 * passes only when want demands nothing of the policy.
 */
ns_err ns_signclient_check_commitments(const ns_signclient_commitments *c, const uint8_t *doc_ud,
                                       size_t doc_ud_len,
                                       const ns_signclient_policy *want) NS_MUST_CHECK;

/* Connects and handshakes. cert/key: the client certificate and key files' bytes (PEM or DER),
 * or NULL for none. */
ns_err ns_signclient_open(ns_signclient **c, const ns_addr *a, const uint8_t *cert, size_t cert_len,
                          const uint8_t *key, size_t key_len, int timeout_ms) NS_MUST_CHECK;
/*
 * Attests this session: x holds the caller's expectations (PCRs, user_data); the nonce and
 * public_key are set here. root_der NULL: the embedded AWS root. d receives the document. want
 * (NULL: refuse anonymous services, no other demand) is checked as ns_signclient_check_commitments
 * does; *epoch (may be NULL) receives the attested policy_epoch.
 */
ns_err ns_signclient_attest(ns_signclient *c, ns_attest_expect *x, const uint8_t *root_der,
                            size_t root_len, const ns_signclient_policy *want, ns_att_doc *d,
                            uint64_t *epoch) NS_MUST_CHECK;
/* Signs a message (or, with digest, a 32-byte digest); refused before a successful attest. */
ns_err ns_signclient_sign(ns_signclient *c, const char *key_id, const uint8_t *msg, size_t msg_len,
                          const uint8_t *digest, size_t digest_len,
                          ns_signclient_sig *out) NS_MUST_CHECK;
void ns_signclient_close(ns_signclient *c);

#endif
