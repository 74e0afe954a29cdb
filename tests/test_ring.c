/*  test_ring - the properties of consistent key routing, on random keys:
    balance, minimal movement when a shard is added, O(log S) steps, no
    allocation. Keys come from a seeded splitmix64 generator, so a failure
    is reproducible; the bounds hold with wide statistical margins for any
    seed (see each test).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cart_hash.h"
#include "cart_ring.h"

static uint64_t
s_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFULL;
}

static void
test_one_shard (void **state)
{
    uint64_t seed = 1;
    for (int i = 0; i < 10000; i++)
        assert_int_equal (cart_ring_shard (s_next (&seed), 1), 0);
}

static void
test_in_range (void **state)
{
    uint64_t seed = 2;
    const uint32_t counts[] = {2, 3, 7, 100, 9999, 10000, 65536};
    for (size_t c = 0; c < sizeof (counts) / sizeof (counts[0]); c++)
        for (int i = 0; i < 20000; i++)
            assert_true (cart_ring_shard (s_next (&seed), counts[c]) < counts[c]);
}

//  1,000,000 keys over 16 shards: mean 62,500, sampling sd ~242, so the
//  1.10 bound sits 25 sd away from the mean.
static void
test_balance_16 (void **state)
{
    const uint32_t shards = 16;
    const int keys = 1000000;
    int load[16] = {0};
    uint64_t seed = 3;
    for (int i = 0; i < keys; i++)
        load[cart_ring_shard (s_next (&seed), shards)]++;
    int fullest = 0;
    for (uint32_t s = 0; s < shards; s++)
        if (load[s] > fullest)
            fullest = load[s];
    double ratio = fullest / ((double)keys / shards);
    printf ("balance: fullest of 16 shards holds %.4f x the mean\n", ratio);
    assert_true (ratio <= 1.10);
}

//  The same with keys that are real hash_key values of customer ids.
static void
test_balance_hash_keys (void **state)
{
    const uint32_t shards = 16;
    const int keys = 1000000;
    int load[16] = {0};
    char id[32];
    for (int i = 0; i < keys; i++) {
        int len = snprintf (id, sizeof (id), "customer-%d", i);
        load[cart_ring_shard (cart_hash_key (id, (size_t)len), shards)]++;
    }
    for (uint32_t s = 0; s < shards; s++)
        assert_true (load[s] <= 1.10 * keys / shards);
}

//  From S to S+1 shards a key stays or moves to shard S, and at most
//  1.2/(S+1) of the keys move. Keys per S are chosen so that the expected
//  number of moves is at least 800: the 1.2 bound is then > 5 sd away.
static void
s_check_growth (uint32_t shards, int keys, uint64_t seed)
{
    int moved = 0;
    for (int i = 0; i < keys; i++) {
        uint64_t key = s_next (&seed);
        uint32_t before = cart_ring_shard (key, shards);
        uint32_t after = cart_ring_shard (key, shards + 1);
        if (before != after) {
            if (after != shards)
                fail_msg ("S=%u: key moved from %u to %u, not to the new shard", shards,
                          before, after);
            moved++;
        }
    }
    double limit = 1.2 * keys / (shards + 1);
    if (moved > limit)
        fail_msg ("S=%u: %d of %d keys moved, limit %.0f", shards, moved, keys, limit);
    if (moved == 0)
        fail_msg ("S=%u: no key moved to the new shard", shards);
}

static void
test_growth_moves_few (void **state)
{
    for (uint32_t shards = 1; shards <= 64; shards++)
        s_check_growth (shards, 100000, 100 + shards);
    const uint32_t large[] = {100, 255, 1000, 4096, 9999};
    for (size_t i = 0; i < sizeof (large) / sizeof (large[0]); i++)
        s_check_growth (large[i], (int)(800 * (large[i] + 1)), 7 + i);
}

//  Mean jumps per lookup against the O(log S) bound: the expected count is
//  the harmonic number H(S) < ln S + 1.
static void
test_steps_logarithmic (void **state)
{
    const uint32_t counts[] = {1, 10, 100, 1000, 10000, 1000000};
    uint64_t seed = 5;
    for (size_t c = 0; c < sizeof (counts) / sizeof (counts[0]); c++) {
        double total = 0;
        uint32_t worst = 0;
        const int keys = 100000;
        for (int i = 0; i < keys; i++) {
            uint32_t steps;
            cart_ring_shard_steps (s_next (&seed), counts[c], &steps);
            total += steps;
            if (steps > worst)
                worst = steps;
        }
        double mean = total / keys;
        printf ("S=%u: %.2f jumps a lookup (worst %u), ln S + 1 = %.2f\n", counts[c],
                mean, worst, log (counts[c]) + 1);
        assert_true (mean <= log (counts[c]) + 1.0);
    }
}

//  Lookups never allocate: malloc and friends are wrapped at link time
//  (see tests/CMakeLists.txt) and counted.
static volatile int s_allocs;
void *__real_malloc (size_t size);
void *__real_calloc (size_t n, size_t size);
void *__real_realloc (void *p, size_t size);
void *__wrap_malloc (size_t size);
void *__wrap_calloc (size_t n, size_t size);
void *__wrap_realloc (void *p, size_t size);
void *
__wrap_malloc (size_t size)
{
    s_allocs++;
    return __real_malloc (size);
}
void *
__wrap_calloc (size_t n, size_t size)
{
    s_allocs++;
    return __real_calloc (n, size);
}
void *
__wrap_realloc (void *p, size_t size)
{
    s_allocs++;
    return __real_realloc (p, size);
}

static void
test_no_allocation (void **state)
{
    //  The wrapper itself is live: a malloc in this file is counted
    s_allocs = 0;
    void *volatile probe = malloc (16);
    free (probe);
    assert_int_equal (s_allocs, 1);

    s_allocs = 0;
    uint64_t seed = 9;
    uint32_t sum = 0;
    for (int i = 0; i < 100000; i++)
        sum += cart_ring_shard (s_next (&seed), 10000);
    assert_int_equal (s_allocs, 0);
    assert_true (sum > 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_one_shard),
        cmocka_unit_test (test_in_range),
        cmocka_unit_test (test_balance_16),
        cmocka_unit_test (test_balance_hash_keys),
        cmocka_unit_test (test_growth_moves_few),
        cmocka_unit_test (test_steps_logarithmic),
        cmocka_unit_test (test_no_allocation),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
