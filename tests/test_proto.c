/*  test_proto - CART/1 frames and bodies: round trips, and rejection of
    truncated, oversized, ill-typed and random input.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart_proto.h"

//  --------------------------------------------------------------------------
//  Helpers

static cart_request_t
s_add_request (void)
{
    cart_request_t req = {.op = CART_OP_ADD, .customer = "jea-265", .customer_len = 7};
    req.item = (cart_item_t){.id = "036000291459",
                             .id_len = 12,
                             .price_cents = 5000,
                             .count = 6,
                             .special_sale = true,
                             .expiry = "2026-12-01T00:00:00Z",
                             .expiry_len = 20};
    return req;
}

//  Encodes req into a fresh buffer that the caller destroys.
static msgpack_sbuffer
s_encode (const cart_request_t *req)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    const char *error = NULL;
    int rc = cart_request_encode (req, &buf, &error);
    if (rc)
        fail_msg ("encode failed: %s", error);
    return buf;
}

static bool
s_bytes_equal (const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && (a_len == 0 || memcmp (a, b, a_len) == 0);
}

static void
s_assert_items_equal (const cart_item_t *a, const cart_item_t *b)
{
    assert_true (s_bytes_equal (a->id, a->id_len, b->id, b->id_len));
    assert_int_equal (a->price_cents, b->price_cents);
    assert_int_equal (a->count, b->count);
    assert_int_equal (a->special_sale, b->special_sale);
    assert_int_equal (a->expiry == NULL, b->expiry == NULL);
    if (a->expiry)
        assert_true (s_bytes_equal (a->expiry, a->expiry_len, b->expiry, b->expiry_len));
}

static void
s_assert_request_fails (const void *data, size_t size)
{
    cart_request_t req;
    const char *error = NULL;
    assert_int_equal (cart_request_decode (data, size, &req, &error), -1);
    assert_non_null (error);
}

//  --------------------------------------------------------------------------
//  Requests

static void
test_request_round_trip (void **state)
{
    cart_request_t reqs[5] = {
        {.op = CART_OP_GET, .customer = "jea-265", .customer_len = 7},
        s_add_request (),
        {.op = CART_OP_SET,
         .customer = "c",
         .customer_len = 1,
         .item = {.id = "i", .id_len = 1, .count = 0}},
        {.op = CART_OP_REMOVE,
         .customer = "a.b_c~d@e:f-g",
         .customer_len = 13,
         .item = {.id = "X", .id_len = 1}},
        {.op = CART_OP_CHECKOUT, .customer = "jea-265", .customer_len = 7},
    };
    reqs[1].item.expiry = NULL;
    reqs[1].item.expiry_len = 0;
    for (int i = 0; i < 5; i++) {
        msgpack_sbuffer buf = s_encode (&reqs[i]);
        cart_request_t out;
        const char *error = NULL;
        int rc = cart_request_decode (buf.data, buf.size, &out, &error);
        if (rc)
            fail_msg ("request %d: %s", i, error);
        assert_int_equal (out.op, reqs[i].op);
        assert_true (s_bytes_equal (out.customer, out.customer_len, reqs[i].customer,
                                    reqs[i].customer_len));
        if (reqs[i].op == CART_OP_ADD)
            s_assert_items_equal (&out.item, &reqs[i].item);
        if (reqs[i].op == CART_OP_SET || reqs[i].op == CART_OP_REMOVE)
            assert_true (s_bytes_equal (out.item.id, out.item.id_len, reqs[i].item.id,
                                        reqs[i].item.id_len));
        msgpack_sbuffer_destroy (&buf);
    }
}

static void
test_request_limits (void **state)
{
    char id[CART_ID_MAX + 1];
    memset (id, 'a', sizeof (id));
    cart_request_t req = s_add_request ();
    const char *error;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);

    //  At each limit: accepted
    req.customer = id;
    req.customer_len = CART_ID_MAX;
    req.item.count = CART_COUNT_MAX;
    req.item.price_cents = CART_PRICE_MAX;
    assert_int_equal (cart_request_encode (&req, &buf, &error), 0);
    cart_request_t out;
    assert_int_equal (cart_request_decode (buf.data, buf.size, &out, &error), 0);
    assert_int_equal (out.item.price_cents, CART_PRICE_MAX);

    //  One past each: refused by the encoder, nothing written
    const struct {
        size_t customer_len;
        uint32_t count;
        uint64_t price;
    } bad[] = {
        {CART_ID_MAX + 1, 1, 0},    {0, 1, 0}, {1, CART_COUNT_MAX + 1, 0}, {1, 0, 0},
        {1, 1, CART_PRICE_MAX + 1},
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        buf.size = 0;
        req.customer_len = bad[i].customer_len;
        req.item.count = bad[i].count;
        req.item.price_cents = bad[i].price;
        error = NULL;
        assert_int_equal (cart_request_encode (&req, &buf, &error), -1);
        assert_non_null (error);
        assert_int_equal (buf.size, 0);
    }
    msgpack_sbuffer_destroy (&buf);
}

static void
test_request_bad_identifier (void **state)
{
    const char *bad_ids[] = {"a b", "a/b", "caf\xc3\xa9", "a%20", "a\"b", "a\0b"};
    for (size_t i = 0; i < sizeof (bad_ids) / sizeof (bad_ids[0]); i++) {
        cart_request_t req = s_add_request ();
        req.item.id = bad_ids[i];
        req.item.id_len = i == 5 ? 3 : strlen (bad_ids[i]);
        const char *error = NULL;
        assert_int_equal (cart_request_check (&req, &error), -1);
        assert_non_null (strstr (error, "itemId"));
    }
}

//  Every proper prefix of a valid body is refused.
static void
test_request_truncated (void **state)
{
    cart_request_t req = s_add_request ();
    msgpack_sbuffer buf = s_encode (&req);
    for (size_t len = 0; len < buf.size; len++) {
        //  A copy of exactly len bytes, so that ASan sees any overread
        char *copy = malloc (len ? len : 1);
        memcpy (copy, buf.data, len);
        s_assert_request_fails (copy, len);
        free (copy);
    }
    msgpack_sbuffer_destroy (&buf);
}

static void
test_request_trailing_bytes (void **state)
{
    cart_request_t req = s_add_request ();
    msgpack_sbuffer buf = s_encode (&req);
    msgpack_sbuffer_write (&buf, "\xc0", 1);
    s_assert_request_fails (buf.data, buf.size);
    msgpack_sbuffer_destroy (&buf);
}

//  Hand-made bodies that are wrong in one way each
static void
test_request_ill_typed (void **state)
{
    const struct {
        const char *bytes;
        size_t size;
        const char *why;
    } cases[] = {
        {"\x92\x01\xa1", 3, "customer str shorter than declared"},
        {"\x92\x06\xa1x", 4, "op 6"},
        {"\x92\x00\xa1x", 4, "op 0"},
        {"\x92\xff\xa1x", 4, "negative op"},
        {"\x93\x01\xa1x\xa1y", 6, "GET with 3 fields"},
        {"\x92\x01\x01", 3, "customer is an integer"},
        {"\x82\x01\x01\xa1x\xc0", 6, "a map, not an array"},
        {"\x92\x01\xc4\x01x", 5, "customer is bin, not str"},
        {"\x93\x04\xa1x\xc0", 5, "REMOVE with nil item"},
        {"\x94\x03\xa1x\xa1y\xc3", 7, "SET with bool count"},
        {"\x94\x03\xa1x\xa1y\xce\x00\x0f\x42\x41", 11, "SET count 1000001"},
        {"\x97\x02\xa1x\xa1y\x01\x01\x01\xc0", 10, "ADD sale is an int"},
        {"\x97\x02\xa1x\xa1y\xcb\x40\x49\x00\x00\x00\x00\x00\x00\x01\xc2\xc0", 18,
         "ADD price is a float"},
        {"\x97\x02\xa1x\xa1y\x01\x00\xc2\xc0", 10, "ADD count 0"},
        {"\x97\x02\xa1x\xa1y\x01\x01\xc2\xa0", 10, "ADD empty expiry"},
        {"\x97\x02\xa1x\xa1y\x01\x01\xc2\x01", 10, "ADD expiry an int"},
        {"\xdd\x10\x00\x00\x00", 5, "array of 2^28 elements"},
        {"\xdd\xff\xff\xff\xff", 5, "array of 2^32-1 elements"},
        {"\x92\x01\xdb\xff\xff\xff\xffx", 8, "str of 4 GiB"},
        {"\x92\x92\x01\xa1x\xa1x", 7, "nested array"},
        {"", 0, "empty"},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        cart_request_t req;
        const char *error = NULL;
        if (cart_request_decode (cases[i].bytes, cases[i].size, &req, &error) != -1)
            fail_msg ("accepted: %s", cases[i].why);
        assert_non_null (error);
    }
}

//  Decoding what msgpack-c's own packer writes for positive numbers in
//  other widths (an interoperating encoder may pick any).
static void
test_request_integer_widths (void **state)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, 4);
    msgpack_pack_int64 (&pk, 3); //  op as a signed integer
    msgpack_pack_str_with_body (&pk, "c", 1);
    msgpack_pack_str_with_body (&pk, "i", 1);
    msgpack_pack_fix_uint64 (&pk, 999999);
    cart_request_t req;
    const char *error;
    assert_int_equal (cart_request_decode (buf.data, buf.size, &req, &error), 0);
    assert_int_equal (req.op, CART_OP_SET);
    assert_int_equal (req.item.count, 999999);
    msgpack_sbuffer_destroy (&buf);
}

//  Random mutations of valid bodies never crash a decoder, and anything
//  accepted still passes every check.
static void
test_request_mutations (void **state)
{
    cart_request_t req = s_add_request ();
    msgpack_sbuffer buf = s_encode (&req);
    unsigned seed = 12345;
    char *copy = malloc (buf.size);
    for (int round = 0; round < 200000; round++) {
        memcpy (copy, buf.data, buf.size);
        int flips = 1 + rand_r (&seed) % 3;
        for (int f = 0; f < flips; f++)
            copy[rand_r (&seed) % buf.size] = (char)rand_r (&seed);
        size_t len = buf.size - (size_t)(rand_r (&seed) % 2);
        cart_request_t out;
        const char *error;
        if (cart_request_decode (copy, len, &out, &error) == 0)
            assert_int_equal (cart_request_check (&out, &error), 0);
    }
    free (copy);
    msgpack_sbuffer_destroy (&buf);
}

//  --------------------------------------------------------------------------
//  Replies

static void
test_reply_item_round_trip (void **state)
{
    cart_request_t req = s_add_request ();
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    cart_reply_encode_item (&pk, &req.item);
    cart_reply_t reply;
    const char *error;
    assert_int_equal (cart_reply_decode (buf.data, buf.size, &reply, &error), 0);
    assert_int_equal (reply.kind, CART_BODY_ITEM);
    s_assert_items_equal (&reply.item, &req.item);
    msgpack_sbuffer_destroy (&buf);
}

static void
test_reply_cart_round_trip (void **state)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    char ids[CART_ITEMS_MAX][16];
    cart_reply_encode_cart (&pk, "jea-265", 7, CART_ITEMS_MAX);
    for (int i = 0; i < CART_ITEMS_MAX; i++) {
        int len = snprintf (ids[i], sizeof (ids[i]), "item-%d", i);
        cart_item_t item = {.id = ids[i],
                            .id_len = (size_t)len,
                            .price_cents = (uint64_t)i * 101,
                            .count = (uint32_t)i + 1,
                            .special_sale = i % 2};
        cart_reply_encode_item (&pk, &item);
    }
    cart_reply_t reply;
    const char *error;
    assert_int_equal (cart_reply_decode (buf.data, buf.size, &reply, &error), 0);
    assert_int_equal (reply.kind, CART_BODY_CART);
    assert_int_equal (reply.n_items, CART_ITEMS_MAX);
    assert_true (s_bytes_equal (reply.customer, reply.customer_len, "jea-265", 7));
    cart_item_t item;
    int i = 0;
    while (cart_reply_next_item (&reply, &item, &error) == 1) {
        assert_true (s_bytes_equal (item.id, item.id_len, ids[i], strlen (ids[i])));
        assert_int_equal (item.price_cents, (uint64_t)i * 101);
        assert_int_equal (item.count, i + 1);
        assert_int_equal (item.special_sale, i % 2);
        assert_null (item.expiry);
        i++;
    }
    assert_int_equal (i, CART_ITEMS_MAX);
    msgpack_sbuffer_destroy (&buf);
}

static void
test_reply_cart_lies_about_count (void **state)
{
    //  A cart that declares 2 items but holds 1: the reader stops with an
    //  error at the missing one, never reads past the end
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    cart_reply_encode_cart (&pk, "c", 1, 2);
    cart_item_t item = {.id = "i", .id_len = 1, .price_cents = 1, .count = 1};
    cart_reply_encode_item (&pk, &item);
    char *exact = malloc (buf.size);
    memcpy (exact, buf.data, buf.size);
    cart_reply_t reply;
    const char *error;
    assert_int_equal (cart_reply_decode (exact, buf.size, &reply, &error), 0);
    cart_item_t out;
    assert_int_equal (cart_reply_next_item (&reply, &out, &error), 1);
    assert_int_equal (cart_reply_next_item (&reply, &out, &error), -1);
    free (exact);
    msgpack_sbuffer_destroy (&buf);
}

static void
test_reply_error_and_empty (void **state)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    cart_reply_encode_error (&pk, "no such item");
    cart_reply_t reply;
    const char *error;
    assert_int_equal (cart_reply_decode (buf.data, buf.size, &reply, &error), 0);
    assert_int_equal (reply.kind, CART_BODY_ERROR);
    assert_true (s_bytes_equal (reply.message, reply.message_len, "no such item", 12));

    assert_int_equal (cart_reply_decode ("", 0, &reply, &error), 0);
    assert_int_equal (reply.kind, CART_BODY_NONE);

    //  A long message is cut at the limit
    char long_message[CART_ERROR_MAX + 100];
    memset (long_message, 'm', sizeof (long_message) - 1);
    long_message[sizeof (long_message) - 1] = 0;
    buf.size = 0;
    cart_reply_encode_error (&pk, long_message);
    assert_int_equal (cart_reply_decode (buf.data, buf.size, &reply, &error), 0);
    assert_int_equal (reply.message_len, CART_ERROR_MAX);
    msgpack_sbuffer_destroy (&buf);
}

static void
test_reply_ill_formed (void **state)
{
    const struct {
        const char *bytes;
        size_t size;
    } cases[] = {
        {"\x93\x01\x02\x03", 4},              //  3 fields
        {"\x95\xa1x\x01\x00\xc2\xc0", 7},     //  item with count 0
        {"\x95\xa1x\x01\x01\xc2\xc0\xc0", 8}, //  trailing byte
        {"\x92\xa1x\xdd\x00\x00\x03\xe9", 8}, //  cart of 1001 items
        {"\x92\xa1 \x90", 4},                 //  bad customer id
        {"\x01", 1},                          //  a bare integer
        {"\xdd\xff\xff\xff\xff", 5},          //  huge array
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        cart_reply_t reply;
        const char *error = NULL;
        if (cart_reply_decode (cases[i].bytes, cases[i].size, &reply, &error) != -1)
            fail_msg ("reply case %zu accepted", i);
        assert_non_null (error);
    }
}

//  --------------------------------------------------------------------------
//  Frames

//  Copies frames into exactly-sized heap buffers, so that ASan catches a
//  parser that reads past one.
typedef struct {
    cart_frame_t frames[CART_FRAMES_MAX + 1];
    size_t n;
} owned_t;

static owned_t
s_own (const cart_frame_t *frames, size_t n)
{
    owned_t owned = {.n = n};
    for (size_t i = 0; i < n; i++) {
        void *copy = malloc (frames[i].size ? frames[i].size : 1);
        if (frames[i].size)
            memcpy (copy, frames[i].data, frames[i].size);
        owned.frames[i] = (cart_frame_t){copy, frames[i].size};
    }
    return owned;
}

static void
s_free (owned_t *owned)
{
    for (size_t i = 0; i < owned->n; i++)
        free ((void *)owned->frames[i].data);
}

static void
test_client_frames_round_trip (void **state)
{
    cart_msg_t msg = {.command = CART_C_REQUEST,
                      .corr = 0x0102030405060708ULL,
                      .key = 938870058641657986ULL,
                      .body = {"\x92\x01\xa1x", 4}};
    cart_frame_t frames[CART_FRAMES_MAX];
    size_t n = cart_msg_frames_client (&msg, frames);
    assert_int_equal (n, 5);
    owned_t owned = s_own (frames, n);
    cart_msg_t out;
    const char *error;
    assert_int_equal (cart_msg_parse_client (owned.frames, n, &out, &error), 0);
    assert_int_equal (out.command, CART_C_REQUEST);
    assert_int_equal (out.corr, msg.corr);
    assert_int_equal (out.key, msg.key);
    assert_int_equal (out.body.size, 4);
    s_free (&owned);

    cart_msg_t reply = {.command = CART_C_REPLY, .corr = 7, .status = CART_UNAVAILABLE};
    n = cart_msg_frames_client (&reply, frames);
    owned = s_own (frames, n);
    assert_int_equal (cart_msg_parse_client (owned.frames, n, &out, &error), 0);
    assert_int_equal (out.status, CART_UNAVAILABLE);
    assert_int_equal (out.body.size, 0);
    s_free (&owned);

    cart_msg_t ping = {.command = CART_C_PING, .corr = 9};
    n = cart_msg_frames_client (&ping, frames);
    assert_int_equal (n, 3);
    assert_int_equal (cart_msg_parse_client (frames, n, &out, &error), 0);
    assert_int_equal (out.corr, 9);
}

static void
test_worker_frames_round_trip (void **state)
{
    uint8_t shards[8];
    cart_put_u32 (shards, 3);
    cart_put_u32 (shards + 4, 9999);
    cart_msg_t ready = {.command = CART_W_READY, .shards = shards, .n_shards = 2};
    cart_frame_t frames[CART_FRAMES_MAX];
    size_t n = cart_msg_frames_worker (&ready, frames);
    owned_t owned = s_own (frames, n);
    cart_msg_t out;
    const char *error;
    assert_int_equal (cart_msg_parse_worker (owned.frames, n, 10000, &out, &error), 0);
    assert_int_equal (out.n_shards, 2);
    assert_int_equal (cart_msg_shard_at (&out, 1), 9999);
    //  The same READY in a cluster of 9999 shards names a shard it lacks
    assert_int_equal (cart_msg_parse_worker (owned.frames, n, 9999, &out, &error), -1);
    s_free (&owned);

    cart_msg_t req = {.command = CART_W_REQUEST,
                      .shard = 5,
                      .client = {"\x00\x01\x02\x03\x04", 5},
                      .corr = 77,
                      .key = 12345,
                      .body = {"\x92\x01\xa1x", 4}};
    n = cart_msg_frames_worker (&req, frames);
    assert_int_equal (n, 7);
    owned = s_own (frames, n);
    assert_int_equal (cart_msg_parse_worker (owned.frames, n, 16, &out, &error), 0);
    assert_int_equal (out.shard, 5);
    assert_int_equal (out.client.size, 5);
    assert_int_equal (out.corr, 77);
    assert_int_equal (out.key, 12345);
    s_free (&owned);

    cart_msg_t heartbeat = {.command = CART_W_HEARTBEAT};
    n = cart_msg_frames_worker (&heartbeat, frames);
    assert_int_equal (n, 2);
    assert_int_equal (cart_msg_parse_worker (frames, n, 16, &out, &error), 0);
}

static void
test_frames_malformed (void **state)
{
    uint8_t key_high[8] = {0x80, 0, 0, 0, 0, 0, 0, 1};
    uint8_t corr[8] = {0};
    uint8_t status_bad[2] = {0x01, 0x2C}; //  300
    char big_identity[256];
    memset (big_identity, 'i', sizeof (big_identity));
    const cart_frame_t proto = {CART_PROTO_CLIENT, 7};
    const cart_frame_t wproto = {CART_PROTO_WORKER, 7};
    const cart_frame_t request = {"\x01", 1};
    const cart_frame_t reply = {"\x04", 1};
    struct {
        cart_frame_t frames[8];
        size_t n;
        bool worker;
        const char *why;
    } cases[] = {
        {{proto}, 1, false, "one frame"},
        {{{"CARTC02", 7}, request, {corr, 8}, {corr, 8}, {"", 0}},
         5,
         false,
         "version 02"},
        {{wproto, request, {corr, 8}, {corr, 8}, {"", 0}}, 5, false, "worker protocol"},
        {{proto, {"\x01\x01", 2}, {corr, 8}, {corr, 8}, {"", 0}}, 5, false, "2-byte cmd"},
        {{proto, {"\x09", 1}, {corr, 8}}, 3, false, "unknown command"},
        {{proto, request, {corr, 7}, {corr, 8}, {"", 0}}, 5, false, "7-byte corr"},
        {{proto, request, {corr, 8}, {key_high, 8}, {"", 0}}, 5, false, "key >= 2^63"},
        {{proto, request, {corr, 8}, {corr, 8}}, 4, false, "no body frame"},
        {{proto, reply, {corr, 8}, {status_bad, 2}, {"", 0}}, 5, false, "status 300"},
        {{wproto, {"\x01", 1}, {"\x00\x00\x00", 3}}, 3, true, "3-byte shard list"},
        {{wproto, {"\x01", 1}, {"", 0}}, 3, true, "empty shard list"},
        {{wproto,
          {"\x02", 1},
          {"\x00\x00\x00\x10", 4},
          {"c", 1},
          {corr, 8},
          {corr, 8},
          {"", 0}},
         7,
         true,
         "shard 16 of 16"},
        {{wproto,
          {"\x02", 1},
          {"\x00\x00\x00\x01", 4},
          {"", 0},
          {corr, 8},
          {corr, 8},
          {"", 0}},
         7,
         true,
         "empty identity"},
        {{wproto, {"\x03", 1}, {big_identity, 256}, {corr, 8}, {"\x00\xc8", 2}, {"", 0}},
         6,
         true,
         "256-byte identity"},
        {{wproto, {"\x05", 1}, {"", 0}}, 3, true, "DISCONNECT with a body"},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        owned_t owned = s_own (cases[i].frames, cases[i].n);
        cart_msg_t msg;
        const char *error = NULL;
        int rc = cases[i].worker
                     ? cart_msg_parse_worker (owned.frames, owned.n, 16, &msg, &error)
                     : cart_msg_parse_client (owned.frames, owned.n, &msg, &error);
        s_free (&owned);
        if (rc != -1)
            fail_msg ("accepted: %s", cases[i].why);
        assert_non_null (error);
    }
}

static void
test_frames_body_too_large (void **state)
{
    size_t size = CART_BODY_WIRE_MAX + 1;
    char *body = calloc (1, size);
    cart_msg_t msg = {.command = CART_C_REQUEST, .body = {body, size}};
    cart_frame_t frames[CART_FRAMES_MAX];
    size_t n = cart_msg_frames_client (&msg, frames);
    cart_msg_t out;
    const char *error;
    assert_int_equal (cart_msg_parse_client (frames, n, &out, &error), -1);
    frames[4].size = CART_BODY_WIRE_MAX;
    assert_int_equal (cart_msg_parse_client (frames, n, &out, &error), 0);
    free (body);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_request_round_trip),
        cmocka_unit_test (test_request_limits),
        cmocka_unit_test (test_request_bad_identifier),
        cmocka_unit_test (test_request_truncated),
        cmocka_unit_test (test_request_trailing_bytes),
        cmocka_unit_test (test_request_ill_typed),
        cmocka_unit_test (test_request_integer_widths),
        cmocka_unit_test (test_request_mutations),
        cmocka_unit_test (test_reply_item_round_trip),
        cmocka_unit_test (test_reply_cart_round_trip),
        cmocka_unit_test (test_reply_cart_lies_about_count),
        cmocka_unit_test (test_reply_error_and_empty),
        cmocka_unit_test (test_reply_ill_formed),
        cmocka_unit_test (test_client_frames_round_trip),
        cmocka_unit_test (test_worker_frames_round_trip),
        cmocka_unit_test (test_frames_malformed),
        cmocka_unit_test (test_frames_body_too_large),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
