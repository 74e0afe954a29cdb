/*  =========================================================================
    bench_rehash - the longest single operation of one partition while its
    table grows: the pause that a resize puts on a shard's worker.

    Adds --carts new carts (one item each: every add creates a cart, so
    every add is one that can grow the table) to a fresh partition, timing
    each call alone on the monotonic clock, then times --gets lookups of
    random carts. It does this --repeat times with the same keys, each on
    a fresh partition, and prints each run's longest add and percentiles,
    then the longest add once each add is taken at its fastest over the
    runs: on a shared machine one run's maximum is mostly the time that
    the machine gave to something else (a different add each run, ms long
    on our 2-core VM under other work), while a pause that the partition
    itself makes comes back in every run at the same add. None asserts a
    time.

    It uses only the partition API that predates incremental resizing, so
    the same file builds against an older cart_partition.c:

        cc -O2 -Iproto -I<old> bench/bench_rehash.c <old>/cart_partition.c \
           proto/cart_types.c

    With the newer header it also splits the longest adds by whether their
    step did resize work, and --idle calls cart_partition_rehash_step (64
    buckets) once after each add, as a worker does between requests.

        bench_rehash [--carts N] [--gets N] [--repeat R] [--idle]
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cart_partition.h"

#define TOP 5

#ifdef CART_REHASH_BUCKETS
//  What an add's step did
enum { STEP_NONE, STEP_CLEAR, STEP_MOVE, STEP_RELEASE, STEP_KINDS };
static const char *step_names[STEP_KINDS] = {"did no resize work", "zeroed new table",
                                             "moved carts", "gave back old table"};
#endif

typedef struct {
    size_t carts, gets, repeat;
    bool idle;
    uint64_t *keys;
    uint32_t *best;   //  per add: its fastest over the runs so far, ns
    uint32_t *sorted; //  scratch for percentiles
    uint8_t *worked;  //  per add: what its step did, a STEP_ (newer header)
} bench_t;

static uint64_t
s_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFULL;
}

static uint64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
s_cmp (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static size_t
s_customer (char *buf, size_t size, size_t c)
{
    return (size_t)snprintf (buf, size, "customer-%08zu", c);
}

//  Sorts a copy of ns[0..n) and prints p50, p99, p99.9, p99.99 and max.
static void
s_print_spread (bench_t *bench, const uint32_t *ns, size_t n)
{
    memcpy (bench->sorted, ns, n * sizeof (uint32_t));
    qsort (bench->sorted, n, sizeof (uint32_t), s_cmp);
    uint32_t *v = bench->sorted;
    printf ("p50 %.2f us, p99 %.2f us, p99.9 %.1f us, p99.99 %.1f us, max %.1f us",
            v[n / 2] / 1e3, v[n / 100 * 99] / 1e3, v[n / 1000 * 999] / 1e3,
            v[n / 10000 * 9999] / 1e3, v[n - 1] / 1e3);
}

//  Prints the TOP longest of ns[0..n) with their cart numbers; when only is
//  a STEP_, among the adds whose step did that.
static void
s_print_top (bench_t *bench, const uint32_t *ns, size_t n, int only)
{
    uint32_t top[TOP] = {0};
    size_t at[TOP] = {0};
    for (size_t c = 0; c < n; c++) {
        if (only >= 0 && bench->worked[c] != only)
            continue;
        for (int k = 0; k < TOP; k++)
            if (ns[c] > top[k]) {
                memmove (&top[k + 1], &top[k], (TOP - 1 - k) * sizeof top[0]);
                memmove (&at[k + 1], &at[k], (TOP - 1 - k) * sizeof at[0]);
                top[k] = ns[c], at[k] = c + 1;
                break;
            }
    }
    if (only >= 0) { //  their p50 and p99 first
        size_t count = 0;
        for (size_t c = 0; c < n; c++)
            if (bench->worked[c] == only)
                bench->sorted[count++] = ns[c];
        qsort (bench->sorted, count, sizeof (uint32_t), s_cmp);
        if (count)
            printf ("%zu adds, p50 %.2f us, p99 %.1f us; ", count,
                    bench->sorted[count / 2] / 1e3,
                    bench->sorted[count * 99 / 100] / 1e3);
    }
    for (int k = 0; k < TOP && top[k]; k++)
        printf ("%s%.1f us (cart %zu)", k ? ", " : "", top[k] / 1e3, at[k]);
    printf ("\n");
}

static int
s_run (bench_t *bench, size_t run, uint32_t *ns)
{
    cart_partition_t *part = cart_partition_new ();
    cart_item_t item = {
        .id = "036000291452", .id_len = 12, .count = 1, .price_cents = 199};
    char customer[32];
    uint64_t started = s_now_ns ();
    for (size_t c = 0; c < bench->carts; c++) {
        size_t len = s_customer (customer, sizeof customer, c);
        uint64_t t0 = s_now_ns ();
        int rc = cart_partition_add (part, bench->keys[c], customer, len, &item, NULL);
        uint64_t t1 = s_now_ns ();
        if (rc != CART_CREATED) {
            fprintf (stderr, "bench_rehash: add %zu answered %d\n", c, rc);
            return -1;
        }
        ns[c] = (uint32_t)(t1 - t0);
        if (run == 0 || ns[c] < bench->best[c])
            bench->best[c] = ns[c];
#ifdef CART_REHASH_BUCKETS
        cart_rehash_stats_t stats;
        cart_partition_rehash_stats (part, &stats);
        bench->worked[c] = stats.step_cleared    ? STEP_CLEAR
                           : stats.step_visited  ? STEP_MOVE
                           : stats.step_released ? STEP_RELEASE
                                                 : STEP_NONE;
        if (bench->idle)
            cart_partition_rehash_step (part, 64);
#endif
    }
    double seconds = (double)(s_now_ns () - started) / 1e9;
    printf ("run %zu: %zu adds in %.2f s: ", run + 1, bench->carts, seconds);
    s_print_spread (bench, ns, bench->carts);
    printf ("\n  longest: ");
    s_print_top (bench, ns, bench->carts, -1);

    uint64_t rng = 99 + run;
    uint32_t *get_ns = bench->gets ? malloc (bench->gets * sizeof (uint32_t)) : NULL;
    for (size_t g = 0; g < bench->gets; g++) {
        size_t c = (size_t)(s_next (&rng) % bench->carts);
        size_t len = s_customer (customer, sizeof customer, c);
        cart_view_t view;
        uint64_t t0 = s_now_ns ();
        int rc = cart_partition_get (part, bench->keys[c], customer, len, &view);
        get_ns[g] = (uint32_t)(s_now_ns () - t0);
        if (rc != CART_OK) {
            fprintf (stderr, "bench_rehash: get %zu answered %d\n", c, rc);
            return -1;
        }
    }
    if (bench->gets) {
        printf ("  %zu gets: ", bench->gets);
        s_print_spread (bench, get_ns, bench->gets);
        printf ("\n");
    }
    free (get_ns);
#ifdef CART_REHASH_BUCKETS
    cart_rehash_stats_t stats;
    cart_partition_rehash_stats (part, &stats);
    printf ("  %zu resizes in %zu steps, table %zu slots%s;", stats.resizes, stats.steps,
            stats.slots, stats.resizing ? " (resizing)" : "");
#endif
    printf ("  partition %zu carts, %.1f MB\n", cart_partition_carts (part),
            (double)cart_partition_bytes (part) / 1e6);
    cart_partition_destroy (&part);
    return 0;
}

int
main (int argc, char *argv[])
{
    bench_t bench = {.carts = 1000000, .gets = 1000000, .repeat = 3};
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--carts") == 0 && i + 1 < argc)
            bench.carts = strtoul (argv[++i], NULL, 10);
        else if (strcmp (argv[i], "--gets") == 0 && i + 1 < argc)
            bench.gets = strtoul (argv[++i], NULL, 10);
        else if (strcmp (argv[i], "--repeat") == 0 && i + 1 < argc)
            bench.repeat = strtoul (argv[++i], NULL, 10);
        else if (strcmp (argv[i], "--idle") == 0)
            bench.idle = true;
        else {
            fprintf (stderr, "usage: bench_rehash [--carts N] [--gets N] [--repeat R] "
                             "[--idle]\n");
            return 2;
        }
    }
#ifdef CART_REHASH_BUCKETS
    const char *version = "incremental resizing";
#else
    const char *version = "resizing in one pass";
    if (bench.idle) {
        fprintf (stderr, "bench_rehash: --idle needs incremental resizing\n");
        return 2;
    }
#endif
    if (bench.carts < 10000 || bench.repeat < 1) {
        fprintf (stderr, "bench_rehash: --carts 10000 or more, --repeat 1 or more\n");
        return 2;
    }
    size_t most = bench.carts > bench.gets ? bench.carts : bench.gets;
    bench.keys = malloc (bench.carts * sizeof (uint64_t));
    bench.best = malloc (bench.carts * sizeof (uint32_t));
    bench.sorted = malloc (most * sizeof (uint32_t));
    bench.worked = calloc (bench.carts, 1);
    uint32_t *ns = malloc (bench.carts * sizeof (uint32_t));
    if (!bench.keys || !bench.best || !bench.sorted || !bench.worked || !ns)
        return 1;
    uint64_t rng = 7;
    for (size_t c = 0; c < bench.carts; c++)
        bench.keys[c] = s_next (&rng);

    printf ("bench_rehash: %s, %zu carts, %zu gets, %zu runs%s\n", version, bench.carts,
            bench.gets, bench.repeat, bench.idle ? ", idle steps" : "");
    for (size_t run = 0; run < bench.repeat; run++)
        if (s_run (&bench, run, ns))
            return 1;
    printf ("each add at its fastest of %zu runs: ", bench.repeat);
    s_print_spread (&bench, bench.best, bench.carts);
    printf ("\n  longest: ");
    s_print_top (&bench, bench.best, bench.carts, -1);
#ifdef CART_REHASH_BUCKETS
    for (int kind = 0; kind < STEP_KINDS; kind++) {
        printf ("  longest whose step %s: ", step_names[kind]);
        s_print_top (&bench, bench.best, bench.carts, kind);
    }
#endif
    free (ns);
    free (bench.worked);
    free (bench.sorted);
    free (bench.best);
    free (bench.keys);
    return 0;
}
