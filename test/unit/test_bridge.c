/*
 * Unit tests for the bridge engine, in-process as enclave-entrypoint uses it: configuration
 * errors (no pairs, target off the allow-list, bad allow entry), listeners up before the loop
 * (port 0 then ns_bridge_port), a round trip with half-close through tcp -> unix, and the loop
 * returning NS_OK when *stop is set. Runs under ASan too.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "bridge.h"
#include "iox.h"
#include "t.h"

static int g_echo_lfd = -1;

/* Accepts one connection, echoes until EOF, then sends "!" and closes. */
static void *echo_once(void *arg)
{
    (void)arg;
    int c = accept(g_echo_lfd, NULL, NULL);
    if (c < 0) {
        return NULL;
    }
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        if (ns_write_all(c, buf, (size_t)n) != NS_OK) {
            break;
        }
    }
    if (ns_write_all(c, "!", 1) != NS_OK) {
        /* the test below reports the short reply */
    }
    close(c);
    return NULL;
}

typedef struct {
    ns_bridge *b;
    ns_stop stop;
    ns_err rc;
} serve_arg;

static void *serve(void *p)
{
    serve_arg *a = p;
    a->rc = ns_bridge_serve(a->b, &a->stop);
    return NULL;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    ns_bridge *b = NULL;
    ns_bridge_pair pair;
    ns_bridge_cfg cfg = {.pairs = &pair, .npairs = 0};
    CHECK_ERR(ns_bridge_listen(&cfg, &b), NS_E_USAGE, "no pairs is a usage error");

    char dir[] = "/tmp/ns-test-bridge-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    char target[128];
    snprintf(target, sizeof target, "unix:%s/echo", dir);
    CHECK_ERR(ns_addr_parse(&pair.listen, "tcp:127.0.0.1:0"), NS_OK, "listen address");
    CHECK_ERR(ns_addr_parse(&pair.connect, target), NS_OK, "connect address");
    cfg.npairs = 1;
    const char *allow_other[] = {"kms.us-east-1.amazonaws.com:443"};
    cfg.allow = allow_other;
    cfg.nallow = 1;
    CHECK_ERR(ns_bridge_listen(&cfg, &b), NS_E_DENIED, "target off the allow-list is refused");
    const char *allow_bad[] = {"nohost"};
    cfg.allow = allow_bad;
    CHECK_ERR(ns_bridge_listen(&cfg, &b), NS_E_USAGE, "allow entry without a port is refused");
    const char *allow_ok[] = {"kms.us-east-1.amazonaws.com:443", target};
    cfg.allow = allow_ok;
    cfg.nallow = 2;

    CHECK_ERR(ns_addr_listen(&pair.connect, 4, 0, &g_echo_lfd), NS_OK, "echo target listens");
    CHECK_ERR(ns_bridge_listen(&cfg, &b), NS_OK, "bridge listens before its loop runs");
    unsigned port = ns_bridge_port(b, 0);
    CHECK(port != 0, "ns_bridge_port reports the kernel-chosen port %u", port);
    CHECK(ns_bridge_port(b, 1) == 0, "no port for a pair that does not exist");

    /* connecting works even before the loop runs: the listener queues */
    ns_addr front;
    char fs[64];
    snprintf(fs, sizeof fs, "tcp:127.0.0.1:%u", port);
    CHECK_ERR(ns_addr_parse(&front, fs), NS_OK, "front address");
    int c = -1;
    CHECK_ERR(ns_addr_connect(&front, 2000, &c), NS_OK, "client connects before the loop");

    pthread_t et, st;
    serve_arg sa = {.b = b, .stop = 0, .rc = NS_E_INTERNAL};
    pthread_create(&et, NULL, echo_once, NULL);
    pthread_create(&st, NULL, serve, &sa);

    static uint8_t data[300000];
    for (size_t i = 0; i < sizeof data; i++) {
        data[i] = (uint8_t)(i * 31 + 7);
    }
    static uint8_t back[sizeof data + 1];
    /* write in a thread-free way: the echo server reads while we write, the bridge bounds */
    size_t got = 0, sent = 0;
    ns_set_nonblock(c, 1);
    while (got < sizeof back) {
        if (sent < sizeof data) {
            ssize_t n = write(c, data + sent, sizeof data - sent);
            if (n > 0) {
                sent += (size_t)n;
                if (sent == sizeof data) {
                    shutdown(c, SHUT_WR);
                }
            }
        }
        size_t r = 0;
        ns_err e = ns_read_some(c, back + got, sizeof back - got, &r, 100);
        if (e == NS_E_TIMEOUT) {
            continue;
        }
        if (e != NS_OK || r == 0) {
            break;
        }
        got += r;
    }
    CHECK(got == sizeof back && memcmp(back, data, sizeof data) == 0 && back[sizeof data] == '!',
          "300000 bytes round trip, EOF propagated to the target (%zu bytes back)", got);
    close(c);

    sa.stop = 1;
    pthread_join(st, NULL);
    pthread_join(et, NULL);
    CHECK_ERR(sa.rc, NS_OK, "serve returns NS_OK once *stop is set");
    ns_bridge_free(b);
    close(g_echo_lfd);
    ns_io_unlink_stale_socket(target + 5);
    rmdir(dir);
    T_DONE();
}
