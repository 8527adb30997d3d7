/*
 * libFuzzer target: httpd's request head parser. An accepted head must end within the input with
 * CRLF CRLF, and its method and path must be NUL-terminated inside their fields.
 */
#include <stdint.h>
#include <string.h>

#include "httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ns_httpd_req r;
    size_t hl = 0;
    if (ns_httpd_parse(&r, data, size, &hl) == NS_OK) {
        if (hl < 4 || hl > size || hl > NS_HTTPD_HEAD_MAX || memcmp(data + hl - 4, "\r\n\r\n", 4) ||
            memchr(r.method, 0, sizeof r.method) == NULL ||
            memchr(r.path, 0, sizeof r.path) == NULL || r.path[0] != '/') {
            __builtin_trap();
        }
    }
    return 0;
}
