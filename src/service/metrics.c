/*
 * metrics: see metrics.h. Each family owns a table of 2 * max_series slots (so a free slot is
 * always found once a series has been reserved against max_series). A slot goes EMPTY -> BUSY
 * (the creator's CAS) -> READY (labels written, released); readers skip to READY slots only.
 * Doubles live in atomic 64-bit words (their bit patterns); adds are CAS loops.
 */
#include "metrics.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SERIES 64
#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

enum { SLOT_EMPTY, SLOT_BUSY, SLOT_READY };

struct ns_metric_series {
    const struct ns_metric *family;
    _Atomic int state;
    uint64_t hash;
    char values[NS_METRIC_LABELS_MAX][NS_METRIC_VALUE_MAX + 1];
    _Atomic uint64_t count; /* counter value; histogram observation count */
    _Atomic uint64_t bits;  /* gauge value or histogram sum (double bits) */
    _Atomic uint64_t buckets[NS_METRIC_BUCKETS_MAX];
};

struct ns_metric {
    ns_metric_type type;
    char name[NS_METRIC_NAME_MAX + 1];
    char *help;
    size_t nlabels;
    char labels[NS_METRIC_LABELS_MAX][NS_METRIC_NAME_MAX + 1];
    double bounds[NS_METRIC_BUCKETS_MAX];
    size_t nbuckets;
    size_t max_series;
    size_t nslots;
    _Atomic size_t used;
    ns_metric_series *slots;
    ns_metric_series overflow;
    _Atomic int overflow_used;
    double (*fn)(void *);
    void *fn_arg;
};

struct ns_metrics {
    ns_metric *families[NS_METRIC_FAMILIES_MAX];
    size_t count;
};

static double from_bits(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

ns_err ns_metrics_new(ns_metrics **r)
{
    *r = calloc(1, sizeof **r);
    ENSURE(*r != NULL, NS_E_NOMEM, "out of memory");
    return NS_OK;
}

void ns_metrics_free(ns_metrics *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->count; i++) {
        free(r->families[i]->slots);
        free(r->families[i]->help);
        free(r->families[i]);
    }
    free(r);
}

static int name_ok(const char *s, int colon)
{
    size_t n = strlen(s);
    if (n == 0 || n > NS_METRIC_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static ns_err add(ns_metrics *r, ns_metric **out, ns_metric_type type, const char *name,
                  const char *help, size_t nlabels, const char *const *labels,
                  const double *buckets, size_t nbuckets, size_t max_series)
{
    ENSURE(r->count < NS_METRIC_FAMILIES_MAX, NS_E_TOO_BIG, "more than %d families",
           NS_METRIC_FAMILIES_MAX);
    ENSURE(name_ok(name, 1), NS_E_USAGE, "invalid metric name \"%s\"", name);
    ENSURE(type != NS_METRIC_COUNTER || ends_with(name, "_total"), NS_E_USAGE,
           "counter %s must end in _total", name);
    ENSURE(nlabels <= NS_METRIC_LABELS_MAX, NS_E_USAGE, "%s has too many labels", name);
    ENSURE(type == NS_METRIC_HISTOGRAM ? nbuckets >= 1 && nbuckets <= NS_METRIC_BUCKETS_MAX
                                       : nbuckets == 0,
           NS_E_USAGE, "%s: buckets are for histograms (1 to %d)", name,
           NS_METRIC_BUCKETS_MAX);
    for (size_t i = 0; i < r->count; i++) {
        ENSURE(strcmp(r->families[i]->name, name) != 0, NS_E_USAGE, "%s registered twice",
               name);
    }
    for (size_t i = 0; i < nlabels; i++) {
        ENSURE(name_ok(labels[i], 0) && strncmp(labels[i], "__", 2) != 0 &&
                   strcmp(labels[i], "le") != 0,
               NS_E_USAGE, "%s: invalid label name \"%s\"", name, labels[i]);
    }
    for (size_t i = 0; i < nbuckets; i++) {
        ENSURE(isfinite(buckets[i]) && (i == 0 || buckets[i] > buckets[i - 1]), NS_E_USAGE,
               "%s: bucket bounds must be finite and increasing", name);
    }
    if (max_series == 0) {
        max_series = DEFAULT_SERIES;
    }
    ENSURE(max_series <= NS_METRIC_SERIES_MAX, NS_E_USAGE, "%s: max_series over %d", name,
           NS_METRIC_SERIES_MAX);
    ns_metric *m = calloc(1, sizeof *m);
    ENSURE(m != NULL, NS_E_NOMEM, "out of memory");
    m->type = type;
    snprintf(m->name, sizeof m->name, "%s", name);
    m->help = strdup(help ? help : "");
    m->nlabels = nlabels;
    for (size_t i = 0; i < nlabels; i++) {
        snprintf(m->labels[i], sizeof m->labels[i], "%s", labels[i]);
        snprintf(m->overflow.values[i], sizeof m->overflow.values[i], "_other");
    }
    if (nbuckets > 0) {
        memcpy(m->bounds, buckets, nbuckets * sizeof *buckets);
    }
    m->nbuckets = nbuckets;
    m->max_series = nlabels == 0 ? 1 : max_series;
    m->nslots = 2 * m->max_series;
    m->slots = calloc(m->nslots, sizeof *m->slots);
    if (m->slots == NULL || m->help == NULL) {
        free(m->slots);
        free(m->help);
        free(m);
        BAIL(NS_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->nslots; i++) {
        m->slots[i].family = m;
    }
    m->overflow.family = m;
    r->families[r->count++] = m;
    if (nlabels == 0) {
        (void)ns_metric_get(m, NULL); /* exposed (as 0) from the first scrape */
    }
    if (out != NULL) {
        *out = m;
    }
    return NS_OK;
}

ns_err ns_metrics_add(ns_metrics *r, ns_metric **m, ns_metric_type type, const char *name,
                      const char *help, size_t nlabels, const char *const *labels,
                      const double *buckets, size_t nbuckets, size_t max_series)
{
    return add(r, m, type, name, help, nlabels, labels, buckets, nbuckets, max_series);
}

ns_err ns_metrics_add_func(ns_metrics *r, ns_metric_type type, const char *name, const char *help,
                           double (*fn)(void *arg), void *arg)
{
    ns_metric *m = NULL;
    ENSURE(type != NS_METRIC_HISTOGRAM && fn != NULL, NS_E_USAGE,
           "%s: a function family is a counter or a gauge", name);
    GUARD(add(r, &m, type, name, help, 0, NULL, NULL, 0, 1));
    m->fn = fn;
    m->fn_arg = arg;
    return NS_OK;
}

/* Copies a label value cut and cleaned (see metrics.h) and folds it into the hash. */
static uint64_t clean(char *dst, const char *src, uint64_t h)
{
    size_t i = 0;
    for (; src != NULL && src[i] && i < NS_METRIC_VALUE_MAX; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        h = (h ^ (unsigned char)dst[i]) * FNV_PRIME;
    }
    dst[i] = 0;
    return (h ^ 0xff) * FNV_PRIME; /* separator: ("a","bc") != ("ab","c") */
}

static int same(const ns_metric *m, const ns_metric_series *s,
                char vals[NS_METRIC_LABELS_MAX][NS_METRIC_VALUE_MAX + 1])
{
    for (size_t i = 0; i < m->nlabels; i++) {
        if (strcmp(s->values[i], vals[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

ns_metric_series *ns_metric_get(ns_metric *m, const char *const *values)
{
    char vals[NS_METRIC_LABELS_MAX][NS_METRIC_VALUE_MAX + 1];
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < m->nlabels; i++) {
        h = clean(vals[i], values ? values[i] : NULL, h);
    }
    size_t start = (size_t)(h % m->nslots);
    for (size_t k = 0; k < m->nslots; k++) {
        ns_metric_series *s = &m->slots[(start + k) % m->nslots];
        int st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st == SLOT_EMPTY) {
            if (atomic_fetch_add(&m->used, 1) >= m->max_series) {
                atomic_fetch_sub(&m->used, 1);
                atomic_store_explicit(&m->overflow_used, 1, memory_order_relaxed);
                return &m->overflow;
            }
            int expect = SLOT_EMPTY;
            if (atomic_compare_exchange_strong(&s->state, &expect, SLOT_BUSY)) {
                s->hash = h;
                memcpy(s->values, vals, sizeof vals);
                atomic_store_explicit(&s->state, SLOT_READY, memory_order_release);
                return s;
            }
            atomic_fetch_sub(&m->used, 1); /* another thread took the slot: look at it */
            st = expect;
        }
        while (st == SLOT_BUSY) {
            sched_yield();
            st = atomic_load_explicit(&s->state, memory_order_acquire);
        }
        if (s->hash == h && same(m, s, vals)) {
            return s;
        }
    }
    atomic_store_explicit(&m->overflow_used, 1, memory_order_relaxed);
    return &m->overflow;
}

void ns_metric_inc(ns_metric_series *s, uint64_t n)
{
    atomic_fetch_add_explicit(&s->count, n, memory_order_relaxed);
}

static void add_bits(_Atomic uint64_t *w, double v)
{
    uint64_t old = atomic_load_explicit(w, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(w, &old, to_bits(from_bits(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void ns_metric_set(ns_metric_series *s, double v)
{
    atomic_store_explicit(&s->bits, to_bits(v), memory_order_relaxed);
}

void ns_metric_add(ns_metric_series *s, double v)
{
    add_bits(&s->bits, v);
}

void ns_metric_observe(ns_metric_series *s, double v)
{
    const ns_metric *m = s->family;
    for (size_t i = 0; i < m->nbuckets; i++) {
        if (v <= m->bounds[i]) {
            atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
            break;
        }
    }
    add_bits(&s->bits, v);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

/* --- exposition --- */

static ns_err put_double(ns_buf *out, double v)
{
    if (isnan(v)) {
        return ns_buf_append_str(out, "NaN");
    }
    if (isinf(v)) {
        return ns_buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
    }
    char s[40];
    snprintf(s, sizeof s, "%.15g", v);
    if (strtod(s, NULL) != v) {
        snprintf(s, sizeof s, "%.17g", v);
    }
    return ns_buf_append_str(out, s);
}

static ns_err put_escaped(ns_buf *out, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\') {
            GUARD(ns_buf_append_str(out, "\\\\"));
        } else if (*s == '\n') {
            GUARD(ns_buf_append_str(out, "\\n"));
        } else if (quote && *s == '"') {
            GUARD(ns_buf_append_str(out, "\\\""));
        } else {
            GUARD(ns_buf_append_u8(out, (uint8_t)*s));
        }
    }
    return NS_OK;
}

/* name{labels[,le="x"]} */
static ns_err put_name(ns_buf *out, const ns_metric *m, const char *suffix,
                       const ns_metric_series *s, const char *le)
{
    GUARD(ns_buf_printf(out, "%s%s", m->name, suffix));
    if (m->nlabels == 0 && le == NULL) {
        return ns_buf_append_u8(out, ' ');
    }
    GUARD(ns_buf_append_u8(out, '{'));
    for (size_t i = 0; i < m->nlabels; i++) {
        GUARD(ns_buf_printf(out, "%s%s=\"", i ? "," : "", m->labels[i]));
        GUARD(put_escaped(out, s->values[i], 1));
        GUARD(ns_buf_append_u8(out, '"'));
    }
    if (le != NULL) {
        GUARD(ns_buf_printf(out, "%sle=\"%s\"", m->nlabels ? "," : "", le));
    }
    return ns_buf_append_str(out, "} ");
}

static ns_err render_series(ns_buf *out, const ns_metric *m, ns_metric_series *s)
{
    if (m->type == NS_METRIC_COUNTER) {
        GUARD(put_name(out, m, "", s, NULL));
        return ns_buf_printf(
            out, "%llu\n",
            (unsigned long long)atomic_load_explicit(&s->count, memory_order_relaxed));
    }
    if (m->type == NS_METRIC_GAUGE) {
        GUARD(put_name(out, m, "", s, NULL));
        GUARD(put_double(out, from_bits(atomic_load_explicit(&s->bits, memory_order_relaxed))));
        return ns_buf_append_u8(out, '\n');
    }
    /* Histogram: cumulative buckets. Concurrent observations may land between the loads, so
     * the count is taken as the sum of the buckets it printed plus +Inf, never less. */
    uint64_t cum = 0;
    for (size_t i = 0; i < m->nbuckets; i++) {
        char le[40];
        ns_buf tmp = {.data = (uint8_t *)le, .cap = sizeof le, .max = sizeof le};
        GUARD(put_double(&tmp, m->bounds[i]));
        le[tmp.len] = 0;
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        GUARD(put_name(out, m, "_bucket", s, le));
        GUARD(ns_buf_printf(out, "%llu\n", (unsigned long long)cum));
    }
    uint64_t total = atomic_load_explicit(&s->count, memory_order_relaxed);
    if (total < cum) {
        total = cum;
    }
    GUARD(put_name(out, m, "_bucket", s, "+Inf"));
    GUARD(ns_buf_printf(out, "%llu\n", (unsigned long long)total));
    GUARD(put_name(out, m, "_sum", s, NULL));
    GUARD(put_double(out, from_bits(atomic_load_explicit(&s->bits, memory_order_relaxed))));
    GUARD(ns_buf_append_u8(out, '\n'));
    GUARD(put_name(out, m, "_count", s, NULL));
    return ns_buf_printf(out, "%llu\n", (unsigned long long)total);
}

ns_err ns_metrics_render(ns_metrics *r, ns_buf *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    for (size_t f = 0; f < r->count; f++) {
        ns_metric *m = r->families[f];
        GUARD(ns_buf_printf(out, "# HELP %s ", m->name));
        GUARD(put_escaped(out, m->help, 0));
        GUARD(ns_buf_printf(out, "\n# TYPE %s %s\n", m->name, types[m->type]));
        if (m->fn != NULL) {
            GUARD(ns_buf_printf(out, "%s ", m->name));
            GUARD(put_double(out, m->fn(m->fn_arg)));
            GUARD(ns_buf_append_u8(out, '\n'));
            continue;
        }
        for (size_t i = 0; i < m->nslots; i++) {
            ns_metric_series *s = &m->slots[i];
            if (atomic_load_explicit(&s->state, memory_order_acquire) == SLOT_READY) {
                GUARD(render_series(out, m, s));
            }
        }
        if (atomic_load_explicit(&m->overflow_used, memory_order_relaxed)) {
            GUARD(render_series(out, m, &m->overflow));
        }
    }
    return NS_OK;
}
