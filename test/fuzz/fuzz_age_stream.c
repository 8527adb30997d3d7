/* libFuzzer target: the whole age decryptor on arbitrary input (binary or armored) with a fixed
 * identity, and the STREAM payload decoder under a fixed file key. Failures must leave the output
 * empty (memory API) and never read or write out of bounds. */
#include <stdint.h>
#include <stdlib.h>

#include "age.h"

#define FUZZ_ID "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ns_buf out;
    ns_buf_init(&out, 1u << 20);
    if (ns_age_decrypt_mem(&out, data, size, FUZZ_ID, sizeof FUZZ_ID - 1) != NS_OK &&
        out.len != 0) {
        __builtin_trap();
    }
    ns_buf_reset(&out);
    static const uint8_t fk[NS_AGE_FILE_KEY] = {0x59, 0x45, 0x4c, 0x4c, 0x4f, 0x57};
    if (ns_age_payload_decrypt_mem(&out, fk, data, size) == NS_OK && out.len >= size) {
        __builtin_trap();
    }
    ns_buf_free(&out);
    return 0;
}
