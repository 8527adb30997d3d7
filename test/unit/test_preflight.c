/*
 * test_preflight: the parsers behind run-enclave --preflight (no I/O): allocator.yaml's subset
 * (comments, "---", quotes, cpu_pool), Linux CPU lists, nitro-cli's version line, whether a key
 * policy names a PCR0 under a kms:RecipientAttestation key, nitro-cli's 4x memory rule; and
 * malformed inputs refused with the line named.
 */
#include <stdio.h>
#include <string.h>

#include "preflight.h"
#include "t.h"

#define S(x) x, sizeof(x) - 1

static void test_allocator(void)
{
    ns_pf_allocator a;
    static const char aws[] = "---\n# Enclave configuration file.\n#\n"
                              "# How much memory to allocate for enclaves (in MiB).\n"
                              "memory_mib: 512\n#\n# How many CPUs to reserve for enclaves.\n"
                              "cpu_count: 2\n#\n# cpu_pool: 2,3\n";
    CHECK_ERR(ns_pf_allocator_parse(&a, S(aws)), NS_OK, "AWS's shipped allocator.yaml");
    CHECK(a.memory_mib == 512 && a.cpu_count == 2 && a.cpu_pool[0] == '\0',
          "memory_mib 512, cpu_count 2, the commented cpu_pool ignored");
    CHECK_ERR(ns_pf_allocator_parse(&a, S("memory_mib: \"4096\"  # quoted\r\ncpu_pool: 1-3,7\n"
                                          "other_key: x")),
              NS_OK, "quoted values, CRLF, trailing comment, an unknown key, no final newline");
    CHECK(a.memory_mib == 4096 && a.cpu_count == 0 && strcmp(a.cpu_pool, "1-3,7") == 0,
          "memory_mib 4096 and the cpu_pool text");
    CHECK_ERR(ns_pf_allocator_parse(&a, S("")), NS_OK, "empty file");
    CHECK(a.memory_mib == 0 && a.cpu_count == 0, "empty: nothing reserved");
    CHECK_ERR(ns_pf_allocator_parse(&a, S("memory_mib: lots\n")), NS_E_PARSE, "memory_mib: words");
    CHECK(strstr(ns_err_msg(), "line 1: memory_mib") != NULL, "the error names line and key");
    CHECK_ERR(ns_pf_allocator_parse(&a, S("cpu_count: 2\nmemory_mib\n")), NS_E_PARSE,
              "a line without a colon");
    CHECK(strstr(ns_err_msg(), "line 2") != NULL, "the error names line 2");
    CHECK_ERR(ns_pf_allocator_parse(&a, S("cpu_count: -1\n")), NS_E_PARSE, "negative cpu_count");
    CHECK_ERR(ns_pf_allocator_parse(&a, S("cpu_count: 99999999\n")), NS_E_PARSE,
              "cpu_count beyond any machine");
    CHECK_ERR(ns_pf_allocator_parse(&a, S("cpu_pool: 3-1\n")), NS_E_PARSE, "backwards cpu_pool");
    CHECK_ERR(ns_pf_allocator_parse(&a, S("memory_mib: 5\0\n")), NS_E_PARSE, "a NUL byte");
}

static void test_cpulist(void)
{
    uint64_t n = 99;
    CHECK(ns_pf_cpulist_count(S("1,3\n"), &n) == NS_OK && n == 2, "1,3 -> 2");
    CHECK(ns_pf_cpulist_count(S("2-5"), &n) == NS_OK && n == 4, "2-5 -> 4");
    CHECK(ns_pf_cpulist_count(S("0,2-3,8-8"), &n) == NS_OK && n == 4, "0,2-3,8-8 -> 4");
    CHECK(ns_pf_cpulist_count(S("\n"), &n) == NS_OK && n == 0, "empty (no pool) -> 0");
    CHECK_ERR(ns_pf_cpulist_count(S("1,,2"), &n), NS_E_PARSE, "an empty entry");
    CHECK_ERR(ns_pf_cpulist_count(S("1,"), &n), NS_E_PARSE, "a trailing comma");
    CHECK_ERR(ns_pf_cpulist_count(S("5-2"), &n), NS_E_PARSE, "a backwards range");
    CHECK(ns_pf_cpulist_count(S("a-b"), &n) != NS_OK, "letters");
    CHECK(ns_pf_cpulist_count(S("1-"), &n) != NS_OK, "an open range");
    CHECK(ns_pf_cpulist_count(S("0-99999"), &n) != NS_OK, "a CPU beyond NS_PF_CPU_MAX");
}

static void test_version(void)
{
    unsigned v[3] = {0, 0, 0};
    CHECK(ns_pf_nitro_version(S("Nitro CLI 1.4.2\n"), v) == NS_OK && v[0] == 1 && v[1] == 4 &&
              v[2] == 2,
          "Nitro CLI 1.4.2");
    CHECK(ns_pf_nitro_version(S("warning: x\nNitro CLI 10.20.300"), v) == NS_OK && v[0] == 10 &&
              v[1] == 20 && v[2] == 300,
          "after another line, multi-digit parts");
    CHECK_ERR(ns_pf_nitro_version(S("nitro-cli 1.4.2"), v), NS_E_PARSE, "another wording");
    CHECK_ERR(ns_pf_nitro_version(S("Nitro CLI 1.4"), v), NS_E_PARSE, "two parts");
    CHECK_ERR(ns_pf_nitro_version(S("Nitro CLI v1.4.2"), v), NS_E_PARSE, "a v prefix");
    CHECK_ERR(ns_pf_nitro_version(S("Nitro CLI "), v), NS_E_PARSE, "no number");
}

static void test_policy(void)
{
    char pcr0[97];
    memset(pcr0, 'a', 96);
    pcr0[96] = '\0';
    char doc[512], upper[97];
    snprintf(doc, sizeof doc,
             "{\"Condition\":{\"StringEqualsIgnoreCase\":{\"kms:RecipientAttestation:PCR0\":"
             "[\"%s\",\"%096d\"]}}}",
             pcr0, 0);
    CHECK(ns_pf_policy_names_pcr0((const uint8_t *)doc, strlen(doc), pcr0),
          "PCR0 in a list under kms:RecipientAttestation:PCR0");
    for (int i = 0; i < 96; i++) {
        upper[i] = 'A';
    }
    upper[96] = '\0';
    snprintf(doc, sizeof doc, "{\"kms:RecipientAttestation:ImageSha384\": \"%s\"}", upper);
    CHECK(ns_pf_policy_names_pcr0((const uint8_t *)doc, strlen(doc), pcr0),
          "PCR0 as ImageSha384, in capitals");
    snprintf(doc, sizeof doc, "{\"kms:RecipientAttestation:PCR1\": \"%s\"}", pcr0);
    CHECK(!ns_pf_policy_names_pcr0((const uint8_t *)doc, strlen(doc), pcr0),
          "the value under PCR1 only: not named");
    snprintf(doc, sizeof doc, "{\"kms:RecipientAttestation:PCR0\": \"%096d\"}", 0);
    CHECK(!ns_pf_policy_names_pcr0((const uint8_t *)doc, strlen(doc), pcr0), "another PCR0");
    CHECK(!ns_pf_policy_names_pcr0((const uint8_t *)doc, strlen(doc), "aa"), "a short needle");
}

static void test_memory_rule(void)
{
    CHECK(ns_pf_min_memory_mib(0) == 0 && ns_pf_min_memory_mib(1) == 1 &&
              ns_pf_min_memory_mib(256 * 1024) == 1 && ns_pf_min_memory_mib(256 * 1024 + 1) == 2 &&
              ns_pf_min_memory_mib(100ull << 20) == 400,
          "4x the EIF, rounded up to a MiB");
}

int main(void)
{
    test_allocator();
    test_cpulist();
    test_version();
    test_policy();
    test_memory_rule();
    T_DONE();
}
