/*
 * libFuzzer target: run-enclave --preflight's parsers (allocator.yaml, a CPU list, nitro-cli's
 * version line, the key policy's PCR0). Whatever the bytes: no crash, no read past size; an
 * accepted allocator.yaml leaves a cpu_pool that is itself a valid CPU list; the same input
 * gives the same answer twice.
 */
#include <stdint.h>
#include <string.h>

#include "preflight.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *t = (const char *)data;
    ns_pf_allocator a, b;
    if (ns_pf_allocator_parse(&a, t, size) == NS_OK) {
        uint64_t n;
        if (ns_pf_allocator_parse(&b, t, size) != NS_OK || memcmp(&a, &b, sizeof a) != 0 ||
            ns_pf_cpulist_count(a.cpu_pool, strlen(a.cpu_pool), &n) != NS_OK) {
            __builtin_trap();
        }
    }
    uint64_t c1 = 0, c2 = 0;
    if (ns_pf_cpulist_count(t, size, &c1) == NS_OK &&
        (ns_pf_cpulist_count(t, size, &c2) != NS_OK || c1 != c2)) {
        __builtin_trap();
    }
    unsigned v[3];
    (void)!ns_pf_nitro_version(t, size, v);
    char pcr0[97];
    memset(pcr0, 'a', 96);
    pcr0[96] = '\0';
    if (ns_pf_policy_names_pcr0(data, size, pcr0) != ns_pf_policy_names_pcr0(data, size, pcr0)) {
        __builtin_trap();
    }
    return 0;
}
