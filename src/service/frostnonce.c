/*
 * frostnonce: see frostnonce.h. One secret block holds the slots; a free list (indexes, not
 * secret) finds an empty slot in O(1); expired entries are reclaimed by a sweep when the store or
 * an owner's share is full. A slot being used by a take is marked TAKEN, so no other take or
 * sweep can touch it until it is wiped and returned to the free list.
 */
#include "frostnonce.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "rng.h"
#include "secret.h"

#define TAG_LEN (NS_FROSTNONCE_ID_LEN - 4)
#define CAPACITY_MAX (1u << 20)

enum { FREE = 0, READY = 1, TAKEN = 2 };

typedef struct {
    ns_frost_nonces nonces;
    uint8_t tag[TAG_LEN];
    uint8_t state;
    int8_t key;
    int8_t client; /* -1: no client policy */
    int64_t expires_ms;
} slot;

struct ns_frostnonce {
    pthread_mutex_t mu;
    slot *slots; /* capacity entries, secret memory */
    size_t capacity, per_owner, outstanding;
    uint32_t ttl_ms;
    uint32_t *free_list; /* indexes of FREE slots */
    size_t nfree;
    uint32_t owned[NS_FROSTNONCE_KEYS][NS_FROSTNONCE_CLIENTS + 1];
    uint32_t per_key[NS_FROSTNONCE_KEYS];           /* all clients' entries of a key */
    uint32_t per_client[NS_FROSTNONCE_CLIENTS + 1]; /* all keys' entries of a client */
    size_t key_max, client_max;
};

static uint32_t *owned(ns_frostnonce *s, int key, int client)
{
    return &s->owned[key][client + 1];
}

ns_err ns_frostnonce_new(ns_frostnonce **out, size_t capacity, size_t per_owner, uint32_t ttl_ms)
{
    *out = NULL;
    capacity = capacity ? capacity : NS_FROSTNONCE_CAPACITY_DEFAULT;
    per_owner = per_owner ? per_owner : NS_FROSTNONCE_PER_OWNER_DEFAULT;
    ENSURE(capacity <= CAPACITY_MAX, NS_E_USAGE, "frost nonce store: capacity %zu over %u",
           capacity, CAPACITY_MAX);
    ns_frostnonce *s = calloc(1, sizeof *s);
    ENSURE(s != NULL, NS_E_NOMEM, "out of memory");
    s->capacity = capacity;
    s->per_owner = per_owner;
    s->ttl_ms = ttl_ms ? ttl_ms : NS_FROSTNONCE_TTL_MS_DEFAULT;
    /* No client can take more than a quarter of the store, no key more than half of it. */
    s->client_max = capacity / 4 > per_owner ? capacity / 4 : per_owner;
    s->key_max = capacity / 2 > per_owner ? capacity / 2 : per_owner;
    s->slots = ns_secret_alloc(capacity * sizeof(slot));
    s->free_list = calloc(capacity, sizeof(uint32_t));
    if (s->slots == NULL || s->free_list == NULL) {
        ns_frostnonce_free(s);
        BAIL(NS_E_NOMEM,
             "frost nonce store: cannot allocate %zu slots of locked memory (check "
             "RLIMIT_MEMLOCK)",
             capacity);
    }
    memset(s->slots, 0, capacity * sizeof(slot));
    for (size_t i = 0; i < capacity; i++) {
        s->free_list[i] = (uint32_t)(capacity - 1 - i);
    }
    s->nfree = capacity;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return NS_OK;
}

void ns_frostnonce_free(ns_frostnonce *s)
{
    if (s == NULL) {
        return;
    }
    if (s->slots != NULL) {
        ns_secret_free(s->slots, s->capacity * sizeof(slot)); /* wipes */
        pthread_mutex_destroy(&s->mu);
    }
    free(s->free_list);
    free(s);
}

/* Under s->mu: wipes slot i and returns it to the free list. */
static void release(ns_frostnonce *s, uint32_t i)
{
    slot *sl = &s->slots[i];
    uint32_t *o = owned(s, sl->key, sl->client);
    if (*o > 0) {
        (*o)--;
        s->per_key[sl->key]--;
        s->per_client[sl->client + 1]--;
    }
    s->outstanding--;
    ns_wipe(sl, sizeof *sl);
    s->free_list[s->nfree++] = i;
}

/* Under s->mu: reclaims every expired READY slot. */
static void sweep(ns_frostnonce *s, int64_t now_ms)
{
    for (size_t i = 0; i < s->capacity; i++) {
        if (s->slots[i].state == READY && s->slots[i].expires_ms <= now_ms) {
            release(s, (uint32_t)i);
        }
    }
}

static int owner_ok(int key, int client)
{
    return key >= 0 && key < NS_FROSTNONCE_KEYS && client >= -1 && client < NS_FROSTNONCE_CLIENTS;
}

ns_err ns_frostnonce_put(ns_frostnonce *s, int key, int client, const ns_frost_key *k,
                         int64_t now_ms, uint8_t id[NS_FROSTNONCE_ID_LEN], ns_frost_commitment *pub)
{
    ENSURE(owner_ok(key, client), NS_E_USAGE, "frost nonce store: bad owner");
    uint8_t tag[TAG_LEN];
    GUARD(ns_rng_bytes(tag, sizeof tag));
    pthread_mutex_lock(&s->mu);
    if (s->nfree == 0 || *owned(s, key, client) >= s->per_owner || s->per_key[key] >= s->key_max ||
        s->per_client[client + 1] >= s->client_max) {
        sweep(s, now_ms);
    }
    if (*owned(s, key, client) >= s->per_owner) {
        pthread_mutex_unlock(&s->mu);
        BAIL(NS_E_TOO_BIG,
             "%zu commitments of this client for this key are outstanding (the most allowed): "
             "use or let them expire (%u s) first",
             s->per_owner, s->ttl_ms / 1000);
    }
    if (s->per_client[client + 1] >= s->client_max || s->per_key[key] >= s->key_max) {
        pthread_mutex_unlock(&s->mu);
        BAIL(NS_E_TOO_BIG,
             "%s has %zu commitments outstanding (the most allowed, over all its %s): use or "
             "let them expire (%u s) first",
             s->per_client[client + 1] >= s->client_max ? "this client" : "this key",
             s->per_client[client + 1] >= s->client_max ? s->client_max : s->key_max,
             s->per_client[client + 1] >= s->client_max ? "keys" : "clients", s->ttl_ms / 1000);
    }
    if (s->nfree == 0) {
        pthread_mutex_unlock(&s->mu);
        BAIL(NS_E_TOO_BIG, "all %zu commitment slots are in use: retry later", s->capacity);
    }
    uint32_t i = s->free_list[--s->nfree];
    slot *sl = &s->slots[i];
    sl->state = TAKEN; /* filled below, outside the lock */
    sl->key = (int8_t)key;
    sl->client = (int8_t)client;
    (*owned(s, key, client))++;
    s->per_key[key]++;
    s->per_client[client + 1]++;
    s->outstanding++;
    pthread_mutex_unlock(&s->mu);
    ns_err e = ns_frost_commit(k, &sl->nonces);
    pthread_mutex_lock(&s->mu);
    if (e != NS_OK) {
        release(s, i);
        pthread_mutex_unlock(&s->mu);
        return e;
    }
    *pub = sl->nonces.commitment;
    memcpy(sl->tag, tag, sizeof tag);
    sl->expires_ms = now_ms + (int64_t)s->ttl_ms;
    sl->state = READY;
    pthread_mutex_unlock(&s->mu);
    ns_put_be32(id, i);
    memcpy(id + 4, tag, sizeof tag);
    ns_wipe(tag, sizeof tag);
    return NS_OK;
}

ns_frostnonce_status ns_frostnonce_take(ns_frostnonce *s, const uint8_t *id, size_t id_len, int key,
                                        int client, int64_t now_ms, ns_frostnonce_use_fn use,
                                        void *arg, int *use_rc)
{
    *use_rc = 0;
    if (id == NULL || id_len != NS_FROSTNONCE_ID_LEN) {
        return NS_FROSTNONCE_UNKNOWN;
    }
    uint32_t i = (uint32_t)id[0] << 24 | (uint32_t)id[1] << 16 | (uint32_t)id[2] << 8 | id[3];
    if (i >= s->capacity) {
        return NS_FROSTNONCE_UNKNOWN;
    }
    pthread_mutex_lock(&s->mu);
    slot *sl = &s->slots[i];
    if (sl->state != READY || !ns_ct_equal(sl->tag, id + 4, TAG_LEN)) {
        pthread_mutex_unlock(&s->mu);
        return NS_FROSTNONCE_UNKNOWN;
    }
    /* From here on the entry is consumed, whatever the outcome. */
    ns_frostnonce_status st = NS_FROSTNONCE_OK;
    if (sl->expires_ms <= now_ms) {
        st = NS_FROSTNONCE_EXPIRED;
    } else if (sl->key != key || sl->client != client) {
        st = NS_FROSTNONCE_NOT_YOURS;
    }
    if (st != NS_FROSTNONCE_OK) {
        release(s, i);
        pthread_mutex_unlock(&s->mu);
        return st;
    }
    sl->state = TAKEN;
    pthread_mutex_unlock(&s->mu);
    *use_rc = use != NULL ? use(arg, &sl->nonces) : 0;
    pthread_mutex_lock(&s->mu);
    release(s, i);
    pthread_mutex_unlock(&s->mu);
    return NS_FROSTNONCE_OK;
}

size_t ns_frostnonce_outstanding(ns_frostnonce *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->outstanding;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t ns_frostnonce_outstanding_for(ns_frostnonce *s, int key, int client)
{
    if (!owner_ok(key, client)) {
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    size_t n = *owned(s, key, client);
    pthread_mutex_unlock(&s->mu);
    return n;
}

uint32_t ns_frostnonce_ttl_ms(const ns_frostnonce *s)
{
    return s->ttl_ms;
}
