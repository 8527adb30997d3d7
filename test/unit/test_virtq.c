/*
 * Unit tests for virtq: address translation at region edges (wrap-around, straddling, zero
 * regions), ring setup checks (size, alignment, rings outside memory), and popping chains from
 * a simulated guest: a good two-descriptor chain, then each malformed shape a guest could
 * offer (loop, out-of-range head/next, buffer outside memory, length running past the region,
 * indirect, readable after writable, avail index jumping by more than the ring), each refused
 * with NS_E_PROTO and never touching memory outside the region.
 */
#include <stdint.h>

#include "t.h"
#include "vguest.h"
#include "virtq.h"

static void test_translate(void)
{
    uint8_t mem[256];
    ns_vmem m = {.n = 2};
    m.r[0] = (ns_vmem_region){.gpa = 0x1000, .uva = 0x9000, .size = 128, .host = mem};
    m.r[1] = (ns_vmem_region){.gpa = 0x2000, .uva = 0xa000, .size = 128, .host = mem + 128};
    CHECK(ns_vmem_gpa(&m, 0x1000, 128) == mem, "whole first region translates");
    CHECK(ns_vmem_gpa(&m, 0x1010, 16) == mem + 16, "inner range translates");
    CHECK(ns_vmem_uva(&m, 0xa000, 1) == mem + 128, "user address of the second region");
    CHECK(ns_vmem_gpa(&m, 0x1000, 129) == NULL, "one byte past the region is refused");
    CHECK(ns_vmem_gpa(&m, 0x107f, 2) == NULL, "a range straddling the end is refused");
    CHECK(ns_vmem_gpa(&m, 0x0fff, 1) == NULL, "one byte before the region is refused");
    CHECK(ns_vmem_gpa(&m, 0x1080, 1) == NULL, "the gap between regions is refused");
    CHECK(ns_vmem_gpa(&m, 0x1001, UINT64_MAX) == NULL, "a length that wraps is refused");
    CHECK(ns_vmem_gpa(&m, UINT64_MAX, 2) == NULL, "an address that wraps is refused");
    CHECK(ns_vmem_gpa(&m, 0x9000, 1) == NULL, "a user address is not a guest address");
    ns_vmem empty = {0};
    CHECK(ns_vmem_gpa(&empty, 0, 1) == NULL, "no regions: nothing translates");
}

static void test_setup(void)
{
    vguest g;
    if (vg_init(&g) != 0) {
        CHECK(0, "simulated guest");
        return;
    }
    ns_vq q = {.name = "t"};
    CHECK_ERR(ns_vq_setup(&q, &g.vmem, 48, VG_UVA, VG_UVA + 0x1000, VG_UVA + 0x2000), NS_E_PROTO,
              "queue size 48 (not a power of two) refused");
    CHECK_ERR(ns_vq_setup(&q, &g.vmem, 0, VG_UVA, VG_UVA + 0x1000, VG_UVA + 0x2000), NS_E_PROTO,
              "queue size 0 refused");
    CHECK_ERR(ns_vq_setup(&q, &g.vmem, 64, VG_UVA + 8, VG_UVA + 0x1000, VG_UVA + 0x2000),
              NS_E_PROTO, "misaligned descriptor table refused");
    CHECK_ERR(
        ns_vq_setup(&q, &g.vmem, 64, VG_UVA + VG_SIZE - 512, VG_UVA + 0x1000, VG_UVA + 0x2000),
        NS_E_PROTO, "descriptor table running past the memory refused");
    CHECK_ERR(ns_vq_setup(&q, &g.vmem, 64, VG_UVA, VG_UVA + 0x1000, VG_GPA + 0x2000), NS_E_PROTO,
              "used ring given as a guest address (not mapped as user address) refused");
    CHECK(q.num == 0, "a refused setup leaves the queue unconfigured");
    ns_vq_chain c;
    CHECK_ERR(ns_vq_pop(&q, &g.vmem, &c), NS_E_NOT_FOUND, "unconfigured queue pops nothing");
    vg_free(&g);
}

/* Offers a chain starting at descriptor 0 on the tx ring; the descriptors are set by the test. */
static ns_err pop_tx(vguest *g, ns_vq_chain *c)
{
    vg_publish(g, 1, 0);
    return ns_vq_pop(&g->tx, &g->vmem, c);
}

static void test_pop(void)
{
    vguest g;
    if (vg_init(&g) != 0) {
        CHECK(0, "simulated guest");
        return;
    }
    uint8_t *t = g.mem + 0x3000;
    ns_vq_chain c;
    CHECK_ERR(ns_vq_pop(&g.tx, &g.vmem, &c), NS_E_NOT_FOUND, "empty ring pops nothing");

    vg_desc(t, 0, VG_GPA + 0x10000, 44, NS_VRING_DESC_F_NEXT, 5);
    vg_desc(t, 5, VG_GPA + 0x20000, 100, NS_VRING_DESC_F_NEXT, 6);
    vg_desc(t, 6, VG_GPA + 0x30000, 200, NS_VRING_DESC_F_WRITE, 0);
    memcpy(g.mem + 0x10000, "abcd", 4);
    CHECK_ERR(pop_tx(&g, &c), NS_OK, "a readable+readable+writable chain pops");
    CHECK(c.head == 0 && c.nread == 2 && c.nwrite == 1 && c.rd_len == 144 && c.wr_len == 200,
          "segments counted and sized");
    CHECK(c.rd[0].p == g.mem + 0x10000 && c.wr[0].p == g.mem + 0x30000,
          "segments point into the region at the right offsets");
    uint8_t buf[8];
    CHECK(ns_vq_read(&c, 0, buf, 4) == 4 && memcmp(buf, "abcd", 4) == 0, "gather reads bytes");
    CHECK(ns_vq_read(&c, 140, buf, 8) == 4, "gather stops at the end of the readable part");
    CHECK(ns_vq_write(&c, 198, "xyz", 3) == 2, "scatter stops at the end of the writable part");
    ns_vq_push(&g.tx, c.head, 0);
    CHECK(vg_tx_used(&g) == 1, "push publishes the used index");

    vg_desc(t, 0, VG_GPA + 0x10000, 16, NS_VRING_DESC_F_NEXT, 0);
    CHECK_ERR(pop_tx(&g, &c), NS_E_PROTO, "a descriptor pointing at itself (loop) is refused");
    printf("# %s\n", ns_err_msg());

    vg_desc(t, 0, VG_GPA + 0x10000, 16, NS_VRING_DESC_F_NEXT, 1);
    vg_desc(t, 1, VG_GPA + 0x10000, 16, NS_VRING_DESC_F_NEXT, 0);
    CHECK_ERR(pop_tx(&g, &c), NS_E_PROTO, "a two-descriptor loop is refused");

    vg_desc(t, 0, VG_GPA + 0x10000, 16, NS_VRING_DESC_F_NEXT, VG_QSIZE);
    CHECK_ERR(pop_tx(&g, &c), NS_E_PROTO, "next index out of range is refused");

    vg_desc(t, 0, VG_GPA - 16, 16, 0, 0);
    CHECK_ERR(pop_tx(&g, &c), NS_E_PROTO, "a buffer below guest memory is refused");

    vg_desc(t, 0, VG_GPA + VG_SIZE - 8, 16, 0, 0);
    CHECK_ERR(pop_tx(&g, &c), NS_E_PROTO, "a buffer running past the end is refused");

    vg_desc(t, 0, VG_GPA, 0xffffffffu, 0, 0);
    CHECK_ERR(pop_tx(&g, &c), NS_E_PROTO, "an oversized length is refused");

    vg_desc(t, 0, 0xfffffffffffffff0ull, 32, 0, 0);
    CHECK_ERR(pop_tx(&g, &c), NS_E_PROTO, "an address that wraps around is refused");

    vg_desc(t, 0, VG_GPA + 0x10000, 16, NS_VRING_DESC_F_INDIRECT, 0);
    CHECK_ERR(pop_tx(&g, &c), NS_E_PROTO, "an indirect descriptor (not negotiated) is refused");

    vg_desc(t, 0, VG_GPA + 0x10000, 16, NS_VRING_DESC_F_WRITE | NS_VRING_DESC_F_NEXT, 1);
    vg_desc(t, 1, VG_GPA + 0x10000, 16, 0, 0);
    CHECK_ERR(pop_tx(&g, &c), NS_E_PROTO, "readable after writable is refused");

    for (int i = 0; i < NS_VQ_MAX_SEGS + 1; i++) {
        vg_desc(t, (uint16_t)i, VG_GPA + 0x10000, 1, NS_VRING_DESC_F_NEXT, (uint16_t)(i + 1));
    }
    vg_desc(t, NS_VQ_MAX_SEGS + 1, VG_GPA + 0x10000, 1, 0, 0);
    CHECK_ERR(pop_tx(&g, &c), NS_E_PROTO, "a chain longer than %d is refused", NS_VQ_MAX_SEGS);

    /* Head out of range: written straight into the avail ring. */
    uint8_t *avail = g.mem + 0x4000;
    g.tx.last_avail = g.tx_avail;
    vg_st16(avail + 4 + 2u * (g.tx_avail % VG_QSIZE), 200);
    g.tx_avail++;
    vg_st16(avail + 2, g.tx_avail);
    CHECK_ERR(ns_vq_pop(&g.tx, &g.vmem, &c), NS_E_PROTO, "a head index out of range is refused");

    g.tx.last_avail = g.tx_avail;
    vg_st16(avail + 2, (uint16_t)(g.tx_avail + VG_QSIZE + 1));
    CHECK_ERR(ns_vq_pop(&g.tx, &g.vmem, &c), NS_E_PROTO,
              "an avail index moved by more than the ring size is refused");

    g.tx.last_avail = g.tx_avail;
    vg_st16(avail + 2, g.tx_avail);
    vg_desc(t, 0, VG_GPA + 0x10000, 0, 0, 0);
    CHECK_ERR(pop_tx(&g, &c), NS_OK, "a zero-length descriptor is allowed (it carries nothing)");
    CHECK(c.rd_len == 0 && c.nread == 1 && c.rd[0].p == NULL, "and gives an empty segment");
    ns_vq_unpop(&g.tx);
    CHECK_ERR(ns_vq_pop(&g.tx, &g.vmem, &c), NS_OK, "unpop offers the same chain again");
    vg_free(&g);
}

static void test_interrupt_flag(void)
{
    vguest g;
    if (vg_init(&g) != 0) {
        CHECK(0, "simulated guest");
        return;
    }
    CHECK(ns_vq_wants_interrupt(&g.rx), "guest wants interrupts by default");
    vg_st16(g.mem + 0x1000, NS_VRING_AVAIL_F_NO_INTERRUPT);
    CHECK(!ns_vq_wants_interrupt(&g.rx), "VRING_AVAIL_F_NO_INTERRUPT suppresses them");
    vg_free(&g);
}

int main(void)
{
    test_translate();
    test_setup();
    test_pop();
    test_interrupt_flag();
    T_DONE();
}
