/* Unit tests for eif: CRC check value, PCR known answer, build/parse round trip, PCR8 from a
 * signature section, and one negative test per malformed case of FORMAT.md (and our stricter
 * rules). Files are made by a small independent writer here, then mutated and re-CRC'd so each
 * case trips exactly the rule under test. */
#include "eif.h"
#include "mbedtls/sha512.h"
#include "t.h"

#define KAT_PCR2_ONE_RAMDISK                                                                       \
    "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc" \
    "500a"

typedef struct {
    uint16_t type;
    const char *data;
    size_t len;
} tsec;

/* An independent EIF writer: any section list, any version; CRC fixed up. */
static size_t mk(uint8_t *f, size_t cap, uint16_t version, const tsec *s, size_t n)
{
    memset(f, 0, cap);
    memcpy(f, ".eif", 4);
    ns_put_be16(f + 4, version);
    ns_put_be64(f + 8, 1ull << 30);
    ns_put_be64(f + 16, 2);
    ns_put_be16(f + 26, (uint16_t)n);
    size_t pos = 548;
    for (size_t i = 0; i < n; i++) {
        ns_put_be64(f + 28 + 8 * i, pos);
        ns_put_be64(f + 284 + 8 * i, s[i].len);
        ns_put_be16(f + pos, s[i].type);
        ns_put_be64(f + pos + 4, s[i].len);
        memcpy(f + pos + 12, s[i].data, s[i].len);
        pos += 12 + s[i].len;
    }
    return pos;
}

static void fix_crc(uint8_t *f, size_t n)
{
    uint32_t c = ns_eif_crc32(0, f, 544);
    ns_put_be32(f + 544, ns_eif_crc32(c, f + 548, n - 548));
}

static void ext(uint8_t out[48], const void *content, size_t n)
{
    uint8_t buf[96] = {0}, h[64];
    mbedtls_sha512(content, n, h, 1);
    memcpy(buf + 48, h, 48);
    mbedtls_sha512(buf, sizeof buf, h, 1);
    memcpy(out, h, 48);
}

static int hex_eq(const uint8_t *pcr, const char *hex)
{
    char h[97];
    for (int i = 0; i < 48; i++) {
        snprintf(h + 2 * i, 3, "%02x", pcr[i]);
    }
    return strcmp(h, hex) == 0;
}

/* The smallest metadata nitro-cli's reader (EifIdentityInfo) accepts. */
#define MD                                                                                         \
    "{\"ImageName\":\"i\",\"ImageVersion\":\"1\",\"BuildMetadata\":{\"BuildTime\":\"t\","          \
    "\"BuildTool\":\"b\",\"BuildToolVersion\":\"v\",\"OperatingSystem\":\"linux\","                \
    "\"KernelVersion\":\"k\"},\"DockerInfo\":{},\"CustomMetadata\":null}"
#define MD_LEN (sizeof MD - 1)

static uint8_t F[1 << 16];
static uint8_t G[1 << 16];

static const tsec BASE[] = {{NS_EIF_SEC_KERNEL, "KERNEL", 6},
                            {NS_EIF_SEC_CMDLINE, "console=ttyS0", 13},
                            {NS_EIF_SEC_METADATA, MD, MD_LEN},
                            {NS_EIF_SEC_RAMDISK, "RD0", 3},
                            {NS_EIF_SEC_RAMDISK, "RD-1", 4}};

/* Parses a mutated copy of the base file: mutate(f, &n) then optional CRC fix. */
#define NEG(code, fixcrc, what, ...)                                                               \
    do {                                                                                           \
        size_t n = mk(F, sizeof F, 4, BASE, 5);                                                    \
        __VA_ARGS__;                                                                               \
        if (fixcrc) {                                                                              \
            fix_crc(F, n);                                                                         \
        }                                                                                          \
        ns_eif_info info_;                                                                         \
        CHECK_ERR(ns_eif_parse(&info_, F, n), code, "rejects: %s", what);                          \
    } while (0)

static size_t sig_cbor(uint8_t *o, const char *pem, int n_entries, const char *key1)
{
    size_t k = 0;
    o[k++] = (uint8_t)(0x80 | n_entries);
    for (int e = 0; e < n_entries; e++) {
        o[k++] = 0xa2;
        size_t kl = strlen(key1);
        o[k++] = (uint8_t)(0x60 | 24);
        o[k++] = (uint8_t)kl;
        memcpy(o + k, key1, kl);
        k += kl;
        size_t pl = strlen(pem);
        o[k++] = 0x99; /* array, 16-bit length */
        o[k++] = (uint8_t)(pl >> 8);
        o[k++] = (uint8_t)pl;
        for (size_t i = 0; i < pl; i++) {
            uint8_t b = (uint8_t)pem[i];
            if (b < 24) {
                o[k++] = b;
            } else {
                o[k++] = 0x18;
                o[k++] = b;
            }
        }
        o[k++] = 0x69;
        memcpy(o + k, "signature", 9);
        k += 9;
        o[k++] = 0x83;
        o[k++] = 0x01;
        o[k++] = 0x02;
        o[k++] = 0x03;
    }
    return k;
}

static void test_signature(void)
{
    static const char pem[] = "-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n";
    uint8_t cb[2048];
    size_t cl = sig_cbor(cb, pem, 1, "signing_certificate");
    tsec s[6];
    memcpy(s, BASE, sizeof BASE);
    s[5] = (tsec){NS_EIF_SEC_SIGNATURE, (const char *)cb, cl};
    size_t n = mk(F, sizeof F, 4, s, 6);
    fix_crc(F, n);
    ns_eif_info info;
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_OK, "signed EIF parses");
    static const uint8_t der[] = {0, 1, 2, 3, 4};
    uint8_t want[48];
    ext(want, der, sizeof der);
    CHECK(info.is_signed && memcmp(info.pcr8, want, 48) == 0, "PCR8 = extend(sha384(DER cert))");

    cl = sig_cbor(cb, pem, 1, "signature_certificat");
    s[5].len = cl;
    n = mk(F, sizeof F, 4, s, 6);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: signature with a wrong first key");

    cl = sig_cbor(cb, "no pem here", 1, "signing_certificate");
    s[5].len = cl;
    n = mk(F, sizeof F, 4, s, 6);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: certificate that is not PEM");

    cl = sig_cbor(cb, pem, 1, "signing_certificate");
    cb[cl++] = 0;
    s[5].len = cl;
    n = mk(F, sizeof F, 4, s, 6);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: trailing bytes after the CBOR");

    cl = sig_cbor(cb, pem, 1, "signing_certificate");
    s[5].len = cl - 2;
    n = mk(F, sizeof F, 4, s, 6);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_TRUNCATED, "rejects: truncated signature CBOR");

    cl = sig_cbor(cb, pem, 1, "signing_certificate");
    cb[cl - 1] = 0x19; /* a uint over 255 (half of a 2-byte head) */
    s[5].len = cl;
    n = mk(F, sizeof F, 4, s, 6);
    fix_crc(F, n);
    CHECK(ns_eif_parse(&info, F, n) != NS_OK, "rejects: signature array element over 255");

    cl = sig_cbor(cb, pem, 2, "signing_certificate");
    s[5].len = cl;
    n = mk(F, sizeof F, 4, s, 6);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_OK, "two signature entries parse (first is used)");
    CHECK(memcmp(info.pcr8, want, 48) == 0, "PCR8 from the first entry");

    cl = sig_cbor(cb, pem, 1, "signing_certificate");
    s[5].len = cl;
    tsec s2[7];
    memcpy(s2, s, sizeof s);
    s2[6] = s[5];
    n = mk(F, sizeof F, 4, s2, 7);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: two signature sections");

    n = mk(F, sizeof F, 2, (tsec[]){BASE[0], BASE[1], BASE[3], s[5]}, 4);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: signature section in a v2 file");
    n = mk(F, sizeof F, 3, (tsec[]){BASE[0], BASE[1], BASE[3], s[5]}, 4);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_OK, "v3 file with a signature and no metadata");

    static char big[NS_EIF_MAX_SIGNATURE_LEN + 1];
    s[5] = (tsec){NS_EIF_SEC_SIGNATURE, big, sizeof big};
    n = mk(F, sizeof F, 4, s, 6);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_TOO_BIG, "rejects: signature over 32768 bytes");
}

static void test_build(void)
{
    static const uint8_t kernel[] = "bzImage-bytes";
    static const uint8_t rd0[] = "bootstrap", rd1[] = "app";
    ns_eif_blob rds[2] = {{rd0, 9}, {rd1, 3}};
    ns_eif_input in = {.kernel = {kernel, 13},
                       .cmdline = {(const uint8_t *)"console=ttyS0", 13},
                       .metadata = {(const uint8_t *)MD, MD_LEN},
                       .ramdisks = rds,
                       .n_ramdisks = 2};
    ns_buf a, b;
    ns_buf_init(&a, 1 << 20);
    ns_buf_init(&b, 1 << 20);
    CHECK_ERR(ns_eif_build(&a, &in), NS_OK, "build two ramdisks");
    CHECK_ERR(ns_eif_build(&b, &in), NS_OK, "build again");
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "builds are byte-identical");
    CHECK(a.len == 548 + 5 * 12 + 13 + 13 + MD_LEN + 9 + 3, "size is header + sections");
    ns_eif_info info;
    CHECK_ERR(ns_eif_parse(&info, a.data, a.len), NS_OK, "built EIF parses");
    CHECK(info.version == 4 && info.num_sections == 5, "version 4, 5 sections");
    static const uint16_t order[] = {NS_EIF_SEC_KERNEL, NS_EIF_SEC_CMDLINE, NS_EIF_SEC_METADATA,
                                     NS_EIF_SEC_RAMDISK, NS_EIF_SEC_RAMDISK};
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        ok &= info.sections[i].type == order[i];
    }
    CHECK(ok, "reference section order: kernel, cmdline, metadata, ramdisks");
    CHECK(info.sections[1].offset == 548 + 12 + 13, "offsets[1] = 548 + 12 + kernel_len");
    uint8_t all[64], want[48];
    size_t k = 0;
    memcpy(all + k, kernel, 13), k += 13;
    memcpy(all + k, "console=ttyS0", 13), k += 13;
    memcpy(all + k, rd0, 9), k += 9;
    ext(want, all, k);
    CHECK(memcmp(info.pcr1, want, 48) == 0, "PCR1 = kernel || cmdline || ramdisk[0]");
    memcpy(all + k, rd1, 3), k += 3;
    ext(want, all, k);
    CHECK(memcmp(info.pcr0, want, 48) == 0, "PCR0 = kernel || cmdline || all ramdisks");
    ext(want, rd1, 3);
    CHECK(memcmp(info.pcr2, want, 48) == 0, "PCR2 = ramdisk[1..]");
    CHECK(!info.is_signed, "unsigned");

    ns_buf_reset(&a);
    in.n_ramdisks = 1;
    CHECK_ERR(ns_eif_build(&a, &in), NS_OK, "build one ramdisk");
    CHECK_ERR(ns_eif_parse(&info, a.data, a.len), NS_OK, "parses");
    CHECK(hex_eq(info.pcr2, KAT_PCR2_ONE_RAMDISK), "PCR2 with one ramdisk: FORMAT.md known answer");

    in.n_ramdisks = 0;
    CHECK_ERR(ns_eif_build(&a, &in), NS_E_USAGE, "build refuses no ramdisk");
    in.n_ramdisks = 1;
    in.kernel.len = 0;
    CHECK_ERR(ns_eif_build(&a, &in), NS_E_USAGE, "build refuses an empty kernel");
    in.kernel.len = 13;
    in.metadata.len = 0;
    CHECK_ERR(ns_eif_build(&a, &in), NS_E_USAGE, "build refuses missing metadata");
    in.metadata.len = MD_LEN;
    in.cmdline = (ns_eif_blob){(const uint8_t *)"a\0b", 3};
    CHECK_ERR(ns_eif_build(&a, &in), NS_E_USAGE, "build refuses a NUL in the cmdline");
    ns_buf_free(&a);
    ns_buf_free(&b);

    ns_buf m;
    ns_buf_init(&m, 4096);
    ns_eif_meta meta = {"img", "1.0", 1700000000, "nsign", "0.1.0", "linux", "6.1", NULL};
    CHECK_ERR(ns_eif_metadata(&m, &meta), NS_OK, "metadata JSON");
    CHECK_ERR(ns_buf_cstr(&m), NS_OK, "cstr");
    CHECK(strcmp((char *)m.data,
                 "{\"ImageName\":\"img\",\"ImageVersion\":\"1.0\",\"BuildMetadata\":{\"BuildTime\":"
                 "\"2023-11-14T22:13:20+00:00\",\"BuildTool\":\"nsign\",\"BuildToolVersion\":"
                 "\"0.1.0\",\"OperatingSystem\":\"linux\",\"KernelVersion\":\"6.1\"},"
                 "\"DockerInfo\":{},\"CustomMetadata\":null}") == 0,
          "metadata is compact JSON with the reference keys, CustomMetadata null");
    CHECK_ERR(ns_eif_identity_check(m.data, m.len), NS_OK,
              "our metadata passes the identity check");
    ns_buf_reset(&m);
    meta.custom_json = "{\"team\": \"sig\", \"n\": [1, 2]}";
    CHECK_ERR(ns_eif_metadata(&m, &meta), NS_OK, "metadata with --metadata's object");
    CHECK_ERR(ns_buf_cstr(&m), NS_OK, "cstr");
    CHECK(strstr((char *)m.data, "\"CustomMetadata\":{\"team\":\"sig\",\"n\":[1,2]}}") != NULL,
          "CustomMetadata is the given object, compact");
    ns_buf_reset(&m);
    meta.custom_json = "[1]";
    CHECK_ERR(ns_eif_metadata(&m, &meta), NS_E_PARSE, "custom metadata must be an object");
    ns_buf_free(&m);
}

static void test_negative(void)
{
    size_t n0 = mk(F, sizeof F, 4, BASE, 5);
    fix_crc(F, n0);
    ns_eif_info info;
    CHECK_ERR(ns_eif_parse(&info, F, n0), NS_OK, "base file parses");
    memcpy(G, F, n0);

    NEG(NS_E_TRUNCATED, 0, "shorter than the header", n = 547);
    NEG(NS_E_TRUNCATED, 0, "empty file", n = 0);
    NEG(NS_E_PARSE, 1, "bad magic", F[0] = 'E');
    NEG(NS_E_UNSUPPORTED, 1, "version 1 (never released)", ns_put_be16(F + 4, 1));
    NEG(NS_E_UNSUPPORTED, 1, "version 0", ns_put_be16(F + 4, 0));
    NEG(NS_E_UNSUPPORTED, 1, "version 5 (undefined)", ns_put_be16(F + 4, 5));
    NEG(NS_E_PARSE, 1, "reserved header flag bits", ns_put_be16(F + 6, 2));
    NEG(NS_E_PARSE, 1, "reserved u16 not zero", ns_put_be16(F + 24, 1));
    NEG(NS_E_PARSE, 1, "unused u32 not zero", ns_put_be32(F + 540, 1));
    NEG(NS_E_PARSE, 1, "num_sections 1", ns_put_be16(F + 26, 1));
    NEG(NS_E_PARSE, 1, "num_sections 0", ns_put_be16(F + 26, 0));
    NEG(NS_E_PARSE, 1, "num_sections 33", ns_put_be16(F + 26, 33));
    NEG(NS_E_PARSE, 1, "num_sections larger than the sections present", ns_put_be16(F + 26, 6));
    NEG(NS_E_PARSE, 1, "num_sections smaller than the sections present (trailing data)",
        ns_put_be16(F + 26, 4);
        ns_put_be64(F + 28 + 32, 0); ns_put_be64(F + 284 + 32, 0));
    NEG(NS_E_PARSE, 1, "unused offset entry not zero", ns_put_be64(F + 28 + 8 * 31, 7));
    NEG(NS_E_PARSE, 1, "unused size entry not zero", ns_put_be64(F + 284 + 8 * 5, 7));
    NEG(NS_E_PARSE, 1, "first section not at 548", ns_put_be64(F + 28, 560));
    NEG(NS_E_PARSE, 1, "gap between sections", ns_put_be64(F + 36, 548 + 12 + 6 + 1));
    NEG(NS_E_PARSE, 1, "overlapping sections", ns_put_be64(F + 36, 548 + 12 + 3));
    NEG(NS_E_PARSE, 1, "offsets out of order", ns_put_be64(F + 36, 548));
    NEG(NS_E_PARSE, 1, "offset near 2^64 (overflow)", ns_put_be64(F + 36, UINT64_MAX - 4));
    NEG(NS_E_PARSE, 1, "header size disagrees with section header", ns_put_be64(F + 284, 5));
    NEG(NS_E_PARSE, 1, "both sizes agree but section is shorter", ns_put_be64(F + 284, 5);
        ns_put_be64(F + 548 + 4, 5));
    NEG(NS_E_TRUNCATED, 1, "size near 2^64", ns_put_be64(F + 284, UINT64_MAX);
        ns_put_be64(F + 548 + 4, UINT64_MAX));
    NEG(NS_E_PARSE, 1, "section type 0 (invalid)", ns_put_be16(F + 548, 0));
    NEG(NS_E_PARSE, 1, "section type 6 (unknown)", ns_put_be16(F + 548, 6));
    NEG(NS_E_PARSE, 1, "section flags not zero", ns_put_be16(F + 548 + 2, 1));
    NEG(NS_E_TRUNCATED, 0, "file cut inside the last section", n -= 1);
    NEG(NS_E_TRUNCATED, 0, "file cut inside a section header", n = 548 + 5);
    NEG(NS_E_PARSE, 1, "trailing bytes after the last section", F[n] = 0; n += 1);
    NEG(NS_E_PARSE, 0, "CRC mismatch (one data byte flipped)", F[548 + 12] ^= 1);
    NEG(NS_E_PARSE, 0, "CRC mismatch (stored CRC changed)", F[547] ^= 0x80);
    NEG(NS_E_PARSE, 0, "CRC mismatch (header default_mem changed)", F[12] ^= 1);

    tsec s[6];
    size_t n;
    memcpy(s, BASE, sizeof BASE);
    s[0].type = NS_EIF_SEC_CMDLINE;
    n = mk(F, sizeof F, 4, s, 5);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: no kernel (ramdisk first)");
    s[0] = BASE[0];
    s[3].type = NS_EIF_SEC_KERNEL;
    n = mk(F, sizeof F, 4, s, 5);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: two kernels");
    s[3].type = NS_EIF_SEC_CMDLINE;
    n = mk(F, sizeof F, 4, s, 5);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: two cmdlines");
    memcpy(s, BASE, sizeof BASE);
    s[1].type = NS_EIF_SEC_METADATA;
    n = mk(F, sizeof F, 4, s, 5);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: no cmdline");
    n = mk(F, sizeof F, 4, (tsec[]){BASE[0], BASE[1], BASE[2]}, 3);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: no ramdisk");
    n = mk(F, sizeof F, 4, (tsec[]){BASE[3], BASE[0], BASE[1], BASE[2]}, 4);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: ramdisk before the kernel");
    n = mk(F, sizeof F, 4, (tsec[]){BASE[0], BASE[1], BASE[3]}, 3);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: v4 without metadata");
    n = mk(F, sizeof F, 4, (tsec[]){BASE[0], BASE[1], BASE[2], BASE[2], BASE[3]}, 5);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: two metadata sections");
    n = mk(F, sizeof F, 3, BASE, 5);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: metadata in a v3 file");
    n = mk(F, sizeof F, 2, (tsec[]){BASE[0], BASE[1], BASE[3]}, 3);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_OK, "v2 file (kernel, cmdline, ramdisk) parses");
    n = mk(F, sizeof F, 4, (tsec[]){{NS_EIF_SEC_KERNEL, "", 0}, BASE[1], BASE[2], BASE[3]}, 4);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: empty kernel");
    n = mk(F, sizeof F, 4, (tsec[]){BASE[0], {NS_EIF_SEC_CMDLINE, "a\0b", 3}, BASE[2], BASE[3]}, 4);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE, "rejects: NUL in the cmdline");
    static char longcl[NS_EIF_MAX_CMDLINE_LEN + 1];
    memset(longcl, 'a', sizeof longcl);
    n = mk(F, sizeof F, 4,
           (tsec[]){BASE[0], {NS_EIF_SEC_CMDLINE, longcl, sizeof longcl}, BASE[2], BASE[3]}, 4);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_TOO_BIG, "rejects: cmdline over 4096 bytes");
    n = mk(F, sizeof F, 4, BASE, 5);
    ns_put_be16(F + 6, NS_EIF_FLAG_ARM64);
    fix_crc(F, n);
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_OK, "aarch64 flag accepted");
    CHECK(info.flags == NS_EIF_FLAG_ARM64, "aarch64 flag reported");
}

static void test_identity(void)
{
    static const struct {
        const char *json;
        const char *what;
    } bad[] = {
        {"{}", "empty object"},
        {"[]", "not an object"},
        {"{\"ImageName\":\"i\",\"ImageVersion\":\"1\",\"BuildMetadata\":{\"BuildTime\":\"t\","
         "\"BuildTool\":\"b\",\"BuildToolVersion\":\"v\",\"OperatingSystem\":\"l\","
         "\"KernelVersion\":\"k\"},\"DockerInfo\":{}}",
         "no CustomMetadata (nitro-cli's describe-eif fails on it)"},
        {"{\"ImageName\":1,\"ImageVersion\":\"1\",\"BuildMetadata\":{\"BuildTime\":\"t\","
         "\"BuildTool\":\"b\",\"BuildToolVersion\":\"v\",\"OperatingSystem\":\"l\","
         "\"KernelVersion\":\"k\"},\"DockerInfo\":{},\"CustomMetadata\":null}",
         "ImageName not a string"},
        {"{\"ImageName\":\"i\",\"ImageVersion\":\"1\",\"BuildMetadata\":{\"BuildTime\":\"t\","
         "\"BuildTool\":\"b\",\"BuildToolVersion\":\"v\",\"OperatingSystem\":\"l\"},"
         "\"DockerInfo\":{},\"CustomMetadata\":null}",
         "BuildMetadata without KernelVersion"},
        {"{\"ImageName\":\"i\",\"ImageVersion\":\"1\",\"BuildMetadata\":{\"BuildTime\":\"t\","
         "\"BuildTool\":\"b\",\"BuildToolVersion\":\"v\",\"OperatingSystem\":\"l\","
         "\"KernelVersion\":\"k\",\"X\":\"y\"},\"DockerInfo\":{},\"CustomMetadata\":null}",
         "BuildMetadata with a sixth member"},
        {"{\"ImageName\":\"i\",\"ImageName\":\"j\",\"ImageVersion\":\"1\",\"BuildMetadata\":{"
         "\"BuildTime\":\"t\",\"BuildTool\":\"b\",\"BuildToolVersion\":\"v\","
         "\"OperatingSystem\":\"l\",\"KernelVersion\":\"k\"},\"DockerInfo\":{},"
         "\"CustomMetadata\":null}",
         "duplicate ImageName"},
        {MD " x", "bytes after the object"},
        {MD ",", "a comma after the object"},
    };
    CHECK_ERR(ns_eif_identity_check((const uint8_t *)MD, MD_LEN), NS_OK, "identity: minimal ok");
    CHECK_ERR(ns_eif_identity_check((const uint8_t *)MD "\n", MD_LEN + 1), NS_OK,
              "identity: trailing newline ok (serde_json allows whitespace)");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char what[160];
        snprintf(what, sizeof what, "identity rejects: %s", bad[i].what);
        CHECK_ERR(ns_eif_identity_check((const uint8_t *)bad[i].json, strlen(bad[i].json)),
                  NS_E_PARSE, "%s", what);
    }
    /* The reader applies it: a v4 file whose metadata lacks CustomMetadata is refused. */
    tsec s[5];
    memcpy(s, BASE, sizeof BASE);
    s[2] = (tsec){NS_EIF_SEC_METADATA, bad[2].json, strlen(bad[2].json)};
    size_t n = mk(F, sizeof F, 4, s, 5);
    fix_crc(F, n);
    ns_eif_info info;
    CHECK_ERR(ns_eif_parse(&info, F, n), NS_E_PARSE,
              "reader refuses metadata without CustomMetadata");
}

int main(void)
{
    CHECK(ns_eif_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u,
          "crc32 check value 0xCBF43926");
    uint32_t c = ns_eif_crc32(0, (const uint8_t *)"1234", 4);
    CHECK(ns_eif_crc32(c, (const uint8_t *)"56789", 5) == 0xCBF43926u, "crc32 is incremental");
    CHECK(strcmp(ns_eif_section_name(NS_EIF_SEC_RAMDISK), "Ramdisk") == 0 &&
              strcmp(ns_eif_section_name(9), "Invalid") == 0,
          "section names");
    test_build();
    test_negative();
    test_signature();
    test_identity();
    T_DONE();
}
