/*
 * libFuzzer target: nitro-cli's JSON (describe-enclaves' array, run-enclave's text then object).
 * Whatever the bytes: no crash, no read past len; an accepted output gives the same answer
 * twice; a listed enclave has a non-empty EnclaveID and the looked-up name; a rejected one lists
 * nothing and leaves no id behind.
 */
#include <stdint.h>
#include <string.h>

#include "nitro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The name looked up: the input's first line (bounded), the rest is nitro-cli's output. */
    char name[64] = "";
    size_t k = 0;
    while (k < size && k < sizeof name - 1 && data[k] != '\n') {
        name[k] = (char)data[k];
        k++;
    }
    name[k] = '\0';
    const char *text = (const char *)data + (k < size ? k + 1 : k);
    size_t len = size - (k < size ? k + 1 : k);

    ns_nitro_enclave e, again;
    int listed = -1, listed2 = -1;
    size_t n = 0, n2 = 0;
    ns_err r = ns_nitro_describe_parse(text, len, name, &e, &listed, &n);
    if (r == NS_OK) {
        if (ns_nitro_describe_parse(text, len, name, &again, &listed2, &n2) != NS_OK ||
            listed != listed2 || n != n2) {
            __builtin_trap();
        }
        if (listed && (e.id[0] == '\0' || strcmp(e.name, name) != 0 || n == 0 ||
                       memcmp(&e, &again, sizeof e) != 0)) {
            __builtin_trap();
        }
    } else if (listed != 0) {
        __builtin_trap();
    }
    r = ns_nitro_run_parse(text, len, &e);
    if (r == NS_OK && e.id[0] == '\0') {
        __builtin_trap();
    }
    if (r != NS_OK && e.id[0] != '\0') {
        __builtin_trap();
    }
    (void)ns_nitro_is_allocator_error(name);
    return 0;
}
