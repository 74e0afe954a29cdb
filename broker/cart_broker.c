/*  =========================================================================
    cart_broker - the CART/2 broker actor.

    The data path. A client request arrives on the frontend as [client]
    [header][body]. The broker reads the header only, picks shard = ring
    (key, S), takes a slot in its table of requests in flight, and sends
    [worker][header][body] on the backend with the header's corr replaced
    by the slot's own id: the worker never sees who the client is. The
    body is the very zmq_msg_t received, moved; the header is 32 bytes,
    which libzmq keeps inside the message without allocating. A reply is
    taken only from the worker its request went to, while the request is
    in flight; the slot gives back the client and its corr.

    Worker states, as the broker sees them:

        state      event                      action
        (none)     READY, shards free         take the shards -> live
        (none)     READY, a shard is served   REFUSE 409: one worker a shard
        (none)     READY, wrong shard count,  REFUSE 400 naming both values
                   heartbeat or shard number
        (none)     READY, a shard its CURVE   REFUSE 403 naming the key's shards
                   key does not grant
        any        a message on its identity  drop it (an identity taken over
                   from another CURVE key     by another member of the bus)
        (none)     HEARTBEAT                  send DISCONNECT (it registers)
        live       HEARTBEAT (with load)      renew expiry, record load
        live       REPLY to its own request   route to the client -> live
        live       its request expires        -> stalled (shown not live)
        stalled    REPLY to its own request   route it -> live
        live       expiry passes, send fails  release its shards -> (none)
                   EHOSTUNREACH, DISCONNECT

    Bounds. Every socket has high-water marks and the broker never blocks
    on a send (ZMQ_DONTWAIT). Per client it admits at most
    CLIENT_INFLIGHT_MAX requests in flight, and while a client has more
    than CLIENT_UNREAD_MAX bytes of replies it has not taken (the header's
    acked tells), its requests are refused and its replies are replaced by
    a short 503: a client that does not read costs the broker a bounded
    amount of memory. ZMQ_MAXMSGSIZE caps a frame from the network.
    =========================================================================
*/
#include "cart_broker.h"

#include <errno.h>
#include <openssl/rand.h>

#include "cart_actor.h"
#include "cart_args.h"
#include "cart_body.h"
#include "cart_control.h"
#include "cart_hash.h"
#include "cart_idmap.h"
#include "cart_msg.h"
#include "cart_ring.h"
#include "cart_slots.h"

#define CART_HWM            10000 //  messages queued per peer and direction
#define HANDSHAKE_MS        5000  //  a connection's handshake, at most
#define BATCH               256   //  messages read from one socket in a row
#define CLIENTS_MAX         16384 //  clients tracked at once
#define CLIENT_IDLE_MS      60000 //  a quiet client is forgotten after this
#define CLIENT_INFLIGHT_MAX 16384 //  requests in flight per client
#define CLIENT_UNREAD_MAX   CART_BROKER_UNREAD_MAX
#define FRONT_SNDHWM        2000           //  replies queued per client connection
#define STALL_FLOOR_MS      1000           //  no request expires sooner, at the broker
#define SUPERSEDED_MAX      8              //  replaced workers remembered per shard
#define ROUTES_MAX          CART_SLOTS_MAX //  requests in flight in all
#define NONE                CART_IDMAP_NONE

typedef struct {
    cart_id_t id;     //  first, for cart_idmap; id.len 0: record free
    int64_t expiry;   //  zclock_mono () at which it is dead
    uint64_t replies; //  requests it has answered
    uint32_t generation;
    bool stalled;                       //  a request to it expired since its last reply
    char user[CART_CURVE_NAME_MAX + 1]; //  its CURVE key's name; "" without
} worker_t;

typedef struct {
    cart_id_t id; //  first, for cart_idmap
    int64_t last_seen;
    uint32_t in_flight;
    uint32_t sent;  //  reply body bytes sent, modulo 2^32
    uint32_t acked; //  reply body bytes it says it has taken
} client_t;

typedef struct {
    uint32_t client;
    uint32_t worker;
    uint32_t generation; //  the worker's, when the request was sent
    uint64_t replies;    //  the worker's count of answers then
    uint64_t client_corr;
} route_t;

typedef struct {
    int32_t owner;      //  index into workers, or -1
    uint64_t served_by; //  cart_id_hash of the identity that served it last
    uint64_t superseded[SUPERSEDED_MAX]; //  ... of those another worker replaced
    uint32_t superseded_next;
    uint64_t requests; //  routed to it, or answered UNAVAILABLE
    uint64_t carts;    //  from the owner's last load report
    uint64_t items;
    uint64_t expired;
    int64_t load_at; //  when that report came (zclock_mono); -1: none yet
} shard_t;

//  Warnings that a stranger could cause at any rate are rate-limited
typedef enum {
    WARN_MALFORMED,
    WARN_REFUSED_CONFIG, //  a READY that does not fit the cluster
    WARN_REFUSED_SERVED, //  a READY for a shard that has a worker
    WARN_REFUSED_GRANT,  //  a READY for a shard its key does not grant
    WARN_FORGED,
    WARN_FULL,
    WARN_REMOVED,
    WARN_STALLED,
    WARNS
} warn_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *frontend;
    zsock_t *backend;
    void *front; //  libzmq handles of the sockets above
    void *back;
    cart_zap_t *zap;  //  with CURVE: who may connect to each socket
    cart_peer_t peer; //  ... and who sent the message being handled
    uint32_t n_shards;
    shard_t *shards;
    uint32_t *seen;    //  READY check: the epoch a shard was last listed in
    uint32_t *granted; //  ... and the shards its key grants (CART_SHARDS_MAX)
    uint32_t epoch;
    worker_t *workers; //  n_shards records: a live worker owns a shard
    cart_idmap_t *worker_map;
    client_t *clients;
    cart_idmap_t *client_map;
    uint32_t clients_used; //  records ever taken: scans stop there
    cart_slots_t *slots;
    route_t *routes; //  by slot
    int heartbeat_ms;
    int liveness;
    int64_t heartbeat_at;
    int64_t pipe_at;
    int64_t sweep_at;
    bool verbose;
    bool terminated;
    cart_msg_t msg; //  the message being handled
    uint64_t malformed;
    cart_warn_t warns[WARNS];
    zmq_msg_t stats;     //  the last stats body built
    int64_t stats_until; //  when it must be built again
} self_t;

//  --------------------------------------------------------------------------
//  Logging

static const char *const s_warn_names[WARNS] = {"malformed messages",
                                                "refused READYs: settings",
                                                "refused READYs: served shards",
                                                "refused READYs: shards not granted",
                                                "dropped replies",
                                                "clients refused",
                                                "workers removed",
                                                "stalled workers"};

//  Logs a warning of a kind at most once per CART_WARN_MS (cart_actor.h).
#define s_warn(self, kind, ...) cart_warn (&(self)->warns[kind], "broker: " __VA_ARGS__)

static void
s_warn_flush (self_t *self)
{
    for (int kind = 0; kind < WARNS; kind++) {
        char what[80];
        snprintf (what, sizeof (what), "broker: %s", s_warn_names[kind]);
        cart_warn_flush (&self->warns[kind], what);
    }
}

//  --------------------------------------------------------------------------
//  Set-up

static zsock_t *
s_router (const char *endpoints, int max_message, int sndhwm, const cart_curve_t *curve,
          const char *domain, const char **error)
{
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    assert (sock);
    if (curve && cart_curve_server (sock, curve, domain, error)) {
        zsock_destroy (&sock);
        return NULL;
    }
    zsock_set_router_mandatory (sock, 1);
    zsock_set_sndhwm (sock, sndhwm);
    zsock_set_rcvhwm (sock, CART_HWM);
    zsock_set_maxmsgsize (sock, max_message);
    zsock_set_linger (sock, 0);
    //  A connection that does not finish its handshake soon is dropped (the
    //  default is 30 s): idle strangers cannot hold descriptors for long
    zsock_set_handshake_ivl (sock, HANDSHAKE_MS);
    //  With two I/O threads or more, one for each socket: a flood of
    //  handshakes on the frontend (CURVE's crypto) cannot delay the
    //  workers' heartbeats on the backend
    if (zmq_ctx_get (zsys_init (), ZMQ_IO_THREADS) >= 2)
        zsock_set_affinity (sock, strcmp (domain, CART_CURVE_WORKERS) == 0 ? 1 : 2);
    //  A fleet of peers (re)connecting at once: the default listen queue of
    //  100 leaves the rest to the kernel's retries, seconds later
    zsock_set_backlog (sock, 4096);
    if (!endpoints || zsock_attach (sock, endpoints, true)) {
        *error = cart_errorf ("cannot bind '%s': %s", endpoints ? endpoints : "(none)",
                              zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

static void
s_self_destroy (self_t **self_p)
{
    self_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->frontend);
    zsock_destroy (&self->backend);
    cart_zap_destroy (&self->zap);
    zmq_msg_close (&self->stats);
    cart_msg_close (&self->msg);
    cart_idmap_destroy (&self->worker_map);
    cart_idmap_destroy (&self->client_map);
    cart_slots_destroy (&self->slots);
    free (self->routes);
    free (self->clients);
    free (self->workers);
    free (self->seen);
    free (self->granted);
    free (self->shards);
    free (self);
    *self_p = NULL;
}

static uint64_t
s_random (void)
{
    uint64_t value = 0;
    if (RAND_bytes ((unsigned char *)&value, sizeof (value)) != 1)
        value = (uint64_t)zclock_usecs ();
    return value;
}

static self_t *
s_self_new (zsock_t *pipe, const cart_broker_config_t *config, const char **error)
{
    if (config->shards < 1 || config->shards > CART_SHARDS_MAX) {
        *error = cart_errorf ("shard count %u is not 1 to %d", config->shards,
                              CART_SHARDS_MAX);
        return NULL;
    }
    self_t *self = (self_t *)zmalloc (sizeof (self_t));
    assert (self);
    zmq_msg_init (&self->stats);
    cart_msg_init (&self->msg);
    self->pipe = pipe;
    self->n_shards = config->shards;
    self->heartbeat_ms =
        config->heartbeat_ms > 0 ? config->heartbeat_ms : CART_HEARTBEAT_MS;
    self->liveness = config->liveness > 0 ? config->liveness : CART_LIVENESS;
    self->verbose = config->verbose;
    self->shards = (shard_t *)calloc (self->n_shards, sizeof (shard_t));
    self->seen = (uint32_t *)calloc (self->n_shards, sizeof (uint32_t));
    self->granted = (uint32_t *)calloc (CART_SHARDS_MAX, sizeof (uint32_t));
    self->workers = (worker_t *)calloc (self->n_shards, sizeof (worker_t));
    self->clients = (client_t *)calloc (CLIENTS_MAX, sizeof (client_t));
    self->routes = (route_t *)calloc (ROUTES_MAX, sizeof (route_t));
    assert (self->shards && self->seen && self->granted && self->workers &&
            self->clients && self->routes);
    for (uint32_t i = 0; i < self->n_shards; i++)
        self->shards[i] = (shard_t){.owner = -1, .load_at = -1};
    self->worker_map = cart_idmap_new (self->workers, sizeof (worker_t), self->n_shards);
    self->client_map = cart_idmap_new (self->clients, sizeof (client_t), CLIENTS_MAX);
    //  Random sequences: a worker cannot guess another's correlation ids
    self->slots = cart_slots_new (ROUTES_MAX, s_random ());
    //  The handler runs before either socket binds: no handshake comes
    //  before it can be answered
    const cart_curve_t *curve = config->curve;
    if (curve && (!config->worker_keys || !config->client_keys)) {
        *error = "CURVE needs both key directories (--worker-keys and --client-keys)";
        s_self_destroy (&self);
        return NULL;
    }
    if (curve)
        self->zap = cart_zap_new (config->worker_keys, config->client_keys,
                                  config->verbose, error);
    //  Clients send requests of a few hundred bytes; workers send carts
    if (!curve || self->zap)
        self->frontend = s_router (config->frontend, CART_REQUEST_WIRE_MAX, FRONT_SNDHWM,
                                   curve, CART_CURVE_CLIENTS, error);
    if (self->frontend)
        self->backend = s_router (config->backend, CART_BODY_WIRE_MAX, CART_HWM, curve,
                                  CART_CURVE_WORKERS, error);
    //  A worker keeps its identity across reconnections (cart_worker.c),
    //  and so may a client that sets its own: a new connection takes the
    //  identity over from the old one
    if (self->backend) {
        zsock_set_router_handover (self->backend, 1);
        zsock_set_router_handover (self->frontend, 1);
    }
    if (!self->backend) {
        s_self_destroy (&self);
        return NULL;
    }
    self->front = zsock_resolve (self->frontend);
    self->back = zsock_resolve (self->backend);
    self->heartbeat_at = zclock_mono () + self->heartbeat_ms;
    return self;
}

//  --------------------------------------------------------------------------
//  Clients

static uint32_t
s_unread (const client_t *client)
{
    return client->sent - client->acked; //  modulo 2^32, as both count
}

//  Every change to a client's sent or acked count goes through here.
static void
s_client_count (self_t *self, client_t *client, uint32_t sent, uint32_t acked)
{
    client->sent = sent;
    client->acked = acked;
}

static void
s_client_sent (self_t *self, client_t *client, size_t size)
{
    s_client_count (self, client, client->sent + (uint32_t)size, client->acked);
}

//  True when a reply of `size` bytes more would pass the bound on what the
//  client has not read.
static bool
s_over_unread (self_t *self, const client_t *client, size_t size)
{
    return s_unread (client) + size > CLIENT_UNREAD_MAX;
}

static void
s_client_forget (self_t *self, uint32_t index)
{
    client_t *client = &self->clients[index];
    s_client_count (self, client, 0, 0);
    cart_idmap_remove (self->client_map, index);
    client->id.len = 0;
}

//  When the table is full: forgets the client seen longest ago among those
//  with nothing in flight, preferring one that has read all its replies.
//  Returns its record, or NONE when every client has requests in flight.
static uint32_t
s_client_evict (self_t *self)
{
    uint32_t oldest = NONE;
    for (uint32_t i = 0; i < CLIENTS_MAX; i++) {
        const client_t *client = &self->clients[i];
        if (client->in_flight)
            continue;
        if (oldest == NONE ||
            (s_unread (client) == 0) > (s_unread (&self->clients[oldest]) == 0) ||
            ((s_unread (client) == 0) == (s_unread (&self->clients[oldest]) == 0) &&
             client->last_seen < self->clients[oldest].last_seen))
            oldest = i;
    }
    if (oldest != NONE)
        s_client_forget (self, oldest);
    return oldest;
}

//  A free record for a new client, or NONE.
static uint32_t
s_client_slot (self_t *self)
{
    if (self->clients_used < CLIENTS_MAX)
        return self->clients_used++;
    for (uint32_t i = 0; i < CLIENTS_MAX; i++)
        if (self->clients[i].id.len == 0)
            return i;
    return s_client_evict (self);
}

//  The record of the current message's sender, made if new; NONE when the
//  table is full of clients with requests in flight.
static uint32_t
s_client (self_t *self)
{
    zmq_msg_t *identity = &self->msg.identity;
    uint32_t acked = self->msg.header.acked;
    uint32_t index = cart_idmap_find (self->client_map, zmq_msg_data (identity),
                                      zmq_msg_size (identity));
    if (index == NONE) {
        index = s_client_slot (self);
        if (index == NONE)
            return NONE;
        client_t *client = &self->clients[index];
        *client = (client_t){0};
        cart_id_set (&client->id, zmq_msg_data (identity), zmq_msg_size (identity));
        cart_idmap_insert (self->client_map, index);
        //  A client that knew an earlier broker (a restart) has taken bytes
        //  that this one never sent: count from where it is
        s_client_count (self, client, acked, acked);
    }
    client_t *client = &self->clients[index];
    client->last_seen = zclock_mono ();
    if ((int32_t)(acked - client->acked) < 0)
        //  Its count went back: a new session under the same identity (a
        //  client that sets its own routing id, restarted). Count afresh.
        s_client_count (self, client, acked, acked);
    else if ((int32_t)(client->sent - acked) < 0)
        //  It claims more than was sent: it has read everything, at most
        s_client_count (self, client, client->sent, client->sent);
    else
        s_client_count (self, client, client->sent, acked);
    return index;
}

//  Forgets clients that have been quiet for CLIENT_IDLE_MS with nothing in
//  flight. One that still owes reads is forgotten only once it is gone: a
//  header-only probe (a REPLY with corr 0, which no request has) fails with
//  EHOSTUNREACH when its connection is closed, and its queue with it.
static void
s_sweep_clients (self_t *self)
{
    int64_t now = zclock_mono ();
    cart_header_t probe = {.command = CART_CMD_REPLY, .status = CART_OK};
    for (uint32_t i = 0; i < self->clients_used; i++) {
        client_t *client = &self->clients[i];
        if (client->id.len == 0 || client->in_flight ||
            now - client->last_seen <= CLIENT_IDLE_MS)
            continue;
        cart_frame_t identity = cart_frame_bytes (client->id.bytes, client->id.len);
        if (s_unread (client) == 0 ||
            (cart_msg_send (self->front, &identity, &probe, NULL) == -1 &&
             errno == EHOSTUNREACH))
            s_client_forget (self, i);
    }
    self->sweep_at = now + 1000;
}

//  Sends the broker's own answer to the current client message, counting
//  its body against the client's unread bytes.
static void
s_answer (self_t *self, uint32_t client, uint16_t status, const void *body, size_t size)
{
    cart_header_t header = {
        .command = CART_CMD_REPLY, .status = status, .corr = self->msg.header.corr};
    cart_frame_t identity = cart_frame_bytes (zmq_msg_data (&self->msg.identity),
                                              zmq_msg_size (&self->msg.identity));
    cart_frame_t frame = cart_frame_bytes (body, size);
    if (cart_msg_send (self->front, &identity, &header, &frame) == 0 && client != NONE)
        s_client_sent (self, &self->clients[client], size);
}

static void
s_answer_error (self_t *self, uint32_t client, uint16_t status, const char *format, ...)
{
    char text[256];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof (text), format, args);
    va_end (args);
    uint8_t body[260];
    s_answer (self, client, status, body,
              cart_reply_error_body (body, sizeof (body), text));
}

//  Answers the current request 503 when its client has too much unread;
//  returns true then.
static bool
s_refuse_unread (self_t *self, uint32_t client)
{
    const client_t *record = &self->clients[client];
    if (!s_over_unread (self, record, 0))
        return false;
    s_answer_error (self, client, CART_UNAVAILABLE,
                    "this client has not read %u bytes of replies; read them first",
                    s_unread (record));
    return true;
}

//  --------------------------------------------------------------------------
//  Workers

static int32_t
s_worker_index (self_t *self, const worker_t *worker)
{
    return (int32_t)(worker - self->workers);
}

//  The registered worker that sent the current backend message, or NULL.
static worker_t *
s_sender (self_t *self)
{
    zmq_msg_t *identity = &self->msg.identity;
    uint32_t index = cart_idmap_find (self->worker_map, zmq_msg_data (identity),
                                      zmq_msg_size (identity));
    return index == NONE ? NULL : &self->workers[index];
}

//  Sends a command (HEARTBEAT, DISCONNECT, REFUSE) to a backend identity.
static int
s_send_worker (self_t *self, const void *id, size_t id_len, uint8_t command,
               uint16_t status, const char *text)
{
    cart_header_t header = {.command = command, .status = status};
    cart_frame_t identity = cart_frame_bytes (id, id_len);
    uint8_t buffer[260];
    cart_frame_t body = cart_frame_bytes (
        buffer, text ? cart_reply_error_body (buffer, sizeof (buffer), text) : 0);
    return cart_msg_send (self->back, &identity, &header, text ? &body : NULL);
}

//  Frees a worker's record and the shards it served.
static void
s_worker_remove (self_t *self, worker_t *worker, const char *why)
{
    int32_t index = s_worker_index (self, worker);
    size_t released = 0;
    for (uint32_t i = 0; i < self->n_shards; i++)
        if (self->shards[i].owner == index) {
            self->shards[i].owner = -1;
            released++;
        }
    s_warn (self, WARN_REMOVED, "worker %d removed (%s); %zu shard(s) unserved", index,
            why, released);
    cart_idmap_remove (self->worker_map, (uint32_t)index);
    worker->id.len = 0;
    worker->stalled = false;
    worker->generation++;
    self->stats_until = 0;
}

//  Refuses the current READY: the worker is told why, and the log says so.
static void
s_refuse (self_t *self, uint16_t status, const char *format, ...)
{
    char text[256];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof (text), format, args);
    va_end (args);
    warn_t kind = status == CART_CONFLICT    ? WARN_REFUSED_SERVED
                  : status == CART_FORBIDDEN ? WARN_REFUSED_GRANT
                                             : WARN_REFUSED_CONFIG;
    s_warn (self, kind, "refused a worker's READY: %s", text);
    s_send_worker (self, zmq_msg_data (&self->msg.identity),
                   zmq_msg_size (&self->msg.identity), CART_CMD_REFUSE, status, text);
}

//  True when an identity once served the shard and was replaced.
static bool
s_superseded (const shard_t *shard, uint64_t id_hash)
{
    for (int i = 0; i < SUPERSEDED_MAX; i++)
        if (shard->superseded[i] == id_hash)
            return true;
    return false;
}

//  Checks a READY against the cluster: returns 0, or -1 after refusing it.
//  A shard already served by another live worker is refused: a shard has
//  one worker at a time, and a worker that was replaced (it paused past
//  its liveness) must not take back what its replacement has written.
//  Checks the shards of a READY against those its CURVE key grants (the
//  list in its key file; none: every shard). Returns 0, or -1 after
//  refusing it.
static int
s_check_grant (self_t *self, cart_ready_t *ready)
{
    if (!self->zap || !self->peer.shards[0])
        return 0;
    size_t n_granted = 0;
    if (cart_args_shards (self->peer.shards, self->granted, CART_SHARDS_MAX,
                          &n_granted)) {
        s_refuse (self, CART_FORBIDDEN,
                  "the key '%s' grants no shard list the broker "
                  "can read",
                  self->peer.user);
        return -1;
    }
    self->epoch++;
    for (size_t i = 0; i < n_granted; i++)
        if (self->granted[i] < self->n_shards)
            self->seen[self->granted[i]] = self->epoch;
    cart_ready_t list = *ready;
    for (size_t i = 0; i < list.n_shards; i++) {
        uint32_t shard = cart_ready_next (&list);
        if (shard < self->n_shards && self->seen[shard] != self->epoch) {
            s_refuse (self, CART_FORBIDDEN,
                      "the key '%s' may serve shards %s only, not shard %u",
                      self->peer.user, self->peer.shards, shard);
            return -1;
        }
    }
    return 0;
}

static int
s_check_ready (self_t *self, cart_ready_t *ready, int32_t index, uint64_t id_hash)
{
    if (ready->shards != self->n_shards) {
        s_refuse (self, CART_BAD_REQUEST,
                  "the broker's cluster has %u shards; the worker was started for %u "
                  "(--shards)",
                  self->n_shards, ready->shards);
        return -1;
    }
    if (ready->heartbeat_ms != (uint32_t)self->heartbeat_ms) {
        s_refuse (self, CART_BAD_REQUEST,
                  "the broker's heartbeat is %d ms; the worker's is %u ms (--heartbeat)",
                  self->heartbeat_ms, ready->heartbeat_ms);
        return -1;
    }
    cart_ready_t list = *ready;
    self->epoch++;
    for (size_t i = 0; i < list.n_shards; i++) {
        uint32_t shard = cart_ready_next (&list);
        if (shard >= self->n_shards) {
            s_refuse (self, CART_BAD_REQUEST,
                      "shard %u is outside the broker's %u shards (0 to %u)", shard,
                      self->n_shards, self->n_shards - 1);
            return -1;
        }
        if (self->seen[shard] == self->epoch) {
            s_refuse (self, CART_BAD_REQUEST, "shard %u is listed twice", shard);
            return -1;
        }
        self->seen[shard] = self->epoch;
        if (s_superseded (&self->shards[shard], id_hash)) {
            s_refuse (self, CART_CONFLICT,
                      "this worker served shard %u until it stopped answering, and "
                      "another worker has served it since; restart it",
                      shard);
            return -1;
        }
        int32_t owner = self->shards[shard].owner;
        if (owner >= 0 && owner != index) {
            s_refuse (self, CART_CONFLICT,
                      "shard %u is served by another live worker (%d); a shard has one "
                      "worker at a time",
                      shard, owner);
            return -1;
        }
    }
    return 0;
}

static int32_t
s_free_worker (self_t *self)
{
    for (uint32_t i = 0; i < self->n_shards; i++)
        if (self->workers[i].id.len == 0)
            return (int32_t)i;
    return -1;
}

static void
s_handle_ready (self_t *self, worker_t *worker)
{
    cart_ready_t ready;
    const char *error;
    if (cart_ready_decode (cart_msg_body (&self->msg), cart_msg_body_size (&self->msg),
                           &ready, &error)) {
        s_refuse (self, CART_BAD_REQUEST, "%s", error);
        return;
    }
    int32_t index = worker ? s_worker_index (self, worker) : -1;
    uint64_t id_hash = cart_id_hash (zmq_msg_data (&self->msg.identity),
                                     zmq_msg_size (&self->msg.identity));
    //  The key's grant first: a worker that may not serve a shard learns
    //  nothing of who serves it
    if (s_check_grant (self, &ready) || s_check_ready (self, &ready, index, id_hash))
        return;
    bool is_new = !worker;
    if (!worker) {
        //  Each live worker owns a shard, so a record is always free here
        index = s_free_worker (self);
        assert (index >= 0);
        worker = &self->workers[index];
        cart_id_set (&worker->id, zmq_msg_data (&self->msg.identity),
                     zmq_msg_size (&self->msg.identity));
        cart_idmap_insert (self->worker_map, (uint32_t)index);
        worker->stalled = false;
        memcpy (worker->user, self->peer.user, sizeof (worker->user));
    }
    for (uint32_t i = 0; i < self->n_shards; i++)
        if (self->shards[i].owner == index)
            self->shards[i].owner = -1;
    for (size_t i = 0; i < ready.n_shards; i++) {
        //  A shard that passes to another identity remembers the one it
        //  leaves: that worker was replaced, and must not serve it again
        shard_t *shard = &self->shards[cart_ready_next (&ready)];
        if (shard->served_by && shard->served_by != id_hash &&
            !s_superseded (shard, shard->served_by))
            shard->superseded[shard->superseded_next++ % SUPERSEDED_MAX] =
                shard->served_by;
        shard->served_by = id_hash;
        shard->owner = index;
    }
    worker->expiry = zclock_mono () + (int64_t)self->heartbeat_ms * self->liveness;
    self->stats_until = 0;
    if (self->verbose && is_new)
        zsys_info ("broker: worker %d%s%s%s ready for %zu shard(s)", index,
                   worker->user[0] ? " ('" : "", worker->user,
                   worker->user[0] ? "')" : "", ready.n_shards);
}

//  Records the carts, items and expired carts that a worker reports for
//  its own shards, and when.
static void
s_record_load (self_t *self, int32_t index)
{
    cart_stats_list_t list;
    cart_shard_stats_t entry;
    if (cart_load_decode (cart_msg_body (&self->msg), cart_msg_body_size (&self->msg),
                          &list, NULL))
        return;
    while (cart_stats_next (&list, &entry, NULL) == 1)
        if (entry.shard < self->n_shards && self->shards[entry.shard].owner == index) {
            shard_t *shard = &self->shards[entry.shard];
            shard->carts = entry.carts;
            shard->items = entry.items;
            shard->expired = entry.expired;
            shard->load_at = zclock_mono ();
            self->stats_until = 0; //  the next STATS shows it
        }
}

static void
s_handle_heartbeat (self_t *self, worker_t *worker)
{
    if (!worker) {
        //  A worker we do not know (we restarted, or it was dropped): ask
        //  it to register
        s_send_worker (self, zmq_msg_data (&self->msg.identity),
                       zmq_msg_size (&self->msg.identity), CART_CMD_DISCONNECT, 0, NULL);
        return;
    }
    worker->expiry = zclock_mono () + (int64_t)self->heartbeat_ms * self->liveness;
    if (cart_msg_body_size (&self->msg))
        s_record_load (self, s_worker_index (self, worker));
}

//  Routes a worker's reply to its client, if the request is still in
//  flight and went to this very worker; else drops it.
static void
s_handle_reply (self_t *self, worker_t *worker)
{
    cart_header_t *header = &self->msg.header;
    uint32_t slot = cart_slots_find (self->slots, header->corr);
    if (slot == NONE)
        return; //  late: its deadline passed
    route_t *route = &self->routes[slot];
    if (!worker || (uint32_t)s_worker_index (self, worker) != route->worker ||
        worker->generation != route->generation) {
        s_warn (self, WARN_FORGED,
                "dropped a reply from a peer that its request was not sent to");
        return;
    }
    worker->replies++;
    if (worker->stalled)
        self->stats_until = 0;
    worker->stalled = false;
    client_t *client = &self->clients[route->client];
    client->in_flight--;
    header->corr = route->client_corr;
    header->acked = 0;
    cart_slots_free (self->slots, slot);
    size_t size = cart_msg_body_size (&self->msg);
    if (s_over_unread (self, client, size)) {
        //  The client is not reading: a short answer instead of the reply
        char text[160];
        snprintf (text, sizeof (text),
                  "reply dropped: this client has not read %u bytes of earlier replies",
                  s_unread (client));
        uint8_t body[260];
        size = cart_reply_error_body (body, sizeof (body), text);
        header->status = CART_UNAVAILABLE;
        cart_frame_t identity = cart_frame_bytes (client->id.bytes, client->id.len);
        cart_frame_t frame = cart_frame_bytes (body, size);
        if (cart_msg_send (self->front, &identity, header, &frame) == 0)
            s_client_sent (self, client, size);
        return;
    }
    cart_frame_t identity = cart_frame_bytes (client->id.bytes, client->id.len);
    cart_frame_t frame = cart_frame_msg (&self->msg.body);
    if (cart_msg_send (self->front, &identity, header, &frame) == 0)
        s_client_sent (self, client, size);
}

//  Handles one message from the backend; false when none was waiting.
static bool
s_handle_backend (self_t *self)
{
    const char *error;
    int rc = cart_msg_recv_peer (self->back, CART_AT_BACKEND, true, &self->msg,
                                 ZMQ_DONTWAIT, self->zap ? &self->peer : NULL, &error);
    if (rc == 0)
        return false;
    if (rc == -1) {
        self->malformed++;
        s_warn (self, WARN_MALFORMED, "dropped a malformed message from a worker: %s",
                error);
        return true;
    }
    worker_t *worker = s_sender (self);
    if (worker && self->zap && strcmp (worker->user, self->peer.user)) {
        //  Another key's connection took this identity over (ROUTER
        //  handover): what it sends is not the worker's
        s_warn (self, WARN_FORGED,
                "dropped a message on worker %d's identity from key '%s' (the worker's "
                "key is '%s')",
                s_worker_index (self, worker), self->peer.user, worker->user);
        return true;
    }
    if (worker)
        //  Any message is a sign of life: a worker busy sending replies
        //  may have its heartbeats queued behind them
        worker->expiry = zclock_mono () + (int64_t)self->heartbeat_ms * self->liveness;
    switch ((cart_command_t)self->msg.header.command) {
        case CART_CMD_READY:
            s_handle_ready (self, worker);
            break;
        case CART_CMD_REPLY:
            s_handle_reply (self, worker);
            break;
        case CART_CMD_HEARTBEAT:
            s_handle_heartbeat (self, worker);
            break;
        case CART_CMD_DISCONNECT:
            if (worker)
                s_worker_remove (self, worker, "it disconnected");
            break;
        case CART_CMD_REQUEST:
        case CART_CMD_PING:
        case CART_CMD_STATS:
        case CART_CMD_REFUSE:
            break; //  cart_msg_recv lets none of these through at the backend
    }
    return true;
}

//  --------------------------------------------------------------------------
//  Requests

//  Forwards the current request to its shard's worker in a new slot.
//  Returns 0, or -1 with errno from libzmq (the slot is freed).
static int
s_forward (self_t *self, uint32_t client, uint32_t shard)
{
    cart_header_t *header = &self->msg.header;
    int64_t now = zclock_mono ();
    //  The client ends the request at its own deadline; the broker keeps
    //  it at least STALL_FLOOR_MS, so that a client asking for 1 ms cannot
    //  make a healthy worker look stalled
    uint32_t timeout = header->timeout_ms;
    if (timeout > CART_TIMEOUT_MAX)
        timeout = CART_TIMEOUT_MAX;
    if (timeout < STALL_FLOOR_MS)
        timeout = STALL_FLOOR_MS;
    uint64_t corr;
    uint32_t slot = cart_slots_take (self->slots, now + timeout, &corr);
    if (slot == NONE) {
        errno = ENOBUFS;
        return -1;
    }
    int32_t owner = self->shards[shard].owner;
    worker_t *worker = &self->workers[owner];
    self->routes[slot] = (route_t){.client = client,
                                   .worker = (uint32_t)owner,
                                   .generation = worker->generation,
                                   .replies = worker->replies,
                                   .client_corr = header->corr};
    header->corr = corr;
    header->shard = (uint16_t)shard;
    header->acked = 0;
    cart_frame_t identity = cart_frame_bytes (worker->id.bytes, worker->id.len);
    cart_frame_t body = cart_frame_msg (&self->msg.body);
    if (cart_msg_send (self->back, &identity, header, &body)) {
        int saved = errno;
        cart_slots_free (self->slots, slot);
        header->corr = self->routes[slot].client_corr; //  to answer the client
        errno = saved;
        return -1;
    }
    self->clients[client].in_flight++;
    return 0;
}

static void
s_route_request (self_t *self, uint32_t client)
{
    uint32_t index = cart_ring_shard (self->msg.header.key, self->n_shards);
    shard_t *shard = &self->shards[index];
    shard->requests++;
    if (client == NONE) {
        s_warn (self, WARN_FULL, "%d clients have requests in flight; refusing more",
                CLIENTS_MAX);
        s_answer_error (self, client, CART_UNAVAILABLE,
                        "the broker serves %d clients already", CLIENTS_MAX);
        return;
    }
    client_t *record = &self->clients[client];
    if (record->in_flight >= CLIENT_INFLIGHT_MAX) {
        s_answer_error (
            self, client, CART_UNAVAILABLE,
            "this client has %u requests in flight, the most the broker admits",
            record->in_flight);
        return;
    }
    if (s_refuse_unread (self, client))
        return;
    if (shard->owner < 0) {
        s_answer_error (self, client, CART_UNAVAILABLE, "shard %u has no live worker",
                        index);
        return;
    }
    worker_t *worker = &self->workers[shard->owner];
    if (s_forward (self, client, index) == 0)
        return;
    if (errno == EHOSTUNREACH) {
        s_worker_remove (self, worker, "its connection is gone");
        s_answer_error (self, client, CART_UNAVAILABLE, "shard %u has no live worker",
                        index);
    } else
        s_answer_error (self, client, CART_UNAVAILABLE, "shard %u is overloaded", index);
}

//  Ends the requests whose deadline has passed: their clients have given
//  up on them. A worker that let one expire without answering anything
//  since it was sent is stalled: it heartbeats, but does not serve.
static void
s_expire (self_t *self)
{
    int64_t now = zclock_mono ();
    uint32_t slot;
    while ((slot = cart_slots_expired (self->slots, now)) != NONE) {
        route_t *route = &self->routes[slot];
        worker_t *worker = &self->workers[route->worker];
        if (worker->id.len && worker->generation == route->generation &&
            worker->replies == route->replies && !worker->stalled) {
            worker->stalled = true;
            self->stats_until = 0;
            s_warn (self, WARN_STALLED,
                    "worker %u lets requests expire; its shards are shown unavailable "
                    "until it answers",
                    route->worker);
        }
        self->clients[route->client].in_flight--;
        cart_slots_free (self->slots, slot);
    }
}

//  --------------------------------------------------------------------------
//  Stats

static void
s_build_stats (self_t *self)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    cart_stats_encode (&pk, self->n_shards, self->n_shards);
    int64_t now = zclock_mono ();
    for (uint32_t i = 0; i < self->n_shards; i++) {
        const shard_t *shard = &self->shards[i];
        bool stalled = shard->owner >= 0 && self->workers[shard->owner].stalled;
        cart_shard_stats_t entry = {.shard = i,
                                    .live = shard->owner >= 0 && !stalled,
                                    .stalled = stalled,
                                    .carts = shard->carts,
                                    .items = shard->items,
                                    .expired = shard->expired,
                                    .requests = shard->requests,
                                    .load_age_ms =
                                        shard->load_at < 0 ? -1 : now - shard->load_at};
        cart_stats_encode_entry (&pk, &entry);
    }
    zmq_msg_close (&self->stats);
    zmq_msg_init_size (&self->stats, buffer.size);
    memcpy (zmq_msg_data (&self->stats), buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    self->stats_until = now + self->heartbeat_ms;
}

//  Answers STATS with the stats body, rebuilt at most once per heartbeat
//  or when a shard changes hands. Every reply shares the one buffer
//  (zmq_msg_copy counts references).
static void
s_answer_stats (self_t *self, uint32_t client)
{
    if (zclock_mono () >= self->stats_until)
        s_build_stats (self);
    if (client != NONE && s_refuse_unread (self, client))
        return;
    zmq_msg_t body;
    zmq_msg_init (&body);
    zmq_msg_copy (&body, &self->stats);
    size_t size = zmq_msg_size (&body);
    cart_header_t header = {
        .command = CART_CMD_REPLY, .status = CART_OK, .corr = self->msg.header.corr};
    cart_frame_t identity = cart_frame_bytes (zmq_msg_data (&self->msg.identity),
                                              zmq_msg_size (&self->msg.identity));
    cart_frame_t frame = cart_frame_msg (&body);
    if (cart_msg_send (self->front, &identity, &header, &frame) == 0 && client != NONE)
        s_client_sent (self, &self->clients[client], size);
}

//  Handles one message from the frontend; false when none was waiting.
static bool
s_handle_frontend (self_t *self)
{
    const char *error;
    int rc = cart_msg_recv (self->front, CART_AT_FRONTEND, true, &self->msg, ZMQ_DONTWAIT,
                            &error);
    if (rc == 0)
        return false;
    if (rc == -1) {
        //  A malformed message whose header could be read gets a 400, so
        //  that its request ends now, not at its deadline
        self->malformed++;
        s_warn (self, WARN_MALFORMED, "dropped a malformed message from a client: %s",
                error);
        if (self->msg.header.command)
            s_answer_error (self, NONE, CART_BAD_REQUEST, "%s", error);
        return true;
    }
    uint32_t client = s_client (self);
    switch ((cart_command_t)self->msg.header.command) {
        case CART_CMD_REQUEST:
            s_route_request (self, client);
            break;
        case CART_CMD_PING:
            s_answer (self, client, CART_OK, "", 0);
            break;
        case CART_CMD_STATS:
            s_answer_stats (self, client);
            break;
        case CART_CMD_REPLY:
        case CART_CMD_READY:
        case CART_CMD_HEARTBEAT:
        case CART_CMD_DISCONNECT:
        case CART_CMD_REFUSE:
            break; //  cart_msg_recv lets none of these through at the frontend
    }
    return true;
}

//  --------------------------------------------------------------------------
//  The loop

static void
s_heartbeat (self_t *self)
{
    int64_t now = zclock_mono ();
    for (uint32_t i = 0; i < self->n_shards; i++) {
        worker_t *worker = &self->workers[i];
        if (worker->id.len == 0)
            continue;
        if (now >= worker->expiry)
            s_worker_remove (self, worker, "its heartbeats stopped");
        else if (s_send_worker (self, worker->id.bytes, worker->id.len,
                                CART_CMD_HEARTBEAT, 0, NULL) == -1 &&
                 errno == EHOSTUNREACH)
            s_worker_remove (self, worker, "its connection is gone");
    }
    s_warn_flush (self);
    self->heartbeat_at = now + self->heartbeat_ms;
}

static void
s_drain (self_t *self, bool (*handle) (self_t *))
{
    for (int i = 0; i < BATCH && handle (self); i++)
        ;
    cart_msg_close (&self->msg);
}

static void
s_run (self_t *self)
{
    zmq_pollitem_t items[] = {{self->back, 0, ZMQ_POLLIN, 0},
                              {self->front, 0, ZMQ_POLLIN, 0}};
    while (!self->terminated) {
        int64_t now = zclock_mono ();
        int64_t wait = self->heartbeat_at - now;
        int64_t expiry = cart_slots_next_timeout (self->slots, now);
        if (expiry >= 0 && expiry < wait)
            wait = expiry;
        if (wait > CART_PIPE_MS)
            wait = CART_PIPE_MS;
        int rc = zmq_poll (items, 2, wait > 0 ? (long)wait : 0);
        if (rc == -1 && zmq_errno () != EINTR)
            break; //  the context is going away
        if (items[0].revents & ZMQ_POLLIN)
            s_drain (self, s_handle_backend);
        if (items[1].revents & ZMQ_POLLIN)
            s_drain (self, s_handle_frontend);
        s_expire (self);
        if (zclock_mono () >= self->heartbeat_at)
            s_heartbeat (self);
        if (zclock_mono () >= self->sweep_at)
            s_sweep_clients (self);
        if (cart_actor_due (&self->pipe_at) && (zsock_events (self->pipe) & ZMQ_POLLIN) &&
            cart_actor_recv (self->pipe, "broker", NULL) == CART_ACTOR_TERM)
            self->terminated = true;
    }
}

void
cart_broker_actor (zsock_t *pipe, void *args)
{
    const char *error = NULL;
    self_t *self = s_self_new (pipe, (const cart_broker_config_t *)args, &error);
    if (cart_actor_ready (pipe, self ? NULL : error))
        return;
    char *frontend = zsock_last_endpoint (self->frontend);
    char *backend = zsock_last_endpoint (self->backend);
    zsock_send (pipe, "ss", frontend, backend);
    zstr_free (&frontend);
    zstr_free (&backend);
    s_run (self);
    s_self_destroy (&self);
    cart_hash_thread_end (); //  OpenSSL's state for this thread (RAND_bytes)
}

//  --------------------------------------------------------------------------
//  The handle that callers hold

struct _cart_broker_t {
    zactor_t *actor;
    char *frontend;
    char *backend;
};

cart_broker_t *
cart_broker_new (const cart_broker_config_t *config, const char **error)
{
    zactor_t *actor = cart_actor_start (cart_broker_actor, (void *)config, error);
    if (!actor)
        return NULL;
    cart_broker_t *self = (cart_broker_t *)zmalloc (sizeof (cart_broker_t));
    assert (self);
    self->actor = actor;
    zsock_recv (self->actor, "ss", &self->frontend, &self->backend);
    return self;
}

void
cart_broker_destroy (cart_broker_t **self_p)
{
    cart_broker_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    zstr_free (&self->frontend);
    zstr_free (&self->backend);
    free (self);
    *self_p = NULL;
}

const char *
cart_broker_frontend (cart_broker_t *self)
{
    return self->frontend;
}

const char *
cart_broker_backend (cart_broker_t *self)
{
    return self->backend;
}
