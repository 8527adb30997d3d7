/*
 * creds: temporary AWS credentials in locked, non-dumpable memory.
 *
 * Sources, in the order an applet tries them: a JSON document (the seed's / IMDS's:
 * {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", ...}) from --creds FILE|- (or a
 * buffer, e.g. received over vsock), then AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN, then (host side) IMDS (imds.h). The JSON reader is a strict, bounded,
 * non-recursive reader of one flat object (nested values are skipped with a depth bound);
 * every copy of a secret it makes is in secret memory and wiped. Expired credentials (with a
 * safety margin) are refused with a message that says when they expired and what to do.
 * Nothing here logs; nothing here ever prints a secret.
 */
#ifndef NS_CREDS_H
#define NS_CREDS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "err.h"

#define NS_CREDS_AKID_MAX 128
#define NS_CREDS_SECRET_MAX 128
#define NS_CREDS_TOKEN_MAX 4096
#define NS_CREDS_JSON_MAX (64 * 1024)
#define NS_CREDS_EXPIRY_MARGIN_S 60 /* refuse credentials expiring within this */

typedef struct {
    char access_key_id[NS_CREDS_AKID_MAX + 1];
    char secret_access_key[NS_CREDS_SECRET_MAX + 1];
    char session_token[NS_CREDS_TOKEN_MAX + 1]; /* "" = none */
    char expiration[40];                        /* as given, "" = none */
    int64_t expires_at;                         /* UNIX seconds, 0 = no expiry known */
} ns_creds;

/* Allocates zeroed credentials in secret memory. */
ns_err ns_creds_new(ns_creds **c) NS_MUST_CHECK;
/* Wipes and frees. Safe on NULL. */
void ns_creds_free(ns_creds *c);

/* Parses the JSON document (json need not be NUL-terminated). */
ns_err ns_creds_parse_json(ns_creds *c, const uint8_t *json, size_t len) NS_MUST_CHECK;
/* Reads the JSON document from a path ("-" = stdin, "fd:N"). */
ns_err ns_creds_load_file(ns_creds *c, const char *path) NS_MUST_CHECK;
/* From AWS_ACCESS_KEY_ID etc.; NS_E_NOT_FOUND when AWS_ACCESS_KEY_ID is unset. */
ns_err ns_creds_from_env(ns_creds *c) NS_MUST_CHECK;
/* NS_E_EXPIRED when expires_at is within the margin of now. */
ns_err ns_creds_check_fresh(const ns_creds *c, time_t now) NS_MUST_CHECK;
/* Parses "2026-11-24T21:08:45Z" (also with fractional seconds or +00:00) to UNIX seconds. */
ns_err ns_creds_parse_time(const char *s, int64_t *out) NS_MUST_CHECK;

/* The seed's JSON document {"AccessKeyId":..,"SecretAccessKey":..,"Token":..,"Expiration":..}
 * appended to out (which should be a secret buffer), with a final newline. */
ns_err ns_creds_to_json(const ns_creds *c, ns_buf *out) NS_MUST_CHECK;
/* "export AWS_ACCESS_KEY_ID=..." lines (values single-quoted) appended to out. */
ns_err ns_creds_to_env(const ns_creds *c, ns_buf *out) NS_MUST_CHECK;

#endif
