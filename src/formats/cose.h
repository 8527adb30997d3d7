/*
 * cose: COSE_Sign1 (RFC 9052) as the Nitro Secure Module emits it, and the attestation document
 * it carries (aws-nitro-enclaves-nsm-api "Attestation document" spec).
 *
 *   COSE_Sign1 = [protected: bstr {1: -35 (ES384)}, unprotected: {} (or null), payload: bstr,
 *                 signature: bstr(96) r||s], optionally under tag 18.
 *   payload = {module_id: tstr, digest: "SHA384", timestamp: uint (ms), pcrs: {uint => bstr},
 *              certificate: bstr DER, cabundle: [bstr DER, root first], public_key,
 *              user_data, nonce: bstr / null}
 *
 * Parsing only slices the input (no copies), so an ns_att_doc is valid while the bytes it came
 * from are. Verification checks the ES384 signature with the leaf certificate and the chain
 * leaf <- cabundle[n-1] <- ... <- cabundle[1] <- a trusted root, with validity checked at the
 * document's timestamp (leaf certificates live about three hours).
 */
#ifndef NS_COSE_H
#define NS_COSE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NS_COSE_ES384_SIG_LEN 96
#define NS_ATT_PCR_MAX 32     /* the NSM has 32 PCRs (real documents list 16) */
#define NS_ATT_PCR_LEN_MAX 64 /* SHA-384: 48; allow SHA-512 */
#define NS_ATT_CABUNDLE_MAX 8 /* real chains: root, regional, zonal, instance */
#define NS_ATT_FIELD_MAX 1024 /* public_key, user_data, nonce */
#define NS_ATT_DOC_MAX 16384  /* whole COSE_Sign1 */

typedef struct {
    const uint8_t *protected_hdr; /* bstr contents */
    size_t protected_len;
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *sig;
    size_t sig_len;
    int unsigned_alg; /* alg -1: QEMU's emulated NSM, which does not sign (never verifies) */
} ns_cose_sign1;

typedef struct {
    const uint8_t *p;
    size_t len;
    int present; /* 0 when null or absent */
} ns_att_bytes;

typedef struct {
    ns_att_bytes module_id;
    ns_att_bytes digest;
    uint64_t timestamp;
    ns_att_bytes pcr[NS_ATT_PCR_MAX];
    size_t npcr;
    ns_att_bytes certificate;
    ns_att_bytes cabundle[NS_ATT_CABUNDLE_MAX];
    size_t ncabundle;
    ns_att_bytes public_key;
    ns_att_bytes user_data;
    ns_att_bytes nonce;
} ns_att_doc;

/* Parses the COSE_Sign1 structure: alg ES384 (-35), or -1, the marker QEMU's emulated NSM puts
 * on documents it does not sign (parsed so they can be inspected; they never verify). */
ns_err ns_cose_sign1_parse(ns_cose_sign1 *s, const uint8_t *p, size_t n) NS_MUST_CHECK;
/* Verifies the ES384 signature with the public key of a DER certificate. NS_E_AUTH if wrong. */
ns_err ns_cose_sign1_verify(const ns_cose_sign1 *s, const uint8_t *cert_der,
                            size_t cert_len) NS_MUST_CHECK;
/* Parses the attestation document payload. Required fields must be present and typed. */
ns_err ns_att_doc_parse(ns_att_doc *d, const uint8_t *payload, size_t n) NS_MUST_CHECK;
/*
 * Parses a COSE_Sign1 attestation document and verifies it against a trusted root (DER):
 * chain, validity at the document timestamp, signature. d is filled even when verification
 * fails after parsing (for diagnostics).
 */
ns_err ns_att_verify(ns_att_doc *d, const uint8_t *cose, size_t n, const uint8_t *root_der,
                     size_t root_len) NS_MUST_CHECK;

#endif
