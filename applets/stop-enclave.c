/*
 * stop-enclave: the seed's stop-enclave.sh. Asks the run-enclave supervising ENCLAVE_NAME (found
 * through its lock file NSIGN_RUN_DIR/ENCLAVE_NAME.pid, held with flock while it runs) to stop,
 * which stops its bridges and terminates the enclave; then makes sure the enclave is gone with
 * `nitro-cli terminate-enclave`. It only signals the process holding the lock: no process is
 * looked up by name.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../applets/applets.h"
#include "buf.h"
#include "cli.h"
#include "iox.h"
#include "log.h"
#include "supervise.h"

#define SE_OUT_MAX (256 * 1024)
#define SE_NITRO_TIMEOUT_MS (5 * 60 * 1000)
#define SE_DEFAULT_WAIT_S 30
#define SE_TICK_MS 100

static const char usage_text[] =
    "usage: nsign stop-enclave [--dry-run] [--timeout SECONDS]\n"
    "\n"
    "Stops the enclave ENCLAVE_NAME and the bridges its run-enclave started: sends SIGTERM to\n"
    "the run-enclave holding NSIGN_RUN_DIR/ENCLAVE_NAME.pid, waits for it to finish (it stops\n"
    "its bridges and terminates the enclave), then runs `nitro-cli terminate-enclave` if the\n"
    "enclave is still listed by `nitro-cli describe-enclaves`.\n"
    "\n"
    "options:\n"
    "  --dry-run           print what it would do\n"
    "  --timeout SECONDS   how long to wait for run-enclave to stop (default 30)\n"
    "\n"
    "environment: ENCLAVE_NAME=sign-service-enclave, NITRO_CLI=nitro-cli,\n"
    "  NSIGN_RUN_DIR=/run/nsign, NSIGN_EMULATOR=1 (run-enclave --emulator: stopping it stops\n"
    "  QEMU; nitro-cli is not consulted)\n"
    "\n"
    "exit status: 0 stopped (or nothing was running), 1 failure, 2 usage.\n";

int stop_enclave_main(int argc, char **argv)
{
    int dry = 0;
    int64_t wait_ms = SE_DEFAULT_WAIT_S * 1000;
    char nitro[4096], lock[4096];
    if (ns_cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return NS_EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) {
            dry = 1;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if (ns_parse_seconds(argv[++i], &wait_ms) != NS_OK || wait_ms <= 0) {
                return ns_cli_usage_error("--timeout %s: want seconds > 0", argv[i]);
            }
        } else {
            return ns_cli_usage_error("unknown argument '%s'", argv[i]);
        }
    }
    const char *name = getenv("ENCLAVE_NAME");
    const char *nitro_name = getenv("NITRO_CLI");
    const char *run_dir = getenv("NSIGN_RUN_DIR");
    name = (name && *name) ? name : "sign-service-enclave";
    nitro_name = (nitro_name && *nitro_name) ? nitro_name : "nitro-cli";
    run_dir = (run_dir && *run_dir) ? run_dir : "/run/nsign";
    if (strchr(name, '/') != NULL) {
        return ns_cli_usage_error("ENCLAVE_NAME must not contain '/'");
    }
    snprintf(lock, sizeof lock, "%s/%s.pid", run_dir, name);
    int have_nitro = ns_supervise_which(nitro_name, nitro, sizeof nitro) == NS_OK;
    if (!have_nitro) {
        snprintf(nitro, sizeof nitro, "%s", nitro_name);
    }
    if (dry) {
        printf(" 1 signal       SIGTERM to the run-enclave holding %s; wait up to %lld s\n", lock,
               (long long)(wait_ms / 1000));
        printf(" 2 check        %s describe-enclaves\n", nitro);
        printf(" 3 terminate    %s terminate-enclave --enclave-name %s   # if still listed\n",
               nitro, name);
        return NS_EXIT_OK;
    }

    int fd = open(lock, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            ns_info("no run-enclave is running for %s (stale lock %s removed)", name, lock);
            unlink(lock);
        } else {
            char buf[32] = "";
            ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
            buf[n > 0 ? n : 0] = '\0';
            long pid = strtol(buf, NULL, 10);
            if (pid <= 1) {
                close(fd);
                ns_error("lock %s is held but holds no pid; stop that run-enclave by hand", lock);
                return NS_EXIT_FAIL;
            }
            ns_info("stopping run-enclave pid=%ld name=%s", pid, name);
            if (kill((pid_t)pid, SIGTERM) != 0 && errno != ESRCH) {
                ns_error("cannot signal run-enclave pid %ld: %s", pid, strerror(errno));
                close(fd);
                return NS_EXIT_FAIL;
            }
            int64_t deadline = ns_now_ms() + wait_ms;
            while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
                if (ns_now_ms() >= deadline) {
                    ns_error("run-enclave pid %ld did not stop within %lld s; it may still be "
                             "terminating the enclave: check `%s describe-enclaves`",
                             pid, (long long)(wait_ms / 1000), nitro_name);
                    close(fd);
                    return NS_EXIT_FAIL;
                }
                usleep(SE_TICK_MS * 1000);
            }
            ns_info("run-enclave stopped");
        }
        close(fd);
    } else {
        ns_info("no run-enclave lock at %s", lock);
    }

    const char *emu = getenv("NSIGN_EMULATOR");
    if (emu && strcmp(emu, "1") == 0) {
        /* run-enclave --emulator stopped QEMU (its child) itself; there is no nitro-cli. */
        return NS_EXIT_OK;
    }
    if (!have_nitro) {
        ns_error("%s not found: install aws-nitro-enclaves-cli or set NITRO_CLI; cannot check "
                 "whether enclave %s still runs",
                 nitro_name, name);
        return NS_EXIT_FAIL;
    }
    char *desc[] = {nitro, "describe-enclaves", NULL};
    ns_buf out;
    int st = -1;
    ns_buf_init(&out, SE_OUT_MAX);
    if (ns_supervise_run(desc, NULL, 0, &out, SE_NITRO_TIMEOUT_MS, &st) != NS_OK ||
        !ns_status_ok(st) || ns_buf_cstr(&out) != NS_OK) {
        ns_buf_free(&out);
        ns_error("%s describe-enclaves failed: see its message above", nitro_name);
        return NS_EXIT_FAIL;
    }
    char pat[4200];
    snprintf(pat, sizeof pat, "\"EnclaveName\": \"%s\"", name);
    int listed = strstr((const char *)out.data, pat) != NULL;
    ns_buf_free(&out);
    if (!listed) {
        ns_info("enclave %s is not running", name);
        return NS_EXIT_OK;
    }
    char *term[] = {nitro, "terminate-enclave", "--enclave-name", (char *)name, NULL};
    ns_buf_init(&out, SE_OUT_MAX);
    ns_err e = ns_supervise_run(term, NULL, 0, &out, SE_NITRO_TIMEOUT_MS, &st);
    ns_buf_free(&out);
    if (e != NS_OK || !ns_status_ok(st)) {
        ns_error("%s terminate-enclave --enclave-name %s failed; see /var/log/nitro_enclaves/",
                 nitro_name, name);
        return NS_EXIT_FAIL;
    }
    ns_info("enclave %s terminated", name);
    return NS_EXIT_OK;
}
