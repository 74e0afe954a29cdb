/*  broker - the CART/2 broker as a program. See cart_broker.h. */
#include <getopt.h>
#include <stdio.h>

#include "cart_args.h"
#include "cart_broker.h"

static void
s_help (FILE *out)
{
    fprintf (out,
             "usage: broker [--frontend EP] [--backend EP] [--shards S] [options]\n\n"
             "Routes cart requests from clients to the shard workers that own them.\n\n"
             "  --frontend EP    where clients connect (default tcp://127.0.0.1:5555)\n"
             "  --backend EP     where workers connect (default tcp://127.0.0.1:5556)\n"
             "  --shards S       shards in the cluster, 1..10000 (default 4)\n"
             "  --heartbeat MS   heartbeat interval (default %d)\n"
             "  --cert FILE      secure both sockets with CURVE: the broker's key\n"
             "                   (FILE.key_secret beside it; cartctl keygen makes them)\n"
             "  --worker-keys DIR  with --cert: the public keys (*.key) of the workers\n"
             "                   the backend admits; a key's \"shards\" limit what it\n"
             "                   may serve\n"
             "  --client-keys DIR  with --cert: the public keys the frontend admits\n"
             "  --verbose        log workers joining and leaving\n"
             "  --version        the program's version\n"
             "  --help           this text\n\n"
             "EP is a ZeroMQ endpoint, or several separated by commas; tcp://HOST:*\n"
             "takes a free port. The bound endpoints are printed on start. Without\n"
             "--cert, anyone who reaches the ports is in. Key directories are read\n"
             "again when they change. SIGINT or SIGTERM stops the broker.\n\n%s",
             CART_HEARTBEAT_MS, cart_args_env_help);
}

int
main (int argc, char **argv)
{
    cart_args_block_signals ();
    cart_args_raise_fd_limit (); //  a descriptor per worker and client connection
    //  Two I/O threads: the broker puts each socket on its own
    //  (cart_broker.c s_router); set before the first socket
    zsys_set_io_threads (2);
    static const struct option options[] = {{"frontend", required_argument, NULL, 'f'},
                                            {"backend", required_argument, NULL, 'b'},
                                            {"shards", required_argument, NULL, 's'},
                                            {"heartbeat", required_argument, NULL, 'H'},
                                            {"cert", required_argument, NULL, 'c'},
                                            {"worker-keys", required_argument, NULL, 'W'},
                                            {"client-keys", required_argument, NULL, 'C'},
                                            {"verbose", no_argument, NULL, 'v'},
                                            {"version", no_argument, NULL, 'V'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    cart_broker_config_t config = {.frontend = "tcp://127.0.0.1:5555",
                                   .backend = "tcp://127.0.0.1:5556",
                                   .shards = 4};
    const char *cert = NULL, *error = NULL;
    argv = cart_args_env (&argc, argv, options, &error);
    if (!argv) {
        fprintf (stderr, "broker: %s\n", error);
        return 2;
    }
    long number;
    int opt;
    while ((opt = getopt_long (argc, argv, "f:b:s:H:c:W:C:vVh", options, NULL)) != -1) {
        switch (opt) {
            case 'f':
                config.frontend = optarg;
                break;
            case 'b':
                config.backend = optarg;
                break;
            case 's':
                if (cart_args_number (optarg, 1, CART_SHARDS_MAX, &number))
                    goto usage;
                config.shards = (uint32_t)number;
                break;
            case 'H':
                if (cart_args_number (optarg, 1, 60000, &number))
                    goto usage;
                config.heartbeat_ms = (int)number;
                break;
            case 'c':
                cert = optarg;
                break;
            case 'W':
                config.worker_keys = optarg;
                break;
            case 'C':
                config.client_keys = optarg;
                break;
            case 'v':
                config.verbose = true;
                break;
            case 'h':
                s_help (stdout);
                return 0;
            case 'V':
                cart_args_version ("broker");
                return 0;
            default:
                goto usage;
        }
    }
    if (optind != argc)
        goto usage;
    cart_curve_t curve;
    if (!cert != (!config.worker_keys && !config.client_keys) ||
        (cert && (!config.worker_keys || !config.client_keys))) {
        fprintf (stderr, "broker: --cert, --worker-keys and --client-keys go together\n");
        return 2;
    }
    if (cert) {
        if (cart_curve_load (&curve, cert, NULL, &error)) {
            fprintf (stderr, "broker: %s\n", error);
            return 1;
        }
        config.curve = &curve;
    }

    cart_broker_t *broker = cart_broker_new (&config, &error);
    if (!broker) {
        fprintf (stderr, "broker: %s\n", error);
        return 1;
    }
    printf ("broker: clients on %s, workers on %s, %u shards, %s\n",
            cart_broker_frontend (broker), cart_broker_backend (broker), config.shards,
            cert ? "CURVE" : "no CURVE: open to anyone who reaches the ports");
    fflush (stdout);
    int signal = cart_args_wait_signal ();
    fprintf (stderr, "broker: signal %d, stopping\n", signal);
    cart_broker_destroy (&broker);
    return 0;

usage:
    cart_args_reject ("broker", options, opt, optarg, argc, argv);
    return 2;
}
