/*  =========================================================================
    cart_worker - a shard worker: one thread that owns the partitions of
    one or more shards and serves their requests from the broker.

    The worker is a czmq actor with one DEALER connected to the broker's
    backend. It registers its shards with READY, heartbeats, and when the
    broker falls silent (a restart), it reconnects and registers again
    (the Paranoid Pirate pattern). Only this thread touches its partitions:
    there is no lock on the data path.

        uint32_t shards[] = {0, 2};
        cart_worker_config_t config = {.broker = "tcp://127.0.0.1:5556",
                                       .cluster_shards = 4,
                                       .shards = shards, .n_shards = 2};
        const char *error = NULL;
        cart_workers_t *workers = cart_workers_new (&config, 1, &error);
        ...
        cart_workers_destroy (&workers);

    The actor's commands on its pipe: "$TERM" (stop). When the broker
    refuses it for good (its shard has another live worker, or its shard
    count or heartbeat differs from the broker's), it sends
        zstr_sendx (pipe, "FATAL", "the broker refused this worker: ...", NULL)
    closes its socket and waits for $TERM.
    =========================================================================
*/
#ifndef CART_WORKER_H_INCLUDED
#define CART_WORKER_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#include "cart_curve.h"
#include "cart_log.h"

typedef struct {
    const char *broker;      //  the broker's backend endpoint
    uint32_t cluster_shards; //  the cluster's shard count, as the broker's
    const uint32_t *shards;  //  the shards to own, each below cluster_shards
    size_t n_shards;         //  1..cluster_shards
    const char *data_dir;    //  where the shards' logs live; NULL: in memory
    cart_fsync_t fsync;      //  with data_dir: when a change reaches the disk
    bool repair;             //  cut a damaged log instead of refusing to start
    uint64_t compact_min;    //  with data_dir: log bytes before a snapshot is
                             //  considered; 0: CART_COMPACT_MIN (cart_store.h)
    double compact_factor;   //  and log bytes over snapshot bytes; 0: default
    uint64_t cart_ttl;       //  seconds a cart is kept unchanged (0: for ever)
    uint64_t idem_ttl;       //  seconds an idempotency key is kept
    int heartbeat_ms;        //  0: CART_HEARTBEAT_MS
    int liveness;            //  0: CART_LIVENESS
    bool verbose;
    const cart_curve_t *curve; //  CURVE keys (cart_curve.h); NULL: a plain bus
} cart_worker_config_t;

//  A set of worker threads that share a list of shards between them,
//  round-robin: how one process holds many shards (shard_worker --threads,
//  the all-in-one service).
typedef struct _cart_workers_t cart_workers_t;

//  Most threads in one set: each costs three libzmq sockets (its pipe's two
//  ends and its DEALER), and a process has 1,023.
#define CART_THREADS_MAX 64

//  Start min (threads, config->n_shards) workers; config->shards are dealt
//  out between them. Returns NULL with *error set (cart_types.h) when any
//  of them fails to start; then none runs.
cart_workers_t *cart_workers_new (const cart_worker_config_t *config, size_t threads,
                                  const char **error);

//  Stop and destroy every worker of the set together (each is told to stop
//  before any is waited for); sets *self_p to NULL.
void cart_workers_destroy (cart_workers_t **self_p);

//  Why a worker of the set gave up (the broker refused it for good), or
//  NULL while none has. Does not wait.
const char *cart_workers_failure (cart_workers_t *self);

//  Defaults of the config's times: a cart kept 30 days unchanged, an
//  idempotency key 24 hours (cart_idem.h)
#define CART_CART_TTL (30 * 24 * 60 * 60)

//  The options of the carts that shard_worker and cartd share (each has
//  its own --data-dir): durability, and how long carts and idempotency keys
//  are kept. Their getopt_long entries, their --help lines, and their
//  parsing. A config's times start at the defaults only through
//  cart_worker_config_defaults.
#define CART_WORKER_DURABLE_OPTIONS                                                      \
    {"fsync", required_argument, NULL, 'F'}, {"repair", no_argument, NULL, 'R'},         \
        {"compact-min", required_argument, NULL, 'C'},                                   \
        {"compact-factor", required_argument, NULL, 'X'},                                \
        {"cart-ttl", required_argument, NULL, 'E'},                                      \
    {                                                                                    \
        "idempotency-ttl", required_argument, NULL, 'K'                                  \
    }
#define CART_WORKER_DURABLE_SHORT "F:RC:X:E:K:"

//  Sets the config's times to their defaults.
void cart_worker_config_defaults (cart_worker_config_t *config);
extern const char cart_worker_durable_help[];

//  Applies option opt (its argument arg) to config. Returns 0, 1 when opt
//  is not one of them, or -1 with *error set on a bad value.
int cart_worker_durable_option (cart_worker_config_t *config, int opt, const char *arg,
                                const char **error);

//  The actor itself, for zactor_new; args is a cart_worker_config_t *.
void cart_worker_actor (zsock_t *pipe, void *args);

#endif
