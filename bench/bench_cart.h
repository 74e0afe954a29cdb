/*  =========================================================================
    bench_cart - the CART/2 path under load: the real broker
    (cart_broker_new) and shard workers (cart_workers_new) as threads of
    this process, driven by client threads each with its own cart_client_t.

    A configuration's life: start the broker on the transport, start the
    workers, wait (a STATS round trip at a time, with a deadline) until
    every shard has a live worker, fill every cart with a few items, run
    the load, stop everything. The mix is mostly GET and ADD over many
    customers, each picked at random by every request:

        bench_cart_config_t config = {.transport = BENCH_TCP, .shards = 4,
                                      .worker_threads = 4,
                                      .customers = 10000, .get_percent = 80};

    Over CURVE the cluster's keys are made for the run (czmq's zcert): the
    broker's pair, one pair that every worker thread uses and one that
    every client uses; the two public keys go into two fresh directories
    (mkdtemp under /tmp) that the broker admits from, removed when the
    cluster stops. Every handshake ends before the measured time: the
    workers' before every shard is live, a client's before its socket can
    send (ZMQ_IMMEDIATE attaches a connection only once its handshake is
    done), which bench_run_clients waits for before it starts the clock.
    =========================================================================
*/
#ifndef BENCH_CART_H_INCLUDED
#define BENCH_CART_H_INCLUDED

#include <stdint.h>

#include "bench_run.h"

#define BENCH_PREFILL_ITEMS 3 //  items put in each cart before the load
#define BENCH_SKUS          5 //  distinct items an ADD picks from

//  The transports a cluster runs on, in bench_bus's order; the names are
//  what --transport takes and the table prints (bench_transport_names)
typedef enum {
    BENCH_INPROC,
    BENCH_TCP,   //  127.0.0.1
    BENCH_CURVE, //  tcp on 127.0.0.1, CURVE on both of the broker's sockets
    BENCH_TRANSPORTS
} bench_transport_t;

extern const char *const bench_transport_names[BENCH_TRANSPORTS];

typedef struct {
    bench_transport_t transport;
    uint32_t shards;
    size_t worker_threads; //  the workers share the shards between them
    size_t customers;      //  1..10,000,000
    int get_percent;       //  the rest are ADDs of one unit
} bench_cart_config_t;

//  Runs one configuration with load and fills *result. Returns 0, or -1
//  with *error set (the caller frees).
int bench_cart_run (const bench_cart_config_t *config, const bench_load_t *load,
                    bench_result_t *result, const char **error);

#endif
