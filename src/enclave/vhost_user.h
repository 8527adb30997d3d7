/*
 * vhost_user: the back-end side of the vhost-user protocol (QEMU's docs/interop/vhost-user.rst)
 * for one virtio-vsock device, and the event loop of nsign's vhost-vsock backend.
 *
 * The front-end (QEMU) connects to our unix socket and sends messages: a 12-byte header
 * (request, flags, size) and a payload of at most NS_VHOST_PAYLOAD_MAX bytes, file descriptors
 * in SCM_RIGHTS. We offer VIRTIO_F_VERSION_1 and VHOST_USER_F_PROTOCOL_FEATURES, and the protocol
 * features REPLY_ACK and CONFIG (the vsock config space: guest_cid). Guest memory comes in
 * SET_MEM_TABLE as memfds we mmap; nothing else of the guest is ever touched. The vsock queues
 * served here are rx (0) and tx (1); QEMU keeps the event queue.
 *
 * ns_vhost_handle is the message handler without the socket, so unit tests and the fuzzer drive
 * it with built messages. A message that violates the protocol fails the session (the front-end
 * is QEMU, a protocol error there is a bug to report, not to work around).
 */
#ifndef NS_VHOST_USER_H
#define NS_VHOST_USER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "virtq.h"
#include "vsock_dev.h"
#include "stop.h"

#define NS_VHOST_HDR_LEN 12
#define NS_VHOST_PAYLOAD_MAX 4096
#define NS_VHOST_MAX_FDS 8
#define NS_VHOST_NQUEUES 2

enum {
    NS_VHOST_GET_FEATURES = 1,
    NS_VHOST_SET_FEATURES = 2,
    NS_VHOST_SET_OWNER = 3,
    NS_VHOST_RESET_OWNER = 4,
    NS_VHOST_SET_MEM_TABLE = 5,
    NS_VHOST_SET_LOG_BASE = 6,
    NS_VHOST_SET_LOG_FD = 7,
    NS_VHOST_SET_VRING_NUM = 8,
    NS_VHOST_SET_VRING_ADDR = 9,
    NS_VHOST_SET_VRING_BASE = 10,
    NS_VHOST_GET_VRING_BASE = 11,
    NS_VHOST_SET_VRING_KICK = 12,
    NS_VHOST_SET_VRING_CALL = 13,
    NS_VHOST_SET_VRING_ERR = 14,
    NS_VHOST_GET_PROTOCOL_FEATURES = 15,
    NS_VHOST_SET_PROTOCOL_FEATURES = 16,
    NS_VHOST_GET_QUEUE_NUM = 17,
    NS_VHOST_SET_VRING_ENABLE = 18,
    NS_VHOST_GET_CONFIG = 24,
    NS_VHOST_SET_CONFIG = 25,
};

#define NS_VHOST_FLAG_VERSION 1u
#define NS_VHOST_FLAG_REPLY 4u
#define NS_VHOST_FLAG_NEED_REPLY 8u

#define NS_VIRTIO_F_VERSION_1 32
#define NS_VHOST_F_PROTOCOL_FEATURES 30
#define NS_VHOST_PROTO_REPLY_ACK 3
#define NS_VHOST_PROTO_CONFIG 9

typedef struct {
    uint32_t request, flags, size;
    uint8_t payload[NS_VHOST_PAYLOAD_MAX];
} ns_vhost_msg;

typedef struct {
    int tag; /* NS_VTAG_KICK: first, the epoll cookie */
    int index;
    ns_vq vq;
    uint16_t num;
    int have_addr;
    uint64_t desc_uva, avail_uva, used_uva;
    uint16_t base;
    int kick_fd, call_fd, err_fd;
    int started, enabled;
} ns_vhost_ring;

typedef struct {
    void *base;
    size_t len;
} ns_vhost_map;

typedef struct {
    uint64_t features, protocol_features;
    int features_set;
    uint64_t guest_cid;
    ns_vmem mem;
    ns_vhost_map maps[NS_VMEM_MAX_REGIONS];
    ns_vhost_ring ring[NS_VHOST_NQUEUES];
    int epfd;          /* kick fds are registered here when >= 0 */
    ns_vsock_dev *dev; /* told when queues start and stop; may be NULL in tests */
} ns_vhost;

void ns_vhost_init(ns_vhost *s, uint64_t guest_cid, int epfd, ns_vsock_dev *dev);
/* Unmaps the memory, closes the eventfds. */
void ns_vhost_cleanup(ns_vhost *s);

/*
 * Handles one message whose fds (taken over: closed here whatever happens) arrived with it.
 * *reply is filled and *has_reply set when the front-end expects an answer. An error means
 * the session must end; its message says which request was wrong and how.
 */
ns_err ns_vhost_handle(ns_vhost *s, const ns_vhost_msg *m, int *fds, size_t nfds,
                       ns_vhost_msg *reply, int *has_reply) NS_MUST_CHECK;

/* Whether ring i is running (started by a kick fd, enabled, addresses valid). */
int ns_vhost_ring_running(const ns_vhost *s, int i);

typedef struct {
    const char *socket_path;
    ns_vsock_cfg dev;
} ns_vhost_vsock_cfg;

/*
 * Listens on socket_path, serves one front-end until it disconnects (NS_OK) or *stop is set
 * (NS_OK), or fails: a protocol error from the front-end, or the guest breaking the ring rules.
 */
ns_err ns_vhost_vsock_serve(const ns_vhost_vsock_cfg *cfg,
                            ns_stop *stop) NS_MUST_CHECK;

#endif
