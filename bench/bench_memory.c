/*  =========================================================================
    bench_memory - resident memory per cart item of the process holding the
    carts, beside Redis holding the same carts (bench/run_memory.sh runs
    both and passes Redis's figures in).

    Our side. The cluster runs in this process (broker actor, shard workers
    over inproc, bench_cluster), so this process is the one holding the
    carts. Once it is up and warmed, the heap is trimmed (malloc_trim) and
    two baselines are read: VmRSS and the allocator's bytes in use
    (mallinfo2: uordblks + hblkhd, every arena). The carts are loaded
    through cart_client, --window adds in flight, every reply checked to
    be 201; a sample of carts is read back. The heap is trimmed again and
    both figures read; their growth over the items is bytes per item.

    The partitions' own count. cart_partition_bytes is private to each
    worker (heartbeats carry only carts and items), so the same carts are
    then loaded straight into S partitions in this thread, routed as the
    broker routes them (cart_ring_shard of hash_key), and their
    cart_partition_bytes summed: the bytes the partitions asked of the
    allocator, without malloc's chunk headers and rounding.

    The data. Cart c belongs to "customer-%07d"; its items are 12-digit
    barcodes (10 random digits, then the item's index 00..), with a price
    of 0 to 999.99, a count of 1 to 5, and one item in five on special sale
    with saleExpiration "2026-12-01T00:00:00Z". A splitmix64 stream seeded
    by c makes both sides' data identical. --emit-redis writes the same
    carts as Redis commands, one HSET per item:

        HSET cart:customer-0000042 036912345607 {"p":1999,"c":2,"s":0,"e":null}

    the value being compact JSON: price in cents, count, sale flag 0/1 and
    the expiry string or null (with the expiry it is 52 bytes).
    =========================================================================
*/
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_cluster.h"
#include "bench_env.h"
#include "cart_args.h"
#include "cart_hash.h"
#include "cart_partition.h"
#include "cart_ring.h"

#define ITEMS_MAX 100
#define SAMPLE    1000 //  every SAMPLE-th cart is read back

typedef struct {
    long carts;
    long items;
    uint32_t shards;
    size_t workers;
    long window;
    bench_place_t place;
    const char *emit;
    const char *data_dir; //  keep the carts there, then time their recovery
    cart_fsync_t fsync;
    uint64_t compact_min; //  0: the workers' default
    //  Redis's figures, from run_memory.sh (-1: not given)
    double redis_used;
    double redis_rss;
    long redis_keys;
    const char *redis_version;
} options_t;

typedef struct {
    size_t rss;  //  VmRSS
    size_t heap; //  mallinfo2 in use
} memory_t;

static const char *s_expiry = "2026-12-01T00:00:00Z";

//  --------------------------------------------------------------------------
//  The data

static uint64_t
s_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

//  One cart's customerId and items. ids holds ITEMS_MAX ids.
typedef struct {
    char customer[32];
    size_t customer_len;
    char ids[ITEMS_MAX][24];
    cart_item_t items[ITEMS_MAX];
} cart_data_t;

static void
s_cart (long c, long n_items, cart_data_t *cart)
{
    uint64_t state = (uint64_t)c;
    cart->customer_len =
        (size_t)snprintf (cart->customer, sizeof (cart->customer), "customer-%07ld", c);
    for (long i = 0; i < n_items; i++) {
        uint64_t r = s_next (&state);
        snprintf (cart->ids[i], sizeof (cart->ids[i]), "%010llu%02d",
                  (unsigned long long)(r % 10000000000ULL), (int)i);
        r = s_next (&state);
        bool sale = r % 5 == 0;
        cart->items[i] = (cart_item_t){.id = cart->ids[i],
                                       .id_len = 12,
                                       .price_cents = (r >> 8) % 100000,
                                       .count = 1 + (uint32_t)((r >> 32) % 5),
                                       .special_sale = sale,
                                       .expiry = sale ? s_expiry : NULL,
                                       .expiry_len = sale ? strlen (s_expiry) : 0};
    }
}

//  Writes every cart as RESP HSET commands, one per item.
static int
s_emit_redis (const options_t *options)
{
    FILE *file = fopen (options->emit, "w");
    if (!file) {
        fprintf (stderr, "bench_memory: cannot write %s: %s\n", options->emit,
                 strerror (errno));
        return 1;
    }
    cart_data_t cart;
    char value[128];
    for (long c = 0; c < options->carts; c++) {
        s_cart (c, options->items, &cart);
        for (long i = 0; i < options->items; i++) {
            const cart_item_t *item = &cart.items[i];
            int len = snprintf (
                value, sizeof (value), "{\"p\":%llu,\"c\":%u,\"s\":%d,\"e\":%s%s%s}",
                (unsigned long long)item->price_cents, item->count, item->special_sale,
                item->expiry ? "\"" : "", item->expiry ? item->expiry : "null",
                item->expiry ? "\"" : "");
            fprintf (file,
                     "*4\r\n$4\r\nHSET\r\n$%zu\r\ncart:%s\r\n$12\r\n%s\r\n$%d\r\n%s\r\n",
                     cart.customer_len + 5, cart.customer, item->id, len, value);
        }
    }
    return fclose (file) ? 1 : 0;
}

//  --------------------------------------------------------------------------
//  Measuring

static memory_t
s_memory (void)
{
    malloc_trim (0);
    struct mallinfo2 info = mallinfo2 ();
    return (memory_t){.rss = bench_env_rss (), .heap = info.uordblks + info.hblkhd};
}

//  Takes one result and checks its status; exits on a failure.
static void
s_take (cart_client_t *client, int expected)
{
    cart_result_t result;
    if (cart_client_recv (client, &result, -1) != 1 || result.status != expected) {
        fprintf (stderr, "bench_memory: a request answered %d, not %d; stopping\n",
                 result.status, expected);
        exit (1);
    }
}

static void
s_send (cart_client_t *client, const cart_request_t *req)
{
    const char *error = NULL;
    if (cart_client_send (client, req, 30000, NULL, NULL, &error)) {
        fprintf (stderr, "bench_memory: send failed: %s\n",
                 error ? error : strerror (errno));
        exit (1);
    }
}

//  Loads every cart through the client, window adds in flight.
static void
s_load (cart_client_t *client, const options_t *options)
{
    cart_data_t cart;
    for (long c = 0; c < options->carts; c++) {
        s_cart (c, options->items, &cart);
        cart_request_t req = {.op = CART_OP_ADD,
                              .customer = cart.customer,
                              .customer_len = cart.customer_len};
        for (long i = 0; i < options->items; i++) {
            if (cart_client_pending (client) >= (size_t)options->window)
                s_take (client, CART_CREATED);
            req.item = cart.items[i];
            s_send (client, &req);
        }
    }
    while (cart_client_pending (client) > 0)
        s_take (client, CART_CREATED);
}

//  Reads back every SAMPLE-th cart: it must hold options->items items.
static void
s_check_sample (cart_client_t *client, const options_t *options)
{
    cart_data_t cart;
    for (long c = 0; c < options->carts; c += SAMPLE) {
        s_cart (c, 0, &cart);
        cart_request_t req = {.op = CART_OP_GET,
                              .customer = cart.customer,
                              .customer_len = cart.customer_len};
        s_send (client, &req);
        cart_result_t result;
        cart_reply_t reply;
        const char *error;
        if (cart_client_recv (client, &result, -1) != 1 || result.status != CART_OK ||
            cart_reply_decode (result.body, result.body_size, &reply, &error) ||
            reply.n_items != (size_t)options->items) {
            fprintf (stderr, "bench_memory: %s does not hold %ld items\n", cart.customer,
                     options->items);
            exit (1);
        }
    }
}

//  The same carts straight into S partitions; returns their bytes.
static size_t
s_partition_bytes (const options_t *options)
{
    cart_partition_t **parts =
        (cart_partition_t **)calloc (options->shards, sizeof (cart_partition_t *));
    assert (parts);
    for (uint32_t s = 0; s < options->shards; s++)
        parts[s] = cart_partition_new ();
    cart_data_t cart;
    for (long c = 0; c < options->carts; c++) {
        s_cart (c, options->items, &cart);
        uint64_t key = cart_hash_key (cart.customer, cart.customer_len);
        cart_partition_t *part = parts[cart_ring_shard (key, options->shards)];
        for (long i = 0; i < options->items; i++)
            if (cart_partition_add (part, key, cart.customer, cart.customer_len,
                                    &cart.items[i], NULL) != CART_CREATED)
                exit (1);
    }
    size_t bytes = 0;
    for (uint32_t s = 0; s < options->shards; s++) {
        bytes += cart_partition_bytes (parts[s]);
        cart_partition_destroy (&parts[s]);
    }
    free (parts);
    return bytes;
}

//  --------------------------------------------------------------------------
//  Report

static void
s_report (const options_t *options, memory_t before, memory_t after, size_t partition,
          double load_s)
{
    double items = (double)options->carts * (double)options->items;
    double heap = ((double)after.heap - (double)before.heap) / items;
    double rss = ((double)after.rss - (double)before.rss) / items;
    printf ("# loaded %ld carts x %ld items = %.0f items through cart_client in %.2f s "
            "(%.0f adds/s, %ld in flight); every add answered 201, every %d-th cart "
            "read back\n\n",
            options->carts, options->items, items, load_s, items / load_s,
            options->window, SAMPLE);
    printf ("| holder | carts | items | bytes per item: allocator in use | "
            "bytes per item: RSS growth | how measured |\n"
            "| --- | ---: | ---: | ---: | ---: | --- |\n");
    printf ("| cart service (%u shards, %zu worker threads, in this process) | %ld | "
            "%.0f | %.1f | %.1f | mallinfo2 in use / VmRSS, after malloc_trim, growth "
            "over the load |\n",
            options->shards,
            options->workers < options->shards ? options->workers : options->shards,
            options->carts, items, heap, rss);
    printf ("| cart partitions' own count | %ld | %.0f | %.1f | — | cart_partition_bytes "
            "summed over %u partitions loaded directly (bytes asked of malloc) |\n",
            options->carts, items, (double)partition / items, options->shards);
    if (options->redis_used < 0)
        return;
    printf ("| redis-server %s (hash per cart) | %ld | %.0f | %.1f | %.1f | "
            "used_memory (INFO memory) / VmRSS growth over the load |\n",
            options->redis_version, options->redis_keys, items,
            options->redis_used / items, options->redis_rss / items);
    printf ("| **ours / Redis** | | | **%.2f×** | **%.2f×** | target: ≤ 1.0× |\n",
            heap / (options->redis_used / items), rss / (options->redis_rss / items));
}

//  --------------------------------------------------------------------------
//  Options

static void
s_help (FILE *out)
{
    fprintf (
        out,
        "usage: bench_memory [options]\n\n"
        "Loads carts through the cart service's client (broker and workers in this\n"
        "process, over inproc) and reports memory per item: allocator bytes in\n"
        "use and RSS growth, and the partitions' own byte count.\n\n"
        "  --carts N          carts (default 100000)\n"
        "  --items N          items per cart, 1..%d (default 10)\n"
        "  --shards S         shards (default 16)\n"
        "  --workers N        worker threads (default 2)\n"
        "  --window N         adds in flight (default 1000)\n"
        "  --data-dir DIR     workers keep their logs in DIR (empty it first); after\n"
        "                     the load, the cluster is started again on DIR and its\n"
        "                     recovery is timed and checked\n"
        "  --fsync POLICY     with --data-dir: always, everysec or no (default\n"
        "                     everysec)\n"
        "  --compact-min SIZE with --data-dir: compact a shard's log into a snapshot\n"
        "                     from SIZE bytes (k, m, g; default the workers' 64m)\n"
        "  --place P          os, one or split (bench_seed --help; default os)\n"
        "  --emit-redis PATH  only write the same carts as Redis HSET commands\n"
        "                     (RESP, for redis-cli --pipe) and exit\n"
        "  --redis-used B     Redis's used_memory growth for the same carts, in\n"
        "  --redis-rss B      bytes, and its VmRSS growth, to print\n"
        "  --redis-keys N     beside ours (run_memory.sh passes them)\n"
        "  --redis-version V\n"
        "  --help             this text\n",
        ITEMS_MAX);
}

static int
s_parse (int argc, char **argv, options_t *options)
{
    static const struct option longs[] = {{"carts", required_argument, NULL, 'c'},
                                          {"items", required_argument, NULL, 'i'},
                                          {"shards", required_argument, NULL, 's'},
                                          {"workers", required_argument, NULL, 'w'},
                                          {"window", required_argument, NULL, 'n'},
                                          {"place", required_argument, NULL, 'p'},
                                          {"emit-redis", required_argument, NULL, 'e'},
                                          {"data-dir", required_argument, NULL, 'D'},
                                          {"fsync", required_argument, NULL, 'F'},
                                          {"compact-min", required_argument, NULL, 'C'},
                                          {"redis-used", required_argument, NULL, 'u'},
                                          {"redis-rss", required_argument, NULL, 'r'},
                                          {"redis-keys", required_argument, NULL, 'k'},
                                          {"redis-version", required_argument, NULL, 'v'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    long n;
    int opt;
    while ((opt = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if (opt == 'c' && cart_args_number (optarg, 1, 100000000, &n) == 0)
            options->carts = n;
        else if (opt == 'i' && cart_args_number (optarg, 1, ITEMS_MAX, &n) == 0)
            options->items = n;
        else if (opt == 's' && cart_args_number (optarg, 1, CART_SHARDS_MAX, &n) == 0)
            options->shards = (uint32_t)n;
        else if (opt == 'w' && cart_args_number (optarg, 1, 64, &n) == 0)
            options->workers = (size_t)n;
        else if (opt == 'n' && cart_args_number (optarg, 1, 60000, &n) == 0)
            options->window = n;
        else if (opt == 'p' && bench_place_parse (optarg, &options->place) == 0)
            continue;
        else if (opt == 'e')
            options->emit = optarg;
        else if (opt == 'D')
            options->data_dir = optarg;
        else if (opt == 'F' && cart_fsync_parse (optarg, &options->fsync) == 0)
            continue;
        else if (opt == 'C' &&
                 cart_args_bytes (optarg, 4096, 1ULL << 40, &options->compact_min) == 0)
            continue;
        else if (opt == 'u')
            options->redis_used = atof (optarg);
        else if (opt == 'r')
            options->redis_rss = atof (optarg);
        else if (opt == 'k' && cart_args_number (optarg, 0, 1000000000, &n) == 0)
            options->redis_keys = n;
        else if (opt == 'v')
            options->redis_version = optarg;
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
    options_t options = {.carts = 100000,
                         .items = 10,
                         .shards = 16,
                         .workers = 2,
                         .window = 1000,
                         .place = BENCH_PLACE_OS,
                         .redis_used = -1,
                         .redis_rss = -1,
                         .redis_version = "?",
                         .fsync = CART_FSYNC_EVERYSEC};
    int rc = s_parse (argc, argv, &options);
    if (rc) {
        s_help (rc == 1 ? stdout : stderr);
        return rc == 1 ? 0 : 2;
    }
    if (options.emit)
        return s_emit_redis (&options);
    zsys_init ();
    zsys_set_logstream (stderr);
    bench_env_print (stdout, argc, argv);
    bench_cluster_config_t config = {.shards = options.shards,
                                     .workers = options.workers,
                                     .place = options.place,
                                     .data_dir = options.data_dir,
                                     .fsync = options.fsync,
                                     .compact_min = options.compact_min};
    const char *error = NULL;
    bench_cluster_t *cluster = bench_cluster_new (&config, &error);
    if (!cluster) {
        fprintf (stderr, "bench_memory: %s\n", error);
        return 1;
    }
    cart_client_t *client = bench_cluster_client (cluster);
    //  Warm the path (sockets' buffers, the client's table) before the baseline
    for (int i = 0; i < 1000; i++) {
        cart_request_t req = {
            .op = CART_OP_GET, .customer = "warm-up", .customer_len = 7};
        s_send (client, &req);
        s_take (client, CART_OK);
    }
    memory_t before = s_memory ();
    int64_t start = zclock_usecs ();
    s_load (client, &options);
    double load_s = (double)(zclock_usecs () - start) / 1e6;
    memory_t after = s_memory ();
    s_check_sample (client, &options);
    bench_cluster_destroy (&cluster);
    size_t partition = s_partition_bytes (&options);
    s_report (&options, before, after, partition, load_s);
    if (options.data_dir) {
        //  The same directory again: every shard replays its log before it
        //  registers, so the time to all shards live is the recovery's
        start = zclock_usecs ();
        cluster = bench_cluster_new (&config, &error);
        if (!cluster) {
            fprintf (stderr, "bench_memory: recovery: %s\n", error);
            return 1;
        }
        double recovery_s = (double)(zclock_usecs () - start) / 1e6;
        s_check_sample (bench_cluster_client (cluster), &options);
        bench_cluster_destroy (&cluster);
        printf ("\n| recovery from %s (fsync %s) | items | seconds to all shards live | "
                "items/s |\n| --- | ---: | ---: | ---: |\n| %u shards, %zu worker "
                "thread(s) | %.0f | %.3f | %.0f |\n",
                options.data_dir, cart_fsync_name (options.fsync), options.shards,
                options.workers, (double)options.carts * (double)options.items,
                recovery_s, (double)options.carts * (double)options.items / recovery_s);
    }
    char load[64];
    bench_env_loadavg (load, sizeof (load));
    printf ("\n# load average at end: %s\n", load);
    return 0;
}
