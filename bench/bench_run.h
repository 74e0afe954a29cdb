/*  =========================================================================
    bench_run - drives a load through client threads, each keeping a window
    of requests in flight, and gathers requests per second and latencies.

    What is driven is given as a set of operations (bench_ops_t): the raw
    libzmq path and the CART/2 path each supply theirs. Every client thread
    opens its own connection, then all start together (two barriers: all
    ready, then go with the common start time); each fills its window,
    takes results as they come and refills, until the measured interval
    ends; then it stops sending and takes what is still in flight, up to
    the drain deadline.

        bench_load_t load = {.clients = 2, .window = 256, .seconds = 4,
                             .warmup = 0.5};
        bench_result_t result;
        const char *error = NULL;
        if (bench_run_clients (&ops, my_arg, &load, &result, &error))
            ... *error says why (the caller frees it)

    Counting. By time (load.requests == 0): a completion counts when it
    comes inside [start + warmup, start + warmup + seconds); requests/s is
    the count over `seconds`. By count: each client sends its share of
    load.requests; requests/s is the total over the time from the start to
    the last completion. A latency is the time from just before the send
    call to just after the result is taken, on CLOCK_MONOTONIC.

    CPU. The process's CPU time (getrusage, all threads: clients, broker,
    workers, libzmq's I/O thread) over the counted interval: client 0
    reads it as it passes the interval's ends (by count, the main thread
    reads it at the start and after the last client ends). CPU per request
    holds when other programs share the machine; requests/s does not.
    =========================================================================
*/
#ifndef BENCH_RUN_H_INCLUDED
#define BENCH_RUN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_hist.h"

//  How long a client keeps taking results after it stops sending: longer
//  than a CART request's default deadline, so every request ends.
#define BENCH_DRAIN_S 3.0
//  Longest a configuration driven by count may run.
#define BENCH_COUNT_CAP_S 120.0

//  The load of one configuration.
typedef struct {
    size_t clients;    //  client threads, each with its own connection
    size_t window;     //  requests in flight per client
    double seconds;    //  measured interval, when requests is 0
    double warmup;     //  seconds before it, not counted
    uint64_t requests; //  > 0: requests per configuration, over all clients
} bench_load_t;

//  What one configuration measured.
typedef struct {
    uint64_t ok;          //  completions counted with a success status
    uint64_t failed;      //  completions counted with any other status
    uint64_t timeouts;    //  of the failed, those that passed their deadline
    uint64_t send_failed; //  sends refused (queue full, no connection)
    uint64_t unfinished;  //  still in flight at the drain deadline
    double elapsed;       //  seconds the counted completions span
    double cpu;           //  CPU seconds of the whole process (every thread)
                          //  over the counted interval
    bench_hist_t latency; //  nanoseconds, of the successful completions
} bench_result_t;

//  One completion, as a driver reports it.
typedef struct {
    int64_t sent_ns; //  bench_now_ns () just before the send
    bool ok;         //  a success status
    bool timeout;    //  ended by its deadline
} bench_done_t;

//  The operations of one kind of client. open and close run in the client
//  thread; the driver they make is used by that thread alone.
typedef struct {
    //  Connects client number index and waits (bounded) until it can send.
    //  Returns the driver, or NULL with *error set (the caller frees).
    void *(*open) (void *arg, size_t index, size_t window, const char **error);
    //  Sends one request without waiting. Returns 0, or -1 when refused.
    int (*send) (void *driver);
    //  Takes one result, waiting up to wait_ms. Returns 1 with *done set,
    //  or 0 when none came in time.
    int (*recv) (void *driver, int wait_ms, bench_done_t *done);
    //  Closes and frees a driver; sets *driver_p NULL.
    void (*close) (void **driver_p);
} bench_ops_t;

//  Runs load through load->clients threads of ops (arg is handed to each
//  open) and fills *result. Returns 0, or -1 with *error set when a client
//  could not open (the caller frees *error).
int bench_run_clients (const bench_ops_t *ops, void *arg, const bench_load_t *load,
                       bench_result_t *result, const char **error);

//  CLOCK_MONOTONIC in nanoseconds.
int64_t bench_now_ns (void);

//  A fast pseudo-random generator (xorshift64*); *state must not be 0.
uint64_t bench_random (uint64_t *state);

#endif
