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

#endif
