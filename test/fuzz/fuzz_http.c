/*
 * libFuzzer target: the HTTP response head parser (status line, headers, Content-Length,
 * Transfer-Encoding) and URL parser. Every accepted head must have a valid status and headers
 * that point inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > NS_HTTP_HEAD_MAX) {
        return 0;
    }
    char *head = malloc(size + 1);
    if (head == NULL) {
        return 0;
    }
    memcpy(head, data, size);
    head[size] = '\0';
    ns_http_resp r;
    if (ns_http_parse_head(&r, head, size) == NS_OK) {
        if (r.status < 100 || r.status > 599 || r.n_headers > NS_HTTP_MAX_HEADERS) {
            __builtin_trap();
        }
        for (size_t i = 0; i < r.n_headers; i++) {
            if (r.headers[i].name < head || r.headers[i].name >= head + size ||
                r.headers[i].value < head || r.headers[i].value > head + size) {
                __builtin_trap();
            }
        }
        (void)ns_http_header(&r, "content-length");
    }
    memcpy(head, data, size);
    head[size] = '\0';
    ns_url u;
    if (strlen(head) == size && ns_url_parse(&u, head) == NS_OK) {
        char hh[NS_HTTP_HOST_MAX + 16];
        ns_url_host_header(&u, hh, sizeof hh);
    }
    free(head);
    return 0;
}
