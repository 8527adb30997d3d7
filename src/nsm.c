/* nsm: placeholder until the kms-decrypt issue lands the real driver and unix-socket client. */
#include "nsm.h"

int ns_nsm_available(void)
{
    return 0;
}

ns_err ns_nsm_attest(ns_buf *doc, const uint8_t *user_data, size_t user_data_len,
                     const uint8_t *nonce, size_t nonce_len, const uint8_t *public_key,
                     size_t public_key_len)
{
    (void)doc, (void)user_data, (void)user_data_len, (void)nonce, (void)nonce_len;
    (void)public_key, (void)public_key_len;
    BAIL(NS_E_UNAVAILABLE, "no NSM device: not running in a Nitro Enclave (set NSM_DEVICE=unix:PATH "
                           "to use a software NSM)");
}

ns_err ns_nsm_random(uint8_t *out, size_t n)
{
    (void)out, (void)n;
    BAIL(NS_E_UNAVAILABLE, "no NSM device: not running in a Nitro Enclave");
}
