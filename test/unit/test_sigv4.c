/*
 * test_sigv4: unit tests of the SigV4 signer, both AWS conformance suites (../shared/vectors/
 * sigv4, when NS_VECTORS is set or with the argument "vectors"), and a line-oriented signing
 * mode ("sign") that test/it/test_sigv4_botocore.py drives to compare with botocore.
 *
 * "sign" mode: each stdin line holds space-separated hex fields:
 *   flags method path query akid secret token region service amzdate payloadhash n (name value)*n
 * (an empty field is "-"); the output line is the Authorization value (or "ERR <msg>").
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"
#include "iox.h"
#include "secret.h"
#include "sigv4.h"
#include "t.h"

#define MAXH NS_SIGV4_MAX_HEADERS

static int read_file(const char *dir, const char *name, ns_buf *b)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    ns_buf_init(b, 1 << 20);
    if (ns_read_path(p, b) != NS_OK || ns_buf_cstr(b) != NS_OK) {
        return -1;
    }
    return 0;
}

/* A parsed raw request: method, path, query, headers (continuation lines become repeats). */
typedef struct {
    char method[16];
    char path[1024];
    char query[1024];
    char names[MAXH][128];
    char values[MAXH][512];
    ns_sigv4_hdr h[MAXH];
    size_t n;
    const char *body;
    size_t body_len;
} rawreq;

/*
 * Folded continuation lines: the original suite expects them as repeated values (joined with
 * ','), aws-c-auth as part of the same value (RFC 7230 obs-fold: replaced by a space).
 */
static int parse_req(rawreq *r, char *txt, int fold_space)
{
    memset(r, 0, sizeof *r);
    char *eol = strchr(txt, '\n');
    if (!eol) {
        eol = txt + strlen(txt);
    }
    char *sp = memchr(txt, ' ', (size_t)(eol - txt));
    if (!sp || eol - txt < 10 || memcmp(eol - 9, " HTTP/1.1", 9) != 0) {
        return -1;
    }
    snprintf(r->method, sizeof r->method, "%.*s", (int)(sp - txt), txt);
    char target[2048];
    snprintf(target, sizeof target, "%.*s", (int)(eol - 9 - sp - 1), sp + 1);
    char *q = strchr(target, '?');
    if (q) {
        *q = '\0';
        snprintf(r->query, sizeof r->query, "%s", q + 1);
    }
    snprintf(r->path, sizeof r->path, "%s", target);
    char *line = *eol ? eol + 1 : eol;
    while (*line && *line != '\n') {
        char *le = strchr(line, '\n');
        size_t len = le ? (size_t)(le - line) : strlen(line);
        if (r->n >= MAXH) {
            return -1;
        }
        if (line[0] == ' ' || line[0] == '\t') {
            if (r->n == 0) {
                return -1;
            }
            if (fold_space) {
                size_t vl = strlen(r->values[r->n - 1]);
                snprintf(r->values[r->n - 1] + vl, 512 - vl, " %.*s", (int)len, line);
                line = le ? le + 1 : line + len;
                continue;
            }
            memcpy(r->names[r->n], r->names[r->n - 1], sizeof r->names[0]);
            snprintf(r->values[r->n], 512, "%.*s", (int)len, line);
        } else {
            char *c = memchr(line, ':', len);
            if (!c) {
                return -1;
            }
            snprintf(r->names[r->n], 128, "%.*s", (int)(c - line), line);
            snprintf(r->values[r->n], 512, "%.*s", (int)(len - (size_t)(c - line) - 1), c + 1);
        }
        r->n++;
        line = le ? le + 1 : line + len;
    }
    if (*line == '\n') {
        line++;
    }
    r->body = line;
    r->body_len = strlen(line);
    return 0;
}

static void add_hdr(rawreq *r, const char *name, const char *value)
{
    if (r->n < MAXH) {
        snprintf(r->names[r->n], 128, "%s", name);
        snprintf(r->values[r->n], 512, "%s", value);
        r->n++;
    }
}

static void bind_hdrs(rawreq *r)
{
    for (size_t i = 0; i < r->n; i++) {
        r->h[i].name = r->names[i];
        r->h[i].value = r->values[i];
    }
}

static int eq_text(const ns_buf *got, const ns_buf *want)
{
    size_t wl = want->len;
    while (wl > 0 && want->data[wl - 1] == '\n') {
        wl--; /* a few files end with a newline */
    }
    return got->len == wl && memcmp(got->data, want->data, wl) == 0;
}

static const char *AKID = "AKIDEXAMPLE";
static const char *SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/* The original AWS suite: .req -> .creq, .sts, .authz. */
static void suite_original(const char *root)
{
    static const char *cases[] = {"get-header-key-duplicate",
                                  "get-header-value-multiline",
                                  "get-header-value-order",
                                  "get-header-value-trim",
                                  "get-unreserved",
                                  "get-utf8",
                                  "get-vanilla",
                                  "get-vanilla-empty-query-key",
                                  "get-vanilla-query",
                                  "get-vanilla-query-order-key",
                                  "get-vanilla-query-order-key-case",
                                  "get-vanilla-query-order-value",
                                  "get-vanilla-query-unreserved",
                                  "get-vanilla-utf8-query",
                                  "normalize-path/get-relative",
                                  "normalize-path/get-relative-relative",
                                  "normalize-path/get-slash",
                                  "normalize-path/get-slash-dot-slash",
                                  "normalize-path/get-slash-pointless-dot",
                                  "normalize-path/get-slashes",
                                  "normalize-path/get-space",
                                  "post-header-key-case",
                                  "post-header-key-sort",
                                  "post-header-value-case",
                                  "post-sts-token/post-sts-header-after",
                                  "post-sts-token/post-sts-header-before",
                                  "post-vanilla",
                                  "post-vanilla-empty-query-value",
                                  "post-vanilla-query",
                                  "post-x-www-form-urlencoded",
                                  "post-x-www-form-urlencoded-parameters"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[1024], base[256];
        snprintf(dir, sizeof dir, "%s/aws-sig-v4-test-suite/%s", root, cases[i]);
        const char *slash = strrchr(cases[i], '/');
        const char *nm = slash ? slash + 1 : cases[i];
        ns_buf req, creq, sts, authz;
        snprintf(base, sizeof base, "%s.req", nm);
        int rd = read_file(dir, base, &req);
        snprintf(base, sizeof base, "%s.creq", nm);
        rd |= read_file(dir, base, &creq);
        snprintf(base, sizeof base, "%s.sts", nm);
        rd |= read_file(dir, base, &sts);
        snprintf(base, sizeof base, "%s.authz", nm);
        rd |= read_file(dir, base, &authz);
        CHECK(rd == 0, "original/%s: files read", cases[i]);
        static rawreq r;
        int pr = rd == 0 ? parse_req(&r, (char *)req.data, 0) : -1;
        if (pr == 0) {
            bind_hdrs(&r);
            char ph[65];
            ns_sigv4_sha256_hex(ph, r.body, r.body_len);
            ns_sigv4_params p = {AKID, SECRET, "us-east-1", "service", "20150830T123600Z", 0};
            ns_sigv4_req q = {r.method, r.path, r.query, r.h, r.n, ph};
            /* These two cases contradict themselves (README): their .sts does not hash their
             * .creq. Check what is consistent (.sts -> .authz) and take the canonical request
             * from the aws-c-auth copies of the same cases. */
            int contradictory = strncmp(nm, "post-x-www-form-urlencoded", 26) == 0;
            ns_buf gc, gs;
            ns_buf_init(&gc, 1 << 16);
            ns_buf_init(&gs, 1 << 16);
            char az[NS_SIGV4_AUTHZ_MAX];
            ns_err e1 = ns_sigv4_canonical_request(&p, &q, &gc, NULL);
            ns_err e2 = ns_sigv4_string_to_sign(&p, gc.data, gc.len, &gs);
            ns_err e3 = ns_sigv4_sign(&p, &q, az, sizeof az);
            if (contradictory) {
                printf("ok - original/%s: canonical request # SKIP the suite's .sts does not hash "
                       "its .creq (see vectors README); aws-c-auth-v4/%s covers it\n",
                       cases[i], nm);
                char sig[65];
                size_t al = authz.len;
                ns_err e4 = ns_sigv4_signature(sig, &p, sts.data, sts.len);
                CHECK(e4 == NS_OK && al > 64 && memcmp(authz.data + al - 64, sig, 64) == 0,
                      "original/%s: .sts -> .authz signature", cases[i]);
                (void)e1, (void)e2, (void)e3;
            } else {
                CHECK(e1 == NS_OK && eq_text(&gc, &creq), "original/%s: canonical request",
                      cases[i]);
                CHECK(e2 == NS_OK && eq_text(&gs, &sts), "original/%s: string to sign", cases[i]);
                ns_buf ga;
                ns_buf_init(&ga, 4096);
                ns_err e5 = ns_buf_append_str(&ga, az);
                CHECK(e3 == NS_OK && e5 == NS_OK && eq_text(&ga, &authz),
                      "original/%s: Authorization", cases[i]);
                if (!eq_text(&gc, &creq) && ns_buf_cstr(&gc) == NS_OK) {
                    printf("# got creq:\n%s\n", (char *)gc.data);
                }
                ns_buf_free(&ga);
            }
            ns_buf_free(&gc);
            ns_buf_free(&gs);
        } else {
            CHECK(0, "original/%s: request parsed", cases[i]);
        }
        ns_buf_free(&req);
        ns_buf_free(&creq);
        ns_buf_free(&sts);
        ns_buf_free(&authz);
    }
}

static int json_bool(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsTrue(v);
}

/* The aws-c-auth layout: header mode and query (presigned) mode per case. */
static void suite_c_auth(const char *root)
{
    static const char *cases[] = {"get-header-key-duplicate",
                                  "get-header-value-multiline",
                                  "get-header-value-order",
                                  "get-header-value-trim",
                                  "get-relative-normalized",
                                  "get-relative-relative-normalized",
                                  "get-relative-relative-unnormalized",
                                  "get-relative-unnormalized",
                                  "get-slash-dot-slash-normalized",
                                  "get-slash-dot-slash-unnormalized",
                                  "get-slash-normalized",
                                  "get-slash-pointless-dot-normalized",
                                  "get-slash-pointless-dot-unnormalized",
                                  "get-slash-unnormalized",
                                  "get-slashes-normalized",
                                  "get-slashes-unnormalized",
                                  "get-space-normalized",
                                  "get-space-unnormalized",
                                  "get-unreserved",
                                  "get-utf8",
                                  "get-vanilla",
                                  "get-vanilla-empty-query-key",
                                  "get-vanilla-query",
                                  "get-vanilla-query-order-encoded",
                                  "get-vanilla-query-order-key-case",
                                  "get-vanilla-query-unreserved",
                                  "get-vanilla-utf8-query",
                                  "get-vanilla-with-session-token",
                                  "post-header-key-case",
                                  "post-header-key-sort",
                                  "post-header-value-case",
                                  "post-sts-header-after",
                                  "post-sts-header-before",
                                  "post-vanilla",
                                  "post-vanilla-empty-query-value",
                                  "post-vanilla-query",
                                  "post-x-www-form-urlencoded",
                                  "post-x-www-form-urlencoded-parameters"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/aws-c-auth-v4/%s", root, cases[i]);
        ns_buf ctx, req, hcreq, hsts, hsig, qcreq, qsts, qsig;
        int rd = read_file(dir, "context.json", &ctx) | read_file(dir, "request.txt", &req) |
                 read_file(dir, "header-canonical-request.txt", &hcreq) |
                 read_file(dir, "header-string-to-sign.txt", &hsts) |
                 read_file(dir, "header-signature.txt", &hsig) |
                 read_file(dir, "query-canonical-request.txt", &qcreq) |
                 read_file(dir, "query-string-to-sign.txt", &qsts) |
                 read_file(dir, "query-signature.txt", &qsig);
        cJSON *cj = rd == 0 ? cJSON_Parse((const char *)ctx.data) : NULL;
        static rawreq r;
        CHECK(cj != NULL && parse_req(&r, (char *)req.data, 1) == 0, "c-auth/%s: case read",
              cases[i]);
        if (cj == NULL) {
            continue;
        }
        const cJSON *cr = cJSON_GetObjectItemCaseSensitive(cj, "credentials");
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(cr, "token");
        const char *token = cJSON_IsString(tok) ? tok->valuestring : NULL;
        int normalize = json_bool(cj, "normalize");
        int sign_body = json_bool(cj, "sign_body");
        int omit = json_bool(cj, "omit_session_token");
        char ph[65];
        ns_sigv4_sha256_hex(ph, r.body, r.body_len);
        ns_sigv4_params p = {AKID,
                             SECRET,
                             "us-east-1",
                             "service",
                             "20150830T123600Z",
                             normalize ? 0u : NS_SIGV4_NO_NORMALIZE};
        /* header mode */
        static rawreq hr;
        hr = r;
        add_hdr(&hr, "X-Amz-Date", "20150830T123600Z");
        if (token && !omit) {
            add_hdr(&hr, "X-Amz-Security-Token", token);
        }
        if (sign_body) {
            add_hdr(&hr, "x-amz-content-sha256", ph);
        }
        bind_hdrs(&hr);
        ns_sigv4_req q = {hr.method, hr.path, hr.query, hr.h, hr.n, ph};
        ns_buf gc, gs;
        ns_buf_init(&gc, 1 << 16);
        ns_buf_init(&gs, 1 << 16);
        char sig[65] = "";
        ns_err e = ns_sigv4_canonical_request(&p, &q, &gc, NULL);
        CHECK(e == NS_OK && eq_text(&gc, &hcreq), "c-auth/%s: header canonical request", cases[i]);
        e = ns_sigv4_string_to_sign(&p, gc.data, gc.len, &gs);
        CHECK(e == NS_OK && eq_text(&gs, &hsts), "c-auth/%s: header string to sign", cases[i]);
        e = ns_sigv4_signature(sig, &p, gs.data, gs.len);
        CHECK(e == NS_OK && hsig.len >= 64 && memcmp(sig, hsig.data, 64) == 0,
              "c-auth/%s: header signature", cases[i]);
        /* query mode: the X-Amz-* parameters join the query, headers are the request's own */
        static rawreq qr;
        qr = r;
        bind_hdrs(&qr);
        ns_buf sh, qs;
        ns_buf_init(&sh, 4096);
        ns_buf_init(&qs, 8192);
        ns_buf tmp;
        ns_buf_init(&tmp, 1 << 16);
        ns_sigv4_req q0 = {qr.method, qr.path, NULL, qr.h, qr.n, ph};
        e = ns_sigv4_canonical_request(&p, &q0, &tmp, &sh);
        ns_err e2 = ns_buf_printf(&qs,
                                  "%s%sX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
                                  "AKIDEXAMPLE%%2F20150830%%2Fus-east-1%%2Fservice%%2Faws4_request"
                                  "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=3600",
                                  qr.query, qr.query[0] ? "&" : "");
        if (token && !omit && e2 == NS_OK) {
            e2 = ns_buf_append_str(&qs, "&X-Amz-Security-Token=");
            if (e2 == NS_OK) {
                e2 = ns_sigv4_uri_encode(&qs, token, strlen(token), 0);
            }
        }
        if (e2 == NS_OK) {
            e2 = ns_buf_append_str(&qs, "&X-Amz-SignedHeaders=");
        }
        if (e2 == NS_OK) {
            e2 = ns_sigv4_uri_encode(&qs, (const char *)sh.data, sh.len, 0);
        }
        if (e2 == NS_OK) {
            e2 = ns_buf_cstr(&qs);
        }
        ns_buf_reset(&gc);
        ns_buf_reset(&gs);
        ns_sigv4_req q1 = {qr.method, qr.path, (const char *)qs.data, qr.h, qr.n, ph};
        if (e == NS_OK && e2 == NS_OK) {
            e = ns_sigv4_canonical_request(&p, &q1, &gc, NULL);
        }
        CHECK(e == NS_OK && e2 == NS_OK && eq_text(&gc, &qcreq),
              "c-auth/%s: query canonical request", cases[i]);
        e = ns_sigv4_string_to_sign(&p, gc.data, gc.len, &gs);
        CHECK(e == NS_OK && eq_text(&gs, &qsts), "c-auth/%s: query string to sign", cases[i]);
        e = ns_sigv4_signature(sig, &p, gs.data, gs.len);
        CHECK(e == NS_OK && qsig.len >= 64 && memcmp(sig, qsig.data, 64) == 0,
              "c-auth/%s: query signature", cases[i]);
        cJSON_Delete(cj);
        ns_buf_free(&tmp);
        ns_buf_free(&sh);
        ns_buf_free(&qs);
        ns_buf_free(&gc);
        ns_buf_free(&gs);
        ns_buf *all[] = {&ctx, &req, &hcreq, &hsts, &hsig, &qcreq, &qsts, &qsig};
        for (size_t k = 0; k < 8; k++) {
            ns_buf_free(all[k]);
        }
    }
}

static void unit(void)
{
    ns_buf b;
    ns_buf_init(&b, 64);
    CHECK(ns_sigv4_uri_encode(&b, "a b/ሴ~", 8, 1) == NS_OK && ns_buf_cstr(&b) == NS_OK &&
              strcmp((char *)b.data, "a%20b/%E1%88%B4~") == 0,
          "uri_encode keeps unreserved and '/', uppercase hex");
    ns_buf_reset(&b);
    CHECK(ns_sigv4_uri_encode(&b, "a/b", 3, 0) == NS_OK && ns_buf_cstr(&b) == NS_OK &&
              strcmp((char *)b.data, "a%2Fb") == 0,
          "uri_encode encodes '/' when asked");
    ns_buf_free(&b);
    char d[17];
    CHECK(ns_sigv4_amz_date(d, 1440938160) == NS_OK && strcmp(d, "20150830T123600Z") == 0,
          "amz_date formats UTC");
    char h[65];
    ns_sigv4_sha256_hex(h, "", 0);
    CHECK(strcmp(h, NS_SIGV4_EMPTY_SHA256) == 0, "sha256 of empty payload");

    ns_sigv4_hdr hs[] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
    ns_sigv4_params p = {AKID, SECRET, "us-east-1", "service", "20150830T123600Z", 0};
    ns_sigv4_req r = {"GET", "/", NULL, hs, 2, NS_SIGV4_EMPTY_SHA256};
    char az[NS_SIGV4_AUTHZ_MAX];
    CHECK(ns_sigv4_sign(&p, &r, az, sizeof az) == NS_OK &&
              strcmp(az, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                         "aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b7"
                         "3ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31") == 0,
          "get-vanilla signature");
    /* issue 15: the canonical request carries the session token: built in secret memory
     * (locked, not dumped, wiped when freed) */
    ns_sigv4_hdr ht[] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"},
                         {"X-Amz-Security-Token", "token-value"}};
    ns_sigv4_req rt = {"GET", "/", NULL, ht, 3, NS_SIGV4_EMPTY_SHA256};
    size_t before = ns_secret_allocs();
    CHECK(ns_sigv4_sign(&p, &rt, az, sizeof az) == NS_OK && ns_secret_allocs() > before,
          "the canonical request (session token inside) is built in secret memory");
    /* negative cases */
    ns_sigv4_params bad = p;
    bad.amz_date = "2015-08-30";
    CHECK_ERR(ns_sigv4_sign(&bad, &r, az, sizeof az), NS_E_USAGE, "malformed date refused");
    bad = p;
    bad.secret_access_key = "";
    CHECK_ERR(ns_sigv4_sign(&bad, &r, az, sizeof az), NS_E_USAGE, "empty secret refused");
    CHECK_ERR(ns_sigv4_sign(&p, &r, az, 40), NS_E_TOO_BIG, "small Authorization buffer refused");
    ns_sigv4_hdr nh[] = {{"", "x"}};
    ns_sigv4_req rn = {"GET", "/", NULL, nh, 1, NS_SIGV4_EMPTY_SHA256};
    CHECK_ERR(ns_sigv4_sign(&p, &rn, az, sizeof az), NS_E_USAGE, "empty header name refused");
    ns_sigv4_req rm = {"GET", "/", NULL, hs, NS_SIGV4_MAX_HEADERS + 1, NS_SIGV4_EMPTY_SHA256};
    CHECK_ERR(ns_sigv4_sign(&p, &rm, az, sizeof az), NS_E_TOO_BIG, "too many headers refused");
    /* S3 keeps the path as sent; other services normalise and encode again */
    ns_buf c1, c2;
    ns_buf_init(&c1, 4096);
    ns_buf_init(&c2, 4096);
    ns_sigv4_req rp = {"GET", "/a/../b%20c//d", NULL, hs, 2, NS_SIGV4_EMPTY_SHA256};
    ns_sigv4_params p3 = p;
    p3.flags = NS_SIGV4_S3;
    CHECK(ns_sigv4_canonical_request(&p3, &rp, &c1, NULL) == NS_OK &&
              memcmp(c1.data, "GET\n/a/../b%20c//d\n", 19) == 0,
          "S3 canonical URI is the path as sent");
    CHECK(ns_sigv4_canonical_request(&p, &rp, &c2, NULL) == NS_OK &&
              memcmp(c2.data, "GET\n/b%2520c/d\n", 15) == 0,
          "non-S3 canonical URI is normalised and encoded again");
    ns_buf_free(&c1);
    ns_buf_free(&c2);
}

/* ------------------------------------------------------------------ sign mode (botocore) */
static int unhex(char *f, char *out, size_t cap)
{
    if (strcmp(f, "-") == 0) {
        out[0] = '\0';
        return 0;
    }
    size_t n = 0;
    if (ns_hex_decode((uint8_t *)out, cap - 1, &n, f, strlen(f)) != NS_OK) {
        return -1;
    }
    out[n] = '\0';
    return 0;
}

static int sign_mode(void)
{
    static char line[1 << 17];
    static char f[12][8192];
    static char hn[MAXH][1024], hv[MAXH][2048];
    while (fgets(line, sizeof line, stdin)) {
        char *save = NULL;
        char *tok = strtok_r(line, " \n", &save);
        int bad = 0;
        for (int i = 0; i < 12 && !bad; i++) {
            if (!tok || unhex(tok, f[i], sizeof f[i]) != 0) {
                bad = 1;
            }
            tok = strtok_r(NULL, " \n", &save);
        }
        int n = bad ? 0 : atoi(f[11]);
        ns_sigv4_hdr h[MAXH];
        for (int i = 0; i < n && i < MAXH && !bad; i++) {
            if (!tok || unhex(tok, hn[i], sizeof hn[i]) != 0) {
                bad = 1;
            }
            tok = strtok_r(NULL, " \n", &save);
            if (!tok || unhex(tok, hv[i], sizeof hv[i]) != 0) {
                bad = 1;
            }
            tok = strtok_r(NULL, " \n", &save);
            h[i].name = hn[i];
            h[i].value = hv[i];
        }
        if (bad) {
            printf("ERR bad input line\n");
            continue;
        }
        ns_sigv4_params p = {f[4], f[5], f[7], f[8], f[9], (unsigned)atoi(f[0])};
        ns_sigv4_req r = {f[1], f[2], f[3], h, (size_t)n, f[10]};
        char az[NS_SIGV4_AUTHZ_MAX];
        ns_err e = ns_sigv4_sign(&p, &r, az, sizeof az);
        if (e != NS_OK) {
            printf("ERR %s\n", ns_err_msg());
        } else {
            printf("%s\n", az);
        }
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "sign") == 0) {
        return sign_mode();
    }
    int only_vectors = argc > 1 && strcmp(argv[1], "vectors") == 0;
    if (!only_vectors) {
        unit();
    }
    if (only_vectors) {
        char root[1024];
        snprintf(root, sizeof root, "%s/sigv4", t_vectors());
        suite_original(root);
        suite_c_auth(root);
    }
    T_DONE();
}
