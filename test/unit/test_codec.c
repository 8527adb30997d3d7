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


/* The alphabet value of byte c, or -1: the plain reference the branch-free decoder must match. */
static int ref_b64(int c, int url)
{
    const char *a = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *f = c == 0 ? NULL : strchr(a, c);
    return f ? (int)(f - a) : -1;
}

/* Every byte value in every position of a four-character group, both alphabets. */
static int all_bytes_match_reference(void)
{
    for (int url = 0; url <= 1; url++) {
        for (int c = 0; c < 256; c++) {
            for (int pos = 0; pos < 4; pos++) {
                char in[4] = {'A', 'A', 'A', 'A'};
                in[pos] = (char)c;
                uint8_t out[3];
                size_t n;
                ns_err e = ns_b64_decode(out, sizeof out, &n, in, 4, url ? NS_B64_URL : 0);
                int want = ref_b64(c, url);
                if (c == '=' && pos == 3) {
                    continue; /* "AAA=" is padding, not a character */
                }
                if (want < 0) {
                    char msg[64];
                    snprintf(msg, sizeof msg, "at offset %d", pos);
                    if (e != NS_E_PARSE || strstr(ns_err_msg(), msg) == NULL) {
                        return 0;
                    }
                    continue;
                }
                uint32_t v = (uint32_t)want << (18 - 6 * pos);
                if (e != NS_OK || n != 3 || out[0] != (uint8_t)(v >> 16) ||
                    out[1] != (uint8_t)(v >> 8) || out[2] != (uint8_t)v) {
                    return 0;
                }
            }
        }
    }
    return 1;
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
    CHECK(all_bytes_match_reference(), "every byte value at every group position, both alphabets");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Zm9vYmFyY\xc1z", 11, 0), NS_E_PARSE,
              "a byte >= 0x80 in the final group rejected");
    CHECK(strstr(ns_err_msg(), "offset 9") != NULL, "its offset reported: %s", ns_err_msg());
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Zm9vYm[y", 8, 0), NS_E_PARSE,
              "'[' (just past 'Z') rejected");
    CHECK(strstr(ns_err_msg(), "offset 6") != NULL, "its offset reported: %s", ns_err_msg());
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Zm9vYmFy", 8, NS_B64_STRICT), NS_OK,
              "two full groups");
    CHECK(n == 6 && memcmp(out, "foobar", 6) == 0, "two full groups value");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Zm9vYmE", 7, NS_B64_STRICT), NS_OK,
              "a group and three characters");
    CHECK(n == 5 && memcmp(out, "fooba", 5) == 0, "a group and three characters value");
    CHECK_ERR(ns_b64_decode(out, sizeof out, &n, "Zm9vYmF", 7, NS_B64_STRICT), NS_E_PARSE,
              "strict: two trailing bits set after three characters rejected");

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
    int hex_ok = 1;
    for (int c = 0; c < 256; c++) {
        int want = -1;
        for (int k = 0; k < 16; k++) {
            if (c == "0123456789abcdef"[k] || c == "0123456789ABCDEF"[k]) {
                want = k;
            }
        }
        hex_ok &= ns_hex_digit((unsigned char)c) == want;
    }
    CHECK(hex_ok, "ns_hex_digit: every byte value, both cases");
    T_DONE();
}
