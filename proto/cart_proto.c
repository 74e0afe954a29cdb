/*  =========================================================================
    cart_proto - CART/1 frames and bodies.

    Bodies are written with msgpack-c's packer. They are read with the
    small typed reader below rather than msgpack-c's unpacker, because the
    unpacker reserves memory for a container by its declared element count
    before it checks that the bytes exist: a 5-byte body declaring an array
    of 2^28 elements makes it ask for 8 GiB (measured with msgpack-c 4.0).
    The reader here knows the few shapes of PROTOCOL.md section 4, bounds
    every count by the bytes left, allocates nothing and points into the
    input for strings.
    =========================================================================
*/
#include "cart_proto.h"

#include <string.h>

//  --------------------------------------------------------------------------
//  Fixed-width fields

void
cart_put_u64 (uint8_t *p, uint64_t value)
{
    for (int i = 7; i >= 0; i--, value >>= 8)
        p[i] = (uint8_t)value;
}

uint64_t
cart_get_u64 (const uint8_t *p)
{
    uint64_t value = 0;
    for (int i = 0; i < 8; i++)
        value = (value << 8) | p[i];
    return value;
}

void
cart_put_u32 (uint8_t *p, uint32_t value)
{
    for (int i = 3; i >= 0; i--, value >>= 8)
        p[i] = (uint8_t)value;
}

uint32_t
cart_get_u32 (const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t
s_get_u16 (const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

//  --------------------------------------------------------------------------
//  Frames

#define FAIL(text)                                                                       \
    do {                                                                                 \
        *error = (text);                                                                 \
        return -1;                                                                       \
    } while (0)

static bool
s_frame_is (const cart_frame_t *frame, const char *text, size_t len)
{
    return frame->size == len && memcmp (frame->data, text, len) == 0;
}

static bool
s_status_known (uint16_t status)
{
    return strcmp (cart_status_name (status), "UNKNOWN") != 0;
}

//  Reads the protocol and command frames common to both protocols.
static int
s_parse_head (const cart_frame_t *frames, size_t n, const char *protocol, cart_msg_t *msg,
              const char **error)
{
    memset (msg, 0, offsetof (cart_msg_t, wire));
    if (n < 2)
        FAIL ("message has fewer than 2 frames");
    if (n > CART_FRAMES_MAX)
        FAIL ("message has too many frames");
    if (!s_frame_is (&frames[0], protocol, CART_PROTO_LEN))
        FAIL ("protocol frame is not " CART_PROTO_CLIENT " or " CART_PROTO_WORKER
              " as expected");
    if (frames[1].size != 1)
        FAIL ("command frame is not 1 byte");
    msg->command = *(const uint8_t *)frames[1].data;
    return 0;
}

static int
s_parse_corr (const cart_frame_t *frame, cart_msg_t *msg, const char **error)
{
    if (frame->size != 8)
        FAIL ("correlation id frame is not 8 bytes");
    msg->corr = cart_get_u64 ((const uint8_t *)frame->data);
    return 0;
}

static int
s_parse_key (const cart_frame_t *frame, cart_msg_t *msg, const char **error)
{
    if (frame->size != 8)
        FAIL ("key frame is not 8 bytes");
    msg->key = cart_get_u64 ((const uint8_t *)frame->data);
    if (msg->key >> 63)
        FAIL ("key is not below 2^63");
    return 0;
}

static int
s_parse_status (const cart_frame_t *frame, cart_msg_t *msg, const char **error)
{
    if (frame->size != 2)
        FAIL ("status frame is not 2 bytes");
    msg->status = s_get_u16 ((const uint8_t *)frame->data);
    if (!s_status_known (msg->status))
        FAIL ("status code is not one of CART/1's");
    return 0;
}

static int
s_parse_body (const cart_frame_t *frame, cart_msg_t *msg, const char **error)
{
    if (frame->size > CART_BODY_WIRE_MAX)
        FAIL ("body frame is larger than 1 MiB");
    msg->body = *frame;
    return 0;
}

static int
s_parse_client_identity (const cart_frame_t *frame, cart_msg_t *msg, const char **error)
{
    if (frame->size < 1 || frame->size > CART_IDENTITY_MAX)
        FAIL ("client identity frame is not 1 to 255 bytes");
    msg->client = *frame;
    return 0;
}

int
cart_msg_parse_client (const cart_frame_t *frames, size_t n, cart_msg_t *msg,
                       const char **error)
{
    if (s_parse_head (frames, n, CART_PROTO_CLIENT, msg, error))
        return -1;
    switch (msg->command) {
        case CART_C_REQUEST:
            if (n != 5)
                FAIL ("REQUEST does not have 5 frames");
            return s_parse_corr (&frames[2], msg, error) ||
                           s_parse_key (&frames[3], msg, error) ||
                           s_parse_body (&frames[4], msg, error)
                       ? -1
                       : 0;
        case CART_C_PING:
        case CART_C_STATS:
            if (n != 3)
                FAIL ("PING or STATS does not have 3 frames");
            return s_parse_corr (&frames[2], msg, error);
        case CART_C_REPLY:
            if (n != 5)
                FAIL ("REPLY does not have 5 frames");
            return s_parse_corr (&frames[2], msg, error) ||
                           s_parse_status (&frames[3], msg, error) ||
                           s_parse_body (&frames[4], msg, error)
                       ? -1
                       : 0;
        default:
            FAIL ("unknown client command");
    }
}

static int
s_parse_ready (const cart_frame_t *frame, uint32_t shards, cart_msg_t *msg,
               const char **error)
{
    if (frame->size == 0 || frame->size % 4 != 0)
        FAIL ("READY's shard list is not a non-empty list of 4-byte numbers");
    if (frame->size / 4 > CART_SHARDS_MAX)
        FAIL ("READY lists more than 10000 shards");
    msg->shards = (const uint8_t *)frame->data;
    msg->n_shards = frame->size / 4;
    for (size_t i = 0; i < msg->n_shards; i++)
        if (cart_msg_shard_at (msg, i) >= shards)
            FAIL ("READY lists a shard that the cluster does not have");
    return 0;
}

static int
s_parse_shard (const cart_frame_t *frame, uint32_t shards, cart_msg_t *msg,
               const char **error)
{
    if (frame->size != 4)
        FAIL ("shard frame is not 4 bytes");
    msg->shard = cart_get_u32 ((const uint8_t *)frame->data);
    if (msg->shard >= shards)
        FAIL ("shard number is not below the shard count");
    return 0;
}

int
cart_msg_parse_worker (const cart_frame_t *frames, size_t n, uint32_t shards,
                       cart_msg_t *msg, const char **error)
{
    if (s_parse_head (frames, n, CART_PROTO_WORKER, msg, error))
        return -1;
    switch (msg->command) {
        case CART_W_READY:
            if (n != 3)
                FAIL ("READY does not have 3 frames");
            return s_parse_ready (&frames[2], shards, msg, error);
        case CART_W_REQUEST:
            if (n != 7)
                FAIL ("REQUEST does not have 7 frames");
            return s_parse_shard (&frames[2], shards, msg, error) ||
                           s_parse_client_identity (&frames[3], msg, error) ||
                           s_parse_corr (&frames[4], msg, error) ||
                           s_parse_key (&frames[5], msg, error) ||
                           s_parse_body (&frames[6], msg, error)
                       ? -1
                       : 0;
        case CART_W_REPLY:
            if (n != 6)
                FAIL ("REPLY does not have 6 frames");
            return s_parse_client_identity (&frames[2], msg, error) ||
                           s_parse_corr (&frames[3], msg, error) ||
                           s_parse_status (&frames[4], msg, error) ||
                           s_parse_body (&frames[5], msg, error)
                       ? -1
                       : 0;
        case CART_W_HEARTBEAT:
            if (n != 2 && n != 3)
                FAIL ("HEARTBEAT does not have 2 or 3 frames");
            return n == 3 ? s_parse_body (&frames[2], msg, error) : 0;
        case CART_W_DISCONNECT:
            if (n != 2)
                FAIL ("DISCONNECT does not have 2 frames");
            return 0;
        default:
            FAIL ("unknown worker command");
    }
}

size_t
cart_msg_recv (void *socket, zmq_msg_t *parts, size_t max, int flags)
{
    size_t count = 0;
    zmq_msg_t spare;
    while (true) {
        zmq_msg_t *part = count < max ? &parts[count] : &spare;
        zmq_msg_init (part);
        if (zmq_msg_recv (part, socket, count ? ZMQ_DONTWAIT : flags) == -1) {
            zmq_msg_close (part);
            return count;
        }
        count++;
        bool more = zmq_msg_more (part);
        if (part == &spare)
            zmq_msg_close (part);
        if (!more)
            return count;
    }
}

void
cart_msg_close (zmq_msg_t *parts, size_t max, size_t count)
{
    for (size_t i = 0; i < count && i < max; i++)
        zmq_msg_close (&parts[i]);
}

uint32_t
cart_msg_shard_at (const cart_msg_t *msg, size_t i)
{
    return cart_get_u32 (msg->shards + 4 * i);
}

//  Offsets of the fixed-width fields in msg->wire
#define W_CMD    0
#define W_CORR   1
#define W_KEY    9
#define W_SHARD  17
#define W_STATUS 21

static cart_frame_t
s_wire (cart_msg_t *msg, size_t offset, size_t size)
{
    return (cart_frame_t){msg->wire + offset, size};
}

static size_t
s_frames_head (cart_msg_t *msg, const char *protocol, cart_frame_t *frames)
{
    msg->wire[W_CMD] = (uint8_t)msg->command;
    cart_put_u64 (msg->wire + W_CORR, msg->corr);
    cart_put_u64 (msg->wire + W_KEY, msg->key);
    cart_put_u32 (msg->wire + W_SHARD, msg->shard);
    msg->wire[W_STATUS] = (uint8_t)(msg->status >> 8);
    msg->wire[W_STATUS + 1] = (uint8_t)msg->status;
    frames[0] = (cart_frame_t){protocol, CART_PROTO_LEN};
    frames[1] = s_wire (msg, W_CMD, 1);
    return 2;
}

size_t
cart_msg_frames_client (cart_msg_t *msg, cart_frame_t *frames)
{
    size_t n = s_frames_head (msg, CART_PROTO_CLIENT, frames);
    frames[n++] = s_wire (msg, W_CORR, 8);
    if (msg->command == CART_C_REQUEST) {
        frames[n++] = s_wire (msg, W_KEY, 8);
        frames[n++] = msg->body;
    } else if (msg->command == CART_C_REPLY) {
        frames[n++] = s_wire (msg, W_STATUS, 2);
        frames[n++] = msg->body;
    }
    return n;
}

size_t
cart_msg_frames_worker (cart_msg_t *msg, cart_frame_t *frames)
{
    size_t n = s_frames_head (msg, CART_PROTO_WORKER, frames);
    switch (msg->command) {
        case CART_W_READY:
            frames[n++] = (cart_frame_t){msg->shards, msg->n_shards * 4};
            break;
        case CART_W_REQUEST:
            frames[n++] = s_wire (msg, W_SHARD, 4);
            frames[n++] = msg->client;
            frames[n++] = s_wire (msg, W_CORR, 8);
            frames[n++] = s_wire (msg, W_KEY, 8);
            frames[n++] = msg->body;
            break;
        case CART_W_REPLY:
            frames[n++] = msg->client;
            frames[n++] = s_wire (msg, W_CORR, 8);
            frames[n++] = s_wire (msg, W_STATUS, 2);
            frames[n++] = msg->body;
            break;
        case CART_W_HEARTBEAT:
            if (msg->body.size)
                frames[n++] = msg->body;
            break;
        default:
            break;
    }
    return n;
}

//  --------------------------------------------------------------------------
//  The typed msgpack reader

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} reader_t;

static size_t
s_left (const reader_t *r)
{
    return (size_t)(r->end - r->p);
}

//  Reads a big-endian unsigned integer of width bytes.
static int
s_take (reader_t *r, size_t width, uint64_t *value)
{
    if (s_left (r) < width)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v = (v << 8) | *r->p++;
    *value = v;
    return 0;
}

//  Reads an array header of at most max elements; an array can't claim
//  more elements than bytes are left.
static int
s_read_array (reader_t *r, size_t max, size_t *n)
{
    if (s_left (r) < 1)
        return -1;
    uint8_t tag = *r->p++;
    uint64_t count;
    if ((tag & 0xF0) == 0x90)
        count = tag & 0x0F;
    else if (tag == 0xDC) {
        if (s_take (r, 2, &count))
            return -1;
    } else if (tag == 0xDD) {
        if (s_take (r, 4, &count))
            return -1;
    } else
        return -1;
    if (count > max || count > s_left (r))
        return -1;
    *n = (size_t)count;
    return 0;
}

//  Reads a non-negative integer no larger than max. Encoders differ on
//  whether they write small non-negative numbers as uint or int; both
//  are accepted when the value is non-negative.
static int
s_read_uint (reader_t *r, uint64_t max, uint64_t *value)
{
    if (s_left (r) < 1)
        return -1;
    uint8_t tag = *r->p++;
    uint64_t v;
    if (tag <= 0x7F)
        v = tag;
    else if (tag >= 0xCC && tag <= 0xCF) {
        if (s_take (r, (size_t)1 << (tag - 0xCC), &v))
            return -1;
    } else if (tag >= 0xD0 && tag <= 0xD3) {
        size_t width = (size_t)1 << (tag - 0xD0);
        if (s_take (r, width, &v) || (v >> (width * 8 - 1)))
            return -1; //  short, or negative
    } else
        return -1;
    if (v > max)
        return -1;
    *value = v;
    return 0;
}

//  Reads a str of 0..max bytes.
static int
s_read_str (reader_t *r, size_t max, const char **text, size_t *len)
{
    if (s_left (r) < 1)
        return -1;
    uint8_t tag = *r->p++;
    uint64_t size;
    if ((tag & 0xE0) == 0xA0)
        size = tag & 0x1F;
    else if (tag >= 0xD9 && tag <= 0xDB) {
        if (s_take (r, (size_t)1 << (tag - 0xD9), &size))
            return -1;
    } else
        return -1;
    if (size > max || size > s_left (r))
        return -1;
    *text = (const char *)r->p;
    *len = (size_t)size;
    r->p += size;
    return 0;
}

static int
s_read_bool (reader_t *r, bool *value)
{
    if (s_left (r) < 1 || (*r->p != 0xC2 && *r->p != 0xC3))
        return -1;
    *value = *r->p++ == 0xC3;
    return 0;
}

//  Reads nil (*text = NULL) or a str of 1..max bytes.
static int
s_read_opt_str (reader_t *r, size_t max, const char **text, size_t *len)
{
    if (s_left (r) >= 1 && *r->p == 0xC0) {
        r->p++;
        *text = NULL;
        *len = 0;
        return 0;
    }
    if (s_read_str (r, max, text, len))
        return -1;
    return *len ? 0 : -1;
}

//  --------------------------------------------------------------------------
//  Requests

//  The array length of each operation's request, by op number
static const size_t s_request_fields[] = {0, 2, 7, 4, 3, 2};

int
cart_request_check (const cart_request_t *req, const char **error)
{
    if (req->op < CART_OP_MIN || req->op > CART_OP_MAX)
        FAIL ("unknown operation");
    if (!cart_id_valid (req->customer, req->customer_len))
        FAIL ("customerId must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ @ : -");
    if (req->op == CART_OP_GET || req->op == CART_OP_CHECKOUT)
        return 0;
    const cart_item_t *item = &req->item;
    if (!cart_id_valid (item->id, item->id_len))
        FAIL ("itemId must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ @ : -");
    if (req->op == CART_OP_SET && item->count > CART_COUNT_MAX)
        FAIL ("newCount must be 0 to 1000000");
    if (req->op != CART_OP_ADD)
        return 0;
    if (item->count < 1 || item->count > CART_COUNT_MAX)
        FAIL ("itemCount must be 1 to 1000000");
    if (item->price_cents > CART_PRICE_MAX)
        FAIL ("offeredPrice must be 0 to 1000000000000");
    if (item->expiry && (item->expiry_len < 1 || item->expiry_len > CART_EXPIRY_MAX))
        FAIL ("saleExpiration must be 1 to 64 characters or null");
    return 0;
}

static void
s_pack_bytes (msgpack_packer *pk, const char *text, size_t len)
{
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

static void
s_pack_opt_bytes (msgpack_packer *pk, const char *text, size_t len)
{
    if (text)
        s_pack_bytes (pk, text, len);
    else
        msgpack_pack_nil (pk);
}

int
cart_request_encode (const cart_request_t *req, msgpack_sbuffer *buf, const char **error)
{
    if (cart_request_check (req, error))
        return -1;
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, s_request_fields[req->op]);
    msgpack_pack_uint8 (&pk, (uint8_t)req->op);
    s_pack_bytes (&pk, req->customer, req->customer_len);
    if (req->op == CART_OP_GET || req->op == CART_OP_CHECKOUT)
        return 0;
    s_pack_bytes (&pk, req->item.id, req->item.id_len);
    if (req->op == CART_OP_ADD) {
        msgpack_pack_uint64 (&pk, req->item.price_cents);
        msgpack_pack_uint32 (&pk, req->item.count);
        if (req->item.special_sale)
            msgpack_pack_true (&pk);
        else
            msgpack_pack_false (&pk);
        s_pack_opt_bytes (&pk, req->item.expiry, req->item.expiry_len);
    } else if (req->op == CART_OP_SET)
        msgpack_pack_uint32 (&pk, req->item.count);
    return 0;
}

//  Reads the fields of ADD after the item id.
static int
s_read_add_fields (reader_t *r, cart_item_t *item)
{
    uint64_t price, count;
    if (s_read_uint (r, UINT64_MAX, &price) || s_read_uint (r, UINT32_MAX, &count) ||
        s_read_bool (r, &item->special_sale) ||
        s_read_opt_str (r, SIZE_MAX, &item->expiry, &item->expiry_len))
        return -1;
    item->price_cents = price;
    item->count = (uint32_t)count;
    return 0;
}

//  Reads a request's fields after the op, by the op's shape.
static int
s_read_request_fields (reader_t *r, cart_request_t *req)
{
    if (s_read_str (r, SIZE_MAX, &req->customer, &req->customer_len))
        return -1;
    if (req->op == CART_OP_GET || req->op == CART_OP_CHECKOUT)
        return 0;
    cart_item_t *item = &req->item;
    if (s_read_str (r, SIZE_MAX, &item->id, &item->id_len))
        return -1;
    if (req->op == CART_OP_ADD)
        return s_read_add_fields (r, item);
    uint64_t count = 0;
    if (req->op == CART_OP_SET && s_read_uint (r, UINT32_MAX, &count))
        return -1;
    item->count = (uint32_t)count;
    return 0;
}

int
cart_request_decode (const void *data, size_t size, cart_request_t *req,
                     const char **error)
{
    memset (req, 0, sizeof (*req));
    reader_t r = {(const uint8_t *)data, (const uint8_t *)data + size};
    size_t fields;
    uint64_t op;
    if (s_read_array (&r, 7, &fields) || fields < 2)
        FAIL ("request body is not an array of 2 to 7 fields");
    if (s_read_uint (&r, CART_OP_MAX, &op) || op < CART_OP_MIN)
        FAIL ("request's operation is not 1 to 5");
    req->op = (cart_op_t)op;
    if (fields != s_request_fields[op])
        FAIL ("request has the wrong number of fields for its operation");
    if (s_read_request_fields (&r, req))
        FAIL ("request field is missing, of the wrong type or out of range");
    if (r.p != r.end)
        FAIL ("request body has bytes after its end");
    return cart_request_check (req, error);
}

//  --------------------------------------------------------------------------
//  Replies

void
cart_reply_encode_item (msgpack_packer *pk, const cart_item_t *item)
{
    msgpack_pack_array (pk, 5);
    s_pack_bytes (pk, item->id, item->id_len);
    msgpack_pack_uint64 (pk, item->price_cents);
    msgpack_pack_uint32 (pk, item->count);
    if (item->special_sale)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    s_pack_opt_bytes (pk, item->expiry, item->expiry_len);
}

void
cart_reply_encode_cart (msgpack_packer *pk, const char *customer, size_t customer_len,
                        size_t n_items)
{
    msgpack_pack_array (pk, 2);
    s_pack_bytes (pk, customer, customer_len);
    msgpack_pack_array (pk, n_items);
}

void
cart_reply_encode_error (msgpack_packer *pk, const char *message)
{
    size_t len = strlen (message);
    s_pack_bytes (pk, message, len > CART_ERROR_MAX ? CART_ERROR_MAX : len);
}

//  Reads an item = [id, price, count, sale, expiry] and checks its fields.
static int
s_read_item (reader_t *r, cart_item_t *item)
{
    size_t fields;
    uint64_t price, count;
    if (s_read_array (r, 5, &fields) || fields != 5 ||
        s_read_str (r, CART_ID_MAX, &item->id, &item->id_len) ||
        s_read_uint (r, CART_PRICE_MAX, &price) ||
        s_read_uint (r, CART_COUNT_MAX, &count) || count < 1 ||
        s_read_bool (r, &item->special_sale) ||
        s_read_opt_str (r, CART_EXPIRY_MAX, &item->expiry, &item->expiry_len))
        return -1;
    if (!cart_id_valid (item->id, item->id_len))
        return -1;
    item->price_cents = price;
    item->count = (uint32_t)count;
    return 0;
}

static int
s_decode_cart (reader_t *r, cart_reply_t *reply, const char **error)
{
    if (s_read_str (r, CART_ID_MAX, &reply->customer, &reply->customer_len) ||
        !cart_id_valid (reply->customer, reply->customer_len))
        FAIL ("cart's customerId is missing or invalid");
    //  Every item takes at least 8 bytes, which bounds the count again
    if (s_read_array (r, CART_ITEMS_MAX, &reply->n_items))
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
    reader_t r = {(const uint8_t *)data, (const uint8_t *)data + size};
    if (size == 0) {
        reply->kind = CART_BODY_NONE;
        return 0;
    }
    size_t fields;
    if (s_read_str (&r, CART_ERROR_MAX, &reply->message, &reply->message_len) == 0) {
        reply->kind = CART_BODY_ERROR;
    } else {
        r.p = (const uint8_t *)data;
        if (s_read_array (&r, 5, &fields) || (fields != 2 && fields != 5))
            FAIL ("reply body is not an item, a cart, an error or empty");
        if (fields == 2)
            return s_decode_cart (&r, reply, error);
        r.p = (const uint8_t *)data;
        if (s_read_item (&r, &reply->item))
            FAIL ("reply's item has a missing, ill-typed or out-of-range field");
        reply->kind = CART_BODY_ITEM;
    }
    if (r.p != r.end)
        FAIL ("reply body has bytes after its end");
    return 0;
}

int
cart_reply_next_item (cart_reply_t *reply, cart_item_t *item, const char **error)
{
    reader_t r = {reply->cursor, reply->limit};
    if (reply->items_read == reply->n_items) {
        if (r.p != r.end)
            FAIL ("reply body has bytes after its end");
        return 0;
    }
    if (s_read_item (&r, item))
        FAIL ("cart item has a missing, ill-typed or out-of-range field");
    reply->cursor = r.p;
    reply->items_read++;
    return 1;
}

//  --------------------------------------------------------------------------
//  Load and stats

void
cart_load_encode (msgpack_packer *pk, size_t n_entries)
{
    msgpack_pack_array (pk, n_entries);
}

void
cart_load_encode_entry (msgpack_packer *pk, const cart_shard_stats_t *entry)
{
    msgpack_pack_array (pk, 3);
    msgpack_pack_uint32 (pk, entry->shard);
    msgpack_pack_uint64 (pk, entry->carts);
    msgpack_pack_uint64 (pk, entry->items);
}

void
cart_stats_encode (msgpack_packer *pk, uint32_t shards, size_t n_entries)
{
    msgpack_pack_array (pk, 2);
    msgpack_pack_uint32 (pk, shards);
    msgpack_pack_array (pk, n_entries);
}

void
cart_stats_encode_entry (msgpack_packer *pk, const cart_shard_stats_t *entry)
{
    msgpack_pack_array (pk, 5);
    msgpack_pack_uint32 (pk, entry->shard);
    if (entry->live)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    msgpack_pack_uint64 (pk, entry->carts);
    msgpack_pack_uint64 (pk, entry->items);
    msgpack_pack_uint64 (pk, entry->requests);
}

static void
s_list_start (cart_stats_list_t *list, reader_t *r, bool with_broker_fields)
{
    list->cursor = r->p;
    list->limit = r->end;
    list->with_broker_fields = with_broker_fields;
}

int
cart_load_decode (const void *data, size_t size, cart_stats_list_t *list,
                  const char **error)
{
    memset (list, 0, sizeof (*list));
    reader_t r = {(const uint8_t *)data, (const uint8_t *)data + size};
    if (s_read_array (&r, CART_SHARDS_MAX, &list->n_entries))
        FAIL ("load is not an array of at most 10000 entries");
    s_list_start (list, &r, false);
    return 0;
}

int
cart_stats_decode (const void *data, size_t size, cart_stats_list_t *list,
                   const char **error)
{
    memset (list, 0, sizeof (*list));
    reader_t r = {(const uint8_t *)data, (const uint8_t *)data + size};
    size_t fields;
    uint64_t shards;
    if (s_read_array (&r, 2, &fields) || fields != 2 ||
        s_read_uint (&r, CART_SHARDS_MAX, &shards) || shards < 1 ||
        s_read_array (&r, CART_SHARDS_MAX, &list->n_entries))
        FAIL ("stats is not [shard count, [entries]]");
    list->shards = (uint32_t)shards;
    s_list_start (list, &r, true);
    return 0;
}

//  Reads [shard, carts, items] or [shard, live, carts, items, requests].
static int
s_read_stats_entry (reader_t *r, bool with_broker_fields, cart_shard_stats_t *entry)
{
    size_t fields;
    uint64_t shard;
    memset (entry, 0, sizeof (*entry));
    if (s_read_array (r, 5, &fields) || fields != (with_broker_fields ? 5u : 3u) ||
        s_read_uint (r, CART_SHARDS_MAX - 1, &shard))
        return -1;
    entry->shard = (uint32_t)shard;
    if (with_broker_fields && s_read_bool (r, &entry->live))
        return -1;
    if (s_read_uint (r, UINT64_MAX, &entry->carts) ||
        s_read_uint (r, UINT64_MAX, &entry->items))
        return -1;
    if (with_broker_fields && s_read_uint (r, UINT64_MAX, &entry->requests))
        return -1;
    return 0;
}

int
cart_stats_next (cart_stats_list_t *list, cart_shard_stats_t *entry, const char **error)
{
    reader_t r = {list->cursor, list->limit};
    if (list->entries_read == list->n_entries) {
        if (r.p != r.end)
            FAIL ("stats body has bytes after its end");
        return 0;
    }
    if (s_read_stats_entry (&r, list->with_broker_fields, entry))
        FAIL ("stats entry has a missing, ill-typed or out-of-range field");
    list->cursor = r.p;
    list->entries_read++;
    return 1;
}
