/*
 * test_frostcoord: the FROST coordinator engine (frostcoord.c) and sign-service's nonce store
 * (frostnonce.c), without sockets: participants are local shares (the same code as
 * `frost-sign --local-share`) from ns_frost_keygen, one of them wrapped to tamper with its
 * signature share (the engine must name it), to report another group, or to answer as another
 * identifier. The nonce store: single use (a take consumes, even when refused), owner checks,
 * expiry, the per-owner and total bounds, unguessable ids, wiped slots.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "frost.h"
#include "frostcoord.h"
#include "frostnonce.h"
#include "secret.h"
#include "t.h"

static ns_frost_group g;
static uint8_t shares[3 * 32];

/* One keys-file FROST entry (JSON) for participant id of the dealt group. */
static void entry(char *out, size_t cap, unsigned id, const char *key_id)
{
    char s[65], gpk[65], v[3][65];
    int ok = ns_hex_encode(s, sizeof s, shares + 32 * (id - 1), 32) == NS_OK &&
             ns_hex_encode(gpk, sizeof gpk, g.group_public_key, 32) == NS_OK;
    for (int i = 0; i < 3; i++) {
        ok &= ns_hex_encode(v[i], sizeof v[i], g.verifying_shares[i], 32) == NS_OK;
    }
    if (!ok) {
        out[0] = 0;
        return;
    }
    snprintf(out, cap,
             "{\"id\":\"%s\",\"algorithm\":\"frost-ed25519-sha512\",\"identifier\":%u,"
             "\"signing_share\":\"%s\",\"group_public_key\":\"%s\",\"verifying_shares\":{\"1\":"
             "\"%s\",\"2\":\"%s\",\"3\":\"%s\"},\"min_signers\":2,\"max_signers\":3}",
             key_id, id, s, gpk, v[0], v[1], v[2]);
}

static ns_frostcoord_local *local(unsigned id)
{
    char j[1024];
    ns_frostcoord_local *l = NULL;
    entry(j, sizeof j, id, "treasury");
    if (ns_frostcoord_local_new(&l, (const uint8_t *)j, strlen(j), "treasury", "local") != NS_OK) {
        printf("# %s\n", ns_err_msg());
    }
    return l;
}

/* A participant that forwards to another and then misbehaves as told. */
typedef struct {
    ns_frostcoord_party inner;
    int tamper_share, other_identifier, other_group;
} evil;

static ns_err evil_commit(void *arg, const char *key_id, unsigned count, ns_frostcoord_batch *out)
{
    evil *e = arg;
    GUARD(e->inner.commit(e->inner.arg, key_id, count, out));
    if (e->other_group) {
        out->group.min_signers = 3;
    }
    return NS_OK;
}

static ns_err evil_sign(void *arg, ns_frost_suite suite, const char *key_id, const uint8_t id[16],
                        const uint8_t *msg, size_t msg_len, const ns_frost_commitment *list,
                        size_t n, ns_frost_share *out)
{
    evil *e = arg;
    GUARD(e->inner.sign(e->inner.arg, suite, key_id, id, msg, msg_len, list, n, out));
    if (e->tamper_share) {
        out->z[0] ^= 1;
    }
    if (e->other_identifier) {
        out->identifier = 3;
    }
    return NS_OK;
}

static void coordinator(void)
{
    ns_frostcoord_local *l1 = local(1), *l2 = local(2), *l3 = local(3);
    CHECK(l1 && l2 && l3, "local shares load from keys-file entries");
    if (!(l1 && l2 && l3)) {
        return;
    }
    ns_frostcoord_party p[3];
    ns_frostcoord_local_party(&p[0], l1);
    ns_frostcoord_local_party(&p[1], l2);
    ns_frostcoord_local_party(&p[2], l3);
    const uint8_t msg[] = "pay 5";
    uint8_t sig[NS_FROST_SIG_MAX];
    size_t sl = 0;
    ns_frostcoord *co = NULL;
    CHECK_ERR(ns_frostcoord_new(&co, "treasury", p, 2, 4, NULL), NS_OK, "2 of 3: coordinator");
    int ok = 1;
    for (int i = 0; i < 6 && co; i++) { /* more than one batch */
        ok &= ns_frostcoord_sign(co, msg, sizeof msg, sig, &sl) == NS_OK && sl == 64 &&
              crypto_sign_verify_detached(sig, msg, sizeof msg, g.group_public_key) == 0;
    }
    CHECK(co && ok, "six signatures over two batches verify under the group key (libsodium)");
    ns_frostcoord_free(co);
    co = NULL;
    CHECK_ERR(ns_frostcoord_new(&co, "treasury", p + 2, 1, 1, NULL), NS_E_USAGE,
              "one participant of a 2-of-3 key: refused");
    CHECK(strstr(ns_err_msg(), "needs 2 signers") != NULL, "... saying how many: %s", ns_err_msg());
    ns_frostcoord_party same[2] = {p[0], p[0]};
    CHECK_ERR(ns_frostcoord_new(&co, "treasury", same, 2, 1, NULL), NS_E_USAGE,
              "the same participant twice: refused");

    evil ev = {.inner = p[1], .tamper_share = 1};
    ns_frostcoord_party bad[2] = {
        p[0], {.name = "tcp:10.0.0.2:50051", .arg = &ev, .commit = evil_commit, .sign = evil_sign}};
    CHECK_ERR(ns_frostcoord_new(&co, "treasury", bad, 2, 1, NULL), NS_OK,
              "coordinator with a "
              "tampering signer");
    CHECK_ERR(ns_frostcoord_sign(co, msg, sizeof msg, sig, &sl), NS_E_AUTH,
              "a tampered signature share is detected");
    CHECK(strstr(ns_err_msg(), "tcp:10.0.0.2:50051") && strstr(ns_err_msg(), "identifier 2"),
          "... and its signer named: %s", ns_err_msg());
    ns_frostcoord_free(co);
    co = NULL;
    ev.tamper_share = 0;
    ev.other_identifier = 1;
    CHECK_ERR(ns_frostcoord_new(&co, "treasury", bad, 2, 1, NULL), NS_OK, "coordinator");
    CHECK_ERR(ns_frostcoord_sign(co, msg, sizeof msg, sig, &sl), NS_E_AUTH,
              "a share answered under another identifier: refused");
    ns_frostcoord_free(co);
    co = NULL;
    ev.other_identifier = 0;
    ev.other_group = 1;
    CHECK_ERR(ns_frostcoord_new(&co, "treasury", bad, 2, 1, NULL), NS_E_AUTH,
              "a participant reporting another group: refused");
    CHECK(strstr(ns_err_msg(), "tcp:10.0.0.2:50051") != NULL, "... naming it: %s", ns_err_msg());
    ns_frost_group other = {0};
    uint8_t osh[3 * 32];
    CHECK(ns_frost_keygen(NS_FROST_ED25519_SHA512, 2, 3, osh, &other, NULL) == NS_OK,
          "another dealing");
    CHECK_ERR(ns_frostcoord_new(&co, "treasury", p, 2, 1, &other), NS_E_AUTH,
              "a pinned group (--group) that the participants do not hold: refused");
    ns_frost_group_free(&other);
    CHECK_ERR(ns_frostcoord_new(&co, "treasury", p, 2, 1, &g), NS_OK,
              "the pinned group they hold: accepted");
    ns_frostcoord_free(co);

    ns_frostcoord_local *x = NULL;
    char j[1024];
    entry(j, sizeof j, 1, "treasury");
    CHECK_ERR(ns_frostcoord_local_new(&x, (const uint8_t *)j, strlen(j), "other", "f"), NS_E_USAGE,
              "a local share of another key id: refused");
    char *s = strstr(j, "\"signing_share\":\"") + 17;
    s[0] = s[0] == '0' ? '1' : '0';
    CHECK(ns_frostcoord_local_new(&x, (const uint8_t *)j, strlen(j), "treasury", "f") != NS_OK,
          "a local share that does not match its verifying share: refused");
    entry(j, sizeof j, 1, "treasury");
    memcpy(strstr(j, "\"min_signers\""), "\"extra_member\"", 13);
    CHECK(ns_frostcoord_local_new(&x, (const uint8_t *)j, strlen(j), "treasury", "f") != NS_OK,
          "a local share with an unknown member: refused");
    char file[1200];
    entry(j, sizeof j, 2, "treasury");
    snprintf(file, sizeof file, "{\"version\":1,\"keys\":[%s]}", j);
    CHECK_ERR(ns_frostcoord_local_new(&x, (const uint8_t *)file, strlen(file), "treasury", "f"),
              NS_OK, "a local share given as a whole keys file");
    ns_frostcoord_local_free(x);
    x = NULL;
    snprintf(file, sizeof file, "{\"version\":1,\"keys\":[%s]}", j);
    CHECK_ERR(ns_frostcoord_local_new(&x, (const uint8_t *)file, strlen(file), "other", "f"),
              NS_E_USAGE, "... without the key asked for: refused");
    ns_frostcoord_local_free(l1);
    ns_frostcoord_local_free(l2);
    ns_frostcoord_local_free(l3);
}

static int used;
static int use(void *arg, ns_frost_nonces *n)
{
    (void)arg;
    used++;
    return n->live ? 7 : 8;
}

static void nonces(void)
{
    ns_frost_key k = {0};
    CHECK(ns_frost_key_init(&k, &g, 1, shares) == NS_OK, "a key package");
    ns_frostnonce *s = NULL;
    CHECK_ERR(ns_frostnonce_new(&s, 4, 2, 1000), NS_OK, "a store of 4, 2 per owner, 1 s");
    uint8_t id[4][NS_FROSTNONCE_ID_LEN];
    ns_frost_commitment pub[4];
    size_t before = ns_secret_allocs();
    CHECK_ERR(ns_frostnonce_put(s, 0, 5, &k, 1000, id[0], &pub[0]), NS_OK, "put");
    CHECK_ERR(ns_frostnonce_put(s, 0, 5, &k, 1000, id[1], &pub[1]), NS_OK, "put");
    CHECK(ns_secret_allocs() == before, "puts allocate nothing (the store is one secret block)");
    CHECK(memcmp(id[0], id[1], 16) != 0 && memcmp(pub[0].hiding, pub[1].hiding, 32) != 0 &&
              pub[0].identifier == 1,
          "fresh ids and commitments");
    CHECK_ERR(ns_frostnonce_put(s, 0, 5, &k, 1000, id[2], &pub[2]), NS_E_TOO_BIG,
              "a third for the same (key, client): over the per-owner bound");
    CHECK_ERR(ns_frostnonce_put(s, 1, 6, &k, 1000, id[2], &pub[2]), NS_OK, "another owner: fine");
    CHECK_ERR(ns_frostnonce_put(s, 1, -1, &k, 1000, id[3], &pub[3]), NS_OK,
              "no client (no policy): its own owner");
    uint8_t x[16];
    CHECK_ERR(ns_frostnonce_put(s, 2, 5, &k, 1000, x, &pub[3]), NS_E_TOO_BIG, "the store is full");
    CHECK(ns_frostnonce_outstanding(s) == 4 && ns_frostnonce_outstanding_for(s, 0, 5) == 2,
          "outstanding counts");
    int rc = 0;
    used = 0;
    CHECK(ns_frostnonce_take(s, id[0], 16, 0, 5, 1500, use, NULL, &rc) == NS_FROSTNONCE_OK &&
              rc == 7 && used == 1,
          "take: the callback runs on the live nonces");
    CHECK(ns_frostnonce_take(s, id[0], 16, 0, 5, 1500, use, NULL, &rc) == NS_FROSTNONCE_UNKNOWN &&
              used == 1,
          "a second take of the same id: unknown, the callback does not run");
    CHECK(ns_frostnonce_take(s, id[1], 16, 0, 6, 1500, use, NULL, &rc) == NS_FROSTNONCE_NOT_YOURS &&
              used == 1,
          "another client's id: refused without running the callback");
    CHECK(ns_frostnonce_take(s, id[1], 16, 0, 5, 1500, use, NULL, &rc) == NS_FROSTNONCE_UNKNOWN,
          "... and consumed");
    CHECK(ns_frostnonce_take(s, id[2], 16, 0, 5, 1500, use, NULL, &rc) == NS_FROSTNONCE_NOT_YOURS,
          "another key's id: refused (and consumed)");
    uint8_t forged[16];
    memcpy(forged, id[3], 16);
    forged[15] ^= 1;
    CHECK(ns_frostnonce_take(s, forged, 16, 1, -1, 1500, use, NULL, &rc) == NS_FROSTNONCE_UNKNOWN,
          "an id with the right slot but a wrong tag: unknown");
    CHECK(ns_frostnonce_take(s, id[3], 15, 1, -1, 1500, use, NULL, &rc) == NS_FROSTNONCE_UNKNOWN,
          "a short id: unknown");
    CHECK(ns_frostnonce_take(s, id[3], 16, 1, -1, 2000, use, NULL, &rc) == NS_FROSTNONCE_EXPIRED &&
              used == 1,
          "an expired id: refused, the callback does not run");
    CHECK(ns_frostnonce_outstanding(s) == 0, "every taken or refused entry is released");
    CHECK_ERR(ns_frostnonce_put(s, 0, 5, &k, 3000, id[0], &pub[0]), NS_OK, "put");
    CHECK_ERR(ns_frostnonce_put(s, 0, 5, &k, 3000, id[1], &pub[1]), NS_OK, "put");
    CHECK_ERR(ns_frostnonce_put(s, 0, 5, &k, 4100, id[2], &pub[2]), NS_OK,
              "at the bound, expired entries are reclaimed for new ones");
    CHECK(ns_frostnonce_outstanding_for(s, 0, 5) == 1, "... and no longer counted");
    ns_frostnonce_free(s);
    /* 16 slots: a client may hold 4 (a quarter) over all its keys, a key 8 (a half). */
    CHECK_ERR(ns_frostnonce_new(&s, 16, 2, 1000), NS_OK, "a store of 16, 2 per owner");
    int made = 0;
    for (int key = 0; key < 4; key++) {
        for (int i = 0; i < 2; i++) {
            made += ns_frostnonce_put(s, key, 7, &k, 0, x, &pub[0]) == NS_OK;
        }
    }
    CHECK(made == 4 && strstr(ns_err_msg(), "this client"),
          "one client over many keys: stops at a quarter of the store (%d)", made);
    made = 0;
    for (int client = 10; client < 16; client++) {
        for (int i = 0; i < 2; i++) {
            made += ns_frostnonce_put(s, 9, client, &k, 0, x, &pub[0]) == NS_OK;
        }
    }
    CHECK(made == 8 && strstr(ns_err_msg(), "this key"),
          "one key over many clients: stops at half of the store (%d)", made);
    CHECK_ERR(ns_frostnonce_put(s, 10, 20, &k, 0, x, &pub[0]), NS_OK,
              "another client and key still get commitments");
    ns_frostnonce_free(s);
    ns_frost_key_free(&k);
}

int main(void)
{
    CHECK(ns_frost_keygen(NS_FROST_ED25519_SHA512, 2, 3, shares, &g, NULL) == NS_OK,
          "a 2-of-3 dealing");
    coordinator();
    nonces();
    ns_frost_group_free(&g);
    T_DONE();
}
