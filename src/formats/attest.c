/*
 * attest: client-side attestation checks (see attest.h). The X.509 work is limited to parsing
 * a certificate and writing its public key as DER, so it reads the same on mbedtls 2.28 and 3.6.
 */
#include "attest.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "mbedtls/pk.h"
#include "mbedtls/x509_crt.h"

#define HEX_ARG_MAX (2 * NS_ATT_FIELD_MAX)

/*
 * AWS Nitro Enclaves root G1: public data from AWS's AWS_NitroEnclaves_Root-G1.zip (zip SHA-256
 * 8cf60e2b2efca96c6a9e71e851d00c1b6991cc09eadbe64a6a1d1b1eb9faff7c), C=US, O=Amazon, OU=AWS,
 * CN=aws.nitro-enclaves, P-384, valid 2019-10-28..2049-10-28, DER SHA-256
 * 641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b.
 */
const char ns_attest_root_g1_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL\n"
    "MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD\n"
    "VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4\n"
    "MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL\n"
    "DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG\n"
    "BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb\n"
    "48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE\n"
    "h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF\n"
    "R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC\n"
    "MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW\n"
    "rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N\n"
    "IwLz3/Y=\n"
    "-----END CERTIFICATE-----\n";

void ns_attest_expect_init(ns_attest_expect *x)
{
    memset(x, 0, sizeof *x);
}

/* Sets PCR idx of one set (pcr, pcr_len, *set) from hex; a second expectation for the same PCR
 * must agree with the first. */
static ns_err set_pcr_of(uint8_t pcr[][NS_ATT_PCR_LEN_MAX], size_t *pcr_len, uint32_t *set,
                         unsigned long idx, const char *hex, size_t hlen, const char *from)
{
    uint8_t v[NS_ATT_PCR_LEN_MAX];
    size_t n = 0;
    ENSURE(idx < NS_ATT_PCR_MAX, NS_E_USAGE, "%s: PCR index %lu out of range (0..%d)", from, idx,
           NS_ATT_PCR_MAX - 1);
    ENSURE(hlen >= 2 && hlen <= 2 * NS_ATT_PCR_LEN_MAX, NS_E_USAGE,
           "%s: PCR%lu must be 2 to %d hex digits, got %zu", from, idx, 2 * NS_ATT_PCR_LEN_MAX,
           hlen);
    if (ns_hex_decode(v, sizeof v, &n, hex, hlen) != NS_OK) {
        BAIL(NS_E_USAGE, "%s: PCR%lu is not valid hex", from, idx);
    }
    if (*set & (1u << idx)) {
        ENSURE(pcr_len[idx] == n && memcmp(pcr[idx], v, n) == 0, NS_E_USAGE,
               "%s: PCR%lu is expected twice with different values", from, idx);
        return NS_OK;
    }
    memcpy(pcr[idx], v, n);
    pcr_len[idx] = n;
    *set |= 1u << idx;
    return NS_OK;
}

static ns_err set_pcr(ns_attest_expect *x, unsigned long idx, const char *hex, size_t hlen,
                      const char *from)
{
    return set_pcr_of(x->pcr, x->pcr_len, &x->pcr_set, idx, hex, hlen, from);
}

/* A decimal index of 1-2 digits without sign or leading zero ("0".."31"). */
static int parse_index(const char *s, size_t n, unsigned long *out)
{
    if (n == 0 || n > 2 || (n == 2 && s[0] == '0')) {
        return 0;
    }
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    *out = v;
    return 1;
}

ns_err ns_attest_expect_pcr(ns_attest_expect *x, const char *spec)
{
    const char *eq = strchr(spec, '=');
    unsigned long idx = 0;
    ENSURE(eq != NULL && parse_index(spec, (size_t)(eq - spec), &idx), NS_E_USAGE,
           "--pcr \"%.80s\": expected N=HEX (N a PCR index 0..%d)", spec, NS_ATT_PCR_MAX - 1);
    GUARD(set_pcr(x, idx, eq + 1, strlen(eq + 1), "--pcr"));
    for (int k = 0; k < x->nalt; k++) {
        ns_attest_pcrs *a = &x->alt[k];
        GUARD(set_pcr_of(a->pcr, a->pcr_len, &a->pcr_set, idx, eq + 1, strlen(eq + 1), "--pcr"));
    }
    return NS_OK;
}

int ns_attest_expect_pins(const ns_attest_expect *x, unsigned idx)
{
    if (idx >= NS_ATT_PCR_MAX || !((x->pcr_set >> idx) & 1u)) {
        return 0;
    }
    for (int k = 0; k < x->nalt; k++) {
        if (!((x->alt[k].pcr_set >> idx) & 1u)) {
            return 0;
        }
    }
    return 1;
}

static ns_err measurements(ns_attest_expect *x, const cJSON *root)
{
    ENSURE(cJSON_IsObject(root), NS_E_PARSE, "measurements: expected a JSON object");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "Measurements");
    ENSURE(cJSON_IsObject(m), NS_E_PARSE,
           "measurements: no \"Measurements\" object (use the JSON `make eif` or "
           "`nitro-cli build-enclave` prints)");
    int npcr = 0;
    for (const cJSON *e = m->child; e; e = e->next) {
        for (const cJSON *o = m->child; o != e; o = o->next) {
            ENSURE(strcmp(o->string, e->string) != 0, NS_E_PARSE,
                   "measurements: duplicate member \"%.40s\"", e->string);
        }
        if (strcmp(e->string, "HashAlgorithm") == 0) {
            ENSURE(cJSON_IsString(e) && strncmp(e->valuestring, "Sha384", 6) == 0, NS_E_UNSUPPORTED,
                   "measurements: HashAlgorithm must be Sha384");
            continue;
        }
        unsigned long idx = 0;
        ENSURE(strncmp(e->string, "PCR", 3) == 0 &&
                   parse_index(e->string + 3, strlen(e->string + 3), &idx),
               NS_E_PARSE, "measurements: unknown member \"%.40s\" (expected HashAlgorithm, PCRn)",
               e->string);
        ENSURE(cJSON_IsString(e), NS_E_PARSE, "measurements: %s must be a hex string", e->string);
        GUARD(set_pcr(x, idx, e->valuestring, strlen(e->valuestring), "measurements"));
        npcr++;
    }
    ENSURE(npcr > 0, NS_E_PARSE, "measurements: no PCRn member: nothing to check");
    return NS_OK;
}

ns_err ns_attest_expect_measurements(ns_attest_expect *x, const uint8_t *json, size_t len)
{
    ENSURE(len <= NS_ATTEST_MEASUREMENTS_MAX, NS_E_TOO_BIG, "measurements: %zu bytes (max %u)", len,
           NS_ATTEST_MEASUREMENTS_MAX);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)json, len, &end, 0);
    if (root == NULL) {
        size_t off = end ? (size_t)(end - (const char *)json) : 0;
        BAIL(NS_E_PARSE, "measurements: not valid JSON (near byte %zu)", off);
    }
    ns_err rc = measurements(x, root);
    cJSON_Delete(root);
    return rc;
}

ns_err ns_attest_expect_alt(ns_attest_expect *x, const uint8_t *json, size_t len)
{
    if (x->pcr_set == 0) {
        return ns_attest_expect_measurements(x, json, len);
    }
    ENSURE(x->nalt < NS_ATTEST_ALT_MAX, NS_E_USAGE,
           "measurements: at most %d sets of PCRs (one per image in a rolling upgrade)",
           NS_ATTEST_ALT_MAX + 1);
    ns_attest_expect *t = calloc(1, sizeof *t);
    ENSURE(t != NULL, NS_E_NOMEM, "measurements: out of memory");
    ns_err e = ns_attest_expect_measurements(t, json, len);
    if (e == NS_OK) {
        ns_attest_pcrs *a = &x->alt[x->nalt++];
        memcpy(a->pcr, t->pcr, sizeof a->pcr);
        memcpy(a->pcr_len, t->pcr_len, sizeof a->pcr_len);
        a->pcr_set = t->pcr_set;
    }
    free(t);
    return e;
}

ns_err ns_attest_expect_hex(ns_attest_field *f, const char *hex, const char *what)
{
    size_t hl = strlen(hex);
    ENSURE(hl <= HEX_ARG_MAX, NS_E_USAGE, "%s: at most %d bytes (%d hex digits)", what,
           NS_ATT_FIELD_MAX, HEX_ARG_MAX);
    if (ns_hex_decode(f->val, sizeof f->val, &f->len, hex, hl) != NS_OK) {
        BAIL(NS_E_USAGE, "%s: not valid hex (an even number of 0-9 a-f digits)", what);
    }
    f->set = 1;
    return NS_OK;
}

/* Parses PEM (NUL-terminated copy) or DER into crt. */
static ns_err parse_cert(mbedtls_x509_crt *crt, const uint8_t *p, size_t n)
{
    ENSURE(n > 0 && n <= NS_ATTEST_CERT_MAX, NS_E_PARSE, "certificate: %zu bytes (1..%u)", n,
           NS_ATTEST_CERT_MAX);
    int ret;
    if (n > 10 && memmem(p, n, "-----BEGIN", 10) != NULL) {
        ns_buf z;
        ns_buf_init(&z, NS_ATTEST_CERT_MAX + 1);
        if (ns_buf_append(&z, p, n) != NS_OK || ns_buf_append_u8(&z, 0) != NS_OK) {
            ns_buf_free(&z);
            BAIL(NS_E_NOMEM, "certificate: out of memory");
        }
        ret = mbedtls_x509_crt_parse(crt, z.data, z.len);
        ns_buf_free(&z);
    } else {
        ret = mbedtls_x509_crt_parse_der(crt, p, n);
    }
    ENSURE(ret == 0, NS_E_PARSE, "certificate: not a valid X.509 certificate (PEM or DER)");
    return NS_OK;
}

ns_err ns_attest_spki_of_cert(uint8_t *out, size_t cap, size_t *len, const uint8_t *cert,
                              size_t cert_len)
{
    mbedtls_x509_crt crt;
    uint8_t tmp[NS_ATTEST_SPKI_MAX + 600]; /* RSA-4096 SPKI is 550 bytes */
    mbedtls_x509_crt_init(&crt);
    ns_err rc = parse_cert(&crt, cert, cert_len);
    if (rc == NS_OK) {
        /* mbedtls writes DER backwards from the end of the buffer. */
        int n = mbedtls_pk_write_pubkey_der(&crt.pk, tmp, sizeof tmp);
        if (n <= 0 || (size_t)n > cap) {
            rc = ns_fail(NS_E_UNSUPPORTED, "certificate: cannot write its public key as DER");
        } else {
            memcpy(out, tmp + sizeof tmp - (size_t)n, (size_t)n);
            *len = (size_t)n;
        }
    }
    mbedtls_x509_crt_free(&crt);
    return rc;
}

ns_err ns_attest_cert_der(ns_buf *out, const uint8_t *pem, size_t len)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    ns_err rc = parse_cert(&crt, pem, len);
    if (rc == NS_OK) {
        rc = ns_buf_append(out, crt.raw.p, crt.raw.len);
    }
    mbedtls_x509_crt_free(&crt);
    return rc;
}

static int is_b64_space(uint8_t c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

ns_err ns_attest_decode_input(ns_buf *doc, const uint8_t *p, size_t n)
{
    ENSURE(n > 0, NS_E_PARSE, "attestation document: the input is empty");
    if (p[0] == 0x84 || p[0] == 0xd2) { /* CBOR array(4) or tag 18: raw COSE_Sign1 */
        ENSURE(n <= NS_ATT_DOC_MAX, NS_E_TOO_BIG, "attestation document: %zu bytes (max %d)", n,
               NS_ATT_DOC_MAX);
        return ns_buf_append(doc, p, n);
    }
    /* base64 (standard or URL alphabet, padded or not), line breaks allowed */
    ENSURE(n <= 2 * NS_ATT_DOC_MAX, NS_E_TOO_BIG,
           "attestation document: %zu bytes of base64 (max %d)", n, 2 * NS_ATT_DOC_MAX);
    char tmp[2 * NS_ATT_DOC_MAX];
    size_t k = 0;
    int url = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_b64_space(p[i])) {
            continue;
        }
        url |= p[i] == '-' || p[i] == '_';
        tmp[k++] = (char)p[i];
    }
    size_t got = 0;
    GUARD(ns_buf_reserve(doc, ns_b64_dec_max(k)));
    if (ns_b64_decode(doc->data + doc->len, ns_b64_dec_max(k), &got, tmp, k,
                      url ? NS_B64_URL : 0) != NS_OK) {
        BAIL(NS_E_PARSE, "attestation document: neither raw COSE_Sign1 (CBOR) nor base64");
    }
    ENSURE(got > 0 && (doc->data[doc->len] == 0x84 || doc->data[doc->len] == 0xd2), NS_E_PARSE,
           "attestation document: the base64 does not hold a COSE_Sign1 (CBOR array)");
    doc->len += got;
    return NS_OK;
}

static void hex_short(char *out, size_t cap, const uint8_t *p, size_t n)
{
    size_t show = n > 16 ? 16 : n;
    if (ns_hex_encode(out, cap, p, show) != NS_OK) {
        out[0] = 0;
        return;
    }
    if (show < n && strlen(out) + 4 < cap) {
        strcat(out, "...");
    }
}

static ns_err check_field(const ns_att_bytes *got, const ns_attest_field *want, const char *name)
{
    if (!want->set) {
        return NS_OK;
    }
    char a[40], b[40];
    ENSURE(got->present, NS_E_AUTH,
           "check %s failed: the document's %s is null, expected %zu bytes", name, name, want->len);
    hex_short(a, sizeof a, got->p, got->len);
    hex_short(b, sizeof b, want->val, want->len);
    ENSURE(got->len == want->len && memcmp(got->p, want->val, want->len) == 0, NS_E_AUTH,
           "check %s failed: the document has %zu bytes %s, expected %zu bytes %s", name, got->len,
           a, want->len, b);
    return NS_OK;
}

/* One set of PCRs against the document. */
static ns_err check_pcrs(const ns_att_doc *d, const uint8_t (*pcr)[NS_ATT_PCR_LEN_MAX],
                         const size_t *pcr_len, uint32_t pcr_set)
{
    for (unsigned i = 0; i < NS_ATT_PCR_MAX; i++) {
        if (!(pcr_set & (1u << i))) {
            continue;
        }
        const ns_att_bytes *g = &d->pcr[i];
        char a[40], b[40];
        ENSURE(i < d->npcr && g->present, NS_E_AUTH,
               "check pcr%u failed: the document has no PCR%u", i, i);
        hex_short(a, sizeof a, g->p, g->len);
        hex_short(b, sizeof b, pcr[i], pcr_len[i]);
        ENSURE(g->len == pcr_len[i] && memcmp(g->p, pcr[i], g->len) == 0, NS_E_AUTH,
               "check pcr%u failed: the document has %s, expected %s%s", i, a, b,
               i <= 2 && g->len > 0 && g->p[0] == 0 && memcmp(g->p, g->p + 1, g->len - 1) == 0
                   ? " (all zero: a debug-mode enclave)"
                   : "");
    }
    return NS_OK;
}

ns_err ns_attest_check(const ns_att_doc *d, const ns_attest_expect *x)
{
    ns_err e = check_pcrs(d, x->pcr, x->pcr_len, x->pcr_set);
    if (e != NS_OK && x->nalt > 0) {
        char first[256];
        snprintf(first, sizeof first, "%s", ns_err_msg());
        for (int k = 0; k < x->nalt && e != NS_OK; k++) {
            e = check_pcrs(d, x->alt[k].pcr, x->alt[k].pcr_len, x->alt[k].pcr_set);
        }
        ENSURE(e == NS_OK, NS_E_AUTH, "%s, and no other accepted set of PCRs (%d more) matches",
               first, x->nalt);
    }
    GUARD(e);
    GUARD(check_field(&d->nonce, &x->nonce, "nonce"));
    GUARD(check_field(&d->user_data, &x->user_data, "user_data"));
    GUARD(check_field(&d->public_key, &x->public_key, "public_key"));
    return NS_OK;
}

ns_err ns_attest_verify(ns_att_doc *d, const uint8_t *doc, size_t n, const uint8_t *root_der,
                        size_t root_len, const ns_attest_expect *x)
{
    ns_buf root;
    ns_buf_init(&root, NS_ATTEST_CERT_MAX);
    if (root_der == NULL) {
        ns_err e = ns_attest_cert_der(&root, (const uint8_t *)ns_attest_root_g1_pem,
                                      sizeof ns_attest_root_g1_pem - 1);
        if (e != NS_OK) {
            ns_buf_free(&root);
            return ns_fail_ctx(e, "the embedded AWS Nitro Enclaves root");
        }
        root_der = root.data;
        root_len = root.len;
    }
    /* Named checks: parse, then the signature by the leaf, then the chain (ns_att_verify checks
     * the signature again; one more ECDSA verification buys an error that names the check). */
    ns_cose_sign1 s;
    ns_err e = ns_cose_sign1_parse(&s, doc, n);
    if (e == NS_OK) {
        e = ns_att_doc_parse(d, s.payload, s.payload_len);
    }
    if (e != NS_OK) {
        ns_buf_free(&root);
        return ns_fail_ctx(e, "check parse failed");
    }
    e = ns_cose_sign1_verify(&s, d->certificate.p, d->certificate.len);
    if (e != NS_OK) {
        ns_buf_free(&root);
        return ns_fail_ctx(e, "check signature failed");
    }
    e = ns_att_verify(d, doc, n, root_der, root_len);
    ns_buf_free(&root);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "check chain failed");
    }
    return x ? ns_attest_check(d, x) : NS_OK;
}

static ns_err put_hex(ns_buf *b, const ns_att_bytes *f)
{
    if (!f->present) {
        return ns_buf_append_str(b, "null");
    }
    GUARD(ns_buf_append_u8(b, '"'));
    GUARD(ns_buf_reserve(b, 2 * f->len + 1));
    GUARD(ns_hex_encode((char *)b->data + b->len, 2 * f->len + 1, f->p, f->len));
    b->len += 2 * f->len;
    return ns_buf_append_u8(b, '"');
}

static ns_err put_b64(ns_buf *b, const ns_att_bytes *f)
{
    size_t el = ns_b64_enc_len(f->len, NS_B64_PAD);
    GUARD(ns_buf_append_u8(b, '"'));
    GUARD(ns_buf_reserve(b, el + 1));
    GUARD(ns_b64_encode((char *)b->data + b->len, el + 1, f->p, f->len, NS_B64_PAD));
    b->len += el;
    return ns_buf_append_u8(b, '"');
}

ns_err ns_attest_doc_json(ns_buf *b, const ns_att_doc *d)
{
    time_t secs = (time_t)(d->timestamp / 1000);
    struct tm tm;
    char when[40] = "";
    if (gmtime_r(&secs, &tm) != NULL) {
        snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned)(d->timestamp % 1000));
    }
    GUARD(ns_buf_append_str(b, "{\"module_id\":"));
    GUARD(ns_buf_append_json_str(b, (const char *)d->module_id.p, d->module_id.len));
    GUARD(ns_buf_append_str(b, ",\"digest\":"));
    GUARD(ns_buf_append_json_str(b, (const char *)d->digest.p, d->digest.len));
    GUARD(ns_buf_printf(b, ",\"timestamp\":%llu,\"time\":\"%s\",\"pcrs\":{",
                        (unsigned long long)d->timestamp, when));
    int first = 1;
    for (size_t i = 0; i < d->npcr; i++) {
        if (d->pcr[i].present) {
            GUARD(ns_buf_printf(b, "%s\"%zu\":", first ? "" : ",", i));
            GUARD(put_hex(b, &d->pcr[i]));
            first = 0;
        }
    }
    GUARD(ns_buf_append_str(b, "},\"certificate\":"));
    GUARD(put_b64(b, &d->certificate));
    GUARD(ns_buf_append_str(b, ",\"cabundle\":["));
    for (size_t i = 0; i < d->ncabundle; i++) {
        if (i > 0) {
            GUARD(ns_buf_append_u8(b, ','));
        }
        GUARD(put_b64(b, &d->cabundle[i]));
    }
    GUARD(ns_buf_append_u8(b, ']'));
    GUARD(ns_buf_append_str(b, ",\"public_key\":"));
    GUARD(put_hex(b, &d->public_key));
    GUARD(ns_buf_append_str(b, ",\"user_data\":"));
    GUARD(put_hex(b, &d->user_data));
    GUARD(ns_buf_append_str(b, ",\"nonce\":"));
    GUARD(put_hex(b, &d->nonce));
    return ns_buf_append_str(b, "}\n");
}
