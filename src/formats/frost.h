/*
 * frost: FROST threshold Schnorr signatures, RFC 9591 (two rounds; the aggregate is an ordinary
 * signature under the group public key). No I/O.
 *
 * Ciphersuites: FROST(Ed25519, SHA-512) (RFC 9591 section 6.1, contextString
 * "FROST-ED25519-SHA512-v1"): the aggregate is a plain RFC 8032 Ed25519 signature. Built on
 * libsodium's group and scalar operations only (crypto_core_ed25519_*,
 * crypto_scalarmult_ed25519_*noclamp: constant time); no field arithmetic of our own.
 * FROST(secp256k1, SHA-256) (section 6.5, contextString "FROST-secp256k1-SHA256-v1") on
 * libsecp256k1's public API, constant time for secrets (see frost.c): 33-byte compressed points,
 * big-endian scalars, 65-byte signatures R || z (RFC 9591's, not BIP 340's).
 *
 * What callers (sign-service's FrostCommit/FrostSign, the frost-sign coordinator) can rely on:
 * - Every element that comes from outside (commitments, verifying shares, group key) is checked
 *   here: canonical encoding, on the curve, in the prime-order subgroup, not the identity (nor
 *   any small-order point). Every scalar from outside (signature shares, signing shares) must be
 *   canonical (below the group order). Callers need not pre-validate; they pass the bytes they
 *   received. Element lengths: ns_frost_element_len (32 or 33); scalars are always 32 bytes.
 * - Commitment lists must be in strictly ascending identifier order (RFC 9591 section 4.3); use
 *   ns_frost_commitments_sort first if the order is not known. Equal identifiers are reported as
 *   duplicates, not as an order problem. 1 <= identifier <= group max_signers; at least
 *   min_signers and at most max_signers entries.
 * - ns_frost_sign consumes the nonces: it wipes *nonces before it returns, on success and on
 *   every failure, so one round-one output can never sign twice through this API. The caller
 *   still keeps each ns_frost_nonces in secret memory (ns_secret_alloc) and frees it wiped.
 * - ns_frost_sign refuses a list that does not contain this participant's own commitment exactly
 *   as round one produced it (held inside ns_frost_nonces).
 * - ns_frost_aggregate verifies every signature share (RFC 9591 section 5.4): shares 1..n-1
 *   on their own, the last one as the aggregate's verification minus theirs (exact in a
 *   prime-order group, given a consistent group: see frost.c); a bad share fails with
 *   NS_E_AUTH, the message names the participant and *bad_identifier holds it. The final
 *   signature is verified before it is returned.
 * - Error messages never contain secrets; they name the participant / list index at fault.
 * - Thread-safe: the only global state is libsodium's (sodium_init) and the one randomised
 *   libsecp256k1 context shared with ecdsa.c, both set up once by ns_frost_init.
 * - The coordinator path (group, verify_share, aggregate, verify) never allocates secret
 *   memory and never handles a secret.
 *
 * Identifiers are the integers 1..max_signers (the trusted dealer's, RFC 9591 appendix C),
 * serialized as scalars (little-endian for Ed25519, big-endian for secp256k1).
 */
#ifndef NS_FROST_H
#define NS_FROST_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NS_FROST_SCALAR_LEN 32
#define NS_FROST_ELEMENT_MAX 33  /* 32 for Ed25519, 33 (SEC1 compressed) for secp256k1 */
#define NS_FROST_SIG_MAX 65      /* 64 for Ed25519 (R || z), 65 for secp256k1 */
#define NS_FROST_RANDOM_LEN 32   /* round one: the random input of each nonce */
#define NS_FROST_SIGNERS_MAX 300 /* load-time group checks cost O(N * T) */

typedef enum {
    NS_FROST_ED25519_SHA512 = 1,
    NS_FROST_SECP256K1_SHA256 = 2,
} ns_frost_suite;

/* Round one output of one participant (public). */
typedef struct {
    uint16_t identifier;
    uint8_t hiding[NS_FROST_ELEMENT_MAX];  /* D = d * G */
    uint8_t binding[NS_FROST_ELEMENT_MAX]; /* E = e * G */
} ns_frost_commitment;

/* Round one secret of one participant: keep in secret memory; consumed by ns_frost_sign. */
typedef struct {
    uint8_t hiding[NS_FROST_SCALAR_LEN];  /* d */
    uint8_t binding[NS_FROST_SCALAR_LEN]; /* e */
    ns_frost_commitment commitment;       /* what round one published (checked in round two) */
    int live;                             /* 1 from ns_frost_commit until consumed */
} ns_frost_nonces;

/* Round two output of one participant (public). */
typedef struct {
    uint16_t identifier;
    uint8_t z[NS_FROST_SCALAR_LEN];
} ns_frost_share;

/* The public part of a threshold key: what a coordinator needs. */
typedef struct {
    ns_frost_suite suite;
    uint16_t min_signers; /* T, 2 <= T <= N */
    uint16_t max_signers; /* N <= NS_FROST_SIGNERS_MAX */
    uint8_t group_public_key[NS_FROST_ELEMENT_MAX];
    /* max_signers elements on the heap: verifying_shares[i - 1] belongs to identifier i */
    uint8_t (*verifying_shares)[NS_FROST_ELEMENT_MAX];
} ns_frost_group;

/* One participant's key package. */
typedef struct {
    ns_frost_group group;
    uint16_t identifier;
    uint8_t *signing_share; /* NS_FROST_SCALAR_LEN bytes of secret memory, owned */
} ns_frost_key;

/* Initialises libsodium and the shared libsecp256k1 context; every other function calls it too
 * (idempotent, thread-safe). */
ns_err ns_frost_init(void) NS_MUST_CHECK;

/* "frost-ed25519-sha512" / "frost-secp256k1-sha256" (the keys file's algorithm names). */
const char *ns_frost_suite_name(ns_frost_suite suite);
/* The suite of a name; NS_E_PARSE for any other name. */
ns_err ns_frost_suite_parse(const char *name, ns_frost_suite *out) NS_MUST_CHECK;
/* 32 for Ed25519 (33 for secp256k1). */
size_t ns_frost_element_len(ns_frost_suite suite);
/* 64 for Ed25519 (65 for secp256k1). */
size_t ns_frost_sig_len(ns_frost_suite suite);

/* An element from outside: right length, canonical, in the prime-order group, not identity. */
ns_err ns_frost_element_check(ns_frost_suite suite, const uint8_t *p, size_t len) NS_MUST_CHECK;
/* A scalar from outside: exactly NS_FROST_SCALAR_LEN bytes and canonical (< group order). */
ns_err ns_frost_scalar_check(ns_frost_suite suite, const uint8_t *p, size_t len) NS_MUST_CHECK;

/*
 * Builds a group from its parts (verifying_shares: max_signers * element_len contiguous bytes,
 * identifier 1 first) and validates it: 2 <= min <= max <= NS_FROST_SIGNERS_MAX, every element
 * valid, and the verifying shares consistent with the group key (interpolating any min_signers
 * of them in the exponent gives the group key, and the others lie on the same polynomial).
 * On failure g is left freed. ns_frost_group_free(g) later; a zeroed group frees as a no-op.
 */
ns_err ns_frost_group_init(ns_frost_group *g, ns_frost_suite suite, unsigned min_signers,
                           unsigned max_signers, const uint8_t *group_public_key,
                           const uint8_t *verifying_shares) NS_MUST_CHECK;
void ns_frost_group_free(ns_frost_group *g);
/* Deep copy (allocates the verifying shares). */
ns_err ns_frost_group_copy(ns_frost_group *dst, const ns_frost_group *src) NS_MUST_CHECK;

/*
 * Builds a key package: copies the group and the signing share (into secret memory) and checks
 * 1 <= identifier <= max_signers, the share canonical and nonzero, and share * G equal to the
 * identifier's verifying share. ns_frost_key_free wipes and frees; a zeroed key frees as no-op.
 */
ns_err ns_frost_key_init(ns_frost_key *k, const ns_frost_group *g, unsigned identifier,
                         const uint8_t signing_share[NS_FROST_SCALAR_LEN]) NS_MUST_CHECK;
void ns_frost_key_free(ns_frost_key *k);

/* Round one (RFC 9591 section 5.1): fresh nonces from rng.h and their commitment. */
ns_err ns_frost_commit(const ns_frost_key *k, ns_frost_nonces *nonces) NS_MUST_CHECK;
/*
 * TEST ONLY (the RFC vectors' nonce randomness): round one with the given random inputs.
 * Production code calls ns_frost_commit.
 */
ns_err ns_frost_commit_with_randomness_for_test(const ns_frost_key *k,
                                                const uint8_t hiding_rand[NS_FROST_RANDOM_LEN],
                                                const uint8_t binding_rand[NS_FROST_RANDOM_LEN],
                                                ns_frost_nonces *nonces) NS_MUST_CHECK;

/* Sorts a list by identifier (for a coordinator that gathered commitments in any order). */
void ns_frost_commitments_sort(ns_frost_commitment *list, size_t n);

/*
 * Round two (RFC 9591 section 5.2): this participant's signature share over msg, given the
 * commitment list of the signing set (ascending identifiers, including its own commitment as in
 * nonces->commitment). Refuses (NS_E_USAGE for a list problem, NS_E_AUTH for a mismatch of its
 * own commitment, NS_E_EXPIRED for nonces already consumed): fewer than min_signers or more
 * than max_signers entries, identifiers out of range / duplicate / unsorted, invalid or
 * identity points, own commitment missing or altered. Always wipes *nonces.
 */
ns_err ns_frost_sign(const ns_frost_key *k, ns_frost_nonces *nonces, const uint8_t *msg,
                     size_t msg_len, const ns_frost_commitment *list, size_t n,
                     ns_frost_share *out) NS_MUST_CHECK;

/*
 * RFC 9591 section 5.4: checks one participant's signature share against its verifying share.
 * NS_E_AUTH (naming the identifier) when it does not verify; the list is checked as in sign.
 */
ns_err ns_frost_verify_share(const ns_frost_group *g, const uint8_t *msg, size_t msg_len,
                             const ns_frost_commitment *list, size_t n,
                             const ns_frost_share *share) NS_MUST_CHECK;

/*
 * RFC 9591 section 5.3: aggregates shares[i] (the participant of list[i], same order, same
 * identifiers) into the signature (sig_len = ns_frost_sig_len). Every share is verified first
 * (on a bad one: NS_E_AUTH, *bad_identifier set, the message names it; bad_identifier may be
 * NULL; it is 0 when no single participant is at fault), then the signature itself.
 */
ns_err ns_frost_aggregate(const ns_frost_group *g, const uint8_t *msg, size_t msg_len,
                          const ns_frost_commitment *list, size_t n, const ns_frost_share *shares,
                          uint8_t sig[NS_FROST_SIG_MAX], size_t *sig_len,
                          uint16_t *bad_identifier) NS_MUST_CHECK;

/* Verifies an aggregate signature under the group key (Ed25519: RFC 8032, via libsodium;
 * secp256k1: z * G == R + c * PK, RFC 9591 section 6.5). */
ns_err ns_frost_verify(ns_frost_suite suite, const uint8_t *group_public_key, const uint8_t *msg,
                       size_t msg_len, const uint8_t *sig, size_t sig_len) NS_MUST_CHECK;

/*
 * Trusted-dealer key generation (RFC 9591 appendix C): a random group secret and polynomial of
 * degree min_signers - 1; shares (max_signers * NS_FROST_SCALAR_LEN bytes, identifier 1 first)
 * must be caller-provided secret memory; vss_commitment (min_signers * element_len bytes, may
 * be NULL) receives the polynomial's coefficient commitments. Every share is checked against
 * the VSS commitment before returning. *group is initialised (ns_frost_group_free it).
 */
ns_err ns_frost_keygen(ns_frost_suite suite, unsigned min_signers, unsigned max_signers,
                       uint8_t *shares, ns_frost_group *group,
                       uint8_t *vss_commitment) NS_MUST_CHECK;
/* TEST ONLY: keygen with a given group secret and the min_signers - 1 other coefficients. */
ns_err ns_frost_keygen_with_coefficients_for_test(ns_frost_suite suite, unsigned min_signers,
                                                  unsigned max_signers,
                                                  const uint8_t secret[NS_FROST_SCALAR_LEN],
                                                  const uint8_t *coefficients, uint8_t *shares,
                                                  ns_frost_group *group,
                                                  uint8_t *vss_commitment) NS_MUST_CHECK;
/* RFC 9591 appendix C.2 vss_verify: share * G equals the commitment evaluated at identifier. */
ns_err ns_frost_vss_verify(ns_frost_suite suite, unsigned min_signers, unsigned identifier,
                           const uint8_t share[NS_FROST_SCALAR_LEN],
                           const uint8_t *vss_commitment) NS_MUST_CHECK;

/*
 * The group's JSON members, shared by the keys file's FROST entry (signkeys) and the public
 * group file (frost-keygen): parses "algorithm", "group_public_key", "verifying_shares"
 * ({"1": hex, ... "N": hex}, exactly identifiers 1..max_signers), "min_signers", "max_signers"
 * of a cJSON object into g (validated as ns_frost_group_init). Other members are the caller's.
 * where prefixes error messages ("keys file: keys[2] (id \"treasury\")").
 */
struct cJSON;
ns_err ns_frost_group_from_json(ns_frost_group *g, const struct cJSON *obj,
                                const char *where) NS_MUST_CHECK;

/*
 * The public group file that frost-keygen writes (the coordinator's input), one JSON object:
 *   {"version":1,"id":"treasury","algorithm":"frost-ed25519-sha512","group_public_key":hex,
 *    "verifying_shares":{"1":hex,...},"min_signers":T,"max_signers":N,
 *    "vss_commitment":[hex, ... T elements]}
 * Parsing is strict (no other members; the VSS commitment must be consistent with the group key
 * and every verifying share). id receives the key id (1-64 of [A-Za-z0-9._-]).
 */
#define NS_FROST_ID_MAX 64
/* A key id: 1-NS_FROST_ID_MAX characters of A-Z a-z 0-9 . _ - (the keys file's rule). */
int ns_frost_id_valid(const char *s);
#define NS_FROST_GROUP_FILE_MAX (256u * 1024)
ns_err ns_frost_group_file_parse(ns_frost_group *g, char id[NS_FROST_ID_MAX + 1],
                                 const uint8_t *json, size_t len) NS_MUST_CHECK;
/* Appends the group file (above, with a final newline) to out. */
ns_err ns_frost_group_file_write(const ns_frost_group *g, const char *id,
                                 const uint8_t *vss_commitment, ns_buf *out) NS_MUST_CHECK;

#endif
