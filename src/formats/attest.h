/*
 * attest: what a client checks in a Nitro attestation document before it trusts the enclave
 * behind it, on top of cose's parsing and chain/signature verification.
 *
 * Checks, in this order (the first that fails is named in the error: "check NAME failed: ..."):
 * parse (the COSE document and its payload); signature (ES384 by the leaf certificate); chain
 * (leaf and cabundle to the trusted root, the AWS Nitro Enclaves root G1 embedded unless
 * replaced, each certificate valid at the document's own timestamp); pcrN (every expected PCR
 * in ascending index); nonce; user_data; public_key. An expectation that is not set is not
 * checked; an expectation on a field the document holds as null fails.
 *
 * Expectations come from `make eif`'s measurements.json ({"Measurements": {"HashAlgorithm":
 * "Sha384 { ... }", "PCR0": hex, ...}}, as nitro-cli prints it), from "N=HEX" strings, and from
 * a certificate whose DER SubjectPublicKeyInfo public_key must equal (sign-service binds its TLS
 * key this way). The parsers here are fuzzed (test/fuzz/fuzz_attest.c).
 */
#ifndef NS_ATTEST_H
#define NS_ATTEST_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cose.h"
#include "err.h"

#define NS_ATTEST_MEASUREMENTS_MAX (64u * 1024)
#define NS_ATTEST_CERT_MAX (64u * 1024)
#define NS_ATTEST_SPKI_MAX 1024

typedef struct {
    uint8_t val[NS_ATT_FIELD_MAX];
    size_t len;
    int set;
} ns_attest_field;

/* Another accepted set of PCRs (a rolling upgrade: the old and the new image). */
#define NS_ATTEST_ALT_MAX 3
typedef struct {
    uint8_t pcr[NS_ATT_PCR_MAX][NS_ATT_PCR_LEN_MAX];
    size_t pcr_len[NS_ATT_PCR_MAX];
    uint32_t pcr_set;
} ns_attest_pcrs;

typedef struct {
    uint8_t pcr[NS_ATT_PCR_MAX][NS_ATT_PCR_LEN_MAX];
    size_t pcr_len[NS_ATT_PCR_MAX];
    uint32_t pcr_set; /* bit i: PCR i is expected */
    /* The document may match these PCRs or any one alternative set (ns_attest_expect_alt). */
    ns_attest_pcrs alt[NS_ATTEST_ALT_MAX];
    int nalt;
    ns_attest_field nonce;
    ns_attest_field user_data;
    ns_attest_field public_key; /* DER SubjectPublicKeyInfo */
} ns_attest_expect;

/* The AWS Nitro Enclaves root G1 (PEM, NUL-terminated; sizeof includes the NUL). */
extern const char ns_attest_root_g1_pem[];

void ns_attest_expect_init(ns_attest_expect *x);
/* "N=HEX": PCR N (0..31) must equal HEX (1..64 bytes), in the first set and in every alternative
 * set already added (ns_attest_expect_alt: call this after them), so a pin holds whichever image
 * the document matches. A PCR given twice in a set must agree. */
ns_err ns_attest_expect_pcr(ns_attest_expect *x, const char *spec) NS_MUST_CHECK;
/* 1 when every accepted set pins PCR idx. */
int ns_attest_expect_pins(const ns_attest_expect *x, unsigned idx);
/* measurements.json of `make eif` / `nitro-cli build-enclave`: every "PCRn" becomes expected. */
ns_err ns_attest_expect_measurements(ns_attest_expect *x, const uint8_t *json,
                                     size_t len) NS_MUST_CHECK;
/* Every measurements.json after the first (several --expect FILE during a rolling upgrade): its
 * PCRs become one more accepted set; a document passes when its PCRs match any one set whole
 * (never a mix of sets). The first call fills x's own PCRs. At most 1 + NS_ATTEST_ALT_MAX. */
ns_err ns_attest_expect_alt(ns_attest_expect *x, const uint8_t *json, size_t len) NS_MUST_CHECK;
/* A hex string (possibly empty) into a field. what names the option in errors. */
ns_err ns_attest_expect_hex(ns_attest_field *f, const char *hex, const char *what) NS_MUST_CHECK;

/* The DER SubjectPublicKeyInfo of a certificate given as PEM or DER. */
ns_err ns_attest_spki_of_cert(uint8_t *out, size_t cap, size_t *len, const uint8_t *cert,
                              size_t cert_len) NS_MUST_CHECK;
/* The DER of the first certificate of a PEM (or DER) file, into out. */
ns_err ns_attest_cert_der(ns_buf *out, const uint8_t *pem, size_t len) NS_MUST_CHECK;

/* A document file's bytes: raw COSE (first byte 0x84 or 0xd2) or base64 (whitespace ignored). */
ns_err ns_attest_decode_input(ns_buf *doc, const uint8_t *p, size_t n) NS_MUST_CHECK;

/* The expectation checks alone, on a document already verified. NS_E_AUTH names the check. */
ns_err ns_attest_check(const ns_att_doc *d, const ns_attest_expect *x) NS_MUST_CHECK;

/*
 * Verifies a COSE document against root_der (NULL: the embedded AWS root) and then the
 * expectations (x may be NULL). d is filled when parsing succeeded.
 */
ns_err ns_attest_verify(ns_att_doc *d, const uint8_t *doc, size_t n, const uint8_t *root_der,
                        size_t root_len, const ns_attest_expect *x) NS_MUST_CHECK;

/* The decoded document as one JSON object (bytes as hex, certificates as base64 DER). */
ns_err ns_attest_doc_json(ns_buf *out, const ns_att_doc *d) NS_MUST_CHECK;

#endif
