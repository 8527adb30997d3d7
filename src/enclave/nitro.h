/*
 * nitro: the host's side of a real Nitro Enclave, through AWS's nitro-cli: run-enclave,
 * describe-enclaves, terminate-enclave, console; the lock file (NSIGN_RUN_DIR/NAME.pid, held
 * with flock by the run-enclave that supervises NAME) through which stop-enclave finds it; and
 * the liveness watch. run-enclave and stop-enclave share it; emu.h is the local stand-in.
 *
 * nitro-cli prints JSON on stdout (aws-nitro-enclaves-cli's EnclaveDescribeInfo and
 * EnclaveRunInfo): describe-enclaves an array of objects {"EnclaveName", "EnclaveID",
 * "ProcessID", "EnclaveCID", "NumberOfCPUs", "CPUIDs", "MemoryMiB", "State", "Flags",
 * "Measurements"...}; run-enclave a line of text ("Started enclave with enclave-cid: ...") and
 * then one such object. They are parsed with cJSON (ns_nitro_*_parse, no I/O: unit-tested and
 * fuzzed); EnclaveName is optional (older nitro-cli versions have none), a member present with
 * the wrong type makes the whole output malformed. Nothing here prints.
 */
#ifndef NS_NITRO_H
#define NS_NITRO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "supervise.h"

#define NS_NITRO_OUT_MAX (256 * 1024)
#define NS_NITRO_TIMEOUT_MS (10 * 60 * 1000)
#define NS_NITRO_NAME_MAX 512
#define NS_NITRO_ID_MAX 128
#define NS_NITRO_WORD_MAX 32
#define NS_NITRO_RUN_ARGV_MAX 16

/* One enclave as nitro-cli describes it ("" or -1 for a member it did not print). */
typedef struct {
    char name[NS_NITRO_NAME_MAX];  /* EnclaveName */
    char id[NS_NITRO_ID_MAX];      /* EnclaveID */
    char state[NS_NITRO_WORD_MAX]; /* State: RUNNING, TERMINATING... */
    char flags[NS_NITRO_WORD_MAX]; /* Flags: NONE, DEBUG_MODE */
    int64_t pid;                   /* ProcessID */
    int64_t cid;                   /* EnclaveCID */
    int64_t cpus;                  /* NumberOfCPUs */
    int64_t mem_mib;               /* MemoryMiB */
} ns_nitro_enclave;

/*
 * describe-enclaves' output: looks name up. *listed = 1 and *found filled (when found is not
 * NULL) when an enclave of that name is listed; *count (when not NULL) is how many are.
 * NS_E_PARSE when the output is not an array of enclave objects (then nothing is known).
 */
ns_err ns_nitro_describe_parse(const char *text, size_t len, const char *name,
                               ns_nitro_enclave *found, int *listed, size_t *count) NS_MUST_CHECK;

/* run-enclave's output (text lines, then the object of the enclave it started; stderr may be
 * mixed in). NS_E_PARSE when there is no such object with an EnclaveID. */
ns_err ns_nitro_run_parse(const char *text, size_t len, ns_nitro_enclave *out) NS_MUST_CHECK;

/* Whether nitro-cli's error text says the enclave allocator lacks memory or CPUs (E27, E22). */
int ns_nitro_is_allocator_error(const char *text);
/* Whether it says the memory asked for is below 4x the EIF's size (E26): MEMORY_MIB's fault,
 * not the allocator's. */
int ns_nitro_is_memory_request_error(const char *text);

/* What `nitro-cli run-enclave` is given. */
typedef struct {
    const char *eif, *cpu, *mem, *cid, *name;
    int debug;
} ns_nitro_run_args;

/* The argv of `nitro-cli run-enclave` (for the run and the dry run); av holds
 * NS_NITRO_RUN_ARGV_MAX pointers. */
void ns_nitro_run_argv(char **av, char *nitro, const ns_nitro_run_args *a);

/*
 * Runs the argv of ns_nitro_run_argv. NS_OK when nitro-cli exited 0 (*started from its output
 * when it could be parsed, else id ""). A non-zero exit gives NS_E_REMOTE whose message says
 * what to do, and *said holds nitro-cli's own words (stdout and stderr: its error code and log
 * path) for the caller to echo; a timeout or a stop request ns_supervise_run's error. *said
 * must be initialized; bounded by NS_NITRO_OUT_MAX.
 */
ns_err ns_nitro_run(char *const av[], const ns_nitro_run_args *a, const char *console_file,
                    const char *nitro_name, ns_nitro_enclave *started, ns_buf *said) NS_MUST_CHECK;

/* Runs describe-enclaves: *listed as ns_nitro_describe_parse. A failure (exit status, timeout,
 * output that is not the array) proves nothing about the enclave. */
ns_err ns_nitro_describe(const char *nitro, const char *name, int *listed) NS_MUST_CHECK;

/* Runs terminate-enclave --enclave-name name. */
ns_err ns_nitro_terminate(const char *nitro, const char *name) NS_MUST_CHECK;

/* The argv of `nitro-cli console --enclave-name name` (5 pointers). */
void ns_nitro_console_argv(char **av, char *nitro, char *name);
/* Starts that console, its output appended to console_file (created 0600). */
ns_err ns_nitro_console_start(ns_supervise_child *ch, char *const av[],
                              const char *console_file) NS_MUST_CHECK;
/* The console exits by itself once the enclave is gone, after its last lines (usually why the
 * enclave stopped): waits up to drain_ms for that, then stops it. NS_E_TIMEOUT when it had to
 * be stopped (the file may lack the last lines). Safe on a console that never started. */
ns_err ns_nitro_console_drain(ns_supervise_child *ch, int drain_ms, int grace_ms) NS_MUST_CHECK;

/*
 * The liveness watch: describe-enclaves at intervals. NS_OK while the enclave is listed (or when
 * describe-enclaves failed: w->failures counts failures in a row and w->error holds the last
 * one's message; a failure is never a reason to stop the enclave). w->recovered is the number
 * of failures before an answer that ended them (0 otherwise). NS_E_CLOSED when nitro-cli no
 * longer lists it.
 */
typedef struct {
    int failures;
    int recovered;
    char error[256];
} ns_nitro_watch;
ns_err ns_nitro_watch_check(ns_nitro_watch *w, const char *nitro, const char *name) NS_MUST_CHECK;

/* ---- the lock file ---- */

typedef struct {
    int fd; /* -1 when not held or open */
    char path[NS_NITRO_NAME_MAX * 2 + 8];
} ns_nitro_lock;

/* "RUN_DIR/NAME.pid". */
ns_err ns_nitro_lock_path(char *out, size_t cap, const char *run_dir,
                          const char *name) NS_MUST_CHECK;
/* Creates run_dir (0700), takes the lock of name and writes this process's pid into it.
 * NS_E_USAGE naming the holder's pid when another run-enclave holds it. */
ns_err ns_nitro_lock_take(ns_nitro_lock *l, const char *run_dir, const char *name) NS_MUST_CHECK;
/* Removes and closes a lock taken by ns_nitro_lock_take (or opened by _probe). */
void ns_nitro_lock_release(ns_nitro_lock *l);

typedef enum {
    NS_NITRO_LOCK_NONE,  /* no lock file */
    NS_NITRO_LOCK_STALE, /* a lock file nobody holds: removed */
    NS_NITRO_LOCK_HELD,  /* held: *pid is its holder's; l->fd stays open for _wait */
} ns_nitro_lock_state;

/* stop-enclave's view of name's lock. NS_E_REMOTE when held but holding no pid. */
ns_err ns_nitro_lock_probe(ns_nitro_lock *l, const char *run_dir, const char *name,
                           ns_nitro_lock_state *state, long *pid) NS_MUST_CHECK;
/* Waits until the holder releases a _probe'd lock (it exited). NS_E_TIMEOUT after timeout_ms. */
ns_err ns_nitro_lock_wait_free(ns_nitro_lock *l, int64_t timeout_ms) NS_MUST_CHECK;

#endif
