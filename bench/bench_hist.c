/*  =========================================================================
    bench_hist - log-linear latency histogram.

    With S = BENCH_HIST_SUB_BITS, a value v below 2^(S+1) is its own
    bucket. Above, with e the index of v's top bit, shift = e - S keeps the
    top S+1 bits of v, sub = v >> shift, in [2^S, 2^(S+1)); the bucket is
    shift * 2^S + sub. The ranges follow each other with no gap: values
    2^(S+1) .. 2^(S+2)-1 (shift 1) take buckets 2^(S+1)+... up to
    3 * 2^S - 1, and so on. A bucket spans 2^shift values starting at
    sub << shift, so its width over its smallest value is at most 2^-S.
    =========================================================================
*/
#include "bench_hist.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#define SUB_COUNT (1u << BENCH_HIST_SUB_BITS)
#define VALUE_MAX ((UINT64_C (1) << BENCH_HIST_VALUE_BITS) - 1)

static unsigned
s_bucket_of (uint64_t value)
{
    if (value < 2 * SUB_COUNT)
        return (unsigned)value;
    unsigned top = 63 - (unsigned)__builtin_clzll (value);
    unsigned shift = top - BENCH_HIST_SUB_BITS;
    return shift * SUB_COUNT + (unsigned)(value >> shift);
}

//  The highest value that falls into a bucket.
static uint64_t
s_bucket_high (unsigned bucket)
{
    if (bucket < 2 * SUB_COUNT)
        return bucket;
    unsigned shift = bucket / SUB_COUNT - 1;
    uint64_t sub = bucket % SUB_COUNT + SUB_COUNT;
    return ((sub + 1) << shift) - 1;
}

void
bench_hist_init (bench_hist_t *self)
{
    memset (self, 0, sizeof (*self));
    self->min = UINT64_MAX;
}

void
bench_hist_record (bench_hist_t *self, uint64_t value)
{
    if (value > VALUE_MAX)
        value = VALUE_MAX;
    unsigned bucket = s_bucket_of (value);
    assert (bucket < BENCH_HIST_BUCKETS);
    self->buckets[bucket]++;
    self->count++;
    self->sum += value;
    if (value < self->min)
        self->min = value;
    if (value > self->max)
        self->max = value;
}

void
bench_hist_merge (bench_hist_t *self, const bench_hist_t *other)
{
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        self->buckets[i] += other->buckets[i];
    self->count += other->count;
    self->sum += other->sum;
    if (other->min < self->min)
        self->min = other->min;
    if (other->max > self->max)
        self->max = other->max;
}

uint64_t
bench_hist_percentile (const bench_hist_t *self, double percent)
{
    assert (percent > 0 && percent <= 100);
    if (self->count == 0)
        return 0;
    //  The rank of the value asked for, 1-based: the smallest rank r with
    //  r >= percent/100 * count
    uint64_t rank = (uint64_t)ceil (percent / 100.0 * (double)self->count);
    if (rank < 1)
        rank = 1;
    if (rank > self->count)
        rank = self->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += self->buckets[i];
        if (seen >= rank) {
            uint64_t high = s_bucket_high (i);
            return high < self->max ? high : self->max;
        }
    }
    return self->max;
}

double
bench_hist_mean (const bench_hist_t *self)
{
    return self->count ? (double)self->sum / (double)self->count : 0;
}
