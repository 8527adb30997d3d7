/*
 * sigv4: see sigv4.h.
 *
 * Everything is built in caller-bounded ns_bufs; header sorting is an insertion sort over at most
 * NS_SIGV4_MAX_HEADERS indices (stable, so repeated names keep their order). The secret key and
 * the derived key are only on this module's stack and wiped before any return.
 */
#include "sigv4.h"

#include <stdio.h>
#include <string.h>

#include "mbedtls/md.h"
#include "mbedtls/sha256.h"

#include "codec.h"
#include "secret.h"

#define NS_SIGV4_ALGO "AWS4-HMAC-SHA256"
#define NS_SIGV4_SECRET_MAX 256
#define NS_SIGV4_SCOPE_MAX 256
#define NS_SIGV4_QUERY_PARAMS_MAX 256

static const char hexu[] = "0123456789ABCDEF";

static int is_unreserved(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Python's str.split() whitespace in ASCII (botocore's header trimming uses it). */
static int is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
           (c >= 0x1c && c <= 0x1f);
}

ns_err ns_sigv4_uri_encode(ns_buf *out, const char *s, size_t n, int keep_slash)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            GUARD(ns_buf_append_u8(out, c));
        } else {
            uint8_t e[3] = {'%', (uint8_t)hexu[c >> 4], (uint8_t)hexu[c & 15]};
            GUARD(ns_buf_append(out, e, 3));
        }
    }
    return NS_OK;
}

/* Percent-decodes then re-encodes (canonical form of a query key or value). */
static ns_err query_component(ns_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '%' && i + 2 < n && ns_hex_digit((uint8_t)s[i + 1]) >= 0 &&
            ns_hex_digit((uint8_t)s[i + 2]) >= 0) {
            c = (uint8_t)(ns_hex_digit((uint8_t)s[i + 1]) << 4 | ns_hex_digit((uint8_t)s[i + 2]));
            i += 2;
        }
        GUARD(ns_sigv4_uri_encode(out, (const char *)&c, 1, 0));
    }
    return NS_OK;
}

/*
 * Normalised path (RFC 3986 remove_dot_segments, empty segments collapsed) appended to out.
 * As botocore and aws-c-auth do it: a trailing '/' is kept only when the path ends with one.
 * Segments are kept as (start, len) pairs in a fixed array: no recursion, bounded.
 */
#define NS_SIGV4_SEGS_MAX 512
static ns_err normalize_path(ns_buf *out, const char *p, size_t n)
{
    size_t seg_off[NS_SIGV4_SEGS_MAX];
    size_t seg_len[NS_SIGV4_SEGS_MAX];
    size_t nseg = 0;
    size_t i = 0;
    int trailing = n > 0 && p[n - 1] == '/';
    while (i < n) {
        while (i < n && p[i] == '/') {
            i++;
        }
        size_t st = i;
        while (i < n && p[i] != '/') {
            i++;
        }
        size_t len = i - st;
        if (len == 0) {
            continue;
        }
        if (len == 1 && p[st] == '.') {
            continue;
        }
        if (len == 2 && p[st] == '.' && p[st + 1] == '.') {
            if (nseg > 0) {
                nseg--;
            }
            continue;
        }
        ENSURE(nseg < NS_SIGV4_SEGS_MAX, NS_E_TOO_BIG, "sigv4: path has too many segments");
        seg_off[nseg] = st;
        seg_len[nseg] = len;
        nseg++;
    }
    GUARD(ns_buf_append_u8(out, '/'));
    for (size_t k = 0; k < nseg; k++) {
        GUARD(ns_buf_append(out, p + seg_off[k], seg_len[k]));
        if (k + 1 < nseg || trailing) {
            GUARD(ns_buf_append_u8(out, '/'));
        }
    }
    return NS_OK;
}

static ns_err canonical_uri(ns_buf *creq, const char *path, unsigned flags)
{
    if (path == NULL || path[0] == '\0') {
        return ns_buf_append_u8(creq, '/');
    }
    if (flags & NS_SIGV4_S3) {
        return ns_buf_append_str(creq, path);
    }
    if (flags & NS_SIGV4_NO_NORMALIZE) {
        return ns_sigv4_uri_encode(creq, path, strlen(path), 1);
    }
    ns_buf norm;
    ns_buf_init(&norm, NS_SIGV4_CREQ_MAX);
    ns_err e = normalize_path(&norm, path, strlen(path));
    if (e == NS_OK) {
        e = ns_sigv4_uri_encode(creq, (const char *)norm.data, norm.len, 1);
    }
    ns_buf_free(&norm);
    return e;
}

typedef struct {
    size_t off; /* into the encoded buffer */
    size_t klen;
    size_t len; /* key=value total */
} qparam;

static int qparam_less(const uint8_t *base, const qparam *a, const qparam *b)
{
    /* Sort by key, then by value (byte order of the encoded forms). */
    size_t m = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(base + a->off, base + b->off, m);
    if (c != 0) {
        return c < 0;
    }
    if (a->klen != b->klen) {
        return a->klen < b->klen;
    }
    size_t av = a->len - a->klen - 1;
    size_t bv = b->len - b->klen - 1;
    m = av < bv ? av : bv;
    c = memcmp(base + a->off + a->klen + 1, base + b->off + b->klen + 1, m);
    if (c != 0) {
        return c < 0;
    }
    return av < bv;
}

static ns_err canonical_query(ns_buf *creq, const char *q)
{
    if (q == NULL || q[0] == '\0') {
        return NS_OK;
    }
    ns_buf enc;
    ns_buf_init(&enc, NS_SIGV4_CREQ_MAX);
    qparam ps[NS_SIGV4_QUERY_PARAMS_MAX];
    size_t np = 0;
    ns_err e = NS_OK;
    const char *s = q;
    for (;;) {
        const char *amp = strchr(s, '&');
        size_t plen = amp ? (size_t)(amp - s) : strlen(s);
        /* An empty pair ("a=1&&b=2") is the empty key with an empty value, as botocore signs it. */
        {
            if (np >= NS_SIGV4_QUERY_PARAMS_MAX) {
                e = ns_fail(NS_E_TOO_BIG, "sigv4: more than %d query parameters",
                            NS_SIGV4_QUERY_PARAMS_MAX);
                goto out;
            }
            const char *eq = memchr(s, '=', plen);
            size_t klen = eq ? (size_t)(eq - s) : plen;
            qparam *p = &ps[np++];
            p->off = enc.len;
            GUARD_GOTO(query_component(&enc, s, klen), e, out);
            p->klen = enc.len - p->off;
            GUARD_GOTO(ns_buf_append_u8(&enc, '='), e, out);
            if (eq) {
                GUARD_GOTO(query_component(&enc, eq + 1, plen - klen - 1), e, out);
            }
            p->len = enc.len - p->off;
        }
        if (!amp) {
            break;
        }
        s = amp + 1;
    }
    for (size_t i = 1; i < np; i++) {
        qparam t = ps[i];
        size_t j = i;
        while (j > 0 && qparam_less(enc.data, &t, &ps[j - 1])) {
            ps[j] = ps[j - 1];
            j--;
        }
        ps[j] = t;
    }
    for (size_t i = 0; i < np; i++) {
        if (i > 0) {
            GUARD_GOTO(ns_buf_append_u8(creq, '&'), e, out);
        }
        GUARD_GOTO(ns_buf_append(creq, enc.data + ps[i].off, ps[i].len), e, out);
    }
out:
    ns_buf_free(&enc);
    return e;
}

static int name_cmp_ci(const char *a, const char *b)
{
    for (;; a++, b++) {
        int ca = (unsigned char)*a, cb = (unsigned char)*b;
        if (ca >= 'A' && ca <= 'Z') {
            ca += 32;
        }
        if (cb >= 'A' && cb <= 'Z') {
            cb += 32;
        }
        if (ca != cb || ca == 0) {
            return ca - cb;
        }
    }
}

static ns_err append_lower(ns_buf *b, const char *s)
{
    for (; *s; s++) {
        char c = *s;
        GUARD(ns_buf_append_u8(b, (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c)));
    }
    return NS_OK;
}

/* Trimall: leading/trailing whitespace dropped, inner runs collapsed to one space. */
static ns_err append_trimall(ns_buf *b, const char *v)
{
    int pending = 0, any = 0;
    for (; *v; v++) {
        if (is_ws((uint8_t)*v)) {
            pending = any;
            continue;
        }
        if (pending) {
            GUARD(ns_buf_append_u8(b, ' '));
            pending = 0;
        }
        GUARD(ns_buf_append_u8(b, (uint8_t)*v));
        any = 1;
    }
    return NS_OK;
}

static ns_err canonical_headers(ns_buf *creq, ns_buf *sh, const ns_sigv4_req *r)
{
    ENSURE(r->n_headers <= NS_SIGV4_MAX_HEADERS, NS_E_TOO_BIG, "sigv4: more than %d headers",
           NS_SIGV4_MAX_HEADERS);
    size_t idx[NS_SIGV4_MAX_HEADERS];
    for (size_t i = 0; i < r->n_headers; i++) {
        ENSURE(r->headers[i].name && r->headers[i].name[0] && r->headers[i].value, NS_E_USAGE,
               "sigv4: empty header name");
        size_t j = i;
        while (j > 0 && name_cmp_ci(r->headers[i].name, r->headers[idx[j - 1]].name) < 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    for (size_t i = 0; i < r->n_headers; i++) {
        const ns_sigv4_hdr *h = &r->headers[idx[i]];
        if (i > 0 && name_cmp_ci(h->name, r->headers[idx[i - 1]].name) == 0) {
            GUARD(ns_buf_append_u8(creq, ','));
            GUARD(append_trimall(creq, h->value));
            continue;
        }
        if (i > 0) {
            GUARD(ns_buf_append_u8(creq, '\n'));
            GUARD(ns_buf_append_u8(sh, ';'));
        }
        GUARD(append_lower(creq, h->name));
        GUARD(append_lower(sh, h->name));
        GUARD(ns_buf_append_u8(creq, ':'));
        GUARD(append_trimall(creq, h->value));
    }
    GUARD(ns_buf_append_u8(creq, '\n'));
    return NS_OK;
}

ns_err ns_sigv4_canonical_request(const ns_sigv4_params *p, const ns_sigv4_req *r, ns_buf *creq,
                                  ns_buf *signed_headers)
{
    ENSURE(r->method && r->method[0] && r->payload_hash, NS_E_USAGE,
           "sigv4: method and payload hash are required");
    ns_buf sh;
    ns_buf_init(&sh, NS_SIGV4_AUTHZ_MAX);
    ns_err e;
    GUARD_GOTO(ns_buf_append_str(creq, r->method), e, out);
    GUARD_GOTO(ns_buf_append_u8(creq, '\n'), e, out);
    GUARD_GOTO(canonical_uri(creq, r->path, p->flags), e, out);
    GUARD_GOTO(ns_buf_append_u8(creq, '\n'), e, out);
    GUARD_GOTO(canonical_query(creq, r->query), e, out);
    GUARD_GOTO(ns_buf_append_u8(creq, '\n'), e, out);
    GUARD_GOTO(canonical_headers(creq, &sh, r), e, out);
    GUARD_GOTO(ns_buf_append_u8(creq, '\n'), e, out);
    GUARD_GOTO(ns_buf_append(creq, sh.data, sh.len), e, out);
    GUARD_GOTO(ns_buf_append_u8(creq, '\n'), e, out);
    GUARD_GOTO(ns_buf_append_str(creq, r->payload_hash), e, out);
    if (signed_headers) {
        GUARD_GOTO(ns_buf_append(signed_headers, sh.data, sh.len), e, out);
    }
out:
    ns_buf_free(&sh);
    return e;
}

static ns_err check_params(const ns_sigv4_params *p)
{
    ENSURE(p->amz_date && strlen(p->amz_date) == NS_SIGV4_AMZ_DATE_LEN && p->amz_date[8] == 'T',
           NS_E_USAGE, "sigv4: X-Amz-Date must look like 20150830T123600Z");
    ENSURE(p->region && p->region[0] && p->service && p->service[0], NS_E_USAGE,
           "sigv4: region and service are required");
    ENSURE(strlen(p->region) + strlen(p->service) < 128, NS_E_USAGE,
           "sigv4: region or service name too long");
    return NS_OK;
}

static ns_err scope(char *out, size_t cap, const ns_sigv4_params *p)
{
    int n = snprintf(out, cap, "%.8s/%s/%s/aws4_request", p->amz_date, p->region, p->service);
    ENSURE(n > 0 && (size_t)n < cap, NS_E_TOO_BIG, "sigv4: credential scope too long");
    return NS_OK;
}

void ns_sigv4_sha256_hex(char out[65], const void *data, size_t n)
{
    uint8_t h[32];
    (void)mbedtls_sha256(data, n, h, 0);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = "0123456789abcdef"[h[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[h[i] & 15];
    }
    out[64] = '\0';
}

ns_err ns_sigv4_string_to_sign(const ns_sigv4_params *p, const uint8_t *creq, size_t creq_len,
                               ns_buf *sts)
{
    GUARD(check_params(p));
    char sc[NS_SIGV4_SCOPE_MAX];
    GUARD(scope(sc, sizeof sc, p));
    char h[65];
    ns_sigv4_sha256_hex(h, creq, creq_len);
    return ns_buf_printf(sts, NS_SIGV4_ALGO "\n%s\n%s\n%s", p->amz_date, sc, h);
}

static ns_err hmac(uint8_t out[32], const uint8_t *key, size_t klen, const void *msg, size_t n)
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    ENSURE(md != NULL && mbedtls_md_hmac(md, key, klen, msg, n, out) == 0, NS_E_CRYPTO,
           "sigv4: HMAC-SHA256 failed");
    return NS_OK;
}

ns_err ns_sigv4_signing_key(uint8_t key[32], const char *secret_access_key, const char *date8,
                            const char *region, const char *service)
{
    size_t sl = strlen(secret_access_key);
    ENSURE(sl > 0 && sl <= NS_SIGV4_SECRET_MAX, NS_E_USAGE,
           "sigv4: the secret access key is empty or longer than %d", NS_SIGV4_SECRET_MAX);
    uint8_t k0[4 + NS_SIGV4_SECRET_MAX];
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret_access_key, sl);
    ns_err e = hmac(key, k0, 4 + sl, date8, 8);
    ns_wipe(k0, sizeof k0);
    GUARD(e);
    uint8_t t[32];
    e = hmac(t, key, 32, region, strlen(region));
    if (e == NS_OK) {
        e = hmac(key, t, 32, service, strlen(service));
    }
    if (e == NS_OK) {
        e = hmac(t, key, 32, "aws4_request", 12);
    }
    memcpy(key, t, 32);
    ns_wipe(t, sizeof t);
    if (e != NS_OK) {
        ns_wipe(key, 32);
    }
    return e;
}

ns_err ns_sigv4_signature(char sig_hex[65], const ns_sigv4_params *p, const uint8_t *sts,
                          size_t sts_len)
{
    GUARD(check_params(p));
    ENSURE(p->secret_access_key, NS_E_USAGE, "sigv4: no secret access key");
    uint8_t key[32], sig[32];
    GUARD(ns_sigv4_signing_key(key, p->secret_access_key, p->amz_date, p->region, p->service));
    ns_err e = hmac(sig, key, sizeof key, sts, sts_len);
    ns_wipe(key, sizeof key);
    GUARD(e);
    for (int i = 0; i < 32; i++) {
        sig_hex[2 * i] = "0123456789abcdef"[sig[i] >> 4];
        sig_hex[2 * i + 1] = "0123456789abcdef"[sig[i] & 15];
    }
    sig_hex[64] = '\0';
    return NS_OK;
}

ns_err ns_sigv4_sign(const ns_sigv4_params *p, const ns_sigv4_req *r, char *authz, size_t authz_cap)
{
    GUARD(check_params(p));
    ENSURE(p->access_key_id && p->access_key_id[0], NS_E_USAGE, "sigv4: no access key id");
    ns_buf creq, sh, sts;
    ns_buf_init_secret(&creq, NS_SIGV4_CREQ_MAX); /* carries x-amz-security-token */
    ns_buf_init(&sh, NS_SIGV4_AUTHZ_MAX);
    ns_buf_init(&sts, NS_SIGV4_CREQ_MAX);
    ns_err e;
    char sig[65];
    char sc[NS_SIGV4_SCOPE_MAX];
    GUARD_GOTO(ns_sigv4_canonical_request(p, r, &creq, &sh), e, out);
    GUARD_GOTO(ns_sigv4_string_to_sign(p, creq.data, creq.len, &sts), e, out);
    GUARD_GOTO(ns_sigv4_signature(sig, p, sts.data, sts.len), e, out);
    GUARD_GOTO(scope(sc, sizeof sc, p), e, out);
    GUARD_GOTO(ns_buf_cstr(&sh), e, out);
    int n = snprintf(authz, authz_cap,
                     NS_SIGV4_ALGO " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                     p->access_key_id, sc, (const char *)sh.data, sig);
    if (n < 0 || (size_t)n >= authz_cap) {
        e = ns_fail(NS_E_TOO_BIG, "sigv4: Authorization header longer than %zu", authz_cap);
    }
out:
    ns_buf_free(&creq);
    ns_buf_free(&sh);
    ns_buf_free(&sts);
    return e;
}

ns_err ns_sigv4_amz_date(char out[17], time_t t)
{
    struct tm tm;
    ENSURE(gmtime_r(&t, &tm) != NULL, NS_E_USAGE, "sigv4: time out of range");
    ENSURE(strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) == NS_SIGV4_AMZ_DATE_LEN, NS_E_USAGE,
           "sigv4: time out of range");
    return NS_OK;
}
