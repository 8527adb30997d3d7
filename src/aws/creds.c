/*
 * creds: see creds.h.
 *
 * The JSON reader walks the document once with a cursor: the top-level object's members are
 * read in order; nested objects/arrays are validated and skipped with an explicit depth counter
 * (NS_JSON_DEPTH_MAX) instead of recursion. Duplicate members are refused (two different
 * AccessKeyIds in one document is an attack or a bug, never something to pick from).
 */
#include "creds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "iox.h"
#include "secret.h"

#define NS_JSON_DEPTH_MAX 32
#define NS_JSON_KEY_MAX 256
#define NS_JSON_MEMBERS_MAX 256

/* ------------------------------------------------------------------------------ JSON */

typedef struct {
    const uint8_t *p;
    size_t n;
    size_t i;
} jcur;

static void jws(jcur *c)
{
    while (c->i < c->n &&
           (c->p[c->i] == ' ' || c->p[c->i] == '\t' || c->p[c->i] == '\n' || c->p[c->i] == '\r')) {
        c->i++;
    }
}

static ns_err jfail(const jcur *c, const char *what)
{
    return ns_fail(NS_E_PARSE, "malformed JSON at byte %zu: %s", c->i, what);
}

static int hex4(const uint8_t *p, uint32_t *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        int d = ns_hex_digit(p[k]);
        if (d < 0) {
            return -1;
        }
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

static ns_err put_utf8(ns_buf *out, uint32_t cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return out ? ns_buf_append(out, b, n) : NS_OK;
}

/* A string at the cursor (which is on '"'); unescaped into out when out is non-NULL. */
static ns_err jstring(jcur *c, ns_buf *out)
{
    if (c->i >= c->n || c->p[c->i] != '"') {
        return jfail(c, "expected a string");
    }
    c->i++;
    while (c->i < c->n) {
        uint8_t ch = c->p[c->i++];
        if (ch == '"') {
            return NS_OK;
        }
        if (ch < 0x20) {
            return jfail(c, "control character in a string");
        }
        if (ch != '\\') {
            if (out) {
                GUARD(ns_buf_append_u8(out, ch));
            }
            continue;
        }
        if (c->i >= c->n) {
            break;
        }
        uint8_t e = c->p[c->i++];
        uint8_t lit = 0;
        switch (e) {
        case '"':
            lit = '"';
            break;
        case '\\':
            lit = '\\';
            break;
        case '/':
            lit = '/';
            break;
        case 'b':
            lit = '\b';
            break;
        case 'f':
            lit = '\f';
            break;
        case 'n':
            lit = '\n';
            break;
        case 'r':
            lit = '\r';
            break;
        case 't':
            lit = '\t';
            break;
        case 'u': {
            uint32_t cp, lo;
            if (c->n - c->i < 4 || hex4(c->p + c->i, &cp) != 0) {
                return jfail(c, "bad \\u escape");
            }
            c->i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (c->n - c->i < 6 || c->p[c->i] != '\\' || c->p[c->i + 1] != 'u' ||
                    hex4(c->p + c->i + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    return jfail(c, "unpaired surrogate");
                }
                c->i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return jfail(c, "unpaired surrogate");
            } else if (cp == 0) {
                /* C strings would end there: "a\u0000b" would read as "a" and the rest of a
                 * secret would be neither used nor wiped. */
                return jfail(c, "\\u0000 (NUL) in a string");
            }
            GUARD(put_utf8(out, cp));
            continue;
        }
        default:
            return jfail(c, "bad escape");
        }
        if (out) {
            GUARD(ns_buf_append_u8(out, lit));
        }
    }
    return ns_fail(NS_E_PARSE, "malformed JSON: unterminated string");
}

static ns_err jliteral(jcur *c, const char *lit)
{
    size_t l = strlen(lit);
    if (c->n - c->i < l || memcmp(c->p + c->i, lit, l) != 0) {
        return jfail(c, "unexpected token");
    }
    c->i += l;
    return NS_OK;
}

static ns_err jnumber(jcur *c)
{
    size_t st = c->i;
    if (c->i < c->n && c->p[c->i] == '-') {
        c->i++;
    }
    size_t d0 = c->i;
    while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9') {
        c->i++;
    }
    if (c->i == d0 || (c->p[d0] == '0' && c->i - d0 > 1)) {
        return jfail(c, "bad number");
    }
    if (c->i < c->n && c->p[c->i] == '.') {
        c->i++;
        size_t f0 = c->i;
        while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9') {
            c->i++;
        }
        if (c->i == f0) {
            return jfail(c, "bad number");
        }
    }
    if (c->i < c->n && (c->p[c->i] == 'e' || c->p[c->i] == 'E')) {
        c->i++;
        if (c->i < c->n && (c->p[c->i] == '+' || c->p[c->i] == '-')) {
            c->i++;
        }
        size_t e0 = c->i;
        while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9') {
            c->i++;
        }
        if (c->i == e0) {
            return jfail(c, "bad number");
        }
    }
    (void)st;
    return NS_OK;
}

/* Any value, validated and skipped; containers with an explicit depth counter. */
static ns_err jskip(jcur *c)
{
    int depth = 0;
    /* expect: 0 = a value, 1 = ',' or a closer, 2 = a key (after '{' or ',') */
    uint8_t stack[NS_JSON_DEPTH_MAX];
    int want_value = 1;
    for (;;) {
        jws(c);
        if (c->i >= c->n) {
            return ns_fail(NS_E_PARSE, "malformed JSON: truncated");
        }
        uint8_t ch = c->p[c->i];
        if (want_value) {
            if (ch == '{' || ch == '[') {
                if (depth >= NS_JSON_DEPTH_MAX) {
                    return jfail(c, "nested too deeply");
                }
                stack[depth++] = ch;
                c->i++;
                jws(c);
                if (c->i < c->n && c->p[c->i] == (ch == '{' ? '}' : ']')) {
                    c->i++;
                    depth--;
                    want_value = 0;
                } else if (ch == '{') {
                    GUARD(jstring(c, NULL));
                    jws(c);
                    if (c->i >= c->n || c->p[c->i] != ':') {
                        return jfail(c, "expected ':'");
                    }
                    c->i++;
                }
                if (depth == 0) {
                    return NS_OK;
                }
                continue;
            }
            if (ch == '"') {
                GUARD(jstring(c, NULL));
            } else if (ch == 't') {
                GUARD(jliteral(c, "true"));
            } else if (ch == 'f') {
                GUARD(jliteral(c, "false"));
            } else if (ch == 'n') {
                GUARD(jliteral(c, "null"));
            } else {
                GUARD(jnumber(c));
            }
            want_value = 0;
            if (depth == 0) {
                return NS_OK;
            }
            continue;
        }
        /* after a value inside a container */
        uint8_t top = stack[depth - 1];
        if (ch == ',') {
            c->i++;
            if (top == '{') {
                jws(c);
                GUARD(jstring(c, NULL));
                jws(c);
                if (c->i >= c->n || c->p[c->i] != ':') {
                    return jfail(c, "expected ':'");
                }
                c->i++;
            }
            want_value = 1;
            continue;
        }
        if ((top == '{' && ch == '}') || (top == '[' && ch == ']')) {
            c->i++;
            depth--;
            if (depth == 0) {
                return NS_OK;
            }
            continue;
        }
        return jfail(c, "expected ',' or a closing bracket");
    }
}

ns_err ns_json_validate(const uint8_t *json, size_t len)
{
    jcur c = {json, len, 0};
    GUARD(jskip(&c));
    jws(&c);
    if (c.i != c.n) {
        return jfail(&c, "trailing data");
    }
    return NS_OK;
}

ns_err ns_json_get_string(const uint8_t *json, size_t len, const char *key, ns_buf *out)
{
    jcur c = {json, len, 0};
    ns_buf k;
    ns_buf_init(&k, NS_JSON_KEY_MAX);
    ns_err e = NS_OK;
    int found = 0, members = 0;
    jws(&c);
    if (c.i >= c.n || c.p[c.i] != '{') {
        e = jfail(&c, "expected an object");
        goto out;
    }
    c.i++;
    jws(&c);
    if (c.i < c.n && c.p[c.i] == '}') {
        c.i++;
        goto end;
    }
    for (;;) {
        if (++members > NS_JSON_MEMBERS_MAX) {
            e = ns_fail(NS_E_TOO_BIG, "JSON object has more than %d members", NS_JSON_MEMBERS_MAX);
            goto out;
        }
        jws(&c);
        ns_buf_reset(&k);
        GUARD_GOTO(jstring(&c, &k), e, out);
        jws(&c);
        if (c.i >= c.n || c.p[c.i] != ':') {
            e = jfail(&c, "expected ':'");
            goto out;
        }
        c.i++;
        jws(&c);
        int match = k.len == strlen(key) && memcmp(k.data, key, k.len) == 0;
        if (match) {
            if (found) {
                e = ns_fail(NS_E_PARSE, "JSON member \"%s\" appears twice", key);
                goto out;
            }
            found = 1;
            if (c.i >= c.n || c.p[c.i] != '"') {
                e = ns_fail(NS_E_PARSE, "JSON member \"%s\" is not a string", key);
                goto out;
            }
            GUARD_GOTO(jstring(&c, out), e, out);
        } else {
            GUARD_GOTO(jskip(&c), e, out);
        }
        jws(&c);
        if (c.i < c.n && c.p[c.i] == ',') {
            c.i++;
            continue;
        }
        if (c.i < c.n && c.p[c.i] == '}') {
            c.i++;
            break;
        }
        e = jfail(&c, "expected ',' or '}'");
        goto out;
    }
end:
    jws(&c);
    if (c.i != c.n) {
        e = jfail(&c, "trailing data after the object");
        goto out;
    }
    if (!found) {
        e = ns_fail(NS_E_NOT_FOUND, "JSON member \"%s\" is missing", key);
    }
out:
    ns_buf_free(&k);
    if (e != NS_OK && out) {
        ns_buf_reset(out);
    }
    return e;
}

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
