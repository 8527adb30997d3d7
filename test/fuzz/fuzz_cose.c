/* libFuzzer target: COSE_Sign1 and attestation document parsing; every slice stays in bounds. */
#include <stdint.h>

#include "cose.h"

static void in_bounds(const uint8_t *data, size_t size, const uint8_t *p, size_t n)
{
    if (n != 0 && (p < data || p + n > data + size)) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ns_cose_sign1 s;
    ns_att_doc d;
    if (ns_cose_sign1_parse(&s, data, size) == NS_OK) {
        in_bounds(data, size, s.payload, s.payload_len);
        in_bounds(data, size, s.sig, s.sig_len);
        if (ns_att_doc_parse(&d, s.payload, s.payload_len) == NS_OK) {
            in_bounds(data, size, d.certificate.p, d.certificate.len);
            for (size_t i = 0; i < d.ncabundle; i++) {
                in_bounds(data, size, d.cabundle[i].p, d.cabundle[i].len);
            }
        }
    }
    /* The payload parser on raw input too (the NSM map is the same reader). */
    if (ns_att_doc_parse(&d, data, size) == NS_OK) {
        in_bounds(data, size, d.module_id.p, d.module_id.len);
    }
    return 0;
}
