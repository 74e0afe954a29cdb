/*  =========================================================================
    cartctl - the cart service's operator tool.

    cartctl hash KEY [--shards S]   hash_key (KEY) in decimal; with S, the
                                    shard that owns KEY among S shards

    Each subcommand is one entry of s_commands; the cluster adds stats and
    ping beside hash. Exit codes: 0 done, 1 failed, 2 bad usage.
    =========================================================================
*/
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart_hash.h"
#include "cart_ring.h"
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

static const command_t s_commands[] = {
    {"hash", "hash KEY [--shards S]", "print a customer's key and owning shard",
     s_cmd_hash},
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
        fprintf (out, "  %-24s %s\n", s_commands[i].usage, s_commands[i].summary);
    fprintf (out, "\n'cartctl COMMAND --help' tells more.\n");
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        s_help (stderr);
        return 2;
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
