/* stop-enclave: not implemented yet; its issue replaces this file. */
#include "../applets/applets.h"
#include "cli.h"

int stop_enclave_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        printf("usage: nsign stop-enclave ...\n\nNot implemented yet.\n");
        return 0;
    }
    return ns_cli_not_implemented();
}
