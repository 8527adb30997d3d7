/* cli: see cli.h. */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

#include "log.h"
#include "secret.h"

int ns_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            return 0;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
    }
    return 0;
}

int ns_cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "nsign %s: ", ns_log_applet());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ntry 'nsign %s --help'\n", ns_log_applet());
    return NS_EXIT_USAGE;
}

int ns_cli_start_hardened(int argc, char **argv, void (*usage)(void), int *code)
{
    if (ns_cli_wants_help(argc, argv)) {
        usage();
        *code = NS_EXIT_OK;
        return 1;
    }
    if (ns_secret_process_init() != NS_OK) {
        ns_log_err(NS_E_INTERNAL, "hardening the process");
        *code = NS_EXIT_FAIL;
        return 1;
    }
    return 0;
}
