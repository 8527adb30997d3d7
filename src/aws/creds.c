/*
 * creds: see creds.h. The documents are read with json.c's strict reader.
 */
#include "creds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iox.h"
#include "json.h"
#include "secret.h"

/* ------------------------------------------------------------------------------ creds */

ns_err ns_creds_new(ns_creds **c)
{
    *c = ns_secret_alloc(sizeof **c);
    ENSURE(*c != NULL, NS_E_NOMEM, "cannot allocate locked memory for credentials");
    memset(*c, 0, sizeof **c);
    return NS_OK;
}

void ns_creds_free(ns_creds *c)
{
    if (c) {
        ns_secret_free(c, sizeof *c);
    }
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

ns_err ns_creds_parse_time(const char *s, int64_t *out)
{
    int Y, M, D, h, m, sec;
    size_t n = strlen(s);
    ENSURE(n >= 20 && s[4] == '-' && s[7] == '-' && (s[10] == 'T' || s[10] == ' ') &&
               s[13] == ':' && s[16] == ':' && digits(s, 4, &Y) == 0 && digits(s + 5, 2, &M) == 0 &&
               digits(s + 8, 2, &D) == 0 && digits(s + 11, 2, &h) == 0 &&
               digits(s + 14, 2, &m) == 0 && digits(s + 17, 2, &sec) == 0 && M >= 1 && M <= 12 &&
               D >= 1 && D <= 31 && h <= 23 && m <= 59 && sec <= 60,
           NS_E_PARSE, "Expiration \"%.40s\" is not an ISO-8601 UTC time like 2026-01-02T03:04:05Z",
           s);
    const char *t = s + 19;
    if (*t == '.') {
        t++;
        while (*t >= '0' && *t <= '9') {
            t++;
        }
    }
    int off = 0;
    if (*t == 'Z' && t[1] == '\0') {
        off = 0;
    } else if ((*t == '+' || *t == '-') && strlen(t) == 6 && t[3] == ':') {
        int oh, om;
        ENSURE(digits(t + 1, 2, &oh) == 0 && digits(t + 4, 2, &om) == 0 && oh <= 23 && om <= 59,
               NS_E_PARSE, "Expiration \"%.40s\": bad UTC offset", s);
        off = (oh * 60 + om) * 60 * (*t == '+' ? 1 : -1);
    } else {
        BAIL(NS_E_PARSE, "Expiration \"%.40s\": expected Z or +hh:mm after the time", s);
    }
    *out = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + m * 60 + sec - off;
    return NS_OK;
}

static ns_err copy_field(char *dst, size_t cap, const ns_buf *src, const char *what)
{
    ENSURE(src->len < cap, NS_E_TOO_BIG, "credentials: %s is longer than %zu bytes", what, cap - 1);
    if (src->len == 0) {
        dst[0] = '\0';
        return NS_OK;
    }
    ENSURE(memchr(src->data, '\0', src->len) == NULL, NS_E_PARSE,
           "credentials: %s contains a NUL byte", what);
    memcpy(dst, src->data, src->len);
    dst[src->len] = '\0';
    return NS_OK;
}

static ns_err get_opt(const uint8_t *j, size_t n, const char *key, ns_buf *b, int *present)
{
    ns_err e = ns_json_get_string(j, n, key, b);
    *present = e == NS_OK;
    if (e == NS_E_NOT_FOUND) {
        ns_err_clear();
        return NS_OK;
    }
    return e;
}

ns_err ns_creds_parse_json(ns_creds *c, const uint8_t *json, size_t len)
{
    ENSURE(len <= NS_CREDS_JSON_MAX, NS_E_TOO_BIG, "credentials JSON larger than %d bytes",
           NS_CREDS_JSON_MAX);
    ns_buf b;
    ns_buf_init_secret(&b, NS_CREDS_TOKEN_MAX + 16);
    ns_err e;
    int present;
    memset(c, 0, sizeof *c);
    /* IMDS documents carry "Code": anything but Success is an error from the instance. */
    GUARD_GOTO(get_opt(json, len, "Code", &b, &present), e, out);
    if (present && !(b.len == 7 && memcmp(b.data, "Success", 7) == 0)) {
        e = ns_fail(NS_E_REMOTE, "the credentials document says Code=\"%.*s\", not Success",
                    (int)(b.len > 64 ? 64 : b.len), (const char *)b.data);
        goto out;
    }
    ns_buf_reset(&b);
    GUARD_GOTO(ns_json_get_string(json, len, "AccessKeyId", &b), e, out);
    GUARD_GOTO(copy_field(c->access_key_id, sizeof c->access_key_id, &b, "AccessKeyId"), e, out);
    ns_buf_reset(&b);
    GUARD_GOTO(ns_json_get_string(json, len, "SecretAccessKey", &b), e, out);
    GUARD_GOTO(copy_field(c->secret_access_key, sizeof c->secret_access_key, &b, "SecretAccessKey"),
               e, out);
    ns_buf_reset(&b);
    GUARD_GOTO(get_opt(json, len, "Token", &b, &present), e, out);
    if (!present) {
        GUARD_GOTO(get_opt(json, len, "SessionToken", &b, &present), e, out);
    }
    if (present) {
        GUARD_GOTO(copy_field(c->session_token, sizeof c->session_token, &b, "Token"), e, out);
    }
    ns_buf_reset(&b);
    GUARD_GOTO(get_opt(json, len, "Expiration", &b, &present), e, out);
    if (present) {
        GUARD_GOTO(copy_field(c->expiration, sizeof c->expiration, &b, "Expiration"), e, out);
        GUARD_GOTO(ns_creds_parse_time(c->expiration, &c->expires_at), e, out);
    }
    if (c->access_key_id[0] == '\0' || c->secret_access_key[0] == '\0') {
        e = ns_fail(NS_E_PARSE, "credentials: AccessKeyId and SecretAccessKey must not be empty");
    }
out:
    ns_buf_free(&b);
    if (e != NS_OK) {
        ns_wipe(c, sizeof *c);
    }
    return e;
}

ns_err ns_creds_load_file(ns_creds *c, const char *path)
{
    ns_buf b;
    ns_buf_init_secret(&b, NS_CREDS_JSON_MAX);
    ns_err e = ns_read_path(path, &b);
    if (e == NS_OK) {
        e = ns_creds_parse_json(c, b.data, b.len);
    }
    ns_buf_free(&b);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "reading credentials from %s",
                           strcmp(path, "-") == 0 ? "standard input" : path);
    }
    return NS_OK;
}

static ns_err env_copy(char *dst, size_t cap, const char *name)
{
    const char *v = getenv(name);
    if (v == NULL) {
        dst[0] = '\0';
        return NS_OK;
    }
    ENSURE(strlen(v) < cap, NS_E_TOO_BIG, "%s is longer than %zu bytes", name, cap - 1);
    memcpy(dst, v, strlen(v) + 1);
    return NS_OK;
}

ns_err ns_creds_from_env(ns_creds *c)
{
    memset(c, 0, sizeof *c);
    const char *ak = getenv("AWS_ACCESS_KEY_ID");
    ENSURE(ak != NULL && ak[0] != '\0', NS_E_NOT_FOUND, "AWS_ACCESS_KEY_ID is not set");
    ns_err e;
    GUARD_GOTO(env_copy(c->access_key_id, sizeof c->access_key_id, "AWS_ACCESS_KEY_ID"), e, bad);
    GUARD_GOTO(env_copy(c->secret_access_key, sizeof c->secret_access_key, "AWS_SECRET_ACCESS_KEY"),
               e, bad);
    if (c->secret_access_key[0] == '\0') {
        e = ns_fail(NS_E_USAGE, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
        goto bad;
    }
    GUARD_GOTO(env_copy(c->session_token, sizeof c->session_token, "AWS_SESSION_TOKEN"), e, bad);
    if (c->session_token[0] == '\0') {
        GUARD_GOTO(env_copy(c->session_token, sizeof c->session_token, "AWS_SECURITY_TOKEN"), e,
                   bad);
    }
    GUARD_GOTO(env_copy(c->expiration, sizeof c->expiration, "AWS_CREDENTIAL_EXPIRATION"), e, bad);
    if (c->expiration[0]) {
        GUARD_GOTO(ns_creds_parse_time(c->expiration, &c->expires_at), e, bad);
    }
    return NS_OK;
bad:
    ns_wipe(c, sizeof *c);
    return e;
}

ns_err ns_creds_check_fresh(const ns_creds *c, time_t now)
{
    if (c->expires_at == 0) {
        return NS_OK;
    }
    if ((int64_t)now + NS_CREDS_EXPIRY_MARGIN_S >= c->expires_at) {
        BAIL(NS_E_EXPIRED,
             "the credentials of %.*s... expired%s at %s (now %lld): fetch fresh ones "
             "(nsign fetch-creds) and retry",
             4, c->access_key_id, (int64_t)now < c->expires_at ? " or expire within 60 s" : "",
             c->expiration, (long long)now);
    }
    return NS_OK;
}

/* A NUL-terminated field as a JSON string. */
static ns_err json_str(ns_buf *out, const char *s)
{
    return ns_buf_append_json_str(out, s, strlen(s));
}

ns_err ns_creds_to_json(const ns_creds *c, ns_buf *out)
{
    GUARD(ns_buf_append_str(out, "{\"AccessKeyId\":"));
    GUARD(json_str(out, c->access_key_id));
    GUARD(ns_buf_append_str(out, ",\"SecretAccessKey\":"));
    GUARD(json_str(out, c->secret_access_key));
    if (c->session_token[0]) {
        GUARD(ns_buf_append_str(out, ",\"Token\":"));
        GUARD(json_str(out, c->session_token));
    }
    if (c->expiration[0]) {
        GUARD(ns_buf_append_str(out, ",\"Expiration\":"));
        GUARD(json_str(out, c->expiration));
    }
    return ns_buf_append_str(out, "}\n");
}

static ns_err sh_quote(ns_buf *out, const char *s)
{
    GUARD(ns_buf_append_u8(out, '\''));
    for (; *s; s++) {
        if (*s == '\'') {
            GUARD(ns_buf_append_str(out, "'\\''"));
        } else {
            GUARD(ns_buf_append_u8(out, (uint8_t)*s));
        }
    }
    return ns_buf_append_u8(out, '\'');
}

ns_err ns_creds_to_env(const ns_creds *c, ns_buf *out)
{
    GUARD(ns_buf_append_str(out, "export AWS_ACCESS_KEY_ID="));
    GUARD(sh_quote(out, c->access_key_id));
    GUARD(ns_buf_append_str(out, "\nexport AWS_SECRET_ACCESS_KEY="));
    GUARD(sh_quote(out, c->secret_access_key));
    if (c->session_token[0]) {
        GUARD(ns_buf_append_str(out, "\nexport AWS_SESSION_TOKEN="));
        GUARD(sh_quote(out, c->session_token));
    }
    if (c->expiration[0]) {
        GUARD(ns_buf_append_str(out, "\nexport AWS_CREDENTIAL_EXPIRATION="));
        GUARD(sh_quote(out, c->expiration));
    }
    return ns_buf_append_str(out, "\n");
}
