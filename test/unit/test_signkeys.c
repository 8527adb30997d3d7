/* Unit tests for signkeys (keys file v1, signing) and ecdsa (RFC 6979, low-S, recovery). */
#include <sodium.h>
#include <string.h>

#include "codec.h"
#include "ecdsa.h"
#include "signkeys.h"
#include "t.h"
#include <secp256k1.h>

#define ED_SEED_B64 "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define ED_PUB_HEX "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664"
#define RFC_D "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"
#define K1_ONE "0000000000000000000000000000000000000000000000000000000000000001"
#define K1_GX "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
#define K1_GY "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
#define P256_N_MINUS_1 "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550"
#define P256_N "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"

static const char GOOD[] =
    "{\"version\":1,\"keys\":["
    "{\"id\":\"payments\",\"algorithm\":\"ed25519\",\"private_key\":\"" ED_SEED_B64 "\"},"
    "{\"id\":\"eth-hot\",\"algorithm\":\"ecdsa-secp256k1\",\"private_key\":\"" K1_ONE "\"},"
    "{\"id\":\"api\",\"algorithm\":\"ecdsa-p256\",\"private_key\":\"" RFC_D "\"}]}\n";

static ns_err load(ns_signkeys **k, const char *s)
{
    return ns_signkeys_load(k, (const uint8_t *)s, strlen(s));
}

static int hex_is(const uint8_t *p, size_t n, const char *hex)
{
    char buf[256];
    return ns_hex_encode(buf, sizeof buf, p, n) == NS_OK && strcmp(buf, hex) == 0;
}

static void bad(const char *desc, const char *json, ns_err want, const char *needle)
{
    ns_signkeys *k = (ns_signkeys *)1;
    ns_err e = load(&k, json);
    CHECK(e == want && k == NULL && strstr(ns_err_msg(), needle) != NULL &&
              strstr(ns_err_msg(), "AQIDBAUG") == NULL && strstr(ns_err_msg(), "c9afa9d8") == NULL,
          "refused: %s (%s)", desc, ns_err_msg());
}

static void test_load(void)
{
    ns_signkeys *k = NULL;
    CHECK(load(&k, GOOD) == NS_OK && k != NULL && k->count == 3, "load: 3 keys");
    if (k == NULL) {
        return;
    }
    CHECK(strcmp(k->keys[0].id, "api") == 0 && strcmp(k->keys[1].id, "eth-hot") == 0 &&
              strcmp(k->keys[2].id, "payments") == 0,
          "load: sorted by id");
    const ns_signkey *ed = ns_signkeys_find(k, "payments");
    CHECK(ed && ed->alg == NS_ALG_ED25519 && hex_is(ed->pub, 32, ED_PUB_HEX),
          "load: ed25519 public key derived (cross-checked with python-cryptography)");
    const ns_signkey *k1 = ns_signkeys_find(k, "eth-hot");
    CHECK(k1 && k1->pub_len == 65 && k1->pub[0] == 4 && hex_is(k1->pub + 1, 32, K1_GX) &&
              hex_is(k1->pub + 33, 32, K1_GY),
          "load: secp256k1 d = 1 gives the generator");
    CHECK(ns_signkeys_find(k, "nope") == NULL && ns_signkeys_find(k, "") == NULL,
          "find: unknown ids");
    uint8_t spki[96];
    size_t n;
    CHECK(ns_signkey_spki(ed, spki, sizeof spki, &n) == NS_OK && n == 44 && spki[0] == 0x30,
          "spki: ed25519 is 44 bytes");
    CHECK(ns_signkey_spki(k1, spki, sizeof spki, &n) == NS_OK && n == 88, "spki: secp256k1 88");
    CHECK(ns_signkey_spki(ns_signkeys_find(k, "api"), spki, sizeof spki, &n) == NS_OK && n == 91,
          "spki: p256 91");
    CHECK_ERR(ns_signkey_spki(k1, spki, 80, &n), NS_E_TOO_BIG, "spki: small buffer");

    /* The commitment does not depend on file order. */
    static const char REORDERED[] =
        "{\"keys\":["
        "{\"algorithm\":\"ecdsa-p256\",\"private_key\":\"" RFC_D "\",\"id\":\"api\"},"
        "{\"id\":\"payments\",\"algorithm\":\"ed25519\",\"private_key\":\"" ED_SEED_B64 "\"},"
        "{\"id\":\"eth-hot\",\"algorithm\":\"ecdsa-secp256k1\",\"private_key\":\"" K1_ONE
        "\"}],\"version\":1}";
    ns_signkeys *k2 = NULL;
    CHECK(load(&k2, REORDERED) == NS_OK &&
              memcmp(ns_signkeys_commitment(k), ns_signkeys_commitment(k2), 32) == 0,
          "commitment: independent of file order");
    ns_signkeys_free(k2);
    ns_signkeys_free(k);
    ns_signkeys_free(NULL);
}

static void test_bad(void)
{
    bad("empty input", "", NS_E_PARSE, "not valid JSON");
    bad("not an object", "[1]", NS_E_PARSE, "expected a JSON object");
    bad("version 3", "{\"version\":3,\"keys\":[]}", NS_E_UNSUPPORTED, "must be 1 or 2");
    bad("version as a string", "{\"version\":\"1\",\"keys\":[]}", NS_E_UNSUPPORTED,
        "must be 1 or 2");
    bad("no keys", "{\"version\":1}", NS_E_PARSE, "must be an array");
    bad("empty keys", "{\"version\":1,\"keys\":[]}", NS_E_PARSE, "empty");
    bad("duplicate member", "{\"version\":1,\"version\":1,\"keys\":[]}", NS_E_PARSE,
        "duplicate member");
    bad("unknown member", "{\"version\":1,\"keys\":[],\"z\":0}", NS_E_PARSE, "unknown member");
    bad("entry not an object", "{\"version\":1,\"keys\":[7]}", NS_E_PARSE, "keys[0]: expected");
    bad("missing private_key",
        "{\"version\":1,\"keys\":[{\"id\":\"a\",\"algorithm\":\"ed25519\"}]}", NS_E_PARSE,
        "keys[0] (id \"a\"): \"private_key\" must be a string");
    bad("bad id",
        "{\"version\":1,\"keys\":[{\"id\":\"a b\",\"algorithm\":\"ed25519\","
        "\"private_key\":\"" ED_SEED_B64 "\"}]}",
        NS_E_PARSE, "id must be");
    bad("empty id",
        "{\"version\":1,\"keys\":[{\"id\":\"\",\"algorithm\":\"ed25519\","
        "\"private_key\":\"" ED_SEED_B64 "\"}]}",
        NS_E_PARSE, "id must be");
    bad("duplicate id",
        "{\"version\":1,\"keys\":["
        "{\"id\":\"a\",\"algorithm\":\"ed25519\",\"private_key\":\"" ED_SEED_B64 "\"},"
        "{\"id\":\"a\",\"algorithm\":\"ecdsa-p256\",\"private_key\":\"" RFC_D "\"}]}",
        NS_E_PARSE, "keys[1]: duplicate id \"a\"");
    /* issue 15: cJSON's C strings end at a NUL */
    bad("id with \\u0000",
        "{\"version\":1,\"keys\":[{\"id\":\"a\\u0000b\",\"algorithm\":\"ed25519\","
        "\"private_key\":\"" ED_SEED_B64 "\"}]}",
        NS_E_PARSE, "\\u0000 (NUL) in a string");
    bad("private key with \\u0000",
        "{\"version\":1,\"keys\":[{\"id\":\"a\",\"algorithm\":\"ecdsa-p256\","
        "\"private_key\":\"" RFC_D "\\u0000ff\"}]}",
        NS_E_PARSE, "\\u0000 (NUL) in a string");
    bad("member name with \\u0000",
        "{\"version\":1,\"keys\":[{\"id\":\"a\",\"algorithm\":\"ed25519\","
        "\"private_key\":\"" ED_SEED_B64 "\",\"x\\u0000\":1}]}",
        NS_E_PARSE, "\\u0000 (NUL) in a string");
    bad("unknown algorithm",
        "{\"version\":1,\"keys\":[{\"id\":\"a\",\"algorithm\":\"rsa\","
        "\"private_key\":\"00\"}]}",
        NS_E_PARSE, "unknown algorithm");
    bad("ed25519 key not base64",
        "{\"version\":1,\"keys\":[{\"id\":\"a\",\"algorithm\":"
        "\"ed25519\",\"private_key\":\"****\"}]}",
        NS_E_PARSE, "must be base64");
    bad("ed25519 key with whitespace",
        "{\"version\":1,\"keys\":[{\"id\":\"a\",\"algorithm\":"
        "\"ed25519\",\"private_key\":\" " ED_SEED_B64 "\"}]}",
        NS_E_PARSE, "must be base64");
    bad("p256 scalar = n",
        "{\"version\":1,\"keys\":[{\"id\":\"a\",\"algorithm\":\"ecdsa-p256\","
        "\"private_key\":\"" P256_N "\"}]}",
        NS_E_PARSE, "not a valid scalar");
    bad("p256 scalar with 0x",
        "{\"version\":1,\"keys\":[{\"id\":\"a\",\"algorithm\":"
        "\"ecdsa-p256\",\"private_key\":\"0x" RFC_D "\"}]}",
        NS_E_PARSE, "64 hex digits");
    bad("p256 scalar not hex",
        "{\"version\":1,\"keys\":[{\"id\":\"a\",\"algorithm\":"
        "\"ecdsa-p256\",\"private_key\":\"zz" RFC_D "\"}]}",
        NS_E_PARSE, "64 hex digits");
    bad("trailing data", "{\"version\":1,\"keys\":[]} {}", NS_E_PARSE, "trailing data");
    /* 65 keys */
    static char many[65 * 120 + 64];
    size_t o = (size_t)snprintf(many, sizeof many, "{\"version\":1,\"keys\":[");
    for (int i = 0; i < 65; i++) {
        o += (size_t)snprintf(many + o, sizeof many - o,
                              "%s{\"id\":\"k%d\",\"algorithm\":\"ed25519\",\"private_key\":\"%s\"}",
                              i ? "," : "", i, ED_SEED_B64);
    }
    snprintf(many + o, sizeof many - o, "]}");
    bad("65 keys", many, NS_E_TOO_BIG, "at most 64");
}

#define PIN_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define PIN_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define CLIENTS2                                                                                   \
    "\"clients\":[{\"id\":\"payments-api\",\"spki_sha256\":\"" PIN_A "\"},"                        \
    "{\"id\":\"ops\",\"spki_sha256\":\"" PIN_B "\",\"max_signs_per_second\":5}]"
#define ED_KEY(id, allow)                                                                          \
    "{\"id\":\"" id "\",\"algorithm\":\"ed25519\",\"private_key\":\"" ED_SEED_B64 "\"" allow "}"

static void test_v2(void)
{
    static const char V2[] =
        "{\"version\":2," CLIENTS2
        ",\"keys\":[" ED_KEY("payments", ",\"allow\":[\"payments-api\",\"ops\"]") "," ED_KEY(
            "treasury", ",\"allow\":[\"ops\"]") "]}";
    ns_signkeys *k = NULL;
    CHECK(load(&k, V2) == NS_OK && k != NULL, "v2: loads (%s)", ns_err_msg());
    if (k == NULL) {
        return;
    }
    uint8_t a[32], b[32], z[32] = {0};
    size_t n;
    CHECK(ns_hex_decode(a, 32, &n, PIN_A, 64) == NS_OK &&
              ns_hex_decode(b, 32, &n, PIN_B, 64) == NS_OK,
          "v2: pins decode");
    int ca = ns_signkeys_client_by_pin(k, a), cb = ns_signkeys_client_by_pin(k, b);
    CHECK(ns_signkeys_has_policy(k) && k->version == 2 && k->nclients == 2, "v2: policy present");
    CHECK(ca == 0 && cb == 1 && ns_signkeys_client_by_pin(k, z) == -1, "v2: clients by pin");
    CHECK(strcmp(k->clients[0].id, "payments-api") == 0 &&
              k->clients[0].max_signs_per_second == 0 && k->clients[1].max_signs_per_second == 5,
          "v2: client ids and rates");
    const ns_signkey *pay = ns_signkeys_find(k, "payments"), *tre = ns_signkeys_find(k, "treasury");
    CHECK(pay && tre && ns_signkey_allows(k, pay, ca) && ns_signkey_allows(k, pay, cb) &&
              !ns_signkey_allows(k, tre, ca) && ns_signkey_allows(k, tre, cb) &&
              !ns_signkey_allows(k, pay, -1) && !ns_signkey_allows(k, pay, 2),
          "v2: allow lists");
    ns_signkeys *k1 = NULL;
    CHECK(load(&k1, GOOD) == NS_OK && !ns_signkeys_has_policy(k1) &&
              ns_signkey_allows(k1, ns_signkeys_find(k1, "api"), -1),
          "v1: no policy, every caller allowed");
    ns_signkeys_free(k1);
    ns_signkeys_free(k);

    bad("v2 without clients", "{\"version\":2,\"keys\":[" ED_KEY("a", ",\"allow\":[\"x\"]") "]}",
        NS_E_PARSE, "needs \"clients\"");
    bad("v2 empty clients",
        "{\"version\":2,\"clients\":[],\"keys\":[" ED_KEY("a", ",\"allow\":[\"x\"]") "]}",
        NS_E_PARSE, "\"clients\" is empty");
    bad("v2 key without allow", "{\"version\":2," CLIENTS2 ",\"keys\":[" ED_KEY("a", "") "]}",
        NS_E_PARSE, "keys[0] (id \"a\"): version 2 needs \"allow\"");
    bad("v2 empty allow",
        "{\"version\":2," CLIENTS2 ",\"keys\":[" ED_KEY("a", ",\"allow\":[]") "]}", NS_E_PARSE,
        "keys[0] (id \"a\"): \"allow\" is empty");
    bad("v2 allow names an unknown client",
        "{\"version\":2," CLIENTS2
        ",\"keys\":[" ED_KEY("a", ",\"allow\":[\"ops\",\"nobody\"]") "]}",
        NS_E_PARSE, "allow[1] names \"nobody\", which is not in \"clients\"");
    bad("v2 allow twice",
        "{\"version\":2," CLIENTS2 ",\"keys\":[" ED_KEY("a", ",\"allow\":[\"ops\",\"ops\"]") "]}",
        NS_E_PARSE, "\"ops\" is listed twice");
    bad("v2 allow not a string",
        "{\"version\":2," CLIENTS2 ",\"keys\":[" ED_KEY("a", ",\"allow\":[1]") "]}", NS_E_PARSE,
        "allow[0] must be a client id string");
    bad("v2 duplicate client id",
        "{\"version\":2,\"clients\":[{\"id\":\"c\",\"spki_sha256\":\"" PIN_A "\"},"
        "{\"id\":\"c\",\"spki_sha256\":\"" PIN_B
        "\"}],\"keys\":[" ED_KEY("a", ",\"allow\":[\"c\"]") "]}",
        NS_E_PARSE, "clients[1] (id \"c\"): duplicate client id");
    bad("v2 duplicate pin",
        "{\"version\":2,\"clients\":[{\"id\":\"c\",\"spki_sha256\":\"" PIN_A "\"},"
        "{\"id\":\"d\",\"spki_sha256\":\"" PIN_A
        "\"}],\"keys\":[" ED_KEY("a", ",\"allow\":[\"c\"]") "]}",
        NS_E_PARSE, "clients[1] (id \"d\"): the same spki_sha256 as clients[0]");
    bad("v2 short pin",
        "{\"version\":2,\"clients\":[{\"id\":\"c\",\"spki_sha256\":\"0011\"}],\"keys\":[" ED_KEY(
            "a", ",\"allow\":[\"c\"]") "]}",
        NS_E_PARSE, "clients[0] (id \"c\"): \"spki_sha256\" must be 64 hex digits");
    bad("v2 pin not hex",
        "{\"version\":2,\"clients\":[{\"id\":\"c\",\"spki_sha256\":\"zz" PIN_A
        "\"}],\"keys\":[" ED_KEY("a", ",\"allow\":[\"c\"]") "]}",
        NS_E_PARSE, "must be 64 hex digits");
    bad("v2 client unknown member",
        "{\"version\":2,\"clients\":[{\"id\":\"c\",\"spki_sha256\":\"" PIN_A
        "\",\"role\":\"x\"}],\"keys\":[" ED_KEY("a", ",\"allow\":[\"c\"]") "]}",
        NS_E_PARSE, "clients[0] (id \"c\"): unknown member \"role\"");
    bad("v2 client bad id",
        "{\"version\":2,\"clients\":[{\"id\":\"c d\",\"spki_sha256\":\"" PIN_A
        "\"}],\"keys\":[" ED_KEY("a", ",\"allow\":[\"c\"]") "]}",
        NS_E_PARSE, "clients[0]: \"id\" must be");
    bad("v2 rate zero",
        "{\"version\":2,\"clients\":[{\"id\":\"c\",\"spki_sha256\":\"" PIN_A
        "\",\"max_signs_per_second\":0}],\"keys\":[" ED_KEY("a", ",\"allow\":[\"c\"]") "]}",
        NS_E_PARSE, "\"max_signs_per_second\" must be an integer");
    bad("v2 rate fractional",
        "{\"version\":2,\"clients\":[{\"id\":\"c\",\"spki_sha256\":\"" PIN_A
        "\",\"max_signs_per_second\":1.5}],\"keys\":[" ED_KEY("a", ",\"allow\":[\"c\"]") "]}",
        NS_E_PARSE, "\"max_signs_per_second\" must be an integer");
    bad("v2 rate as a string",
        "{\"version\":2,\"clients\":[{\"id\":\"c\",\"spki_sha256\":\"" PIN_A
        "\",\"max_signs_per_second\":\"5\"}],\"keys\":[" ED_KEY("a", ",\"allow\":[\"c\"]") "]}",
        NS_E_PARSE, "\"max_signs_per_second\" must be an integer");
    bad("v1 with clients", "{\"version\":1," CLIENTS2 ",\"keys\":[" ED_KEY("a", "") "]}",
        NS_E_PARSE, "\"clients\" needs \"version\": 2");
    bad("v1 key with allow", "{\"version\":1,\"keys\":[" ED_KEY("a", ",\"allow\":[\"x\"]") "]}",
        NS_E_PARSE, "keys[0] (id \"a\"): \"allow\" needs \"version\": 2");
    /* 65 clients */
    static char many[65 * 120 + 256];
    size_t o = (size_t)snprintf(many, sizeof many, "{\"version\":2,\"clients\":[");
    for (int i = 0; i < 65; i++) {
        o += (size_t)snprintf(many + o, sizeof many - o,
                              "%s{\"id\":\"c%d\",\"spki_sha256\":\"%064x\"}", i ? "," : "", i, i);
    }
    snprintf(many + o, sizeof many - o, "],\"keys\":[" ED_KEY("a", ",\"allow\":[\"c0\"]") "]}");
    bad("65 clients", many, NS_E_TOO_BIG, "at most 64 are supported");
}

static void test_sign(void)
{
    ns_signkeys *k = NULL;
    if (load(&k, GOOD) != NS_OK) {
        CHECK(0, "sign: load");
        return;
    }
    ns_signature s;
    const ns_signkey *ed = ns_signkeys_find(k, "payments");
    CHECK(ns_signkey_sign(ed, (const uint8_t *)"hi", 2, 1, NULL, 0, &s) == NS_OK &&
              s.sig_len == 64 && s.der_len == 0 &&
              crypto_sign_verify_detached(s.sig, (const uint8_t *)"hi", 2, ed->pub) == 0,
          "sign: ed25519 verifies");
    uint8_t d32[32] = {1};
    CHECK_ERR(ns_signkey_sign(ed, NULL, 0, 0, d32, 32, &s), NS_E_USAGE, "sign: ed25519 + digest");

    /* RFC 6979 A.2.5: P-256, SHA-256, "sample"; s low-S normalised (n - s). */
    const ns_signkey *p = ns_signkeys_find(k, "api");
    CHECK(
        ns_signkey_sign(p, (const uint8_t *)"sample", 6, 1, NULL, 0, &s) == NS_OK &&
            hex_is(s.sig, 32, "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716") &&
            hex_is(s.sig + 32, 32,
                   "0834e36ad29a83bf2bc9385e491d6099c8fdf9d1ed67aa7ea5f51f93782857a9"),
        "sign: RFC 6979 A.2.5 vector, low-S");
    CHECK(s.der_len >= 8 && s.der[0] == 0x30 && s.der[1] == s.der_len - 2, "sign: DER form");
    CHECK(ns_ecdsa_verify(NS_ECDSA_P256, p->pub, s.digest, s.sig) == NS_OK, "sign: p256 verifies");
    uint8_t rec[65];
    CHECK(ns_ecdsa_recover(NS_ECDSA_P256, s.digest, s.sig, s.recid, rec) == NS_OK &&
              memcmp(rec, p->pub, 65) == 0,
          "sign: p256 recovery id recovers the key");
    CHECK(ns_ecdsa_recover(NS_ECDSA_P256, s.digest, s.sig, !s.recid, rec) != NS_OK ||
              memcmp(rec, p->pub, 65) != 0,
          "sign: the other recovery id does not");
    s.sig[40] ^= 1;
    CHECK_ERR(ns_ecdsa_verify(NS_ECDSA_P256, p->pub, s.digest, s.sig), NS_E_AUTH,
              "verify: a flipped bit fails");

    const ns_signkey *k1 = ns_signkeys_find(k, "eth-hot");
    /*
     * Known answers for d = 1 over SHA-256 digests (the RFC 6979 + low-S vectors wallets test
     * with, e.g. Trezor's): the same bytes mbedtls's code gave before libsecp256k1 took over.
     */
    static const struct {
        const char *msg, *r, *s;
        int recid;
    } kat[] = {
        {"Satoshi Nakamoto", "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8",
         "2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5", 1},
        {"All those moments will be lost in time, like tears in rain. Time to die...",
         "8600dbd41e348fe5c9465ab92d23e3db8b98b873beecd930736488696438cb6b",
         "547fe64427496db33bf66019dacbf0039c04199abb0122918601db38a72cfc21", 0},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint8_t h[32];
        crypto_hash_sha256(h, (const uint8_t *)kat[i].msg, strlen(kat[i].msg));
        CHECK(ns_signkey_sign(k1, NULL, 0, 0, h, 32, &s) == NS_OK && hex_is(s.sig, 32, kat[i].r) &&
                  hex_is(s.sig + 32, 32, kat[i].s) && s.recid == kat[i].recid,
              "sign: secp256k1 RFC 6979 known answer %zu (r, low s, recovery id)", i);
    }
    int ids[2] = {0, 0};
    for (int i = 0; i < 24; i++) {
        d32[0] = (uint8_t)i;
        if (ns_signkey_sign(k1, NULL, 0, 0, d32, 32, &s) != NS_OK) {
            CHECK(0, "sign: secp256k1 digest %d", i);
            continue;
        }
        ids[s.recid & 1]++;
        uint8_t half_n[32];
        size_t hn = 0;
        if (ns_hex_decode(half_n, 32, &hn,
                          "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0",
                          64) != NS_OK ||
            ns_ecdsa_verify(NS_ECDSA_SECP256K1, k1->pub, d32, s.sig) != NS_OK ||
            memcmp(s.sig + 32, half_n, 32) > 0 ||
            ns_ecdsa_recover(NS_ECDSA_SECP256K1, d32, s.sig, s.recid, rec) != NS_OK ||
            memcmp(rec, k1->pub, 65) != 0) {
            CHECK(0, "sign: secp256k1 digest %d verifies, low-S, recovers", i);
        }
    }
    CHECK(ids[0] > 0 && ids[1] > 0,
          "sign: secp256k1, 24 digests: verify, low-S, recover; both "
          "recovery ids seen (%d/%d)",
          ids[0], ids[1]);
    CHECK_ERR(ns_signkey_sign(k1, NULL, 0, 0, d32, 31, &s), NS_E_USAGE, "sign: 31-byte digest");
    CHECK_ERR(ns_signkey_sign(k1, NULL, 0, 0, NULL, 0, &s), NS_E_USAGE, "sign: no input");
    CHECK_ERR(ns_ecdsa_recover(NS_ECDSA_SECP256K1, d32, s.sig, 2, rec), NS_E_USAGE,
              "recover: id 2 refused");
    uint8_t zero[64] = {0};
    CHECK(ns_ecdsa_recover(NS_ECDSA_SECP256K1, d32, zero, 0, rec) != NS_OK,
          "recover: r = s = 0 refused");
    uint8_t d[32], pub[65];
    size_t n;
    CHECK(ns_hex_decode(d, 32, &n, P256_N_MINUS_1, 64) == NS_OK &&
              ns_ecdsa_public(NS_ECDSA_P256, d, pub) == NS_OK,
          "public: d = n - 1 is valid");
    ns_signkeys_free(k);
}

/* FROST entries, on RFC 9591 appendix E.1's 2-of-3 key material. */
#define FR_GPK "15d21ccd7ee42959562fc8aa63224c8851fb3ec85a3faf66040d380fb9738673"
static const char *const FR_SHARES[3] = {
    "929dcc590407aae7d388761cddb0c0db6f5627aea8e217f4a033f2ec83d93509",
    "a91e66e012e4364ac9aaa405fcafd370402d9859f7b6685c07eed76bf409e80d",
    "d3cb090a075eb154e82fdb4b3cb507f110040905468bb9c46da8bdea643a9a02"};
static char fr_vs[3][65];

/* A keys file with one FROST entry; fmt's %s take: identifier, share, vs1, vs2, vs3. */
static char *frost_doc(const char *head, unsigned id, const char *share, const char *extra,
                       unsigned t, unsigned n, int nvs)
{
    static char doc[4096];
    char vs[512] = "";
    for (int i = 0; i < nvs; i++) {
        size_t l = strlen(vs);
        snprintf(vs + l, sizeof vs - l, "%s\"%d\":\"%s\"", i ? "," : "", i + 1, fr_vs[i]);
    }
    snprintf(doc, sizeof doc,
             "%s\"keys\":[{\"id\":\"treasury\",\"algorithm\":\"frost-ed25519-sha512\","
             "\"identifier\":%u,\"signing_share\":\"%s\",\"group_public_key\":\"" FR_GPK "\","
             "\"verifying_shares\":{%s},\"min_signers\":%u,\"max_signers\":%u%s}]}",
             head, id, share, vs, t, n, extra);
    return doc;
}

/* A FROST(secp256k1) entry on RFC 9591 appendix E.5's key material. */
static void test_frost_k1(void)
{
    static const char *const sh[3] = {
        "08f89ffe80ac94dcb920c26f3f46140bfc7f95b493f8310f5fc1ea2b01f4254c",
        "04f0feac2edcedc6ce1253b7fab8c86b856a797f44d83d82a385554e6e401984",
        "00e95d59dd0d46b0e303e500b62b7ccb0e555d49f5b849f5e748c071da8c0dbc"};
    static const char gpk[] = "02f37c34b66ced1fb51c34a90bdae006901f10625cc06c4f64663b0eae87d87b4f";
    secp256k1_context *c = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    char vs[3][67], doc[2048];
    for (int i = 0; i < 3; i++) {
        uint8_t s[32], p[33];
        size_t n = 0, pl = 33;
        secp256k1_pubkey pk;
        CHECK(ns_hex_decode(s, 32, &n, sh[i], 64) == NS_OK &&
                  secp256k1_ec_pubkey_create(c, &pk, s) == 1 &&
                  secp256k1_ec_pubkey_serialize(c, p, &pl, &pk, SECP256K1_EC_COMPRESSED) == 1 &&
                  ns_hex_encode(vs[i], sizeof vs[i], p, 33) == NS_OK,
              "frost k1: verifying share %d (libsecp256k1 directly)", i + 1);
    }
    secp256k1_context_destroy(c);
    snprintf(doc, sizeof doc,
             "{\"version\":1,\"keys\":[{\"id\":\"btc\",\"algorithm\":\"frost-secp256k1-sha256\","
             "\"identifier\":3,\"signing_share\":\"%s\",\"group_public_key\":\"%s\","
             "\"verifying_shares\":{\"1\":\"%s\",\"2\":\"%s\",\"3\":\"%s\"},\"min_signers\":2,"
             "\"max_signers\":3}]}",
             sh[2], gpk, vs[0], vs[1], vs[2]);
    ns_signkeys *k = NULL;
    CHECK(load(&k, doc) == NS_OK && k, "frost k1: an entry loads (%s)", ns_err_msg());
    const ns_signkey *e = k ? ns_signkeys_find(k, "btc") : NULL;
    uint8_t spki[96], rec[NS_SIGNKEY_COMMIT_PUB_MAX];
    size_t sl = 0;
    CHECK(e && e->alg == NS_ALG_FROST_SECP256K1 && e->pub_len == 33 && hex_is(e->pub, 33, gpk) &&
              e->frost->identifier == 3,
          "frost k1: 33-byte group key reported, identifier 3");
    CHECK(e && ns_signkey_spki(e, spki, sizeof spki, &sl) == NS_OK && sl == 23 + 33 &&
              spki[1] == 0x36 && hex_is(spki + 23, 33, gpk),
          "frost k1: SPKI with the compressed point");
    CHECK(e && ns_signkey_commitment_pub(e, rec) == 71 && rec[34] == 3,
          "frost k1: 71-byte commitment record");
    CHECK(e && strcmp(ns_sign_alg_name(e->alg), "frost-secp256k1-sha256") == 0, "frost k1: name");
    ns_signkeys_free(k);
    char *p = strstr(doc, sh[2]);
    memcpy(p, sh[1], 64);
    bad("frost k1: share 2 as identifier 3", doc, NS_E_PARSE,
        "does not match the verifying share of identifier 3");
}

static void test_frost(void)
{
    for (int i = 0; i < 3; i++) {
        uint8_t s[32], p[32];
        size_t n = 0;
        CHECK(ns_hex_decode(s, 32, &n, FR_SHARES[i], 64) == NS_OK &&
                  crypto_scalarmult_ed25519_base_noclamp(p, s) == 0 &&
                  ns_hex_encode(fr_vs[i], sizeof fr_vs[i], p, 32) == NS_OK,
              "frost: verifying share %d", i + 1);
    }
    const char *v1 = "{\"version\":1,";
    char *d;
    ns_signkeys *k = NULL;
    CHECK(load(&k, frost_doc(v1, 2, FR_SHARES[1], "", 2, 3, 3)) == NS_OK && k,
          "frost: a v1 entry loads (%s)", ns_err_msg());
    const ns_signkey *e = k ? ns_signkeys_find(k, "treasury") : NULL;
    CHECK(e && e->alg == NS_ALG_FROST_ED25519 && e->pub_len == 32 && hex_is(e->pub, 32, FR_GPK) &&
              e->frost && e->frost->identifier == 2 && e->frost->group.min_signers == 2 &&
              e->frost->group.max_signers == 3,
          "frost: group public key reported, identifier and T/N kept");
    CHECK(e && strcmp(ns_sign_alg_name(e->alg), "frost-ed25519-sha512") == 0, "frost: alg name");
    uint8_t spki[96];
    size_t sl = 0;
    CHECK(e && ns_signkey_spki(e, spki, sizeof spki, &sl) == NS_OK && sl == 44 &&
              hex_is(spki + 12, 32, FR_GPK),
          "frost: SPKI is the group key as an Ed25519 key");
    ns_signature sig;
    CHECK(e && ns_signkey_sign(e, (const uint8_t *)"m", 1, 1, NULL, 0, &sig) == NS_E_USAGE &&
              strstr(ns_err_msg(), "FrostSign") != NULL,
          "frost: Sign refuses a share (%s)", ns_err_msg());
    uint8_t c2[32];
    if (k) {
        memcpy(c2, ns_signkeys_commitment(k), 32);
    }
    ns_signkeys_free(k);
    k = NULL;
    CHECK(load(&k, frost_doc(v1, 1, FR_SHARES[0], "", 2, 3, 3)) == NS_OK && k &&
              memcmp(c2, ns_signkeys_commitment(k), 32) != 0,
          "frost: the commitment covers the identifier (share 1 vs share 2)");
    /* the commitment record, recomputed as a verifier would */
    if (k) {
        const ns_signkey *f = ns_signkeys_find(k, "treasury");
        uint8_t rec[NS_SIGNKEY_COMMIT_PUB_MAX], want[32], vsh[96];
        size_t n = 0, rl = ns_signkey_commitment_pub(f, rec);
        for (int i = 0; i < 3; i++) {
            CHECK(ns_hex_decode(vsh + 32 * i, 32, &n, fr_vs[i], 64) == NS_OK, "vs decode");
        }
        crypto_hash_sha256(want, vsh, 96);
        CHECK(rl == 70 && hex_is(rec, 32, FR_GPK) && rec[32] == 0 && rec[33] == 1 && rec[35] == 2 &&
                  rec[37] == 3 && memcmp(rec + 38, want, 32) == 0,
              "frost: commitment record = gpk || id || T || N || SHA-256(verifying shares)");
    }
    ns_signkeys_free(k);
    k = NULL;
    const char *v2 = "{\"version\":2," CLIENTS2 ",";
    CHECK(load(&k, frost_doc(v2, 3, FR_SHARES[2], ",\"allow\":[\"ops\"]", 2, 3, 3)) == NS_OK && k,
          "frost: a v2 entry with allow loads (%s)", ns_err_msg());
    ns_signkeys_free(k);
    bad("frost: v2 entry without allow", frost_doc(v2, 3, FR_SHARES[2], "", 2, 3, 3), NS_E_PARSE,
        "allow");
    bad("frost: share of 2 as identifier 1", frost_doc(v1, 1, FR_SHARES[1], "", 2, 3, 3),
        NS_E_PARSE, "does not match the verifying share of identifier 1");
    bad("frost: identifier 0", frost_doc(v1, 0, FR_SHARES[0], "", 2, 3, 3), NS_E_PARSE,
        "identifier");
    bad("frost: identifier 4 of 3", frost_doc(v1, 4, FR_SHARES[0], "", 2, 3, 3), NS_E_PARSE,
        "1..3");
    bad("frost: min > max", frost_doc(v1, 1, FR_SHARES[0], "", 3, 2, 3), NS_E_PARSE, "min_signers");
    d = frost_doc(v1, 1, FR_SHARES[0], "", 2, 3, 3);
    memcpy(strstr(d, FR_GPK), fr_vs[2], 64); /* another key's group key */
    bad("frost: verifying shares of another group key", d, NS_E_PARSE, "interpolate");
    bad("frost: a verifying share missing", frost_doc(v1, 1, FR_SHARES[0], "", 2, 3, 2), NS_E_PARSE,
        "verifying_shares");
    bad("frost: unknown member", frost_doc(v1, 1, FR_SHARES[0], ",\"private_key\":\"x\"", 2, 3, 3),
        NS_E_PARSE, "unknown member");
    bad("frost: short share", frost_doc(v1, 1, "929dcc", "", 2, 3, 3), NS_E_PARSE, "signing_share");
    d = frost_doc(v1, 1, FR_SHARES[0], "", 2, 3, 3);
    char *a = strstr(d, "ed25519-sha512");
    memmove(a + 16, a + 14, strlen(a + 14) + 1);
    memcpy(a, "secp256k1-sha256", 16);
    bad("frost: Ed25519 points under frost-secp256k1-sha256", d, NS_E_PARSE, "66 hex digits");
    test_frost_k1();
}

int main(void)
{
    test_load();
    test_bad();
    test_v2();
    test_sign();
    test_frost();
    T_DONE();
}
