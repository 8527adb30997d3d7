/*
 * Unit tests for vhost_user: the message handler on built messages (feature negotiation,
 * REPLY_ACK, GET_CONFIG's guest_cid, memory tables backed by a memfd, ring setup and the ring
 * life cycle, and the refusals: bits we did not offer, wrong sizes, ring indexes, descriptors
 * where none belong, config bytes out of range); then the whole backend loop in a thread with
 * this test as the front-end over the unix socket (SCM_RIGHTS, eventfds) and a simulated guest
 * in the shared memfd: a guest REQUEST reaches a host listener and the RESPONSE comes back with
 * an interrupt on the call eventfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "iox.h"
#include "t.h"
#include "vguest.h"
#include "vhost_user.h"

static char g_dir[64];

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static ns_vhost_msg mk(uint32_t req, uint32_t flags, uint32_t size)
{
    ns_vhost_msg m;
    memset(&m, 0, sizeof m);
    m.request = req;
    m.flags = NS_VHOST_FLAG_VERSION | flags;
    m.size = size;
    return m;
}

static ns_vhost_msg mk_u64(uint32_t req, uint32_t flags, uint64_t v)
{
    ns_vhost_msg m = mk(req, flags, 8);
    put64(m.payload, v);
    return m;
}

static ns_vhost_msg mk_state(uint32_t req, uint32_t idx, uint32_t num)
{
    ns_vhost_msg m = mk(req, 0, 8);
    put32(m.payload, idx);
    put32(m.payload + 4, num);
    return m;
}

static ns_vhost_msg mk_addr(uint32_t idx, uint64_t desc, uint64_t used, uint64_t avail)
{
    ns_vhost_msg m = mk(NS_VHOST_SET_VRING_ADDR, 0, 40);
    put32(m.payload, idx);
    put64(m.payload + 8, desc);
    put64(m.payload + 16, used);
    put64(m.payload + 24, avail);
    return m;
}

static ns_vhost_msg mk_mem(uint64_t gpa, uint64_t size, uint64_t uva)
{
    ns_vhost_msg m = mk(NS_VHOST_SET_MEM_TABLE, 0, 8 + 32);
    put32(m.payload, 1);
    put64(m.payload + 8, gpa);
    put64(m.payload + 16, size);
    put64(m.payload + 24, uva);
    put64(m.payload + 32, 0);
    return m;
}

static int memfd_guest(void)
{
    int fd = memfd_create("guest", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, VG_SIZE) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static ns_err handle(ns_vhost *s, ns_vhost_msg *m, int fd, ns_vhost_msg *reply, int *has)
{
    int fds[1] = {fd};
    return ns_vhost_handle(s, m, fds, fd >= 0 ? 1 : 0, reply, has);
}

static void test_handler(void)
{
    static ns_vhost s;
    static ns_vhost_msg m, reply;
    int has = 0;
    ns_vhost_init(&s, 16, -1, NULL);

    m = mk(NS_VHOST_GET_FEATURES, 0, 0);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "GET_FEATURES");
    uint64_t f = get64(reply.payload);
    CHECK(has && reply.size == 8 && reply.flags == (NS_VHOST_FLAG_VERSION | NS_VHOST_FLAG_REPLY) &&
              f == (1ull << 32 | 1ull << 30),
          "offers VERSION_1 and PROTOCOL_FEATURES only (0x%llx)", (unsigned long long)f);
    m = mk_u64(NS_VHOST_SET_FEATURES, 0, 1ull << 32 | 1ull << 28);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO,
              "SET_FEATURES with a bit we did not offer (INDIRECT_DESC) is refused");
    m = mk_u64(NS_VHOST_SET_FEATURES, 0, 1ull << 32 | 1ull << 30);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "SET_FEATURES with the offered bits");
    CHECK(!has, "SET_FEATURES has no reply without REPLY_ACK");
    m = mk(NS_VHOST_GET_PROTOCOL_FEATURES, 0, 0);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "GET_PROTOCOL_FEATURES");
    CHECK(get64(reply.payload) == (1ull << 3 | 1ull << 9), "offers REPLY_ACK and CONFIG");
    m = mk(NS_VHOST_GET_CONFIG, 0, 12 + 8);
    put32(m.payload + 4, 8);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO,
              "GET_CONFIG before CONFIG was negotiated is refused");
    m = mk_u64(NS_VHOST_SET_PROTOCOL_FEATURES, 0, 1ull << 3 | 1ull << 9 | 1ull << 0);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO,
              "SET_PROTOCOL_FEATURES with MQ (not offered) is refused");
    m = mk_u64(NS_VHOST_SET_PROTOCOL_FEATURES, 0, 1ull << 3 | 1ull << 9);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "SET_PROTOCOL_FEATURES REPLY_ACK|CONFIG");

    m = mk(NS_VHOST_GET_CONFIG, NS_VHOST_FLAG_NEED_REPLY, 12 + 8);
    put32(m.payload + 4, 8);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "GET_CONFIG");
    CHECK(has && reply.size == 20 && get64(reply.payload + 12) == 16,
          "config space holds guest_cid 16, little-endian");
    m = mk(NS_VHOST_GET_CONFIG, 0, 12 + 8);
    put32(m.payload, 4);
    put32(m.payload + 4, 8);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO,
              "GET_CONFIG past the 8-byte config is refused");
    m = mk(NS_VHOST_GET_CONFIG, 0, 12 + 4);
    put32(m.payload + 4, 8);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO,
              "GET_CONFIG whose size disagrees with the payload is refused");

    m = mk(NS_VHOST_SET_OWNER, NS_VHOST_FLAG_NEED_REPLY, 0);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "SET_OWNER with NEED_REPLY");
    CHECK(has && reply.size == 8 && get64(reply.payload) == 0, "REPLY_ACK answers 0 (success)");
    m = mk(NS_VHOST_SET_CONFIG, NS_VHOST_FLAG_NEED_REPLY, 12 + 8);
    put32(m.payload + 4, 8);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "SET_CONFIG with NEED_REPLY: answered");
    CHECK(has && get64(reply.payload) != 0, "with a non-zero status (read-only config)");
    m = mk(99, 0, 0);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_UNSUPPORTED,
              "an unknown request without NEED_REPLY ends the session");
    m = mk(NS_VHOST_GET_FEATURES, 0, 0);
    m.flags = 2;
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO, "protocol version 2 is refused");

    int efd = eventfd(0, EFD_CLOEXEC);
    m = mk(NS_VHOST_GET_FEATURES, 0, 0);
    CHECK_ERR(handle(&s, &m, efd, &reply, &has), NS_E_PROTO,
              "a descriptor with GET_FEATURES is refused");
    CHECK(!fd_open(efd), "and closed");

    int mfd = memfd_guest();
    m = mk_mem(VG_GPA, VG_SIZE, VG_UVA);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO,
              "SET_MEM_TABLE without its descriptor is refused");
    m = mk_mem(VG_GPA, 0, VG_UVA);
    int dupfd = dup(mfd);
    CHECK_ERR(handle(&s, &m, dupfd, &reply, &has), NS_E_PROTO, "a zero-size region is refused");
    CHECK(!fd_open(dupfd), "its descriptor is closed");
    m = mk_mem(UINT64_MAX - 10, VG_SIZE, VG_UVA);
    dupfd = dup(mfd);
    CHECK_ERR(handle(&s, &m, dupfd, &reply, &has), NS_E_PROTO,
              "a region whose guest range wraps is refused");
    m = mk_mem(VG_GPA, VG_SIZE, VG_UVA);
    put32(m.payload, 9);
    dupfd = dup(mfd);
    CHECK_ERR(handle(&s, &m, dupfd, &reply, &has), NS_E_PROTO, "9 regions are refused");
    /* A file shorter than the region it backs: mapping it would SIGBUS on the first touch past
     * its end (issue 22 item 7), so the region is refused. */
    int short_fd = memfd_create("short", MFD_CLOEXEC);
    CHECK(short_fd >= 0 && ftruncate(short_fd, 4096) == 0, "a 4 KiB memfd");
    m = mk_mem(VG_GPA, VG_SIZE, VG_UVA);
    CHECK_ERR(handle(&s, &m, short_fd, &reply, &has), NS_E_PROTO,
              "a region larger than its memfd is refused");
    CHECK(strstr(ns_err_msg(), "beyond its file") != NULL && !fd_open(short_fd),
          "the error says why and the descriptor is closed (%s)", ns_err_msg());
    m = mk_mem(VG_GPA, VG_SIZE, VG_UVA);
    put64(m.payload + 8 + 24, 4096); /* mmap_offset: the file's size plus the offset */
    dupfd = dup(mfd);
    CHECK_ERR(handle(&s, &m, dupfd, &reply, &has), NS_E_PROTO,
              "a region that fits only without its offset is refused");
    int pfd[2];
    CHECK(pipe2(pfd, O_CLOEXEC) == 0, "a pipe");
    close(pfd[1]);
    m = mk_mem(VG_GPA, 4096, VG_UVA);
    CHECK_ERR(handle(&s, &m, pfd[0], &reply, &has), NS_E_PROTO,
              "a region backed by a pipe is refused");
    m = mk_mem(VG_GPA, VG_SIZE, VG_UVA);
    m.flags |= NS_VHOST_FLAG_NEED_REPLY;
    dupfd = dup(mfd);
    CHECK_ERR(handle(&s, &m, dupfd, &reply, &has), NS_OK, "SET_MEM_TABLE with a memfd");
    CHECK(has && get64(reply.payload) == 0 && s.mem.n == 1 && s.mem.r[0].gpa == VG_GPA,
          "mapped and acknowledged");
    CHECK(!fd_open(dupfd), "the memfd descriptor is closed after mapping");

    m = mk_state(NS_VHOST_SET_VRING_NUM, 2, 64);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO, "ring 2 (QEMU's event queue) refused");
    m = mk_state(NS_VHOST_SET_VRING_NUM, 0, 100);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO, "ring size 100 refused");
    m = mk_state(NS_VHOST_SET_VRING_NUM, 0, 64);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "ring 0 size 64");
    m = mk_addr(0, VG_UVA + VG_SIZE, VG_UVA + 0x2000, VG_UVA + 0x1000);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO,
              "a descriptor table outside the memory is refused");
    m = mk_addr(0, VG_UVA, VG_UVA + 0x2000, VG_UVA + 0x1000);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "ring 0 addresses inside the memory");
    m = mk_state(NS_VHOST_SET_VRING_BASE, 0, 70000);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO, "base 70000 refused");
    m = mk_state(NS_VHOST_SET_VRING_BASE, 0, 5);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "base 5");
    efd = eventfd(0, EFD_CLOEXEC);
    m = mk_u64(NS_VHOST_SET_VRING_KICK, 0, 0 | 0x100);
    CHECK_ERR(handle(&s, &m, efd, &reply, &has), NS_E_PROTO,
              "a kick with the no-fd flag and a descriptor is refused");
    efd = eventfd(0, EFD_CLOEXEC);
    m = mk_u64(NS_VHOST_SET_VRING_KICK, 0, 0);
    CHECK_ERR(handle(&s, &m, efd, &reply, &has), NS_OK, "SET_VRING_KICK ring 0");
    CHECK(!ns_vhost_ring_running(&s, 0), "with PROTOCOL_FEATURES the ring starts disabled");
    m = mk_state(NS_VHOST_SET_VRING_NUM, 0, 32);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_E_PROTO, "resizing a started ring is refused");
    m = mk_state(NS_VHOST_SET_VRING_ENABLE, 0, 1);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "SET_VRING_ENABLE 1");
    CHECK(ns_vhost_ring_running(&s, 0), "ring 0 runs");
    m = mk_state(NS_VHOST_GET_VRING_BASE, 0, 0);
    CHECK_ERR(handle(&s, &m, -1, &reply, &has), NS_OK, "GET_VRING_BASE");
    CHECK(has && reply.size == 8 && reply.payload[4] == 5 && !ns_vhost_ring_running(&s, 0),
          "answers the base (5) and stops the ring");
    ns_vhost_cleanup(&s);
    CHECK(s.mem.n == 0, "cleanup unmaps the memory");
    close(mfd);
}

/* ---- the whole loop, this test as QEMU ---- */

typedef struct {
    ns_vhost_vsock_cfg cfg;
    ns_stop stop;
    ns_err result;
} serve_arg;

static void *serve_thread(void *p)
{
    serve_arg *a = p;
    a->result = ns_vhost_vsock_serve(&a->cfg, &a->stop);
    return NULL;
}

static int send_msg(int fd, const ns_vhost_msg *m, int pass_fd)
{
    uint8_t buf[NS_VHOST_HDR_LEN + NS_VHOST_PAYLOAD_MAX];
    put32(buf, m->request);
    put32(buf + 4, m->flags);
    put32(buf + 8, m->size);
    memcpy(buf + 12, m->payload, m->size);
    struct iovec iov = {.iov_base = buf, .iov_len = 12 + m->size};
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        mh.msg_control = ctl.b;
        mh.msg_controllen = sizeof ctl.b;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    return sendmsg(fd, &mh, 0) == (ssize_t)iov.iov_len ? 0 : -1;
}

static int recv_reply(int fd, ns_vhost_msg *r)
{
    uint8_t h[12];
    if (ns_read_full(fd, h, 12, 5000) != NS_OK) {
        return -1;
    }
    r->request = (uint32_t)get64(h) & 0xffffffffu;
    r->size = (uint32_t)h[8] | (uint32_t)h[9] << 8;
    return r->size <= NS_VHOST_PAYLOAD_MAX && ns_read_full(fd, r->payload, r->size, 5000) == NS_OK
               ? 0
               : -1;
}

static void test_loop(void)
{
    serve_arg a;
    memset(&a, 0, sizeof a);
    static char sock[128];
    snprintf(sock, sizeof sock, "%s/vhost.sock", g_dir);
    ns_addr target = {.kind = NS_ADDR_UNIX};
    snprintf(target.path, sizeof target.path, "%s/target.sock", g_dir);
    int lfd = -1;
    if (ns_addr_listen(&target, 4, 0, &lfd) != NS_OK) {
        CHECK(0, "target listener");
        return;
    }
    static ns_vsock_route routes[1];
    routes[0].port = 9000;
    routes[0].addr = target;
    a.cfg.socket_path = sock;
    a.cfg.dev = (ns_vsock_cfg){.guest_cid = 16, .parent_cid = 3, .connect = routes, .nconnect = 1};
    pthread_t th;
    pthread_create(&th, NULL, serve_thread, &a);
    ns_addr sa = {.kind = NS_ADDR_UNIX};
    snprintf(sa.path, sizeof sa.path, "%s", sock);
    int fe = -1;
    for (int i = 0; i < 200 && fe < 0; i++) {
        if (ns_addr_connect(&sa, 1000, &fe) != NS_OK) {
            fe = -1;
            usleep(10000);
        }
    }
    CHECK(fe >= 0, "front-end connects to the backend's socket");
    int mfd = memfd_guest();
    uint8_t *mem = mmap(NULL, VG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    vguest g;
    CHECK(mem != MAP_FAILED && vg_init_at(&g, mem) == 0, "guest memory in a memfd");
    ns_vhost_msg m, r;
    int kick[2] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
    int call[2] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
    int ok = 1;
    m = mk(NS_VHOST_GET_FEATURES, 0, 0);
    ok &= send_msg(fe, &m, -1) == 0 && recv_reply(fe, &r) == 0;
    m = mk_u64(NS_VHOST_SET_FEATURES, 0, get64(r.payload));
    ok &= send_msg(fe, &m, -1) == 0;
    m = mk_u64(NS_VHOST_SET_PROTOCOL_FEATURES, 0, 1ull << 3 | 1ull << 9);
    ok &= send_msg(fe, &m, -1) == 0;
    m = mk(NS_VHOST_GET_CONFIG, 0, 20);
    put32(m.payload + 4, 8);
    ok &= send_msg(fe, &m, -1) == 0 && recv_reply(fe, &r) == 0 && get64(r.payload + 12) == 16;
    CHECK(ok, "negotiation over the socket; GET_CONFIG says CID 16");
    m = mk_mem(VG_GPA, VG_SIZE, VG_UVA);
    m.flags |= NS_VHOST_FLAG_NEED_REPLY;
    ok = send_msg(fe, &m, mfd) == 0 && recv_reply(fe, &r) == 0 && get64(r.payload) == 0;
    CHECK(ok, "SET_MEM_TABLE with the memfd over SCM_RIGHTS is acknowledged");
    for (uint32_t q = 0; q < 2; q++) {
        uint64_t base = VG_UVA + (q ? 0x3000 : 0);
        m = mk_state(NS_VHOST_SET_VRING_NUM, q, VG_QSIZE);
        ok &= send_msg(fe, &m, -1) == 0;
        m = mk_state(NS_VHOST_SET_VRING_BASE, q, 0);
        ok &= send_msg(fe, &m, -1) == 0;
        m = mk_addr(q, base, base + 0x2000, base + 0x1000);
        ok &= send_msg(fe, &m, -1) == 0;
        m = mk_u64(NS_VHOST_SET_VRING_KICK, 0, q);
        ok &= send_msg(fe, &m, kick[q]) == 0;
        m = mk_u64(NS_VHOST_SET_VRING_CALL, 0, q);
        ok &= send_msg(fe, &m, call[q]) == 0;
        m = mk_state(NS_VHOST_SET_VRING_ENABLE, q, 1);
        m.flags |= NS_VHOST_FLAG_NEED_REPLY;
        ok &= send_msg(fe, &m, -1) == 0 && recv_reply(fe, &r) == 0 && get64(r.payload) == 0;
    }
    CHECK(ok, "both rings set up, started and enabled");
    vg_rx_post(&g, 8, VG_RX_BUF);
    ns_vsock_hdr h = vg_hdr(16, 777, 9000, NS_VSOCK_OP_REQUEST, 0, 65536, 0), in;
    vg_tx(&g, &h, NULL, 0);
    uint64_t one = 1;
    ok = write(kick[1], &one, 8) == 8;
    int hfd = -1;
    ns_set_nonblock(lfd, 1);
    for (int i = 0; i < 500 && hfd < 0; i++) {
        hfd = accept(lfd, NULL, NULL);
        if (hfd < 0) {
            usleep(10000);
        }
    }
    CHECK(ok && hfd >= 0, "a kick on tx: the guest's REQUEST to 3:9000 reaches the host route");
    uint64_t v = 0;
    ns_set_nonblock(call[0], 0);
    int got = read(call[0], &v, 8) == 8 && v >= 1;
    CHECK(got && vg_rx_take(&g, &in, NULL, 0, NULL) && in.op == NS_VSOCK_OP_RESPONSE &&
              in.dst_port == 777,
          "RESPONSE in the rx ring, signalled on the rx call eventfd");
    uint8_t b = 0xB7;
    ok = ns_write_all(hfd, &b, 1) == NS_OK && read(call[0], &v, 8) == 8;
    uint8_t pay[8];
    uint32_t n = 0;
    CHECK(ok && vg_rx_take(&g, &in, pay, sizeof pay, &n) && in.op == NS_VSOCK_OP_RW && n == 1 &&
              pay[0] == 0xB7,
          "host byte 0xB7 delivered to the guest");
    m = mk_state(NS_VHOST_GET_VRING_BASE, 1, 0);
    ok = send_msg(fe, &m, -1) == 0 && recv_reply(fe, &r) == 0 && r.payload[4] == 1;
    CHECK(ok, "GET_VRING_BASE tx answers 1 (one chain consumed)");
    close(fe);
    pthread_join(th, NULL);
    CHECK(a.result == NS_OK, "the backend ends cleanly when the front-end disconnects");
    char c;
    CHECK(read(hfd, &c, 1) == 0, "its host connections are closed");
    close(hfd);
    close(lfd);
    munmap(mem, VG_SIZE);
    close(mfd);
    for (int i = 0; i < 2; i++) {
        close(kick[i]);
        close(call[i]);
    }
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/nsign-vhost-test.%d", (int)getpid());
    mkdir(g_dir, 0700);
    signal(SIGPIPE, SIG_IGN);
    test_handler();
    test_loop();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", g_dir);
    }
    T_DONE();
}
