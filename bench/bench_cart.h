/*  =========================================================================
    bench_cart - the CART/2 path under load: the real broker
    (cart_broker_new) and shard workers (cart_workers_new) as threads of
    this process, driven by client threads each with its own cart_client_t.

    A configuration's life: start the broker on the transport, start the
    workers, wait (a STATS round trip at a time, with a deadline) until
    every shard has a live worker, fill every cart with a few items, run
    the load, stop everything. The mix is mostly GET and ADD over many
    customers, each picked at random by every request:

        bench_cart_config_t config = {.transport = "tcp", .shards = 4,
                                      .worker_threads = 4,
                                      .customers = 10000, .get_percent = 80};
    =========================================================================
*/
#ifndef BENCH_CART_H_INCLUDED
#define BENCH_CART_H_INCLUDED

#include <stdint.h>

#include "bench_run.h"

#define BENCH_PREFILL_ITEMS 3 //  items put in each cart before the load
#define BENCH_SKUS          5 //  distinct items an ADD picks from

typedef struct {
    const char *transport; //  "inproc" or "tcp" (127.0.0.1)
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
