/* libFuzzer target: the address parser and formatter on arbitrary strings. */
#include <stdint.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[512];
    if (size >= sizeof s) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    ns_addr a;
    if (ns_addr_parse(&a, s) == NS_OK) {
        char out[NS_ADDR_STR_MAX];
        ns_addr a2;
        ns_addr_format(&a, out, sizeof out);
        /* the canonical form must parse back to the same address */
        if (ns_addr_parse(&a2, out) != NS_OK || memcmp(&a, &a2, sizeof a) != 0) {
            __builtin_trap();
        }
    }
    return 0;
}
