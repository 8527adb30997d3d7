/* rng: see rng.h. getrandom(2) only; no file descriptors, no DRBG state to protect. */
#include "rng.h"

#include <errno.h>
#include <sys/random.h>

#define NS_RNG_ERR_SOURCE (-0x003C) /* MBEDTLS_ERR_ENTROPY_SOURCE_FAILED */

ns_err ns_rng_bytes(uint8_t *out, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = getrandom(out + done, n - done, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return ns_fail_errno(NS_E_CRYPTO, "getrandom failed");
        }
        done += (size_t)r;
    }
    return NS_OK;
}

int ns_rng_mbedtls(void *ctx, unsigned char *out, size_t n)
{
    (void)ctx;
    return ns_rng_bytes(out, n) == NS_OK ? 0 : NS_RNG_ERR_SOURCE;
}

/*
 * mbedtls's hardware entropy hook (MBEDTLS_ENTROPY_HARDWARE_ALT in nsign_mbedtls_config.h): the
 * only source of every mbedtls_entropy_context, PSA crypto's DRBG included.
 */
int mbedtls_hardware_poll(void *data, unsigned char *out, size_t len, size_t *olen);
int mbedtls_hardware_poll(void *data, unsigned char *out, size_t len, size_t *olen)
{
    (void)data;
    if (ns_rng_bytes(out, len) != NS_OK) {
        *olen = 0;
        return NS_RNG_ERR_SOURCE;
    }
    *olen = len;
    return 0;
}

uint32_t ns_rng_uniform(uint32_t bound)
{
    if (bound <= 1) {
        return 0;
    }
    /* Rejection sampling: values below 2^32 mod bound would bias the result. */
    uint32_t min = (uint32_t)(-bound) % bound;
    for (;;) {
        uint32_t v;
        if (ns_rng_bytes((uint8_t *)&v, sizeof v) != NS_OK) {
            return 0; /* only used for jitter: no jitter beats failing a retry */
        }
        if (v >= min) {
            return v % bound;
        }
    }
}
