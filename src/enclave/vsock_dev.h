/*
 * vsock_dev: the virtio-vsock device (virtio 1.2, section 5.10) behind nsign's vhost-user
 * backend: packets on the guest's tx queue, packets placed in its rx queue, and the host
 * sockets each guest connection is mapped to.
 *
 * Routing is a fixed table given at start and nothing else is reachable: a guest connection
 * to PARENT_CID:P goes to the host address of route P (unix or tcp); a host client accepted on
 * a listen route's address reaches the guest's port P; on the optional hybrid socket (unix, the
 * Firecracker convention) a client writes "CONNECT P\n", gets "OK LOCALPORT\n" once the guest
 * accepted, and then the stream.
 *
 * Flow control follows the spec's credit scheme both ways: the guest may have at most
 * buf_size unforwarded bytes per connection (more resets the connection), and host data is read
 * only while the guest advertises room for it, straight into the guest's rx buffers, so a slow
 * reader on either side stalls the writer and nothing queues up without bound. Memory is
 * max_conns * buf_size plus the table. Guest mistakes at the packet level reset that connection;
 * at the ring level (ns_vq_pop's NS_E_PROTO, an rx buffer that cannot hold a header) the device
 * stops with an error.
 */
#ifndef NS_VSOCK_DEV_H
#define NS_VSOCK_DEV_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "err.h"
#include "virtq.h"

#define NS_VSOCK_HDR_LEN 44
#define NS_VSOCK_MAX_PAYLOAD (64 * 1024)
#define NS_VSOCK_MAX_ROUTES 64
#define NS_VSOCK_DEFAULT_BUF (256 * 1024)
#define NS_VSOCK_DEFAULT_MAX_CONNS 256

#define NS_VSOCK_TYPE_STREAM 1
enum {
    NS_VSOCK_OP_INVALID = 0,
    NS_VSOCK_OP_REQUEST = 1,
    NS_VSOCK_OP_RESPONSE = 2,
    NS_VSOCK_OP_RST = 3,
    NS_VSOCK_OP_SHUTDOWN = 4,
    NS_VSOCK_OP_RW = 5,
    NS_VSOCK_OP_CREDIT_UPDATE = 6,
    NS_VSOCK_OP_CREDIT_REQUEST = 7,
};
#define NS_VSOCK_SHUTDOWN_RCV 1u
#define NS_VSOCK_SHUTDOWN_SEND 2u

typedef struct {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port;
    uint32_t len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
} ns_vsock_hdr;

void ns_vsock_hdr_parse(ns_vsock_hdr *h, const uint8_t b[NS_VSOCK_HDR_LEN]);
void ns_vsock_hdr_encode(uint8_t b[NS_VSOCK_HDR_LEN], const ns_vsock_hdr *h);

typedef struct {
    uint32_t port; /* the guest-side port */
    ns_addr addr;  /* the host-side address (unix or tcp) */
} ns_vsock_route;

typedef struct {
    uint64_t guest_cid;
    uint64_t parent_cid;           /* the CID the guest reaches the host as (Nitro: 3) */
    const ns_vsock_route *connect; /* guest -> parent_cid:port -> addr */
    size_t nconnect;
    const ns_vsock_route *listen; /* host client at addr -> guest port */
    size_t nlisten;
    const ns_addr *hybrid; /* optional unix listener speaking "CONNECT PORT\n" */
    size_t max_conns;      /* 0: default */
    uint32_t buf_size;     /* per connection, guest -> host; 0: default */
    int connect_timeout_ms;
} ns_vsock_cfg;

typedef struct ns_vsock_dev ns_vsock_dev;

/*
 * Every epoll cookie of the backend points at a struct whose first member is one of these, so
 * one loop can tell the vhost-user socket, the kick eventfds and the device's sockets apart.
 */
enum { NS_VTAG_FRONTEND = 1, NS_VTAG_KICK, NS_VTAG_LISTENER, NS_VTAG_CONN };

/* Binds the listen routes and registers them with epfd. */
ns_err ns_vsock_dev_new(const ns_vsock_cfg *cfg, int epfd, ns_vsock_dev **out) NS_MUST_CHECK;
void ns_vsock_dev_free(ns_vsock_dev *d);

/* Gives the device its memory and queues (NULL = not running). Stopping drops connections. */
void ns_vsock_dev_attach(ns_vsock_dev *d, const ns_vmem *mem, ns_vq *rx, ns_vq *tx);
/* Drops every connection (resets the host side): memory is about to change or go away. */
void ns_vsock_dev_reset(ns_vsock_dev *d);

/*
 * Consumes the tx queue and fills the rx queue as far as credit and buffers allow. Sets
 * *rx_used / *tx_used when used entries were added (the caller interrupts the guest).
 * NS_E_PROTO stops the device: the guest broke the ring rules.
 */
ns_err ns_vsock_dev_run(ns_vsock_dev *d, int *rx_used, int *tx_used) NS_MUST_CHECK;
/* An epoll event on one of the device's sockets (cookie tag LISTENER or CONN). */
void ns_vsock_dev_event(ns_vsock_dev *d, void *cookie, uint32_t events);
/* Expires connect and close timeouts; returns ms until the next deadline (-1: none). */
int ns_vsock_dev_tick(ns_vsock_dev *d, int64_t now_ms);

typedef struct {
    size_t conns;
    uint64_t opened, closed, resets_sent, bytes_to_host, bytes_to_guest;
} ns_vsock_stats;
void ns_vsock_dev_stats(const ns_vsock_dev *d, ns_vsock_stats *s);

#endif
