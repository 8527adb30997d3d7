/*
 * json: the strict JSON reader of the documents nsign reads itself (credentials, KMS and AWS
 * error answers, the keys file and EIF metadata are validated with it before cJSON sees them).
 * RFC 8259 with no extensions; bounded depth, key length and member count; no recursion.
 */
#ifndef NS_JSON_H
#define NS_JSON_H
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/*
 * Finds the string member key of the top-level object and appends its unescaped UTF-8 value to
 * out (use a secret buffer for secrets). NS_E_NOT_FOUND when absent; NS_E_PARSE when the document is malformed or the
 * member is not a string. Non-string members are validated and skipped.
 */
ns_err ns_json_get_string(const uint8_t *json, size_t len, const char *key,
                          ns_buf *out) NS_MUST_CHECK;
/* Validates a whole JSON document with the same strict grammar (RFC 8259; no \u0000 in any
 * string, no control byte, paired surrogates, bounded depth, nothing after the value). For
 * documents parsed by cJSON, whose C strings would end at a NUL. */
ns_err ns_json_validate(const uint8_t *json, size_t len) NS_MUST_CHECK;

#endif
