/*
 * signkeys: the signing keys of sign-service: the keys file (version 1 or 2), parsed strictly
 * into secret memory, with public keys derived at load, the three signing operations, and (in
 * version 2) who may use which key.
 *
 *   {"version":1,"keys":[{"id":"payments","algorithm":"ed25519","private_key":"<base64>"},
 *                        {"id":"eth-hot","algorithm":"ecdsa-secp256k1","private_key":"<hex>"},
 *                        {"id":"api","algorithm":"ecdsa-p256","private_key":"<hex>"}]}
 *
 *   {"version":2,
 *    "clients":[{"id":"payments-api","spki_sha256":"<64 hex>","max_signs_per_second":50}, ...],
 *    "keys":[{"id":"payments","algorithm":"ed25519","private_key":"<base64>",
 *             "allow":["payments-api"]}, ...]}
 *
 *   An optional top-level "policy_epoch" (version 2 only): an integer 0..4294967295, 0 when
 *   absent. The operator raises it whenever the policy changes (a client revoked, an allow list
 *   narrowed); an image built with a minimum epoch refuses older files (ns_signkeys_check_floor).
 *
 * Version 2: a client is named by the SHA-256 of its TLS certificate's DER SubjectPublicKeyInfo
 * (the pin is what authorises, whoever issued the certificate); ids and pins are unique; 1 to
 * NS_SIGNKEYS_CLIENTS_MAX clients; max_signs_per_second is optional (an integer 1..1000000).
 * Every key has "allow": a non-empty list of known client ids, each at most once. Version 1
 * files have neither "clients" nor "allow" (no policy: anyone who reaches the service signs).
 *
 * ed25519: standard base64 of the 32-byte seed (or of the 64-byte seed || public key, whose
 * public half must match the seed). ecdsa-*: exactly 64 hex digits, the big-endian scalar,
 * 0 < d < n. ids: 1-64 characters of [A-Za-z0-9._-], unique. 1 to NS_SIGNKEYS_MAX keys. No
 * other members anywhere. Errors name the entry and the problem, never key material. The JSON
 * parser's own copies of the private key strings are wiped before they are freed.
 *
 * FROST (RFC 9591) share, one participant of a threshold key (hex as RFC 9591's vectors write
 * scalars and compressed points; "allow" only in version 2):
 *   {"id":"treasury","algorithm":"frost-ed25519-sha512","identifier":1,
 *    "signing_share":"<64 hex>","group_public_key":"<64 hex>",
 *    "verifying_shares":{"1":"<64 hex>","2":...,"3":...},"min_signers":2,"max_signers":3,
 *    "allow":[...]}
 * Validated as frost.h's ns_frost_group_init and ns_frost_key_init: 2 <= min <= max, a verifying
 * share for each identifier 1..max and nothing else, all consistent with the group key, the
 * identifier in 1..max and signing_share * G equal to its verifying share. Such a key is
 * reported with the group public key and never signs through ns_signkey_sign.
 * "frost-secp256k1-sha256" is the same with 66-hex-digit (33-byte compressed) points and
 * big-endian scalars.
 *
 * The loaded set is read-only and may be shared by any number of threads.
 */
#ifndef NS_SIGNKEYS_H
#define NS_SIGNKEYS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frost.h"

#define NS_SIGNKEYS_MAX 64
#define NS_SIGNKEY_ID_MAX NS_FROST_ID_MAX /* 64 */
#define NS_SIGNKEYS_JSON_MAX (1024u * 1024)
#define NS_SIGNKEY_PUB_MAX 65
#define NS_SIGNKEY_SPKI_MAX 96
#define NS_SIGNKEY_SIG_MAX 64
#define NS_SIGNKEY_DER_MAX 72
#define NS_SIGNKEYS_CLIENTS_MAX 64 /* one bit each in ns_signkey.allow */
#define NS_SIGNCLIENT_RATE_MAX 1000000

typedef enum {
    NS_ALG_ED25519 = 1,
    NS_ALG_P256 = 2,
    NS_ALG_SECP256K1 = 3,
    NS_ALG_FROST_ED25519 = 4,   /* a FROST(Ed25519, SHA-512) share: FrostCommit/FrostSign only */
    NS_ALG_FROST_SECP256K1 = 5, /* a FROST(secp256k1, SHA-256) share: likewise */
} ns_sign_alg;

typedef struct {
    char id[NS_SIGNKEY_ID_MAX + 1];
    ns_sign_alg alg;
    uint8_t priv[64]; /* ed25519: libsodium secret key (seed || pk); ecdsa: 32-byte scalar */
    uint8_t pub[NS_SIGNKEY_PUB_MAX];
    size_t pub_len; /* 32 (ed25519) or 65 (SEC1 uncompressed) */
    uint64_t allow; /* version 2: bit i set when clients[i] may use this key */
    /* NS_ALG_FROST_*: this participant's key package (its signing share in secret memory);
     * pub is then the group public key. NULL for the other algorithms. */
    ns_frost_key *frost;
} ns_signkey;

typedef struct {
    char id[NS_SIGNKEY_ID_MAX + 1];
    uint8_t spki_sha256[32];
    uint32_t max_signs_per_second; /* 0: no limit */
} ns_signclient;

typedef struct ns_signkeys {
    int version; /* 1 or 2 */
    size_t count;
    ns_signkey keys[NS_SIGNKEYS_MAX];               /* sorted by id (bytewise) */
    uint8_t commitment[32];                         /* see ns_signkeys_commitment */
    uint8_t key_set_commitment[32];                 /* the keys alone (see below) */
    uint8_t policy_commitment[32];                  /* the client policy (see below) */
    uint64_t policy_epoch;                          /* "policy_epoch"; 0 when absent */
    size_t nclients;                                /* version 2: >= 1; version 1: 0 */
    ns_signclient clients[NS_SIGNKEYS_CLIENTS_MAX]; /* in file order */
} ns_signkeys;

typedef struct {
    uint8_t sig[NS_SIGNKEY_SIG_MAX];
    size_t sig_len;
    uint8_t der[NS_SIGNKEY_DER_MAX];
    size_t der_len; /* 0 for ed25519 */
    int recid;      /* ecdsa: 0 or 1; ed25519: 0 */
    uint8_t digest[32];
    int has_digest; /* ecdsa */
} ns_signature;

/* Parses and validates a keys file into secret memory. */
ns_err ns_signkeys_load(ns_signkeys **out, const uint8_t *json, size_t len) NS_MUST_CHECK;
/* Wipes and frees. NULL is fine. */
void ns_signkeys_free(ns_signkeys *k);

const ns_signkey *ns_signkeys_find(const ns_signkeys *k, const char *id);
/* True when the file has a client policy (version 2). */
int ns_signkeys_has_policy(const ns_signkeys *k);
/* The index of the client with this SPKI SHA-256 pin, or -1 (constant time over the clients). */
int ns_signkeys_client_by_pin(const ns_signkeys *k, const uint8_t spki_sha256[32]);
/* True when client index c may use key (always true without a policy). */
int ns_signkey_allows(const ns_signkeys *k, const ns_signkey *key, int c);
/* "ed25519", "ecdsa-p256", "ecdsa-secp256k1", "frost-ed25519-sha512",
 * "frost-secp256k1-sha256". */
const char *ns_sign_alg_name(ns_sign_alg alg);

/* DER SubjectPublicKeyInfo of a key (RFC 8410 for Ed25519, RFC 5480 for ECDSA). */
ns_err ns_signkey_spki(const ns_signkey *key, uint8_t *out, size_t cap, size_t *len) NS_MUST_CHECK;

/*
 * Signs. Ed25519: msg is required (digest must be NULL). ECDSA: either msg (its SHA-256 is
 * signed) or a 32-byte digest. NS_E_USAGE for a wrong combination or digest length.
 */
ns_err ns_signkey_sign(const ns_signkey *key, const uint8_t *msg, size_t msg_len, int has_msg,
                       const uint8_t *digest, size_t digest_len, ns_signature *out) NS_MUST_CHECK;

/*
 * Commitments (all SHA-256; u8/u32be/u64be: unsigned big-endian integers; ids without a NUL):
 *
 * key set:  "nsign-keys-v1\n" || for each key in id order: u8 len(id) || id || u8 len(alg) ||
 *           alg || u8 len(pub) || pub
 *           (alg: ns_sign_alg_name; pub: the raw public key, 32 bytes or 65-byte SEC1; for a
 *           FROST share, the record (70 or 71 bytes) group_public_key || u16be identifier ||
 *           u16be min_signers || u16be max_signers || SHA-256(verifying shares of 1..max,
 *           concatenated), so the commitment covers the whole entry but the secret:
 *           ns_signkey_commitment_pub)
 * policy:   "nsign-policy-v1\n" || u8 version || u64be policy_epoch ||
 *           u8 nclients || for each client in id order: u8 len(id) || id || spki_sha256 (32) ||
 *                                                       u32be max_signs_per_second (0: none) ||
 *           u8 nkeys || for each key in id order: u8 len(id) || id || u8 nallow ||
 *                       for each allowed client in id order: u8 len(client id) || client id
 *           (version 1: nclients 0 and every nallow 0: anyone may use every key)
 * keys (v2): ns_signkeys_commitment: "nsign-keys-v2\n" || u8 7 || "key-set" || u8 32 || key set ||
 *           u8 6 || "policy" || u8 32 || policy || u8 5 || "epoch" || u8 8 || u64be epoch ||
 *           u8 11 || "client-auth" || u8 1 || (1 with a client policy, else 0)
 *
 * The keys commitment is Attest's user_data without an audit trail, and the keys_commitment of
 * the audit trail's v2 user_data (audit.h); Attest returns its four parts beside it, so a
 * client recomputes it (ns_audit_keys_commitment, beside the other user_data commitments in
 * audit.h), then checks the epoch, client-auth and,
 * when it has it, the policy commitment the operator published.
 */
const uint8_t *ns_signkeys_commitment(const ns_signkeys *k);
#define NS_SIGNKEY_COMMIT_PUB_MAX 71
/* The pub of one key's record in the commitment (above). */
size_t ns_signkey_commitment_pub(const ns_signkey *key, uint8_t out[NS_SIGNKEY_COMMIT_PUB_MAX]);

/*
 * The minimum policy an image demands (measured with it: enclave.h's NSIGN_ALLOW_ANONYMOUS_CLIENTS
 * and NSIGN_MIN_POLICY_EPOCH). require_client_auth: a version-1 file, or a key no client may
 * use, is refused; min_policy_epoch: a file whose policy_epoch is lower is refused (a rollback
 * to an older file). NS_E_DENIED with one line "refusing the keys file: check=NAME: ...".
 */
typedef struct {
    int require_client_auth;
    uint64_t min_policy_epoch;
} ns_signkeys_floor;

ns_err ns_signkeys_check_floor(const ns_signkeys *k, const ns_signkeys_floor *f) NS_MUST_CHECK;

#endif
