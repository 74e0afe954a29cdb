/*  =========================================================================
    bench_cluster - the cart cluster in the benchmark's own process: the
    broker actor and a set of shard workers (cart_workers_new) over inproc,
    and one client, with a choice of where their threads run.

        bench_cluster_config_t config = {.shards = 100, .workers = 2,
                                         .place = BENCH_PLACE_ONE};
        const char *error = NULL;
        bench_cluster_t *cluster = bench_cluster_new (&config, &error);
        cart_client_t *client = bench_cluster_client (cluster);
        ...
        bench_cluster_destroy (&cluster);

    bench_cluster_new returns once the broker counts every shard live (a
    STATS round trip, repeated until then, up to BENCH_CLUSTER_START_MS).

    Placement. The actors' threads are made inside czmq, so they are pinned
    the only way open from outside: a new thread inherits its creator's CPU
    mask, so the calling thread sets its own mask before it starts the
    broker, then before the workers, then keeps the client's, and puts its
    first mask back when the cluster is destroyed.

        BENCH_PLACE_OS     no pinning: the scheduler places every thread
        BENCH_PLACE_ONE    every thread on CPU `cpu`: a hop is a context
                           switch on one core, no cross-core wake-up
        BENCH_PLACE_SPLIT  the client on CPU `cpu`, the broker and workers
                           on the next CPU: every hop between client and
                           broker crosses cores
    =========================================================================
*/
#ifndef BENCH_CLUSTER_H_INCLUDED
#define BENCH_CLUSTER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "cart_client.h"
#include "cart_log.h"

#define BENCH_CLUSTER_START_MS 30000

typedef enum { BENCH_PLACE_OS, BENCH_PLACE_ONE, BENCH_PLACE_SPLIT } bench_place_t;

typedef struct {
    uint32_t shards;      //  1..CART_SHARDS_MAX
    size_t workers;       //  worker threads; the shards are dealt to them
    bench_place_t place;  //  where the threads run
    int cpu;              //  the CPU of BENCH_PLACE_ONE, the client's of SPLIT
    const char *data_dir; //  the workers' logs; NULL: in memory
    cart_fsync_t fsync;
    uint64_t compact_min; //  0: the workers' default (cart_store.h)
} bench_cluster_config_t;

typedef struct _bench_cluster_t bench_cluster_t;

//  Start a cluster and wait until every shard is live. Returns NULL with
//  *error set (the caller frees) when a part fails to start, a CPU cannot
//  be used, or the shards are not live in time.
bench_cluster_t *bench_cluster_new (const bench_cluster_config_t *config,
                                    const char **error);

//  Stop the cluster, restore the caller's CPU mask; sets *self_p NULL.
void bench_cluster_destroy (bench_cluster_t **self_p);

//  The cluster's client, for the calling thread only.
cart_client_t *bench_cluster_client (bench_cluster_t *self);

//  Placement names: "os", "one", "split". Parse returns 0 or -1.
int bench_place_parse (const char *name, bench_place_t *place);
const char *bench_place_name (bench_place_t place);

#endif
