/*
 * cose: COSE_Sign1 / Nitro attestation document parsing and verification (see cose.h).
 * The parsers read the schema in order with the bounded CBOR reader; map keys are looked up by
 * name, unknown keys are skipped, and no map may hold a key twice (known or not, null or not).
 * Verification uses mbedtls X.509 and ECDSA; certificate validity is judged at the document's
 * timestamp, not the wall clock.
 */
#include "cose.h"

#include <string.h>
#include <time.h>

#include "buf.h"
#include "cbor.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/psa_util.h"
#include "mbedtls/sha512.h"
#include "mbedtls/x509_crt.h"

#define COSE_SIGN1_TAG 18
#define COSE_ALG_ES384 (-35)
#define SIG_STRUCTURE_MAX (NS_ATT_DOC_MAX + 64)

ns_err ns_cose_sign1_parse(ns_cose_sign1 *s, const uint8_t *p, size_t n)
{
    memset(s, 0, sizeof *s);
    ENSURE(n <= NS_ATT_DOC_MAX, NS_E_TOO_BIG, "cose: document of %zu bytes exceeds %d", n,
           NS_ATT_DOC_MAX);
    ns_cur c;
    ns_cbor_item it;
    ns_cur_init(&c, p, n);
    GUARD(ns_cbor_head(&c, &it));
    if (it.major == NS_CBOR_TAG) {
        ENSURE(it.val == COSE_SIGN1_TAG, NS_E_PARSE, "cose: tag %llu is not COSE_Sign1 (18)",
               (unsigned long long)it.val);
        GUARD(ns_cbor_head(&c, &it));
    }
    ENSURE(it.major == NS_CBOR_ARRAY && it.val == 4, NS_E_PARSE,
           "cose: COSE_Sign1 must be an array of 4 items");
    GUARD(ns_cbor_expect(&c, NS_CBOR_BSTR, &it, "COSE protected header"));
    s->protected_hdr = it.data;
    s->protected_len = (size_t)it.val;
    {
        /* protected = {1: -35} and nothing else we do not understand. */
        ns_cur h;
        ns_cbor_item m, k, v;
        ns_cbor_keys ks;
        int alg_seen = 0;
        ns_cur_init(&h, s->protected_hdr, s->protected_len);
        GUARD(ns_cbor_expect(&h, NS_CBOR_MAP, &m, "COSE protected header"));
        GUARD(ns_cbor_keys_init(&ks, m.val, "the COSE protected header"));
        for (uint64_t i = 0; i < m.val; i++) {
            GUARD(ns_cbor_head(&h, &k));
            /* A COSE label is an integer or a text string (RFC 9052 1.4). */
            ENSURE(k.major == NS_CBOR_UINT || k.major == NS_CBOR_NINT || k.major == NS_CBOR_TSTR,
                   NS_E_PARSE, "cose: a protected header label is not an integer or text");
            GUARD(ns_cbor_keys_add(&ks, &h, k.start, "the COSE protected header"));
            if (k.major == NS_CBOR_UINT && k.val == 1) {
                GUARD(ns_cbor_head(&h, &v));
                /* -1 - v.val is the CBOR negative integer: 34 is -35 (ES384), 0 is -1 */
                ENSURE(!alg_seen && v.major == NS_CBOR_NINT &&
                           (v.val == (uint64_t)(-1 - COSE_ALG_ES384) || v.val == 0),
                       NS_E_UNSUPPORTED,
                       "cose: algorithm is not ES384 (-35) (nor QEMU's unsigned -1)");
                s->unsigned_alg = v.val == 0;
                alg_seen = 1;
            } else {
                ENSURE(!(k.major == NS_CBOR_UINT && k.val == 2), NS_E_UNSUPPORTED,
                       "cose: critical header parameters are not supported");
                GUARD(ns_cbor_skip(&h));
            }
        }
        ENSURE(alg_seen && ns_cur_left(&h) == 0, NS_E_PARSE,
               "cose: protected header lacks alg or has trailing bytes");
    }
    /* unprotected: a map (NSM: empty) or null (seen in a synthetic sample); ignored. */
    GUARD(ns_cbor_head(&c, &it));
    if (it.major == NS_CBOR_MAP) {
        for (uint64_t i = 0; i < 2 * it.val; i++) {
            GUARD(ns_cbor_skip(&c));
        }
    } else {
        ENSURE(it.major == NS_CBOR_SIMPLE && it.ai == NS_CBOR_NULL, NS_E_PARSE,
               "cose: unprotected header must be a map");
    }
    GUARD(ns_cbor_expect(&c, NS_CBOR_BSTR, &it, "COSE payload"));
    s->payload = it.data;
    s->payload_len = (size_t)it.val;
    GUARD(ns_cbor_expect(&c, NS_CBOR_BSTR, &it, "COSE signature"));
    s->sig = it.data;
    s->sig_len = (size_t)it.val;
    /* Its length is checked where it is verified: QEMU's emulated NSM (nitro-enclave machine)
     * puts 64 zero bytes here, and such a document must still parse (kms-decrypt reads its
     * public_key) while never verifying. */
    ENSURE(ns_cur_left(&c) == 0, NS_E_PARSE, "cose: %zu trailing bytes after COSE_Sign1",
           ns_cur_left(&c));
    return NS_OK;
}

/* SHA-384 of Sig_structure = ["Signature1", protected, h'', payload]. */
static ns_err sig_structure_hash(const ns_cose_sign1 *s, uint8_t hash[64])
{
    ns_buf b;
    ns_err rc;
    ns_buf_init(&b, SIG_STRUCTURE_MAX);
    GUARD_GOTO(ns_cbor_put_head(&b, NS_CBOR_ARRAY, 4), rc, out);
    GUARD_GOTO(ns_cbor_put_tstr(&b, "Signature1"), rc, out);
    GUARD_GOTO(ns_cbor_put_bstr(&b, s->protected_hdr, s->protected_len), rc, out);
    GUARD_GOTO(ns_cbor_put_bstr(&b, NULL, 0), rc, out);
    GUARD_GOTO(ns_cbor_put_bstr(&b, s->payload, s->payload_len), rc, out);
    rc = mbedtls_sha512(b.data, b.len, hash, 1) == 0
             ? NS_OK
             : ns_fail(NS_E_CRYPTO, "cose: SHA-384 failed");
out:
    ns_buf_free(&b);
    return rc;
}

ns_err ns_cose_sign1_verify(const ns_cose_sign1 *s, const uint8_t *cert_der, size_t cert_len)
{
    uint8_t hash[64]; /* SHA-384 uses the first 48 bytes; mbedtls_sha512 writes 64 */
    uint8_t der[MBEDTLS_ECDSA_MAX_SIG_LEN(384)];
    size_t der_len = 0;
    mbedtls_x509_crt crt;
    ns_err rc = NS_OK;
    ENSURE(!s->unsigned_alg, NS_E_AUTH,
           "cose: the document is unsigned (alg -1: QEMU's emulated NSM), nothing to verify");
    ENSURE(s->sig_len == NS_COSE_ES384_SIG_LEN, NS_E_AUTH,
           "cose: an ES384 signature is %d bytes, this one %zu (an unsigned emulator document?)",
           NS_COSE_ES384_SIG_LEN, s->sig_len);
    GUARD(sig_structure_hash(s, hash));
    mbedtls_x509_crt_init(&crt);
    if (mbedtls_x509_crt_parse_der(&crt, cert_der, cert_len) != 0) {
        rc = ns_fail(NS_E_PARSE, "cose: the signing certificate is not valid DER X.509");
        goto out;
    }
    if (!mbedtls_pk_can_do(&crt.pk, MBEDTLS_PK_ECDSA) ||
        mbedtls_ecp_keypair_get_group_id(mbedtls_pk_ec(crt.pk)) != MBEDTLS_ECP_DP_SECP384R1) {
        rc = ns_fail(NS_E_UNSUPPORTED, "cose: the signing certificate key is not P-384");
        goto out;
    }
    if (mbedtls_ecdsa_raw_to_der(384, s->sig, 96, der, sizeof der, &der_len) != 0) {
        rc = ns_fail(NS_E_PARSE, "cose: the ES384 signature is not two 48-byte integers");
        goto out;
    }
    if (mbedtls_pk_verify(&crt.pk, MBEDTLS_MD_SHA384, hash, 48, der, der_len) != 0) {
        rc = ns_fail(NS_E_AUTH, "cose: the ES384 signature does not verify with the "
                                "document's certificate");
    }
out:
    mbedtls_x509_crt_free(&crt);
    return rc;
}

static ns_err bytes_field(ns_cur *c, ns_att_bytes *f, int nullable, size_t max, const char *name)
{
    int is_null = 0;
    ENSURE(!f->present, NS_E_PARSE, "attestation document: duplicate field %s", name);
    GUARD(ns_cbor_bstr_or_null(c, &f->p, &f->len, &is_null, name));
    ENSURE(nullable || !is_null, NS_E_PARSE, "attestation document: %s is null", name);
    ENSURE(f->len <= max, NS_E_TOO_BIG, "attestation document: %s is %zu bytes (max %zu)", name,
           f->len, max);
    f->present = !is_null;
    return NS_OK;
}

static ns_err text_field(ns_cur *c, ns_att_bytes *f, const char *name)
{
    ns_cbor_item it;
    ENSURE(!f->present, NS_E_PARSE, "attestation document: duplicate field %s", name);
    GUARD(ns_cbor_expect(c, NS_CBOR_TSTR, &it, name));
    f->p = it.data;
    f->len = (size_t)it.val;
    f->present = 1;
    return NS_OK;
}

ns_err ns_att_doc_parse(ns_att_doc *d, const uint8_t *payload, size_t n)
{
    ns_cur c;
    ns_cbor_item m, k, it;
    ns_cbor_keys ks, pks;
    int have_ts = 0, have_pcrs = 0, have_cab = 0;
    memset(d, 0, sizeof *d);
    ns_cur_init(&c, payload, n);
    GUARD(ns_cbor_expect(&c, NS_CBOR_MAP, &m, "attestation document"));
    /* Every key at most once, whatever its value: a field first null then set (public_key,
     * user_data, nonce) would otherwise take the second value. */
    GUARD(ns_cbor_keys_init(&ks, m.val, "the attestation document"));
    for (uint64_t i = 0; i < m.val; i++) {
        GUARD(ns_cbor_expect(&c, NS_CBOR_TSTR, &k, "attestation document key"));
        GUARD(ns_cbor_keys_add(&ks, &c, k.start, "the attestation document"));
        if (ns_cbor_tstr_eq(&k, "module_id")) {
            GUARD(text_field(&c, &d->module_id, "module_id"));
        } else if (ns_cbor_tstr_eq(&k, "digest")) {
            GUARD(text_field(&c, &d->digest, "digest"));
        } else if (ns_cbor_tstr_eq(&k, "timestamp")) {
            ENSURE(!have_ts, NS_E_PARSE, "attestation document: duplicate timestamp");
            GUARD(ns_cbor_expect(&c, NS_CBOR_UINT, &it, "timestamp"));
            d->timestamp = it.val;
            have_ts = 1;
        } else if (ns_cbor_tstr_eq(&k, "pcrs")) {
            ENSURE(!have_pcrs, NS_E_PARSE, "attestation document: duplicate pcrs");
            GUARD(ns_cbor_expect(&c, NS_CBOR_MAP, &it, "pcrs"));
            ENSURE(it.val <= NS_ATT_PCR_MAX, NS_E_TOO_BIG,
                   "attestation document: %llu PCRs "
                   "(max %d)",
                   (unsigned long long)it.val, NS_ATT_PCR_MAX);
            GUARD(ns_cbor_keys_init(&pks, it.val, "the attestation document's pcrs"));
            for (uint64_t j = 0; j < it.val; j++) {
                ns_cbor_item idx;
                GUARD(ns_cbor_expect(&c, NS_CBOR_UINT, &idx, "PCR index"));
                GUARD(ns_cbor_keys_add(&pks, &c, idx.start, "the attestation document's pcrs"));
                ENSURE(idx.val < NS_ATT_PCR_MAX, NS_E_PARSE,
                       "attestation document: PCR "
                       "index %llu out of range",
                       (unsigned long long)idx.val);
                GUARD(bytes_field(&c, &d->pcr[idx.val], 0, NS_ATT_PCR_LEN_MAX, "PCR"));
                if (idx.val + 1 > d->npcr) {
                    d->npcr = (size_t)idx.val + 1;
                }
            }
            have_pcrs = 1;
        } else if (ns_cbor_tstr_eq(&k, "certificate")) {
            GUARD(bytes_field(&c, &d->certificate, 0, NS_ATT_DOC_MAX, "certificate"));
        } else if (ns_cbor_tstr_eq(&k, "cabundle")) {
            ENSURE(!have_cab, NS_E_PARSE, "attestation document: duplicate cabundle");
            GUARD(ns_cbor_head(&c, &it));
            if (!(it.major == NS_CBOR_SIMPLE && it.ai == NS_CBOR_NULL)) {
                ENSURE(it.major == NS_CBOR_ARRAY, NS_E_PARSE,
                       "attestation document: cabundle is not an array");
                ENSURE(it.val <= NS_ATT_CABUNDLE_MAX, NS_E_TOO_BIG,
                       "attestation document: "
                       "cabundle has %llu certificates (max %d)",
                       (unsigned long long)it.val, NS_ATT_CABUNDLE_MAX);
                for (uint64_t j = 0; j < it.val; j++) {
                    GUARD(bytes_field(&c, &d->cabundle[j], 0, NS_ATT_DOC_MAX, "cabundle entry"));
                }
                d->ncabundle = (size_t)it.val;
            }
            have_cab = 1;
        } else if (ns_cbor_tstr_eq(&k, "public_key")) {
            GUARD(bytes_field(&c, &d->public_key, 1, NS_ATT_FIELD_MAX, "public_key"));
        } else if (ns_cbor_tstr_eq(&k, "user_data")) {
            GUARD(bytes_field(&c, &d->user_data, 1, NS_ATT_FIELD_MAX, "user_data"));
        } else if (ns_cbor_tstr_eq(&k, "nonce")) {
            GUARD(bytes_field(&c, &d->nonce, 1, NS_ATT_FIELD_MAX, "nonce"));
        } else {
            GUARD(ns_cbor_skip(&c));
        }
    }
    ENSURE(ns_cur_left(&c) == 0, NS_E_PARSE, "attestation document: trailing bytes");
    ENSURE(d->module_id.present && have_ts && have_pcrs && d->certificate.present && have_cab,
           NS_E_PARSE,
           "attestation document: a required field (module_id, timestamp, pcrs, "
           "certificate, cabundle) is missing");
    ENSURE(d->digest.present && d->digest.len == 6 && memcmp(d->digest.p, "SHA384", 6) == 0,
           NS_E_UNSUPPORTED, "attestation document: digest is not SHA384");
    return NS_OK;
}

static int64_t x509_time_epoch(const mbedtls_x509_time *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = t->year - 1900;
    tm.tm_mon = t->mon - 1;
    tm.tm_mday = t->day;
    tm.tm_hour = t->hour;
    tm.tm_min = t->min;
    tm.tm_sec = t->sec;
    return (int64_t)timegm(&tm);
}

typedef struct {
    int64_t at; /* seconds since the epoch */
    int out_of_validity;
} verify_ctx;

/* Judge validity at the document time instead of now: old documents are still checkable. */
static int verify_cb(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    verify_ctx *v = p;
    (void)depth;
    *flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
    if (v->at < x509_time_epoch(&crt->valid_from) || v->at > x509_time_epoch(&crt->valid_to)) {
        v->out_of_validity = 1;
        *flags |= MBEDTLS_X509_BADCERT_EXPIRED;
    }
    return 0;
}

ns_err ns_att_verify(ns_att_doc *d, const uint8_t *cose, size_t n, const uint8_t *root_der,
                     size_t root_len)
{
    ns_cose_sign1 s;
    mbedtls_x509_crt chain, root, cab0;
    ns_err rc = NS_OK;
    GUARD(ns_cose_sign1_parse(&s, cose, n));
    GUARD(ns_att_doc_parse(d, s.payload, s.payload_len));
    ENSURE(d->ncabundle >= 1, NS_E_AUTH,
           "attestation document has no cabundle: it cannot "
           "chain to a trusted root");
    mbedtls_x509_crt_init(&chain);
    mbedtls_x509_crt_init(&root);
    mbedtls_x509_crt_init(&cab0);
    if (mbedtls_x509_crt_parse_der(&root, root_der, root_len) != 0) {
        rc = ns_fail(NS_E_PARSE, "attestation: the trusted root is not valid DER X.509");
        goto out;
    }
    /* cabundle[0] is the root itself: it is parsed like every entry and must be the trusted
     * root, so a document cannot carry an unchecked blob there. */
    if (mbedtls_x509_crt_parse_der(&cab0, d->cabundle[0].p, d->cabundle[0].len) != 0) {
        rc = ns_fail(NS_E_PARSE, "attestation: cabundle[0] is not valid DER X.509");
        goto out;
    }
    if (cab0.raw.len != root.raw.len || memcmp(cab0.raw.p, root.raw.p, root.raw.len) != 0) {
        rc = ns_fail(NS_E_AUTH, "attestation: cabundle[0] is not the trusted root (a document "
                                "from another root, or an edited bundle)");
        goto out;
    }
    /* chain = leaf, then cabundle from the instance CA up. */
    if (mbedtls_x509_crt_parse_der(&chain, d->certificate.p, d->certificate.len) != 0) {
        rc = ns_fail(NS_E_PARSE, "attestation: the leaf certificate is not valid DER X.509");
        goto out;
    }
    for (size_t i = d->ncabundle; i-- > 1;) {
        if (mbedtls_x509_crt_parse_der(&chain, d->cabundle[i].p, d->cabundle[i].len) != 0) {
            rc = ns_fail(NS_E_PARSE, "attestation: cabundle[%zu] is not valid DER X.509", i);
            goto out;
        }
    }
    /* Timestamps are ms since the epoch (the NSM's unit). */
    verify_ctx v = {(int64_t)(d->timestamp / 1000), 0};
    uint32_t flags = 0;
    int ret = mbedtls_x509_crt_verify(&chain, &root, NULL, NULL, &flags, verify_cb, &v);
    if (ret != 0 || flags != 0) {
        char info[256];
        if (mbedtls_x509_crt_verify_info(info, sizeof info, "", flags) < 0) {
            info[0] = 0;
        }
        for (char *q = info; *q; q++) {
            if (*q == '\n') {
                *q = (q[1] ? ';' : 0);
            }
        }
        rc = ns_fail(NS_E_AUTH,
                     "attestation: the certificate chain does not verify against "
                     "the trusted root%s: %s",
                     v.out_of_validity ? " at the document time" : "", info);
        goto out;
    }
    GUARD_GOTO(ns_cose_sign1_verify(&s, d->certificate.p, d->certificate.len), rc, out);
out:
    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&root);
    mbedtls_x509_crt_free(&cab0);
    return rc;
}
