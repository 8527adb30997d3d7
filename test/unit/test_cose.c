/*
 * Unit tests for cose: the real Nitro attestation documents in $NS_VECTORS/attestation parse,
 * verify against the AWS Nitro root at their own timestamps, and fail once forged; the
 * self-signed negative sample parses but must not verify against the AWS root.
 */
#include "cbor.h"
#include "codec.h"
#include "cose.h"
#include "iox.h"
#include "mbedtls/x509_crt.h"
#include "t.h"

static int load(ns_buf *out, const char *rel)
{
    char path[1024];
    ns_buf raw;
    snprintf(path, sizeof path, "%s/attestation/%s", t_vectors(), rel);
    ns_buf_init(&raw, 1 << 20);
    ns_buf_init(out, 1 << 20);
    if (ns_read_path(path, &raw) != NS_OK) {
        printf("# cannot read %s: %s\n", path, ns_err_msg());
        ns_buf_free(&raw);
        return 0;
    }
    size_t n = strlen(rel);
    int ok = 1;
    if (n > 4 && strcmp(rel + n - 4, ".b64") == 0) {
        ok = ns_buf_reserve(out, raw.len) == NS_OK &&
             ns_b64_decode(out->data, raw.len, &out->len, (const char *)raw.data, raw.len, 0) ==
                 NS_OK;
    } else {
        ok = ns_buf_append(out, raw.data, raw.len) == NS_OK;
    }
    ns_buf_free(&raw);
    return ok;
}

typedef struct {
    const char *file;
    const char *module_id;
    uint64_t timestamp;
    uint8_t pcr0_first;
    size_t public_key_len;
    size_t user_data_len;
    int has_nonce;
} doc_case;

static const doc_case cases[] = {
    {"anjuna-go-nitro-attestation/attestdoc/testdata/sample_prod_doc.bin",
     "i-078824548edcf6519-enc01784234ec227b58", 1616018515685ull, 0x2d, 0, 0, 0},
    {"anjuna-go-nitro-attestation/attestdoc/testdata/sample_prod_doc_with_publickey.bin",
     "i-0a6d65e7122308898-enc017846bcd2f820da", 1616602241734ull, 0x67, 294, 0, 0},
    {"anjuna-go-nitro-attestation/attester/testdata/sample_attestation_doc_full.bin",
     "i-0e4fe5de7ee5abe78-enc018d3cadd7d66279", 1706120065635ull, 0x00, 294, 13, 1},
    {"anjuna-go-nitro-attestation/attester/testdata/sample_prod_doc.bin",
     "i-07ceff4b3ab54305f-enc018aba0189375080", 1695337797673ull, 0x0f, 0, 13, 0},
    {"blocky-nitrite/nitro_attestation.b64", "i-0a22e5c5f24d22174-enc0191cceb4289903f",
     1725719859545ull, 0xe7, 1024, 1024, 1},
    {"blocky-nitrite/nitro_attestation_debug.b64", "i-0a22e5c5f24d22174-enc0191ccebaf8feaba",
     1725719886508ull, 0x00, 1024, 1024, 1},
};

static void print_hex_field(const char *name, const ns_att_bytes *b)
{
    if (!b->present) {
        printf(",\"%s\":null", name);
        return;
    }
    printf(",\"%s\":\"", name);
    for (size_t i = 0; i < b->len; i++) {
        printf("%02x", b->p[i]);
    }
    printf("\"");
}

/*
 * "test_cose dump FILE ROOT_DER": prints the decoded document as one JSON line, for the
 * conformance runner test/vectors/test_attestation.py (which compares it with summary.json).
 */
static int dump(const char *path, const char *root_path)
{
    ns_buf raw, doc, root;
    ns_att_doc d;
    ns_cose_sign1 s;
    ns_buf_init(&raw, 1 << 20);
    ns_buf_init(&doc, 1 << 20);
    ns_buf_init(&root, 1 << 20);
    if (ns_read_path(path, &raw) != NS_OK || ns_read_path(root_path, &root) != NS_OK) {
        fprintf(stderr, "%s\n", ns_err_msg());
        return 2;
    }
    size_t n = strlen(path);
    if (n > 4 && strcmp(path + n - 4, ".b64") == 0) {
        if (ns_buf_reserve(&doc, raw.len) != NS_OK ||
            ns_b64_decode(doc.data, raw.len, &doc.len, (const char *)raw.data, raw.len, 0) !=
                NS_OK) {
            return 2;
        }
    } else if (ns_buf_append(&doc, raw.data, raw.len) != NS_OK) {
        return 2;
    }
    if (ns_cose_sign1_parse(&s, doc.data, doc.len) != NS_OK ||
        ns_att_doc_parse(&d, s.payload, s.payload_len) != NS_OK) {
        printf("{\"parse_error\":\"%s\"}\n", ns_err_msg());
        return 0;
    }
    ns_err v = ns_att_verify(&d, doc.data, doc.len, root.data, root.len);
    printf("{\"cose_sign1_bytes\":%zu,\"protected_header_hex\":\"", doc.len);
    for (size_t i = 0; i < s.protected_len; i++) {
        printf("%02x", s.protected_hdr[i]);
    }
    printf("\",\"payload_bytes\":%zu,\"module_id\":\"%.*s\",\"digest\":\"%.*s\"", s.payload_len,
           (int)d.module_id.len, (const char *)d.module_id.p, (int)d.digest.len,
           (const char *)d.digest.p);
    printf(",\"timestamp_ms\":%llu,\"pcrs\":{", (unsigned long long)d.timestamp);
    int first = 1;
    for (size_t i = 0; i < d.npcr; i++) {
        if (!d.pcr[i].present) {
            continue;
        }
        printf("%s\"%zu\":\"", first ? "" : ",", i);
        for (size_t j = 0; j < d.pcr[i].len; j++) {
            printf("%02x", d.pcr[i].p[j]);
        }
        printf("\"");
        first = 0;
    }
    printf("}");
    print_hex_field("public_key_hex", &d.public_key);
    print_hex_field("user_data_hex", &d.user_data);
    print_hex_field("nonce_hex", &d.nonce);
    if (d.ncabundle) {
        printf(",\"cabundle_len\":%zu", d.ncabundle);
    } else {
        printf(",\"cabundle_len\":null");
    }
    printf(",\"verify\":\"%s\"}\n", ns_err_name(v));
    ns_buf_free(&raw);
    ns_buf_free(&doc);
    ns_buf_free(&root);
    return 0;
}

/* A minimal complete payload, then PAIRS more fields: each "name" followed by null (NULL) or the
 * byte string of that text. */
static void payload_with(ns_buf *b, const char *const *pairs, size_t npairs)
{
    uint8_t pcr[48] = {0};
    ns_buf_init(b, 4096);
    CHECK(
        ns_cbor_put_head(b, NS_CBOR_MAP, 6 + npairs) == NS_OK &&
            ns_cbor_put_tstr(b, "module_id") == NS_OK && ns_cbor_put_tstr(b, "m") == NS_OK &&
            ns_cbor_put_tstr(b, "digest") == NS_OK && ns_cbor_put_tstr(b, "SHA384") == NS_OK &&
            ns_cbor_put_tstr(b, "timestamp") == NS_OK &&
            ns_cbor_put_head(b, NS_CBOR_UINT, 1) == NS_OK && ns_cbor_put_tstr(b, "pcrs") == NS_OK &&
            ns_cbor_put_head(b, NS_CBOR_MAP, 1) == NS_OK &&
            ns_cbor_put_head(b, NS_CBOR_UINT, 0) == NS_OK &&
            ns_cbor_put_bstr(b, pcr, sizeof pcr) == NS_OK &&
            ns_cbor_put_tstr(b, "certificate") == NS_OK && ns_cbor_put_bstr(b, pcr, 1) == NS_OK &&
            ns_cbor_put_tstr(b, "cabundle") == NS_OK &&
            ns_cbor_put_head(b, NS_CBOR_ARRAY, 1) == NS_OK && ns_cbor_put_bstr(b, pcr, 1) == NS_OK,
        "payload built");
    for (size_t i = 0; i < npairs; i++) {
        const char *v = pairs[2 * i + 1];
        CHECK(ns_cbor_put_tstr(b, pairs[2 * i]) == NS_OK &&
                  (v ? ns_cbor_put_bstr(b, (const uint8_t *)v, strlen(v)) : ns_cbor_put_null(b)) ==
                      NS_OK,
              "field %s added", pairs[2 * i]);
    }
}

/* Duplicate keys, whatever their values (issue 22 item 8). */
static void test_duplicates(void)
{
    ns_att_doc d;
    ns_buf b;
    const char *ok[] = {"public_key", NULL, "user_data", "u", "nonce", NULL};
    payload_with(&b, ok, 3);
    CHECK_ERR(ns_att_doc_parse(&d, b.data, b.len), NS_OK, "control: a complete payload parses");
    CHECK(!d.public_key.present && d.user_data.present && !d.nonce.present, "control: fields");
    ns_buf_free(&b);
    const char *fields[] = {"public_key", "user_data", "nonce"};
    for (size_t i = 0; i < 3; i++) {
        const char *dup[] = {fields[i], NULL, fields[i], "evil"};
        payload_with(&b, dup, 2);
        CHECK_ERR(ns_att_doc_parse(&d, b.data, b.len), NS_E_PARSE,
                  "%s null then set: refused (the second value used to win)", fields[i]);
        CHECK(strstr(ns_err_msg(), "duplicate key") != NULL, "%s: says why (%s)", fields[i],
              ns_err_msg());
        ns_buf_free(&b);
    }
    const char *unk[] = {"x", "1", "x", "1"};
    payload_with(&b, unk, 2);
    CHECK_ERR(ns_att_doc_parse(&d, b.data, b.len), NS_E_PARSE, "an unknown key twice: refused");
    ns_buf_free(&b);
    const char *many[2 * 60];
    char names[60][8];
    for (int i = 0; i < 60; i++) {
        snprintf(names[i], sizeof names[i], "k%d", i);
        many[2 * i] = names[i];
        many[2 * i + 1] = NULL;
    }
    payload_with(&b, many, 58); /* 64 keys: the most a map may have */
    CHECK_ERR(ns_att_doc_parse(&d, b.data, b.len), NS_OK, "64 distinct keys parse");
    ns_buf_free(&b);
    payload_with(&b, many, 59);
    CHECK_ERR(ns_att_doc_parse(&d, b.data, b.len), NS_E_TOO_BIG, "65 keys: refused (bounded)");
    ns_buf_free(&b);
    /* The protected header: {1: -35, 4: h'', 4: h''} (kid twice). */
    const uint8_t hdr_dup[] = {0x84, 0x47, 0xa3, 0x01, 0x38, 0x22, 0x04,
                               0x40, 0x04, 0x40, 0xa0, 0x40, 0x40};
    ns_cose_sign1 s;
    CHECK_ERR(ns_cose_sign1_parse(&s, hdr_dup, sizeof hdr_dup), NS_E_PARSE,
              "protected header: a label twice refused");
    const uint8_t hdr_arr[] = {0x84, 0x46, 0xa2, 0x01, 0x38, 0x22, 0x80, 0x40, 0xa0, 0x40, 0x40};
    CHECK_ERR(ns_cose_sign1_parse(&s, hdr_arr, sizeof hdr_arr), NS_E_PARSE,
              "protected header: an array label refused");
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "dump") == 0) {
        return dump(argv[2], argv[3]);
    }
    mbedtls_x509_crt root;
    char rootpath[1024];
    mbedtls_x509_crt_init(&root);
    snprintf(rootpath, sizeof rootpath, "%s/attestation/aws-nitro-enclaves-root-G1.pem",
             t_vectors());
    ns_buf pem;
    ns_buf_init(&pem, 1 << 16);
    CHECK(ns_read_path(rootpath, &pem) == NS_OK && ns_buf_cstr(&pem) == NS_OK &&
              mbedtls_x509_crt_parse(&root, pem.data, pem.len + 1) == 0,
          "AWS Nitro root G1 loads");
    ns_buf_free(&pem);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const doc_case *k = &cases[i];
        ns_buf doc;
        ns_att_doc d;
        CHECK(load(&doc, k->file), "%s: read", k->file);
        CHECK_ERR(ns_att_verify(&d, doc.data, doc.len, root.raw.p, root.raw.len), NS_OK,
                  "%s: verifies against the AWS root at its timestamp", k->file);
        CHECK(d.module_id.len == strlen(k->module_id) &&
                  memcmp(d.module_id.p, k->module_id, d.module_id.len) == 0,
              "%s: module_id", k->file);
        CHECK(d.timestamp == k->timestamp, "%s: timestamp", k->file);
        CHECK(d.npcr == 16 && d.pcr[0].len == 48 && d.pcr[0].p[0] == k->pcr0_first &&
                  d.pcr[15].present,
              "%s: 16 PCRs of 48 bytes, PCR0 starts %02x", k->file, k->pcr0_first);
        CHECK(d.ncabundle == 4 && d.cabundle[0].len == root.raw.len &&
                  memcmp(d.cabundle[0].p, root.raw.p, root.raw.len) == 0,
              "%s: cabundle[0] is the AWS root", k->file);
        CHECK(d.public_key.len == k->public_key_len && d.user_data.len == k->user_data_len &&
                  d.nonce.present == k->has_nonce,
              "%s: public_key/user_data/nonce sizes", k->file);

        /* Forgeries: a flipped signature bit, a flipped PCR bit, a truncated document. */
        ns_cose_sign1 s;
        CHECK_ERR(ns_cose_sign1_parse(&s, doc.data, doc.len), NS_OK, "%s: COSE parse", k->file);
        size_t sig_off = (size_t)(s.sig - doc.data), pcr_off = (size_t)(d.pcr[0].p - doc.data);
        doc.data[sig_off + 10] ^= 1;
        CHECK_ERR(ns_att_verify(&d, doc.data, doc.len, root.raw.p, root.raw.len), NS_E_AUTH,
                  "%s: flipped signature bit rejected", k->file);
        doc.data[sig_off + 10] ^= 1;
        doc.data[pcr_off] ^= 0x80;
        CHECK_ERR(ns_att_verify(&d, doc.data, doc.len, root.raw.p, root.raw.len), NS_E_AUTH,
                  "%s: flipped PCR0 bit rejected", k->file);
        doc.data[pcr_off] ^= 0x80;
        CHECK(ns_att_verify(&d, doc.data, doc.len - 1, root.raw.p, root.raw.len) != NS_OK,
              "%s: truncated document rejected", k->file);
        ns_buf_free(&doc);
    }

    /* The chain verifies only at the document's time: a leaf lives ~3 hours. */
    {
        ns_buf doc;
        ns_att_doc d;
        CHECK(load(&doc, cases[0].file), "reload sample_prod_doc");
        ns_cose_sign1 s;
        CHECK_ERR(ns_cose_sign1_parse(&s, doc.data, doc.len), NS_OK, "sample_prod_doc: parse");
        CHECK_ERR(ns_att_doc_parse(&d, s.payload, s.payload_len), NS_OK,
                  "sample_prod_doc: payload parse");
        CHECK_ERR(ns_cose_sign1_verify(&s, d.cabundle[3].p, d.cabundle[3].len), NS_E_AUTH,
                  "signature does not verify with the instance CA key instead of the leaf");
        ns_buf_free(&doc);
    }

    /* QEMU's emulated NSM marks its unsigned documents alg -1 (hw/virtio/virtio-nsm.c): such a
     * document parses (so the emulator flow can read it) and never verifies; any other
     * algorithm is refused at parse. */
    {
        uint8_t q[8 + 66] = {0x84, 0x43, 0xa1, 0x01, 0x20, 0xa0, 0x41, 0xa0, 0x58, 0x40};
        ns_cose_sign1 s;
        CHECK_ERR(ns_cose_sign1_parse(&s, q, 10 + 64), NS_OK, "QEMU's alg -1 document parses");
        CHECK(s.unsigned_alg == 1 && s.sig_len == 64, "and is marked unsigned");
        CHECK_ERR(ns_cose_sign1_verify(&s, q, 4), NS_E_AUTH, "an alg -1 document never verifies");
        uint8_t es512[] = {0x84, 0x44, 0xa1, 0x01, 0x38, 0x23, 0xa0, 0x41, 0xa0, 0x40};
        CHECK_ERR(ns_cose_sign1_parse(&s, es512, sizeof es512), NS_E_UNSUPPORTED,
                  "alg -36 (ES512) is refused");
        uint8_t es384[] = {0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x41, 0xa0, 0x40};
        CHECK_ERR(ns_cose_sign1_parse(&s, es384, sizeof es384), NS_OK, "alg -35 parses");
        CHECK(s.unsigned_alg == 0, "and is not marked unsigned");
    }

    /* Negative sample: self-signed, cabundle null, timestamp in seconds, 32 PCRs. */
    {
        ns_buf doc, cert;
        ns_att_doc d;
        ns_cose_sign1 s;
        CHECK(load(&doc, "blocky-nitrite/selfsigned_attestation.b64"), "selfsigned: read");
        CHECK(load(&cert, "blocky-nitrite/selfsigned_cert.der"), "selfsigned cert: read");
        CHECK_ERR(ns_cose_sign1_parse(&s, doc.data, doc.len), NS_OK,
                  "selfsigned: COSE parses (null unprotected header accepted)");
        CHECK_ERR(ns_att_doc_parse(&d, s.payload, s.payload_len), NS_OK,
                  "selfsigned: payload parses");
        CHECK(d.npcr == 32 && d.ncabundle == 0 && d.timestamp == 1713379906ull &&
                  d.public_key.len == 65,
              "selfsigned: 32 PCRs, no cabundle, seconds timestamp, 65-byte key");
        CHECK_ERR(ns_cose_sign1_verify(&s, cert.data, cert.len), NS_OK,
                  "selfsigned: signature verifies with its own certificate");
        CHECK_ERR(ns_att_verify(&d, doc.data, doc.len, root.raw.p, root.raw.len), NS_E_AUTH,
                  "selfsigned: rejected against the AWS root");
        ns_buf_free(&doc);
        ns_buf_free(&cert);
    }

    /* Structural negatives. */
    {
        ns_cose_sign1 s;
        ns_att_doc d;
        const uint8_t not_array[] = {0xa0};
        const uint8_t wrong_tag[] = {0xd8, 0x62, 0x84, 0x40, 0xa0, 0x40, 0x40};
        const uint8_t es256[] = {0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0x40, 0x40};
        const uint8_t three[] = {0x83, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x40};
        CHECK_ERR(ns_cose_sign1_parse(&s, not_array, sizeof not_array), NS_E_PARSE,
                  "COSE: a map is not COSE_Sign1");
        CHECK_ERR(ns_cose_sign1_parse(&s, wrong_tag, sizeof wrong_tag), NS_E_PARSE,
                  "COSE: tag 98 (COSE_Sign) rejected");
        CHECK_ERR(ns_cose_sign1_parse(&s, es256, sizeof es256), NS_E_UNSUPPORTED,
                  "COSE: ES256 rejected");
        CHECK_ERR(ns_cose_sign1_parse(&s, three, sizeof three), NS_E_PARSE,
                  "COSE: array of 3 rejected");
        uint8_t sig_short[] = {0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x40, 0x41, 0x00};
        /* QEMU's emulated NSM signs nothing (64 zero bytes): such a document parses (its
         * public_key is read) but never verifies. */
        CHECK_ERR(ns_cose_sign1_parse(&s, sig_short, sizeof sig_short), NS_OK,
                  "COSE: a 1-byte signature parses");
        CHECK(s.sig_len == 1, "COSE: and is reported as 1 byte long");
        CHECK_ERR(ns_cose_sign1_verify(&s, sig_short, sizeof sig_short), NS_E_AUTH,
                  "COSE: but never verifies (checked before anything else)");
        const uint8_t empty_map[] = {0xa0};
        CHECK_ERR(ns_att_doc_parse(&d, empty_map, 1), NS_E_PARSE,
                  "attestation: empty map lacks required fields");
        /* {"digest": "SHA256", ...} minimal wrong digest */
        const uint8_t dup[] = {0xa2, 0x69, 't', 'i', 'm', 'e', 's', 't', 'a', 'm', 'p', 0x01,
                               0x69, 't',  'i', 'm', 'e', 's', 't', 'a', 'm', 'p', 0x02};
        CHECK_ERR(ns_att_doc_parse(&d, dup, sizeof dup), NS_E_PARSE,
                  "attestation: duplicate timestamp rejected");
        const uint8_t badpcr[] = {0xa1, 0x64, 'p', 'c', 'r', 's', 0xa1, 0x18, 0x40, 0x40};
        CHECK_ERR(ns_att_doc_parse(&d, badpcr, sizeof badpcr), NS_E_PARSE,
                  "attestation: PCR index 64 rejected");
    }
    test_duplicates();
    mbedtls_x509_crt_free(&root);
    T_DONE();
}
