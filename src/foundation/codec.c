/* codec: see codec.h. Hex and base64 decoding are table-free and branch-free on the characters
 * (no secret-indexed lookups): both decode private keys. */
#include "codec.h"

#include <string.h>

static const char hexdig[] = "0123456789abcdef";
static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

ns_err ns_hex_encode(char *out, size_t outcap, const uint8_t *in, size_t n)
{
    ENSURE(n <= (outcap - 1) / 2 && outcap > 0, NS_E_TOO_BIG, "hex output buffer too small");
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[in[i] >> 4];
        out[2 * i + 1] = hexdig[in[i] & 15];
    }
    out[2 * n] = '\0';
    return NS_OK;
}

/* All ones when lo <= c <= hi, else zero (c, lo, hi below 2^31): both differences are negative
 * exactly then. Branch-free, like the base64 decoder below: hex also carries private keys. */
static inline uint32_t ct_in_range(uint32_t c, uint32_t lo, uint32_t hi)
{
    return 0u - ((((lo - 1) - c) & (c - (hi + 1))) >> 31);
}

int ns_hex_digit(unsigned char c)
{
    uint32_t x = c;
    uint32_t lc = x | 0x20; /* 'A'..'F' -> 'a'..'f'; only those two ranges land in 'a'..'f' */
    uint32_t digit = ct_in_range(x, '0', '9');
    uint32_t alpha = ct_in_range(lc, 'a', 'f');
    uint32_t v = (digit & (x - '0')) | (alpha & (lc - 'a' + 10));
    return (int)v - (int)(~(digit | alpha) & 1); /* v is 0 when c is not a hex digit */
}

ns_err ns_hex_decode(uint8_t *out, size_t outcap, size_t *outlen, const char *in, size_t n)
{
    ENSURE(n % 2 == 0, NS_E_PARSE, "hex string has odd length %zu", n);
    ENSURE(n / 2 <= outcap, NS_E_TOO_BIG, "hex string decodes to %zu bytes, limit %zu", n / 2,
           outcap);
    for (size_t i = 0; i < n / 2; i++) {
        int h = ns_hex_digit((unsigned char)in[2 * i]);
        int l = ns_hex_digit((unsigned char)in[2 * i + 1]);
        ENSURE(h >= 0 && l >= 0, NS_E_PARSE, "invalid hex digit at offset %zu",
               h < 0 ? 2 * i : 2 * i + 1);
        out[i] = (uint8_t)(h << 4 | l);
    }
    *outlen = n / 2;
    return NS_OK;
}

size_t ns_b64_enc_len(size_t n, unsigned flags)
{
    if (flags & NS_B64_PAD) {
        return (n + 2) / 3 * 4;
    }
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

ns_err ns_b64_encode(char *out, size_t outcap, const uint8_t *in, size_t n, unsigned flags)
{
    const char *a = (flags & NS_B64_URL) ? b64url : b64std;
    size_t need = ns_b64_enc_len(n, flags);
    ENSURE(outcap > need, NS_E_TOO_BIG, "base64 output buffer too small");
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        if (flags & NS_B64_PAD) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        if (flags & NS_B64_PAD) {
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return NS_OK;
}

size_t ns_b64_dec_max(size_t n)
{
    return n / 4 * 3 + 3;
}

/*
 * Constant-time base64 decoding (the decoder also sees private keys): the characters are mapped
 * with mask arithmetic, with no lookups indexed by them and no branches on their values. The only
 * data-dependent branch is "was this group of four valid", which ends the decode with an error.
 *
 * A group of four characters sits in the four 8-bit lanes of a uint32_t (SWAR). For a 7-bit
 * lane value c, c + (0x80 - lo) sets the lane's top bit exactly when c >= lo and never carries
 * into the next lane, so each range test is one add and one and for all four characters.
 * Characters >= 0x80 are outside the alphabet and flagged first.
 */
#define B64_LANES 0x01010101u
#define B64_TOPS 0x80808080u

/* Lane top bits set where lane >= lo (lanes must be below 0x80, 1 <= lo <= 0x80). */
static inline uint32_t b64_ge(uint32_t y, uint32_t lo)
{
    return (y + B64_LANES * (0x80u - lo)) & B64_TOPS;
}

/* Lane top bits where lo <= lane <= hi, widened to whole-lane masks. */
static inline uint32_t b64_in(uint32_t y, uint32_t lo, uint32_t hi)
{
    uint32_t t = b64_ge(y, lo) & ~b64_ge(y, hi + 1);
    return t | (t - (t >> 7));
}

/*
 * Decodes four characters (c62, c63: '+' '/' or '-' '_') into their 24 bits at *bits. Returns
 * nonzero when any of them is outside the alphabet.
 */
static inline uint32_t b64_group(const unsigned char q[4], uint32_t c62, uint32_t c63,
                                 uint32_t *bits)
{
    uint32_t x = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    uint32_t y = x & ~B64_TOPS;
    uint32_t upper = b64_in(y, 'A', 'Z');
    uint32_t lower = b64_in(y, 'a', 'z');
    uint32_t digit = b64_in(y, '0', '9');
    uint32_t is62 = b64_in(y, c62, c62);
    uint32_t is63 = b64_in(y, c63, c63);
    /* per lane: masked character minus or plus its range's offset; never borrows or carries */
    uint32_t v = ((y & upper) - (upper & B64_LANES * 'A')) |
                 ((y & lower) - (lower & B64_LANES * ('a' - 26))) |
                 ((y & digit) + (digit & B64_LANES * (52 - '0'))) | (is62 & B64_LANES * 62) |
                 (is63 & B64_LANES * 63);
    uint32_t valid = (upper | lower | digit | is62 | is63) & ~x & B64_TOPS;
    *bits = (v & 63) << 18 | (v >> 8 & 63) << 12 | (v >> 16 & 63) << 6 | (v >> 24 & 63);
    return valid ^ B64_TOPS;
}

/* Offset of the first character among in[0..k) outside the alphabet (error path only). */
static size_t b64_first_bad(const char *in, size_t k, uint32_t c62, uint32_t c63)
{
    size_t j = 0;
    for (; j < k; j++) {
        unsigned char q[4] = {(unsigned char)in[j], 'A', 'A', 'A'};
        uint32_t bits;
        if (b64_group(q, c62, c63, &bits) != 0) {
            break;
        }
    }
    return j;
}

ns_err ns_b64_decode(uint8_t *out, size_t outcap, size_t *outlen, const char *in, size_t n,
                     unsigned flags)
{
    uint32_t c62 = (flags & NS_B64_URL) ? '-' : '+';
    uint32_t c63 = (flags & NS_B64_URL) ? '_' : '/';
    size_t pad = 0;
    while (pad < 2 && n > pad && in[n - 1 - pad] == '=') {
        pad++;
    }
    if (pad > 0) {
        ENSURE(!(flags & NS_B64_NOPAD), NS_E_PARSE, "base64 padding not allowed here");
        ENSURE(n % 4 == 0, NS_E_PARSE, "base64 padding at the wrong place");
    } else if (flags & NS_B64_PAD) {
        ENSURE(n % 4 == 0, NS_E_PARSE, "base64 length %zu is not a multiple of 4", n);
    }
    size_t m = n - pad;
    ENSURE(m % 4 != 1, NS_E_PARSE, "base64 length %zu is impossible", n);
    size_t need = m / 4 * 3 + (m % 4 == 0 ? 0 : m % 4 - 1);
    ENSURE(need <= outcap, NS_E_TOO_BIG, "base64 decodes to %zu bytes, limit %zu", need, outcap);
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0;
    size_t o = 0;
    uint32_t v;
    /* four characters -> three bytes per step */
    for (; i + 4 <= m; i += 4, o += 3) {
        ENSURE(b64_group(p + i, c62, c63, &v) == 0, NS_E_PARSE,
               "invalid base64 character at offset %zu", i + b64_first_bad(in + i, 4, c62, c63));
        out[o] = (uint8_t)(v >> 16);
        out[o + 1] = (uint8_t)(v >> 8);
        out[o + 2] = (uint8_t)v;
    }
    /* a final group of two or three characters ('A' = 0 fills it): one or two bytes and four or
     * two leftover bits, which NS_B64_STRICT requires to be zero */
    uint32_t rest = 0;
    if (i < m) {
        size_t k = m - i;
        unsigned char q[4] = {'A', 'A', 'A', 'A'};
        memcpy(q, p + i, k);
        ENSURE(b64_group(q, c62, c63, &v) == 0, NS_E_PARSE,
               "invalid base64 character at offset %zu", i + b64_first_bad(in + i, k, c62, c63));
        out[o++] = (uint8_t)(v >> 16);
        if (k == 3) {
            out[o++] = (uint8_t)(v >> 8);
        }
        rest = k == 3 ? v & 0xffu : v & 0xffffu;
    }
    if (flags & NS_B64_STRICT) {
        ENSURE(rest == 0, NS_E_PARSE, "non-canonical base64 (trailing bits set)");
    }
    *outlen = o;
    return NS_OK;
}
