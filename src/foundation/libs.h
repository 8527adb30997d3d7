/*
 * libs: what `nsign --version` reports about the libraries linked into the binary, so an auditor
 * can see what it holds: each library's version as the library itself reports it (at run time
 * where it has a function for it, else from its header), and the Debian package it was built
 * from (scripts/pins.sh, compiled in through the generated pins.h).
 */
#ifndef NS_LIBS_H
#define NS_LIBS_H

#include <stddef.h>

#define NS_LIBS_MAX 8
#define NS_LIB_VERSION_LEN 32

typedef struct {
    const char *name;
    char version[NS_LIB_VERSION_LEN]; /* upstream version, e.g. "3.6.6" */
    const char *debian;               /* Debian package version it was built from */
    const char *from;                 /* "source" (built here) or "package" (Debian 12 binary) */
} ns_lib;

/* Fills out[] with every linked library (musl last); returns how many. */
size_t ns_libs_list(ns_lib out[NS_LIBS_MAX]);

#endif
