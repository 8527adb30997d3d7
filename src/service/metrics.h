/*
 * metrics: counters, gauges and histograms with labels, rendered in the Prometheus text
 * exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * Families are registered once at start-up (not concurrently with updates). Updates are
 * lock-free: a series is found or created in a fixed open-addressing table by atomic
 * compare-and-swap, and its values are relaxed atomics, so the epoll threads of sign-service
 * never wait on each other. A caller that updates the same series often keeps the
 * ns_metric_series pointer (it never moves or goes away until ns_metrics_free).
 *
 * Bounded: each family holds at most its max_series label sets; once full, new label sets are
 * counted in one overflow series whose label values are all "_other". Label values are cut to
 * NS_METRIC_VALUE_MAX bytes and bytes outside printable ASCII become '?', so a client-chosen
 * value can neither grow memory nor break the exposition.
 */
#ifndef NS_METRICS_H
#define NS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NS_METRIC_NAME_MAX 64
#define NS_METRIC_LABELS_MAX 4
#define NS_METRIC_VALUE_MAX 64
#define NS_METRIC_BUCKETS_MAX 16
#define NS_METRIC_SERIES_MAX 1024
#define NS_METRIC_FAMILIES_MAX 64

typedef enum { NS_METRIC_COUNTER, NS_METRIC_GAUGE, NS_METRIC_HISTOGRAM } ns_metric_type;

typedef struct ns_metrics ns_metrics;
typedef struct ns_metric ns_metric;
typedef struct ns_metric_series ns_metric_series;

ns_err ns_metrics_new(ns_metrics **r) NS_MUST_CHECK;
void ns_metrics_free(ns_metrics *r);

/*
 * Registers a family. name: [a-zA-Z_:][a-zA-Z0-9_:]*, counters end in "_total"; labels:
 * [a-zA-Z_][a-zA-Z0-9_]*, not starting "__", "le" reserved for histograms; buckets (histograms
 * only): strictly increasing upper bounds, +Inf is implied. max_series 0 = 64.
 */
ns_err ns_metrics_add(ns_metrics *r, ns_metric **m, ns_metric_type type, const char *name,
                      const char *help, size_t nlabels, const char *const *labels,
                      const double *buckets, size_t nbuckets, size_t max_series) NS_MUST_CHECK;
/* A family without labels whose value is read at scrape time (fn must be thread-safe). */
ns_err ns_metrics_add_func(ns_metrics *r, ns_metric_type type, const char *name, const char *help,
                           double (*fn)(void *arg), void *arg) NS_MUST_CHECK;

/* The series for these label values (nlabels of them; NULL when the family has none). Never
 * NULL: the overflow series when the family is full. Lock-free. */
ns_metric_series *ns_metric_get(ns_metric *m, const char *const *values);

void ns_metric_inc(ns_metric_series *s, uint64_t n);   /* counters */
void ns_metric_set(ns_metric_series *s, double v);     /* gauges */
void ns_metric_add(ns_metric_series *s, double v);     /* gauges */
void ns_metric_observe(ns_metric_series *s, double v); /* histograms */

/* Appends the exposition of every family, in registration order. */
ns_err ns_metrics_render(ns_metrics *r, ns_buf *out) NS_MUST_CHECK;

/* The Content-Type of the exposition. */
#define NS_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
