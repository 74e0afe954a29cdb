/*  shard_worker - shard workers as a program. See cart_worker.h. */
#include <getopt.h>
#include <stdio.h>

#include "cart_args.h"
#include "cart_wire.h"
#include "cart_worker.h"

static void
s_help (FILE *out)
{
    fprintf (out,
             "usage: shard_worker --shard LIST [--shard LIST ...] [options]\n\n"
             "Owns the carts of the listed shards and serves them to a broker.\n\n"
             "  --shard LIST     shards to own: 3, 0,2,5 or 0-7 (repeatable)\n"
             "  --shards S       shards in the cluster, as the broker's --shards\n"
             "                   (default 4)\n"
             "  --broker EP      the broker's backend (default tcp://127.0.0.1:5556)\n"
             "  --threads N      worker threads sharing the shards, 1..64 (default 1)\n"
             "  --data-dir DIR   keep each shard's carts in DIR (a snapshot and a\n"
             "                   log a shard) and load them at start (default: in\n"
             "                   memory only)\n"
             "%s"
             "  --heartbeat MS   heartbeat interval (default %d)\n"
             "%s"
             "  --verbose        log registrations and reconnections\n"
             "  --version        the program's version\n"
             "  --help           this text\n\n"
             "Each shard is owned by one thread. SIGINT or SIGTERM stops the workers.\n"
             "Exits 1 when the broker refuses them: a listed shard has another live\n"
             "worker, the shard count or heartbeat differs from the broker's, or the\n"
             "worker's key does not grant a listed shard.\n\n%s",
             cart_worker_durable_help, CART_HEARTBEAT_MS, cart_curve_client_help,
             cart_args_env_help);
}

static bool
s_failed (void *workers)
{
    return cart_workers_failure ((cart_workers_t *)workers) != NULL;
}

int
main (int argc, char **argv)
{
    cart_args_block_signals ();
    cart_args_raise_fd_limit (); //  with --data-dir, two descriptors a shard
    static const struct option options[] = {{"shard", required_argument, NULL, 's'},
                                            {"shards", required_argument, NULL, 'S'},
                                            {"broker", required_argument, NULL, 'b'},
                                            {"threads", required_argument, NULL, 't'},
                                            {"data-dir", required_argument, NULL, 'D'},
                                            CART_WORKER_DURABLE_OPTIONS,
                                            {"heartbeat", required_argument, NULL, 'H'},
                                            {"cert", required_argument, NULL, 'c'},
                                            {"broker-key", required_argument, NULL, 'k'},
                                            {"verbose", no_argument, NULL, 'v'},
                                            {"version", no_argument, NULL, 'V'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    static uint32_t shards[CART_SHARDS_MAX];
    size_t n_shards = 0;
    cart_worker_config_t config = {.broker = "tcp://127.0.0.1:5556",
                                   .cluster_shards = 4,
                                   .fsync = CART_FSYNC_EVERYSEC};
    cart_worker_config_defaults (&config);
    long threads = 1, number;
    int opt;
    const char *error = NULL, *cert = NULL, *broker_key = NULL;
    argv = cart_args_env (&argc, argv, options, &error);
    if (!argv) {
        fprintf (stderr, "shard_worker: %s\n", error);
        return 2;
    }
    while (
        (opt = getopt_long (argc, argv, "s:S:b:t:D:H:c:k:vVh" CART_WORKER_DURABLE_SHORT,
                            options, NULL)) != -1) {
        int durable = cart_worker_durable_option (&config, opt, optarg, &error);
        if (durable == -1) {
            fprintf (stderr, "shard_worker: %s\n", error);
            return 2;
        }
        if (durable == 0)
            continue;
        switch (opt) {
            case 'D':
                config.data_dir = optarg;
                break;
            case 'S':
                if (cart_args_number (optarg, 1, CART_SHARDS_MAX, &number))
                    goto usage;
                config.cluster_shards = (uint32_t)number;
                break;
            case 's':
                if (cart_args_shards (optarg, shards, CART_SHARDS_MAX, &n_shards))
                    goto usage;
                break;
            case 'b':
                config.broker = optarg;
                break;
            case 't':
                if (cart_args_number (optarg, 1, CART_THREADS_MAX, &threads))
                    goto usage;
                break;
            case 'H':
                if (cart_args_number (optarg, 1, 60000, &number))
                    goto usage;
                config.heartbeat_ms = (int)number;
                break;
            case 'c':
                cert = optarg;
                break;
            case 'k':
                broker_key = optarg;
                break;
            case 'v':
                config.verbose = true;
                break;
            case 'h':
                s_help (stdout);
                return 0;
            case 'V':
                cart_args_version ("shard_worker");
                return 0;
            default:
                goto usage;
        }
    }
    if (optind != argc)
        goto usage;
    if (n_shards == 0) {
        fprintf (stderr, "shard_worker: give the shards to own, --shard LIST (see "
                         "shard_worker --help)\n");
        return 2;
    }

    cart_curve_t curve;
    if (cart_curve_options (cert, broker_key, &curve, &config.curve, &error)) {
        fprintf (stderr, "shard_worker: %s\n", error);
        return cert && broker_key ? 1 : 2;
    }
    config.shards = shards;
    config.n_shards = n_shards;
    cart_workers_t *workers = cart_workers_new (&config, (size_t)threads, &error);
    if (!workers) {
        fprintf (stderr, "shard_worker: %s\n", error);
        return 1;
    }
    printf ("shard_worker: %zu shard(s) on %ld thread(s), broker %s%s, %s%s%s%s\n",
            n_shards, threads, config.broker, config.curve ? " over CURVE" : "",
            config.data_dir ? "data in " : "in memory",
            config.data_dir ? config.data_dir : "", config.data_dir ? ", fsync " : "",
            config.data_dir ? cart_fsync_name (config.fsync) : "");
    fflush (stdout);
    int signal = cart_args_wait (s_failed, workers);
    const char *failure = cart_workers_failure (workers);
    if (signal)
        fprintf (stderr, "shard_worker: signal %d, stopping\n", signal);
    else
        fprintf (stderr, "shard_worker: %s; stopping\n", failure);
    cart_workers_destroy (&workers);
    return signal ? 0 : 1;

usage:
    cart_args_reject ("shard_worker", options, opt, optarg, argc, argv);
    return 2;
}
