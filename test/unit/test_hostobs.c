/*
 * test_hostobs: the host's side of the enclave's observability. Status lines recognised (and
 * nothing else), their words truncated rather than overrun; then a real start on unix sockets:
 * log lines reach the log file with unprintable bytes replaced and status lines held back,
 * audit lines reach their file, readiness follows the status (state and age), client_auth is
 * reported, and a start that cannot open its file leaves nothing running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hostobs.h"
#include "iox.h"
#include "t.h"

static int parse(const char *line, ns_hostobs_status *st)
{
    memset(st, 'x', sizeof *st);
    return ns_hostobs_status_parse(line, strlen(line), st);
}

static void test_parse(void)
{
    ns_hostobs_status st;
    CHECK(parse("nsign enclave-entrypoint: status state=SERVING seq=3 client_auth=required", &st) &&
              strcmp(st.state, "SERVING") == 0 && strcmp(st.client_auth, "required") == 0,
          "a status line: state SERVING, client_auth required");
    CHECK(parse("nsign sign-service: status state=STARTING seq=1", &st) &&
              strcmp(st.state, "STARTING") == 0 && st.client_auth[0] == '\0',
          "no client_auth word: empty");
    CHECK(!parse("enclave: status state=SERVING", &st), "not from nsign: not a status line");
    CHECK(!parse("nsign sign-service: info state=SERVING", &st), "no status tag: ordinary line");
    CHECK(!parse("nsign ", &st) && !parse("", &st), "short lines: not status lines");
    char big[300];
    snprintf(big, sizeof big, "nsign x: status state=%0150d client_auth=%080d", 0, 0);
    CHECK(parse(big, &st) && strlen(st.state) == sizeof st.state - 1 &&
              strlen(st.client_auth) == sizeof st.client_auth - 1,
          "overlong words are truncated to fit");
    /* Not NUL-terminated: the word ends at N, not at the bytes after it. */
    const char *l = "nsign x: status state=SERVINGGARBAGE";
    CHECK(ns_hostobs_status_parse(l, strlen(l) - 7, &st) && strcmp(st.state, "SERVING") == 0,
          "the line's length bounds the word");
}

static void send_lines(const char *path, const char *text)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    CHECK(ok, "sent lines to %s", path);
    if (fd >= 0) {
        close(fd);
    }
}

/* Until FILE holds WANT (or 5 s). */
static int file_has(const char *file, const char *want)
{
    for (int i = 0; i < 500; i++) {
        char buf[4096] = "";
        FILE *f = fopen(file, "r");
        if (f != NULL) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = '\0';
            fclose(f);
        }
        if (strstr(buf, want) != NULL) {
            return 1;
        }
        usleep(10 * 1000);
    }
    return 0;
}

static void test_running(void)
{
    char dir[] = "/tmp/test_hostobs.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "scratch dir");
    char logs[128], audit[128], logf[128], auditf[128], logs_addr[140], audit_addr[140];
    snprintf(logs, sizeof logs, "%s/logs.sock", dir);
    snprintf(audit, sizeof audit, "%s/audit.sock", dir);
    snprintf(logf, sizeof logf, "%s/enclave.log", dir);
    snprintf(auditf, sizeof auditf, "%s/audit.jsonl", dir);
    snprintf(logs_addr, sizeof logs_addr, "unix:%s", logs);
    snprintf(audit_addr, sizeof audit_addr, "unix:%s", audit);
    ns_hostobs_cfg c = {.log_listen = logs_addr,
                        .log_file = logf,
                        .audit_listen = audit_addr,
                        .audit_file = auditf,
                        .ready_listen = "",
                        .ready_max_age_s = 3600};
    ns_hostobs *o = NULL;
    CHECK_ERR(ns_hostobs_start(&o, &c), NS_OK, "start on unix sockets with both files");
    if (o == NULL) {
        return;
    }
    char body[128], auth[16];
    CHECK(ns_hostobs_ready(o, body, sizeof body) == 503 &&
              strcmp(body, "not ready state=none last_status_ms_ago=-1\n") == 0,
          "no status line yet: 503, state none");
    ns_hostobs_client_auth(o, auth, sizeof auth);
    CHECK(auth[0] == '\0', "no status line yet: client_auth empty");

    send_lines(logs, "nsign sign-service: info hello\x1b[2J\x07 world\n"
                     "nsign sign-service: status state=SERVING seq=1 client_auth=required\n"
                     "nsign sign-service: info after\n");
    send_lines(audit, "{\"seq\":1}\n");
    /* The status line came before "after": once "after" is in the file, it has been read. */
    CHECK(file_has(logf, "nsign sign-service: info after\n"), "log lines reach ENCLAVE_LOG_FILE");
    CHECK(ns_hostobs_ready(o, body, sizeof body) == 200 &&
              strncmp(body, "ready state=SERVING", 19) == 0,
          "a SERVING status within the max age: 200 (%.*s)", (int)strcspn(body, "\n"), body);
    ns_hostobs_client_auth(o, auth, sizeof auth);
    CHECK(strcmp(auth, "required") == 0, "client_auth from the status line: %s", auth);
    CHECK(file_has(logf, "info hello?[2J? world\n"), "escape and bell bytes replaced by '?'");
    CHECK(!file_has(logf, "status state="), "the status line is not logged");
    CHECK(file_has(auditf, "{\"seq\":1}\n"), "audit lines reach AUDIT_LOG_FILE");
    send_lines(logs, "nsign sign-service: status state=DRAINING seq=2 client_auth=none\n");
    for (int i = 0; i < 500 && strcmp(auth, "none") != 0; i++) {
        usleep(10 * 1000);
        ns_hostobs_client_auth(o, auth, sizeof auth);
    }
    CHECK(ns_hostobs_ready(o, body, sizeof body) == 503 && strstr(body, "state=DRAINING") != NULL,
          "a fresh status that is not SERVING: 503 (%.*s)", (int)strcspn(body, "\n"), body);
    CHECK(strcmp(auth, "none") == 0, "client_auth follows the latest status line");
    send_lines(logs, "nsign sign-service: status state=SERVING seq=3 client_auth=required\n");
    for (int i = 0; i < 500 && strcmp(auth, "required") != 0; i++) {
        usleep(10 * 1000);
        ns_hostobs_client_auth(o, auth, sizeof auth);
    }
    CHECK(ns_hostobs_ready(o, body, sizeof body) == 200, "SERVING again: 200");
    ns_hostobs_set_draining(o);
    CHECK(ns_hostobs_ready(o, body, sizeof body) == 503 && strstr(body, "state=DRAINING") != NULL,
          "run-enclave's drain: 503 DRAINING while the enclave still says SERVING (%.*s)",
          (int)strcspn(body, "\n"), body);
    ns_hostobs_stop(o);

    /* Max age 0: a SERVING status read at least 5 ms ago is already too old. */
    c.ready_max_age_s = 0;
    c.log_file = "";
    c.audit_listen = "";
    CHECK_ERR(ns_hostobs_start(&o, &c), NS_OK, "start again: logs only, max age 0");
    if (o == NULL) {
        return;
    }
    send_lines(logs, "nsign sign-service: status state=SERVING seq=1 client_auth=-\n");
    auth[0] = '\0';
    for (int i = 0; i < 500 && auth[0] == '\0'; i++) {
        usleep(10 * 1000);
        ns_hostobs_client_auth(o, auth, sizeof auth);
    }
    usleep(5 * 1000);
    CHECK(ns_hostobs_ready(o, body, sizeof body) == 503 && strstr(body, "state=SERVING") != NULL,
          "a SERVING status older than the max age: 503 (%.*s)", (int)strcspn(body, "\n"), body);
    ns_hostobs_stop(o);

    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir/enclave.log", dir);
    c.log_file = bad;
    o = (ns_hostobs *)1;
    CHECK_ERR(ns_hostobs_start(&o, &c), NS_E_IO,
              "a log file that cannot be opened fails the start");
    CHECK(o == NULL && strstr(ns_err_msg(), "ENCLAVE_LOG_FILE") != NULL,
          "nothing returned; the error names ENCLAVE_LOG_FILE (%s)", ns_err_msg());
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "scratch dir removed");
}

int main(void)
{
    test_parse();
    test_running();
    T_DONE();
}
