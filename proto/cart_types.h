/*  =========================================================================
    cart_types - the values that every part of the service shares: limits,
    status codes, operations and the item record.

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

//  Status codes, typed on the wire as one big-endian uint16. They are
//  HTTP's numbers where HTTP has the same meaning, so that a reader of a
//  capture, a log or cartctl's output needs no table.
typedef enum {
    CART_OK = 200,          //  done; body holds the item or cart
    CART_CREATED = 201,     //  item added as new
    CART_DELETED = 204,     //  item removed; no body
    CART_BAD_REQUEST = 400, //  request violates the protocol or a rule
    CART_NOT_FOUND = 404,   //  no such item or cart
    CART_CONFLICT = 409,    //  a cart limit would be exceeded
    CART_INTERNAL = 500,    //  a fault of the service itself
    CART_UNAVAILABLE = 503, //  the owning shard has no live worker
    CART_TIMEOUT = 504      //  no answer within the deadline
} cart_status_t;

//  Cart operations, as numbered on the wire.
typedef enum {
    CART_OP_GET = 1,     //  list a cart
    CART_OP_ADD = 2,     //  add an item, or merge into the same item
    CART_OP_SET = 3,     //  set an item's count (0 removes it)
    CART_OP_REMOVE = 4,  //  remove one item
    CART_OP_CHECKOUT = 5 //  return the cart and remove it
} cart_op_t;

#define CART_OP_MIN CART_OP_GET
#define CART_OP_MAX CART_OP_CHECKOUT

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

#endif
