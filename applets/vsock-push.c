/* vsock-push: not implemented yet; its issue replaces this file. */
#include "../applets/applets.h"
#include "cli.h"

int vsock_push_main(int argc, char **argv)
{
    if (ns_cli_wants_help(argc, argv)) {
        printf("usage: nsign vsock-push ...\n\nNot implemented yet.\n");
        return 0;
    }
    return ns_cli_not_implemented();
}
