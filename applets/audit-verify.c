/*
 * audit-verify: checks a sign-service audit trail (one JSON object per line, see src/service/audit.h)
 * against the Attest document of the enclave that wrote it: the trail's audit key must be the
 * one the document's user_data commits to (v2 commitment), every head must be signed by it,
 * and the chain must have no gap, edit, reorder or appended line. A coordinator: reads the two
 * files, calls ns_audit_verify, reports the first broken line.
 *
 * The document's own signature and PCRs are attest-verify's job; this applet reads its
 * user_data only, so run both.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../applets/applets.h"
#include "audit.h"
#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "cose.h"
#include "iox.h"
#include "log.h"

#define TRAIL_MAX (1024u * 1024 * 1024)
#define DOC_FILE_MAX (64u * 1024)

static void usage(void)
{
    printf("usage: nsign audit-verify LOGFILE|- (--attestation DOC | --no-attestation) [--live]\n"
           "                          [--since TIME] [--expect-entries N]\n"
           "\n"
           "Checks an audit trail written by 'nsign sign-service --audit-out': the chain of\n"
           "entries (one per Sign) is intact, no entry is missing, edited, reordered or\n"
           "appended, every signed head verifies with the audit key, the trail ends with the\n"
           "final head signed at shutdown, and the audit key is the one bound in the enclave's\n"
           "attestation document (its user_data is the v2 commitment: README, Attest).\n"
           "\n"
           "options:\n"
           "  --attestation DOC  the Attest document (COSE_Sign1), raw or base64; verify its\n"
           "                     signature and PCRs with attest-verify\n"
           "  --no-attestation   check the chain with the key named in the trail itself (proves\n"
           "                     consistency only: anyone can make such a trail)\n"
           "  --live             the trail is still being written: no final head needed; entries\n"
           "                     after the last signed head are reported, not proven\n"
           "  --since TIME       fail unless a signed head at or after TIME covers the trail\n"
           "                     (TIME: seconds since the epoch, or UTC as 2026-01-31T12:00:00Z).\n"
           "                     A host can cut a trail exactly at a signed head and the rest\n"
           "                     still verifies; a running service signs a head every\n"
           "                     --audit-interval while it signs (an idle one signs none)\n"
           "  --expect-entries N fail unless the signed heads cover at least N entries (e.g. the\n"
           "                     enclave's nsign_audit_entries_total, or the Signs a client made)\n"
           "\n"
           "output on stdout: 'ok entries=N heads=N signed=N unsigned_tail=N last_head=TIME\n"
           "audit_key=HEX': signed = entries the last signed head covers, unsigned_tail =\n"
           "entries after it (not proven), last_head = that head's time (UTC, or 'none').\n"
           "exit codes: 0 the trail verifies, 1 it does not (the first broken line is named:\n"
           "'line N (entry seq S): what'), 2 usage\n");
}

/* --since: seconds since the epoch, or UTC "YYYY-MM-DDTHH:MM:SS[.fff]Z"; into ms. */
static int parse_since(const char *s, int64_t *ms)
{
    uint64_t secs;
    if (ns_parse_uint(s, (uint64_t)INT64_MAX / 1000, &secs) == NS_OK) {
        *ms = (int64_t)secs * 1000;
        return 0;
    }
    struct tm tm;
    int frac = 0, used = 0, fused = 0;
    memset(&tm, 0, sizeof tm);
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6 ||
        tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60) {
        return -1;
    }
    if (s[used] == '.' && sscanf(s + used + 1, "%3d%n", &frac, &fused) == 1 && fused == 3) {
        used += 4;
    }
    if (strcmp(s + used, "Z") != 0) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *ms = (int64_t)timegm(&tm) * 1000 + frac;
    return 0;
}

static void format_ms(char *out, size_t cap, int64_t ms)
{
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    if (ms < 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, cap, "none");
        return;
    }
    char d[32];
    strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03dZ", d, (int)(ms % 1000));
}

/* The document, raw CBOR or base64 text; user_data must be 32 bytes. */
static ns_err doc_user_data(const char *path, uint8_t ud[32])
{
    ns_buf raw, dec;
    ns_buf_init(&raw, DOC_FILE_MAX);
    ns_buf_init(&dec, DOC_FILE_MAX);
    ns_err e = ns_read_path(path, &raw);
    const uint8_t *p = raw.data;
    size_t n = raw.len;
    if (e == NS_OK && n > 0 && raw.data[0] != 0x84 && raw.data[0] != 0xD2) {
        /* base64 text: drop whitespace, then decode */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (raw.data[i] != '\n' && raw.data[i] != '\r' && raw.data[i] != ' ') {
                raw.data[k++] = raw.data[i];
            }
        }
        e = ns_buf_reserve(&dec, ns_b64_dec_max(k));
        if (e == NS_OK) {
            e = ns_b64_decode(dec.data, dec.cap, &dec.len, (const char *)raw.data, k, 0);
        }
        if (e != NS_OK) {
            e = ns_fail(NS_E_PARSE, "neither a COSE_Sign1 document nor its base64");
        }
        p = dec.data;
        n = dec.len;
    }
    ns_cose_sign1 s;
    ns_att_doc d;
    if (e == NS_OK) {
        e = ns_cose_sign1_parse(&s, p, n);
    }
    if (e == NS_OK) {
        e = ns_att_doc_parse(&d, s.payload, s.payload_len);
    }
    if (e == NS_OK && (!d.user_data.present || d.user_data.len != 32)) {
        e = ns_fail(NS_E_PARSE, "the document has no 32-byte user_data: not from nsign's Attest");
    }
    if (e == NS_OK) {
        memcpy(ud, d.user_data.p, 32);
    }
    ns_buf_free(&raw);
    ns_buf_free(&dec);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "attestation document %s", path);
    }
    return NS_OK;
}

int audit_verify_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    const char *trail_path = NULL, *doc = NULL;
    int live = 0, no_att = 0;
    int64_t since_ms = -1;
    uint64_t min_entries = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--attestation") == 0 && i + 1 < argc) {
            doc = argv[++i];
        } else if (strcmp(a, "--no-attestation") == 0) {
            no_att = 1;
        } else if (strcmp(a, "--live") == 0) {
            live = 1;
        } else if (strcmp(a, "--since") == 0 && i + 1 < argc) {
            if (parse_since(argv[++i], &since_ms) != 0) {
                return ns_cli_usage_error("--since '%s': give seconds since the epoch or UTC as "
                                          "2026-01-31T12:00:00Z",
                                          argv[i]);
            }
        } else if (strcmp(a, "--expect-entries") == 0 && i + 1 < argc) {
            if (ns_parse_uint(argv[++i], UINT64_MAX, &min_entries) != NS_OK) {
                return ns_cli_usage_error("--expect-entries '%s' is not a count", argv[i]);
            }
        } else if ((a[0] != '-' || strcmp(a, "-") == 0) && trail_path == NULL) {
            trail_path = a;
        } else {
            return ns_cli_usage_error("unknown option, missing value or extra argument: '%s'", a);
        }
    }
    if (trail_path == NULL) {
        return ns_cli_usage_error("LOGFILE is required");
    }
    if ((doc == NULL) == (no_att == 0)) {
        return ns_cli_usage_error("give exactly one of --attestation DOC and --no-attestation");
    }
    uint8_t ud[32];
    if (doc != NULL) {
        ns_err e = doc_user_data(doc, ud);
        if (e != NS_OK) {
            ns_log_err(e, "");
            return NS_EXIT_FAIL;
        }
    }
    ns_buf trail;
    ns_buf_init(&trail, TRAIL_MAX);
    ns_err e = ns_read_path(trail_path, &trail);
    if (e != NS_OK) {
        ns_log_err(ns_fail_ctx(e, "reading the trail %s", trail_path), "");
        ns_buf_free(&trail);
        return NS_EXIT_FAIL;
    }
    ns_audit_report rep;
    e = ns_audit_verify(trail.data, trail.len, doc ? ud : NULL, live, &rep);
    ns_buf_free(&trail);
    if (e == NS_OK) {
        e = ns_audit_check_bounds(&rep, since_ms, min_entries);
    }
    char last[40];
    format_ms(last, sizeof last, rep.last_head_ms);
    if (e != NS_OK) {
        ns_log_err(e, trail_path);
        return NS_EXIT_FAIL;
    }
    char key[65];
    if (ns_hex_encode(key, sizeof key, rep.audit_pub, 32) != NS_OK) {
        key[0] = 0;
    }
    if (rep.unsigned_tail > 0) {
        ns_warn("%zu entries after the last signed head (%s, covering %zu) are not proven yet "
                "(live trail)",
                rep.unsigned_tail, last, rep.signed_entries);
    }
    printf("ok entries=%zu heads=%zu signed=%zu unsigned_tail=%zu last_head=%s audit_key=%s%s\n",
           rep.entries, rep.heads, rep.signed_entries, rep.unsigned_tail, last, key,
           doc ? "" : " (not attested)");
    return NS_EXIT_OK;
}
