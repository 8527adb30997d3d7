/*
 * test_pid1: the PID-1 duties that can run on a development machine: /env parsing (and its
 * rejections), the heartbeat against an echo server on a unix socket (and a wrong echo, and
 * nobody listening), the loopback flags, and module loading errors. Mounting and finit_module
 * are exercised for real only inside the VM (test/vm).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "iox.h"
#include "pid1.h"
#include "t.h"

static char t_dir[64];

static void write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

static void test_env(void)
{
    char p[128];
    int n = -1;
    snprintf(p, sizeof p, "%s/env", t_dir);
    CHECK_ERR(ns_pid1_load_env(p, &n), NS_OK, "missing /env is fine");
    CHECK(n == 0, "nothing set");
    unsetenv("NS_T_A");
    unsetenv("NS_T_B");
    setenv("NS_T_KEEP", "mine", 1);
    write_file(p, "# comment\nNS_T_A=1\n\nNS_T_B=x=y z\nNS_T_KEEP=theirs\n");
    CHECK_ERR(ns_pid1_load_env(p, &n), NS_OK, "valid /env loads");
    CHECK(n == 2, "two variables set (got %d)", n);
    CHECK(getenv("NS_T_A") && strcmp(getenv("NS_T_A"), "1") == 0, "A=1");
    CHECK(getenv("NS_T_B") && strcmp(getenv("NS_T_B"), "x=y z") == 0, "value keeps '=' and ' '");
    CHECK(strcmp(getenv("NS_T_KEEP"), "mine") == 0, "existing variable not overridden");

    static const char *const bad[][2] = {
        {"NOEQUALS\n", "line without '='"},  {"1ABC=x\n", "key starting with a digit"},
        {"A-B=x\n", "key with '-'"},         {"=x\n", "empty key"},
        {"A=x\x01y\n", "control character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(p, bad[i][0]);
        CHECK_ERR(ns_pid1_load_env(p, &n), NS_E_PARSE, "rejects %s", bad[i][1]);
    }
    char *big = malloc(NS_PID1_ENV_FILE_MAX + 2);
    memset(big, 'A', NS_PID1_ENV_FILE_MAX + 1);
    big[NS_PID1_ENV_FILE_MAX + 1] = '\0';
    write_file(p, big);
    free(big);
    CHECK_ERR(ns_pid1_load_env(p, &n), NS_E_TOO_BIG, "rejects an oversized /env");
    unlink(p);
}

typedef struct {
    int fd;
    unsigned char reply;
} echo_srv;

static void *echo_thread(void *arg)
{
    echo_srv *s = arg;
    int c = accept(s->fd, NULL, NULL);
    if (c >= 0) {
        unsigned char b;
        if (read(c, &b, 1) == 1) {
            b = s->reply ? s->reply : b;
            if (write(c, &b, 1) != 1) {
                perror("write");
            }
        }
        close(c);
    }
    return NULL;
}

static void heartbeat_case(unsigned char reply, ns_err want, const char *what)
{
    char p[128];
    ns_addr a;
    echo_srv s = {-1, reply};
    pthread_t th;
    snprintf(p, sizeof p, "unix:%s/hb", t_dir);
    CHECK_ERR(ns_addr_parse(&a, p), NS_OK, "heartbeat address");
    CHECK_ERR(ns_addr_listen(&a, 1, 0, &s.fd), NS_OK, "heartbeat listener");
    pthread_create(&th, NULL, echo_thread, &s);
    CHECK_ERR(ns_pid1_heartbeat(&a, 5000), want, "%s", what);
    pthread_join(th, NULL);
    close(s.fd);
    unlink(a.path);
}

static void test_heartbeat(void)
{
    heartbeat_case(0, NS_OK, "heartbeat echoed");
    heartbeat_case(0x42, NS_E_PROTO, "wrong echo rejected");
    ns_addr a;
    char p[128];
    snprintf(p, sizeof p, "unix:%s/nobody", t_dir);
    CHECK_ERR(ns_addr_parse(&a, p), NS_OK, "address");
    CHECK(ns_pid1_heartbeat(&a, 1000) != NS_OK, "no listener fails");
    CHECK(strstr(ns_err_msg(), "heartbeat") != NULL, "error says heartbeat");
}

static void test_netif_modules(void)
{
    int up = -1, n = -1;
    CHECK_ERR(ns_netif_is_up("lo", &up), NS_OK, "lo flags readable");
    CHECK(up == 1, "lo is up on this machine");
    CHECK_ERR(ns_netif_up("lo"), NS_OK, "setting IFF_UP on an up lo is a no-op");
    CHECK_ERR(ns_netif_up("nsnoif0"), NS_E_NOT_FOUND, "unknown interface");
    CHECK_ERR(ns_netif_up("a-name-longer-than-ifnamsiz"), NS_E_USAGE, "name too long");
    CHECK_ERR(ns_pid1_load_modules("", &n), NS_OK, "empty module list");
    CHECK(n == 0, "nothing loaded");
    CHECK_ERR(ns_pid1_load_modules("/nonexistent/nsm.ko", &n), NS_E_NOT_FOUND,
              "missing module named in config fails");
    CHECK(strstr(ns_err_msg(), "/nonexistent/nsm.ko") != NULL, "error names the module");
    char p[128];
    snprintf(p, sizeof p, "%s/junk.ko", t_dir);
    write_file(p, "not an ELF module");
    if (getuid() == 0) {
        CHECK(ns_pid1_load_module(p, NULL) != NS_OK, "garbage module rejected by the kernel");
    } else {
        printf("ok - garbage module rejected # SKIP needs root\n");
    }
    unlink(p);
}

int main(void)
{
    snprintf(t_dir, sizeof t_dir, "/tmp/ns-test-pid1-%d", (int)getpid());
    if (mkdir(t_dir, 0700) != 0) {
        perror("mkdir");
        return 1;
    }
    test_env();
    test_heartbeat();
    test_netif_modules();
    rmdir(t_dir);
    T_DONE();
}
