/*
 * rng: the one source of randomness of nsign: the kernel CSPRNG through getrandom(2).
 *
 * getrandom blocks only until the kernel pool is initialised once after boot (in a Nitro
 * enclave the nsm hwrng feeds it), never opens a file (a FROM-scratch image may have no /dev
 * yet) and cannot run short for requests <= 256 bytes; longer requests are looped.
 * ns_rng_mbedtls has mbedtls's f_rng signature, so mbedtls TLS/RSA/ECDSA code can use the kernel
 * CSPRNG directly without a DRBG. rng.c also defines mbedtls_hardware_poll, the one entropy
 * source of mbedtls's own contexts (PSA crypto's DRBG): getrandom(2) as well.
 */
#ifndef NS_RNG_H
#define NS_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Fills out with n random bytes; NS_E_CRYPTO if the kernel refuses (never a partial fill). */
ns_err ns_rng_bytes(uint8_t *out, size_t n) NS_MUST_CHECK;
/* mbedtls f_rng: ctx is ignored; returns 0, or MBEDTLS_ERR_ENTROPY_SOURCE_FAILED (-0x003C). */
int ns_rng_mbedtls(void *ctx, unsigned char *out, size_t n);
/* A uniform value in [0, bound) (bound > 0), for jitter and similar non-secret uses. */
uint32_t ns_rng_uniform(uint32_t bound);

#endif
