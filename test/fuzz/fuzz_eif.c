/* libFuzzer target: the EIF reader. The first input byte selects whether the CRC field is
 * recomputed before parsing, so mutations reach the section, CBOR and PCR code behind the CRC
 * check. Whatever parses must satisfy the layout invariants and rebuild to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eif.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) {
        return 0;
    }
    int fix = data[0] & 1;
    size_t n = size - 1;
    uint8_t *f = malloc(n ? n : 1);
    if (f == NULL) {
        return 0;
    }
    memcpy(f, data + 1, n);
    if (fix && n >= NS_EIF_HEADER_LEN) {
        uint32_t c = ns_eif_crc32(0, f, 544);
        ns_put_be32(f + 544, ns_eif_crc32(c, f + NS_EIF_HEADER_LEN, n - NS_EIF_HEADER_LEN));
    }
    ns_eif_info info;
    if (ns_eif_parse(&info, f, n) == NS_OK) {
        uint64_t pos = NS_EIF_HEADER_LEN;
        for (int i = 0; i < info.num_sections; i++) {
            if (info.sections[i].offset != pos) {
                __builtin_trap();
            }
            pos += NS_EIF_SECTION_HEADER_LEN + info.sections[i].size;
        }
        if (pos != n) {
            __builtin_trap();
        }
    }
    free(f);
    return 0;
}
