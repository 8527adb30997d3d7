/* Unit tests for cbor: RFC 8949 appendix A examples, the writer, bounds, and malformed input. */
#include "cbor.h"
#include "t.h"

static ns_err head_of(const uint8_t *p, size_t n, ns_cbor_item *it)
{
    ns_cur c;
    ns_cur_init(&c, p, n);
    return ns_cbor_head(&c, it);
}

static ns_err skip_all(const uint8_t *p, size_t n, size_t *used)
{
    ns_cur c;
    ns_cur_init(&c, p, n);
    ns_err e = ns_cbor_skip(&c);
    *used = c.pos;
    return e;
}

int main(void)
{
    ns_cbor_item it;
    size_t used;

    /* Integers (RFC 8949 appendix A). */
    const uint8_t u0[] = {0x00}, u23[] = {0x17}, u24[] = {0x18, 0x18}, u1000[] = {0x19, 0x03, 0xe8};
    const uint8_t u1e12[] = {0x1b, 0x00, 0x00, 0x00, 0xe8, 0xd4, 0xa5, 0x10, 0x00};
    const uint8_t n1000[] = {0x39, 0x03, 0xe7};
    CHECK(head_of(u0, 1, &it) == NS_OK && it.major == NS_CBOR_UINT && it.val == 0, "uint 0");
    CHECK(head_of(u23, 1, &it) == NS_OK && it.val == 23, "uint 23");
    CHECK(head_of(u24, 2, &it) == NS_OK && it.val == 24, "uint 24");
    CHECK(head_of(u1000, 3, &it) == NS_OK && it.val == 1000, "uint 1000");
    CHECK(head_of(u1e12, 9, &it) == NS_OK && it.val == 1000000000000ull, "uint 1e12");
    CHECK(head_of(n1000, 3, &it) == NS_OK && it.major == NS_CBOR_NINT && it.val == 999,
          "nint -1000");

    /* Strings. */
    const uint8_t b4[] = {0x44, 0x01, 0x02, 0x03, 0x04}, tietf[] = {0x64, 'I', 'E', 'T', 'F'};
    CHECK(head_of(b4, 5, &it) == NS_OK && it.major == NS_CBOR_BSTR && it.val == 4 &&
              it.data == b4 + 1,
          "bstr h'01020304' sliced in place");
    CHECK(head_of(tietf, 5, &it) == NS_OK && ns_cbor_tstr_eq(&it, "IETF"), "tstr \"IETF\"");
    CHECK(!ns_cbor_tstr_eq(&it, "IET") && !ns_cbor_tstr_eq(&it, "IETFx"), "tstr_eq length-exact");

    /* Nested containers skip as one item. */
    const uint8_t nested[] = {0xa2, 0x61, 'a', 0x01, 0x61, 'b', 0x82, 0x02, 0x03, 0xff};
    CHECK_ERR(skip_all(nested, sizeof nested, &used), NS_OK, "skip {\"a\": 1, \"b\": [2, 3]}");
    CHECK(used == 9, "skip stops after the map (trailing byte untouched)");
    const uint8_t tagged[] = {0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40};
    CHECK_ERR(skip_all(tagged, sizeof tagged, &used), NS_OK, "skip tag 18 [h'', {}, null, h'']");
    CHECK(used == sizeof tagged, "skip consumed the tagged array");

    /* Simple values. */
    const uint8_t sv[] = {0xf4, 0xf5, 0xf6};
    CHECK(head_of(sv + 2, 1, &it) == NS_OK && it.major == NS_CBOR_SIMPLE && it.ai == NS_CBOR_NULL,
          "null");
    CHECK(head_of(sv, 1, &it) == NS_OK && it.ai == NS_CBOR_FALSE, "false");

    /* Negative cases. */
    const uint8_t overlong1[] = {0x18, 0x05}, overlong2[] = {0x19, 0x00, 0xff};
    const uint8_t overlong8[] = {0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    CHECK_ERR(head_of(overlong1, 2, &it), NS_E_PARSE, "non-minimal 1-byte head rejected");
    CHECK_ERR(head_of(overlong2, 3, &it), NS_E_PARSE, "non-minimal 2-byte head rejected");
    CHECK_ERR(head_of(overlong8, 9, &it), NS_E_PARSE, "non-minimal 8-byte head rejected");
    const uint8_t indef[] = {0x5f, 0x41, 0x00, 0xff}, reserved[] = {0x1c};
    CHECK_ERR(head_of(indef, 4, &it), NS_E_UNSUPPORTED, "indefinite length rejected");
    CHECK_ERR(head_of(reserved, 1, &it), NS_E_PARSE, "reserved additional info 28 rejected");
    const uint8_t simple_bad[] = {0xf8, 0x10};
    CHECK_ERR(head_of(simple_bad, 2, &it), NS_E_PARSE, "two-byte simple value < 32 rejected");
    const uint8_t shortstr[] = {0x45, 0x01, 0x02};
    CHECK_ERR(head_of(shortstr, 3, &it), NS_E_TRUNCATED, "bstr longer than the input");
    const uint8_t hugestr[] = {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_ERR(head_of(hugestr, 9, &it), NS_E_TRUNCATED, "bstr of 2^64-1 bytes");
    const uint8_t hugearr[] = {0x9b, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x00};
    CHECK_ERR(head_of(hugearr, sizeof hugearr, &it), NS_E_TRUNCATED,
              "array count larger than the bytes left");
    const uint8_t hugemap[] = {0xa2, 0x00, 0x00, 0x00};
    CHECK_ERR(head_of(hugemap, sizeof hugemap, &it), NS_E_TRUNCATED,
              "map of 2 pairs in 3 bytes rejected");
    const uint8_t trunc_head[] = {0x19, 0x01};
    CHECK_ERR(head_of(trunc_head, 2, &it), NS_E_TRUNCATED, "truncated head");
    CHECK_ERR(head_of(trunc_head, 0, &it), NS_E_TRUNCATED, "empty input");
    const uint8_t trunc_arr[] = {0x83, 0x01, 0x02};
    CHECK_ERR(skip_all(trunc_arr, sizeof trunc_arr, &used), NS_E_TRUNCATED,
              "skip of a truncated array");

    /* Deep nesting costs no stack: 100000 nested one-element arrays around a 0. */
    {
        size_t depth = 60000;
        uint8_t *deep = malloc(depth + 1);
        memset(deep, 0x81, depth);
        deep[depth] = 0x00;
        CHECK_ERR(skip_all(deep, depth + 1, &used), NS_OK, "skip of %zu nested arrays", depth);
        CHECK(used == depth + 1, "deep skip consumed everything");
        free(deep);
        size_t many = NS_CBOR_MAX_ITEMS + 10;
        uint8_t *big = malloc(many + 5);
        big[0] = 0x9a;
        ns_put_be32(big + 1, (uint32_t)many);
        memset(big + 5, 0x00, many);
        CHECK_ERR(skip_all(big, many + 5, &used), NS_E_TOO_BIG, "item count limit enforced");
        free(big);
    }

    /* Writer round trip. */
    ns_buf b;
    ns_buf_init(&b, 1 << 20);
    static const uint64_t vals[] = {
        0, 23, 24, 255, 256, 65535, 65536, 0xffffffffull, 0x100000000ull};
    int rt = 1;
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        ns_buf_reset(&b);
        ns_cur c;
        if (ns_cbor_put_head(&b, NS_CBOR_UINT, vals[i]) != NS_OK) {
            rt = 0;
            continue;
        }
        ns_cur_init(&c, b.data, b.len);
        if (ns_cbor_head(&c, &it) != NS_OK || it.val != vals[i] || ns_cur_left(&c) != 0) {
            rt = 0;
        }
    }
    CHECK(rt, "writer heads are minimal and read back");
    ns_buf_reset(&b);
    CHECK(ns_cbor_put_tstr(&b, "GetRandom") == NS_OK && b.len == 10 && b.data[0] == 0x69,
          "tstr \"GetRandom\" encodes as 0x69 + 9 bytes");
    ns_buf_reset(&b);
    const uint8_t z[300] = {0};
    CHECK(ns_cbor_put_bstr(&b, z, 300) == NS_OK && b.len == 303 && b.data[0] == 0x59,
          "bstr of 300 bytes uses a 2-byte length");
    ns_buf_free(&b);
    T_DONE();
}
