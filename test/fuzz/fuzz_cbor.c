/* libFuzzer target: the CBOR reader. Skipping must stay in bounds; whatever a head-by-head walk
 * accepts, ns_cbor_skip must accept with the same length. */
#include <stdint.h>

#include "cbor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ns_cur a, b;
    ns_cur_init(&a, data, size);
    ns_err e = ns_cbor_skip(&a);
    if (e == NS_OK && a.pos > size) {
        __builtin_trap();
    }
    /* Walk heads one by one, as a schema reader would. */
    ns_cur_init(&b, data, size);
    uint64_t pending = 1;
    while (pending > 0) {
        ns_cbor_item it;
        if (ns_cbor_head(&b, &it) != NS_OK) {
            if (e == NS_OK) {
                __builtin_trap();
            }
            return 0;
        }
        pending--;
        if (it.major == NS_CBOR_ARRAY) {
            pending += it.val;
        } else if (it.major == NS_CBOR_MAP) {
            pending += 2 * it.val;
        } else if (it.major == NS_CBOR_TAG) {
            pending++;
        }
        if ((it.major == NS_CBOR_BSTR || it.major == NS_CBOR_TSTR) &&
            (it.data < data || it.data + it.val > data + size)) {
            __builtin_trap();
        }
        if (pending > size) {
            return 0; /* item-count limit territory: skip decides */
        }
    }
    if (e == NS_OK && b.pos != a.pos) {
        __builtin_trap();
    }
    return 0;
}
