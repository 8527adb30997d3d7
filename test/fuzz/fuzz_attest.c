/*
 * libFuzzer target: attest's parsers. The first byte picks the parser: measurements.json, a
 * --pcr N=HEX spec, or a document file (raw/base64) that, when it parses, is checked against the
 * expectations and rendered as JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    static ns_attest_expect x;
    ns_attest_expect_init(&x);
    uint8_t sel = data[0];
    data++;
    size--;
    if (sel % 3 == 0) {
        (void)ns_attest_expect_measurements(&x, data, size);
        return 0;
    }
    if (sel % 3 == 1) {
        char *s = malloc(size + 1);
        if (s == NULL) {
            return 0;
        }
        memcpy(s, data, size);
        s[size] = 0;
        (void)ns_attest_expect_pcr(&x, s);
        free(s);
        return 0;
    }
    ns_buf doc;
    ns_buf_init(&doc, NS_ATT_DOC_MAX);
    if (ns_attest_decode_input(&doc, data, size) == NS_OK) {
        ns_cose_sign1 s;
        ns_att_doc d;
        if (ns_cose_sign1_parse(&s, doc.data, doc.len) == NS_OK &&
            ns_att_doc_parse(&d, s.payload, s.payload_len) == NS_OK) {
            ns_buf out;
            ns_buf_init(&out, 1 << 20);
            (void)ns_attest_doc_json(&out, &d);
            ns_buf_free(&out);
            x.pcr_set = 0xffffffffu;
            x.nonce.set = x.user_data.set = x.public_key.set = 1;
            (void)ns_attest_check(&d, &x);
        }
    }
    ns_buf_free(&doc);
    return 0;
}
