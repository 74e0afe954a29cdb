/*  =========================================================================
    cart_args - command-line pieces that the programs share: numbers in a
    range, shard lists, and the signal handling of a long-running program.
    =========================================================================
*/
#ifndef CART_ARGS_H_INCLUDED
#define CART_ARGS_H_INCLUDED

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Parses a decimal integer in min..max. Returns 0 or -1.
int cart_args_number (const char *text, long min, long max, long *value);

//  Parses a size in bytes, with an optional suffix k, m or g (powers of
//  1024), between min and max. Returns 0 or -1.
int cart_args_bytes (const char *text, uint64_t min, uint64_t max, uint64_t *value);

//  Parses a duration in seconds, with an optional suffix s, m, h or d
//  (seconds, minutes, hours, days), at most max seconds. Returns 0 or -1.
int cart_args_seconds (const char *text, uint64_t max, uint64_t *value);

//  Parses a decimal number between min and max. Returns 0 or -1.
int cart_args_real (const char *text, double min, double max, double *value);

//  Parses a shard list such as "3", "0,2,5" or "0-7,9" (each shard below
//  CART_SHARDS_MAX) and appends it to shards[*n..capacity). Returns 0, or
//  -1 when the text is not a list or the list does not fit.
int cart_args_shards (const char *text, uint32_t *shards, size_t capacity, size_t *n);

//  Settings from the environment, the container convention: each long
//  option --some-name of options (but --help) may also be given as the
//  variable CART_SOME_NAME. A variable counts only when its option is not
//  on the command line, so a flag always wins. A flag without an argument
//  takes 1, true or yes (0, false or no: not given); an empty variable is
//  not given. Returns a new
//  argv (valid for the life of the process) with the variables' options
//  first and sets *argc; or NULL with *error set when a variable's value
//  does not fit its option.
char **cart_args_env (int *argc, char **argv, const struct option *options,
                      const char **error);

//  Says on stderr which argument a program rejects, after getopt_long
//  returned opt (-1: the options ended and argv[optind] is one too many;
//  '?' or ':': getopt said why already) with arg its value, and where to
//  look: "broker: '0' is not a valid value for --shards (see broker
//  --help)".
void cart_args_reject (const char *program, const struct option *options, int opt,
                       const char *arg, int argc, char **argv);

//  The version of every program: "PROGRAM (cart) CART_RELEASE, CART/2", for --version.
#define CART_RELEASE "0.5.0"
void cart_args_version (const char *program);

//  The paragraph that each program's --help prints about the above.
extern const char cart_args_env_help[];

//  Blocks SIGINT and SIGTERM in the calling thread and so in every thread
//  it starts afterwards (call it first in main), and turns off czmq's own
//  handler. cart_args_wait_signal then takes them in the main thread.
//  Also sends czmq's log to stderr and ignores SIGPIPE.
void cart_args_block_signals (void);

//  Raises the soft limit on open files to the hard limit, so that a server
//  can hold thousands of connections. Returns the new soft limit.
long cart_args_raise_fd_limit (void);

//  Waits for SIGINT or SIGTERM; returns the signal number.
int cart_args_wait_signal (void);

//  The same, looking every 50 ms at failed (arg) as well: returns 0 as
//  soon as it is true.
int cart_args_wait (bool (*failed) (void *arg), void *arg);

#endif
