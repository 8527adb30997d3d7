/*
 * libFuzzer target: the strict JSON reader behind credentials documents (and AWS JSON errors).
 * A document the reader accepts must give the same answer twice; a parsed credential must be
 * non-empty and NUL-free; a failed parse must leave the credentials wiped.
 */
#include <stdint.h>
#include <string.h>

#include "aws.h"
#include "creds.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ns_creds c;
    ns_err e = ns_creds_parse_json(&c, data, size);
    if (e == NS_OK) {
        if (c.access_key_id[0] == '\0' || c.secret_access_key[0] == '\0') {
            __builtin_trap();
        }
        ns_creds again;
        if (ns_creds_parse_json(&again, data, size) != NS_OK || memcmp(&again, &c, sizeof c) != 0) {
            __builtin_trap();
        }
    } else if (c.access_key_id[0] != '\0' || c.secret_access_key[0] != '\0') {
        __builtin_trap();
    }
    ns_buf b;
    ns_buf_init(&b, 1 << 16);
    (void)ns_json_get_string(data, size, "message", &b);
    ns_buf_free(&b);
    char code[64], msg[128];
    ns_aws_json_error(data, size, code, sizeof code, msg, sizeof msg);
    int64_t t;
    char ts[64];
    size_t n = size < sizeof ts - 1 ? size : sizeof ts - 1;
    memcpy(ts, data, n);
    ts[n] = '\0';
    (void)ns_creds_parse_time(ts, &t);
    return 0;
}
