/* libFuzzer target: the keys file parser (v1, v2). Whatever loads must sign and verify, and a
 * v2 policy must be consistent. */
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "audit.h"
#include "ecdsa.h"
#include "signkeys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ns_signkeys *k = NULL;
    if (ns_signkeys_load(&k, data, size) != NS_OK) {
        if (k != NULL) {
            __builtin_trap();
        }
        return 0;
    }
    if (k->count == 0 || k->count > NS_SIGNKEYS_MAX) {
        __builtin_trap();
    }
    ns_signature s;
    const ns_signkey *key = &k->keys[0];
    if (ns_signkey_sign(key, (const uint8_t *)"m", 1, 1, NULL, 0, &s) != NS_OK) {
        __builtin_trap();
    }
    if (key->alg == NS_ALG_ED25519) {
        if (crypto_sign_verify_detached(s.sig, (const uint8_t *)"m", 1, key->pub) != 0) {
            __builtin_trap();
        }
    } else if (ns_ecdsa_verify(key->alg == NS_ALG_P256 ? NS_ECDSA_P256 : NS_ECDSA_SECP256K1,
                               key->pub, s.digest, s.sig) != NS_OK) {
        __builtin_trap();
    }
    /* Version 2: every key names at least one known client; pins are unique. */
    if ((k->version == 2) != (k->nclients > 0) || k->nclients > NS_SIGNKEYS_CLIENTS_MAX) {
        __builtin_trap();
    }
    for (size_t i = 0; i < k->nclients; i++) {
        if (ns_signkeys_client_by_pin(k, k->clients[i].spki_sha256) != (int)i) {
            __builtin_trap();
        }
    }
    for (size_t i = 0; i < k->count && k->version == 2; i++) {
        uint64_t known = k->nclients == 64 ? ~0ull : (1ull << k->nclients) - 1;
        if (k->keys[i].allow == 0 || (k->keys[i].allow & ~known) != 0) {
            __builtin_trap();
        }
    }
    /* The minimum policy: a version-2 file meets its own epoch with client auth required; a
     * version-1 file has epoch 0 and fails it; the keys commitment recomputes from its parts. */
    ns_signkeys_floor f = {.require_client_auth = 1, .min_policy_epoch = k->policy_epoch};
    if ((k->version == 1 && k->policy_epoch != 0) || k->policy_epoch > 4294967295u ||
        (ns_signkeys_check_floor(k, &f) == NS_OK) != (k->version == 2)) {
        __builtin_trap();
    }
    f.min_policy_epoch = k->policy_epoch + 1;
    uint8_t c[32];
    ns_audit_keys_commitment(c, k->key_set_commitment, k->policy_commitment, k->policy_epoch,
                             k->version == 2);
    if (ns_signkeys_check_floor(k, &f) == NS_OK || memcmp(c, ns_signkeys_commitment(k), 32) != 0) {
        __builtin_trap();
    }
    ns_signkeys_free(k);
    return 0;
}
