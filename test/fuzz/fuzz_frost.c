/*
 * libFuzzer target: what FROST reads from outside. The first byte picks the path:
 *   0: a commitment list (records of u16 identifier || 32-byte hiding || 32-byte binding) handed
 *      to round two of participant 1 (whose own commitment is placed where the input says) and
 *      to the coordinator with signature shares from the input: nothing but refusals or a
 *      signature that verifies;
 *   1: the public group file parser (whatever parses must re-validate as a group);
 *   2: the keys file's FROST entry through signkeys (whatever loads is a consistent key).
 * The key is RFC 9591 appendix E.1's 2-of-3.
 */
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "frost.h"
#include "signkeys.h"

#define REC 66
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

static ns_frost_group g_group;
static ns_frost_key g_key;

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
}

static void rounds(const uint8_t *d, size_t n)
{
    ns_frost_commitment list[MAXREC];
    ns_frost_share shares[MAXREC];
    size_t m = 0;
    uint8_t own_at = n ? d[0] : 0;
    d += n ? 1 : 0;
    n -= n ? 1 : 0;
    while (n >= REC + 32 && m < MAXREC) {
        list[m].identifier = (uint16_t)(d[0] | d[1] << 8);
        memcpy(list[m].hiding, d + 2, 32);
        memcpy(list[m].binding, d + 34, 32);
        shares[m].identifier = list[m].identifier;
        memcpy(shares[m].z, d + REC, 32);
        m++;
        d += REC + 32;
        n -= REC + 32;
    }
    ns_frost_nonces nonces;
    ns_frost_share out;
    if (ns_frost_commit(&g_key, &nonces) != NS_OK) {
        __builtin_trap();
    }
    if (m > 0 && own_at < m) {
        list[own_at] = nonces.commitment;
    }
    ns_err e = ns_frost_sign(&g_key, &nonces, d, n, list, m, &out);
    if (nonces.live || !sodium_is_zero(nonces.hiding, 32)) {
        __builtin_trap(); /* the nonces are consumed whatever happened */
    }
    if (e == NS_OK &&
        (ns_frost_verify_share(&g_group, d, n, list, m, &out) != NS_OK || out.identifier != 1)) {
        __builtin_trap();
    }
    uint8_t sig[NS_FROST_SIG_MAX];
    size_t sl = 0;
    uint16_t bad = 0;
    if (m > 0 && own_at < m && e == NS_OK) {
        shares[own_at] = out;
    }
    e = ns_frost_aggregate(&g_group, d, n, list, m, shares, sig, &sl, &bad);
    if (e == NS_OK && (sl != 64 || crypto_sign_verify_detached(sig, d, n, GPK) != 0)) {
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
    uint8_t vs[NS_FROST_SIGNERS_MAX * 32];
    for (unsigned i = 0; i < g.max_signers; i++) {
        memcpy(vs + 32 * i, g.verifying_shares[i], 32);
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
        if ((key->alg == NS_ALG_FROST_ED25519) != (key->frost != NULL)) {
            __builtin_trap();
        }
        if (key->frost) {
            uint8_t pub[32];
            const ns_frost_key *f = key->frost;
            if (crypto_scalarmult_ed25519_base_noclamp(pub, f->signing_share) != 0 ||
                memcmp(pub, f->group.verifying_shares[f->identifier - 1], 32) != 0 ||
                memcmp(key->pub, f->group.group_public_key, 32) != 0) {
                __builtin_trap();
            }
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
    switch (data[0] % 3) {
    case 0:
        rounds(data + 1, size - 1);
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
