/* fetch-creds: not implemented yet; its issue replaces this file. */
#include "../applets/applets.h"
#include "cli.h"

int fetch_creds_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        printf("usage: nsign fetch-creds ...\n\nNot implemented yet.\n");
        return 0;
    }
    return ns_cli_not_implemented();
}
