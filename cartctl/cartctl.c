/*  =========================================================================
    cartctl - the cart service's operator tool.

    cartctl hash KEY [--shards S]   hash_key (KEY) in decimal; with S, the
                                    shard that owns KEY among S shards
    cartctl ping [--broker EP]      ask the broker for a reply, timed
    cartctl stats [--broker EP]     per shard: liveness, carts, items,
                                    expired carts, requests and the age of
                                    the counts, as the broker sees them
    cartctl keygen NAME...          CURVE key pairs for the bus
    cartctl check-data DIR          verify a data directory offline: every
                                    checksum, the snapshots, the sequence;
                                    print what each shard holds

    Each subcommand is one entry of s_commands; the cluster adds stats and
    ping beside hash. Exit codes: 0 done, 1 failed, 2 bad usage, and for
    stats 3: a shard (of those listed) has no live worker.
    =========================================================================
*/
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <czmq.h>

#include "cart_client.h"
#include "cart_hash.h"
#include "cart_args.h"
#include "cart_ring.h"
#include "cart_store.h"
#include "cart_types.h"

typedef struct {
    const char *name;
    const char *usage;
    const char *summary;
    int (*run) (int argc, char **argv);
} command_t;

static const command_t *s_find (const char *name);

static int
s_usage_error (const char *name, const char *message)
{
    const command_t *command = s_find (name);
    fprintf (stderr, "cartctl %s: %s\nusage: cartctl %s\n", name, message,
             command ? command->usage : "");
    return 2;
}

//  Parses a shard count, 1..CART_SHARDS_MAX. Returns 0 or -1.
static int
s_parse_shards (const char *text, uint32_t *shards)
{
    char *end;
    errno = 0;
    long value = strtol (text, &end, 10);
    if (errno || end == text || *end || value < 1 || value > CART_SHARDS_MAX)
        return -1;
    *shards = (uint32_t)value;
    return 0;
}

static int
s_cmd_hash (int argc, char **argv)
{
    static const struct option options[] = {{"shards", required_argument, NULL, 's'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    uint32_t shards = 0;
    int opt;
    while ((opt = getopt_long (argc, argv, "s:h", options, NULL)) != -1) {
        if (opt == 'h') {
            printf ("usage: cartctl %s\n", s_find ("hash")->usage);
            printf ("Prints hash_key (KEY): SHA-1 of KEY's bytes, big-endian, modulo "
                    "2^63.\nWith --shards S (1..%d), also the shard that owns KEY.\n",
                    CART_SHARDS_MAX);
            return 0;
        }
        if (opt == 's' && s_parse_shards (optarg, &shards) == 0)
            continue;
        return s_usage_error ("hash", opt == 's' ? "--shards takes a number from 1 to "
                                                   "10000"
                                                 : "unknown option");
    }
    if (argc - optind != 1)
        return s_usage_error ("hash", "give exactly one KEY");
    const char *key_text = argv[optind];
    uint64_t key = cart_hash_key (key_text, strlen (key_text));
    printf ("%" PRIu64 "\n", key);
    if (shards)
        printf ("shard %" PRIu32 " of %" PRIu32 "\n", cart_ring_shard (key, shards),
                shards);
    return 0;
}

#define DEFAULT_BROKER "tcp://127.0.0.1:5555"
#define WAIT_STEP_MS   200 //  stats --wait asks this often

typedef struct {
    const char *broker;
    long timeout_ms;
    const char *cert;
    const char *broker_key;
    cart_curve_t keys;
    const cart_curve_t *curve; //  &keys with CURVE, else NULL
    const char *shards;        //  stats --shard LIST
    long wait_s;               //  stats --wait SECONDS
} bus_options_t;

//  Parses --broker EP, --timeout MS, --cert FILE, --broker-key FILE,
//  --help and (with_shard) --shard LIST for a bus command. Returns 0 to go
//  on, -1 after --help, 2 on a usage error, 1 when the keys cannot be read.
static int
s_bus_options (const char *name, const char *help, bool with_shard, int argc, char **argv,
               bus_options_t *options)
{
    static const struct option longs[] = {{"broker", required_argument, NULL, 'b'},
                                          {"timeout", required_argument, NULL, 't'},
                                          {"cert", required_argument, NULL, 'c'},
                                          {"broker-key", required_argument, NULL, 'k'},
                                          {"shard", required_argument, NULL, 's'},
                                          {"wait", required_argument, NULL, 'w'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    *options = (bus_options_t){.broker = DEFAULT_BROKER, .timeout_ms = 2000};
    int opt;
    while ((opt = getopt_long (argc, argv, "b:t:c:k:s:w:h", longs, NULL)) != -1) {
        if (opt == 'b')
            options->broker = optarg;
        else if (opt == 't' &&
                 cart_args_number (optarg, 1, 600000, &options->timeout_ms) == 0)
            continue;
        else if (opt == 'c')
            options->cert = optarg;
        else if (opt == 'k')
            options->broker_key = optarg;
        else if (opt == 's' && with_shard)
            options->shards = optarg;
        else if (opt == 'w' && with_shard &&
                 cart_args_number (optarg, 0, 3600, &options->wait_s) == 0)
            continue;
        else if (opt == 'h') {
            printf ("usage: cartctl %s\n%s\n  --broker EP      the broker's frontend "
                    "(default " DEFAULT_BROKER
                    ")\n  --timeout MS     how long to wait (default 2000)\n%s",
                    s_find (name)->usage, help, cart_curve_client_help);
            return -1;
        } else
            return s_usage_error (name, "unknown option or bad value");
    }
    if (optind != argc)
        return s_usage_error (name, "takes no arguments");
    const char *error = NULL;
    if (cart_curve_options (options->cert, options->broker_key, &options->keys,
                            &options->curve, &error)) {
        fprintf (stderr, "cartctl %s: %s\n", name, error);
        return options->cert && options->broker_key ? 1 : 2;
    }
    return 0;
}

//  Sends a PING or STATS and waits for its result. Returns 0 with
//  *result filled, or 1 after printing why not.
static int
s_bus_call (const char *name, const bus_options_t *options, int command,
            cart_client_t **client, cart_result_t *result, int64_t *sent_us)
{
    const char *error = NULL;
    *client = cart_client_new_curve (options->broker, options->curve, &error);
    if (!*client) {
        fprintf (stderr, "cartctl %s: %s\n", name, error);
        return 1;
    }
    //  The client queues nothing until connected: wait for that first
    zmq_pollitem_t item = {cart_client_handle (*client), 0, ZMQ_POLLOUT, 0};
    zmq_poll (&item, 1, options->timeout_ms);
    cart_curve_state_t state = cart_client_curve_state (*client);
    if (sent_us)
        *sent_us = zclock_usecs (); //  the round trip, not the connection
    if (cart_client_send_command (*client, command, (int)options->timeout_ms, NULL,
                                  NULL) ||
        cart_client_recv (*client, result, -1) != 1) {
        if (state == CART_CURVE_REFUSED || state == CART_CURVE_FAILED)
            fprintf (stderr, "cartctl %s: %s (%s)\n", name, cart_curve_state_text (state),
                     options->broker);
        else
            fprintf (stderr, "cartctl %s: no broker reachable at %s\n", name,
                     options->broker);
        return 1;
    }
    if (result->status != CART_OK) {
        fprintf (stderr, "cartctl %s: %s from %s\n", name,
                 result->status == CART_TIMEOUT ? "no answer in time" : "refused",
                 options->broker);
        return 1;
    }
    return 0;
}

static int
s_cmd_ping (int argc, char **argv)
{
    bus_options_t options;
    int rc = s_bus_options (
        "ping",
        "Asks the broker for an empty reply and times the round trip (from the\n"
        "send, once connected, to the reply).",
        false, argc, argv, &options);
    if (rc)
        return rc == -1 ? 0 : rc;
    cart_client_t *client = NULL;
    cart_result_t result;
    int64_t sent = 0;
    rc = s_bus_call ("ping", &options, CART_CMD_PING, &client, &result, &sent);
    if (rc == 0)
        printf ("pong from %s in %lld us\n", options.broker,
                (long long)(zclock_usecs () - sent));
    cart_client_destroy (&client);
    return rc;
}

//  fprintf, to nowhere when out is NULL.
static void
s_out (FILE *out, const char *format, ...)
{
    if (!out)
        return;
    va_list args;
    va_start (args, format);
    vfprintf (out, format, args);
    va_end (args);
}

//  A count of a stats entry: "-" unless its shard is live, for a count of a
//  shard whose worker is gone or stalled is not current.
static const char *
s_count_text (const cart_shard_stats_t *entry, uint64_t count, char *text, size_t size)
{
    if (!entry->live)
        return "-";
    snprintf (text, size, "%llu", (unsigned long long)count);
    return text;
}

//  How old an entry's counts are: "0.4s", or "never" before any load.
static const char *
s_age_text (const cart_shard_stats_t *entry, char *text, size_t size)
{
    if (entry->load_age_ms < 0)
        return "never";
    snprintf (text, size, "%.1fs", (double)entry->load_age_ms / 1000);
    return text;
}

//  Prints the shards of the stats to out (only the listed ones when listed
//  is not NULL: a flag per shard; out NULL: prints nothing). Returns 0
//  when each is live, 3 when not.
static int
s_print_stats (FILE *out, const cart_result_t *result, const bool *listed,
               size_t n_listed)
{
    cart_stats_list_t list;
    cart_shard_stats_t entry;
    const char *error = NULL;
    if (cart_stats_decode (result->body, result->body_size, &list, &error))
        goto malformed;
    s_out (out, "%-6s %-7s %12s %12s %10s %14s %8s\n", "shard", "live", "carts", "items",
           "expired", "requests", "age");
    size_t live = 0, shown = 0;
    int rc;
    while ((rc = cart_stats_next (&list, &entry, &error)) == 1) {
        if (listed && !listed[entry.shard])
            continue;
        shown++;
        char carts[24], items[24], expired[24], age[24];
        s_out (out, "%-6u %-7s %12s %12s %10s %14llu %8s\n", entry.shard,
               entry.live      ? "yes"
               : entry.stalled ? "STALLED"
                               : "NO",
               s_count_text (&entry, entry.carts, carts, sizeof (carts)),
               s_count_text (&entry, entry.items, items, sizeof (items)),
               s_count_text (&entry, entry.expired, expired, sizeof (expired)),
               (unsigned long long)entry.requests,
               s_age_text (&entry, age, sizeof (age)));
        live += entry.live;
    }
    if (rc == -1)
        goto malformed;
    if (listed && shown < n_listed) {
        //  A listed shard the cluster does not have is not live
        s_out (out, "%zu of %zu listed shards live (the cluster has %u shards)\n", live,
               n_listed, list.shards);
        return 3;
    }
    s_out (out, "%zu of %zu %s live\n", live, shown, listed ? "listed shards" : "shards");
    return live == shown ? 0 : 3;
malformed:
    fprintf (stderr, "cartctl stats: malformed stats: %s\n", error);
    return 1;
}

static int
s_cmd_stats (int argc, char **argv)
{
    bus_options_t options;
    int rc = s_bus_options (
        "stats",
        "Prints each shard's liveness, carts, items, carts removed "
        "for expiry and\nrequests, as the broker sees them. The counts "
        "are the shard's worker's last\nreport (once a second), 'age' "
        "old; a shard that is not live shows '-'.\nExits 3 when a shard has no live "
        "worker, or one that is stalled. With --shard LIST (3,\n"
        "0,2,5 or 0-7), only those shards (a worker's health check).\n"
        "With --wait SECONDS, asks again until they are live, for up "
        "to that long.",
        true, argc, argv, &options);
    if (rc)
        return rc == -1 ? 0 : rc;
    //  A flag per shard: which the list names
    static bool listed[CART_SHARDS_MAX];
    static uint32_t shards[CART_SHARDS_MAX];
    size_t n_shards = 0, n_listed = 0;
    if (options.shards &&
        cart_args_shards (options.shards, shards, CART_SHARDS_MAX, &n_shards))
        return s_usage_error ("stats", "--shard takes a list such as 3, 0,2,5 or 0-7");
    for (size_t i = 0; i < n_shards; i++)
        if (!listed[shards[i]]) {
            listed[shards[i]] = true;
            n_listed++;
        }
    //  With --wait, asks again every WAIT_STEP_MS until every (listed) shard
    //  is live or the time is up, saying how far it got every second
    int64_t until = zclock_mono () + options.wait_s * 1000, told_at = 0;
    const bool *only = options.shards ? listed : NULL;
    while (true) {
        cart_client_t *client = NULL;
        cart_result_t result;
        rc = s_bus_call ("stats", &options, CART_CMD_STATS, &client, &result, NULL);
        bool last = zclock_mono () >= until;
        if (rc == 0 &&
            (last || (rc = s_print_stats (NULL, &result, only, n_listed)) == 0))
            rc = s_print_stats (stdout, &result, only, n_listed);
        cart_client_destroy (&client);
        if (rc == 0 || last)
            return rc;
        if (zclock_mono () - told_at >= 1000) {
            fprintf (stderr,
                     "cartctl stats: waiting up to %ld s for every shard to be "
                     "live\n",
                     options.wait_s);
            told_at = zclock_mono ();
        }
        zclock_sleep (WAIT_STEP_MS);
    }
}

static int
s_cmd_check_data (int argc, char **argv)
{
    static const struct option options[] = {{"shard", required_argument, NULL, 's'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    long only = -1;
    int opt;
    while ((opt = getopt_long (argc, argv, "s:h", options, NULL)) != -1) {
        if (opt == 'h') {
            printf ("usage: cartctl %s\n", s_find ("check-data")->usage);
            printf ("Reads every file of a data directory (shard_worker --data-dir, "
                    "cartd --data-dir)\nwithout changing anything: each snapshot, "
                    "old log and log, every record's\nchecksum and sequence number, "
                    "and every change replayed as a start would.\nPrints what each "
                    "shard holds. With --shard K, only shard K.\nExits 0 when every "
                    "file is whole (a torn last write, which the next start\ncuts, "
                    "counts as whole), 1 when something is damaged or missing.\n");
            return 0;
        }
        if (opt == 's' && cart_args_number (optarg, 0, CART_SHARDS_MAX - 1, &only) == 0)
            continue;
        return s_usage_error ("check-data", "unknown option or bad value");
    }
    if (argc - optind != 1)
        return s_usage_error ("check-data", "give exactly one DIR");
    const char *dir = argv[optind];
    const char *error = NULL;
    uint32_t shards;
    int rc = cart_log_cluster (dir, &shards, &error);
    if (rc) {
        fprintf (stderr, "cartctl check-data: %s\n",
                 rc == 1
                     ? cart_errorf ("'%s' is not a data directory (no cluster file)", dir)
                     : error);
        return 1;
    }
    printf ("%s: a cluster of %u shards\n", dir, shards);
    size_t checked = 0, damaged = 0;
    for (uint32_t shard = 0; shard < shards; shard++) {
        if (only >= 0 && shard != (uint32_t)only)
            continue;
        bool any = false;
        for (int which = CART_FILE_LOG; which <= CART_FILE_SNAPSHOT && !any; which++) {
            char path[600];
            struct stat info;
            cart_log_file (path, sizeof (path), dir, shard, (cart_file_t)which);
            any = stat (path, &info) == 0;
        }
        if (!any && only < 0)
            continue; //  a shard served by no worker of this directory
        checked++;
        if (cart_store_check (dir, shard, shards, stdout, &error))
            damaged++;
    }
    if (damaged)
        printf ("%zu of %zu shard(s) DAMAGED\n", damaged, checked);
    else
        printf ("%zu shard(s) checked; every file whole\n", checked);
    return damaged ? 1 : 0;
}

static int
s_cmd_keygen (int argc, char **argv)
{
    static const struct option options[] = {{"dir", required_argument, NULL, 'd'},
                                            {"shards", required_argument, NULL, 's'},
                                            {"keep", no_argument, NULL, 'k'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *dir = ".", *shards = NULL;
    bool keep = false;
    int opt;
    while ((opt = getopt_long (argc, argv, "d:s:kh", options, NULL)) != -1) {
        if (opt == 'h') {
            printf ("usage: cartctl %s\n", s_find ("keygen")->usage);
            printf (
                "Makes a CURVE key pair for each NAME: DIR/NAME.key, the public key, to\n"
                "give to the broker (--worker-keys or --client-keys DIR) or to its\n"
                "peers (--broker-key), and DIR/NAME.key_secret, mode 0600, for the\n"
                "program's own --cert DIR/NAME.key. czmq's certificate format.\n\n"
                "  --dir DIR      where to write them (default .; made if missing)\n"
                "  --shards LIST  a worker key: the shards it may serve (3, 0,2,5 or\n"
                "                 0-7), kept in its metadata; without it, every shard\n"
                "  --keep         leave a pair that exists (else: refuse to "
                "overwrite)\n\n"
                "Exits 1 when a key cannot be written or an existing one is damaged.\n");
            return 0;
        }
        if (opt == 'd')
            dir = optarg;
        else if (opt == 's')
            shards = optarg;
        else if (opt == 'k')
            keep = true;
        else
            return s_usage_error ("keygen", "unknown option");
    }
    if (optind == argc)
        return s_usage_error ("keygen", "give at least one NAME");
    for (int i = optind; i < argc; i++) {
        const char *error = NULL;
        bool kept = false;
        if (cart_curve_keygen (dir, argv[i], shards, keep, &kept, &error)) {
            fprintf (stderr, "cartctl keygen: %s\n", error);
            return 1;
        }
        printf ("%s %s/%s.key and %s/%s.key_secret%s%s\n", kept ? "kept" : "wrote", dir,
                argv[i], dir, argv[i], shards && !kept ? ", shards " : "",
                shards && !kept ? shards : "");
    }
    return 0;
}

static const command_t s_commands[] = {
    {"hash", "hash KEY [--shards S]", "print a customer's key and owning shard",
     s_cmd_hash},
    {"ping", "ping [--broker EP] [--cert FILE --broker-key FILE]",
     "time a round trip to the broker", s_cmd_ping},
    {"stats", "stats [--broker EP] [--shard LIST] [--wait SECONDS]",
     "print each shard's liveness and load", s_cmd_stats},
    {"keygen", "keygen [--dir DIR] [--shards LIST] [--keep] NAME...",
     "make CURVE key pairs for the bus", s_cmd_keygen},
    {"check-data", "check-data DIR [--shard K]",
     "verify a data directory offline and print what it holds", s_cmd_check_data},
};
#define COMMANDS (sizeof (s_commands) / sizeof (s_commands[0]))

static const command_t *
s_find (const char *name)
{
    for (size_t i = 0; i < COMMANDS; i++)
        if (strcmp (s_commands[i].name, name) == 0)
            return &s_commands[i];
    return NULL;
}

static void
s_help (FILE *out)
{
    fprintf (out, "usage: cartctl COMMAND [ARGS]\n\nOperator tool of the cart "
                  "service.\n\nCommands:\n");
    for (size_t i = 0; i < COMMANDS; i++)
        fprintf (out, "  %s\n      %s\n", s_commands[i].usage, s_commands[i].summary);
    fprintf (out, "\n'cartctl COMMAND --help' tells more; 'cartctl --version' the "
                  "version.\n");
}

int
main (int argc, char **argv)
{
    zsys_handler_set (NULL);
    zsys_set_logstream (stderr); //  stdout carries what a command prints
    if (argc < 2) {
        s_help (stderr);
        return 2;
    }
    if (strcmp (argv[1], "--version") == 0) {
        cart_args_version ("cartctl");
        return 0;
    }
    if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 ||
        strcmp (argv[1], "help") == 0) {
        s_help (stdout);
        return 0;
    }
    const command_t *command = s_find (argv[1]);
    if (!command) {
        fprintf (stderr, "cartctl: unknown command '%s'\n", argv[1]);
        s_help (stderr);
        return 2;
    }
    return command->run (argc - 1, argv + 1);
}
