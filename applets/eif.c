/*
 * eif: build a reproducible EIF, describe one (PCRs as nitro-cli prints them), and write the
 * deterministic cpio archives its ramdisks are made of.
 *
 *   nsign eif build --kernel F --cmdline S --ramdisk F [--ramdisk F...] -o OUT
 *   nsign eif describe FILE
 *   nsign eif cpio DIR [-o OUT]
 *
 * The format and the rules the reader enforces are in src/formats/eif.h; the recipe that assembles the
 * enclave's rootfs and calls these is eif/build.sh.
 */
#include <cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../applets/applets.h"
#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "cpio.h"
#include "eif.h"
#include "iox.h"
#include "json.h"
#include "log.h"
#include "pcr.h"
#include "version.h"

#define EIF_MAX_FILE (1ull << 31)  /* an EIF read by describe */
#define EIF_MAX_INPUT (1ull << 30) /* one kernel or ramdisk */
#define EIF_MAX_RAMDISKS (NS_EIF_MAX_SECTIONS - 4)
#define EIF_MAX_CUSTOM_METADATA 4096 /* nitro-cli's --metadata limit */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: nsign eif build --kernel FILE (--cmdline STR | --cmdline-file FILE)\n"
        "                       --ramdisk FILE [--ramdisk FILE...] --output FILE [options]\n"
        "       nsign eif describe FILE\n"
        "       nsign eif cpio DIR [--output FILE]\n"
        "       nsign eif pcr16 AGE_KEY_CT SHARES_CT [CONFIG]\n"
        "\n"
        "build     writes an EIF v4 (kernel, cmdline, metadata, ramdisks) and prints its\n"
        "          measurements as JSON, like `nitro-cli build-enclave`. The first ramdisk is\n"
        "          the bootstrap (PCR1 = kernel+cmdline+ramdisk[0]); the others are the\n"
        "          application (PCR2). The output depends only on the inputs and\n"
        "          SOURCE_DATE_EPOCH (the metadata's BuildTime).\n"
        "  --kernel FILE          bzImage (x86_64) or Image (aarch64)\n"
        "  --cmdline STR          kernel command line\n"
        "  --cmdline-file FILE    kernel command line from a file (trailing newlines dropped)\n"
        "  --ramdisk FILE         cpio or cpio.gz; repeat, in order (1..%d)\n"
        "  -o, --output FILE      the EIF, written atomically\n"
        "  --name NAME            metadata ImageName (default: nsign-enclave)\n"
        "  --image-version V      metadata ImageVersion (default: %s)\n"
        "  --kernel-version V     metadata KernelVersion (default: unknown)\n"
        "  --metadata FILE        metadata CustomMetadata: a JSON object of at most 4 KiB\n"
        "                         (nitro-cli build-enclave --metadata); default null\n"
        "  --arch ARCH            x86_64 (default) or aarch64\n"
        "describe  validates FILE (every format rule, the CRC, and the metadata against\n"
        "          nitro-cli's EifIdentityInfo) and prints what `nitro-cli describe-eif` does:\n"
        "          EifVersion, Measurements (PCR0, PCR1, PCR2, and PCR8 when signed),\n"
        "          IsSigned, CheckCRC, ImageName, ImageVersion, Metadata (the build facts,\n"
        "          DockerInfo and the CustomMetadata members, flat); then Arch, Cmdline and\n"
        "          Sections. Not SigningCertificate or SignatureCheck (no COSE check).\n"
        "pcr16     prints {\"PCR16\": HEX}: the PCR16 an enclave measures from these inputs (the\n"
        "          KMS-encrypted age key, the age-encrypted shares and, when run-enclave sends\n"
        "          one, the configuration document, byte for byte): PCR16 = 0^48, then for each\n"
        "          input PCR16 = SHA-384(PCR16 || SHA-384(input)). Publish it beside PCR0.\n"
        "cpio      writes a newc archive of the tree under DIR: sorted, owner 0, modes 0755/\n"
        "          0644, mtime SOURCE_DATE_EPOCH (default 0). Output defaults to stdout.\n"
        "\n"
        "exit: 0 ok, 1 failure (bad or unreadable input), 2 usage\n",
        EIF_MAX_RAMDISKS, NSIGN_VERSION);
}

static ns_err source_date_epoch(uint64_t *out)
{
    const char *s = getenv("SOURCE_DATE_EPOCH");
    *out = 0;
    if (s == NULL || *s == 0) {
        return NS_OK;
    }
    if (ns_parse_uint(s, UINT32_MAX, out) != NS_OK) {
        BAIL(NS_E_USAGE, "SOURCE_DATE_EPOCH=%s is not a number of seconds (0..2^32-1)", s);
    }
    return NS_OK;
}

static ns_err write_out(const char *path, const uint8_t *p, size_t n)
{
    ns_out o;
    GUARD(ns_out_open(&o, path));
    ns_err e = ns_out_write(&o, p, n);
    if (e == NS_OK) {
        e = ns_out_commit(&o);
    }
    if (e != NS_OK) {
        ns_out_abort(&o);
        return ns_fail_ctx(e, "writing %s", path);
    }
    return NS_OK;
}

static void hex48(char out[2 * NS_EIF_PCR_LEN + 1], const uint8_t *pcr)
{
    if (ns_hex_encode(out, 2 * NS_EIF_PCR_LEN + 1, pcr, NS_EIF_PCR_LEN) != NS_OK) {
        out[0] = 0;
    }
}

/* {"HashAlgorithm": ..., "PCR0": ..., ...} as nitro-cli prints it. */
static cJSON *measurements(const ns_eif_info *info)
{
    char h[2 * NS_EIF_PCR_LEN + 1];
    cJSON *m = cJSON_CreateObject();
    if (m == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(m, "HashAlgorithm", "Sha384 { ... }");
    hex48(h, info->pcr0);
    cJSON_AddStringToObject(m, "PCR0", h);
    hex48(h, info->pcr1);
    cJSON_AddStringToObject(m, "PCR1", h);
    hex48(h, info->pcr2);
    cJSON_AddStringToObject(m, "PCR2", h);
    if (info->is_signed) {
        hex48(h, info->pcr8);
        cJSON_AddStringToObject(m, "PCR8", h);
    }
    return m;
}

/* cJSON indents with tabs; nitro-cli (serde_json) with two spaces and ": ". Raw tabs only occur
 * as formatting (cJSON escapes them inside strings), so the rewrite is safe. */
static int put_pretty(const char *s)
{
    char prev = 0;
    for (; *s; prev = *s++) {
        if (*s == '\t') {
            if (prev == ':') {
                putchar(' ');
            } else {
                fputs("  ", stdout);
            }
        } else {
            putchar(*s);
        }
    }
    return putchar('\n') != EOF;
}

static int print_json(cJSON *root)
{
    char *s = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (s == NULL) {
        ns_error("out of memory printing JSON");
        return NS_EXIT_FAIL;
    }
    int ok = put_pretty(s) && fflush(stdout) == 0;
    cJSON_free(s);
    if (!ok) {
        ns_error("cannot write to standard output");
        return NS_EXIT_FAIL;
    }
    return NS_EXIT_OK;
}

/* Like nitro-cli's MetadataDescribeInfo: ImageName and ImageVersion at the top; Metadata holds
 * BuildMetadata's five strings, DockerInfo, then CustomMetadata's members flattened (nothing
 * when it is null). The reader already checked the EifIdentityInfo schema. */
static void add_metadata(cJSON *root, const ns_eif_info *info)
{
    if (info->metadata == NULL) {
        return;
    }
    if (ns_json_validate(info->metadata, info->metadata_len) != NS_OK) {
        ns_warn("metadata section is not strict JSON (%s); not shown", ns_err_msg());
        return;
    }
    cJSON *md = cJSON_ParseWithLength((const char *)info->metadata, info->metadata_len);
    if (md == NULL || !cJSON_IsObject(md)) {
        cJSON_Delete(md);
        return;
    }
    cJSON *name = cJSON_DetachItemFromObjectCaseSensitive(md, "ImageName");
    cJSON *ver = cJSON_DetachItemFromObjectCaseSensitive(md, "ImageVersion");
    cJSON *flat = cJSON_DetachItemFromObjectCaseSensitive(md, "BuildMetadata");
    cJSON *docker = cJSON_DetachItemFromObjectCaseSensitive(md, "DockerInfo");
    cJSON *custom = cJSON_DetachItemFromObjectCaseSensitive(md, "CustomMetadata");
    cJSON_Delete(md);
    cJSON_AddItemToObject(root, "ImageName", name);
    cJSON_AddItemToObject(root, "ImageVersion", ver);
    cJSON_AddItemToObject(flat, "DockerInfo", docker);
    cJSON *child;
    while (cJSON_IsObject(custom) && (child = custom->child) != NULL) {
        cJSON_DetachItemViaPointer(custom, child);
        cJSON_AddItemToObject(flat, child->string, child);
    }
    cJSON_Delete(custom);
    cJSON_AddItemToObject(root, "Metadata", flat);
}

static int cmd_describe(int argc, char **argv)
{
    if (argc != 2) {
        return ns_cli_usage_error("describe takes exactly one FILE");
    }
    const char *path = argv[1];
    ns_buf f;
    ns_buf_init(&f, EIF_MAX_FILE);
    ns_err e = ns_read_path(path, &f);
    ns_eif_info info;
    if (e == NS_OK) {
        e = ns_eif_parse(&info, f.data, f.len);
    }
    if (e != NS_OK) {
        ns_log_err(e, path);
        ns_buf_free(&f);
        return NS_EXIT_FAIL;
    }
    cJSON *root = cJSON_CreateObject();
    if (root != NULL) {
        cJSON_AddNumberToObject(root, "EifVersion", info.version);
        cJSON_AddItemToObject(root, "Measurements", measurements(&info));
        cJSON_AddBoolToObject(root, "IsSigned", info.is_signed);
        cJSON_AddBoolToObject(root, "CheckCRC", 1);
        cJSON_AddStringToObject(root, "Arch",
                                (info.flags & NS_EIF_FLAG_ARM64) ? "aarch64" : "x86_64");
        add_metadata(root, &info);
        char *cl = strndup((const char *)info.cmdline, info.cmdline_len);
        cJSON_AddStringToObject(root, "Cmdline", cl ? cl : "");
        free(cl);
        cJSON *secs = cJSON_AddArrayToObject(root, "Sections");
        for (int i = 0; secs != NULL && i < info.num_sections; i++) {
            cJSON *s = cJSON_CreateObject();
            cJSON_AddStringToObject(s, "Type", ns_eif_section_name(info.sections[i].type));
            cJSON_AddNumberToObject(s, "Offset", (double)info.sections[i].offset);
            cJSON_AddNumberToObject(s, "Size", (double)info.sections[i].size);
            cJSON_AddItemToArray(secs, s);
        }
    }
    ns_buf_free(&f);
    return print_json(root);
}

static int cmd_cpio(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    const char *out = "-";
    int c;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        if (c == 'o') {
            out = optarg;
        } else {
            return ns_cli_usage_error("unknown option for cpio");
        }
    }
    if (optind != argc - 1) {
        return ns_cli_usage_error("cpio takes exactly one DIR");
    }
    uint64_t mtime;
    ns_err e = source_date_epoch(&mtime);
    if (e != NS_OK) {
        ns_log_err(e, "cpio");
        return NS_EXIT_USAGE;
    }
    ns_buf b;
    ns_buf_init(&b, NS_CPIO_MAX_BYTES);
    e = ns_cpio_write_dir(&b, argv[optind], (uint32_t)mtime);
    if (e == NS_OK) {
        e = write_out(out, b.data, b.len);
    }
    ns_buf_free(&b);
    if (e != NS_OK) {
        ns_log_err(e, argv[optind]);
        return NS_EXIT_FAIL;
    }
    return NS_EXIT_OK;
}

static ns_err read_input(const char *what, const char *path, ns_buf *b)
{
    ns_buf_init(b, EIF_MAX_INPUT);
    ns_err e = ns_read_path(path, b);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "%s", what);
    }
    return NS_OK;
}

typedef struct {
    const char *kernel;
    const char *cmdline;
    const char *cmdline_file;
    const char *out;
    const char *custom; /* --metadata FILE */
    const char *ramdisks[EIF_MAX_RAMDISKS];
    size_t nr;
    ns_eif_meta meta;
    uint16_t flags;
} build_options;

/* Fills o from build's command line; returns 0, or the usage exit code after the error line. */
static int parse_build_options(build_options *o, int argc, char **argv)
{
    enum {
        O_KERNEL = 256,
        O_CMDLINE,
        O_CMDLINE_FILE,
        O_RAMDISK,
        O_NAME,
        O_IVER,
        O_KVER,
        O_ARCH,
        O_META
    };
    static const struct option opts[] = {{"kernel", required_argument, NULL, O_KERNEL},
                                         {"cmdline", required_argument, NULL, O_CMDLINE},
                                         {"cmdline-file", required_argument, NULL, O_CMDLINE_FILE},
                                         {"ramdisk", required_argument, NULL, O_RAMDISK},
                                         {"output", required_argument, NULL, 'o'},
                                         {"name", required_argument, NULL, O_NAME},
                                         {"image-version", required_argument, NULL, O_IVER},
                                         {"kernel-version", required_argument, NULL, O_KVER},
                                         {"arch", required_argument, NULL, O_ARCH},
                                         {"metadata", required_argument, NULL, O_META},
                                         {NULL, 0, NULL, 0}};
    *o = (build_options){.meta = {"nsign-enclave", NSIGN_VERSION, 0, "nsign", NSIGN_VERSION,
                                  "linux", "unknown", NULL}};
    int c;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case O_KERNEL:
            o->kernel = optarg;
            break;
        case O_CMDLINE:
            o->cmdline = optarg;
            break;
        case O_CMDLINE_FILE:
            o->cmdline_file = optarg;
            break;
        case O_RAMDISK:
            if (o->nr == EIF_MAX_RAMDISKS) {
                return ns_cli_usage_error("at most %d --ramdisk", EIF_MAX_RAMDISKS);
            }
            o->ramdisks[o->nr++] = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case O_NAME:
            o->meta.image_name = optarg;
            break;
        case O_IVER:
            o->meta.image_version = optarg;
            break;
        case O_KVER:
            o->meta.kernel_version = optarg;
            break;
        case O_META:
            o->custom = optarg;
            break;
        case O_ARCH:
            if (strcmp(optarg, "aarch64") == 0) {
                o->flags = NS_EIF_FLAG_ARM64;
            } else if (strcmp(optarg, "x86_64") != 0) {
                return ns_cli_usage_error("--arch must be x86_64 or aarch64");
            }
            break;
        default:
            return ns_cli_usage_error("unknown option for build");
        }
    }
    if (optind != argc) {
        return ns_cli_usage_error("unexpected argument '%s'", argv[optind]);
    }
    if (o->kernel == NULL || o->out == NULL || o->nr == 0 ||
        (o->cmdline == NULL) == (o->cmdline_file == NULL)) {
        return ns_cli_usage_error(
            "build needs --kernel, one of --cmdline/--cmdline-file, --ramdisk and --output");
    }
    if (strcmp(o->out, "-") == 0) {
        return ns_cli_usage_error("--output must be a file (the measurements go to stdout)");
    }
    return NS_EXIT_OK;
}

/* Everything build reads and makes; build_bufs_free releases it whatever step failed. */
typedef struct {
    ns_buf kb;  /* kernel */
    ns_buf cb;  /* command line */
    ns_buf mb;  /* the metadata section */
    ns_buf cm;  /* --metadata text */
    ns_buf eif; /* the image */
    ns_buf rb[EIF_MAX_RAMDISKS];
    ns_eif_blob rblob[EIF_MAX_RAMDISKS];
    size_t loaded; /* rb[0..loaded) were initialised */
} build_bufs;

static void build_bufs_init(build_bufs *b)
{
    ns_buf_init(&b->kb, 0);
    ns_buf_init(&b->cb, NS_EIF_MAX_CMDLINE_LEN + 2);
    ns_buf_init(&b->mb, NS_EIF_MAX_METADATA_LEN);
    ns_buf_init(&b->eif, EIF_MAX_FILE);
    ns_buf_init(&b->cm, EIF_MAX_CUSTOM_METADATA + 1);
    b->loaded = 0;
}

static void build_bufs_free(build_bufs *b)
{
    ns_buf_free(&b->kb);
    ns_buf_free(&b->cb);
    ns_buf_free(&b->mb);
    ns_buf_free(&b->cm);
    ns_buf_free(&b->eif);
    for (size_t i = 0; i < b->loaded; i++) {
        ns_buf_free(&b->rb[i]);
    }
}

/* --cmdline as given, or --cmdline-file without its trailing line ends. */
static ns_err load_cmdline(const build_options *o, ns_buf *cb)
{
    if (o->cmdline_file == NULL) {
        return ns_buf_append_str(cb, o->cmdline);
    }
    ns_err e = read_input("cmdline", o->cmdline_file, cb);
    while (e == NS_OK && cb->len > 0 &&
           (cb->data[cb->len - 1] == '\n' || cb->data[cb->len - 1] == '\r')) {
        cb->len--;
    }
    return e;
}

/* --metadata FILE: one JSON text within nitro-cli's limit, NUL-terminated in cm. */
static ns_err load_custom_metadata(build_options *o, ns_buf *cm)
{
    ns_err e = ns_read_path(o->custom, cm);
    if (e == NS_E_TOO_BIG) {
        e = ns_fail(e, "--metadata %s: over %d bytes (nitro-cli's limit)", o->custom,
                    EIF_MAX_CUSTOM_METADATA);
    } else if (e == NS_OK) {
        e = ns_buf_cstr(cm);
    }
    if (e == NS_OK && (memchr(cm->data, 0, cm->len) != NULL || cm->len > EIF_MAX_CUSTOM_METADATA)) {
        e = ns_fail(NS_E_PARSE, "--metadata %s: not a JSON text", o->custom);
    }
    if (e == NS_OK) {
        o->meta.custom_json = (const char *)cm->data;
    } else {
        e = ns_fail_ctx(e, "--metadata");
    }
    return e;
}

/* SOURCE_DATE_EPOCH, the kernel, the command line, the ramdisks and the custom metadata. */
static ns_err load_build_inputs(build_options *o, build_bufs *b)
{
    ns_err e = source_date_epoch(&o->meta.build_time);
    if (e == NS_OK) {
        e = read_input("kernel", o->kernel, &b->kb);
    }
    if (e == NS_OK) {
        e = load_cmdline(o, &b->cb);
    }
    /* loaded counts a ramdisk whose read failed too: read_input initialised its buffer. */
    for (; e == NS_OK && b->loaded < o->nr; b->loaded++) {
        e = read_input("ramdisk", o->ramdisks[b->loaded], &b->rb[b->loaded]);
        b->rblob[b->loaded] = (ns_eif_blob){b->rb[b->loaded].data, b->rb[b->loaded].len};
    }
    if (e == NS_OK && o->custom != NULL) {
        e = load_custom_metadata(o, &b->cm);
    }
    return e;
}

/* Builds the image, reads it back (the checks describe runs, and the PCRs to print) and
 * writes it to --output. */
static ns_err build_and_write(const build_options *o, build_bufs *b, ns_eif_info *info)
{
    GUARD(ns_eif_metadata(&b->mb, &o->meta));
    ns_eif_input in = {.kernel = {b->kb.data, b->kb.len},
                       .cmdline = {b->cb.data, b->cb.len},
                       .metadata = {b->mb.data, b->mb.len},
                       .ramdisks = b->rblob,
                       .n_ramdisks = o->nr,
                       .flags = o->flags};
    GUARD(ns_eif_build(&b->eif, &in));
    GUARD(ns_eif_parse(info, b->eif.data, b->eif.len));
    return write_out(o->out, b->eif.data, b->eif.len);
}

static int cmd_build(int argc, char **argv)
{
    build_options o;
    int rc = parse_build_options(&o, argc, argv);
    if (rc != NS_EXIT_OK) {
        return rc;
    }
    build_bufs b;
    build_bufs_init(&b);
    ns_eif_info info;
    ns_err e = load_build_inputs(&o, &b);
    if (e == NS_OK) {
        e = build_and_write(&o, &b, &info);
    }
    size_t eif_len = b.eif.len;
    build_bufs_free(&b);
    if (e != NS_OK) {
        ns_log_err(e, "build");
        return NS_EXIT_FAIL;
    }
    char pcr0[2 * NS_EIF_PCR_LEN + 1];
    hex48(pcr0, info.pcr0);
    ns_info("wrote EIF path=%s bytes=%zu ramdisks=%zu pcr0=%s", o.out, eif_len, o.nr, pcr0);
    cJSON *root = cJSON_CreateObject();
    if (root != NULL) {
        cJSON_AddItemToObject(root, "Measurements", measurements(&info));
    }
    return print_json(root);
}

static int cmd_pcr16(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        return ns_cli_usage_error("pcr16 takes AGE_KEY_CT SHARES_CT [CONFIG]");
    }
    ns_buf in[3];
    int n = argc - 1;
    ns_err e = NS_OK;
    for (int i = 0; i < 3; i++) {
        ns_buf_init(&in[i], EIF_MAX_INPUT);
    }
    for (int i = 0; e == NS_OK && i < n; i++) {
        e = ns_read_path(argv[i + 1], &in[i]);
        if (e != NS_OK) {
            e = ns_fail_ctx(e, "%s", argv[i + 1]);
        }
    }
    uint8_t pcr[NS_PCR_LEN];
    if (e == NS_OK) {
        e = ns_pcr16_predict(pcr, in[0].data, in[0].len, in[1].data, in[1].len,
                             n == 3 ? in[2].data : NULL, n == 3 ? in[2].len : 0);
    }
    for (int i = 0; i < 3; i++) {
        ns_buf_free(&in[i]);
    }
    if (e != NS_OK) {
        ns_log_err(e, "pcr16");
        return NS_EXIT_FAIL;
    }
    char hex[NS_PCR_HEX_LEN];
    ns_pcr_hex(hex, pcr);
    cJSON *root = cJSON_CreateObject();
    if (root != NULL) {
        cJSON_AddStringToObject(root, "PCR16", hex);
    }
    return print_json(root);
}

int eif_main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        usage(stdout);
        return NS_EXIT_OK;
    }
    if (ns_cli_wants_help(argc, argv)) {
        usage(stdout);
        return NS_EXIT_OK;
    }
    if (argc < 2) {
        usage(stderr);
        return NS_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "build") == 0) {
        return cmd_build(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "describe") == 0) {
        return cmd_describe(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "cpio") == 0) {
        return cmd_cpio(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "pcr16") == 0) {
        return cmd_pcr16(argc - 1, argv + 1);
    }
    return ns_cli_usage_error("unknown command '%s' (build, describe, cpio or pcr16)", cmd);
}
