/*
 * json: see json.h.
 *
 * The reader walks the document once with an ns_cur: the top-level object's members are read
 * in order; nested objects/arrays are validated and skipped with an explicit depth counter
 * (NS_JSON_DEPTH_MAX) instead of recursion. Duplicate members are refused (two different
 * AccessKeyIds in one document is an attack or a bug, never something to pick from).
 */
#include "json.h"

#include <stdio.h>
#include <string.h>

#include "codec.h"

#define NS_JSON_DEPTH_MAX 32
#define NS_JSON_KEY_MAX 256
#define NS_JSON_MEMBERS_MAX 256

static void jws(ns_cur *c)
{
    while (c->pos < c->len && (c->p[c->pos] == ' ' || c->p[c->pos] == '\t' ||
                               c->p[c->pos] == '\n' || c->p[c->pos] == '\r')) {
        c->pos++;
    }
}

static ns_err jfail(const ns_cur *c, const char *what)
{
    return ns_fail(NS_E_PARSE, "malformed JSON at byte %zu: %s", c->pos, what);
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
static ns_err jstring(ns_cur *c, ns_buf *out)
{
    if (c->pos >= c->len || c->p[c->pos] != '"') {
        return jfail(c, "expected a string");
    }
    c->pos++;
    while (c->pos < c->len) {
        uint8_t ch = c->p[c->pos++];
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
        if (c->pos >= c->len) {
            break;
        }
        uint8_t e = c->p[c->pos++];
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
            if (c->len - c->pos < 4 || hex4(c->p + c->pos, &cp) != 0) {
                return jfail(c, "bad \\u escape");
            }
            c->pos += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (c->len - c->pos < 6 || c->p[c->pos] != '\\' || c->p[c->pos + 1] != 'u' ||
                    hex4(c->p + c->pos + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    return jfail(c, "unpaired surrogate");
                }
                c->pos += 6;
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

static ns_err jliteral(ns_cur *c, const char *lit)
{
    size_t l = strlen(lit);
    if (c->len - c->pos < l || memcmp(c->p + c->pos, lit, l) != 0) {
        return jfail(c, "unexpected token");
    }
    c->pos += l;
    return NS_OK;
}

static ns_err jnumber(ns_cur *c)
{
    size_t st = c->pos;
    if (c->pos < c->len && c->p[c->pos] == '-') {
        c->pos++;
    }
    size_t d0 = c->pos;
    while (c->pos < c->len && c->p[c->pos] >= '0' && c->p[c->pos] <= '9') {
        c->pos++;
    }
    if (c->pos == d0 || (c->p[d0] == '0' && c->pos - d0 > 1)) {
        return jfail(c, "bad number");
    }
    if (c->pos < c->len && c->p[c->pos] == '.') {
        c->pos++;
        size_t f0 = c->pos;
        while (c->pos < c->len && c->p[c->pos] >= '0' && c->p[c->pos] <= '9') {
            c->pos++;
        }
        if (c->pos == f0) {
            return jfail(c, "bad number");
        }
    }
    if (c->pos < c->len && (c->p[c->pos] == 'e' || c->p[c->pos] == 'E')) {
        c->pos++;
        if (c->pos < c->len && (c->p[c->pos] == '+' || c->p[c->pos] == '-')) {
            c->pos++;
        }
        size_t e0 = c->pos;
        while (c->pos < c->len && c->p[c->pos] >= '0' && c->p[c->pos] <= '9') {
            c->pos++;
        }
        if (c->pos == e0) {
            return jfail(c, "bad number");
        }
    }
    (void)st;
    return NS_OK;
}

/* Any value, validated and skipped; containers with an explicit depth counter. */
static ns_err jskip(ns_cur *c)
{
    int depth = 0;
    /* expect: 0 = a value, 1 = ',' or a closer, 2 = a key (after '{' or ',') */
    uint8_t stack[NS_JSON_DEPTH_MAX];
    int want_value = 1;
    for (;;) {
        jws(c);
        if (c->pos >= c->len) {
            return ns_fail(NS_E_PARSE, "malformed JSON: truncated");
        }
        uint8_t ch = c->p[c->pos];
        if (want_value) {
            if (ch == '{' || ch == '[') {
                if (depth >= NS_JSON_DEPTH_MAX) {
                    return jfail(c, "nested too deeply");
                }
                stack[depth++] = ch;
                c->pos++;
                jws(c);
                if (c->pos < c->len && c->p[c->pos] == (ch == '{' ? '}' : ']')) {
                    c->pos++;
                    depth--;
                    want_value = 0;
                } else if (ch == '{') {
                    GUARD(jstring(c, NULL));
                    jws(c);
                    if (c->pos >= c->len || c->p[c->pos] != ':') {
                        return jfail(c, "expected ':'");
                    }
                    c->pos++;
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
            c->pos++;
            if (top == '{') {
                jws(c);
                GUARD(jstring(c, NULL));
                jws(c);
                if (c->pos >= c->len || c->p[c->pos] != ':') {
                    return jfail(c, "expected ':'");
                }
                c->pos++;
            }
            want_value = 1;
            continue;
        }
        if ((top == '{' && ch == '}') || (top == '[' && ch == ']')) {
            c->pos++;
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
    ns_cur c = {json, len, 0};
    GUARD(jskip(&c));
    jws(&c);
    if (c.pos != c.len) {
        return jfail(&c, "trailing data");
    }
    return NS_OK;
}

ns_err ns_json_get_string(const uint8_t *json, size_t len, const char *key, ns_buf *out)
{
    ns_cur c = {json, len, 0};
    ns_buf k;
    ns_buf_init(&k, NS_JSON_KEY_MAX);
    ns_err e = NS_OK;
    int found = 0, members = 0;
    jws(&c);
    if (c.pos >= c.len || c.p[c.pos] != '{') {
        e = jfail(&c, "expected an object");
        goto out;
    }
    c.pos++;
    jws(&c);
    if (c.pos < c.len && c.p[c.pos] == '}') {
        c.pos++;
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
        if (c.pos >= c.len || c.p[c.pos] != ':') {
            e = jfail(&c, "expected ':'");
            goto out;
        }
        c.pos++;
        jws(&c);
        int match = k.len == strlen(key) && memcmp(k.data, key, k.len) == 0;
        if (match) {
            if (found) {
                e = ns_fail(NS_E_PARSE, "JSON member \"%s\" appears twice", key);
                goto out;
            }
            found = 1;
            if (c.pos >= c.len || c.p[c.pos] != '"') {
                e = ns_fail(NS_E_PARSE, "JSON member \"%s\" is not a string", key);
                goto out;
            }
            GUARD_GOTO(jstring(&c, out), e, out);
        } else {
            GUARD_GOTO(jskip(&c), e, out);
        }
        jws(&c);
        if (c.pos < c.len && c.p[c.pos] == ',') {
            c.pos++;
            continue;
        }
        if (c.pos < c.len && c.p[c.pos] == '}') {
            c.pos++;
            break;
        }
        e = jfail(&c, "expected ',' or '}'");
        goto out;
    }
end:
    jws(&c);
    if (c.pos != c.len) {
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
