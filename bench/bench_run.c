/*  =========================================================================
    bench_run - client threads with a window of requests in flight.

    Every loop here is bounded in time: a client stops sending at the end
    of the measured interval (or when its share is sent, by count) and
    stops waiting at the drain deadline, whatever the other side does. A
    wait for a result never passes that deadline and never lasts more than
    100 ms, so a client looks at the clock at least ten times a second.
    The threads start together on a barrier, not after a sleep.
    =========================================================================
*/
#include "bench_run.h"

#include "cart_types.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define NS_PER_S    1000000000LL
#define NS_PER_MS   1000000LL
#define WAIT_MAX_MS 100

//  The common clock of a configuration, set by the main thread between
//  the two barriers.
typedef struct {
    int64_t start;
    int64_t count_from;  //  completions count from here (time mode)
    int64_t count_until; //  ... to here; sending stops here
    int64_t stop_by;     //  the drain deadline
    bool by_count;
} phase_t;

typedef struct {
    const bench_ops_t *ops;
    void *arg;
    size_t index;
    size_t window;
    uint64_t quota; //  requests to send, by count
    pthread_barrier_t *ready;
    pthread_barrier_t *go;
    const phase_t *phase;
    bench_result_t result;
    int64_t last_done; //  time of the last counted completion
    double cpu_from;   //  client 0, time mode: process CPU at count_from
    double cpu_until;  //  ... and at count_until
    char error[512];   //  why open failed, copied out of the thread's buffer
} client_t;

int64_t
bench_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * NS_PER_S + now.tv_nsec;
}

uint64_t
bench_random (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C (2685821657736338717);
}

//  CPU seconds used so far by every thread of the process.
static double
s_process_cpu (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

//  Client 0, by time, reads the process's CPU as it passes the ends of the
//  counted interval.
static void
s_cpu_mark (client_t *self, int64_t now)
{
    if (self->index != 0 || self->phase->by_count)
        return;
    if (self->cpu_from == 0 && now >= self->phase->count_from)
        self->cpu_from = s_process_cpu ();
    if (self->cpu_until == 0 && now >= self->phase->count_until)
        self->cpu_until = s_process_cpu ();
}

static void
s_result_init (bench_result_t *result)
{
    memset (result, 0, sizeof (*result));
    bench_hist_init (&result->latency);
}

//  Counts one completion, if it falls where the phase counts.
static void
s_count (client_t *self, const bench_done_t *done, int64_t now)
{
    const phase_t *phase = self->phase;
    if (!phase->by_count && (now < phase->count_from || now >= phase->count_until))
        return;
    bench_result_t *result = &self->result;
    if (done->ok) {
        result->ok++;
        bench_hist_record (&result->latency, (uint64_t)(now - done->sent_ns));
    } else {
        result->failed++;
        if (done->timeout)
            result->timeouts++;
    }
    self->last_done = now;
}

//  Milliseconds to wait for a result: up to the deadline, at most
//  WAIT_MAX_MS, at least 1 while the deadline is ahead.
static int
s_wait_ms (int64_t now, int64_t deadline)
{
    int64_t left = (deadline - now + NS_PER_MS - 1) / NS_PER_MS;
    return left <= 0 ? 0 : left > WAIT_MAX_MS ? WAIT_MAX_MS : (int)left;
}

//  Takes the results waiting (the first one waiting up to wait_ms), at
//  most a window's worth. Returns how many.
static size_t
s_take_results (client_t *self, void *driver, int wait_ms)
{
    size_t taken = 0;
    bench_done_t done;
    while (taken < self->window &&
           self->ops->recv (driver, taken ? 0 : wait_ms, &done) == 1) {
        s_count (self, &done, bench_now_ns ());
        taken++;
    }
    return taken;
}

static bool
s_may_send (const client_t *self, uint64_t sent, int64_t now)
{
    return self->phase->by_count ? sent < self->quota : now < self->phase->count_until;
}

//  The client's loop: keep the window full while sending is allowed, take
//  results, until nothing is in flight after sending stops or the drain
//  deadline passes.
static void
s_drive (client_t *self, void *driver)
{
    size_t in_flight = 0;
    uint64_t sent = 0;
    while (true) {
        int64_t now = bench_now_ns ();
        s_cpu_mark (self, now);
        if (now >= self->phase->stop_by)
            break;
        bool sending = s_may_send (self, sent, now);
        while (sending && in_flight < self->window) {
            if (self->ops->send (driver)) {
                self->result.send_failed++;
                break;
            }
            in_flight++;
            sending = s_may_send (self, ++sent, now);
        }
        if (in_flight == 0)
            break; //  done, or every send refused: nothing to wait for
        in_flight -= s_take_results (self, driver, s_wait_ms (now, self->phase->stop_by));
    }
    self->result.unfinished = in_flight;
}

static void *
s_client_thread (void *args)
{
    client_t *self = (client_t *)args;
    pthread_setname_np (pthread_self (), "bench-client");
    const char *error = NULL;
    void *driver = self->ops->open (self->arg, self->index, self->window, &error);
    if (!driver)
        snprintf (self->error, sizeof (self->error), "%s", error ? error : "open failed");
    pthread_barrier_wait (self->ready);
    pthread_barrier_wait (self->go);
    if (driver) {
        s_drive (self, driver);
        self->ops->close (&driver);
    }
    return NULL;
}

//  Sets the common clock, now, for the load.
static void
s_phase_start (phase_t *phase, const bench_load_t *load)
{
    phase->start = bench_now_ns ();
    phase->by_count = load->requests > 0;
    if (phase->by_count) {
        phase->count_from = phase->start;
        phase->count_until = phase->stop_by =
            phase->start + (int64_t)(BENCH_COUNT_CAP_S * NS_PER_S);
    } else {
        phase->count_from = phase->start + (int64_t)(load->warmup * NS_PER_S);
        phase->count_until = phase->count_from + (int64_t)(load->seconds * NS_PER_S);
        phase->stop_by = phase->count_until + (int64_t)(BENCH_DRAIN_S * NS_PER_S);
    }
}

static void
s_merge (bench_result_t *total, const bench_result_t *part)
{
    total->ok += part->ok;
    total->failed += part->failed;
    total->timeouts += part->timeouts;
    total->send_failed += part->send_failed;
    total->unfinished += part->unfinished;
    bench_hist_merge (&total->latency, &part->latency);
}

//  Gathers the clients' results; returns -1 with *error when one failed
//  to open. cpu: the process's CPU over the run, by count.
static int
s_gather (client_t *clients, size_t n, const phase_t *phase, double cpu,
          bench_result_t *result, const char **error)
{
    s_result_init (result);
    if (phase->by_count)
        result->cpu = cpu;
    else if (clients[0].cpu_from > 0 && clients[0].cpu_until > 0)
        result->cpu = clients[0].cpu_until - clients[0].cpu_from;
    int64_t last = phase->start;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        s_merge (result, &clients[i].result);
        if (clients[i].last_done > last)
            last = clients[i].last_done;
        if (clients[i].error[0] && rc == 0) {
            *error = cart_errorf ("%s", clients[i].error);
            rc = -1;
        }
    }
    result->elapsed = phase->by_count
                          ? (double)(last - phase->start) / NS_PER_S
                          : (double)(phase->count_until - phase->count_from) / NS_PER_S;
    return rc;
}

int
bench_run_clients (const bench_ops_t *ops, void *arg, const bench_load_t *load,
                   bench_result_t *result, const char **error)
{
    assert (load->clients > 0 && load->window > 0);
    size_t n = load->clients;
    client_t *clients = (client_t *)calloc (n, sizeof (client_t));
    pthread_t *threads = (pthread_t *)calloc (n, sizeof (pthread_t));
    assert (clients && threads);
    pthread_barrier_t ready, go;
    pthread_barrier_init (&ready, NULL, (unsigned)n + 1);
    pthread_barrier_init (&go, NULL, (unsigned)n + 1);
    phase_t phase = {0};
    for (size_t i = 0; i < n; i++) {
        uint64_t share = load->requests / n + (i < load->requests % n ? 1 : 0);
        clients[i] = (client_t){.ops = ops,
                                .arg = arg,
                                .index = i,
                                .window = load->window,
                                .quota = share,
                                .ready = &ready,
                                .go = &go,
                                .phase = &phase};
        s_result_init (&clients[i].result);
        int rc = pthread_create (&threads[i], NULL, s_client_thread, &clients[i]);
        assert (rc == 0); //  out of threads: a fault of the machine, not input
    }
    pthread_barrier_wait (&ready);
    s_phase_start (&phase, load);
    double cpu = s_process_cpu ();
    pthread_barrier_wait (&go);
    for (size_t i = 0; i < n; i++)
        pthread_join (threads[i], NULL);
    cpu = s_process_cpu () - cpu;
    int rc = s_gather (clients, n, &phase, cpu, result, error);
    pthread_barrier_destroy (&ready);
    pthread_barrier_destroy (&go);
    free (threads);
    free (clients);
    return rc;
}
