/*  =========================================================================
    cartd - the all-in-one cart service: broker, shard workers and HTTP
    front in one process, talking over inproc. It is what the README's run
    command starts.

    Start order: broker, HTTP front (it answers 503 until the workers
    register), workers; stop order: HTTP front, workers, broker, on SIGINT
    or SIGTERM, so that no component outlives what it talks to.
    The broker's frontend is also bound on tcp (--bus), so that cartctl,
    benchmarks and other clients can reach the same cluster.
    =========================================================================
*/
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cart_args.h"
#include "cart_broker.h"
#include "cart_client.h"
#include "cart_http.h"
#include "cart_worker.h"

#define FRONTEND "inproc://cartd-frontend"
#define BACKEND  "inproc://cartd-backend"

typedef struct {
    cart_broker_config_t broker;
    cart_http_config_t http;
    long workers;
    const char *bus;
    cart_worker_config_t durable; //  data_dir (NULL: in memory), fsync, compaction
} options_t;

static void
s_help (FILE *out)
{
    fprintf (
        out,
        "usage: cartd [options]\n\n"
        "The cart service in one process: an HTTP front, a broker and shard\n"
        "workers, talking over inproc.\n\n"
        "  --listen PORT    HTTP port (default 8080; 0: any free)\n"
        "  --host ADDR      HTTP address (default 127.0.0.1)\n"
        "  --shards S       shards, 1..10000 (default 4)\n"
        "  --workers N      worker threads sharing the shards, 1..64 (default: cores)\n"
        "  --threads N      HTTP server threads, sharing the port (default 2)\n"
        "  --deadline MS    per-request deadline (default %d)\n"
        "  --bus EP         also bind the broker's frontend here, for cartctl and\n"
        "                   other clients (default tcp://127.0.0.1:5555; none: off)\n"
        "  --data-dir DIR   keep every shard's carts here, loaded at start\n"
        "                   (default ./cart-data)\n"
        "  --in-memory      keep nothing: carts are lost when cartd stops\n"
        "%s%s"
        "  --verbose        log workers joining and leaving\n"
        "  --version        the program's version\n"
        "  --help           this text\n\n"
        "SIGINT or SIGTERM stops it cleanly.\n\n%s",
        CART_DEADLINE_MS, cart_worker_durable_help, cart_http_help (),
        cart_args_env_help);
}

//  Parses the command line; returns 0, 1 for --help, 3 after --version, 2
//  on a bad argument (said).
static int
s_parse (int argc, char **argv, options_t *options)
{
    static const struct option longs[] = {{"listen", required_argument, NULL, 'l'},
                                          {"host", required_argument, NULL, 'a'},
                                          {"shards", required_argument, NULL, 's'},
                                          {"workers", required_argument, NULL, 'w'},
                                          {"threads", required_argument, NULL, 't'},
                                          {"deadline", required_argument, NULL, 'd'},
                                          {"bus", required_argument, NULL, 'b'},
                                          {"data-dir", required_argument, NULL, 'D'},
                                          {"in-memory", no_argument, NULL, 'M'},
                                          CART_WORKER_DURABLE_OPTIONS,
                                          CART_HTTP_OPTIONS,
                                          {"verbose", no_argument, NULL, 'v'},
                                          {"version", no_argument, NULL, 'V'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    long n;
    int opt;
    const char *error = NULL;
    argv = cart_args_env (&argc, argv, longs, &error);
    if (!argv) {
        fprintf (stderr, "cartd: %s\n", error);
        return 2;
    }
    while (
        (opt = getopt_long (
             argc, argv, "l:a:s:w:t:d:b:D:MvVh" CART_WORKER_DURABLE_SHORT CART_HTTP_SHORT,
             longs, NULL)) != -1) {
        int durable = cart_worker_durable_option (&options->durable, opt, optarg, &error);
        if (durable == -1)
            fprintf (stderr, "cartd: %s\n", error);
        if (durable == -1)
            return 2;
        if (durable == 0)
            continue;
        int limit = cart_http_option (&options->http, opt, optarg, &error);
        if (limit == -1)
            fprintf (stderr, "cartd: %s\n", error);
        if (limit == -1)
            return 2;
        if (limit == 0)
            continue;
        if (opt == 'l' && cart_args_number (optarg, 0, 65535, &n) == 0)
            options->http.port = (int)n;
        else if (opt == 'a')
            options->http.host = optarg;
        else if (opt == 's' && cart_args_number (optarg, 1, CART_SHARDS_MAX, &n) == 0)
            options->broker.shards = (uint32_t)n;
        else if (opt == 'w' && cart_args_number (optarg, 1, CART_THREADS_MAX, &n) == 0)
            options->workers = n;
        else if (opt == 't' && cart_args_number (optarg, 1, 64, &n) == 0)
            options->http.threads = (int)n;
        else if (opt == 'd' && cart_args_number (optarg, 1, 600000, &n) == 0)
            options->http.deadline_ms = (int)n;
        else if (opt == 'b')
            options->bus = optarg;
        else if (opt == 'D')
            options->durable.data_dir = optarg;
        else if (opt == 'M')
            options->durable.data_dir = NULL;
        else if (opt == 'v')
            options->broker.verbose = true;
        else if (opt == 'h')
            return 1;
        else if (opt == 'V') {
            cart_args_version ("cartd");
            return 3;
        } else {
            cart_args_reject ("cartd", longs, opt, optarg, argc, argv);
            return 2;
        }
    }
    if (optind == argc)
        return 0;
    cart_args_reject ("cartd", longs, -1, NULL, argc, argv);
    return 2;
}

int
main (int argc, char **argv)
{
    cart_args_block_signals ();
    cart_args_raise_fd_limit ();
    options_t options = {
        .broker = {.shards = 4},
        .http = {.port = 8080, .broker = FRONTEND},
        .workers = sysconf (_SC_NPROCESSORS_ONLN),
        .bus = "tcp://127.0.0.1:5555",
        .durable = {.data_dir = "cart-data", .fsync = CART_FSYNC_EVERYSEC}};
    cart_worker_config_defaults (&options.durable);
    if (options.workers < 1 || options.workers > CART_THREADS_MAX)
        options.workers = options.workers < 1 ? 1 : CART_THREADS_MAX;
    int rc = s_parse (argc, argv, &options);
    if (rc == 1)
        s_help (stdout);
    if (rc)
        return rc == 2 ? 2 : 0; //  1: --help, 3: --version

    char frontend[512];
    bool bus = strcmp (options.bus, "none") != 0;
    snprintf (frontend, sizeof (frontend), "%s%s%s", FRONTEND, bus ? "," : "",
              bus ? options.bus : "");
    options.broker.frontend = frontend;
    options.broker.backend = BACKEND;

    const char *error = NULL;
    cart_broker_t *broker = cart_broker_new (&options.broker, &error);
    cart_workers_t *workers = NULL;
    cart_http_t *http = NULL;
    //  The HTTP front starts before the workers, and answers 503 until
    //  they register
    if (broker)
        http = cart_http_new (&options.http, &error);
    if (http) {
        uint32_t *shards = (uint32_t *)malloc (options.broker.shards * sizeof (uint32_t));
        for (uint32_t i = 0; i < options.broker.shards; i++)
            shards[i] = i;
        cart_worker_config_t worker = options.durable;
        worker.broker = BACKEND;
        worker.cluster_shards = options.broker.shards;
        worker.shards = shards;
        worker.n_shards = options.broker.shards;
        worker.verbose = options.broker.verbose;
        workers = cart_workers_new (&worker, (size_t)options.workers, &error);
        free (shards);
    }
    if (workers) {
        printf (
            "cartd: http://%s:%d/ with %u shards on %ld worker thread(s)%s%s; %s%s%s%s\n",
            options.http.host ? options.http.host : "127.0.0.1", cart_http_port (http),
            options.broker.shards,
            options.workers < (long)options.broker.shards ? options.workers
                                                          : (long)options.broker.shards,
            bus ? ", bus on " : "", bus ? options.bus : "",
            options.durable.data_dir ? "data in " : "in memory (nothing kept)",
            options.durable.data_dir ? options.durable.data_dir : "",
            options.durable.data_dir ? ", fsync " : "",
            options.durable.data_dir ? cart_fsync_name (options.durable.fsync) : "");
        fflush (stdout);
        int signal = cart_args_wait_signal ();
        fprintf (stderr, "cartd: signal %d, stopping\n", signal);
        rc = 0;
    } else {
        fprintf (stderr, "cartd: %s\n", error ? error : "failed to start");
        rc = 1;
    }
    cart_http_destroy (&http);
    cart_workers_destroy (&workers);
    cart_broker_destroy (&broker);
    return rc;
}
