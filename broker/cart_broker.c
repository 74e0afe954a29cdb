/*  =========================================================================
    cart_broker - the CART/1 broker actor.

    The data path. A client request arrives on the frontend as
    [client][protocol][REQUEST][corr][key][body]. The broker parses the
    fixed-width frames only, picks shard = ring (key, S), and sends
    [worker][protocol][REQUEST][shard][client][corr][key][body] on the
    backend: the client, corr, key and body frames are the very zmq_msg_t
    it received, moved with zmq_msg_send, so bodies are never copied; the
    protocol and command frames are constants sent with zmq_send_const.
    Nothing on this path allocates. Replies go back the same way.

    Worker states, as the broker sees them:

        state      event                    action
        (none)     READY                    take the listed shards -> live
        (none)     HEARTBEAT                send DISCONNECT (it re-registers)
        live       HEARTBEAT (with load)    renew expiry, record carts/items
        live       REPLY                    route to the client
        (none)     REPLY                    drop it
        live       expiry passes            release its shards -> (none)
        live       send fails EHOSTUNREACH  release its shards -> (none)
        live       DISCONNECT               release its shards -> (none)

    A shard is served by the worker whose READY named it last: a restarted
    worker takes its shard back at once, without waiting for its dead
    predecessor to expire.

    Bounds. Every socket has send and receive high-water marks; the broker
    never blocks on a send (ZMQ_DONTWAIT): a request that cannot be queued
    to its worker is answered UNAVAILABLE, a reply that cannot be queued to
    its client is dropped (the client's deadline ends it). The worker table
    holds at most CART_WORKERS_MAX workers. ZMQ_MAXMSGSIZE caps a frame
    from the network at CART_WIRE_MSG_MAX bytes.
    =========================================================================
*/
#include "cart_broker.h"

#include <errno.h>

#include "cart_proto.h"
#include "cart_ring.h"

#define CART_WORKERS_MAX 1024                  //  workers registered at once
#define CART_HWM         10000                 //  messages queued per peer and direction
#define BATCH            256                   //  messages read from one socket in a row
#define PARTS            (CART_FRAMES_MAX + 1) //  identity + frames

typedef struct {
    uint8_t id[CART_IDENTITY_MAX];
    size_t id_len;  //  0: slot free
    int64_t expiry; //  zclock_mono () at which it is dead
} worker_t;

typedef struct {
    int32_t owner;     //  index into workers, or -1
    uint64_t requests; //  routed to it, or answered UNAVAILABLE
    uint64_t carts;    //  from the owner's last load report
    uint64_t items;
} shard_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *frontend;
    zsock_t *backend;
    void *front; //  libzmq handles of the sockets above
    void *back;
    uint32_t n_shards;
    shard_t *shards;
    worker_t workers[CART_WORKERS_MAX];
    size_t slots_used; //  slots ever taken: scans stop there
    int heartbeat_ms;
    int liveness;
    int64_t heartbeat_at;
    bool verbose;
    bool terminated;
    zmq_msg_t parts[PARTS];
    size_t n_parts;      //  frames of the current message
    uint64_t malformed;  //  messages dropped as malformed
    zmq_msg_t stats;     //  the last stats body built
    int64_t stats_until; //  when it must be built again
} self_t;

static const uint8_t s_cmd_request = CART_W_REQUEST;
static const uint8_t s_cmd_heartbeat = CART_W_HEARTBEAT;
static const uint8_t s_cmd_disconnect = CART_W_DISCONNECT;
static const uint8_t s_cmd_reply = CART_C_REPLY;

//  --------------------------------------------------------------------------
//  Set-up

static zsock_t *
s_router (const char *endpoints, int max_message, char **error)
{
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    assert (sock);
    zsock_set_router_mandatory (sock, 1);
    zsock_set_sndhwm (sock, CART_HWM);
    zsock_set_rcvhwm (sock, CART_HWM);
    zsock_set_maxmsgsize (sock, max_message);
    zsock_set_linger (sock, 0);
    if (!endpoints || zsock_attach (sock, endpoints, true)) {
        *error = zsys_sprintf ("cannot bind '%s': %s", endpoints ? endpoints : "(none)",
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
    zmq_msg_close (&self->stats);
    free (self->shards);
    free (self);
    *self_p = NULL;
}

static self_t *
s_self_new (zsock_t *pipe, const cart_broker_config_t *config, char **error)
{
    if (config->shards < 1 || config->shards > CART_SHARDS_MAX) {
        *error = zsys_sprintf ("shard count %u is not 1 to %d", config->shards,
                               CART_SHARDS_MAX);
        return NULL;
    }
    self_t *self = (self_t *)zmalloc (sizeof (self_t));
    assert (self);
    zmq_msg_init (&self->stats);
    self->pipe = pipe;
    self->n_shards = config->shards;
    self->heartbeat_ms =
        config->heartbeat_ms > 0 ? config->heartbeat_ms : CART_HEARTBEAT_MS;
    self->liveness = config->liveness > 0 ? config->liveness : CART_LIVENESS;
    self->verbose = config->verbose;
    self->shards = (shard_t *)calloc (self->n_shards, sizeof (shard_t));
    assert (self->shards);
    for (uint32_t i = 0; i < self->n_shards; i++)
        self->shards[i].owner = -1;
    //  Clients send requests of a few hundred bytes; workers send carts
    self->frontend = s_router (config->frontend, CART_REQUEST_WIRE_MAX, error);
    if (self->frontend)
        self->backend = s_router (config->backend, CART_WIRE_MSG_MAX, error);
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
//  Frames in and out

//  Receives one whole message into self->parts without waiting. Returns
//  false when none was waiting. Frames past PARTS are read and dropped,
//  but counted in n_parts, so that the parser sees the message as too long.
static bool
s_recv (self_t *self, void *socket)
{
    self->n_parts = cart_msg_recv (socket, self->parts, PARTS, ZMQ_DONTWAIT);
    return self->n_parts > 0;
}

static void
s_close_parts (self_t *self)
{
    cart_msg_close (self->parts, PARTS, self->n_parts);
    self->n_parts = 0;
}

//  Views of the received frames after the identity, for the parser.
static size_t
s_frames (self_t *self, cart_frame_t *frames)
{
    size_t n = self->n_parts - 1;
    for (size_t i = 0; i < n && i < CART_FRAMES_MAX; i++)
        frames[i] = (cart_frame_t){zmq_msg_data (&self->parts[i + 1]),
                                   zmq_msg_size (&self->parts[i + 1])};
    return n;
}

static int
s_send_part (self_t *self, size_t index, void *socket, int more)
{
    return zmq_msg_send (&self->parts[index], socket,
                         ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0));
}

static int
s_send_const (void *socket, const void *data, size_t size, int more)
{
    return zmq_send_const (socket, data, size, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0));
}

//  Writes a msgpack str holding text into buffer; returns its size.
static size_t
s_error_body (uint8_t *buffer, size_t capacity, const char *text)
{
    size_t len = strlen (text);
    if (len > 255)
        len = 255;
    assert (capacity >= len + 2);
    buffer[0] = 0xD9; //  str 8
    buffer[1] = (uint8_t)len;
    memcpy (buffer + 2, text, len);
    return len + 2;
}

//  Sends the head of the broker's own answer to the current client message
//  (parts: identity, protocol, command, corr, ...): [client][protocol]
//  [REPLY][corr][status], the body frame to follow. Returns -1 when the
//  client is gone (nothing was sent).
static int
s_reply_head (self_t *self, uint16_t status)
{
    uint8_t status_wire[2] = {(uint8_t)(status >> 8), (uint8_t)status};
    if (s_send_part (self, 0, self->front, 1) == -1)
        return -1;
    s_send_const (self->front, CART_PROTO_CLIENT, CART_PROTO_LEN, 1);
    s_send_const (self->front, &s_cmd_reply, 1, 1);
    s_send_part (self, 3, self->front, 1);
    zmq_send (self->front, status_wire, 2, ZMQ_DONTWAIT | ZMQ_SNDMORE);
    return 0;
}

//  Answers the current client message with a status and a body.
static void
s_reply_body (self_t *self, uint16_t status, const void *body, size_t size)
{
    if (s_reply_head (self, status) == 0)
        zmq_send (self->front, body, size, ZMQ_DONTWAIT);
}

//  Answers the current client message with a status and an error message,
//  without its worker.
static void
s_reply_error (self_t *self, uint16_t status, const char *text)
{
    uint8_t body[260];
    size_t body_size = s_error_body (body, sizeof (body), text);
    s_reply_body (self, status, body, body_size);
}

//  --------------------------------------------------------------------------
//  Workers

static worker_t *
s_worker_find (self_t *self, const zmq_msg_t *identity)
{
    size_t len = zmq_msg_size ((zmq_msg_t *)identity);
    const void *id = zmq_msg_data ((zmq_msg_t *)identity);
    for (size_t i = 0; i < self->slots_used; i++)
        if (self->workers[i].id_len == len && memcmp (self->workers[i].id, id, len) == 0)
            return &self->workers[i];
    return NULL;
}

static worker_t *
s_worker_add (self_t *self, const zmq_msg_t *identity)
{
    size_t len = zmq_msg_size ((zmq_msg_t *)identity);
    for (size_t i = 0; i < CART_WORKERS_MAX; i++)
        if (self->workers[i].id_len == 0) {
            worker_t *worker = &self->workers[i];
            memcpy (worker->id, zmq_msg_data ((zmq_msg_t *)identity), len);
            worker->id_len = len;
            if (i + 1 > self->slots_used)
                self->slots_used = i + 1;
            return worker;
        }
    return NULL;
}

static int32_t
s_worker_index (self_t *self, worker_t *worker)
{
    return (int32_t)(worker - self->workers);
}

static int s_send_worker_command (self_t *self, const void *id, size_t id_len,
                                  const uint8_t *cmd);

//  Frees a worker's slot and the shards it served. Those shards may have
//  been taken from another live worker (a later READY wins), so every
//  other worker is asked to register again: whoever lists a released
//  shard takes it back.
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
    if (self->verbose)
        zsys_info ("broker: worker %d removed (%s), %zu shard(s) unserved", index, why,
                   released);
    worker->id_len = 0;
    self->stats_until = 0;
    for (size_t i = 0; released && i < self->slots_used; i++)
        if (self->workers[i].id_len)
            s_send_worker_command (self, self->workers[i].id, self->workers[i].id_len,
                                   &s_cmd_disconnect);
}

//  Sends a bodiless command (HEARTBEAT, DISCONNECT) to a worker identity.
static int
s_send_worker_command (self_t *self, const void *id, size_t id_len, const uint8_t *cmd)
{
    if (zmq_send (self->back, id, id_len, ZMQ_DONTWAIT | ZMQ_SNDMORE) == -1)
        return -1;
    s_send_const (self->back, CART_PROTO_WORKER, CART_PROTO_LEN, 1);
    return s_send_const (self->back, cmd, 1, 0);
}

static void
s_handle_ready (self_t *self, const cart_msg_t *msg)
{
    worker_t *worker = s_worker_find (self, &self->parts[0]);
    if (!worker)
        worker = s_worker_add (self, &self->parts[0]);
    if (!worker) {
        zsys_warning ("broker: %d workers already registered; refusing one more",
                      CART_WORKERS_MAX);
        s_send_worker_command (self, zmq_msg_data (&self->parts[0]),
                               zmq_msg_size (&self->parts[0]), &s_cmd_disconnect);
        return;
    }
    int32_t index = s_worker_index (self, worker);
    for (size_t i = 0; i < msg->n_shards; i++) {
        shard_t *shard = &self->shards[cart_msg_shard_at (msg, i)];
        if (shard->owner >= 0 && shard->owner != index && self->verbose)
            zsys_info ("broker: shard %u passes from worker %d to worker %d",
                       cart_msg_shard_at (msg, i), shard->owner, index);
        shard->owner = index;
    }
    worker->expiry = zclock_mono () + (int64_t)self->heartbeat_ms * self->liveness;
    self->stats_until = 0;
    if (self->verbose)
        zsys_info ("broker: worker %d ready for %zu shard(s)", index, msg->n_shards);
}

//  Records the carts and items that a worker reports for its own shards.
static void
s_record_load (self_t *self, int32_t index, const cart_frame_t *body)
{
    cart_stats_list_t list;
    cart_shard_stats_t entry;
    const char *error;
    if (cart_load_decode (body->data, body->size, &list, &error))
        return;
    while (cart_stats_next (&list, &entry, &error) == 1)
        if (entry.shard < self->n_shards && self->shards[entry.shard].owner == index) {
            self->shards[entry.shard].carts = entry.carts;
            self->shards[entry.shard].items = entry.items;
        }
}

static void
s_handle_heartbeat (self_t *self, const cart_msg_t *msg)
{
    worker_t *worker = s_worker_find (self, &self->parts[0]);
    if (!worker) {
        //  A worker we do not know (we restarted): ask it to register
        s_send_worker_command (self, zmq_msg_data (&self->parts[0]),
                               zmq_msg_size (&self->parts[0]), &s_cmd_disconnect);
        return;
    }
    worker->expiry = zclock_mono () + (int64_t)self->heartbeat_ms * self->liveness;
    if (msg->body.size)
        s_record_load (self, s_worker_index (self, worker), &msg->body);
}

//  Routes a worker's reply to its client: [client][protocol][REPLY][corr]
//  [status][body], moving the received frames.
static void
s_handle_reply (self_t *self)
{
    if (s_send_part (self, 3, self->front, 1) == -1)
        return; //  the client is gone or full: drop
    s_send_const (self->front, CART_PROTO_CLIENT, CART_PROTO_LEN, 1);
    s_send_const (self->front, &s_cmd_reply, 1, 1);
    s_send_part (self, 4, self->front, 1);
    s_send_part (self, 5, self->front, 1);
    s_send_part (self, 6, self->front, 0);
}

static void
s_handle_backend (self_t *self)
{
    cart_frame_t frames[CART_FRAMES_MAX];
    size_t n = s_frames (self, frames);
    cart_msg_t msg;
    const char *error;
    if (cart_msg_parse_worker (frames, n, self->n_shards, &msg, &error)) {
        self->malformed++;
        if (self->verbose)
            zsys_warning ("broker: dropped a malformed worker message: %s", error);
        return;
    }
    worker_t *worker;
    switch (msg.command) {
        case CART_W_READY:
            s_handle_ready (self, &msg);
            break;
        case CART_W_REPLY:
            //  Only a registered worker may answer clients
            if (s_worker_find (self, &self->parts[0]))
                s_handle_reply (self);
            else
                self->malformed++;
            break;
        case CART_W_HEARTBEAT:
            s_handle_heartbeat (self, &msg);
            break;
        case CART_W_DISCONNECT:
            worker = s_worker_find (self, &self->parts[0]);
            if (worker)
                s_worker_remove (self, worker, "it disconnected");
            break;
        default:
            self->malformed++;
            break;
    }
}

//  --------------------------------------------------------------------------
//  Clients

//  Sends the current request to its shard's worker, moving the client,
//  corr, key and body frames. Returns 0, or -1 with errno from libzmq.
static int
s_forward (self_t *self, worker_t *worker, uint32_t shard)
{
    uint8_t shard_wire[4];
    cart_put_u32 (shard_wire, shard);
    if (zmq_send (self->back, worker->id, worker->id_len, ZMQ_DONTWAIT | ZMQ_SNDMORE) ==
        -1)
        return -1;
    s_send_const (self->back, CART_PROTO_WORKER, CART_PROTO_LEN, 1);
    s_send_const (self->back, &s_cmd_request, 1, 1);
    zmq_send (self->back, shard_wire, 4, ZMQ_DONTWAIT | ZMQ_SNDMORE);
    s_send_part (self, 0, self->back, 1);
    s_send_part (self, 3, self->back, 1);
    s_send_part (self, 4, self->back, 1);
    return s_send_part (self, 5, self->back, 0) == -1 ? -1 : 0;
}

static void
s_route_request (self_t *self, const cart_msg_t *msg)
{
    uint32_t index = cart_ring_shard (msg->key, self->n_shards);
    shard_t *shard = &self->shards[index];
    shard->requests++;
    char text[96];
    if (shard->owner < 0) {
        snprintf (text, sizeof (text), "shard %u has no live worker", index);
        s_reply_error (self, CART_UNAVAILABLE, text);
        return;
    }
    worker_t *worker = &self->workers[shard->owner];
    if (s_forward (self, worker, index) == 0)
        return;
    if (zmq_errno () == EHOSTUNREACH) {
        s_worker_remove (self, worker, "its connection is gone");
        snprintf (text, sizeof (text), "shard %u has no live worker", index);
    } else
        snprintf (text, sizeof (text), "shard %u is overloaded", index);
    s_reply_error (self, CART_UNAVAILABLE, text);
}

static void
s_build_stats (self_t *self)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    cart_stats_encode (&pk, self->n_shards, self->n_shards);
    for (uint32_t i = 0; i < self->n_shards; i++) {
        const shard_t *shard = &self->shards[i];
        cart_shard_stats_t entry = {.shard = i,
                                    .live = shard->owner >= 0,
                                    .carts = shard->carts,
                                    .items = shard->items,
                                    .requests = shard->requests};
        cart_stats_encode_entry (&pk, &entry);
    }
    zmq_msg_close (&self->stats);
    zmq_msg_init_size (&self->stats, buffer.size);
    memcpy (zmq_msg_data (&self->stats), buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    self->stats_until = zclock_mono () + self->heartbeat_ms;
}

//  Answers STATS with the stats body, rebuilt at most once per heartbeat
//  or when a shard changes hands. Every reply shares the one buffer
//  (zmq_msg_copy counts references), so clients that send STATS and never
//  read the answers cost a frame each, not a copy of the stats each.
static void
s_reply_stats (self_t *self)
{
    if (zclock_mono () >= self->stats_until)
        s_build_stats (self);
    if (s_reply_head (self, CART_OK) == -1)
        return;
    zmq_msg_t body;
    zmq_msg_init (&body);
    zmq_msg_copy (&body, &self->stats);
    if (zmq_msg_send (&body, self->front, ZMQ_DONTWAIT) == -1)
        zmq_msg_close (&body);
}

//  A malformed client message whose identity and correlation id can still
//  be read gets a 400, so that its request ends now, not at its deadline.
static void
s_reject_client (self_t *self, const char *error)
{
    self->malformed++;
    if (self->n_parts < 4 || self->n_parts > PARTS ||
        zmq_msg_size (&self->parts[3]) != 8 ||
        zmq_msg_size (&self->parts[1]) != CART_PROTO_LEN ||
        memcmp (zmq_msg_data (&self->parts[1]), CART_PROTO_CLIENT, CART_PROTO_LEN))
        return;
    s_reply_error (self, CART_BAD_REQUEST, error);
}

static void
s_handle_frontend (self_t *self)
{
    cart_frame_t frames[CART_FRAMES_MAX];
    size_t n = s_frames (self, frames);
    cart_msg_t msg;
    const char *error;
    if (cart_msg_parse_client (frames, n, &msg, &error)) {
        s_reject_client (self, error);
        return;
    }
    switch (msg.command) {
        case CART_C_REQUEST:
            s_route_request (self, &msg);
            break;
        case CART_C_PING:
            s_reply_body (self, CART_OK, "", 0);
            break;
        case CART_C_STATS:
            s_reply_stats (self);
            break;
        default:
            s_reject_client (self, "a client may not send REPLY");
            break;
    }
}

//  --------------------------------------------------------------------------
//  The loop

static void
s_heartbeat (self_t *self)
{
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < self->slots_used; i++) {
        worker_t *worker = &self->workers[i];
        if (worker->id_len == 0)
            continue;
        if (now >= worker->expiry)
            s_worker_remove (self, worker, "its heartbeats stopped");
        else if (s_send_worker_command (self, worker->id, worker->id_len,
                                        &s_cmd_heartbeat) == -1 &&
                 zmq_errno () == EHOSTUNREACH)
            s_worker_remove (self, worker, "its connection is gone");
    }
    self->heartbeat_at = now + self->heartbeat_ms;
}

static void
s_handle_pipe (self_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
        zsys_warning ("broker: unknown command '%s'", command);
    zstr_free (&command);
}

static void
s_drain (self_t *self, void *socket, void (*handle) (self_t *))
{
    for (int i = 0; i < BATCH && s_recv (self, socket); i++) {
        if (self->n_parts >= 2)
            handle (self);
        else
            self->malformed++;
        s_close_parts (self);
    }
}

static void
s_run (self_t *self)
{
    //  The pipe is looked at once per heartbeat, not in every poll: each
    //  socket in a zmq_poll costs system calls on every wake-up (libzmq
    //  checks its mailbox), and a command ($TERM) can wait 100 ms.
    zmq_pollitem_t items[] = {{self->back, 0, ZMQ_POLLIN, 0},
                              {self->front, 0, ZMQ_POLLIN, 0}};
    while (!self->terminated) {
        int64_t wait = self->heartbeat_at - zclock_mono ();
        int rc = zmq_poll (items, 2, wait > 0 ? (long)wait : 0);
        if (rc == -1 && zmq_errno () != EINTR)
            break; //  the context is going away
        if (items[0].revents & ZMQ_POLLIN)
            s_drain (self, self->back, s_handle_backend);
        if (items[1].revents & ZMQ_POLLIN)
            s_drain (self, self->front, s_handle_frontend);
        if (zclock_mono () >= self->heartbeat_at) {
            s_heartbeat (self);
            if (zsock_events (self->pipe) & ZMQ_POLLIN)
                s_handle_pipe (self);
        }
    }
}

void
cart_broker_actor (zsock_t *pipe, void *args)
{
    char *error = NULL;
    self_t *self = s_self_new (pipe, (const cart_broker_config_t *)args, &error);
    zsock_signal (pipe, 0);
    if (!self) {
        zstr_send (pipe, error);
        zstr_free (&error);
        //  Wait for $TERM, as every actor must
        char *command;
        while ((command = zstr_recv (pipe)) && !streq (command, "$TERM"))
            zstr_free (&command);
        zstr_free (&command);
        return;
    }
    char *frontend = zsock_last_endpoint (self->frontend);
    char *backend = zsock_last_endpoint (self->backend);
    zstr_send (pipe, "OK");
    zsock_send (pipe, "ss", frontend, backend);
    zstr_free (&frontend);
    zstr_free (&backend);
    s_run (self);
    s_self_destroy (&self);
}

//  --------------------------------------------------------------------------
//  The handle that callers hold

struct _cart_broker_t {
    zactor_t *actor;
    char *frontend;
    char *backend;
};

cart_broker_t *
cart_broker_new (const cart_broker_config_t *config, char **error)
{
    cart_broker_t *self = (cart_broker_t *)zmalloc (sizeof (cart_broker_t));
    assert (self);
    self->actor = zactor_new (cart_broker_actor, (void *)config);
    assert (self->actor);
    char *status = zstr_recv (self->actor);
    if (status && streq (status, "OK")) {
        zstr_free (&status);
        zsock_recv (self->actor, "ss", &self->frontend, &self->backend);
        return self;
    }
    if (error)
        *error = status ? status : strdup ("broker thread interrupted");
    else
        zstr_free (&status);
    cart_broker_destroy (&self);
    return NULL;
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
