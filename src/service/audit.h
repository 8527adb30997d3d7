/*
 * audit: sign-service's audit trail, a hash chain of one entry per Sign with Ed25519-signed
 * heads, and its verifier (nsign audit-verify). The audit key is generated at start in locked
 * memory and never leaves the process; its public key is bound in Attest's user_data (v2
 * commitment below), so a host that drops, edits, reorders, appends or re-signs lines is caught.
 *
 * Records, one JSON object per line (members in this order, hex lowercase):
 *   {"type":"start","version":1,"time_ms":T,"audit_pub":"<32 B>","keys_commitment":"<32 B>"}
 *   {"type":"entry","seq":N,"time_ms":T,"client":"..","key":"..","input":"message"|"digest",
 *    "sha256":"<32 B>","status":"OK","prev":"<32 B>","hash":"<32 B>"}
 *   {"type":"head","count":N,"time_ms":T,"head":"<32 B>","final":false,"sig":"<64 B>"}
 * sha256 is SHA-256 of the signing input (the message, or the 32-byte digest as sent).
 * FROST entries (FrostCommit, FrostSign: docs/frost.md) have one more member after "status",
 *   "frost":"sign commitment=<32 hex> set=1,3" (input "message": SHA-256 of the message) or
 *   "frost":"commit count=N" (input "commitments": SHA-256 of the issued commitment ids),
 * and hash with their own tag, the detail after the status:
 *   hash = SHA-256("nsign-audit-entry-frost-v1\n" || be64 seq || be64 time_ms || u8 len ||
 *           client || u8 len || key || u8 input (0 message, 2 commitments) || sha256 || u8 len ||
 *           status || be16 len || frost || prev)
 *   genesis   = SHA-256("nsign-audit-genesis-v1\n" || audit_pub || keys_commitment)
 *   hash      = SHA-256("nsign-audit-entry-v1\n" || be64 seq || be64 time_ms || u8 len || client
 *                || u8 len || key || u8 input (0 message, 1 digest) || sha256 || u8 len ||
 *                status || prev)        prev of seq 0 = genesis, then the previous entry's hash
 *   sig       = Ed25519(audit key, "nsign-audit-head-v1\n" || be64 count || be64 time_ms ||
 *                u8 final || head)     head = hash of entry count-1 (genesis when count = 0)
 *   user_data = SHA-256("nsign-attest-v2\n" || u8 4 || "keys" || u8 32 || keys_commitment ||
 *                u8 13 || "audit-ed25519" || u8 32 || audit_pub)   (Attest with an audit trail;
 *                keys_commitment is the keys commitment of signkeys.h: the keys and the
 *                client policy; user_data without an audit trail)
 * A head is signed every every_n entries, every every_ms when entries were added, and at close
 * (final = true: the last line of a complete trail).
 */
#ifndef NS_AUDIT_H
#define NS_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NS_AUDIT_PUB_LEN 32
#define NS_AUDIT_LINE_MAX 2048
#define NS_AUDIT_FIELD_MAX 128 /* client and key strings (cut, never refused) */
#define NS_AUDIT_FROST_MAX 400 /* a FROST entry's detail (cut, never refused) */

/* Receives each record as one line ending in '\n'; called in chain order, under the trail's
 * lock: it must not block for long (a file write, or logship's ring). */
typedef void (*ns_audit_sink)(void *arg, const char *line, size_t n);

typedef struct ns_audit ns_audit;

ns_err ns_audit_new(ns_audit **a, const uint8_t keys_commitment[32], uint32_t every_n,
                    uint32_t every_ms, ns_audit_sink sink, void *arg) NS_MUST_CHECK;
const uint8_t *ns_audit_pub(const ns_audit *a);
/* The v2 user_data commitment above. */
void ns_audit_user_data(const ns_audit *a, uint8_t out[32]);
void ns_audit_user_data_v2(uint8_t out[32], const uint8_t keys_commitment[32],
                           const uint8_t audit_pub[32]);
/* The keys commitment ("nsign-keys-v2", signkeys.h) from its parts: what the enclave computes
 * from its keys file and a client recomputes from the Attest answer. */
void ns_audit_keys_commitment(uint8_t out[32], const uint8_t key_set[32], const uint8_t policy[32],
                              uint64_t policy_epoch, int client_auth);
/* Appends one entry (thread-safe). client/key are cleaned to printable ASCII and cut. */
void ns_audit_append(ns_audit *a, const char *client, const char *key, int input_is_digest,
                     const uint8_t sha256[32], const char *status);
/* Appends one FROST entry (thread-safe): is_commit 1 for FrostCommit ("commitments"), 0 for
 * FrostSign ("message"); frost is the detail (cleaned and cut like client and key). */
void ns_audit_append_frost(ns_audit *a, const char *client, const char *key, int is_commit,
                           const uint8_t sha256[32], const char *status, const char *frost);
/* Signs the final head, stops the timer, wipes the key and frees. */
void ns_audit_close(ns_audit *a);

typedef struct {
    size_t line;           /* 1-based line of the first problem (0: none) */
    int64_t seq;           /* the entry's seq there, -1 when not an entry */
    size_t entries;        /* entries checked */
    size_t heads;          /* signed heads checked */
    size_t unsigned_tail;  /* entries after the last signed head (live mode) */
    size_t signed_entries; /* entries the last signed head covers */
    int64_t last_head_ms;  /* that head's time_ms (ms since the epoch), -1: no signed head */
    uint8_t audit_pub[32];
} ns_audit_report;

/*
 * Verifies a trail. user_data: the attested commitment (32 bytes), or NULL to trust the start
 * record's key (then only internal consistency is proven). live: the trail may still grow (no
 * final head needed; entries after the last head are counted in unsigned_tail, not proven).
 * NS_E_AUTH with rep->line and the detail for the first broken line; NS_E_PARSE for a line that
 * is not a record.
 */
ns_err ns_audit_verify(const uint8_t *log, size_t n, const uint8_t *user_data, int live,
                       ns_audit_report *rep) NS_MUST_CHECK;

/*
 * What an auditor knows from elsewhere, checked against a verified report: a host may cut a trail
 * exactly at a signed head (everything after it gone, the rest still verifies), which only an
 * outside bound can tell from a service that stopped signing. since_ms >= 0: the last signed head
 * must be at or after it; min_entries > 0: the signed heads must cover at least that many
 * entries (e.g. nsign_audit_entries_total, or the Sign calls a client made). NS_E_AUTH naming
 * what is missing.
 */
ns_err ns_audit_check_bounds(const ns_audit_report *rep, int64_t since_ms,
                             uint64_t min_entries) NS_MUST_CHECK;

#endif
