/*
 * kms-policy: prints the KMS key policy that lets the instance role decrypt only inside the
 * enclave images given (their PCRs, read by the eif module exactly as `eif describe` prints
 * them), or, with --iam, the instance role's IAM policy. The documents and the reasons for each
 * statement are in src/aws/kmspolicy.h; this file reads the EIFs and the options.
 *
 *   nsign kms-policy --eif FILE [--eif FILE...] --role-arn ARN --admin-arn ARN [--pcr16 HEX...]
 *   nsign kms-policy --debug-mode --role-arn ARN --admin-arn ARN
 *   nsign kms-policy --iam --key-arn ARN (--bucket-uri s3://B[/P] | --age-key-uri U --shares-uri U)
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../applets/applets.h"
#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "eif.h"
#include "iox.h"
#include "kmspolicy.h"
#include "log.h"

#define KP_MAX_EIF_FILE (1ull << 31) /* as `eif describe` */

static void usage(void)
{
    printf(
        "usage: nsign kms-policy --eif FILE [--eif FILE...] --role-arn ARN --admin-arn ARN\n"
        "                        [--pcr16 HEX...] [-o FILE]\n"
        "       nsign kms-policy --debug-mode --role-arn ARN --admin-arn ARN [-o FILE]\n"
        "       nsign kms-policy --iam --key-arn ARN (--bucket-uri s3://BUCKET[/PREFIX] |\n"
        "                        --age-key-uri s3://B/K --shares-uri s3://B/K) [-o FILE]\n"
        "\n"
        "Prints the KMS key policy for an nsign enclave (apply it with `aws kms create-key\n"
        "--policy file://key-policy.json` or `aws kms put-key-policy`), as JSON:\n"
        "  KeyAdministrators            --admin-arn manages the key (describe, policy, enable,\n"
        "                               disable, tags, aliases, rotation, deletion); no decrypt,\n"
        "                               no grants\n"
        "  AdministratorsEncryptInputs  --admin-arn may kms:Encrypt (to wrap the age key)\n"
        "  EnclaveDecrypt               --role-arn may kms:Decrypt only with a Nitro attestation\n"
        "                               whose PCR0, PCR1, PCR2 (StringEqualsIgnoreCase on\n"
        "                               kms:RecipientAttestation:PCRn) are those of an --eif, and\n"
        "                               PCR16 one of --pcr16 when given; PCR0 is the value\n"
        "                               kms:RecipientAttestation:ImageSha384 also matches\n"
        "  EnclaveDecryptSigned         the same for signed EIFs, with their PCR8\n"
        "  InstanceRoleReadsKeyPolicy   --role-arn may DescribeKey/GetKeyPolicy (for\n"
        "                               `run-enclave --preflight`)\n"
        "The PCR values are the ones `nsign eif describe FILE` prints. Several --eif (a rolling\n"
        "upgrade) give lists: any listed image may decrypt.\n"
        "\n"
        "  --eif FILE        an enclave image (repeat: up to %d)\n"
        "  --role-arn ARN    the EC2 instance role (arn:aws:iam::ACCOUNT:role/NAME); repeatable\n"
        "  --admin-arn ARN   a key administrator (IAM role, user or arn:aws:iam::ACCOUNT:root);\n"
        "                    repeatable. Make it the principal that applies the policy, or KMS\n"
        "                    refuses it (policy lockout safety check)\n"
        "  --pcr16 HEX       also require this PCR16 (96 hex digits, `nsign eif pcr16` or\n"
        "                    `run-enclave --dry-run --fetch`): KMS then refuses any other key\n"
        "                    shares, age key or region, so a rolled-back input cannot decrypt;\n"
        "                    every change of those inputs needs a policy update. Repeatable\n"
        "  --debug-mode      a policy for debug-mode enclaves: PCR0-2 all zero, which ANY debug\n"
        "                    enclave reports, whoever built it; never for production keys (a\n"
        "                    warning says so). No --eif with it\n"
        "  --iam             print the instance role's IAM policy instead: s3:GetObject on the\n"
        "                    two objects, kms:Decrypt and DescribeKey/GetKeyPolicy on the key\n"
        "  --key-arn ARN     the KMS key (arn:aws:kms:REGION:ACCOUNT:key/ID; not an alias)\n"
        "  --bucket-uri U    s3://BUCKET[/PREFIX]: the objects PREFIX/age-private.key.enc and\n"
        "                    PREFIX/service_key_shares.json.age\n"
        "  --age-key-uri U   the age key object exactly (run-enclave's AGE_KEY_S3_URI)\n"
        "  --shares-uri U    the key shares object exactly (KEY_SHARES_S3_URI)\n"
        "  -o, --output FILE write FILE atomically (default: stdout)\n"
        "\n"
        "ARNs are checked strictly (partition, service, region, 12-digit account, resource).\n"
        "Exit: 0 ok, 1 failure (an EIF unreadable or not a valid EIF, output not written),\n"
        "2 usage (a missing or malformed option or ARN).\n",
        NS_KMSPOLICY_MAX_IMAGES);
}

typedef struct {
    const char *eifs[NS_KMSPOLICY_MAX_IMAGES];
    size_t n_eifs;
    const char *roles[NS_KMSPOLICY_MAX_PRINCIPALS];
    size_t n_roles;
    const char *admins[NS_KMSPOLICY_MAX_PRINCIPALS];
    size_t n_admins;
    uint8_t pcr16[NS_KMSPOLICY_MAX_PCR16][NS_KMSPOLICY_PCR_LEN];
    size_t n_pcr16;
    int debug, iam;
    const char *key_arn, *bucket_uri, *age_uri, *shares_uri, *out;
} kp_options;

/* Appends v to list (at most max), or returns the usage exit code. */
static int add(const char **list, size_t *n, size_t max, const char *opt, const char *v)
{
    if (*n == max) {
        return ns_cli_usage_error("at most %zu %s", max, opt);
    }
    list[(*n)++] = v;
    return NS_EXIT_OK;
}

static int add_pcr16(kp_options *o, const char *hex)
{
    size_t got = 0;
    if (o->n_pcr16 == NS_KMSPOLICY_MAX_PCR16) {
        return ns_cli_usage_error("at most %d --pcr16", NS_KMSPOLICY_MAX_PCR16);
    }
    if (strlen(hex) != 2 * NS_KMSPOLICY_PCR_LEN ||
        ns_hex_decode(o->pcr16[o->n_pcr16], NS_KMSPOLICY_PCR_LEN, &got, hex, strlen(hex)) !=
            NS_OK ||
        got != NS_KMSPOLICY_PCR_LEN) {
        return ns_cli_usage_error("--pcr16 '%.120s' is not 96 hex digits (a SHA-384 PCR)", hex);
    }
    o->n_pcr16++;
    return NS_EXIT_OK;
}

static int parse_options(kp_options *o, int argc, char **argv)
{
    enum { O_EIF = 256, O_ROLE, O_ADMIN, O_PCR16, O_DEBUG, O_IAM, O_KEY, O_BUCKET, O_AGE, O_SH };
    static const struct option opts[] = {
        {"eif", required_argument, NULL, O_EIF},
        {"role-arn", required_argument, NULL, O_ROLE},
        {"admin-arn", required_argument, NULL, O_ADMIN},
        {"pcr16", required_argument, NULL, O_PCR16},
        {"debug-mode", no_argument, NULL, O_DEBUG},
        {"iam", no_argument, NULL, O_IAM},
        {"key-arn", required_argument, NULL, O_KEY},
        {"bucket-uri", required_argument, NULL, O_BUCKET},
        {"age-key-uri", required_argument, NULL, O_AGE},
        {"shares-uri", required_argument, NULL, O_SH},
        {"output", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->out = "-";
    optind = 1;
    int rc = NS_EXIT_OK;
    for (int c; rc == NS_EXIT_OK && (c = getopt_long(argc, argv, "+o:", opts, NULL)) != -1;) {
        switch (c) {
        case O_EIF:
            rc = add(o->eifs, &o->n_eifs, NS_KMSPOLICY_MAX_IMAGES, "--eif", optarg);
            break;
        case O_ROLE:
            rc = add(o->roles, &o->n_roles, NS_KMSPOLICY_MAX_PRINCIPALS, "--role-arn", optarg);
            break;
        case O_ADMIN:
            rc = add(o->admins, &o->n_admins, NS_KMSPOLICY_MAX_PRINCIPALS, "--admin-arn", optarg);
            break;
        case O_PCR16:
            rc = add_pcr16(o, optarg);
            break;
        case O_DEBUG:
            o->debug = 1;
            break;
        case O_IAM:
            o->iam = 1;
            break;
        case O_KEY:
            o->key_arn = optarg;
            break;
        case O_BUCKET:
            o->bucket_uri = optarg;
            break;
        case O_AGE:
            o->age_uri = optarg;
            break;
        case O_SH:
            o->shares_uri = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        default:
            return ns_cli_usage_error("unknown option");
        }
    }
    if (rc != NS_EXIT_OK) {
        return rc;
    }
    if (optind != argc) {
        return ns_cli_usage_error("unexpected argument '%s' (EIFs are given with --eif)",
                                  argv[optind]);
    }
    return NS_EXIT_OK;
}

/* Which options each mode takes; the usage exit code when the set is wrong. */
static int check_mode(const kp_options *o)
{
    if (o->iam) {
        if (o->n_eifs || o->n_roles || o->n_admins || o->n_pcr16 || o->debug) {
            return ns_cli_usage_error("--iam takes --key-arn and the S3 objects only, not --eif, "
                                      "--role-arn, --admin-arn, --pcr16 or --debug-mode");
        }
        if (o->key_arn == NULL) {
            return ns_cli_usage_error("--iam needs --key-arn ARN (the key the enclave decrypts "
                                      "with)");
        }
        if ((o->bucket_uri != NULL) == (o->age_uri != NULL || o->shares_uri != NULL) ||
            (o->bucket_uri == NULL && (o->age_uri == NULL || o->shares_uri == NULL))) {
            return ns_cli_usage_error("--iam needs either --bucket-uri s3://BUCKET[/PREFIX] or "
                                      "both --age-key-uri and --shares-uri");
        }
        return NS_EXIT_OK;
    }
    if (o->key_arn || o->bucket_uri || o->age_uri || o->shares_uri) {
        return ns_cli_usage_error("--key-arn and the S3 URIs belong to --iam (the key policy "
                                  "names no key or object)");
    }
    if (o->debug && o->n_eifs) {
        return ns_cli_usage_error("--debug-mode admits all-zero PCRs only: give no --eif with it");
    }
    if (!o->debug && o->n_eifs == 0) {
        return ns_cli_usage_error("give the enclave image with --eif FILE (or --iam for the "
                                  "instance role's IAM policy)");
    }
    if (o->n_roles == 0 || o->n_admins == 0) {
        return ns_cli_usage_error("the key policy needs --role-arn (the instance role) and "
                                  "--admin-arn (who administers the key)");
    }
    return NS_EXIT_OK;
}

/* Reads path as an EIF (every rule `eif describe` checks) and keeps its PCRs. */
static ns_err read_image(ns_kmspolicy_image *im, const char *path)
{
    ns_buf f;
    ns_buf_init(&f, KP_MAX_EIF_FILE);
    ns_eif_info info;
    ns_err e = ns_read_path(path, &f);
    if (e == NS_OK) {
        e = ns_eif_parse(&info, f.data, f.len);
    }
    if (e == NS_OK) {
        memset(im, 0, sizeof *im);
        memcpy(im->pcr0, info.pcr0, sizeof im->pcr0);
        memcpy(im->pcr1, info.pcr1, sizeof im->pcr1);
        memcpy(im->pcr2, info.pcr2, sizeof im->pcr2);
        im->is_signed = info.is_signed != 0;
        if (im->is_signed) {
            memcpy(im->pcr8, info.pcr8, sizeof im->pcr8);
        }
        char pcr0[2 * NS_EIF_PCR_LEN + 1];
        if (ns_hex_encode(pcr0, sizeof pcr0, info.pcr0, NS_EIF_PCR_LEN) == NS_OK) {
            ns_info("eif path=%s pcr0=%s signed=%d", path, pcr0, im->is_signed);
        }
    }
    ns_buf_free(&f);
    return e;
}

static ns_err write_doc(const char *path, const ns_buf *doc)
{
    ns_out out;
    GUARD(ns_out_open(&out, path));
    ns_err e = ns_out_write(&out, doc->data, doc->len);
    if (e == NS_OK) {
        e = ns_out_commit(&out);
    }
    if (e != NS_OK) {
        ns_out_abort(&out);
    }
    return e;
}

static int iam_policy(const kp_options *o, ns_buf *doc)
{
    ns_kmspolicy_iam_input in = {.key_arn = o->key_arn};
    ns_err e;
    if (o->bucket_uri != NULL) {
        e = ns_kmspolicy_default_objects(in.objects, o->bucket_uri);
    } else {
        e = ns_s3_uri_parse(&in.objects[0], o->age_uri);
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "--age-key-uri");
        } else if ((e = ns_s3_uri_parse(&in.objects[1], o->shares_uri)) != NS_OK) {
            e = ns_fail_ctx(e, "--shares-uri");
        }
    }
    if (e == NS_OK) {
        e = ns_kmspolicy_iam_policy(doc, &in);
    }
    if (e != NS_OK) {
        return ns_cli_usage_error("%s", ns_err_msg());
    }
    return NS_EXIT_OK;
}

static int key_policy(const kp_options *o, ns_buf *doc)
{
    ns_kmspolicy_image images[NS_KMSPOLICY_MAX_IMAGES];
    ns_kmspolicy_key_input in = {.roles = o->roles,
                                 .n_roles = o->n_roles,
                                 .admins = o->admins,
                                 .n_admins = o->n_admins,
                                 .images = images,
                                 .n_images = o->n_eifs,
                                 .pcr16 = (const uint8_t(*)[NS_KMSPOLICY_PCR_LEN])o->pcr16,
                                 .n_pcr16 = o->n_pcr16,
                                 .debug = o->debug};
    /* Every option is checked before any EIF is read: a typo costs no image read. */
    if (ns_kmspolicy_key_check(&in) != NS_OK) {
        return ns_cli_usage_error("%s", ns_err_msg());
    }
    for (size_t i = 0; i < o->n_eifs; i++) {
        ns_err e = read_image(&images[i], o->eifs[i]);
        if (e != NS_OK) {
            ns_log_err(e, o->eifs[i]);
            return NS_EXIT_FAIL;
        }
    }
    ns_err e = ns_kmspolicy_key_policy(doc, &in);
    if (e != NS_OK) {
        ns_log_err(e, "key policy");
        return NS_EXIT_FAIL;
    }
    if (o->debug) {
        ns_warn("--debug-mode: this policy lets ANY debug-mode enclave decrypt (PCR0-2 all zero, "
                "whoever built the image, with a console the host reads); never apply it to a "
                "key that protects production secrets");
    }
    return NS_EXIT_OK;
}

int kms_policy_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    static kp_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc == NS_EXIT_OK) {
        rc = check_mode(&o);
    }
    if (rc != NS_EXIT_OK) {
        return rc;
    }
    ns_buf doc;
    ns_buf_init(&doc, NS_KMSPOLICY_DOC_MAX);
    rc = o.iam ? iam_policy(&o, &doc) : key_policy(&o, &doc);
    if (rc == NS_EXIT_OK) {
        ns_err e = write_doc(o.out, &doc);
        if (e != NS_OK) {
            ns_log_err(e, o.out);
            rc = NS_EXIT_FAIL;
        }
    }
    ns_buf_free(&doc);
    return rc;
}
