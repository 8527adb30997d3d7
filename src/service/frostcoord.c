/*
 * frostcoord: see frostcoord.h. The engine keeps, per participant, the rest of its last batch
 * of commitments (public values only) and its identifier; the group is a deep copy of the first
 * participant's, compared byte for byte with every other's.
 */
#include "frostcoord.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "iox.h"
#include "secret.h"
#include "signkeys.h"

#define EXPIRY_MARGIN_MS                                                                           \
    5000 /* a batch is dropped this long (at most a quarter of its life)                           \
            before the signer expires it */

/* --- the caller's own share --- */

struct ns_frostcoord_local {
    ns_signkeys *keys;       /* the keys file (or the entry wrapped as one), secret memory */
    const ns_frost_key *key; /* its FROST entry for the key id */
    ns_frost_nonces *nonces; /* NS_FROSTCOORD_BATCH_MAX slots, secret memory */
    char id[NS_FROST_ID_MAX + 1];
    const char *name;
};

/* The share is read by signkeys (the keys-file code sign-service runs: the same strict checks,
 * secret memory, the parser's copies wiped): a keys file as frost-keygen writes it, or one entry
 * alone, wrapped into a version-1 file here. */
static ns_err local_load(ns_frostcoord_local *l, const uint8_t *json, size_t len,
                         const char *key_id)
{
    static const char pre[] = "{\"version\":1,\"keys\":[", post[] = "]}";
    size_t i = 0;
    while (i < len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) {
        i++;
    }
    int whole = len - i >= 10 && memmem(json, len, "\"version\"", 9) != NULL &&
                memmem(json, len, "\"keys\"", 6) != NULL;
    if (whole) {
        GUARD(ns_signkeys_load(&l->keys, json, len));
    } else {
        ENSURE(memmem(json, len, "\"allow\"", 7) == NULL, NS_E_PARSE,
               "an entry alone must not have \"allow\" (a client policy has no meaning here): "
               "remove it, or give the whole keys file");
        ns_buf w;
        ns_buf_init_secret(&w, len + sizeof pre + sizeof post);
        ns_err e = ns_buf_append(&w, pre, sizeof pre - 1);
        if (e == NS_OK) {
            e = ns_buf_append(&w, json, len);
        }
        if (e == NS_OK) {
            e = ns_buf_append(&w, post, sizeof post - 1);
        }
        if (e == NS_OK) {
            e = ns_signkeys_load(&l->keys, w.data, w.len);
        }
        ns_buf_free(&w); /* wiped */
        GUARD(e);
    }
    const ns_signkey *k = NULL;
    if (key_id != NULL) {
        k = ns_signkeys_find(l->keys, key_id);
    } else if (l->keys->count == 1) {
        k = &l->keys->keys[0];
    }
    ENSURE(k != NULL, NS_E_USAGE, "no key \"%.64s\" in it", key_id ? key_id : "(any)");
    ENSURE(k->frost != NULL, NS_E_USAGE, "key \"%s\" is %s, not a FROST share", k->id,
           ns_sign_alg_name(k->alg));
    l->key = k->frost;
    snprintf(l->id, sizeof l->id, "%s", k->id);
    return NS_OK;
}

ns_err ns_frostcoord_local_new(ns_frostcoord_local **out, const uint8_t *json, size_t len,
                               const char *key_id, const char *name)
{
    *out = NULL;
    GUARD(ns_frost_init());
    ns_frostcoord_local *l = calloc(1, sizeof *l);
    ENSURE(l != NULL, NS_E_NOMEM, "out of memory");
    l->name = name;
    l->nonces = ns_secret_alloc(NS_FROSTCOORD_BATCH_MAX * sizeof *l->nonces);
    ns_err e =
        l->nonces != NULL ? NS_OK : ns_fail(NS_E_NOMEM, "cannot allocate locked memory for nonces");
    if (e == NS_OK) {
        memset(l->nonces, 0, NS_FROSTCOORD_BATCH_MAX * sizeof *l->nonces);
        e = local_load(l, json, len, key_id);
    }
    if (e != NS_OK) {
        ns_frostcoord_local_free(l);
        return e;
    }
    *out = l;
    return NS_OK;
}

void ns_frostcoord_local_free(ns_frostcoord_local *l)
{
    if (l == NULL) {
        return;
    }
    ns_signkeys_free(l->keys);
    if (l->nonces != NULL) {
        ns_secret_free(l->nonces, NS_FROSTCOORD_BATCH_MAX * sizeof *l->nonces);
    }
    free(l);
}

static ns_err local_commit(void *arg, const char *key_id, unsigned count, ns_frostcoord_batch *out)
{
    ns_frostcoord_local *l = arg;
    ENSURE(strcmp(key_id, l->id) == 0, NS_E_NOT_FOUND, "%s: the share is for key \"%s\"", l->name,
           l->id);
    ENSURE(count >= 1 && count <= NS_FROSTCOORD_BATCH_MAX, NS_E_USAGE, "bad count");
    memset(out, 0, sizeof *out);
    GUARD(ns_frost_group_copy(&out->group, &l->key->group));
    out->identifier = l->key->identifier;
    out->expires_in_ms = 24u * 3600 * 1000;
    /* Slot i of the local store is id i: a new batch replaces (wipes) the previous one. */
    for (unsigned i = 0; i < count; i++) {
        ns_wipe(&l->nonces[i], sizeof l->nonces[i]);
        ns_err e = ns_frost_commit(l->key, &l->nonces[i]);
        if (e != NS_OK) {
            ns_frost_group_free(&out->group);
            return e;
        }
        memset(out->c[i].id, 0, sizeof out->c[i].id);
        ns_put_be32(out->c[i].id, i);
        out->c[i].commitment = l->nonces[i].commitment;
        out->n = i + 1;
    }
    return NS_OK;
}

static ns_err local_sign(void *arg, ns_frost_suite suite, const char *key_id, const uint8_t id[16],
                         const uint8_t *msg, size_t msg_len, const ns_frost_commitment *list,
                         size_t n, ns_frost_share *out)
{
    (void)suite;
    ns_frostcoord_local *l = arg;
    uint32_t i = (uint32_t)id[0] << 24 | (uint32_t)id[1] << 16 | (uint32_t)id[2] << 8 | id[3];
    ENSURE(strcmp(key_id, l->id) == 0 && i < NS_FROSTCOORD_BATCH_MAX, NS_E_NOT_FOUND,
           "%s: unknown commitment", l->name);
    return ns_frost_sign(l->key, &l->nonces[i], msg, msg_len, list, n, out); /* wipes it */
}

void ns_frostcoord_local_party(ns_frostcoord_party *p, ns_frostcoord_local *l)
{
    *p = (ns_frostcoord_party){
        .name = l->name, .arg = l, .commit = local_commit, .sign = local_sign};
}

/* --- the engine --- */

typedef struct {
    ns_frostcoord_batch b;
    size_t next;         /* the next unused commitment of b */
    int64_t deadline_ms; /* drop what is left of b after this */
} queue;

struct ns_frostcoord {
    char key_id[NS_FROST_ID_MAX + 1];
    const ns_frostcoord_party *parties;
    size_t n;
    unsigned batch;
    ns_frost_group group;
    queue *q;                  /* n */
    ns_frost_commitment *list; /* n, sorted by identifier */
    ns_frost_share *shares;    /* n, in list order */
};

static int group_equal(const ns_frost_group *a, const ns_frost_group *b)
{
    size_t el = ns_frost_element_len(a->suite);
    if (a->suite != b->suite || a->min_signers != b->min_signers ||
        a->max_signers != b->max_signers || memcmp(a->group_public_key, b->group_public_key, el)) {
        return 0;
    }
    for (unsigned i = 0; i < a->max_signers; i++) {
        if (memcmp(a->verifying_shares[i], b->verifying_shares[i], el) != 0) {
            return 0;
        }
    }
    return 1;
}

static ns_err refill(ns_frostcoord *co, size_t i)
{
    queue *q = &co->q[i];
    const ns_frostcoord_party *p = &co->parties[i];
    ns_frost_group_free(&q->b.group);
    memset(q, 0, sizeof *q);
    int64_t t0 = ns_now_ms();
    GUARD(p->commit(p->arg, co->key_id, co->batch, &q->b));
    int64_t life = (int64_t)q->b.expires_in_ms;
    q->deadline_ms = t0 + life - (life / 4 < EXPIRY_MARGIN_MS ? life / 4 : EXPIRY_MARGIN_MS);
    q->next = 0;
    ENSURE(q->b.n > 0, NS_E_PROTO, "%s: FrostCommit returned no commitment", p->name);
    return NS_OK;
}

ns_err ns_frostcoord_new(ns_frostcoord **out, const char *key_id,
                         const ns_frostcoord_party *parties, size_t n, unsigned batch,
                         const ns_frost_group *pin)
{
    *out = NULL;
    GUARD(ns_frost_init());
    ENSURE(n >= 1 && n <= NS_FROST_SIGNERS_MAX, NS_E_USAGE, "%zu participants", n);
    ENSURE(batch >= 1 && batch <= NS_FROSTCOORD_BATCH_MAX, NS_E_USAGE, "batch must be 1..%d",
           NS_FROSTCOORD_BATCH_MAX);
    ENSURE(strlen(key_id) >= 1 && strlen(key_id) <= NS_FROST_ID_MAX, NS_E_USAGE,
           "key id of %zu characters (1-%d)", strlen(key_id), NS_FROST_ID_MAX);
    ns_frostcoord *co = calloc(1, sizeof *co);
    ENSURE(co != NULL, NS_E_NOMEM, "out of memory");
    snprintf(co->key_id, sizeof co->key_id, "%s", key_id);
    co->parties = parties;
    co->n = n;
    co->batch = batch;
    co->q = calloc(n, sizeof *co->q);
    co->list = calloc(n, sizeof *co->list);
    co->shares = calloc(n, sizeof *co->shares);
    ns_err e = co->q && co->list && co->shares ? NS_OK : ns_fail(NS_E_NOMEM, "out of memory");
    for (size_t i = 0; e == NS_OK && i < n; i++) {
        e = refill(co, i);
        if (e != NS_OK) {
            break;
        }
        const ns_frost_group *g = &co->q[i].b.group;
        if (i == 0) {
            e = ns_frost_group_copy(&co->group, pin != NULL ? pin : g);
        }
        if (e == NS_OK && !group_equal(&co->group, g)) {
            e = ns_fail(NS_E_AUTH,
                        "%s reports another group for key \"%s\" than %s (group key, threshold "
                        "or verifying shares differ): not the same threshold key",
                        parties[i].name, key_id, pin != NULL ? "--group" : parties[0].name);
        }
        for (size_t j = 0; e == NS_OK && j < i; j++) {
            if (co->q[j].b.identifier == co->q[i].b.identifier) {
                e = ns_fail(NS_E_USAGE, "%s and %s are the same participant (identifier %u)",
                            parties[j].name, parties[i].name, co->q[i].b.identifier);
            }
        }
    }
    if (e == NS_OK && n < co->group.min_signers) {
        e = ns_fail(NS_E_USAGE,
                    "key \"%s\" needs %u signers (a %u-of-%u key), %zu given: add --signer", key_id,
                    co->group.min_signers, co->group.min_signers, co->group.max_signers, n);
    }
    if (e == NS_OK && n > co->group.max_signers) {
        e = ns_fail(NS_E_USAGE, "%zu signers for a key of %u participants", n,
                    co->group.max_signers);
    }
    if (e != NS_OK) {
        ns_frostcoord_free(co);
        return e;
    }
    *out = co;
    return NS_OK;
}

const ns_frost_group *ns_frostcoord_group(const ns_frostcoord *co)
{
    return &co->group;
}

static size_t party_of(const ns_frostcoord *co, uint16_t identifier)
{
    for (size_t i = 0; i < co->n; i++) {
        if (co->q[i].b.identifier == identifier) {
            return i;
        }
    }
    return co->n;
}

ns_err ns_frostcoord_sign(ns_frostcoord *co, const uint8_t *msg, size_t msg_len,
                          uint8_t sig[NS_FROST_SIG_MAX], size_t *sig_len)
{
    /* Round one: the next commitment of each participant. */
    const uint8_t *ids[NS_FROST_SIGNERS_MAX];
    int64_t now = ns_now_ms();
    for (size_t i = 0; i < co->n; i++) {
        queue *q = &co->q[i];
        if (q->next >= q->b.n || now > q->deadline_ms) {
            GUARD(refill(co, i));
        }
        co->list[i] = q->b.c[q->next].commitment;
        ids[i] = q->b.c[q->next].id;
        q->next++;
    }
    ns_frost_commitments_sort(co->list, co->n);
    /* Round two: each participant's share, in list order. */
    for (size_t k = 0; k < co->n; k++) {
        size_t i = party_of(co, co->list[k].identifier);
        ENSURE(i < co->n, NS_E_INTERNAL, "participant of identifier %u lost",
               co->list[k].identifier);
        const ns_frostcoord_party *p = &co->parties[i];
        GUARD(p->sign(p->arg, co->group.suite, co->key_id, ids[i], msg, msg_len, co->list, co->n,
                      &co->shares[k]));
        ENSURE(co->shares[k].identifier == co->list[k].identifier, NS_E_AUTH,
               "%s answered as identifier %u, but it is participant %u", p->name,
               co->shares[k].identifier, co->list[k].identifier);
    }
    uint16_t bad = 0;
    ns_err e = ns_frost_aggregate(&co->group, msg, msg_len, co->list, co->n, co->shares, sig,
                                  sig_len, &bad);
    if (e != NS_OK && bad != 0) {
        size_t i = party_of(co, bad);
        return ns_fail(NS_E_AUTH,
                       "signer %s (identifier %u) sent a signature share that does not verify "
                       "against its verifying share: it is faulty or compromised",
                       i < co->n ? co->parties[i].name : "?", bad);
    }
    return e; /* ns_frost_aggregate verified the signature under the group key */
}

void ns_frostcoord_free(ns_frostcoord *co)
{
    if (co == NULL) {
        return;
    }
    for (size_t i = 0; co->q != NULL && i < co->n; i++) {
        ns_frost_group_free(&co->q[i].b.group);
    }
    ns_frost_group_free(&co->group);
    free(co->q);
    free(co->list);
    free(co->shares);
    free(co);
}
