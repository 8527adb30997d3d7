/*
 * nitro: see nitro.h. Every nitro-cli call runs to completion under NS_NITRO_TIMEOUT_MS with its
 * output bounded by NS_NITRO_OUT_MAX (ns_supervise_run); the caller's cancel flag
 * (ns_supervise_set_cancel) stops a call promptly.
 */
#include "nitro.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iox.h"

#define NITRO_LOCK_TICK_MS 100

/* ---- parsing ---- */

/* A string member: absent is fine (out = ""), another type is not. Over-long values truncate
 * nothing: they are malformed. */
static ns_err member_str(const cJSON *o, const char *key, char *out, size_t cap, int required)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, key);
    out[0] = '\0';
    if (m == NULL) {
        ENSURE(!required, NS_E_PARSE, "an enclave without %s", key);
        return NS_OK;
    }
    ENSURE(cJSON_IsString(m) && m->valuestring != NULL, NS_E_PARSE, "%s is not a string", key);
    size_t n = strlen(m->valuestring);
    ENSURE(n < cap, NS_E_PARSE, "%s is longer than %zu bytes", key, cap - 1);
    memcpy(out, m->valuestring, n + 1);
    return NS_OK;
}

/* A non-negative integer member: absent gives -1. */
static ns_err member_int(const cJSON *o, const char *key, int64_t *out)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = -1;
    if (m == NULL) {
        return NS_OK;
    }
    ENSURE(cJSON_IsNumber(m) && m->valuedouble >= 0 && m->valuedouble <= 9007199254740992.0 &&
               (double)(int64_t)m->valuedouble == m->valuedouble,
           NS_E_PARSE, "%s is not a non-negative integer", key);
    *out = (int64_t)m->valuedouble;
    return NS_OK;
}

/* One enclave object. The EnclaveID is always printed by nitro-cli; State by describe only. */
static ns_err parse_enclave(const cJSON *o, ns_nitro_enclave *e, int describe)
{
    memset(e, 0, sizeof *e);
    ENSURE(cJSON_IsObject(o), NS_E_PARSE, "an enclave is not a JSON object");
    GUARD(member_str(o, "EnclaveName", e->name, sizeof e->name, 0));
    GUARD(member_str(o, "EnclaveID", e->id, sizeof e->id, 1));
    ENSURE(e->id[0] != '\0', NS_E_PARSE, "an enclave with an empty EnclaveID");
    GUARD(member_str(o, "State", e->state, sizeof e->state, describe));
    GUARD(member_str(o, "Flags", e->flags, sizeof e->flags, 0));
    GUARD(member_int(o, "ProcessID", &e->pid));
    GUARD(member_int(o, "EnclaveCID", &e->cid));
    GUARD(member_int(o, "NumberOfCPUs", &e->cpus));
    return member_int(o, "MemoryMiB", &e->mem_mib);
}

ns_err ns_nitro_describe_parse(const char *text, size_t len, const char *name,
                               ns_nitro_enclave *found, int *listed, size_t *count)
{
    ns_nitro_enclave e;
    size_t n = 0;
    ns_err err = NS_OK;
    *listed = 0;
    if (count != NULL) {
        *count = 0;
    }
    cJSON *arr = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        BAIL(NS_E_PARSE, "the output is not a JSON array");
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        err = parse_enclave(it, &e, 1);
        if (err != NS_OK) {
            err = ns_fail_ctx(err, "enclave %zu of the output", n);
            break;
        }
        n++;
        if (!*listed && e.name[0] != '\0' && strcmp(e.name, name) == 0) {
            *listed = 1;
            if (found != NULL) {
                *found = e;
            }
        }
    }
    cJSON_Delete(arr);
    if (err != NS_OK) {
        *listed = 0;
        return err;
    }
    if (count != NULL) {
        *count = n;
    }
    return NS_OK;
}

ns_err ns_nitro_run_parse(const char *text, size_t len, ns_nitro_enclave *out)
{
    /* The object starts at the first line that opens with '{'. */
    size_t at = 0;
    while (at < len && !(text[at] == '{' && (at == 0 || text[at - 1] == '\n'))) {
        at++;
    }
    memset(out, 0, sizeof *out);
    ENSURE(at < len, NS_E_PARSE, "the output has no JSON object");
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(text + at, len - at, &end, 0);
    ENSURE(o != NULL, NS_E_PARSE, "the output's JSON object is malformed");
    ns_err e = parse_enclave(o, out, 0);
    cJSON_Delete(o);
    if (e != NS_OK) {
        memset(out, 0, sizeof *out);
        return ns_fail_ctx(e, "the started enclave");
    }
    return NS_OK;
}

int ns_nitro_is_memory_request_error(const char *text)
{
    return strstr(text, "E26") != NULL || strstr(text, "nsufficient memory requested") != NULL;
}

int ns_nitro_is_allocator_error(const char *text)
{
    return !ns_nitro_is_memory_request_error(text) &&
           (strstr(text, "llocator") || strstr(text, "nsufficient memory") || strstr(text, "E27") ||
            strstr(text, "E22") || strstr(text, "hugepage"));
}

/* ---- commands ---- */

/* Runs a nitro-cli command; NS_E_REMOTE with its exit status when that is not 0. */
static ns_err run_cmd(char *const av[], ns_buf *out, unsigned flags)
{
    int st = -1;
    char s[64];
    GUARD(ns_supervise_run_ex(av, NULL, 0, out, NS_NITRO_TIMEOUT_MS, &st, flags));
    if (!ns_status_ok(st)) {
        ns_status_str(st, s, sizeof s);
        BAIL(NS_E_REMOTE, "%s", s);
    }
    return NS_OK;
}

void ns_nitro_run_argv(char **av, char *nitro, const ns_nitro_run_args *a)
{
    int n = 0;
    av[n++] = nitro;
    av[n++] = "run-enclave";
    av[n++] = "--eif-path";
    av[n++] = (char *)a->eif;
    av[n++] = "--cpu-count";
    av[n++] = (char *)a->cpu;
    av[n++] = "--memory";
    av[n++] = (char *)a->mem;
    av[n++] = "--enclave-cid";
    av[n++] = (char *)a->cid;
    av[n++] = "--enclave-name";
    av[n++] = (char *)a->name;
    if (a->debug) {
        av[n++] = "--debug-mode";
    }
    av[n] = NULL;
}

ns_err ns_nitro_run(char *const av[], const ns_nitro_run_args *a, const char *console_file,
                    const char *nitro_name, ns_nitro_enclave *started, ns_buf *said)
{
    ns_err e = run_cmd(av, said, NS_SPAWN_STDERR_OUT);
    if (e == NS_OK) {
        if (ns_nitro_run_parse((const char *)said->data, said->len, started) != NS_OK) {
            memset(started, 0, sizeof *started);
        }
        return NS_OK;
    }
    if (e != NS_E_REMOTE) {
        return e; /* timeout, a stop request: the supervisor's message names the command */
    }
    char st[64];
    snprintf(st, sizeof st, "%s", ns_err_msg());
    if (ns_buf_cstr(said) == NS_OK && ns_nitro_is_memory_request_error((const char *)said->data)) {
        BAIL(NS_E_REMOTE,
             "nitro-cli run-enclave failed (%s): MEMORY_MIB=%s is below 4x the EIF size "
             "(nitro-cli's E26: its message above names the minimum): raise MEMORY_MIB to at "
             "least that (and memory_mib in /etc/nitro_enclaves/allocator.yaml to match); "
             "`nsign run-enclave --preflight` checks both",
             st, a->mem);
    }
    if (ns_buf_cstr(said) == NS_OK && ns_nitro_is_allocator_error((const char *)said->data)) {
        BAIL(NS_E_REMOTE,
             "nitro-cli run-enclave failed (%s): the enclave allocator has too little memory or "
             "CPUs: set memory_mib >= %s and cpu_count >= %s in "
             "/etc/nitro_enclaves/allocator.yaml, then `systemctl restart "
             "nitro-enclaves-allocator.service`",
             st, a->mem, a->cpu);
    }
    BAIL(NS_E_REMOTE,
         "nitro-cli run-enclave failed (%s): see nitro-cli's message above and "
         "/var/log/nitro_enclaves/; if the enclave failed to boot, rerun with DEBUG_MODE=1 and "
         "read its console (%s, or `%s console --enclave-name %s`)",
         st, console_file, nitro_name, a->name);
}

ns_err ns_nitro_describe(const char *nitro, const char *name, int *listed)
{
    char *av[] = {(char *)nitro, "describe-enclaves", NULL};
    ns_buf out;
    *listed = 0;
    ns_buf_init(&out, NS_NITRO_OUT_MAX);
    ns_err e = run_cmd(av, &out, 0);
    if (e == NS_OK) {
        e = ns_nitro_describe_parse((const char *)out.data, out.len, name, NULL, listed, NULL);
    }
    ns_buf_free(&out);
    return e;
}

ns_err ns_nitro_terminate(const char *nitro, const char *name)
{
    char *av[] = {(char *)nitro, "terminate-enclave", "--enclave-name", (char *)name, NULL};
    ns_buf out;
    ns_buf_init(&out, NS_NITRO_OUT_MAX);
    ns_err e = run_cmd(av, &out, 0);
    ns_buf_free(&out);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "nitro-cli terminate-enclave --enclave-name %s", name);
    }
    return NS_OK;
}

void ns_nitro_console_argv(char **av, char *nitro, char *name)
{
    av[0] = nitro;
    av[1] = "console";
    av[2] = "--enclave-name";
    av[3] = name;
    av[4] = NULL;
}

ns_err ns_nitro_console_start(ns_supervise_child *ch, char *const av[], const char *console_file)
{
    int fd;
    GUARD(ns_open_private(&fd, console_file, NS_OPEN_APPEND, "CONSOLE_FILE"));
    ns_err e = ns_supervise_spawn(ch, av, NS_SPAWN_STDIN_NULL, fd);
    close(fd);
    return e;
}

ns_err ns_nitro_console_drain(ns_supervise_child *ch, int drain_ms, int grace_ms)
{
    int st;
    ns_err e = NS_OK;
    if (ch->pid > 0 && ns_supervise_wait(ch, drain_ms, &st) != NS_OK) {
        e = ns_fail(NS_E_TIMEOUT,
                    "nitro-cli console still running %d ms after the enclave "
                    "stopped: stopping it",
                    drain_ms);
    }
    ns_supervise_stop(ch, grace_ms);
    return e;
}

ns_err ns_nitro_watch_check(ns_nitro_watch *w, const char *nitro, const char *name)
{
    int listed = 0;
    w->recovered = 0;
    if (ns_nitro_describe(nitro, name, &listed) != NS_OK) {
        w->failures++;
        snprintf(w->error, sizeof w->error, "%s", ns_err_msg());
        return NS_OK;
    }
    w->recovered = w->failures;
    w->failures = 0;
    ENSURE(listed, NS_E_CLOSED, "enclave %s is no longer running: it exited or was terminated",
           name);
    return NS_OK;
}

/* ---- the lock file ---- */

ns_err ns_nitro_lock_path(char *out, size_t cap, const char *run_dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s.pid", run_dir, name);
    ENSURE(n > 0 && (size_t)n < cap, NS_E_TOO_BIG, "the lock file path %s/%s.pid is too long",
           run_dir, name);
    return NS_OK;
}

/* The pid written in an open lock file ("" when none). */
static void lock_read_pid(int fd, char *pid, size_t cap)
{
    ssize_t n = pread(fd, pid, cap - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
}

ns_err ns_nitro_lock_take(ns_nitro_lock *l, const char *run_dir, const char *name)
{
    l->fd = -1;
    if (mkdir(run_dir, 0700) != 0 && errno != EEXIST) {
        return ns_fail_errno(NS_E_IO, "mkdir NSIGN_RUN_DIR %s", run_dir);
    }
    GUARD(ns_nitro_lock_path(l->path, sizeof l->path, run_dir, name));
    GUARD(ns_open_private(&l->fd, l->path, NS_OPEN_LOCK, "the lock file"));
    if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32];
        lock_read_pid(l->fd, pid, sizeof pid);
        close(l->fd);
        l->fd = -1;
        BAIL(NS_E_USAGE, "another run-enclave for %s is running (pid %s, lock %s)", name,
             pid[0] ? pid : "?", l->path);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, pid, (size_t)n, 0) != n) {
        return ns_fail_errno(NS_E_IO, "write lock file %s", l->path);
    }
    return NS_OK;
}

void ns_nitro_lock_release(ns_nitro_lock *l)
{
    if (l->fd >= 0) {
        unlink(l->path);
        close(l->fd);
        l->fd = -1;
    }
}

ns_err ns_nitro_lock_probe(ns_nitro_lock *l, const char *run_dir, const char *name,
                           ns_nitro_lock_state *state, long *pid)
{
    char buf[32];
    *state = NS_NITRO_LOCK_NONE;
    *pid = 0;
    l->fd = -1;
    GUARD(ns_nitro_lock_path(l->path, sizeof l->path, run_dir, name));
    ns_err e = ns_open_private(&l->fd, l->path, NS_OPEN_LOCK_EXISTING, "the lock file");
    if (e == NS_E_NOT_FOUND) {
        return NS_OK;
    }
    GUARD(e);
    if (flock(l->fd, LOCK_EX | LOCK_NB) == 0) {
        *state = NS_NITRO_LOCK_STALE;
        ns_nitro_lock_release(l);
        return NS_OK;
    }
    lock_read_pid(l->fd, buf, sizeof buf);
    *pid = strtol(buf, NULL, 10);
    if (*pid <= 1) {
        close(l->fd);
        l->fd = -1;
        BAIL(NS_E_REMOTE, "lock %s is held but holds no pid; stop that run-enclave by hand",
             l->path);
    }
    *state = NS_NITRO_LOCK_HELD;
    return NS_OK;
}

ns_err ns_nitro_lock_wait_free(ns_nitro_lock *l, int64_t timeout_ms)
{
    int64_t deadline = ns_now_ms() + timeout_ms;
    while (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
        ENSURE(ns_now_ms() < deadline, NS_E_TIMEOUT, "the lock %s is still held after %lld s",
               l->path, (long long)(timeout_ms / 1000));
        usleep(NITRO_LOCK_TICK_MS * 1000);
    }
    close(l->fd);
    l->fd = -1;
    return NS_OK;
}
