/*
 * vguest.h: a simulated virtio guest for the vhost-vsock tests and fuzzer: one memory region
 * (guest physical base VG_GPA, front-end user base VG_UVA, deliberately different), the rx and
 * tx split rings of a vsock device in it, and a buffer area the guest hands out.
 * Memory layout (offsets in the region):
 *   0x0000 rx desc, 0x1000 rx avail, 0x2000 rx used, 0x3000 tx desc, 0x4000 tx avail,
 *   0x5000 tx used, 0x10000.. buffers.
 */
#ifndef NS_VGUEST_H
#define NS_VGUEST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtq.h"
#include "vsock_dev.h"

#define VG_GPA 0x40000000ull
#define VG_UVA 0x7f1200000000ull
#define VG_SIZE (1u << 20)
#define VG_QSIZE 64
#define VG_BUF_BASE 0x10000u
#define VG_RX_BUF 4096u

typedef struct {
    uint8_t *mem;
    ns_vmem vmem;
    ns_vq rx, tx;
    uint16_t rx_avail, tx_avail; /* guest's avail idx */
    uint16_t rx_seen, tx_seen;   /* used entries consumed */
    uint16_t rx_next_desc, tx_next_desc;
    uint32_t buf_next; /* bump allocator in the buffer area */
} vguest;

static inline void vg_st16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void vg_st32(uint8_t *p, uint32_t v)
{
    vg_st16(p, (uint16_t)v);
    vg_st16(p + 2, (uint16_t)(v >> 16));
}
static inline void vg_st64(uint8_t *p, uint64_t v)
{
    vg_st32(p, (uint32_t)v);
    vg_st32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t vg_ld16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t vg_ld32(const uint8_t *p)
{
    return (uint32_t)vg_ld16(p) | (uint32_t)vg_ld16(p + 2) << 16;
}

/* Lays the guest out in mem (VG_SIZE bytes, zeroed), e.g. a memfd mapping shared with a backend. */
static inline int vg_init_at(vguest *g, uint8_t *mem)
{
    memset(g, 0, sizeof *g);
    g->mem = mem;
    g->vmem.n = 1;
    g->vmem.r[0] = (ns_vmem_region){.gpa = VG_GPA, .uva = VG_UVA, .size = VG_SIZE, .host = g->mem};
    g->rx.name = "rx";
    g->tx.name = "tx";
    if (ns_vq_setup(&g->rx, &g->vmem, VG_QSIZE, VG_UVA + 0x0000, VG_UVA + 0x1000,
                    VG_UVA + 0x2000) != NS_OK ||
        ns_vq_setup(&g->tx, &g->vmem, VG_QSIZE, VG_UVA + 0x3000, VG_UVA + 0x4000,
                    VG_UVA + 0x5000) != NS_OK) {
        return -1;
    }
    g->buf_next = VG_BUF_BASE;
    return 0;
}

static inline int vg_init(vguest *g)
{
    uint8_t *mem = aligned_alloc(4096, VG_SIZE);
    if (!mem) {
        return -1;
    }
    memset(mem, 0, VG_SIZE);
    return vg_init_at(g, mem);
}

static inline void vg_free(vguest *g)
{
    free(g->mem);
}

/* A buffer of n bytes in guest memory; returns its guest physical address (wraps around). */
static inline uint64_t vg_alloc(vguest *g, uint32_t n)
{
    if (g->buf_next + n > VG_SIZE) {
        g->buf_next = VG_BUF_BASE;
    }
    uint64_t a = VG_GPA + g->buf_next;
    g->buf_next += (n + 63) & ~63u;
    return a;
}

static inline uint8_t *vg_ptr(vguest *g, uint64_t gpa)
{
    return g->mem + (gpa - VG_GPA);
}

static inline void vg_desc(uint8_t *table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                           uint16_t next)
{
    uint8_t *d = table + 16u * i;
    vg_st64(d, addr);
    vg_st32(d + 8, len);
    vg_st16(d + 12, flags);
    vg_st16(d + 14, next);
}

/* Publishes head in the avail ring of the queue whose rings start at table_off. */
static inline void vg_publish(vguest *g, int tx, uint16_t head)
{
    uint8_t *avail = g->mem + (tx ? 0x4000 : 0x1000);
    uint16_t *idx = tx ? &g->tx_avail : &g->rx_avail;
    vg_st16(avail + 4 + 2u * (*idx % VG_QSIZE), head);
    (*idx)++;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    vg_st16(avail + 2, *idx);
}

/* Sends one packet on tx: header in one descriptor, payload (if any) in a second. */
static inline void vg_tx(vguest *g, const ns_vsock_hdr *h, const void *payload, uint32_t n)
{
    uint8_t *table = g->mem + 0x3000;
    uint16_t d0 = g->tx_next_desc % VG_QSIZE, d1 = (uint16_t)((d0 + 1) % VG_QSIZE);
    g->tx_next_desc = (uint16_t)(g->tx_next_desc + 2);
    uint64_t ha = vg_alloc(g, NS_VSOCK_HDR_LEN);
    ns_vsock_hdr_encode(vg_ptr(g, ha), h);
    if (n == 0) {
        vg_desc(table, d0, ha, NS_VSOCK_HDR_LEN, 0, 0);
    } else {
        uint64_t pa = vg_alloc(g, n);
        memcpy(vg_ptr(g, pa), payload, n);
        vg_desc(table, d0, ha, NS_VSOCK_HDR_LEN, NS_VRING_DESC_F_NEXT, d1);
        vg_desc(table, d1, pa, n, 0, 0);
    }
    vg_publish(g, 1, d0);
}

/* Posts n writable rx buffers of size bytes each (one descriptor per buffer). */
static inline void vg_rx_post(vguest *g, int n, uint32_t size)
{
    uint8_t *table = g->mem + 0x0000;
    for (int i = 0; i < n; i++) {
        uint16_t d = g->rx_next_desc % VG_QSIZE;
        g->rx_next_desc++;
        vg_desc(table, d, vg_alloc(g, size), size, NS_VRING_DESC_F_WRITE, 0);
        vg_publish(g, 0, d);
    }
}

/* Posts rx buffers until `want` are outstanding (offered and not yet used by the device). */
static inline void vg_rx_refill(vguest *g, int want, uint32_t size)
{
    uint16_t used = vg_ld16(g->mem + 0x2000 + 2);
    int out = (uint16_t)(g->rx_avail - used);
    if (out < want) {
        vg_rx_post(g, want - out, size);
    }
}

/* Takes the next used rx entry: header and payload (up to cap bytes). 0 when none. */
static inline int vg_rx_take(vguest *g, ns_vsock_hdr *h, uint8_t *payload, size_t cap,
                             uint32_t *plen)
{
    uint8_t *used = g->mem + 0x2000;
    if (vg_ld16(used + 2) == g->rx_seen) {
        return 0;
    }
    uint8_t *e = used + 4 + 8u * (g->rx_seen % VG_QSIZE);
    uint32_t id = vg_ld32(e), len = vg_ld32(e + 4);
    g->rx_seen++;
    uint8_t *d = g->mem + 16u * (id % VG_QSIZE);
    uint64_t addr = (uint64_t)vg_ld32(d) | (uint64_t)vg_ld32(d + 4) << 32;
    const uint8_t *buf = vg_ptr(g, addr);
    ns_vsock_hdr_parse(h, buf);
    uint32_t n = len > NS_VSOCK_HDR_LEN ? len - NS_VSOCK_HDR_LEN : 0;
    if (n > cap) {
        n = (uint32_t)cap;
    }
    if (payload) {
        memcpy(payload, buf + NS_VSOCK_HDR_LEN, n);
    }
    if (plen) {
        *plen = n;
    }
    return 1;
}

/* How many tx buffers the device has returned. */
static inline uint16_t vg_tx_used(vguest *g)
{
    return vg_ld16(g->mem + 0x5000 + 2);
}

/* A header from the guest (cid) to the parent (3). */
static inline ns_vsock_hdr vg_hdr(uint64_t cid, uint32_t sport, uint32_t dport, uint16_t op,
                                  uint32_t len, uint32_t buf_alloc, uint32_t fwd_cnt)
{
    ns_vsock_hdr h = {.src_cid = cid,
                      .dst_cid = 3,
                      .src_port = sport,
                      .dst_port = dport,
                      .len = len,
                      .type = NS_VSOCK_TYPE_STREAM,
                      .op = op,
                      .buf_alloc = buf_alloc,
                      .fwd_cnt = fwd_cnt};
    return h;
}

#endif
