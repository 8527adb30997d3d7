/*
 * libFuzzer target: kmspolicy's ARN checks and both writers. Input: NUL-separated strings (a
 * role ARN, an admin ARN, a key ARN, two S3 URIs) then raw PCR bytes. Whatever ARNs are
 * accepted, the documents written must be strict JSON (ns_json_validate), and any string that
 * reaches a document must have passed the ARN check or the object-key check first.
 */
#include <stdint.h>
#include <string.h>

#include "json.h"
#include "kmspolicy.h"

static size_t next_str(const uint8_t *d, size_t n, size_t pos, char *out, size_t cap)
{
    size_t i = 0;
    while (pos < n && d[pos] != 0 && i + 1 < cap) {
        out[i++] = (char)d[pos++];
    }
    out[i] = 0;
    return pos < n ? pos + 1 : pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) {
        return 0;
    }
    char s[5][1200];
    size_t pos = 0;
    for (int i = 0; i < 5; i++) {
        pos = next_str(data, size, pos, s[i], sizeof s[i]);
    }
    ns_arn a;
    int role_ok = ns_kmspolicy_arn_parse(&a, s[0], NS_ARN_IAM_ROLE) == NS_OK;
    int admin_ok = ns_kmspolicy_arn_parse(&a, s[1], NS_ARN_IAM_PRINCIPAL) == NS_OK;
    if (ns_kmspolicy_arn_parse(&a, s[0], NS_ARN_IAM_PRINCIPAL) != NS_OK && role_ok) {
        __builtin_trap(); /* every role is a principal */
    }
    ns_kmspolicy_image im[2];
    memset(im, 0, sizeof im);
    size_t left = size - pos;
    memcpy(im, data + pos, left < sizeof im ? left : sizeof im);
    im[0].is_signed &= 1;
    im[1].is_signed &= 1;
    const char *roles[1] = {s[0]};
    const char *admins[1] = {s[1]};
    ns_kmspolicy_key_input in = {.roles = roles,
                                 .n_roles = 1,
                                 .admins = admins,
                                 .n_admins = 1,
                                 .images = im,
                                 .n_images = 1 + (left & 1)};
    ns_buf b;
    ns_buf_init(&b, NS_KMSPOLICY_DOC_MAX);
    ns_err e = ns_kmspolicy_key_policy(&b, &in);
    if (e == NS_OK && (!role_ok || !admin_ok || ns_json_validate(b.data, b.len) != NS_OK)) {
        __builtin_trap();
    }
    ns_buf_reset(&b);
    ns_kmspolicy_iam_input iam = {.key_arn = s[2]};
    if (ns_s3_uri_parse(&iam.objects[0], s[3]) == NS_OK &&
        ns_s3_uri_parse(&iam.objects[1], s[4]) == NS_OK &&
        ns_kmspolicy_iam_policy(&b, &iam) == NS_OK) {
        if (ns_kmspolicy_arn_parse(&a, s[2], NS_ARN_KMS_KEY) != NS_OK ||
            ns_json_validate(b.data, b.len) != NS_OK || strchr(iam.objects[0].key, '*') != NULL) {
            __builtin_trap();
        }
    }
    ns_buf_free(&b);
    return 0;
}
