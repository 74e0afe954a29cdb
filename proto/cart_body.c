/*  =========================================================================
    cart_body - request and reply bodies. What each operation's request
    carries follows from its shape in CART_OPS; every switch below is on a
    shape, with no default, so that the compiler names a shape left out.
    =========================================================================
*/
#include "cart_body.h"

#include <assert.h>
#include <string.h>

#include "cart_mpack.h"
#include "cart_time.h"
#include "cart_wire.h"

#define FAIL(text) CART_FAIL (error, text)

//  --------------------------------------------------------------------------
//  Requests

//  The msgpack array length of a request of this shape: op, customer, ...
static size_t
s_fields (cart_shape_t shape)
{
    switch (shape) {
        case CART_SHAPE_CUSTOMER:
            return 2;
        case CART_SHAPE_ITEM_ID:
            return 3;
        case CART_SHAPE_COUNT:
            return 4;
        case CART_SHAPE_ITEM:
            return 7;
    }
    return 0;
}
#define FIELDS_MAX 8 //  7, and the options

bool
cart_idem_valid (const char *key, size_t len)
{
    if (!key || len < 1 || len > CART_IDEM_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (key[i] < 0x21 || key[i] > 0x7E)
            return false;
    return true;
}

static bool
s_has_options (const cart_request_t *req)
{
    return req->at || req->match != CART_MATCH_NONE || req->idem;
}

static int
s_check_item (const cart_item_t *item, const char **error)
{
    if (item->count < 1 || item->count > CART_COUNT_MAX)
        FAIL ("itemCount must be 1 to 1000000");
    if (item->price_cents > CART_PRICE_MAX)
        FAIL ("offeredPrice must be 0 to 1000000000000");
    if (item->expiry && (item->expiry_len < 1 || item->expiry_len > CART_EXPIRY_MAX ||
                         !cart_time_valid (item->expiry, item->expiry_len)))
        FAIL ("saleExpiration must be null or an RFC 3339 date-time of at most 64 "
              "characters");
    return 0;
}

int
cart_request_check (const cart_request_t *req, const char **error)
{
    if (!cart_op_valid (req->op))
        FAIL ("unknown operation");
    if (!cart_id_valid (req->customer, req->customer_len))
        FAIL ("customerId must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ @ : -");
    if (req->idem && !cart_idem_valid (req->idem, req->idem_len))
        FAIL ("an idempotency key must be 1 to 255 characters of visible ASCII");
    if (req->match > CART_MATCH_VERSION || req->version >> 63)
        FAIL ("a cart version must be below 2^63");
    cart_shape_t shape = cart_op_shape (req->op);
    if (shape == CART_SHAPE_CUSTOMER)
        return 0;
    if (!cart_id_valid (req->item.id, req->item.id_len))
        FAIL ("itemId must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ @ : -");
    if (shape == CART_SHAPE_COUNT && req->item.count > CART_COUNT_MAX)
        FAIL ("newCount must be 0 to 1000000");
    return shape == CART_SHAPE_ITEM ? s_check_item (&req->item, error) : 0;
}

int
cart_request_encode (const cart_request_t *req, msgpack_sbuffer *buf, const char **error)
{
    if (cart_request_check (req, error))
        return -1;
    cart_shape_t shape = cart_op_shape (req->op);
    const cart_item_t *item = &req->item;
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    bool options = s_has_options (req);
    msgpack_pack_array (&pk, s_fields (shape) + options);
    msgpack_pack_uint8 (&pk, (uint8_t)req->op);
    cart_mpack_pack_str (&pk, req->customer, req->customer_len);
    switch (shape) {
        case CART_SHAPE_CUSTOMER:
            break;
        case CART_SHAPE_ITEM_ID:
            cart_mpack_pack_str (&pk, item->id, item->id_len);
            break;
        case CART_SHAPE_COUNT:
            cart_mpack_pack_str (&pk, item->id, item->id_len);
            msgpack_pack_uint32 (&pk, item->count);
            break;
        case CART_SHAPE_ITEM:
            cart_mpack_pack_str (&pk, item->id, item->id_len);
            msgpack_pack_uint64 (&pk, item->price_cents);
            msgpack_pack_uint32 (&pk, item->count);
            cart_mpack_pack_bool (&pk, item->special_sale);
            cart_mpack_pack_opt_str (&pk, item->expiry, item->expiry_len);
            break;
    }
    if (options) {
        msgpack_pack_array (&pk, 3);
        msgpack_pack_uint64 (&pk, req->at);
        if (req->match == CART_MATCH_ANY)
            msgpack_pack_true (&pk);
        else if (req->match == CART_MATCH_VERSION)
            msgpack_pack_uint64 (&pk, req->version);
        else
            msgpack_pack_nil (&pk);
        cart_mpack_pack_opt_str (&pk, req->idem, req->idem_len);
    }
    return 0;
}

//  Reads the options: [at, nil | true | version, nil | key].
static int
s_read_options (cart_mpack_t *r, cart_request_t *req)
{
    size_t n;
    bool any;
    if (cart_mpack_array (r, 3, &n) || n != 3 ||
        cart_mpack_uint (r, UINT64_MAX, &req->at))
        return -1;
    if (cart_mpack_nil (r))
        req->match = CART_MATCH_NONE;
    else if (cart_mpack_bool (r, &any) == 0) {
        if (!any)
            return -1;
        req->match = CART_MATCH_ANY;
    } else if (cart_mpack_uint (r, UINT64_MAX, &req->version) == 0)
        req->match = CART_MATCH_VERSION;
    else
        return -1;
    return cart_mpack_opt_str (r, SIZE_MAX, &req->idem, &req->idem_len);
}

//  Reads the fields of an ITEM request after the item id.
static int
s_read_item_fields (cart_mpack_t *r, cart_item_t *item)
{
    uint64_t price, count;
    if (cart_mpack_uint (r, UINT64_MAX, &price) ||
        cart_mpack_uint (r, UINT32_MAX, &count) ||
        cart_mpack_bool (r, &item->special_sale) ||
        cart_mpack_opt_str (r, SIZE_MAX, &item->expiry, &item->expiry_len))
        return -1;
    item->price_cents = price;
    item->count = (uint32_t)count;
    return 0;
}

//  Reads a request's fields after the op, by the op's shape.
static int
s_read_request_fields (cart_mpack_t *r, cart_request_t *req)
{
    if (cart_mpack_str (r, SIZE_MAX, &req->customer, &req->customer_len))
        return -1;
    cart_shape_t shape = cart_op_shape (req->op);
    cart_item_t *item = &req->item;
    if (shape != CART_SHAPE_CUSTOMER &&
        cart_mpack_str (r, SIZE_MAX, &item->id, &item->id_len))
        return -1;
    uint64_t count = 0;
    switch (shape) {
        case CART_SHAPE_CUSTOMER:
        case CART_SHAPE_ITEM_ID:
            return 0;
        case CART_SHAPE_COUNT:
            if (cart_mpack_uint (r, UINT32_MAX, &count))
                return -1;
            item->count = (uint32_t)count;
            return 0;
        case CART_SHAPE_ITEM:
            return s_read_item_fields (r, item);
    }
    return -1;
}

int
cart_request_decode (const void *data, size_t size, cart_request_t *req,
                     const char **error)
{
    memset (req, 0, sizeof (*req));
    cart_mpack_t r = cart_mpack_start (data, size);
    size_t fields;
    uint64_t op;
    if (cart_mpack_array (&r, FIELDS_MAX, &fields) || fields < 2)
        FAIL ("request body is not an array of 2 to 8 fields");
    if (cart_mpack_uint (&r, CART_OP_MAX, &op) || !cart_op_valid ((int)op))
        FAIL ("request's operation is not one of CART/2's");
    req->op = (cart_op_t)op;
    size_t want = s_fields (cart_op_shape (req->op));
    if (fields != want && fields != want + 1)
        FAIL ("request has the wrong number of fields for its operation");
    if (s_read_request_fields (&r, req))
        FAIL ("request field is missing, of the wrong type or out of range");
    if (fields > want && s_read_options (&r, req))
        FAIL ("request's options are not [at, nil | true | version, nil | key]");
    if (!cart_mpack_done (&r))
        FAIL ("request body has bytes after its end");
    return cart_request_check (req, error);
}

//  --------------------------------------------------------------------------
//  Replies

void
cart_reply_encode_item (msgpack_packer *pk, const cart_item_t *item)
{
    msgpack_pack_array (pk, 5);
    cart_mpack_pack_str (pk, item->id, item->id_len);
    msgpack_pack_uint64 (pk, item->price_cents);
    msgpack_pack_uint32 (pk, item->count);
    cart_mpack_pack_bool (pk, item->special_sale);
    cart_mpack_pack_opt_str (pk, item->expiry, item->expiry_len);
}

void
cart_reply_encode_cart (msgpack_packer *pk, const char *customer, size_t customer_len,
                        size_t n_items)
{
    msgpack_pack_array (pk, 2);
    cart_mpack_pack_str (pk, customer, customer_len);
    msgpack_pack_array (pk, n_items);
}

void
cart_reply_encode_error (msgpack_packer *pk, const char *message)
{
    size_t len = strlen (message);
    cart_mpack_pack_str (pk, message, len > CART_ERROR_MAX ? CART_ERROR_MAX : len);
}

size_t
cart_reply_error_body (uint8_t *buffer, size_t capacity, const char *message)
{
    //  A str 8 (0xD9, length byte) holds up to 255 bytes
    assert (capacity >= 2);
    size_t len = strlen (message);
    if (len > 255)
        len = 255;
    if (len + 2 > capacity)
        len = capacity - 2;
    buffer[0] = 0xD9;
    buffer[1] = (uint8_t)len;
    memcpy (buffer + 2, message, len);
    return len + 2;
}

//  Reads an item = [id, price, count, sale, expiry] and checks its fields.
static int
s_read_item (cart_mpack_t *r, cart_item_t *item)
{
    size_t fields;
    uint64_t price, count;
    if (cart_mpack_array (r, 5, &fields) || fields != 5 ||
        cart_mpack_str (r, CART_ID_MAX, &item->id, &item->id_len) ||
        cart_mpack_uint (r, CART_PRICE_MAX, &price) ||
        cart_mpack_uint (r, CART_COUNT_MAX, &count) || count < 1 ||
        cart_mpack_bool (r, &item->special_sale) ||
        cart_mpack_opt_str (r, CART_EXPIRY_MAX, &item->expiry, &item->expiry_len))
        return -1;
    if (!cart_id_valid (item->id, item->id_len))
        return -1;
    if (item->expiry && !cart_time_valid (item->expiry, item->expiry_len))
        return -1;
    item->price_cents = price;
    item->count = (uint32_t)count;
    return 0;
}

static int
s_decode_cart (cart_mpack_t *r, cart_reply_t *reply, const char **error)
{
    if (cart_mpack_str (r, CART_ID_MAX, &reply->customer, &reply->customer_len) ||
        !cart_id_valid (reply->customer, reply->customer_len))
        FAIL ("cart's customerId is missing or invalid");
    //  Every item takes at least 8 bytes, which bounds the count again
    if (cart_mpack_array (r, CART_ITEMS_MAX, &reply->n_items))
        FAIL ("cart's item list is not an array of at most 1000 items");
    reply->kind = CART_BODY_CART;
    reply->cursor = r->p;
    reply->limit = r->end;
    return 0;
}

int
cart_reply_decode (const void *data, size_t size, cart_reply_t *reply, const char **error)
{
    memset (reply, 0, sizeof (*reply));
    if (size == 0) {
        reply->kind = CART_BODY_NONE;
        return 0;
    }
    cart_mpack_t r = cart_mpack_start (data, size);
    size_t fields;
    if (cart_mpack_str (&r, CART_ERROR_MAX, &reply->message, &reply->message_len) == 0) {
        reply->kind = CART_BODY_ERROR;
    } else {
        r = cart_mpack_start (data, size);
        if (cart_mpack_array (&r, 5, &fields) || (fields != 2 && fields != 5))
            FAIL ("reply body is not an item, a cart, an error or empty");
        if (fields == 2)
            return s_decode_cart (&r, reply, error);
        r = cart_mpack_start (data, size);
        if (s_read_item (&r, &reply->item))
            FAIL ("reply's item has a missing, ill-typed or out-of-range field");
        reply->kind = CART_BODY_ITEM;
    }
    if (!cart_mpack_done (&r))
        FAIL ("reply body has bytes after its end");
    return 0;
}

int
cart_reply_next_item (cart_reply_t *reply, cart_item_t *item, const char **error)
{
    cart_mpack_t r = {reply->cursor, reply->limit};
    if (reply->items_read == reply->n_items) {
        if (!cart_mpack_done (&r))
            FAIL ("reply body has bytes after its end");
        return 0;
    }
    if (s_read_item (&r, item))
        FAIL ("cart item has a missing, ill-typed or out-of-range field");
    reply->cursor = r.p;
    reply->items_read++;
    return 1;
}
