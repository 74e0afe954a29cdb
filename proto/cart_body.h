/*  =========================================================================
    cart_body - the msgpack bodies of cart requests and their replies
    (PROTOCOL.md section 4), with their encoders and decoders.

    Decoders take bytes from the network: each returns 0, or -1 with
    *error set (cart_types.h), and never asserts, allocates or reads out
    of bounds on malformed input. Decoded strings point into the input
    bytes and live as long as they do.
    =========================================================================
*/
#ifndef CART_BODY_H_INCLUDED
#define CART_BODY_H_INCLUDED

#include <msgpack.h>

#include "cart_types.h"

//  A request's condition on the cart's version (HTTP's If-Match)
typedef enum {
    CART_MATCH_NONE,   //  none
    CART_MATCH_ANY,    //  the cart exists (If-Match: *)
    CART_MATCH_VERSION //  the cart's version is `version` (0: the cart is empty)
} cart_match_t;

//  A cart request (PROTOCOL.md 4.1). Which item fields are used follows
//  from the operation's shape (CART_OPS): ITEM uses all, COUNT item.id and
//  item.count, ITEM_ID item.id, CUSTOMER none. The options after them are
//  sent only when one is set.
typedef struct {
    cart_op_t op;
    const char *customer;
    size_t customer_len;
    cart_item_t item;
    //  Options
    uint64_t at;        //  in a shard's log: when it was applied, in seconds
                        //  since the epoch; 0 otherwise
    cart_match_t match; //  the condition on the cart's version
    uint64_t version;   //  CART_MATCH_VERSION: the version, below 2^63
    const char *idem;   //  an idempotency key, or NULL
    size_t idem_len;    //  1..CART_IDEM_MAX bytes of visible ASCII
} cart_request_t;

//  True when the byte range is a valid idempotency key: 1..CART_IDEM_MAX
//  bytes of visible ASCII (0x21..0x7E).
bool cart_idem_valid (const char *key, size_t len);

//  Check a request against every rule of PROTOCOL.md 4 (identifiers,
//  ranges, lengths, the RFC 3339 date). Returns 0 or -1.
int cart_request_check (const cart_request_t *req, const char **error);

//  Append a request's body to buf. Returns 0, or -1 when the request does
//  not pass cart_request_check (nothing is appended then).
int cart_request_encode (const cart_request_t *req, msgpack_sbuffer *buf,
                         const char **error);

//  Decode and check a request body. Returns 0 or -1.
int cart_request_decode (const void *data, size_t size, cart_request_t *req,
                         const char **error);

//  The shapes a reply body takes (PROTOCOL.md 4.2)
typedef enum {
    CART_BODY_NONE, //  empty
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

//  Write an error body into buffer[capacity] without a packer (the
//  broker's own answers); the message is cut to fit; capacity is at least
//  2. Returns its size.
size_t cart_reply_error_body (uint8_t *buffer, size_t capacity, const char *message);

//  Decode a reply body, by its shape. A cart's items are checked as they
//  are read. Returns 0 or -1.
int cart_reply_decode (const void *data, size_t size, cart_reply_t *reply,
                       const char **error);

//  Read a decoded cart's next item into *item. Returns 1, 0 after the last
//  item (the body must then have been read exactly), or -1 with *error set
//  when the item is malformed.
int cart_reply_next_item (cart_reply_t *reply, cart_item_t *item, const char **error);

#endif
