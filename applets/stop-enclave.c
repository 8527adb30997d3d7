/*
 * stop-enclave: the seed's stop-enclave.sh. Asks the run-enclave supervising ENCLAVE_NAME (found
 * through its lock file NSIGN_RUN_DIR/ENCLAVE_NAME.pid, held with flock while it runs) to stop,
 * which stops its bridges and terminates the enclave; then makes sure the enclave is gone with
 * `nitro-cli terminate-enclave`. It only signals the process holding the lock: no process is
 * looked up by name. The variables are runcfg.h's (the same names, defaults and checks as
 * run-enclave's), the lock and nitro-cli nitro.h's.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "cli.h"
#include "iox.h"
#include "log.h"
#include "nitro.h"
#include "runcfg.h"
#include "supervise.h"

#define SE_DEFAULT_WAIT_S 60
#define SE_DRAIN_MAX_S 3600
#define SE_PATH_MAX 4096

static const char usage_text[] =
    "usage: nsign stop-enclave [--dry-run] [--timeout SECONDS] [--drain SECONDS]\n"
    "\n"
    "Stops the enclave ENCLAVE_NAME and the bridges its run-enclave started: sends SIGTERM to\n"
    "the run-enclave holding NSIGN_RUN_DIR/ENCLAVE_NAME.pid, waits for it to finish (it stops\n"
    "its bridges and terminates the enclave), then runs `nitro-cli terminate-enclave` if the\n"
    "enclave is still listed by `nitro-cli describe-enclaves`.\n"
    "\n"
    "options:\n"
    "  --dry-run           print what it would do\n"
    "  --timeout SECONDS   how long to wait for run-enclave to stop (default 60), on top\n"
    "                      of --drain\n"
    "  --drain SECONDS     drain for at most this long instead of run-enclave's\n"
    "                      NSIGN_HOST_DRAIN_SECONDS (default 30): /ready turns 503, the\n"
    "                      enclave sends GOAWAY, refuses new connections and finishes the\n"
    "                      calls in flight, then stops; 0 stops at once (docs/fleet.md)\n"
    "\n"
    "environment: ENCLAVE_NAME=sign-service-enclave, NITRO_CLI=nitro-cli,\n"
    "  NSIGN_RUN_DIR=/run/nsign, NSIGN_EMULATOR=1 (run-enclave --emulator: stopping it stops\n"
    "  QEMU; nitro-cli is not consulted)\n"
    "\n"
    "exit status: 0 stopped (or nothing was running), 1 failure, 2 usage.\n";

/* Options; -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, int *dry, int64_t *wait_ms, int *drain_s)
{
    if (ns_cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return NS_EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) {
            *dry = 1;
        } else if (strcmp(argv[i], "--drain") == 0 && i + 1 < argc) {
            uint64_t n;
            if (ns_parse_uint(argv[++i], SE_DRAIN_MAX_S, &n) != NS_OK) {
                return ns_cli_usage_error("--drain %s: want 0-%d seconds", argv[i], SE_DRAIN_MAX_S);
            }
            *drain_s = (int)n;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if (ns_parse_seconds(argv[++i], wait_ms) != NS_OK || *wait_ms <= 0) {
                return ns_cli_usage_error("--timeout %s: want seconds > 0", argv[i]);
            }
        } else {
            return ns_cli_usage_error("unknown argument '%s'", argv[i]);
        }
    }
    return -1;
}

static int show_plan(const ns_runcfg_common *c, const char *nitro, int64_t wait_ms, int drain_s)
{
    char lock[SE_PATH_MAX];
    if (ns_nitro_lock_path(lock, sizeof lock, c->run_dir, c->name) != NS_OK) {
        ns_log_err(NS_E_TOO_BIG, "");
        return NS_EXIT_FAIL;
    }
    if (drain_s >= 0) {
        printf(" 1 signal       SIGTERM (sigqueue, drain %d s) to the run-enclave holding %s; "
               "wait up to %lld s\n",
               drain_s, lock, (long long)(wait_ms / 1000));
    } else {
        printf(" 1 signal       SIGTERM to the run-enclave holding %s; wait up to %lld s\n", lock,
               (long long)(wait_ms / 1000));
    }
    printf(" 2 check        %s describe-enclaves\n", nitro);
    printf(" 3 terminate    %s terminate-enclave --enclave-name %s   # if still listed\n", nitro,
           c->name);
    return NS_EXIT_OK;
}

/* Asks the run-enclave holding the lock to stop and waits until it has (it released the lock). */
static ns_err stop_run_enclave(const ns_runcfg_common *c, int64_t wait_ms, int drain_s)
{
    ns_nitro_lock l;
    ns_nitro_lock_state state;
    long pid;
    GUARD(ns_nitro_lock_probe(&l, c->run_dir, c->name, &state, &pid));
    if (state == NS_NITRO_LOCK_NONE) {
        ns_info("no run-enclave lock at %s", l.path);
        return NS_OK;
    }
    if (state == NS_NITRO_LOCK_STALE) {
        ns_info("no run-enclave is running for %s (stale lock %s removed)", c->name, l.path);
        return NS_OK;
    }
    ns_info("stopping run-enclave pid=%ld name=%s", pid, c->name);
    /* --drain: the drain time rides on the signal (sigqueue's value), read by run-enclave. */
    int r = drain_s >= 0 ? sigqueue((pid_t)pid, SIGTERM, (union sigval){.sival_int = drain_s})
                         : kill((pid_t)pid, SIGTERM);
    if (r != 0 && errno != ESRCH) {
        ns_err e = ns_fail_errno(NS_E_IO, "cannot signal run-enclave pid %ld", pid);
        ns_nitro_lock_release(&l);
        return e;
    }
    if (ns_nitro_lock_wait_free(&l, wait_ms) != NS_OK) {
        close(l.fd);
        BAIL(NS_E_TIMEOUT,
             "run-enclave pid %ld did not stop within %lld s; it may still be terminating the "
             "enclave: check `%s describe-enclaves`",
             pid, (long long)(wait_ms / 1000), c->nitro_name);
    }
    ns_info("run-enclave stopped");
    return NS_OK;
}

/* Makes sure nitro-cli no longer lists the enclave: terminates it when it does. */
static ns_err terminate_if_listed(const ns_runcfg_common *c, const char *nitro)
{
    int listed = 0;
    ns_err e = ns_nitro_describe(nitro, c->name, &listed);
    if (e != NS_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", ns_err_msg());
        BAIL(e, "%s describe-enclaves failed (%s): see its message above", c->nitro_name, why);
    }
    if (!listed) {
        ns_info("enclave %s is not running", c->name);
        return NS_OK;
    }
    if (ns_nitro_terminate(nitro, c->name) != NS_OK) {
        BAIL(NS_E_REMOTE,
             "%s terminate-enclave --enclave-name %s failed; see /var/log/nitro_enclaves/",
             c->nitro_name, c->name);
    }
    ns_info("enclave %s terminated", c->name);
    return NS_OK;
}

int stop_enclave_main(int argc, char **argv)
{
    int dry = 0;
    int64_t wait_ms = SE_DEFAULT_WAIT_S * 1000;
    int drain_s = -1;
    ns_runcfg_common c;
    char nitro[SE_PATH_MAX];

    int rc = parse_args(argc, argv, &dry, &wait_ms, &drain_s);
    if (rc >= 0) {
        return rc;
    }
    if (drain_s > 0) {
        wait_ms += (int64_t)drain_s * 1000;
    }
    if (ns_runcfg_common_load(&c, ns_enclave_getenv, NULL) != NS_OK) {
        return ns_cli_usage_error("%s", ns_err_msg());
    }
    int have_nitro = ns_supervise_which(c.nitro_name, nitro, sizeof nitro) == NS_OK;
    if (!have_nitro) {
        snprintf(nitro, sizeof nitro, "%s", c.nitro_name);
    }
    if (dry) {
        return show_plan(&c, nitro, wait_ms, drain_s);
    }
    ns_err e = stop_run_enclave(&c, wait_ms, drain_s);
    if (e == NS_OK && c.emu) {
        /* run-enclave --emulator stopped QEMU (its child) itself; there is no nitro-cli. */
        return NS_EXIT_OK;
    }
    if (e == NS_OK && !have_nitro) {
        e = ns_fail(NS_E_NOT_FOUND,
                    "%s not found: install aws-nitro-enclaves-cli or set NITRO_CLI; cannot check "
                    "whether enclave %s still runs",
                    c.nitro_name, c.name);
    }
    if (e == NS_OK) {
        e = terminate_if_listed(&c, nitro);
    }
    if (e != NS_OK) {
        ns_log_err(e, "");
        return NS_EXIT_FAIL;
    }
    return NS_EXIT_OK;
}
