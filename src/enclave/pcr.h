/*
 * pcr: measured boot. What the host chose is measured into PCR16 before anything is decrypted:
 *
 *   PCR16 = 0^48
 *   PCR16 = SHA-384(PCR16 || SHA-384(age-key ciphertext))      frame of port 7101
 *   PCR16 = SHA-384(PCR16 || SHA-384(shares ciphertext))       frame of port 7102
 *   PCR16 = SHA-384(PCR16 || SHA-384(configuration document))  frame of port 7103, when sent
 *
 * then locked (the NSM's ExtendPCR and LockPCR), so every attestation document carries it. The
 * credentials (7100) are not measured: they are secret and they rotate. This module only
 * computes (no I/O): the enclave checks the NSM's value against it, the host predicts it
 * (`nsign eif pcr16`, `nsign run-enclave --dry-run --fetch`).
 */
#ifndef NS_PCR_H
#define NS_PCR_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NS_PCR_LEN 48
#define NS_PCR_MEASURED 16 /* the PCR nsign extends and locks */
#define NS_PCR_HEX_LEN (2 * NS_PCR_LEN + 1)

ns_err ns_sha384(uint8_t out[NS_PCR_LEN], const uint8_t *p, size_t n) NS_MUST_CHECK;
/* pcr = SHA-384(pcr || data), as the NSM's ExtendPCR. */
ns_err ns_pcr_extend(uint8_t pcr[NS_PCR_LEN], const uint8_t *data, size_t n) NS_MUST_CHECK;
/* PCR16 as the enclave leaves it; config NULL when no configuration frame was sent. */
ns_err ns_pcr16_predict(uint8_t out[NS_PCR_LEN], const uint8_t *age_ct, size_t age_len,
                        const uint8_t *shares_ct, size_t shares_len, const uint8_t *config,
                        size_t config_len) NS_MUST_CHECK;
/* Lowercase hex, NUL-terminated. */
void ns_pcr_hex(char out[NS_PCR_HEX_LEN], const uint8_t pcr[NS_PCR_LEN]);

#endif
