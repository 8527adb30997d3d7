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

int vsock_recv_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"max-size", required_argument, NULL, 'm'},
        {"transfer-timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t timeout_ms = 0, transfer_ms = NS_FRAME_TRANSFER_MS_DEFAULT;
    uint64_t max_size = RECV_DEFAULT_MAX;
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    /* First, before any payload or credential is read: no core dump, no same-uid ptrace. */
    if (ns_secret_process_init() != NS_OK) {
        ns_log_err(NS_E_INTERNAL, "hardening the process");
        return NS_EXIT_FAIL;
    }
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "+", opts, NULL)) != -1;) {
        switch (c) {
        case 't':
            if (ns_parse_seconds(optarg, &timeout_ms) != NS_OK || timeout_ms > INT32_MAX) {
                return ns_cli_usage_error("invalid --timeout '%s' (seconds)", optarg);
            }
            break;
        case 'm':
            if (ns_parse_size(optarg, RECV_MAX_MAX, &max_size) != NS_OK) {
                return ns_cli_usage_error("invalid --max-size '%s' (bytes, at most 1G)", optarg);
            }
            break;
        case 'T':
            if (ns_parse_seconds(optarg, &transfer_ms) != NS_OK || transfer_ms <= 0 ||
                transfer_ms > 86400000) {
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
    ns_addr at;
    ns_err e = ns_addr_parse(&at, argv[optind]);
    if (e != NS_OK) {
        return ns_cli_usage_error("bad address '%s': %s", argv[optind], ns_err_msg());
    }
    const char *path = argc - optind == 2 ? argv[optind + 1] : "-";
    int to_stdout = strcmp(path, "-") == 0;
    int tmo = timeout_ms == 0 ? -1 : (int)timeout_ms;
    int64_t deadline = tmo < 0 ? -1 : ns_now_ms() + tmo;
    char name[NS_ADDR_STR_MAX];
    ns_addr_format(&at, name, sizeof name);

    int lfd = -1;
    e = ns_addr_listen(&at, 4, NS_LISTEN_NONBLOCK, &lfd);
    if (e != NS_OK) {
        ns_log_err(e, "listen");
        return NS_EXIT_FAIL;
    }
    uint32_t port = 0;
    if (at.kind != NS_ADDR_UNIX && ns_addr_local_port(lfd, &port) == NS_OK) {
        ns_info("listening on=%s port=%u", name, port);
    } else {
        ns_info("listening on=%s", name);
    }

    int cfd = -1;
    ns_out out = {.fd = -1};
    ns_buf mem;
    ns_buf_init_secret(&mem, (size_t)max_size);
    sink_ctx ctx = {.out = &out, .mem = to_stdout ? &mem : NULL};
    uint64_t len = 0;
    uint8_t status = NS_FRAME_ST_STORE_FAILED;
    int out_open = 0;

    e = ns_frame_accept(lfd, tmo, &cfd);
    if (e == NS_OK && !to_stdout) {
        e = ns_out_open(&out, path);
        out_open = e == NS_OK;
    }
    if (e == NS_OK) {
        char peer[NS_ADDR_STR_MAX];
        ns_addr_peer(cfd, peer, sizeof peer);
        ns_info("accepted from=%s", peer);
        e = ns_frame_read_within(cfd, max_size, ns_ms_left(deadline), (int)transfer_ms, sink,
                                 &ctx, &len);
        status = ns_frame_status_for(e);
    }
    if (e == NS_OK) {
        e = to_stdout ? ns_write_all(1, mem.data, mem.len) : ns_out_commit(&out);
        out_open = 0;
        status = e == NS_OK ? NS_FRAME_ST_OK : NS_FRAME_ST_STORE_FAILED;
    }
    ns_buf_free(&mem);
    if (out_open) {
        ns_out_abort(&out);
    }
    if (cfd >= 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", ns_err_msg());
        ns_err r = ns_frame_reply(cfd, status);
        close(cfd);
        if (e == NS_OK && r != NS_OK) {
            /* stored, but the sender never learns it: it will fail and may resend */
            ns_warn("could not acknowledge the frame: %s", ns_err_msg());
        }
        if (e != NS_OK) {
            ns_fail(e, "%s", msg);
        }
    }
    close(lfd);
    if (at.kind == NS_ADDR_UNIX && at.path[0] != '@') {
        ns_io_unlink_stale_socket(at.path);
    }
    if (e != NS_OK) {
        ns_log_err(e, "receive");
        return NS_EXIT_FAIL;
    }
    ns_info("received on=%s bytes=%llu to=%s", name, (unsigned long long)len,
            to_stdout ? "stdout" : path);
    return NS_EXIT_OK;
}
