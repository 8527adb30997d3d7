/*
 * libFuzzer target: the audit trail verifier (line splitting, JSON records, chain and head
 * checks), with and without a user_data commitment, live and complete.
 */
#include <stdint.h>
#include <string.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ns_audit_report rep;
    uint8_t ud[32];
    memset(ud, 0xA5, sizeof ud);
    int live = size > 0 && (data[0] & 1);
    if (ns_audit_verify(data, size, NULL, live, &rep) != NS_OK && rep.line == 0) {
        __builtin_trap(); /* a failure always names its line */
    }
    (void)ns_audit_verify(data, size, ud, !live, &rep);
    return 0;
}
