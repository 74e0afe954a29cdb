/*  =========================================================================
    cart_wire - the CART/2 header frame (proto/PROTOCOL.md section 3): the
    one place that knows its layout, its commands and their rules.

    Every CART/2 message is one fixed-width header frame and at most one
    body frame, after the identity frame that a ROUTER socket adds. The
    header is 32 bytes, so that libzmq keeps it inside the message itself
    (its "very small message" limit is 33 bytes): sending one allocates
    nothing.
    =========================================================================
*/
#ifndef CART_WIRE_H_INCLUDED
#define CART_WIRE_H_INCLUDED

#include "cart_types.h"

#define CART_VERSION     2
#define CART_HEADER_SIZE 32

#define CART_BODY_WIRE_MAX    (1024 * 1024) //  largest body frame
#define CART_REQUEST_WIRE_MAX 4096          //  largest frame a client may send
#define CART_ERROR_MAX        1024          //  longest error message
#define CART_IDENTITY_MAX     255           //  longest ROUTER identity
#define CART_TIMEOUT_MAX      600000        //  longest deadline a request may ask

//  Heartbeats run every 100 ms by default, and a peer is dead after 3
//  missed ones: a crashed worker's shard answers UNAVAILABLE within about
//  300 ms (at once on tcp or ipc, when the broker notices the closed
//  connection as it routes a request). The cost is one tiny message per
//  worker per 100 ms each way.
#define CART_HEARTBEAT_MS 100
#define CART_LIVENESS     3

//  Who receives a command: a bit per socket end.
#define CART_AT_FRONTEND 1 //  the broker, from a client
#define CART_AT_CLIENT   2 //  a client, from the broker
#define CART_AT_BACKEND  4 //  the broker, from a worker
#define CART_AT_WORKER   8 //  a worker, from the broker

//  Whether a command carries a body frame
typedef enum {
    CART_BODY_NEVER,    //  no body frame
    CART_BODY_OPTIONAL, //  a body frame or none (none reads as empty)
    CART_BODY_ALWAYS    //  exactly one body frame
} cart_body_rule_t;

//  The commands, each declared once. X (NAME, value, body, receivers)
#define CART_COMMANDS(X)                                                                 \
    X (REQUEST, 1, CART_BODY_ALWAYS, CART_AT_FRONTEND | CART_AT_WORKER)                  \
    X (REPLY, 2, CART_BODY_OPTIONAL, CART_AT_CLIENT | CART_AT_BACKEND)                   \
    X (PING, 3, CART_BODY_NEVER, CART_AT_FRONTEND)                                       \
    X (STATS, 4, CART_BODY_NEVER, CART_AT_FRONTEND)                                      \
    X (READY, 5, CART_BODY_ALWAYS, CART_AT_BACKEND)                                      \
    X (HEARTBEAT, 6, CART_BODY_OPTIONAL, CART_AT_BACKEND | CART_AT_WORKER)               \
    X (DISCONNECT, 7, CART_BODY_NEVER, CART_AT_BACKEND | CART_AT_WORKER)                 \
    X (REFUSE, 8, CART_BODY_ALWAYS, CART_AT_WORKER)

#define CART_COMMAND_ENUM(NAME, value, body, receivers) CART_CMD_##NAME = value,
typedef enum { CART_COMMANDS (CART_COMMAND_ENUM) } cart_command_t;
#undef CART_COMMAND_ENUM

//  The header, decoded. Which fields mean something depends on the
//  command (PROTOCOL.md section 3); the others are sent as 0.
typedef struct {
    uint8_t command;     //  cart_command_t
    uint8_t flags;       //  REPLY to a cart request: CART_FLAG_ bits; else 0
    uint16_t status;     //  REPLY: cart_status_t; REFUSE: why
    uint16_t shard;      //  REQUEST to a worker, REPLY from it: the shard
    uint32_t timeout_ms; //  REQUEST, PING, STATS: how long the sender waits
    uint32_t acked;      //  from a client: reply body bytes it has taken,
                         //  modulo 2^32 (flow control, PROTOCOL.md 7)
    uint64_t corr;       //  correlation id
    uint64_t key;        //  REQUEST: hash_key (customerId), below 2^63;
                         //  REPLY to a cart request: the cart's version
} cart_header_t;

//  Flags of a REPLY to a cart request
#define CART_FLAG_REPLAYED                                                               \
    0x01 //  the answer of an earlier request with the same
         //  idempotency key, given again

//  Writes a header into wire[CART_HEADER_SIZE].
void cart_header_encode (const cart_header_t *header, uint8_t *wire);

//  Reads and checks a header frame received at `at` (one CART_AT_ bit):
//  the size, the protocol signature and version, a command that `at` may
//  receive, a known status in a REPLY or REFUSE, a key below 2^63 and a
//  shard below CART_SHARDS_MAX. Returns 0, or -1 with *error set; the
//  fields are decoded as far as they could be read (so that a broker can
//  still answer a malformed request by its corr).
int cart_header_decode (const void *data, size_t size, int at, cart_header_t *header,
                        const char **error);

//  Whether a command may or must carry a body; the command must be known.
cart_body_rule_t cart_command_body (int command);

//  The command's name ("REQUEST", ...), or "UNKNOWN".
const char *cart_command_name (int command);

//  Big-endian fixed-width fields of 1 to 8 bytes, for whatever else has
//  them (the shard log's records).
void cart_put_be (uint8_t *p, uint64_t value, size_t width);
uint64_t cart_get_be (const uint8_t *p, size_t width);
void cart_put_u32 (uint8_t *p, uint32_t value);
uint32_t cart_get_u32 (const uint8_t *p);

#endif
