/*  =========================================================================
    bench_cluster - broker, workers and a client in one process, over
    inproc, with optional CPU pinning (see the header for how and why).
    =========================================================================
*/
#include "bench_cluster.h"

#include <pthread.h>
#include <sched.h>

#include "cart_broker.h"
#include "cart_worker.h"

struct _bench_cluster_t {
    cart_broker_t *broker;
    cart_workers_t *workers;
    cart_client_t *client;
    uint32_t shards;
    bool pinned;
    cpu_set_t saved; //  the caller's mask before the cluster
};

static const char *s_place_names[] = {"os", "one", "split"};

int
bench_place_parse (const char *name, bench_place_t *place)
{
    for (int i = 0; i < 3; i++)
        if (strcmp (name, s_place_names[i]) == 0) {
            *place = (bench_place_t)i;
            return 0;
        }
    return -1;
}

const char *
bench_place_name (bench_place_t place)
{
    return s_place_names[place];
}

//  Moves the calling thread (and the threads it will create) to one CPU.
static int
s_pin (int cpu, const char **error)
{
    cpu_set_t set;
    CPU_ZERO (&set);
    CPU_SET (cpu, &set);
    int rc = pthread_setaffinity_np (pthread_self (), sizeof (set), &set);
    if (rc)
        *error = cart_errorf ("cannot pin to CPU %d: %s", cpu, strerror (rc));
    return rc ? -1 : 0;
}

//  Asks the broker for STATS until it counts every shard live. Returns 0,
//  or -1 with *error set at the deadline.
static int
s_wait_live (bench_cluster_t *self, const char **error)
{
    int64_t until = zclock_mono () + BENCH_CLUSTER_START_MS;
    size_t live = 0;
    while (zclock_mono () < until) {
        cart_result_t result;
        if (cart_client_send_command (self->client, CART_CMD_STATS, 1000, NULL, NULL) ||
            cart_client_recv (self->client, &result, 2000) != 1 ||
            result.status != CART_OK)
            continue;
        cart_stats_list_t list;
        cart_shard_stats_t entry;
        const char *fault;
        if (cart_stats_decode (result.body, result.body_size, &list, &fault))
            continue;
        live = 0;
        while (cart_stats_next (&list, &entry, &fault) == 1)
            live += entry.live;
        if (live == self->shards)
            return 0;
    }
    *error = cart_errorf ("only %zu of %u shards live after %d ms", live, self->shards,
                          BENCH_CLUSTER_START_MS);
    return -1;
}

//  Starts the broker, the workers and the client, each under its CPU mask.
static int
s_start (bench_cluster_t *self, const bench_cluster_config_t *config, const char **error)
{
    static int generation = 0; //  fresh inproc names for every cluster
    char frontend[64], backend[64];
    generation++;
    snprintf (frontend, sizeof (frontend), "inproc://bench-front-%d", generation);
    snprintf (backend, sizeof (backend), "inproc://bench-back-%d", generation);
    int serving_cpu = config->place == BENCH_PLACE_SPLIT ? config->cpu + 1 : config->cpu;
    if (config->place != BENCH_PLACE_OS && s_pin (serving_cpu, error))
        return -1;
    cart_broker_config_t broker = {
        .frontend = frontend, .backend = backend, .shards = config->shards};
    self->broker = cart_broker_new (&broker, error);
    if (!self->broker)
        return -1;
    uint32_t *list = (uint32_t *)malloc (config->shards * sizeof (uint32_t));
    assert (list);
    for (uint32_t i = 0; i < config->shards; i++)
        list[i] = i;
    cart_worker_config_t worker = {.broker = backend,
                                   .cluster_shards = config->shards,
                                   .shards = list,
                                   .n_shards = config->shards,
                                   .data_dir = config->data_dir,
                                   .fsync = config->fsync,
                                   .compact_min = config->compact_min};
    self->workers = cart_workers_new (&worker, config->workers, error);
    free (list);
    if (!self->workers)
        return -1;
    if (config->place != BENCH_PLACE_OS && s_pin (config->cpu, error))
        return -1;
    self->client = cart_client_new (frontend, error);
    return self->client ? s_wait_live (self, error) : -1;
}

bench_cluster_t *
bench_cluster_new (const bench_cluster_config_t *config, const char **error)
{
    bench_cluster_t *self = (bench_cluster_t *)zmalloc (sizeof (bench_cluster_t));
    assert (self);
    self->shards = config->shards;
    self->pinned = config->place != BENCH_PLACE_OS;
    pthread_getaffinity_np (pthread_self (), sizeof (self->saved), &self->saved);
    if (s_start (self, config, error))
        bench_cluster_destroy (&self);
    return self;
}

void
bench_cluster_destroy (bench_cluster_t **self_p)
{
    bench_cluster_t *self = *self_p;
    if (!self)
        return;
    cart_client_destroy (&self->client);
    cart_workers_destroy (&self->workers);
    cart_broker_destroy (&self->broker);
    if (self->pinned)
        pthread_setaffinity_np (pthread_self (), sizeof (self->saved), &self->saved);
    free (self);
    *self_p = NULL;
}

cart_client_t *
bench_cluster_client (bench_cluster_t *self)
{
    return self->client;
}
