/*
 * kmspolicy: the KMS key policy and the instance role's IAM policy for an nsign enclave.
 * The documents, their statements and the reasons for each are in kmspolicy.h.
 */
#include "kmspolicy.h"

#include <stdio.h>
#include <string.h>

#include "codec.h"

#define JW_MAX_DEPTH 8
#define PCR_HEX_LEN (2 * NS_KMSPOLICY_PCR_LEN)
#define ARN_SHAPE_ROLE "arn:aws:iam::123456789012:role/NAME"
#define ARN_SHAPE_PRINCIPAL                                                                        \
    "arn:aws:iam::123456789012:role/NAME, arn:aws:iam::123456789012:user/NAME or "                 \
    "arn:aws:iam::123456789012:root"
#define ARN_SHAPE_KEY "arn:aws:kms:REGION:123456789012:key/KEY-ID"

static const char *const partitions[] = {"aws",       "aws-cn",    "aws-us-gov", "aws-iso",
                                         "aws-iso-b", "aws-iso-e", "aws-iso-f",  "aws-eusc"};

/* What a key administrator may do: manage, never decrypt or grant (kmspolicy.h). Sorted. */
static const char *const admin_actions[] = {
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
};

/* ---- a small pretty JSON writer: two-space indent, "key": value, errors kept until the end */

typedef struct {
    ns_buf *b;
    ns_err e;
    int depth;
    char kind[JW_MAX_DEPTH]; /* '{' or '[' */
    int items[JW_MAX_DEPTH];
} jw;

static void jw_raw(jw *w, const char *s)
{
    if (w->e == NS_OK) {
        w->e = ns_buf_append_str(w->b, s);
    }
}

static void jw_newline(jw *w)
{
    jw_raw(w, "\n");
    for (int i = 0; i < w->depth; i++) {
        jw_raw(w, "  ");
    }
}

/* Before an item of the current container: the comma, the line break and the indent. */
static void jw_item(jw *w)
{
    if (w->depth == 0) {
        return;
    }
    if (w->items[w->depth - 1]++ > 0) {
        jw_raw(w, ",");
    }
    jw_newline(w);
}

static void jw_str(jw *w, const char *s)
{
    if (w->depth > 0 && w->kind[w->depth - 1] == '[') {
        jw_item(w);
    }
    if (w->e == NS_OK) {
        w->e = ns_buf_append_json_str(w->b, s, strlen(s));
    }
}

static void jw_key(jw *w, const char *k)
{
    jw_item(w);
    jw_str(w, k);
    jw_raw(w, ": ");
}

static void jw_begin(jw *w, char kind)
{
    if (w->depth > 0 && w->kind[w->depth - 1] == '[') {
        jw_item(w);
    }
    if (w->depth == JW_MAX_DEPTH) {
        w->e = w->e != NS_OK ? w->e : ns_fail(NS_E_INTERNAL, "policy document nested too deep");
        return;
    }
    jw_raw(w, kind == '{' ? "{" : "[");
    w->kind[w->depth] = kind;
    w->items[w->depth++] = 0;
}

static void jw_end(jw *w)
{
    if (w->depth == 0) {
        return;
    }
    char kind = w->kind[--w->depth];
    if (w->items[w->depth] > 0) {
        jw_newline(w);
    }
    jw_raw(w, kind == '{' ? "}" : "]");
}

/* "key": "v" for one value, "key": ["v1", ...] for several. */
static void jw_key_strs(jw *w, const char *k, const char *const *v, size_t n)
{
    jw_key(w, k);
    if (n == 1) {
        jw_str(w, v[0]);
        return;
    }
    jw_begin(w, '[');
    for (size_t i = 0; i < n; i++) {
        jw_str(w, v[i]);
    }
    jw_end(w);
}

/* ---- ARNs */

static int is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

static int is_lhex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* IAM's name characters ([\w+=,.@-]). */
static int iam_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("_+=,.@-", c) != NULL;
}

/* "[PATH/]NAME" after "role/" or "user/": segments of IAM name characters, the last one (the
 * name) 1..64 long, no empty segment. */
static int iam_path_name(const char *s)
{
    size_t seg = 0;
    for (const char *p = s;; p++) {
        if (*p == '/' || *p == 0) {
            if (seg == 0) {
                return 0;
            }
            if (*p == 0) {
                return seg <= 64;
            }
            seg = 0;
        } else if (!iam_char(*p)) {
            return 0;
        } else {
            seg++;
        }
    }
}

/* A KMS key id: a UUID in lower-case hex, or a multi-Region key's mrk- and 32 hex digits. */
static int kms_key_id(const char *s)
{
    size_t n = strlen(s);
    if (strncmp(s, "mrk-", 4) == 0) {
        return n == 4 + 32 && is_lhex(s + 4, 32);
    }
    if (n != 36) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_lhex(s + i, 1)) {
            return 0;
        }
    }
    return 1;
}

/* us-east-1, eu-central-2, us-gov-west-1, ...: two letters, words, a number. */
static int region_ok(const char *s, size_t n)
{
    if (n < 4 || n >= sizeof(((ns_arn *)0)->region) || s[2] != '-' || s[0] < 'a' || s[0] > 'z' ||
        s[1] < 'a' || s[1] > 'z') {
        return 0;
    }
    size_t last = n;
    while (last > 0 && s[last - 1] >= '0' && s[last - 1] <= '9') {
        last--;
    }
    if (last == n || last < 4 || s[last - 1] != '-') {
        return 0;
    }
    for (size_t i = 3; i < last - 1; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] == '-' && s[i - 1] != '-'))) {
            return 0;
        }
    }
    return s[last - 2] != '-';
}

static const char *shape_of(ns_arn_kind kind)
{
    return kind == NS_ARN_IAM_ROLE        ? ARN_SHAPE_ROLE
           : kind == NS_ARN_IAM_PRINCIPAL ? ARN_SHAPE_PRINCIPAL
                                          : ARN_SHAPE_KEY;
}

static const char *what_of(ns_arn_kind kind)
{
    return kind == NS_ARN_IAM_ROLE        ? "an IAM role ARN"
           : kind == NS_ARN_IAM_PRINCIPAL ? "an IAM principal ARN"
                                          : "a KMS key ARN";
}

#define ARN_FAIL(reason)                                                                           \
    return ns_fail(NS_E_USAGE, "'%.200s' is not %s: %s (expected %s)", s, what_of(kind), reason,   \
                   shape_of(kind))

/* The resource part after "ACCOUNT:" for IAM kinds. */
static ns_err iam_resource(const char *s, ns_arn_kind kind, const char *res)
{
    if (strncmp(res, "role/", 5) == 0) {
        if (!iam_path_name(res + 5)) {
            ARN_FAIL("the role name must be 1 to 64 of A-Z a-z 0-9 _+=,.@- after an optional "
                     "/PATH/");
        }
        return NS_OK;
    }
    if (kind == NS_ARN_IAM_PRINCIPAL && strncmp(res, "user/", 5) == 0) {
        if (!iam_path_name(res + 5)) {
            ARN_FAIL("the user name must be 1 to 64 of A-Z a-z 0-9 _+=,.@- after an optional "
                     "/PATH/");
        }
        return NS_OK;
    }
    if (kind == NS_ARN_IAM_PRINCIPAL && strcmp(res, "root") == 0) {
        return NS_OK;
    }
    ARN_FAIL(kind == NS_ARN_IAM_ROLE ? "the resource must be role/NAME"
                                     : "the resource must be role/NAME, user/NAME or root");
}

ns_err ns_kmspolicy_arn_parse(ns_arn *out, const char *s, ns_arn_kind kind)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(s);
    if (len > NS_KMSPOLICY_ARN_MAX) {
        ARN_FAIL("longer than 2048 characters");
    }
    const char *f[6];
    size_t fl[6];
    const char *p = s;
    for (int i = 0; i < 6; i++) {
        const char *c = i < 5 ? strchr(p, ':') : p + strlen(p);
        if (c == NULL) {
            ARN_FAIL("an ARN has six ':'-separated parts");
        }
        f[i] = p;
        fl[i] = (size_t)(c - p);
        p = c + 1;
    }
    if (fl[0] != 3 || memcmp(f[0], "arn", 3) != 0) {
        ARN_FAIL("it does not start with arn:");
    }
    int part_ok = 0;
    for (size_t i = 0; i < sizeof partitions / sizeof partitions[0]; i++) {
        if (strlen(partitions[i]) == fl[1] && memcmp(partitions[i], f[1], fl[1]) == 0) {
            part_ok = 1;
        }
    }
    if (!part_ok) {
        ARN_FAIL("unknown partition (aws, aws-cn, aws-us-gov, aws-iso*, aws-eusc)");
    }
    int want_kms = kind == NS_ARN_KMS_KEY;
    if (!want_kms && fl[2] == 3 && memcmp(f[2], "sts", 3) == 0) {
        ARN_FAIL("an STS session is not a stable principal; use the role's own IAM ARN");
    }
    if (fl[2] != 3 || memcmp(f[2], want_kms ? "kms" : "iam", 3) != 0) {
        ARN_FAIL(want_kms ? "the service must be kms" : "the service must be iam");
    }
    if (want_kms ? !region_ok(f[3], fl[3]) : fl[3] != 0) {
        ARN_FAIL(want_kms ? "the region is missing or malformed (e.g. us-east-1)"
                          : "an IAM ARN has no region (arn:aws:iam::ACCOUNT:...)");
    }
    if (fl[4] != 12 || !is_digits(f[4], 12)) {
        ARN_FAIL("the account must be 12 digits");
    }
    const char *res = f[5];
    if (want_kms) {
        if (strncmp(res, "alias/", 6) == 0) {
            ARN_FAIL("an alias cannot stand for the key in a policy; use the key's ARN (aws kms "
                     "describe-key --key-id alias/NAME)");
        }
        if (strncmp(res, "key/", 4) != 0 || !kms_key_id(res + 4)) {
            ARN_FAIL("the resource must be key/ and a key id (a lower-case UUID or mrk- and 32 "
                     "hex digits)");
        }
    } else {
        GUARD(iam_resource(s, kind, res));
    }
    memcpy(out->partition, f[1], fl[1]);
    memcpy(out->region, f[3], fl[3]);
    memcpy(out->account, f[4], fl[4]);
    return NS_OK;
}

/* ---- the key policy */

/* Up to MAX_IMAGES distinct hex values, first seen first. */
typedef struct {
    char v[NS_KMSPOLICY_MAX_IMAGES][PCR_HEX_LEN + 1];
    const char *p[NS_KMSPOLICY_MAX_IMAGES];
    size_t n;
} hexset;

static ns_err hexset_add(hexset *h, const uint8_t pcr[NS_KMSPOLICY_PCR_LEN])
{
    char x[PCR_HEX_LEN + 1];
    GUARD(ns_hex_encode(x, sizeof x, pcr, NS_KMSPOLICY_PCR_LEN));
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->v[i], x) == 0) {
            return NS_OK;
        }
    }
    ENSURE(h->n < NS_KMSPOLICY_MAX_IMAGES, NS_E_USAGE, "more than %d distinct values",
           NS_KMSPOLICY_MAX_IMAGES);
    memcpy(h->v[h->n], x, sizeof x);
    h->p[h->n] = h->v[h->n];
    h->n++;
    return NS_OK;
}

static void principal(jw *w, const char *const *arns, size_t n)
{
    jw_key(w, "Principal");
    jw_begin(w, '{');
    jw_key_strs(w, "AWS", arns, n);
    jw_end(w);
}

static void condition_pcr(jw *w, int index, const hexset *h)
{
    char k[48];
    snprintf(k, sizeof k, "kms:RecipientAttestation:PCR%d", index);
    jw_key_strs(w, k, h->p, h->n);
}

/* One Decrypt statement for the images with is_signed == sign (none: nothing written). */
static ns_err decrypt_statement(jw *w, const ns_kmspolicy_key_input *in, int sign)
{
    hexset h[4]; /* PCR0, PCR1, PCR2, PCR8 */
    hexset p16;
    memset(h, 0, sizeof h);
    memset(&p16, 0, sizeof p16);
    static const uint8_t zero[NS_KMSPOLICY_PCR_LEN];
    if (in->debug) {
        if (sign) {
            return NS_OK;
        }
        for (int i = 0; i < 3; i++) {
            GUARD(hexset_add(&h[i], zero));
        }
    }
    for (size_t i = 0; i < in->n_images; i++) {
        const ns_kmspolicy_image *im = &in->images[i];
        if ((im->is_signed != 0) != sign) {
            continue;
        }
        GUARD(hexset_add(&h[0], im->pcr0));
        GUARD(hexset_add(&h[1], im->pcr1));
        GUARD(hexset_add(&h[2], im->pcr2));
        if (sign) {
            GUARD(hexset_add(&h[3], im->pcr8));
        }
    }
    if (h[0].n == 0) {
        return NS_OK;
    }
    for (size_t i = 0; i < in->n_pcr16; i++) {
        GUARD(hexset_add(&p16, in->pcr16[i]));
    }
    jw_begin(w, '{');
    jw_key(w, "Sid");
    jw_str(w, sign ? "EnclaveDecryptSigned" : "EnclaveDecrypt");
    jw_key(w, "Effect");
    jw_str(w, "Allow");
    principal(w, in->roles, in->n_roles);
    jw_key(w, "Action");
    jw_str(w, "kms:Decrypt");
    jw_key(w, "Resource");
    jw_str(w, "*");
    jw_key(w, "Condition");
    jw_begin(w, '{');
    jw_key(w, "StringEqualsIgnoreCase");
    jw_begin(w, '{');
    condition_pcr(w, 0, &h[0]);
    condition_pcr(w, 1, &h[1]);
    condition_pcr(w, 2, &h[2]);
    if (sign) {
        condition_pcr(w, 8, &h[3]);
    }
    if (p16.n > 0) {
        condition_pcr(w, 16, &p16);
    }
    jw_end(w);
    jw_end(w);
    jw_end(w);
    return NS_OK;
}

static void simple_statement(jw *w, const char *sid, const char *const *who, size_t n_who,
                             const char *const *actions, size_t n_actions)
{
    jw_begin(w, '{');
    jw_key(w, "Sid");
    jw_str(w, sid);
    jw_key(w, "Effect");
    jw_str(w, "Allow");
    principal(w, who, n_who);
    jw_key_strs(w, "Action", actions, n_actions);
    jw_key(w, "Resource");
    jw_str(w, "*");
    jw_end(w);
}

static ns_err principals_check(const char *const *arns, size_t n, ns_arn_kind kind,
                               const char *what, char partition[16])
{
    ENSURE(n >= 1 && n <= NS_KMSPOLICY_MAX_PRINCIPALS, NS_E_USAGE, "%s: give 1 to %d ARNs", what,
           NS_KMSPOLICY_MAX_PRINCIPALS);
    for (size_t i = 0; i < n; i++) {
        ns_arn a;
        ns_err e = ns_kmspolicy_arn_parse(&a, arns[i], kind);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "%s", what);
        }
        if (partition[0] == 0) {
            memcpy(partition, a.partition, sizeof a.partition);
        }
        ENSURE(strcmp(partition, a.partition) == 0, NS_E_USAGE,
               "%s '%.200s' is in partition %s, another ARN in %s: a key policy lives in one "
               "partition",
               what, arns[i], a.partition, partition);
        for (size_t j = 0; j < i; j++) {
            ENSURE(strcmp(arns[i], arns[j]) != 0, NS_E_USAGE, "%s '%.200s' is given twice", what,
                   arns[i]);
        }
    }
    return NS_OK;
}

ns_err ns_kmspolicy_key_check(const ns_kmspolicy_key_input *in)
{
    char partition[16] = "";
    GUARD(principals_check(in->roles, in->n_roles, NS_ARN_IAM_ROLE, "--role-arn", partition));
    GUARD(
        principals_check(in->admins, in->n_admins, NS_ARN_IAM_PRINCIPAL, "--admin-arn", partition));
    if (in->debug) {
        ENSURE(in->n_images == 0, NS_E_USAGE,
               "a debug-mode policy admits all-zero PCRs only: give no EIF with it");
    } else {
        ENSURE(in->n_images >= 1 && in->n_images <= NS_KMSPOLICY_MAX_IMAGES, NS_E_USAGE,
               "give 1 to %d EIFs", NS_KMSPOLICY_MAX_IMAGES);
    }
    ENSURE(in->n_pcr16 <= NS_KMSPOLICY_MAX_PCR16, NS_E_USAGE, "at most %d PCR16 values",
           NS_KMSPOLICY_MAX_PCR16);
    static const uint8_t zero[NS_KMSPOLICY_PCR_LEN];
    for (size_t i = 0; i < in->n_pcr16; i++) {
        ENSURE(memcmp(in->pcr16[i], zero, sizeof zero) != 0, NS_E_USAGE,
               "PCR16 all zero is what an enclave that measured nothing reports; pin the value "
               "`nsign eif pcr16` prints for your inputs");
    }
    return NS_OK;
}

ns_err ns_kmspolicy_key_policy(ns_buf *out, const ns_kmspolicy_key_input *in)
{
    GUARD(ns_kmspolicy_key_check(in));
    static const char *const encrypt[] = {"kms:Encrypt"};
    static const char *const read_policy[] = {"kms:DescribeKey", "kms:GetKeyPolicy"};
    jw w = {.b = out};
    jw_begin(&w, '{');
    jw_key(&w, "Version");
    jw_str(&w, "2012-10-17");
    jw_key(&w, "Id");
    jw_str(&w, in->debug ? "nsign-enclave-key-DEBUG-MODE" : "nsign-enclave-key");
    jw_key(&w, "Statement");
    jw_begin(&w, '[');
    simple_statement(&w, "KeyAdministrators", in->admins, in->n_admins, admin_actions,
                     sizeof admin_actions / sizeof admin_actions[0]);
    simple_statement(&w, "AdministratorsEncryptInputs", in->admins, in->n_admins, encrypt, 1);
    GUARD(decrypt_statement(&w, in, 0));
    GUARD(decrypt_statement(&w, in, 1));
    simple_statement(&w, "InstanceRoleReadsKeyPolicy", in->roles, in->n_roles, read_policy, 2);
    jw_end(&w);
    jw_end(&w);
    jw_raw(&w, "\n");
    return w.e;
}

/* ---- the IAM policy */

static ns_err object_arn(char *out, size_t cap, const char *partition, const ns_s3_uri *u)
{
    for (const char *c = u->key; *c; c++) {
        ENSURE(*c != '*' && *c != '?' && *c != '$', NS_E_USAGE,
               "object key '%.200s' holds '%c', which an IAM Resource reads as a wildcard or a "
               "variable: rename the object",
               u->key, *c);
        ENSURE((unsigned char)*c >= 0x20 && *c != 0x7f, NS_E_USAGE,
               "object key '%.200s' holds a control character", u->key);
    }
    int n = snprintf(out, cap, "arn:%s:s3:::%s/%s", partition, u->bucket, u->key);
    ENSURE(n > 0 && (size_t)n < cap, NS_E_USAGE, "object ARN too long");
    return NS_OK;
}

ns_err ns_kmspolicy_iam_policy(ns_buf *out, const ns_kmspolicy_iam_input *in)
{
    ns_arn key;
    ns_err e = ns_kmspolicy_arn_parse(&key, in->key_arn, NS_ARN_KMS_KEY);
    if (e != NS_OK) {
        return ns_fail_ctx(e, "--key-arn");
    }
    char objs[2][NS_S3_BUCKET_MAX + NS_S3_KEY_MAX + 32];
    const char *res[2] = {objs[0], objs[1]};
    for (int i = 0; i < 2; i++) {
        GUARD(object_arn(objs[i], sizeof objs[i], key.partition, &in->objects[i]));
    }
    ENSURE(strcmp(objs[0], objs[1]) != 0, NS_E_USAGE,
           "the age key and the key shares are the same object (%.200s)", objs[0]);
    static const char *const decrypt[] = {"kms:Decrypt"};
    static const char *const read_policy[] = {"kms:DescribeKey", "kms:GetKeyPolicy"};
    static const char *const get[] = {"s3:GetObject"};
    const char *key_res[1] = {in->key_arn};
    struct {
        const char *sid;
        const char *const *actions;
        size_t n_actions;
        const char *const *res;
        size_t n_res;
    } st[] = {
        {"ReadEnclaveCiphertexts", get, 1, res, 2},
        {"DecryptInsideEnclave", decrypt, 1, key_res, 1},
        {"PreflightReadsKeyPolicy", read_policy, 2, key_res, 1},
    };
    jw w = {.b = out};
    jw_begin(&w, '{');
    jw_key(&w, "Version");
    jw_str(&w, "2012-10-17");
    jw_key(&w, "Statement");
    jw_begin(&w, '[');
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        jw_begin(&w, '{');
        jw_key(&w, "Sid");
        jw_str(&w, st[i].sid);
        jw_key(&w, "Effect");
        jw_str(&w, "Allow");
        jw_key_strs(&w, "Action", st[i].actions, st[i].n_actions);
        jw_key_strs(&w, "Resource", st[i].res, st[i].n_res);
        jw_end(&w);
    }
    jw_end(&w);
    jw_end(&w);
    jw_raw(&w, "\n");
    return w.e;
}

ns_err ns_kmspolicy_default_objects(ns_s3_uri out[2], const char *bucket_uri)
{
    static const char *const names[2] = {"age-private.key.enc", "service_key_shares.json.age"};
    ENSURE(strncmp(bucket_uri, "s3://", 5) == 0, NS_E_USAGE,
           "--bucket-uri '%.200s' is not s3://BUCKET[/PREFIX]", bucket_uri);
    size_t n = strlen(bucket_uri);
    while (n > 5 && bucket_uri[n - 1] == '/') {
        n--;
    }
    for (int i = 0; i < 2; i++) {
        char uri[NS_S3_BUCKET_MAX + NS_S3_KEY_MAX + 16];
        int w = snprintf(uri, sizeof uri, "%.*s/%s", (int)n, bucket_uri, names[i]);
        ENSURE(w > 0 && (size_t)w < sizeof uri, NS_E_USAGE, "--bucket-uri too long");
        ns_err e = ns_s3_uri_parse(&out[i], uri);
        if (e != NS_OK) {
            return ns_fail_ctx(e, "--bucket-uri");
        }
    }
    return NS_OK;
}
