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

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "attest.h"
#include "buf.h"
#include "err.h"
#include "frost.h"
#include "frostcoord.h"

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

/*
 * The connection and attestation options of the clients (`nsign frost-sign`; `nsign sign` has
 * the same names and messages): --cert, --client-key, --expect, --pcr N=HEX (repeatable),
 * --no-pcr16, --min-policy-epoch N, --policy-commitment HEX, --allow-anonymous-service, --root,
 * --timeout, --format hex|base64|json. An applet lists NS_SIGNCLIENT_LONGOPTS in its getopt_long
 * table and hands every option whose val is NS_SIGNCLIENT_OPT to ns_signclient_opt (optarg NULL
 * for the flags).
 */
#define NS_SIGNCLIENT_OPT 0x5c0
#define NS_SIGNCLIENT_PCRS_MAX 32
#define NS_SIGNCLIENT_LONGOPTS                                                                     \
    {"cert", required_argument, NULL, NS_SIGNCLIENT_OPT},                                          \
        {"client-key", required_argument, NULL, NS_SIGNCLIENT_OPT},                                \
        {"expect", required_argument, NULL, NS_SIGNCLIENT_OPT},                                    \
        {"pcr", required_argument, NULL, NS_SIGNCLIENT_OPT},                                       \
        {"no-pcr16", no_argument, NULL, NS_SIGNCLIENT_OPT},                                        \
        {"min-policy-epoch", required_argument, NULL, NS_SIGNCLIENT_OPT},                          \
        {"policy-commitment", required_argument, NULL, NS_SIGNCLIENT_OPT},                         \
        {"allow-anonymous-service", no_argument, NULL, NS_SIGNCLIENT_OPT},                         \
        {"root", required_argument, NULL, NS_SIGNCLIENT_OPT},                                      \
        {"timeout", required_argument, NULL, NS_SIGNCLIENT_OPT},                                   \
    {                                                                                              \
        "format", required_argument, NULL, NS_SIGNCLIENT_OPT                                       \
    }

typedef struct {
    const char *cert, *client_key, *root, *format;
    /* --expect, repeatable for a rolling upgrade: the first file, then other accepted images
     * (ns_attest_expect_alt: a document matches one image's PCRs whole) */
    const char *expect[1 + NS_ATTEST_ALT_MAX];
    int nexpect;
    const char *pcrs[NS_SIGNCLIENT_PCRS_MAX];
    int npcrs;
    int timeout_ms;
    int no_pcr16; /* --no-pcr16: PCR16 waived (warned by opts_expect) */
    ns_signclient_policy
        policy; /* --min-policy-epoch, --policy-commitment, --allow-anonymous-service */
} ns_signclient_opts;

/* format "hex", timeout 10 s. */
void ns_signclient_opts_init(ns_signclient_opts *o);
/* One option by its long name (val NULL for a flag). NS_OK; NS_E_USAGE with the message for a
 * bad value. */
ns_err ns_signclient_opt(ns_signclient_opts *o, const char *name, const char *val) NS_MUST_CHECK;
/* After parsing: the required ones (--cert, --client-key) and --format's value. */
ns_err ns_signclient_opts_check(const ns_signclient_opts *o) NS_MUST_CHECK;
/*
 * The expectations: every --expect's measurements (the first, then each further one as another
 * accepted set), then every --pcr (in every set); then what must be
 * pinned: PCR0 (--expect or --pcr 0=HEX), and PCR16 unless --no-pcr16 (warned on stderr here).
 * NS_E_USAGE for a bad --pcr or a missing pin (the message names the fix; exit 2).
 */
ns_err ns_signclient_opts_expect(const ns_signclient_opts *o, ns_attest_expect *x) NS_MUST_CHECK;
/* "pinned" or "unchecked", for the `attested` log line. */
const char *ns_signclient_opts_pcr16(const ns_signclient_opts *o);

/* The files the options name: the certificate and the key (secret memory) as mbedtls wants them
 * (a PEM with its NUL), and --root as DER (warned: tests and emulators only). */
typedef struct {
    ns_buf cert, key, root;
} ns_signclient_files;
ns_err ns_signclient_files_load(ns_signclient_files *f, const ns_signclient_opts *o) NS_MUST_CHECK;
/* Wipes the key once the connections hold their own copies (files_free does it too). */
void ns_signclient_files_drop_key(ns_signclient_files *f);
void ns_signclient_files_free(ns_signclient_files *f);
/* The root to pass to ns_signclient_attest: NULL (the AWS root) without --root. */
const uint8_t *ns_signclient_files_root(const ns_signclient_files *f, size_t *len);

/* hex or base64 of a signature, with a newline (json is the applet's own). */
ns_err ns_signclient_format_sig(ns_buf *out, const char *format, const uint8_t *sig,
                                size_t len) NS_MUST_CHECK;

/* FROST (docs/frost.md), refused before a successful attest like Sign. */
/* FrostCommit: count (1..64) fresh commitments of the signer's share of key_id, and its group. */
ns_err ns_signclient_frost_commit(ns_signclient *c, const char *key_id, unsigned count,
                                  ns_frostcoord_batch *out) NS_MUST_CHECK;
/* FrostSign: the signer's share over msg with the commitment id (consumed, whatever happens)
 * and the signing set list (n entries). */
ns_err ns_signclient_frost_sign(ns_signclient *c, ns_frost_suite suite, const char *key_id,
                                const uint8_t id[16], const uint8_t *msg, size_t msg_len,
                                const ns_frost_commitment *list, size_t n,
                                ns_frost_share *out) NS_MUST_CHECK;
/* The coordinator's participant interface over this (attested) connection; c outlives p. */
void ns_signclient_frost_party(ns_frostcoord_party *p, ns_signclient *c);
/* The server's address, for messages ("tcp:127.0.0.1:5000"). */
const char *ns_signclient_server(const ns_signclient *c);
void ns_signclient_close(ns_signclient *c);

#endif
