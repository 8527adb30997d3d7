/*
 * libFuzzer target: the guest-to-backend path of the vhost-vsock device. The input becomes the
 * guest's side of shared memory (see the layout below): both rings' descriptor tables, avail
 * rings and indexes, and the buffer area the descriptors point into; the device then consumes
 * the tx ring and fills the rx ring, twice (the second pass sees what the first left). Routes:
 * port 5000 to a live unix listener (so REQUEST/RW/SHUTDOWN reach real connections) and 5001 to
 * nowhere. ASan checks that nothing outside the region is read or written; the device may stop
 * (NS_E_PROTO) but never crash, and used indexes never run ahead of what the guest offered.
 *
 * Input: u16 tx_avail_idx, u16 rx_avail_idx, 1024 B tx desc, 128 B tx avail ring, 1024 B rx
 * desc, 128 B rx avail ring, then up to 64 KiB for the buffer area at VG_BUF_BASE.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../unit/vguest.h"
#include "addr.h"
#include "log.h"
#include "vsock_dev.h"

static int g_lfd = -1;
static ns_vsock_route g_routes[2];

static void setup(void)
{
    if (g_lfd >= 0) {
        return;
    }
    ns_log_set_level(NS_LOG_ERROR);
    g_routes[0].port = 5000;
    g_routes[0].addr.kind = NS_ADDR_UNIX;
    snprintf(g_routes[0].addr.path, sizeof g_routes[0].addr.path, "/tmp/fuzz-vsock.%d",
             (int)getpid());
    unlink(g_routes[0].addr.path);
    if (ns_addr_listen(&g_routes[0].addr, 64, NS_LISTEN_NONBLOCK, &g_lfd) != NS_OK) {
        __builtin_trap();
    }
    g_routes[1].port = 5001;
    g_routes[1].addr.kind = NS_ADDR_UNIX;
    snprintf(g_routes[1].addr.path, sizeof g_routes[1].addr.path, "/tmp/fuzz-vsock-none.%d",
             (int)getpid());
}

static void take(uint8_t *dst, size_t n, const uint8_t **p, size_t *left)
{
    size_t k = n < *left ? n : *left;
    memcpy(dst, *p, k);
    *p += k;
    *left -= k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static vguest g;
    static uint8_t *mem;
    setup();
    if (!mem) {
        mem = aligned_alloc(4096, VG_SIZE);
    }
    memset(mem, 0, VG_SIZE);
    if (vg_init_at(&g, mem) != 0) {
        __builtin_trap();
    }
    const uint8_t *p = data;
    size_t left = size;
    uint8_t idx[4] = {0};
    take(idx, 4, &p, &left);
    take(mem + 0x3000, 1024, &p, &left);
    take(mem + 0x4000 + 4, 128, &p, &left);
    take(mem + 0x0000, 1024, &p, &left);
    take(mem + 0x1000 + 4, 128, &p, &left);
    take(mem + VG_BUF_BASE, 65536, &p, &left);
    uint16_t tx_idx = (uint16_t)(idx[0] | idx[1] << 8), rx_idx = (uint16_t)(idx[2] | idx[3] << 8);
    vg_st16(mem + 0x4000 + 2, tx_idx);
    vg_st16(mem + 0x1000 + 2, rx_idx);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    ns_vsock_cfg cfg = {.guest_cid = 16,
                        .parent_cid = 3,
                        .connect = g_routes,
                        .nconnect = 2,
                        .buf_size = 4096,
                        .max_conns = 8};
    ns_vsock_dev *d = NULL;
    if (ns_vsock_dev_new(&cfg, ep, &d) != NS_OK) {
        __builtin_trap();
    }
    ns_vsock_dev_attach(d, &g.vmem, &g.rx, &g.tx);
    for (int pass = 0; pass < 2; pass++) {
        int rx = 0, tx = 0;
        if (ns_vsock_dev_run(d, &rx, &tx) != NS_OK) {
            break; /* the device stopped: a clean refusal */
        }
        struct epoll_event ev[16];
        int n = epoll_wait(ep, ev, 16, 0);
        for (int i = 0; i < n; i++) {
            ns_vsock_dev_event(d, ev[i].data.ptr, ev[i].events);
        }
    }
    uint16_t tx_used = vg_ld16(mem + 0x5000 + 2), rx_used = vg_ld16(mem + 0x2000 + 2);
    if ((uint16_t)(tx_idx - tx_used) > tx_idx || (uint16_t)(rx_idx - rx_used) > rx_idx) {
        __builtin_trap(); /* used ran ahead of avail */
    }
    ns_vsock_dev_free(d);
    close(ep);
    for (int fd; (fd = accept(g_lfd, NULL, NULL)) >= 0;) {
        close(fd);
    }
    return 0;
}
