/* Unit tests for codec: RFC 4648 test vectors, strictness, and negative cases. */
#include "codec.h"
#include "t.h"

static int b64_roundtrip(const char *in, const char *want, unsigned flags)
{
    char out[64];
    if (ns_b64_encode(out, sizeof out, (const uint8_t *)in, strlen(in), flags) != NS_OK) {
        return 0;
    }
    if (strcmp(out, want) != 0) {
        return 0;
    }
    uint8_t back[64];
    size_t n;
    if (ns_b64_decode(back, sizeof back, &n, out, strlen(out), flags & NS_B64_PAD) != NS_OK) {
        return 0;
    }
    return n == strlen(in) && memcmp(back, in, n) == 0;
}

int main(void)
{
    static const char *const v[][3] = {{"", "", ""},          {"f", "Zg==", "Zg"},
                                       {"fo", "Zm8=", "Zm8"}, {"foo", "Zm9v", "Zm9v"},
                                       {"foob", "Zm9vYg==", "Zm9vYg"}, {"fooba", "Zm9vYmE=", "Zm9vYmE"},
                                       {"foobar", "Zm9vYmFy", "Zm9vYmFy"}};
    for (size_t i = 0; i < 7; i++) {
        CHECK(b64_roundtrip(v[i][0], v[i][1], NS_B64_PAD), "rfc4648 padded '%s'", v[i][0]);
        CHECK(b64_roundtrip(v[i][0], v[i][2], 0), "rfc4648 unpadded '%s'", v[i][0]);
    }
    uint8_t out[64];
    size_t n;
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Zh", 2, NS_B64_STRICT), NS_E_PARSE,
              "strict: non-zero trailing bits rejected");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Zg", 2, NS_B64_STRICT), NS_OK, "strict: canonical");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Zg==", 4, NS_B64_NOPAD), NS_E_PARSE,
              "nopad: padding rejected");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Zg", 2, NS_B64_PAD), NS_E_PARSE,
              "pad: missing padding rejected");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Z", 1, 0), NS_E_PARSE, "impossible length");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Zm 9v", 5, 0), NS_E_PARSE, "space rejected");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Z=g=", 4, 0), NS_E_PARSE, "inner '=' rejected");
    CHECK_ERR(ns_b64_decode(out, 2, &n, "Zm9v", 4, 0), NS_E_TOO_BIG, "output cap enforced");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "-_8", 3, NS_B64_URL), NS_OK, "url alphabet");
    CHECK(n == 2 && out[0] == 0xfb && out[1] == 0xff, "url alphabet value");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "-_8", 3, 0), NS_E_PARSE,
              "url chars rejected in std alphabet");

    char hex[16];
    const uint8_t bin[] = {0x00, 0xab, 0xff};
    CHECK_ERR(ns_hex_encode(hex, sizeof hex, bin, 3), NS_OK, "hex encode");
    CHECK(strcmp(hex, "00abff") == 0, "hex encode value");
    CHECK_ERR(ns_hex_encode(hex, 6, bin, 3), NS_E_TOO_BIG, "hex encode cap (NUL counted)");
    CHECK_ERR(ns_hex_decode(out, sizeof out, &n, "00ABff", 6), NS_OK, "hex decode mixed case");
    CHECK(n == 3 && memcmp(out, bin, 3) == 0, "hex decode value");
    CHECK_ERR(ns_hex_decode(out, sizeof out, &n, "abc", 3), NS_E_PARSE, "odd hex rejected");
    CHECK_ERR(ns_hex_decode(out, sizeof out, &n, "zz", 2), NS_E_PARSE, "bad hex digit rejected");
    CHECK_ERR(ns_hex_decode(out, 1, &n, "0000", 4), NS_E_TOO_BIG, "hex decode cap");
    T_DONE();
}
