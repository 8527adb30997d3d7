/*
 * libFuzzer target: what FROST reads from outside. The first byte picks the path:
 *   0: a commitment list (records of u16 identifier || 32-byte hiding || 32-byte binding) handed
 *      to round two of participant 1 (whose own commitment is placed where the input says) and
 *      to the coordinator with signature shares from the input: nothing but refusals or a
 *      signature that verifies;
 *   1: the public group file parser (whatever parses must re-validate as a group);
 *   2: the keys file's FROST entry through signkeys (whatever loads is a consistent key);
 *   3: as 0 for FROST(secp256k1, SHA-256) (records with 33-byte points).
 * The keys are RFC 9591 appendix E.1's and E.5's 2-of-3.
 */
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "frost.h"
#include "signkeys.h"

#define MAXREC 8

static const uint8_t GPK[32] = {0x15, 0xd2, 0x1c, 0xcd, 0x7e, 0xe4, 0x29, 0x59, 0x56, 0x2f, 0xc8,
                                0xaa, 0x63, 0x22, 0x4c, 0x88, 0x51, 0xfb, 0x3e, 0xc8, 0x5a, 0x3f,
                                0xaf, 0x66, 0x04, 0x0d, 0x38, 0x0f, 0xb9, 0x73, 0x86, 0x73};
static const uint8_t SHARES[3][32] = {
    {0x92, 0x9d, 0xcc, 0x59, 0x04, 0x07, 0xaa, 0xe7, 0xd3, 0x88, 0x76,
     0x1c, 0xdd, 0xb0, 0xc0, 0xdb, 0x6f, 0x56, 0x27, 0xae, 0xa8, 0xe2,
     0x17, 0xf4, 0xa0, 0x33, 0xf2, 0xec, 0x83, 0xd9, 0x35, 0x09},
    {0xa9, 0x1e, 0x66, 0xe0, 0x12, 0xe4, 0x36, 0x4a, 0xc9, 0xaa, 0xa4,
     0x05, 0xfc, 0xaf, 0xd3, 0x70, 0x40, 0x2d, 0x98, 0x59, 0xf7, 0xb6,
     0x68, 0x5c, 0x07, 0xee, 0xd7, 0x6b, 0xf4, 0x09, 0xe8, 0x0d},
    {0xd3, 0xcb, 0x09, 0x0a, 0x07, 0x5e, 0xb1, 0x54, 0xe8, 0x2f, 0xdb,
     0x4b, 0x3c, 0xb5, 0x07, 0xf1, 0x10, 0x04, 0x09, 0x05, 0x46, 0x8b,
     0xb9, 0xc4, 0x6d, 0xa8, 0xbd, 0xea, 0x64, 0x3a, 0x9a, 0x02}};

/* RFC 9591 E.5: group secret, the polynomial's other coefficient, the group key */
static const uint8_t K1_SECRET[32] = {
    0x0d, 0x00, 0x41, 0x50, 0xd2, 0x7c, 0x3b, 0xf2, 0xa4, 0x2f, 0x31, 0x26, 0x83, 0xd3, 0x5f, 0xac,
    0x73, 0x94, 0xb1, 0xe9, 0xe3, 0x18, 0x24, 0x9c, 0x1b, 0xfe, 0x7f, 0x07, 0x95, 0xa8, 0x31, 0x14};
static const uint8_t K1_COEF[32] = {
    0xfb, 0xf8, 0x5e, 0xad, 0xae, 0x30, 0x58, 0xea, 0x14, 0xf1, 0x91, 0x48, 0xbb, 0x72, 0xb4, 0x5e,
    0x43, 0x99, 0xc0, 0xb1, 0x60, 0x28, 0xac, 0xaf, 0x03, 0x95, 0xc9, 0xb0, 0x3c, 0x82, 0x35, 0x79};
static const uint8_t K1_GPK[33] = {0x02, 0xf3, 0x7c, 0x34, 0xb6, 0x6c, 0xed, 0x1f, 0xb5,
                                   0x1c, 0x34, 0xa9, 0x0b, 0xda, 0xe0, 0x06, 0x90, 0x1f,
                                   0x10, 0x62, 0x5c, 0xc0, 0x6c, 0x4f, 0x64, 0x66, 0x3b,
                                   0x0e, 0xae, 0x87, 0xd8, 0x7b, 0x4f};

static ns_frost_group g_group, k1_group;
static ns_frost_key g_key, k1_key;

static void setup(void)
{
    uint8_t vs[3 * 32];
    if (ns_frost_init() != NS_OK) {
        __builtin_trap();
    }
    for (int i = 0; i < 3; i++) {
        if (crypto_scalarmult_ed25519_base_noclamp(vs + 32 * i, SHARES[i]) != 0) {
            __builtin_trap();
        }
    }
    if (ns_frost_group_init(&g_group, NS_FROST_ED25519_SHA512, 2, 3, GPK, vs) != NS_OK ||
        ns_frost_key_init(&g_key, &g_group, 1, SHARES[0]) != NS_OK) {
        __builtin_trap();
    }
    /* secp256k1: verifying shares through the module's own keygen on E.5's polynomial */
    uint8_t ks[3 * 32];
    if (ns_frost_keygen_with_coefficients_for_test(NS_FROST_SECP256K1_SHA256, 2, 3, K1_SECRET,
                                                   K1_COEF, ks, &k1_group, NULL) != NS_OK ||
        memcmp(k1_group.group_public_key, K1_GPK, 33) != 0 ||
        ns_frost_key_init(&k1_key, &k1_group, 1, ks) != NS_OK) {
        __builtin_trap();
    }
}

static void rounds(const ns_frost_key *key, const ns_frost_group *grp, const uint8_t *d, size_t n)
{
    size_t el = ns_frost_element_len(grp->suite), rec = 2 + 2 * el + 32;
    ns_frost_commitment list[MAXREC];
    ns_frost_share shares[MAXREC];
    size_t m = 0;
    uint8_t own_at = n ? d[0] : 0;
    d += n ? 1 : 0;
    n -= n ? 1 : 0;
    while (n >= rec && m < MAXREC) {
        memset(&list[m], 0, sizeof list[m]);
        list[m].identifier = (uint16_t)(d[0] | d[1] << 8);
        memcpy(list[m].hiding, d + 2, el);
        memcpy(list[m].binding, d + 2 + el, el);
        shares[m].identifier = list[m].identifier;
        memcpy(shares[m].z, d + 2 + 2 * el, 32);
        m++;
        d += rec;
        n -= rec;
    }
    ns_frost_nonces nonces;
    ns_frost_share out;
    if (ns_frost_commit(key, &nonces) != NS_OK) {
        __builtin_trap();
    }
    if (m > 0 && own_at < m) {
        list[own_at] = nonces.commitment;
    }
    ns_err e = ns_frost_sign(key, &nonces, d, n, list, m, &out);
    if (nonces.live || !sodium_is_zero(nonces.hiding, 32)) {
        __builtin_trap(); /* the nonces are consumed whatever happened */
    }
    if (e == NS_OK &&
        (ns_frost_verify_share(grp, d, n, list, m, &out) != NS_OK || out.identifier != 1)) {
        __builtin_trap();
    }
    uint8_t sig[NS_FROST_SIG_MAX];
    size_t sl = 0;
    uint16_t bad = 0;
    if (m > 0 && own_at < m && e == NS_OK) {
        shares[own_at] = out;
    }
    e = ns_frost_aggregate(grp, d, n, list, m, shares, sig, &sl, &bad);
    if (e == NS_OK && (sl != ns_frost_sig_len(grp->suite) ||
                       ns_frost_verify(grp->suite, grp->group_public_key, d, n, sig, sl) != NS_OK ||
                       (grp->suite == NS_FROST_ED25519_SHA512 &&
                        crypto_sign_verify_detached(sig, d, n, GPK) != 0))) {
        __builtin_trap();
    }
    if (e != NS_OK && sl != 0) {
        __builtin_trap();
    }
}

static void group_file(const uint8_t *d, size_t n)
{
    ns_frost_group g, g2;
    char id[NS_FROST_ID_MAX + 1];
    if (ns_frost_group_file_parse(&g, id, d, n) != NS_OK) {
        if (g.verifying_shares != NULL) {
            __builtin_trap();
        }
        return;
    }
    uint8_t vs[NS_FROST_SIGNERS_MAX * NS_FROST_ELEMENT_MAX];
    size_t el = ns_frost_element_len(g.suite);
    for (unsigned i = 0; i < g.max_signers; i++) {
        memcpy(vs + el * i, g.verifying_shares[i], el);
    }
    if (strlen(id) == 0 || ns_frost_group_init(&g2, g.suite, g.min_signers, g.max_signers,
                                               g.group_public_key, vs) != NS_OK) {
        __builtin_trap();
    }
    ns_frost_group_free(&g2);
    ns_frost_group_free(&g);
}

static void keys_entry(const uint8_t *d, size_t n)
{
    ns_signkeys *k = NULL;
    if (ns_signkeys_load(&k, d, n) != NS_OK) {
        return;
    }
    for (size_t i = 0; i < k->count; i++) {
        const ns_signkey *key = &k->keys[i];
        int is_frost = key->alg == NS_ALG_FROST_ED25519 || key->alg == NS_ALG_FROST_SECP256K1;
        if (is_frost != (key->frost != NULL)) {
            __builtin_trap();
        }
        if (key->frost) {
            /* what loaded re-validates, and the reported key is the group key */
            const ns_frost_key *f = key->frost;
            ns_frost_key again;
            if (ns_frost_key_init(&again, &f->group, f->identifier, f->signing_share) != NS_OK ||
                key->pub_len != ns_frost_element_len(f->group.suite) ||
                memcmp(key->pub, f->group.group_public_key, key->pub_len) != 0) {
                __builtin_trap();
            }
            ns_frost_key_free(&again);
        }
    }
    ns_signkeys_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size == 0) {
        return 0;
    }
    switch (data[0] % 4) {
    case 0:
        rounds(&g_key, &g_group, data + 1, size - 1);
        break;
    case 3:
        rounds(&k1_key, &k1_group, data + 1, size - 1);
        break;
    case 1:
        group_file(data + 1, size - 1);
        break;
    default:
        keys_entry(data + 1, size - 1);
        break;
    }
    return 0;
}
