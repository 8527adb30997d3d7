/*
 * cms: BER EnvelopedData walker and decryptor for KMS CiphertextForRecipient (see cms.h).
 *
 * A container is read through a ber_cont: a definite-length one gets its own sub-cursor and
 * must be consumed exactly; an indefinite one shares its parent's cursor and ends at 00 00.
 * Every element the schema does not name is rejected, except unprotectedAttrs, which is skipped
 * with an explicit depth counter.
 */
#include "cms.h"

#include <stdlib.h>
#include <string.h>

#include "mbedtls/cipher.h"
#include "mbedtls/pk.h"
#include "mbedtls/rsa.h"
#include "rng.h"
#include "secret.h"

#define CMS_CEK_LEN 32
#define CMS_STAGE 4096 /* plaintext staging: decrypted in slices this size */

struct ns_cms_key {
    mbedtls_pk_context pk;
};

/* DER OID contents. */
static const uint8_t OID_ENVELOPED[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03};
static const uint8_t OID_DATA[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};
static const uint8_t OID_RSAES_OAEP[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07};
static const uint8_t OID_MGF1[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08};
static const uint8_t OID_PSPECIFIED[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09};
static const uint8_t OID_SHA256[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
static const uint8_t OID_AES256_CBC[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a};

/* ------------------------------------------------------------------------------------------ */
/* BER walking */

typedef struct {
    uint8_t tag; /* the whole identifier octet (class, constructed bit, number) */
    int indef;
    size_t len; /* definite only */
    size_t start;
} ber_hdr;

typedef struct {
    ns_cur *c;
    ns_cur sub;
    int indef;
} ber_cont;

static ns_err ber_hdr_read(ns_cur *c, ber_hdr *h)
{
    uint8_t b;
    h->start = c->pos;
    GUARD(ns_cur_u8(c, &h->tag));
    ENSURE((h->tag & 0x1f) != 0x1f, NS_E_UNSUPPORTED, "cms: multi-byte tag at offset %zu",
           h->start);
    GUARD(ns_cur_u8(c, &b));
    h->indef = 0;
    if (b < 0x80) {
        h->len = b;
    } else if (b == 0x80) {
        ENSURE(h->tag & 0x20, NS_E_PARSE,
               "cms: indefinite length on a primitive element at "
               "offset %zu",
               h->start);
        h->indef = 1;
        h->len = 0;
        return NS_OK;
    } else {
        unsigned nb = b & 0x7f;
        ENSURE(nb <= 4, NS_E_TOO_BIG, "cms: length of %u bytes at offset %zu", nb, h->start);
        size_t len = 0;
        for (unsigned i = 0; i < nb; i++) {
            GUARD(ns_cur_u8(c, &b));
            len = (len << 8) | b;
        }
        h->len = len;
    }
    ENSURE(h->len <= ns_cur_left(c), NS_E_TRUNCATED,
           "cms: element at offset %zu claims %zu "
           "bytes, %zu left",
           h->start, h->len, ns_cur_left(c));
    return NS_OK;
}

static ns_err ber_enter_cur(ns_cur *c, uint8_t tag, ber_cont *k, const char *what)
{
    ber_hdr h;
    GUARD(ber_hdr_read(c, &h));
    ENSURE(h.tag == tag, NS_E_PARSE, "cms: %s: expected tag 0x%02x, got 0x%02x at offset %zu", what,
           tag, h.tag, h.start);
    ENSURE(tag & 0x20, NS_E_INTERNAL, "cms: %s is not constructed", what);
    k->indef = h.indef;
    if (h.indef) {
        k->c = c;
    } else {
        GUARD(ns_cur_sub(c, &k->sub, h.len));
        k->c = &k->sub;
    }
    return NS_OK;
}

static ns_err ber_enter(ber_cont *parent, uint8_t tag, ber_cont *k, const char *what)
{
    return ber_enter_cur(parent->c, tag, k, what);
}

static int ber_at_end(const ber_cont *k)
{
    if (!k->indef) {
        return ns_cur_left(k->c) == 0;
    }
    return ns_cur_left(k->c) >= 2 && k->c->p[k->c->pos] == 0 && k->c->p[k->c->pos + 1] == 0;
}

/* Whether the container has another element and its identifier octet is tag. */
static int ber_next_is(const ber_cont *k, uint8_t tag)
{
    return !ber_at_end(k) && ns_cur_left(k->c) > 0 && k->c->p[k->c->pos] == tag;
}

static ns_err ber_leave(ber_cont *k, const char *what)
{
    ENSURE(ber_at_end(k), NS_E_PARSE, "cms: %s: unexpected element at offset %zu", what, k->c->pos);
    if (k->indef) {
        GUARD(ns_cur_skip(k->c, 2));
    }
    return NS_OK;
}

static ns_err ber_prim(ber_cont *k, uint8_t tag, const uint8_t **p, size_t *n, const char *what)
{
    ber_hdr h;
    GUARD(ber_hdr_read(k->c, &h));
    ENSURE(h.tag == tag && !h.indef, NS_E_PARSE,
           "cms: %s: expected tag 0x%02x, got 0x%02x at "
           "offset %zu",
           what, tag, h.tag, h.start);
    *n = h.len;
    return ns_cur_slice(k->c, p, h.len);
}

static ns_err ber_oid(ber_cont *k, const uint8_t *want, size_t want_len, const char *what)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    GUARD(ber_prim(k, 0x06, &p, &n, what));
    ENSURE(n == want_len && memcmp(p, want, n) == 0, NS_E_UNSUPPORTED,
           "cms: unsupported %s (only KMS's RSAES-OAEP-SHA256 / AES-256-CBC form is accepted)",
           what);
    return NS_OK;
}

static ns_err ber_small_int(ber_cont *k, unsigned *v, const char *what)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    GUARD(ber_prim(k, 0x02, &p, &n, what));
    ENSURE(n == 1 && p[0] < 0x80, NS_E_PARSE, "cms: %s is not a small integer", what);
    *v = p[0];
    return NS_OK;
}

/* Skips one element of any shape: an explicit depth counter instead of recursion. */
static ns_err ber_skip(ns_cur *c)
{
    unsigned depth = 0;
    do {
        ber_hdr h;
        GUARD(ber_hdr_read(c, &h));
        if (h.tag == 0 && !h.indef && h.len == 0) {
            ENSURE(depth > 0, NS_E_PARSE, "cms: stray end-of-contents at offset %zu", h.start);
            depth--;
        } else if (h.indef) {
            ENSURE(++depth <= NS_CMS_BER_DEPTH, NS_E_TOO_BIG, "cms: nesting deeper than %d",
                   NS_CMS_BER_DEPTH);
        } else {
            GUARD(ns_cur_skip(c, h.len));
        }
    } while (depth > 0);
    return NS_OK;
}

/* AlgorithmIdentifier { sha256, NULL? }. */
static ns_err alg_sha256(ber_cont *k, const char *what)
{
    ber_cont a;
    GUARD(ber_enter(k, 0x30, &a, what));
    GUARD(ber_oid(&a, OID_SHA256, sizeof OID_SHA256, what));
    if (!ber_at_end(&a)) {
        const uint8_t *p = NULL;
        size_t n = 0;
        GUARD(ber_prim(&a, 0x05, &p, &n, what));
        ENSURE(n == 0, NS_E_PARSE, "cms: %s: NULL parameter with content", what);
    }
    return ber_leave(&a, what);
}

/* RSAES-OAEP-params: [0] hash sha256, [1] mgf1(sha256), [2] pSpecified(empty label). */
static ns_err oaep_params(ber_cont *alg)
{
    ber_cont prm, t, mgf;
    int hash_seen = 0, mgf_seen = 0;
    ENSURE(!ber_at_end(alg), NS_E_UNSUPPORTED,
           "cms: RSAES-OAEP without parameters means SHA-1; KMS uses SHA-256");
    GUARD(ber_enter(alg, 0x30, &prm, "RSAES-OAEP parameters"));
    if (ber_next_is(&prm, 0xa0)) {
        GUARD(ber_enter(&prm, 0xa0, &t, "OAEP hashAlgorithm"));
        GUARD(alg_sha256(&t, "OAEP hash algorithm"));
        GUARD(ber_leave(&t, "OAEP hashAlgorithm"));
        hash_seen = 1;
    }
    if (ber_next_is(&prm, 0xa1)) {
        GUARD(ber_enter(&prm, 0xa1, &t, "OAEP maskGenAlgorithm"));
        GUARD(ber_enter(&t, 0x30, &mgf, "OAEP maskGenAlgorithm"));
        GUARD(ber_oid(&mgf, OID_MGF1, sizeof OID_MGF1, "OAEP mask generation function"));
        GUARD(alg_sha256(&mgf, "MGF1 hash algorithm"));
        GUARD(ber_leave(&mgf, "OAEP maskGenAlgorithm"));
        GUARD(ber_leave(&t, "OAEP maskGenAlgorithm"));
        mgf_seen = 1;
    }
    if (ber_next_is(&prm, 0xa2)) {
        ber_cont ps;
        const uint8_t *p = NULL;
        size_t n = 0;
        GUARD(ber_enter(&prm, 0xa2, &t, "OAEP pSourceAlgorithm"));
        GUARD(ber_enter(&t, 0x30, &ps, "OAEP pSourceAlgorithm"));
        GUARD(ber_oid(&ps, OID_PSPECIFIED, sizeof OID_PSPECIFIED, "OAEP pSource"));
        GUARD(ber_prim(&ps, 0x04, &p, &n, "OAEP label"));
        ENSURE(n == 0, NS_E_UNSUPPORTED, "cms: OAEP label must be empty");
        GUARD(ber_leave(&ps, "OAEP pSourceAlgorithm"));
        GUARD(ber_leave(&t, "OAEP pSourceAlgorithm"));
    }
    ENSURE(hash_seen && mgf_seen, NS_E_UNSUPPORTED,
           "cms: OAEP defaults to SHA-1; KMS's SHA-256 hash and MGF1 parameters are required");
    return ber_leave(&prm, "RSAES-OAEP parameters");
}

typedef ns_err (*chunk_fn)(void *ctx, const uint8_t *p, size_t n);

/*
 * Walks encryptedContent [0] IMPLICIT OCTET STRING: primitive 0x80, or constructed 0xa0
 * (definite or indefinite) of primitive OCTET STRING chunks. *used = bytes of the element.
 */
static ns_err content_walk(const uint8_t *p, size_t n, size_t *used, chunk_fn fn, void *ctx)
{
    ns_cur c;
    ber_hdr h;
    ns_cur_init(&c, p, n);
    GUARD(ber_hdr_read(&c, &h));
    if (h.tag == 0x80) {
        const uint8_t *d;
        GUARD(ns_cur_slice(&c, &d, h.len));
        GUARD(fn(ctx, d, h.len));
        *used = c.pos;
        return NS_OK;
    }
    ENSURE(h.tag == 0xa0, NS_E_PARSE,
           "cms: encryptedContent: expected tag 0x80 or 0xa0, got "
           "0x%02x",
           h.tag);
    ber_cont k;
    ns_cur sub;
    k.indef = h.indef;
    if (h.indef) {
        k.c = &c;
    } else {
        GUARD(ns_cur_sub(&c, &sub, h.len));
        k.c = &sub;
    }
    while (!ber_at_end(&k)) {
        const uint8_t *d;
        size_t dn;
        GUARD(ber_prim(&k, 0x04, &d, &dn, "encryptedContent chunk"));
        GUARD(fn(ctx, d, dn));
    }
    GUARD(ber_leave(&k, "encryptedContent"));
    *used = c.pos;
    return NS_OK;
}

static ns_err count_chunk(void *ctx, const uint8_t *p, size_t n)
{
    (void)p;
    size_t *total = ctx;
    ENSURE(n <= NS_CMS_MAX - *total, NS_E_TOO_BIG, "cms: content exceeds %u bytes", NS_CMS_MAX);
    *total += n;
    return NS_OK;
}

ns_err ns_cms_parse(ns_cms_env *e, const uint8_t *ber, size_t n)
{
    ns_cur top;
    ber_cont ci, explicit0, env, rinfos, ktri, alg, eci, calg;
    const uint8_t *p = NULL;
    size_t pn = 0;
    unsigned version;
    memset(e, 0, sizeof *e);
    ENSURE(n <= NS_CMS_MAX, NS_E_TOO_BIG, "cms: %zu bytes exceeds %u", n, NS_CMS_MAX);
    ns_cur_init(&top, ber, n);
    GUARD(ber_enter_cur(&top, 0x30, &ci, "ContentInfo"));
    GUARD(ber_oid(&ci, OID_ENVELOPED, sizeof OID_ENVELOPED, "content type (want envelopedData)"));
    GUARD(ber_enter(&ci, 0xa0, &explicit0, "ContentInfo content"));
    GUARD(ber_enter(&explicit0, 0x30, &env, "EnvelopedData"));
    GUARD(ber_small_int(&env, &version, "EnvelopedData version"));
    ENSURE(version <= 2, NS_E_UNSUPPORTED, "cms: EnvelopedData version %u", version);
    ENSURE(ber_next_is(&env, 0x31), NS_E_UNSUPPORTED, "cms: originatorInfo is not supported");
    GUARD(ber_enter(&env, 0x31, &rinfos, "recipientInfos"));
    GUARD(ber_enter(&rinfos, 0x30, &ktri, "KeyTransRecipientInfo"));
    GUARD(ber_small_int(&ktri, &version, "KeyTransRecipientInfo version"));
    ENSURE(version == 0 || version == 2, NS_E_UNSUPPORTED, "cms: KeyTransRecipientInfo version %u",
           version);
    {
        size_t at = ktri.c->pos;
        ENSURE(!ber_at_end(&ktri) && ns_cur_left(ktri.c) > 0, NS_E_PARSE,
               "cms: recipient identifier missing");
        uint8_t t = ktri.c->p[at];
        if (t == 0x80) {
            GUARD(ber_prim(&ktri, 0x80, &e->rid, &e->rid_len, "subjectKeyIdentifier"));
            e->rid_is_ski = 1;
        } else {
            ENSURE(t == 0x30, NS_E_PARSE, "cms: recipient identifier has tag 0x%02x", t);
            GUARD(ber_skip(ktri.c));
            e->rid = ktri.c->p + at;
            e->rid_len = ktri.c->pos - at;
        }
    }
    GUARD(ber_enter(&ktri, 0x30, &alg, "keyEncryptionAlgorithm"));
    GUARD(ber_oid(&alg, OID_RSAES_OAEP, sizeof OID_RSAES_OAEP, "key encryption algorithm"));
    GUARD(oaep_params(&alg));
    GUARD(ber_leave(&alg, "keyEncryptionAlgorithm"));
    GUARD(ber_prim(&ktri, 0x04, &e->enc_key, &e->enc_key_len, "encryptedKey"));
    GUARD(ber_leave(&ktri, "KeyTransRecipientInfo"));
    ENSURE(ber_at_end(&rinfos), NS_E_UNSUPPORTED,
           "cms: more than one recipient (KMS sends exactly one)");
    GUARD(ber_leave(&rinfos, "recipientInfos"));
    GUARD(ber_enter(&env, 0x30, &eci, "EncryptedContentInfo"));
    GUARD(ber_oid(&eci, OID_DATA, sizeof OID_DATA, "content type (want id-data)"));
    GUARD(ber_enter(&eci, 0x30, &calg, "contentEncryptionAlgorithm"));
    GUARD(ber_oid(&calg, OID_AES256_CBC, sizeof OID_AES256_CBC, "content encryption algorithm"));
    GUARD(ber_prim(&calg, 0x04, &p, &pn, "AES-CBC IV"));
    ENSURE(pn == sizeof e->iv, NS_E_PARSE, "cms: AES-CBC IV of %zu bytes", pn);
    memcpy(e->iv, p, pn);
    GUARD(ber_leave(&calg, "contentEncryptionAlgorithm"));
    ENSURE(!ber_at_end(&eci), NS_E_PARSE,
           "cms: no encryptedContent (detached content is not "
           "supported)");
    {
        size_t used = 0, total = 0;
        e->content = eci.c->p + eci.c->pos;
        GUARD(content_walk(e->content, ns_cur_left(eci.c), &used, count_chunk, &total));
        GUARD(ns_cur_skip(eci.c, used));
        e->content_len = used;
        e->ciphertext_len = total;
    }
    ENSURE(e->ciphertext_len > 0 && e->ciphertext_len % 16 == 0, NS_E_PARSE,
           "cms: AES-CBC content of %zu bytes is not a positive multiple of 16", e->ciphertext_len);
    GUARD(ber_leave(&eci, "EncryptedContentInfo"));
    if (ber_next_is(&env, 0xa1)) {
        GUARD(ber_skip(env.c)); /* unprotectedAttrs: not needed to decrypt */
    }
    GUARD(ber_leave(&env, "EnvelopedData"));
    GUARD(ber_leave(&explicit0, "ContentInfo content"));
    GUARD(ber_leave(&ci, "ContentInfo"));
    ENSURE(ns_cur_left(&top) == 0, NS_E_PARSE, "cms: %zu trailing bytes", ns_cur_left(&top));
    return NS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* keys */

ns_err ns_cms_key_generate(ns_cms_key **out)
{
    ns_cms_key *k = calloc(1, sizeof *k);
    ENSURE(k != NULL, NS_E_NOMEM, "cms: out of memory");
    mbedtls_pk_init(&k->pk);
    if (mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0 ||
        mbedtls_rsa_gen_key(mbedtls_pk_rsa(k->pk), ns_rng_mbedtls, NULL, NS_CMS_RSA_BITS, 65537) !=
            0) {
        ns_cms_key_free(k);
        BAIL(NS_E_CRYPTO, "cms: RSA-%d key generation failed", NS_CMS_RSA_BITS);
    }
    *out = k;
    return NS_OK;
}

ns_err ns_cms_key_parse(ns_cms_key **out, const uint8_t *key, size_t n)
{
    ns_cms_key *k = calloc(1, sizeof *k);
    ENSURE(k != NULL, NS_E_NOMEM, "cms: out of memory");
    mbedtls_pk_init(&k->pk);
    if (mbedtls_pk_parse_key(&k->pk, key, n, NULL, 0, ns_rng_mbedtls, NULL) != 0 ||
        mbedtls_pk_get_type(&k->pk) != MBEDTLS_PK_RSA) {
        ns_cms_key_free(k);
        BAIL(NS_E_PARSE, "cms: not an RSA private key (PEM needs its terminating NUL)");
    }
    *out = k;
    return NS_OK;
}

ns_err ns_cms_key_spki(const ns_cms_key *k, uint8_t *out, size_t cap, size_t *len)
{
    uint8_t tmp[NS_CMS_SPKI_MAX];
    /* mbedtls writes DER backwards from the end of the buffer. */
    int r = mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)&k->pk, tmp, sizeof tmp);
    ENSURE(r > 0, NS_E_CRYPTO, "cms: cannot encode the public key (%d)", r);
    ENSURE((size_t)r <= cap, NS_E_TOO_BIG, "cms: public key of %d bytes exceeds %zu", r, cap);
    memcpy(out, tmp + sizeof tmp - (size_t)r, (size_t)r);
    *len = (size_t)r;
    return NS_OK;
}

void ns_cms_key_free(ns_cms_key *k)
{
    if (k != NULL) {
        mbedtls_pk_free(&k->pk); /* mbedtls_mpi_free zeroises every limb */
        ns_wipe(k, sizeof *k);
        free(k);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* decryption */

typedef struct {
    mbedtls_cipher_context_t aes;
    ns_buf *out;
    uint8_t stage[CMS_STAGE + 16];
} dec_ctx;

static ns_err decrypt_chunk(void *ctx, const uint8_t *p, size_t n)
{
    dec_ctx *d = ctx;
    while (n > 0) {
        size_t take = n < CMS_STAGE ? n : CMS_STAGE;
        size_t olen = 0;
        ENSURE(mbedtls_cipher_update(&d->aes, p, take, d->stage, &olen) == 0, NS_E_CRYPTO,
               "cms: AES-256-CBC update failed");
        ns_err rc = ns_buf_append(d->out, d->stage, olen);
        ns_wipe(d->stage, olen);
        GUARD(rc);
        p += take;
        n -= take;
    }
    return NS_OK;
}

ns_err ns_cms_decrypt(ns_buf *out, const ns_cms_key *k, const uint8_t *ber, size_t n)
{
    ns_cms_env e;
    uint8_t cek[CMS_CEK_LEN + 256]; /* OAEP output bound: the modulus size */
    size_t cek_len = 0, used = 0, olen = 0;
    ns_err rc = NS_OK;
    dec_ctx *d = NULL;
    GUARD(ns_cms_parse(&e, ber, n));
    mbedtls_rsa_context *rsa = mbedtls_pk_rsa(k->pk);
    ENSURE(e.enc_key_len == mbedtls_rsa_get_len(rsa), NS_E_PARSE,
           "cms: encryptedKey of %zu bytes does not match the %zu-byte RSA key", e.enc_key_len,
           mbedtls_rsa_get_len(rsa));
    if (mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256) != 0 ||
        mbedtls_rsa_rsaes_oaep_decrypt(rsa, ns_rng_mbedtls, NULL, NULL, 0, &cek_len, e.enc_key,
                                       cek, sizeof cek) != 0) {
        rc = ns_fail(NS_E_AUTH, "cms: RSA-OAEP-SHA256 unwrap of the content key failed (the "
                                "ciphertext is not for this key)");
        goto out;
    }
    if (cek_len != CMS_CEK_LEN) {
        rc = ns_fail(NS_E_PARSE, "cms: content key of %zu bytes, want %d", cek_len, CMS_CEK_LEN);
        goto out;
    }
    d = calloc(1, sizeof *d);
    if (d == NULL) {
        rc = ns_fail(NS_E_NOMEM, "cms: out of memory");
        goto out;
    }
    d->out = out;
    mbedtls_cipher_init(&d->aes);
    if (mbedtls_cipher_setup(&d->aes, mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_256_CBC)) !=
            0 ||
        mbedtls_cipher_setkey(&d->aes, cek, 256, MBEDTLS_DECRYPT) != 0 ||
        mbedtls_cipher_set_padding_mode(&d->aes, MBEDTLS_PADDING_PKCS7) != 0 ||
        mbedtls_cipher_set_iv(&d->aes, e.iv, sizeof e.iv) != 0 ||
        mbedtls_cipher_reset(&d->aes) != 0) {
        rc = ns_fail(NS_E_CRYPTO, "cms: AES-256-CBC setup failed");
        goto out;
    }
    GUARD_GOTO(content_walk(e.content, e.content_len, &used, decrypt_chunk, d), rc, out);
    if (mbedtls_cipher_finish(&d->aes, d->stage, &olen) != 0) {
        rc = ns_fail(NS_E_AUTH, "cms: bad padding after AES-256-CBC decryption (wrong key or "
                                "corrupted ciphertext)");
        goto out;
    }
    GUARD_GOTO(ns_buf_append(out, d->stage, olen), rc, out);
out:
    ns_wipe(cek, sizeof cek);
    if (d != NULL) {
        mbedtls_cipher_free(&d->aes); /* zeroises the AES key schedule */
        ns_wipe(d, sizeof *d);
        free(d);
    }
    if (rc != NS_OK) {
        ns_buf_reset(out);
    }
    return rc;
}
