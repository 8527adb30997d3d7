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
#define NS_SIGNKEY_ID_MAX 64
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
 * The commitment placed in Attest's user_data: SHA-256 over
 *   "nsign-keys-v1\n" || for each key in id order: u8 len(id) || id || u8 len(alg) || alg ||
 *   u8 len(pub) || pub
 * where alg is ns_sign_alg_name and pub the raw public key (32 bytes or 65-byte SEC1); for a
 * FROST share, pub is the record (70 or 71 bytes) group_public_key || u16be identifier ||
 * u16be min_signers || u16be max_signers || SHA-256(verifying shares of 1..max, concatenated),
 * so the commitment covers the whole entry but the secret (ns_signkey_commitment_pub).
 */
const uint8_t *ns_signkeys_commitment(const ns_signkeys *k);
#define NS_SIGNKEY_COMMIT_PUB_MAX 71
/* The pub of one key's record in the commitment (above). */
size_t ns_signkey_commitment_pub(const ns_signkey *key, uint8_t out[NS_SIGNKEY_COMMIT_PUB_MAX]);

#endif
