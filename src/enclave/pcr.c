/*
 * pcr: see pcr.h. SHA-384 is mbedtls's SHA-512 family; this is the one place that calls it for
 * PCRs.
 */
#include "pcr.h"

#include <stdio.h>
#include <string.h>

#include "mbedtls/sha512.h"

ns_err ns_sha384(uint8_t out[NS_PCR_LEN], const uint8_t *p, size_t n)
{
    uint8_t full[64];
    ENSURE(mbedtls_sha512(p, n, full, 1) == 0, NS_E_CRYPTO, "sha384 failed");
    memcpy(out, full, NS_PCR_LEN);
    return NS_OK;
}

ns_err ns_pcr_extend(uint8_t pcr[NS_PCR_LEN], const uint8_t *data, size_t n)
{
    mbedtls_sha512_context h;
    uint8_t full[64];
    int rc;
    mbedtls_sha512_init(&h);
    rc = mbedtls_sha512_starts(&h, 1);
    rc = rc ? rc : mbedtls_sha512_update(&h, pcr, NS_PCR_LEN);
    rc = rc ? rc : mbedtls_sha512_update(&h, data, n);
    rc = rc ? rc : mbedtls_sha512_finish(&h, full);
    mbedtls_sha512_free(&h);
    ENSURE(rc == 0, NS_E_CRYPTO, "sha384 failed");
    memcpy(pcr, full, NS_PCR_LEN);
    return NS_OK;
}

ns_err ns_pcr16_predict(uint8_t out[NS_PCR_LEN], const uint8_t *age_ct, size_t age_len,
                        const uint8_t *shares_ct, size_t shares_len, const uint8_t *config,
                        size_t config_len)
{
    const uint8_t *in[3] = {age_ct, shares_ct, config};
    const size_t len[3] = {age_len, shares_len, config_len};
    uint8_t d[NS_PCR_LEN];
    memset(out, 0, NS_PCR_LEN);
    for (int i = 0; i < 3; i++) {
        if (in[i] == NULL) {
            continue;
        }
        GUARD(ns_sha384(d, in[i], len[i]));
        GUARD(ns_pcr_extend(out, d, sizeof d));
    }
    return NS_OK;
}

void ns_pcr_hex(char out[NS_PCR_HEX_LEN], const uint8_t pcr[NS_PCR_LEN])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < NS_PCR_LEN; i++) {
        out[2 * i] = hx[pcr[i] >> 4];
        out[2 * i + 1] = hx[pcr[i] & 15];
    }
    out[2 * NS_PCR_LEN] = '\0';
}
