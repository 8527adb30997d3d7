/* Unit tests for kms: the Decrypt request body (JSON escaping, pass-through fields, limits) and
 * the mapping of KMS error types to actionable messages. The HTTP path is in test/it. */
#include "kms.h"
#include "t.h"

static int body_is(const ns_kms_decrypt_req *r, const uint8_t *ct, size_t n, const uint8_t *doc,
                   size_t dn, const char *want)
{
    ns_buf b;
    ns_buf_init(&b, 1 << 16);
    int ok = ns_kms_decrypt_body(&b, r, ct, n, doc, dn) == NS_OK && b.len == strlen(want) &&
             memcmp(b.data, want, b.len) == 0;
    if (!ok) {
        printf("# got  %.*s\n# want %s\n", (int)b.len, (const char *)b.data, want);
    }
    ns_buf_free(&b);
    return ok;
}

int main(void)
{
    const uint8_t ct[] = {0x01, 0x02, 0x03, 0xff};
    ns_kms_decrypt_req r;
    memset(&r, 0, sizeof r);
    CHECK(body_is(&r, ct, sizeof ct, NULL, 0, "{\"CiphertextBlob\":\"AQID/w==\"}"), "minimal body");
    const char *ctx[] = {"purpose=a=b", "q\"uote=back\\slash\n"};
    const char *grants[] = {"g1", "g2"};
    r.context_kv = ctx;
    r.ncontext = 2;
    r.grant_tokens = grants;
    r.ngrant = 2;
    r.key_id = "alias/x";
    const uint8_t doc[] = {0x84};
    CHECK(body_is(&r, ct, sizeof ct, doc, 1,
                  "{\"CiphertextBlob\":\"AQID/w==\",\"EncryptionContext\":{\"purpose\":\"a=b\","
                  "\"q\\\"uote\":\"back\\\\slash\\u000a\"},\"KeyId\":\"alias/x\","
                  "\"GrantTokens\":[\"g1\",\"g2\"],\"Recipient\":{\"AttestationDocument\":"
                  "\"hA==\",\"KeyEncryptionAlgorithm\":\"RSAES_OAEP_SHA_256\"}}"),
          "full body: context split at the first '=', escapes, grants, Recipient");

    ns_buf b;
    ns_buf_init(&b, 1 << 16);
    const char *dup[] = {"k=1", "k=2"};
    r.context_kv = dup;
    CHECK_ERR(ns_kms_decrypt_body(&b, &r, ct, sizeof ct, NULL, 0), NS_E_USAGE,
              "duplicate context key refused");
    const char *noeq[] = {"novalue"};
    r.context_kv = noeq;
    r.ncontext = 1;
    CHECK_ERR(ns_kms_decrypt_body(&b, &r, ct, sizeof ct, NULL, 0), NS_E_USAGE,
              "context without '=' refused");
    r.ncontext = 0;
    r.ngrant = NS_KMS_GRANTS_MAX + 1;
    CHECK_ERR(ns_kms_decrypt_body(&b, &r, ct, sizeof ct, NULL, 0), NS_E_USAGE,
              "more than 10 grant tokens refused");
    r.ngrant = 0;
    CHECK_ERR(ns_kms_decrypt_body(&b, &r, ct, 0, NULL, 0), NS_E_USAGE, "empty ciphertext refused");
    uint8_t big[NS_KMS_CIPHERTEXT_MAX + 1] = {0};
    CHECK_ERR(ns_kms_decrypt_body(&b, &r, big, sizeof big, NULL, 0), NS_E_USAGE,
              "ciphertext over 6144 bytes refused");
    ns_buf_free(&b);

    CHECK_ERR(ns_kms_error(400, "AccessDeniedException", "nope", NULL), NS_E_DENIED,
              "AccessDenied");
    CHECK(strstr(ns_err_msg(), "key policy") && strstr(ns_err_msg(), "PCR") &&
              strstr(ns_err_msg(), "nope"),
          "AccessDenied message names the policy, PCRs and KMS's message");
    const ns_kms_hints pcrs = {NULL, NULL, "PCR0=ab PCR16=cd"};
    CHECK_ERR(ns_kms_error(400, "AccessDeniedException", "nope", &pcrs), NS_E_DENIED,
              "AccessDenied with the document's PCRs");
    CHECK(strstr(ns_err_msg(), "KMS denied Decrypt (AccessDeniedException: nope): check the key "
                               "policy grants kms:Decrypt to this role") != NULL &&
              strstr(ns_err_msg(), "the PCRs the attestation document sent: PCR0=ab PCR16=cd"),
          "AccessDenied names the PCRs the attestation document sent");
    const ns_kms_hints enclave = {"KMS_KEY_ID", "check AGE_KEY_S3_URI's object", NULL};
    CHECK_ERR(ns_kms_error(400, "IncorrectKeyException", "x", &enclave), NS_E_NO_MATCH,
              "IncorrectKey from the enclave");
    CHECK(strstr(ns_err_msg(), "check KMS_KEY_ID") && !strstr(ns_err_msg(), "--key-id"),
          "the enclave's hint names the variable KMS_KEY_ID, not an applet flag");
    CHECK_ERR(ns_kms_error(400, "NotFoundException", "x", &enclave), NS_E_NOT_FOUND,
              "NotFound from the enclave");
    CHECK(strstr(ns_err_msg(), "check KMS_KEY_ID") != NULL, "NotFound names KMS_KEY_ID");
    CHECK_ERR(ns_kms_error(400, "InvalidCiphertextException", "", &enclave), NS_E_AUTH,
              "InvalidCiphertext from the enclave");
    CHECK(strstr(ns_err_msg(), "check AGE_KEY_S3_URI's object") &&
              !strstr(ns_err_msg(), "--encryption-context"),
          "the enclave's InvalidCiphertext hint names the S3 object, not an applet flag");
    CHECK_ERR(ns_kms_error(400, "InvalidCiphertextException", "", NULL), NS_E_AUTH,
              "InvalidCiphertext");
    CHECK(strstr(ns_err_msg(), "encryption") != NULL, "InvalidCiphertext mentions the context");
    CHECK_ERR(ns_kms_error(400, "IncorrectKeyException", "x", NULL), NS_E_NO_MATCH, "IncorrectKey");
    CHECK(strstr(ns_err_msg(), "check --key-id") != NULL, "kms-decrypt's hint names --key-id");
    CHECK_ERR(ns_kms_error(400, "ThrottlingException", "x", NULL), NS_E_REMOTE, "Throttling");
    CHECK(strstr(ns_err_msg(), "retries") != NULL, "Throttling says it was retried");
    CHECK_ERR(ns_kms_error(500, "", "", NULL), NS_E_REMOTE, "no error type");
    CHECK(strstr(ns_err_msg(), "500") != NULL, "status in the message");
    CHECK_ERR(ns_kms_error(400, "ValidationException", "bad doc", NULL), NS_E_REMOTE,
              "other types");
    CHECK(strstr(ns_err_msg(), "ValidationException: bad doc") != NULL, "type and message kept");
    T_DONE();
}
