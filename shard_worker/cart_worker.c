/*  =========================================================================
    cart_worker - the shard worker actor.

    States and events, as the worker sees the broker:

        state        event                       action
        registering  any message from broker     -> serving
        serving      REQUEST                     run it on the shard's
                                                 partition, send REPLY
        serving      HEARTBEAT                   renew the broker's expiry
        any          DISCONNECT                  send READY again
        any          heartbeat timer             send HEARTBEAT (with load
                                                 once a second)
        any          broker silent for liveness  new socket, READY
                     x heartbeat                 -> registering

    A request that cannot be run (malformed body, a key that does not match
    its customerId, a shard this worker does not own) is answered 400 or
    503 with a message and changes nothing.

    The reply body is written into one msgpack buffer that is reused for
    every request; the client and corr frames of the request are moved into
    the reply without copying.
    =========================================================================
*/
#include "cart_worker.h"

#include <errno.h>

#include "cart_hash.h"
#include "cart_partition.h"
#include "cart_proto.h"

#define PARTS      CART_FRAMES_MAX
#define LOAD_MS    1000 //  how often a heartbeat carries the load
#define WORKER_HWM 10000

typedef struct {
    zsock_t *pipe;
    zsock_t *dealer;
    void *sock;
    char *endpoint;
    size_t n_shards;
    uint32_t *shards;              //  the shards owned, in config order
    cart_partition_t **partitions; //  one per entry of shards
    int32_t *slot_of;              //  shard number -> index in shards, or -1
    uint32_t slot_limit;           //  entries in slot_of
    int heartbeat_ms;
    int liveness;
    int64_t heartbeat_at;
    int64_t load_at;
    int64_t broker_expiry;
    bool verbose;
    bool terminated;
    bool ready_due; //  the broker asked us to register again
    zmq_msg_t parts[PARTS + 1];
    size_t n_parts;
    msgpack_sbuffer out;
    msgpack_packer pk;
    char text[512]; //  an error message being built
} self_t;

static const uint8_t s_cmd_ready = CART_W_READY;
static const uint8_t s_cmd_reply = CART_W_REPLY;
static const uint8_t s_cmd_heartbeat = CART_W_HEARTBEAT;

//  --------------------------------------------------------------------------
//  Set-up

static int
s_check_config (const cart_worker_config_t *config, char **error)
{
    if (!config->broker || !*config->broker)
        *error = zsys_sprintf ("no broker endpoint");
    else if (config->n_shards < 1 || config->n_shards > CART_SHARDS_MAX)
        *error = zsys_sprintf ("a worker serves 1 to %d shards", CART_SHARDS_MAX);
    else
        for (size_t i = 0; i < config->n_shards && !*error; i++)
            if (config->shards[i] >= CART_SHARDS_MAX)
                *error = zsys_sprintf ("shard %u is not 0 to %d", config->shards[i],
                                       CART_SHARDS_MAX - 1);
    return *error ? -1 : 0;
}

static void
s_self_destroy (self_t **self_p)
{
    self_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->dealer);
    for (size_t i = 0; i < self->n_shards; i++)
        cart_partition_destroy (&self->partitions[i]);
    free (self->partitions);
    free (self->shards);
    free (self->slot_of);
    zstr_free (&self->endpoint);
    msgpack_sbuffer_destroy (&self->out);
    free (self);
    *self_p = NULL;
}

//  Builds the shard table; a shard listed twice is an error.
static int
s_own_shards (self_t *self, const cart_worker_config_t *config, char **error)
{
    self->n_shards = config->n_shards;
    self->shards = (uint32_t *)malloc (config->n_shards * sizeof (uint32_t));
    self->partitions = (cart_partition_t **)calloc (config->n_shards, sizeof (void *));
    self->slot_limit = 0;
    for (size_t i = 0; i < config->n_shards; i++)
        if (config->shards[i] + 1 > self->slot_limit)
            self->slot_limit = config->shards[i] + 1;
    self->slot_of = (int32_t *)malloc (self->slot_limit * sizeof (int32_t));
    assert (self->shards && self->partitions && self->slot_of);
    memset (self->slot_of, 0xFF, self->slot_limit * sizeof (int32_t));
    for (size_t i = 0; i < config->n_shards; i++) {
        uint32_t shard = config->shards[i];
        if (self->slot_of[shard] >= 0) {
            *error = zsys_sprintf ("shard %u is listed twice", shard);
            return -1;
        }
        self->slot_of[shard] = (int32_t)i;
        self->shards[i] = shard;
        self->partitions[i] = cart_partition_new ();
    }
    return 0;
}

static self_t *
s_self_new (zsock_t *pipe, const cart_worker_config_t *config, char **error)
{
    if (s_check_config (config, error))
        return NULL;
    self_t *self = (self_t *)zmalloc (sizeof (self_t));
    assert (self);
    self->pipe = pipe;
    self->endpoint = strdup (config->broker);
    self->heartbeat_ms =
        config->heartbeat_ms > 0 ? config->heartbeat_ms : CART_HEARTBEAT_MS;
    self->liveness = config->liveness > 0 ? config->liveness : CART_LIVENESS;
    self->verbose = config->verbose;
    msgpack_sbuffer_init (&self->out);
    msgpack_packer_init (&self->pk, &self->out, msgpack_sbuffer_write);
    if (s_own_shards (self, config, error)) {
        s_self_destroy (&self);
        return NULL;
    }
    return self;
}

//  --------------------------------------------------------------------------
//  Talking to the broker

static int
s_send_const (self_t *self, const void *data, size_t size, int more)
{
    return zmq_send_const (self->sock, data, size,
                           ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0));
}

static void
s_send_ready (self_t *self)
{
    uint8_t *list = (uint8_t *)malloc (self->n_shards * 4);
    assert (list);
    for (size_t i = 0; i < self->n_shards; i++)
        cart_put_u32 (list + 4 * i, self->shards[i]);
    if (s_send_const (self, CART_PROTO_WORKER, CART_PROTO_LEN, 1) != -1) {
        s_send_const (self, &s_cmd_ready, 1, 1);
        zmq_send (self->sock, list, self->n_shards * 4, ZMQ_DONTWAIT);
    }
    free (list);
}

//  (Re)connects to the broker with a fresh socket and registers.
static int
s_connect (self_t *self, char **error)
{
    //  The new socket replaces the old one only once it is connected, so a
    //  failed reconnection leaves the worker on its old socket
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert (dealer);
    zsock_set_sndhwm (dealer, WORKER_HWM);
    zsock_set_rcvhwm (dealer, WORKER_HWM);
    zsock_set_maxmsgsize (dealer, CART_WIRE_MSG_MAX);
    zsock_set_linger (dealer, 0);
    zsock_set_reconnect_ivl (dealer, 100);
    zsock_set_reconnect_ivl_max (dealer, 1000);
    if (zsock_connect (dealer, "%s", self->endpoint)) {
        if (error)
            *error = zsys_sprintf ("cannot connect to '%s': %s", self->endpoint,
                                   zmq_strerror (zmq_errno ()));
        zsock_destroy (&dealer);
        return -1;
    }
    zsock_destroy (&self->dealer);
    self->dealer = dealer;
    self->sock = zsock_resolve (self->dealer);
    s_send_ready (self);
    self->broker_expiry = zclock_mono () + (int64_t)self->heartbeat_ms * self->liveness;
    return 0;
}

static void
s_send_heartbeat (self_t *self)
{
    int64_t now = zclock_mono ();
    bool with_load = now >= self->load_at;
    self->heartbeat_at = now + self->heartbeat_ms;
    if (s_send_const (self, CART_PROTO_WORKER, CART_PROTO_LEN, 1) == -1)
        return; //  no room or no broker: the next one
    s_send_const (self, &s_cmd_heartbeat, 1, with_load);
    if (with_load) {
        self->out.size = 0;
        cart_load_encode (&self->pk, self->n_shards);
        for (size_t i = 0; i < self->n_shards; i++) {
            cart_shard_stats_t entry = {
                .shard = self->shards[i],
                .carts = cart_partition_carts (self->partitions[i]),
                .items = cart_partition_items (self->partitions[i])};
            cart_load_encode_entry (&self->pk, &entry);
        }
        zmq_send (self->sock, self->out.data, self->out.size, ZMQ_DONTWAIT);
        self->load_at = now + LOAD_MS;
    }
}

//  --------------------------------------------------------------------------
//  Running requests

static void
s_error (self_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->text, sizeof (self->text), format, args);
    va_end (args);
    cart_reply_encode_error (&self->pk, self->text);
}

static void
s_encode_view (self_t *self, cart_view_t *view)
{
    cart_reply_encode_cart (&self->pk, view->customer, view->customer_len, view->n_items);
    cart_item_t item;
    while (cart_view_next (view, &item))
        cart_reply_encode_item (&self->pk, &item);
}

static int
s_run_get (self_t *self, cart_partition_t *part, const cart_request_t *req, uint64_t key)
{
    cart_view_t view;
    int rc = cart_partition_get (part, key, req->customer, req->customer_len, &view);
    if (rc == CART_NOT_FOUND)
        cart_reply_encode_cart (&self->pk, req->customer, req->customer_len, 0);
    else
        s_encode_view (self, &view);
    return CART_OK;
}

static int
s_run_checkout (self_t *self, cart_partition_t *part, const cart_request_t *req,
                uint64_t key)
{
    cart_view_t view;
    int rc = cart_partition_get (part, key, req->customer, req->customer_len, &view);
    if (rc == CART_NOT_FOUND) {
        s_error (self, "customer '%.*s' has no cart to check out", (int)req->customer_len,
                 req->customer);
        return rc;
    }
    s_encode_view (self, &view);
    cart_partition_drop (part, key, req->customer, req->customer_len);
    return CART_OK;
}

//  Tells which limit an ADD that conflicted would have passed.
static void
s_explain_conflict (self_t *self, cart_partition_t *part, const cart_request_t *req,
                    uint64_t key)
{
    cart_view_t view;
    cart_item_t item;
    cart_partition_get (part, key, req->customer, req->customer_len, &view);
    while (cart_view_next (&view, &item))
        if (item.id_len == req->item.id_len &&
            memcmp (item.id, req->item.id, item.id_len) == 0) {
            s_error (self, "item '%.*s' would have %u units; an item has at most %d",
                     (int)item.id_len, item.id, item.count + req->item.count,
                     CART_COUNT_MAX);
            return;
        }
    s_error (self, "the cart already holds %d items, the most it can", CART_ITEMS_MAX);
}

static int
s_run_add (self_t *self, cart_partition_t *part, const cart_request_t *req, uint64_t key)
{
    cart_item_t stored;
    int rc = cart_partition_add (part, key, req->customer, req->customer_len, &req->item,
                                 &stored);
    if (rc == CART_OK || rc == CART_CREATED)
        cart_reply_encode_item (&self->pk, &stored);
    else if (rc == CART_CONFLICT)
        s_explain_conflict (self, part, req, key);
    else
        s_error (self, "the item was refused by the shard");
    return rc;
}

static void
s_item_not_found (self_t *self, const cart_request_t *req)
{
    s_error (self, "item '%.*s' is not in customer '%.*s''s cart", (int)req->item.id_len,
             req->item.id, (int)req->customer_len, req->customer);
}

static int
s_run_set (self_t *self, cart_partition_t *part, const cart_request_t *req, uint64_t key)
{
    cart_item_t stored;
    int rc = cart_partition_set_count (part, key, req->customer, req->customer_len,
                                       req->item.id, req->item.id_len, req->item.count,
                                       &stored);
    if (rc == CART_OK)
        cart_reply_encode_item (&self->pk, &stored);
    else if (rc == CART_NOT_FOUND)
        s_item_not_found (self, req);
    else if (rc != CART_DELETED)
        s_error (self, "the new count was refused by the shard");
    return rc;
}

static int
s_run_remove (self_t *self, cart_partition_t *part, const cart_request_t *req,
              uint64_t key)
{
    int rc = cart_partition_remove (part, key, req->customer, req->customer_len,
                                    req->item.id, req->item.id_len);
    if (rc == CART_NOT_FOUND)
        s_item_not_found (self, req);
    else if (rc != CART_DELETED)
        s_error (self, "the removal was refused by the shard");
    return rc;
}

//  Runs a request on its shard and writes the reply body into self->out.
//  Returns the reply's status.
static int
s_run (self_t *self, const cart_msg_t *msg)
{
    int32_t slot = msg->shard < self->slot_limit ? self->slot_of[msg->shard] : -1;
    if (slot < 0) {
        s_error (self, "shard %u is not served by this worker", msg->shard);
        return CART_UNAVAILABLE;
    }
    cart_request_t req;
    const char *error;
    if (cart_request_decode (msg->body.data, msg->body.size, &req, &error)) {
        s_error (self, "%s", error);
        return CART_BAD_REQUEST;
    }
    if (cart_hash_key (req.customer, req.customer_len) != msg->key) {
        s_error (self, "the routing key is not hash_key of the customerId");
        return CART_BAD_REQUEST;
    }
    cart_partition_t *part = self->partitions[slot];
    switch (req.op) {
        case CART_OP_GET:
            return s_run_get (self, part, &req, msg->key);
        case CART_OP_ADD:
            return s_run_add (self, part, &req, msg->key);
        case CART_OP_SET:
            return s_run_set (self, part, &req, msg->key);
        case CART_OP_REMOVE:
            return s_run_remove (self, part, &req, msg->key);
        default:
            return s_run_checkout (self, part, &req, msg->key);
    }
}

//  Answers a REQUEST (parts: protocol, command, shard, client, corr, key,
//  body) with [protocol][REPLY][client][corr][status][body].
static void
s_handle_request (self_t *self, const cart_msg_t *msg)
{
    self->out.size = 0;
    int status = s_run (self, msg);
    uint8_t status_wire[2] = {(uint8_t)(status >> 8), (uint8_t)status};
    if (s_send_const (self, CART_PROTO_WORKER, CART_PROTO_LEN, 1) == -1)
        return; //  the queue to the broker is full: dropped
    s_send_const (self, &s_cmd_reply, 1, 1);
    zmq_msg_send (&self->parts[3], self->sock, ZMQ_DONTWAIT | ZMQ_SNDMORE);
    zmq_msg_send (&self->parts[4], self->sock, ZMQ_DONTWAIT | ZMQ_SNDMORE);
    zmq_send (self->sock, status_wire, 2, ZMQ_DONTWAIT | ZMQ_SNDMORE);
    zmq_send (self->sock, self->out.data, self->out.size, ZMQ_DONTWAIT);
}

//  --------------------------------------------------------------------------
//  The loop

static bool
s_recv (self_t *self, int flags)
{
    self->n_parts = cart_msg_recv (self->sock, self->parts, PARTS, flags);
    return self->n_parts > 0;
}

static void
s_handle_broker (self_t *self)
{
    cart_frame_t frames[PARTS];
    size_t n = self->n_parts;
    for (size_t i = 0; i < n && i < PARTS; i++)
        frames[i] = (cart_frame_t){zmq_msg_data (&self->parts[i]),
                                   zmq_msg_size (&self->parts[i])};
    cart_msg_t msg;
    const char *error;
    if (cart_msg_parse_worker (frames, n, CART_SHARDS_MAX, &msg, &error)) {
        if (self->verbose)
            zsys_warning ("worker: dropped a malformed message: %s", error);
        return;
    }
    self->broker_expiry = zclock_mono () + (int64_t)self->heartbeat_ms * self->liveness;
    if (msg.command == CART_W_REQUEST)
        s_handle_request (self, &msg);
    else if (msg.command == CART_W_DISCONNECT)
        self->ready_due = true; //  at the next heartbeat: never a READY storm
}

static void
s_drain (self_t *self, int wait_ms)
{
    //  A blocking receive with a timeout waits at the cost of one system
    //  call, where zmq_poll costs several (it checks the socket's mailbox
    //  before and after); then what else is queued is read without waiting
    zmq_setsockopt (self->sock, ZMQ_RCVTIMEO, &wait_ms, sizeof (wait_ms));
    for (int i = 0; i < 256 && s_recv (self, i ? ZMQ_DONTWAIT : 0); i++) {
        s_handle_broker (self);
        cart_msg_close (self->parts, PARTS, self->n_parts);
    }
}

static void
s_handle_pipe (self_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    zstr_free (&command);
}

static void
s_timers (self_t *self)
{
    int64_t now = zclock_mono ();
    if (now >= self->broker_expiry) {
        if (self->verbose)
            zsys_info ("worker: broker silent; reconnecting to %s", self->endpoint);
        s_connect (self, NULL);
    }
    if (now >= self->heartbeat_at) {
        if (self->ready_due)
            s_send_ready (self);
        self->ready_due = false;
        s_send_heartbeat (self);
    }
}

static void
s_loop (self_t *self)
{
    while (!self->terminated) {
        //  The pipe is looked at once per heartbeat (see cart_broker.c)
        int64_t wait = self->heartbeat_at - zclock_mono ();
        s_drain (self, wait > 0 ? (int)wait : 0);
        if (zclock_mono () >= self->heartbeat_at &&
            (zsock_events (self->pipe) & ZMQ_POLLIN))
            s_handle_pipe (self);
        s_timers (self);
    }
}

void
cart_worker_actor (zsock_t *pipe, void *args)
{
    char *error = NULL;
    self_t *self = s_self_new (pipe, (const cart_worker_config_t *)args, &error);
    if (self && s_connect (self, &error))
        s_self_destroy (&self);
    zsock_signal (pipe, 0);
    zstr_send (pipe, self ? "OK" : error);
    zstr_free (&error);
    if (self) {
        s_loop (self);
        s_self_destroy (&self);
        cart_hash_thread_end ();
        return;
    }
    char *command;
    while ((command = zstr_recv (pipe)) && !streq (command, "$TERM"))
        zstr_free (&command);
    zstr_free (&command);
}

//  --------------------------------------------------------------------------
//  The handle that callers hold

struct _cart_worker_t {
    zactor_t *actor;
};

cart_worker_t *
cart_worker_new (const cart_worker_config_t *config, char **error)
{
    cart_worker_t *self = (cart_worker_t *)zmalloc (sizeof (cart_worker_t));
    assert (self);
    self->actor = zactor_new (cart_worker_actor, (void *)config);
    assert (self->actor);
    char *status = zstr_recv (self->actor);
    if (status && streq (status, "OK")) {
        zstr_free (&status);
        return self;
    }
    if (error)
        *error = status ? status : strdup ("worker thread interrupted");
    else
        zstr_free (&status);
    cart_worker_destroy (&self);
    return NULL;
}

void
cart_worker_destroy (cart_worker_t **self_p)
{
    cart_worker_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Sets of workers

struct _cart_workers_t {
    size_t count;
    cart_worker_t **workers;
};

void
cart_workers_destroy (cart_workers_t **self_p)
{
    cart_workers_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        cart_worker_destroy (&self->workers[i]);
    free (self->workers);
    free (self);
    *self_p = NULL;
}

cart_workers_t *
cart_workers_new (const cart_worker_config_t *config, size_t threads, char **error)
{
    if (config->n_shards == 0 || threads == 0 || threads > CART_THREADS_MAX) {
        if (error)
            *error = zsys_sprintf ("a set of workers runs 1 to %d threads on 1 or more "
                                   "shards",
                                   CART_THREADS_MAX);
        return NULL;
    }
    //  A shard owned by two threads would have two partitions: refuse
    uint8_t *seen = (uint8_t *)calloc (CART_SHARDS_MAX, 1);
    assert (seen);
    for (size_t i = 0; i < config->n_shards; i++) {
        uint32_t shard = config->shards[i];
        if (shard < CART_SHARDS_MAX && seen[shard]++) {
            if (error)
                *error = zsys_sprintf ("shard %u is listed twice", shard);
            free (seen);
            return NULL;
        }
    }
    free (seen);
    cart_workers_t *self = (cart_workers_t *)zmalloc (sizeof (cart_workers_t));
    size_t count = threads < config->n_shards ? threads : config->n_shards;
    self->workers = (cart_worker_t **)calloc (count, sizeof (cart_worker_t *));
    uint32_t *mine = (uint32_t *)malloc (config->n_shards * sizeof (uint32_t));
    assert (self && self->workers && mine);
    for (size_t t = 0; t < count; t++) {
        cart_worker_config_t own = *config;
        own.shards = mine;
        own.n_shards = 0;
        for (size_t i = t; i < config->n_shards; i += count)
            mine[own.n_shards++] = config->shards[i];
        self->workers[t] = cart_worker_new (&own, error);
        if (!self->workers[t])
            break;
        self->count++;
    }
    free (mine);
    if (self->count < count)
        cart_workers_destroy (&self);
    return self;
}
