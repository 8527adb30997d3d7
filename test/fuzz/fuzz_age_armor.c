/* libFuzzer target: the age ASCII-armor decoder. Whatever decodes must have come from canonical
 * 64-column base64, so its size is bounded by the input's. */
#include <stdint.h>
#include <stdlib.h>

#include "age.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ns_buf out;
    ns_buf_init(&out, 1u << 20);
    ns_err e = ns_age_armor_decode_mem(&out, data, size);
    if (e == NS_OK && out.len > size * 3 / 4) {
        __builtin_trap();
    }
    ns_buf_free(&out);
    return 0;
}
