/*
 * libFuzzer target: the SigV4 canonicaliser and signer on arbitrary paths, queries and headers.
 * Input: fields separated by '\n': flags byte, method, path, query, then name\nvalue pairs.
 * Signing the same request twice must give the same Authorization (no hidden state).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

#define MAXF (4 + 2 * 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) {
        return 0;
    }
    char *s = malloc(size);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    char *f[MAXF];
    size_t nf = 0;
    char *p = s;
    while (nf < MAXF) {
        f[nf++] = p;
        char *nl = strchr(p, '\n');
        if (nl == NULL) {
            break;
        }
        *nl = '\0';
        p = nl + 1;
    }
    while (nf < 4) {
        f[nf++] = (char *)"";
    }
    ns_sigv4_hdr h[16];
    size_t nh = 0;
    for (size_t i = 4; i + 1 < nf && nh < 16; i += 2) {
        h[nh].name = f[i];
        h[nh].value = f[i + 1];
        nh++;
    }
    ns_sigv4_params prm = {"AKIDEXAMPLE", "secret",           "us-east-1",
                           "service",     "20150830T123600Z", (unsigned)(data[0] & 3)};
    ns_sigv4_req r = {f[0][0] ? f[0] : "GET", f[1], f[2], h, nh, NS_SIGV4_EMPTY_SHA256};
    char a1[NS_SIGV4_AUTHZ_MAX], a2[NS_SIGV4_AUTHZ_MAX];
    ns_err e1 = ns_sigv4_sign(&prm, &r, a1, sizeof a1);
    ns_err e2 = ns_sigv4_sign(&prm, &r, a2, sizeof a2);
    if (e1 != e2 || (e1 == NS_OK && strcmp(a1, a2) != 0)) {
        __builtin_trap();
    }
    ns_buf enc;
    ns_buf_init(&enc, 1 << 16);
    (void)ns_sigv4_uri_encode(&enc, f[1], strlen(f[1]), 1);
    ns_buf_free(&enc);
    free(s);
    return 0;
}
