/* Unit tests for buf: bounds, growth, secret buffers, cursors (negative cases included). */
#include "buf.h"
#include "t.h"

int main(void)
{
    ns_buf b;
    ns_buf_init(&b, 10);
    CHECK_ERR(ns_buf_append(&b, "0123456789", 10), NS_OK, "append up to max");
    CHECK_ERR(ns_buf_append(&b, "x", 1), NS_E_TOO_BIG, "append past max is refused");
    CHECK(b.len == 10, "failed append leaves the buffer unchanged");
    CHECK_ERR(ns_buf_cstr(&b), NS_OK, "cstr at max fits the NUL");
    CHECK(strcmp((char *)b.data, "0123456789") == 0, "cstr content");
    ns_buf_consume(&b, 4);
    CHECK(b.len == 6 && memcmp(b.data, "456789", 6) == 0, "consume moves the rest down");
    ns_buf_free(&b);
    ns_buf_free(&b);
    CHECK(b.data == NULL, "double free is safe");

    ns_buf_init_secret(&b, 1 << 20);
    for (int i = 0; i < 1000; i++) {
        if (ns_buf_append(&b, "secret-bytes", 12) != NS_OK) {
            break;
        }
    }
    CHECK(b.len == 12000, "secret buffer grows across reallocations");
    CHECK(memcmp(b.data + 11988, "secret-bytes", 12) == 0, "secret buffer keeps content on growth");
    ns_buf_free(&b);

    ns_buf_init(&b, 64);
    CHECK_ERR(ns_buf_printf(&b, "%s=%d", "a", 42), NS_OK, "printf");
    CHECK(b.len == 4 && memcmp(b.data, "a=42", 4) == 0, "printf content");
    CHECK_ERR(ns_buf_printf(&b, "%100s", "x"), NS_E_TOO_BIG, "printf past max refused");
    ns_buf_free(&b);

    ns_buf_init(&b, 64);
    CHECK_ERR(ns_buf_append_json_str(&b, "a\"b\\c\n\x01\xc3\xa9" "d", 9), NS_OK, "json string");
    CHECK(b.len == 23 && memcmp(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9\"", 23) == 0,
          "json string: quote, backslash and control bytes escaped, UTF-8 kept, stops at n");
    ns_buf_reset(&b);
    CHECK_ERR(ns_buf_append_json_str(&b, "", 0), NS_OK, "json string: empty");
    CHECK(b.len == 2 && memcmp(b.data, "\"\"", 2) == 0, "json string: empty is \"\"");
    ns_buf_free(&b);
    ns_buf_init(&b, 4);
    CHECK_ERR(ns_buf_append_json_str(&b, "abcd", 4), NS_E_TOO_BIG, "json string past max refused");
    ns_buf_free(&b);

    const uint8_t data[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    ns_cur c;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    ns_cur_init(&c, data, sizeof data);
    CHECK_ERR(ns_cur_u8(&c, &u8), NS_OK, "u8");
    CHECK(u8 == 1, "u8 value");
    CHECK_ERR(ns_cur_be16(&c, &u16), NS_OK, "be16");
    CHECK(u16 == 0x0203, "be16 value");
    CHECK_ERR(ns_cur_be32(&c, &u32), NS_OK, "be32");
    CHECK(u32 == 0x04050607, "be32 value");
    CHECK_ERR(ns_cur_le64(&c, &u64), NS_OK, "le64");
    CHECK(u64 == 0x0f0e0d0c0b0a0908ull, "le64 value");
    CHECK(ns_cur_left(&c) == 0, "cursor consumed");
    CHECK_ERR(ns_cur_u8(&c, &u8), NS_E_TRUNCATED, "read past end is truncated");
    ns_cur_init(&c, data, 3);
    CHECK_ERR(ns_cur_be32(&c, &u32), NS_E_TRUNCATED, "be32 on 3 bytes is truncated");
    CHECK(c.pos == 0, "a failed read does not advance");
    ns_cur sub;
    ns_cur_init(&c, data, sizeof data);
    CHECK_ERR(ns_cur_sub(&c, &sub, 4), NS_OK, "sub-cursor");
    CHECK_ERR(ns_cur_be64(&sub, &u64), NS_E_TRUNCATED, "sub-cursor is bounded");
    CHECK_ERR(ns_cur_skip(&c, (size_t)-1), NS_E_TRUNCATED, "huge skip is refused");
    uint8_t out[8];
    ns_put_be64(out, 0x0102030405060708ull);
    CHECK(out[0] == 1 && out[7] == 8, "put_be64");
    ns_put_le32(out, 0x01020304);
    CHECK(out[0] == 4 && out[3] == 1, "put_le32");
    T_DONE();
}
