/*
 * preflight: `run-enclave --preflight`, the host's and the account's readiness for an enclave,
 * checked before anything is started. One result per check, each ok, FAIL (with the fix) or
 * skip (with why: a check that could not be made, e.g. kms:GetKeyPolicy not allowed):
 *
 *   eif         EIF_PATH is an EIF (its PCR0, which the key policy must name)
 *   device      /dev/nitro_enclaves is a character device this process can open read/write
 *   driver      the nitro_enclaves driver is loaded (/sys/module/nitro_enclaves)
 *   allocator   /etc/nitro_enclaves/allocator.yaml reserves memory_mib >= MEMORY_MIB and
 *               cpu_count (or cpu_pool) >= CPU_COUNT
 *   cpu-pool    the allocator ran: the driver's CPU pool (parameters/ne_cpus) has CPU_COUNT CPUs
 *   hugepages   free hugepages (/sys/kernel/mm/hugepages/hugepages-*kB) hold MEMORY_MIB
 *   memory      MEMORY_MIB >= 4x the EIF's size (nitro-cli's own rule, its error E26)
 *   nitro-cli   found, and `nitro-cli --version` at least NS_PF_NITRO_MIN
 *   port        each host listener (KMS proxy, ingress, egress, logs, audit, metrics, readiness)
 *               is free
 *   imds        IMDSv2 answers with the instance role's credentials
 *   s3          both objects are readable (HeadObject with those credentials)
 *   kms-policy  the key policy of KMS_KEY_ID names the EIF's PCR0 (kms:GetKeyPolicy, after
 *               kms:DescribeKey for an alias; skipped with a note when the role may not read
 *               them or KMS_KEY_ID is unset)
 *
 * Paths under /dev, /sys and /etc are read below root (NSIGN_PREFLIGHT_ROOT, for tests only:
 * a fake host's tree); AWS endpoints come from the usual variables (aws.h). Checks that need
 * something an earlier one lacked (credentials, a vsock device) are skipped, never passed.
 * Nothing here prints: each result goes to the caller's report function. The parsers (the
 * allocator's YAML subset, CPU lists, nitro-cli's version line, the policy's PCR0) do no I/O.
 */
#ifndef NS_PREFLIGHT_H
#define NS_PREFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "runcfg.h"

#define NS_PF_TEXT_MAX 1024
#define NS_PF_ALLOCATOR_MAX (64 * 1024) /* allocator.yaml */
#define NS_PF_CPU_MAX 4096              /* a CPU number in a list */
#define NS_PF_NITRO_MIN "1.2.0"         /* --enclave-name and EnclaveName in describe-enclaves */

typedef enum { NS_PF_OK, NS_PF_FAIL, NS_PF_SKIP } ns_pf_status;

typedef struct {
    const char *check; /* "device", "memory"... */
    ns_pf_status status;
    char text[NS_PF_TEXT_MAX]; /* what was found; for FAIL "...; fix: ..." */
} ns_pf_result;

typedef void (*ns_pf_report_fn)(const ns_pf_result *r, void *arg);

typedef struct {
    const ns_runcfg *c;
    const char *root;  /* prefix of /dev, /sys, /etc paths; "" for the real host */
    const char *nitro; /* nitro-cli's path; NULL when it was not found on PATH */
} ns_pf_cfg;

/* Runs every check in the order above, reporting each; returns the number that FAILed. */
int ns_preflight_run(const ns_pf_cfg *cfg, ns_pf_report_fn report, void *arg);

/* The allocator's configuration: memory_mib, cpu_count, cpu_pool ("" when absent; the others 0).
 * The YAML subset nitro-cli's allocator reads: "key: value" lines, '#' comments, "---". */
typedef struct {
    uint64_t memory_mib;
    uint64_t cpu_count;
    char cpu_pool[256];
} ns_pf_allocator;
ns_err ns_pf_allocator_parse(ns_pf_allocator *a, const char *text, size_t n) NS_MUST_CHECK;

/* The number of CPUs in a Linux CPU list ("1,3", "2-5", "" = 0, a trailing newline ok). */
ns_err ns_pf_cpulist_count(const char *s, size_t n, uint64_t *count) NS_MUST_CHECK;

/* "Nitro CLI 1.4.2" (what `nitro-cli --version` prints) -> v. */
ns_err ns_pf_nitro_version(const char *text, size_t n, unsigned v[3]) NS_MUST_CHECK;

/* Whether a key policy (JSON text) names pcr0_hex (any case) under a kms:RecipientAttestation
 * condition key (PCR0 or ImageSha384). */
int ns_pf_policy_names_pcr0(const uint8_t *policy, size_t n, const char *pcr0_hex);

/* nitro-cli's minimum enclave memory for an EIF of this size (4x, rounded up to a MiB). */
uint64_t ns_pf_min_memory_mib(uint64_t eif_bytes);

#endif
