/*
 * Unit tests for addr: parsing of every form and its errors, formatting, and tcp/unix
 * listen+connect on loopback. No AF_VSOCK socket is ever opened here (see the brief): vsock
 * addresses are only parsed; the VM tests exercise real vsock.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "t.h"

static int parses(const char *s, const char *canon)
{
    ns_addr a;
    char out[NS_ADDR_STR_MAX];
    if (ns_addr_parse(&a, s) != NS_OK) {
        printf("#   %s\n", ns_err_msg());
        return 0;
    }
    ns_addr_format(&a, out, sizeof out);
    if (strcmp(out, canon) != 0) {
        printf("#   formatted as %s\n", out);
        return 0;
    }
    return 1;
}

/* ns_addr_peer_allowed on an accepted connection from this process (issue 22 item 4): tcp
 * peers must be loopback, unix peers must run as the rule's uid. */
static void test_peer_rule(const char *listen, const char *want_desc)
{
    ns_addr a;
    int lfd = -1, cfd = -1;
    uint32_t port = 0;
    char spec[NS_ADDR_STR_MAX], desc[96];
    CHECK_ERR(ns_addr_parse(&a, listen), NS_OK, "peer rule: parse %s", listen);
    CHECK_ERR(ns_addr_listen(&a, 8, 0, &lfd), NS_OK, "peer rule: listen %s", listen);
    if (a.kind == NS_ADDR_TCP) {
        CHECK_ERR(ns_addr_local_port(lfd, &port), NS_OK, "peer rule: port");
        snprintf(spec, sizeof spec, "tcp:127.0.0.1:%u", port);
        CHECK_ERR(ns_addr_parse(&a, spec), NS_OK, "peer rule: connect address");
    }
    CHECK_ERR(ns_addr_connect(&a, 2000, &cfd), NS_OK, "peer rule: connect");
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0, "peer rule: accepted");
    ns_addr_peer_rule me = {.vsock_cid = 16, .unix_uid = (uint32_t)geteuid()};
    ns_addr_peer_rule other = {.vsock_cid = 16, .unix_uid = (uint32_t)geteuid() + 1};
    ns_addr_peer_rule any = {.vsock_cid = NS_VSOCK_CID_ANY, .unix_uid = NS_ADDR_UID_ANY};
    CHECK(ns_addr_peer_allowed(afd, &me, desc, sizeof desc) && strstr(desc, want_desc) == desc,
          "peer rule: %s peer allowed, named %s", listen, desc);
    CHECK(ns_addr_peer_allowed(afd, &any, desc, sizeof desc), "peer rule: anyone allowed");
    int is_unix = strncmp(listen, "unix:", 5) == 0;
    CHECK(ns_addr_peer_allowed(afd, &other, desc, sizeof desc) == !is_unix, "peer rule: %s",
          is_unix ? "a unix peer of another uid refused" : "tcp: the uid is moot");
    close(afd);
    close(cfd);
    ns_addr_unlisten(&a, lfd);
}

int main(void)
{
    ns_addr a;
    CHECK(parses("vsock:16:7100", "vsock:16:7100"), "vsock numeric");
    CHECK(parses("vsock:any:5000", "vsock:any:5000"), "vsock any");
    CHECK(parses("vsock:parent:8080", "vsock:3:8080"), "vsock parent = 3");
    CHECK(parses("vsock:local:1", "vsock:1:1"), "vsock local = 1");
    CHECK(parses("tcp:127.0.0.1:50051", "tcp:127.0.0.1:50051"), "tcp ipv4");
    CHECK(parses("tcp:[::1]:80", "tcp:[::1]:80"), "tcp ipv6 in brackets");
    CHECK(parses("tcp:kms.us-east-1.amazonaws.com:443", "tcp:kms.us-east-1.amazonaws.com:443"),
          "tcp name");
    CHECK(parses("tcp:*:8080", "tcp:*:8080"), "tcp wildcard");
    CHECK(parses("tcp:0.0.0.0:0", "tcp:0.0.0.0:0"), "tcp port 0");
    CHECK(parses("unix:/tmp/x.sock", "unix:/tmp/x.sock"), "unix path");
    CHECK(parses("unix:@abstract", "unix:@abstract"), "unix abstract");
    static const char *const bad[] = {
        "", "vsock", "vsock:16", "vsock:x:1", "vsock:16:", "vsock:16:99999999999", "vsock:-1:5",
        "tcp:host", "tcp:host:", "tcp:host:65536", "tcp:host:8a", "tcp:::1:80", "tcp:[::1:80",
        "tcp:[::1]80", "unix:", "udp:1.2.3.4:5", "tcp:ho st:1", "vsock:4294967295:1",
        "tcp:[[]:1", "tcp:[a[b]:1", "tcp:a]b:1", "tcp:[]]:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_ERR(ns_addr_parse(&a, bad[i]), NS_E_USAGE, "rejects '%s'", bad[i]);
    }
    char longpath[200];
    memset(longpath, 'a', sizeof longpath);
    memcpy(longpath, "unix:", 5);
    longpath[sizeof longpath - 1] = 0;
    CHECK_ERR(ns_addr_parse(&a, longpath), NS_E_USAGE, "rejects an over-long unix path");

    /* tcp listen on an ephemeral port, connect, exchange a byte */
    int lfd = -1;
    int cfd = -1;
    uint32_t port = 0;
    CHECK_ERR(ns_addr_parse(&a, "tcp:127.0.0.1:0"), NS_OK, "parse listen address");
    CHECK_ERR(ns_addr_listen(&a, 8, 0, &lfd), NS_OK, "tcp listen");
    CHECK_ERR(ns_addr_local_port(lfd, &port), NS_OK, "local port");
    char s[64];
    snprintf(s, sizeof s, "tcp:localhost:%u", port);
    ns_addr c;
    CHECK_ERR(ns_addr_parse(&c, s), NS_OK, "parse connect address");
    CHECK_ERR(ns_addr_connect(&c, 2000, &cfd), NS_OK, "tcp connect by name (localhost)");
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0, "accept");
    CHECK(write(cfd, "x", 1) == 1, "write");
    char ch = 0;
    CHECK(read(afd, &ch, 1) == 1 && ch == 'x', "read back");
    char peer[NS_ADDR_STR_MAX];
    ns_addr_peer(afd, peer, sizeof peer);
    CHECK(strncmp(peer, "tcp:127.0.0.1:", 14) == 0, "peer name %s", peer);
    close(afd);
    close(cfd);
    close(lfd);

    /* refused: nothing listens on the port we just closed */
    CHECK_ERR(ns_addr_connect(&c, 2000, &cfd), NS_E_CONNECT, "refused connect is NS_E_CONNECT");

    /* unix */
    char path[64];
    snprintf(path, sizeof path, "unix:/tmp/ns-test-addr-%d.sock", (int)getpid());
    CHECK_ERR(ns_addr_parse(&a, path), NS_OK, "parse unix");
    CHECK_ERR(ns_addr_listen(&a, 8, 0, &lfd), NS_OK, "unix listen");
    CHECK_ERR(ns_addr_connect(&a, 1000, &cfd), NS_OK, "unix connect");
    close(cfd);
    close(lfd);
    CHECK_ERR(ns_addr_listen(&a, 8, 0, &lfd), NS_OK, "unix listen again replaces a stale socket");
    close(lfd);
    unlink(path + 5);

    CHECK_ERR(ns_addr_parse(&a, "tcp:no-such-host.invalid:1"), NS_OK, "parse unresolvable");
    CHECK_ERR(ns_addr_connect(&a, 1000, &cfd), NS_E_RESOLVE, "unresolvable name is NS_E_RESOLVE");
    test_peer_rule("tcp:127.0.0.1:0", "tcp:127.0.0.1");
    char up[64];
    snprintf(up, sizeof up, "unix:/tmp/ns-test-peer-%d.sock", (int)getpid());
    test_peer_rule(up, "unix:uid=");
    T_DONE();
}
