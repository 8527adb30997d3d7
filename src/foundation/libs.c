/* libs: see libs.h. Versions from the libraries themselves; Debian versions from pins.h. */
#include "libs.h"

#include <stdio.h>
#include <string.h>

#include <cJSON.h>
#include <mbedtls/version.h>
#include <nghttp2/nghttp2.h>
#include <pb.h>
#include <sodium.h>

#include "pins.h"

/* The upstream part of a Debian version: "0.5.0-2" -> "0.5.0", "1:2.3-1" -> "2.3". */
static void upstream(char out[NS_LIB_VERSION_LEN], const char *debian)
{
    const char *colon = strchr(debian, ':');
    const char *p = colon ? colon + 1 : debian;
    const char *dash = strrchr(p, '-');
    size_t n = dash ? (size_t)(dash - p) : strlen(p);
    snprintf(out, NS_LIB_VERSION_LEN, "%.*s", (int)n, p);
}

static void add(ns_lib out[], size_t *n, const char *name, const char *version, const char *debian,
                const char *from)
{
    ns_lib *l = &out[(*n)++];
    l->name = name;
    l->debian = debian;
    l->from = from;
    if (version != NULL) {
        snprintf(l->version, sizeof l->version, "%s", version);
    } else {
        upstream(l->version, debian); /* the library has no version of its own to report */
    }
}

size_t ns_libs_list(ns_lib out[NS_LIBS_MAX])
{
    size_t n = 0;
    char mbed[18] = "";
    mbedtls_version_get_string(mbed);
    const char *pb = NANOPB_VERSION;
    if (strncmp(pb, "nanopb-", 7) == 0) {
        pb += 7;
    }
    add(out, &n, "mbedtls", mbed, NS_PIN_MBEDTLS, "source");
    add(out, &n, "libsecp256k1", NULL, NS_PIN_LIBSECP256K1, "source");
    add(out, &n, "libsodium", sodium_version_string(), NS_PIN_LIBSODIUM, "source");
    add(out, &n, "nghttp2", nghttp2_version(0)->version_str, NS_PIN_NGHTTP2, "source");
    add(out, &n, "cJSON", cJSON_Version(), NS_PIN_CJSON, "source");
    add(out, &n, "nanopb", pb, NS_PIN_NANOPB, "source");
    add(out, &n, "musl", NULL, NS_PIN_MUSL, "package");
    return n;
}
