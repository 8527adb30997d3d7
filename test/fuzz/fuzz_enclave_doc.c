/*
 * libFuzzer target: the enclave's run-time configuration document (port 7103). What the parser
 * accepts must parse the same way twice, give only well-formed values (a region name, a key id,
 * an https URL), and apply to a configuration without error; what it refuses leaves it empty.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "enclave.h"

static const char *no_env(const char *name, void *ctx)
{
    (void)name;
    (void)ctx;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ns_enclave_doc d, again;
    static ns_enclave_cfg cfg;
    const char *src;
    if (ns_enclave_doc_parse(&d, data, size) != NS_OK) {
        if (d.region[0] || d.kms_key_id[0] || d.kms_endpoint[0]) {
            __builtin_trap();
        }
        return 0;
    }
    if (ns_enclave_doc_parse(&again, data, size) != NS_OK || memcmp(&d, &again, sizeof d) != 0) {
        __builtin_trap();
    }
    if (d.region[0] && !ns_enclave_region_ok(d.region)) {
        __builtin_trap();
    }
    if (d.kms_endpoint[0] && strncasecmp(d.kms_endpoint, "https://", 8) != 0) {
        __builtin_trap();
    }
    if (ns_enclave_cfg_load(&cfg, no_env, NULL, 0) != NS_OK) {
        __builtin_trap();
    }
    if (ns_enclave_cfg_apply(&cfg, &d, &src) == NS_OK && !ns_enclave_region_ok(cfg.region)) {
        __builtin_trap();
    }
    return 0;
}
