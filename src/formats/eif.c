/*
 * eif: EIF v4 reader/writer and PCRs (see eif.h and ../shared/vectors/eif/FORMAT.md).
 *
 * The reader walks the file twice in one pass: the header's section table gives where each
 * section must start, and the section headers read from offset 548 onward must land exactly
 * there. The signature section is a fixed CBOR shape (arrays of byte-sized uints), decoded with
 * a cursor and no recursion; only its first entry's certificate is used (PCR8).
 */
#include "eif.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "mbedtls/sha512.h"

#define EIF_MAGIC ".eif"
#define EIF_MIN_VERSION 2 /* v0/v1 were never released */
#define EIF_CRC_OFFSET 544
#define EIF_OFFSETS_AT 28
#define EIF_SIZES_AT 284
#define EIF_UNUSED_AT 540
#define PEM_BEGIN "-----BEGIN CERTIFICATE-----"
#define PEM_END "-----END CERTIFICATE-----"

const char *ns_eif_section_name(uint16_t type)
{
    switch (type) {
    case NS_EIF_SEC_KERNEL:
        return "Kernel";
    case NS_EIF_SEC_CMDLINE:
        return "Cmdline";
    case NS_EIF_SEC_RAMDISK:
        return "Ramdisk";
    case NS_EIF_SEC_SIGNATURE:
        return "Signature";
    case NS_EIF_SEC_METADATA:
        return "Metadata";
    default:
        return "Invalid";
    }
}

uint32_t ns_eif_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) { /* idempotent: racing threads compute the same table */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) {
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }
            table[i] = c;
        }
        ready = 1;
    }
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

/* One PCR accumulator: SHA-384 of the measured content, then the TPM-style extend from zero. */
typedef struct {
    mbedtls_sha512_context h;
} pcr_acc;

static ns_err pcr_start(pcr_acc *a)
{
    mbedtls_sha512_init(&a->h);
    ENSURE(mbedtls_sha512_starts(&a->h, 1) == 0, NS_E_CRYPTO, "eif: sha384 start failed");
    return NS_OK;
}

static ns_err pcr_update(pcr_acc *a, const uint8_t *p, size_t n)
{
    ENSURE(mbedtls_sha512_update(&a->h, p, n) == 0, NS_E_CRYPTO, "eif: sha384 failed");
    return NS_OK;
}

static ns_err pcr_finish(pcr_acc *a, uint8_t out[NS_EIF_PCR_LEN])
{
    uint8_t ext[2 * NS_EIF_PCR_LEN] = {0};
    uint8_t full[64];
    int rc = mbedtls_sha512_finish(&a->h, full);
    mbedtls_sha512_free(&a->h);
    ENSURE(rc == 0, NS_E_CRYPTO, "eif: sha384 finish failed");
    memcpy(ext + NS_EIF_PCR_LEN, full, NS_EIF_PCR_LEN);
    ENSURE(mbedtls_sha512(ext, sizeof ext, full, 1) == 0, NS_E_CRYPTO, "eif: sha384 failed");
    memcpy(out, full, NS_EIF_PCR_LEN);
    return NS_OK;
}

/* --- signature section (CBOR) --- */

static ns_err cbor_head(ns_cur *c, uint8_t *major, uint64_t *arg)
{
    uint8_t b;
    GUARD(ns_cur_u8(c, &b));
    *major = b >> 5;
    uint8_t ai = b & 31;
    if (ai < 24) {
        *arg = ai;
    } else if (ai == 24) {
        uint8_t v;
        GUARD(ns_cur_u8(c, &v));
        *arg = v;
    } else if (ai == 25) {
        uint16_t v;
        GUARD(ns_cur_be16(c, &v));
        *arg = v;
    } else if (ai == 26) {
        uint32_t v;
        GUARD(ns_cur_be32(c, &v));
        *arg = v;
    } else if (ai == 27) {
        GUARD(ns_cur_be64(c, arg));
    } else {
        BAIL(NS_E_PARSE, "eif: signature: indefinite or reserved CBOR item");
    }
    return NS_OK;
}

static ns_err cbor_key(ns_cur *c, const char *want)
{
    uint8_t major;
    uint64_t len;
    const uint8_t *s;
    GUARD(cbor_head(c, &major, &len));
    ENSURE(major == 3 && len == strlen(want), NS_E_PARSE, "eif: signature: expected map key \"%s\"",
           want);
    GUARD(ns_cur_slice(c, &s, (size_t)len));
    ENSURE(memcmp(s, want, (size_t)len) == 0, NS_E_PARSE, "eif: signature: expected map key \"%s\"",
           want);
    return NS_OK;
}

/* An array of uints that each fit a byte (serde_cbor's Vec<u8>), into out (may be NULL). */
static ns_err cbor_byte_array(ns_cur *c, uint8_t *out, size_t cap, size_t *len)
{
    uint8_t major;
    uint64_t n;
    GUARD(cbor_head(c, &major, &n));
    ENSURE(major == 4, NS_E_PARSE, "eif: signature: expected an array of bytes");
    ENSURE(n <= ns_cur_left(c), NS_E_TRUNCATED, "eif: signature: byte array runs past the end");
    ENSURE(out == NULL || n <= cap, NS_E_TOO_BIG, "eif: signature: certificate over %zu bytes",
           cap);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v;
        GUARD(cbor_head(c, &major, &v));
        ENSURE(major == 0 && v <= 0xff, NS_E_PARSE, "eif: signature: array element is not a byte");
        if (out != NULL) {
            out[i] = (uint8_t)v;
        }
    }
    *len = (size_t)n;
    return NS_OK;
}

/* PEM "CERTIFICATE" block to DER; b64 is scratch space of at least n bytes. */
static ns_err pem_to_der(const uint8_t *pem, size_t n, char *b64, uint8_t *der, size_t cap,
                         size_t *der_len)
{
    size_t bl = 0;
    size_t blen = strlen(PEM_BEGIN), elen = strlen(PEM_END);
    size_t i = 0;
    while (i + blen <= n && memcmp(pem + i, PEM_BEGIN, blen) != 0) {
        i++;
    }
    ENSURE(i + blen <= n, NS_E_PARSE, "eif: signature: certificate has no PEM BEGIN line");
    for (i += blen; i < n; i++) {
        if (i + elen <= n && memcmp(pem + i, PEM_END, elen) == 0) {
            break;
        }
        uint8_t ch = pem[i];
        if (ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t') {
            continue;
        }
        b64[bl++] = (char)ch;
    }
    ENSURE(i < n, NS_E_PARSE, "eif: signature: certificate has no PEM END line");
    ENSURE(bl > 0, NS_E_PARSE, "eif: signature: empty certificate");
    if (ns_b64_decode(der, cap, der_len, b64, bl, NS_B64_PAD) != NS_OK) {
        BAIL(NS_E_PARSE, "eif: signature: certificate is not valid base64 PEM");
    }
    return NS_OK;
}

/* Walks the whole signature array; PCR8 comes from entry 0's certificate. */
static ns_err parse_signature_with(const uint8_t *p, size_t n, uint8_t *scratch,
                                   uint8_t pcr8[NS_EIF_PCR_LEN])
{
    /* scratch: PEM bytes, then its base64 text, then the DER, each NS_EIF_MAX_CERT_LEN. */
    uint8_t *cert = scratch;
    char *b64 = (char *)scratch + NS_EIF_MAX_CERT_LEN;
    uint8_t *der = scratch + 2 * NS_EIF_MAX_CERT_LEN;
    ns_cur c;
    uint8_t major;
    uint64_t count;
    size_t cert_len = 0, sig_len = 0, der_len = 0;
    ns_cur_init(&c, p, n);
    GUARD(cbor_head(&c, &major, &count));
    ENSURE(major == 4 && count >= 1 && count <= NS_EIF_MAX_SIGNATURES, NS_E_PARSE,
           "eif: signature: expected an array of 1..%d entries", NS_EIF_MAX_SIGNATURES);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t pairs;
        size_t len;
        GUARD(cbor_head(&c, &major, &pairs));
        ENSURE(major == 5 && pairs == 2, NS_E_PARSE,
               "eif: signature: entry %u is not a map of 2 keys", (unsigned)i);
        GUARD(cbor_key(&c, "signing_certificate"));
        GUARD(cbor_byte_array(&c, i == 0 ? cert : NULL, NS_EIF_MAX_CERT_LEN, &len));
        if (i == 0) {
            cert_len = len;
        }
        GUARD(cbor_key(&c, "signature"));
        GUARD(cbor_byte_array(&c, NULL, 0, &len));
        if (i == 0) {
            sig_len = len;
        }
    }
    ENSURE(ns_cur_left(&c) == 0, NS_E_PARSE, "eif: signature: trailing bytes after the CBOR");
    ENSURE(sig_len > 0, NS_E_PARSE, "eif: signature: empty COSE_Sign1");
    GUARD(pem_to_der(cert, cert_len, b64, der, NS_EIF_MAX_CERT_LEN, &der_len));
    pcr_acc a;
    GUARD(pcr_start(&a));
    ns_err e = pcr_update(&a, der, der_len);
    if (e != NS_OK) {
        mbedtls_sha512_free(&a.h);
        return e;
    }
    return pcr_finish(&a, pcr8);
}

static ns_err parse_signature(const uint8_t *p, size_t n, uint8_t pcr8[NS_EIF_PCR_LEN])
{
    uint8_t *scratch = malloc(3 * NS_EIF_MAX_CERT_LEN);
    ENSURE(scratch != NULL, NS_E_NOMEM, "eif: out of memory reading the signature section");
    ns_err e = parse_signature_with(p, n, scratch, pcr8);
    free(scratch);
    return e;
}

/* --- reader --- */

static ns_err check_sections(ns_eif_info *info, const uint8_t *p, size_t n, ns_cur *hdr)
{
    uint64_t offs[NS_EIF_MAX_SECTIONS], sizes[NS_EIF_MAX_SECTIONS];
    for (int i = 0; i < NS_EIF_MAX_SECTIONS; i++) {
        GUARD(ns_cur_be64(hdr, &offs[i]));
    }
    for (int i = 0; i < NS_EIF_MAX_SECTIONS; i++) {
        GUARD(ns_cur_be64(hdr, &sizes[i]));
    }
    for (int i = info->num_sections; i < NS_EIF_MAX_SECTIONS; i++) {
        ENSURE(offs[i] == 0 && sizes[i] == 0, NS_E_PARSE,
               "eif: unused section table entry %d is not zero", i);
    }
    uint64_t pos = NS_EIF_HEADER_LEN;
    int kernels = 0, cmdlines = 0, ramdisks = 0, sigs = 0, metas = 0;
    for (int i = 0; i < info->num_sections; i++) {
        ENSURE(offs[i] == pos, NS_E_PARSE,
               "eif: section %d starts at %llu, expected %llu (sections must be contiguous)", i,
               (unsigned long long)offs[i], (unsigned long long)pos);
        ENSURE(n - pos >= NS_EIF_SECTION_HEADER_LEN, NS_E_TRUNCATED,
               "eif: section %d header runs past the end of the file", i);
        ns_cur c;
        uint16_t type, flags;
        uint64_t size;
        ns_cur_init(&c, p + pos, NS_EIF_SECTION_HEADER_LEN);
        GUARD(ns_cur_be16(&c, &type));
        GUARD(ns_cur_be16(&c, &flags));
        GUARD(ns_cur_be64(&c, &size));
        ENSURE(type >= NS_EIF_SEC_KERNEL && type <= NS_EIF_SEC_METADATA, NS_E_PARSE,
               "eif: section %d has invalid type %u", i, type);
        ENSURE(flags == 0, NS_E_PARSE, "eif: section %d has reserved flags 0x%x", i, flags);
        ENSURE(size == sizes[i], NS_E_PARSE,
               "eif: section %d size %llu disagrees with the header's %llu", i,
               (unsigned long long)size, (unsigned long long)sizes[i]);
        pos += NS_EIF_SECTION_HEADER_LEN;
        ENSURE(size <= n - pos, NS_E_TRUNCATED,
               "eif: section %d (%s, %llu bytes) runs past the end of the file", i,
               ns_eif_section_name(type), (unsigned long long)size);
        switch (type) {
        case NS_EIF_SEC_KERNEL:
            kernels++;
            ENSURE(size > 0, NS_E_PARSE, "eif: empty kernel section");
            break;
        case NS_EIF_SEC_CMDLINE:
            cmdlines++;
            ENSURE(size <= NS_EIF_MAX_CMDLINE_LEN, NS_E_TOO_BIG, "eif: command line over %d bytes",
                   NS_EIF_MAX_CMDLINE_LEN);
            ENSURE(memchr(p + pos, 0, (size_t)size) == NULL, NS_E_PARSE,
                   "eif: command line holds a NUL byte");
            info->cmdline = p + pos;
            info->cmdline_len = (size_t)size;
            break;
        case NS_EIF_SEC_RAMDISK:
            ENSURE(kernels == 1, NS_E_PARSE, "eif: ramdisk section %d before the kernel", i);
            ramdisks++;
            break;
        case NS_EIF_SEC_SIGNATURE:
            sigs++;
            ENSURE(info->version >= 3, NS_E_PARSE, "eif: signature section in a v%u file",
                   info->version);
            ENSURE(size <= NS_EIF_MAX_SIGNATURE_LEN, NS_E_TOO_BIG,
                   "eif: signature section over %d bytes", NS_EIF_MAX_SIGNATURE_LEN);
            break;
        case NS_EIF_SEC_METADATA:
            metas++;
            ENSURE(info->version >= 4, NS_E_PARSE, "eif: metadata section in a v%u file",
                   info->version);
            ENSURE(size <= NS_EIF_MAX_METADATA_LEN, NS_E_TOO_BIG,
                   "eif: metadata section over %u bytes", NS_EIF_MAX_METADATA_LEN);
            info->metadata = p + pos;
            info->metadata_len = (size_t)size;
            break;
        }
        info->sections[i].type = type;
        info->sections[i].offset = offs[i];
        info->sections[i].size = size;
        pos += size;
    }
    ENSURE(pos == n, NS_E_PARSE, "eif: %llu bytes after the last section",
           (unsigned long long)(n - pos));
    ENSURE(kernels == 1, NS_E_PARSE, "eif: %d kernel sections, need exactly 1", kernels);
    ENSURE(cmdlines == 1, NS_E_PARSE, "eif: %d cmdline sections, need exactly 1", cmdlines);
    ENSURE(ramdisks >= 1, NS_E_PARSE, "eif: no ramdisk section");
    ENSURE(sigs <= 1, NS_E_PARSE, "eif: %d signature sections, at most 1 allowed", sigs);
    ENSURE(metas == (info->version >= 4 ? 1 : 0), NS_E_PARSE,
           "eif: %d metadata sections in a v%u file (v4 needs exactly 1)", metas, info->version);
    return NS_OK;
}

static ns_err measure(ns_eif_info *info, const uint8_t *p)
{
    pcr_acc a0, a1, a2;
    GUARD(pcr_start(&a0));
    GUARD(pcr_start(&a1));
    GUARD(pcr_start(&a2));
    ns_err e = NS_OK;
    int ramdisk = 0;
    for (int i = 0; e == NS_OK && i < info->num_sections; i++) {
        const ns_eif_section *s = &info->sections[i];
        const uint8_t *d = p + s->offset + NS_EIF_SECTION_HEADER_LEN;
        size_t len = (size_t)s->size;
        if (s->type == NS_EIF_SEC_KERNEL || s->type == NS_EIF_SEC_CMDLINE) {
            e = pcr_update(&a0, d, len);
            if (e == NS_OK) {
                e = pcr_update(&a1, d, len);
            }
        } else if (s->type == NS_EIF_SEC_RAMDISK) {
            e = pcr_update(&a0, d, len);
            if (e == NS_OK) {
                e = pcr_update(ramdisk == 0 ? &a1 : &a2, d, len);
            }
            ramdisk++;
        } else if (s->type == NS_EIF_SEC_SIGNATURE) {
            e = parse_signature(d, len, info->pcr8);
            info->is_signed = e == NS_OK;
        }
    }
    if (e != NS_OK) {
        mbedtls_sha512_free(&a0.h);
        mbedtls_sha512_free(&a1.h);
        mbedtls_sha512_free(&a2.h);
        return e;
    }
    GUARD(pcr_finish(&a0, info->pcr0));
    GUARD(pcr_finish(&a1, info->pcr1));
    return pcr_finish(&a2, info->pcr2);
}

/* One member of the identity object: present exactly once (cJSON keeps duplicates). */
static ns_err identity_member(const cJSON *obj, const char *where, const char *name, int want,
                              const cJSON **out)
{
    const cJSON *found = NULL;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        if (c->string != NULL && strcmp(c->string, name) == 0) {
            ENSURE(found == NULL, NS_E_PARSE, "eif: metadata: duplicate member %s%s", where, name);
            found = c;
        }
    }
    ENSURE(found != NULL, NS_E_PARSE,
           "eif: metadata lacks %s%s, which nitro-cli's reader (EifIdentityInfo) requires", where,
           name);
    ENSURE(want == 0 || (found->type & 0xFF) == want, NS_E_PARSE,
           "eif: metadata member %s%s has the wrong type (want %s)", where, name,
           want == cJSON_String ? "a string" : "an object");
    *out = found;
    return NS_OK;
}

/* Exactly count members: with identity_member finding each name once, nothing else. */
static ns_err identity_exact(const cJSON *obj, const char *where, int count)
{
    int n = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        n++;
    }
    ENSURE(n == count, NS_E_PARSE, "eif: metadata %s has %d members, want exactly %d",
           *where ? where : "object", n, count);
    return NS_OK;
}

ns_err ns_eif_identity_check(const uint8_t *p, size_t n)
{
    static const char *const top[] = {"ImageName", "ImageVersion", "BuildMetadata", "DockerInfo",
                                      "CustomMetadata"};
    static const char *const build[] = {"BuildTime", "BuildTool", "BuildToolVersion",
                                        "OperatingSystem", "KernelVersion"};
    const char *end = NULL;
    const cJSON *m, *bm = NULL;
    ns_err e = NS_OK;
    ENSURE(n > 0 && n <= NS_EIF_MAX_METADATA_LEN, NS_E_PARSE, "eif: metadata is empty or too big");
    ENSURE(memchr(p, 0, n) == NULL, NS_E_PARSE, "eif: metadata holds a NUL byte");
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p, n, &end, 0);
    if (root == NULL || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        BAIL(NS_E_PARSE, "eif: metadata is not a JSON object");
    }
    while (end < (const char *)p + n &&
           (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r')) {
        end++;
    }
    if (end != (const char *)p + n) {
        e = ns_fail(NS_E_PARSE, "eif: metadata has bytes after its JSON object");
    }
    for (int i = 0; e == NS_OK && i < 5; i++) {
        int want = i < 2 ? cJSON_String : i == 2 ? cJSON_Object : 0;
        e = identity_member(root, "", top[i], want, i == 2 ? &bm : &m);
    }
    if (e == NS_OK) {
        e = identity_exact(root, "", 5);
    }
    for (int i = 0; e == NS_OK && i < 5; i++) {
        e = identity_member(bm, "BuildMetadata.", build[i], cJSON_String, &m);
    }
    if (e == NS_OK) {
        e = identity_exact(bm, "BuildMetadata", 5);
    }
    cJSON_Delete(root);
    return e;
}

ns_err ns_eif_parse(ns_eif_info *info, const uint8_t *p, size_t n)
{
    memset(info, 0, sizeof *info);
    ENSURE(n >= NS_EIF_HEADER_LEN, NS_E_TRUNCATED,
           "eif: %zu bytes is shorter than the %d-byte header", n, NS_EIF_HEADER_LEN);
    ENSURE(memcmp(p, EIF_MAGIC, 4) == 0, NS_E_PARSE, "eif: bad magic (not an EIF file)");
    ns_cur c;
    uint16_t reserved;
    uint32_t unused, crc;
    ns_cur_init(&c, p + 4, NS_EIF_HEADER_LEN - 4);
    GUARD(ns_cur_be16(&c, &info->version));
    GUARD(ns_cur_be16(&c, &info->flags));
    GUARD(ns_cur_be64(&c, &info->default_mem));
    GUARD(ns_cur_be64(&c, &info->default_cpus));
    GUARD(ns_cur_be16(&c, &reserved));
    GUARD(ns_cur_be16(&c, &info->num_sections));
    ENSURE(info->version >= EIF_MIN_VERSION && info->version <= NS_EIF_VERSION, NS_E_UNSUPPORTED,
           "eif: version %u (supported: %d..%d)", info->version, EIF_MIN_VERSION, NS_EIF_VERSION);
    ENSURE((info->flags & ~NS_EIF_FLAG_ARM64) == 0, NS_E_PARSE, "eif: reserved header flags 0x%x",
           info->flags);
    ENSURE(reserved == 0, NS_E_PARSE, "eif: reserved header field is 0x%x, not 0", reserved);
    ENSURE(info->num_sections >= NS_EIF_MIN_SECTIONS && info->num_sections <= NS_EIF_MAX_SECTIONS,
           NS_E_PARSE, "eif: %u sections (allowed: %d..%d)", info->num_sections,
           NS_EIF_MIN_SECTIONS, NS_EIF_MAX_SECTIONS);
    GUARD(check_sections(info, p, n, &c));
    GUARD(ns_cur_be32(&c, &unused));
    GUARD(ns_cur_be32(&c, &crc));
    ENSURE(unused == 0, NS_E_PARSE, "eif: unused header field is 0x%x, not 0", unused);
    uint32_t want = ns_eif_crc32(0, p, EIF_CRC_OFFSET);
    want = ns_eif_crc32(want, p + NS_EIF_HEADER_LEN, n - NS_EIF_HEADER_LEN);
    ENSURE(crc == want, NS_E_PARSE, "eif: CRC mismatch (stored %08x, computed %08x): corrupted",
           crc, want);
    info->crc = crc;
    if (info->metadata != NULL) {
        GUARD(ns_eif_identity_check(info->metadata, info->metadata_len));
    }
    return measure(info, p);
}

/* --- writer --- */

static ns_err put_section(ns_buf *out, uint16_t type, const ns_eif_blob *b)
{
    uint8_t h[NS_EIF_SECTION_HEADER_LEN];
    ns_put_be16(h, type);
    ns_put_be16(h + 2, 0);
    ns_put_be64(h + 4, b->len);
    GUARD(ns_buf_append(out, h, sizeof h));
    return b->len ? ns_buf_append(out, b->p, b->len) : NS_OK;
}

ns_err ns_eif_build(ns_buf *out, const ns_eif_input *in)
{
    ns_eif_blob secs[NS_EIF_MAX_SECTIONS];
    uint16_t types[NS_EIF_MAX_SECTIONS];
    size_t ns = 0;
    ENSURE(in->kernel.len > 0, NS_E_USAGE, "eif: the kernel is empty");
    ENSURE(in->n_ramdisks >= 1, NS_E_USAGE, "eif: at least one ramdisk is needed");
    ENSURE(in->n_ramdisks <= NS_EIF_MAX_SECTIONS - 4, NS_E_TOO_BIG,
           "eif: at most %d ramdisks fit the section table", NS_EIF_MAX_SECTIONS - 4);
    ENSURE(in->cmdline.len <= NS_EIF_MAX_CMDLINE_LEN &&
               (in->cmdline.len == 0 || memchr(in->cmdline.p, 0, in->cmdline.len) == NULL),
           NS_E_USAGE, "eif: the command line must be under %d bytes with no NUL",
           NS_EIF_MAX_CMDLINE_LEN);
    ENSURE(in->metadata.len > 0 && in->metadata.len <= NS_EIF_MAX_METADATA_LEN, NS_E_USAGE,
           "eif: metadata must be 1..%u bytes", NS_EIF_MAX_METADATA_LEN);
    ENSURE(in->signature.len <= NS_EIF_MAX_SIGNATURE_LEN, NS_E_TOO_BIG,
           "eif: signature over %d bytes", NS_EIF_MAX_SIGNATURE_LEN);
    ENSURE((in->flags & ~NS_EIF_FLAG_ARM64) == 0, NS_E_USAGE, "eif: unknown flags 0x%x", in->flags);
    types[ns] = NS_EIF_SEC_KERNEL;
    secs[ns++] = in->kernel;
    types[ns] = NS_EIF_SEC_CMDLINE;
    secs[ns++] = in->cmdline;
    types[ns] = NS_EIF_SEC_METADATA;
    secs[ns++] = in->metadata;
    for (size_t i = 0; i < in->n_ramdisks; i++) {
        types[ns] = NS_EIF_SEC_RAMDISK;
        secs[ns++] = in->ramdisks[i];
    }
    if (in->signature.len > 0) {
        types[ns] = NS_EIF_SEC_SIGNATURE;
        secs[ns++] = in->signature;
    }

    uint8_t h[NS_EIF_HEADER_LEN] = {0};
    memcpy(h, EIF_MAGIC, 4);
    ns_put_be16(h + 4, NS_EIF_VERSION);
    ns_put_be16(h + 6, in->flags);
    ns_put_be64(h + 8, in->default_mem ? in->default_mem : NS_EIF_DEFAULT_MEM);
    ns_put_be64(h + 16, in->default_cpus ? in->default_cpus : NS_EIF_DEFAULT_CPUS);
    ns_put_be16(h + 26, (uint16_t)ns);
    uint64_t pos = NS_EIF_HEADER_LEN;
    for (size_t i = 0; i < ns; i++) {
        ns_put_be64(h + EIF_OFFSETS_AT + 8 * i, pos);
        ns_put_be64(h + EIF_SIZES_AT + 8 * i, secs[i].len);
        pos += NS_EIF_SECTION_HEADER_LEN + secs[i].len;
    }
    size_t start = out->len;
    GUARD(ns_buf_reserve(out, (size_t)pos));
    GUARD(ns_buf_append(out, h, sizeof h));
    for (size_t i = 0; i < ns; i++) {
        GUARD(put_section(out, types[i], &secs[i]));
    }
    uint8_t *f = out->data + start;
    uint32_t crc = ns_eif_crc32(0, f, EIF_CRC_OFFSET);
    crc = ns_eif_crc32(crc, f + NS_EIF_HEADER_LEN, out->len - start - NS_EIF_HEADER_LEN);
    ns_put_be32(f + EIF_CRC_OFFSET, crc);
    return NS_OK;
}

ns_err ns_eif_metadata(ns_buf *out, const ns_eif_meta *m)
{
    char when[64];
    time_t t = (time_t)m->build_time;
    struct tm tm;
    ENSURE(gmtime_r(&t, &tm) != NULL, NS_E_USAGE, "eif: build time %llu out of range",
           (unsigned long long)m->build_time);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    ns_err e = NS_E_NOMEM;
    cJSON *root = cJSON_CreateObject();
    cJSON *bm = cJSON_CreateObject();
    char *s = NULL;
    if (root == NULL || bm == NULL || !cJSON_AddStringToObject(root, "ImageName", m->image_name) ||
        !cJSON_AddStringToObject(root, "ImageVersion", m->image_version) ||
        !cJSON_AddStringToObject(bm, "BuildTime", when) ||
        !cJSON_AddStringToObject(bm, "BuildTool", m->build_tool) ||
        !cJSON_AddStringToObject(bm, "BuildToolVersion", m->build_tool_version) ||
        !cJSON_AddStringToObject(bm, "OperatingSystem", m->os) ||
        !cJSON_AddStringToObject(bm, "KernelVersion", m->kernel_version)) {
        goto out;
    }
    cJSON_AddItemToObject(root, "BuildMetadata", bm);
    bm = NULL;
    if (!cJSON_AddObjectToObject(root, "DockerInfo")) {
        goto out;
    }
    if (m->custom_json == NULL) {
        if (!cJSON_AddNullToObject(root, "CustomMetadata")) {
            goto out;
        }
    } else {
        cJSON *cm = cJSON_Parse(m->custom_json);
        if (cm == NULL || !cJSON_IsObject(cm)) {
            cJSON_Delete(cm);
            e = ns_fail(NS_E_PARSE, "eif: custom metadata must be one JSON object");
            goto out;
        }
        cJSON_AddItemToObject(root, "CustomMetadata", cm);
    }
    s = cJSON_PrintUnformatted(root);
    if (s != NULL) {
        e = ns_buf_append_str(out, s);
    }
out:
    if (e == NS_E_NOMEM) {
        e = ns_fail(e, "eif: out of memory writing the metadata JSON");
    }
    cJSON_free(s);
    cJSON_Delete(bm);
    cJSON_Delete(root);
    return e;
}
