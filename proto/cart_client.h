/*  =========================================================================
    cart_client - the client side of CART/2, shared by the HTTP front, the
    benchmarks and cartctl.

    Asynchronous and pipelined: one DEALER socket to the broker carries
    many requests in flight, each with its own correlation id and deadline.
    A client is used by one thread (each HTTP handler thread has its own).

        cart_client_t *client = cart_client_new ("tcp://127.0.0.1:5555", &error);
        cart_request_t req = {.op = CART_OP_GET, .customer = "jea-265",
                              .customer_len = 7};
        if (cart_client_send (client, &req, 2000, my_context, NULL, &error))
            ...  not sent: errno EAGAIN, no connection to the broker yet;
            ...  EINVAL, a request that breaks a rule (error says which)
        cart_result_t result;
        if (cart_client_recv (client, &result, -1) == 1)
            ...  result.user is my_context, result.status the status,
            ...  result.body the msgpack reply body (cart_reply_decode)

    Every request that cart_client_send took ends in exactly one result:
    the broker's or worker's reply, or CART_TIMEOUT when its deadline
    passes first. A reply that arrives after its deadline is dropped. The
    socket queues nothing while it has no connection (ZMQ_IMMEDIATE), so
    a send then fails at once rather than waiting for a broker that may
    never come: poll cart_client_handle for ZMQ_POLLOUT to wait for one.
    =========================================================================
*/
#ifndef CART_CLIENT_H_INCLUDED
#define CART_CLIENT_H_INCLUDED

#include "cart_body.h"
#include "cart_control.h"
#include "cart_curve.h"
#include "cart_msg.h"

#define CART_DEADLINE_MS 2000 //  default deadline of a request
#define CART_CLIENT_INFLIGHT                                                             \
    65536 //  most requests in flight on one client
          //  (the broker admits fewer: PROTOCOL.md 7)

typedef struct _cart_client_t cart_client_t;

typedef struct {
    uint64_t corr;    //  the request's correlation id
    int status;       //  cart_status_t; CART_TIMEOUT at the deadline
    uint64_t version; //  a cart request's: the cart's version (its ETag)
    bool replayed;    //  the answer of an earlier request with the same
                      //  idempotency key
    void *user;       //  what the caller gave to the send
    const void *body; //  msgpack reply body (empty on timeout); valid
    size_t body_size; //  until the next cart_client_recv
} cart_result_t;

//  Connect a client to a broker's frontend. Returns NULL with *error set
//  (cart_types.h) when the endpoint is not valid.
cart_client_t *cart_client_new (const char *endpoint, const char **error);

//  The same over CURVE with the keys of curve (cart_curve.h; NULL: plain).
//  A connection the broker refuses (its key is not listed) is tried again
//  on a new socket every second, from cart_client_recv: poll the handle
//  that cart_client_handle gives each time, not one kept from before.
cart_client_t *cart_client_new_curve (const char *endpoint, const cart_curve_t *curve,
                                      const char **error);

//  Destroy a client; requests in flight are forgotten. Sets *self_p NULL.
void cart_client_destroy (cart_client_t **self_p);

//  Send a cart request with a deadline timeout_ms from now (0: the
//  default). user comes back in its result; *corr (when not NULL) gets
//  the correlation id. Returns 0, or -1 when the request was not sent:
//  it breaks a rule (*error says which; errno EINVAL), too many requests
//  are in flight, the queue to the broker is full or no broker is
//  connected (errno EAGAIN). A request not sent has no result.
int cart_client_send (cart_client_t *self, const cart_request_t *req, int timeout_ms,
                      void *user, uint64_t *corr, const char **error);

//  Send a PING or STATS (CART_CMD_PING, CART_CMD_STATS) to the broker, as
//  cart_client_send does.
int cart_client_send_command (cart_client_t *self, int command, int timeout_ms,
                              void *user, uint64_t *corr);

//  Take the next result: a reply, or a request whose deadline passed.
//  Waits up to wait_ms (-1: until one comes; 0: not at all). Returns 1
//  with *result filled, 0 when none came in time or the wait was
//  interrupted.
int cart_client_recv (cart_client_t *self, cart_result_t *result, int wait_ms);

//  For callers that poll several sockets: the libzmq socket to poll for
//  ZMQ_POLLIN, and the milliseconds until the next deadline (-1: none).
void *cart_client_handle (cart_client_t *self);

//  A DEALER to the broker as every peer of the bus makes it (the client
//  library, the workers): hwm messages each way, frames up to a body, no
//  linger, reconnecting every 100 ms to 1 s, ZMQ_IMMEDIATE if immediate,
//  routing_id unless NULL, CURVE with curve unless NULL, and a watch on
//  its handshakes into *watch; connected to endpoint. Returns NULL with
//  *error set (when error is not NULL) if it cannot connect.
zsock_t *cart_client_dealer (const char *endpoint, int hwm, bool immediate,
                             const char *routing_id, const cart_curve_t *curve,
                             cart_curve_watch_t **watch, const char **error);

//  What the client's handshakes with the broker came to (cart_curve.h).
cart_curve_state_t cart_client_curve_state (cart_client_t *self);

//  Whether a send to the broker would be taken now: the client has a
//  connection whose handshake is done, with room. It reads the socket's
//  ZMQ_EVENTS, which may take the wake-up of its descriptor: take the
//  replies (cart_client_recv) before waiting on it again.
bool cart_client_connected (cart_client_t *self);
int cart_client_next_timeout (cart_client_t *self);

//  Requests in flight.
size_t cart_client_pending (cart_client_t *self);

#endif
