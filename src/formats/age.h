/*
 * age: a strict age v1 decryptor (https://c2sp.org/age), X25519 and scrypt recipients, ASCII
 * armor detected automatically; and a minimal encryptor to X25519 recipients (frost-keygen's
 * per-participant files). Streaming with constant memory: the payload is read in 64 KiB
 * STREAM chunks and each chunk's plaintext goes to the sink only after its Poly1305 tag verified.
 *
 * Strictness follows the spec and the CCTV vectors: one valid encoding of every header (canonical
 * base64, 64-column body lines, a short final line), scrypt only as the sole stanza with a bounded
 * work factor, a header MAC, a final-chunk flag, no empty final chunk unless the payload is empty,
 * no trailing data. Unknown stanza types are skipped. Identity keys, file keys and derived keys
 * live in locked memory and are wiped before returning.
 *
 * Errors (ns_err) callers can tell apart: NS_E_NO_MATCH no identity opens a stanza;
 * NS_E_AUTH a MAC/tag failed (header MAC or a payload chunk); NS_E_PARSE malformed header, armor or
 * identity file; NS_E_TRUNCATED the payload ends early; NS_E_UNSUPPORTED only unsupported stanzas
 * (e.g. mlkem768x25519) could have matched. *stage (when asked for) says where it failed.
 */
#ifndef NS_AGE_H
#define NS_AGE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NS_AGE_CHUNK 65536u               /* STREAM plaintext chunk size */
#define NS_AGE_TAG 16u                    /* Poly1305 tag */
#define NS_AGE_FILE_KEY 16u               /* file key length */
#define NS_AGE_HEADER_MAX (256u * 1024u)  /* bytes of header text we accept */
#define NS_AGE_MAX_STANZAS 256u           /* recipient stanzas in one header */
#define NS_AGE_MAX_ARGS 8u                /* arguments of one stanza, type included */
#define NS_AGE_MAX_IDENTITIES 64u         /* X25519 identities across all identity files */
#define NS_AGE_SCRYPT_MAX_LOG2N 22u       /* default scrypt work factor bound (as age) */
#define NS_AGE_SCRYPT_HARD_LOG2N 30u      /* no option goes beyond this */
#define NS_AGE_ARMOR_WS_MAX 1024u         /* whitespace allowed around armor */

/* Where a decryption failed, for messages and the conformance runner. */
typedef enum {
    NS_AGE_STAGE_NONE = 0,
    NS_AGE_STAGE_IDENTITIES, /* the identity file or passphrase */
    NS_AGE_STAGE_ARMOR,      /* the ASCII armor */
    NS_AGE_STAGE_HEADER,     /* header grammar, stanza structure, scrypt rules */
    NS_AGE_STAGE_UNWRAP,     /* no identity matched */
    NS_AGE_STAGE_MAC,        /* header MAC */
    NS_AGE_STAGE_PAYLOAD,    /* STREAM payload */
    NS_AGE_STAGE_OUTPUT,     /* the sink failed */
} ns_age_stage;

const char *ns_age_stage_name(ns_age_stage s);

/* Receives authenticated plaintext, chunk by chunk. */
typedef ns_err (*ns_age_sink_fn)(void *ctx, const uint8_t *p, size_t n);
/* Provides the passphrase (appended to pass, a secret buffer) when a scrypt stanza is met. */
typedef ns_err (*ns_age_pass_fn)(void *ctx, ns_buf *pass);

typedef struct {
    const char *identities; /* identity file text (may be NULL/empty) */
    size_t identities_len;
    ns_age_pass_fn passphrase; /* NULL: scrypt files fail with NS_E_NO_MATCH */
    void *passphrase_ctx;
    unsigned scrypt_max_log2n; /* 0: NS_AGE_SCRYPT_MAX_LOG2N */
} ns_age_opts;

/* Input is either a file descriptor or memory. */
typedef struct {
    int fd;                   /* >= 0: read from fd */
    const uint8_t *mem;       /* when fd < 0 */
    size_t mem_len;
} ns_age_input;

/* Decrypts in to sink. On failure returns the error and sets *stage (if non-NULL); chunks
 * already given to the sink were authenticated, but the stream as a whole was not. */
ns_err ns_age_decrypt(const ns_age_input *in, const ns_age_opts *opts, ns_age_sink_fn sink,
                      void *sink_ctx, ns_age_stage *stage) NS_MUST_CHECK;

/* Memory to memory for enclave-entrypoint: ct binary or armored; identities the text of an
 * identity file. out is initialised by the caller (usually ns_buf_init_secret with a max); on any
 * failure out is wiped and empty. */
ns_err ns_age_decrypt_mem(ns_buf *out, const uint8_t *ct, size_t ct_len, const char *identities,
                          size_t identities_len) NS_MUST_CHECK;

/*
 * Encrypts pt to X25519 recipients ("age1...", bech32) in age v1's binary format, appended to
 * out (a plain buffer: the output is ciphertext): a fresh file key, one X25519 stanza per
 * recipient (ephemeral key, HKDF-SHA-256, ChaCha20-Poly1305), the header MAC, then the STREAM
 * payload in 64 KiB chunks. The file key and every derived key live in locked memory and are
 * wiped. NS_E_PARSE for a malformed recipient (its message names the problem).
 */
ns_err ns_age_encrypt_mem(ns_buf *out, const uint8_t *pt, size_t pt_len,
                          const char *const *recipients, size_t n) NS_MUST_CHECK;
/* Decodes an X25519 recipient ("age1...", all lower or all upper case) to its public key. */
ns_err ns_age_parse_x25519_recipient(uint8_t pk[32], const char *s, size_t n) NS_MUST_CHECK;

/* --- exposed for tests and fuzzing --- */

/* Decodes an X25519 identity string ("AGE-SECRET-KEY-1...", either case, not mixed). */
ns_err ns_age_parse_x25519_identity(uint8_t key[32], const char *s, size_t n) NS_MUST_CHECK;

typedef struct {
    uint32_t arg_off[NS_AGE_MAX_ARGS]; /* offsets into the header text */
    uint32_t arg_len[NS_AGE_MAX_ARGS];
    uint32_t nargs;
    uint32_t body_off; /* offset into ns_age_header.bodies */
    uint32_t body_len;
} ns_age_stanza;

typedef struct {
    const uint8_t *text; /* the header bytes parsed (not owned) */
    size_t len;          /* header length including the MAC line's newline */
    size_t mac_input_len; /* bytes covered by the MAC: through "---" */
    uint8_t mac[32];
    size_t nstanzas;
    ns_age_stanza stanzas[NS_AGE_MAX_STANZAS];
    ns_buf bodies; /* decoded stanza bodies, back to back */
} ns_age_header;

void ns_age_header_init(ns_age_header *h);
void ns_age_header_free(ns_age_header *h);
/* Parses a header at the start of p[0..n). NS_E_TRUNCATED: incomplete, read more and call
 * again; NS_E_PARSE: malformed. On success h->len is the header's length. */
ns_err ns_age_header_parse(ns_age_header *h, const uint8_t *p, size_t n) NS_MUST_CHECK;
/* The i-th argument of a stanza. */
const char *ns_age_stanza_arg(const ns_age_header *h, const ns_age_stanza *s, size_t i,
                              size_t *len);

/* Decodes ASCII armor in memory (the whole armored file) into out. */
ns_err ns_age_armor_decode_mem(ns_buf *out, const uint8_t *p, size_t n) NS_MUST_CHECK;

/* Decrypts a STREAM payload (16-byte nonce + chunks) under a file key, into out. */
ns_err ns_age_payload_decrypt_mem(ns_buf *out, const uint8_t file_key[NS_AGE_FILE_KEY],
                                  const uint8_t *p, size_t n) NS_MUST_CHECK;

#endif
