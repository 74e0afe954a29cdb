/*  =========================================================================
    cart_types - the values that every part of the service shares: limits,
    status codes, operations, the item record and the error convention.

    The limits are those of the HTTP contract; every layer enforces them
    (HTTP front, wire decoders, partition), so that a peer on the bus is
    held to the same rules as a user of the HTTP API.
    =========================================================================
*/
#ifndef CART_TYPES_H_INCLUDED
#define CART_TYPES_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CART_ID_MAX     128                //  bytes in a customerId or itemId
#define CART_EXPIRY_MAX 64                 //  bytes in a saleExpiration string
#define CART_ITEMS_MAX  1000               //  distinct items in one cart
#define CART_COUNT_MAX  1000000            //  units of one item
#define CART_PRICE_MAX  100000000000000ULL //  1e12 in cents
#define CART_BODY_MAX   16384              //  bytes in an HTTP request body
#define CART_SHARDS_MAX 10000              //  shards in one cluster
#define CART_IDEM_MAX   255                //  bytes in an idempotency key

//  Status codes, typed on the wire as one big-endian uint16 in the header
//  (cart_wire.h). They are HTTP's numbers where HTTP has the same meaning,
//  so that a reader of a capture, a log or cartctl's output needs no
//  table. X (NAME, code, meaning)
#define CART_STATUSES(X)                                                                 \
    X (OK, 200, "done; the body holds the item or cart")                                 \
    X (CREATED, 201, "the item was added as new")                                        \
    X (DELETED, 204, "the item was removed; no body")                                    \
    X (BAD_REQUEST, 400, "the request breaks the protocol or a rule of its fields")      \
    X (FORBIDDEN, 403, "a worker's key does not grant a shard it registers for")         \
    X (NOT_FOUND, 404, "no such item, or no such cart")                                  \
    X (CONFLICT, 409,                                                                    \
       "a cart limit would be exceeded; a shard already has a worker; "                  \
       "a request with the same idempotency key is still being applied")                 \
    X (PRECONDITION_FAILED, 412, "the cart's version is not the one the request names")  \
    X (UNPROCESSABLE, 422, "an idempotency key was used before for another request")     \
    X (INTERNAL, 500, "a fault of the service itself")                                   \
    X (UNAVAILABLE, 503, "no live worker serves the shard, or a bound was reached")      \
    X (TIMEOUT, 504, "no answer within the deadline (client side only)")

#define CART_STATUS_ENUM(name, code, meaning) CART_##name = code,
typedef enum { CART_STATUSES (CART_STATUS_ENUM) } cart_status_t;
#undef CART_STATUS_ENUM

//  Cart operations, each declared once. Everything that differs between
//  operations follows from this table: the wire number, the name, the
//  request's shape (which fields its body carries, cart_body.c), the
//  reply's shape (cart_body.c, the HTTP renderer) and the function that
//  runs it (cart_worker.c). Every table indexed by operation is built from
//  this macro, and a static assert checks that it covers every entry.
//
//  X (NAME, name, wire number, request shape, reply shape, changes the cart:
//  a worker logs it when it succeeds)
#define CART_OPS(X)                                                                      \
    X (GET, get, 1, CART_SHAPE_CUSTOMER, CART_REPLY_CART, false)                         \
    X (ADD, add, 2, CART_SHAPE_ITEM, CART_REPLY_ITEM, true)                              \
    X (SET, set, 3, CART_SHAPE_COUNT, CART_REPLY_ITEM, true)                             \
    X (REMOVE, remove, 4, CART_SHAPE_ITEM_ID, CART_REPLY_NONE, true)                     \
    X (CHECKOUT, checkout, 5, CART_SHAPE_CUSTOMER, CART_REPLY_FINAL_CART, true)

#define CART_OP_ENUM(NAME, name, number, request, reply, writes) CART_OP_##NAME = number,
typedef enum { CART_OPS (CART_OP_ENUM) } cart_op_t;
#undef CART_OP_ENUM

#define CART_OP_COUNT_ONE(NAME, name, number, request, reply, writes) +1
#define CART_OP_COUNT                                                 (0 CART_OPS (CART_OP_COUNT_ONE))
#define CART_OP_MIN                                                   1
#define CART_OP_MAX                                                   CART_OP_COUNT

//  What a request body carries after its operation and customerId
typedef enum {
    CART_SHAPE_CUSTOMER, //  nothing more
    CART_SHAPE_ITEM_ID,  //  itemId
    CART_SHAPE_COUNT,    //  itemId, count (0..CART_COUNT_MAX; 0 removes)
    CART_SHAPE_ITEM      //  itemId, price, count, sale, expiry
} cart_shape_t;

//  What a successful reply's body holds
typedef enum {
    CART_REPLY_NONE,      //  nothing (204)
    CART_REPLY_ITEM,      //  the item as stored
    CART_REPLY_CART,      //  the cart
    CART_REPLY_FINAL_CART //  the cart as it was, now gone (checkout)
} cart_reply_shape_t;

//  Returns true when op is one of CART_OPS.
bool cart_op_valid (int op);

//  The operation's name ("get", ...), or "unknown".
const char *cart_op_name (int op);

//  The operation's request and reply shapes, and whether it changes a
//  cart; op must be valid.
cart_shape_t cart_op_shape (cart_op_t op);
cart_reply_shape_t cart_op_reply (cart_op_t op);
bool cart_op_writes (cart_op_t op);

//  One item of a cart. Strings are byte ranges, not NUL-terminated; they
//  point into whatever holds the item (a decoded message, a partition) and
//  live as long as it does.
typedef struct {
    const char *id; //  itemId, 1..CART_ID_MAX bytes
    size_t id_len;
    uint64_t price_cents; //  0..CART_PRICE_MAX
    uint32_t count;       //  1..CART_COUNT_MAX
    bool special_sale;
    const char *expiry; //  RFC 3339 date-time, or NULL for null
    size_t expiry_len;  //  0..CART_EXPIRY_MAX
} cart_item_t;

//  Returns true when the byte range is a valid customerId or itemId:
//  1..CART_ID_MAX bytes of [A-Za-z0-9._~@:-].
bool cart_id_valid (const char *id, size_t len);

//  Returns a short name for a status code ("OK", "UNAVAILABLE", ...), or
//  "UNKNOWN".
const char *cart_status_name (int status);

//  Returns true when status is one of CART_STATUSES.
bool cart_status_known (int status);

//  --------------------------------------------------------------------------
//  Errors. One convention everywhere (README, "For contributors"): a
//  function that fails returns -1 or NULL and, when its `error` argument is
//  not NULL, sets *error to a sentence that the callee owns: a string
//  literal, or the calling thread's error buffer, written by cart_errorf.
//  It stays valid until the next cart_errorf in the same thread. A caller
//  never frees an error; one that keeps it copies it.

//  In a function of that convention: fails with a string literal.
#define CART_FAIL(error, text)                                                           \
    do {                                                                                 \
        if (error)                                                                       \
            *(error) = (text);                                                           \
        return -1;                                                                       \
    } while (0)

//  Formats a message into the calling thread's error buffer (512 bytes,
//  cut beyond) and returns it. The arguments may point into the buffer.
const char *cart_errorf (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

#endif
