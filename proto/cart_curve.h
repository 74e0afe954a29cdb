/*  =========================================================================
    cart_curve - CURVE on the bus: key files, the keys of a connecting
    socket, and the broker's authentication handler (ZAP, RFC 27).

    Key files are czmq's certificates (zcert): NAME.key holds the public
    key and metadata, NAME.key_secret the pair, mode 0600. A worker's key
    may name the shards it may serve in its metadata ("shards = 0-3");
    without it, every shard.

        cart_curve_t keys;
        if (cart_curve_load (&keys, "worker-0.key", "broker.key", &error))
            ...
        cart_curve_client (dealer, &keys);      //  before zsock_connect

    The broker: a ZAP handler per process, then each ROUTER made a CURVE
    server in its domain before it binds. libzmq's defaults fail open, so
    both are needed: a CURVE server with no handler bound on
    inproc://zeromq.zap.01 takes any client that knows the server's key,
    unless ZMQ_ZAP_ENFORCE_DOMAIN is set (libzmq 4.3 curve_server.cpp); and
    czmq's zauth keeps one allow-list per process, whatever the domain.
    This handler keeps a list per domain, each read from a directory of
    public keys, and answers with the key's name as the User-Id and its
    shards as the property CART_PEER_SHARDS: the broker reads both from
    the messages of that connection (cart_msg_recv_peer).
    =========================================================================
*/
#ifndef CART_CURVE_H_INCLUDED
#define CART_CURVE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#include "cart_msg.h"

//  The ZAP domains of the broker's two sockets
#define CART_CURVE_WORKERS "workers"
#define CART_CURVE_CLIENTS "clients"

typedef struct {
    char public_txt[41]; //  Z85
    char secret_txt[41];
    char server_txt[41]; //  the broker's public key; "" on the broker
} cart_curve_t;

//  Loads a key pair from cert (NAME.key, with NAME.key_secret beside it),
//  and, unless broker_key is NULL, the broker's public key from that file.
//  Returns 0, or -1 with *error set naming the file and what is wrong.
int cart_curve_load (cart_curve_t *curve, const char *cert, const char *broker_key,
                     const char **error);

//  For a program's --cert FILE and --broker-key FILE: both NULL sets *out
//  to NULL (a plain bus); both given loads them into *curve and sets *out
//  to curve. Returns 0, or -1 with *error set (one without the other, or
//  what cart_curve_load says).
int cart_curve_options (const char *cert, const char *broker_key, cart_curve_t *curve,
                        const cart_curve_t **out, const char **error);

//  The lines of --help for those two options.
extern const char cart_curve_client_help[];

//  Makes sock a CURVE client of the broker; curve NULL: leaves it plain.
//  Call before connecting.
void cart_curve_client (zsock_t *sock, const cart_curve_t *curve);

//  Makes sock a CURVE server in domain that fails closed: without a ZAP
//  handler it admits nobody. Call before binding. Returns 0, or -1 with
//  *error set when this libzmq cannot fail closed.
int cart_curve_server (zsock_t *sock, const cart_curve_t *curve, const char *domain,
                       const char **error);

//  What a client's CURVE handshakes with the broker came to, so that a
//  program can say why it hears nothing (libzmq drops a refused
//  connection silently and tries again).
typedef enum {
    CART_CURVE_PENDING,  //  no handshake has ended yet
    CART_CURVE_ADMITTED, //  the last one succeeded
    CART_CURVE_REFUSED,  //  the broker refused our key (not in its list)
    CART_CURVE_FAILED    //  a connection closed before its handshake ended:
                         //  a wrong --broker-key, or CURVE on one side only
} cart_curve_state_t;

//  Watches the handshakes of sock (a zsock_t or a libzmq socket) with
//  zmq_socket_monitor; call before connecting,
//  and call cart_curve_watch_state often (every tick of a loop): the
//  events queue up until then. NULL when the monitor cannot be made.
typedef struct _cart_curve_watch_t cart_curve_watch_t;
cart_curve_watch_t *cart_curve_watch_new (void *sock);
void cart_curve_watch_destroy (cart_curve_watch_t **self_p);

//  Takes the events that came since the last call, without waiting, and
//  returns the state they leave.
cart_curve_state_t cart_curve_watch_state (cart_curve_watch_t *self);

//  A sentence for a state, naming what to check.
const char *cart_curve_state_text (cart_curve_state_t state);

//  Writes dir/name.key and dir/name.key_secret (0600), creating dir
//  (0755) if missing; shards (NULL: none) goes into the metadata. With
//  keep, an existing pair is left as it is and *kept is set. Returns 0, or
//  -1 with *error set; a name must be 1..CART_CURVE_NAME_MAX characters of
//  [A-Za-z0-9._-], not starting with '.'.
int cart_curve_keygen (const char *dir, const char *name, const char *shards, bool keep,
                       bool *kept, const char **error);

//  The ZAP handler: one per process (it binds inproc://zeromq.zap.01).
//  Admits a connection to the socket of CART_CURVE_WORKERS when its key is
//  among the public keys (*.key) of worker_dir, to CART_CURVE_CLIENTS when
//  among client_dir's; refuses every other. Rereads a directory when it
//  changes, at most once a second, so that a key added or removed counts
//  for the next connection. Returns NULL with *error set when a directory
//  cannot be read or another handler runs in this process.
typedef struct _cart_zap_t cart_zap_t;
cart_zap_t *cart_zap_new (const char *worker_dir, const char *client_dir, bool verbose,
                          const char **error);
void cart_zap_destroy (cart_zap_t **self_p);

#endif
