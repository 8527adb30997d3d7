/*
 * frostcoord: the FROST coordinator (RFC 9591 section 5) of `nsign frost-sign`: runs round one
 * and round two with t participants, verifies every signature share against the signer's
 * verifying share (a bad share names the signer), aggregates, verifies the final signature under
 * the group public key.
 *
 * The coordinator is untrusted and holds no secret: participants are reached through a small
 * interface (ns_frostcoord_party): remote signers (sign-service over attested mutual TLS,
 * signclient.h) or the caller's own local share (ns_frostcoord_local_*: the one case where a
 * secret is in this process, in secret memory). The group (public key, verifying shares, T, N)
 * comes from the participants' FrostCommit answers and must be identical for all of them (or
 * equal to a pinned group, e.g. frost-keygen's group file).
 *
 * Commitments are fetched in batches (one FrostCommit per `batch` signatures per participant)
 * and used in order; a batch is dropped before it expires at the signer. Not thread-safe: one
 * coordinator per thread (the bench runs several).
 */
#ifndef NS_FROSTCOORD_H
#define NS_FROSTCOORD_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frost.h"

/* One participant's round one: its commitments (with the ids to name them in round two), its
 * identifier and its group. */
#define NS_FROSTCOORD_BATCH_MAX 64
typedef struct {
    uint8_t id[16];                 /* the commitment id to name in FrostSign */
    ns_frost_commitment commitment; /* the signer's identifier and its two points */
} ns_frostcoord_commitment;

typedef struct {
    uint16_t identifier; /* the signer's own */
    uint32_t expires_in_ms;
    ns_frost_group group; /* validated (ns_frost_group_init): ns_frost_group_free it */
    size_t n;
    ns_frostcoord_commitment c[NS_FROSTCOORD_BATCH_MAX];
} ns_frostcoord_batch;

typedef struct {
    const char *name; /* for messages: the signer's address, or "--local-share FILE" */
    void *arg;
    /* Round one: count (1..64) commitments and the participant's group and identifier. */
    ns_err (*commit)(void *arg, const char *key_id, unsigned count, ns_frostcoord_batch *out);
    /* Round two with the commitment named id over msg and the signing set. */
    ns_err (*sign)(void *arg, ns_frost_suite suite, const char *key_id, const uint8_t id[16],
                   const uint8_t *msg, size_t msg_len, const ns_frost_commitment *list, size_t n,
                   ns_frost_share *out);
} ns_frostcoord_party;

/* Remote signers: ns_signclient_frost_party (signclient.h). */

/* The caller's own share: a plaintext keys file holding the FROST entry of key_id (as
 * frost-keygen writes it), or that entry alone (without "allow"); read by signkeys, strictly,
 * into secret memory. The caller wipes its copy of the JSON. */
typedef struct ns_frostcoord_local ns_frostcoord_local;
ns_err ns_frostcoord_local_new(ns_frostcoord_local **l, const uint8_t *json, size_t len,
                               const char *key_id, const char *name) NS_MUST_CHECK;
void ns_frostcoord_local_party(ns_frostcoord_party *p, ns_frostcoord_local *l);
void ns_frostcoord_local_free(ns_frostcoord_local *l);

typedef struct ns_frostcoord ns_frostcoord;

/*
 * Fetches the first batch of every party and checks the group: identical everywhere (and equal
 * to pin when not NULL), distinct identifiers, min_signers <= n <= max_signers. parties must
 * outlive co. batch: commitments per FrostCommit, 1..64.
 */
ns_err ns_frostcoord_new(ns_frostcoord **co, const char *key_id, const ns_frostcoord_party *parties,
                         size_t n, unsigned batch, const ns_frost_group *pin) NS_MUST_CHECK;
/* One signature over msg (both rounds, every share verified, the result verified). A bad share:
 * NS_E_AUTH naming the signer. */
ns_err ns_frostcoord_sign(ns_frostcoord *co, const uint8_t *msg, size_t msg_len,
                          uint8_t sig[NS_FROST_SIG_MAX], size_t *sig_len) NS_MUST_CHECK;
const ns_frost_group *ns_frostcoord_group(const ns_frostcoord *co);
void ns_frostcoord_free(ns_frostcoord *co);

#endif
