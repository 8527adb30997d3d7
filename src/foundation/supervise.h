/*
 * supervise: child processes for the host-side coordinators (run-enclave, stop-enclave):
 * spawn with optional pipes, run to completion feeding stdin from memory and collecting stdout
 * into a bounded (optionally secret) buffer, wait with a deadline, stop (SIGTERM, grace, SIGKILL).
 *
 * Children get PR_SET_PDEATHSIG(SIGTERM), so nothing outlives a coordinator killed with SIGKILL,
 * and start with default signal dispositions and an empty signal mask. Secrets travel through
 * pipes only, never argv or files. Nothing here prints.
 */
#ifndef NS_SUPERVISE_H
#define NS_SUPERVISE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"
#include "stop.h"

#define NS_SPAWN_STDIN_PIPE 1u  /* c->in_fd: write end of the child's stdin */
#define NS_SPAWN_STDOUT_PIPE 2u /* c->out_fd: read end of the child's stdout */
#define NS_SPAWN_STDIN_NULL 4u  /* stdin from /dev/null */
#define NS_SPAWN_STDERR_OUT 8u  /* stderr into the stdout pipe (with NS_SPAWN_STDOUT_PIPE) */
#define NS_SPAWN_ARGV_MAX 64

typedef struct {
    pid_t pid; /* 0 when not running */
    int in_fd;
    int out_fd;
} ns_supervise_child;

/* Starts argv[0] (a path, or a name looked up in PATH). stdout_fd >= 0 becomes its stdout. */
ns_err ns_supervise_spawn(ns_supervise_child *c, char *const argv[], unsigned flags,
                          int stdout_fd) NS_MUST_CHECK;

/* Waits for exit. timeout_ms < 0: forever. NS_E_TIMEOUT when still running. */
ns_err ns_supervise_wait(ns_supervise_child *c, int timeout_ms, int *status) NS_MUST_CHECK;

/* Non-blocking: *exited = 1 and *status when it has exited. */
ns_err ns_supervise_poll(ns_supervise_child *c, int *exited, int *status) NS_MUST_CHECK;

/* SIGTERM, wait up to grace_ms, then SIGKILL and reap. Safe on a child that is not running. */
void ns_supervise_stop(ns_supervise_child *c, int grace_ms);

/*
 * Runs argv to completion within timeout_ms: writes in[0..in_len) to its stdin (when in is not
 * NULL; else stdin is /dev/null) and appends its stdout to out (when out is not NULL; bounded by
 * out's max: a child that writes more is killed and NS_E_TOO_BIG returned). *status is the
 * wait status. A child killed on timeout gives NS_E_TIMEOUT.
 */
ns_err ns_supervise_run(char *const argv[], const uint8_t *in, size_t in_len, ns_buf *out,
                        int timeout_ms, int *status) NS_MUST_CHECK;
/* ns_supervise_run with extra spawn flags (e.g. NS_SPAWN_STDERR_OUT to collect a tool's error
 * messages). */
ns_err ns_supervise_run_ex(char *const argv[], const uint8_t *in, size_t in_len, ns_buf *out,
                           int timeout_ms, int *status, unsigned flags) NS_MUST_CHECK;

/*
 * A flag (set by the caller's signal handler) that makes a running
 * ns_supervise_run/ns_supervise_run_ex stop its child and return NS_E_CLOSED promptly, so SIGTERM
 * never waits for a long step. NULL: none.
 */
void ns_supervise_set_cancel(ns_stop *flag);

/* "exit 3", "killed by signal 9". */
void ns_status_str(int status, char *out, size_t cap);
/* Whether status is a normal exit 0. */
int ns_status_ok(int status);

/* The absolute path of a program: as is when it contains '/', else searched in PATH. */
ns_err ns_supervise_which(const char *name, char *out, size_t cap) NS_MUST_CHECK;

/* The path of the running executable (/proc/self/exe). */
ns_err ns_self_exe(char *out, size_t cap) NS_MUST_CHECK;

#endif
