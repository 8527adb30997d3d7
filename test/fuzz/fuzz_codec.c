/* libFuzzer target: hex and base64 decoders; whatever decodes must re-encode canonically. */
#include <stdint.h>
#include <string.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t out[4096];
    char back[8192];
    size_t n;
    if (size > 4096 || size == 0) {
        return 0;
    }
    unsigned flags = data[0] & 15;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    if (ns_b64_decode(out, sizeof out, &n, in, len, flags | NS_B64_STRICT) == NS_OK &&
        !(flags & NS_B64_PAD) && memchr(in, '=', len) == NULL) {
        if (ns_b64_encode(back, sizeof back, out, n, flags & NS_B64_URL) != NS_OK ||
            strlen(back) != len || memcmp(back, in, len) != 0) {
            __builtin_trap();
        }
    }
    (void)ns_hex_decode(out, sizeof out, &n, in, len);
    return 0;
}
