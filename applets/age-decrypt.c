/*
 * age-decrypt: decrypts an age v1 file (X25519 identities or a scrypt passphrase, binary or
 * ASCII-armored) like `age -d`. A coordinator: options, identity files, passphrase source and
 * output here; the format and the crypto in src/formats/age.c.
 *
 * Output safety: plaintext is released chunk by chunk only after each chunk authenticated; to a
 * file (-o) it goes to a temp file that is renamed into place only when the whole stream
 * verified, so a failure leaves nothing; to stdout a failure exits 1 after what was already
 * written. The passphrase comes from --passphrase-file or a no-echo prompt on /dev/tty, never
 * from argv.
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "age.h"
#include "buf.h"
#include "cli.h"
#include "iox.h"
#include "log.h"
#include "secret.h"

#define AGE_ID_FILE_MAX (1024u * 1024u) /* all identity files together */
#define AGE_MAX_ID_FILES 16u
#define AGE_PASS_FILE_MAX 4096u

static void usage(void)
{
    printf("usage: nsign age-decrypt [-d] -i IDENTITY_FILE [-i ...] [-o OUTFILE] [INPUT|-]\n"
           "       nsign age-decrypt [-d] [--passphrase-file FILE] [-o OUTFILE] [INPUT|-]\n"
           "\n"
           "Decrypts an age v1 file (https://c2sp.org/age) to OUTFILE or standard output.\n"
           "Binary and ASCII-armored input are detected automatically. Recipients: X25519\n"
           "(identity files) and scrypt (passphrase). Post-quantum mlkem768x25519 and plugin\n"
           "recipients are not supported.\n"
           "\n"
           "options:\n"
           "  -i, --identity FILE     identity file: AGE-SECRET-KEY-1... lines, '#' comments and\n"
           "                          blank lines; repeatable (up to %u files)\n"
           "  -o, --output FILE       write the plaintext to FILE, atomically: a temp file next\n"
           "                          to it, renamed only after the whole file authenticated\n"
           "                          (default: standard output)\n"
           "      --passphrase-file FILE\n"
           "                          passphrase for scrypt files: the first line of FILE (a\n"
           "                          trailing newline is dropped). Without it the passphrase\n"
           "                          is asked on /dev/tty, without echo, when a scrypt file\n"
           "                          needs it\n"
           "      --max-work-factor N largest scrypt work factor (log2 N) accepted, default %u,\n"
           "                          at most %u; each step doubles time and memory\n"
           "  -d, --decrypt           accepted for compatibility with `age -d`\n"
           "  -h, --help              this help\n"
           "\n"
           "INPUT defaults to standard input ('-').\n"
           "\n"
           "exit codes: 0 decrypted and fully authenticated; 1 failure (the error line says which\n"
           "stage: identities, armor, header, no match, header MAC, payload, output); 2 usage.\n"
           "With standard output, chunks that authenticated before a failure were already\n"
           "written: treat the output as garbage unless the exit code is 0.\n",
           AGE_MAX_ID_FILES, NS_AGE_SCRYPT_MAX_LOG2N, NS_AGE_SCRYPT_HARD_LOG2N);
}

typedef struct {
    const char *file; /* --passphrase-file, or NULL for the TTY */
} pass_src;

/* Drops one trailing "\n" or "\r\n". */
static void chomp(ns_buf *b)
{
    if (b->len > 0 && b->data[b->len - 1] == '\n') {
        b->len--;
        if (b->len > 0 && b->data[b->len - 1] == '\r') {
            b->len--;
        }
    }
}

static ns_err pass_from_tty(ns_buf *pass)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return ns_fail_errno(NS_E_USAGE,
                             "the file is passphrase-encrypted and there is no terminal to ask "
                             "on: use --passphrase-file");
    }
    struct termios old, noecho;
    int restore = 0;
    if (tcgetattr(fd, &old) == 0) {
        noecho = old;
        noecho.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
        noecho.c_lflag |= ICANON;
        restore = tcsetattr(fd, TCSAFLUSH, &noecho) == 0;
    }
    static const char prompt[] = "Enter passphrase: ";
    ns_err e = ns_write_all(fd, prompt, sizeof prompt - 1);
    for (; e == NS_OK;) {
        uint8_t c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0) {
            e = ns_fail_errno(NS_E_IO, "reading the passphrase from /dev/tty");
            break;
        }
        if (r == 0 || c == '\n') {
            break;
        }
        if (c == '\r') {
            continue;
        }
        e = ns_buf_append_u8(pass, c);
        c = 0;
    }
    if (restore) {
        (void)tcsetattr(fd, TCSAFLUSH, &old);
    }
    if (ns_write_all(fd, "\n", 1) != NS_OK) {
        /* only cosmetic: the newline the user typed was not echoed */
    }
    close(fd);
    if (e == NS_OK && pass->len == 0) {
        e = ns_fail(NS_E_USAGE, "empty passphrase");
    }
    if (e != NS_OK) {
        ns_buf_reset(pass);
    }
    return e;
}

static ns_err get_passphrase(void *ctx, ns_buf *pass)
{
    const pass_src *ps = ctx;
    if (ps->file == NULL) {
        return pass_from_tty(pass);
    }
    ns_err e = ns_read_path(ps->file, pass);
    if (e != NS_OK) {
        ns_buf_reset(pass);
        return ns_fail_ctx(e, "--passphrase-file %s", ps->file);
    }
    /* The first line only: age-style passphrase files hold one line. */
    const uint8_t *nl = pass->len ? memchr(pass->data, '\n', pass->len) : NULL;
    if (nl != NULL) {
        size_t keep = (size_t)(nl - pass->data) + 1;
        ns_wipe(pass->data + keep, pass->len - keep);
        pass->len = keep;
    }
    chomp(pass);
    if (pass->len == 0) {
        ns_buf_reset(pass);
        BAIL(NS_E_USAGE, "--passphrase-file %s: the passphrase is empty", ps->file);
    }
    return NS_OK;
}

static ns_err out_sink(void *ctx, const uint8_t *p, size_t n)
{
    return ns_out_write((ns_out *)ctx, p, n);
}

typedef struct {
    const char *id_files[AGE_MAX_ID_FILES];
    size_t n_id;
    const char *inpath;
    const char *outpath;
    pass_src ps;
    uint64_t maxwf;
} age_options;

/* Fills o from the command line; returns 0, or the usage exit code after the error line. */
static int parse_options(age_options *o, int argc, char **argv)
{
    enum { OPT_PASSFILE = 256, OPT_MAXWF };
    static const struct option opts[] = {
        {"identity", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},
        {"decrypt", no_argument, NULL, 'd'},
        {"passphrase-file", required_argument, NULL, OPT_PASSFILE},
        {"max-work-factor", required_argument, NULL, OPT_MAXWF},
        {NULL, 0, NULL, 0},
    };
    *o = (age_options){.outpath = "-", .maxwf = NS_AGE_SCRYPT_MAX_LOG2N};
    int c;
    while ((c = getopt_long(argc, argv, "i:o:d", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (o->n_id == AGE_MAX_ID_FILES) {
                return ns_cli_usage_error("more than %u -i options", AGE_MAX_ID_FILES);
            }
            o->id_files[o->n_id++] = optarg;
            break;
        case 'o':
            o->outpath = optarg;
            break;
        case 'd':
            break;
        case OPT_PASSFILE:
            o->ps.file = optarg;
            break;
        case OPT_MAXWF:
            if (ns_parse_uint(optarg, NS_AGE_SCRYPT_HARD_LOG2N, &o->maxwf) != NS_OK ||
                o->maxwf == 0) {
                return ns_cli_usage_error("--max-work-factor must be 1..%u",
                                          NS_AGE_SCRYPT_HARD_LOG2N);
            }
            break;
        default:
            return ns_cli_usage_error("invalid option");
        }
    }
    if (argc - optind > 1) {
        return ns_cli_usage_error("more than one input file");
    }
    o->inpath = optind < argc ? argv[optind] : "-";
    if (strcmp(o->inpath, "-") == 0 && o->ps.file != NULL && strcmp(o->ps.file, "-") == 0) {
        return ns_cli_usage_error("the input and --passphrase-file cannot both be stdin");
    }
    for (size_t i = 0; i < o->n_id; i++) {
        if (strcmp(o->inpath, "-") == 0 && strcmp(o->id_files[i], "-") == 0) {
            return ns_cli_usage_error("the input and an identity file cannot both be stdin");
        }
    }
    return NS_EXIT_OK;
}

/* Reads every identity file into ids (secret memory), a newline after each; logs a failure. */
static ns_err load_identities(ns_buf *ids, const age_options *o)
{
    for (size_t i = 0; i < o->n_id; i++) {
        ns_err e = ns_read_path(o->id_files[i], ids);
        if (e == NS_OK) {
            e = ns_buf_append_u8(ids, '\n');
        }
        if (e != NS_OK) {
            ns_log_err(e, o->id_files[i]);
            return e;
        }
    }
    return NS_OK;
}

/* Decrypts fd into the output, which is committed only when the whole stream authenticated.
 * Wipes the identities as soon as the decryption no longer needs them; logs a failure. */
static int decrypt_to_output(age_options *o, ns_buf *ids, int fd)
{
    ns_out out;
    ns_err e = ns_out_open(&out, o->outpath);
    if (e != NS_OK) {
        ns_log_err(e, o->outpath);
        return NS_EXIT_FAIL;
    }
    ns_age_input in = {.fd = fd};
    ns_age_opts ao = {
        .identities = (const char *)ids->data,
        .identities_len = ids->len,
        .passphrase = get_passphrase,
        .passphrase_ctx = &o->ps,
        .scrypt_max_log2n = (unsigned)o->maxwf,
    };
    ns_age_stage stage = NS_AGE_STAGE_IDENTITIES;
    e = ns_age_decrypt(&in, &ao, out_sink, &out, &stage);
    ns_buf_free(ids); /* wipes the identity text as soon as it is no longer needed */
    if (e != NS_OK) {
        ns_log_err(e, ns_age_stage_name(stage));
        ns_out_abort(&out);
        return NS_EXIT_FAIL;
    }
    e = ns_out_commit(&out);
    if (e != NS_OK) {
        ns_log_err(e, "output");
        return NS_EXIT_FAIL;
    }
    return NS_EXIT_OK;
}

int age_decrypt_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        return NS_EXIT_OK;
    }
    age_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc != NS_EXIT_OK) {
        return rc;
    }
    if (ns_secret_process_init() != NS_OK) {
        ns_warn("could not make the process non-dumpable");
    }
    ns_buf ids;
    ns_buf_init_secret(&ids, AGE_ID_FILE_MAX);
    int fd = -1;
    rc = NS_EXIT_FAIL;
    if (load_identities(&ids, &o) == NS_OK) {
        ns_err e = ns_open_input(o.inpath, &fd);
        if (e != NS_OK) {
            ns_log_err(e, o.inpath);
        } else {
            rc = decrypt_to_output(&o, &ids, fd);
        }
    }
    if (fd > 2) {
        close(fd);
    }
    ns_buf_free(&ids);
    return rc;
}
