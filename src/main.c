/*
 * main: busybox-style dispatch only. `nsign APPLET args...` or a symlink named APPLET.
 * Exit codes: 0 ok, 1 failure, 2 usage, 127 unknown applet.
 */
#include <stdio.h>
#include <string.h>

#include "../applets/applets.h"
#include "libs.h"
#include "log.h"
#include "version.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *side;
    const char *desc;
} applet;

static const applet applets[] = {
#define APPLET(name, id, side, desc) {name, id##_main, side, desc},
#include "../applets/applets.def"
#undef APPLET
};

#define NAPPLETS (sizeof applets / sizeof applets[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: nsign APPLET [ARGS...]   (or a symlink named APPLET)\n"
               "       nsign --list | --version | --help\n"
               "       nsign APPLET --help\n\n"
               "nsign runs a signing service in an AWS Nitro Enclave: one static binary for the "
               "parent host\nand the FROM-scratch enclave image. Applets:\n\n");
    for (size_t i = 0; i < NAPPLETS; i++) {
        fprintf(f, "  %-20s %-8s %s\n", applets[i].name, applets[i].side, applets[i].desc);
    }
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int run(const char *name, int argc, char **argv)
{
    for (size_t i = 0; i < NAPPLETS; i++) {
        if (strcmp(name, applets[i].name) == 0) {
            ns_log_init(applets[i].name);
            return applets[i].fn(argc, argv);
        }
    }
    fprintf(stderr, "nsign: unknown applet '%s'; run 'nsign --list' to see them all\n", name);
    return 127;
}

int main(int argc, char **argv)
{
    const char *self = argc > 0 ? base_name(argv[0]) : "nsign";
    if (strcmp(self, "nsign") != 0 && strncmp(self, "nsign-", 6) != 0 &&
        strcmp(self, "nsign.asan") != 0) {
        return run(self, argc, argv);
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < NAPPLETS; i++) {
            printf("%s\n", applets[i].name);
        }
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("nsign %s\n", NSIGN_VERSION);
        ns_lib libs[NS_LIBS_MAX];
        size_t n = ns_libs_list(libs);
        for (size_t i = 0; i < n; i++) {
            printf("%s %s (Debian %s %s)\n", libs[i].name, libs[i].version, libs[i].from,
                   libs[i].debian);
        }
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    return run(argv[1], argc - 1, argv + 1);
}
