/*
 * test_nitro: nitro-cli's JSON as aws-nitro-enclaves-cli prints it (describe-enclaves' array,
 * run-enclave's text then object), parsed with cJSON: good output, several enclaves, missing and
 * mistyped members, malformed output; the allocator error; the argv built for run-enclave and
 * console; the commands against a scripted nitro-cli (exit status, output, the watch's failure
 * count); the lock file as run-enclave takes it and stop-enclave probes it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nitro.h"
#include "t.h"

/* What nitro-cli 1.3 prints for one running enclave (describe-enclaves). */
static const char one[] = "[\n"
                          "  {\n"
                          "    \"EnclaveName\": \"sign-service-enclave\",\n"
                          "    \"EnclaveID\": \"i-0c722f352c0cea22f-enc19275235ea37693\",\n"
                          "    \"ProcessID\": 848707,\n"
                          "    \"EnclaveCID\": 16,\n"
                          "    \"NumberOfCPUs\": 2,\n"
                          "    \"CPUIDs\": [\n      1,\n      3\n    ],\n"
                          "    \"MemoryMiB\": 4096,\n"
                          "    \"State\": \"RUNNING\",\n"
                          "    \"Flags\": \"DEBUG_MODE\",\n"
                          "    \"Measurements\": {\n"
                          "      \"HashAlgorithm\": \"Sha384 { ... }\",\n"
                          "      \"PCR0\": \"000000\",\n"
                          "      \"PCR1\": \"000000\",\n"
                          "      \"PCR2\": \"000000\"\n"
                          "    }\n"
                          "  }\n"
                          "]\n";

static ns_err describe(const char *text, const char *name, ns_nitro_enclave *e, int *listed,
                       size_t *n)
{
    return ns_nitro_describe_parse(text, strlen(text), name, e, listed, n);
}

static void test_describe(void)
{
    ns_nitro_enclave e;
    int listed = -1;
    size_t n = 99;
    CHECK_ERR(describe(one, "sign-service-enclave", &e, &listed, &n), NS_OK, "describe: parses");
    CHECK(listed == 1 && n == 1, "describe: the enclave is listed, one in all");
    CHECK(strcmp(e.id, "i-0c722f352c0cea22f-enc19275235ea37693") == 0 && e.pid == 848707 &&
              e.cid == 16 && e.cpus == 2 && e.mem_mib == 4096 && strcmp(e.state, "RUNNING") == 0 &&
              strcmp(e.flags, "DEBUG_MODE") == 0,
          "describe: every member read");
    CHECK_ERR(describe(one, "other", &e, &listed, &n), NS_OK, "describe: another name parses");
    CHECK(listed == 0 && n == 1, "describe: another name is not listed");
    CHECK_ERR(describe(one, "sign-service", NULL, &listed, NULL), NS_OK, "describe: a prefix");
    CHECK(listed == 0, "describe: a prefix of the name is not the name");

    CHECK_ERR(describe("[]\n", "a", &e, &listed, &n), NS_OK, "describe: no enclave");
    CHECK(listed == 0 && n == 0, "describe: an empty array lists nothing");

    static const char several[] =
        "[{\"EnclaveName\": \"a\", \"EnclaveID\": \"i-1-enc1\", \"State\": \"RUNNING\", "
        "\"EnclaveCID\": 16},\n"
        " {\"EnclaveID\": \"i-1-enc2\", \"State\": \"RUNNING\"},\n"
        " {\"EnclaveName\": \"b\", \"EnclaveID\": \"i-1-enc3\", \"State\": \"TERMINATING\", "
        "\"EnclaveCID\": 17, \"Flags\": \"NONE\"}]";
    CHECK_ERR(describe(several, "b", &e, &listed, &n), NS_OK, "describe: several enclaves");
    CHECK(listed == 1 && n == 3 && strcmp(e.id, "i-1-enc3") == 0 && e.cid == 17 &&
              strcmp(e.state, "TERMINATING") == 0 && e.pid == -1,
          "describe: the second named one found among three; an absent member is -1");
    CHECK_ERR(describe(several, "a", &e, &listed, &n), NS_OK, "describe: the first");
    CHECK(listed == 1 && strcmp(e.id, "i-1-enc1") == 0, "describe: the first one found");
    CHECK_ERR(describe(several, "", &e, &listed, &n), NS_OK, "describe: an empty name");
    CHECK(listed == 0,
          "describe: an enclave without EnclaveName (older nitro-cli) matches no name");

    static const struct {
        const char *text, *why, *want;
    } bad[] = {
        {"", "empty output", "not a JSON array"},
        {"[ E11 ] Unspecified error. Failed to describe enclave", "an error instead of JSON",
         "not a JSON array"},
        {"{\"EnclaveName\": \"a\"}", "an object, not an array", "not a JSON array"},
        {"[{\"EnclaveName\": \"a\", \"EnclaveID\": \"i\", \"State\": \"RUNNING\"}",
         "a truncated array", "not a JSON array"},
        {"[1, 2]", "numbers in the array", "not a JSON object"},
        {"[{\"EnclaveName\": \"a\", \"State\": \"RUNNING\"}]", "no EnclaveID", "without EnclaveID"},
        {"[{\"EnclaveName\": \"a\", \"EnclaveID\": \"i\"}]", "no State", "without State"},
        {"[{\"EnclaveName\": 7, \"EnclaveID\": \"i\", \"State\": \"RUNNING\"}]",
         "a numeric EnclaveName", "EnclaveName is not a string"},
        {"[{\"EnclaveName\": \"a\", \"EnclaveID\": \"\", \"State\": \"RUNNING\"}]",
         "an empty EnclaveID", "empty EnclaveID"},
        {"[{\"EnclaveName\": \"a\", \"EnclaveID\": \"i\", \"State\": \"RUNNING\", "
         "\"EnclaveCID\": \"16\"}]",
         "a string EnclaveCID", "EnclaveCID is not a non-negative integer"},
        {"[{\"EnclaveName\": \"a\", \"EnclaveID\": \"i\", \"State\": \"RUNNING\", "
         "\"ProcessID\": -5}]",
         "a negative ProcessID", "ProcessID is not a non-negative integer"},
        {"[{\"EnclaveName\": \"a\", \"EnclaveID\": \"i\", \"State\": \"RUNNING\", "
         "\"MemoryMiB\": 1.5}]",
         "a fractional MemoryMiB", "MemoryMiB is not a non-negative integer"},
        {"[{\"EnclaveName\": \"a\", \"EnclaveID\": \"i\", \"State\": \"RUNNING_BUT_WITH_A_"
         "STATE_NAME_FAR_TOO_LONG\"}]",
         "an over-long State", "State is longer than"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        listed = 1;
        ns_err r = describe(bad[i].text, "a", &e, &listed, &n);
        int ok = r == NS_E_PARSE && listed == 0 && strstr(ns_err_msg(), bad[i].want) != NULL;
        CHECK(ok, "describe, %s: malformed (\"%s\"), nothing listed", bad[i].why, bad[i].want);
        if (!ok) {
            printf("#   got %s: %s\n", ns_err_name(r), ns_err_msg());
        }
    }
    /* The enclave listed before a malformed one does not count: the whole output is unknown. */
    static const char late[] =
        "[{\"EnclaveName\": \"a\", \"EnclaveID\": \"i\", \"State\": \"RUNNING\"}, 5]";
    CHECK_ERR(describe(late, "a", &e, &listed, &n), NS_E_PARSE,
              "describe: malformed after a match");
    CHECK(listed == 0 && strstr(ns_err_msg(), "enclave 1") != NULL,
          "describe: malformed after a match lists nothing and names the entry");
    /* Not NUL-terminated: only len bytes are read. */
    char buf[sizeof one + 8];
    memcpy(buf, one, sizeof one - 1);
    memcpy(buf + sizeof one - 1, "garbage", 8);
    CHECK_ERR(
        ns_nitro_describe_parse(buf, sizeof one - 1, "sign-service-enclave", NULL, &listed, NULL),
        NS_OK, "describe: bounded by len");
    CHECK(listed == 1, "describe: bounded by len, listed");
}

static void test_run_output(void)
{
    ns_nitro_enclave e;
    static const char real[] =
        "Start allocating memory...\n"
        "Started enclave with enclave-cid: 16, memory: 512 MiB, cpu-ids: [1, 3]\n"
        "{\n"
        "  \"EnclaveName\": \"sign-service-enclave\",\n"
        "  \"EnclaveID\": \"i-05f6ed443aEXAMPLE-enc173dfe3eEXAMPLE\",\n"
        "  \"ProcessID\": 7077,\n"
        "  \"EnclaveCID\": 16,\n"
        "  \"NumberOfCPUs\": 2,\n"
        "  \"CPUIDs\": [\n    1,\n    3\n  ],\n"
        "  \"MemoryMiB\": 512\n"
        "}\n";
    CHECK_ERR(ns_nitro_run_parse(real, strlen(real), &e), NS_OK, "run: parses");
    CHECK(strcmp(e.id, "i-05f6ed443aEXAMPLE-enc173dfe3eEXAMPLE") == 0 &&
              strcmp(e.name, "sign-service-enclave") == 0 && e.cid == 16 && e.pid == 7077 &&
              e.cpus == 2 && e.mem_mib == 512 && e.state[0] == '\0',
          "run: the object after the text lines, every member");
    static const char trailing[] =
        "Started enclave with enclave-cid: 16, memory: 512 MiB, cpu-ids: [1]\n"
        "{\"EnclaveID\": \"i-1-enc2\", \"EnclaveCID\": 21}\n"
        "a warning on stderr, mixed in\n";
    CHECK_ERR(ns_nitro_run_parse(trailing, strlen(trailing), &e), NS_OK, "run: trailing text");
    CHECK(strcmp(e.id, "i-1-enc2") == 0 && e.cid == 21 && e.name[0] == '\0',
          "run: text after the object is ignored; no EnclaveName is fine");
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "empty"},
        {"Started enclave with enclave-cid: 16 {\"EnclaveID\": \"x\"}", "no '{' opens a line"},
        {"Started\n{\"EnclaveID\": \"x\"", "a truncated object"},
        {"Started\n{\"EnclaveName\": \"a\"}\n", "no EnclaveID"},
        {"Started\n{\"EnclaveID\": 5}\n", "a numeric EnclaveID"},
        {"Started\n{\"EnclaveID\": \"x\", \"EnclaveCID\": \"16\"}\n", "a string EnclaveCID"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_ERR(ns_nitro_run_parse(bad[i].text, strlen(bad[i].text), &e), NS_E_PARSE,
                  "run, %s: malformed", bad[i].why);
        CHECK(e.id[0] == '\0', "run, %s: no id left behind", bad[i].why);
    }
}

static void test_allocator_and_argv(void)
{
    CHECK(!ns_nitro_is_allocator_error("[ E26 ] Insufficient memory requested. User provided") &&
              ns_nitro_is_memory_request_error("[ E26 ] Insufficient memory requested."),
          "E26 is MEMORY_MIB below 4x the EIF, not the allocator");
    CHECK(ns_nitro_is_allocator_error("[ E22 ] Insufficient CPUs available in the pool."),
          "allocator: E22");
    CHECK(ns_nitro_is_allocator_error("[ E27 ] Insufficient memory available."), "allocator: E27");
    CHECK(ns_nitro_is_allocator_error("failed to reserve hugepages"), "allocator: hugepages");
    CHECK(!ns_nitro_is_allocator_error("[ E19 ] File operation failure"), "allocator: E19 is not");
    char *av[NS_NITRO_RUN_ARGV_MAX];
    ns_nitro_run_args a = {"e.eif", "2", "512", "16", "n", 1};
    ns_nitro_run_argv(av, "nitro-cli", &a);
    char line[512] = "";
    for (int i = 0; av[i]; i++) {
        strcat(line, i ? " " : "");
        strcat(line, av[i]);
    }
    CHECK(strcmp(line, "nitro-cli run-enclave --eif-path e.eif --cpu-count 2 --memory 512 "
                       "--enclave-cid 16 --enclave-name n --debug-mode") == 0,
          "run argv: every option, --debug-mode in debug mode");
    a.debug = 0;
    ns_nitro_run_argv(av, "nitro-cli", &a);
    CHECK(av[11] != NULL && strcmp(av[11], "n") == 0 && av[12] == NULL,
          "run argv: no --debug-mode otherwise");
    ns_nitro_console_argv(av, "nitro-cli", "n");
    CHECK(strcmp(av[1], "console") == 0 && strcmp(av[2], "--enclave-name") == 0 &&
              strcmp(av[3], "n") == 0 && av[4] == NULL,
          "console argv");
}

static char dir[] = "/tmp/ns-nitro.XXXXXX";

/* A nitro-cli that prints OUT and exits with RC (both files beside it), logging its argv. */
static void script(const char *out, int rc)
{
    char p[256];
    snprintf(p, sizeof p, "%s/out", dir);
    FILE *f = fopen(p, "w");
    fputs(out, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/nitro-cli", dir);
    f = fopen(p, "w");
    fprintf(f, "#!/bin/sh\necho \"$*\" >>'%s/calls'\ncat '%s/out'\nexit %d\n", dir, dir, rc);
    fclose(f);
    chmod(p, 0700);
}

static void test_commands(void)
{
    char nitro[256];
    int listed = -1;
    snprintf(nitro, sizeof nitro, "%s/nitro-cli", dir);
    script(one, 0);
    CHECK_ERR(ns_nitro_describe(nitro, "sign-service-enclave", &listed), NS_OK, "describe runs");
    CHECK(listed == 1, "describe: listed");
    script("[ E11 ] Unspecified error.\n", 1);
    CHECK_ERR(ns_nitro_describe(nitro, "sign-service-enclave", &listed), NS_E_REMOTE,
              "describe: a failing nitro-cli");
    CHECK(listed == 0 && strstr(ns_err_msg(), "exit 1") != NULL,
          "describe: the exit status is the error");

    ns_nitro_watch w;
    memset(&w, 0, sizeof w);
    CHECK_ERR(ns_nitro_watch_check(&w, nitro, "sign-service-enclave"), NS_OK,
              "watch: a failure is not a stop");
    CHECK_ERR(ns_nitro_watch_check(&w, nitro, "sign-service-enclave"), NS_OK, "watch: twice");
    CHECK(w.failures == 2 && w.recovered == 0 && strstr(w.error, "exit 1") != NULL,
          "watch: failures counted with the last error");
    script(one, 0);
    CHECK_ERR(ns_nitro_watch_check(&w, nitro, "sign-service-enclave"), NS_OK, "watch: answers");
    CHECK(w.failures == 0 && w.recovered == 2, "watch: recovered after 2 failures");
    CHECK_ERR(ns_nitro_watch_check(&w, nitro, "sign-service-enclave"), NS_OK, "watch: again");
    CHECK(w.recovered == 0, "watch: recovered once only");
    script("[]", 0);
    CHECK_ERR(ns_nitro_watch_check(&w, nitro, "sign-service-enclave"), NS_E_CLOSED,
              "watch: gone from the list");
    CHECK(strstr(ns_err_msg(), "sign-service-enclave is no longer running") != NULL,
          "watch: the error names the enclave");

    script("{\"EnclaveName\": \"n\", \"Terminated\": true}\n", 0);
    CHECK_ERR(ns_nitro_terminate(nitro, "n"), NS_OK, "terminate");
    script("[ E44 ] Enclave not found.\n", 1);
    CHECK_ERR(ns_nitro_terminate(nitro, "n"), NS_E_REMOTE, "terminate: fails");
    CHECK(strstr(ns_err_msg(), "terminate-enclave --enclave-name n") != NULL,
          "terminate: the error names the command");

    char *av[NS_NITRO_RUN_ARGV_MAX];
    ns_nitro_run_args a = {"e.eif", "2", "512", "16", "n", 0};
    ns_nitro_enclave started;
    ns_buf said;
    ns_nitro_run_argv(av, nitro, &a);
    script("Started enclave with enclave-cid: 16, memory: 512 MiB, cpu-ids: [1]\n"
           "{\"EnclaveName\": \"n\", \"EnclaveID\": \"i-9-enc9\", \"EnclaveCID\": 16}\n",
           0);
    ns_buf_init(&said, NS_NITRO_OUT_MAX);
    CHECK_ERR(ns_nitro_run(av, &a, "c.log", "nitro-cli", &started, &said), NS_OK, "run");
    CHECK(strcmp(started.id, "i-9-enc9") == 0, "run: the started enclave's id");
    ns_buf_free(&said);
    script("[ E27 ] Insufficient memory available. User provided `memory` is 512 MB\n", 1);
    ns_buf_init(&said, NS_NITRO_OUT_MAX);
    CHECK_ERR(ns_nitro_run(av, &a, "c.log", "nitro-cli", &started, &said), NS_E_REMOTE,
              "run: allocator failure");
    CHECK(strstr(ns_err_msg(), "memory_mib >= 512 and cpu_count >= 2") != NULL && said.len > 0 &&
              memmem(said.data, said.len, "E27", 3) != NULL,
          "run: E27 says how to configure the allocator; nitro-cli's words kept");
    ns_buf_free(&said);
    script("[ E26 ] Insufficient memory requested. User provided `memory` is 512 MB, but based "
           "on the EIF file size, the minimum memory should be 1024 MB\n",
           1);
    ns_buf_init(&said, NS_NITRO_OUT_MAX);
    CHECK_ERR(ns_nitro_run(av, &a, "c.log", "nitro-cli", &started, &said), NS_E_REMOTE, "run: E26");
    CHECK(strstr(ns_err_msg(), "MEMORY_MIB=512 is below 4x the EIF size") != NULL &&
              strstr(ns_err_msg(), "memory_mib >=") == NULL,
          "run: E26 says MEMORY_MIB is below 4x the EIF, not to edit the allocator alone");
    ns_buf_free(&said);
    script("[ E39 ] Enclave process connection failure.\n", 1);
    ns_buf_init(&said, NS_NITRO_OUT_MAX);
    CHECK_ERR(ns_nitro_run(av, &a, "c.log", "nitro-cli", &started, &said), NS_E_REMOTE,
              "run: boot failure");
    CHECK(strstr(ns_err_msg(), "DEBUG_MODE=1") != NULL &&
              strstr(ns_err_msg(), "c.log, or `nitro-cli console --enclave-name n`") != NULL,
          "run: points at the console");
    ns_buf_free(&said);
    script("no JSON at all\n", 0);
    ns_buf_init(&said, NS_NITRO_OUT_MAX);
    CHECK_ERR(ns_nitro_run(av, &a, "c.log", "nitro-cli", &started, &said), NS_OK,
              "run: exit 0 without its JSON still started");
    CHECK(started.id[0] == '\0', "run: no id then");
    ns_buf_free(&said);

    char calls[256], buf[4096] = "";
    snprintf(calls, sizeof calls, "%s/calls", dir);
    FILE *f = fopen(calls, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f) {
        fclose(f);
    }
    CHECK(strstr(buf, "describe-enclaves\n") &&
              strstr(buf, "terminate-enclave --enclave-name n\n") &&
              strstr(buf, "run-enclave --eif-path e.eif --cpu-count 2 --memory 512 --enclave-cid "
                          "16 --enclave-name n\n"),
          "commands: nitro-cli called with the documented arguments");
}

static void test_lock(void)
{
    char run[256], path[300];
    ns_nitro_lock l, l2;
    ns_nitro_lock_state st;
    long pid = 0;
    snprintf(run, sizeof run, "%s/run", dir);
    CHECK_ERR(ns_nitro_lock_probe(&l2, run, "e", &st, &pid), NS_OK, "probe: no lock");
    CHECK(st == NS_NITRO_LOCK_NONE && l2.fd == -1, "probe: no lock file");
    CHECK_ERR(ns_nitro_lock_take(&l, run, "e"), NS_OK, "take");
    struct stat sb;
    CHECK(stat(run, &sb) == 0 && (sb.st_mode & 0777) == 0700, "take: run dir created 0700");
    CHECK(strcmp(l.path + strlen(l.path) - 6, "/e.pid") == 0, "take: RUN_DIR/NAME.pid");
    CHECK_ERR(ns_nitro_lock_take(&l2, run, "e"), NS_E_USAGE, "take twice: refused");
    char want[64];
    snprintf(want, sizeof want, "(pid %d, lock ", (int)getpid());
    CHECK(strstr(ns_err_msg(), "another run-enclave for e is running") &&
              strstr(ns_err_msg(), want),
          "take twice: names the holder's pid");
    CHECK_ERR(ns_nitro_lock_probe(&l2, run, "e", &st, &pid), NS_OK, "probe: held");
    CHECK(st == NS_NITRO_LOCK_HELD && pid == getpid(), "probe: held, the holder's pid");
    CHECK_ERR(ns_nitro_lock_wait_free(&l2, 200), NS_E_TIMEOUT, "wait: still held");
    close(l2.fd);
    strcpy(path, l.path);
    ns_nitro_lock_release(&l);
    CHECK(access(path, F_OK) != 0 && l.fd == -1, "release: removed");

    int fd = open(path, O_RDWR | O_CREAT, 0600); /* a run-enclave killed with SIGKILL */
    CHECK(write(fd, "1234\n", 5) == 5, "stale lock written");
    close(fd);
    CHECK_ERR(ns_nitro_lock_probe(&l2, run, "e", &st, &pid), NS_OK, "probe: stale");
    CHECK(st == NS_NITRO_LOCK_STALE && access(path, F_OK) != 0, "probe: a stale lock removed");

    fd = open(path, O_RDWR | O_CREAT, 0600); /* held by someone, no pid in it */
    CHECK(flock(fd, LOCK_EX) == 0, "held without a pid");
    /* flock locks belong to open file descriptions: the probe's own open conflicts. */
    CHECK_ERR(ns_nitro_lock_probe(&l2, run, "e", &st, &pid), NS_E_REMOTE, "probe: held, no pid");
    CHECK(strstr(ns_err_msg(), "holds no pid; stop that run-enclave by hand") != NULL &&
              l2.fd == -1,
          "probe: held but holding no pid is an error saying what to do");
    CHECK(flock(fd, LOCK_UN) == 0, "unlocked");
    close(fd);
    unlink(path);

    /* A symbolic link planted at RUN_DIR/NAME.pid: taking the lock used to truncate its target
     * and write a pid into it. Now refused, the target untouched (issue 22 item 5). */
    char victim[300];
    snprintf(victim, sizeof victim, "%s/victim", dir);
    fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, "precious\n", 9) == 9, "victim written");
    close(fd);
    CHECK(symlink(victim, path) == 0, "lock path is a symbolic link");
    CHECK_ERR(ns_nitro_lock_take(&l, run, "e"), NS_E_USAGE, "take: a symlinked lock refused");
    CHECK(strstr(ns_err_msg(), "is a symbolic link") != NULL && l.fd == -1,
          "take: the error says why (%s)", ns_err_msg());
    CHECK_ERR(ns_nitro_lock_probe(&l2, run, "e", &st, &pid), NS_E_USAGE,
              "probe: a symlinked lock refused");
    char vb[16] = {0};
    fd = open(victim, O_RDONLY);
    CHECK(fd >= 0 && read(fd, vb, sizeof vb - 1) == 9 && strcmp(vb, "precious\n") == 0,
          "the link's target is untouched");
    close(fd);
    unlink(path);
    unlink(victim);
    char longname[NS_NITRO_NAME_MAX * 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_ERR(ns_nitro_lock_path(path, sizeof path, run, longname), NS_E_TOO_BIG,
              "lock path: too long");
}

int main(void)
{
    test_describe();
    test_run_output();
    test_allocator_and_argv();
    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp");
        T_DONE();
    }
    test_commands();
    test_lock();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "clean up");
    T_DONE();
}
