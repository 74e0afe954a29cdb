/*  http_front - the HTTP front end as a program. See cart_http.h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cart_args.h"
#include "cart_client.h"
#include "cart_http.h"

static void
s_help (FILE *out)
{
    fprintf (out,
             "usage: http_front [--listen PORT] [--broker EP] [--threads N] [options]\n\n"
             "Serves the cart HTTP API and sends each request to the broker.\n\n"
             "  --listen PORT    TCP port to listen on (default 8080; 0: any free)\n"
             "  --host ADDR      IPv4 address to listen on (default 127.0.0.1)\n"
             "  --broker EP      the broker's frontend (default tcp://127.0.0.1:5555)\n"
             "  --threads N      server threads, sharing the port (default 2)\n"
             "  --deadline MS    per-request deadline (default %d)\n"
             "%s%s"
             "  --version        the program's version\n"
             "  --help           this text\n\n"
             "SIGINT or SIGTERM stops it.\n\n%s",
             CART_DEADLINE_MS, cart_http_help (), cart_curve_client_help,
             cart_args_env_help);
}

int
main (int argc, char **argv)
{
    cart_args_block_signals ();
    cart_args_raise_fd_limit ();
    static const struct option options[] = {{"listen", required_argument, NULL, 'l'},
                                            {"host", required_argument, NULL, 'a'},
                                            {"broker", required_argument, NULL, 'b'},
                                            {"threads", required_argument, NULL, 't'},
                                            {"deadline", required_argument, NULL, 'd'},
                                            CART_HTTP_OPTIONS,
                                            {"cert", required_argument, NULL, 'c'},
                                            {"broker-key", required_argument, NULL, 'k'},
                                            {"version", no_argument, NULL, 'V'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    cart_http_config_t config = {.port = 8080, .broker = "tcp://127.0.0.1:5555"};
    const char *error = NULL, *cert = NULL, *broker_key = NULL;
    argv = cart_args_env (&argc, argv, options, &error);
    if (!argv) {
        fprintf (stderr, "http_front: %s\n", error);
        return 2;
    }
    long number;
    int opt;
    while ((opt = getopt_long (argc, argv, "l:a:b:t:d:c:k:Vh" CART_HTTP_SHORT, options,
                               NULL)) != -1) {
        int limit = cart_http_option (&config, opt, optarg, &error);
        if (limit == -1) {
            fprintf (stderr, "http_front: %s\n", error);
            return 2;
        }
        if (limit == 0)
            continue;
        if (opt == 'l' && cart_args_number (optarg, 0, 65535, &number) == 0)
            config.port = (int)number;
        else if (opt == 'a')
            config.host = optarg;
        else if (opt == 'b')
            config.broker = optarg;
        else if (opt == 't' && cart_args_number (optarg, 1, 64, &number) == 0)
            config.threads = (int)number;
        else if (opt == 'd' && cart_args_number (optarg, 1, 600000, &number) == 0)
            config.deadline_ms = (int)number;
        else if (opt == 'c')
            cert = optarg;
        else if (opt == 'k')
            broker_key = optarg;
        else if (opt == 'h') {
            s_help (stdout);
            return 0;
        } else if (opt == 'V') {
            cart_args_version ("http_front");
            return 0;
        } else
            goto usage;
    }
    if (optind != argc)
        goto usage;
    cart_curve_t curve;
    if (cart_curve_options (cert, broker_key, &curve, &config.curve, &error)) {
        fprintf (stderr, "http_front: %s\n", error);
        return cert && broker_key ? 1 : 2;
    }
    cart_http_t *http = cart_http_new (&config, &error);
    if (!http) {
        fprintf (stderr, "http_front: %s\n", error);
        return 1;
    }
    printf ("http_front: listening on http://%s:%d, broker %s%s\n",
            config.host ? config.host : "127.0.0.1", cart_http_port (http), config.broker,
            config.curve ? " over CURVE" : "");
    fflush (stdout);
    int signal = cart_args_wait_signal ();
    fprintf (stderr, "http_front: signal %d, stopping\n", signal);
    cart_http_destroy (&http);
    return 0;

usage:
    cart_args_reject ("http_front", options, opt, optarg, argc, argv);
    return 2;
}
