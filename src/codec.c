/* codec: see codec.h. Table-free decoding so the decoder has no secret-indexed lookups. */
#include "codec.h"

#include <string.h>

static const char hexdig[] = "0123456789abcdef";
static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t ns_hex_enc_len(size_t n)
{
    return 2 * n;
}

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

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

ns_err ns_hex_decode(uint8_t *out, size_t outcap, size_t *outlen, const char *in, size_t n)
{
    ENSURE(n % 2 == 0, NS_E_PARSE, "hex string has odd length %zu", n);
    ENSURE(n / 2 <= outcap, NS_E_TOO_BIG, "hex string decodes to %zu bytes, limit %zu", n / 2,
           outcap);
    for (size_t i = 0; i < n / 2; i++) {
        int h = hexval(in[2 * i]);
        int l = hexval(in[2 * i + 1]);
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

static int b64val(unsigned char c, int url)
{
    /* branchy but data-independent table-free mapping */
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == (url ? '-' : '+')) {
        return 62;
    }
    if (c == (url ? '_' : '/')) {
        return 63;
    }
    return -1;
}

ns_err ns_b64_decode(uint8_t *out, size_t outcap, size_t *outlen, const char *in, size_t n,
                     unsigned flags)
{
    int url = (flags & NS_B64_URL) != 0;
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
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < m; i++) {
        int v = b64val((unsigned char)in[i], url);
        ENSURE(v >= 0, NS_E_PARSE, "invalid base64 character at offset %zu", i);
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (flags & NS_B64_STRICT) {
        ENSURE(acc == 0, NS_E_PARSE, "non-canonical base64 (trailing bits set)");
    }
    *outlen = o;
    return NS_OK;
}
