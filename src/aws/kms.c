/*
 * kms: KMS Decrypt with or without a Nitro attestation Recipient (see kms.h).
 * JSON is written here (a fixed, small shape) and read with creds.h's strict flat-object reader.
 */
#include "kms.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "aws.h"
#include "cms.h"
#include "codec.h"
#include "cose.h"
#include "json.h"
#include "nsm.h"
#include "secret.h"

#define KMS_TARGET "TrentService.Decrypt"
#define KMS_KEY_ALG "RSAES_OAEP_SHA_256"
#define KMS_CODE_MAX 128
#define KMS_MSG_MAX 512

static ns_err json_b64(ns_buf *b, const uint8_t *p, size_t n)
{
    size_t enc = ns_b64_enc_len(n, NS_B64_PAD);
    GUARD(ns_buf_append_u8(b, '"'));
    GUARD(ns_buf_reserve(b, enc + 1));
    GUARD(ns_b64_encode((char *)b->data + b->len, enc + 1, p, n, NS_B64_PAD));
    b->len += enc;
    return ns_buf_append_u8(b, '"');
}

ns_err ns_kms_decrypt_body(ns_buf *out, const ns_kms_decrypt_req *req, const uint8_t *ciphertext,
                           size_t ciphertext_len, const uint8_t *attestation_doc,
                           size_t attestation_doc_len)
{
    ENSURE(ciphertext_len > 0 && ciphertext_len <= NS_KMS_CIPHERTEXT_MAX, NS_E_USAGE,
           "kms: ciphertext of %zu bytes (KMS accepts 1..%d)", ciphertext_len,
           NS_KMS_CIPHERTEXT_MAX);
    ENSURE(req->ncontext <= NS_KMS_CONTEXT_MAX, NS_E_USAGE, "kms: more than %d context pairs",
           NS_KMS_CONTEXT_MAX);
    ENSURE(req->ngrant <= NS_KMS_GRANTS_MAX, NS_E_USAGE, "kms: more than %d grant tokens",
           NS_KMS_GRANTS_MAX);
    GUARD(ns_buf_append_str(out, "{\"CiphertextBlob\":"));
    GUARD(json_b64(out, ciphertext, ciphertext_len));
    if (req->ncontext > 0) {
        GUARD(ns_buf_append_str(out, ",\"EncryptionContext\":{"));
        for (size_t i = 0; i < req->ncontext; i++) {
            const char *kv = req->context_kv[i];
            const char *eq = strchr(kv, '=');
            ENSURE(eq != NULL && eq != kv, NS_E_USAGE,
                   "kms: encryption context '%s' is not KEY=VALUE", kv);
            for (size_t j = 0; j < i; j++) {
                const char *o = req->context_kv[j];
                ENSURE(!(strncmp(o, kv, (size_t)(eq - kv)) == 0 && o[eq - kv] == '='), NS_E_USAGE,
                       "kms: encryption context key '%.*s' given twice", (int)(eq - kv), kv);
            }
            if (i > 0) {
                GUARD(ns_buf_append_u8(out, ','));
            }
            GUARD(ns_buf_append_json_str(out, kv, (size_t)(eq - kv)));
            GUARD(ns_buf_append_u8(out, ':'));
            GUARD(ns_buf_append_json_str(out, eq + 1, strlen(eq + 1)));
        }
        GUARD(ns_buf_append_u8(out, '}'));
    }
    if (req->key_id != NULL) {
        GUARD(ns_buf_append_str(out, ",\"KeyId\":"));
        GUARD(ns_buf_append_json_str(out, req->key_id, strlen(req->key_id)));
    }
    if (req->ngrant > 0) {
        GUARD(ns_buf_append_str(out, ",\"GrantTokens\":["));
        for (size_t i = 0; i < req->ngrant; i++) {
            if (i > 0) {
                GUARD(ns_buf_append_u8(out, ','));
            }
            GUARD(ns_buf_append_json_str(out, req->grant_tokens[i], strlen(req->grant_tokens[i])));
        }
        GUARD(ns_buf_append_u8(out, ']'));
    }
    if (attestation_doc != NULL) {
        GUARD(ns_buf_append_str(out, ",\"Recipient\":{\"AttestationDocument\":"));
        GUARD(json_b64(out, attestation_doc, attestation_doc_len));
        GUARD(ns_buf_append_str(out, ",\"KeyEncryptionAlgorithm\":\"" KMS_KEY_ALG "\"}"));
    }
    return ns_buf_append_u8(out, '}');
}

ns_err ns_kms_error(int status, const char *code, const char *msg, const ns_kms_hints *h)
{
    const char *m = msg[0] ? msg : "(no message)";
    const char *ks = h && h->key_setting ? h->key_setting : "--key-id";
    const char *sent_pcrs = h ? h->sent_pcrs : NULL;
    if (strcmp(code, "AccessDeniedException") == 0 && sent_pcrs != NULL) {
        /* KMS's message bounded so that the PCRs fit in one log line (1024 bytes). */
        BAIL(NS_E_DENIED,
             "KMS denied Decrypt (AccessDeniedException: %.300s): check the key policy grants "
             "kms:Decrypt to this role with kms:RecipientAttestation conditions equal to the "
             "PCRs the attestation document sent: %s",
             m, sent_pcrs);
    }
    if (strcmp(code, "AccessDeniedException") == 0) {
        BAIL(NS_E_DENIED,
             "KMS denied Decrypt (AccessDeniedException: %s): check the key policy "
             "grants kms:Decrypt to this role and that kms:RecipientAttestation "
             "conditions match this enclave's measurements (a debug-mode enclave "
             "has all-zero PCRs)",
             m);
    }
    if (strcmp(code, "InvalidCiphertextException") == 0 && h && h->ciphertext_hint) {
        BAIL(NS_E_AUTH, "KMS rejected the ciphertext (InvalidCiphertextException: %s): %s", m,
             h->ciphertext_hint);
    }
    if (strcmp(code, "InvalidCiphertextException") == 0) {
        BAIL(NS_E_AUTH,
             "KMS rejected the ciphertext (InvalidCiphertextException: %s): check "
             "that it is a KMS ciphertext blob and that --encryption-context matches "
             "the one used to encrypt",
             m);
    }
    if (strcmp(code, "IncorrectKeyException") == 0) {
        BAIL(NS_E_NO_MATCH,
             "KMS says the ciphertext was not encrypted under the given key "
             "(IncorrectKeyException: %s): check %s",
             m, ks);
    }
    if (strcmp(code, "ThrottlingException") == 0) {
        BAIL(NS_E_REMOTE,
             "KMS kept throttling Decrypt after retries (ThrottlingException: %s): "
             "lower the request rate or raise the KMS quota",
             m);
    }
    if (strcmp(code, "NotFoundException") == 0) {
        BAIL(NS_E_NOT_FOUND,
             "KMS key not found (NotFoundException: %s): check %s and "
             "the region",
             m, ks);
    }
    if (strcmp(code, "DisabledException") == 0 || strcmp(code, "KMSInvalidStateException") == 0) {
        BAIL(NS_E_REMOTE, "the KMS key cannot be used now (%s: %s)", code, m);
    }
    if (code[0] == 0) {
        BAIL(NS_E_REMOTE, "KMS Decrypt failed with HTTP %d and no error type", status);
    }
    BAIL(NS_E_REMOTE, "KMS Decrypt failed with HTTP %d: %s: %s", status, code, m);
}

/* "PCR0=HEX PCR1=HEX PCR2=HEX [PCR8=HEX] PCR16=HEX" of a document, for AccessDenied. */
static void sent_pcrs_text(char *out, size_t cap, const ns_att_doc *d)
{
    static const unsigned idx[] = {0, 1, 2, 8, 16};
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        const ns_att_bytes *b = idx[i] < d->npcr ? &d->pcr[idx[i]] : NULL;
        if (b == NULL || !b->present || b->len == 0 || b->len > 64) {
            continue;
        }
        int zero = 1;
        for (size_t j = 0; j < b->len; j++) {
            zero &= b->p[j] == 0;
        }
        if (idx[i] == 8 && zero) {
            continue; /* PCR8 is the signing certificate's: all zero for an unsigned EIF */
        }
        int w = snprintf(out + n, cap - n, "%sPCR%u=", n ? " " : "", idx[i]);
        if (w < 0 || (size_t)w >= cap - n) {
            return;
        }
        n += (size_t)w;
        for (size_t j = 0; j < b->len && n + 2 < cap; j++) {
            snprintf(out + n, cap - n, "%02x", b->p[j]);
            n += 2;
        }
    }
}

/* Decodes the base64 string member key of the JSON response into out (secret). */
static ns_err json_b64_member(const ns_buf *resp, const char *key, ns_buf *out)
{
    ns_buf s;
    ns_err rc;
    size_t n = 0;
    ns_buf_init_secret(&s, NS_KMS_RESP_MAX);
    GUARD_GOTO(ns_json_get_string(resp->data, resp->len, key, &s), rc, out);
    GUARD_GOTO(ns_buf_reserve(out, ns_b64_dec_max(s.len)), rc, out);
    rc = ns_b64_decode(out->data + out->len, ns_b64_dec_max(s.len), &n, (const char *)s.data, s.len,
                       NS_B64_PAD);
    if (rc != NS_OK) {
        rc = ns_fail(NS_E_PROTO, "kms: %s in the response is not base64", key);
        goto out;
    }
    out->len += n;
out:
    ns_buf_free(&s);
    return rc;
}

/* Resolves the region and the endpoint, refuses an unsafe scheme, and loads the trust anchors. */
static ns_err kms_endpoint(ns_url *url, char region[NS_AWS_REGION_MAX], ns_tls_ca **ca,
                           const ns_kms_decrypt_req *req, int answer_secret)
{
    int custom = 0;
    GUARD(ns_aws_region(region, req->region));
    if (req->endpoint != NULL) {
        GUARD(ns_url_parse(url, req->endpoint));
    } else {
        GUARD(ns_aws_endpoint(url, "kms", region, &custom));
    }
    ENSURE(url->tls || req->attest || !answer_secret, NS_E_USAGE,
           "kms: plain http:// with --no-attest refused: KMS would answer "
           "with the Plaintext in cleartext; use https://");
    GUARD(ns_aws_check_scheme(url, "kms endpoint"));
    if (url->tls) {
        GUARD(ns_aws_trust(ca, req->ca_bundle));
    }
    return NS_OK;
}

/* Generates the ephemeral Recipient key and has the NSM attest it into doc. */
static ns_err kms_attest(ns_buf *doc, ns_cms_key **key, char *pcrs, size_t pcrs_cap)
{
    uint8_t spki[NS_CMS_SPKI_MAX];
    size_t spki_len = 0;
    ns_cose_sign1 s;
    ns_att_doc d;
    ns_err rc;
    ENSURE(ns_nsm_available(), NS_E_UNAVAILABLE,
           "kms: attestation needs an NSM (/dev/nsm inside a "
           "Nitro Enclave, or NSM_DEVICE=unix:PATH); use "
           "--no-attest outside an enclave");
    GUARD(ns_cms_key_generate(key));
    GUARD(ns_cms_key_spki(*key, spki, sizeof spki, &spki_len));
    rc = ns_nsm_attest(doc, NULL, 0, NULL, 0, spki, spki_len);
    if (rc != NS_OK) {
        return ns_fail_ctx(rc, "kms: attestation document for the Recipient");
    }
    /* KMS encrypts to the key in the document: make sure it is ours before sending it. */
    rc = ns_cose_sign1_parse(&s, doc->data, doc->len);
    if (rc == NS_OK) {
        rc = ns_att_doc_parse(&d, s.payload, s.payload_len);
    }
    if (rc != NS_OK) {
        return ns_fail_ctx(rc, "kms: the NSM returned an unreadable attestation document");
    }
    ENSURE(d.public_key.present && d.public_key.len == spki_len &&
               memcmp(d.public_key.p, spki, spki_len) == 0,
           NS_E_PROTO,
           "kms: the attestation document does not carry the "
           "ephemeral public key it was asked to bind");
    sent_pcrs_text(pcrs, pcrs_cap, &d);
    return NS_OK;
}

/* Sends the Decrypt request; a non-200 answer becomes the error its KMS code maps to. */
static ns_err kms_call(ns_buf *resp, const ns_kms_decrypt_req *req, const ns_creds *creds,
                       const char *region, const ns_url *url, const ns_tls_ca *ca,
                       const ns_buf *body, const char *sent_pcrs)
{
    ns_aws_client c;
    int status = 0;
    memset(&c, 0, sizeof c);
    c.service = "kms";
    c.region = region;
    c.creds = creds;
    c.endpoint = url;
    c.via = req->proxy;
    c.ca = ca;
    c.timeout_ms = 0;
    ns_retry_default(&c.retry);
    GUARD(ns_aws_json_call(&c, KMS_TARGET, body->data, body->len, &status, resp));
    if (status != 200) {
        char code[KMS_CODE_MAX], msg[KMS_MSG_MAX];
        ns_aws_json_error(resp->data, resp->len, code, sizeof code, msg, sizeof msg);
        const ns_kms_hints h = {req->key_setting, req->ciphertext_hint,
                                sent_pcrs && sent_pcrs[0] ? sent_pcrs : NULL};
        return ns_kms_error(status, code, msg, &h);
    }
    return NS_OK;
}

/* Opens the CMS envelope KMS encrypted to the Recipient key; cms is scratch for its bytes. */
static ns_err kms_open_envelope(ns_buf *plaintext, const ns_cms_key *key, const ns_buf *resp,
                                ns_buf *cms)
{
    ns_err rc = json_b64_member(resp, "CiphertextForRecipient", cms);
    if (rc == NS_E_NOT_FOUND) {
        rc = ns_fail(NS_E_PROTO, "kms: the Decrypt response has no CiphertextForRecipient "
                                 "(was the Recipient ignored?)");
    }
    GUARD(rc);
    rc = ns_cms_decrypt(plaintext, key, cms->data, cms->len);
    if (rc != NS_OK) {
        return ns_fail_ctx(rc, "kms: CiphertextForRecipient");
    }
    return NS_OK;
}

/* Reads the Plaintext of a call made without a Recipient. */
static ns_err kms_plaintext(ns_buf *plaintext, const ns_buf *resp)
{
    ns_err rc = json_b64_member(resp, "Plaintext", plaintext);
    if (rc == NS_E_NOT_FOUND) {
        rc = ns_fail(NS_E_PROTO, "kms: the Decrypt response has no Plaintext");
    }
    return rc;
}

ns_err ns_kms_decrypt(ns_buf *plaintext, const ns_kms_decrypt_req *req, const ns_creds *creds,
                      const uint8_t *ciphertext, size_t ciphertext_len)
{
    ns_err rc = NS_OK;
    char region[NS_AWS_REGION_MAX];
    ns_url url;
    ns_tls_ca *ca = NULL;
    ns_cms_key *key = NULL;
    ns_buf doc, body, resp, cms;
    char pcrs[NS_KMS_PCRS_TEXT_MAX] = "";
    ns_buf_init(&doc, NS_ATT_DOC_MAX);
    ns_buf_init(&body, NS_KMS_REQ_MAX);
    ns_buf_init_secret(&resp, NS_KMS_RESP_MAX);
    ns_buf_init(&cms, NS_KMS_RESP_MAX);

    GUARD_GOTO(kms_endpoint(&url, region, &ca, req, 1), rc, out);
    if (req->attest) {
        GUARD_GOTO(kms_attest(&doc, &key, pcrs, sizeof pcrs), rc, out);
    }
    GUARD_GOTO(ns_kms_decrypt_body(&body, req, ciphertext, ciphertext_len,
                                   req->attest ? doc.data : NULL, doc.len),
               rc, out);
    GUARD_GOTO(kms_call(&resp, req, creds, region, &url, ca, &body, pcrs), rc, out);
    if (req->attest) {
        rc = kms_open_envelope(plaintext, key, &resp, &cms);
    } else {
        rc = kms_plaintext(plaintext, &resp);
    }
out:
    ns_cms_key_free(key);
    ns_buf_free(&doc);
    ns_buf_free(&body); /* holds only the ciphertext blob (not secret) */
    ns_buf_free(&resp); /* secret: Plaintext of a non-attested call */
    ns_buf_free(&cms);
    ns_tls_ca_free(ca);
    if (rc != NS_OK) {
        ns_buf_reset(plaintext);
    }
    return rc;
}

/* ---- GetKeyPolicy (run-enclave --preflight) ---- */

/* One call of a read-only KMS operation (op) on req->key_id with body {"KeyId": ...<extra>}:
 * the 200 answer into resp; AccessDenied -> NS_E_DENIED, NotFound -> NS_E_NOT_FOUND. */
static ns_err kms_key_call(ns_buf *resp, const char *op, const char *extra,
                           const ns_kms_decrypt_req *req, const ns_creds *creds)
{
    char region[NS_AWS_REGION_MAX], target[64];
    ns_url url;
    ns_tls_ca *ca = NULL;
    ns_aws_client c;
    int status = 0;
    ns_err rc;
    ns_buf body;
    ENSURE(req->key_id != NULL && req->key_id[0], NS_E_USAGE, "kms: %s needs a key id", op);
    ns_buf_init(&body, NS_KMS_REQ_MAX);
    GUARD_GOTO(kms_endpoint(&url, region, &ca, req, 0), rc, out);
    GUARD_GOTO(ns_buf_append_str(&body, "{\"KeyId\":"), rc, out);
    GUARD_GOTO(ns_buf_append_json_str(&body, req->key_id, strlen(req->key_id)), rc, out);
    GUARD_GOTO(ns_buf_append_str(&body, extra), rc, out);
    GUARD_GOTO(ns_buf_append_str(&body, "}"), rc, out);
    memset(&c, 0, sizeof c);
    c.service = "kms";
    c.region = region;
    c.creds = creds;
    c.endpoint = &url;
    c.via = req->proxy;
    c.ca = ca;
    ns_retry_default(&c.retry);
    snprintf(target, sizeof target, "TrentService.%s", op);
    GUARD_GOTO(ns_aws_json_call(&c, target, body.data, body.len, &status, resp), rc, out);
    if (status != 200) {
        char code[KMS_CODE_MAX], msg[KMS_MSG_MAX];
        ns_aws_json_error(resp->data, resp->len, code, sizeof code, msg, sizeof msg);
        if (strcmp(code, "AccessDeniedException") == 0) {
            rc = ns_fail(NS_E_DENIED, "KMS denied %s on %s (%s)", op, req->key_id,
                         msg[0] ? msg : "AccessDeniedException");
        } else if (strcmp(code, "NotFoundException") == 0) {
            rc = ns_fail(NS_E_NOT_FOUND, "KMS key %s not found in %s (%s): check %s and AWS_REGION",
                         req->key_id, region, msg[0] ? msg : "NotFoundException",
                         req->key_setting ? req->key_setting : "--key-id");
        } else {
            rc = ns_fail(NS_E_REMOTE, "KMS %s on %s failed with HTTP %d: %s: %s", op, req->key_id,
                         status, code[0] ? code : "-", msg[0] ? msg : "-");
        }
    }
out:
    ns_buf_free(&body);
    ns_tls_ca_free(ca);
    return rc;
}

ns_err ns_kms_get_key_policy(ns_buf *policy, const ns_kms_decrypt_req *req, const ns_creds *creds)
{
    ns_buf resp;
    ns_buf_init(&resp, NS_KMS_RESP_MAX);
    ns_err rc = kms_key_call(&resp, "GetKeyPolicy", ",\"PolicyName\":\"default\"", req, creds);
    if (rc == NS_OK) {
        rc = ns_json_get_string(resp.data, resp.len, "Policy", policy);
        if (rc == NS_E_NOT_FOUND) {
            rc = ns_fail(NS_E_PROTO, "kms: the GetKeyPolicy response has no Policy");
        }
    }
    ns_buf_free(&resp);
    return rc;
}

ns_err ns_kms_describe_key_arn(char arn[NS_KMS_ARN_MAX], const ns_kms_decrypt_req *req,
                               const ns_creds *creds)
{
    ns_buf resp;
    arn[0] = '\0';
    ns_buf_init(&resp, NS_KMS_RESP_MAX);
    ns_err rc = kms_key_call(&resp, "DescribeKey", "", req, creds);
    if (rc == NS_OK) {
        rc = ns_json_validate(resp.data, resp.len);
    }
    if (rc == NS_OK) {
        cJSON *o = cJSON_ParseWithLength((const char *)resp.data, resp.len);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "KeyMetadata");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "Arn");
        if (cJSON_IsString(a) && a->valuestring != NULL && a->valuestring[0] &&
            strlen(a->valuestring) < NS_KMS_ARN_MAX) {
            memcpy(arn, a->valuestring, strlen(a->valuestring) + 1);
        } else {
            rc = ns_fail(NS_E_PROTO, "kms: the DescribeKey response has no KeyMetadata.Arn");
        }
        cJSON_Delete(o);
    } else if (rc == NS_E_PARSE) {
        rc = ns_fail(NS_E_PROTO, "kms: the DescribeKey response is not JSON");
    }
    ns_buf_free(&resp);
    return rc;
}
