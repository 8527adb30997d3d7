/*
 * kms: AWS KMS Decrypt (JSON 1.1 protocol, X-Amz-Target: TrentService.Decrypt), optionally with
 * Nitro attestation.
 *
 * With attest = 1: an ephemeral RSA-2048 key is generated, the NSM binds its public key into an
 * attestation document, Decrypt is called with Recipient {AttestationDocument,
 * KeyEncryptionAlgorithm: RSAES_OAEP_SHA_256}, and KMS's CiphertextForRecipient (CMS
 * EnvelopedData) is decrypted inside; the plaintext never crosses the proxy in clear. With
 * attest = 0 the Plaintext field of the response is used (host side or tests).
 * EncryptionContext, KeyId and GrantTokens are passed through. KMS error types become messages
 * that say what to check; throttling and 5xx are retried by the aws layer. The private key, the
 * response body and every decoded intermediate are wiped.
 */
#ifndef NS_KMS_H
#define NS_KMS_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "buf.h"
#include "creds.h"
#include "err.h"

#define NS_KMS_CIPHERTEXT_MAX 6144  /* KMS CiphertextBlob limit */
#define NS_KMS_PLAINTEXT_MAX 4096   /* KMS plaintext limit */
#define NS_KMS_CONTEXT_MAX 64       /* encryption context pairs */
#define NS_KMS_GRANTS_MAX 10        /* KMS accepts up to 10 grant tokens */
#define NS_KMS_REQ_MAX (64 * 1024)  /* request JSON */
#define NS_KMS_RESP_MAX (64 * 1024) /* response JSON */

typedef struct {
    const char *region;            /* NULL: AWS_REGION / AWS_DEFAULT_REGION / us-east-1 */
    const char *endpoint;          /* NULL: AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL / default */
    const ns_addr *proxy;          /* NULL: direct; else e.g. vsock:3:5000 (TLS runs through it) */
    const char *key_id;            /* NULL: let KMS find the key from the ciphertext */
    const char *const *context_kv; /* "K=V" strings (split at the first '=') */
    size_t ncontext;
    const char *const *grant_tokens;
    size_t ngrant;
    int attest;            /* 1: NSM + Recipient; 0: plain Decrypt */
    const char *ca_bundle; /* NULL: AWS_CA_BUNDLE / embedded roots */
    /* How the user names the key, for the hints of errors: NULL = "--key-id" (the kms-decrypt
     * applet); the enclave passes "KMS_KEY_ID" (run-enclave's variable). */
    const char *key_setting;
    /* What to check when KMS rejects the ciphertext: NULL = the kms-decrypt applet's (the blob,
     * --encryption-context); the enclave names the S3 object it came from. */
    const char *ciphertext_hint;
} ns_kms_decrypt_req;

/* plaintext: caller-initialised (ns_buf_init_secret, max >= NS_KMS_PLAINTEXT_MAX). */
ns_err ns_kms_decrypt(ns_buf *plaintext, const ns_kms_decrypt_req *req, const ns_creds *creds,
                      const uint8_t *ciphertext, size_t ciphertext_len) NS_MUST_CHECK;

/* The request body (exposed for tests): JSON with the fields above; attestation_doc may be NULL. */
ns_err ns_kms_decrypt_body(ns_buf *out, const ns_kms_decrypt_req *req, const uint8_t *ciphertext,
                           size_t ciphertext_len, const uint8_t *attestation_doc,
                           size_t attestation_doc_len) NS_MUST_CHECK;
/* What an error message names besides KMS's words; NULL members take the applet's wording. */
typedef struct {
    const char *key_setting;     /* how the user names the key ("--key-id") */
    const char *ciphertext_hint; /* what to check on InvalidCiphertext */
    const char *sent_pcrs;       /* "PCR0=HEX PCR1=HEX ...": named on AccessDenied */
} ns_kms_hints;

/* The message for a KMS error type and message (what to check). Returns the ns_err to use.
 * h may be NULL. */
ns_err ns_kms_error(int status, const char *code, const char *msg,
                    const ns_kms_hints *h) NS_MUST_CHECK;

/* The PCRs an AccessDenied names, from a parsed attestation document: "PCR0=HEX PCR1=HEX
 * PCR2=HEX [PCR8=HEX] PCR16=HEX" (PCR8 only when not all zero: a signed EIF). */
#define NS_KMS_PCRS_TEXT_MAX 520
/*
 * GetKeyPolicy (TrentService.GetKeyPolicy, PolicyName "default") of req->key_id (a key id or
 * key ARN: KMS does not take an alias here) with req's region, endpoint and trust store; the
 * policy document (JSON text, unescaped) into policy (initialised, max >= NS_KMS_RESP_MAX).
 * NS_E_DENIED when KMS says AccessDenied (the role may not read the policy: not a failure of
 * the key), NS_E_NOT_FOUND for an unknown key.
 */
ns_err ns_kms_get_key_policy(ns_buf *policy, const ns_kms_decrypt_req *req,
                             const ns_creds *creds) NS_MUST_CHECK;

/*
 * DescribeKey (TrentService.DescribeKey) of req->key_id (id, ARN, alias/NAME or alias ARN): the
 * key's ARN (KeyMetadata.Arn) into arn. Errors as ns_kms_get_key_policy's.
 */
#define NS_KMS_ARN_MAX 2048
ns_err ns_kms_describe_key_arn(char arn[NS_KMS_ARN_MAX], const ns_kms_decrypt_req *req,
                               const ns_creds *creds) NS_MUST_CHECK;

#endif
