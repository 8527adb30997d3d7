/*
 * fetch-creds: temporary AWS credentials of the instance's IAM role from IMDSv2, printed as the
 * seed's JSON document (or shell exports), replacing the curl-to-IMDS step of the host scripts.
 * Output to a file is atomic and 0600; the credentials stay in locked memory and are wiped.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../applets/applets.h"
#include "buf.h"
#include "cli.h"
#include "creds.h"
#include "imds.h"
#include "iox.h"
#include "log.h"
#include "secret.h"

static void usage(void)
{
    printf("usage: nsign fetch-creds [--role NAME] [--format json|env] [-o FILE]\n"
           "                         [--endpoint URL] [--timeout S]\n"
           "\n"
           "Gets the instance role's temporary credentials from IMDSv2 (PUT a session token,\n"
           "GET the role name, GET the role's credentials) and prints\n"
           "  {\"AccessKeyId\":..,\"SecretAccessKey\":..,\"Token\":..,\"Expiration\":..}\n"
           "\n"
           "  --role NAME        skip role discovery\n"
           "  --format json|env  JSON (default) or 'export AWS_...=' lines for a shell\n"
           "  -o, --output FILE  write FILE atomically with mode 0600 (default: stdout)\n"
           "  --endpoint URL     IMDS address (default AWS_EC2_METADATA_SERVICE_ENDPOINT,\n"
           "                     else http://169.254.169.254)\n"
           "  --timeout S        per-request timeout in seconds (default 2)\n"
           "\n"
           "Environment: AWS_EC2_METADATA_DISABLED=true refuses to contact IMDS.\n"
           "Exit: 0 ok, 1 failure (no role, IMDS unreachable or IMDSv1-only, bad document,\n"
           "expired credentials), 2 usage.\n");
}

int fetch_creds_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"role", required_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"endpoint", required_argument, NULL, 'e'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *role = NULL, *out_path = "-", *endpoint = NULL;
    int env_format = 0;
    int64_t timeout_ms = -1;
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "+o:", opts, NULL)) != -1;) {
        switch (c) {
        case 'r':
            role = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "json") == 0) {
                env_format = 0;
            } else if (strcmp(optarg, "env") == 0) {
                env_format = 1;
            } else {
                return ns_cli_usage_error("--format must be json or env, not '%s'", optarg);
            }
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'e':
            endpoint = optarg;
            break;
        case 't':
            if (ns_parse_seconds(optarg, &timeout_ms) != NS_OK || timeout_ms <= 0 ||
                timeout_ms > 600000) {
                return ns_cli_usage_error("invalid --timeout '%s' (seconds, up to 600)", optarg);
            }
            break;
        default:
            return ns_cli_usage_error("unknown option");
        }
    }
    if (optind != argc) {
        return ns_cli_usage_error("unexpected argument '%s'", argv[optind]);
    }
    ns_err e = ns_secret_process_init();
    if (e != NS_OK) {
        ns_log_err(e, "process hardening");
        return NS_EXIT_FAIL;
    }
    ns_imds m;
    e = ns_imds_init(&m, endpoint);
    if (e != NS_OK) {
        ns_log_err(e, "imds");
        return e == NS_E_USAGE ? NS_EXIT_USAGE : NS_EXIT_FAIL;
    }
    if (timeout_ms > 0) {
        m.timeout_ms = (int)timeout_ms;
    }
    ns_creds *c = NULL;
    ns_buf doc;
    ns_buf_init_secret(&doc, NS_CREDS_JSON_MAX);
    ns_out out = {.fd = -1};
    char got_role[NS_IMDS_ROLE_MAX + 1] = "";
    e = ns_creds_new(&c);
    if (e == NS_OK) {
        e = ns_imds_fetch_creds(&m, role, c, got_role, sizeof got_role);
    }
    if (e == NS_OK) {
        e = env_format ? ns_creds_to_env(c, &doc) : ns_creds_to_json(c, &doc);
    }
    if (e == NS_OK) {
        e = ns_out_open(&out, out_path);
        if (e == NS_OK) {
            e = ns_out_write(&out, doc.data, doc.len);
        }
        if (e == NS_OK) {
            e = ns_out_commit(&out);
        }
        if (e != NS_OK) {
            ns_out_abort(&out);
        }
    }
    if (e == NS_OK) {
        ns_info("credentials fetched role=%s expiration=%s output=%s", got_role,
                c->expiration[0] ? c->expiration : "-", out_path);
    }
    ns_buf_free(&doc);
    ns_creds_free(c);
    if (e != NS_OK) {
        ns_log_err(e, "fetch-creds");
        return NS_EXIT_FAIL;
    }
    return NS_EXIT_OK;
}
