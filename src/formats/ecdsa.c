/*
 * ecdsa: deterministic ECDSA with low-S and recovery ids: libsecp256k1 for secp256k1, mbedtls 3.6
 * for P-256 (see ecdsa.h).
 *
 * The recovery id comes from R itself during signing (see ns_ecdsa_sign). Recovery (SEC 1 v2,
 * 4.1.6) is for tests and clients: R = (r, y) with y's parity = recid (both curves have
 * p = 3 mod 4, so y = (x^3 + ax + b)^((p+1)/4)), Q = r^-1 (sR - eG). R.x >= n (ids 2 and 3) has
 * probability about 2^-128 on these curves and is reported as an error, never mishandled.
 */
#include "ecdsa.h"

/*
 * Private-field access (mbedtls 3.6 marks the group's G, N, P, A, B and a point's X, Y, Z
 * private, with no accessors): signing needs R's coordinates (its y parity is the recovery id,
 * which mbedtls_ecdsa_sign_det_ext does not return), and recovery builds R from r and needs the
 * curve constants. Only this file does it, and only reads these fields or sets a point it owns.
 */
#define MBEDTLS_ALLOW_PRIVATE_ACCESS

#include <mbedtls/asn1write.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/hmac_drbg.h>
#include <mbedtls/md.h>
#include <pthread.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <string.h>

#include "rng.h"
#include "secret.h"

/* An mbedtls call: a non-zero result is kept in rv and jumps to the function's cleanup (out:). */
#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((rv = (x)) != 0) {                                                                     \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* One group per curve per thread: mbedtls caches the generator's comb table in the group.
 * A thread-specific key's destructor frees them when the thread exits. */
static __thread mbedtls_ecp_group tl_grp[2];
static __thread int tl_loaded[2];
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
static int tl_key_ok;

static void groups_free(void *unused)
{
    (void)unused;
    for (int i = 0; i < 2; i++) {
        if (tl_loaded[i]) {
            mbedtls_ecp_group_free(&tl_grp[i]);
            tl_loaded[i] = 0;
        }
    }
}

static void key_init(void)
{
    tl_key_ok = pthread_key_create(&tl_key, groups_free) == 0;
}

static ns_err group(ns_ecdsa_curve curve, mbedtls_ecp_group **g)
{
    int i = curve == NS_ECDSA_P256 ? 0 : 1;
    if (!tl_loaded[i]) {
        pthread_once(&tl_once, key_init);
        if (tl_key_ok) {
            (void)pthread_setspecific(tl_key, &tl_loaded[0]); /* non-NULL: run the destructor */
        }
        mbedtls_ecp_group_init(&tl_grp[i]);
        int rv =
            mbedtls_ecp_group_load(&tl_grp[i], curve == NS_ECDSA_P256 ? MBEDTLS_ECP_DP_SECP256R1
                                                                      : MBEDTLS_ECP_DP_SECP256K1);
        ENSURE(rv == 0, NS_E_CRYPTO, "ecdsa: cannot load curve (mbedtls -0x%04x)", -rv);
        tl_loaded[i] = 1;
    }
    *g = &tl_grp[i];
    return NS_OK;
}

/*
 * libsecp256k1: one context for the process, created and randomised once (thread-safe to share
 * afterwards: only secp256k1_context_randomize writes to it, and it runs here only).
 */
static secp256k1_context *k1_ctx;
static pthread_once_t k1_once = PTHREAD_ONCE_INIT;

static void k1_init(void)
{
    uint8_t seed[32];
    secp256k1_context *c = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (c != NULL && ns_rng_bytes(seed, sizeof seed) == NS_OK &&
        secp256k1_context_randomize(c, seed)) {
        k1_ctx = c;
    } else if (c != NULL) {
        secp256k1_context_destroy(c);
    }
    ns_wipe(seed, sizeof seed);
}

ns_err ns_ecdsa_k1_context(const struct secp256k1_context_struct **out)
{
    pthread_once(&k1_once, k1_init);
    ENSURE(k1_ctx != NULL, NS_E_CRYPTO,
           "cannot create the randomised libsecp256k1 context (getrandom failed?)");
    *out = k1_ctx;
    return NS_OK;
}

static ns_err k1(const secp256k1_context **c)
{
    pthread_once(&k1_once, k1_init);
    ENSURE(k1_ctx != NULL, NS_E_CRYPTO,
           "ecdsa: cannot create the randomised libsecp256k1 context (getrandom failed?)");
    *c = k1_ctx;
    return NS_OK;
}

static ns_err k1_public(const uint8_t d[32], uint8_t pub[65])
{
    const secp256k1_context *c = NULL;
    GUARD(k1(&c));
    secp256k1_pubkey pk;
    size_t n = 65;
    ENSURE(secp256k1_ec_seckey_verify(c, d), NS_E_PARSE,
           "private key is not a valid scalar (must be 0 < d < n)");
    ENSURE(secp256k1_ec_pubkey_create(c, &pk, d) &&
               secp256k1_ec_pubkey_serialize(c, pub, &n, &pk, SECP256K1_EC_UNCOMPRESSED) &&
               n == 65,
           NS_E_CRYPTO, "cannot derive the public key");
    return NS_OK;
}

/* libsecp256k1's default nonce is RFC 6979 (HMAC-SHA-256) and its s is always low. */
static ns_err k1_sign(const uint8_t d[32], const uint8_t digest[32], uint8_t sig[64],
                      uint8_t der[72], size_t *der_len, int *recid)
{
    const secp256k1_context *c = NULL;
    GUARD(k1(&c));
    secp256k1_ecdsa_recoverable_signature rs;
    secp256k1_ecdsa_signature plain;
    int id = -1;
    size_t n = 72;
    ENSURE(secp256k1_ecdsa_sign_recoverable(c, &rs, digest, d, NULL, NULL), NS_E_CRYPTO,
           "ecdsa: secp256k1 signing failed (invalid private key)");
    ENSURE(secp256k1_ecdsa_recoverable_signature_serialize_compact(c, sig, &id, &rs) &&
               secp256k1_ecdsa_recoverable_signature_convert(c, &plain, &rs) &&
               secp256k1_ecdsa_signature_serialize_der(c, der, &n, &plain),
           NS_E_CRYPTO, "ecdsa: cannot encode the secp256k1 signature");
    ENSURE(id == 0 || id == 1, NS_E_CRYPTO,
           "ecdsa: R.x >= n (probability ~2^-128): no 0/1 recovery id");
    *der_len = n;
    *recid = id;
    return NS_OK;
}

/* Accepts high S too, as the mbedtls path did: libsecp256k1's verify wants it normalised. */
static ns_err k1_verify(const uint8_t pub[65], const uint8_t digest[32], const uint8_t sig[64])
{
    const secp256k1_context *c = NULL;
    GUARD(k1(&c));
    secp256k1_pubkey pk;
    secp256k1_ecdsa_signature s;
    int ok = secp256k1_ec_pubkey_parse(c, &pk, pub, 65) &&
             secp256k1_ecdsa_signature_parse_compact(c, &s, sig);
    if (ok) {
        (void)secp256k1_ecdsa_signature_normalize(c, &s, &s);
        ok = secp256k1_ecdsa_verify(c, &s, digest, &pk);
    }
    ENSURE(ok, NS_E_AUTH, "ecdsa: signature does not verify");
    return NS_OK;
}

static ns_err k1_recover(const uint8_t digest[32], const uint8_t sig[64], int recid,
                         uint8_t pub[65])
{
    const secp256k1_context *c = NULL;
    GUARD(k1(&c));
    secp256k1_ecdsa_recoverable_signature rs;
    secp256k1_pubkey pk;
    size_t n = 65;
    ENSURE(secp256k1_ecdsa_recoverable_signature_parse_compact(c, &rs, sig, recid) &&
               secp256k1_ecdsa_recover(c, &pk, &rs, digest) &&
               secp256k1_ec_pubkey_serialize(c, pub, &n, &pk, SECP256K1_EC_UNCOMPRESSED),
           NS_E_CRYPTO, "ecdsa: cannot recover a public key");
    return NS_OK;
}

ns_err ns_ecdsa_public(ns_ecdsa_curve curve, const uint8_t dbytes[32], uint8_t pub[65])
{
    if (curve == NS_ECDSA_SECP256K1) {
        return k1_public(dbytes, pub);
    }
    mbedtls_ecp_group *g;
    GUARD(group(curve, &g));
    mbedtls_mpi d;
    mbedtls_ecp_point q;
    mbedtls_mpi_init(&d);
    mbedtls_ecp_point_init(&q);
    size_t olen = 0;
    ns_err rc = NS_OK;
    if (mbedtls_mpi_read_binary(&d, dbytes, 32) != 0 || mbedtls_ecp_check_privkey(g, &d) != 0) {
        rc = ns_fail(NS_E_PARSE, "private key is not a valid scalar (must be 0 < d < n)");
    } else if (mbedtls_ecp_mul(g, &q, &d, &g->G, ns_rng_mbedtls, NULL) != 0 ||
               mbedtls_ecp_point_write_binary(g, &q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, pub, 65) !=
                   0 ||
               olen != 65) {
        rc = ns_fail(NS_E_CRYPTO, "cannot derive the public key");
    }
    mbedtls_mpi_free(&d);
    mbedtls_ecp_point_free(&q);
    return rc;
}

/* e = digest as an integer mod n (for 256-bit n no bit truncation applies). */
static int digest_mpi(const mbedtls_ecp_group *g, const uint8_t digest[32], mbedtls_mpi *e)
{
    int rv = mbedtls_mpi_read_binary(e, digest, 32);
    if (rv == 0 && mbedtls_mpi_cmp_mpi(e, &g->N) >= 0) {
        rv = mbedtls_mpi_sub_mpi(e, e, &g->N);
    }
    return rv;
}

static int recover_point(mbedtls_ecp_group *g, const uint8_t digest[32], const mbedtls_mpi *r,
                         const mbedtls_mpi *s, int recid, mbedtls_ecp_point *q)
{
    mbedtls_mpi y, t, e, rinv, u1, u2, x;
    mbedtls_ecp_point rp;
    int rv;
    mbedtls_mpi_init(&y), mbedtls_mpi_init(&t), mbedtls_mpi_init(&e), mbedtls_mpi_init(&rinv);
    mbedtls_mpi_init(&x);
    mbedtls_mpi_init(&u1), mbedtls_mpi_init(&u2);
    mbedtls_ecp_point_init(&rp);
    /* y^2 = x^3 + ax + b (mbedtls leaves A empty for a = -3 curves) */
    TRY(mbedtls_mpi_mul_mpi(&t, r, r));
    TRY(mbedtls_mpi_mod_mpi(&t, &t, &g->P));
    if (g->A.p == NULL) {
        TRY(mbedtls_mpi_sub_int(&t, &t, 3));
    } else {
        TRY(mbedtls_mpi_add_mpi(&t, &t, &g->A));
    }
    TRY(mbedtls_mpi_mul_mpi(&t, &t, r));
    TRY(mbedtls_mpi_add_mpi(&t, &t, &g->B));
    TRY(mbedtls_mpi_mod_mpi(&t, &t, &g->P));
    /* y = t^((p+1)/4); the exponent has its own mpi: mbedtls 3.6's exp_mod must not alias it */
    TRY(mbedtls_mpi_add_int(&x, &g->P, 1));
    TRY(mbedtls_mpi_shift_r(&x, 2));
    TRY(mbedtls_mpi_exp_mod(&y, &t, &x, &g->P, NULL));
    if ((int)mbedtls_mpi_get_bit(&y, 0) != recid) {
        TRY(mbedtls_mpi_sub_mpi(&y, &g->P, &y));
    }
    TRY(mbedtls_mpi_copy(&rp.X, r));
    TRY(mbedtls_mpi_copy(&rp.Y, &y));
    TRY(mbedtls_mpi_lset(&rp.Z, 1));
    TRY(mbedtls_ecp_check_pubkey(g, &rp)); /* r was not an x coordinate: not this id */
    /* Q = u1 G + u2 R with u1 = -e/r, u2 = s/r (mod n) */
    TRY(digest_mpi(g, digest, &e));
    TRY(mbedtls_mpi_inv_mod(&rinv, r, &g->N));
    TRY(mbedtls_mpi_mul_mpi(&u1, &e, &rinv));
    TRY(mbedtls_mpi_mod_mpi(&u1, &u1, &g->N));
    if (mbedtls_mpi_cmp_int(&u1, 0) != 0) {
        TRY(mbedtls_mpi_sub_mpi(&u1, &g->N, &u1));
    }
    TRY(mbedtls_mpi_mul_mpi(&u2, s, &rinv));
    TRY(mbedtls_mpi_mod_mpi(&u2, &u2, &g->N));
    TRY(mbedtls_ecp_muladd(g, q, &u1, &g->G, &u2, &rp));
out:
    mbedtls_mpi_free(&y), mbedtls_mpi_free(&t), mbedtls_mpi_free(&e), mbedtls_mpi_free(&rinv);
    mbedtls_mpi_free(&u1), mbedtls_mpi_free(&u2), mbedtls_mpi_free(&x);
    mbedtls_ecp_point_free(&rp);
    return rv;
}

static ns_err write_der(const mbedtls_mpi *r, const mbedtls_mpi *s, uint8_t der[72], size_t *len)
{
    uint8_t buf[80];
    uint8_t *p = buf + sizeof buf;
    int n = 0, k;
    if ((k = mbedtls_asn1_write_mpi(&p, buf, s)) < 0) {
        goto fail;
    }
    n += k;
    if ((k = mbedtls_asn1_write_mpi(&p, buf, r)) < 0) {
        goto fail;
    }
    n += k;
    if ((k = mbedtls_asn1_write_len(&p, buf, (size_t)n)) < 0) {
        goto fail;
    }
    n += k;
    if ((k = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) <
        0) {
        goto fail;
    }
    n += k;
    if (n > 72) {
        goto fail;
    }
    memcpy(der, p, (size_t)n);
    *len = (size_t)n;
    return NS_OK;
fail:
    BAIL(NS_E_CRYPTO, "ecdsa: cannot encode the DER signature");
}

/*
 * RFC 6979 signing written out (rather than mbedtls_ecdsa_sign_det_ext) so that R is in hand:
 * its y parity is the recovery id, for free. The nonce derivation is mbedtls's own: HMAC_DRBG
 * (SHA-256) seeded with int2octets(d) || bits2octets(h), k drawn by mbedtls_ecp_gen_privkey,
 * so signatures are bit-identical to mbedtls_ecdsa_sign_det_ext (the RFC 6979 vectors in the
 * unit tests check this). As in mbedtls, the inversion is blinded: s = t(e + rd) / (kt).
 */
ns_err ns_ecdsa_sign(ns_ecdsa_curve curve, const uint8_t dbytes[32], const uint8_t digest[32],
                     uint8_t sig[64], uint8_t der[72], size_t *der_len, int *recid)
{
    if (curve == NS_ECDSA_SECP256K1) {
        return k1_sign(dbytes, digest, sig, der, der_len, recid);
    }
    mbedtls_ecp_group *g;
    GUARD(group(curve, &g));
    mbedtls_mpi d, e, k, t, r, s, half;
    mbedtls_ecp_point rp;
    mbedtls_hmac_drbg_context drbg;
    uint8_t seed[64];
    int rv, id = 0;
    mbedtls_mpi_init(&d), mbedtls_mpi_init(&e), mbedtls_mpi_init(&k), mbedtls_mpi_init(&t);
    mbedtls_mpi_init(&r), mbedtls_mpi_init(&s), mbedtls_mpi_init(&half);
    mbedtls_ecp_point_init(&rp);
    mbedtls_hmac_drbg_init(&drbg);
    TRY(mbedtls_mpi_read_binary(&d, dbytes, 32));
    TRY(digest_mpi(g, digest, &e));
    memcpy(seed, dbytes, 32);
    TRY(mbedtls_mpi_write_binary(&e, seed + 32, 32));
    TRY(mbedtls_hmac_drbg_seed_buf(&drbg, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), seed, 64));
    for (int tries = 0;; tries++) {
        if (tries > 10) {
            rv = MBEDTLS_ERR_ECP_RANDOM_FAILED;
            goto out;
        }
        TRY(mbedtls_ecp_gen_privkey(g, &k, mbedtls_hmac_drbg_random, &drbg));
        TRY(mbedtls_ecp_mul(g, &rp, &k, &g->G, ns_rng_mbedtls, NULL));
        TRY(mbedtls_mpi_mod_mpi(&r, &rp.X, &g->N));
        if (mbedtls_mpi_cmp_int(&r, 0) == 0) {
            continue;
        }
        id = (int)mbedtls_mpi_get_bit(&rp.Y, 0) | (mbedtls_mpi_cmp_mpi(&rp.X, &g->N) >= 0 ? 2 : 0);
        TRY(mbedtls_ecp_gen_privkey(g, &t, ns_rng_mbedtls, NULL));
        TRY(mbedtls_mpi_mul_mpi(&s, &r, &d));
        TRY(mbedtls_mpi_add_mpi(&s, &e, &s));
        TRY(mbedtls_mpi_mul_mpi(&s, &s, &t));
        TRY(mbedtls_mpi_mul_mpi(&k, &k, &t));
        TRY(mbedtls_mpi_mod_mpi(&k, &k, &g->N));
        TRY(mbedtls_mpi_inv_mod(&k, &k, &g->N));
        TRY(mbedtls_mpi_mul_mpi(&s, &s, &k));
        TRY(mbedtls_mpi_mod_mpi(&s, &s, &g->N));
        if (mbedtls_mpi_cmp_int(&s, 0) != 0) {
            break;
        }
    }
    /* low-S: s and n - s both verify; negating s mirrors R, flipping the y parity */
    TRY(mbedtls_mpi_copy(&half, &g->N));
    TRY(mbedtls_mpi_shift_r(&half, 1));
    if (mbedtls_mpi_cmp_mpi(&s, &half) > 0) {
        TRY(mbedtls_mpi_sub_mpi(&s, &g->N, &s));
        id ^= 1;
    }
    TRY(mbedtls_mpi_write_binary(&r, sig, 32));
    TRY(mbedtls_mpi_write_binary(&s, sig + 32, 32));
out:
    ns_wipe(seed, sizeof seed);
    mbedtls_hmac_drbg_free(&drbg);
    mbedtls_mpi_free(&d), mbedtls_mpi_free(&e), mbedtls_mpi_free(&k), mbedtls_mpi_free(&t);
    mbedtls_ecp_point_free(&rp);
    ns_err rc = NS_OK;
    if (rv != 0) {
        rc = ns_fail(NS_E_CRYPTO, "ecdsa: signing failed (mbedtls -0x%04x)", -rv);
    } else if (id > 1) {
        rc = ns_fail(NS_E_CRYPTO, "ecdsa: R.x >= n (probability ~2^-128): no 0/1 recovery id");
    } else {
        *recid = id;
        rc = write_der(&r, &s, der, der_len);
    }
    mbedtls_mpi_free(&r), mbedtls_mpi_free(&s), mbedtls_mpi_free(&half);
    return rc;
}

ns_err ns_ecdsa_verify(ns_ecdsa_curve curve, const uint8_t pub[65], const uint8_t digest[32],
                       const uint8_t sig[64])
{
    if (curve == NS_ECDSA_SECP256K1) {
        return k1_verify(pub, digest, sig);
    }
    mbedtls_ecp_group *g;
    GUARD(group(curve, &g));
    mbedtls_mpi r, s;
    mbedtls_ecp_point q;
    mbedtls_mpi_init(&r), mbedtls_mpi_init(&s);
    mbedtls_ecp_point_init(&q);
    int rv = mbedtls_ecp_point_read_binary(g, &q, pub, 65);
    if (rv == 0) {
        rv = mbedtls_mpi_read_binary(&r, sig, 32);
    }
    if (rv == 0) {
        rv = mbedtls_mpi_read_binary(&s, sig + 32, 32);
    }
    if (rv == 0) {
        rv = mbedtls_ecdsa_verify(g, digest, 32, &q, &r, &s);
    }
    mbedtls_mpi_free(&r), mbedtls_mpi_free(&s);
    mbedtls_ecp_point_free(&q);
    ENSURE(rv == 0, NS_E_AUTH, "ecdsa: signature does not verify");
    return NS_OK;
}

ns_err ns_ecdsa_recover(ns_ecdsa_curve curve, const uint8_t digest[32], const uint8_t sig[64],
                        int recid, uint8_t pub[65])
{
    ENSURE(recid == 0 || recid == 1, NS_E_USAGE, "ecdsa: recovery id must be 0 or 1");
    if (curve == NS_ECDSA_SECP256K1) {
        return k1_recover(digest, sig, recid, pub);
    }
    mbedtls_ecp_group *g;
    GUARD(group(curve, &g));
    mbedtls_mpi r, s;
    mbedtls_ecp_point q;
    mbedtls_mpi_init(&r), mbedtls_mpi_init(&s);
    mbedtls_ecp_point_init(&q);
    size_t olen = 0;
    int rv = mbedtls_mpi_read_binary(&r, sig, 32);
    if (rv == 0) {
        rv = mbedtls_mpi_read_binary(&s, sig + 32, 32);
    }
    if (rv == 0 && (mbedtls_mpi_cmp_int(&r, 0) <= 0 || mbedtls_mpi_cmp_mpi(&r, &g->N) >= 0 ||
                    mbedtls_mpi_cmp_int(&s, 0) <= 0 || mbedtls_mpi_cmp_mpi(&s, &g->N) >= 0)) {
        rv = -1;
    }
    if (rv == 0) {
        rv = recover_point(g, digest, &r, &s, recid, &q);
    }
    if (rv == 0) {
        rv = mbedtls_ecp_point_write_binary(g, &q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, pub, 65);
    }
    mbedtls_mpi_free(&r), mbedtls_mpi_free(&s);
    mbedtls_ecp_point_free(&q);
    ENSURE(rv == 0 && olen == 65, NS_E_CRYPTO, "ecdsa: cannot recover a public key");
    return NS_OK;
}
