/*
 * preflight: see preflight.h. Each check fills one ns_pf_result and reports it; the state that
 * later checks need (credentials, the EIF's PCR0, whether the Nitro device exists) is carried
 * in pf_run. Files are read bounded; nitro-cli runs under a timeout.
 */
#include "preflight.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "aws.h"
#include "buf.h"
#include "creds.h"
#include "eif.h"
#include "imds.h"
#include "iox.h"
#include "kms.h"
#include "pcr.h"
#include "s3.h"
#include "supervise.h"

#define PF_EIF_MAX (1ull << 31) /* as `nsign eif describe` */
#define PF_SYSFILE_MAX 4096
#define PF_NITRO_TIMEOUT_MS 30000
#define PF_PATH_MAX 1024
#define PF_RESTART_ALLOCATOR "systemctl restart nitro-enclaves-allocator.service"

typedef struct {
    const ns_pf_cfg *cfg;
    ns_pf_report_fn report;
    void *arg;
    int failed;
    int have_device;
    int have_pcr0;
    char pcr0[NS_PCR_HEX_LEN];
    uint64_t eif_size;
    int have_eif_size;
    ns_creds *creds;
} pf_run;

static void put(pf_run *r, const char *check, ns_pf_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(pf_run *r, const char *check, ns_pf_status st, const char *fmt, ...)
{
    ns_pf_result res;
    va_list ap;
    res.check = check;
    res.status = st;
    va_start(ap, fmt);
    vsnprintf(res.text, sizeof res.text, fmt, ap);
    va_end(ap);
    if (st == NS_PF_FAIL) {
        r->failed++;
    }
    r->report(&res, r->arg);
}

static void host_path(const pf_run *r, char *out, size_t cap, const char *path)
{
    snprintf(out, cap, "%s%s", r->cfg->root, path);
}

/* A small file below root into out (NUL-terminated); NS_E_NOT_FOUND when absent. */
static ns_err read_host(const pf_run *r, const char *path, ns_buf *out)
{
    char p[PF_PATH_MAX];
    host_path(r, p, sizeof p, path);
    GUARD(ns_read_path(p, out));
    return ns_buf_cstr(out);
}

/* ---- parsers (no I/O) ---- */

static const char *trim(const char *s, const char *end, const char **tail)
{
    while (s < end && (*s == ' ' || *s == '\t')) {
        s++;
    }
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) {
        end--;
    }
    *tail = end;
    return s;
}

static ns_err parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    char tmp[32];
    ENSURE(n > 0 && n < sizeof tmp, NS_E_PARSE, "not a number");
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return ns_parse_uint(tmp, max, out);
}

ns_err ns_pf_allocator_parse(ns_pf_allocator *a, const char *text, size_t n)
{
    memset(a, 0, sizeof *a);
    ENSURE(n <= NS_PF_ALLOCATOR_MAX, NS_E_TOO_BIG, "allocator.yaml: over %d bytes",
           NS_PF_ALLOCATOR_MAX);
    size_t at = 0;
    int line = 0;
    while (at < n) {
        const char *s = text + at;
        const char *nl = memchr(s, '\n', n - at);
        const char *end = nl ? nl : text + n;
        at = (size_t)(end - text) + (nl ? 1 : 0);
        line++;
        const char *hash = memchr(s, '#', (size_t)(end - s));
        const char *t;
        s = trim(s, hash ? hash : end, &t);
        if (s == t || (t - s == 3 && memcmp(s, "---", 3) == 0)) {
            continue;
        }
        ENSURE(memchr(s, '\0', (size_t)(t - s)) == NULL, NS_E_PARSE,
               "allocator.yaml line %d: a NUL byte", line);
        const char *colon = memchr(s, ':', (size_t)(t - s));
        ENSURE(colon != NULL, NS_E_PARSE, "allocator.yaml line %d: not \"key: value\"", line);
        const char *kt, *vt;
        const char *k = trim(s, colon, &kt);
        const char *v = trim(colon + 1, t, &vt);
        size_t kl = (size_t)(kt - k), vl = (size_t)(vt - v);
        if (vl >= 2 && (*v == '"' || *v == '\'') && vt[-1] == *v) {
            v++;
            vl -= 2;
        }
        if (kl == 10 && memcmp(k, "memory_mib", 10) == 0) {
            ENSURE(parse_u64(v, vl, UINT32_MAX, &a->memory_mib) == NS_OK, NS_E_PARSE,
                   "allocator.yaml line %d: memory_mib is not a number", line);
        } else if (kl == 9 && memcmp(k, "cpu_count", 9) == 0) {
            ENSURE(parse_u64(v, vl, NS_PF_CPU_MAX, &a->cpu_count) == NS_OK, NS_E_PARSE,
                   "allocator.yaml line %d: cpu_count is not a number", line);
        } else if (kl == 8 && memcmp(k, "cpu_pool", 8) == 0) {
            uint64_t cnt;
            ENSURE(vl < sizeof a->cpu_pool && ns_pf_cpulist_count(v, vl, &cnt) == NS_OK, NS_E_PARSE,
                   "allocator.yaml line %d: cpu_pool is not a CPU list", line);
            memcpy(a->cpu_pool, v, vl);
            a->cpu_pool[vl] = '\0';
        }
    }
    return NS_OK;
}

ns_err ns_pf_cpulist_count(const char *s, size_t n, uint64_t *count)
{
    *count = 0;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ')) {
        n--;
    }
    size_t at = 0;
    while (at < n) {
        const char *p = s + at;
        const char *comma = memchr(p, ',', n - at);
        size_t len = comma ? (size_t)(comma - p) : n - at;
        at += len + (comma ? 1 : 0);
        ENSURE(len > 0 && (comma == NULL || at < n), NS_E_PARSE, "CPU list: an empty entry");
        const char *dash = memchr(p, '-', len);
        uint64_t lo, hi;
        if (dash == NULL) {
            GUARD(parse_u64(p, len, NS_PF_CPU_MAX, &lo));
            hi = lo;
        } else {
            GUARD(parse_u64(p, (size_t)(dash - p), NS_PF_CPU_MAX, &lo));
            GUARD(parse_u64(dash + 1, len - (size_t)(dash - p) - 1, NS_PF_CPU_MAX, &hi));
            ENSURE(lo <= hi, NS_E_PARSE, "CPU list: a range that runs backwards");
        }
        *count += hi - lo + 1;
    }
    return NS_OK;
}

ns_err ns_pf_nitro_version(const char *text, size_t n, unsigned v[3])
{
    static const char tag[] = "Nitro CLI ";
    const size_t tl = sizeof tag - 1;
    size_t at = 0;
    while (at + tl <= n && memcmp(text + at, tag, tl) != 0) {
        at++;
    }
    ENSURE(at + tl <= n, NS_E_PARSE, "no \"Nitro CLI X.Y.Z\" in its --version output");
    at += tl;
    for (int i = 0; i < 3; i++) {
        size_t d = at;
        while (d < n && d - at < 6 && text[d] >= '0' && text[d] <= '9') {
            d++;
        }
        uint64_t x;
        ENSURE(parse_u64(text + at, d - at, 99999, &x) == NS_OK, NS_E_PARSE,
               "a malformed version number");
        v[i] = (unsigned)x;
        at = d;
        if (i < 2) {
            ENSURE(at < n && text[at] == '.', NS_E_PARSE, "a malformed version number");
            at++;
        }
    }
    return NS_OK;
}

/* Case-insensitive search of needle (NUL-terminated) in hay[0..n). */
static const uint8_t *find_ci(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i + k <= n; i++) {
        size_t j = 0;
        while (j < k) {
            int a = hay[i + j], b = (unsigned char)needle[j];
            a = (a >= 'A' && a <= 'Z') ? a + 32 : a;
            b = (b >= 'A' && b <= 'Z') ? b + 32 : b;
            if (a != b) {
                break;
            }
            j++;
        }
        if (j == k) {
            return hay + i;
        }
    }
    return NULL;
}

int ns_pf_policy_names_pcr0(const uint8_t *policy, size_t n, const char *pcr0_hex)
{
    /* A hex string of 96 digits does not occur by chance: present and under one of the two
     * condition keys that carry PCR0 is what KMS will compare. */
    int keyed = find_ci(policy, n, "kms:RecipientAttestation:PCR0\"") != NULL ||
                find_ci(policy, n, "kms:RecipientAttestation:ImageSha384\"") != NULL;
    return keyed && strlen(pcr0_hex) == 2 * NS_PCR_LEN && find_ci(policy, n, pcr0_hex) != NULL;
}

uint64_t ns_pf_min_memory_mib(uint64_t eif_bytes)
{
    const uint64_t mib = 1024 * 1024;
    return (eif_bytes * 4 + mib - 1) / mib;
}

/* ---- the checks ---- */

static void check_eif(pf_run *r)
{
    const ns_runcfg *c = r->cfg->c;
    struct stat st;
    if (stat(c->eif, &st) != 0 || !S_ISREG(st.st_mode)) {
        put(r, "eif", NS_PF_FAIL,
            "EIF_PATH=%s: not found; fix: build it (make eif) and set EIF_PATH to its absolute "
            "path",
            c->eif);
        return;
    }
    r->eif_size = (uint64_t)st.st_size;
    r->have_eif_size = 1;
    ns_buf b;
    ns_eif_info info;
    ns_buf_init(&b, PF_EIF_MAX);
    ns_err e = ns_read_path(c->eif, &b);
    if (e == NS_OK) {
        e = ns_eif_parse(&info, b.data, b.len);
    }
    ns_buf_free(&b);
    if (e != NS_OK) {
        put(r, "eif", NS_PF_FAIL, "EIF_PATH=%s: not a valid EIF (%s); fix: rebuild it (make eif)",
            c->eif, ns_err_msg());
        return;
    }
    ns_pcr_hex(r->pcr0, info.pcr0);
    r->have_pcr0 = 1;
    put(r, "eif", NS_PF_OK, "%s: %llu bytes, pcr0=%s%s", c->eif, (unsigned long long)r->eif_size,
        r->pcr0, info.is_signed ? " (signed: PCR8 too)" : "");
}

static void check_device(pf_run *r)
{
    char p[PF_PATH_MAX];
    struct stat st;
    host_path(r, p, sizeof p, "/dev/nitro_enclaves");
    if (stat(p, &st) != 0) {
        put(r, "device", NS_PF_FAIL,
            "/dev/nitro_enclaves: not found; fix: use an instance launched with enclaves enabled "
            "(--enclave-options 'Enabled=true'), install aws-nitro-enclaves-cli and load its "
            "driver (modprobe nitro_enclaves)");
        return;
    }
    if (!S_ISCHR(st.st_mode)) {
        put(r, "device", NS_PF_FAIL,
            "/dev/nitro_enclaves: not a character device; fix: remove it and reload the driver "
            "(modprobe -r nitro_enclaves && modprobe nitro_enclaves)");
        return;
    }
    if (access(p, R_OK | W_OK) != 0) {
        put(r, "device", NS_PF_FAIL,
            "/dev/nitro_enclaves: this user (uid %d) cannot open it read/write; fix: run as root "
            "or add the user to the ne group (usermod -aG ne USER, then log in again)",
            (int)getuid());
        return;
    }
    r->have_device = 1;
    put(r, "device", NS_PF_OK, "/dev/nitro_enclaves: a character device, read/write");
}

static void check_driver(pf_run *r)
{
    char p[PF_PATH_MAX];
    struct stat st;
    host_path(r, p, sizeof p, "/sys/module/nitro_enclaves");
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        put(r, "driver", NS_PF_FAIL,
            "the nitro_enclaves driver is not loaded (no /sys/module/nitro_enclaves); fix: "
            "modprobe nitro_enclaves (from aws-nitro-enclaves-cli), on an instance with enclaves "
            "enabled");
        return;
    }
    put(r, "driver", NS_PF_OK, "nitro_enclaves driver loaded");
}

static void check_allocator(pf_run *r, uint64_t mem, uint64_t cpu)
{
    ns_buf b;
    ns_pf_allocator a;
    ns_buf_init(&b, NS_PF_ALLOCATOR_MAX);
    ns_err e = read_host(r, "/etc/nitro_enclaves/allocator.yaml", &b);
    if (e == NS_OK) {
        e = ns_pf_allocator_parse(&a, (const char *)b.data, b.len);
    }
    ns_buf_free(&b);
    if (e != NS_OK) {
        put(r, "allocator", NS_PF_FAIL,
            "/etc/nitro_enclaves/allocator.yaml: %s; fix: install aws-nitro-enclaves-cli and set "
            "memory_mib: %llu and cpu_count: %llu in it, then " PF_RESTART_ALLOCATOR,
            ns_err_msg(), (unsigned long long)mem, (unsigned long long)cpu);
        return;
    }
    uint64_t pool = a.cpu_count;
    if (a.cpu_pool[0] && ns_pf_cpulist_count(a.cpu_pool, strlen(a.cpu_pool), &pool) != NS_OK) {
        pool = 0;
    }
    if (a.memory_mib < mem || pool < cpu) {
        put(r, "allocator", NS_PF_FAIL,
            "allocator.yaml reserves memory_mib=%llu and %llu CPUs, the enclave needs "
            "MEMORY_MIB=%llu and CPU_COUNT=%llu; fix: set memory_mib: %llu and cpu_count: %llu "
            "in /etc/nitro_enclaves/allocator.yaml, then " PF_RESTART_ALLOCATOR,
            (unsigned long long)a.memory_mib, (unsigned long long)pool, (unsigned long long)mem,
            (unsigned long long)cpu, (unsigned long long)(a.memory_mib > mem ? a.memory_mib : mem),
            (unsigned long long)(pool > cpu ? pool : cpu));
        return;
    }
    put(r, "allocator", NS_PF_OK, "allocator.yaml: memory_mib=%llu, %llu CPUs",
        (unsigned long long)a.memory_mib, (unsigned long long)pool);
}

static void check_cpu_pool(pf_run *r, uint64_t cpu)
{
    ns_buf b;
    uint64_t n = 0;
    ns_buf_init(&b, PF_SYSFILE_MAX);
    ns_err e = read_host(r, "/sys/module/nitro_enclaves/parameters/ne_cpus", &b);
    if (e == NS_OK) {
        e = ns_pf_cpulist_count((const char *)b.data, b.len, &n);
    }
    if (e != NS_OK || n < cpu) {
        put(r, "cpu-pool", NS_PF_FAIL,
            "the driver's CPU pool (ne_cpus) has %llu CPUs%s%s, CPU_COUNT=%llu; fix: "
            "systemctl enable --now nitro-enclaves-allocator.service (it offlines the CPUs of "
            "allocator.yaml for enclaves)",
            (unsigned long long)n, e != NS_OK ? ": " : "", e != NS_OK ? ns_err_msg() : "",
            (unsigned long long)cpu);
    } else {
        put(r, "cpu-pool", NS_PF_OK, "the allocator gave the driver CPUs %.*s",
            (int)strcspn((const char *)b.data, "\n"), (const char *)b.data);
    }
    ns_buf_free(&b);
}

static void check_hugepages(pf_run *r, uint64_t mem)
{
    char p[PF_PATH_MAX];
    host_path(r, p, sizeof p, "/sys/kernel/mm/hugepages");
    DIR *d = opendir(p);
    uint64_t free_kib = 0;
    char sizes[128] = "";
    size_t sl = 0;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        unsigned long long kib;
        char tail[4];
        if (sscanf(de->d_name, "hugepages-%llukB%3s", &kib, tail) != 1) {
            continue;
        }
        char f[PF_PATH_MAX + 300];
        snprintf(f, sizeof f, "/sys/kernel/mm/hugepages/%s/free_hugepages", de->d_name);
        ns_buf b;
        uint64_t pages = 0;
        ns_buf_init(&b, 64);
        if (read_host(r, f, &b) == NS_OK) {
            char *nl = strchr((char *)b.data, '\n');
            if (nl) {
                *nl = '\0';
            }
            if (ns_parse_uint((const char *)b.data, UINT32_MAX, &pages) != NS_OK) {
                pages = 0;
            }
        }
        ns_buf_free(&b);
        free_kib += pages * kib;
        if (pages && sl + 1 < sizeof sizes) {
            int w = snprintf(sizes + sl, sizeof sizes - sl, "%s%llu x %llu kB", sl ? ", " : "",
                             (unsigned long long)pages, kib);
            sl = w < 0 ? sl : sl + (size_t)w;
            sl = sl < sizeof sizes ? sl : sizeof sizes - 1; /* truncated: the text only */
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    if (free_kib / 1024 < mem) {
        put(r, "hugepages", NS_PF_FAIL,
            "free hugepages hold %llu MiB, MEMORY_MIB=%llu; fix: the allocator reserves them: "
            "set memory_mib in /etc/nitro_enclaves/allocator.yaml and " PF_RESTART_ALLOCATOR
            " (if it still cannot, memory is fragmented: reboot with the allocator enabled)",
            (unsigned long long)(free_kib / 1024), (unsigned long long)mem);
        return;
    }
    put(r, "hugepages", NS_PF_OK, "%llu MiB free in hugepages (%s)",
        (unsigned long long)(free_kib / 1024), sizes);
}

static void check_memory(pf_run *r, uint64_t mem)
{
    if (!r->have_eif_size) {
        put(r, "memory", NS_PF_SKIP, "not checked: no EIF to measure");
        return;
    }
    uint64_t need = ns_pf_min_memory_mib(r->eif_size);
    if (mem < need) {
        put(r, "memory", NS_PF_FAIL,
            "MEMORY_MIB=%llu is below 4x the EIF size (%llu MiB; nitro-cli refuses it with "
            "E26); fix: set MEMORY_MIB=%llu or more (and memory_mib in allocator.yaml to match)",
            (unsigned long long)mem, (unsigned long long)need, (unsigned long long)need);
        return;
    }
    put(r, "memory", NS_PF_OK, "MEMORY_MIB=%llu >= 4x the EIF (%llu MiB)", (unsigned long long)mem,
        (unsigned long long)need);
}

static void check_nitro_cli(pf_run *r)
{
    const char *name = r->cfg->c->nitro_name;
    if (r->cfg->nitro == NULL) {
        put(r, "nitro-cli", NS_PF_FAIL,
            "%s not found; fix: install the AWS Nitro Enclaves CLI (aws-nitro-enclaves-cli) or "
            "set NITRO_CLI to its path",
            name);
        return;
    }
    char *av[] = {(char *)r->cfg->nitro, "--version", NULL};
    ns_buf out;
    int st = -1;
    unsigned v[3] = {0, 0, 0}, min[3] = {0, 0, 0};
    ns_buf_init(&out, PF_SYSFILE_MAX);
    ns_err e =
        ns_supervise_run_ex(av, NULL, 0, &out, PF_NITRO_TIMEOUT_MS, &st, NS_SPAWN_STDERR_OUT);
    if (e == NS_OK && !ns_status_ok(st)) {
        e = ns_fail(NS_E_REMOTE, "it exited with an error");
    }
    if (e == NS_OK) {
        e = ns_pf_nitro_version((const char *)out.data, out.len, v);
    }
    ns_buf_free(&out);
    if (e == NS_OK && ns_pf_nitro_version("Nitro CLI " NS_PF_NITRO_MIN,
                                          sizeof("Nitro CLI " NS_PF_NITRO_MIN) - 1, min) != NS_OK) {
        e = ns_fail(NS_E_INTERNAL, "bad NS_PF_NITRO_MIN");
    }
    if (e != NS_OK) {
        put(r, "nitro-cli", NS_PF_FAIL,
            "%s --version: %s; fix: reinstall aws-nitro-enclaves-cli or point NITRO_CLI at it",
            r->cfg->nitro, ns_err_msg());
        return;
    }
    int old = v[0] != min[0] ? v[0] < min[0] : v[1] != min[1] ? v[1] < min[1] : v[2] < min[2];
    if (old) {
        put(r, "nitro-cli", NS_PF_FAIL,
            "%s is version %u.%u.%u, older than " NS_PF_NITRO_MIN
            " (no --enclave-name); fix: update aws-nitro-enclaves-cli",
            r->cfg->nitro, v[0], v[1], v[2]);
        return;
    }
    put(r, "nitro-cli", NS_PF_OK, "%s version %u.%u.%u", r->cfg->nitro, v[0], v[1], v[2]);
}

/* One listener of run-enclave's: free when this process can bind it now. */
static void check_port(pf_run *r, const char *what, const char *var, const char *addr)
{
    ns_addr a;
    int fd = -1;
    if (addr[0] == '\0') {
        return; /* disabled ("none") */
    }
    if (ns_addr_parse(&a, addr) != NS_OK) {
        put(r, "port", NS_PF_FAIL, "%s %s: %s; fix: correct %s", what, addr, ns_err_msg(), var);
        return;
    }
    if (a.kind == NS_ADDR_VSOCK && !r->have_device) {
        put(r, "port", NS_PF_SKIP, "%s %s: not checked: no Nitro device (vsock)", what, addr);
        return;
    }
    ns_err e = ns_addr_listen(&a, 1, 0, &fd);
    if (e != NS_OK) {
        put(r, "port", NS_PF_FAIL,
            "%s %s is in use or cannot be bound (%s); fix: stop what listens there (ss -lntp; "
            "another run-enclave?) or set %s",
            what, addr, ns_err_msg(), var);
        return;
    }
    ns_addr_unlisten(&a, fd);
    put(r, "port", NS_PF_OK, "%s %s is free", what, addr);
}

static void check_ports(pf_run *r)
{
    const ns_runcfg *c = r->cfg->c;
    if (c->kms) {
        check_port(r, "KMS proxy", "NSIGN_HOST_KMS_PROXY_LISTEN or KMS_PROXY_PORT", c->kms_listen);
    }
    check_port(r, "ingress", "NSIGN_HOST_GRPC_LISTEN or HOST_GRPC_PORT", c->grpc_listen);
    if (c->egress) {
        check_port(r, "egress", "NSIGN_HOST_EGRESS_LISTEN or HOST_EGRESS_VSOCK_PORT",
                   c->egress_listen);
    }
    check_port(r, "enclave logs", "NSIGN_HOST_LOG_LISTEN or ENCLAVE_LOG_VSOCK_PORT", c->log_listen);
    check_port(r, "audit trail", "NSIGN_HOST_AUDIT_LISTEN or AUDIT_VSOCK_PORT", c->audit_listen);
    check_port(r, "metrics", "NSIGN_HOST_METRICS_LISTEN", c->metrics_listen);
    check_port(r, "readiness", "NSIGN_HOST_READY_LISTEN", c->ready_listen);
}

static void check_imds(pf_run *r)
{
    ns_imds m;
    char role[NS_IMDS_ROLE_MAX] = "";
    ns_err e = ns_imds_init(&m, NULL);
    if (e == NS_OK) {
        e = ns_creds_new(&r->creds);
    }
    if (e == NS_OK) {
        e = ns_imds_fetch_creds(&m, NULL, r->creds, role, sizeof role);
    }
    if (e != NS_OK) {
        ns_creds_free(r->creds);
        r->creds = NULL;
        put(r, "imds", NS_PF_FAIL,
            "IMDSv2: %s; fix: attach an instance role (an instance profile) and allow IMDSv2 "
            "(aws ec2 modify-instance-metadata-options --http-tokens required "
            "--http-put-response-hop-limit 2 --http-endpoint enabled)",
            ns_err_msg());
        return;
    }
    put(r, "imds", NS_PF_OK, "IMDSv2 answers: instance role %s", role);
}

static void check_s3(pf_run *r, const char *var, const char *uri)
{
    ns_s3_uri u;
    ns_s3_opts o;
    ns_url ep;
    ns_tls_ca *ca = NULL;
    char region[NS_AWS_REGION_MAX];
    int custom = 0;
    if (r->creds == NULL) {
        put(r, "s3", NS_PF_SKIP, "%s %s: not checked: no credentials (see imds)", var, uri);
        return;
    }
    memset(&o, 0, sizeof o);
    ns_err e = ns_s3_uri_parse(&u, uri);
    if (e == NS_OK) {
        e = ns_aws_region(region, NULL);
    }
    if (e == NS_OK) {
        e = ns_aws_endpoint(&ep, "s3", region, &custom);
    }
    if (e == NS_OK) {
        e = ns_aws_trust(&ca, NULL);
    }
    if (e == NS_OK) {
        o.creds = r->creds;
        o.region = region;
        o.endpoint = custom ? &ep : NULL;
        o.ca = ca;
        o.progress_fd = -1;
        ns_retry_default(&o.retry);
        e = ns_s3_head(&o, &u);
    }
    ns_tls_ca_free(ca);
    if (e != NS_OK) {
        put(r, "s3", NS_PF_FAIL,
            "%s: %s; fix: upload the object, or allow the instance role s3:GetObject on it", var,
            ns_err_msg());
        return;
    }
    put(r, "s3", NS_PF_OK, "%s %s is readable", var, uri);
}

static void check_kms_policy(pf_run *r)
{
    const ns_runcfg *c = r->cfg->c;
    const char *key = c->kms_key_id;
    if (!r->have_pcr0) {
        put(r, "kms-policy", NS_PF_SKIP, "not checked: no EIF PCR0 (see eif)");
        return;
    }
    if (key[0] == '\0') {
        put(r, "kms-policy", NS_PF_SKIP,
            "not checked: KMS_KEY_ID is not set (set it to the key's id or ARN to check that its "
            "policy names PCR0 %s)",
            r->pcr0);
        return;
    }
    if (r->creds == NULL) {
        put(r, "kms-policy", NS_PF_SKIP, "not checked: no credentials (see imds)");
        return;
    }
    ns_kms_decrypt_req req;
    ns_buf policy;
    char arn[NS_KMS_ARN_MAX];
    ns_err e = NS_OK;
    memset(&req, 0, sizeof req);
    req.key_id = key;
    req.key_setting = "KMS_KEY_ID";
    ns_buf_init(&policy, NS_KMS_RESP_MAX);
    if (strncmp(key, "alias/", 6) == 0 || strstr(key, ":alias/") != NULL) {
        /* GetKeyPolicy takes no alias: DescribeKey names the key behind it. */
        e = ns_kms_describe_key_arn(arn, &req, r->creds);
        req.key_id = arn;
    }
    if (e == NS_OK) {
        e = ns_kms_get_key_policy(&policy, &req, r->creds);
    }
    if (e == NS_E_DENIED) {
        put(r, "kms-policy", NS_PF_SKIP,
            "not checked: the instance role may not read the key (%s); compare the policy's "
            "kms:RecipientAttestation:PCR0 with %s by hand, or allow kms:DescribeKey and "
            "kms:GetKeyPolicy (nsign kms-policy --iam does)",
            ns_err_msg(), r->pcr0);
    } else if (e != NS_OK) {
        put(r, "kms-policy", NS_PF_FAIL, "%s; fix: check KMS_KEY_ID and AWS_REGION", ns_err_msg());
    } else if (!ns_pf_policy_names_pcr0(policy.data, policy.len, r->pcr0)) {
        put(r, "kms-policy", NS_PF_FAIL,
            "the key policy of %s does not name this EIF's PCR0 %s under "
            "kms:RecipientAttestation: KMS will deny Decrypt; fix: put it in the policy (nsign "
            "kms-policy --eif %s ...; aws kms put-key-policy)",
            req.key_id, r->pcr0, c->eif);
    } else {
        put(r, "kms-policy", NS_PF_OK, "the key policy of %s names PCR0 %s", req.key_id, r->pcr0);
    }
    ns_buf_free(&policy);
}

int ns_preflight_run(const ns_pf_cfg *cfg, ns_pf_report_fn report, void *arg)
{
    pf_run r;
    uint64_t mem = 0, cpu = 0;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.report = report;
    r.arg = arg;
    if (ns_parse_uint(cfg->c->mem, UINT32_MAX, &mem) != NS_OK ||
        ns_parse_uint(cfg->c->cpu, NS_PF_CPU_MAX, &cpu) != NS_OK) {
        put(&r, "config", NS_PF_FAIL, "MEMORY_MIB or CPU_COUNT unreadable; fix: set numbers");
        return r.failed;
    }
    check_eif(&r);
    check_device(&r);
    check_driver(&r);
    check_allocator(&r, mem, cpu);
    check_cpu_pool(&r, cpu);
    check_hugepages(&r, mem);
    check_memory(&r, mem);
    check_nitro_cli(&r);
    check_ports(&r);
    check_imds(&r);
    check_s3(&r, "AGE_KEY_S3_URI", cfg->c->age_uri);
    check_s3(&r, "KEY_SHARES_S3_URI", cfg->c->shares_uri);
    check_kms_policy(&r);
    ns_creds_free(r.creds);
    return r.failed;
}
