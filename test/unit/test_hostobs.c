/*
 * test_hostobs: the host's side of the enclave's observability. Status lines recognised (and
 * nothing else), their words truncated rather than overrun; then a real start on unix sockets:
 * log lines reach the log file with unprintable bytes replaced and status lines held back,
 * audit lines reach their file, readiness follows the status (state and age), client_auth is
 * reported, and a start that cannot open its file leaves nothing running.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* Connects and writes TEXT to a listener that may close the connection unread: the write may
 * fail (EPIPE, with SIGPIPE ignored), which is not this test's concern. */
static void send_refused(const char *path, const char *text)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connected to %s", path);
    if (fd >= 0) {
        ssize_t w = send(fd, text, strlen(text), MSG_NOSIGNAL);
        (void)w;
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

/* A scratch folder's sockets and files for one hostobs. */
typedef struct {
    char dir[32];
    char logs[128], audit[128], logf[128], auditf[128], logs_addr[140], audit_addr[140];
} scratch;

static void scratch_make(scratch *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/test_hostobs.XXXXXX");
    CHECK(mkdtemp(s->dir) != NULL, "scratch dir");
    snprintf(s->logs, sizeof s->logs, "%s/logs.sock", s->dir);
    snprintf(s->audit, sizeof s->audit, "%s/audit.sock", s->dir);
    snprintf(s->logf, sizeof s->logf, "%s/enclave.log", s->dir);
    snprintf(s->auditf, sizeof s->auditf, "%s/audit.jsonl", s->dir);
    snprintf(s->logs_addr, sizeof s->logs_addr, "unix:%s", s->logs);
    snprintf(s->audit_addr, sizeof s->audit_addr, "unix:%s", s->audit);
}

static void test_running(void)
{
    static scratch sc;
    scratch_make(&sc);
    char *dir = sc.dir, *logs = sc.logs, *audit = sc.audit, *logf = sc.logf, *auditf = sc.auditf;
    ns_hostobs_cfg c = {.log_listen = sc.logs_addr,
                        .log_file = logf,
                        .audit_listen = sc.audit_addr,
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
    /* A symbolic link as ENCLAVE_LOG_FILE or AUDIT_LOG_FILE: refused, never written through. */
    char victim[160], link[160];
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(link, sizeof link, "%s/link.log", dir);
    CHECK(close(open(victim, O_WRONLY | O_CREAT, 0600)) == 0 && symlink(victim, link) == 0,
          "a link to a victim file");
    c.log_file = link;
    CHECK_ERR(ns_hostobs_start(&o, &c), NS_E_USAGE, "a symlinked ENCLAVE_LOG_FILE refused");
    CHECK(o == NULL && strstr(ns_err_msg(), "ENCLAVE_LOG_FILE") &&
              strstr(ns_err_msg(), "symbolic link"),
          "the error names the variable and the link (%s)", ns_err_msg());
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "scratch dir removed");
}

/* Only the enclave may write the channels (issue 22 item 4): a peer that fails the rule (here a
 * unix peer of another uid than the one required) is closed unread and counted; its status line
 * neither changes readiness nor client_auth, its log line reaches no file. */
static void test_peers(void)
{
    static scratch sc;
    scratch_make(&sc);
    char *dir = sc.dir, *logs = sc.logs, *audit = sc.audit, *logf = sc.logf, *auditf = sc.auditf;
    ns_addr_peer_rule other = {.vsock_cid = 16, .unix_uid = (uint32_t)geteuid() + 1};
    ns_hostobs_cfg c = {.log_listen = sc.logs_addr,
                        .log_file = logf,
                        .audit_listen = sc.audit_addr,
                        .audit_file = auditf,
                        .ready_listen = "",
                        .ready_max_age_s = 3600,
                        .peer = &other};
    ns_hostobs *o = NULL;
    CHECK_ERR(ns_hostobs_start(&o, &c), NS_OK, "start with a peer rule this process fails");
    if (o == NULL) {
        return;
    }
    send_refused(logs, "nsign enclave-entrypoint: status state=SERVING seq=9 client_auth=required\n"
                       "nsign enclave-entrypoint: info FORGED\n");
    send_refused(audit, "{\"forged\":1}\n");
    uint64_t rl = 0, ra = 0;
    for (int i = 0; i < 500 && (rl == 0 || ra == 0); i++) {
        usleep(10 * 1000);
        ns_hostobs_refused(o, &rl, &ra);
    }
    CHECK(rl == 1 && ra == 1, "one refused peer counted on each channel (%llu, %llu)",
          (unsigned long long)rl, (unsigned long long)ra);
    char body[128], auth[16];
    ns_hostobs_client_auth(o, auth, sizeof auth);
    CHECK(auth[0] == '\0' && ns_hostobs_ready(o, body, sizeof body) == 503,
          "the refused peer's status line changed nothing (client_auth '%s')", auth);
    ns_hostobs_stop(o);
    struct stat st;
    CHECK(stat(logf, &st) == 0 && st.st_size == 0 && stat(auditf, &st) == 0 && st.st_size == 0,
          "nothing of the refused peer in ENCLAVE_LOG_FILE or AUDIT_LOG_FILE");

    ns_addr_peer_rule me = {.vsock_cid = 16, .unix_uid = (uint32_t)geteuid()};
    c.peer = &me;
    CHECK_ERR(ns_hostobs_start(&o, &c), NS_OK, "start with a rule this process passes");
    if (o == NULL) {
        return;
    }
    send_lines(logs, "nsign enclave-entrypoint: info accepted\n");
    CHECK(file_has(logf, "nsign enclave-entrypoint: info accepted\n"), "its line is logged");
    ns_hostobs_refused(o, &rl, &ra);
    CHECK(rl == 0 && ra == 0, "nothing refused");
    ns_hostobs_stop(o);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "scratch dir removed");
}

int main(void)
{
    test_parse();
    test_running();
    test_peers();
    T_DONE();
}
