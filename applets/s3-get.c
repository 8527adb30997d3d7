/*
 * s3-get: download one S3 object with SigV4 over verified TLS, streamed with constant memory,
 * into an atomic 0600 file (or stdout). Replaces `aws s3 cp s3://... FILE` on the host.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "aws.h"
#include "cli.h"
#include "creds.h"
#include "imds.h"
#include "iox.h"
#include "log.h"
#include "s3.h"
#include "secret.h"

/* The body speed floor: far under any real link, far over a drip meant to hold us. */
#define S3_MIN_BPS_DEFAULT 1024

static void usage(void)
{
    printf("usage: nsign s3-get [options] s3://BUCKET/KEY [OUTFILE|-]\n"
           "\n"
           "Downloads the object (GetObject, SigV4) to OUTFILE (default: the key's last path\n"
           "segment in the current directory; '-' = standard output). A file is written to a\n"
           "temporary name with mode 0600, fsync'ed and renamed only after the whole object\n"
           "arrived and its length and checksum (when S3 returns one) verified. A dropped\n"
           "connection is resumed with a Range request pinned to the object's ETag; a bucket in\n"
           "another region is followed.\n"
           "To standard output ('-') the bytes go out as they arrive, before the length and\n"
           "checksum are verified: a failure exits 1 after what was already written (partial,\n"
           "unverified output). Treat stdout as garbage unless the exit status is 0.\n"
           "\n"
           "  --creds FILE|-     credentials JSON (AccessKeyId, SecretAccessKey, Token,\n"
           "                     Expiration); default AWS_ACCESS_KEY_ID/..., else IMDSv2\n"
           "  --region R         default AWS_REGION, AWS_DEFAULT_REGION, else us-east-1\n"
           "  --endpoint URL     custom S3 endpoint, path-style (default AWS_ENDPOINT_URL_S3,\n"
           "                     AWS_ENDPOINT_URL, else https://BUCKET.s3.REGION.amazonaws.com)\n"
           "  --ca-bundle FILE   PEM trust store instead of the embedded Amazon roots\n"
           "                     (default AWS_CA_BUNDLE)\n"
           "  --via ADDRESS      connect through this address (tcp:, unix:, vsock:) instead\n"
           "                     of the endpoint's host; TLS still verifies the endpoint\n"
           "  --timeout S        per-read/connect timeout in seconds (default 30); the whole\n"
           "                     response head must arrive within it too\n"
           "  --max-time S       deadline for each whole request, body included (a resume\n"
           "                     after a dropped connection is a new request); default none\n"
           "  --min-speed B      the body must average at least B bytes/s over each --timeout\n"
           "                     window, or the request fails as stalling (default 1024;\n"
           "                     0 = no floor). With --timeout it bounds a dripping server.\n"
           "  --progress | --no-progress   progress line on stderr (default: when a TTY)\n"
           "\n"
           "Environment: AWS_MAX_ATTEMPTS (default 5) bounds retries (backoff with jitter) of\n"
           "throttling, 5xx and connection errors.\n"
           "Exit: 0 ok, 1 failure (403/404/region/TLS/checksum/...), 2 usage.\n");
}

static const char *default_out(const char *key)
{
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

typedef struct {
    const char *creds_path;
    const char *region_arg;
    const char *endpoint_arg;
    const char *bundle;
    const char *via_arg;
    int64_t timeout_ms;
    int64_t max_ms;
    uint64_t min_bps;
    int prog; /* --progress 1, --no-progress 0, neither -1 */
    ns_s3_uri uri;
    const char *outpath;
    char region[NS_AWS_REGION_MAX];
    ns_url ep;
    int custom; /* ep is not the region's default endpoint */
    ns_addr via;
} s3_options;

/* The operands and what derives from them: the object, the output, region, endpoint, --via. */
static int resolve_target(s3_options *o, int argc, char **argv)
{
    if (argc - optind < 1 || argc - optind > 2) {
        return ns_cli_usage_error("expected s3://BUCKET/KEY [OUTFILE|-]");
    }
    if (ns_s3_uri_parse(&o->uri, argv[optind]) != NS_OK) {
        return ns_cli_usage_error("%s", ns_err_msg());
    }
    o->outpath = argc - optind == 2 ? argv[optind + 1] : default_out(o->uri.key);
    if (o->outpath[0] == '\0' || strcmp(o->outpath, ".") == 0 || strcmp(o->outpath, "..") == 0) {
        return ns_cli_usage_error("no file name in the key '%s': give OUTFILE", o->uri.key);
    }
    if (ns_aws_region(o->region, o->region_arg) != NS_OK) {
        return ns_cli_usage_error("%s", ns_err_msg());
    }
    ns_err e;
    if (o->endpoint_arg) {
        o->custom = 1;
        e = ns_url_parse(&o->ep, o->endpoint_arg);
    } else {
        e = ns_aws_endpoint(&o->ep, "s3", o->region, &o->custom);
    }
    if (e == NS_OK) {
        e = ns_aws_check_scheme(&o->ep, "s3 endpoint");
    }
    if (e != NS_OK) {
        return ns_cli_usage_error("%s", ns_err_msg());
    }
    if (o->via_arg && ns_addr_parse(&o->via, o->via_arg) != NS_OK) {
        return ns_cli_usage_error("bad --via address '%s': %s", o->via_arg, ns_err_msg());
    }
    return NS_EXIT_OK;
}

/* Fills o from the command line; returns 0, or the usage exit code after the error line. */
static int parse_options(s3_options *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"creds", required_argument, NULL, 'c'},    {"region", required_argument, NULL, 'r'},
        {"endpoint", required_argument, NULL, 'e'}, {"ca-bundle", required_argument, NULL, 'a'},
        {"via", required_argument, NULL, 'v'},      {"timeout", required_argument, NULL, 't'},
        {"max-time", required_argument, NULL, 'M'}, {"min-speed", required_argument, NULL, 'B'},
        {"progress", no_argument, NULL, 'p'},       {"no-progress", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->timeout_ms = NS_HTTP_TIMEOUT_MS_DEFAULT;
    o->min_bps = S3_MIN_BPS_DEFAULT;
    o->prog = -1;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "+", opts, NULL)) != -1;) {
        switch (c) {
        case 'c':
            o->creds_path = optarg;
            break;
        case 'r':
            o->region_arg = optarg;
            break;
        case 'e':
            o->endpoint_arg = optarg;
            break;
        case 'a':
            o->bundle = optarg;
            break;
        case 'v':
            o->via_arg = optarg;
            break;
        case 'p':
            o->prog = 1;
            break;
        case 'P':
            o->prog = 0;
            break;
        case 't':
            if (ns_parse_seconds(optarg, &o->timeout_ms) != NS_OK || o->timeout_ms <= 0 ||
                o->timeout_ms > 3600000) {
                return ns_cli_usage_error("invalid --timeout '%s' (seconds)", optarg);
            }
            break;
        case 'M':
            if (ns_parse_seconds(optarg, &o->max_ms) != NS_OK || o->max_ms <= 0 ||
                o->max_ms > 86400000) {
                return ns_cli_usage_error("invalid --max-time '%s' (seconds, at most a day)",
                                          optarg);
            }
            break;
        case 'B':
            if (ns_parse_uint(optarg, 1u << 30, &o->min_bps) != NS_OK) {
                return ns_cli_usage_error("invalid --min-speed '%s' (bytes per second, 0 = none)",
                                          optarg);
            }
            break;
        default:
            return ns_cli_usage_error("unknown option");
        }
    }
    return resolve_target(o, argc, argv);
}

/* Host side without --creds or AWS_ACCESS_KEY_ID: the instance role's credentials from IMDS. */
static ns_err creds_from_imds(ns_creds **creds)
{
    ns_imds m;
    char role[NS_IMDS_ROLE_MAX + 1];
    ns_err_clear();
    ns_err e = ns_imds_init(&m, NULL);
    if (e == NS_OK) {
        e = ns_creds_new(creds);
    }
    if (e == NS_OK) {
        m.attempts = 1;
        e = ns_imds_fetch_creds(&m, NULL, *creds, role, sizeof role);
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "no --creds or AWS_ACCESS_KEY_ID, and IMDS failed");
        }
    }
    return e;
}

/* The trust anchors and the credentials; the caller frees both on every path. */
static ns_err load_trust_and_creds(const s3_options *o, ns_tls_ca **ca, ns_creds **creds)
{
    ns_err e = ns_aws_trust(ca, o->bundle);
    if (e == NS_OK) {
        e = ns_aws_creds(creds, o->creds_path);
        if (e == NS_E_NOT_FOUND && o->creds_path == NULL) {
            e = creds_from_imds(creds);
        }
    }
    return e;
}

static ns_err download(const s3_options *o, ns_tls_ca *ca, ns_creds *creds, ns_s3_result *res)
{
    ns_s3_opts so = {creds,
                     o->region,
                     o->custom ? &o->ep : NULL,
                     o->via_arg ? &o->via : NULL,
                     ca,
                     (int)o->timeout_ms,
                     {0},
                     -1,
                     (int)o->max_ms,
                     (int)o->min_bps};
    ns_retry_default(&so.retry);
    if (o->prog == 1 || (o->prog == -1 && isatty(2) && strcmp(o->outpath, "-") != 0)) {
        so.progress_fd = 2;
    }
    return ns_s3_get(&so, &o->uri, o->outpath, res);
}

int s3_get_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    s3_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc != NS_EXIT_OK) {
        return rc;
    }
    ns_err e = ns_secret_process_init();
    if (e != NS_OK) {
        ns_log_err(e, "process hardening");
        return NS_EXIT_FAIL;
    }
    ns_tls_ca *ca = NULL;
    ns_creds *creds = NULL;
    ns_s3_result res;
    e = load_trust_and_creds(&o, &ca, &creds);
    if (e == NS_OK) {
        e = download(&o, ca, creds, &res);
    }
    ns_creds_free(creds);
    ns_tls_ca_free(ca);
    if (e != NS_OK) {
        ns_log_err(e, "s3-get");
        return NS_EXIT_FAIL;
    }
    ns_info("downloaded s3://%s/%s bytes=%llu checksum=%s resumed=%d region=%s output=%s",
            o.uri.bucket, o.uri.key, (unsigned long long)res.bytes,
            res.checksum[0] ? res.checksum : "none", res.resumed, res.region, o.outpath);
    return NS_EXIT_OK;
}
