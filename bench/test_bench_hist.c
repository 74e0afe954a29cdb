/*  test_bench_hist - the latency histogram against exact percentiles of
    sorted samples: small values exact, large ones within 1/128, merge
    equal to recording everything in one histogram.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "bench_hist.h"
#include "bench_run.h"

static int
s_compare (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

//  The exact percentile of sorted values, by the histogram's rank rule.
static uint64_t
s_exact (const uint64_t *sorted, size_t n, double percent)
{
    size_t rank = (size_t)ceil (percent / 100.0 * (double)n);
    return sorted[(rank ? rank : 1) - 1];
}

static void
test_small_values_exact (void **state)
{
    bench_hist_t hist;
    bench_hist_init (&hist);
    for (uint64_t v = 0; v < 256; v++)
        bench_hist_record (&hist, v);
    assert_int_equal (hist.count, 256);
    assert_int_equal (hist.min, 0);
    assert_int_equal (hist.max, 255);
    assert_int_equal (bench_hist_percentile (&hist, 50), 127);
    assert_int_equal (bench_hist_percentile (&hist, 100), 255);
    assert_true (fabs (bench_hist_mean (&hist) - 127.5) < 1e-9);
}

static void
test_empty (void **state)
{
    bench_hist_t hist;
    bench_hist_init (&hist);
    assert_int_equal (bench_hist_percentile (&hist, 99.9), 0);
    assert_true (bench_hist_mean (&hist) == 0);
}

//  Random values over six decades: each percentile is at or above the
//  exact one and within 1/128 of it.
static void
test_within_relative_error (void **state)
{
    enum { N = 200000 };
    uint64_t *values = (uint64_t *)malloc (N * sizeof (uint64_t));
    assert_non_null (values);
    bench_hist_t hist;
    bench_hist_init (&hist);
    uint64_t rng = 12345;
    for (size_t i = 0; i < N; i++) {
        uint64_t r = bench_random (&rng);
        values[i] = (r % 1000) * (UINT64_C (1) << (r >> 60) % 21) + (r >> 40) % 7;
        bench_hist_record (&hist, values[i]);
    }
    qsort (values, N, sizeof (uint64_t), s_compare);
    const double percents[] = {0.1, 1, 25, 50, 90, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof (percents) / sizeof (percents[0]); i++) {
        uint64_t exact = s_exact (values, N, percents[i]);
        uint64_t got = bench_hist_percentile (&hist, percents[i]);
        assert_true (got >= exact);
        assert_true ((double)(got - exact) <= (double)exact / 128.0);
    }
    assert_int_equal (hist.max, values[N - 1]);
    assert_int_equal (hist.min, values[0]);
    free (values);
}

static void
test_merge_and_clamp (void **state)
{
    bench_hist_t a, b, all;
    bench_hist_init (&a);
    bench_hist_init (&b);
    bench_hist_init (&all);
    for (uint64_t v = 1; v < 100000; v += 7) {
        bench_hist_record (v % 2 ? &a : &b, v);
        bench_hist_record (&all, v);
    }
    bench_hist_merge (&a, &b);
    assert_int_equal (a.count, all.count);
    assert_int_equal (a.sum, all.sum);
    assert_memory_equal (a.buckets, all.buckets, sizeof (all.buckets));
    bench_hist_record (&a, UINT64_MAX); //  clamped to the largest bucket
    assert_int_equal (a.max, (UINT64_C (1) << BENCH_HIST_VALUE_BITS) - 1);
    assert_int_equal (bench_hist_percentile (&a, 100), a.max);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_small_values_exact),
        cmocka_unit_test (test_empty),
        cmocka_unit_test (test_within_relative_error),
        cmocka_unit_test (test_merge_and_clamp),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
