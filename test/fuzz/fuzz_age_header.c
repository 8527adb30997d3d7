/* libFuzzer target: the age header parser. A parsed header must lie within the input, its
 * stanzas' arguments within the header, and re-parsing the header alone must give the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "age.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ns_age_header *h, *h2;
    if (h == NULL) {
        h = malloc(sizeof *h);
        h2 = malloc(sizeof *h2);
        ns_age_header_init(h);
        ns_age_header_init(h2);
    }
    if (ns_age_header_parse(h, data, size) != NS_OK) {
        return 0;
    }
    if (h->len > size || h->mac_input_len >= h->len || h->nstanzas > NS_AGE_MAX_STANZAS) {
        __builtin_trap();
    }
    for (size_t i = 0; i < h->nstanzas; i++) {
        const ns_age_stanza *s = &h->stanzas[i];
        if (s->nargs == 0 || s->body_off + s->body_len > h->bodies.len) {
            __builtin_trap();
        }
        for (size_t j = 0; j < s->nargs; j++) {
            if (s->arg_len[j] == 0 || s->arg_off[j] + s->arg_len[j] > h->len) {
                __builtin_trap();
            }
        }
    }
    if (ns_age_header_parse(h2, data, h->len) != NS_OK || h2->len != h->len ||
        h2->nstanzas != h->nstanzas) {
        __builtin_trap();
    }
    return 0;
}
