/*
 * t.h: the unit-test harness. Each test binary prints one TAP line per check ("ok - what" or
 * "not ok - what at file:line") and exits non-zero when any failed; test/run.sh tallies them.
 */
#ifndef NS_T_H
#define NS_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failed;
static int t_count;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        int t_ok_ = (cond) ? 1 : 0;                                                                \
        t_count++;                                                                                 \
        if (t_ok_) {                                                                               \
            printf("ok - ");                                                                       \
        } else {                                                                                   \
            t_failed++;                                                                            \
            printf("not ok - ");                                                                   \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        if (!t_ok_) {                                                                              \
            printf(" (%s:%d: %s)", __FILE__, __LINE__, #cond);                                     \
        }                                                                                          \
        printf("\n");                                                                              \
        fflush(stdout);                                                                            \
    } while (0)

/* Checks that an ns_err expression has the given code. */
#define CHECK_ERR(expr, code, ...)                                                                 \
    do {                                                                                           \
        ns_err t_e_ = (expr);                                                                      \
        CHECK(t_e_ == (code), __VA_ARGS__);                                                        \
        if (t_e_ != (code)) {                                                                      \
            printf("#   got %s (%s), want %s\n", ns_err_name(t_e_), ns_err_msg(),                  \
                   ns_err_name(code));                                                             \
        }                                                                                          \
    } while (0)

#define T_DONE() return t_failed ? 1 : 0

/* An injected getenv (enclave.h's ns_enclave_getenv_fn) over t_env, a NULL-terminated table of
 * name, value pairs; NULL when a name is not in it. */
__attribute__((unused)) static const char *const *t_env;
__attribute__((unused)) static const char *t_getenv(const char *name, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; t_env && t_env[i]; i += 2) {
        if (strcmp(t_env[i], name) == 0) {
            return t_env[i + 1];
        }
    }
    return NULL;
}

/* Where ../shared/vectors is, from NS_VECTORS (set by test/run.sh). */
static inline const char *t_vectors(void)
{
    const char *v = getenv("NS_VECTORS");
    return v ? v : "../shared/vectors";
}

#endif
