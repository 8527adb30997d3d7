/*
 * libFuzzer target: the frame header parser on arbitrary bytes. A header that parses must
 * re-encode to exactly the same 48 bytes (one valid encoding per header), and respect max_size.
 */
#include <stdint.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ns_frame_header h;
    uint64_t max = size > 0 ? (uint64_t)data[0] << 8 : 0;
    if (ns_frame_header_parse(&h, data, size, max) == NS_OK) {
        uint8_t again[NS_FRAME_HEADER_LEN];
        ns_frame_header_encode(again, h.len, h.digest);
        if (size < NS_FRAME_HEADER_LEN || memcmp(again, data, NS_FRAME_HEADER_LEN) != 0 ||
            h.len > max) {
            __builtin_trap();
        }
    }
    return 0;
}
