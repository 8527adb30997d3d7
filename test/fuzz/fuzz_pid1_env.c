/* fuzz_pid1_env: the /env parser of the PID-1 boot (KEY=VALUE lines) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pid1.h"

static ns_err count_var(void *ctx, const char *key, const char *value)
{
    size_t *n = ctx;
    /* The parser promises a non-empty key and NUL-terminated strings. */
    if (key[0] == '\0') {
        __builtin_trap();
    }
    *n += strlen(key) + strlen(value);
    return NS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    if (ns_pid1_env_parse(data, size, count_var, &n) != NS_OK) {
        return 0;
    }
    return 0;
}
