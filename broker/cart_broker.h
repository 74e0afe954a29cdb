/*  =========================================================================
    cart_broker - the CART/2 broker: routes each client request by its key
    over the ring to the worker that owns the key's shard, and each reply
    back to its client (proto/PROTOCOL.md).

    The broker is a czmq actor. It binds a ROUTER for clients (frontend)
    and a ROUTER for workers (backend), tracks which worker serves each
    shard by READY and heartbeats, and answers UNAVAILABLE at once for a
    shard that no live worker serves.

        cart_broker_config_t config = {.frontend = "tcp://127.0.0.1:*",
                                       .backend = "inproc://workers",
                                       .shards = 4};
        const char *error = NULL;
        cart_broker_t *broker = cart_broker_new (&config, &error);
        printf ("clients connect to %s\n", cart_broker_frontend (broker));
        ...
        cart_broker_destroy (&broker);

    The actor's own commands, on its pipe (cart_broker_actor):
        zstr_send (actor, "$TERM")            stop
    and it sends, right after zsock_signal, one string: "OK" or an error.
    =========================================================================
*/
#ifndef CART_BROKER_H_INCLUDED
#define CART_BROKER_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#include "cart_curve.h"
#include "cart_wire.h"

//  Reply bytes a client may leave unread before the broker answers its
//  requests, and replaces its replies, with a short 503 (PROTOCOL.md 7)
#define CART_BROKER_UNREAD_MAX (32 << 20)

typedef struct {
    const char *frontend; //  endpoint(s) to bind for clients
    const char *backend;  //  endpoint(s) to bind for workers
    uint32_t shards;      //  1..CART_SHARDS_MAX
    int heartbeat_ms;     //  0: CART_HEARTBEAT_MS
    int liveness;         //  missed heartbeats before a worker is dead;
                          //  0: CART_LIVENESS
    bool verbose;         //  log workers joining and leaving
    //  CURVE on both sockets (cart_curve.h): the broker's key pair, and the
    //  directories of the public keys that its backend and its frontend
    //  admit. NULL: a plain bus, open to anyone who reaches it
    const cart_curve_t *curve;
    const char *worker_keys;
    const char *client_keys;
} cart_broker_config_t;

typedef struct _cart_broker_t cart_broker_t;

//  Start a broker. On failure (bad config, endpoint in use) returns NULL
//  with *error set (cart_types.h).
cart_broker_t *cart_broker_new (const cart_broker_config_t *config, const char **error);

//  Stop a broker and destroy it; sets *self_p to NULL.
void cart_broker_destroy (cart_broker_t **self_p);

//  The endpoints the broker bound, with the ports that the system chose
//  for "tcp://...:*"; valid as long as the broker.
const char *cart_broker_frontend (cart_broker_t *self);
const char *cart_broker_backend (cart_broker_t *self);

//  The actor itself, for zactor_new; args is a cart_broker_config_t *.
void cart_broker_actor (zsock_t *pipe, void *args);

#endif
