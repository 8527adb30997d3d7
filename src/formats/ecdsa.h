/*
 * ecdsa: deterministic ECDSA (RFC 6979, HMAC-SHA-256) on P-256 and secp256k1, with the two
 * things wallets need: low-S normalisation (s <= n/2, BIP 62 / EIP-2) and the recovery id (the
 * parity of R.y, so the public key can be recovered from the signature: Ethereum's v = 27 + id).
 *
 * secp256k1 runs on libsecp256k1 (constant-time, Bitcoin Core's library; its RFC 6979 nonces and
 * low-S output give the same signatures as before), through one context shared by all threads
 * and randomised (blinding of its generator multiplication) on first use, at key load.
 * P-256 runs on mbedtls: private scalars live in mbedtls bignums only for one call
 * (mbedtls_mpi_free zeroes them); each thread keeps its own curve group because mbedtls caches
 * precomputed points in the group on first use (not thread-safe to share).
 */
#ifndef NS_ECDSA_H
#define NS_ECDSA_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NS_ECDSA_SCALAR_LEN 32
#define NS_ECDSA_PUB_LEN 65 /* SEC1 uncompressed: 0x04 || X || Y */
#define NS_ECDSA_SIG_LEN 64 /* r || s */
#define NS_ECDSA_DER_MAX 72
#define NS_ECDSA_DIGEST_LEN 32

typedef enum { NS_ECDSA_P256 = 1, NS_ECDSA_SECP256K1 = 2 } ns_ecdsa_curve;

/* Validates 0 < d < n and derives the public point. */
ns_err ns_ecdsa_public(ns_ecdsa_curve curve, const uint8_t d[NS_ECDSA_SCALAR_LEN],
                       uint8_t pub[NS_ECDSA_PUB_LEN]) NS_MUST_CHECK;

/*
 * Signs a 32-byte digest: sig = r || s with s <= n/2, der = the same as ECDSA-Sig-Value,
 * *recid = 0 or 1 (the y parity of R, after low-S normalisation).
 */
ns_err ns_ecdsa_sign(ns_ecdsa_curve curve, const uint8_t d[NS_ECDSA_SCALAR_LEN],
                     const uint8_t digest[NS_ECDSA_DIGEST_LEN], uint8_t sig[NS_ECDSA_SIG_LEN],
                     uint8_t der[NS_ECDSA_DER_MAX], size_t *der_len, int *recid) NS_MUST_CHECK;

/* Verifies r || s over a digest (for tests and self-checks). */
ns_err ns_ecdsa_verify(ns_ecdsa_curve curve, const uint8_t pub[NS_ECDSA_PUB_LEN],
                       const uint8_t digest[NS_ECDSA_DIGEST_LEN],
                       const uint8_t sig[NS_ECDSA_SIG_LEN]) NS_MUST_CHECK;

/* Recovers the public key from r || s and a recovery id (0 or 1). */
ns_err ns_ecdsa_recover(ns_ecdsa_curve curve, const uint8_t digest[NS_ECDSA_DIGEST_LEN],
                        const uint8_t sig[NS_ECDSA_SIG_LEN], int recid,
                        uint8_t pub[NS_ECDSA_PUB_LEN]) NS_MUST_CHECK;

/* The process's one randomised libsecp256k1 context (shared with frost.c; read-only once made). */
struct secp256k1_context_struct;
ns_err ns_ecdsa_k1_context(const struct secp256k1_context_struct **out) NS_MUST_CHECK;

#endif
