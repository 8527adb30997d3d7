/*
 * cms: the one CMS shape KMS answers with (CiphertextForRecipient), and the ephemeral RSA key
 * it is encrypted to.
 *
 * RFC 5652 EnvelopedData in BER, as KMS and `openssl cms -encrypt -stream` write it: indefinite
 * lengths (0x80 ... 00 00) on the outer layers, the encrypted content as a constructed [0] of
 * chunked OCTET STRINGs. Accepted, and nothing else:
 *   ContentInfo { id-envelopedData, [0] EnvelopedData { version, (no originatorInfo),
 *     recipientInfos SET OF exactly one KeyTransRecipientInfo { version 0|2,
 *       rid issuerAndSerialNumber | [0] subjectKeyIdentifier,
 *       rsaesOaep { [0] sha256, [1] mgf1(sha256), [2] pSpecified(empty) optional },
 *       encryptedKey (modulus-sized) },
 *     EncryptedContentInfo { id-data, aes256-CBC (16-byte IV), [0] content }, [1] attrs? } }
 * mbedtls has no CMS and its ASN.1 reader rejects indefinite lengths, so the BER walker is here:
 * single-byte tags, lengths up to 4 bytes checked against the input, nesting bounded, no
 * recursion. The content-encryption key and every plaintext staging buffer are wiped.
 */
#ifndef NS_CMS_H
#define NS_CMS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NS_CMS_MAX (1u << 20) /* a CiphertextForRecipient (KMS plaintexts are <= 4 KiB) */
#define NS_CMS_BER_DEPTH 16   /* nesting of indefinite-length elements */
#define NS_CMS_RSA_BITS 2048
#define NS_CMS_SPKI_MAX 600 /* DER SubjectPublicKeyInfo of an RSA-2048 key: 294 bytes */

/* An RSA private key (mbedtls), wiped on free. */
typedef struct ns_cms_key ns_cms_key;

/* Generates an ephemeral RSA-2048 key (e = 65537) from the kernel CSPRNG. */
ns_err ns_cms_key_generate(ns_cms_key **k) NS_MUST_CHECK;
/* Loads a PEM/DER private key (tests). */
ns_err ns_cms_key_parse(ns_cms_key **k, const uint8_t *key, size_t n) NS_MUST_CHECK;
/* DER SubjectPublicKeyInfo of the key, what the NSM binds into the attestation document. */
ns_err ns_cms_key_spki(const ns_cms_key *k, uint8_t *out, size_t cap, size_t *len) NS_MUST_CHECK;
void ns_cms_key_free(ns_cms_key *k);

typedef struct {
    const uint8_t *rid; /* subjectKeyIdentifier, or the issuerAndSerialNumber DER */
    size_t rid_len;
    int rid_is_ski;
    const uint8_t *enc_key;
    size_t enc_key_len;
    uint8_t iv[16];
    const uint8_t *content; /* the encryptedContent element (header included) */
    size_t content_len;
    size_t ciphertext_len; /* sum of the chunks */
} ns_cms_env;

/* Parses and checks the whole structure (no key needed). */
ns_err ns_cms_parse(ns_cms_env *e, const uint8_t *ber, size_t n) NS_MUST_CHECK;
/*
 * Decrypts: RSA-OAEP-SHA256 unwrap of the content key, AES-256-CBC over the chunks, PKCS#7
 * padding check. out must be a secret buffer; on failure it is reset (wiped).
 */
ns_err ns_cms_decrypt(ns_buf *out, const ns_cms_key *k, const uint8_t *ber, size_t n) NS_MUST_CHECK;

#endif
