/*  =========================================================================
    bench_cart - the CART/2 cluster under load.

    Every wait at start-up is on the bus, with a deadline: a client waits
    for its connection with zmq_poll (ZMQ_POLLOUT, which a DEALER with
    ZMQ_IMMEDIATE gives only once it is connected), and the workers are
    known to be registered when a STATS reply says that every shard is
    live. Latencies are taken per request: its send time is kept in the
    client's window slot, whose index travels as the request's user value.

    Carts are filled before the load (BENCH_PREFILL_ITEMS items each), so
    that a GET answers a cart of a few items from the first request on, as
    it would in a shop, rather than an empty one. ADDs pick among
    BENCH_SKUS items, so carts stay between 3 and 5 items.
    =========================================================================
*/
#include "bench_cart.h"

#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>

#include "cart_broker.h"
#include "cart_client.h"
#include "cart_proto.h"
#include "cart_worker.h"

#define NAME_SIZE      24
#define READY_MS       10000 //  longest wait for the cluster to serve
#define CONNECT_MS     5000  //  longest wait for a client's connection
#define PREFILL_WINDOW 512
#define PREFILL_MS     60000 //  longest the carts may take to fill
#define PRICE_CENTS    1999
#define KEY_DIR        "/tmp/bench-keys-XXXXXX" //  mkdtemp's template

const char *const bench_transport_names[BENCH_TRANSPORTS] = {
    [BENCH_INPROC] = "inproc", [BENCH_TCP] = "tcp", [BENCH_CURVE] = "curve"};

//  The two lists of public keys the broker admits, each a directory
typedef enum { KEYS_WORKERS, KEYS_CLIENTS, KEYS_LISTS } key_list_t;

static const char *const s_key_names[KEYS_LISTS] = {
    [KEYS_WORKERS] = "bench-worker", [KEYS_CLIENTS] = "bench-client"};

//  A CURVE cluster's keys (see bench_cart.h)
typedef struct {
    cart_curve_t broker;
    cart_curve_t peer[KEYS_LISTS];        //  every worker's, every client's
    char dir[KEYS_LISTS][sizeof KEY_DIR]; //  "" until made
} keys_t;

typedef struct {
    const bench_cart_config_t *config;
    keys_t keys;
    const cart_curve_t *client_curve; //  NULL: a plain bus
    cart_broker_t *broker;
    cart_workers_t *workers;
    char *names; //  customers x NAME_SIZE, NUL-terminated ids
    uint8_t *name_lens;
    char skus[BENCH_SKUS][8];
} cluster_t;

typedef struct {
    cart_client_t *client;
    const cluster_t *cluster;
    uint64_t rng;
    int64_t *sent_at; //  per window slot
    uint32_t *free;   //  slots not in flight
    size_t n_free;
} driver_t;

//  --------------------------------------------------------------------------
//  Requests

static cart_request_t
s_request (const cluster_t *self, size_t customer, cart_op_t op, size_t sku)
{
    cart_request_t req = {.op = op,
                          .customer = self->names + customer * NAME_SIZE,
                          .customer_len = self->name_lens[customer]};
    if (op == CART_OP_ADD)
        req.item = (cart_item_t){.id = self->skus[sku],
                                 .id_len = strlen (self->skus[sku]),
                                 .price_cents = PRICE_CENTS,
                                 .count = 1};
    return req;
}

static bool
s_success (int status)
{
    return status == CART_OK || status == CART_CREATED;
}

static int
s_ms_left (int64_t deadline_ns)
{
    int64_t left = (deadline_ns - bench_now_ns ()) / 1000000;
    return left > 0 ? (int)left : 0;
}

//  Waits until the client is connected, up to deadline_ns.
static int
s_wait_writable (cart_client_t *client, int64_t deadline_ns)
{
    zmq_pollitem_t item = {cart_client_handle (client), 0, ZMQ_POLLOUT, 0};
    return zmq_poll (&item, 1, s_ms_left (deadline_ns)) == 1 ? 0 : -1;
}

//  --------------------------------------------------------------------------
//  CURVE keys

static void
s_curve_fill (cart_curve_t *curve, zcert_t *cert, const char *server_txt)
{
    snprintf (curve->public_txt, sizeof (curve->public_txt), "%s",
              zcert_public_txt (cert));
    snprintf (curve->secret_txt, sizeof (curve->secret_txt), "%s",
              zcert_secret_txt (cert));
    snprintf (curve->server_txt, sizeof (curve->server_txt), "%s", server_txt);
}

static void
s_key_path (const keys_t *self, key_list_t list, char *path, size_t size)
{
    snprintf (path, size, "%s/%s.key", self->dir[list], s_key_names[list]);
}

//  Makes a fresh directory for list and writes cert's public key in it.
static int
s_key_save (keys_t *self, key_list_t list, zcert_t *cert, const char **error)
{
    char path[PATH_MAX];
    snprintf (self->dir[list], sizeof (self->dir[list]), "%s", KEY_DIR);
    if (!mkdtemp (self->dir[list])) {
        *error = cart_errorf ("cannot make a key directory '%s': %s", KEY_DIR,
                              strerror (errno));
        self->dir[list][0] = 0;
        return -1;
    }
    s_key_path (self, list, path, sizeof (path));
    if (zcert_save_public (cert, path) == 0)
        return 0;
    *error = cart_errorf ("cannot write the key file '%s'", path);
    return -1;
}

//  Makes the broker's pair and the workers' and the clients' (which know
//  the broker's public key), and writes the two public keys for the broker.
static int
s_keys_make (keys_t *self, const char **error)
{
    if (!zsys_has_curve ()) {
        *error = cart_errorf ("this libzmq has no CURVE");
        return -1;
    }
    zcert_t *broker = zcert_new ();
    assert (broker);
    s_curve_fill (&self->broker, broker, "");
    zcert_destroy (&broker);
    int rc = 0;
    for (int list = 0; list < KEYS_LISTS && rc == 0; list++) {
        zcert_t *cert = zcert_new ();
        assert (cert);
        s_curve_fill (&self->peer[list], cert, self->broker.public_txt);
        rc = s_key_save (self, (key_list_t)list, cert, error);
        zcert_destroy (&cert);
    }
    return rc;
}

//  Removes the key directories made so far.
static void
s_keys_remove (keys_t *self)
{
    for (int list = 0; list < KEYS_LISTS; list++) {
        if (!self->dir[list][0])
            continue;
        char path[PATH_MAX];
        s_key_path (self, (key_list_t)list, path, sizeof (path));
        unlink (path);
        if (rmdir (self->dir[list]))
            zsys_warning ("bench: cannot remove '%s': %s", self->dir[list],
                          strerror (errno));
        self->dir[list][0] = 0;
    }
}

//  --------------------------------------------------------------------------
//  The cluster

static void
s_cluster_names (cluster_t *self)
{
    size_t n = self->config->customers;
    self->names = (char *)malloc (n * NAME_SIZE);
    self->name_lens = (uint8_t *)malloc (n);
    assert (self->names && self->name_lens);
    for (size_t i = 0; i < n; i++)
        self->name_lens[i] = (uint8_t)snprintf (self->names + i * NAME_SIZE, NAME_SIZE,
                                                "customer-%05zu", i);
    for (int i = 0; i < BENCH_SKUS; i++)
        snprintf (self->skus[i], sizeof (self->skus[i]), "sku-%d", i);
}

static int
s_cluster_start (cluster_t *self, const char **error)
{
    static int instance = 0;
    char front[64], back[64];
    bool tcp = self->config->transport != BENCH_INPROC;
    bool curve = self->config->transport == BENCH_CURVE;
    snprintf (front, sizeof (front),
              tcp ? "tcp://127.0.0.1:*" : "inproc://bench-front-%d", instance);
    snprintf (back, sizeof (back), tcp ? "tcp://127.0.0.1:*" : "inproc://bench-back-%d",
              instance++);
    if (curve && s_keys_make (&self->keys, error))
        return -1;
    self->client_curve = curve ? &self->keys.peer[KEYS_CLIENTS] : NULL;
    cart_broker_config_t broker = {
        .frontend = front,
        .backend = back,
        .shards = self->config->shards,
        .curve = curve ? &self->keys.broker : NULL,
        .worker_keys = curve ? self->keys.dir[KEYS_WORKERS] : NULL,
        .client_keys = curve ? self->keys.dir[KEYS_CLIENTS] : NULL};
    self->broker = cart_broker_new (&broker, error);
    if (!self->broker)
        return -1;
    uint32_t *list = (uint32_t *)malloc (self->config->shards * sizeof (uint32_t));
    assert (list);
    for (uint32_t i = 0; i < self->config->shards; i++)
        list[i] = i;
    cart_worker_config_t workers = {.broker = cart_broker_backend (self->broker),
                                    .cluster_shards = self->config->shards,
                                    .shards = list,
                                    .n_shards = self->config->shards,
                                    .curve =
                                        curve ? &self->keys.peer[KEYS_WORKERS] : NULL};
    self->workers = cart_workers_new (&workers, self->config->worker_threads, error);
    free (list);
    return self->workers ? 0 : -1;
}

static void
s_cluster_stop (cluster_t *self)
{
    cart_workers_destroy (&self->workers);
    cart_broker_destroy (&self->broker);
    s_keys_remove (&self->keys);
    free (self->names);
    free (self->name_lens);
}

//  True when a STATS body says that all `shards` shards are live.
static bool
s_all_live (const void *body, size_t size, uint32_t shards)
{
    cart_stats_list_t list;
    cart_shard_stats_t entry;
    const char *error;
    if (cart_stats_decode (body, size, &list, &error) || list.shards != shards)
        return false;
    uint32_t live = 0;
    int rc;
    while ((rc = cart_stats_next (&list, &entry, &error)) == 1)
        live += entry.live ? 1 : 0;
    return rc == 0 && live == shards;
}

//  Asks the broker for STATS until every shard has a live worker.
static int
s_wait_serving (cluster_t *self, cart_client_t *client, const char **error)
{
    int64_t deadline = bench_now_ns () + (int64_t)READY_MS * 1000000;
    while (bench_now_ns () < deadline) {
        if (cart_client_send_command (client, CART_CMD_STATS, 1000, NULL, NULL)) {
            if (s_wait_writable (client, deadline))
                break;
            continue;
        }
        cart_result_t result;
        if (cart_client_recv (client, &result, s_ms_left (deadline)) == 1 &&
            result.status == CART_OK &&
            s_all_live (result.body, result.body_size, self->config->shards))
            return 0;
    }
    *error = cart_errorf ("the %u shards were not all served within %d ms",
                          self->config->shards, READY_MS);
    return -1;
}

//  Puts BENCH_PREFILL_ITEMS items in every cart, a window at a time.
static int
s_prefill (cluster_t *self, cart_client_t *client, const char **error)
{
    size_t total = self->config->customers * BENCH_PREFILL_ITEMS;
    size_t sent = 0, done = 0, failed = 0;
    int64_t deadline = bench_now_ns () + (int64_t)PREFILL_MS * 1000000;
    while (done < total && bench_now_ns () < deadline) {
        while (sent < total && cart_client_pending (client) < PREFILL_WINDOW) {
            size_t customer = sent % self->config->customers;
            cart_request_t req =
                s_request (self, customer, CART_OP_ADD, sent / self->config->customers);
            if (cart_client_send (client, &req, 0, NULL, NULL, NULL))
                break;
            sent++;
        }
        cart_result_t result;
        if (cart_client_recv (client, &result, s_ms_left (deadline) > 100 ? 100 : 1) ==
            1) {
            done++;
            failed += s_success (result.status) ? 0 : 1;
        }
    }
    if (done == total && failed == 0)
        return 0;
    *error = cart_errorf ("filling the carts: %zu of %zu done, %zu failed", done, total,
                          failed);
    return -1;
}

//  --------------------------------------------------------------------------
//  The clients

static void *
s_driver_open (void *arg, size_t index, size_t window, const char **error)
{
    const cluster_t *cluster = (const cluster_t *)arg;
    cart_client_t *client = cart_client_new_curve (cart_broker_frontend (cluster->broker),
                                                   cluster->client_curve, error);
    if (!client)
        return NULL;
    if (s_wait_writable (client, bench_now_ns () + (int64_t)CONNECT_MS * 1000000)) {
        *error =
            cart_errorf ("client %zu: no connection within %d ms", index, CONNECT_MS);
        cart_client_destroy (&client);
        return NULL;
    }
    driver_t *self = (driver_t *)calloc (1, sizeof (driver_t));
    assert (self);
    self->client = client;
    self->cluster = cluster;
    self->rng = UINT64_C (0x9E3779B97F4A7C15) * (index + 1);
    self->sent_at = (int64_t *)calloc (window, sizeof (int64_t));
    self->free = (uint32_t *)calloc (window, sizeof (uint32_t));
    assert (self->sent_at && self->free);
    for (size_t i = 0; i < window; i++)
        self->free[self->n_free++] = (uint32_t)i;
    return self;
}

static int
s_driver_send (void *handle)
{
    driver_t *self = (driver_t *)handle;
    const cluster_t *cluster = self->cluster;
    assert (self->n_free > 0); //  bench_run keeps at most a window in flight
    size_t customer = bench_random (&self->rng) % cluster->config->customers;
    uint64_t roll = bench_random (&self->rng);
    cart_op_t op =
        (int)(roll % 100) < cluster->config->get_percent ? CART_OP_GET : CART_OP_ADD;
    cart_request_t req = s_request (cluster, customer, op, (roll >> 32) % BENCH_SKUS);
    uint32_t slot = self->free[--self->n_free];
    self->sent_at[slot] = bench_now_ns ();
    if (cart_client_send (self->client, &req, 0, (void *)(uintptr_t)slot, NULL, NULL)) {
        self->free[self->n_free++] = slot;
        return -1;
    }
    return 0;
}

static int
s_driver_recv (void *handle, int wait_ms, bench_done_t *done)
{
    driver_t *self = (driver_t *)handle;
    cart_result_t result;
    if (cart_client_recv (self->client, &result, wait_ms) != 1)
        return 0;
    uint32_t slot = (uint32_t)(uintptr_t)result.user;
    *done = (bench_done_t){.sent_ns = self->sent_at[slot],
                           .ok = s_success (result.status),
                           .timeout = result.status == CART_TIMEOUT};
    self->free[self->n_free++] = slot;
    return 1;
}

static void
s_driver_close (void **handle_p)
{
    driver_t *self = (driver_t *)*handle_p;
    cart_client_destroy (&self->client);
    free (self->sent_at);
    free (self->free);
    free (self);
    *handle_p = NULL;
}

static const bench_ops_t s_ops = {s_driver_open, s_driver_send, s_driver_recv,
                                  s_driver_close};

//  --------------------------------------------------------------------------

int
bench_cart_run (const bench_cart_config_t *config, const bench_load_t *load,
                bench_result_t *result, const char **error)
{
    cluster_t self = {.config = config};
    s_cluster_names (&self);
    int rc = s_cluster_start (&self, error);
    if (rc == 0) {
        cart_client_t *setup = cart_client_new_curve (cart_broker_frontend (self.broker),
                                                      self.client_curve, error);
        rc = setup && s_wait_serving (&self, setup, error) == 0 &&
                     s_prefill (&self, setup, error) == 0
                 ? 0
                 : -1;
        cart_client_destroy (&setup);
    }
    if (rc == 0)
        rc = bench_run_clients (&s_ops, &self, load, result, error);
    s_cluster_stop (&self);
    return rc;
}
