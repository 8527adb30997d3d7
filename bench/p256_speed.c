/*
 * p256_speed: one harness, several P-256 / X25519 implementations (issue 25). Compiled once per
 * candidate with -DB_<NAME> (bench/p256.sh builds each against its own library) and prints, one
 * line per operation, "NAME OP OPS_PER_S CHECK": single-threaded operations per second over
 * SECS seconds (env P256_SECS, default 2), where
 *   sign   = ECDSA P-256 signature of a 32-byte digest (the library's own nonce: random, or
 *            RFC 6979 where that is all it offers),
 *   verify = ECDSA P-256 verification of RFC 6979 A.2.5's SHA-256 "sample" signature,
 *   ecdh   = P-256 shared secret from a fixed private key and a fixed peer point (like
 *            `openssl speed ecdhp256`: the derive only, no key generation),
 *   x25519 = X25519 shared secret (RFC 7748 6.1's Bob with Alice's public key).
 * Before timing, each backend is checked: the RFC 6979 signature verifies and a corrupted one
 * does not, its own signature verifies, and the shared secrets are printed (CHECK column) so
 * the script can require every backend to agree; X25519 must equal RFC 7748's value.
 * Not a test: numbers only (bench/p256.sh prints the ratios).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#ifdef B_SODIUM
#define NO_P256 /* X25519 only */
#endif

/* RFC 6979 A.2.5: P-256 key, SHA-256("sample") and its deterministic signature (r || s). */
__attribute__((unused)) static const uint8_t D[32] = {
    0xC9, 0xAF, 0xA9, 0xD8, 0x45, 0xBA, 0x75, 0x16, 0x6B, 0x5C, 0x21, 0x57, 0x67, 0xB1, 0xD6, 0x93,
    0x4E, 0x50, 0xC3, 0xDB, 0x36, 0xE8, 0x9B, 0x12, 0x7B, 0x8A, 0x62, 0x2B, 0x12, 0x0F, 0x67, 0x21};
__attribute__((unused)) static const uint8_t Q[65] = {
    0x04, 0x60, 0xFE, 0xD4, 0xBA, 0x25, 0x5A, 0x9D, 0x31, 0xC9, 0x61, 0xEB, 0x74,
    0xC6, 0x35, 0x6D, 0x68, 0xC0, 0x49, 0xB8, 0x92, 0x3B, 0x61, 0xFA, 0x6C, 0xE6,
    0x69, 0x62, 0x2E, 0x60, 0xF2, 0x9F, 0xB6, 0x79, 0x03, 0xFE, 0x10, 0x08, 0xB8,
    0xBC, 0x99, 0xA4, 0x1A, 0xE9, 0xE9, 0x56, 0x28, 0xBC, 0x64, 0xF2, 0xF1, 0xB2,
    0x0C, 0x2D, 0x7E, 0x9F, 0x51, 0x77, 0xA3, 0xC2, 0x94, 0xD4, 0x46, 0x22, 0x99};
__attribute__((unused)) static const uint8_t H[32] = {
    0xaf, 0x2b, 0xdb, 0xe1, 0xaa, 0x9b, 0x6e, 0xc1, 0xe2, 0xad, 0xe1, 0xd6, 0x94, 0xf4, 0x1f, 0xc7,
    0x1a, 0x83, 0x1d, 0x02, 0x68, 0xe9, 0x89, 0x15, 0x62, 0x11, 0x3d, 0x8a, 0x62, 0xad, 0xd1, 0xbf};
__attribute__((unused)) static const uint8_t SIG[64] = {
    0xEF, 0xD4, 0x8B, 0x2A, 0xAC, 0xB6, 0xA8, 0xFD, 0x11, 0x40, 0xDD, 0x9C, 0xD4, 0x5E, 0x81, 0xD6,
    0x9D, 0x2C, 0x87, 0x7B, 0x56, 0xAA, 0xF9, 0x91, 0xC3, 0x4D, 0x0E, 0xA8, 0x4E, 0xAF, 0x37, 0x16,
    0xF7, 0xCB, 0x1C, 0x94, 0x2D, 0x65, 0x7C, 0x41, 0xD4, 0x36, 0xC7, 0xA1, 0xB6, 0xE2, 0x9F, 0x65,
    0xF3, 0xE9, 0x00, 0xDB, 0xB9, 0xAF, 0xF4, 0x06, 0x4D, 0xC4, 0xAB, 0x2F, 0x84, 0x3A, 0xCD, 0xA8};
/* The ECDH private key (any scalar below n); the peer point is Q above. */
__attribute__((unused)) static const uint8_t D2[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                                       12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                                       23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
/* RFC 7748 6.1: Bob's private key, Alice's public key, their shared secret. */
static const uint8_t XB[32] = {0x5d, 0xab, 0x08, 0x7e, 0x62, 0x4a, 0x8a, 0x4b, 0x79, 0xe1, 0x7f,
                               0x8b, 0x83, 0x80, 0x0e, 0xe6, 0x6f, 0x3b, 0xb1, 0x29, 0x26, 0x18,
                               0xb6, 0xfd, 0x1c, 0x2f, 0x8b, 0x27, 0xff, 0x88, 0xe0, 0xeb};
static const uint8_t XA[32] = {0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d,
                               0xdc, 0xb4, 0x3e, 0xf7, 0x5a, 0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38,
                               0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a};
static const uint8_t XK[32] = {0x4a, 0x5d, 0x9d, 0x5b, 0xa4, 0xce, 0x2d, 0xe1, 0x72, 0x8e, 0x3b,
                               0xf4, 0x80, 0x35, 0x0f, 0x25, 0xe0, 0x7e, 0x21, 0xc9, 0x47, 0xd1,
                               0x9e, 0x33, 0x76, 0xf0, 0x9b, 0x3c, 0x1e, 0x16, 0x17, 0x42};

__attribute__((unused)) static void rnd(void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r <= 0) {
            abort();
        }
        b += r;
        n -= (size_t)r;
    }
}

/* Each backend defines NAME and these; an op returns 0 on success; x25519 may be NULL. */
static int b_init(void);
#ifndef NO_P256
static int b_sign(uint8_t sig[64]);         /* of H with D, raw r || s */
static int b_verify(const uint8_t sig[64]); /* against Q and H: 0 valid, else invalid */
static int b_ecdh(uint8_t out[32]);         /* D2 x Q */
#endif
static int (*b_x25519)(uint8_t out[32]); /* XB x XA */

/* ---------------------------------------------------------------- mbedtls PSA (both builds) */
#if defined(B_MBEDTLS) || defined(B_MBEDTLS_P256M) || defined(B_P256M) || defined(B_MBEDTLS_LEGACY)
#include <psa/crypto.h>
/* nsign's config takes entropy from mbedtls_hardware_poll only (rng.c in nsign). */
int mbedtls_hardware_poll(void *data, unsigned char *out, size_t len, size_t *olen);
int mbedtls_hardware_poll(void *data, unsigned char *out, size_t len, size_t *olen)
{
    (void)data;
    rnd(out, len);
    *olen = len;
    return 0;
}
#endif
#if defined(B_MBEDTLS) || defined(B_MBEDTLS_P256M)
#ifndef BNAME
#define BNAME "mbedtls-ecp"
#endif
static const char *NAME = BNAME;
static psa_key_id_t ksign, kverify, kecdh, kx;
static psa_key_id_t import(psa_key_type_t t, psa_algorithm_t alg, psa_key_usage_t u,
                           const uint8_t *k, size_t n)
{
    psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
    psa_set_key_type(&a, t);
    psa_set_key_algorithm(&a, alg);
    psa_set_key_usage_flags(&a, u);
    psa_key_id_t id = 0;
    return psa_import_key(&a, k, n, &id) == PSA_SUCCESS ? id : 0;
}
static int b_init(void)
{
    if (psa_crypto_init() != PSA_SUCCESS) {
        return -1;
    }
    ksign = import(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1),
                   PSA_ALG_ECDSA(PSA_ALG_SHA_256), PSA_KEY_USAGE_SIGN_HASH, D, 32);
    kverify = import(PSA_KEY_TYPE_ECC_PUBLIC_KEY(PSA_ECC_FAMILY_SECP_R1),
                     PSA_ALG_ECDSA(PSA_ALG_SHA_256), PSA_KEY_USAGE_VERIFY_HASH, Q, 65);
    kecdh = import(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), PSA_ALG_ECDH,
                   PSA_KEY_USAGE_DERIVE, D2, 32);
    kx = import(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY), PSA_ALG_ECDH,
                PSA_KEY_USAGE_DERIVE, XB, 32);
    if (!ksign || !kverify || !kecdh || !kx) {
        return -1;
    }
    /* A point off the curve (Q with y changed) must be refused, whichever driver runs. */
    uint8_t bad[65], out[32];
    size_t n = 0;
    memcpy(bad, Q, 65);
    bad[64] ^= 1;
    return psa_raw_key_agreement(PSA_ALG_ECDH, kecdh, bad, 65, out, 32, &n) == PSA_SUCCESS ? -4 : 0;
}
static int b_sign(uint8_t sig[64])
{
    size_t n = 0;
    return psa_sign_hash(ksign, PSA_ALG_ECDSA(PSA_ALG_SHA_256), H, 32, sig, 64, &n) ==
                       PSA_SUCCESS &&
                   n == 64
               ? 0
               : -1;
}
static int b_verify(const uint8_t sig[64])
{
    return psa_verify_hash(kverify, PSA_ALG_ECDSA(PSA_ALG_SHA_256), H, 32, sig, 64) == PSA_SUCCESS
               ? 0
               : -1;
}
static int b_ecdh(uint8_t out[32])
{
    size_t n = 0;
    return psa_raw_key_agreement(PSA_ALG_ECDH, kecdh, Q, 65, out, 32, &n) == PSA_SUCCESS ? 0 : -1;
}
static int mx(uint8_t out[32])
{
    size_t n = 0;
    return psa_raw_key_agreement(PSA_ALG_ECDH, kx, XA, 32, out, 32, &n) == PSA_SUCCESS ? 0 : -1;
}
static int (*b_x25519)(uint8_t out[32]) = mx;

/* ------------------------- mbedtls's legacy ECP API with the group kept (as nsign's ecdsa.c) */
#elif defined(B_MBEDTLS_LEGACY)
#include <mbedtls/ecdh.h>
#include <mbedtls/ecdsa.h>
#ifndef BNAME
#define BNAME "mbedtls-ecp-legacy"
#endif
static const char *NAME = BNAME;
static mbedtls_ecp_keypair kp, kp2, kx;
static mbedtls_ecp_point peer, xpeer;
static int lrng(void *ctx, unsigned char *out, size_t n)
{
    (void)ctx;
    rnd(out, n);
    return 0;
}
static int b_init(void)
{
    mbedtls_ecp_keypair_init(&kp);
    mbedtls_ecp_keypair_init(&kp2);
    mbedtls_ecp_keypair_init(&kx);
    mbedtls_ecp_point_init(&peer);
    mbedtls_ecp_point_init(&xpeer);
    if (mbedtls_ecp_read_key(MBEDTLS_ECP_DP_SECP256R1, &kp, D, 32) != 0 ||
        mbedtls_ecp_point_read_binary(&kp.MBEDTLS_PRIVATE(grp), &kp.MBEDTLS_PRIVATE(Q), Q, 65) !=
            0 ||
        mbedtls_ecp_read_key(MBEDTLS_ECP_DP_SECP256R1, &kp2, D2, 32) != 0 ||
        mbedtls_ecp_point_read_binary(&kp2.MBEDTLS_PRIVATE(grp), &peer, Q, 65) != 0 ||
        mbedtls_ecp_read_key(MBEDTLS_ECP_DP_CURVE25519, &kx, XB, 32) != 0 ||
        mbedtls_ecp_point_read_binary(&kx.MBEDTLS_PRIVATE(grp), &xpeer, XA, 32) != 0) {
        return -1;
    }
    return 0;
}
static int b_sign(uint8_t sig[64])
{
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    int rv = mbedtls_ecdsa_sign_det_ext(&kp.MBEDTLS_PRIVATE(grp), &r, &s, &kp.MBEDTLS_PRIVATE(d), H,
                                        32, MBEDTLS_MD_SHA256, lrng, NULL);
    if (rv == 0) {
        rv = mbedtls_mpi_write_binary(&r, sig, 32) || mbedtls_mpi_write_binary(&s, sig + 32, 32);
    }
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return rv;
}
static int b_verify(const uint8_t sig[64])
{
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    int rv = mbedtls_mpi_read_binary(&r, sig, 32) || mbedtls_mpi_read_binary(&s, sig + 32, 32) ||
             mbedtls_ecdsa_verify(&kp.MBEDTLS_PRIVATE(grp), H, 32, &kp.MBEDTLS_PRIVATE(Q), &r, &s);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return rv;
}
static int shared(mbedtls_ecp_keypair *k, const mbedtls_ecp_point *p, uint8_t out[32], int le)
{
    mbedtls_mpi z;
    mbedtls_mpi_init(&z);
    int rv = mbedtls_ecdh_compute_shared(&k->MBEDTLS_PRIVATE(grp), &z, p, &k->MBEDTLS_PRIVATE(d),
                                         lrng, NULL);
    if (rv == 0) {
        rv = le ? mbedtls_mpi_write_binary_le(&z, out, 32) : mbedtls_mpi_write_binary(&z, out, 32);
    }
    mbedtls_mpi_free(&z);
    return rv;
}
static int b_ecdh(uint8_t out[32])
{
    return shared(&kp2, &peer, out, 0);
}
static int lx(uint8_t out[32])
{
    return shared(&kx, &xpeer, out, 1);
}
static int (*b_x25519)(uint8_t out[32]) = lx;

/* ---------------- p256-m called directly (no PSA; its nonces come from psa_generate_random) */
#elif defined(B_P256M)
#include "p256-m.h"
#ifdef MUL64_IS_CONSTANT_TIME
static const char *NAME = "p256m-direct-mul64";
#else
static const char *NAME = "p256m-direct";
#endif
static int b_init(void)
{
    return psa_crypto_init() == PSA_SUCCESS ? 0 : -1;
}
static int b_sign(uint8_t sig[64])
{
    return p256_ecdsa_sign(sig, D, H, 32);
}
static int b_verify(const uint8_t sig[64])
{
    return p256_ecdsa_verify(sig, Q + 1, H, 32);
}
static int b_ecdh(uint8_t out[32])
{
    return p256_ecdh_shared_secret(out, D2, Q + 1);
}
static int (*b_x25519)(uint8_t out[32]) = NULL;

/* ---------------------------------------------------------------------------------- nettle */
#elif defined(B_NETTLE)
#include <nettle/curve25519.h>
#include <nettle/ecc-curve.h>
#include <nettle/ecc.h>
#include <nettle/ecdsa.h>
#include <nettle/version.h>
#ifndef BNAME
#define BNAME "nettle"
#endif
static const char *NAME = BNAME;
static struct ecc_scalar key, key2;
static struct ecc_point pub;
static mpz_t t1, t2;
static void nrnd(void *ctx, size_t n, uint8_t *dst)
{
    (void)ctx;
    rnd(dst, n);
}
static int b_init(void)
{
    const struct ecc_curve *c = nettle_get_secp_256r1();
    mpz_t x, y;
    ecc_scalar_init(&key, c);
    ecc_scalar_init(&key2, c);
    ecc_point_init(&pub, c);
    mpz_init(x);
    mpz_init(y);
    mpz_init(t1);
    mpz_init(t2);
    mpz_import(x, 32, 1, 1, 0, 0, D);
    if (!ecc_scalar_set(&key, x)) {
        return -1;
    }
    mpz_import(x, 32, 1, 1, 0, 0, D2);
    if (!ecc_scalar_set(&key2, x)) {
        return -1;
    }
    mpz_import(x, 32, 1, 1, 0, 0, Q + 1);
    mpz_import(y, 32, 1, 1, 0, 0, Q + 33);
    return ecc_point_set(&pub, x, y) ? 0 : -1;
}
static void put(uint8_t out[32], mpz_t v)
{
    size_t n = 0;
    memset(out, 0, 32);
    if (mpz_sizeinbase(v, 2) <= 256) {
        uint8_t b[32];
        mpz_export(b, &n, 1, 1, 0, 0, v);
        memcpy(out + 32 - n, b, n);
    }
}
static int b_sign(uint8_t sig[64])
{
    struct dsa_signature s;
    dsa_signature_init(&s);
    ecdsa_sign(&key, NULL, nrnd, 32, H, &s);
    put(sig, s.r);
    put(sig + 32, s.s);
    dsa_signature_clear(&s);
    return 0;
}
static int b_verify(const uint8_t sig[64])
{
    struct dsa_signature s;
    dsa_signature_init(&s);
    mpz_import(s.r, 32, 1, 1, 0, 0, sig);
    mpz_import(s.s, 32, 1, 1, 0, 0, sig + 32);
    int ok = ecdsa_verify(&pub, 32, H, &s);
    dsa_signature_clear(&s);
    return ok ? 0 : -1;
}
static int b_ecdh(uint8_t out[32])
{
    struct ecc_point r;
    ecc_point_init(&r, nettle_get_secp_256r1());
    ecc_point_mul(&r, &key2, &pub);
    ecc_point_get(&r, t1, t2);
    put(out, t1);
    ecc_point_clear(&r);
    return 0;
}
static int nx(uint8_t out[32])
{
    curve25519_mul(out, XB, XA);
    return 0;
}
static int (*b_x25519)(uint8_t out[32]) = nx;

/* --------------------------------------------------------------------------------- wolfSSL */
#elif defined(B_WOLFSSL)
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/curve25519.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
static const char *NAME = "wolfssl-sp";
static WC_RNG rng;
static ecc_key key, vkey, key2, peer;
static curve25519_key xpriv, xpub;
static int b_init(void)
{
    if (wc_InitRng(&rng) != 0 || wc_ecc_init(&key) != 0 || wc_ecc_init(&vkey) != 0 ||
        wc_ecc_init(&key2) != 0 || wc_ecc_init(&peer) != 0) {
        return -1;
    }
    if (wc_ecc_import_unsigned(&key, Q + 1, Q + 33, D, ECC_SECP256R1) != 0 ||
        wc_ecc_import_unsigned(&vkey, Q + 1, Q + 33, NULL, ECC_SECP256R1) != 0 ||
        wc_ecc_import_private_key_ex(D2, 32, NULL, 0, &key2, ECC_SECP256R1) != 0 ||
        wc_ecc_import_unsigned(&peer, Q + 1, Q + 33, NULL, ECC_SECP256R1) != 0) {
        return -2;
    }
    wc_ecc_set_rng(&key2, &rng); /* ECC_TIMING_RESISTANT blinding needs it */
    wc_curve25519_init(&xpriv);
    wc_curve25519_init(&xpub);
    if (wc_curve25519_import_private_ex(XB, 32, &xpriv, EC25519_LITTLE_ENDIAN) != 0 ||
        wc_curve25519_import_public_ex(XA, 32, &xpub, EC25519_LITTLE_ENDIAN) != 0) {
        return -3;
    }
    return 0;
}
static int b_sign(uint8_t sig[64])
{
    mp_int r, s;
    mp_init_multi(&r, &s, NULL, NULL, NULL, NULL);
    int rv = wc_ecc_sign_hash_ex(H, 32, &rng, &key, &r, &s);
    if (rv == 0) {
        rv = mp_to_unsigned_bin_len(&r, sig, 32) || mp_to_unsigned_bin_len(&s, sig + 32, 32);
    }
    mp_clear(&r);
    mp_clear(&s);
    return rv;
}
static int b_verify(const uint8_t sig[64])
{
    mp_int r, s;
    int res = 0;
    mp_init_multi(&r, &s, NULL, NULL, NULL, NULL);
    mp_read_unsigned_bin(&r, sig, 32);
    mp_read_unsigned_bin(&s, sig + 32, 32);
    int rv = wc_ecc_verify_hash_ex(&r, &s, H, 32, &res, &vkey);
    mp_clear(&r);
    mp_clear(&s);
    return rv == 0 && res == 1 ? 0 : -1;
}
static int b_ecdh(uint8_t out[32])
{
    word32 n = 32;
    return wc_ecc_shared_secret(&key2, &peer, out, &n);
}
static int wx(uint8_t out[32])
{
    word32 n = 32;
    return wc_curve25519_shared_secret_ex(&xpriv, &xpub, out, &n, EC25519_LITTLE_ENDIAN);
}
static int (*b_x25519)(uint8_t out[32]) = wx;

/* --------------------------------------------------------------------------- OpenSSL EVP */
#elif defined(B_OPENSSL)
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/param_build.h>
static const char *NAME = "openssl";
static EVP_PKEY_CTX *csign, *cverify, *cecdh, *cx;
static EVP_PKEY *ec_key(const uint8_t d[32], const uint8_t *pub, size_t publen)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    BIGNUM *bn = d ? BN_bin2bn(d, 32, NULL) : NULL;
    OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, publen);
    if (bn) {
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, bn);
    }
    OSSL_PARAM *p = OSSL_PARAM_BLD_to_param(b);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *k = NULL;
    EVP_PKEY_fromdata_init(c);
    EVP_PKEY_fromdata(c, &k, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, p);
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(p);
    OSSL_PARAM_BLD_free(b);
    BN_free(bn);
    return k;
}
static int b_init(void)
{
    /* D2's public point, for a complete key pair (the derive uses the private half only). */
    EVP_PKEY *k = ec_key(D, Q, 65), *v = ec_key(NULL, Q, 65), *peer = v, *k2 = NULL;
    {
        EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
        EC_POINT *pt = EC_POINT_new(g);
        BIGNUM *bn = BN_bin2bn(D2, 32, NULL);
        uint8_t pub2[65];
        EC_POINT_mul(g, pt, bn, NULL, NULL, NULL);
        EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, pub2, 65, NULL);
        k2 = ec_key(D2, pub2, 65);
        BN_free(bn);
        EC_POINT_free(pt);
        EC_GROUP_free(g);
    }
    if (!k || !v || !k2) {
        return -1;
    }
    csign = EVP_PKEY_CTX_new(k, NULL);
    cverify = EVP_PKEY_CTX_new(v, NULL);
    cecdh = EVP_PKEY_CTX_new(k2, NULL);
    if (EVP_PKEY_sign_init(csign) <= 0 || EVP_PKEY_verify_init(cverify) <= 0 ||
        EVP_PKEY_derive_init(cecdh) <= 0 || EVP_PKEY_derive_set_peer(cecdh, peer) <= 0) {
        return -2;
    }
    EVP_PKEY *xk = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, XB, 32);
    EVP_PKEY *xp = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, XA, 32);
    cx = EVP_PKEY_CTX_new(xk, NULL);
    if (EVP_PKEY_derive_init(cx) <= 0 || EVP_PKEY_derive_set_peer(cx, xp) <= 0) {
        return -3;
    }
    return 0;
}
/* DER <-> raw r || s */
static int b_sign(uint8_t sig[64])
{
    uint8_t der[80];
    size_t n = sizeof der;
    if (EVP_PKEY_sign(csign, der, &n, H, 32) <= 0) {
        return -1;
    }
    const uint8_t *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)n);
    int rv = s && BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) == 32 &&
                     BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) == 32
                 ? 0
                 : -1;
    ECDSA_SIG_free(s);
    return rv;
}
static int b_verify(const uint8_t sig[64])
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    ECDSA_SIG_set0(s, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    uint8_t der[80], *p = der;
    int n = i2d_ECDSA_SIG(s, &p);
    ECDSA_SIG_free(s);
    return EVP_PKEY_verify(cverify, der, (size_t)n, H, 32) == 1 ? 0 : -1;
}
static int b_ecdh(uint8_t out[32])
{
    size_t n = 32;
    return EVP_PKEY_derive(cecdh, out, &n) == 1 ? 0 : -1;
}
static int ox(uint8_t out[32])
{
    size_t n = 32;
    return EVP_PKEY_derive(cx, out, &n) == 1 ? 0 : -1;
}
static int (*b_x25519)(uint8_t out[32]) = ox;

/* ------------------------------------------------------------------- libsodium (X25519) */
#elif defined(B_SODIUM)
#include <sodium.h>
static const char *NAME = "libsodium";
static int b_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}
static int sx(uint8_t out[32])
{
    return crypto_scalarmult(out, XB, XA);
}
static int (*b_x25519)(uint8_t out[32]) = sx;
#else
/* One of B_MBEDTLS, B_MBEDTLS_LEGACY, B_MBEDTLS_P256M, B_P256M, B_NETTLE, B_WOLFSSL, B_OPENSSL,
 * B_SODIUM (bench/p256.sh). */
#error "define the backend: -DB_NAME"
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint8_t scratch[64];
#ifndef NO_P256
static int op_sign(void)
{
    return b_sign(scratch);
}
static int op_verify(void)
{
    return b_verify(SIG);
}
static int op_ecdh(void)
{
    return b_ecdh(scratch);
}
#endif
static int op_x25519(void)
{
    return b_x25519(scratch);
}

/* Runs f for secs seconds (checking the clock every 16 calls); ops per second. */
static double rate(int (*f)(void), double secs)
{
    long n = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < 16; i++, n++) {
            if (f() != 0) {
                fprintf(stderr, "%s: operation failed during timing\n", NAME);
                exit(1);
            }
        }
        t = now() - t0;
    } while (t < secs);
    return (double)n / t;
}

static void hex(char *out, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", b[i]);
    }
}

int main(void)
{
    const char *e = getenv("P256_SECS");
    double secs = e ? atof(e) : 2.0;
    int rv = b_init();
    if (rv != 0) {
        fprintf(stderr, "%s: init failed (%d)\n", NAME, rv);
        return 1;
    }
    char hx[65];
#ifndef NO_P256
    uint8_t sig[64], bad[64], ss[32];
    memcpy(bad, SIG, 64);
    bad[63] ^= 1;
    if (b_verify(SIG) != 0 || b_verify(bad) == 0) {
        fprintf(stderr, "%s: RFC 6979 A.2.5 vector: verify check failed\n", NAME);
        return 1;
    }
    if (b_sign(sig) != 0 || b_verify(sig) != 0) {
        fprintf(stderr, "%s: own signature does not verify\n", NAME);
        return 1;
    }
    if (b_ecdh(ss) != 0) {
        fprintf(stderr, "%s: ecdh failed\n", NAME);
        return 1;
    }
    hex(hx, ss, 8);
    printf("%s sign %.0f ok\n", NAME, rate(op_sign, secs));
    printf("%s verify %.0f ok\n", NAME, rate(op_verify, secs));
    printf("%s ecdh %.0f %s\n", NAME, rate(op_ecdh, secs), hx);
#endif
    if (b_x25519) {
        uint8_t xk[32];
        if (b_x25519(xk) != 0 || memcmp(xk, XK, 32) != 0) {
            fprintf(stderr, "%s: X25519 differs from RFC 7748 6.1\n", NAME);
            return 1;
        }
        hex(hx, xk, 8);
        printf("%s x25519 %.0f %s\n", NAME, rate(op_x25519, secs), hx);
    }
    return 0;
}
