/*
 * kms-decrypt: KMS Decrypt of one ciphertext blob, with Nitro attestation inside an enclave.
 *
 * Replaces kmstool-enclave-cli: credentials come from --creds FILE|- or the AWS_* environment
 * (never argv), the TLS session to KMS runs end to end through --proxy (vsock:3:5000 in the
 * enclave), and with attestation KMS returns the plaintext encrypted to an ephemeral RSA key
 * bound into the NSM's attestation document, so the proxy and the host never see it.
 * The plaintext is held in locked memory and written once, to stdout or atomically to -o FILE.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../applets/applets.h"
#include "addr.h"
#include "aws.h"
#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "creds.h"
#include "imds.h"
#include "iox.h"
#include "kms.h"
#include "log.h"
#include "secret.h"
#include "nsm.h"

#define KMSD_INPUT_MAX (16 * 1024) /* ciphertext file (binary blob or base64 text) */
#define KMSD_GRANTS_TEXT_MAX (64 * 1024) /* --grant-token-file and KMS_GRANT_TOKENS together */

/* Grant tokens from --grant-token-file and KMS_GRANT_TOKENS (kept out of argv, which any user
 * can read): one per line or comma-separated, into secret memory; appended to grants. */
static ns_err read_grant_tokens(ns_buf *text, const char *path, const char **grants, size_t *n)
{
    if (path != NULL) {
        ns_err e = ns_read_path(path, text);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "reading --grant-token-file %s", path);
        }
        GUARD(ns_buf_append_u8(text, '\n'));
    }
    const char *env = getenv("KMS_GRANT_TOKENS");
    if (env != NULL) {
        GUARD(ns_buf_append_str(text, env));
    }
    GUARD(ns_buf_cstr(text));
    char *p = (char *)text->data;
    for (size_t i = 0; i < text->len; i++) {
        char c = p[i];
        ENSURE(c != 0, NS_E_PARSE, "grant tokens: a NUL byte in the token text");
        if (c == '\n' || c == '\r' || c == ',' || c == ' ' || c == '\t') {
            p[i] = 0;
        }
    }
    for (size_t i = 0; i < text->len; i++) {
        if (p[i] != 0 && (i == 0 || p[i - 1] == 0)) {
            ENSURE(*n < NS_KMS_GRANTS_MAX, NS_E_USAGE,
                   "more than %d grant tokens (--grant-token, --grant-token-file and "
                   "KMS_GRANT_TOKENS together)",
                   NS_KMS_GRANTS_MAX);
            grants[(*n)++] = p + i;
        }
    }
    return NS_OK;
}

static void usage(void)
{
    printf("usage: nsign kms-decrypt [options] [CIPHERTEXT_FILE|-]\n"
           "\n"
           "Decrypts a KMS ciphertext blob (binary, or base64 with --base64) read from\n"
           "CIPHERTEXT_FILE or standard input (default) and writes the plaintext to standard\n"
           "output or -o FILE (0600, atomic). Inside a Nitro Enclave (when /dev/nsm exists or\n"
           "NSM_DEVICE is set) it attests by default: an ephemeral RSA-2048 key is bound into\n"
           "an NSM attestation document, KMS answers with CiphertextForRecipient (CMS) for that\n"
           "key, and the plaintext is decrypted inside the enclave.\n"
           "\n"
           "  --proxy ADDRESS              reach KMS through this address (e.g. vsock:3:5000);\n"
           "                               TLS still runs end to end (default: direct)\n"
           "  --key-id ID                  key ID/ARN/alias the ciphertext must be under\n"
           "  --encryption-context K=V     encryption context pair (repeatable)\n"
           "  --grant-token TOKEN          grant token (repeatable, at most 10 in all). Any\n"
           "                               user can read argv (ps, /proc/PID/cmdline): prefer\n"
           "  --grant-token-file FILE|fd:N grant tokens, one per line (or comma-separated)\n"
           "                               or the environment variable KMS_GRANT_TOKENS (the\n"
           "                               same format); all three sources add up\n"
           "  --attest | --no-attest       force attestation on or off (default: on when an\n"
           "                               NSM is present)\n"
           "  --region REGION              default AWS_REGION, AWS_DEFAULT_REGION, us-east-1\n"
           "  --endpoint URL               default AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL,\n"
           "                               https://kms.REGION.amazonaws.com\n"
           "  --ca-bundle FILE             trust these roots (default AWS_CA_BUNDLE, else the\n"
           "                               embedded Amazon roots)\n"
           "  --creds FILE|-               credentials JSON {AccessKeyId, SecretAccessKey,\n"
           "                               Token, Expiration} (default: AWS_ACCESS_KEY_ID,\n"
           "                               AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; outside an\n"
           "                               enclave then IMDS)\n"
           "  --base64                     the input is base64 text (whitespace ignored)\n"
           "  -o, --output FILE            write the plaintext here instead of stdout\n"
           "\n"
           "Environment: NSM_DEVICE=unix:PATH uses a software NSM (tests).\n"
           "Exit: 0 decrypted, 1 failure (the message says what KMS refused and what to\n"
           "check), 2 usage.\n");
}

static ns_err read_ciphertext(const char *path, int b64, ns_buf *ct)
{
    ns_buf raw;
    ns_err rc;
    ns_buf_init(&raw, KMSD_INPUT_MAX);
    rc = ns_read_path(path, &raw);
    if (rc != NS_OK) {
        ns_buf_free(&raw);
        return ns_fail_ctx(rc, "ciphertext %s", path);
    }
    if (!b64) {
        rc = ns_buf_append(ct, raw.data, raw.len);
    } else {
        size_t j = 0, n = 0;
        for (size_t i = 0; i < raw.len; i++) {
            uint8_t ch = raw.data[i];
            if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
                raw.data[j++] = ch;
            }
        }
        rc = ns_buf_reserve(ct, ns_b64_dec_max(j));
        if (rc == NS_OK) {
            rc = ns_b64_decode(ct->data, ns_b64_dec_max(j), &n, (const char *)raw.data, j, 0);
            if (rc != NS_OK) {
                rc = ns_fail(NS_E_PARSE, "ciphertext %s is not base64", path);
            }
            ct->len = n;
        }
    }
    ns_buf_free(&raw);
    return rc;
}

static ns_err get_creds(ns_creds **c, const char *path)
{
    ns_err rc = ns_aws_creds(c, path);
    if (rc != NS_E_NOT_FOUND) {
        return rc;
    }
    if (ns_nsm_available()) {
        BAIL(NS_E_NOT_FOUND,
             "no AWS credentials: pass --creds FILE|- or set AWS_ACCESS_KEY_ID, "
             "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (an enclave has no IMDS)");
    }
    ns_imds m;
    GUARD(ns_imds_init(&m, NULL));
    GUARD(ns_creds_new(c));
    rc = ns_imds_fetch_creds(&m, NULL, *c, NULL, 0);
    if (rc != NS_OK) {
        ns_creds_free(*c);
        *c = NULL;
        return ns_fail_ctx(rc, "no --creds or AWS_* credentials, and IMDS");
    }
    return NS_OK;
}

typedef struct {
    ns_kms_decrypt_req req; /* points into the arrays and proxy below */
    const char *context[NS_KMS_CONTEXT_MAX];
    const char *grants[NS_KMS_GRANTS_MAX];
    ns_addr proxy;
    const char *creds_path;
    const char *output;
    const char *input;
    const char *proxy_s;
    const char *grant_file;
    int attest; /* --attest 1, --no-attest 0, neither -1 (attest when an NSM is present) */
    int b64;
} kmsd_options;

/* The operand and the checks across options; completes o->req. */
static int check_operands(kmsd_options *o, int argc, char **argv)
{
    if (argc - optind > 1) {
        return ns_cli_usage_error("at most one CIPHERTEXT_FILE");
    }
    if (optind < argc) {
        o->input = argv[optind];
    }
    if (o->creds_path != NULL && strcmp(o->creds_path, "-") == 0 && strcmp(o->input, "-") == 0) {
        return ns_cli_usage_error("--creds - and the ciphertext cannot both come from stdin");
    }
    if (o->proxy_s != NULL) {
        if (ns_addr_parse(&o->proxy, o->proxy_s) != NS_OK) {
            return ns_cli_usage_error("invalid --proxy '%s': %s", o->proxy_s, ns_err_msg());
        }
        o->req.proxy = &o->proxy;
    }
    o->req.context_kv = o->context;
    o->req.grant_tokens = o->grants;
    o->req.attest = o->attest >= 0 ? o->attest : ns_nsm_available();
    return NS_EXIT_OK;
}

/* Fills o from the command line; returns 0, or the usage exit code after the error line. */
static int parse_options(kmsd_options *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"proxy", required_argument, NULL, 'p'},
        {"key-id", required_argument, NULL, 'k'},
        {"encryption-context", required_argument, NULL, 'e'},
        {"grant-token", required_argument, NULL, 'g'},
        {"grant-token-file", required_argument, NULL, 'G'},
        {"attest", no_argument, NULL, 'A'},
        {"no-attest", no_argument, NULL, 'N'},
        {"region", required_argument, NULL, 'r'},
        {"endpoint", required_argument, NULL, 'E'},
        {"ca-bundle", required_argument, NULL, 'c'},
        {"creds", required_argument, NULL, 'C'},
        {"base64", no_argument, NULL, 'b'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->output = "-";
    o->input = "-";
    o->attest = -1;
    ns_kms_decrypt_req *req = &o->req;
    optind = 1;
    for (int ch; (ch = getopt_long(argc, argv, "+o:", opts, NULL)) != -1;) {
        switch (ch) {
        case 'p':
            o->proxy_s = optarg;
            break;
        case 'k':
            req->key_id = optarg;
            break;
        case 'e':
            if (req->ncontext == NS_KMS_CONTEXT_MAX) {
                return ns_cli_usage_error("more than %d --encryption-context pairs",
                                          NS_KMS_CONTEXT_MAX);
            }
            if (strchr(optarg, '=') == NULL || optarg[0] == '=') {
                return ns_cli_usage_error("--encryption-context '%s' is not KEY=VALUE", optarg);
            }
            o->context[req->ncontext++] = optarg;
            break;
        case 'g':
            if (req->ngrant == NS_KMS_GRANTS_MAX) {
                return ns_cli_usage_error("more than %d --grant-token", NS_KMS_GRANTS_MAX);
            }
            o->grants[req->ngrant++] = optarg;
            break;
        case 'G':
            o->grant_file = optarg;
            break;
        case 'A':
            o->attest = 1;
            break;
        case 'N':
            o->attest = 0;
            break;
        case 'r':
            req->region = optarg;
            break;
        case 'E':
            req->endpoint = optarg;
            break;
        case 'c':
            req->ca_bundle = optarg;
            break;
        case 'C':
            o->creds_path = optarg;
            break;
        case 'b':
            o->b64 = 1;
            break;
        case 'o':
            o->output = optarg;
            break;
        default:
            return ns_cli_usage_error("unknown option");
        }
    }
    return check_operands(o, argc, argv);
}

/* The grant tokens (secret gt), the ciphertext and the credentials; *what names the step that
 * failed. The caller frees all three on every path. */
static ns_err load_inputs(kmsd_options *o, ns_buf *gt, ns_buf *ct, ns_creds **creds,
                          const char **what)
{
    *what = "grant tokens";
    GUARD(read_grant_tokens(gt, o->grant_file, o->grants, &o->req.ngrant));
    *what = "read ciphertext";
    GUARD(read_ciphertext(o->input, o->b64, ct));
    *what = "credentials";
    return get_creds(creds, o->creds_path);
}

/* Writes the plaintext once, to stdout or atomically to the file; a failure leaves no file. */
static ns_err write_plaintext(const char *output, const ns_buf *pt)
{
    ns_out out;
    GUARD(ns_out_open(&out, output));
    ns_err rc = ns_out_write(&out, pt->data, pt->len);
    if (rc == NS_OK) {
        rc = ns_out_commit(&out);
    }
    if (rc != NS_OK) {
        ns_out_abort(&out);
    }
    return rc;
}

int kms_decrypt_main(int argc, char **argv)
{
    int start;
    if (ns_cli_start_hardened(argc, argv, usage, &start)) {
        return start;
    }
    kmsd_options o;
    int code = parse_options(&o, argc, argv);
    if (code != NS_EXIT_OK) {
        return code;
    }
    ns_buf ct, pt, gt;
    ns_creds *creds = NULL;
    const char *what;
    ns_buf_init(&ct, KMSD_INPUT_MAX);
    ns_buf_init_secret(&pt, NS_KMS_PLAINTEXT_MAX * 2);
    ns_buf_init_secret(&gt, KMSD_GRANTS_TEXT_MAX);
    ns_err rc = load_inputs(&o, &gt, &ct, &creds, &what);
    if (rc == NS_OK) {
        what = "decrypt";
        ns_info("decrypting bytes=%zu attest=%d proxy=%s", ct.len, o.req.attest,
                o.proxy_s != NULL ? o.proxy_s : "none");
        rc = ns_kms_decrypt(&pt, &o.req, creds, ct.data, ct.len);
    }
    ns_creds_free(creds);
    if (rc == NS_OK) {
        what = "write plaintext";
        rc = write_plaintext(o.output, &pt);
    }
    if (rc == NS_OK) {
        ns_info("decrypted bytes=%zu", pt.len);
    } else {
        ns_log_err(rc, what);
    }
    ns_buf_free(&pt);
    ns_buf_free(&ct);
    ns_buf_free(&gt);
    return rc == NS_OK ? NS_EXIT_OK : NS_EXIT_FAIL;
}
