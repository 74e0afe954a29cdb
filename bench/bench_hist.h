/*  =========================================================================
    bench_hist - a latency histogram with bounded relative error, in the
    manner of HdrHistogram: fixed memory, O(1) record, exact count, min,
    max and mean, and percentiles within 1/128 (0.8 %) of the true value.

        bench_hist_t hist;
        bench_hist_init (&hist);
        bench_hist_record (&hist, latency_ns);
        ...
        bench_hist_merge (&total, &hist);    //  one per thread, merged
        uint64_t p99 = bench_hist_percentile (&total, 99.0);

    A histogram is a plain value owned by one thread; merge them after the
    threads are joined.
    =========================================================================
*/
#ifndef BENCH_HIST_H_INCLUDED
#define BENCH_HIST_H_INCLUDED

#include <stdint.h>

//  Values below 2^(SUB_BITS+1) have a bucket each; above, every power of
//  two is split into 2^SUB_BITS buckets. Values are clamped to 2^VALUE_BITS.
#define BENCH_HIST_SUB_BITS   7
#define BENCH_HIST_VALUE_BITS 40 //  about 18 minutes in nanoseconds
#define BENCH_HIST_BUCKETS                                                               \
    ((BENCH_HIST_VALUE_BITS - BENCH_HIST_SUB_BITS + 1) << BENCH_HIST_SUB_BITS)

typedef struct {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    uint64_t sum;
    uint64_t buckets[BENCH_HIST_BUCKETS];
} bench_hist_t;

//  Empties a histogram.
void bench_hist_init (bench_hist_t *self);

//  Counts one value.
void bench_hist_record (bench_hist_t *self, uint64_t value);

//  Adds every value of other to self.
void bench_hist_merge (bench_hist_t *self, const bench_hist_t *other);

//  The value at or below which `percent` % of the values fall (0 < percent
//  <= 100): the highest value of the bucket that holds it, never above the
//  largest value recorded. 0 for an empty histogram.
uint64_t bench_hist_percentile (const bench_hist_t *self, double percent);

//  The mean of the values recorded; 0 for an empty histogram.
double bench_hist_mean (const bench_hist_t *self);

#endif
