/*
 * nsm: the Nitro Secure Module, through the real driver (ioctl 0xC0200A00 on /dev/nsm, CBOR
 * request/response) or, for tests, the same CBOR exchange over a unix socket named by
 * NSM_DEVICE=unix:PATH (one request per connection; the client writes the request and shuts
 * down its write side; the server answers and closes).
 *
 * ns_nsm_available says whether a device is configured or present. Every call returns
 * NS_E_UNAVAILABLE when there is none (outside an enclave), with a message that says so.
 */
#ifndef NS_NSM_H
#define NS_NSM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NS_NSM_FIELD_MAX 1024 /* user_data, nonce, public_key: at most 1024 bytes each */
#define NS_NSM_PCR_LEN 48     /* SHA-384 */

int ns_nsm_available(void);

/*
 * Attestation document (COSE_Sign1 bytes) binding user_data, nonce and public_key (each may be
 * NULL/0). doc must be initialised by the caller (ns_buf_init with a max >= 16 KiB).
 */
ns_err ns_nsm_attest(ns_buf *doc, const uint8_t *user_data, size_t user_data_len,
                     const uint8_t *nonce, size_t nonce_len, const uint8_t *public_key,
                     size_t public_key_len) NS_MUST_CHECK;

/* n bytes of NSM randomness (GetRandom, repeated as needed). */
ns_err ns_nsm_random(uint8_t *out, size_t n) NS_MUST_CHECK;

/*
 * Platform configuration registers (SHA-384, 48 bytes). DescribePCR: the value and whether it is
 * locked. ExtendPCR: value = SHA-384(value || data) (data at most NS_NSM_FIELD_MAX bytes), the new
 * value in value. LockPCR: no further change. A locked PCR refuses ExtendPCR and LockPCR with the
 * NSM's ReadOnlyIndex, reported as NS_E_DENIED; other NSM errors are NS_E_REMOTE.
 */
ns_err ns_nsm_describe_pcr(uint16_t index, int *locked,
                           uint8_t value[NS_NSM_PCR_LEN]) NS_MUST_CHECK;
ns_err ns_nsm_extend_pcr(uint16_t index, const uint8_t *data, size_t n,
                         uint8_t value[NS_NSM_PCR_LEN]) NS_MUST_CHECK;
ns_err ns_nsm_lock_pcr(uint16_t index) NS_MUST_CHECK;

#endif
