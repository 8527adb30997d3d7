/*
 * bridge: forward connections between vsock/tcp/unix addresses (replaces socat and
 * vsock-proxy). Parses the pairs and options, raises the descriptor limit, installs
 * SIGTERM/SIGINT handlers that stop the loop, and runs the engine of src/transport/bridge.h.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "../applets/applets.h"
#include "addr.h"
#include "bridge.h"
#include "cli.h"
#include "iox.h"
#include "log.h"
#include "secret.h"

#define BRIDGE_MAX_CONNS_LIMIT 1000000
#define BRIDGE_MAX_TIMEOUT_MS (86400ll * 1000)

static ns_stop g_stop;
static ns_stop g_quiesce; /* SIGUSR1: stop accepting, keep relaying (ns_bridge_set_quiesce) */

static void on_signal(int sig)
{
    if (sig == SIGUSR1) {
        g_quiesce = 1;
    } else {
        g_stop = 1;
    }
}

static void usage(void)
{
    printf(
        "usage: nsign bridge [OPTIONS] LISTEN CONNECT [LISTEN CONNECT ...]\n"
        "\n"
        "Accepts connections on each LISTEN address and forwards each one to its CONNECT\n"
        "address, both ways, until both sides closed (half-close is propagated). Addresses:\n"
        "vsock:CID:PORT (CID any|parent|local|host|number), tcp:HOST:PORT, unix:PATH.\n"
        "One event loop; zero-copy splice where possible; bounded memory per connection.\n"
        "\n"
        "  --allow HOST:PORT       allowed CONNECT target (repeatable; also a full address\n"
        "                          like vsock:3:8000). When given, every CONNECT must be on\n"
        "                          the list. Names resolve at connect time.\n"
        "  --max-conns N           concurrent connections over all pairs; more are accepted\n"
        "                          and closed at once (default %d)\n"
        "  --max-per-peer N        concurrent connections from one client IP address on a\n"
        "                          tcp listener; more are accepted and closed at once\n"
        "                          (default: no cap; vsock and unix peers are not capped)\n"
        "  --idle-timeout S        close a connection idle both ways for S seconds\n"
        "                          (default 0 = never)\n"
        "  --connect-timeout S     give up connecting to CONNECT after S seconds (default %d)\n"
        "  --no-splice             copy with read/write instead of splice(2) (the fallback\n"
        "                          used where a socket family refuses splice)\n"
        "\n"
        "Logs one line per closed connection: from, to, up (client->target bytes), down\n"
        "(target->client bytes), ms, reason. Stops cleanly on SIGTERM/SIGINT. SIGUSR1 closes the\n"
        "listeners (new connections are refused) and keeps relaying the open connections\n"
        "(run-enclave's drain).\n"
        "Example (the KMS proxy):\n"
        "  nsign bridge vsock:any:5000 tcp:kms.us-east-1.amazonaws.com:443 \\\n"
        "      --allow kms.us-east-1.amazonaws.com:443\n"
        "\n"
        "Exit: 0 stopped by a signal, 1 failure (cannot listen, target not allowed), 2 usage.\n",
        NS_BRIDGE_DEFAULT_MAX_CONNS, NS_BRIDGE_DEFAULT_CONNECT_TIMEOUT_MS / 1000);
}

static int parse_timeout(const char *opt, const char *s, int *ms)
{
    int64_t v;
    if (ns_parse_seconds(s, &v) != NS_OK || v > BRIDGE_MAX_TIMEOUT_MS) {
        return ns_cli_usage_error("invalid %s '%s' (seconds, at most one day)", opt, s);
    }
    *ms = (int)v;
    return 0;
}

int bridge_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"allow", required_argument, NULL, 'a'},
        {"max-conns", required_argument, NULL, 'm'},
        {"max-per-peer", required_argument, NULL, 'p'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"connect-timeout", required_argument, NULL, 'c'},
        {"no-splice", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *allow[NS_BRIDGE_MAX_PAIRS];
    static ns_bridge_pair pairs[NS_BRIDGE_MAX_PAIRS];
    ns_bridge_cfg cfg = {.pairs = pairs, .allow = allow};
    int start;
    if (ns_cli_start_hardened(argc, argv, usage, &start)) {
        return start;
    }
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        uint64_t v;
        switch (c) {
        case 'a':
            if (cfg.nallow >= NS_BRIDGE_MAX_PAIRS) {
                return ns_cli_usage_error("too many --allow entries (max %d)", NS_BRIDGE_MAX_PAIRS);
            }
            allow[cfg.nallow++] = optarg;
            break;
        case 'm':
            if (ns_parse_uint(optarg, BRIDGE_MAX_CONNS_LIMIT, &v) != NS_OK || v == 0) {
                return ns_cli_usage_error("invalid --max-conns '%s'", optarg);
            }
            cfg.max_conns = (int)v;
            break;
        case 'p':
            if (ns_parse_uint(optarg, BRIDGE_MAX_CONNS_LIMIT, &v) != NS_OK || v == 0) {
                return ns_cli_usage_error("invalid --max-per-peer '%s'", optarg);
            }
            cfg.max_per_peer = (int)v;
            break;
        case 'i':
            if (parse_timeout("--idle-timeout", optarg, &cfg.idle_timeout_ms) != 0) {
                return NS_EXIT_USAGE;
            }
            break;
        case 'c':
            if (parse_timeout("--connect-timeout", optarg, &cfg.connect_timeout_ms) != 0) {
                return NS_EXIT_USAGE;
            }
            break;
        case 'n':
            cfg.no_splice = 1;
            break;
        default:
            return ns_cli_usage_error("unknown option");
        }
    }
    int nargs = argc - optind;
    if (nargs < 2 || nargs % 2 != 0) {
        return ns_cli_usage_error("expected LISTEN CONNECT pairs");
    }
    if (nargs / 2 > NS_BRIDGE_MAX_PAIRS) {
        return ns_cli_usage_error("too many pairs (max %d)", NS_BRIDGE_MAX_PAIRS);
    }
    for (int i = 0; i < nargs; i++) {
        ns_bridge_pair *p = &pairs[i / 2];
        ns_addr *a = i % 2 == 0 ? &p->listen : &p->connect;
        if (ns_addr_parse(a, argv[optind + i]) != NS_OK) {
            return ns_cli_usage_error("bad address '%s': %s", argv[optind + i], ns_err_msg());
        }
    }
    cfg.npairs = (size_t)nargs / 2;

    ns_io_raise_nofile(); /* each connection needs up to 6 descriptors (2 sockets, 2 pipes) */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns at once */
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ns_bridge *b = NULL;
    ns_err e = ns_bridge_listen(&cfg, &b);
    if (e != NS_OK) {
        ns_log_err(e, NULL); /* the detail names the address or the target */
        return NS_EXIT_FAIL;
    }
    ns_bridge_set_quiesce(b, &g_quiesce);
    e = ns_bridge_serve(b, &g_stop);
    ns_bridge_free(b);
    if (e != NS_OK) {
        ns_log_err(e, "serving");
        return NS_EXIT_FAIL;
    }
    ns_info("stopped");
    return NS_EXIT_OK;
}
