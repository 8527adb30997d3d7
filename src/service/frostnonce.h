/*
 * frostnonce: sign-service's store of FROST round-one nonces (RFC 9591 section 5.1), so that a
 * nonce pair never leaves the enclave and is used at most once.
 *
 * Invariants:
 * - Every entry (an ns_frost_nonces: two scalars and their commitment) lives in one ns_secret_alloc
 * block (locked, never dumped) and is wiped when it is taken, expires or the store is freed.
 * Nothing secret is ever copied out: ns_frostnonce_take hands the nonces to a callback that runs on
 * the store's own memory.
 * - An entry is consumed by the first take that names it, whatever happens next (the callback
 *   may fail): a commitment id is never accepted twice, so a nonce is never used twice.
 * - Bounded: at most `capacity` entries in all, at most `per_owner` outstanding per (key,
 *   client) pair, and no client holds more than a quarter of the store (over all its keys), no
 *   key more than half (over all its clients), so one client cannot starve the others; an entry
 *   expires ttl_ms after it was made (it is then refused and reclaimed).
 * - A commitment id is 16 bytes: u32 big-endian slot || 12 random bytes (compared in constant
 *   time), so a lookup is O(1) and an id cannot be guessed or reused after its slot is recycled.
 * - Thread-safe (one mutex; the callback runs outside it on a slot already marked taken).
 */
#ifndef NS_FROSTNONCE_H
#define NS_FROSTNONCE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frost.h"

#define NS_FROSTNONCE_ID_LEN 16
#define NS_FROSTNONCE_CAPACITY_DEFAULT 8192
#define NS_FROSTNONCE_PER_OWNER_DEFAULT 1024
#define NS_FROSTNONCE_TTL_MS_DEFAULT (5 * 60 * 1000)
#define NS_FROSTNONCE_KEYS 64    /* key indexes 0..63 (NS_SIGNKEYS_MAX) */
#define NS_FROSTNONCE_CLIENTS 64 /* client indexes -1 (no policy) .. 63 */

typedef struct ns_frostnonce ns_frostnonce;

/* Outcomes of a take, so the service can tell the client what was wrong. */
typedef enum {
    NS_FROSTNONCE_OK = 0,
    NS_FROSTNONCE_UNKNOWN,   /* no such id (never issued, malformed, or already used) */
    NS_FROSTNONCE_EXPIRED,   /* issued, but older than ttl_ms (now consumed) */
    NS_FROSTNONCE_NOT_YOURS, /* issued for another key or client (now consumed) */
} ns_frostnonce_status;

/* capacity 0, per_owner 0, ttl_ms 0: the defaults above. */
ns_err ns_frostnonce_new(ns_frostnonce **s, size_t capacity, size_t per_owner,
                         uint32_t ttl_ms) NS_MUST_CHECK;
/* Wipes every entry and frees. NULL is fine. */
void ns_frostnonce_free(ns_frostnonce *s);

/*
 * Makes one entry for (key, client) with round one of k (ns_frost_commit, run in place in the
 * store's secret memory); *pub receives the public commitment. NS_E_TOO_BIG when the store or
 * the owner's share of it is full (after reclaiming expired entries). id receives the
 * commitment id.
 */
ns_err ns_frostnonce_put(ns_frostnonce *s, int key, int client, const ns_frost_key *k,
                         int64_t now_ms, uint8_t id[NS_FROSTNONCE_ID_LEN],
                         ns_frost_commitment *pub) NS_MUST_CHECK;

/*
 * Consumes the entry named id and, when it belongs to (key, client) and has not expired, runs
 * use() on it (outside the store's lock); the entry is wiped and freed after use() returns, or
 * at once when it is refused. Returns the status; *use_rc is use()'s result when it ran.
 */
typedef int (*ns_frostnonce_use_fn)(void *arg, ns_frost_nonces *nonces);
ns_frostnonce_status ns_frostnonce_take(ns_frostnonce *s, const uint8_t *id, size_t id_len, int key,
                                        int client, int64_t now_ms, ns_frostnonce_use_fn use,
                                        void *arg, int *use_rc);

/* Entries outstanding (issued, not taken, not yet reclaimed), in all and for one owner. */
size_t ns_frostnonce_outstanding(ns_frostnonce *s);
size_t ns_frostnonce_outstanding_for(ns_frostnonce *s, int key, int client);
uint32_t ns_frostnonce_ttl_ms(const ns_frostnonce *s);

#endif
