/*
 * vsock-push: send a file (or stdin) as one verified frame (src/transport/frame.h) and exit 0 only when
 * the receiver acknowledged it. Connecting is retried until --timeout, so the sender may start
 * before the receiver listens (this replaces socat plus READINESS_SLEEP_SECONDS).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../applets/applets.h"
#include "addr.h"
#include "buf.h"
#include "cli.h"
#include "frame.h"
#include "iox.h"
#include "log.h"
#include "secret.h"

/* The payload is read whole (its SHA-256 precedes it on the wire). */
#define PUSH_MAX_PAYLOAD (1ull << 30)
#define PUSH_DEFAULT_TIMEOUT_MS 60000
#define PUSH_DEFAULT_RETRY_MS 200
#define PUSH_MAX_RETRY_MS 60000

static void usage(void)
{
    printf("usage: nsign vsock-push [--timeout S] [--retry-interval MS] ADDRESS [FILE|-]\n"
           "\n"
           "Sends FILE (default: standard input) to ADDRESS as one frame: magic, version,\n"
           "length and SHA-256, then the payload. Succeeds only when the receiver\n"
           "(vsock-recv) answers that it verified and stored the payload. Connecting is\n"
           "retried until the receiver listens or the timeout passes.\n"
           "\n"
           "  ADDRESS               vsock:CID:PORT | tcp:HOST:PORT | unix:PATH\n"
           "  --timeout S           give up after S seconds, 0 = never (default 60)\n"
           "  --retry-interval MS   wait between connection attempts (default 200)\n"
           "\n"
           "Payloads up to 1 GiB. Exit: 0 acknowledged, 1 failure (timeout, rejected), 2 usage.\n");
}

int vsock_push_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"retry-interval", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t timeout_ms = PUSH_DEFAULT_TIMEOUT_MS;
    uint64_t retry_ms = PUSH_DEFAULT_RETRY_MS;
    int start;
    if (ns_cli_start_hardened(argc, argv, usage, &start)) {
        return start;
    }
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "+", opts, NULL)) != -1;) {
        switch (c) {
        case 't':
            if (ns_parse_seconds(optarg, &timeout_ms) != NS_OK || timeout_ms > INT32_MAX) {
                return ns_cli_usage_error("invalid --timeout '%s' (seconds)", optarg);
            }
            break;
        case 'r':
            if (ns_parse_uint(optarg, PUSH_MAX_RETRY_MS, &retry_ms) != NS_OK || retry_ms == 0) {
                return ns_cli_usage_error("invalid --retry-interval '%s' (1..%d ms)", optarg,
                                          PUSH_MAX_RETRY_MS);
            }
            break;
        default:
            return ns_cli_usage_error("unknown option");
        }
    }
    if (argc - optind < 1 || argc - optind > 2) {
        return ns_cli_usage_error("expected ADDRESS [FILE|-]");
    }
    ns_addr to;
    ns_err e = ns_addr_parse(&to, argv[optind]);
    if (e != NS_OK) {
        return ns_cli_usage_error("bad address '%s': %s", argv[optind], ns_err_msg());
    }
    const char *path = argc - optind == 2 ? argv[optind + 1] : "-";
    ns_buf payload;
    ns_buf_init_secret(&payload, PUSH_MAX_PAYLOAD);
    e = ns_read_path(path, &payload);
    if (e != NS_OK) {
        ns_buf_free(&payload);
        ns_log_err(e, "reading the payload");
        return NS_EXIT_FAIL;
    }
    char name[NS_ADDR_STR_MAX];
    ns_addr_format(&to, name, sizeof name);
    int64_t t0 = ns_now_ms();
    e = ns_frame_send(&to, payload.data, payload.len, timeout_ms == 0 ? -1 : (int)timeout_ms,
                      (int)retry_ms);
    size_t n = payload.len;
    ns_buf_free(&payload);
    if (e != NS_OK) {
        ns_log_err(e, "push");
        return NS_EXIT_FAIL;
    }
    ns_info("acknowledged to=%s bytes=%zu ms=%lld", name, n, (long long)(ns_now_ms() - t0));
    return NS_EXIT_OK;
}
