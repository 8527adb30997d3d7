/*
 * vsock-recv: accept one sender, receive one frame (src/transport/frame.h), verify its SHA-256, store it
 * and only then acknowledge. To a file the payload streams into a 0600 temp file that is renamed
 * into place after verification; to stdout it is held in locked memory (bounded by --max-size)
 * and written only once verified. A truncated, oversized or corrupted frame writes nothing and
 * the sender receives a negative status.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "addr.h"
#include "buf.h"
#include "cli.h"
#include "frame.h"
#include "iox.h"
#include "log.h"
#include "secret.h"

#define RECV_DEFAULT_MAX (64ull << 20)
#define RECV_MAX_MAX (1ull << 30)

static void usage(void)
{
    printf("usage: nsign vsock-recv [--timeout S] [--max-size BYTES] ADDRESS [OUTFILE|-]\n"
           "\n"
           "Listens on ADDRESS, accepts one vsock-push sender, verifies the frame's length and\n"
           "SHA-256, writes the payload to OUTFILE (atomically: 0600 temp file, fsync, rename)\n"
           "or to standard output (default), and then acknowledges it. A truncated, oversized\n"
           "or corrupted frame is rejected: nothing is written and the sender fails.\n"
           "\n"
           "  ADDRESS            vsock:any:PORT | tcp:HOST:PORT | unix:PATH\n"
           "  --timeout S        fail when no valid frame arrived after S seconds, 0 = wait\n"
           "                     forever (default 0)\n"
           "  --max-size BYTES   largest payload accepted, k/M/G suffixes (default 64M, max 1G)\n"
           "  --transfer-timeout S  once a sender connected, the whole frame must arrive within\n"
           "                     S seconds however it is paced (default 300); each read also\n"
           "                     fails after 30 s without a byte\n"
           "The sender must end its side after the payload: trailing bytes reject the frame.\n"
           "\n"
           "Exit: 0 received and acknowledged, 1 failure, 2 usage.\n");
}

typedef struct {
    ns_out *out;
    ns_buf *mem;
} sink_ctx;

static ns_err sink(void *ctx, const uint8_t *p, size_t n)
{
    sink_ctx *s = ctx;
    if (s->mem != NULL) {
        return ns_buf_append(s->mem, p, n);
    }
    return ns_out_write(s->out, p, n);
}

typedef struct {
    int64_t timeout_ms;
    int64_t transfer_ms;
    uint64_t max_size;
    ns_addr at;
    const char *path; /* OUTFILE, or "-" */
    int to_stdout;
} recv_options;

/* Fills o from the command line; returns 0, or the usage exit code after the error line. */
static int parse_options(recv_options *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"max-size", required_argument, NULL, 'm'},
        {"transfer-timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->timeout_ms = 0;
    o->transfer_ms = NS_FRAME_TRANSFER_MS_DEFAULT;
    o->max_size = RECV_DEFAULT_MAX;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "+", opts, NULL)) != -1;) {
        switch (c) {
        case 't':
            if (ns_parse_seconds(optarg, &o->timeout_ms) != NS_OK || o->timeout_ms > INT32_MAX) {
                return ns_cli_usage_error("invalid --timeout '%s' (seconds)", optarg);
            }
            break;
        case 'm':
            if (ns_parse_size(optarg, RECV_MAX_MAX, &o->max_size) != NS_OK) {
                return ns_cli_usage_error("invalid --max-size '%s' (bytes, at most 1G)", optarg);
            }
            break;
        case 'T':
            if (ns_parse_seconds(optarg, &o->transfer_ms) != NS_OK || o->transfer_ms <= 0 ||
                o->transfer_ms > 86400000) {
                return ns_cli_usage_error("invalid --transfer-timeout '%s' (seconds, at most a "
                                          "day)",
                                          optarg);
            }
            break;
        default:
            return ns_cli_usage_error("unknown option");
        }
    }
    if (argc - optind < 1 || argc - optind > 2) {
        return ns_cli_usage_error("expected ADDRESS [OUTFILE|-]");
    }
    if (ns_addr_parse(&o->at, argv[optind]) != NS_OK) {
        return ns_cli_usage_error("bad address '%s': %s", argv[optind], ns_err_msg());
    }
    o->path = argc - optind == 2 ? argv[optind + 1] : "-";
    o->to_stdout = strcmp(o->path, "-") == 0;
    return NS_EXIT_OK;
}

/* Listens on o->at and says where (with the port the kernel chose); logs a failure. */
static ns_err listen_on(const recv_options *o, const char *name, int *lfd)
{
    ns_err e = ns_addr_listen(&o->at, 4, NS_LISTEN_NONBLOCK, lfd);
    if (e != NS_OK) {
        ns_log_err(e, "listen");
        return e;
    }
    uint32_t port = 0;
    if (o->at.kind != NS_ADDR_UNIX && ns_addr_local_port(*lfd, &port) == NS_OK) {
        ns_info("listening on=%s port=%u", name, port);
    } else {
        ns_info("listening on=%s", name);
    }
    return NS_OK;
}

/* Accepts one sender (*cfd, or -1) and receives its frame; the payload is stored (file
 * committed, or locked memory written to stdout) only once verified, and the memory copy is
 * wiped on every path. *status is the answer the sender is owed. */
static ns_err receive_frame(const recv_options *o, int lfd, int tmo, int64_t deadline, int *cfd,
                            uint8_t *status, uint64_t *len)
{
    ns_out out = {.fd = -1};
    ns_buf mem;
    ns_buf_init_secret(&mem, (size_t)o->max_size);
    sink_ctx ctx = {.out = &out, .mem = o->to_stdout ? &mem : NULL};
    int out_open = 0;
    *status = NS_FRAME_ST_STORE_FAILED;

    ns_err e = ns_frame_accept(lfd, tmo, cfd);
    if (e == NS_OK && !o->to_stdout) {
        e = ns_out_open(&out, o->path);
        out_open = e == NS_OK;
    }
    if (e == NS_OK) {
        char peer[NS_ADDR_STR_MAX];
        ns_addr_peer(*cfd, peer, sizeof peer);
        ns_info("accepted from=%s", peer);
        e = ns_frame_read_within(*cfd, o->max_size, ns_ms_left(deadline), (int)o->transfer_ms, sink,
                                 &ctx, len);
        *status = ns_frame_status_for(e);
    }
    if (e == NS_OK) {
        e = o->to_stdout ? ns_write_all(1, mem.data, mem.len) : ns_out_commit(&out);
        out_open = 0;
        *status = e == NS_OK ? NS_FRAME_ST_OK : NS_FRAME_ST_STORE_FAILED;
    }
    ns_buf_free(&mem);
    if (out_open) {
        ns_out_abort(&out);
    }
    return e;
}

/* Sends the sender its status and closes the connection; e's message stays the one to log. */
static void acknowledge(int cfd, uint8_t status, ns_err e)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ns_err_msg());
    ns_err r = ns_frame_reply(cfd, status);
    close(cfd);
    if (e == NS_OK && r != NS_OK) {
        /* stored, but the sender never learns it: it will fail and may resend */
        ns_warn("could not acknowledge the frame: %s", ns_err_msg());
    }
    if (e != NS_OK) {
        (void)ns_fail(e, "%s", msg); /* restores the message to log */
    }
}

int vsock_recv_main(int argc, char **argv)
{
    int start;
    if (ns_cli_start_hardened(argc, argv, usage, &start)) {
        return start;
    }
    recv_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc != NS_EXIT_OK) {
        return rc;
    }
    int tmo = o.timeout_ms == 0 ? -1 : (int)o.timeout_ms;
    int64_t deadline = tmo < 0 ? -1 : ns_now_ms() + tmo;
    char name[NS_ADDR_STR_MAX];
    ns_addr_format(&o.at, name, sizeof name);

    int lfd = -1;
    if (listen_on(&o, name, &lfd) != NS_OK) {
        return NS_EXIT_FAIL;
    }
    int cfd = -1;
    uint8_t status;
    uint64_t len = 0;
    ns_err e = receive_frame(&o, lfd, tmo, deadline, &cfd, &status, &len);
    if (cfd >= 0) {
        acknowledge(cfd, status, e);
    }
    close(lfd);
    if (o.at.kind == NS_ADDR_UNIX && o.at.path[0] != '@') {
        ns_io_unlink_stale_socket(o.at.path);
    }
    if (e != NS_OK) {
        ns_log_err(e, "receive");
        return NS_EXIT_FAIL;
    }
    ns_info("received on=%s bytes=%llu to=%s", name, (unsigned long long)len,
            o.to_stdout ? "stdout" : o.path);
    return NS_EXIT_OK;
}
