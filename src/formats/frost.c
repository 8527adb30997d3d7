/*
 * frost: FROST(Ed25519, SHA-512), RFC 9591 (see frost.h for the contract).
 *
 * Every group and scalar operation is libsodium's: crypto_core_ed25519_scalar_* (mod L),
 * crypto_scalarmult_ed25519_base_noclamp / _noclamp (constant time; they refuse an identity
 * result) and crypto_core_ed25519_add. The hash functions of section 6.1:
 *   H1 = SHA-512(ctx || "rho" || m) mod L      H2 = SHA-512(m) mod L (RFC 8032's challenge)
 *   H3 = SHA-512(ctx || "nonce" || m) mod L    H4 = SHA-512(ctx || "msg" || m)
 *   H5 = SHA-512(ctx || "com" || m)            ctx = "FROST-ED25519-SHA512-v1"
 * Invariants: every element that enters from outside passes crypto_core_ed25519_is_valid_point
 * (canonical, on the curve, prime-order subgroup, not small order: so never the identity);
 * every outside scalar is canonical. Secret scalars (shares, nonces, polynomial coefficients)
 * live in caller-provided secret memory or in locals wiped before return.
 */
#include "frost.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "json.h"
#include "rng.h"
#include "secret.h"

#define EL 32 /* Ed25519 element length */
#define SL NS_FROST_SCALAR_LEN

static const char CTX[] = "FROST-ED25519-SHA512-v1";

/* ---------------------------------------------------------------- suites and encodings */

ns_err ns_frost_init(void)
{
    ENSURE(sodium_init() >= 0, NS_E_CRYPTO, "frost: libsodium failed to initialise");
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
    ENSURE(strcmp(name, "frost-secp256k1-sha256") != 0, NS_E_UNSUPPORTED,
           "frost-secp256k1-sha256 is not supported by this build (only frost-ed25519-sha512)");
    BAIL(NS_E_PARSE, "unknown FROST ciphersuite \"%.40s\" (expected frost-ed25519-sha512)", name);
}

size_t ns_frost_element_len(ns_frost_suite suite)
{
    return suite == NS_FROST_SECP256K1_SHA256 ? 33 : EL;
}

size_t ns_frost_sig_len(ns_frost_suite suite)
{
    return suite == NS_FROST_SECP256K1_SHA256 ? 65 : 64;
}

static ns_err suite_check(ns_frost_suite suite)
{
    ENSURE(suite == NS_FROST_ED25519_SHA512, NS_E_UNSUPPORTED,
           "FROST ciphersuite %s is not supported by this build", ns_frost_suite_name(suite));
    GUARD(ns_frost_init());
    return NS_OK;
}

ns_err ns_frost_element_check(ns_frost_suite suite, const uint8_t *p, size_t len)
{
    GUARD(suite_check(suite));
    ENSURE(len == EL, NS_E_PARSE, "element is %zu bytes, expected %d", len, EL);
    ENSURE(crypto_core_ed25519_is_valid_point(p) == 1, NS_E_PARSE,
           "element is not a valid point of the prime-order group (non-canonical, off the curve, "
           "small order or the identity)");
    return NS_OK;
}

static int scalar_canonical(const uint8_t s[SL])
{
    uint8_t wide[64] = {0}, red[SL];
    memcpy(wide, s, SL);
    crypto_core_ed25519_scalar_reduce(red, wide);
    int ok = ns_ct_equal(red, s, SL);
    ns_wipe(wide, sizeof wide);
    ns_wipe(red, sizeof red);
    return ok;
}

ns_err ns_frost_scalar_check(ns_frost_suite suite, const uint8_t *p, size_t len)
{
    GUARD(suite_check(suite));
    ENSURE(len == SL, NS_E_PARSE, "scalar is %zu bytes, expected %d", len, SL);
    ENSURE(scalar_canonical(p), NS_E_PARSE, "scalar is not canonical (not below the group order)");
    return NS_OK;
}

static void scalar_from_u16(uint8_t out[SL], unsigned v)
{
    memset(out, 0, SL);
    out[0] = (uint8_t)(v & 0xff);
    out[1] = (uint8_t)(v >> 8);
}

static int scalar_is_zero(const uint8_t s[SL])
{
    return sodium_is_zero(s, SL);
}

/* SHA-512(ctx || tag || a || b || c) (tag NULL: no ctx, no tag: H2). */
static void hash3(uint8_t out[64], const char *tag, const uint8_t *a, size_t alen, const uint8_t *b,
                  size_t blen, const uint8_t *c, size_t clen)
{
    crypto_hash_sha512_state st;
    crypto_hash_sha512_init(&st);
    if (tag) {
        crypto_hash_sha512_update(&st, (const uint8_t *)CTX, sizeof CTX - 1);
        crypto_hash_sha512_update(&st, (const uint8_t *)tag, strlen(tag));
    }
    crypto_hash_sha512_update(&st, a, alen);
    if (blen) {
        crypto_hash_sha512_update(&st, b, blen);
    }
    if (clen) {
        crypto_hash_sha512_update(&st, c, clen);
    }
    crypto_hash_sha512_final(&st, out);
    ns_wipe(&st, sizeof st);
}

static void hash_to_scalar(uint8_t out[SL], const char *tag, const uint8_t *a, size_t alen,
                           const uint8_t *b, size_t blen, const uint8_t *c, size_t clen)
{
    uint8_t h[64];
    hash3(h, tag, a, alen, b, blen, c, clen);
    crypto_core_ed25519_scalar_reduce(out, h);
    ns_wipe(h, sizeof h);
}

static const uint8_t IDENTITY[EL] = {1};

/* ---------------------------------------------------------------- groups and keys */

/* lambda_i(x) = prod_{j != i} (x - x_j) / (x_i - x_j) over ids[0..n) (public values). */
static void lagrange_at(uint8_t out[SL], const uint16_t *ids, size_t n, size_t i, unsigned x)
{
    uint8_t num[SL], den[SL], t[SL], xi[SL], xj[SL], xs[SL], inv[SL];
    scalar_from_u16(num, 1);
    scalar_from_u16(den, 1);
    scalar_from_u16(xi, ids[i]);
    scalar_from_u16(xs, x);
    for (size_t j = 0; j < n; j++) {
        if (j == i) {
            continue;
        }
        scalar_from_u16(xj, ids[j]);
        crypto_core_ed25519_scalar_sub(t, xs, xj);
        crypto_core_ed25519_scalar_mul(num, num, t);
        crypto_core_ed25519_scalar_sub(t, xi, xj);
        crypto_core_ed25519_scalar_mul(den, den, t);
    }
    /* den != 0: the identifiers are distinct (checked by every caller) */
    if (crypto_core_ed25519_scalar_invert(inv, den) != 0) {
        memset(out, 0, SL);
        return;
    }
    crypto_core_ed25519_scalar_mul(out, num, inv);
}

/* sum_i k_i * P_i (public); -1 when a term or the sum is not representable (identity). */
static int multi_mult(uint8_t out[EL], const uint8_t (*scalars)[SL], const uint8_t *const *points,
                      size_t n)
{
    uint8_t acc[EL], term[EL];
    memcpy(acc, IDENTITY, EL);
    for (size_t i = 0; i < n; i++) {
        if (scalar_is_zero(scalars[i])) {
            continue;
        }
        if (crypto_scalarmult_ed25519_noclamp(term, scalars[i], points[i]) != 0 ||
            crypto_core_ed25519_add(acc, acc, term) != 0) {
            return -1;
        }
    }
    memcpy(out, acc, EL);
    return 0;
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
static ns_err group_consistent(const ns_frost_group *g)
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
        uint8_t want[EL];
        for (unsigned i = 0; i < t; i++) {
            lagrange_at(lam[i], ids, t, i, x);
        }
        if (multi_mult(want, (const uint8_t(*)[SL])lam, pts, t) != 0) {
            rc = ns_fail(NS_E_PARSE, "frost group: verifying shares interpolate to the identity");
        } else if (x == 0 && memcmp(want, g->group_public_key, EL) != 0) {
            rc = ns_fail(NS_E_PARSE,
                         "frost group: the verifying shares of identifiers 1..%u do not "
                         "interpolate to group_public_key",
                         t);
        } else if (x != 0 && memcmp(want, g->verifying_shares[x - 1], EL) != 0) {
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
    memset(g, 0, sizeof *g);
    GUARD(suite_check(suite));
    ENSURE(min_signers >= 2, NS_E_PARSE, "frost group: min_signers %u: at least 2", min_signers);
    ENSURE(min_signers <= max_signers, NS_E_PARSE,
           "frost group: min_signers %u exceeds max_signers %u", min_signers, max_signers);
    ENSURE(max_signers <= NS_FROST_SIGNERS_MAX, NS_E_TOO_BIG,
           "frost group: max_signers %u, at most %d are supported", max_signers,
           NS_FROST_SIGNERS_MAX);
    ns_err rc = ns_frost_element_check(suite, group_public_key, EL);
    if (rc != NS_OK) {
        return ns_fail_ctx(rc, "frost group: group_public_key");
    }
    for (unsigned i = 0; i < max_signers; i++) {
        rc = ns_frost_element_check(suite, verifying_shares + (size_t)i * EL, EL);
        if (rc != NS_OK) {
            return ns_fail_ctx(rc, "frost group: verifying share of identifier %u", i + 1);
        }
    }
    g->verifying_shares = malloc((size_t)max_signers * sizeof *g->verifying_shares);
    ENSURE(g->verifying_shares != NULL, NS_E_NOMEM, "frost group: out of memory");
    g->suite = suite;
    g->min_signers = (uint16_t)min_signers;
    g->max_signers = (uint16_t)max_signers;
    memcpy(g->group_public_key, group_public_key, EL);
    for (unsigned i = 0; i < max_signers; i++) {
        memset(g->verifying_shares[i], 0, NS_FROST_ELEMENT_MAX);
        memcpy(g->verifying_shares[i], verifying_shares + (size_t)i * EL, EL);
    }
    rc = group_consistent(g);
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
    memset(k, 0, sizeof *k);
    GUARD(suite_check(g->suite));
    ENSURE(identifier >= 1 && identifier <= g->max_signers, NS_E_PARSE,
           "frost key: identifier %u is outside 1..%u (max_signers)", identifier, g->max_signers);
    ENSURE(scalar_canonical(signing_share) && !scalar_is_zero(signing_share), NS_E_PARSE,
           "frost key: signing_share is not a canonical nonzero scalar");
    uint8_t pub[EL];
    ENSURE(crypto_scalarmult_ed25519_base_noclamp(pub, signing_share) == 0, NS_E_PARSE,
           "frost key: signing_share is not usable");
    ENSURE(memcmp(pub, g->verifying_shares[identifier - 1], EL) == 0, NS_E_PARSE,
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
static ns_err nonce_generate(uint8_t out[SL], const uint8_t rnd[NS_FROST_RANDOM_LEN],
                             const uint8_t secret[SL])
{
    hash_to_scalar(out, "nonce", rnd, NS_FROST_RANDOM_LEN, secret, SL, NULL, 0);
    /* a zero nonce (probability 2^-252) would give an identity commitment: refuse it */
    ENSURE(!scalar_is_zero(out), NS_E_CRYPTO, "frost: nonce generation produced zero; retry");
    return NS_OK;
}

ns_err ns_frost_commit_with_randomness_for_test(const ns_frost_key *k,
                                                const uint8_t hiding_rand[NS_FROST_RANDOM_LEN],
                                                const uint8_t binding_rand[NS_FROST_RANDOM_LEN],
                                                ns_frost_nonces *nonces)
{
    memset(nonces, 0, sizeof *nonces);
    GUARD(suite_check(k->group.suite));
    ENSURE(k->signing_share != NULL, NS_E_USAGE, "frost: key package has no signing share");
    ns_err rc = nonce_generate(nonces->hiding, hiding_rand, k->signing_share);
    if (rc == NS_OK) {
        rc = nonce_generate(nonces->binding, binding_rand, k->signing_share);
    }
    if (rc == NS_OK &&
        (crypto_scalarmult_ed25519_base_noclamp(nonces->commitment.hiding, nonces->hiding) != 0 ||
         crypto_scalarmult_ed25519_base_noclamp(nonces->commitment.binding, nonces->binding) !=
             0)) {
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
    size_t n;
    uint16_t ids[NS_FROST_SIGNERS_MAX];
    uint8_t (*rho)[SL];           /* binding factor of list[i] */
    uint8_t (*comm)[EL];          /* D_i + rho_i * E_i */
    uint8_t group_commitment[EL]; /* R */
    uint8_t challenge[SL];        /* c */
} session;

static void session_free(session *s)
{
    free(s->rho);
    free(s->comm);
    s->rho = NULL;
    s->comm = NULL;
}

static ns_err list_check(const ns_frost_group *g, const ns_frost_commitment *list, size_t n)
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
        ENSURE(crypto_core_ed25519_is_valid_point(list[i].hiding) == 1, NS_E_USAGE,
               "commitment list: hiding commitment of identifier %u is not a valid point "
               "(identity, small order, non-canonical or off the curve)",
               id);
        ENSURE(crypto_core_ed25519_is_valid_point(list[i].binding) == 1, NS_E_USAGE,
               "commitment list: binding commitment of identifier %u is not a valid point "
               "(identity, small order, non-canonical or off the curve)",
               id);
    }
    return NS_OK;
}

/* Sections 4.4 (binding factors), 4.5 (group commitment), 4.6 (challenge). */
static ns_err session_init(session *s, const ns_frost_group *g, const uint8_t *msg, size_t msg_len,
                           const ns_frost_commitment *list, size_t n)
{
    memset(s, 0, sizeof *s);
    GUARD(suite_check(g->suite));
    ENSURE(msg != NULL || msg_len == 0, NS_E_USAGE, "frost: no message");
    GUARD(list_check(g, list, n));
    s->n = n;
    s->rho = malloc(n * sizeof *s->rho);
    s->comm = malloc(n * sizeof *s->comm);
    if (s->rho == NULL || s->comm == NULL) {
        session_free(s);
        BAIL(NS_E_NOMEM, "frost: out of memory");
    }
    uint8_t msg_hash[64], enc_hash[64], prefix[EL + 128];
    hash3(msg_hash, "msg", msg, msg_len, NULL, 0, NULL, 0);
    {
        crypto_hash_sha512_state st;
        crypto_hash_sha512_init(&st);
        crypto_hash_sha512_update(&st, (const uint8_t *)CTX, sizeof CTX - 1);
        crypto_hash_sha512_update(&st, (const uint8_t *)"com", 3);
        for (size_t i = 0; i < n; i++) {
            uint8_t id[SL];
            scalar_from_u16(id, list[i].identifier);
            crypto_hash_sha512_update(&st, id, SL);
            crypto_hash_sha512_update(&st, list[i].hiding, EL);
            crypto_hash_sha512_update(&st, list[i].binding, EL);
        }
        crypto_hash_sha512_final(&st, enc_hash);
    }
    memcpy(prefix, g->group_public_key, EL);
    memcpy(prefix + EL, msg_hash, 64);
    memcpy(prefix + EL + 64, enc_hash, 64);
    uint8_t acc[EL];
    memcpy(acc, IDENTITY, EL);
    for (size_t i = 0; i < n; i++) {
        uint8_t id[SL], be[EL];
        s->ids[i] = list[i].identifier;
        scalar_from_u16(id, list[i].identifier);
        hash_to_scalar(s->rho[i], "rho", prefix, sizeof prefix, id, SL, NULL, 0);
        if (crypto_scalarmult_ed25519_noclamp(be, s->rho[i], list[i].binding) != 0 ||
            crypto_core_ed25519_add(s->comm[i], list[i].hiding, be) != 0 ||
            crypto_core_ed25519_add(acc, acc, s->comm[i]) != 0) {
            session_free(s);
            BAIL(NS_E_USAGE, "commitment list: the commitment of identifier %u is unusable",
                 list[i].identifier);
        }
    }
    if (memcmp(acc, IDENTITY, EL) == 0) {
        session_free(s);
        BAIL(NS_E_USAGE, "commitment list: the group commitment is the identity");
    }
    memcpy(s->group_commitment, acc, EL);
    hash_to_scalar(s->challenge, NULL, acc, EL, g->group_public_key, EL, msg, msg_len);
    return NS_OK;
}

/* ---------------------------------------------------------------- round two */

ns_err ns_frost_sign(const ns_frost_key *k, ns_frost_nonces *nonces, const uint8_t *msg,
                     size_t msg_len, const ns_frost_commitment *list, size_t n, ns_frost_share *out)
{
    memset(out, 0, sizeof *out);
    ns_err rc = NS_OK;
    session s = {0};
    uint8_t lam[SL], t[SL], z[SL];
    if (!nonces->live) {
        ns_wipe(nonces, sizeof *nonces);
        BAIL(NS_E_EXPIRED, "frost: these nonces were already used or never generated");
    }
    if (k->signing_share == NULL) {
        rc = ns_fail(NS_E_USAGE, "frost: key package has no signing share");
        goto out;
    }
    GUARD_GOTO(session_init(&s, &k->group, msg, msg_len, list, n), rc, out);
    size_t me = n;
    for (size_t i = 0; i < n; i++) {
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
    if (memcmp(list[me].hiding, nonces->commitment.hiding, EL) != 0 ||
        memcmp(list[me].binding, nonces->commitment.binding, EL) != 0) {
        rc = ns_fail(NS_E_AUTH,
                     "commitment list: the commitment of identifier %u is not the one this "
                     "participant issued",
                     k->identifier);
        goto out;
    }
    lagrange_at(lam, s.ids, n, me, 0);
    /* z = d + e * rho + lambda * s * c */
    crypto_core_ed25519_scalar_mul(t, lam, k->signing_share);
    crypto_core_ed25519_scalar_mul(t, t, s.challenge);
    crypto_core_ed25519_scalar_mul(z, nonces->binding, s.rho[me]);
    crypto_core_ed25519_scalar_add(z, z, t);
    crypto_core_ed25519_scalar_add(z, z, nonces->hiding);
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
    uint16_t id = s->ids[i];
    ENSURE(share->identifier == id, NS_E_USAGE,
           "signature share %zu is from identifier %u, expected %u (the list's order)", i,
           share->identifier, id);
    ENSURE(scalar_canonical(share->z), NS_E_AUTH,
           "signature share of participant %u is not a canonical scalar", id);
    uint8_t lam[SL], cl[SL], lhs[EL], rhs[EL], t[EL];
    lagrange_at(lam, s->ids, s->n, i, 0);
    crypto_core_ed25519_scalar_mul(cl, s->challenge, lam);
    int ok = crypto_scalarmult_ed25519_base_noclamp(lhs, share->z) == 0 &&
             crypto_scalarmult_ed25519_noclamp(t, cl, g->verifying_shares[id - 1]) == 0 &&
             crypto_core_ed25519_add(rhs, s->comm[i], t) == 0 && memcmp(lhs, rhs, EL) == 0;
    ENSURE(ok, NS_E_AUTH,
           "signature share of participant %u does not verify against its verifying share", id);
    return NS_OK;
}

ns_err ns_frost_verify_share(const ns_frost_group *g, const uint8_t *msg, size_t msg_len,
                             const ns_frost_commitment *list, size_t n, const ns_frost_share *share)
{
    session s;
    GUARD(session_init(&s, g, msg, msg_len, list, n));
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
    GUARD(session_init(&s, g, msg, msg_len, list, n));
    ns_err rc = NS_OK;
    uint8_t z[SL] = {0};
    for (size_t i = 0; i < n && rc == NS_OK; i++) {
        rc = share_check(g, &s, i, &shares[i]);
        if (rc == NS_E_AUTH && bad_identifier) {
            *bad_identifier = s.ids[i];
        }
        crypto_core_ed25519_scalar_add(z, z, shares[i].z);
    }
    if (rc == NS_OK) {
        uint8_t out[64];
        memcpy(out, s.group_commitment, EL);
        memcpy(out + EL, z, SL);
        rc = ns_frost_verify(g->suite, g->group_public_key, msg, msg_len, out, 64);
        if (rc == NS_OK) {
            memcpy(sig, out, 64);
            *sig_len = 64;
        }
    }
    session_free(&s);
    return rc;
}

ns_err ns_frost_verify(ns_frost_suite suite, const uint8_t *group_public_key, const uint8_t *msg,
                       size_t msg_len, const uint8_t *sig, size_t sig_len)
{
    GUARD(suite_check(suite));
    ENSURE(sig_len == 64, NS_E_AUTH, "signature is %zu bytes, expected 64", sig_len);
    ENSURE(crypto_sign_verify_detached(sig, msg, msg_len, group_public_key) == 0, NS_E_AUTH,
           "the aggregate signature does not verify under the group public key");
    return NS_OK;
}

/* ---------------------------------------------------------------- trusted dealer */

/* sum_k C_k * x^k (appendix C.2), public. */
static int vss_eval(uint8_t out[EL], const uint8_t *vss, unsigned t, unsigned x)
{
    uint8_t pw[SL], xs[SL], acc[EL], term[EL];
    scalar_from_u16(pw, 1);
    scalar_from_u16(xs, x);
    memcpy(acc, IDENTITY, EL);
    for (unsigned k = 0; k < t; k++) {
        if (crypto_scalarmult_ed25519_noclamp(term, pw, vss + (size_t)k * EL) != 0 ||
            crypto_core_ed25519_add(acc, acc, term) != 0) {
            return -1;
        }
        crypto_core_ed25519_scalar_mul(pw, pw, xs);
    }
    memcpy(out, acc, EL);
    return 0;
}

ns_err ns_frost_vss_verify(ns_frost_suite suite, unsigned min_signers, unsigned identifier,
                           const uint8_t share[NS_FROST_SCALAR_LEN], const uint8_t *vss_commitment)
{
    GUARD(suite_check(suite));
    uint8_t want[EL], got[EL];
    ENSURE(vss_eval(want, vss_commitment, min_signers, identifier) == 0 &&
               crypto_scalarmult_ed25519_base_noclamp(got, share) == 0 &&
               memcmp(want, got, EL) == 0,
           NS_E_AUTH, "the share of identifier %u does not match the VSS commitment", identifier);
    return NS_OK;
}

static ns_err keygen_core(unsigned t, unsigned n, uint8_t *coef /* secret, t*SL */, uint8_t *shares,
                          ns_frost_group *group, uint8_t *vss)
{
    uint8_t *vss_own = malloc((size_t)t * EL);
    uint8_t *vsh = malloc((size_t)n * EL);
    uint8_t *acc = ns_secret_alloc(2 * SL);
    ns_err rc = NS_OK;
    if (vss_own == NULL || vsh == NULL || acc == NULL) {
        rc = ns_fail(NS_E_NOMEM, "frost keygen: out of memory");
        goto out;
    }
    for (unsigned k = 0; k < t; k++) {
        if (crypto_scalarmult_ed25519_base_noclamp(vss_own + (size_t)k * EL,
                                                   coef + (size_t)k * SL) != 0) {
            rc = ns_fail(NS_E_CRYPTO, "frost keygen: a zero coefficient; retry");
            goto out;
        }
    }
    for (unsigned i = 1; i <= n; i++) {
        uint8_t *a = acc, *x = acc + SL;
        scalar_from_u16(x, i);
        memcpy(a, coef + (size_t)(t - 1) * SL, SL);
        for (unsigned k = t - 1; k-- > 0;) { /* Horner */
            crypto_core_ed25519_scalar_mul(a, a, x);
            crypto_core_ed25519_scalar_add(a, a, coef + (size_t)k * SL);
        }
        memcpy(shares + (size_t)(i - 1) * SL, a, SL);
        if (crypto_scalarmult_ed25519_base_noclamp(vsh + (size_t)(i - 1) * EL, a) != 0) {
            rc = ns_fail(NS_E_CRYPTO, "frost keygen: share %u is zero; retry", i);
            goto out;
        }
        GUARD_GOTO(ns_frost_vss_verify(NS_FROST_ED25519_SHA512, t, i, a, vss_own), rc, out);
    }
    GUARD_GOTO(ns_frost_group_init(group, NS_FROST_ED25519_SHA512, t, n, vss_own, vsh), rc, out);
    if (vss) {
        memcpy(vss, vss_own, (size_t)t * EL);
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

static ns_err keygen_args(ns_frost_suite suite, unsigned t, unsigned n)
{
    GUARD(suite_check(suite));
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
    memset(group, 0, sizeof *group);
    GUARD(keygen_args(suite, min_signers, max_signers));
    size_t clen = (size_t)min_signers * SL;
    uint8_t *coef = ns_secret_alloc(clen);
    ENSURE(coef != NULL, NS_E_NOMEM, "frost keygen: cannot allocate locked memory");
    memcpy(coef, secret, SL);
    memcpy(coef + SL, coefficients, clen - SL);
    ns_err rc = NS_OK;
    for (unsigned k = 0; k < min_signers && rc == NS_OK; k++) {
        if (!scalar_canonical(coef + (size_t)k * SL)) {
            rc = ns_fail(NS_E_USAGE, "frost keygen: coefficient %u is not canonical", k);
        }
    }
    if (rc == NS_OK) {
        rc = keygen_core(min_signers, max_signers, coef, shares, group, vss_commitment);
    }
    ns_secret_free(coef, clen);
    return rc;
}

ns_err ns_frost_keygen(ns_frost_suite suite, unsigned min_signers, unsigned max_signers,
                       uint8_t *shares, ns_frost_group *group, uint8_t *vss_commitment)
{
    memset(group, 0, sizeof *group);
    GUARD(keygen_args(suite, min_signers, max_signers));
    size_t clen = (size_t)min_signers * SL;
    uint8_t *coef = ns_secret_alloc(clen + 64);
    ENSURE(coef != NULL, NS_E_NOMEM, "frost keygen: cannot allocate locked memory");
    uint8_t *wide = coef + clen;
    ns_err rc = NS_OK;
    for (unsigned k = 0; k < min_signers && rc == NS_OK; k++) {
        rc = ns_rng_bytes(wide, 64);
        crypto_core_ed25519_scalar_reduce(coef + (size_t)k * SL, wide);
    }
    if (rc == NS_OK) {
        rc = keygen_core(min_signers, max_signers, coef, shares, group, vss_commitment);
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
    ns_frost_suite suite;
    ns_err rc = ns_frost_suite_parse(alg->valuestring, &suite);
    if (rc != NS_OK) {
        return ns_fail_ctx(rc, "%s", where);
    }
    unsigned t = 0, n = 0;
    GUARD(uint_member(obj, "min_signers", NS_FROST_SIGNERS_MAX, &t, where));
    GUARD(uint_member(obj, "max_signers", NS_FROST_SIGNERS_MAX, &n, where));
    ENSURE(t >= 2 && t <= n, NS_E_PARSE, "%s: need 2 <= min_signers <= max_signers (got %u and %u)",
           where, t, n);
    uint8_t gpk[EL];
    GUARD(hex_exact(gpk, EL, cJSON_GetObjectItemCaseSensitive(obj, "group_public_key"), where,
                    "\"group_public_key\""));
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(obj, "verifying_shares");
    ENSURE(cJSON_IsObject(vs), NS_E_PARSE,
           "%s: \"verifying_shares\" must be an object {\"1\": hex, ..., \"%u\": hex}", where, n);
    uint8_t *buf = calloc(n, EL);
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
            rc = hex_exact(buf + (size_t)(id - 1) * EL, EL, m, where, what);
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

static int id_ok(const char *s)
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
    ENSURE(cJSON_IsString(idv) && id_ok(idv->valuestring), NS_E_PARSE,
           "%s: \"id\" must be 1-%d characters of A-Z a-z 0-9 . _ -", where, NS_FROST_ID_MAX);
    memcpy(id, idv->valuestring, strlen(idv->valuestring) + 1);
    GUARD(ns_frost_group_from_json(g, root, where));
    const cJSON *vss = cJSON_GetObjectItemCaseSensitive(root, "vss_commitment");
    ns_err rc = NS_OK;
    if (!cJSON_IsArray(vss) || cJSON_GetArraySize(vss) != g->min_signers) {
        rc = ns_fail(NS_E_PARSE, "%s: \"vss_commitment\" must be an array of %u hex elements",
                     where, g->min_signers);
    }
    uint8_t *c = rc == NS_OK ? malloc((size_t)g->min_signers * EL) : NULL;
    if (rc == NS_OK && c == NULL) {
        rc = ns_fail(NS_E_NOMEM, "%s: out of memory", where);
    }
    size_t k = 0;
    for (const cJSON *e = rc == NS_OK ? vss->child : NULL; e && rc == NS_OK; e = e->next, k++) {
        rc = hex_exact(c + k * EL, EL, e, where, "a vss_commitment element");
        if (rc == NS_OK && crypto_core_ed25519_is_valid_point(c + k * EL) != 1) {
            rc = ns_fail(NS_E_PARSE, "%s: vss_commitment[%zu] is not a valid point", where, k);
        }
    }
    if (rc == NS_OK && memcmp(c, g->group_public_key, EL) != 0) {
        rc = ns_fail(NS_E_PARSE, "%s: vss_commitment[0] is not the group public key", where);
    }
    for (unsigned i = 1; rc == NS_OK && i <= g->max_signers; i++) {
        uint8_t want[EL];
        if (vss_eval(want, c, g->min_signers, i) != 0 ||
            memcmp(want, g->verifying_shares[i - 1], EL) != 0) {
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
    GUARD(suite_check(g->suite));
    ENSURE(id_ok(id), NS_E_USAGE, "frost group file: invalid key id");
    GUARD(ns_buf_printf(out, "{\"version\":1,\"id\":\"%s\",\"algorithm\":\"%s\",", id,
                        ns_frost_suite_name(g->suite)));
    GUARD(ns_buf_append_str(out, "\"group_public_key\":"));
    GUARD(hex_json(out, g->group_public_key, EL));
    GUARD(ns_buf_append_str(out, ",\"verifying_shares\":{"));
    for (unsigned i = 1; i <= g->max_signers; i++) {
        GUARD(ns_buf_printf(out, "%s\"%u\":", i > 1 ? "," : "", i));
        GUARD(hex_json(out, g->verifying_shares[i - 1], EL));
    }
    GUARD(ns_buf_printf(out, "},\"min_signers\":%u,\"max_signers\":%u,\"vss_commitment\":[",
                        g->min_signers, g->max_signers));
    for (unsigned k = 0; k < g->min_signers; k++) {
        GUARD(ns_buf_append_str(out, k ? "," : ""));
        GUARD(hex_json(out, vss_commitment + (size_t)k * EL, EL));
    }
    return ns_buf_append_str(out, "]}\n");
}
