/*  =========================================================================
    cart_msg - CART/2 messages on libzmq sockets.

    A header is 32 bytes, under libzmq's 33-byte limit for messages kept
    inside zmq_msg_t itself, so zmq_send of a header allocates nothing.
    =========================================================================
*/
#include "cart_msg.h"

#include <errno.h>
#include <string.h>

#define FAIL(text) CART_FAIL (error, text)

void
cart_msg_init (cart_msg_t *msg)
{
    zmq_msg_init (&msg->identity);
    zmq_msg_init (&msg->body);
    memset (&msg->header, 0, sizeof (msg->header));
    msg->frames = 0;
}

void
cart_msg_close (cart_msg_t *msg)
{
    zmq_msg_close (&msg->identity);
    zmq_msg_close (&msg->body);
    cart_msg_init (msg);
}

const void *
cart_msg_body (cart_msg_t *msg)
{
    return zmq_msg_data (&msg->body);
}

size_t
cart_msg_body_size (cart_msg_t *msg)
{
    return zmq_msg_size (&msg->body);
}

//  Reads the rest of a message that is too long, so that the next read
//  starts at a message boundary; returns how many frames it read.
static size_t
s_drain_rest (void *socket)
{
    size_t count = 0;
    zmq_msg_t spare;
    zmq_msg_init (&spare);
    while (zmq_msg_recv (&spare, socket, ZMQ_DONTWAIT) != -1) {
        count++;
        if (!zmq_msg_more (&spare))
            break;
    }
    zmq_msg_close (&spare);
    return count;
}

//  Receives the frames: identity (routed), header, body. Returns the number
//  of frames read (0 when none came); past three, the rest are dropped.
static size_t
s_recv_frames (void *socket, bool routed, cart_msg_t *msg, zmq_msg_t *head, int flags)
{
    zmq_msg_t *slots[3] = {routed ? &msg->identity : head, routed ? head : &msg->body,
                           routed ? &msg->body : NULL};
    size_t count = 0;
    while (count < 3 && slots[count]) {
        if (zmq_msg_recv (slots[count], socket, count ? ZMQ_DONTWAIT : flags) == -1)
            return count;
        count++;
        if (!zmq_msg_more (slots[count - 1]))
            return count;
    }
    return count + s_drain_rest (socket);
}

//  Copies a property of msg's connection into out (size bytes, "" when the
//  connection has none). Once a message on the broker's backend: no printf.
static void
s_property_copy (zmq_msg_t *msg, const char *name, char *out, size_t size)
{
    const char *value = zmq_msg_gets (msg, name);
    size_t len = value ? strnlen (value, size - 1) : 0;
    memcpy (out, value ? value : "", len);
    out[len] = 0;
}

int
cart_msg_recv (void *socket, int at, bool routed, cart_msg_t *msg, int flags,
               const char **error)
{
    return cart_msg_recv_peer (socket, at, routed, msg, flags, NULL, error);
}

int
cart_msg_recv_peer (void *socket, int at, bool routed, cart_msg_t *msg, int flags,
                    cart_peer_t *peer, const char **error)
{
    cart_msg_close (msg);
    zmq_msg_t head;
    zmq_msg_init (&head);
    msg->frames = s_recv_frames (socket, routed, msg, &head, flags);
    if (msg->frames == 0) {
        zmq_msg_close (&head);
        return 0;
    }
    size_t own = msg->frames - (routed ? 1 : 0); //  header and body
    int rc = own < 1 ? -1
                     : cart_header_decode (zmq_msg_data (&head), zmq_msg_size (&head), at,
                                           &msg->header, error);
    if (peer) {
        s_property_copy (&head, "User-Id", peer->user, sizeof (peer->user));
        peer->shards[0] = 0;
        if (rc == 0 && msg->header.command == CART_CMD_READY)
            s_property_copy (&head, CART_PEER_SHARDS, peer->shards,
                             sizeof (peer->shards));
    }
    zmq_msg_close (&head);
    if (own < 1)
        FAIL ("the message has no header frame");
    if (rc)
        return -1;
    if (own > 2)
        FAIL ("the message has more than a header and a body frame");
    cart_body_rule_t rule = cart_command_body (msg->header.command);
    if (rule == CART_BODY_NEVER && own == 2)
        FAIL ("the message has a body frame where its command has none");
    if (rule == CART_BODY_ALWAYS && own == 1)
        FAIL ("the message has no body frame where its command needs one");
    if (zmq_msg_size (&msg->body) > CART_BODY_WIRE_MAX)
        FAIL ("the body frame is larger than 1 MiB");
    return 1;
}

cart_frame_t
cart_frame_msg (zmq_msg_t *msg)
{
    return (cart_frame_t){msg, NULL, 0};
}

cart_frame_t
cart_frame_bytes (const void *data, size_t size)
{
    return (cart_frame_t){NULL, data, size};
}

static int
s_send_frame (void *socket, const cart_frame_t *frame, int flags)
{
    if (!frame->msg)
        return zmq_send (socket, frame->data, frame->size, flags);
    return zmq_msg_send (frame->msg, socket, flags);
}

static void
s_consume (const cart_frame_t *frame)
{
    if (frame && frame->msg) {
        zmq_msg_close (frame->msg);
        zmq_msg_init (frame->msg);
    }
}

int
cart_msg_send (void *socket, const cart_frame_t *identity, const cart_header_t *header,
               const cart_frame_t *body)
{
    uint8_t wire[CART_HEADER_SIZE];
    cart_header_encode (header, wire);
    int more = ZMQ_DONTWAIT | ZMQ_SNDMORE;
    int rc = 0;
    if (identity && s_send_frame (socket, identity, more) == -1)
        rc = -1;
    //  After the first frame is queued, libzmq queues the rest of the
    //  message with it (its high-water mark counts whole messages)
    else if (zmq_send (socket, wire, sizeof (wire), body ? more : ZMQ_DONTWAIT) == -1)
        rc = -1;
    else if (body && s_send_frame (socket, body, ZMQ_DONTWAIT) == -1)
        rc = -1;
    int saved = errno;
    s_consume (identity);
    s_consume (body);
    errno = saved;
    return rc;
}
