/*
 * libFuzzer target: the host's status-line parser (hostobs.h), which reads lines the enclave
 * sends. Whatever the bytes: no read past len, both words terminated within their arrays, the
 * same answer twice, and a status line is one that starts "nsign ".
 */
#include <stdint.h>
#include <string.h>

#include "hostobs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ns_hostobs_status a, b;
    memset(&a, 'x', sizeof a);
    memset(&b, 'y', sizeof b);
    int r1 = ns_hostobs_status_parse((const char *)data, size, &a);
    int r2 = ns_hostobs_status_parse((const char *)data, size, &b);
    if (r1 != r2) {
        __builtin_trap();
    }
    if (r1 == 1) {
        if (memchr(a.state, '\0', sizeof a.state) == NULL ||
            memchr(a.client_auth, '\0', sizeof a.client_auth) == NULL ||
            strcmp(a.state, b.state) != 0 || strcmp(a.client_auth, b.client_auth) != 0 ||
            size < 6 || memcmp(data, "nsign ", 6) != 0 || strchr(a.state, ' ') != NULL) {
            __builtin_trap();
        }
    }
    return 0;
}
