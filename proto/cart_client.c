/*  =========================================================================
    cart_client - pipelined CART/2 client.

    Requests in flight live in a cart_slots table; a reply finds its slot
    by its correlation id, and one whose request is over (its deadline
    passed) matches nothing and is dropped. Every message to the broker
    carries the count of reply body bytes taken so far (the header's
    acked), by which the broker bounds what it queues for a client that
    does not read (PROTOCOL.md section 7). Nothing is allocated after
    cart_client_new, but a new socket after the broker refused our CURVE
    key.
    =========================================================================
*/
#include "cart_client.h"

#include <czmq.h>
#include <errno.h>

#include "cart_hash.h"
#include "cart_slots.h"

#define CLIENT_HWM 10000

typedef struct {
    void *user;
} request_t;

struct _cart_client_t {
    zsock_t *dealer;
    void *sock;
    cart_slots_t *slots;
    request_t *requests; //  by slot
    uint32_t acked;      //  reply body bytes taken, modulo 2^32
    msgpack_sbuffer out;
    cart_msg_t in; //  the message of the last result
    //  Over CURVE: libzmq ends a connection that the broker refused for
    //  good (session_base.cpp: a protocol error is not reconnected), so
    //  the client watches its handshakes and makes a new socket after a
    //  refusal, as a worker does; a key added to the broker's list then
    //  counts without a restart
    char *endpoint;
    bool use_curve;
    cart_curve_t curve;
    cart_curve_watch_t *watch;
    cart_curve_state_t state;
    int64_t watch_at;  //  when the watch is next looked at
    int64_t retry_at;  //  when a refused socket is replaced
    int64_t warned_at; //  a refusal is logged every WATCH_WARN_MS
};

#define WATCH_MS      100   //  the handshakes are looked at this often
#define RETRY_MS      1000  //  a refused socket is replaced this long after
#define WATCH_WARN_MS 10000 //  a lasting refusal is logged this often

zsock_t *
cart_client_dealer (const char *endpoint, int hwm, bool immediate, const char *routing_id,
                    const cart_curve_t *curve, cart_curve_watch_t **watch,
                    const char **error)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert (dealer);
    zsock_set_sndhwm (dealer, hwm);
    zsock_set_rcvhwm (dealer, hwm);
    zsock_set_maxmsgsize (dealer, CART_BODY_WIRE_MAX);
    zsock_set_linger (dealer, 0);
    zsock_set_immediate (dealer, immediate);
    zsock_set_reconnect_ivl (dealer, 100);
    zsock_set_reconnect_ivl_max (dealer, 1000);
    if (routing_id)
        zmq_setsockopt (zsock_resolve (dealer), ZMQ_ROUTING_ID, routing_id,
                        strlen (routing_id));
    cart_curve_client (dealer, curve);
    //  On a plain bus too: a plain peer of a CURVE broker is told so
    *watch = cart_curve_watch_new (dealer);
    if (!endpoint || zsock_connect (dealer, "%s", endpoint)) {
        if (error)
            *error =
                cart_errorf ("cannot connect to '%s': %s", endpoint ? endpoint : "(none)",
                             zmq_strerror (zmq_errno ()));
        cart_curve_watch_destroy (watch);
        zsock_destroy (&dealer);
    }
    return dealer;
}

//  Makes the socket (and its watch) and connects it. Returns 0, or -1
//  with *error set.
static int
s_connect (cart_client_t *self, const char **error)
{
    cart_curve_watch_t *watch = NULL;
    zsock_t *dealer =
        cart_client_dealer (self->endpoint, CLIENT_HWM, true, NULL,
                            self->use_curve ? &self->curve : NULL, &watch, error);
    if (!dealer)
        return -1;
    cart_curve_watch_destroy (&self->watch);
    zsock_destroy (&self->dealer);
    self->watch = watch;
    self->dealer = dealer;
    self->sock = zsock_resolve (dealer);
    self->state = CART_CURVE_PENDING;
    return 0;
}

//  Every WATCH_MS: takes the handshake events, and replaces a
//  socket that the broker refused once RETRY_MS have passed.
static void
s_watch (cart_client_t *self, int64_t now)
{
    if (!self->watch || now < self->watch_at)
        return;
    self->watch_at = now + WATCH_MS;
    cart_curve_state_t state = cart_curve_watch_state (self->watch);
    if (state == CART_CURVE_REFUSED && self->state != CART_CURVE_REFUSED) {
        self->retry_at = now + RETRY_MS;
        if (now - self->warned_at >= WATCH_WARN_MS || !self->warned_at) {
            zsys_warning ("client: %s (%s)", cart_curve_state_text (state),
                          self->endpoint);
            self->warned_at = now;
        }
    }
    self->state = state;
    if (state == CART_CURVE_REFUSED && now >= self->retry_at)
        s_connect (self, NULL); //  no request can be in flight: none was sent
}

cart_client_t *
cart_client_new (const char *endpoint, const char **error)
{
    return cart_client_new_curve (endpoint, NULL, error);
}

cart_client_t *
cart_client_new_curve (const char *endpoint, const cart_curve_t *curve,
                       const char **error)
{
    cart_client_t *self = (cart_client_t *)zmalloc (sizeof (cart_client_t));
    assert (self);
    cart_msg_init (&self->in);
    msgpack_sbuffer_init (&self->out);
    self->endpoint = endpoint ? strdup (endpoint) : NULL;
    if (curve) {
        self->use_curve = true;
        self->curve = *curve;
    }
    if (s_connect (self, error)) {
        cart_client_destroy (&self);
        return NULL;
    }
    self->slots = cart_slots_new (CART_CLIENT_INFLIGHT, 0);
    self->requests = (request_t *)calloc (CART_CLIENT_INFLIGHT, sizeof (request_t));
    assert (self->requests);
    return self;
}

cart_curve_state_t
cart_client_curve_state (cart_client_t *self)
{
    s_watch (self, zclock_mono ());
    return self->state;
}

bool
cart_client_connected (cart_client_t *self)
{
    //  With ZMQ_IMMEDIATE a DEALER has room to send only on a connection
    //  whose handshake is done, on every transport (a monitor has no events
    //  for inproc)
    return zsock_events (self->dealer) & ZMQ_POLLOUT;
}

void
cart_client_destroy (cart_client_t **self_p)
{
    cart_client_t *self = *self_p;
    if (!self)
        return;
    cart_msg_close (&self->in);
    cart_curve_watch_destroy (&self->watch);
    zsock_destroy (&self->dealer);
    free (self->endpoint);
    cart_slots_destroy (&self->slots);
    free (self->requests);
    msgpack_sbuffer_destroy (&self->out);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Sending

//  Sends a message for a new request in a fresh slot.
static int
s_send_request (cart_client_t *self, cart_header_t *header, const cart_frame_t *body,
                int timeout_ms, void *user, uint64_t *corr)
{
    if (timeout_ms <= 0)
        timeout_ms = CART_DEADLINE_MS;
    if (timeout_ms > CART_TIMEOUT_MAX)
        timeout_ms = CART_TIMEOUT_MAX;
    uint32_t slot =
        cart_slots_take (self->slots, zclock_mono () + timeout_ms, &header->corr);
    if (slot == CART_SLOT_NONE) {
        errno = EAGAIN;
        return -1;
    }
    header->timeout_ms = (uint32_t)timeout_ms;
    header->acked = self->acked;
    if (cart_msg_send (self->sock, NULL, header, body)) {
        cart_slots_free (self->slots, slot);
        errno = EAGAIN;
        return -1;
    }
    self->requests[slot].user = user;
    if (corr)
        *corr = header->corr;
    return 0;
}

int
cart_client_send (cart_client_t *self, const cart_request_t *req, int timeout_ms,
                  void *user, uint64_t *corr, const char **error)
{
    assert (self);
    self->out.size = 0;
    if (cart_request_encode (req, &self->out, error)) {
        errno = EINVAL;
        return -1;
    }
    cart_header_t header = {.command = CART_CMD_REQUEST,
                            .key = cart_hash_key (req->customer, req->customer_len)};
    cart_frame_t body = cart_frame_bytes (self->out.data, self->out.size);
    return s_send_request (self, &header, &body, timeout_ms, user, corr);
}

int
cart_client_send_command (cart_client_t *self, int command, int timeout_ms, void *user,
                          uint64_t *corr)
{
    assert (self);
    assert (command == CART_CMD_PING || command == CART_CMD_STATS);
    cart_header_t header = {.command = (uint8_t)command};
    return s_send_request (self, &header, NULL, timeout_ms, user, corr);
}

//  --------------------------------------------------------------------------
//  Receiving

//  Reads one whole message into self->in; false when none is waiting.
static bool
s_recv (cart_client_t *self, int64_t wait_ms)
{
    //  Waiting in a blocking receive costs one system call where zmq_poll
    //  costs several (it checks the socket's mailbox before and after)
    int flags = ZMQ_DONTWAIT;
    if (wait_ms != 0) {
        int timeout = wait_ms < 0 || wait_ms > INT32_MAX ? -1 : (int)wait_ms;
        zmq_setsockopt (self->sock, ZMQ_RCVTIMEO, &timeout, sizeof (timeout));
        flags = 0;
    }
    int rc = cart_msg_recv (self->sock, CART_AT_CLIENT, false, &self->in, flags, NULL);
    if (rc != 0)
        self->acked += (uint32_t)cart_msg_body_size (&self->in);
    if (rc == -1)
        self->in.frames = 0; //  malformed: matched by nothing
    return rc != 0;
}

//  Matches the received message to its request. Returns 1 and fills
//  *result, or 0 when the message is malformed or its request is over.
static int
s_take_reply (cart_client_t *self, cart_result_t *result)
{
    cart_header_t *header = &self->in.header;
    if (self->in.frames == 0 || header->command != CART_CMD_REPLY)
        return 0;
    uint32_t slot = cart_slots_find (self->slots, header->corr);
    if (slot == CART_SLOT_NONE)
        return 0; //  late (its deadline passed), or never ours
    *result = (cart_result_t){.corr = header->corr,
                              .status = header->status,
                              .version = header->key,
                              .replayed = (header->flags & CART_FLAG_REPLAYED) != 0,
                              .user = self->requests[slot].user,
                              .body = cart_msg_body (&self->in),
                              .body_size = cart_msg_body_size (&self->in)};
    cart_slots_free (self->slots, slot);
    return 1;
}

//  Ends the earliest request if its deadline has passed.
static int
s_take_expired (cart_client_t *self, cart_result_t *result)
{
    uint32_t slot = cart_slots_expired (self->slots, zclock_mono ());
    if (slot == CART_SLOT_NONE)
        return 0;
    *result = (cart_result_t){.corr = cart_slots_corr (self->slots, slot),
                              .status = CART_TIMEOUT,
                              .user = self->requests[slot].user};
    cart_slots_free (self->slots, slot);
    return 1;
}

int
cart_client_next_timeout (cart_client_t *self)
{
    int64_t wait = cart_slots_next_timeout (self->slots, zclock_mono ());
    return wait > INT32_MAX ? INT32_MAX : (int)wait;
}

int
cart_client_recv (cart_client_t *self, cart_result_t *result, int wait_ms)
{
    assert (self);
    int64_t until = wait_ms < 0 ? INT64_MAX : zclock_mono () + wait_ms;
    while (true) {
        int64_t now = zclock_mono ();
        s_watch (self, now);
        if (cart_slots_expired (self->slots, now) != CART_SLOT_NONE) {
            //  A deadline has passed: replies already here win over it
            while (s_recv (self, 0))
                if (s_take_reply (self, result))
                    return 1;
            if (s_take_expired (self, result))
                return 1;
        }
        int64_t wait = now >= until ? 0 : until - now;
        int deadline = cart_client_next_timeout (self);
        if (deadline >= 0 && (wait < 0 || deadline < wait))
            wait = deadline;
        if (wait_ms < 0 && deadline < 0)
            wait = -1; //  no deadline to watch: wait for a reply
        if (s_recv (self, wait)) {
            if (s_take_reply (self, result))
                return 1;
            continue; //  malformed or late: look again
        }
        if (zmq_errno () == EINTR || zclock_mono () >= until)
            return 0; //  interrupted, or waited long enough
    }
}

void *
cart_client_handle (cart_client_t *self)
{
    return self->sock;
}

size_t
cart_client_pending (cart_client_t *self)
{
    return cart_slots_pending (self->slots);
}
