/*  =========================================================================
    bench_seed - the earlier Python service's benchmark, taken the same way
    through the whole CART/2 path: for each shard count, the time to add
    100 products to one cart and the time to check it out.

    The cluster is the real one, in this process: the broker actor and the
    shard workers (cart_workers_new: the shards dealt round-robin to
    min (S, --workers) threads), over inproc, driven by one cart_client on
    the main thread. Each run takes a fresh customer id and:

      1. adds 100 items one at a time (send, wait for the reply, send ...),
         then checks the cart out (send, wait for the 100-item cart, decode
         every item);
      2. adds 100 items to another fresh cart pipelined (100 sends, then
         100 replies), then checks that one out.

    Both checkouts are checkout samples. Every reply's status is checked
    (201 per add, 200 and exactly 100 items per checkout): a failed request
    stops the benchmark rather than being timed. Times are from just before
    the first send to just after the last reply is taken, on
    CLOCK_MONOTONIC; median and p99 are exact (sorted samples).

    The last column is the process's CPU time (getrusage: client, broker,
    workers) over the runs, per request: it holds when other programs
    share the machine, where the latencies do not.

    The earlier service's figures are its README's (means over 1,000 runs,
    an in-process Python DHT with no network hop at all); ours go through a
    broker and a worker thread, so the comparison flatters it, not us.
    =========================================================================
*/
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_cluster.h"
#include "bench_env.h"
#include "cart_args.h"

#ifndef BENCH_SOURCE_DIR
#define BENCH_SOURCE_DIR "."
#endif

#define ITEMS      100
#define MAX_COUNTS 8
#define MAX_PLACES 3
#define SERIAL     0 //  sample sets of one configuration
#define PIPELINED  1
#define CHECKOUT   2
#define TOTAL      3 //  serial add + its checkout
#define TOTAL_PIPE 4 //  pipelined add + its checkout
#define SETS       5

typedef struct {
    uint32_t counts[MAX_COUNTS];
    size_t n_counts;
    bench_place_t places[MAX_PLACES];
    size_t n_places;
    size_t workers;
    long runs;
    long warmup;
    long budget_s;
    int cpu;
    const char *csv;
} options_t;

//  One configuration's samples, in nanoseconds.
typedef struct {
    bench_place_t place;
    uint32_t shards;
    size_t workers;
    long runs;           //  runs taken (fewer than asked when over budget)
    double cpu_us;       //  the process's CPU time (all threads) over the runs
    uint64_t *set[SETS]; //  each holds runs samples, CHECKOUT 2 x runs
    size_t n[SETS];
} config_t;

//  The earlier service's README table: shards, add 100, checkout, total
//  (microseconds, means over 1,000 runs).
static const struct {
    uint32_t shards;
    double add, checkout, total;
} s_seed[] = {{1, 95619, 1067, 96686},
              {10, 94262, 1053, 95315},
              {100, 94381, 1151, 95532},
              {1000, 92164, 1062, 93226},
              {10000, 91372, 1226, 92598}};

static const char *s_expiry = "2026-12-01T00:00:00Z";

//  --------------------------------------------------------------------------
//  Measuring

//  CPU time of the whole process (every thread), in microseconds.
static double
s_cpu_us (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 +
           (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

static uint64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

//  Item i of every cart: a 12-digit barcode, a price, a count, every tenth
//  on sale with an expiry. ids must hold 13 bytes.
static cart_item_t
s_item (int i, char *ids)
{
    snprintf (ids, 13, "%012llu", 36000291400ULL + (unsigned long long)i);
    bool sale = i % 10 == 0;
    return (cart_item_t){.id = ids,
                         .id_len = 12,
                         .price_cents = 5000 + (uint64_t)i,
                         .count = 1 + (uint32_t)(i % 6),
                         .special_sale = sale,
                         .expiry = sale ? s_expiry : NULL,
                         .expiry_len = sale ? strlen (s_expiry) : 0};
}

static void
s_fail (const char *what, int status)
{
    fprintf (stderr, "bench_seed: %s answered %d (%s); stopping\n", what, status,
             cart_status_name (status));
    exit (1);
}

static void
s_send (cart_client_t *client, const cart_request_t *req)
{
    const char *error = NULL;
    if (cart_client_send (client, req, 5000, NULL, NULL, &error)) {
        fprintf (stderr, "bench_seed: send failed: %s\n",
                 error ? error : strerror (errno));
        exit (1);
    }
}

static int
s_recv_status (cart_client_t *client, cart_result_t *result)
{
    if (cart_client_recv (client, result, -1) != 1) {
        fprintf (stderr, "bench_seed: interrupted\n");
        exit (1);
    }
    return result->status;
}

//  Adds ITEMS items to customer's cart, one at a time or all in flight.
static void
s_add_items (cart_client_t *client, const char *customer, bool pipelined)
{
    char ids[ITEMS][13];
    cart_request_t req = {
        .op = CART_OP_ADD, .customer = customer, .customer_len = strlen (customer)};
    cart_result_t result;
    for (int i = 0; i < ITEMS; i++) {
        req.item = s_item (i, ids[i]);
        s_send (client, &req);
        if (!pipelined && s_recv_status (client, &result) != CART_CREATED)
            s_fail ("an add", result.status);
    }
    for (int i = 0; pipelined && i < ITEMS; i++)
        if (s_recv_status (client, &result) != CART_CREATED)
            s_fail ("a pipelined add", result.status);
}

//  Checks the cart out and reads every item of the reply.
static void
s_checkout (cart_client_t *client, const char *customer)
{
    cart_request_t req = {
        .op = CART_OP_CHECKOUT, .customer = customer, .customer_len = strlen (customer)};
    cart_result_t result;
    s_send (client, &req);
    if (s_recv_status (client, &result) != CART_OK)
        s_fail ("a checkout", result.status);
    cart_reply_t reply;
    cart_item_t item;
    const char *error;
    int items = 0;
    if (cart_reply_decode (result.body, result.body_size, &reply, &error) == 0)
        while (cart_reply_next_item (&reply, &item, &error) == 1)
            items++;
    if (items != ITEMS) {
        fprintf (stderr, "bench_seed: a checkout held %d items, not %d\n", items, ITEMS);
        exit (1);
    }
}

//  One run: both ways of adding, each followed by its checkout. Records
//  into config when it is not NULL (warm-up runs are not).
static void
s_run (cart_client_t *client, long run, config_t *config, uint32_t shards)
{
    char serial[64], pipelined[64];
    snprintf (serial, sizeof (serial), "seed-%u-%ld-s-%d", shards, run, (int)getpid ());
    snprintf (pipelined, sizeof (pipelined), "seed-%u-%ld-p-%d", shards, run,
              (int)getpid ());
    uint64_t t0 = s_now_ns ();
    s_add_items (client, serial, false);
    uint64_t t1 = s_now_ns ();
    s_checkout (client, serial);
    uint64_t t2 = s_now_ns ();
    s_add_items (client, pipelined, true);
    uint64_t t3 = s_now_ns ();
    s_checkout (client, pipelined);
    uint64_t t4 = s_now_ns ();
    if (!config)
        return;
    config->set[SERIAL][config->n[SERIAL]++] = t1 - t0;
    config->set[CHECKOUT][config->n[CHECKOUT]++] = t2 - t1;
    config->set[TOTAL][config->n[TOTAL]++] = t2 - t0;
    config->set[PIPELINED][config->n[PIPELINED]++] = t3 - t2;
    config->set[CHECKOUT][config->n[CHECKOUT]++] = t4 - t3;
    config->set[TOTAL_PIPE][config->n[TOTAL_PIPE]++] = t4 - t2;
}

//  Runs one configuration: a fresh cluster, warm-up, then the runs.
static int
s_measure (const options_t *options, config_t *config)
{
    bench_cluster_config_t cluster_config = {.shards = config->shards,
                                             .workers = options->workers,
                                             .place = config->place,
                                             .cpu = options->cpu};
    const char *error = NULL;
    bench_cluster_t *cluster = bench_cluster_new (&cluster_config, &error);
    if (!cluster) {
        fprintf (stderr, "bench_seed: %s\n", error);
        return -1;
    }
    cart_client_t *client = bench_cluster_client (cluster);
    for (int s = 0; s < SETS; s++)
        config->set[s] =
            (uint64_t *)calloc (2 * (size_t)options->runs, sizeof (uint64_t));
    for (long run = 0; run < options->warmup; run++)
        s_run (client, -1 - run, NULL, config->shards);
    int64_t until = zclock_mono () + options->budget_s * 1000;
    double cpu = s_cpu_us ();
    for (config->runs = 0; config->runs < options->runs && zclock_mono () < until;
         config->runs++)
        s_run (client, config->runs, config, config->shards);
    config->cpu_us = s_cpu_us () - cpu;
    bench_cluster_destroy (&cluster);
    return 0;
}

//  --------------------------------------------------------------------------
//  Figures

static int
s_compare (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

//  Exact percentile (nearest rank) in microseconds of a sorted set.
static double
s_pct (const config_t *config, int set, double percent)
{
    size_t n = config->n[set];
    if (n == 0)
        return 0;
    size_t rank = (size_t)((percent / 100.0) * (double)n + 0.999999);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    return (double)config->set[set][rank - 1] / 1000.0;
}

static double
s_mean (const config_t *config, int set)
{
    double sum = 0;
    for (size_t i = 0; i < config->n[set]; i++)
        sum += (double)config->set[set][i];
    return config->n[set] ? sum / (double)config->n[set] / 1000.0 : 0;
}

//  Each run makes 2 x ITEMS adds and 2 checkouts.
static double
s_cpu_per_request (const config_t *config)
{
    return config->runs ? config->cpu_us / ((double)config->runs * (2 * ITEMS + 2)) : 0;
}

static int
s_seed_row (uint32_t shards)
{
    for (size_t i = 0; i < sizeof (s_seed) / sizeof (s_seed[0]); i++)
        if (s_seed[i].shards == shards)
            return (int)i;
    return -1;
}

//  "12,345" style, for microseconds.
static const char *
s_us (double value, char *text)
{
    long v = (long)(value + 0.5);
    if (v >= 1000000)
        sprintf (text, "%ld,%03ld,%03ld", v / 1000000, v / 1000 % 1000, v % 1000);
    else if (v >= 1000)
        sprintf (text, "%ld,%03ld", v / 1000, v % 1000);
    else
        sprintf (text, "%ld", v);
    return text;
}

static void
s_print_ours (const config_t *configs, size_t n)
{
    char a[32], b[32];
    printf ("| placement | shards | worker threads | runs "
            "| add 100, one at a time: median / p99 µs "
            "| add 100, pipelined: median / p99 µs | checkout: median / p99 µs "
            "| add+checkout total, one at a time: median / p99 µs "
            "| add+checkout total, pipelined: median / p99 µs "
            "| process CPU per request µs |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (size_t i = 0; i < n; i++) {
        const config_t *c = &configs[i];
        printf ("| %s | %u | %zu | %ld |", bench_place_name (c->place), c->shards,
                c->workers, c->runs);
        int sets[] = {SERIAL, PIPELINED, CHECKOUT, TOTAL, TOTAL_PIPE};
        for (int s = 0; s < 5; s++)
            printf (" %s / %s |", s_us (s_pct (c, sets[s], 50), a),
                    s_us (s_pct (c, sets[s], 99), b));
        printf (" %.1f |\n", s_cpu_per_request (c));
    }
}

static void
s_print_earlier (const config_t *configs, size_t n)
{
    char a[32], b[32], d[32];
    printf ("\nBeside the earlier Python service (its README: means over 1,000 runs, "
            "in-process, no network hop). Ours are means too here; speed-up = "
            "earlier / ours.\n\n"
            "| placement | shards | add 100: earlier / ours one at a time µs "
            "(speed-up) | add 100: ours pipelined µs (speed-up) "
            "| checkout: earlier / ours µs (speed-up) "
            "| add+checkout: earlier / ours one at a time µs (speed-up) |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (size_t i = 0; i < n; i++) {
        const config_t *c = &configs[i];
        int row = s_seed_row (c->shards);
        double add = s_mean (c, SERIAL), pipe = s_mean (c, PIPELINED),
               out = s_mean (c, CHECKOUT), total = s_mean (c, TOTAL);
        printf ("| %s | %u |", bench_place_name (c->place), c->shards);
        if (row < 0) {
            printf (" — / %s | %s | — / %s | — / %s |\n", s_us (add, a), s_us (pipe, b),
                    s_us (out, d), s_us (total, d));
            continue;
        }
        printf (" %s / %s (%.0f×) |", s_us (s_seed[row].add, a), s_us (add, b),
                s_seed[row].add / add);
        printf (" %s (%.0f×) |", s_us (pipe, a), s_seed[row].add / pipe);
        printf (" %s / %s (%.0f×) |", s_us (s_seed[row].checkout, a), s_us (out, b),
                s_seed[row].checkout / out);
        printf (" %s / %s (%.0f×) |\n", s_us (s_seed[row].total, a), s_us (total, b),
                s_seed[row].total / total);
    }
}

//  The targets, reported per placement, never asserted.
static void
s_print_targets (const config_t *configs, size_t n, const options_t *options)
{
    printf ("\nTargets (reported, not asserted), per placement, on the medians:\n\n"
            "| placement | add 100 one at a time ≤ 3,000 µs (worst) "
            "| pipelined ≤ 500 µs (worst) | checkout ≤ 100 µs (worst) "
            "| slowest / fastest shard count: one at a time, pipelined, checkout "
            "(≤ 1.3×) |\n| --- | ---: | ---: | ---: | ---: |\n");
    for (size_t p = 0; p < options->n_places; p++) {
        double worst[3] = {0, 0, 0}, best[3] = {1e300, 1e300, 1e300};
        int sets[3] = {SERIAL, PIPELINED, CHECKOUT};
        double limit[3] = {3000, 500, 100};
        for (size_t i = 0; i < n; i++)
            for (int s = 0; s < 3 && configs[i].place == options->places[p]; s++) {
                double m = s_pct (&configs[i], sets[s], 50);
                worst[s] = m > worst[s] ? m : worst[s];
                best[s] = m < best[s] ? m : best[s];
            }
        printf ("| %s |", bench_place_name (options->places[p]));
        for (int s = 0; s < 3; s++)
            printf (" %s (%.0f) |", worst[s] <= limit[s] ? "met" : "NOT met", worst[s]);
        printf (" %.2f×, %.2f×, %.2f× |\n", worst[0] / best[0], worst[1] / best[1],
                worst[2] / best[2]);
    }
}

static void
s_write_csv (const config_t *configs, size_t n, const char *path)
{
    FILE *file = fopen (path, "w");
    if (!file) {
        fprintf (stderr, "bench_seed: cannot write %s: %s\n", path, strerror (errno));
        return;
    }
    fprintf (file, "placement,shards,workers,runs,"
                   "add_serial_median_us,add_serial_p99_us,add_serial_mean_us,"
                   "add_pipelined_median_us,add_pipelined_p99_us,add_pipelined_mean_us,"
                   "checkout_median_us,checkout_p99_us,checkout_mean_us,"
                   "total_serial_median_us,total_serial_p99_us,"
                   "total_pipelined_median_us,total_pipelined_p99_us,"
                   "earlier_add_us,earlier_checkout_us,earlier_total_us,"
                   "cpu_per_request_us\n");
    for (size_t i = 0; i < n; i++) {
        const config_t *c = &configs[i];
        fprintf (file, "%s,%u,%zu,%ld", bench_place_name (c->place), c->shards,
                 c->workers, c->runs);
        int sets[] = {SERIAL, PIPELINED, CHECKOUT};
        for (int s = 0; s < 3; s++)
            fprintf (file, ",%.1f,%.1f,%.1f", s_pct (c, sets[s], 50),
                     s_pct (c, sets[s], 99), s_mean (c, sets[s]));
        fprintf (file, ",%.1f,%.1f,%.1f,%.1f", s_pct (c, TOTAL, 50), s_pct (c, TOTAL, 99),
                 s_pct (c, TOTAL_PIPE, 50), s_pct (c, TOTAL_PIPE, 99));
        int row = s_seed_row (c->shards);
        if (row < 0)
            fprintf (file, ",,,");
        else
            fprintf (file, ",%.0f,%.0f,%.0f", s_seed[row].add, s_seed[row].checkout,
                     s_seed[row].total);
        fprintf (file, ",%.1f\n", s_cpu_per_request (c));
    }
    fclose (file);
    printf ("\nCSV: %s\n", path);
}

//  --------------------------------------------------------------------------
//  Options

static void
s_help (FILE *out)
{
    fprintf (out,
             "usage: bench_seed [options]\n\n"
             "The earlier service's benchmark through the whole CART/2 path: per shard\n"
             "count, add 100 items to a fresh cart (one at a time, and pipelined) and\n"
             "check it out; median and p99 over the runs. Broker and workers run in\n"
             "this process over inproc.\n\n"
             "  --shards LIST    shard counts (default 1,10,100,1000,10000)\n"
             "  --workers N      worker threads; a cluster has min (S, N) (default 2)\n"
             "  --place LIST     thread placement(s), each a configuration (default\n"
             "                   one,os): os = no pinning; one = every thread on\n"
             "                   CPU --cpu; split = client on --cpu, broker and\n"
             "                   workers on the next CPU\n"
             "  --cpu N          CPU for one/split (default 0)\n"
             "  --runs N         measured runs per configuration (default 1000)\n"
             "  --warmup N       runs before them, not counted (default 20)\n"
             "  --budget S       most seconds of runs per configuration (default 120)\n"
             "  --csv PATH       write the table as CSV (default %s/results/seed.csv;\n"
             "                   none: do not)\n"
             "  --help           this text\n",
             BENCH_SOURCE_DIR);
}

//  Parses "1,10,100" into counts; returns 0 or -1.
static int
s_parse_counts (char *text, options_t *options)
{
    options->n_counts = 0;
    for (char *tok = strtok (text, ","); tok; tok = strtok (NULL, ",")) {
        long n;
        if (options->n_counts == MAX_COUNTS ||
            cart_args_number (tok, 1, CART_SHARDS_MAX, &n))
            return -1;
        options->counts[options->n_counts++] = (uint32_t)n;
    }
    return options->n_counts ? 0 : -1;
}

static int
s_parse_places (char *text, options_t *options)
{
    options->n_places = 0;
    for (char *tok = strtok (text, ","); tok; tok = strtok (NULL, ","))
        if (options->n_places == MAX_PLACES ||
            bench_place_parse (tok, &options->places[options->n_places++]))
            return -1;
    return options->n_places ? 0 : -1;
}

static int
s_parse (int argc, char **argv, options_t *options)
{
    static const struct option longs[] = {{"shards", required_argument, NULL, 's'},
                                          {"workers", required_argument, NULL, 'w'},
                                          {"place", required_argument, NULL, 'p'},
                                          {"cpu", required_argument, NULL, 'c'},
                                          {"runs", required_argument, NULL, 'r'},
                                          {"warmup", required_argument, NULL, 'u'},
                                          {"budget", required_argument, NULL, 'b'},
                                          {"csv", required_argument, NULL, 'o'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    long n;
    int opt;
    while ((opt = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if (opt == 's' && s_parse_counts (optarg, options) == 0)
            continue;
        else if (opt == 'w' && cart_args_number (optarg, 1, 64, &n) == 0)
            options->workers = (size_t)n;
        else if (opt == 'p' && s_parse_places (optarg, options) == 0)
            continue;
        else if (opt == 'c' && cart_args_number (optarg, 0, CPU_SETSIZE - 2, &n) == 0)
            options->cpu = (int)n;
        else if (opt == 'r' && cart_args_number (optarg, 1, 1000000, &n) == 0)
            options->runs = n;
        else if (opt == 'u' && cart_args_number (optarg, 0, 1000000, &n) == 0)
            options->warmup = n;
        else if (opt == 'b' && cart_args_number (optarg, 1, 86400, &n) == 0)
            options->budget_s = n;
        else if (opt == 'o')
            options->csv = strcmp (optarg, "none") == 0 ? NULL : optarg;
        else if (opt == 'h')
            return 1;
        else
            return 2;
    }
    return optind == argc ? 0 : 2;
}

int
main (int argc, char **argv)
{
    options_t options = {.counts = {1, 10, 100, 1000, 10000},
                         .n_counts = 5,
                         .places = {BENCH_PLACE_ONE, BENCH_PLACE_OS},
                         .n_places = 2,
                         .workers = 2,
                         .runs = 1000,
                         .warmup = 20,
                         .budget_s = 120,
                         .csv = BENCH_SOURCE_DIR "/results/seed.csv"};
    int rc = s_parse (argc, argv, &options);
    if (rc) {
        s_help (rc == 1 ? stdout : stderr);
        return rc == 1 ? 0 : 2;
    }
    zsys_init ();
    zsys_set_logstream (stderr);
    bench_env_print (stdout, argc, argv);
    printf ("# cluster: one process, broker actor + cart_workers_new over inproc, one "
            "cart_client on the main thread; the shards dealt round-robin to min (S, "
            "%zu) worker threads\n# per configuration: %ld warm-up runs, then up to %ld "
            "runs (at most %ld s), each a fresh customer id\n\n",
            options.workers, options.warmup, options.runs, options.budget_s);
    fflush (stdout);
    config_t *configs =
        (config_t *)calloc (options.n_counts * options.n_places, sizeof (config_t));
    size_t n = 0;
    for (size_t p = 0; p < options.n_places; p++)
        for (size_t i = 0; i < options.n_counts; i++, n++) {
            config_t *c = &configs[n];
            c->place = options.places[p];
            c->shards = options.counts[i];
            c->workers = options.workers < c->shards ? options.workers : c->shards;
            if (s_measure (&options, c))
                return 1;
            for (int s = 0; s < SETS; s++)
                qsort (c->set[s], c->n[s], sizeof (uint64_t), s_compare);
            fprintf (stderr, "bench_seed: %s, %u shards: %ld runs, add median %.0f µs\n",
                     bench_place_name (c->place), c->shards, c->runs,
                     s_pct (c, SERIAL, 50));
        }
    s_print_ours (configs, n);
    s_print_earlier (configs, n);
    s_print_targets (configs, n, &options);
    char load[64];
    bench_env_loadavg (load, sizeof (load));
    printf ("\n# load average at end: %s\n", load);
    if (options.csv)
        s_write_csv (configs, n, options.csv);
    for (size_t i = 0; i < n; i++)
        for (int s = 0; s < SETS; s++)
            free (configs[i].set[s]);
    free (configs);
    return 0;
}
