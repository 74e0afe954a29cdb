/*  =========================================================================
    cart_proto - the CART/1 wire protocol (proto/PROTOCOL.md): frames,
    commands and msgpack bodies, with their encoders and decoders.

    Decoders take bytes from the network: each returns 0, or -1 with
    *error set to a static sentence naming the fault, and never asserts,
    allocates or reads out of bounds on malformed input. Decoded strings
    point into the input bytes and live as long as they do.
    =========================================================================
*/
#ifndef CART_PROTO_H_INCLUDED
#define CART_PROTO_H_INCLUDED

#include <msgpack.h>
#include <zmq.h>
#include "cart_types.h"

#define CART_PROTO_CLIENT  "CARTC01" //  client <-> broker frontend
#define CART_PROTO_WORKER  "CARTW01" //  worker <-> broker backend
#define CART_PROTO_LEN     7
#define CART_BODY_WIRE_MAX (1024 * 1024) //  largest body frame
#define CART_ERROR_MAX     1024          //  longest error message
#define CART_IDENTITY_MAX  255           //  longest client identity
#define CART_FRAMES_MAX    8             //  frames in the longest message
//  Largest message a socket facing the network accepts (ZMQ_MAXMSGSIZE
//  limits each frame): the body frame.
#define CART_WIRE_MSG_MAX (CART_BODY_WIRE_MAX)
//  Largest frame a client may send: a request body is at most ~400 bytes
#define CART_REQUEST_WIRE_MAX 4096

//  Heartbeats run every 100 ms by default, and a peer is dead after 3
//  missed ones: a crashed worker's shard answers UNAVAILABLE within about
//  300 ms (at once on tcp or ipc, when the broker notices the closed
//  connection as it routes a request). The cost is one tiny message per
//  worker per 100 ms each way.
#define CART_HEARTBEAT_MS 100
#define CART_LIVENESS     3

//  Commands between a client and the broker's frontend
typedef enum {
    CART_C_REQUEST = 1,
    CART_C_PING = 2,
    CART_C_STATS = 3,
    CART_C_REPLY = 4
} cart_client_cmd_t;

//  Commands between a worker and the broker's backend
typedef enum {
    CART_W_READY = 1,
    CART_W_REQUEST = 2,
    CART_W_REPLY = 3,
    CART_W_HEARTBEAT = 4,
    CART_W_DISCONNECT = 5
} cart_worker_cmd_t;

//  One frame of a message, as a byte range.
typedef struct {
    const void *data;
    size_t size;
} cart_frame_t;

//  A message of either protocol, parsed. Which fields mean something
//  depends on the command (PROTOCOL.md section 3).
typedef struct {
    int command;
    uint64_t corr;         //  correlation id
    uint64_t key;          //  routing key, hash_key (customerId)
    uint32_t shard;        //  w-request
    uint16_t status;       //  replies
    cart_frame_t client;   //  w-request, w-reply: client identity
    cart_frame_t body;     //  request, reply, heartbeat load
    const uint8_t *shards; //  w-ready: packed big-endian uint32s
    size_t n_shards;
    //  Scratch for the fixed-width frames when building a message
    uint8_t wire[1 + 8 + 8 + 4 + 2];
} cart_msg_t;

//  --------------------------------------------------------------------------
//  Frames

//  Parse the frames of a message between a client and the broker
//  (c-request, c-ping, c-stats or c-reply). Returns 0 or -1.
int cart_msg_parse_client (const cart_frame_t *frames, size_t n, cart_msg_t *msg,
                           const char **error);

//  Parse the frames of a message between a worker and the broker. shards
//  is the cluster's shard count: a shard number at or above it is an error.
//  Returns 0 or -1.
int cart_msg_parse_worker (const cart_frame_t *frames, size_t n, uint32_t shards,
                           cart_msg_t *msg, const char **error);

//  Lay out msg (command and the fields it uses) as the frames of a client
//  message, into frames[CART_FRAMES_MAX]. The frames point into msg and
//  into what its fields point to. Returns the number of frames.
size_t cart_msg_frames_client (cart_msg_t *msg, cart_frame_t *frames);

//  The same for a message between a worker and the broker.
size_t cart_msg_frames_worker (cart_msg_t *msg, cart_frame_t *frames);

//  Read a w-ready's shard number i (0 .. n_shards-1).
uint32_t cart_msg_shard_at (const cart_msg_t *msg, size_t i);

//  Receives one whole message from a libzmq socket into parts[0..max):
//  the first frame with flags (0 waits, up to the socket's ZMQ_RCVTIMEO;
//  ZMQ_DONTWAIT does not), the rest of the message without waiting.
//  Frames past max are read and dropped but counted, so that a parser
//  sees the message as too long. Returns the frame count, or 0 when no
//  message came. Close the parts with cart_msg_close.
size_t cart_msg_recv (void *socket, zmq_msg_t *parts, size_t max, int flags);

//  Closes the parts that cart_msg_recv filled (count as it returned).
void cart_msg_close (zmq_msg_t *parts, size_t max, size_t count);

//  Big-endian fixed-width fields.
void cart_put_u64 (uint8_t *p, uint64_t value);
uint64_t cart_get_u64 (const uint8_t *p);
void cart_put_u32 (uint8_t *p, uint32_t value);
uint32_t cart_get_u32 (const uint8_t *p);

//  --------------------------------------------------------------------------
//  Bodies

//  A cart request (PROTOCOL.md 4.1). For ADD every item field is used;
//  for SET, item.id and item.count; for REMOVE, item.id.
typedef struct {
    cart_op_t op;
    const char *customer;
    size_t customer_len;
    cart_item_t item;
} cart_request_t;

//  Check a request against every rule of PROTOCOL.md 4 (identifiers,
//  ranges, lengths). Returns 0, or -1 with *error set.
int cart_request_check (const cart_request_t *req, const char **error);

//  Append a request's msgpack body to buf. The request must pass
//  cart_request_check. Returns 0, or -1 with *error set.
int cart_request_encode (const cart_request_t *req, msgpack_sbuffer *buf,
                         const char **error);

//  Decode and check a request body. Returns 0 or -1.
int cart_request_decode (const void *data, size_t size, cart_request_t *req,
                         const char **error);

//  The shapes a reply body takes (PROTOCOL.md 4.2)
typedef enum {
    CART_BODY_NONE, //  empty frame
    CART_BODY_ITEM,
    CART_BODY_CART,
    CART_BODY_ERROR
} cart_body_kind_t;

//  A decoded reply body. A cart's items are read one at a time with
//  cart_reply_next_item, which decodes as it goes and allocates nothing.
typedef struct {
    cart_body_kind_t kind;
    cart_item_t item;     //  ITEM
    const char *customer; //  CART
    size_t customer_len;
    size_t n_items;      //  CART
    const char *message; //  ERROR
    size_t message_len;
    //  Private: where the next cart item starts
    const uint8_t *cursor;
    const uint8_t *limit;
    size_t items_read;
} cart_reply_t;

//  Append an item body.
void cart_reply_encode_item (msgpack_packer *pk, const cart_item_t *item);

//  Append a cart body's head; then call cart_reply_encode_item n_items
//  times.
void cart_reply_encode_cart (msgpack_packer *pk, const char *customer,
                             size_t customer_len, size_t n_items);

//  Append an error body; the message is cut at CART_ERROR_MAX bytes.
void cart_reply_encode_error (msgpack_packer *pk, const char *message);

//  Decode a reply body, by its shape. A cart's items are checked as they
//  are read. Returns 0 or -1.
int cart_reply_decode (const void *data, size_t size, cart_reply_t *reply,
                       const char **error);

//  Read a decoded cart's next item into *item. Returns 1, 0 after the last
//  item (the body must then have been read exactly), or -1 with *error set
//  when the item is malformed.
int cart_reply_next_item (cart_reply_t *reply, cart_item_t *item, const char **error);

//  --------------------------------------------------------------------------
//  Load (worker heartbeat) and stats (broker reply) bodies

//  One shard's figures, as a worker reports them (load) or the broker
//  sees them (stats: all fields).
typedef struct {
    uint32_t shard;
    bool live; //  stats only
    uint64_t carts;
    uint64_t items;
    uint64_t requests; //  stats only
} cart_shard_stats_t;

//  A decoded list of shard figures, read one entry at a time.
typedef struct {
    uint32_t shards; //  stats: the cluster's shard count
    size_t n_entries;
    //  Private
    const uint8_t *cursor;
    const uint8_t *limit;
    size_t entries_read;
    bool with_broker_fields;
} cart_stats_list_t;

//  Append a load body's head (n entries follow).
void cart_load_encode (msgpack_packer *pk, size_t n_entries);

//  Append one load entry.
void cart_load_encode_entry (msgpack_packer *pk, const cart_shard_stats_t *entry);

//  Append a stats body's head (n entries follow).
void cart_stats_encode (msgpack_packer *pk, uint32_t shards, size_t n_entries);

//  Append one stats entry.
void cart_stats_encode_entry (msgpack_packer *pk, const cart_shard_stats_t *entry);

//  Decode the head of a load body. Returns 0 or -1.
int cart_load_decode (const void *data, size_t size, cart_stats_list_t *list,
                      const char **error);

//  Decode the head of a stats body. Returns 0 or -1.
int cart_stats_decode (const void *data, size_t size, cart_stats_list_t *list,
                       const char **error);

//  Read the next entry of a load or stats list. Returns 1, 0 after the last
//  (the body must then have been read exactly), or -1 with *error set.
int cart_stats_next (cart_stats_list_t *list, cart_shard_stats_t *entry,
                     const char **error);

#endif
