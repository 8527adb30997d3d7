/*
 * frost: FROST threshold Schnorr signatures, RFC 9591 (see frost.h for the contract), for two
 * ciphersuites behind one table of group and scalar operations (suite_ops):
 *
 * FROST(Ed25519, SHA-512), section 6.1, on libsodium only: crypto_core_ed25519_scalar_* (mod L),
 * crypto_scalarmult_ed25519_base_noclamp / _noclamp (constant time; they refuse an identity
 * result), crypto_core_ed25519_add, crypto_core_ed25519_is_valid_point. ctx =
 * "FROST-ED25519-SHA512-v1"; H1 = SHA-512(ctx || "rho" || m) mod L, H2 = SHA-512(m) mod L (RFC
 * 8032's challenge), H3 = ... "nonce", H4 = SHA-512(ctx || "msg" || m), H5 = ... "com".
 * Scalars little-endian.
 *
 * FROST(secp256k1, SHA-256), section 6.5, on libsecp256k1's public API only. Secret scalar
 * arithmetic uses secp256k1_ec_seckey_tweak_add / _tweak_mul / _negate, which run in constant
 * time in both operands; their one irregularity (a zero secret-key operand or result makes them
 * return 0 and zero the output) is absorbed without a branch: a product with a zero operand is
 * zero, which is what the zeroed output holds, and a sum with a zero left operand is selected
 * with a mask. Points: secp256k1_ec_pubkey_create (constant time) for secret scalars,
 * _tweak_mul and _combine for public ones. The inverse (Lagrange coefficients: public values
 * only) is an exponentiation by n - 2. Hashes: H1, H2, H3 are hash_to_field with
 * expand_message_xmd(SHA-256) (RFC 9380 section 5.3.1) into 48 bytes reduced mod n, with DST =
 * ctx || tag, ctx = "FROST-secp256k1-SHA256-v1" (tags "rho", "chal", "nonce"); the reduction
 * of the 384-bit value is done with the same constant-time operations (x = a 2^256 + b 2^128 +
 * c, each part below n). H4, H5 = SHA-256(ctx || tag || m). Scalars big-endian, elements
 * 33-byte compressed SEC1.
 *
 * Invariants: every element that enters from outside passes the suite's element check
 * (canonical, on the curve, in the prime-order group, never the identity; for Ed25519 no
 * small-order point either); every outside scalar is canonical. Secret scalars (shares, nonces,
 * polynomial coefficients) live in caller-provided secret memory or in locals wiped before
 * return.
 */
#include "frost.h"

#include <cJSON.h>
#include <pthread.h>
#include <secp256k1.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ecdsa.h"
#include "json.h"
#include "rng.h"
#include "secret.h"

#define SL NS_FROST_SCALAR_LEN
#define EM NS_FROST_ELEMENT_MAX
#define DIGEST_MAX 64

/* One piece of a hash input. */
typedef struct {
    const uint8_t *p;
    size_t n;
} part;

enum { H1_RHO, H2_CHAL, H3_NONCE, H4_MSG, H5_COM };

typedef struct {
    ns_frost_suite suite;
    size_t el; /* element bytes */
    size_t hl; /* H4 / H5 digest bytes */
    const char *ctx;
    void (*id_scalar)(uint8_t out[SL], unsigned v);
    int (*scalar_ok)(const uint8_t s[SL]); /* canonical: below the group order (0 allowed) */
    int (*element_ok)(const uint8_t *p);
    /* points: 0 on success, -1 for a zero scalar, an invalid point or an identity result */
    int (*base)(uint8_t *out, const uint8_t s[SL]); /* constant time in s */
    int (*mult)(uint8_t *out, const uint8_t s[SL], const uint8_t *p);
    int (*sum)(uint8_t *out, const uint8_t *const *pts, size_t n);
    /* scalars mod the order, constant time; inv for public values only (0 has none: -1) */
    void (*add)(uint8_t out[SL], const uint8_t a[SL], const uint8_t b[SL]);
    void (*sub)(uint8_t out[SL], const uint8_t a[SL], const uint8_t b[SL]);
    void (*mul)(uint8_t out[SL], const uint8_t a[SL], const uint8_t b[SL]);
    int (*inv)(uint8_t out[SL], const uint8_t a[SL]);
    void (*hash_scalar)(uint8_t out[SL], int which, const part *parts, size_t n);
    void (*hash_digest)(uint8_t *out, int which, const part *parts, size_t n);
    void (*random_scalar_from)(uint8_t out[SL], const uint8_t rnd[64]); /* uniform scalar */
} suite_ops;

static const char *const TAGS[] = {"rho", "chal", "nonce", "msg", "com"};

/* ---------------------------------------------------------------- FROST(Ed25519, SHA-512) */

static const uint8_t ED_IDENTITY[32] = {1};

static void ed_id_scalar(uint8_t out[SL], unsigned v)
{
    memset(out, 0, SL);
    out[0] = (uint8_t)(v & 0xff);
    out[1] = (uint8_t)(v >> 8);
}

static int ed_scalar_ok(const uint8_t s[SL])
{
    uint8_t wide[64] = {0}, red[SL];
    memcpy(wide, s, SL);
    crypto_core_ed25519_scalar_reduce(red, wide);
    int ok = ns_ct_equal(red, s, SL);
    ns_wipe(wide, sizeof wide);
    ns_wipe(red, sizeof red);
    return ok;
}

static int ed_element_ok(const uint8_t *p)
{
    return crypto_core_ed25519_is_valid_point(p) == 1;
}

static int ed_base(uint8_t *out, const uint8_t s[SL])
{
    return crypto_scalarmult_ed25519_base_noclamp(out, s) == 0 ? 0 : -1;
}

static int ed_mult(uint8_t *out, const uint8_t s[SL], const uint8_t *p)
{
    return crypto_scalarmult_ed25519_noclamp(out, s, p) == 0 ? 0 : -1;
}

static int ed_sum(uint8_t *out, const uint8_t *const *pts, size_t n)
{
    uint8_t acc[32];
    memcpy(acc, ED_IDENTITY, 32);
    /* From pts[0] + pts[1] (both decoded and checked by the add), not identity + pts[0]: each
     * add decodes both operands (two square roots), so this saves one add per sum. */
    size_t i = 0;
    if (n >= 2) {
        if (crypto_core_ed25519_add(acc, pts[0], pts[1]) != 0) {
            return -1;
        }
        i = 2;
    }
    for (; i < n; i++) {
        if (crypto_core_ed25519_add(acc, acc, pts[i]) != 0) {
            return -1;
        }
    }
    if (memcmp(acc, ED_IDENTITY, 32) == 0) {
        return -1;
    }
    memcpy(out, acc, 32);
    return 0;
}

static void ed_add(uint8_t out[SL], const uint8_t a[SL], const uint8_t b[SL])
{
    crypto_core_ed25519_scalar_add(out, a, b);
}

static void ed_sub(uint8_t out[SL], const uint8_t a[SL], const uint8_t b[SL])
{
    crypto_core_ed25519_scalar_sub(out, a, b);
}

static void ed_mul(uint8_t out[SL], const uint8_t a[SL], const uint8_t b[SL])
{
    crypto_core_ed25519_scalar_mul(out, a, b);
}

static int ed_inv(uint8_t out[SL], const uint8_t a[SL])
{
    return crypto_core_ed25519_scalar_invert(out, a) == 0 ? 0 : -1;
}

static void ed_hash(uint8_t out[64], int which, const part *parts, size_t n)
{
    static const char ctx[] = "FROST-ED25519-SHA512-v1";
    crypto_hash_sha512_state st;
    crypto_hash_sha512_init(&st);
    if (which != H2_CHAL) { /* H2 is RFC 8032's plain SHA-512 */
        crypto_hash_sha512_update(&st, (const uint8_t *)ctx, sizeof ctx - 1);
        crypto_hash_sha512_update(&st, (const uint8_t *)TAGS[which], strlen(TAGS[which]));
    }
    for (size_t i = 0; i < n; i++) {
        crypto_hash_sha512_update(&st, parts[i].p, parts[i].n);
    }
    crypto_hash_sha512_final(&st, out);
    ns_wipe(&st, sizeof st);
}

static void ed_hash_scalar(uint8_t out[SL], int which, const part *parts, size_t n)
{
    uint8_t h[64];
    ed_hash(h, which, parts, n);
    crypto_core_ed25519_scalar_reduce(out, h);
    ns_wipe(h, sizeof h);
}

static void ed_random_scalar(uint8_t out[SL], const uint8_t rnd[64])
{
    uint8_t t[64];
    memcpy(t, rnd, 64);
    crypto_core_ed25519_scalar_reduce(out, t);
    ns_wipe(t, sizeof t);
}

static const suite_ops ED25519 = {
    .suite = NS_FROST_ED25519_SHA512,
    .el = 32,
    .hl = 64,
    .ctx = "FROST-ED25519-SHA512-v1",
    .id_scalar = ed_id_scalar,
    .scalar_ok = ed_scalar_ok,
    .element_ok = ed_element_ok,
    .base = ed_base,
    .mult = ed_mult,
    .sum = ed_sum,
    .add = ed_add,
    .sub = ed_sub,
    .mul = ed_mul,
    .inv = ed_inv,
    .hash_scalar = ed_hash_scalar,
    .hash_digest = ed_hash,
    .random_scalar_from = ed_random_scalar,
};

/* ---------------------------------------------------------------- FROST(secp256k1, SHA-256) */

static const secp256k1_context *k1c; /* ecdsa.c's randomised context, set once (k1_once) */

/* n - 2, the exponent of the inverse */
static const uint8_t K1_N_MINUS_2[SL] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x3f};
/* 2^256 mod n and 2^128 */
static const uint8_t K1_2_256[SL] = {
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    1,
    0x45, 0x51, 0x23, 0x19, 0x50, 0xb7, 0x5f, 0xc4, 0x40, 0x2d, 0xa1, 0x73, 0x2f, 0xc9, 0xbe, 0xbf};
static const uint8_t K1_2_128[SL] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                                     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static void k1_id_scalar(uint8_t out[SL], unsigned v)
{
    memset(out, 0, SL);
    out[31] = (uint8_t)(v & 0xff);
    out[30] = (uint8_t)(v >> 8);
}

static int k1_scalar_ok(const uint8_t s[SL])
{
    return sodium_is_zero(s, SL) || secp256k1_ec_seckey_verify(k1c, s) == 1;
}

static int k1_parse(secp256k1_pubkey *pk, const uint8_t *p)
{
    return (p[0] == 2 || p[0] == 3) && secp256k1_ec_pubkey_parse(k1c, pk, p, 33) == 1;
}

static void k1_ser(uint8_t *out, const secp256k1_pubkey *pk)
{
    size_t len = 33;
    if (secp256k1_ec_pubkey_serialize(k1c, out, &len, pk, SECP256K1_EC_COMPRESSED) != 1) {
        memset(out, 0, 33); /* cannot happen for a parsed or computed key */
    }
}

static int k1_element_ok(const uint8_t *p)
{
    secp256k1_pubkey pk;
    return k1_parse(&pk, p);
}

static int k1_base(uint8_t *out, const uint8_t s[SL])
{
    secp256k1_pubkey pk;
    if (secp256k1_ec_pubkey_create(k1c, &pk, s) != 1) {
        return -1;
    }
    k1_ser(out, &pk);
    return 0;
}

static int k1_mult(uint8_t *out, const uint8_t s[SL], const uint8_t *p)
{
    secp256k1_pubkey pk;
    if (!k1_parse(&pk, p) || secp256k1_ec_pubkey_tweak_mul(k1c, &pk, s) != 1) {
        return -1;
    }
    k1_ser(out, &pk);
    return 0;
}

static int k1_sum(uint8_t *out, const uint8_t *const *pts, size_t n)
{
    enum { CHUNK = 64 };
    secp256k1_pubkey pks[CHUNK + 1], acc;
    const secp256k1_pubkey *ptrs[CHUNK + 1];
    size_t have = 0, i = 0;
    /* combined in chunks so no array grows with n; infinity only matters at the end */
    while (i < n) {
        size_t k = 0;
        if (have) {
            pks[k++] = acc;
        }
        while (k < CHUNK + 1 && i < n) {
            if (!k1_parse(&pks[k], pts[i])) {
                return -1;
            }
            k++;
            i++;
        }
        for (size_t j = 0; j < k; j++) {
            ptrs[j] = &pks[j];
        }
        if (secp256k1_ec_pubkey_combine(k1c, &acc, ptrs, k) != 1) {
            return -1;
        }
        have = 1;
    }
    if (!have) {
        return -1;
    }
    k1_ser(out, &acc);
    return 0;
}

/* out = b when mask is 0xff, else keeps out (no branch). */
static void ct_select(uint8_t out[SL], const uint8_t b[SL], uint8_t mask)
{
    for (size_t i = 0; i < SL; i++) {
        out[i] = (uint8_t)((out[i] & (uint8_t)~mask) | (b[i] & mask));
    }
}

static void k1_add(uint8_t out[SL], const uint8_t a[SL], const uint8_t b[SL])
{
    uint8_t t[SL], bb[SL];
    uint8_t a_zero = (uint8_t)(0u - (unsigned)sodium_is_zero(a, SL));
    memcpy(t, a, SL);
    memcpy(bb, b, SL);
    /* returns 0 (and zeroes t) for a zero a, and for a zero sum, whose value is then right */
    int ok = secp256k1_ec_seckey_tweak_add(k1c, t, bb);
    (void)ok;
    ct_select(t, bb, a_zero);
    memcpy(out, t, SL);
    ns_wipe(t, sizeof t);
    ns_wipe(bb, sizeof bb);
}

static void k1_mul(uint8_t out[SL], const uint8_t a[SL], const uint8_t b[SL])
{
    uint8_t t[SL], bb[SL];
    memcpy(t, a, SL);
    memcpy(bb, b, SL);
    /* a zero factor makes it return 0 with t zeroed: the right product */
    int ok = secp256k1_ec_seckey_tweak_mul(k1c, t, bb);
    (void)ok;
    memcpy(out, t, SL);
    ns_wipe(t, sizeof t);
    ns_wipe(bb, sizeof bb);
}

static void k1_sub(uint8_t out[SL], const uint8_t a[SL], const uint8_t b[SL])
{
    uint8_t nb[SL];
    memcpy(nb, b, SL);
    int ok = secp256k1_ec_seckey_negate(k1c, nb); /* -0: returns 0, nb stays zero */
    (void)ok;
    k1_add(out, a, nb);
    ns_wipe(nb, sizeof nb);
}

static int k1_inv(uint8_t out[SL], const uint8_t a[SL])
{
    if (sodium_is_zero(a, SL)) {
        return -1;
    }
    uint8_t r[SL] = {0};
    r[31] = 1;
    for (size_t i = 0; i < SL * 8; i++) {
        k1_mul(r, r, r);
        if ((K1_N_MINUS_2[i / 8] >> (7 - i % 8)) & 1) {
            k1_mul(r, r, a);
        }
    }
    memcpy(out, r, SL);
    return 0;
}

/* 48 big-endian bytes mod n: a 2^256 + b 2^128 + c with a, b, c < 2^128 < n. */
static void k1_reduce48(uint8_t out[SL], const uint8_t u[48])
{
    uint8_t a[SL] = {0}, b[SL] = {0}, c[SL] = {0}, r[SL], t[SL];
    memcpy(a + 16, u, 16);
    memcpy(b + 16, u + 16, 16);
    memcpy(c + 16, u + 32, 16);
    k1_mul(r, a, K1_2_256);
    k1_mul(t, b, K1_2_128);
    k1_add(r, r, t);
    k1_add(out, r, c);
    ns_wipe(a, sizeof a);
    ns_wipe(b, sizeof b);
    ns_wipe(c, sizeof c);
    ns_wipe(r, sizeof r);
    ns_wipe(t, sizeof t);
}

static void k1_hash_digest(uint8_t *out, int which, const part *parts, size_t n)
{
    static const char ctx[] = "FROST-secp256k1-SHA256-v1";
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)ctx, sizeof ctx - 1);
    crypto_hash_sha256_update(&st, (const uint8_t *)TAGS[which], strlen(TAGS[which]));
    for (size_t i = 0; i < n; i++) {
        crypto_hash_sha256_update(&st, parts[i].p, parts[i].n);
    }
    crypto_hash_sha256_final(&st, out);
    ns_wipe(&st, sizeof st);
}

/* hash_to_field(m, 1) with expand_message_xmd(SHA-256), L = 48 (RFC 9380 5.2, 5.3.1). */
static void k1_hash_scalar(uint8_t out[SL], int which, const part *parts, size_t n)
{
    static const char ctx[] = "FROST-secp256k1-SHA256-v1";
    static const uint8_t zpad[64] = {0};
    uint8_t dst[64], b0[32], b1[32], b2[32], u[48];
    size_t dlen = sizeof ctx - 1 + strlen(TAGS[which]);
    memcpy(dst, ctx, sizeof ctx - 1);
    memcpy(dst + sizeof ctx - 1, TAGS[which], strlen(TAGS[which]));
    dst[dlen] = (uint8_t)dlen;         /* DST_prime = DST || I2OSP(len(DST), 1) */
    const uint8_t lib[3] = {0, 48, 0}; /* I2OSP(48, 2) || I2OSP(0, 1) */
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, zpad, sizeof zpad);
    for (size_t i = 0; i < n; i++) {
        crypto_hash_sha256_update(&st, parts[i].p, parts[i].n);
    }
    crypto_hash_sha256_update(&st, lib, sizeof lib);
    crypto_hash_sha256_update(&st, dst, dlen + 1);
    crypto_hash_sha256_final(&st, b0);
    uint8_t one = 1, two = 2;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, b0, 32);
    crypto_hash_sha256_update(&st, &one, 1);
    crypto_hash_sha256_update(&st, dst, dlen + 1);
    crypto_hash_sha256_final(&st, b1);
    for (size_t i = 0; i < 32; i++) {
        b2[i] = b0[i] ^ b1[i];
    }
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, b2, 32);
    crypto_hash_sha256_update(&st, &two, 1);
    crypto_hash_sha256_update(&st, dst, dlen + 1);
    crypto_hash_sha256_final(&st, b2);
    memcpy(u, b1, 32);
    memcpy(u + 32, b2, 16);
    k1_reduce48(out, u);
    ns_wipe(&st, sizeof st);
    ns_wipe(b0, sizeof b0);
    ns_wipe(b1, sizeof b1);
    ns_wipe(b2, sizeof b2);
    ns_wipe(u, sizeof u);
}

static void k1_random_scalar(uint8_t out[SL], const uint8_t rnd[64])
{
    k1_reduce48(out, rnd); /* 384 bits mod n: bias below 2^-128 */
}

static const suite_ops SECP256K1 = {
    .suite = NS_FROST_SECP256K1_SHA256,
    .el = 33,
    .hl = 32,
    .ctx = "FROST-secp256k1-SHA256-v1",
    .id_scalar = k1_id_scalar,
    .scalar_ok = k1_scalar_ok,
    .element_ok = k1_element_ok,
    .base = k1_base,
    .mult = k1_mult,
    .sum = k1_sum,
    .add = k1_add,
    .sub = k1_sub,
    .mul = k1_mul,
    .inv = k1_inv,
    .hash_scalar = k1_hash_scalar,
    .hash_digest = k1_hash_digest,
    .random_scalar_from = k1_random_scalar,
};

/* ---------------------------------------------------------------- suites and encodings */

static pthread_once_t k1_once = PTHREAD_ONCE_INIT;

static void k1_setup(void)
{
    const secp256k1_context *c = NULL;
    if (ns_ecdsa_k1_context(&c) == NS_OK) {
        k1c = c;
    }
}

ns_err ns_frost_init(void)
{
    ENSURE(sodium_init() >= 0, NS_E_CRYPTO, "frost: libsodium failed to initialise");
    pthread_once(&k1_once, k1_setup);
    ENSURE(k1c != NULL, NS_E_CRYPTO,
           "frost: cannot create the randomised libsecp256k1 context (getrandom failed?)");
    return NS_OK;
}

const char *ns_frost_suite_name(ns_frost_suite suite)
{
    switch (suite) {
    case NS_FROST_ED25519_SHA512:
        return "frost-ed25519-sha512";
    case NS_FROST_SECP256K1_SHA256:
        return "frost-secp256k1-sha256";
    }
    return "unknown";
}

ns_err ns_frost_suite_parse(const char *name, ns_frost_suite *out)
{
    if (strcmp(name, "frost-ed25519-sha512") == 0) {
        *out = NS_FROST_ED25519_SHA512;
        return NS_OK;
    }
    if (strcmp(name, "frost-secp256k1-sha256") == 0) {
        *out = NS_FROST_SECP256K1_SHA256;
        return NS_OK;
    }
    BAIL(NS_E_PARSE,
         "unknown FROST ciphersuite \"%.40s\" (expected frost-ed25519-sha512 or "
         "frost-secp256k1-sha256)",
         name);
}

size_t ns_frost_element_len(ns_frost_suite suite)
{
    return suite == NS_FROST_SECP256K1_SHA256 ? 33 : 32;
}

size_t ns_frost_sig_len(ns_frost_suite suite)
{
    return ns_frost_element_len(suite) + SL;
}

static ns_err ops_of(ns_frost_suite suite, const suite_ops **out)
{
    GUARD(ns_frost_init());
    if (suite == NS_FROST_ED25519_SHA512) {
        *out = &ED25519;
        return NS_OK;
    }
    if (suite == NS_FROST_SECP256K1_SHA256) {
        *out = &SECP256K1;
        return NS_OK;
    }
    BAIL(NS_E_UNSUPPORTED, "FROST ciphersuite %d is not supported", (int)suite);
}

ns_err ns_frost_element_check(ns_frost_suite suite, const uint8_t *p, size_t len)
{
    const suite_ops *o = NULL;
    GUARD(ops_of(suite, &o));
    ENSURE(len == o->el, NS_E_PARSE, "element is %zu bytes, expected %zu", len, o->el);
    ENSURE(o->element_ok(p), NS_E_PARSE,
           "element is not a valid point of the prime-order group (non-canonical, off the curve, "
           "small order or the identity)");
    return NS_OK;
}

ns_err ns_frost_scalar_check(ns_frost_suite suite, const uint8_t *p, size_t len)
{
    const suite_ops *o = NULL;
    GUARD(ops_of(suite, &o));
    ENSURE(len == SL, NS_E_PARSE, "scalar is %zu bytes, expected %d", len, SL);
    ENSURE(o->scalar_ok(p), NS_E_PARSE, "scalar is not canonical (not below the group order)");
    return NS_OK;
}

static int scalar_is_zero(const uint8_t s[SL])
{
    return sodium_is_zero(s, SL);
}

/* ---------------------------------------------------------------- groups and keys */

/* lambda_i(x) = prod_{j != i} (x - x_j) / (x_i - x_j) for every i of ids[0..n) (public
 * values), with one inversion for all (Montgomery's batch trick). -1 when out of memory. */
static int lagrange_all(const suite_ops *o, uint8_t (*lam)[SL], const uint16_t *ids, size_t n,
                        unsigned x)
{
    uint8_t(*den)[SL] = malloc(2 * (n ? n : 1) * SL);
    if (den == NULL) {
        return -1;
    }
    uint8_t(*pre)[SL] = den + n; /* pre[i] = den[0] * ... * den[i] */
    uint8_t t[SL], xi[SL], xj[SL], xs[SL], inv[SL];
    o->id_scalar(xs, x);
    for (size_t i = 0; i < n; i++) {
        o->id_scalar(lam[i], 1); /* the numerator first */
        o->id_scalar(den[i], 1);
        o->id_scalar(xi, ids[i]);
        for (size_t j = 0; j < n; j++) {
            if (j == i) {
                continue;
            }
            o->id_scalar(xj, ids[j]);
            o->sub(t, xs, xj);
            o->mul(lam[i], lam[i], t);
            o->sub(t, xi, xj);
            o->mul(den[i], den[i], t);
        }
        if (i == 0) {
            memcpy(pre[0], den[0], SL);
        } else {
            o->mul(pre[i], pre[i - 1], den[i]);
        }
    }
    /* the identifiers are distinct (checked by every caller), so no den is zero */
    if (n == 0 || o->inv(inv, pre[n - 1]) != 0) {
        free(den);
        return -1;
    }
    for (size_t i = n; i-- > 0;) {
        if (i > 0) {
            o->mul(t, inv, pre[i - 1]); /* 1 / den[i] */
            o->mul(inv, inv, den[i]);
        } else {
            memcpy(t, inv, SL);
        }
        o->mul(lam[i], lam[i], t);
    }
    free(den);
    return 0;
}

/*
 * lambda_i(0) of a signing set, remembered: it depends on the suite and the identifiers only
 * (public values), and a deployment signs with few distinct sets (three for 2-of-3), while the
 * batched inversion costs as much as a third of a variable-base multiplication. One small
 * cache per thread (no lock); an entry is used only for the exact same suite and identifiers.
 */
#define LAG_CACHE 8
#define LAG_CACHE_N 8 /* signing sets of up to this many participants are remembered */
typedef struct {
    const suite_ops *o;
    size_t n;
    uint16_t ids[LAG_CACHE_N];
    uint8_t lam[LAG_CACHE_N][SL];
} lag_entry;
static __thread lag_entry lag_cache[LAG_CACHE];
static __thread unsigned lag_next;

static int lagrange_at_zero(const suite_ops *o, uint8_t (*lam)[SL], const uint16_t *ids, size_t n)
{
    if (n > LAG_CACHE_N) {
        return lagrange_all(o, lam, ids, n, 0);
    }
    for (unsigned k = 0; k < LAG_CACHE; k++) {
        lag_entry *c = &lag_cache[k];
        if (c->o == o && c->n == n && memcmp(c->ids, ids, n * sizeof *ids) == 0) {
            memcpy(lam, c->lam, n * SL);
            return 0;
        }
    }
    if (lagrange_all(o, lam, ids, n, 0) != 0) {
        return -1;
    }
    lag_entry *c = &lag_cache[lag_next++ % LAG_CACHE];
    c->o = o;
    c->n = n;
    memcpy(c->ids, ids, n * sizeof *ids);
    memcpy(c->lam, lam, n * SL);
    return 0;
}

/* sum_i k_i * P_i (public; zero scalars skipped); -1 when the sum is the identity. */
static int multi_mult(const suite_ops *o, uint8_t *out, const uint8_t (*scalars)[SL],
                      const uint8_t *const *points, size_t n)
{
    uint8_t(*terms)[EM] = malloc((n ? n : 1) * sizeof *terms);
    const uint8_t **ptrs = malloc((n ? n : 1) * sizeof *ptrs);
    size_t m = 0;
    int rc = terms && ptrs ? 0 : -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!scalar_is_zero(scalars[i])) {
            rc = o->mult(terms[m], scalars[i], points[i]);
            ptrs[m] = terms[m];
            m++;
        }
    }
    if (rc == 0) {
        rc = m ? o->sum(out, ptrs, m) : -1;
    }
    free(terms);
    free(ptrs);
    return rc;
}

void ns_frost_group_free(ns_frost_group *g)
{
    if (g) {
        free(g->verifying_shares);
        memset(g, 0, sizeof *g);
    }
}

/* The verifying shares lie on one polynomial of degree T-1 (in the exponent) through the
 * group key: interpolate from identifiers 1..T, check the key and every other share. */
static ns_err group_consistent(const suite_ops *o, const ns_frost_group *g)
{
    unsigned t = g->min_signers, n = g->max_signers;
    uint16_t ids[NS_FROST_SIGNERS_MAX];
    const uint8_t *pts[NS_FROST_SIGNERS_MAX];
    uint8_t(*lam)[SL] = malloc((size_t)t * SL);
    ENSURE(lam != NULL, NS_E_NOMEM, "frost group: out of memory");
    for (unsigned i = 0; i < t; i++) {
        ids[i] = (uint16_t)(i + 1);
        pts[i] = g->verifying_shares[i];
    }
    ns_err rc = NS_OK;
    for (unsigned x = 0; x <= n && rc == NS_OK; x = x == 0 ? t + 1 : x + 1) {
        uint8_t want[EM];
        if (lagrange_all(o, lam, ids, t, x) != 0) {
            rc = ns_fail(NS_E_NOMEM, "frost group: out of memory");
        } else if (multi_mult(o, want, (const uint8_t(*)[SL])lam, pts, t) != 0) {
            rc = ns_fail(NS_E_PARSE, "frost group: verifying shares interpolate to the identity");
        } else if (x == 0 && memcmp(want, g->group_public_key, o->el) != 0) {
            rc = ns_fail(NS_E_PARSE,
                         "frost group: the verifying shares of identifiers 1..%u do not "
                         "interpolate to group_public_key",
                         t);
        } else if (x != 0 && memcmp(want, g->verifying_shares[x - 1], o->el) != 0) {
            rc = ns_fail(NS_E_PARSE,
                         "frost group: the verifying share of identifier %u is not on the "
                         "polynomial of identifiers 1..%u (wrong share or wrong min_signers)",
                         x, t);
        }
    }
    free(lam);
    return rc;
}

ns_err ns_frost_group_init(ns_frost_group *g, ns_frost_suite suite, unsigned min_signers,
                           unsigned max_signers, const uint8_t *group_public_key,
                           const uint8_t *verifying_shares)
{
    const suite_ops *o = NULL;
    memset(g, 0, sizeof *g);
    GUARD(ops_of(suite, &o));
    ENSURE(min_signers >= 2, NS_E_PARSE, "frost group: min_signers %u: at least 2", min_signers);
    ENSURE(min_signers <= max_signers, NS_E_PARSE,
           "frost group: min_signers %u exceeds max_signers %u", min_signers, max_signers);
    ENSURE(max_signers <= NS_FROST_SIGNERS_MAX, NS_E_TOO_BIG,
           "frost group: max_signers %u, at most %d are supported", max_signers,
           NS_FROST_SIGNERS_MAX);
    ns_err rc = ns_frost_element_check(suite, group_public_key, o->el);
    if (rc != NS_OK) {
        return ns_fail_ctx(rc, "frost group: group_public_key");
    }
    for (unsigned i = 0; i < max_signers; i++) {
        rc = ns_frost_element_check(suite, verifying_shares + (size_t)i * o->el, o->el);
        if (rc != NS_OK) {
            return ns_fail_ctx(rc, "frost group: verifying share of identifier %u", i + 1);
        }
    }
    g->verifying_shares = calloc(max_signers, sizeof *g->verifying_shares);
    ENSURE(g->verifying_shares != NULL, NS_E_NOMEM, "frost group: out of memory");
    g->suite = suite;
    g->min_signers = (uint16_t)min_signers;
    g->max_signers = (uint16_t)max_signers;
    memcpy(g->group_public_key, group_public_key, o->el);
    for (unsigned i = 0; i < max_signers; i++) {
        memcpy(g->verifying_shares[i], verifying_shares + (size_t)i * o->el, o->el);
    }
    rc = group_consistent(o, g);
    if (rc != NS_OK) {
        ns_frost_group_free(g);
    }
    return rc;
}

ns_err ns_frost_group_copy(ns_frost_group *dst, const ns_frost_group *src)
{
    *dst = *src;
    dst->verifying_shares = malloc((size_t)src->max_signers * sizeof *src->verifying_shares);
    if (dst->verifying_shares == NULL) {
        memset(dst, 0, sizeof *dst);
        BAIL(NS_E_NOMEM, "frost group: out of memory");
    }
    memcpy(dst->verifying_shares, src->verifying_shares,
           (size_t)src->max_signers * sizeof *src->verifying_shares);
    return NS_OK;
}

ns_err ns_frost_key_init(ns_frost_key *k, const ns_frost_group *g, unsigned identifier,
                         const uint8_t signing_share[NS_FROST_SCALAR_LEN])
{
    const suite_ops *o = NULL;
    memset(k, 0, sizeof *k);
    GUARD(ops_of(g->suite, &o));
    ENSURE(identifier >= 1 && identifier <= g->max_signers, NS_E_PARSE,
           "frost key: identifier %u is outside 1..%u (max_signers)", identifier, g->max_signers);
    ENSURE(o->scalar_ok(signing_share) && !scalar_is_zero(signing_share), NS_E_PARSE,
           "frost key: signing_share is not a canonical nonzero scalar");
    uint8_t pub[EM];
    ENSURE(o->base(pub, signing_share) == 0, NS_E_PARSE, "frost key: signing_share is not usable");
    ENSURE(memcmp(pub, g->verifying_shares[identifier - 1], o->el) == 0, NS_E_PARSE,
           "frost key: signing_share does not match the verifying share of identifier %u",
           identifier);
    k->signing_share = ns_secret_alloc(SL);
    ENSURE(k->signing_share != NULL, NS_E_NOMEM,
           "frost key: cannot allocate locked memory (check RLIMIT_MEMLOCK)");
    ns_err rc = ns_frost_group_copy(&k->group, g);
    if (rc != NS_OK) {
        ns_secret_free(k->signing_share, SL);
        k->signing_share = NULL;
        return rc;
    }
    memcpy(k->signing_share, signing_share, SL);
    k->identifier = (uint16_t)identifier;
    return NS_OK;
}

void ns_frost_key_free(ns_frost_key *k)
{
    if (k) {
        if (k->signing_share) {
            ns_secret_free(k->signing_share, SL);
        }
        ns_frost_group_free(&k->group);
        memset(k, 0, sizeof *k);
    }
}

/* ---------------------------------------------------------------- round one */

/* nonce_generate (section 4.1): H3(random_bytes || SerializeScalar(secret)). */
static ns_err nonce_generate(const suite_ops *o, uint8_t out[SL],
                             const uint8_t rnd[NS_FROST_RANDOM_LEN], const uint8_t secret[SL])
{
    const part parts[2] = {{rnd, NS_FROST_RANDOM_LEN}, {secret, SL}};
    o->hash_scalar(out, H3_NONCE, parts, 2);
    /* a zero nonce (probability about 2^-252) would commit to the identity: refuse it */
    ENSURE(!scalar_is_zero(out), NS_E_CRYPTO, "frost: nonce generation produced zero; retry");
    return NS_OK;
}

ns_err ns_frost_commit_with_randomness_for_test(const ns_frost_key *k,
                                                const uint8_t hiding_rand[NS_FROST_RANDOM_LEN],
                                                const uint8_t binding_rand[NS_FROST_RANDOM_LEN],
                                                ns_frost_nonces *nonces)
{
    const suite_ops *o = NULL;
    memset(nonces, 0, sizeof *nonces);
    GUARD(ops_of(k->group.suite, &o));
    ENSURE(k->signing_share != NULL, NS_E_USAGE, "frost: key package has no signing share");
    ns_err rc = nonce_generate(o, nonces->hiding, hiding_rand, k->signing_share);
    if (rc == NS_OK) {
        rc = nonce_generate(o, nonces->binding, binding_rand, k->signing_share);
    }
    if (rc == NS_OK && (o->base(nonces->commitment.hiding, nonces->hiding) != 0 ||
                        o->base(nonces->commitment.binding, nonces->binding) != 0)) {
        rc = ns_fail(NS_E_CRYPTO, "frost: commitment computation failed");
    }
    if (rc != NS_OK) {
        ns_wipe(nonces, sizeof *nonces);
        return rc;
    }
    nonces->commitment.identifier = k->identifier;
    nonces->live = 1;
    return NS_OK;
}

ns_err ns_frost_commit(const ns_frost_key *k, ns_frost_nonces *nonces)
{
    uint8_t rnd[2 * NS_FROST_RANDOM_LEN];
    ns_err rc = ns_rng_bytes(rnd, sizeof rnd);
    if (rc == NS_OK) {
        rc = ns_frost_commit_with_randomness_for_test(k, rnd, rnd + NS_FROST_RANDOM_LEN, nonces);
    }
    ns_wipe(rnd, sizeof rnd);
    return rc;
}

/* ---------------------------------------------------------------- round two, shared part */

static int cmp_commitment(const void *a, const void *b)
{
    const ns_frost_commitment *x = a, *y = b;
    return (int)x->identifier - (int)y->identifier;
}

void ns_frost_commitments_sort(ns_frost_commitment *list, size_t n)
{
    if (n > 1) {
        qsort(list, n, sizeof *list, cmp_commitment);
    }
}

/* What both the signer and the coordinator derive from a commitment list. */
typedef struct {
    const suite_ops *o;
    size_t n;
    uint16_t ids[NS_FROST_SIGNERS_MAX];
    uint8_t (*rho)[SL];           /* binding factor of list[i] */
    uint8_t (*lam)[SL];           /* Lagrange coefficient of list[i] at 0 */
    uint8_t (*comm)[EM];          /* D_i + rho_i * E_i */
    uint8_t group_commitment[EM]; /* R */
    uint8_t challenge[SL];        /* c */
} session;

static void session_free(session *s)
{
    free(s->rho);
    free(s->lam);
    free(s->comm);
    s->rho = NULL;
    s->lam = NULL;
    s->comm = NULL;
}

/* Counts and identifiers: the cheap checks, made before anything else. */
static ns_err list_shape(const ns_frost_group *g, const ns_frost_commitment *list, size_t n)
{
    ENSURE(n >= g->min_signers, NS_E_USAGE,
           "commitment list has %zu participants, fewer than min_signers %u", n, g->min_signers);
    ENSURE(n <= g->max_signers, NS_E_USAGE,
           "commitment list has %zu participants, more than max_signers %u", n, g->max_signers);
    for (size_t i = 0; i < n; i++) {
        unsigned id = list[i].identifier;
        ENSURE(id >= 1 && id <= g->max_signers, NS_E_USAGE,
               "commitment list: identifier %u is outside 1..%u", id, g->max_signers);
        if (i > 0) {
            ENSURE(list[i - 1].identifier != id, NS_E_USAGE,
                   "commitment list: duplicate identifier %u", id);
            ENSURE(list[i - 1].identifier < id, NS_E_USAGE,
                   "commitment list: identifiers not in ascending order (%u after %u)", id,
                   list[i - 1].identifier);
        }
    }
    return NS_OK;
}

/* own: the index of the caller's own commitment (already known valid), or n */
static ns_err list_check(const suite_ops *o, const ns_frost_group *g,
                         const ns_frost_commitment *list, size_t n, size_t own)
{
    GUARD(list_shape(g, list, n));
    for (size_t i = 0; i < n; i++) {
        ENSURE(i == own || o->element_ok(list[i].hiding), NS_E_USAGE,
               "commitment list: hiding commitment of identifier %u is not a valid point "
               "(identity, small order, non-canonical or off the curve)",
               list[i].identifier);
        /* the binding commitment is checked by the scalar multiplication in session_init (the
         * same checks: validating it here too would double the cost) */
    }
    return NS_OK;
}

/*
 * Sections 4.3 (encoding), 4.4 (binding factors), 4.5 (group commitment), 4.6 (challenge).
 * own (a participant's round-one secret, whose commitment is list[own_idx]) or NULL: the own
 * commitment is not validated again and its rho * E is computed as (rho * e) * G, in constant
 * time, which is cheaper than a variable-base multiplication.
 */
static ns_err session_init(session *s, const ns_frost_group *g, const uint8_t *msg, size_t msg_len,
                           const ns_frost_commitment *list, size_t n, const ns_frost_nonces *own,
                           size_t own_idx)
{
    const suite_ops *o = NULL;
    memset(s, 0, sizeof *s);
    GUARD(ops_of(g->suite, &o));
    s->o = o;
    ENSURE(msg != NULL || msg_len == 0, NS_E_USAGE, "frost: no message");
    GUARD(list_check(o, g, list, n, own ? own_idx : n));
    size_t el = o->el, rec = SL + 2 * el;
    s->n = n;
    s->rho = malloc(n * sizeof *s->rho);
    s->lam = malloc(n * sizeof *s->lam);
    s->comm = malloc(n * sizeof *s->comm);
    uint8_t *enc = malloc(n * rec);
    const uint8_t **ptrs = malloc(n * sizeof *ptrs);
    ns_err rc = NS_OK;
    if (s->rho == NULL || s->lam == NULL || s->comm == NULL || enc == NULL || ptrs == NULL) {
        rc = ns_fail(NS_E_NOMEM, "frost: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        o->id_scalar(enc + i * rec, list[i].identifier);
        memcpy(enc + i * rec + SL, list[i].hiding, el);
        memcpy(enc + i * rec + SL + el, list[i].binding, el);
    }
    uint8_t msg_hash[DIGEST_MAX], enc_hash[DIGEST_MAX];
    const part pm = {msg, msg_len}, pe = {enc, n * rec};
    o->hash_digest(msg_hash, H4_MSG, &pm, 1);
    o->hash_digest(enc_hash, H5_COM, &pe, 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t be[EM];
        const part parts[4] = {
            {g->group_public_key, el}, {msg_hash, o->hl}, {enc_hash, o->hl}, {enc + i * rec, SL}};
        s->ids[i] = list[i].identifier;
        o->hash_scalar(s->rho[i], H1_RHO, parts, 4);
        const uint8_t *two[2] = {list[i].hiding, be};
        int bad;
        if (own != NULL && i == own_idx) {
            uint8_t re[SL];
            o->mul(re, s->rho[i], own->binding);
            bad = o->base(be, re) != 0;
            ns_wipe(re, sizeof re);
        } else {
            bad = o->mult(be, s->rho[i], list[i].binding) != 0;
        }
        if (bad) {
            rc = ns_fail(NS_E_USAGE,
                         "commitment list: binding commitment of identifier %u is not a valid "
                         "point (identity, small order, non-canonical or off the curve)",
                         list[i].identifier);
            goto out;
        }
        if (o->sum(s->comm[i], two, 2) != 0) {
            rc = ns_fail(NS_E_USAGE, "commitment list: the commitment of identifier %u is unusable",
                         list[i].identifier);
            goto out;
        }
        ptrs[i] = s->comm[i];
    }
    if (o->sum(s->group_commitment, ptrs, n) != 0) {
        rc = ns_fail(NS_E_USAGE, "commitment list: the group commitment is the identity");
        goto out;
    }
    const part pc[3] = {{s->group_commitment, el}, {g->group_public_key, el}, {msg, msg_len}};
    o->hash_scalar(s->challenge, H2_CHAL, pc, 3);
    if (lagrange_at_zero(o, s->lam, s->ids, n) != 0) {
        rc = ns_fail(NS_E_NOMEM, "frost: out of memory");
    }
out:
    free(enc);
    free(ptrs);
    if (rc != NS_OK) {
        session_free(s);
    }
    return rc;
}

/* ---------------------------------------------------------------- round two */

ns_err ns_frost_sign(const ns_frost_key *k, ns_frost_nonces *nonces, const uint8_t *msg,
                     size_t msg_len, const ns_frost_commitment *list, size_t n, ns_frost_share *out)
{
    memset(out, 0, sizeof *out);
    ns_err rc = NS_OK;
    session s = {0};
    uint8_t t[SL], z[SL];
    if (!nonces->live) {
        ns_wipe(nonces, sizeof *nonces);
        BAIL(NS_E_EXPIRED, "frost: these nonces were already used or never generated");
    }
    if (k->signing_share == NULL) {
        rc = ns_fail(NS_E_USAGE, "frost: key package has no signing share");
        goto out;
    }
    GUARD_GOTO(list_shape(&k->group, list, n), rc, out);
    if (nonces->commitment.identifier != k->identifier) {
        rc = ns_fail(NS_E_USAGE, "frost: these nonces are identifier %u's, not this key's (%u)",
                     nonces->commitment.identifier, k->identifier);
        goto out;
    }
    size_t me = n;
    for (size_t i = 0; i < n && me == n; i++) {
        if (list[i].identifier == k->identifier) {
            me = i;
        }
    }
    if (me == n) {
        rc = ns_fail(NS_E_USAGE,
                     "commitment list: this participant's own commitment (identifier %u) is "
                     "missing",
                     k->identifier);
        goto out;
    }
    size_t el = ns_frost_element_len(k->group.suite);
    if (memcmp(list[me].hiding, nonces->commitment.hiding, el) != 0 ||
        memcmp(list[me].binding, nonces->commitment.binding, el) != 0) {
        rc = ns_fail(NS_E_AUTH,
                     "commitment list: the commitment of identifier %u is not the one this "
                     "participant issued",
                     k->identifier);
        goto out;
    }
    GUARD_GOTO(session_init(&s, &k->group, msg, msg_len, list, n, nonces, me), rc, out);
    const suite_ops *o = s.o;
    /* z = d + e * rho + lambda * s * c */
    o->mul(t, s.lam[me], k->signing_share);
    o->mul(t, t, s.challenge);
    o->mul(z, nonces->binding, s.rho[me]);
    o->add(z, z, t);
    o->add(z, z, nonces->hiding);
    out->identifier = k->identifier;
    memcpy(out->z, z, SL);
out:
    ns_wipe(nonces, sizeof *nonces);
    ns_wipe(t, sizeof t);
    ns_wipe(z, sizeof z);
    session_free(&s);
    return rc;
}

/* ---------------------------------------------------------------- coordinator */

static ns_err share_check(const ns_frost_group *g, const session *s, size_t i,
                          const ns_frost_share *share)
{
    const suite_ops *o = s->o;
    uint16_t id = s->ids[i];
    ENSURE(share->identifier == id, NS_E_USAGE,
           "signature share %zu is from identifier %u, expected %u (the list's order)", i,
           share->identifier, id);
    ENSURE(o->scalar_ok(share->z), NS_E_AUTH,
           "signature share of participant %u is not a canonical scalar", id);
    uint8_t cl[SL], lhs[EM], rhs[EM], t[EM];
    const uint8_t *two[2] = {s->comm[i], t};
    o->mul(cl, s->challenge, s->lam[i]);
    int ok = o->base(lhs, share->z) == 0 && o->mult(t, cl, g->verifying_shares[id - 1]) == 0 &&
             o->sum(rhs, two, 2) == 0 && memcmp(lhs, rhs, o->el) == 0;
    ENSURE(ok, NS_E_AUTH,
           "signature share of participant %u does not verify against its verifying share", id);
    return NS_OK;
}

ns_err ns_frost_verify_share(const ns_frost_group *g, const uint8_t *msg, size_t msg_len,
                             const ns_frost_commitment *list, size_t n, const ns_frost_share *share)
{
    session s;
    GUARD(session_init(&s, g, msg, msg_len, list, n, NULL, 0));
    size_t i = 0;
    while (i < n && list[i].identifier != share->identifier) {
        i++;
    }
    ns_err rc = i < n ? share_check(g, &s, i, share)
                      : ns_fail(NS_E_USAGE, "signature share of identifier %u: not in the list",
                                share->identifier);
    session_free(&s);
    return rc;
}

ns_err ns_frost_aggregate(const ns_frost_group *g, const uint8_t *msg, size_t msg_len,
                          const ns_frost_commitment *list, size_t n, const ns_frost_share *shares,
                          uint8_t sig[NS_FROST_SIG_MAX], size_t *sig_len, uint16_t *bad_identifier)
{
    *sig_len = 0;
    if (bad_identifier) {
        *bad_identifier = 0;
    }
    session s;
    GUARD(session_init(&s, g, msg, msg_len, list, n, NULL, 0));
    const suite_ops *o = s.o;
    ns_err rc = NS_OK;
    uint8_t z[SL] = {0};
    /*
     * Every share is verified (section 5.4), the last one through the aggregate: share i holds
     * when z_i*G == R_i + (c*lambda_i)*Y_i. Summed over the signing set these equations are
     * z*G == R + c*PK (z = sum z_i, R = sum R_i as computed here, and sum lambda_i*Y_i == PK for
     * every signing set because ns_frost_group_init checked that all verifying shares lie on one
     * polynomial through PK), which is the final signature's verification, made anyway. In a
     * prime-order group (every point validated) the first n-1 equations and the sum hold
     * exactly when all n hold: the last share's check is the aggregate's minus the others',
     * which saves its variable-base multiplication. When the aggregate fails, the last share is
     * checked on its own, so its signer is named with the same message.
     */
    for (size_t i = 0; i < n && rc == NS_OK; i++) {
        if (i + 1 < n) {
            rc = share_check(g, &s, i, &shares[i]);
        } else if (shares[i].identifier != s.ids[i] || !o->scalar_ok(shares[i].z)) {
            rc = share_check(g, &s, i, &shares[i]); /* fails with its message */
        }
        if (rc == NS_E_AUTH && bad_identifier) {
            *bad_identifier = s.ids[i];
        }
        o->add(z, z, shares[i].z);
    }
    if (rc == NS_OK) {
        uint8_t out[NS_FROST_SIG_MAX];
        memcpy(out, s.group_commitment, o->el);
        memcpy(out + o->el, z, SL);
        rc = ns_frost_verify(g->suite, g->group_public_key, msg, msg_len, out, o->el + SL);
        if (rc == NS_OK) {
            memcpy(sig, out, o->el + SL);
            *sig_len = o->el + SL;
        } else if (share_check(g, &s, n - 1, &shares[n - 1]) != NS_OK) {
            rc = NS_E_AUTH; /* share_check's message names the participant */
            if (bad_identifier) {
                *bad_identifier = s.ids[n - 1];
            }
        }
    }
    session_free(&s);
    return rc;
}

ns_err ns_frost_verify(ns_frost_suite suite, const uint8_t *group_public_key, const uint8_t *msg,
                       size_t msg_len, const uint8_t *sig, size_t sig_len)
{
    const suite_ops *o = NULL;
    GUARD(ops_of(suite, &o));
    ENSURE(sig_len == o->el + SL, NS_E_AUTH, "signature is %zu bytes, expected %zu", sig_len,
           o->el + SL);
    if (suite == NS_FROST_ED25519_SHA512) {
        ENSURE(crypto_sign_verify_detached(sig, msg, msg_len, group_public_key) == 0, NS_E_AUTH,
               "the aggregate signature does not verify under the group public key");
        return NS_OK;
    }
    /* z * G == R + c * PK, c = H2(R || PK || msg) */
    uint8_t c[SL], lhs[EM], rhs[EM], t[EM];
    const part pc[3] = {{sig, o->el}, {group_public_key, o->el}, {msg, msg_len}};
    const uint8_t *two[2] = {sig, t};
    o->hash_scalar(c, H2_CHAL, pc, 3);
    int ok = o->element_ok(sig) && o->element_ok(group_public_key) && o->scalar_ok(sig + o->el) &&
             o->base(lhs, sig + o->el) == 0 && o->mult(t, c, group_public_key) == 0 &&
             o->sum(rhs, two, 2) == 0 && memcmp(lhs, rhs, o->el) == 0;
    ENSURE(ok, NS_E_AUTH, "the aggregate signature does not verify under the group public key");
    return NS_OK;
}

/* ---------------------------------------------------------------- trusted dealer */

/* sum_k C_k * x^k (appendix C.2), public. */
static int vss_eval(const suite_ops *o, uint8_t *out, const uint8_t *vss, unsigned t, unsigned x)
{
    uint8_t(*pw)[SL] = malloc((size_t)t * SL);
    const uint8_t **pts = malloc((size_t)t * sizeof *pts);
    int rc = -1;
    if (pw && pts) {
        uint8_t xs[SL];
        o->id_scalar(pw[0], 1);
        o->id_scalar(xs, x);
        for (unsigned k = 0; k < t; k++) {
            if (k > 0) {
                o->mul(pw[k], pw[k - 1], xs);
            }
            pts[k] = vss + (size_t)k * o->el;
        }
        rc = multi_mult(o, out, (const uint8_t(*)[SL])pw, pts, t);
    }
    free(pw);
    free(pts);
    return rc;
}

ns_err ns_frost_vss_verify(ns_frost_suite suite, unsigned min_signers, unsigned identifier,
                           const uint8_t share[NS_FROST_SCALAR_LEN], const uint8_t *vss_commitment)
{
    const suite_ops *o = NULL;
    GUARD(ops_of(suite, &o));
    uint8_t want[EM], got[EM];
    ENSURE(vss_eval(o, want, vss_commitment, min_signers, identifier) == 0 &&
               o->base(got, share) == 0 && memcmp(want, got, o->el) == 0,
           NS_E_AUTH, "the share of identifier %u does not match the VSS commitment", identifier);
    return NS_OK;
}

static ns_err keygen_core(const suite_ops *o, unsigned t, unsigned n,
                          uint8_t *coef /* secret, t*SL */, uint8_t *shares, ns_frost_group *group,
                          uint8_t *vss)
{
    size_t el = o->el;
    uint8_t *vss_own = malloc((size_t)t * el);
    uint8_t *vsh = malloc((size_t)n * el);
    uint8_t *acc = ns_secret_alloc(2 * SL);
    ns_err rc = NS_OK;
    if (vss_own == NULL || vsh == NULL || acc == NULL) {
        rc = ns_fail(NS_E_NOMEM, "frost keygen: out of memory");
        goto out;
    }
    for (unsigned k = 0; k < t; k++) {
        if (o->base(vss_own + (size_t)k * el, coef + (size_t)k * SL) != 0) {
            rc = ns_fail(NS_E_CRYPTO, "frost keygen: a zero coefficient; retry");
            goto out;
        }
    }
    for (unsigned i = 1; i <= n; i++) {
        uint8_t *a = acc, *x = acc + SL;
        o->id_scalar(x, i);
        memcpy(a, coef + (size_t)(t - 1) * SL, SL);
        for (unsigned k = t - 1; k-- > 0;) { /* Horner */
            o->mul(a, a, x);
            o->add(a, a, coef + (size_t)k * SL);
        }
        memcpy(shares + (size_t)(i - 1) * SL, a, SL);
        if (o->base(vsh + (size_t)(i - 1) * el, a) != 0) {
            rc = ns_fail(NS_E_CRYPTO, "frost keygen: share %u is zero; retry", i);
            goto out;
        }
        GUARD_GOTO(ns_frost_vss_verify(o->suite, t, i, a, vss_own), rc, out);
    }
    GUARD_GOTO(ns_frost_group_init(group, o->suite, t, n, vss_own, vsh), rc, out);
    if (vss) {
        memcpy(vss, vss_own, (size_t)t * el);
    }
out:
    if (rc != NS_OK) {
        ns_wipe(shares, (size_t)n * SL);
    }
    if (acc) {
        ns_secret_free(acc, 2 * SL);
    }
    free(vss_own);
    free(vsh);
    return rc;
}

static ns_err keygen_args(ns_frost_suite suite, unsigned t, unsigned n, const suite_ops **o)
{
    GUARD(ops_of(suite, o));
    ENSURE(t >= 2, NS_E_USAGE, "frost keygen: threshold %u: at least 2", t);
    ENSURE(t <= n, NS_E_USAGE, "frost keygen: threshold %u exceeds the %u signers", t, n);
    ENSURE(n <= NS_FROST_SIGNERS_MAX, NS_E_USAGE, "frost keygen: %u signers, at most %d", n,
           NS_FROST_SIGNERS_MAX);
    return NS_OK;
}

ns_err ns_frost_keygen_with_coefficients_for_test(ns_frost_suite suite, unsigned min_signers,
                                                  unsigned max_signers,
                                                  const uint8_t secret[NS_FROST_SCALAR_LEN],
                                                  const uint8_t *coefficients, uint8_t *shares,
                                                  ns_frost_group *group, uint8_t *vss_commitment)
{
    const suite_ops *o = NULL;
    memset(group, 0, sizeof *group);
    GUARD(keygen_args(suite, min_signers, max_signers, &o));
    size_t clen = (size_t)min_signers * SL;
    uint8_t *coef = ns_secret_alloc(clen);
    ENSURE(coef != NULL, NS_E_NOMEM, "frost keygen: cannot allocate locked memory");
    memcpy(coef, secret, SL);
    memcpy(coef + SL, coefficients, clen - SL);
    ns_err rc = NS_OK;
    for (unsigned k = 0; k < min_signers && rc == NS_OK; k++) {
        if (!o->scalar_ok(coef + (size_t)k * SL)) {
            rc = ns_fail(NS_E_USAGE, "frost keygen: coefficient %u is not canonical", k);
        }
    }
    if (rc == NS_OK) {
        rc = keygen_core(o, min_signers, max_signers, coef, shares, group, vss_commitment);
    }
    ns_secret_free(coef, clen);
    return rc;
}

ns_err ns_frost_keygen(ns_frost_suite suite, unsigned min_signers, unsigned max_signers,
                       uint8_t *shares, ns_frost_group *group, uint8_t *vss_commitment)
{
    const suite_ops *o = NULL;
    memset(group, 0, sizeof *group);
    GUARD(keygen_args(suite, min_signers, max_signers, &o));
    size_t clen = (size_t)min_signers * SL;
    uint8_t *coef = ns_secret_alloc(clen + 64);
    ENSURE(coef != NULL, NS_E_NOMEM, "frost keygen: cannot allocate locked memory");
    uint8_t *wide = coef + clen;
    ns_err rc = NS_OK;
    for (unsigned k = 0; k < min_signers && rc == NS_OK; k++) {
        rc = ns_rng_bytes(wide, 64);
        o->random_scalar_from(coef + (size_t)k * SL, wide);
    }
    if (rc == NS_OK) {
        rc = keygen_core(o, min_signers, max_signers, coef, shares, group, vss_commitment);
    }
    ns_secret_free(coef, clen + 64);
    return rc;
}
/* ---------------------------------------------------------------- JSON */

static ns_err hex_exact(uint8_t *out, size_t n, const cJSON *v, const char *where, const char *what)
{
    size_t got = 0;
    ENSURE(cJSON_IsString(v) && strlen(v->valuestring) == 2 * n &&
               ns_hex_decode(out, n, &got, v->valuestring, 2 * n) == NS_OK && got == n,
           NS_E_PARSE, "%s: %s must be %zu hex digits", where, what, 2 * n);
    return NS_OK;
}

static ns_err uint_member(const cJSON *obj, const char *name, unsigned max, unsigned *out,
                          const char *where)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    ENSURE(cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= max &&
               v->valuedouble == (double)(unsigned)v->valuedouble,
           NS_E_PARSE, "%s: \"%s\" must be an integer 1..%u", where, name, max);
    *out = (unsigned)v->valuedouble;
    return NS_OK;
}

/* A decimal identifier "1".."N" without sign or leading zero; 0 if not one. */
static unsigned id_key(const char *s, unsigned n)
{
    size_t len = strlen(s);
    if (len == 0 || len > 5 || s[0] == '0') {
        return 0;
    }
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= n ? v : 0;
}

ns_err ns_frost_group_from_json(ns_frost_group *g, const struct cJSON *obj, const char *where)
{
    memset(g, 0, sizeof *g);
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(obj, "algorithm");
    ENSURE(cJSON_IsString(alg), NS_E_PARSE, "%s: \"algorithm\" must be a string", where);
    ns_frost_suite suite = NS_FROST_ED25519_SHA512;
    ns_err rc = ns_frost_suite_parse(alg->valuestring, &suite);
    if (rc != NS_OK) {
        return ns_fail_ctx(rc, "%s", where);
    }
    unsigned t = 0, n = 0;
    GUARD(uint_member(obj, "min_signers", NS_FROST_SIGNERS_MAX, &t, where));
    GUARD(uint_member(obj, "max_signers", NS_FROST_SIGNERS_MAX, &n, where));
    ENSURE(t >= 2 && t <= n, NS_E_PARSE, "%s: need 2 <= min_signers <= max_signers (got %u and %u)",
           where, t, n);
    size_t el = ns_frost_element_len(suite);
    uint8_t gpk[EM];
    GUARD(hex_exact(gpk, el, cJSON_GetObjectItemCaseSensitive(obj, "group_public_key"), where,
                    "\"group_public_key\""));
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(obj, "verifying_shares");
    ENSURE(cJSON_IsObject(vs), NS_E_PARSE,
           "%s: \"verifying_shares\" must be an object {\"1\": hex, ..., \"%u\": hex}", where, n);
    uint8_t *buf = calloc(n, el);
    uint8_t *seen = calloc(n, 1);
    if (buf == NULL || seen == NULL) {
        free(buf);
        free(seen);
        BAIL(NS_E_NOMEM, "%s: out of memory", where);
    }
    size_t count = 0;
    for (const cJSON *m = vs->child; m && rc == NS_OK; m = m->next, count++) {
        unsigned id = id_key(m->string, n);
        char what[64];
        snprintf(what, sizeof what, "verifying_shares[\"%.8s\"]", m->string);
        if (id == 0) {
            rc = ns_fail(NS_E_PARSE,
                         "%s: verifying_shares has key \"%.16s\": keys are the identifiers 1..%u",
                         where, m->string, n);
        } else if (seen[id - 1]) {
            rc = ns_fail(NS_E_PARSE, "%s: verifying_shares lists identifier %u twice", where, id);
        } else {
            seen[id - 1] = 1;
            rc = hex_exact(buf + (size_t)(id - 1) * el, el, m, where, what);
        }
    }
    if (rc == NS_OK && count != n) {
        rc = ns_fail(NS_E_PARSE,
                     "%s: verifying_shares has %zu entries, expected one per identifier 1..%u",
                     where, count, n);
    }
    if (rc == NS_OK) {
        rc = ns_frost_group_init(g, suite, t, n, gpk, buf);
        if (rc != NS_OK) {
            rc = ns_fail_ctx(rc, "%s", where);
        }
    }
    free(buf);
    free(seen);
    return rc;
}

int ns_frost_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NS_FROST_ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

static ns_err group_file_members(const cJSON *root, ns_frost_group *g, char *id, const char *where)
{
    static const char *const allowed[] = {
        "version",          "id",          "algorithm",   "group_public_key",
        "verifying_shares", "min_signers", "max_signers", "vss_commitment"};
    ENSURE(cJSON_IsObject(root), NS_E_PARSE, "%s: expected a JSON object", where);
    for (const cJSON *m = root->child; m; m = m->next) {
        size_t i = 0;
        while (i < sizeof allowed / sizeof *allowed && strcmp(m->string, allowed[i]) != 0) {
            i++;
        }
        ENSURE(i < sizeof allowed / sizeof *allowed, NS_E_PARSE, "%s: unknown member \"%.40s\"",
               where, m->string);
        for (const cJSON *o = root->child; o != m; o = o->next) {
            ENSURE(strcmp(o->string, m->string) != 0, NS_E_PARSE, "%s: duplicate member \"%s\"",
                   where, m->string);
        }
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    ENSURE(cJSON_IsNumber(v) && v->valuedouble == 1.0, NS_E_UNSUPPORTED,
           "%s: \"version\" must be 1", where);
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(root, "id");
    ENSURE(cJSON_IsString(idv) && ns_frost_id_valid(idv->valuestring), NS_E_PARSE,
           "%s: \"id\" must be 1-%d characters of A-Z a-z 0-9 . _ -", where, NS_FROST_ID_MAX);
    memcpy(id, idv->valuestring, strlen(idv->valuestring) + 1);
    GUARD(ns_frost_group_from_json(g, root, where));
    const cJSON *vss = cJSON_GetObjectItemCaseSensitive(root, "vss_commitment");
    ns_err rc = NS_OK;
    if (!cJSON_IsArray(vss) || cJSON_GetArraySize(vss) != g->min_signers) {
        rc = ns_fail(NS_E_PARSE, "%s: \"vss_commitment\" must be an array of %u hex elements",
                     where, g->min_signers);
    }
    const suite_ops *o = NULL;
    if (rc == NS_OK) {
        rc = ops_of(g->suite, &o);
    }
    size_t el = o ? o->el : 0;
    uint8_t *c = rc == NS_OK ? malloc((size_t)g->min_signers * el) : NULL;
    if (rc == NS_OK && c == NULL) {
        rc = ns_fail(NS_E_NOMEM, "%s: out of memory", where);
    }
    size_t k = 0;
    for (const cJSON *e = rc == NS_OK ? vss->child : NULL; e && rc == NS_OK; e = e->next, k++) {
        rc = hex_exact(c + k * el, el, e, where, "a vss_commitment element");
        if (rc == NS_OK && !o->element_ok(c + k * el)) {
            rc = ns_fail(NS_E_PARSE, "%s: vss_commitment[%zu] is not a valid point", where, k);
        }
    }
    if (rc == NS_OK && memcmp(c, g->group_public_key, el) != 0) {
        rc = ns_fail(NS_E_PARSE, "%s: vss_commitment[0] is not the group public key", where);
    }
    for (unsigned i = 1; rc == NS_OK && i <= g->max_signers; i++) {
        uint8_t want[EM];
        if (vss_eval(o, want, c, g->min_signers, i) != 0 ||
            memcmp(want, g->verifying_shares[i - 1], el) != 0) {
            rc = ns_fail(NS_E_PARSE,
                         "%s: the verifying share of identifier %u does not match the VSS "
                         "commitment",
                         where, i);
        }
    }
    free(c);
    if (rc != NS_OK) {
        ns_frost_group_free(g);
    }
    return rc;
}

ns_err ns_frost_group_file_parse(ns_frost_group *g, char id[NS_FROST_ID_MAX + 1],
                                 const uint8_t *json, size_t len)
{
    const char *where = "frost group file";
    memset(g, 0, sizeof *g);
    id[0] = 0;
    ENSURE(len <= NS_FROST_GROUP_FILE_MAX, NS_E_TOO_BIG, "%s: %zu bytes, at most %u", where, len,
           NS_FROST_GROUP_FILE_MAX);
    ns_err rc = ns_json_validate(json, len);
    if (rc != NS_OK) {
        return ns_fail_ctx(rc, "%s", where);
    }
    cJSON *root = cJSON_ParseWithLength((const char *)json, len);
    ENSURE(root != NULL, NS_E_PARSE, "%s: not valid JSON", where);
    rc = group_file_members(root, g, id, where);
    cJSON_Delete(root);
    return rc;
}

static ns_err hex_json(ns_buf *out, const uint8_t *p, size_t n)
{
    char hex[2 * NS_FROST_ELEMENT_MAX + 1];
    GUARD(ns_hex_encode(hex, sizeof hex, p, n));
    return ns_buf_printf(out, "\"%s\"", hex);
}

ns_err ns_frost_group_file_write(const ns_frost_group *g, const char *id,
                                 const uint8_t *vss_commitment, ns_buf *out)
{
    const suite_ops *o = NULL;
    GUARD(ops_of(g->suite, &o));
    size_t el = o->el;
    ENSURE(ns_frost_id_valid(id), NS_E_USAGE, "frost group file: invalid key id");
    GUARD(ns_buf_printf(out, "{\"version\":1,\"id\":\"%s\",\"algorithm\":\"%s\",", id,
                        ns_frost_suite_name(g->suite)));
    GUARD(ns_buf_append_str(out, "\"group_public_key\":"));
    GUARD(hex_json(out, g->group_public_key, el));
    GUARD(ns_buf_append_str(out, ",\"verifying_shares\":{"));
    for (unsigned i = 1; i <= g->max_signers; i++) {
        GUARD(ns_buf_printf(out, "%s\"%u\":", i > 1 ? "," : "", i));
        GUARD(hex_json(out, g->verifying_shares[i - 1], el));
    }
    GUARD(ns_buf_printf(out, "},\"min_signers\":%u,\"max_signers\":%u,\"vss_commitment\":[",
                        g->min_signers, g->max_signers));
    for (unsigned k = 0; k < g->min_signers; k++) {
        GUARD(ns_buf_append_str(out, k ? "," : ""));
        GUARD(hex_json(out, vss_commitment + (size_t)k * el, el));
    }
    return ns_buf_append_str(out, "]}\n");
}
