/*
 * libFuzzer target: the vhost-user message handler on a sequence of messages built from the
 * input (12-byte header as on the wire, then the payload, repeated), without descriptors. A
 * handler error ends the sequence as it ends a session. Replies must fit their buffer and carry
 * the REPLY flag; nothing may crash or leak.
 */
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "vhost_user.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ns_vhost s;
    static ns_vhost_msg m, reply;
    ns_log_set_level(NS_LOG_ERROR);
    ns_vhost_init(&s, 16, -1, NULL);
    size_t off = 0;
    while (size - off >= NS_VHOST_HDR_LEN) {
        const uint8_t *h = data + off;
        m.request =
            (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        m.flags =
            (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
        uint32_t sz = (uint32_t)h[8] | (uint32_t)h[9] << 8;
        off += NS_VHOST_HDR_LEN;
        if (sz > NS_VHOST_PAYLOAD_MAX || sz > size - off) {
            break;
        }
        m.size = sz;
        memcpy(m.payload, data + off, sz);
        off += sz;
        int has = 0;
        int fds[1] = {-1};
        if (ns_vhost_handle(&s, &m, fds, 0, &reply, &has) != NS_OK) {
            break;
        }
        if (has && (reply.size > NS_VHOST_PAYLOAD_MAX || !(reply.flags & NS_VHOST_FLAG_REPLY))) {
            __builtin_trap();
        }
    }
    ns_vhost_cleanup(&s);
    return 0;
}
