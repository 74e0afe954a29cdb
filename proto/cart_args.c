/*  =========================================================================
    cart_args - shared command-line parsing and signal handling.

    Signals: a process-directed SIGINT can land on any thread, and a czmq
    actor blocked in zmq_poll would swallow it. So the programs block the
    signals before they start any thread, and the main thread alone takes
    them with sigwait: shutdown is then an ordinary, synchronous step.
    =========================================================================
*/
#include "cart_args.h"

#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "cart_types.h"

int
cart_args_number (const char *text, long min, long max, long *value)
{
    //  Digits only, with an optional '-': no spaces or '+' that strtol takes
    if (!isdigit ((unsigned char)text[text[0] == '-']))
        return -1;
    char *end;
    errno = 0;
    long parsed = strtol (text, &end, 10);
    if (errno || end == text || *end || parsed < min || parsed > max)
        return -1;
    *value = parsed;
    return 0;
}

int
cart_args_bytes (const char *text, uint64_t min, uint64_t max, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull (text, &end, 10);
    if (errno || end == text || *text == '-')
        return -1;
    int shift = 0;
    if (*end && strchr ("kK", *end))
        shift = 10;
    else if (*end && strchr ("mM", *end))
        shift = 20;
    else if (*end && strchr ("gG", *end))
        shift = 30;
    if (shift)
        end++;
    if (*end || parsed > (UINT64_MAX >> shift) || (parsed << shift) < min ||
        (parsed << shift) > max)
        return -1;
    *value = (uint64_t)parsed << shift;
    return 0;
}

int
cart_args_seconds (const char *text, uint64_t max, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull (text, &end, 10);
    if (errno || end == text || *text == '-')
        return -1;
    uint64_t unit = 1;
    if (*end == 'm')
        unit = 60;
    else if (*end == 'h')
        unit = 3600;
    else if (*end == 'd')
        unit = 86400;
    if (*end && strchr ("smhd", *end))
        end++;
    if (*end || parsed > max / unit)
        return -1;
    *value = (uint64_t)parsed * unit;
    return 0;
}

int
cart_args_real (const char *text, double min, double max, double *value)
{
    char *end;
    errno = 0;
    double parsed = strtod (text, &end);
    if (errno || end == text || *end || !(parsed >= min && parsed <= max))
        return -1;
    *value = parsed;
    return 0;
}

//  Parses "A" or "A-B" from text up to the next comma.
static int
s_range (const char *text, size_t len, long *first, long *last)
{
    char piece[32];
    if (len == 0 || len >= sizeof (piece))
        return -1;
    memcpy (piece, text, len);
    piece[len] = 0;
    char *dash = strchr (piece, '-');
    if (dash)
        *dash = 0;
    if (cart_args_number (piece, 0, CART_SHARDS_MAX - 1, first))
        return -1;
    *last = *first;
    if (dash && cart_args_number (dash + 1, *first, CART_SHARDS_MAX - 1, last))
        return -1;
    return 0;
}

int
cart_args_shards (const char *text, uint32_t *shards, size_t capacity, size_t *n)
{
    while (true) {
        size_t len = strcspn (text, ",");
        long first, last;
        if (s_range (text, len, &first, &last))
            return -1;
        for (long shard = first; shard <= last; shard++) {
            if (*n >= capacity)
                return -1;
            shards[(*n)++] = (uint32_t)shard;
        }
        if (text[len] == 0)
            return 0;
        text += len + 1;
    }
}

const char cart_args_env_help[] =
    "Each option may also be set in the environment, as CART_ and its name in\n"
    "upper case with '_' for '-': --heartbeat 100 as CART_HEARTBEAT=100, a flag\n"
    "without a value as =1. A flag on the command line wins over its variable.\n";

//  True when argv (after argv[0]) names the option, before a "--" that
//  ends the options: as --name or --name=VALUE, or by its short letter
//  (-x or -xVALUE) when it has one.
static bool
s_given (int argc, char **argv, const struct option *option)
{
    size_t len = strlen (option->name);
    bool letter = option->val > 0 && option->val < 128 && isalnum (option->val);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp (arg, "--") == 0)
            return false;
        if (strncmp (arg, "--", 2) == 0 && strncmp (arg + 2, option->name, len) == 0 &&
            (arg[2 + len] == 0 || arg[2 + len] == '='))
            return true;
        if (letter && arg[0] == '-' && arg[1] == option->val)
            return true;
    }
    return false;
}

void
cart_args_reject (const char *program, const struct option *options, int opt,
                  const char *arg, int argc, char **argv)
{
    const char *name = NULL;
    for (const struct option *option = options; option->name && opt > 0; option++)
        if (option->val == opt)
            name = option->name;
    if (opt == -1 && optind < argc)
        fprintf (stderr, "%s: unexpected argument '%s'", program, argv[optind]);
    else if (name)
        fprintf (stderr, "%s: '%s' is not a valid value for --%s", program,
                 arg ? arg : "", name);
    else if (opt != '?' && opt != ':')
        fprintf (stderr, "%s: bad argument", program);
    else
        fprintf (stderr, "%s: see the line above", program); //  getopt named it
    fprintf (stderr, " (see %s --help)\n", program);
}

void
cart_args_version (const char *program)
{
    printf ("%s (cart) %s, CART/2\n", program, CART_RELEASE);
}

//  The variable's name for an option: CART_ and the name in upper case,
//  '-' as '_'. Returns 0, or -1 when it does not fit.
static int
s_env_name (const char *option, char *name, size_t size)
{
    int len = snprintf (name, size, "CART_%s", option);
    if (len < 0 || (size_t)len >= size)
        return -1;
    for (char *c = name; *c; c++)
        *c = *c == '-' ? '_' : (char)toupper ((unsigned char)*c);
    return 0;
}

char **
cart_args_env (int *argc, char **argv, const struct option *options, const char **error)
{
    size_t n_options = 0;
    while (options[n_options].name)
        n_options++;
    //  Lives as long as the process: getopt's optarg points into it. A
    //  program calls this once; each call's argv is kept, chained from the
    //  last one (its slot 0 holds the one before)
    static char **s_last;
    char **block = (char **)calloc ((size_t)*argc + n_options + 2, sizeof (char *));
    assert (block);
    block[0] = (char *)s_last;
    s_last = block;
    char **s_argv = block + 1;
    int n = 0;
    s_argv[n++] = argv[0];
    for (size_t i = 0; i < n_options; i++) {
        const struct option *option = &options[i];
        char name[96];
        if (strcmp (option->name, "help") == 0 ||
            s_env_name (option->name, name, sizeof (name)) ||
            s_given (*argc, argv, option))
            continue;
        const char *value = getenv (name);
        if (!value || !*value)
            continue; //  empty: not given
        if (option->has_arg == no_argument) {
            if (!strcmp (value, "0") || !strcasecmp (value, "false") ||
                !strcasecmp (value, "no"))
                continue;
            if (strcmp (value, "1") && strcasecmp (value, "true") &&
                strcasecmp (value, "yes")) {
                *error = cart_errorf ("%s=%s: --%s takes no value; set it to 1 or 0",
                                      name, value, option->name);
                return NULL;
            }
            value = NULL;
        }
        //  The flag is built once per variable and kept with s_argv
        char *arg =
            zsys_sprintf ("--%s%s%s", option->name, value ? "=" : "", value ? value : "");
        assert (arg);
        s_argv[n++] = arg;
    }
    for (int i = 1; i < *argc; i++)
        s_argv[n++] = argv[i];
    s_argv[n] = NULL;
    *argc = n;
    return s_argv;
}

static sigset_t
s_signals (void)
{
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGINT);
    sigaddset (&set, SIGTERM);
    return set;
}

void
cart_args_block_signals (void)
{
    zsys_handler_set (NULL);
    //  Logs go to stderr, so that stdout carries only what a program
    //  prints for its caller; and a reader that went away (a closed pipe)
    //  is an error to a write, not a signal that kills a server
    zsys_set_logstream (stderr);
    signal (SIGPIPE, SIG_IGN);
    sigset_t set = s_signals ();
    pthread_sigmask (SIG_BLOCK, &set, NULL);
}

int
cart_args_wait_signal (void)
{
    sigset_t set = s_signals ();
    int signal = 0;
    while (sigwait (&set, &signal) != 0)
        ;
    return signal;
}

int
cart_args_wait (bool (*failed) (void *arg), void *arg)
{
    sigset_t set = s_signals ();
    struct timespec tick = {0, 50 * 1000 * 1000};
    while (true) {
        int signal = sigtimedwait (&set, NULL, &tick);
        if (signal > 0)
            return signal;
        if (failed && failed (arg))
            return 0;
    }
}

long
cart_args_raise_fd_limit (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit))
        return -1;
    limit.rlim_cur = limit.rlim_max;
    setrlimit (RLIMIT_NOFILE, &limit);
    getrlimit (RLIMIT_NOFILE, &limit);
    return (long)limit.rlim_cur;
}
