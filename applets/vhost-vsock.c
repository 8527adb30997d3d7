/*
 * vhost-vsock: the vsock device of QEMU's nitro-enclave machine (a vhost-user-vsock back-end),
 * so an EIF can run on a machine without Nitro. Parses the routes, runs src/enclave/vhost_user.h's loop
 * until the front-end goes away or a signal arrives.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "addr.h"
#include "cli.h"
#include "iox.h"
#include "log.h"
#include "vhost_user.h"

#define VV_DEFAULT_CID 16
#define VV_MAX_TIMEOUT_MS (3600ll * 1000)

static ns_stop g_stop;
static const char *g_socket; /* removed by on_fatal */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* A fault (a guest file truncated under its mapping: SIGBUS) or an uncaught stop signal still
 * removes the socket file, so the next start does not find a dead listener; then the signal's
 * default action runs (SA_RESETHAND), with its usual exit status. */
static void on_fatal(int sig)
{
    if (g_socket != NULL) {
        (void)unlink(g_socket);
    }
    (void)raise(sig);
}

static void usage(void)
{
    printf(
        "usage: nsign vhost-vsock --socket PATH [OPTIONS]\n"
        "\n"
        "Serves the virtio-vsock device of one QEMU guest over vhost-user (QEMU connects to\n"
        "PATH), standing in for Nitro's vsock: the guest (the enclave) reaches the host as\n"
        "CID 3, host programs reach the guest's listening ports. Only the routes given here\n"
        "exist; everything else is refused with a reset. Host addresses: unix:PATH or\n"
        "tcp:HOST:PORT.\n"
        "\n"
        "  --socket PATH           the vhost-user socket to listen on (required)\n"
        "  --connect PORT=ADDR     a guest connection to CID 3 port PORT goes to ADDR\n"
        "                          (repeatable), e.g. --connect 9000=unix:/run/hb.sock\n"
        "  --listen ADDR=PORT      host clients accepted on ADDR reach the guest's PORT\n"
        "                          (repeatable), e.g. --listen tcp:127.0.0.1:50051=50051\n"
        "  --hybrid unix:PATH      Firecracker's hybrid vsock: a client writes \"CONNECT P\\n\",\n"
        "                          reads \"OK LOCALPORT\\n\", then talks to the guest's port P\n"
        "  --guest-cid N           the guest's CID (default $ENCLAVE_CID, else %d)\n"
        "  --parent-cid N          the CID the guest reaches the host as (default 3)\n"
        "  --max-conns N           concurrent connections (default %d)\n"
        "  --buf-size SIZE         per-connection guest->host buffer, the credit the guest\n"
        "                          gets (default %dk; 4k..16m)\n"
        "  --connect-timeout S     connection setup deadline either way (default 10)\n"
        "\n"
        "Memory is bounded by max-conns x buf-size; host data is read only as far as the\n"
        "guest has room for it. Exits when QEMU disconnects.\n"
        "Exit: 0 front-end gone or stopped by a signal, 1 failure (the guest broke the virtio\n"
        "rules, the front-end broke vhost-user, cannot listen), 2 usage.\n",
        VV_DEFAULT_CID, NS_VSOCK_DEFAULT_MAX_CONNS, NS_VSOCK_DEFAULT_BUF / 1024);
}

static int parse_port(const char *s, uint32_t *port)
{
    uint64_t v;
    if (ns_parse_uint(s, 0xFFFFFFFEu, &v) != NS_OK) {
        return -1;
    }
    *port = (uint32_t)v;
    return 0;
}

static int parse_host_addr(const char *s, ns_addr *a)
{
    if (ns_addr_parse(a, s) != NS_OK) {
        return ns_cli_usage_error("bad address '%s': %s", s, ns_err_msg());
    }
    if (a->kind != NS_ADDR_UNIX && a->kind != NS_ADDR_TCP) {
        return ns_cli_usage_error("'%s': host side addresses are unix: or tcp:", s);
    }
    return 0;
}

typedef struct {
    ns_vhost_vsock_cfg cfg; /* cfg.dev points into the tables below */
    ns_vsock_route connect[NS_VSOCK_MAX_ROUTES];
    ns_vsock_route listen[NS_VSOCK_MAX_ROUTES];
    ns_addr hybrid;
} vv_options;

/* One --connect PORT=ADDR (c 'c') or --listen ADDR=PORT (c 'l') route, appended to its table;
 * returns 0, or the usage exit code after the error line. */
static int parse_route(vv_options *o, int c, const char *arg)
{
    ns_vsock_route *tab = c == 'c' ? o->connect : o->listen;
    size_t *n = c == 'c' ? &o->cfg.dev.nconnect : &o->cfg.dev.nlisten;
    char tmp[NS_ADDR_STR_MAX];
    if (*n >= NS_VSOCK_MAX_ROUTES) {
        return ns_cli_usage_error("too many routes (max %d)", NS_VSOCK_MAX_ROUTES);
    }
    if (strlen(arg) >= sizeof tmp) {
        return ns_cli_usage_error("route '%s' is too long", arg);
    }
    memcpy(tmp, arg, strlen(arg) + 1);
    /* --connect PORT=ADDR splits at the first '=', --listen ADDR=PORT at the last. */
    char *eq = c == 'c' ? strchr(tmp, '=') : strrchr(tmp, '=');
    if (!eq) {
        return ns_cli_usage_error("route '%s' needs '=' (%s)", arg,
                                  c == 'c' ? "PORT=ADDR" : "ADDR=PORT");
    }
    *eq = '\0';
    const char *port_s = c == 'c' ? tmp : eq + 1;
    const char *addr_s = c == 'c' ? eq + 1 : tmp;
    if (parse_port(port_s, &tab[*n].port) != 0) {
        return ns_cli_usage_error("bad port '%s' in '%s'", port_s, arg);
    }
    if (parse_host_addr(addr_s, &tab[*n].addr) != 0) {
        return NS_EXIT_USAGE;
    }
    for (size_t i = 0; c == 'c' && i < *n; i++) {
        if (tab[i].port == tab[*n].port) {
            return ns_cli_usage_error("port %u has two --connect routes", tab[i].port);
        }
    }
    (*n)++;
    return NS_EXIT_OK;
}

/* One option other than a route; returns 0, or the usage exit code after the error line. */
static int parse_option(vv_options *o, int c, const char *arg)
{
    uint64_t v;
    int64_t ms;
    switch (c) {
    case 's':
        o->cfg.socket_path = arg;
        break;
    case 'y':
        if (parse_host_addr(arg, &o->hybrid) != 0) {
            return NS_EXIT_USAGE;
        }
        if (o->hybrid.kind != NS_ADDR_UNIX) {
            return ns_cli_usage_error("--hybrid takes a unix: address");
        }
        o->cfg.dev.hybrid = &o->hybrid;
        break;
    case 'g':
    case 'p':
        if (ns_parse_uint(arg, 0xFFFFFFFEu, &v) != NS_OK || v < 2) {
            return ns_cli_usage_error("bad CID '%s' (2..4294967294)", arg);
        }
        if (c == 'g') {
            o->cfg.dev.guest_cid = v;
        } else {
            o->cfg.dev.parent_cid = v;
        }
        break;
    case 'm':
        if (ns_parse_uint(arg, 65536, &v) != NS_OK || v == 0) {
            return ns_cli_usage_error("invalid --max-conns '%s' (1..65536)", arg);
        }
        o->cfg.dev.max_conns = (size_t)v;
        break;
    case 'b':
        if (ns_parse_size(arg, 16u << 20, &v) != NS_OK || v < 4096) {
            return ns_cli_usage_error("invalid --buf-size '%s' (4k..16m)", arg);
        }
        o->cfg.dev.buf_size = (uint32_t)v;
        break;
    case 't':
        if (ns_parse_seconds(arg, &ms) != NS_OK || ms <= 0 || ms > VV_MAX_TIMEOUT_MS) {
            return ns_cli_usage_error("invalid --connect-timeout '%s' (seconds)", arg);
        }
        o->cfg.dev.connect_timeout_ms = (int)ms;
        break;
    default:
        return ns_cli_usage_error("unknown option");
    }
    return NS_EXIT_OK;
}

/* Fills o from ENCLAVE_CID and the command line; returns 0, or the usage exit code after the
 * error line. */
static int parse_options(vv_options *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"connect", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"hybrid", required_argument, NULL, 'y'},
        {"guest-cid", required_argument, NULL, 'g'},
        {"parent-cid", required_argument, NULL, 'p'},
        {"max-conns", required_argument, NULL, 'm'},
        {"buf-size", required_argument, NULL, 'b'},
        {"connect-timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->cfg.dev.connect = o->connect;
    o->cfg.dev.listen = o->listen;
    o->cfg.dev.parent_cid = NS_VSOCK_CID_PARENT;
    o->cfg.dev.guest_cid = VV_DEFAULT_CID;
    const char *env_cid = getenv("ENCLAVE_CID");
    if (env_cid && *env_cid) {
        uint64_t v;
        if (ns_parse_uint(env_cid, 0xFFFFFFFEu, &v) != NS_OK || v < 3) {
            return ns_cli_usage_error("ENCLAVE_CID='%s' is not a CID (3..4294967294)", env_cid);
        }
        o->cfg.dev.guest_cid = v;
    }
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        int rc = c == 'c' || c == 'l' ? parse_route(o, c, optarg) : parse_option(o, c, optarg);
        if (rc != NS_EXIT_OK) {
            return rc;
        }
    }
    if (optind != argc) {
        return ns_cli_usage_error("unexpected argument '%s'", argv[optind]);
    }
    if (!o->cfg.socket_path) {
        return ns_cli_usage_error("--socket PATH is required");
    }
    if (o->cfg.dev.guest_cid < 3 || o->cfg.dev.guest_cid == o->cfg.dev.parent_cid) {
        return ns_cli_usage_error("guest CID %llu must be >= 3 and differ from the parent's",
                                  (unsigned long long)o->cfg.dev.guest_cid);
    }
    return NS_EXIT_OK;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    int fatal[] = {SIGBUS, SIGSEGV, SIGILL, SIGFPE, SIGABRT, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
        (void)sigaction(fatal[i], &sa, NULL);
    }
}

int vhost_vsock_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    static vv_options o; /* the route tables are large for a stack frame */
    int rc = parse_options(&o, argc, argv);
    if (rc != NS_EXIT_OK) {
        return rc;
    }
    g_socket = o.cfg.socket_path;
    install_signals();
    ns_err e = ns_vhost_vsock_serve(&o.cfg, &g_stop);
    if (e != NS_OK) {
        ns_log_err(e, "vhost-vsock");
        return NS_EXIT_FAIL;
    }
    return NS_EXIT_OK;
}
