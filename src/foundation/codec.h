/*
 * codec: hex and base64 (RFC 4648), encode and strict decode.
 *
 * Decoders reject anything but the canonical encoding when asked (NS_B64_STRICT: no whitespace,
 * non-zero trailing bits rejected), which age and the JSON formats need. Output capacities are
 * checked; the *_len helpers give exact sizes.
 */
#ifndef NS_CODEC_H
#define NS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NS_B64_PAD 1u     /* encode: emit '='; decode: require '=' padding */
#define NS_B64_NOPAD 2u   /* decode: reject '=' padding */
#define NS_B64_URL 4u     /* -_ alphabet */
#define NS_B64_STRICT 8u  /* decode: trailing bits must be zero */

/* Writes lowercase hex and a NUL; outcap must be >= 2n+1. */
ns_err ns_hex_encode(char *out, size_t outcap, const uint8_t *in, size_t n) NS_MUST_CHECK;
/* The value 0..15 of a hex digit in either case, or -1; no branches on c. */
int ns_hex_digit(unsigned char c);
/* Accepts upper and lower case; odd length or a non-hex digit is NS_E_PARSE. */
ns_err ns_hex_decode(uint8_t *out, size_t outcap, size_t *outlen, const char *in, size_t n)
    NS_MUST_CHECK;

size_t ns_b64_enc_len(size_t n, unsigned flags);
/* Writes the encoding and a NUL. */
ns_err ns_b64_encode(char *out, size_t outcap, const uint8_t *in, size_t n, unsigned flags)
    NS_MUST_CHECK;
/* Upper bound of decoded size for n input chars. */
size_t ns_b64_dec_max(size_t n);
/* flags: 0 accepts padded or unpadded; see NS_B64_* above. */
ns_err ns_b64_decode(uint8_t *out, size_t outcap, size_t *outlen, const char *in, size_t n,
                     unsigned flags) NS_MUST_CHECK;

#endif
