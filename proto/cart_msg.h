/*  =========================================================================
    cart_msg - CART/2 messages on libzmq sockets: every send and receive of
    the broker, the worker and the client library goes through here, so
    that no other file knows the order of a message's frames.

    A message is [identity] header [body]: the identity frame only on a
    ROUTER socket, the 32-byte header (cart_wire.h), and a body frame when
    the command has one. Frames are moved, never copied, where they pass
    through (the broker forwards a body as the very zmq_msg_t it got).

        cart_msg_t msg;
        cart_msg_init (&msg);
        const char *error;
        int rc = cart_msg_recv (router, CART_AT_FRONTEND, true, &msg, ZMQ_DONTWAIT,
                                &error);
        ...  rc 1: msg.header and cart_msg_body (&msg) hold the message
        cart_msg_close (&msg);
    =========================================================================
*/
#ifndef CART_MSG_H_INCLUDED
#define CART_MSG_H_INCLUDED

#include <zmq.h>

#include "cart_wire.h"

//  A received message: its frames as libzmq gave them, and its header
//  decoded.
typedef struct {
    zmq_msg_t identity; //  ROUTER sockets: the sender; else empty
    zmq_msg_t body;     //  empty when the message has no body frame
    cart_header_t header;
    size_t frames; //  as received, identity included
} cart_msg_t;

//  Make msg empty (once, before its first use).
void cart_msg_init (cart_msg_t *msg);

//  Close the frames msg holds; it is empty again and can be reused.
void cart_msg_close (cart_msg_t *msg);

//  Receive one whole message from socket into msg (which is closed
//  first). `at` is the CART_AT_ bit of this end of the bus; `routed` says
//  that socket is a ROUTER, whose first frame is the sender's identity.
//  flags 0 waits up to the socket's ZMQ_RCVTIMEO, ZMQ_DONTWAIT does not.
//  Returns 1 for a well-formed message; 0 when none came (errno says why);
//  -1 when a malformed one was read and dropped whole, with *error set,
//  msg->identity valid and msg->header decoded as far as it could be (so
//  that the caller can answer it).
int cart_msg_recv (void *socket, int at, bool routed, cart_msg_t *msg, int flags,
                   const char **error);

//  Who sent a message over CURVE: the name of its key (ZAP's User-Id,
//  "" without CURVE) and, for a READY, the shards that key grants ("":
//  every shard), which the broker's ZAP handler gives the connection as
//  the property CART_PEER_SHARDS (cart_curve.h).
#define CART_PEER_SHARDS      "X-Shards"
#define CART_CURVE_NAME_MAX   63   //  longest key name (its file's, less ".key")
#define CART_CURVE_SHARDS_MAX 1023 //  longest shard list of a key
typedef struct {
    char user[CART_CURVE_NAME_MAX + 1];
    char shards[CART_CURVE_SHARDS_MAX + 1];
} cart_peer_t;

//  cart_msg_recv that also fills *peer from the message's properties.
int cart_msg_recv_peer (void *socket, int at, bool routed, cart_msg_t *msg, int flags,
                        cart_peer_t *peer, const char **error);

//  The body of a received message (size 0 when it has none).
const void *cart_msg_body (cart_msg_t *msg);
size_t cart_msg_body_size (cart_msg_t *msg);

//  One frame to send: a zmq_msg_t to move (msg not NULL), or bytes to copy.
typedef struct {
    zmq_msg_t *msg;
    const void *data;
    size_t size;
} cart_frame_t;

//  A frame that moves a zmq_msg_t, and one that copies bytes.
cart_frame_t cart_frame_msg (zmq_msg_t *msg);
cart_frame_t cart_frame_bytes (const void *data, size_t size);

//  Send [identity] header [body] without waiting: identity only to a
//  ROUTER (NULL otherwise), body NULL for a command that has none. Every
//  zmq_msg_t given is consumed (sent, or closed and left empty). Returns 0,
//  or -1 with libzmq's errno (EAGAIN: no room; EHOSTUNREACH: no such
//  peer on a ROUTER_MANDATORY socket) when nothing was sent.
int cart_msg_send (void *socket, const cart_frame_t *identity,
                   const cart_header_t *header, const cart_frame_t *body);

#endif
