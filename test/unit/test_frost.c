/*
 * test_frost: FROST(Ed25519, SHA-512) against RFC 9591 appendix E.1 and Zcash Foundation's
 * extra vectors (../shared/vectors/frost: nonces from the vectors' randomness through the
 * test-only hook, commitments, binding factors, shares, the signature, all bit-exact), then the
 * refusals: a bad share named, identity / small-order / non-canonical points, duplicate and
 * unsorted identifiers, too few signers, altered own commitment, nonce reuse, inconsistent
 * groups, keygen and the group file.
 */
#include <cJSON.h>
#include <sodium.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "frost.h"
#include "iox.h"
#include "secret.h"
#include "t.h"

#define MAXN 300

static cJSON *load(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/frost/%s", t_vectors(), name);
    ns_buf b;
    ns_buf_init(&b, 4u << 20);
    cJSON *j = NULL;
    if (ns_read_path(p, &b) == NS_OK && ns_buf_cstr(&b) == NS_OK) {
        j = cJSON_Parse((const char *)b.data);
    }
    ns_buf_free(&b);
    CHECK(j != NULL, "vectors: %s loads", name);
    return j;
}

static const cJSON *get(const cJSON *o, const char *path)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s", path);
    const cJSON *cur = o;
    for (char *tok = strtok(tmp, "."); tok && cur; tok = strtok(NULL, ".")) {
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    }
    return cur;
}

static void hex(uint8_t *out, size_t n, const cJSON *v)
{
    size_t got = 0;
    memset(out, 0, n);
    if (!cJSON_IsString(v) ||
        ns_hex_decode(out, n, &got, v->valuestring, strlen(v->valuestring)) != NS_OK || got != n) {
        printf("# bad hex in vector\n");
    }
}

static unsigned num(const cJSON *v)
{
    if (cJSON_IsString(v)) {
        return (unsigned)atoi(v->valuestring);
    }
    return cJSON_IsNumber(v) ? (unsigned)v->valuedouble : 0;
}

static int eq(const uint8_t *a, const uint8_t *b, size_t n)
{
    return memcmp(a, b, n) == 0;
}

/* One vector file, end to end. */
static void run_vector(const char *name, ns_frost_suite suite)
{
    size_t el = ns_frost_element_len(suite), sgl = ns_frost_sig_len(suite);
    cJSON *j = load(name);
    if (!j) {
        return;
    }
    unsigned n = num(get(j, "config.MAX_PARTICIPANTS"));
    unsigned t = num(get(j, "config.MIN_PARTICIPANTS"));
    const cJSON *in = get(j, "inputs");
    uint8_t secret[32], gpk[33], coef[32 * 8];
    hex(secret, 32, get(in, "group_secret_key"));
    const cJSON *g = get(in, "group_public_key");
    hex(gpk, el, g ? g : get(in, "verifying_key_key"));
    size_t k = 0;
    for (const cJSON *c = get(in, "share_polynomial_coefficients")->child; c; c = c->next) {
        hex(coef + 32 * k++, 32, c);
    }
    CHECK(k == t - 1, "%s: %u coefficients", name, t - 1);

    /* trusted dealer with the vector's polynomial gives the vector's shares */
    uint8_t *shares = ns_secret_alloc((size_t)n * 32);
    uint8_t vss[33 * 8];
    ns_frost_group grp;
    CHECK_ERR(
        ns_frost_keygen_with_coefficients_for_test(suite, t, n, secret, coef, shares, &grp, vss),
        NS_OK, "%s: keygen with the vector's coefficients", name);
    CHECK(eq(grp.group_public_key, gpk, el), "%s: group public key", name);
    size_t nshares = 0;
    int shares_ok = 1;
    for (const cJSON *s = get(in, "participant_shares")->child; s; s = s->next, nshares++) {
        uint8_t want[32];
        unsigned id = num(get(s, "identifier"));
        hex(want, 32, get(s, "participant_share"));
        shares_ok &= id >= 1 && id <= n && eq(shares + (id - 1) * 32, want, 32);
    }
    CHECK(shares_ok && nshares == n, "%s: all %u participant shares bit-exact", name, n);

    /* round one */
    const cJSON *plist = get(in, "participant_list");
    unsigned ns = (unsigned)cJSON_GetArraySize(plist);
    ns_frost_key keys[4];
    ns_frost_nonces *nonces = ns_secret_alloc(4 * sizeof *nonces);
    ns_frost_commitment list[4];
    uint8_t msg[64];
    size_t mlen = 0;
    const char *mh = get(in, "message")->valuestring;
    CHECK(ns_hex_decode(msg, sizeof msg, &mlen, mh, strlen(mh)) == NS_OK, "%s: message", name);
    size_t i = 0;
    int r1 = 1;
    for (const cJSON *o = get(j, "round_one_outputs.outputs")->child; o && i < 4; o = o->next) {
        unsigned id = num(get(o, "identifier"));
        uint8_t hr[32], br[32], hn[32], bn[32], hc[33], bc[33];
        hex(hr, 32, get(o, "hiding_nonce_randomness"));
        hex(br, 32, get(o, "binding_nonce_randomness"));
        hex(hn, 32, get(o, "hiding_nonce"));
        hex(bn, 32, get(o, "binding_nonce"));
        hex(hc, el, get(o, "hiding_nonce_commitment"));
        hex(bc, el, get(o, "binding_nonce_commitment"));
        r1 &= ns_frost_key_init(&keys[i], &grp, id, shares + (id - 1) * 32) == NS_OK;
        r1 &= ns_frost_commit_with_randomness_for_test(&keys[i], hr, br, &nonces[i]) == NS_OK;
        r1 &= eq(nonces[i].hiding, hn, 32) && eq(nonces[i].binding, bn, 32);
        r1 &= eq(nonces[i].commitment.hiding, hc, el) && eq(nonces[i].commitment.binding, bc, el);
        list[i] = nonces[i].commitment;
        i++;
    }
    CHECK(r1 && i == ns, "%s: round one: nonces and commitments bit-exact", name);

    /* round two */
    ns_frost_share out[4];
    int r2 = 1;
    i = 0;
    for (const cJSON *o = get(j, "round_two_outputs.outputs")->child; o && i < ns; o = o->next) {
        uint8_t want[32];
        hex(want, 32, get(o, "sig_share"));
        ns_err e = ns_frost_sign(&keys[i], &nonces[i], msg, mlen, list, ns, &out[i]);
        r2 &=
            e == NS_OK && out[i].identifier == num(get(o, "identifier")) && eq(out[i].z, want, 32);
        if (e != NS_OK) {
            printf("# sign: %s\n", ns_err_msg());
        }
        i++;
    }
    CHECK(r2, "%s: round two: signature shares bit-exact", name);
    CHECK(!nonces[0].live && sodium_is_zero(nonces[0].hiding, 32), "%s: nonces consumed", name);
    for (i = 0; i < ns; i++) {
        CHECK_ERR(ns_frost_verify_share(&grp, msg, mlen, list, ns, &out[i]), NS_OK,
                  "%s: share of %u verifies (section 5.4)", name, out[i].identifier);
    }

    uint8_t sig[NS_FROST_SIG_MAX], want[NS_FROST_SIG_MAX];
    size_t sl = 0;
    uint16_t bad = 99;
    hex(want, sgl, get(j, "final_output.sig"));
    CHECK_ERR(ns_frost_aggregate(&grp, msg, mlen, list, ns, out, sig, &sl, &bad), NS_OK,
              "%s: aggregate", name);
    CHECK(sl == sgl && eq(sig, want, sgl) && bad == 0, "%s: final signature bit-exact", name);
    if (suite == NS_FROST_ED25519_SHA512) {
        CHECK(crypto_sign_verify_detached(sig, msg, mlen, gpk) == 0,
              "%s: the aggregate is a plain Ed25519 signature (libsodium)", name);
    }
    CHECK_ERR(ns_frost_verify(suite, gpk, msg, mlen, sig, sl), NS_OK, "%s: ns_frost_verify", name);
    sig[sl - 1] ^= 1;
    CHECK_ERR(ns_frost_verify(suite, gpk, msg, mlen, sig, sl), NS_E_AUTH,
              "%s: ns_frost_verify refuses a flipped bit", name);

    /* a tampered share is detected and its signer named */
    ns_frost_share bad_out[4];
    memcpy(bad_out, out, sizeof out);
    bad_out[ns - 1].z[0] ^= 1;
    CHECK_ERR(ns_frost_aggregate(&grp, msg, mlen, list, ns, bad_out, sig, &sl, &bad), NS_E_AUTH,
              "%s: tampered share refused", name);
    char want_msg[64];
    snprintf(want_msg, sizeof want_msg, "participant %u", out[ns - 1].identifier);
    CHECK(bad == out[ns - 1].identifier && strstr(ns_err_msg(), want_msg) && sl == 0,
          "%s: the bad share's participant is named (%s)", name, ns_err_msg());
    if (suite == NS_FROST_ED25519_SHA512) {
        /* two shares off by +d and -d: the aggregate would verify, each share does not */
        static const uint8_t one[32] = {1};
        memcpy(bad_out, out, sizeof out);
        crypto_core_ed25519_scalar_add(bad_out[0].z, bad_out[0].z, one);
        crypto_core_ed25519_scalar_sub(bad_out[ns - 1].z, bad_out[ns - 1].z, one);
        CHECK_ERR(ns_frost_aggregate(&grp, msg, mlen, list, ns, bad_out, sig, &sl, &bad),
                  NS_E_AUTH, "%s: shares tampered so that their sum is right: refused", name);
        CHECK(bad == out[0].identifier && sl == 0, "%s: ... the first one named (%u)", name, bad);
    }

    for (i = 0; i < ns; i++) {
        ns_frost_key_free(&keys[i]);
    }
    ns_secret_free(nonces, 4 * sizeof *nonces);
    ns_secret_free(shares, (size_t)n * 32);
    ns_frost_group_free(&grp);
    cJSON_Delete(j);
}

/* A 2-of-3 group from keygen, its key packages, and fresh commitments for 1 and 2. */
typedef struct {
    ns_frost_group g;
    uint8_t shares[3 * 32];
    uint8_t vss[2 * 32];
    ns_frost_key k[3];
    ns_frost_nonces n[3];
    ns_frost_commitment c[3];
} fixture;

static int fix_init(fixture *f)
{
    int ok = ns_frost_keygen(NS_FROST_ED25519_SHA512, 2, 3, f->shares, &f->g, f->vss) == NS_OK;
    for (unsigned i = 0; i < 3 && ok; i++) {
        ok &= ns_frost_key_init(&f->k[i], &f->g, i + 1, f->shares + 32 * i) == NS_OK;
        ok &= ns_frost_commit(&f->k[i], &f->n[i]) == NS_OK;
        f->c[i] = f->n[i].commitment;
    }
    return ok;
}

static void fix_free(fixture *f)
{
    for (unsigned i = 0; i < 3; i++) {
        ns_frost_key_free(&f->k[i]);
    }
    ns_frost_group_free(&f->g);
    ns_wipe(f, sizeof *f);
}

static void negative(void)
{
    fixture *f = ns_secret_alloc(sizeof *f);
    CHECK(fix_init(f), "keygen 2-of-3 and three key packages");
    const uint8_t msg[] = "pay 5";
    ns_frost_share s;
    ns_frost_nonces copy;

    /* every 2-subset signs */
    int all = 1;
    for (unsigned a = 0; a < 3; a++) {
        for (unsigned b = a + 1; b < 3; b++) {
            ns_frost_commitment l[2];
            ns_frost_share sh[2];
            uint8_t sig[NS_FROST_SIG_MAX];
            size_t sl;
            all &= ns_frost_commit(&f->k[a], &f->n[a]) == NS_OK;
            all &= ns_frost_commit(&f->k[b], &f->n[b]) == NS_OK;
            l[0] = f->n[a].commitment;
            l[1] = f->n[b].commitment;
            all &= ns_frost_sign(&f->k[a], &f->n[a], msg, sizeof msg, l, 2, &sh[0]) == NS_OK;
            all &= ns_frost_sign(&f->k[b], &f->n[b], msg, sizeof msg, l, 2, &sh[1]) == NS_OK;
            all &= ns_frost_aggregate(&f->g, msg, sizeof msg, l, 2, sh, sig, &sl, NULL) == NS_OK;
            all &= crypto_sign_verify_detached(sig, msg, sizeof msg, f->g.group_public_key) == 0;
        }
    }
    CHECK(all, "every 2-subset of a fresh 2-of-3 signs and verifies with libsodium");

    /* all three sign too (n between T and N) */
    {
        ns_frost_share sh[3];
        uint8_t sig[NS_FROST_SIG_MAX];
        size_t sl;
        int ok = 1;
        for (unsigned i = 0; i < 3; i++) {
            ok &= ns_frost_commit(&f->k[i], &f->n[i]) == NS_OK;
            f->c[i] = f->n[i].commitment;
        }
        for (unsigned i = 0; i < 3; i++) {
            ok &= ns_frost_sign(&f->k[i], &f->n[i], msg, sizeof msg, f->c, 3, &sh[i]) == NS_OK;
        }
        ok &= ns_frost_aggregate(&f->g, msg, sizeof msg, f->c, 3, sh, sig, &sl, NULL) == NS_OK;
        CHECK(ok, "3-of-3 signing set of a 2-of-3 key signs");
    }

#define FRESH(i)                                                                                   \
    do {                                                                                           \
        if (ns_frost_commit(&f->k[i], &f->n[i]) != NS_OK) {                                        \
            printf("# commit failed\n");                                                           \
        }                                                                                          \
        f->c[i] = f->n[i].commitment;                                                              \
    } while (0)

    /* fewer than min_signers */
    FRESH(0);
    CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, f->c, 1, &s), NS_E_USAGE,
              "one signer alone is refused");
    CHECK(strstr(ns_err_msg(), "fewer than min_signers") != NULL, "... and says why (%s)",
          ns_err_msg());
    CHECK(!f->n[0].live, "a refused sign still consumes the nonces");
    /* reuse */
    FRESH(0);
    FRESH(1);
    CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, f->c, 2, &s), NS_OK, "sign once");
    CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, f->c, 2, &s), NS_E_EXPIRED,
              "the same nonces cannot sign twice");
    /* duplicate identifiers */
    FRESH(0);
    {
        ns_frost_commitment l[2] = {f->c[0], f->c[0]};
        CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, l, 2, &s), NS_E_USAGE,
                  "duplicate identifiers refused");
        CHECK(strstr(ns_err_msg(), "duplicate identifier 1") != NULL, "... named (%s)",
              ns_err_msg());
    }
    /* unsorted, then sorted by the helper */
    FRESH(0);
    FRESH(1);
    {
        ns_frost_commitment l[2] = {f->c[1], f->c[0]};
        copy = f->n[0];
        CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, l, 2, &s), NS_E_USAGE,
                  "unsorted list refused");
        ns_frost_commitments_sort(l, 2);
        f->n[0] = copy;
        CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, l, 2, &s), NS_OK,
                  "ns_frost_commitments_sort makes it acceptable");
        ns_wipe(&copy, sizeof copy);
    }
    /* identity, small order, non-canonical, off-curve commitments */
    {
        static const uint8_t identity[32] = {1};
        uint8_t small[32] = {0}; /* (0, -1): order 2 */
        uint8_t noncanon[32];
        memset(noncanon, 0xff, 32);
        noncanon[31] = 0x7f; /* y = 2^255 - 1 >= p */
        small[0] = 0xec;
        memset(small + 1, 0xff, 30);
        small[31] = 0x7f;
        uint8_t zc[32];
        size_t got = 0;
        if (ns_hex_decode(zc, 32, &got,
                          "123456f9e9d319cad973b84cc4c835c8ee73281f5e2638d2d2b352c09edccbfb",
                          64) != NS_OK) {
            printf("# hex\n");
        }
        const uint8_t *bads[] = {identity, small, noncanon, zc};
        const char *names[] = {"identity", "small-order point", "non-canonical encoding",
                               "zcash invalid_element"};
        for (size_t b = 0; b < 4; b++) {
            FRESH(0);
            FRESH(1);
            ns_frost_commitment l[2] = {f->c[0], f->c[1]};
            memcpy(l[1].hiding, bads[b], 32);
            CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, l, 2, &s), NS_E_USAGE,
                      "%s as a hiding commitment refused", names[b]);
            CHECK(strstr(ns_err_msg(), "identifier 2") != NULL, "... names identifier 2");
            FRESH(0);
            l[0] = f->c[0];
            memcpy(l[1].hiding, f->c[1].hiding, 32);
            memcpy(l[1].binding, bads[b], 32);
            CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, l, 2, &s), NS_E_USAGE,
                      "%s as a binding commitment refused", names[b]);
            CHECK_ERR(ns_frost_element_check(NS_FROST_ED25519_SHA512, bads[b], 32), NS_E_PARSE,
                      "ns_frost_element_check refuses the %s", names[b]);
        }
    }
    /* own commitment missing / altered */
    FRESH(0);
    FRESH(1);
    FRESH(2);
    {
        ns_frost_commitment l[2] = {f->c[1], f->c[2]};
        CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, l, 2, &s), NS_E_USAGE,
                  "own commitment missing refused");
        FRESH(0);
        ns_frost_commitment m[2] = {f->c[0], f->c[1]};
        memcpy(m[0].binding, f->c[2].binding, 32);
        CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, m, 2, &s), NS_E_AUTH,
                  "own commitment altered refused");
    }
    /* round-one secrets of another participant */
    FRESH(0);
    FRESH(1);
    {
        ns_frost_commitment l[2] = {f->c[0], f->c[1]};
        CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[1], msg, sizeof msg, l, 2, &s), NS_E_USAGE,
                  "participant 2's nonces refused by participant 1's key");
        CHECK(!f->n[1].live, "... and consumed");
    }
    /* identifier out of range */
    FRESH(0);
    {
        ns_frost_commitment l[2] = {f->c[0], f->c[1]};
        l[1].identifier = 4;
        CHECK_ERR(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, l, 2, &s), NS_E_USAGE,
                  "identifier 4 of a 3-signer group refused");
    }
    /* a share verified against the wrong message / non-canonical share */
    FRESH(0);
    FRESH(1);
    {
        ns_frost_commitment l[2] = {f->c[0], f->c[1]};
        ns_frost_share sh[2];
        uint8_t sig[NS_FROST_SIG_MAX];
        size_t sl;
        uint16_t bad = 0;
        CHECK(ns_frost_sign(&f->k[0], &f->n[0], msg, sizeof msg, l, 2, &sh[0]) == NS_OK &&
                  ns_frost_sign(&f->k[1], &f->n[1], (const uint8_t *)"other", 5, l, 2, &sh[1]) ==
                      NS_OK,
              "two shares over different messages");
        CHECK_ERR(ns_frost_aggregate(&f->g, msg, sizeof msg, l, 2, sh, sig, &sl, &bad), NS_E_AUTH,
                  "share over another message refused");
        CHECK(bad == 2, "... and participant 2 named");
        CHECK_ERR(ns_frost_verify_share(&f->g, msg, sizeof msg, l, 2, &sh[0]), NS_OK,
                  "participant 1's share still verifies alone");
        memset(sh[0].z, 0xff, 32);
        CHECK_ERR(ns_frost_verify_share(&f->g, msg, sizeof msg, l, 2, &sh[0]), NS_E_AUTH,
                  "a non-canonical share refused");
        sh[0].identifier = 2;
        CHECK_ERR(ns_frost_aggregate(&f->g, msg, sizeof msg, l, 2, sh, sig, &sl, &bad), NS_E_USAGE,
                  "shares in an order other than the list's refused");
    }

    /* key packages: a share that does not match its verifying share */
    {
        ns_frost_key k;
        CHECK_ERR(ns_frost_key_init(&k, &f->g, 1, f->shares + 32), NS_E_PARSE,
                  "share 2 presented as identifier 1 refused");
        CHECK_ERR(ns_frost_key_init(&k, &f->g, 4, f->shares), NS_E_PARSE,
                  "identifier outside 1..max refused");
        CHECK_ERR(ns_frost_key_init(&k, &f->g, 0, f->shares), NS_E_PARSE, "identifier 0 refused");
    }
    /* groups: inconsistent verifying shares, bad thresholds */
    {
        uint8_t vs[3 * 32];
        ns_frost_group g2;
        for (unsigned i = 0; i < 3; i++) {
            memcpy(vs + 32 * i, f->g.verifying_shares[i], 32);
        }
        CHECK_ERR(
            ns_frost_group_init(&g2, NS_FROST_ED25519_SHA512, 2, 3, f->g.group_public_key, vs),
            NS_OK, "the keygen's group re-validates");
        ns_frost_group_free(&g2);
        memcpy(vs + 64, f->g.verifying_shares[0], 32);
        CHECK_ERR(
            ns_frost_group_init(&g2, NS_FROST_ED25519_SHA512, 2, 3, f->g.group_public_key, vs),
            NS_E_PARSE, "a verifying share off the polynomial refused");
        CHECK(strstr(ns_err_msg(), "identifier 3") != NULL, "... named (%s)", ns_err_msg());
        CHECK_ERR(
            ns_frost_group_init(&g2, NS_FROST_ED25519_SHA512, 2, 3, f->g.verifying_shares[1], vs),
            NS_E_PARSE, "a wrong group key refused");
        CHECK_ERR(
            ns_frost_group_init(&g2, NS_FROST_ED25519_SHA512, 3, 2, f->g.group_public_key, vs),
            NS_E_PARSE, "min_signers > max_signers refused");
        CHECK_ERR(
            ns_frost_group_init(&g2, NS_FROST_ED25519_SHA512, 1, 3, f->g.group_public_key, vs),
            NS_E_PARSE, "min_signers 1 refused");
        CHECK_ERR(
            ns_frost_group_init(&g2, NS_FROST_SECP256K1_SHA256, 2, 3, f->g.group_public_key, vs),
            NS_E_PARSE, "Ed25519 points are not secp256k1 points");
    }
    /* keygen arguments */
    {
        uint8_t sh[32 * 4];
        ns_frost_group g2;
        CHECK_ERR(ns_frost_keygen(NS_FROST_ED25519_SHA512, 3, 2, sh, &g2, NULL), NS_E_USAGE,
                  "keygen T > N refused");
        CHECK_ERR(ns_frost_keygen(NS_FROST_ED25519_SHA512, 1, 2, sh, &g2, NULL), NS_E_USAGE,
                  "keygen T < 2 refused");
        CHECK_ERR(ns_frost_vss_verify(NS_FROST_ED25519_SHA512, 2, 2, f->shares, f->vss), NS_E_AUTH,
                  "vss_verify refuses share 1 as identifier 2");
        CHECK_ERR(ns_frost_vss_verify(NS_FROST_ED25519_SHA512, 2, 1, f->shares, f->vss), NS_OK,
                  "vss_verify accepts share 1");
    }
    /* reconstruction: any 2 shares interpolate to the secret of the group key */
    {
        int ok = 1;
        for (unsigned a = 0; a < 3; a++) {
            for (unsigned b = a + 1; b < 3; b++) {
                /* s = s_a * b/(b-a) + s_b * a/(a-b) */
                uint8_t xa[32] = {(uint8_t)(a + 1)}, xb[32] = {(uint8_t)(b + 1)}, d[32], inv[32],
                        la[32], lb[32], t1[32], t2[32], sec[32], pub[32];
                crypto_core_ed25519_scalar_sub(d, xb, xa);
                ok &= crypto_core_ed25519_scalar_invert(inv, d) == 0;
                crypto_core_ed25519_scalar_mul(la, xb, inv);
                crypto_core_ed25519_scalar_negate(inv, inv);
                crypto_core_ed25519_scalar_mul(lb, xa, inv);
                crypto_core_ed25519_scalar_mul(t1, la, f->shares + 32 * a);
                crypto_core_ed25519_scalar_mul(t2, lb, f->shares + 32 * b);
                crypto_core_ed25519_scalar_add(sec, t1, t2);
                ok &= crypto_scalarmult_ed25519_base_noclamp(pub, sec) == 0 &&
                      memcmp(pub, f->g.group_public_key, 32) == 0;
                ns_wipe(sec, 32);
            }
        }
        CHECK(ok, "any 2 keygen shares reconstruct the group secret");
    }
    /* the group file round-trips and is strict */
    {
        ns_buf b;
        ns_buf_init(&b, 1u << 20);
        ns_frost_group g2;
        char id[NS_FROST_ID_MAX + 1];
        CHECK_ERR(ns_frost_group_file_write(&f->g, "treasury", f->vss, &b), NS_OK,
                  "group file written");
        CHECK_ERR(ns_frost_group_file_parse(&g2, id, b.data, b.len), NS_OK, "group file parses");
        CHECK(strcmp(id, "treasury") == 0 && g2.min_signers == 2 && g2.max_signers == 3 &&
                  memcmp(g2.group_public_key, f->g.group_public_key, 32) == 0 &&
                  memcmp(g2.verifying_shares[2], f->g.verifying_shares[2], 32) == 0,
              "group file round-trips");
        ns_frost_group_free(&g2);
        char *txt = strndup((const char *)b.data, b.len);
        char *p = strstr(txt, "\"2\":\"");
        p[5] = p[5] == '0' ? '1' : '0';
        CHECK(ns_frost_group_file_parse(&g2, id, (const uint8_t *)txt, strlen(txt)) != NS_OK,
              "a group file with a flipped verifying share refused (%s)", ns_err_msg());
        p[5] = p[5] == '0' ? '1' : '0';
        p = strstr(txt, "\"min_signers\":2");
        p[14] = '3';
        CHECK(ns_frost_group_file_parse(&g2, id, (const uint8_t *)txt, strlen(txt)) != NS_OK,
              "a group file with another threshold refused (%s)", ns_err_msg());
        p[14] = '2';
        txt[strlen(txt) - 2] = ',';
        CHECK(ns_frost_group_file_parse(&g2, id, (const uint8_t *)txt, strlen(txt)) != NS_OK,
              "a malformed group file refused");
        free(txt);
        ns_buf_free(&b);
    }
    fix_free(f);
    ns_secret_free(f, sizeof *f);
}

/* FROST(secp256k1, SHA-256) beyond the RFC vector: a fresh 2-of-3 and its refusals. */
static void secp256k1_suite(void)
{
    const ns_frost_suite K1 = NS_FROST_SECP256K1_SHA256;
    uint8_t *shares = ns_secret_alloc(3 * 32);
    uint8_t vss[2 * 33];
    ns_frost_group g;
    ns_frost_key k[3];
    ns_frost_nonces *n = ns_secret_alloc(3 * sizeof *n);
    const uint8_t msg[] = "taproot-ish";
    int ok = ns_frost_keygen(K1, 2, 3, shares, &g, vss) == NS_OK;
    for (unsigned i = 0; i < 3 && ok; i++) {
        ok &= ns_frost_key_init(&k[i], &g, i + 1, shares + 32 * i) == NS_OK;
    }
    CHECK(ok && g.group_public_key[0] >= 2 && g.group_public_key[0] <= 3,
          "secp256k1: keygen 2-of-3, 33-byte compressed group key");
    int all = ok;
    for (unsigned a = 0; a < 3 && ok; a++) {
        for (unsigned b = a + 1; b < 3; b++) {
            ns_frost_commitment l[2];
            ns_frost_share sh[2];
            uint8_t sig[NS_FROST_SIG_MAX];
            size_t sl = 0;
            all &= ns_frost_commit(&k[a], &n[a]) == NS_OK && ns_frost_commit(&k[b], &n[b]) == NS_OK;
            l[0] = n[a].commitment;
            l[1] = n[b].commitment;
            all &= ns_frost_sign(&k[a], &n[a], msg, sizeof msg, l, 2, &sh[0]) == NS_OK;
            all &= ns_frost_sign(&k[b], &n[b], msg, sizeof msg, l, 2, &sh[1]) == NS_OK;
            all &= ns_frost_aggregate(&g, msg, sizeof msg, l, 2, sh, sig, &sl, NULL) == NS_OK;
            all &= sl == 65 &&
                   ns_frost_verify(K1, g.group_public_key, msg, sizeof msg, sig, sl) == NS_OK;
            all &=
                ns_frost_verify(K1, g.group_public_key, msg, sizeof msg - 1, sig, sl) == NS_E_AUTH;
        }
    }
    CHECK(all, "secp256k1: every 2-subset signs; the signature verifies, not for another message");
    if (!ok) {
        return;
    }
    ns_frost_commitment l[2];
    ns_frost_share sh[2];
    uint8_t sig[NS_FROST_SIG_MAX];
    size_t sl;
    uint16_t bad = 0;
    CHECK(ns_frost_commit(&k[0], &n[0]) == NS_OK && ns_frost_commit(&k[1], &n[1]) == NS_OK,
          "secp256k1: commit");
    l[0] = n[0].commitment;
    l[1] = n[1].commitment;
    CHECK(ns_frost_sign(&k[0], &n[0], msg, sizeof msg, l, 2, &sh[0]) == NS_OK &&
              ns_frost_sign(&k[1], &n[1], msg, sizeof msg, l, 2, &sh[1]) == NS_OK,
          "secp256k1: both sign");
    sh[0].z[31] ^= 1;
    CHECK(ns_frost_aggregate(&g, msg, sizeof msg, l, 2, sh, sig, &sl, &bad) == NS_E_AUTH &&
              bad == 1 && strstr(ns_err_msg(), "participant 1") != NULL,
          "secp256k1: a tampered share is refused and its participant named");
    memset(sh[0].z, 0xff, 32);
    CHECK_ERR(ns_frost_verify_share(&g, msg, sizeof msg, l, 2, &sh[0]), NS_E_AUTH,
              "secp256k1: a share >= n refused");
    /* points: uncompressed prefix, x >= p, x not on the curve, the identity's 0x00 */
    uint8_t bads[4][33];
    memcpy(bads[0], l[1].hiding, 33);
    bads[0][0] = 4;
    memset(bads[1], 0xff, 33);
    bads[1][0] = 2;
    memset(bads[2], 0, 33);
    bads[2][0] = 2;
    bads[2][32] = 5; /* x = 5: 5^3 + 7 = 132 is not a square mod p */
    memset(bads[3], 0, 33);
    for (int b = 0; b < 4; b++) {
        CHECK(ns_frost_commit(&k[0], &n[0]) == NS_OK, "secp256k1: commit");
        l[0] = n[0].commitment;
        ns_frost_commitment m[2] = {l[0], l[1]};
        memcpy(m[1].binding, bads[b], 33);
        CHECK_ERR(ns_frost_sign(&k[0], &n[0], msg, sizeof msg, m, 2, &sh[0]), NS_E_USAGE,
                  "secp256k1: invalid point %d as a commitment refused", b);
        CHECK_ERR(ns_frost_element_check(K1, bads[b], 33), NS_E_PARSE,
                  "secp256k1: element check refuses invalid point %d", b);
    }
    CHECK(ns_frost_commit(&k[0], &n[0]) == NS_OK, "secp256k1: commit");
    l[0] = n[0].commitment;
    CHECK_ERR(ns_frost_sign(&k[0], &n[0], msg, sizeof msg, l, 1, &sh[0]), NS_E_USAGE,
              "secp256k1: one signer alone refused");
    /* the group file round-trips with 33-byte elements */
    ns_buf b;
    ns_buf_init(&b, 1u << 20);
    ns_frost_group g2;
    char id[NS_FROST_ID_MAX + 1];
    CHECK(ns_frost_group_file_write(&g, "k1", vss, &b) == NS_OK &&
              ns_frost_group_file_parse(&g2, id, b.data, b.len) == NS_OK && g2.suite == K1 &&
              memcmp(g2.group_public_key, g.group_public_key, 33) == 0,
          "secp256k1: group file round-trips");
    ns_frost_group_free(&g2);
    ns_buf_free(&b);
    for (unsigned i = 0; i < 3; i++) {
        ns_frost_key_free(&k[i]);
    }
    ns_frost_group_free(&g);
    ns_secret_free(n, 3 * sizeof *n);
    ns_secret_free(shares, 3 * 32);
}

int main(void)
{
    if (ns_frost_init() != NS_OK) {
        return 1;
    }
    run_vector("frost-ed25519-sha512.json", NS_FROST_ED25519_SHA512);
    run_vector("zcash-frost/vectors.json", NS_FROST_ED25519_SHA512);
    run_vector("zcash-frost/vectors-big-identifier.json", NS_FROST_ED25519_SHA512);
    run_vector("frost-secp256k1-sha256.json", NS_FROST_SECP256K1_SHA256);
    negative();
    secp256k1_suite();
    T_DONE();
}
