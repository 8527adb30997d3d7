/* libFuzzer target: the BER EnvelopedData walker; slices stay in bounds, and decryption with a
 * fixed key (generated once) never crashes and never returns plaintext for a failed unwrap. */
#include <stdint.h>
#include <stdlib.h>

#include "cms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ns_cms_key *key;
    ns_cms_env e;
    if (key == NULL && ns_cms_key_generate(&key) != NS_OK) {
        abort();
    }
    if (ns_cms_parse(&e, data, size) != NS_OK) {
        return 0;
    }
    if (e.enc_key < data || e.enc_key + e.enc_key_len > data + size || e.content < data ||
        e.content + e.content_len > data + size) {
        __builtin_trap();
    }
    ns_buf out;
    ns_buf_init_secret(&out, 1 << 20);
    if (ns_cms_decrypt(&out, key, data, size) != NS_OK && out.len != 0) {
        __builtin_trap();
    }
    ns_buf_free(&out);
    return 0;
}
