/* Unit tests: metrics registry, bounded series, lock-free updates from threads, exposition. */
#include <pthread.h>
#include <string.h>

#include "metrics.h"
#include "t.h"

static int contains(const ns_buf *b, const char *s)
{
    return b->len > 0 && memmem(b->data, b->len, s, strlen(s)) != NULL;
}

static ns_metric_series *g_series;
static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        ns_metric_inc(g_series, 1);
    }
    return NULL;
}

static ns_metric *g_fam;
static void *creators(void *arg)
{
    char v[16];
    for (int i = 0; i < 200; i++) {
        snprintf(v, sizeof v, "k%d", (i * 7 + (int)(long)arg) % 40);
        const char *vals[] = {v};
        ns_metric_inc(ns_metric_get(g_fam, vals), 1);
    }
    return NULL;
}

static double forty_two(void *arg)
{
    (void)arg;
    return 42;
}

int main(void)
{
    ns_metrics *r;
    ns_metric *c, *g, *h, *small;
    CHECK_ERR(ns_metrics_new(&r), NS_OK, "new registry");
    const char *lab[] = {"key", "status"};
    CHECK_ERR(ns_metrics_add(r, &c, NS_METRIC_COUNTER, "nsign_sign_requests_total",
                             "Sign RPCs.\\ with \"odd\"\nhelp", 2, lab, NULL, 0, 0),
              NS_OK, "counter registered");
    CHECK_ERR(ns_metrics_add(r, &g, NS_METRIC_GAUGE, "nsign_in_flight", "In flight.", 0, NULL,
                             NULL, 0, 0),
              NS_OK, "gauge registered");
    double b[] = {0.001, 0.01, 0.1};
    const char *hl[] = {"key"};
    CHECK_ERR(ns_metrics_add(r, &h, NS_METRIC_HISTOGRAM, "nsign_sign_duration_seconds", "Latency.",
                             1, hl, b, 3, 0),
              NS_OK, "histogram registered");
    CHECK_ERR(ns_metrics_add_func(r, NS_METRIC_GAUGE, "nsign_answer", "Answer.", forty_two, NULL),
              NS_OK, "function gauge registered");

    /* Refused registrations. */
    CHECK_ERR(ns_metrics_add(r, NULL, NS_METRIC_COUNTER, "nsign_requests", "", 0, NULL, NULL, 0, 0),
              NS_E_USAGE, "counter without _total refused");
    CHECK_ERR(ns_metrics_add(r, NULL, NS_METRIC_GAUGE, "1bad", "", 0, NULL, NULL, 0, 0), NS_E_USAGE,
              "name starting with a digit refused");
    CHECK_ERR(ns_metrics_add(r, NULL, NS_METRIC_GAUGE, "nsign_in_flight", "", 0, NULL, NULL, 0, 0),
              NS_E_USAGE, "duplicate name refused");
    const char *badl[] = {"__x"};
    CHECK_ERR(ns_metrics_add(r, NULL, NS_METRIC_GAUGE, "nsign_x", "", 1, badl, NULL, 0, 0),
              NS_E_USAGE, "reserved label name refused");
    const char *le[] = {"le"};
    CHECK_ERR(ns_metrics_add(r, NULL, NS_METRIC_GAUGE, "nsign_y", "", 1, le, NULL, 0, 0),
              NS_E_USAGE, "label le refused");
    double bad_b[] = {0.1, 0.1};
    CHECK_ERR(ns_metrics_add(r, NULL, NS_METRIC_HISTOGRAM, "nsign_z_seconds", "", 0, NULL, bad_b,
                             2, 0),
              NS_E_USAGE, "non-increasing buckets refused");
    CHECK_ERR(ns_metrics_add(r, NULL, NS_METRIC_GAUGE, "nsign_w", "", 0, NULL, b, 3, 0), NS_E_USAGE,
              "buckets on a gauge refused");

    const char *v1[] = {"payments", "OK"};
    const char *v2[] = {"evil\"\\\nkey\x01\xff", "NOT_FOUND"};
    ns_metric_series *s1 = ns_metric_get(c, v1);
    CHECK(s1 == ns_metric_get(c, v1), "same labels give the same series");
    ns_metric_inc(s1, 3);
    ns_metric_inc(ns_metric_get(c, v2), 1);
    ns_metric_set(ns_metric_get(g, NULL), 5);
    ns_metric_add(ns_metric_get(g, NULL), -2);
    const char *hk[] = {"payments"};
    ns_metric_series *hs = ns_metric_get(h, hk);
    ns_metric_observe(hs, 0.0005);
    ns_metric_observe(hs, 0.05);
    ns_metric_observe(hs, 3);

    ns_buf out;
    ns_buf_init(&out, 1 << 20);
    CHECK_ERR(ns_metrics_render(r, &out), NS_OK, "render");
    CHECK(ns_buf_cstr(&out) == NS_OK, "terminated");
    CHECK(contains(&out, "# TYPE nsign_sign_requests_total counter\n"), "counter TYPE line");
    CHECK(contains(&out, "# HELP nsign_sign_requests_total Sign RPCs.\\\\ with \"odd\"\\nhelp\n"),
          "HELP escapes backslash and newline only");
    CHECK(contains(&out, "nsign_sign_requests_total{key=\"payments\",status=\"OK\"} 3\n"),
          "counter value with labels");
    CHECK(contains(&out, "{key=\"evil\\\"\\\\?key??\",status=\"NOT_FOUND\"} 1\n"),
          "label value: quote and backslash escaped, control and non-ASCII bytes replaced");
    CHECK(contains(&out, "nsign_in_flight 3\n"), "gauge set then add");
    CHECK(contains(&out, "nsign_sign_duration_seconds_bucket{key=\"payments\",le=\"0.001\"} 1\n"),
          "first bucket");
    CHECK(contains(&out, "nsign_sign_duration_seconds_bucket{key=\"payments\",le=\"0.1\"} 2\n"),
          "buckets are cumulative");
    CHECK(contains(&out, "nsign_sign_duration_seconds_bucket{key=\"payments\",le=\"+Inf\"} 3\n"),
          "+Inf bucket counts everything");
    CHECK(contains(&out, "nsign_sign_duration_seconds_sum{key=\"payments\"} 3.0505\n"), "sum");
    CHECK(contains(&out, "nsign_sign_duration_seconds_count{key=\"payments\"} 3\n"), "count");
    CHECK(contains(&out, "nsign_answer 42\n"), "function gauge read at scrape time");
    ns_buf_free(&out);

    /* Bounded series: max 4, then the overflow series. */
    CHECK_ERR(ns_metrics_add(r, &small, NS_METRIC_COUNTER, "nsign_small_total", "", 1, hl, NULL, 0,
                             4),
              NS_OK, "bounded family");
    char v[16];
    for (int i = 0; i < 100; i++) {
        snprintf(v, sizeof v, "client%d", i);
        const char *vals[] = {v};
        ns_metric_inc(ns_metric_get(small, vals), 1);
    }
    ns_buf_init(&out, 1 << 20);
    CHECK_ERR(ns_metrics_render(r, &out), NS_OK, "render bounded");
    CHECK(ns_buf_cstr(&out) == NS_OK, "terminated");
    CHECK(contains(&out, "nsign_small_total{key=\"_other\"} 96\n"), "label sets past the bound fold "
          "into _other");
    CHECK(contains(&out, "nsign_small_total{key=\"client3\"} 1\n") &&
              !contains(&out, "client4\""),
          "exactly max_series label sets kept");
    ns_buf_free(&out);

    /* Concurrent updates: nothing lost. */
    g_series = ns_metric_get(c, v1);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        pthread_create(&th[i], NULL, hammer, NULL);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    ns_buf_init(&out, 1 << 20);
    CHECK_ERR(ns_metrics_render(r, &out), NS_OK, "render after threads");
    CHECK(ns_buf_cstr(&out) == NS_OK, "terminated");
    CHECK(contains(&out, "{key=\"payments\",status=\"OK\"} 400003\n"),
          "4 threads x 100000 increments all counted");
    ns_buf_free(&out);

    /* Concurrent creation of the same series: one slot per label set. */
    const char *kl[] = {"k"};
    CHECK_ERR(ns_metrics_add(r, &g_fam, NS_METRIC_COUNTER, "nsign_race_total", "", 1, kl, NULL, 0,
                             64),
              NS_OK, "race family");
    for (int i = 0; i < 4; i++) {
        pthread_create(&th[i], NULL, creators, (void *)(long)i);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    ns_buf_init(&out, 1 << 20);
    CHECK_ERR(ns_metrics_render(r, &out), NS_OK, "render race");
    CHECK(ns_buf_cstr(&out) == NS_OK, "terminated");
    int lines = 0;
    unsigned long long sum = 0;
    for (char *p = strstr((char *)out.data, "nsign_race_total{"); p;
         p = strstr(p + 1, "nsign_race_total{")) {
        lines++;
        sum += strtoull(strchr(p, ' ') + 1, NULL, 10);
    }
    CHECK(lines == 40 && sum == 800, "40 distinct label sets, 800 increments (got %d, %llu)", lines,
          sum);
    ns_buf_free(&out);
    ns_metrics_free(r);
    T_DONE();
}
