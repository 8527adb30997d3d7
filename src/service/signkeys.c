/*
 * signkeys: the keys file (versions 1 and 2) and signing (see signkeys.h).
 *
 * cJSON copies every string it parses into the ordinary heap, so before cJSON_Delete every
 * string value in the tree is wiped (an explicit-stack walk, no recursion on input). The
 * decoded keys go straight into one ns_secret_alloc block (locked, never dumped).
 */
#include "signkeys.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "ecdsa.h"
#include "json.h"
#include "secret.h"

#define JSON_DEPTH_MAX 1024 /* above cJSON's own nesting limit (1000) */

static const uint8_t SPKI_ED25519[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                       0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
static const uint8_t SPKI_P256[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                    0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                    0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
/* secp256k1 with a 33-byte compressed point (a FROST(secp256k1) group key) */
static const uint8_t SPKI_K1_COMPRESSED[] = {0x30, 0x36, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86,
                                             0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
                                             0x81, 0x04, 0x00, 0x0a, 0x03, 0x22, 0x00};
static const uint8_t SPKI_K1[] = {0x30, 0x56, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86,
                                  0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
                                  0x81, 0x04, 0x00, 0x0a, 0x03, 0x42, 0x00};

const char *ns_sign_alg_name(ns_sign_alg alg)
{
    switch (alg) {
    case NS_ALG_ED25519:
        return "ed25519";
    case NS_ALG_P256:
        return "ecdsa-p256";
    case NS_ALG_SECP256K1:
        return "ecdsa-secp256k1";
    case NS_ALG_FROST_ED25519:
        return "frost-ed25519-sha512";
    case NS_ALG_FROST_SECP256K1:
        return "frost-secp256k1-sha256";
    }
    return "unknown";
}

/* Wipes every string value and member name in the tree, without recursion. */
static void json_wipe(cJSON *root)
{
    cJSON *stack[JSON_DEPTH_MAX];
    size_t depth = 0;
    cJSON *n = root;
    while (n != NULL) {
        if (n->valuestring) {
            ns_wipe(n->valuestring, strlen(n->valuestring));
        }
        if (n->child && depth < JSON_DEPTH_MAX) {
            stack[depth++] = n->next;
            n = n->child;
            continue;
        }
        n = n->next;
        while (n == NULL && depth > 0) {
            n = stack[--depth];
        }
    }
}

static int id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NS_SIGNKEY_ID_MAX) {
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

/* Only the allowed member names, each at most once. */
static ns_err members_check(const cJSON *obj, const char *const *allowed, size_t nallowed,
                            const char *where)
{
    for (const cJSON *m = obj->child; m; m = m->next) {
        size_t i = 0;
        while (i < nallowed && strcmp(m->string, allowed[i]) != 0) {
            i++;
        }
        ENSURE(i < nallowed, NS_E_PARSE, "%s: unknown member \"%.40s\"", where, m->string);
        for (const cJSON *o = obj->child; o != m; o = o->next) {
            ENSURE(strcmp(o->string, m->string) != 0, NS_E_PARSE, "%s: duplicate member \"%s\"",
                   where, m->string);
        }
    }
    return NS_OK;
}

/* A FROST share entry (signkeys.h); k->id is set, where names the entry. */
static ns_err load_frost(ns_signkey *k, const cJSON *ent, int version, const char *where)
{
    static const char *const allowed[] = {"id",
                                          "algorithm",
                                          "identifier",
                                          "signing_share",
                                          "group_public_key",
                                          "verifying_shares",
                                          "min_signers",
                                          "max_signers",
                                          "allow"};
    GUARD(members_check(ent, allowed, version >= 2 ? 9 : 8, where));
    ns_frost_group g;
    GUARD(ns_frost_group_from_json(&g, ent, where));
    const cJSON *idn = cJSON_GetObjectItemCaseSensitive(ent, "identifier");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(ent, "signing_share");
    ns_err rc = NS_OK;
    uint8_t share[NS_FROST_SCALAR_LEN];
    size_t n = 0;
    if (!(cJSON_IsNumber(idn) && idn->valuedouble >= 1 && idn->valuedouble <= g.max_signers &&
          idn->valuedouble == (double)(unsigned)idn->valuedouble)) {
        rc = ns_fail(NS_E_PARSE, "%s: \"identifier\" must be an integer 1..%u (max_signers)", where,
                     g.max_signers);
    } else if (!cJSON_IsString(sh) || strlen(sh->valuestring) != 2 * NS_FROST_SCALAR_LEN ||
               ns_hex_decode(share, sizeof share, &n, sh->valuestring, 2 * NS_FROST_SCALAR_LEN) !=
                   NS_OK ||
               n != NS_FROST_SCALAR_LEN) {
        rc = ns_fail(NS_E_PARSE, "%s: \"signing_share\" must be %d hex digits (a scalar)", where,
                     2 * NS_FROST_SCALAR_LEN);
    }
    if (rc == NS_OK) {
        k->frost = calloc(1, sizeof *k->frost);
        if (k->frost == NULL) {
            rc = ns_fail(NS_E_NOMEM, "%s: out of memory", where);
        }
    }
    if (rc == NS_OK) {
        rc = ns_frost_key_init(k->frost, &g, (unsigned)idn->valuedouble, share);
        if (rc != NS_OK) {
            free(k->frost);
            k->frost = NULL;
            rc = ns_fail_ctx(rc, "%s", where);
        }
    }
    ns_wipe(share, sizeof share);
    if (rc == NS_OK) {
        k->alg = g.suite == NS_FROST_ED25519_SHA512 ? NS_ALG_FROST_ED25519 : NS_ALG_FROST_SECP256K1;
        k->pub_len = ns_frost_element_len(g.suite);
        memcpy(k->pub, g.group_public_key, k->pub_len);
    }
    ns_frost_group_free(&g);
    return rc;
}

static ns_err load_entry(ns_signkey *k, const cJSON *ent, size_t idx, int version)
{
    static const char *const allowed[] = {"id", "algorithm", "private_key", "allow"};
    char where[96];
    snprintf(where, sizeof where, "keys file: keys[%zu]", idx);
    ENSURE(cJSON_IsObject(ent), NS_E_PARSE, "%s: expected an object", where);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(ent, "id");
    if (cJSON_IsString(id) && id_valid(id->valuestring)) {
        snprintf(where, sizeof where, "keys file: keys[%zu] (id \"%s\")", idx, id->valuestring);
    }
    ENSURE(version >= 2 || !cJSON_HasObjectItem(ent, "allow"), NS_E_PARSE,
           "%s: \"allow\" needs \"version\": 2 and a \"clients\" list", where);
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(ent, "algorithm");
    if (cJSON_IsString(alg) && strncmp(alg->valuestring, "frost-", 6) == 0) {
        ENSURE(cJSON_IsString(id) && id_valid(id->valuestring), NS_E_PARSE,
               "%s: id must be 1-%d characters of A-Z a-z 0-9 . _ -", where, NS_SIGNKEY_ID_MAX);
        memcpy(k->id, id->valuestring, strlen(id->valuestring) + 1);
        return load_frost(k, ent, version, where);
    }
    GUARD(members_check(ent, allowed, version >= 2 ? 4 : 3, where));
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(ent, "private_key");
    ENSURE(cJSON_IsString(id), NS_E_PARSE, "%s: \"id\" must be a string", where);
    ENSURE(id_valid(id->valuestring), NS_E_PARSE,
           "%s: id must be 1-%d characters of A-Z a-z 0-9 . _ -", where, NS_SIGNKEY_ID_MAX);
    snprintf(where, sizeof where, "keys file: keys[%zu] (id \"%s\")", idx, id->valuestring);
    ENSURE(cJSON_IsString(alg), NS_E_PARSE, "%s: \"algorithm\" must be a string", where);
    ENSURE(cJSON_IsString(pk), NS_E_PARSE, "%s: \"private_key\" must be a string", where);
    memcpy(k->id, id->valuestring, strlen(id->valuestring) + 1);
    const char *a = alg->valuestring;
    const char *s = pk->valuestring;
    size_t slen = strlen(s);
    if (strcmp(a, "ed25519") == 0) {
        uint8_t raw[64];
        size_t n = 0;
        k->alg = NS_ALG_ED25519;
        if (slen > 88 || ns_b64_decode(raw, sizeof raw, &n, s, slen, NS_B64_STRICT) != NS_OK ||
            (n != 32 && n != 64)) {
            ns_wipe(raw, sizeof raw);
            BAIL(NS_E_PARSE,
                 "%s: private_key must be base64 of a 32-byte Ed25519 seed (or 64-byte seed || "
                 "public key)",
                 where);
        }
        crypto_sign_seed_keypair(k->pub, k->priv, raw);
        k->pub_len = 32;
        int bad = n == 64 && !ns_ct_equal(raw + 32, k->pub, 32);
        ns_wipe(raw, sizeof raw);
        ENSURE(!bad, NS_E_PARSE,
               "%s: the public half of the 64-byte private_key does not match "
               "its seed",
               where);
        return NS_OK;
    }
    if (strcmp(a, "ecdsa-p256") == 0 || strcmp(a, "ecdsa-secp256k1") == 0) {
        k->alg = a[6] == 'p' ? NS_ALG_P256 : NS_ALG_SECP256K1;
        size_t n = 0;
        if (slen != 64 || ns_hex_decode(k->priv, 32, &n, s, slen) != NS_OK || n != 32) {
            BAIL(NS_E_PARSE, "%s: private_key must be exactly 64 hex digits (a 32-byte %s scalar)",
                 where, a);
        }
        ns_err e = ns_ecdsa_public(k->alg == NS_ALG_P256 ? NS_ECDSA_P256 : NS_ECDSA_SECP256K1,
                                   k->priv, k->pub);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "%s", where);
        }
        k->pub_len = 65;
        return NS_OK;
    }
    BAIL(NS_E_PARSE,
         "%s: unknown algorithm \"%.32s\" (expected ed25519, ecdsa-p256, ecdsa-secp256k1, "
         "frost-ed25519-sha512 or frost-secp256k1-sha256)",
         where, a);
}

static int client_index(const ns_signkeys *ks, const char *id)
{
    for (size_t i = 0; i < ks->nclients; i++) {
        if (strcmp(ks->clients[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static ns_err load_client(ns_signkeys *ks, const cJSON *ent, size_t idx)
{
    static const char *const allowed[] = {"id", "spki_sha256", "max_signs_per_second"};
    char where[96];
    ns_signclient *c = &ks->clients[idx];
    snprintf(where, sizeof where, "keys file: clients[%zu]", idx);
    ENSURE(cJSON_IsObject(ent), NS_E_PARSE, "%s: expected an object", where);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(ent, "id");
    ENSURE(cJSON_IsString(id) && id_valid(id->valuestring), NS_E_PARSE,
           "%s: \"id\" must be a string of 1-%d characters of A-Z a-z 0-9 . _ -", where,
           NS_SIGNKEY_ID_MAX);
    snprintf(where, sizeof where, "keys file: clients[%zu] (id \"%s\")", idx, id->valuestring);
    GUARD(members_check(ent, allowed, 3, where));
    ENSURE(client_index(ks, id->valuestring) < 0, NS_E_PARSE, "%s: duplicate client id", where);
    memcpy(c->id, id->valuestring, strlen(id->valuestring) + 1);
    const cJSON *pin = cJSON_GetObjectItemCaseSensitive(ent, "spki_sha256");
    size_t n = 0;
    ENSURE(cJSON_IsString(pin) && strlen(pin->valuestring) == 64 &&
               ns_hex_decode(c->spki_sha256, 32, &n, pin->valuestring, 64) == NS_OK && n == 32,
           NS_E_PARSE,
           "%s: \"spki_sha256\" must be 64 hex digits: the SHA-256 of the client certificate's "
           "DER SubjectPublicKeyInfo (openssl x509 -in C -pubkey -noout | openssl pkey -pubin "
           "-outform DER | sha256sum)",
           where);
    for (size_t j = 0; j < idx; j++) {
        ENSURE(memcmp(ks->clients[j].spki_sha256, c->spki_sha256, 32) != 0, NS_E_PARSE,
               "%s: the same spki_sha256 as clients[%zu] (\"%s\"): one key, one client", where, j,
               ks->clients[j].id);
    }
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(ent, "max_signs_per_second");
    if (rate != NULL) {
        ENSURE(cJSON_IsNumber(rate) && rate->valuedouble >= 1 &&
                   rate->valuedouble <= NS_SIGNCLIENT_RATE_MAX &&
                   rate->valuedouble == (double)(uint32_t)rate->valuedouble,
               NS_E_PARSE, "%s: \"max_signs_per_second\" must be an integer 1..%d", where,
               NS_SIGNCLIENT_RATE_MAX);
        c->max_signs_per_second = (uint32_t)rate->valuedouble;
    }
    return NS_OK;
}

static ns_err load_clients(ns_signkeys *ks, const cJSON *clients)
{
    ENSURE(cJSON_IsArray(clients), NS_E_PARSE,
           "keys file: version 2 needs \"clients\": an array of {id, spki_sha256}");
    int n = cJSON_GetArraySize(clients);
    ENSURE(n >= 1, NS_E_PARSE, "keys file: \"clients\" is empty: nobody could sign");
    ENSURE(n <= NS_SIGNKEYS_CLIENTS_MAX, NS_E_TOO_BIG,
           "keys file: %d clients, at most %d are supported", n, NS_SIGNKEYS_CLIENTS_MAX);
    size_t i = 0;
    for (const cJSON *e = clients->child; e; e = e->next, i++) {
        GUARD(load_client(ks, e, i));
        ks->nclients = i + 1;
    }
    return NS_OK;
}

/* "allow" of keys[idx] (version 2): known client ids, each once, at least one. */
static ns_err load_allow(const ns_signkeys *ks, ns_signkey *k, const cJSON *ent, size_t idx)
{
    const cJSON *allow = cJSON_GetObjectItemCaseSensitive(ent, "allow");
    ENSURE(cJSON_IsArray(allow), NS_E_PARSE,
           "keys file: keys[%zu] (id \"%s\"): version 2 needs \"allow\": the client ids that "
           "may use this key",
           idx, k->id);
    ENSURE(allow->child != NULL, NS_E_PARSE,
           "keys file: keys[%zu] (id \"%s\"): \"allow\" is empty: name a client or remove the "
           "key",
           idx, k->id);
    size_t j = 0;
    for (const cJSON *a = allow->child; a; a = a->next, j++) {
        ENSURE(cJSON_IsString(a), NS_E_PARSE,
               "keys file: keys[%zu] (id \"%s\"): allow[%zu] must be a client id string", idx,
               k->id, j);
        int c = client_index(ks, a->valuestring);
        ENSURE(c >= 0, NS_E_PARSE,
               "keys file: keys[%zu] (id \"%s\"): allow[%zu] names \"%.64s\", which is not in "
               "\"clients\"",
               idx, k->id, j, a->valuestring);
        ENSURE(!(k->allow & (1ull << c)), NS_E_PARSE,
               "keys file: keys[%zu] (id \"%s\"): allow[%zu]: \"%s\" is listed twice", idx, k->id,
               j, a->valuestring);
        k->allow |= 1ull << c;
    }
    return NS_OK;
}

size_t ns_signkey_commitment_pub(const ns_signkey *key, uint8_t out[NS_SIGNKEY_COMMIT_PUB_MAX])
{
    if (key->frost == NULL) {
        memcpy(out, key->pub, key->pub_len);
        return key->pub_len;
    }
    const ns_frost_group *g = &key->frost->group;
    size_t el = ns_frost_element_len(g->suite);
    crypto_hash_sha256_state st;
    memcpy(out, g->group_public_key, el);
    ns_put_be16(out + el, key->frost->identifier);
    ns_put_be16(out + el + 2, g->min_signers);
    ns_put_be16(out + el + 4, g->max_signers);
    crypto_hash_sha256_init(&st);
    for (unsigned i = 0; i < g->max_signers; i++) {
        crypto_hash_sha256_update(&st, g->verifying_shares[i], el);
    }
    crypto_hash_sha256_final(&st, out + el + 6);
    return el + 38;
}

static void commit(ns_signkeys *ks)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)"nsign-keys-v1\n", 14);
    for (size_t i = 0; i < ks->count; i++) {
        const ns_signkey *k = &ks->keys[i];
        const char *an = ns_sign_alg_name(k->alg);
        uint8_t l;
        l = (uint8_t)strlen(k->id);
        crypto_hash_sha256_update(&st, &l, 1);
        crypto_hash_sha256_update(&st, (const uint8_t *)k->id, l);
        l = (uint8_t)strlen(an);
        crypto_hash_sha256_update(&st, &l, 1);
        crypto_hash_sha256_update(&st, (const uint8_t *)an, l);
        uint8_t pub[NS_SIGNKEY_COMMIT_PUB_MAX];
        l = (uint8_t)ns_signkey_commitment_pub(k, pub);
        crypto_hash_sha256_update(&st, &l, 1);
        crypto_hash_sha256_update(&st, pub, l);
    }
    crypto_hash_sha256_final(&st, ks->commitment);
}

static ns_err parse(ns_signkeys *ks, const cJSON *root)
{
    static const char *const allowed[] = {"version", "keys", "clients"};
    ENSURE(cJSON_IsObject(root), NS_E_PARSE, "keys file: expected a JSON object");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    ENSURE(cJSON_IsNumber(v) && (v->valuedouble == 1.0 || v->valuedouble == 2.0), NS_E_UNSUPPORTED,
           "keys file: \"version\" must be 1 or 2 (the versions this build reads)");
    ks->version = (int)v->valuedouble;
    ENSURE(ks->version >= 2 || !cJSON_HasObjectItem(root, "clients"), NS_E_PARSE,
           "keys file: \"clients\" needs \"version\": 2");
    GUARD(members_check(root, allowed, ks->version >= 2 ? 3 : 2, "keys file"));
    if (ks->version >= 2) {
        GUARD(load_clients(ks, cJSON_GetObjectItemCaseSensitive(root, "clients")));
    }
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
    ENSURE(cJSON_IsArray(keys), NS_E_PARSE, "keys file: \"keys\" must be an array");
    int n = cJSON_GetArraySize(keys);
    ENSURE(n >= 1, NS_E_PARSE, "keys file: \"keys\" is empty: nothing to serve");
    ENSURE(n <= NS_SIGNKEYS_MAX, NS_E_TOO_BIG, "keys file: %d keys, at most %d are supported", n,
           NS_SIGNKEYS_MAX);
    size_t i = 0;
    for (const cJSON *e = keys->child; e; e = e->next, i++) {
        ns_signkey *k = &ks->keys[i];
        GUARD(load_entry(k, e, i, ks->version));
        if (ks->version >= 2) {
            GUARD(load_allow(ks, k, e, i));
        }
        /* insertion into id order; equal ids are an error */
        size_t j = i;
        while (j > 0 && strcmp(ks->keys[j - 1].id, k->id) > 0) {
            j--;
        }
        ENSURE(j == 0 || strcmp(ks->keys[j - 1].id, k->id) != 0, NS_E_PARSE,
               "keys file: keys[%zu]: duplicate id \"%s\"", i, k->id);
        if (j != i) {
            ns_signkey tmp = *k;
            memmove(&ks->keys[j + 1], &ks->keys[j], (i - j) * sizeof *k);
            ks->keys[j] = tmp;
            ns_wipe(&tmp, sizeof tmp);
        }
        ks->count = i + 1;
    }
    return NS_OK;
}

ns_err ns_signkeys_load(ns_signkeys **out, const uint8_t *json, size_t len)
{
    *out = NULL;
    ENSURE(len <= NS_SIGNKEYS_JSON_MAX, NS_E_TOO_BIG, "keys file: %zu bytes, at most %u", len,
           NS_SIGNKEYS_JSON_MAX);
    ENSURE(sodium_init() >= 0, NS_E_CRYPTO, "keys: libsodium failed to initialise");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)json, len, &end, 0);
    if (root == NULL) {
        size_t off = end ? (size_t)(end - (const char *)json) : 0;
        BAIL(NS_E_PARSE, "keys file: not valid JSON (near byte %zu)", off);
    }
    ns_err rc = NS_OK;
    for (const char *p = end; p < (const char *)json + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = ns_fail(NS_E_PARSE, "keys file: trailing data after the JSON object");
            break;
        }
    }
    if (rc == NS_OK) {
        /* cJSON's strings end at a NUL: refuse "\u0000" (and anything else our strict reader
         * refuses) before using them. */
        rc = ns_json_validate(json, len);
        if (rc != NS_OK) {
            rc = ns_fail_ctx(rc, "keys file");
        }
    }
    ns_signkeys *ks = NULL;
    if (rc == NS_OK) {
        ks = ns_secret_alloc(sizeof *ks);
        if (ks == NULL) {
            rc = ns_fail(NS_E_NOMEM, "keys: cannot allocate locked memory (check RLIMIT_MEMLOCK)");
        }
    }
    if (rc == NS_OK) {
        rc = parse(ks, root);
    }
    json_wipe(root);
    cJSON_Delete(root);
    if (rc != NS_OK) {
        ns_signkeys_free(ks);
        return rc;
    }
    commit(ks);
    *out = ks;
    return NS_OK;
}

void ns_signkeys_free(ns_signkeys *k)
{
    if (k) {
        for (size_t i = 0; i < NS_SIGNKEYS_MAX; i++) {
            if (k->keys[i].frost) {
                ns_frost_key_free(k->keys[i].frost);
                free(k->keys[i].frost);
            }
        }
        ns_secret_free(k, sizeof *k);
    }
}

const ns_signkey *ns_signkeys_find(const ns_signkeys *k, const char *id)
{
    size_t lo = 0, hi = k->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(id, k->keys[mid].id);
        if (c == 0) {
            return &k->keys[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

int ns_signkeys_has_policy(const ns_signkeys *k)
{
    return k->version >= 2;
}

int ns_signkeys_client_by_pin(const ns_signkeys *k, const uint8_t spki_sha256[32])
{
    int found = -1;
    for (size_t i = 0; i < k->nclients; i++) {
        int eq = ns_ct_equal(k->clients[i].spki_sha256, spki_sha256, 32);
        found = eq ? (int)i : found;
    }
    return found;
}

int ns_signkey_allows(const ns_signkeys *k, const ns_signkey *key, int c)
{
    if (!ns_signkeys_has_policy(k)) {
        return 1;
    }
    return c >= 0 && c < (int)k->nclients && (key->allow & (1ull << c)) != 0;
}

const uint8_t *ns_signkeys_commitment(const ns_signkeys *k)
{
    return k->commitment;
}

ns_err ns_signkey_spki(const ns_signkey *key, uint8_t *out, size_t cap, size_t *len)
{
    /* a FROST(Ed25519) group key is an ordinary Ed25519 public key; a FROST(secp256k1) one a
     * compressed secp256k1 point */
    const uint8_t *pre = SPKI_K1;
    size_t plen = sizeof SPKI_K1;
    if (key->alg == NS_ALG_ED25519 || key->alg == NS_ALG_FROST_ED25519) {
        pre = SPKI_ED25519;
        plen = sizeof SPKI_ED25519;
    } else if (key->alg == NS_ALG_P256) {
        pre = SPKI_P256;
        plen = sizeof SPKI_P256;
    } else if (key->alg == NS_ALG_FROST_SECP256K1) {
        pre = SPKI_K1_COMPRESSED;
        plen = sizeof SPKI_K1_COMPRESSED;
    }
    ENSURE(plen + key->pub_len <= cap, NS_E_TOO_BIG, "spki: output buffer too small");
    memcpy(out, pre, plen);
    memcpy(out + plen, key->pub, key->pub_len);
    *len = plen + key->pub_len;
    return NS_OK;
}

ns_err ns_signkey_sign(const ns_signkey *key, const uint8_t *msg, size_t msg_len, int has_msg,
                       const uint8_t *digest, size_t digest_len, ns_signature *out)
{
    memset(out, 0, sizeof *out);
    ENSURE(key->frost == NULL, NS_E_USAGE,
           "key \"%s\" is one share of a FROST threshold key: it signs only as a participant "
           "(FrostCommit/FrostSign; nsign frost-sign)",
           key->id);
    if (key->alg == NS_ALG_ED25519) {
        ENSURE(has_msg && digest == NULL, NS_E_USAGE,
               "key \"%s\" is ed25519: send the message itself (Ed25519 does not sign digests)",
               key->id);
        unsigned long long sl = 0;
        ENSURE(crypto_sign_detached(out->sig, &sl, msg, msg_len, key->priv) == 0, NS_E_CRYPTO,
               "ed25519 signing failed");
        out->sig_len = 64;
        return NS_OK;
    }
    if (has_msg) {
        crypto_hash_sha256(out->digest, msg, msg_len);
    } else {
        ENSURE(digest != NULL, NS_E_USAGE, "key \"%s\": send either message or digest", key->id);
        ENSURE(digest_len == 32, NS_E_USAGE, "key \"%s\": digest must be exactly 32 bytes, got %zu",
               key->id, digest_len);
        memcpy(out->digest, digest, 32);
    }
    out->has_digest = 1;
    GUARD(ns_ecdsa_sign(key->alg == NS_ALG_P256 ? NS_ECDSA_P256 : NS_ECDSA_SECP256K1, key->priv,
                        out->digest, out->sig, out->der, &out->der_len, &out->recid));
    out->sig_len = 64;
    return NS_OK;
}
