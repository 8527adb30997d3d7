/* Unit tests for pcr: SHA-384, ExtendPCR's formula and the PCR16 prediction against values
 * computed with Python's hashlib (test/it/test_measured_boot.sh checks the same against the NSM).
 */
#include "pcr.h"
#include "t.h"

/* hashlib: p = 0^48; for d in (b"a", b"b"): p = sha384(p + sha384(d)) */
#define KAT_AB                                                                                     \
    "941baacd1efc683b7bb6335428caa38156c9ebaf035df192fe8c89056f247fba20f0576d54c94ef52bdfd156ccbd" \
    "67a3"

int main(void)
{
    uint8_t p[NS_PCR_LEN], q[NS_PCR_LEN];
    char hex[NS_PCR_HEX_LEN];
    CHECK_ERR(ns_sha384(p, (const uint8_t *)"abc", 3), NS_OK, "sha384");
    ns_pcr_hex(hex, p);
    CHECK(strcmp(hex, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7"
                      "cc2358baeca134c825a7") == 0,
          "sha384(abc) FIPS 180-2 answer");
    CHECK_ERR(ns_pcr16_predict(p, (const uint8_t *)"a", 1, (const uint8_t *)"b", 1, NULL, 0), NS_OK,
              "predict without a configuration");
    ns_pcr_hex(hex, p);
    CHECK(strcmp(hex, KAT_AB) == 0, "PCR16 of (a, b) matches hashlib");
    CHECK_ERR(ns_pcr16_predict(q, (const uint8_t *)"a", 1, (const uint8_t *)"b", 1,
                               (const uint8_t *)"{}", 2),
              NS_OK, "predict with a configuration");
    CHECK(memcmp(p, q, sizeof p) != 0, "the configuration changes PCR16");
    uint8_t d[NS_PCR_LEN];
    CHECK_ERR(ns_sha384(d, (const uint8_t *)"{}", 2), NS_OK, "sha384 of the configuration");
    CHECK_ERR(ns_pcr_extend(p, d, sizeof d), NS_OK, "extend");
    CHECK(memcmp(p, q, sizeof p) == 0, "predict = extend, step by step");
    CHECK_ERR(ns_pcr16_predict(q, (const uint8_t *)"A", 1, (const uint8_t *)"b", 1, NULL, 0), NS_OK,
              "predict");
    ns_pcr_hex(hex, q);
    CHECK(strcmp(hex, KAT_AB) != 0, "one changed byte in the first input changes PCR16");
    T_DONE();
}
