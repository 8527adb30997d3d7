/*
 * Unit tests for vsock_dev with a simulated guest (test/unit/vguest.h) and real unix sockets on
 * the host side: header encoding; a guest connection through a --connect route with data both
 * ways, credit-limited host->guest flow resumed by CREDIT_UPDATE, half-close each way and the
 * close handshake; refusals (no route, wrong CID, wrong type, connection limit); packet-level
 * faults resetting only their connection (credit exceeded, bad length, data before setup);
 * ring-level faults stopping the device; a guest with no rx buffers leaving host data unread
 * (bounded); host-initiated connections through a listen route and the hybrid socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "iox.h"
#include "t.h"
#include "vguest.h"
#include "vsock_dev.h"

#define CID 16
#define ROUNDS 300

static char g_dir[64];

typedef struct {
    vguest g;
    ns_vsock_dev *d;
    int epfd;
    ns_err last;
    int refill; /* keep 32 rx buffers offered */
} rig;

static void pump_once(rig *r, int wait_ms)
{
    if (r->refill) {
        vg_rx_refill(&r->g, 32, VG_RX_BUF);
    }
    struct epoll_event ev[16];
    int n = epoll_wait(r->epfd, ev, 16, wait_ms);
    for (int i = 0; i < n; i++) {
        ns_vsock_dev_event(r->d, ev[i].data.ptr, ev[i].events);
    }
    int rx = 0, tx = 0;
    ns_err e = ns_vsock_dev_run(r->d, &rx, &tx);
    if (e != NS_OK) {
        r->last = e;
    }
    (void)ns_vsock_dev_tick(r->d, ns_now_ms());
}

/* Pumps until the guest has an rx packet (returns 1) or the rounds run out (0). */
static int rx_wait(rig *r, ns_vsock_hdr *h, uint8_t *buf, size_t cap, uint32_t *n)
{
    for (int i = 0; i < ROUNDS; i++) {
        pump_once(r, i == 0 ? 0 : 10);
        if (vg_rx_take(&r->g, h, buf, cap, n)) {
            return 1;
        }
    }
    return 0;
}

static int rig_up(rig *r, ns_vsock_cfg *cfg)
{
    memset(r, 0, sizeof *r);
    if (vg_init(&r->g) != 0) {
        return -1;
    }
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ns_vsock_dev_new(cfg, r->epfd, &r->d) != NS_OK) {
        printf("# %s\n", ns_err_msg());
        return -1;
    }
    ns_vsock_dev_attach(r->d, &r->g.vmem, &r->g.rx, &r->g.tx);
    return 0;
}

static void rig_down(rig *r)
{
    ns_vsock_dev_free(r->d);
    close(r->epfd);
    vg_free(&r->g);
}

static int unix_listener(const char *name, ns_addr *a)
{
    a->kind = NS_ADDR_UNIX;
    snprintf(a->path, sizeof a->path, "%s/%s", g_dir, name);
    unlink(a->path);
    int fd = -1;
    if (ns_addr_listen(a, 8, 0, &fd) != NS_OK) {
        return -1;
    }
    return fd;
}

static int accept_wait(rig *r, int lfd)
{
    ns_set_nonblock(lfd, 1);
    for (int i = 0; i < ROUNDS; i++) {
        int c = accept(lfd, NULL, NULL);
        if (c >= 0) {
            ns_set_nonblock(c, 0);
            return c;
        }
        pump_once(r, 10);
    }
    return -1;
}

/* Reads from a host socket while pumping the device (the device runs in this thread). */
static ssize_t host_read(rig *r, int fd, void *buf, size_t n)
{
    ns_set_nonblock(fd, 1);
    for (int i = 0; i < ROUNDS; i++) {
        ssize_t k = read(fd, buf, n);
        if (k >= 0 || errno != EAGAIN) {
            return k;
        }
        pump_once(r, 10);
    }
    return -1;
}

static void test_header(void)
{
    ns_vsock_hdr h = {.src_cid = 0x0102030405060708ull,
                      .dst_cid = 3,
                      .src_port = 0xa1b2c3d4,
                      .dst_port = 9000,
                      .len = 5,
                      .type = 1,
                      .op = 5,
                      .flags = 3,
                      .buf_alloc = 262144,
                      .fwd_cnt = 77},
                 back;
    uint8_t b[NS_VSOCK_HDR_LEN];
    ns_vsock_hdr_encode(b, &h);
    CHECK(b[0] == 0x08 && b[7] == 0x01 && b[16] == 0xd4 && b[30] == 5,
          "header fields are little-endian at the spec's offsets");
    ns_vsock_hdr_parse(&back, b);
    CHECK(back.src_cid == h.src_cid && back.dst_cid == h.dst_cid && back.src_port == h.src_port &&
              back.dst_port == h.dst_port && back.len == h.len && back.type == h.type &&
              back.op == h.op && back.flags == h.flags && back.buf_alloc == h.buf_alloc &&
              back.fwd_cnt == h.fwd_cnt,
          "header parses back to the same fields");
}

static void test_guest_connect(void)
{
    ns_addr target;
    int lfd = unix_listener("target.sock", &target);
    ns_vsock_route routes[1] = {{.port = 5000, .addr = target}};
    ns_vsock_cfg cfg = {
        .guest_cid = CID, .parent_cid = 3, .connect = routes, .nconnect = 1, .buf_size = 8192};
    rig r;
    if (lfd < 0 || rig_up(&r, &cfg) != 0) {
        CHECK(0, "test rig");
        return;
    }
    r.refill = 1;
    ns_vsock_hdr h = vg_hdr(CID, 40000, 5000, NS_VSOCK_OP_REQUEST, 0, 16, 0), in;
    vg_tx(&r.g, &h, NULL, 0);
    int hfd = accept_wait(&r, lfd);
    CHECK(hfd >= 0, "guest REQUEST to 3:5000 connects to the route's host address");
    uint8_t buf[4096];
    uint32_t n = 0;
    CHECK(rx_wait(&r, &in, buf, sizeof buf, &n) && in.op == NS_VSOCK_OP_RESPONSE &&
              in.src_cid == 3 && in.dst_cid == CID && in.src_port == 5000 && in.dst_port == 40000 &&
              in.buf_alloc == 8192,
          "guest gets RESPONSE from 3:5000 with our buffer size as credit");
    CHECK(vg_tx_used(&r.g) == 1, "the tx buffer was returned");

    h = vg_hdr(CID, 40000, 5000, NS_VSOCK_OP_RW, 5, 16, 0);
    vg_tx(&r.g, &h, "hello", 5);
    char got[64] = {0};
    CHECK(host_read(&r, hfd, got, sizeof got) == 5 && memcmp(got, "hello", 5) == 0,
          "guest data reaches the host socket");

    /* Host -> guest, limited by the guest's credit of 16 bytes. */
    CHECK(ns_write_all(hfd, "0123456789abcdefXYZ", 19) == NS_OK, "host writes 19 bytes");
    uint8_t data[64];
    uint32_t total = 0;
    while (total < 19 && rx_wait(&r, &in, data + total, sizeof data - total, &n)) {
        if (in.op == NS_VSOCK_OP_RW) {
            total += n;
        }
        if (total >= 16) {
            break;
        }
    }
    CHECK(total == 16 && memcmp(data, "0123456789abcdef", 16) == 0,
          "only the 16 bytes of credit reach the guest");
    int more = 0;
    for (int i = 0; i < 20; i++) {
        pump_once(&r, 5);
        while (vg_rx_take(&r.g, &in, NULL, 0, &n)) {
            more += in.op == NS_VSOCK_OP_RW ? (int)n : 0;
        }
    }
    CHECK(more == 0, "nothing more arrives while the guest has no credit");
    h = vg_hdr(CID, 40000, 5000, NS_VSOCK_OP_CREDIT_UPDATE, 0, 16, 16);
    vg_tx(&r.g, &h, NULL, 0);
    int found = 0;
    while (rx_wait(&r, &in, data, sizeof data, &n)) {
        if (in.op == NS_VSOCK_OP_RW) {
            found = n == 3 && memcmp(data, "XYZ", 3) == 0;
            break;
        }
    }
    CHECK(found, "CREDIT_UPDATE lets the remaining 3 bytes through");

    /* Guest half-close: the host sees EOF and can still send. */
    h = vg_hdr(CID, 40000, 5000, NS_VSOCK_OP_SHUTDOWN, 0, 16, 19);
    h.flags = NS_VSOCK_SHUTDOWN_SEND;
    vg_tx(&r.g, &h, NULL, 0);
    CHECK(host_read(&r, hfd, got, sizeof got) == 0, "guest SHUTDOWN(SEND) is EOF on the host");
    CHECK(ns_write_all(hfd, "late", 4) == NS_OK, "host still writes after the guest's half-close");
    found = 0;
    while (rx_wait(&r, &in, data, sizeof data, &n)) {
        if (in.op == NS_VSOCK_OP_RW) {
            found = n == 4 && memcmp(data, "late", 4) == 0;
            break;
        }
    }
    CHECK(found, "the guest receives data after its own half-close");
    close(hfd);
    int shut = 0;
    while (rx_wait(&r, &in, data, sizeof data, &n)) {
        if (in.op == NS_VSOCK_OP_SHUTDOWN) {
            shut = (int)in.flags;
            break;
        }
    }
    CHECK(shut == (NS_VSOCK_SHUTDOWN_SEND | NS_VSOCK_SHUTDOWN_RCV),
          "host close after the guest's half-close: SHUTDOWN(RCV|SEND) to the guest");
    ns_vsock_stats st;
    ns_vsock_dev_stats(r.d, &st);
    CHECK(st.conns == 1, "connection waits for the guest's RST");
    h = vg_hdr(CID, 40000, 5000, NS_VSOCK_OP_RST, 0, 16, 23);
    vg_tx(&r.g, &h, NULL, 0);
    pump_once(&r, 0);
    ns_vsock_dev_stats(r.d, &st);
    CHECK(st.conns == 0 && st.bytes_to_host == 5 && st.bytes_to_guest == 23,
          "guest RST frees it; byte counts match");
    CHECK(r.last == NS_OK, "device never stopped");
    rig_down(&r);
    close(lfd);
}

static void test_refusals(void)
{
    ns_addr target;
    int lfd = unix_listener("refuse.sock", &target);
    ns_vsock_route routes[1] = {{.port = 5000, .addr = target}};
    ns_vsock_cfg cfg = {.guest_cid = CID,
                        .parent_cid = 3,
                        .connect = routes,
                        .nconnect = 1,
                        .max_conns = 1,
                        .buf_size = 4096};
    rig r;
    if (lfd < 0 || rig_up(&r, &cfg) != 0) {
        CHECK(0, "test rig");
        return;
    }
    r.refill = 1;
    ns_vsock_hdr h, in;
    uint32_t n;

    h = vg_hdr(CID, 1, 5001, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    vg_tx(&r.g, &h, NULL, 0);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RST && in.src_port == 5001 &&
              in.dst_port == 1,
          "REQUEST to a port without a route gets RST");

    h = vg_hdr(CID, 2, 5000, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    h.dst_cid = 2;
    vg_tx(&r.g, &h, NULL, 0);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RST && in.dst_port == 2,
          "REQUEST to CID 2 (not the parent) gets RST");

    h = vg_hdr(CID, 3, 5000, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    h.type = 2;
    vg_tx(&r.g, &h, NULL, 0);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RST && in.dst_port == 3,
          "SEQPACKET (not negotiated) gets RST");

    h = vg_hdr(99, 4, 5000, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    vg_tx(&r.g, &h, NULL, 0);
    int any = 0;
    for (int i = 0; i < 10; i++) {
        pump_once(&r, 5);
        any |= vg_rx_take(&r.g, &in, NULL, 0, &n);
    }
    CHECK(!any, "a packet with a foreign source CID is dropped without an answer");

    h = vg_hdr(CID, 5, 5000, NS_VSOCK_OP_RW, 3, 4096, 0);
    vg_tx(&r.g, &h, "abc", 3);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RST && in.dst_port == 5,
          "data for no connection gets RST");

    h = vg_hdr(CID, 6, 5000, NS_VSOCK_OP_RST, 0, 4096, 0);
    vg_tx(&r.g, &h, NULL, 0);
    any = 0;
    for (int i = 0; i < 10; i++) {
        pump_once(&r, 5);
        any |= vg_rx_take(&r.g, &in, NULL, 0, &n);
    }
    CHECK(!any, "a RST for no connection is not answered");

    /* Connection limit 1: the second REQUEST is refused. */
    h = vg_hdr(CID, 7, 5000, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    vg_tx(&r.g, &h, NULL, 0);
    int hfd = accept_wait(&r, lfd);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RESPONSE, "first connection up");
    h = vg_hdr(CID, 8, 5000, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    vg_tx(&r.g, &h, NULL, 0);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RST && in.dst_port == 8,
          "a second connection over --max-conns 1 gets RST");

    /* Packet faults reset only their connection. */
    h = vg_hdr(CID, 7, 5000, NS_VSOCK_OP_RW, 100, 4096, 0);
    vg_tx(&r.g, &h, "short", 5);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RST && in.dst_port == 7,
          "a length beyond the buffer resets the connection");
    char c;
    CHECK(host_read(&r, hfd, &c, 1) == 0, "and closes its host socket");
    close(hfd);
    CHECK(r.last == NS_OK, "packet faults never stop the device");

    h = vg_hdr(CID, 9, 5000, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    vg_tx(&r.g, &h, NULL, 0);
    hfd = accept_wait(&r, lfd);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RESPONSE, "a new connection");
    static uint8_t big[4097];
    memset(big, 'a', sizeof big);
    h = vg_hdr(CID, 9, 5000, NS_VSOCK_OP_RW, 4097, 4096, 0);
    vg_tx(&r.g, &h, big, 4097);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RST && in.dst_port == 9,
          "one packet larger than the credit (4097 > 4096) is reset");
    close(hfd);

    /* A host that does not read: once its socket buffer is full the guest's bytes stay with us,
     * at most buf_size of them; a guest that ignores the credit is then reset. */
    h = vg_hdr(CID, 11, 5000, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    vg_tx(&r.g, &h, NULL, 0);
    hfd = accept_wait(&r, lfd);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RESPONSE, "a new connection");
    int rst = 0;
    for (int i = 0; i < 400 && !rst; i++) {
        h = vg_hdr(CID, 11, 5000, NS_VSOCK_OP_RW, 4096, 4096, 0);
        vg_tx(&r.g, &h, big, 4096);
        pump_once(&r, 0);
        while (vg_rx_take(&r.g, &in, NULL, 0, &n)) {
            rst |= in.op == NS_VSOCK_OP_RST && in.dst_port == 11;
        }
    }
    CHECK(rst, "a guest sending past its credit is reset");
    close(hfd);

    h = vg_hdr(CID, 10, 5000, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    vg_tx(&r.g, &h, NULL, 0);
    hfd = accept_wait(&r, lfd);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RESPONSE, "another connection");
    h = vg_hdr(CID, 10, 5000, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    vg_tx(&r.g, &h, NULL, 0);
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_RST && in.dst_port == 10,
          "a duplicate REQUEST resets the connection");
    close(hfd);
    ns_vsock_stats st;
    ns_vsock_dev_stats(r.d, &st);
    CHECK(st.conns == 0, "no connection left behind");
    rig_down(&r);
    close(lfd);
}

static void test_ring_faults(void)
{
    ns_vsock_cfg cfg = {.guest_cid = CID, .parent_cid = 3};
    rig r;
    if (rig_up(&r, &cfg) != 0) {
        CHECK(0, "test rig");
        return;
    }
    /* An rx buffer the device may read (not writable) cannot carry a packet. */
    vg_desc(r.g.mem, 0, VG_GPA + 0x10000, 4096, 0, 0);
    vg_publish(&r.g, 0, 0);
    ns_vsock_hdr h = vg_hdr(CID, 1, 5001, NS_VSOCK_OP_REQUEST, 0, 4096, 0);
    vg_tx(&r.g, &h, NULL, 0);
    pump_once(&r, 0);
    CHECK(r.last == NS_E_PROTO, "a readable rx buffer stops the device");
    printf("# %s\n", ns_err_msg());
    rig_down(&r);

    if (rig_up(&r, &cfg) != 0) {
        CHECK(0, "test rig");
        return;
    }
    vg_desc(r.g.mem + 0x3000, 0, VG_GPA + VG_SIZE - 4, 44, 0, 0);
    vg_publish(&r.g, 1, 0);
    pump_once(&r, 0);
    CHECK(r.last == NS_E_PROTO, "a tx descriptor outside memory stops the device");
    rig_down(&r);

    if (rig_up(&r, &cfg) != 0) {
        CHECK(0, "test rig");
        return;
    }
    vg_desc(r.g.mem + 0x3000, 0, VG_GPA + 0x10000, 10, 0, 0);
    vg_publish(&r.g, 1, 0);
    pump_once(&r, 0);
    CHECK(r.last == NS_OK && vg_tx_used(&r.g) == 1,
          "a tx buffer shorter than a header is dropped and returned");
    rig_down(&r);
}

static void test_host_initiated(void)
{
    ns_vsock_route lroutes[1];
    lroutes[0].port = 7100;
    lroutes[0].addr.kind = NS_ADDR_UNIX;
    snprintf(lroutes[0].addr.path, sizeof lroutes[0].addr.path, "%s/l7100.sock", g_dir);
    ns_addr hyb = {.kind = NS_ADDR_UNIX};
    snprintf(hyb.path, sizeof hyb.path, "%s/hybrid.sock", g_dir);
    ns_vsock_cfg cfg = {
        .guest_cid = CID, .parent_cid = 3, .listen = lroutes, .nlisten = 1, .hybrid = &hyb};
    rig r;
    if (rig_up(&r, &cfg) != 0) {
        CHECK(0, "test rig");
        return;
    }
    r.refill = 1;
    int cfd = -1;
    CHECK(ns_addr_connect(&lroutes[0].addr, 1000, &cfd) == NS_OK, "host client connects");
    ns_vsock_hdr in, h;
    uint8_t buf[64];
    uint32_t n;
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_REQUEST && in.src_cid == 3 &&
              in.dst_cid == CID && in.dst_port == 7100 && in.src_port >= 1024,
          "the guest gets a REQUEST for its port 7100 from a parent port");
    uint32_t lport = in.src_port;
    CHECK(ns_write_all(cfd, "early", 5) == NS_OK, "client writes before the guest accepted");
    h = vg_hdr(CID, 7100, lport, NS_VSOCK_OP_RESPONSE, 0, 65536, 0);
    vg_tx(&r.g, &h, NULL, 0);
    CHECK(rx_wait(&r, &in, buf, sizeof buf, &n) && in.op == NS_VSOCK_OP_RW && n == 5 &&
              memcmp(buf, "early", 5) == 0,
          "after RESPONSE the client's bytes reach the guest");
    h = vg_hdr(CID, 7100, lport, NS_VSOCK_OP_RW, 3, 65536, 5);
    vg_tx(&r.g, &h, "ack", 3);
    char got[8];
    CHECK(host_read(&r, cfd, got, sizeof got) == 3 && memcmp(got, "ack", 3) == 0,
          "guest reply reaches the client");
    h = vg_hdr(CID, 7100, lport, NS_VSOCK_OP_RST, 0, 65536, 5);
    vg_tx(&r.g, &h, NULL, 0);
    CHECK(host_read(&r, cfd, got, sizeof got) == 0, "guest RST closes the client");
    close(cfd);

    /* Hybrid: CONNECT line, OK reply after the guest's RESPONSE. */
    CHECK(ns_addr_connect(&hyb, 1000, &cfd) == NS_OK, "hybrid client connects");
    CHECK(ns_write_all(cfd, "CONNECT 50051\nhi", 16) == NS_OK, "writes CONNECT 50051");
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_REQUEST && in.dst_port == 50051,
          "the guest gets a REQUEST for port 50051");
    lport = in.src_port;
    h = vg_hdr(CID, 50051, lport, NS_VSOCK_OP_RESPONSE, 0, 65536, 0);
    vg_tx(&r.g, &h, NULL, 0);
    char line[32] = {0};
    char want[32];
    snprintf(want, sizeof want, "OK %u\n", lport);
    ssize_t k = host_read(&r, cfd, line, strlen(want));
    CHECK(k == (ssize_t)strlen(want) && memcmp(line, want, (size_t)k) == 0,
          "hybrid client reads \"OK %u\"", lport);
    CHECK(rx_wait(&r, &in, buf, sizeof buf, &n) && in.op == NS_VSOCK_OP_RW && n == 2 &&
              memcmp(buf, "hi", 2) == 0,
          "bytes after the CONNECT line reach the guest");
    close(cfd);
    int shut = 0;
    while (rx_wait(&r, &in, buf, sizeof buf, &n)) {
        if (in.op == NS_VSOCK_OP_SHUTDOWN) {
            shut = (int)in.flags;
            break;
        }
    }
    CHECK(shut & NS_VSOCK_SHUTDOWN_SEND, "client close is SHUTDOWN(SEND) for the guest");

    CHECK(ns_addr_connect(&hyb, 1000, &cfd) == NS_OK, "hybrid client connects again");
    CHECK(ns_write_all(cfd, "HELLO 1\n", 8) == NS_OK, "writes a bad line");
    CHECK(host_read(&r, cfd, got, sizeof got) == 0, "a bad line closes the client");
    close(cfd);

    CHECK(ns_addr_connect(&hyb, 1000, &cfd) == NS_OK, "hybrid client for a refused port");
    CHECK(ns_write_all(cfd, "CONNECT 1234\n", 13) == NS_OK, "writes CONNECT 1234");
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_REQUEST && in.dst_port == 1234,
          "REQUEST for 1234");
    h = vg_hdr(CID, 1234, in.src_port, NS_VSOCK_OP_RST, 0, 0, 0);
    vg_tx(&r.g, &h, NULL, 0);
    CHECK(host_read(&r, cfd, got, sizeof got) == 0, "the guest's RST closes the client");
    close(cfd);
    CHECK(r.last == NS_OK, "device never stopped");
    rig_down(&r);
}

/* No rx buffers: the device must not read (and buffer) what the host sends. */
static void test_bounded(void)
{
    ns_vsock_route lroutes[1];
    lroutes[0].port = 80;
    lroutes[0].addr.kind = NS_ADDR_UNIX;
    snprintf(lroutes[0].addr.path, sizeof lroutes[0].addr.path, "%s/l80.sock", g_dir);
    ns_vsock_cfg cfg = {.guest_cid = CID, .parent_cid = 3, .listen = lroutes, .nlisten = 1};
    rig r;
    if (rig_up(&r, &cfg) != 0) {
        CHECK(0, "test rig");
        return;
    }
    vg_rx_post(&r.g, 1, VG_RX_BUF);
    int cfd = -1;
    CHECK(ns_addr_connect(&lroutes[0].addr, 1000, &cfd) == NS_OK, "host client connects");
    ns_vsock_hdr in, h;
    uint32_t n;
    CHECK(rx_wait(&r, &in, NULL, 0, &n) && in.op == NS_VSOCK_OP_REQUEST, "REQUEST");
    h = vg_hdr(CID, 80, in.src_port, NS_VSOCK_OP_RESPONSE, 0, 1u << 30, 0);
    vg_tx(&r.g, &h, NULL, 0);
    ns_set_nonblock(cfd, 1);
    static uint8_t chunk[65536];
    size_t sent = 0;
    for (int i = 0; i < 200; i++) {
        ssize_t k = write(cfd, chunk, sizeof chunk);
        if (k > 0) {
            sent += (size_t)k;
        }
        pump_once(&r, 1);
        if (k < 0 && errno == EAGAIN) {
            int again = 0;
            for (int j = 0; j < 5; j++) {
                pump_once(&r, 2);
                again |= write(cfd, chunk, 1) > 0;
            }
            if (!again) {
                break;
            }
        }
    }
    ns_vsock_stats st;
    ns_vsock_dev_stats(r.d, &st);
    CHECK(st.bytes_to_guest == 0 && sent > 0,
          "with no rx buffers the host writer stalls (sent %zu, forwarded %llu)", sent,
          (unsigned long long)st.bytes_to_guest);
    vg_rx_post(&r.g, 8, VG_RX_BUF);
    uint8_t buf[VG_RX_BUF];
    int got = 0;
    while (rx_wait(&r, &in, buf, sizeof buf, &n) && got < 8) {
        got++;
    }
    ns_vsock_dev_stats(r.d, &st);
    CHECK(st.bytes_to_guest > 0 && st.bytes_to_guest <= 8ull * (VG_RX_BUF - NS_VSOCK_HDR_LEN),
          "new rx buffers take exactly what fits (%llu bytes)",
          (unsigned long long)st.bytes_to_guest);
    close(cfd);
    rig_down(&r);
}

static void test_config_errors(void)
{
    ns_vsock_route routes[1] = {{.port = 1}};
    routes[0].addr.kind = NS_ADDR_VSOCK;
    ns_vsock_cfg cfg = {.guest_cid = CID, .parent_cid = 3, .connect = routes, .nconnect = 1};
    ns_vsock_dev *d = NULL;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK_ERR(ns_vsock_dev_new(&cfg, ep, &d), NS_E_USAGE,
              "a vsock: host address is refused (the host side never opens AF_VSOCK)");
    cfg.nconnect = 0;
    cfg.guest_cid = 2;
    CHECK_ERR(ns_vsock_dev_new(&cfg, ep, &d), NS_E_USAGE, "guest CID 2 (the host's) is refused");
    close(ep);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/nsign-vsock-test.%d", (int)getpid());
    mkdir(g_dir, 0700);
    test_header();
    test_guest_connect();
    test_refusals();
    test_ring_faults();
    test_host_initiated();
    test_bounded();
    test_config_errors();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", g_dir);
    }
    T_DONE();
}
