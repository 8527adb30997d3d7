/*
 * virtq: guest memory as shared by a vhost-user front-end, and split virtqueues over it
 * (virtio 1.2, section 2.7). No I/O: the caller maps the regions and rings the eventfds.
 *
 * Invariants: every guest address is translated through ns_vmem with its full length checked
 * against one region (a range that straddles two regions or wraps is refused); ring indexes and
 * descriptor ids from the guest are bounded by the queue size before use; a descriptor chain is
 * at most NS_VQ_MAX_SEGS long (which also ends loops). A guest that breaks these rules gets
 * NS_E_PROTO with a message naming the queue and the fault; the device then stops (virtio's
 * "device needs reset"), nothing is read or written outside the shared regions.
 */
#ifndef NS_VIRTQ_H
#define NS_VIRTQ_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* vhost-user without CONFIGURE_MEM_SLOTS: at most 8 regions (VHOST_MEMORY_BASELINE_NREGIONS). */
#define NS_VMEM_MAX_REGIONS 8
#define NS_VQ_MAX_SIZE 32768
/* Longest descriptor chain accepted; Linux's vsock driver uses one or two descriptors. */
#define NS_VQ_MAX_SEGS 16

#define NS_VRING_DESC_F_NEXT 1u
#define NS_VRING_DESC_F_WRITE 2u
#define NS_VRING_DESC_F_INDIRECT 4u
#define NS_VRING_AVAIL_F_NO_INTERRUPT 1u

typedef struct {
    uint64_t gpa;  /* guest physical address of the region */
    uint64_t uva;  /* the front-end's user address of the region (vring addresses use these) */
    uint64_t size; /* bytes */
    uint8_t *host; /* where the region is mapped here */
} ns_vmem_region;

typedef struct {
    ns_vmem_region r[NS_VMEM_MAX_REGIONS];
    size_t n;
} ns_vmem;

/* Local pointer to [gpa, gpa+len) if it lies inside one region, else NULL. */
uint8_t *ns_vmem_gpa(const ns_vmem *m, uint64_t gpa, uint64_t len);
/* Same for a front-end user address. */
uint8_t *ns_vmem_uva(const ns_vmem *m, uint64_t uva, uint64_t len);

/* One guest buffer of a chain, already translated. */
typedef struct {
    uint8_t *p;
    uint32_t len;
} ns_vq_seg;

/* A popped descriptor chain: device-readable segments first, then device-writable ones. */
typedef struct {
    uint16_t head;
    size_t nread, nwrite;
    ns_vq_seg rd[NS_VQ_MAX_SEGS];
    ns_vq_seg wr[NS_VQ_MAX_SEGS];
    uint64_t rd_len, wr_len;
} ns_vq_chain;

typedef struct {
    const char *name; /* "rx", "tx": for messages */
    uint16_t num;     /* queue size; 0 = not configured */
    uint8_t *desc;    /* num * 16 bytes */
    uint8_t *avail;   /* 6 + 2 * num bytes */
    uint8_t *used;    /* 6 + 8 * num bytes */
    uint16_t last_avail;
    uint16_t used_idx;
} ns_vq;

/*
 * Points q at its rings, given as front-end user addresses (vhost-user SET_VRING_ADDR), each
 * checked to lie entirely in the shared memory with the natural alignment virtio requires.
 * num must be a power of two in 1..NS_VQ_MAX_SIZE.
 */
ns_err ns_vq_setup(ns_vq *q, const ns_vmem *m, uint16_t num, uint64_t desc_uva, uint64_t avail_uva,
                   uint64_t used_uva) NS_MUST_CHECK;
/* The index to resume from (SET_VRING_BASE); the used index follows it. */
void ns_vq_set_base(ns_vq *q, uint16_t base);
/*
 * Takes the next available chain. NS_E_NOT_FOUND when the guest offered nothing new;
 * NS_E_PROTO (message set) when the ring or the chain is malformed.
 */
ns_err ns_vq_pop(ns_vq *q, const ns_vmem *m, ns_vq_chain *c) NS_MUST_CHECK;
/* Gives the last popped chain back unused (it is offered again by the next pop). */
void ns_vq_unpop(ns_vq *q);
/* Returns a chain to the guest with len bytes written into it. */
void ns_vq_push(ns_vq *q, uint16_t head, uint32_t len);
/* Whether the guest wants an interrupt after used entries were added (no EVENT_IDX). */
int ns_vq_wants_interrupt(const ns_vq *q);

/* Gather/scatter over a chain's segments: copies n bytes at offset off (bounded by the chain). */
size_t ns_vq_read(const ns_vq_chain *c, uint64_t off, void *out, size_t n);
size_t ns_vq_write(ns_vq_chain *c, uint64_t off, const void *in, size_t n);

#endif
