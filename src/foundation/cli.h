/*
 * cli: small helpers every applet uses for its command line: --help detection before option
 * parsing and the usage-error exit.
 */
#ifndef NS_CLI_H
#define NS_CLI_H

#include <stdio.h>

#define NS_EXIT_OK 0
#define NS_EXIT_FAIL 1
#define NS_EXIT_USAGE 2

/* True when argv holds --help or -h before a "--". */
int ns_cli_wants_help(int argc, char **argv);
/* The opening of an applet that handles credentials or payloads: with --help, prints usage and
 * sets *code to 0; otherwise hardens the process first, before anything secret is read (no core
 * dump, no same-uid ptrace), logging and setting *code to 1 when that fails. Returns 1 when the
 * applet must return *code now, 0 to go on. */
int ns_cli_start_hardened(int argc, char **argv, void (*usage)(void), int *code);
/* Prints "nsign APPLET: msg" and "try 'nsign APPLET --help'" to stderr; returns 2. */
int ns_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
