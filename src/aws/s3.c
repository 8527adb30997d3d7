/*
 * s3: see s3.h.
 *
 * One 64 KiB buffer carries the body from the connection to the output and through the
 * checksum, so memory stays constant whatever the object size. The download is a small loop
 * over attempts; its state (bytes written, ETag, total size, running checksum) survives a lost
 * connection, and the next attempt asks for "Range: bytes=HAVE-" with "If-Match: ETAG". A 412
 * means the object changed under us: a file output is truncated and the download starts over.
 */
#include "s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "mbedtls/sha1.h"
#include "mbedtls/sha256.h"

#include "codec.h"
#include "iox.h"
#include "log.h"
#include "secret.h"

#define NS_S3_RESUMES_MAX 100
#define NS_S3_REDIRECTS_MAX 2
#define NS_S3_ETAG_MAX 256
#define NS_S3_PROGRESS_MS 250

/* ------------------------------------------------------------------------------ URI */

ns_err ns_s3_uri_parse(ns_s3_uri *u, const char *s)
{
    memset(u, 0, sizeof *u);
    ENSURE(strncmp(s, "s3://", 5) == 0, NS_E_USAGE, "\"%.200s\" is not an s3://BUCKET/KEY URI", s);
    const char *b = s + 5;
    const char *slash = strchr(b, '/');
    ENSURE(slash != NULL && slash[1] != '\0', NS_E_USAGE,
           "\"%.200s\" names no object key: expected s3://BUCKET/KEY", s);
    size_t bl = (size_t)(slash - b);
    ENSURE(bl >= 3 && bl <= NS_S3_BUCKET_MAX, NS_E_USAGE,
           "bucket name in \"%.200s\" must be 3 to 63 characters", s);
    for (size_t i = 0; i < bl; i++) {
        char c = b[i];
        ENSURE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                   (c >= 'A' && c <= 'Z') || c == '_',
               NS_E_USAGE, "bucket name in \"%.200s\" has an invalid character '%c'", s, c);
    }
    memcpy(u->bucket, b, bl);
    size_t kl = strlen(slash + 1);
    ENSURE(kl <= NS_S3_KEY_MAX, NS_E_USAGE, "object key longer than %d bytes", NS_S3_KEY_MAX);
    memcpy(u->key, slash + 1, kl + 1);
    return NS_OK;
}

/* Virtual-hosted style only for names that are one DNS label (dots break the TLS wildcard). */
static int virtual_hostable(const char *b)
{
    for (const char *c = b; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
            return 0;
        }
    }
    return b[0] != '-' && b[strlen(b) - 1] != '-';
}

/* ------------------------------------------------------------------------------ checksums */

enum { CK_NONE, CK_CRC32, CK_CRC32C, CK_SHA1, CK_SHA256 };

typedef struct {
    int kind;
    char name[16];
    uint8_t want[32];
    size_t want_len;
    uint32_t crc;
    mbedtls_sha1_context sha1;
    mbedtls_sha256_context sha256;
} checksum;

static uint32_t crc_tab[2][256];
static int crc_ready;

static void crc_init(void)
{
    if (crc_ready) {
        return;
    }
    const uint32_t poly[2] = {0xEDB88320u, 0x82F63B78u};
    for (int t = 0; t < 2; t++) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) {
                c = c & 1 ? poly[t] ^ (c >> 1) : c >> 1;
            }
            crc_tab[t][i] = c;
        }
    }
    crc_ready = 1;
}

static void ck_reset(checksum *k)
{
    k->crc = 0xFFFFFFFFu;
    if (k->kind == CK_SHA1) {
        mbedtls_sha1_free(&k->sha1);
        mbedtls_sha1_init(&k->sha1);
        (void)mbedtls_sha1_starts(&k->sha1);
    } else if (k->kind == CK_SHA256) {
        mbedtls_sha256_free(&k->sha256);
        mbedtls_sha256_init(&k->sha256);
        (void)mbedtls_sha256_starts(&k->sha256, 0);
    }
}

/* Picks the strongest full-object checksum in the response; composite ("...-N") ones are skipped.
 */
static void ck_from_response(checksum *k, const ns_http_resp *r)
{
    static const struct {
        const char *hdr;
        int kind;
        const char *name;
        size_t len;
    } order[] = {{"x-amz-checksum-sha256", CK_SHA256, "sha256", 32},
                 {"x-amz-checksum-sha1", CK_SHA1, "sha1", 20},
                 {"x-amz-checksum-crc32c", CK_CRC32C, "crc32c", 4},
                 {"x-amz-checksum-crc32", CK_CRC32, "crc32", 4}};
    k->kind = CK_NONE;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *v = ns_http_header(r, order[i].hdr);
        size_t n;
        if (v == NULL) {
            continue;
        }
        if (strchr(v, '-') != NULL) {
            ns_info("checksum skipped algorithm=%s reason=composite-multipart", order[i].name);
            continue;
        }
        if (ns_b64_decode(k->want, sizeof k->want, &n, v, strlen(v), 0) != NS_OK ||
            n != order[i].len) {
            ns_err_clear();
            ns_warn("checksum ignored algorithm=%s reason=malformed-header", order[i].name);
            continue;
        }
        k->kind = order[i].kind;
        k->want_len = n;
        snprintf(k->name, sizeof k->name, "%s", order[i].name);
        break;
    }
    crc_init();
    ck_reset(k);
}

static void ck_update(checksum *k, const uint8_t *p, size_t n)
{
    if (k->kind == CK_CRC32 || k->kind == CK_CRC32C) {
        const uint32_t *t = crc_tab[k->kind == CK_CRC32C];
        uint32_t c = k->crc;
        for (size_t i = 0; i < n; i++) {
            c = t[(c ^ p[i]) & 0xFF] ^ (c >> 8);
        }
        k->crc = c;
    } else if (k->kind == CK_SHA1) {
        (void)mbedtls_sha1_update(&k->sha1, p, n);
    } else if (k->kind == CK_SHA256) {
        (void)mbedtls_sha256_update(&k->sha256, p, n);
    }
}

static ns_err ck_verify(checksum *k, const ns_s3_uri *u)
{
    uint8_t got[32];
    size_t n = k->want_len;
    if (k->kind == CK_NONE) {
        return NS_OK;
    }
    if (k->kind == CK_CRC32 || k->kind == CK_CRC32C) {
        ns_put_be32(got, k->crc ^ 0xFFFFFFFFu);
    } else if (k->kind == CK_SHA1) {
        (void)mbedtls_sha1_finish(&k->sha1, got);
    } else {
        (void)mbedtls_sha256_finish(&k->sha256, got);
    }
    ENSURE(memcmp(got, k->want, n) == 0, NS_E_AUTH,
           "s3://%s/%s: the %s checksum of the downloaded bytes does not match the one S3 "
           "returned: the transfer was corrupted; nothing was written, retry",
           u->bucket, u->key, k->name);
    return NS_OK;
}

static void ck_free(checksum *k)
{
    mbedtls_sha1_free(&k->sha1);
    mbedtls_sha256_free(&k->sha256);
}

/* ------------------------------------------------------------------------------ errors */

/* The text of <tag>...</tag> in an S3 XML error body, or "". */
static void xml_tag(const ns_buf *b, const char *tag, char *out, size_t cap)
{
    char open[40], close[40];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    out[0] = '\0';
    if (b->len == 0) {
        return;
    }
    const uint8_t *s = memmem(b->data, b->len, open, strlen(open));
    if (s == NULL) {
        return;
    }
    s += strlen(open);
    const uint8_t *e = memmem(s, b->len - (size_t)(s - b->data), close, strlen(close));
    if (e == NULL) {
        return;
    }
    size_t n = (size_t)(e - s);
    if (n >= cap) {
        n = cap - 1;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    }
    out[n] = '\0';
}

static ns_err s3_error(int status, const char *code, const char *msg, const ns_s3_uri *u,
                       const char *region, const ns_creds *c)
{
    char m[300];
    snprintf(m, sizeof m, "%s%s%s", msg[0] ? " (" : "", msg, msg[0] ? ")" : "");
    if (status == 404 || strcmp(code, "NoSuchKey") == 0 || strcmp(code, "NoSuchBucket") == 0) {
        if (strcmp(code, "NoSuchBucket") == 0) {
            BAIL(NS_E_NOT_FOUND, "s3://%s/%s: 404 NoSuchBucket: there is no bucket \"%s\"%s",
                 u->bucket, u->key, u->bucket, m);
        }
        BAIL(NS_E_NOT_FOUND,
             "s3://%s/%s: 404 %s: there is no object with key \"%s\" in bucket "
             "\"%s\" (keys are case-sensitive)%s",
             u->bucket, u->key, code[0] ? code : "Not Found", u->key, u->bucket, m);
    }
    if (status == 403) {
        if (strcmp(code, "SignatureDoesNotMatch") == 0) {
            BAIL(NS_E_AUTH,
                 "s3://%s/%s: 403 SignatureDoesNotMatch: the secret access key does "
                 "not belong to access key %s, or the clock is off%s",
                 u->bucket, u->key, c->access_key_id, m);
        }
        if (strcmp(code, "InvalidAccessKeyId") == 0) {
            BAIL(NS_E_AUTH,
                 "s3://%s/%s: 403 InvalidAccessKeyId: AWS does not know access key "
                 "%s: fetch fresh credentials (nsign fetch-creds)%s",
                 u->bucket, u->key, c->access_key_id, m);
        }
        if (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "TokenRefreshRequired") == 0 ||
            strcmp(code, "InvalidToken") == 0) {
            BAIL(NS_E_EXPIRED,
                 "s3://%s/%s: 403 %s: the session token is expired or invalid: "
                 "fetch fresh credentials (nsign fetch-creds)%s",
                 u->bucket, u->key, code, m);
        }
        if (strcmp(code, "RequestTimeTooSkewed") == 0) {
            BAIL(NS_E_AUTH,
                 "s3://%s/%s: 403 RequestTimeTooSkewed: this machine's clock is off "
                 "by more than 15 minutes%s",
                 u->bucket, u->key, m);
        }
        BAIL(NS_E_DENIED,
             "s3://%s/%s: 403 %s: access key %s is not allowed s3:GetObject on "
             "arn:aws:s3:::%s/%s (check the role's policy and the bucket policy; for an SSE-KMS "
             "object also kms:Decrypt on its key)%s",
             u->bucket, u->key, code[0] ? code : "Forbidden", c->access_key_id, u->bucket, u->key,
             m);
    }
    if (status == 301 || status == 307 || strcmp(code, "PermanentRedirect") == 0 ||
        strcmp(code, "AuthorizationHeaderMalformed") == 0) {
        BAIL(NS_E_REMOTE,
             "s3://%s/%s: %d %s: the bucket is not in region %s and S3 did not say "
             "which region it is in: set AWS_REGION or --region%s",
             u->bucket, u->key, status, code, region, m);
    }
    BAIL(NS_E_REMOTE, "s3://%s/%s: HTTP %d %s%s", u->bucket, u->key, status, code[0] ? code : "",
         m);
}

/* ------------------------------------------------------------------------------ progress */

static void fmt_size(char *out, size_t cap, double v)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", v, unit[i]);
}

static void progress(int fd, uint64_t have, uint64_t total, int64_t t0, int final)
{
    if (fd < 0) {
        return;
    }
    char a[32], b[32], r[32], line[160];
    double secs = (double)(ns_now_ms() - t0) / 1000.0;
    fmt_size(a, sizeof a, (double)have);
    fmt_size(b, sizeof b, (double)total);
    fmt_size(r, sizeof r, secs > 0 ? (double)have / secs : 0);
    int n = snprintf(line, sizeof line, "\rs3-get: %s / %s (%3d%%) %s/s\033[K%s", a, b,
                     total ? (int)(have * 100 / total) : 100, r, final ? "\n" : "");
    if (n > 0) {
        (void)!write(fd, line, (size_t)n);
    }
}

/* ------------------------------------------------------------------------------ GET */

typedef struct {
    const ns_s3_opts *o;
    const ns_s3_uri *u;
    ns_s3_result *res;
    char region[NS_AWS_REGION_MAX];
    ns_url ep;
    char path[NS_S3_KEY_MAX * 3 + NS_S3_BUCKET_MAX + 8];
    ns_out out;
    int out_open;
    uint64_t have, total;
    int have_total;
    char etag[NS_S3_ETAG_MAX];
    checksum ck;
    uint8_t buf[NS_S3_CHUNK];
} getter;

static ns_err set_target(getter *g)
{
    ns_buf p;
    ns_buf_init(&p, sizeof g->path - 1);
    ns_err e;
    int vhost = 0;
    if (g->o->endpoint) {
        g->ep = *g->o->endpoint;
    } else {
        char url[NS_HTTP_HOST_MAX + 32];
        vhost = virtual_hostable(g->u->bucket);
        if (vhost) {
            snprintf(url, sizeof url, "https://%s.s3.%s.amazonaws.com", g->u->bucket, g->region);
        } else {
            snprintf(url, sizeof url, "https://s3.%s.amazonaws.com", g->region);
        }
        GUARD(ns_url_parse(&g->ep, url));
    }
    GUARD_GOTO(ns_buf_append_str(&p, g->ep.base), e, out);
    if (!vhost) {
        GUARD_GOTO(ns_buf_append_u8(&p, '/'), e, out);
        GUARD_GOTO(ns_sigv4_uri_encode(&p, g->u->bucket, strlen(g->u->bucket), 0), e, out);
    }
    GUARD_GOTO(ns_buf_append_u8(&p, '/'), e, out);
    GUARD_GOTO(ns_sigv4_uri_encode(&p, g->u->key, strlen(g->u->key), 1), e, out);
    memcpy(g->path, p.data, p.len);
    g->path[p.len] = '\0';
    /* The path carries the base already: sign and send it against an endpoint without one. */
    g->ep.base[0] = '\0';
out:
    ns_buf_free(&p);
    return e;
}

static ns_err restart_output(getter *g)
{
    ENSURE(!g->out.is_stdout, NS_E_REMOTE,
           "s3://%s/%s changed during the download and standard output cannot be rewound: "
           "download to a file, or retry",
           g->u->bucket, g->u->key);
    ENSURE(ftruncate(g->out.fd, 0) == 0 && lseek(g->out.fd, 0, SEEK_SET) == 0, NS_E_IO,
           "cannot truncate the temporary output file");
    g->have = 0;
    g->have_total = 0;
    g->etag[0] = '\0';
    return NS_OK;
}

typedef enum { STEP_DONE, STEP_RETRY, STEP_REDIRECT, STEP_RESTART } step;

/* Parses "bytes START-END/TOTAL". */
static int content_range(const char *v, uint64_t *start, uint64_t *total)
{
    unsigned long long s, e, t;
    char tail;
    if (v == NULL || sscanf(v, "bytes %llu-%llu/%llu%c", &s, &e, &t, &tail) != 3 || e < s ||
        e >= t) {
        return -1;
    }
    *start = s;
    *total = t;
    return 0;
}

/* The headers of one GET: the checksum mode, and Range + If-Match when resuming. */
typedef struct {
    char range[64], ifmatch[NS_S3_ETAG_MAX + 4];
    ns_http_hdr h[3];
    size_t n;
    int resuming;
} get_headers;

static void headers_for(get_headers *x, const getter *g)
{
    x->n = 0;
    x->h[x->n++] = (ns_http_hdr){"x-amz-checksum-mode", "ENABLED"};
    x->resuming = g->have > 0 && g->etag[0];
    if (x->resuming) {
        snprintf(x->range, sizeof x->range, "bytes=%llu-", (unsigned long long)g->have);
        snprintf(x->ifmatch, sizeof x->ifmatch, "%s", g->etag);
        x->h[x->n++] = (ns_http_hdr){"If-Match", x->ifmatch};
        x->h[x->n++] = (ns_http_hdr){"Range", x->range};
    }
}

/* Signs the GET, sends it and reads the response head. */
static ns_err send_get(getter *g, ns_aws_client *c, const get_headers *x, ns_aws_signed *s,
                       ns_http **h, ns_http_resp *r)
{
    ns_http_dest d = {&g->ep, g->o->via, g->o->ca,
                      g->o->timeout_ms > 0 ? g->o->timeout_ms : NS_HTTP_TIMEOUT_MS_DEFAULT,
                      g->o->total_ms, g->o->min_bps};
    GUARD(ns_aws_sign(c, s, "GET", g->path, NULL, x->h, x->n, NULL, 0, time(NULL)));
    GUARD(ns_http_open(h, &d));
    GUARD(ns_http_send(*h, "GET", g->path, s->hdrs, s->n, NULL, 0));
    return ns_http_read_head(*h, r);
}

/* A status other than 200/206: a region redirect, a restart (the object changed under a
 * resume), a retry (throttle or 5xx), or the final error S3 explained in its body. */
static ns_err on_error_status(getter *g, ns_http *h, const ns_http_resp *r, int resuming,
                              step *next)
{
    ns_buf eb;
    ns_buf_init(&eb, NS_S3_ERRBODY_MAX);
    ns_err be = ns_http_read_body_all(h, &eb);
    (void)be;
    char code[64], msg[200], breg[NS_AWS_REGION_MAX];
    xml_tag(&eb, "Code", code, sizeof code);
    xml_tag(&eb, "Message", msg, sizeof msg);
    xml_tag(&eb, "Region", breg, sizeof breg);
    ns_buf_free(&eb);
    const char *hreg = ns_http_header(r, "x-amz-bucket-region");
    if (hreg == NULL && breg[0]) {
        hreg = breg;
    }
    if ((r->status == 301 || r->status == 307 || r->status == 400) && hreg &&
        strcmp(hreg, g->region) != 0) {
        char reg[NS_AWS_REGION_MAX];
        GUARD(ns_aws_region(reg, hreg));
        ns_info("region redirect bucket=%s from=%s to=%s", g->u->bucket, g->region, reg);
        snprintf(g->region, sizeof g->region, "%s", reg);
        *next = STEP_REDIRECT;
        return NS_OK;
    }
    if (r->status == 412 && resuming) {
        ns_warn("object changed during the download, starting over key=%s", g->u->key);
        *next = STEP_RESTART;
        return NS_OK;
    }
    if (ns_aws_retryable_status(r->status, code)) {
        ns_warn("s3 answered status=%d code=%s", r->status, code[0] ? code : "-");
        *next = STEP_RETRY;
        BAIL(NS_E_UNAVAILABLE, "s3://%s/%s: HTTP %d %s", g->u->bucket, g->u->key, r->status,
             code);
    }
    return s3_error(r->status, code, msg, g->u, g->region, g->o->creds);
}

/* A 200: the whole object from the start (over any partial output). */
static ns_err accept_whole(getter *g, const ns_http_resp *r, const char *etag)
{
    if (g->have > 0) {
        /* a server that ignored our Range: start over rather than append a second copy */
        GUARD(restart_output(g));
    }
    ENSURE(r->content_length >= 0 || r->chunked, NS_E_PROTO,
           "s3://%s/%s: the response has no Content-Length", g->u->bucket, g->u->key);
    g->total = r->content_length >= 0 ? (uint64_t)r->content_length : 0;
    g->have_total = r->content_length >= 0;
    snprintf(g->etag, sizeof g->etag, "%s", etag ? etag : "");
    ck_from_response(&g->ck, r);
    return NS_OK;
}

/* A 206: must continue exactly where the download stopped, of the same object. */
static ns_err accept_part(getter *g, const ns_http_resp *r, const char *etag, int resuming)
{
    uint64_t start, total;
    if (!resuming || content_range(ns_http_header(r, "content-range"), &start, &total) != 0 ||
        start != g->have || (g->have_total && total != g->total) ||
        (etag && strcmp(etag, g->etag) != 0) ||
        (r->content_length >= 0 && (uint64_t)r->content_length != total - start)) {
        BAIL(NS_E_PROTO,
             "s3://%s/%s: the resumed part does not continue the download "
             "(Content-Range/ETag mismatch)",
             g->u->bucket, g->u->key);
    }
    g->res->resumed++;
    ns_info("resumed key=%s offset=%llu", g->u->key, (unsigned long long)g->have);
    return NS_OK;
}

/* Streams the body into the output and the checksum, then checks the length. */
static ns_err read_object(getter *g, ns_http *h, int64_t t0)
{
    int64_t last = 0;
    for (;;) {
        size_t got;
        GUARD(ns_http_read_body(h, g->buf, sizeof g->buf, &got));
        if (got == 0) {
            break;
        }
        ENSURE(!g->have_total || g->have + got <= g->total, NS_E_PROTO,
               "s3://%s/%s: more bytes than Content-Length", g->u->bucket, g->u->key);
        ck_update(&g->ck, g->buf, got);
        GUARD(ns_out_write(&g->out, g->buf, got));
        g->have += got;
        if (g->o->progress_fd >= 0 && ns_now_ms() - last >= NS_S3_PROGRESS_MS) {
            last = ns_now_ms();
            progress(g->o->progress_fd, g->have, g->total, t0, 0);
        }
    }
    ENSURE(!g->have_total || g->have == g->total, NS_E_TRUNCATED,
           "s3://%s/%s: got %llu of %llu bytes", g->u->bucket, g->u->key,
           (unsigned long long)g->have, (unsigned long long)g->total);
    if (!g->have_total) {
        g->total = g->have;
    }
    return NS_OK;
}

/* One attempt. Returns NS_OK with *next set, or a final error. Transport errors are returned
 * as themselves so the caller can decide about a retry. */
static ns_err attempt(getter *g, ns_aws_client *c, step *next, int64_t t0)
{
    get_headers x;
    ns_aws_signed s;
    ns_http *h = NULL;
    ns_http_resp r;
    ns_err e;
    headers_for(&x, g);
    GUARD_GOTO(send_get(g, c, &x, &s, &h, &r), e, out);
    if (r.status != 200 && r.status != 206) {
        e = on_error_status(g, h, &r, x.resuming, next);
        goto out;
    }
    const char *etag = ns_http_header(&r, "etag");
    if (r.status == 200) {
        GUARD_GOTO(accept_whole(g, &r, etag), e, out);
    } else {
        GUARD_GOTO(accept_part(g, &r, etag, x.resuming), e, out);
    }
    GUARD_GOTO(read_object(g, h, t0), e, out);
    *next = STEP_DONE;
out:
    ns_wipe(&s, sizeof s);
    ns_http_close(h);
    return e;
}

ns_err ns_s3_get(const ns_s3_opts *o, const ns_s3_uri *u, const char *outpath, ns_s3_result *res)
{
    memset(res, 0, sizeof *res);
    getter *g = calloc(1, sizeof *g);
    ENSURE(g != NULL, NS_E_NOMEM, "out of memory");
    g->o = o;
    g->u = u;
    g->res = res;
    mbedtls_sha1_init(&g->ck.sha1);
    mbedtls_sha256_init(&g->ck.sha256);
    ns_err e;
    GUARD_GOTO(ns_aws_region(g->region, o->region), e, out);
    GUARD_GOTO(set_target(g), e, out);
    GUARD_GOTO(ns_out_open(&g->out, outpath), e, out);
    g->out_open = 1;
    int64_t t0 = ns_now_ms();
    int64_t start = t0;
    int tries = 0, redirects = 0, resumes = 0;
    for (;;) {
        ns_aws_client c = {"s3",  g->region,     o->creds, &g->ep,     o->via,
                           o->ca, o->timeout_ms, o->retry, NS_SIGV4_S3};
        step next = STEP_DONE;
        uint64_t before = g->have;
        e = attempt(g, &c, &next, t0);
        if (e == NS_OK && next == STEP_DONE) {
            break;
        }
        if (e == NS_OK && next == STEP_REDIRECT) {
            if (++redirects > NS_S3_REDIRECTS_MAX) {
                e = ns_fail(NS_E_REMOTE, "s3://%s/%s: too many region redirects", u->bucket,
                            u->key);
                goto out;
            }
            GUARD_GOTO(set_target(g), e, out);
            continue;
        }
        if (e == NS_OK && next == STEP_RESTART) {
            GUARD_GOTO(restart_output(g), e, out);
            ck_reset(&g->ck);
            if (++resumes > NS_S3_RESUMES_MAX) {
                e = ns_fail(NS_E_REMOTE, "s3://%s/%s keeps changing", u->bucket, u->key);
                goto out;
            }
            continue;
        }
        /* retryable? an HTTP throttle/5xx, or a transport error */
        int retry = (e == NS_E_UNAVAILABLE && next == STEP_RETRY) || ns_aws_retryable_err(e);
        if (!retry) {
            goto out;
        }
        if (g->have > before) {
            tries = 0; /* progress was made: a new series of attempts for the rest */
            if (++resumes > NS_S3_RESUMES_MAX) {
                goto out;
            }
        }
        if (++tries >= o->retry.max_attempts) {
            e = ns_fail_ctx(e, "giving up after %d attempts", tries);
            goto out;
        }
        int delay = ns_retry_delay_ms(&o->retry, tries);
        if (ns_now_ms() - start + delay > o->retry.budget_ms && g->have == before) {
            e = ns_fail_ctx(e, "giving up after %d attempts", tries);
            goto out;
        }
        ns_warn("retrying key=%s have=%llu attempt=%d delay_ms=%d error=\"%s\"", u->key,
                (unsigned long long)g->have, tries + 1, delay, ns_err_msg());
        usleep((useconds_t)delay * 1000);
    }
    GUARD_GOTO(ck_verify(&g->ck, u), e, out);
    GUARD_GOTO(ns_out_commit(&g->out), e, out);
    progress(o->progress_fd, g->have, g->total, t0, 1);
    res->bytes = g->have;
    snprintf(res->checksum, sizeof res->checksum, "%s", g->ck.kind ? g->ck.name : "");
    snprintf(res->region, sizeof res->region, "%s", g->region);
out:
    if (e != NS_OK && g->out_open) {
        if (o->progress_fd >= 0) {
            (void)!write(o->progress_fd, "\n", 1);
        }
        ns_out_abort(&g->out);
    }
    ck_free(&g->ck);
    free(g);
    return e;
}

/* ------------------------------------------------------------------------------ HEAD */

ns_err ns_s3_head(const ns_s3_opts *o, const ns_s3_uri *u)
{
    getter *g = calloc(1, sizeof *g);
    ENSURE(g != NULL, NS_E_NOMEM, "out of memory");
    g->o = o;
    g->u = u;
    ns_buf resp;
    ns_buf_init(&resp, NS_S3_ERRBODY_MAX);
    int status = 0;
    ns_err e;
    GUARD_GOTO(ns_aws_region(g->region, o->region), e, out);
    GUARD_GOTO(set_target(g), e, out);
    ns_aws_client c = {"s3",  g->region,     o->creds, &g->ep,     o->via,
                       o->ca, o->timeout_ms, o->retry, NS_SIGV4_S3};
    GUARD_GOTO(ns_aws_request(&c, "HEAD", g->path, NULL, NULL, 0, NULL, 0, &status, &resp), e, out);
    if (status != 200) {
        e = s3_error(status, "", "", u, g->region, o->creds);
    }
out:
    ns_buf_free(&resp);
    free(g);
    return e;
}
