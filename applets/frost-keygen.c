/*
 * frost-keygen: the trusted-dealer key generation of RFC 9591 appendix C (FROST(Ed25519,
 * SHA-512) or FROST(secp256k1, SHA-256)), run offline by an
 * operator. Writes, into DIR, one keys file per participant (only that participant's FROST
 * entry, age-encrypted to that participant's X25519 recipient: recipient i gets identifier i)
 * and the public group file (group public key, every verifying share, T, N, the VSS
 * commitment). A coordinator: options and files here; the arithmetic in src/formats/frost.c,
 * the encryption in src/formats/age.c.
 *
 * Secrets (the polynomial, the shares, each plaintext entry) live only in secret memory and are
 * wiped; nothing secret is written unencrypted. Every file is written atomically (temp file,
 * fsync, rename) with mode 0600, and existing files are never overwritten, so a second run
 * cannot silently replace shares already handed out.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "age.h"
#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "frost.h"
#include "iox.h"
#include "log.h"
#include "secret.h"

#define KG_ALLOW_MAX 64
#define KG_ENTRY_MAX (64u * 1024u)
#define KG_CT_MAX (128u * 1024u)

static void usage(void)
{
    printf("usage: nsign frost-keygen --threshold T --signers N --recipient AGE_RECIPIENT...\n"
           "                          -o DIR [--id KEY_ID] [--allow CLIENT]... [--format F]\n"
           "                          [--ciphersuite frost-ed25519-sha512|frost-secp256k1-sha256]\n"
           "\n"
           "Generates a FROST threshold key (RFC 9591, trusted dealer of\n"
           "appendix C: Shamir shares with a verifiable secret sharing commitment). Any T of\n"
           "the N participants can sign together; fewer learn nothing about the key. Run it\n"
           "offline: the whole key exists in this process's locked memory until it exits.\n"
           "\n"
           "Writes into DIR (created with mode 0700 if missing; existing files are never\n"
           "overwritten):\n"
           "  KEY_ID.I.age        participant I's share, age-encrypted to the I-th --recipient\n"
           "                      (decrypt with `age -d -i KEY` or `nsign age-decrypt`)\n"
           "  KEY_ID.group.json   the public group file: group public key, every participant's\n"
           "                      identifier and verifying share, T, N, the VSS commitment (the\n"
           "                      coordinator's input: `nsign frost-sign`)\n"
           "and prints the group public key (hex) on stdout: for Ed25519 an ordinary Ed25519\n"
           "public key, under which the aggregate is an ordinary RFC 8032 signature.\n"
           "\n"
           "options:\n"
           "  -t, --threshold T       signers needed to sign, 2..N\n"
           "  -n, --signers N         participants, T..%d\n"
           "  -r, --recipient R       an age X25519 recipient (age1...), exactly N of them, in\n"
           "                          identifier order: the first gets identifier 1\n"
           "  -o, --output-dir DIR    where the files go\n"
           "      --id KEY_ID         the key's id in the keys file (default \"frost\"; 1-64 of\n"
           "                          A-Z a-z 0-9 . _ -)\n"
           "      --allow CLIENT      a client id for the entry's \"allow\" list (repeatable;\n"
           "                          implies --format entry)\n"
           "      --ciphersuite S     frost-ed25519-sha512 (default; RFC 9591 section 6.1) or\n"
           "                          frost-secp256k1-sha256 (section 6.5: 33-byte points)\n"
           "      --format F          keys (default): each plaintext is a whole version 1 keys\n"
           "                          file that sign-service loads as is; entry: the entry object\n"
           "                          alone, to merge into an existing keys file (version 2 with\n"
           "                          --allow)\n"
           "  -h, --help              this help\n"
           "\n"
           "exit codes: 0 all files written; 1 failure (nothing is left half-written: files\n"
           "already renamed into place stay, the error names the one that failed); 2 usage.\n",
           NS_FROST_SIGNERS_MAX);
}

typedef struct {
    unsigned t, n;
    const char *recipients[NS_FROST_SIGNERS_MAX];
    size_t nrec;
    const char *dir;
    const char *id;
    const char *allow[KG_ALLOW_MAX];
    size_t nallow;
    int entry_only;
    ns_frost_suite suite;
} kg_options;

static int id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NS_FROST_ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

static int parse_options(kg_options *o, int argc, char **argv)
{
    enum { O_ID = 256, O_ALLOW, O_FORMAT, O_SUITE };
    static const struct option opts[] = {{"threshold", required_argument, NULL, 't'},
                                         {"signers", required_argument, NULL, 'n'},
                                         {"recipient", required_argument, NULL, 'r'},
                                         {"output-dir", required_argument, NULL, 'o'},
                                         {"id", required_argument, NULL, O_ID},
                                         {"allow", required_argument, NULL, O_ALLOW},
                                         {"format", required_argument, NULL, O_FORMAT},
                                         {"ciphersuite", required_argument, NULL, O_SUITE},
                                         {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->id = "frost";
    o->suite = NS_FROST_ED25519_SHA512;
    const char *format = NULL;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "t:n:r:o:", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (ns_parse_uint(optarg, NS_FROST_SIGNERS_MAX, &v) != NS_OK) {
                return ns_cli_usage_error("--threshold must be an integer 2..%d",
                                          NS_FROST_SIGNERS_MAX);
            }
            o->t = (unsigned)v;
            break;
        case 'n':
            if (ns_parse_uint(optarg, NS_FROST_SIGNERS_MAX, &v) != NS_OK) {
                return ns_cli_usage_error("--signers must be an integer 2..%d",
                                          NS_FROST_SIGNERS_MAX);
            }
            o->n = (unsigned)v;
            break;
        case 'r':
            if (o->nrec == NS_FROST_SIGNERS_MAX) {
                return ns_cli_usage_error("more than %d --recipient options", NS_FROST_SIGNERS_MAX);
            }
            o->recipients[o->nrec++] = optarg;
            break;
        case 'o':
            o->dir = optarg;
            break;
        case O_ID:
            o->id = optarg;
            break;
        case O_ALLOW:
            if (o->nallow == KG_ALLOW_MAX) {
                return ns_cli_usage_error("more than %d --allow options", KG_ALLOW_MAX);
            }
            if (!id_ok(optarg)) {
                return ns_cli_usage_error("--allow %.64s: a client id is 1-64 characters of "
                                          "A-Z a-z 0-9 . _ -",
                                          optarg);
            }
            o->allow[o->nallow++] = optarg;
            break;
        case O_FORMAT:
            format = optarg;
            break;
        case O_SUITE:
            if (ns_frost_suite_parse(optarg, &o->suite) != NS_OK) {
                return ns_cli_usage_error("--ciphersuite must be frost-ed25519-sha512 or "
                                          "frost-secp256k1-sha256");
            }
            break;
        default:
            return ns_cli_usage_error("invalid option");
        }
    }
    if (optind < argc) {
        return ns_cli_usage_error("unexpected argument \"%.64s\"", argv[optind]);
    }
    if (o->t == 0 || o->n == 0 || o->dir == NULL) {
        return ns_cli_usage_error("--threshold, --signers and -o DIR are required");
    }
    if (o->t < 2) {
        return ns_cli_usage_error("--threshold %u: at least 2 (a 1-of-N key is a plain key "
                                  "copied N times)",
                                  o->t);
    }
    if (o->t > o->n) {
        return ns_cli_usage_error("--threshold %u exceeds --signers %u", o->t, o->n);
    }
    if (o->nrec != o->n) {
        return ns_cli_usage_error("%zu --recipient options for %u signers: give exactly one "
                                  "per participant, in identifier order",
                                  o->nrec, o->n);
    }
    if (!id_ok(o->id)) {
        return ns_cli_usage_error("--id: 1-64 characters of A-Z a-z 0-9 . _ -");
    }
    if (format == NULL) {
        o->entry_only = o->nallow > 0;
    } else if (strcmp(format, "entry") == 0) {
        o->entry_only = 1;
    } else if (strcmp(format, "keys") == 0) {
        if (o->nallow > 0) {
            return ns_cli_usage_error("--allow needs --format entry: a version 2 keys file "
                                      "names its clients; merge the entry into yours");
        }
    } else {
        return ns_cli_usage_error("--format must be keys or entry");
    }
    for (size_t i = 0; i < o->nrec; i++) {
        uint8_t pk[32];
        if (ns_age_parse_x25519_recipient(pk, o->recipients[i], strlen(o->recipients[i])) !=
            NS_OK) {
            return ns_cli_usage_error("--recipient %.80s: %s", o->recipients[i], ns_err_msg());
        }
    }
    return NS_EXIT_OK;
}

static ns_err hex_member(ns_buf *b, const char *name, const uint8_t *p, size_t n)
{
    char hex[2 * NS_FROST_ELEMENT_MAX + 1];
    ns_err e = ns_hex_encode(hex, sizeof hex, p, n);
    if (e == NS_OK) {
        e = ns_buf_printf(b, "\"%s\":\"%s\"", name, hex);
    }
    ns_wipe(hex, sizeof hex);
    return e;
}

/* Participant i's entry (or whole keys file), into the secret buffer b. */
static ns_err entry_json(ns_buf *b, const kg_options *o, const ns_frost_group *g, unsigned i,
                         const uint8_t *share)
{
    size_t el = ns_frost_element_len(g->suite);
    if (!o->entry_only) {
        GUARD(ns_buf_append_str(b, "{\"version\":1,\"keys\":["));
    }
    GUARD(ns_buf_printf(b, "{\"id\":\"%s\",\"algorithm\":\"%s\",\"identifier\":%u,", o->id,
                        ns_frost_suite_name(g->suite), i));
    GUARD(hex_member(b, "signing_share", share, NS_FROST_SCALAR_LEN));
    GUARD(ns_buf_append_u8(b, ','));
    GUARD(hex_member(b, "group_public_key", g->group_public_key, el));
    GUARD(ns_buf_append_str(b, ",\"verifying_shares\":{"));
    for (unsigned j = 1; j <= g->max_signers; j++) {
        char name[8];
        snprintf(name, sizeof name, "%u", j);
        GUARD(ns_buf_append_str(b, j > 1 ? "," : ""));
        GUARD(hex_member(b, name, g->verifying_shares[j - 1], el));
    }
    GUARD(ns_buf_printf(b, "},\"min_signers\":%u,\"max_signers\":%u", g->min_signers,
                        g->max_signers));
    if (o->nallow > 0) {
        GUARD(ns_buf_append_str(b, ",\"allow\":["));
        for (size_t k = 0; k < o->nallow; k++) {
            GUARD(ns_buf_printf(b, "%s\"%s\"", k ? "," : "", o->allow[k]));
        }
        GUARD(ns_buf_append_u8(b, ']'));
    }
    GUARD(ns_buf_append_u8(b, '}'));
    if (!o->entry_only) {
        GUARD(ns_buf_append_str(b, "]}"));
    }
    return ns_buf_append_u8(b, '\n');
}

/* Writes data to path atomically (mode 0600), refusing to replace an existing file. */
static ns_err write_new(const char *path, const uint8_t *p, size_t n)
{
    struct stat st;
    ENSURE(lstat(path, &st) != 0 && errno == ENOENT, NS_E_USAGE,
           "%s already exists: remove it or choose another -o / --id (shares are never "
           "overwritten)",
           path);
    ns_out out;
    GUARD(ns_out_open(&out, path));
    ns_err e = ns_out_write(&out, p, n);
    if (e == NS_OK) {
        e = ns_out_commit(&out);
    }
    if (e != NS_OK) {
        ns_out_abort(&out);
        return ns_fail_ctx(e, "writing %s", path);
    }
    return NS_OK;
}

static int keygen(const kg_options *o)
{
    size_t el = ns_frost_element_len(o->suite);
    char path[4096];
    uint8_t *shares = ns_secret_alloc((size_t)o->n * NS_FROST_SCALAR_LEN);
    uint8_t *vss = malloc((size_t)o->t * el);
    ns_frost_group g = {0};
    ns_buf plain, ct, pub;
    ns_buf_init_secret(&plain, KG_ENTRY_MAX);
    ns_buf_init(&ct, KG_CT_MAX);
    ns_buf_init(&pub, NS_FROST_GROUP_FILE_MAX);
    int rc = NS_EXIT_FAIL;
    ns_err e = NS_OK;
    if (shares == NULL || vss == NULL) {
        ns_log_err(ns_fail(NS_E_NOMEM, "cannot allocate locked memory (check RLIMIT_MEMLOCK)"),
                   "keygen");
        goto out;
    }
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
        ns_log_err(ns_fail_errno(NS_E_IO, "creating %s", o->dir), "output");
        goto out;
    }
    e = ns_frost_keygen(o->suite, o->t, o->n, shares, &g, vss);
    if (e != NS_OK) {
        ns_log_err(e, "keygen");
        goto out;
    }
    /* refuse before writing anything when any target exists */
    for (unsigned i = 0; i <= o->n; i++) {
        struct stat st;
        if (i == 0) {
            snprintf(path, sizeof path, "%s/%s.group.json", o->dir, o->id);
        } else {
            snprintf(path, sizeof path, "%s/%s.%u.age", o->dir, o->id, i);
        }
        if (lstat(path, &st) == 0) {
            ns_log_err(ns_fail(NS_E_USAGE,
                               "%s already exists: remove it or choose another -o / --id "
                               "(shares are never overwritten)",
                               path),
                       "output");
            goto out;
        }
    }
    for (unsigned i = 1; i <= o->n; i++) {
        ns_buf_reset(&plain);
        ns_buf_reset(&ct);
        e = entry_json(&plain, o, &g, i, shares + (size_t)(i - 1) * NS_FROST_SCALAR_LEN);
        if (e == NS_OK) {
            e = ns_age_encrypt_mem(&ct, plain.data, plain.len, &o->recipients[i - 1], 1);
        }
        snprintf(path, sizeof path, "%s/%s.%u.age", o->dir, o->id, i);
        if (e == NS_OK) {
            e = write_new(path, ct.data, ct.len);
        }
        if (e != NS_OK) {
            ns_log_err(e, path);
            goto out;
        }
    }
    snprintf(path, sizeof path, "%s/%s.group.json", o->dir, o->id);
    e = ns_frost_group_file_write(&g, o->id, vss, &pub);
    if (e == NS_OK) {
        e = write_new(path, pub.data, pub.len);
    }
    if (e != NS_OK) {
        ns_log_err(e, path);
        goto out;
    }
    char hex[2 * NS_FROST_ELEMENT_MAX + 1];
    if (ns_hex_encode(hex, sizeof hex, g.group_public_key, el) == NS_OK) {
        printf("%s\n", hex);
    }
    ns_info("generated %u-of-%u key \"%s\": %u encrypted shares and %s.group.json in %s", o->t,
            o->n, o->id, o->n, o->id, o->dir);
    rc = fflush(stdout) == 0 ? NS_EXIT_OK : NS_EXIT_FAIL;
out:
    if (shares) {
        ns_secret_free(shares, (size_t)o->n * NS_FROST_SCALAR_LEN);
    }
    free(vss);
    ns_frost_group_free(&g);
    ns_buf_free(&plain);
    ns_buf_free(&ct);
    ns_buf_free(&pub);
    return rc;
}

int frost_keygen_main(int argc, char **argv)
{
    int code = NS_EXIT_OK;
    if (ns_cli_start_hardened(argc, argv, usage, &code)) {
        return code;
    }
    static kg_options o; /* NS_FROST_SIGNERS_MAX recipient pointers: not on the stack */
    int rc = parse_options(&o, argc, argv);
    if (rc != NS_EXIT_OK) {
        return rc;
    }
    return keygen(&o);
}
