/*
 * eif: the AWS Nitro Enclave Image Format, version 4: reader, writer and PCR measurements.
 *
 * Layout (../shared/vectors/eif/FORMAT.md): a 548-byte big-endian header (magic ".eif", version,
 * flags, section table of 32 offsets and 32 sizes, CRC-32 of everything else), then sections
 * back to back, each a 12-byte header (type, flags, size) and its data. The writer emits the
 * reference builder's order: kernel, cmdline, metadata, ramdisks..., signature.
 *
 * The reader is strict: the header's section table and the sections walked from offset 548 must
 * agree exactly (contiguous, no gap, no overlap, last section ending at EOF), reserved fields are
 * zero, types are known, one kernel, one cmdline, one or more ramdisks after the kernel, one
 * metadata section (v4), at most one signature (v3+), and the CRC matches. PCRs (SHA-384):
 *   PCRn = SHA384(0^48 || SHA384(content_n))
 *   PCR0 = kernel||cmdline||all ramdisks, PCR1 = kernel||cmdline||ramdisk[0],
 *   PCR2 = ramdisk[1..], PCR8 = the DER signing certificate from the signature section.
 */
#ifndef NS_EIF_H
#define NS_EIF_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NS_EIF_HEADER_LEN 548
#define NS_EIF_SECTION_HEADER_LEN 12
#define NS_EIF_MAX_SECTIONS 32
#define NS_EIF_MIN_SECTIONS 2
#define NS_EIF_VERSION 4
#define NS_EIF_PCR_LEN 48
#define NS_EIF_FLAG_ARM64 0x1u
#define NS_EIF_MAX_SIGNATURE_LEN 32768
#define NS_EIF_MAX_METADATA_LEN (1u << 20)
#define NS_EIF_MAX_CMDLINE_LEN 4096
#define NS_EIF_MAX_CERT_LEN 16384
#define NS_EIF_MAX_SIGNATURES 32
#define NS_EIF_DEFAULT_MEM (1ull << 30)
#define NS_EIF_DEFAULT_CPUS 2

enum {
    NS_EIF_SEC_INVALID = 0,
    NS_EIF_SEC_KERNEL = 1,
    NS_EIF_SEC_CMDLINE = 2,
    NS_EIF_SEC_RAMDISK = 3,
    NS_EIF_SEC_SIGNATURE = 4,
    NS_EIF_SEC_METADATA = 5,
};

typedef struct {
    uint16_t type;
    uint64_t offset; /* file offset of the section header */
    uint64_t size;   /* data bytes after the 12-byte section header */
} ns_eif_section;

typedef struct {
    uint16_t version;
    uint16_t flags; /* bit 0: aarch64 */
    uint64_t default_mem;
    uint64_t default_cpus;
    uint16_t num_sections;
    ns_eif_section sections[NS_EIF_MAX_SECTIONS];
    uint32_t crc;
    uint8_t pcr0[NS_EIF_PCR_LEN];
    uint8_t pcr1[NS_EIF_PCR_LEN];
    uint8_t pcr2[NS_EIF_PCR_LEN];
    uint8_t pcr8[NS_EIF_PCR_LEN]; /* valid when is_signed */
    int is_signed;
    const uint8_t *metadata; /* points into the parsed file; NULL when absent (v2/v3) */
    size_t metadata_len;
    const uint8_t *cmdline; /* points into the parsed file */
    size_t cmdline_len;
} ns_eif_info;

/* Validates a whole EIF held in memory and fills info (pointers refer to p). Every rule above is
 * checked; the first broken one is reported (NS_E_PARSE, NS_E_TRUNCATED or NS_E_TOO_BIG). */
ns_err ns_eif_parse(ns_eif_info *info, const uint8_t *p, size_t n) NS_MUST_CHECK;

typedef struct {
    const uint8_t *p;
    size_t len;
} ns_eif_blob;

typedef struct {
    ns_eif_blob kernel;
    ns_eif_blob cmdline;  /* without a trailing NUL */
    ns_eif_blob metadata; /* JSON object, see ns_eif_metadata */
    const ns_eif_blob *ramdisks;
    size_t n_ramdisks;     /* >= 1; [0] is the bootstrap ramdisk (PCR1), the rest PCR2 */
    ns_eif_blob signature; /* optional (len 0: unsigned) */
    uint16_t flags;
    uint64_t default_mem;  /* 0: NS_EIF_DEFAULT_MEM */
    uint64_t default_cpus; /* 0: NS_EIF_DEFAULT_CPUS */
} ns_eif_input;

/* Appends a complete v4 EIF to out. The result depends only on the input. */
ns_err ns_eif_build(ns_buf *out, const ns_eif_input *in) NS_MUST_CHECK;

typedef struct {
    const char *image_name;
    const char *image_version;
    uint64_t build_time; /* seconds since the epoch (SOURCE_DATE_EPOCH) */
    const char *build_tool;
    const char *build_tool_version;
    const char *os;
    const char *kernel_version;
    const char *custom_json; /* CustomMetadata: a JSON object (--metadata), NULL = null */
} ns_eif_meta;

/*
 * Checks a metadata section against nitro-cli's EifIdentityInfo: one JSON object with exactly
 * ImageName and ImageVersion (strings), BuildMetadata (exactly BuildTime, BuildTool,
 * BuildToolVersion, OperatingSystem, KernelVersion, all strings), DockerInfo and CustomMetadata
 * (any JSON; nitro-cli's serde reader has no default for either); no duplicate member. The reader
 * (ns_eif_parse) applies it to every v4 file, so an EIF nitro-cli cannot read is refused.
 */
ns_err ns_eif_identity_check(const uint8_t *p, size_t n) NS_MUST_CHECK;

/* Appends the metadata section's compact JSON (the reference builder's keys and order). */
ns_err ns_eif_metadata(ns_buf *out, const ns_eif_meta *m) NS_MUST_CHECK;

/* CRC-32/ISO-HDLC (zlib crc32): pass 0 to start, the previous value to continue. */
uint32_t ns_eif_crc32(uint32_t crc, const uint8_t *p, size_t n);
/* "Kernel", "Cmdline", "Ramdisk", "Signature", "Metadata" or "Invalid". */
const char *ns_eif_section_name(uint16_t type);

#endif
