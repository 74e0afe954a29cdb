/*  test_proto - CART/2: the header frame (cart_wire), messages on real
    libzmq sockets (cart_msg), request and reply bodies (cart_body), READY,
    load and stats bodies (cart_control): round trips, and rejection of
    truncated, oversized, ill-typed, misrouted and mutated input.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart_mpack.h"
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
//  Request options: [at, nil | true | version, nil | key] after the fields

//  One request of each operation, with the given options.
static void
s_requests_of_each_op (cart_request_t *reqs)
{
    reqs[0] =
        (cart_request_t){.op = CART_OP_GET, .customer = "jea-265", .customer_len = 7};
    reqs[1] = s_add_request ();
    reqs[2] = (cart_request_t){.op = CART_OP_SET,
                               .customer = "c",
                               .customer_len = 1,
                               .item = {.id = "i", .id_len = 1, .count = 3}};
    reqs[3] = (cart_request_t){.op = CART_OP_REMOVE,
                               .customer = "c",
                               .customer_len = 1,
                               .item = {.id = "X", .id_len = 1}};
    reqs[4] = (cart_request_t){
        .op = CART_OP_CHECKOUT, .customer = "jea-265", .customer_len = 7};
}

static void
test_request_options_round_trip (void **state)
{
    char key[CART_IDEM_MAX];
    memset (key, '~', sizeof (key));
    key[0] = '!';
    const struct {
        uint64_t at;
        cart_match_t match;
        uint64_t version;
        const char *idem;
        size_t idem_len;
    } options[] = {
        {1764547200, CART_MATCH_NONE, 0, NULL, 0},
        {0, CART_MATCH_ANY, 0, NULL, 0},
        {0, CART_MATCH_VERSION, 0, NULL, 0},
        {0, CART_MATCH_VERSION, (1ULL << 63) - 1, NULL, 0},
        {0, CART_MATCH_NONE, 0, "k", 1},
        {UINT64_MAX, CART_MATCH_VERSION, 12, key, CART_IDEM_MAX},
    };
    for (size_t o = 0; o < sizeof (options) / sizeof (options[0]); o++) {
        cart_request_t reqs[5];
        s_requests_of_each_op (reqs);
        for (int i = 0; i < 5; i++) {
            cart_request_t *req = &reqs[i];
            req->at = options[o].at;
            req->match = options[o].match;
            req->version = options[o].version;
            req->idem = options[o].idem;
            req->idem_len = options[o].idem_len;
            msgpack_sbuffer buf = s_encode (req);
            cart_request_t bare = *req;
            bare.at = 0, bare.match = CART_MATCH_NONE, bare.version = 0;
            bare.idem = NULL, bare.idem_len = 0;
            msgpack_sbuffer plain = s_encode (&bare);
            //  One element more than without options
            assert_int_equal ((uint8_t)buf.data[0], (uint8_t)plain.data[0] + 1);
            cart_request_t out;
            const char *error = NULL;
            if (cart_request_decode (buf.data, buf.size, &out, &error))
                fail_msg ("options %zu, op %d: %s", o, req->op, error);
            assert_int_equal (out.op, req->op);
            assert_true (s_bytes_equal (out.customer, out.customer_len, req->customer,
                                        req->customer_len));
            if (req->op == CART_OP_ADD)
                s_assert_items_equal (&out.item, &req->item);
            if (req->op == CART_OP_SET)
                assert_int_equal (out.item.count, req->item.count);
            assert_int_equal (out.at, req->at);
            assert_int_equal (out.match, req->match);
            if (req->match == CART_MATCH_VERSION)
                assert_int_equal (out.version, req->version);
            assert_int_equal (out.idem == NULL, req->idem == NULL);
            if (req->idem)
                assert_true (
                    s_bytes_equal (out.idem, out.idem_len, req->idem, req->idem_len));
            msgpack_sbuffer_destroy (&buf);
            msgpack_sbuffer_destroy (&plain);
        }
    }
}

//  Without options a request is encoded as before them: byte for byte,
//  and decodes with none set.
static void
test_request_without_options (void **state)
{
    const struct {
        cart_request_t req;
        const char *bytes;
        size_t size;
    } cases[] = {
        {{.op = CART_OP_GET, .customer = "c", .customer_len = 1},
         "\x92\x01\xa1"
         "c",
         4},
        {{.op = CART_OP_SET,
          .customer = "c",
          .customer_len = 1,
          .item = {.id = "i", .id_len = 1, .count = 2}},
         "\x94\x03\xa1"
         "c\xa1i\x02",
         7},
        {{.op = CART_OP_REMOVE,
          .customer = "c",
          .customer_len = 1,
          .item = {.id = "i", .id_len = 1}},
         "\x93\x04\xa1"
         "c\xa1i",
         6},
        {{.op = CART_OP_ADD,
          .customer = "c",
          .customer_len = 1,
          .item = {.id = "i", .id_len = 1, .count = 1, .price_cents = 5}},
         "\x97\x02\xa1"
         "c\xa1i\x05\x01\xc2\xc0",
         10},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        msgpack_sbuffer buf = s_encode (&cases[i].req);
        assert_int_equal (buf.size, cases[i].size);
        assert_memory_equal (buf.data, cases[i].bytes, cases[i].size);
        cart_request_t out;
        const char *error = NULL;
        assert_int_equal (cart_request_decode (buf.data, buf.size, &out, &error), 0);
        assert_int_equal (out.at, 0);
        assert_int_equal (out.match, CART_MATCH_NONE);
        assert_null (out.idem);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  A GET of "x" with the given options' bytes.
static size_t
s_get_with_options (uint8_t *out, const void *options, size_t size)
{
    memcpy (out, "\x93\x01\xa1x", 4);
    memcpy (out + 4, options, size);
    return 4 + size;
}

static void
test_request_options_malformed (void **state)
{
    //  [0, nil, str16 of 256 bytes]
    uint8_t long_key[6 + CART_IDEM_MAX + 1] = {0x93, 0x00, 0xc0, 0xda, 0x01, 0x00};
    memset (long_key + 6, 'k', CART_IDEM_MAX + 1);
    const struct {
        const char *bytes;
        size_t size;
        const char *why;
    } cases[] = {
        {"\x92\x00\xc0", 3, "options of 2 elements"},
        {"\x94\x00\xc0\xc0\xc0", 5, "options of 4 elements"},
        {"\x90", 1, "options of 0 elements"},
        {"\xc0", 1, "options nil, not an array"},
        {"\x00", 1, "options an integer"},
        {"\x93\xc0\xc0\xc0", 4, "at is nil"},
        {"\x93\xd0\xff\xc0\xc0", 5, "at is negative"},
        {"\x93\x00\xc2\xc0", 4, "false, not true"},
        {"\x93\x00\xd0\xff\xc0", 5, "a negative version"},
        {"\x93\x00\xd3\xff\xff\xff\xff\xff\xff\xff\xff\xc0", 12, "version -1 as int64"},
        {"\x93\x00\xcf\x80\x00\x00\x00\x00\x00\x00\x00\xc0", 12, "version 2^63"},
        {"\x93\x00\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc0", 12, "version 2^64-1"},
        {"\x93\x00\xa1"
         "1\xc0",
         5, "a version as a string"},
        {"\x93\x00\xc0\xa0", 4, "a key of 0 bytes"},
        {"\x93\x00\xc0\xa3"
         "a b",
         7, "a key with a space"},
        {"\x93\x00\xc0\xa2"
         "a\x7f",
         6, "a key with 0x7F"},
        {"\x93\x00\xc0\xa2"
         "a\x80",
         6, "a key with 0x80"},
        {"\x93\x00\xc0\xa2"
         "a\x00",
         6, "a key with 0x00"},
        {"\x93\x00\xc0\xc4\x01k", 6, "a key as bin"},
        {"\x93\x00\xc0\x01", 4, "a key as an integer"},
        {"\x93\x00\xc0\xa2k", 5, "a key shorter than declared"},
        {"\x93\x00\xc0", 3, "a key missing"},
        {(const char *)long_key, sizeof (long_key), "a key of 256 bytes"},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        uint8_t body[512];
        size_t size = s_get_with_options (body, cases[i].bytes, cases[i].size);
        cart_request_t req;
        const char *error = NULL;
        if (cart_request_decode (body, size, &req, &error) != -1)
            fail_msg ("accepted: %s", cases[i].why);
        assert_non_null (error);
    }
    //  The same shapes at their limits are accepted
    const struct {
        const char *bytes;
        size_t size;
    } good[] = {
        {"\x93\x00\xc0\xc0", 4},
        {"\x93\x00\xc3\xc0", 4},
        {"\x93\x00\xcf\x7f\xff\xff\xff\xff\xff\xff\xff\xc0", 12},
        {"\x93\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc0\xc0", 12},
        {"\x93\x00\xc0\xa2!~", 6},
    };
    for (size_t i = 0; i < sizeof (good) / sizeof (good[0]); i++) {
        uint8_t body[64];
        size_t size = s_get_with_options (body, good[i].bytes, good[i].size);
        cart_request_t req;
        const char *error = NULL;
        if (cart_request_decode (body, size, &req, &error))
            fail_msg ("refused good options %zu: %s", i, error);
    }
    long_key[4] = 0, long_key[5] = CART_IDEM_MAX; //  255 bytes, the last left out
    uint8_t body[512];
    size_t size = s_get_with_options (body, long_key, sizeof (long_key) - 1);
    cart_request_t req;
    const char *error = NULL;
    assert_int_equal (cart_request_decode (body, size, &req, &error), 0);
    assert_int_equal (req.idem_len, CART_IDEM_MAX);
    //  Options after too many fields, or twice
    static const char twice[] = "\x94\x01\xa1x\x93\x00\xc0\xc0\x93\x00\xc0\xc0";
    s_assert_request_fails (twice, sizeof (twice) - 1);
}

//  The encoder refuses what the decoder would
static void
test_request_options_encode_refused (void **state)
{
    char key[CART_IDEM_MAX + 1];
    memset (key, 'k', sizeof (key));
    const struct {
        cart_match_t match;
        uint64_t version;
        const char *idem;
        size_t idem_len;
    } bad[] = {
        {CART_MATCH_VERSION, 1ULL << 63, NULL, 0},
        {CART_MATCH_VERSION, UINT64_MAX, NULL, 0},
        {(cart_match_t)3, 0, NULL, 0},
        {CART_MATCH_NONE, 0, key, 0},
        {CART_MATCH_NONE, 0, key, CART_IDEM_MAX + 1},
        {CART_MATCH_NONE, 0, "a b", 3},
        {CART_MATCH_NONE, 0, "a\x7f", 2},
    };
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        cart_request_t req = s_add_request ();
        req.match = bad[i].match;
        req.version = bad[i].version;
        req.idem = bad[i].idem;
        req.idem_len = bad[i].idem_len;
        const char *error = NULL;
        buf.size = 0;
        if (cart_request_encode (&req, &buf, &error) != -1)
            fail_msg ("encoded bad options %zu", i);
        assert_non_null (error);
        assert_int_equal (buf.size, 0);
    }
    msgpack_sbuffer_destroy (&buf);
}

static void
test_idem_valid (void **state)
{
    char key[CART_IDEM_MAX + 1];
    memset (key, 'a', sizeof (key));
    assert_true (cart_idem_valid ("a", 1));
    assert_true (cart_idem_valid ("!~", 2));
    assert_true (cart_idem_valid ("\"quoted\"", 8));
    assert_true (cart_idem_valid (key, CART_IDEM_MAX));
    assert_false (cart_idem_valid (key, CART_IDEM_MAX + 1));
    assert_false (cart_idem_valid (key, 0));
    assert_false (cart_idem_valid (NULL, 0));
    assert_false (cart_idem_valid (NULL, 1));
    const char *bad[] = {"a b", "a\tb", "a\x7f", "a\x80", "\xc3\xa9", "a\x20", "\x1f"};
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++)
        if (cart_idem_valid (bad[i], strlen (bad[i])))
            fail_msg ("accepted bad key %zu", i);
    assert_false (cart_idem_valid ("a\0b", 3));
}

//  --------------------------------------------------------------------------
//  The msgpack reader: nil and bin

static void
test_mpack_nil (void **state)
{
    cart_mpack_t r = cart_mpack_start ("", 0);
    assert_false (cart_mpack_nil (&r));
    r = cart_mpack_start ("\xc0\xc2", 2);
    assert_true (cart_mpack_nil (&r));
    assert_false (cart_mpack_nil (&r)); //  false: nothing read
    bool value = true;
    assert_int_equal (cart_mpack_bool (&r, &value), 0);
    assert_false (value);
    assert_true (cart_mpack_done (&r));
    r = cart_mpack_start ("\xa0", 1);
    assert_false (cart_mpack_nil (&r));
    const char *text;
    size_t len;
    assert_int_equal (cart_mpack_str (&r, 10, &text, &len), 0);
    assert_true (cart_mpack_done (&r));
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

    //  ...and a peer's longer message is refused
    buf.size = 0;
    msgpack_pack_str_with_body (&pk, long_message, CART_ERROR_MAX + 1);
    error = NULL;
    assert_int_equal (cart_reply_decode (buf.data, buf.size, &reply, &error), -1);
    assert_non_null (error);
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

//  An ADD request body packed by hand with the given saleExpiration, so
//  that the decoder sees a date the encoder would refuse to write.
static msgpack_sbuffer
s_add_body_with_expiry (const char *expiry)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, 7);
    msgpack_pack_uint8 (&pk, CART_OP_ADD);
    msgpack_pack_str_with_body (&pk, "jea-265", 7);
    msgpack_pack_str_with_body (&pk, "036000291459", 12);
    msgpack_pack_uint64 (&pk, 5000);
    msgpack_pack_uint32 (&pk, 6);
    msgpack_pack_true (&pk);
    msgpack_pack_str_with_body (&pk, expiry, strlen (expiry));
    return buf;
}

static const char *s_bad_expiries[] = {
    "tomorrow",
    "2026-12-01",                //  a date without a time
    "2026-12-01T00:00:00",       //  no offset
    "2026-12-01 00:00:00Z",      //  a space, not 'T'
    "2026-13-01T00:00:00Z",      //  month 13
    "2026-02-29T00:00:00Z",      //  2026 is not a leap year
    "2100-02-29T00:00:00Z",      //  nor is 2100
    "2026-04-31T00:00:00Z",      //  April has 30 days
    "2026-12-01T24:00:00Z",      //  hour 24
    "2026-12-01T00:60:00Z",      //  minute 60
    "2026-12-01T00:00:61Z",      //  second 61
    "2026-12-01T00:00:00.Z",     //  a dot without digits
    "2026-12-01T00:00:00+5:00",  //  a one-digit offset hour
    "2026-12-01T00:00:00+24:00", //  offset hour 24
    "2026-12-01T00:00:00ZZ",     //  trailing byte
    "2026-12-01T00:00:00Z ",     //  trailing space
};

static const char *s_good_expiries[] = {
    "2026-12-01T00:00:00Z",
    "2024-02-29T23:59:60.123456+05:30", //  leap day, leap second, fraction
    "2000-02-29t00:00:00z",             //  2000 is a leap year; lowercase
    "1999-12-31T23:59:59-23:59",
};

#define COUNT(array) (sizeof (array) / sizeof ((array)[0]))

//  saleExpiration must be an RFC 3339 date-time: the check, the encoder and
//  the decoder all hold a request to it.
static void
test_request_expiry_rfc3339 (void **state)
{
    for (size_t i = 0; i < COUNT (s_bad_expiries); i++) {
        const char *expiry = s_bad_expiries[i];
        cart_request_t req = s_add_request ();
        req.item.expiry = expiry;
        req.item.expiry_len = strlen (expiry);
        const char *error = NULL;
        if (cart_request_check (&req, &error) != -1)
            fail_msg ("check accepted saleExpiration \"%s\"", expiry);
        assert_non_null (strstr (error, "saleExpiration"));

        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        error = NULL;
        assert_int_equal (cart_request_encode (&req, &buf, &error), -1);
        assert_non_null (error);
        assert_int_equal (buf.size, 0);
        msgpack_sbuffer_destroy (&buf);

        buf = s_add_body_with_expiry (expiry);
        cart_request_t out;
        error = NULL;
        if (cart_request_decode (buf.data, buf.size, &out, &error) != -1)
            fail_msg ("decode accepted saleExpiration \"%s\"", expiry);
        assert_non_null (strstr (error, "saleExpiration"));
        msgpack_sbuffer_destroy (&buf);
    }
    //  The same hand-made body with a valid date is accepted, so that the
    //  refusals above are for the date alone
    for (size_t i = 0; i < COUNT (s_good_expiries); i++) {
        const char *expiry = s_good_expiries[i];
        msgpack_sbuffer buf = s_add_body_with_expiry (expiry);
        cart_request_t out;
        const char *error = NULL;
        if (cart_request_decode (buf.data, buf.size, &out, &error))
            fail_msg ("decode refused saleExpiration \"%s\": %s", expiry, error);
        assert_true (s_bytes_equal (out.item.expiry, out.item.expiry_len, expiry,
                                    strlen (expiry)));
        assert_int_equal (cart_request_check (&out, &error), 0);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  A reply's item is held to the same date rule.
static void
test_reply_expiry_rfc3339 (void **state)
{
    const char *expiries[] = {"tomorrow", "2026-12-01T00:00:00Z"};
    for (size_t i = 0; i < 2; i++) {
        cart_item_t item = {.id = "i", .id_len = 1, .price_cents = 1, .count = 1};
        item.expiry = expiries[i];
        item.expiry_len = strlen (expiries[i]);
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
        cart_reply_encode_item (&pk, &item);
        cart_reply_t reply;
        const char *error = NULL;
        int rc = cart_reply_decode (buf.data, buf.size, &reply, &error);
        assert_int_equal (rc, i == 0 ? -1 : 0);
        if (rc)
            assert_non_null (error);
        else
            assert_int_equal (reply.kind, CART_BODY_ITEM);

        //  And as an item of a cart
        buf.size = 0;
        cart_reply_encode_cart (&pk, "c", 1, 1);
        cart_reply_encode_item (&pk, &item);
        assert_int_equal (cart_reply_decode (buf.data, buf.size, &reply, &error), 0);
        cart_item_t out;
        assert_int_equal (cart_reply_next_item (&reply, &out, &error), i == 0 ? -1 : 1);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  The broker's own error bodies, written without a packer
static void
test_reply_error_body (void **state)
{
    uint8_t buffer[300];
    cart_reply_t reply;
    const char *error;
    size_t size = cart_reply_error_body (buffer, sizeof (buffer), "no live worker");
    assert_int_equal (size, 2 + 14);
    assert_int_equal (cart_reply_decode (buffer, size, &reply, &error), 0);
    assert_int_equal (reply.kind, CART_BODY_ERROR);
    assert_true (s_bytes_equal (reply.message, reply.message_len, "no live worker", 14));

    //  Cut to fit the buffer
    size = cart_reply_error_body (buffer, 10, "no live worker");
    assert_int_equal (size, 10);
    assert_int_equal (cart_reply_decode (buffer, size, &reply, &error), 0);
    assert_true (s_bytes_equal (reply.message, reply.message_len, "no live w", 8));

    //  And to a str 8's 255 bytes
    char long_message[1000];
    memset (long_message, 'm', sizeof (long_message) - 1);
    long_message[sizeof (long_message) - 1] = 0;
    size = cart_reply_error_body (buffer, sizeof (buffer), long_message);
    assert_int_equal (size, 257);
    assert_int_equal (cart_reply_decode (buffer, size, &reply, &error), 0);
    assert_int_equal (reply.message_len, 255);
}

//  --------------------------------------------------------------------------
//  READY

static msgpack_sbuffer
s_ready_body (uint32_t shards, uint32_t heartbeat_ms, const uint32_t *list, size_t n)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    cart_ready_encode (&pk, shards, heartbeat_ms, list, n);
    return buf;
}

static void
test_ready_round_trip (void **state)
{
    const uint32_t list[] = {9999, 0, 17, 255, 256, 65};
    msgpack_sbuffer buf = s_ready_body (10000, 100, list, COUNT (list));
    cart_ready_t ready;
    const char *error = NULL;
    if (cart_ready_decode (buf.data, buf.size, &ready, &error))
        fail_msg ("READY refused: %s", error);
    assert_int_equal (ready.shards, 10000);
    assert_int_equal (ready.heartbeat_ms, 100);
    assert_int_equal (ready.n_shards, COUNT (list));
    for (size_t i = 0; i < COUNT (list); i++)
        assert_int_equal (cart_ready_next (&ready), list[i]);
    msgpack_sbuffer_destroy (&buf);

    //  Every shard of the largest cluster, in one READY
    uint32_t *all = malloc (CART_SHARDS_MAX * sizeof (uint32_t));
    for (uint32_t i = 0; i < CART_SHARDS_MAX; i++)
        all[i] = CART_SHARDS_MAX - 1 - i;
    buf = s_ready_body (CART_SHARDS_MAX, 1, all, CART_SHARDS_MAX);
    assert_int_equal (cart_ready_decode (buf.data, buf.size, &ready, &error), 0);
    assert_int_equal (ready.n_shards, CART_SHARDS_MAX);
    for (uint32_t i = 0; i < CART_SHARDS_MAX; i++)
        assert_int_equal (cart_ready_next (&ready), all[i]);
    msgpack_sbuffer_destroy (&buf);
    free (all);
}

static void
test_ready_refused (void **state)
{
    const uint32_t ok[] = {1, 2};
    const uint32_t shard_10000[] = {1, 10000};
    const uint32_t shard_huge[] = {UINT32_MAX};
    const struct {
        uint32_t shards, heartbeat_ms;
        const uint32_t *list;
        size_t n;
        const char *why;
    } cases[] = {
        {16, 100, shard_10000, 2, "shard 10000"},
        {10000, 100, shard_10000, 2, "shard 10000 in a cluster of 10000"},
        {16, 100, shard_huge, 1, "shard 2^32-1"},
        {16, 100, ok, 0, "empty shard list"},
        {0, 100, ok, 2, "a cluster of 0 shards"},
        {10001, 100, ok, 2, "a cluster of 10001 shards"},
        {16, 0, ok, 2, "heartbeat 0 ms"},
    };
    for (size_t i = 0; i < COUNT (cases); i++) {
        msgpack_sbuffer buf = s_ready_body (cases[i].shards, cases[i].heartbeat_ms,
                                            cases[i].list, cases[i].n);
        cart_ready_t ready;
        const char *error = NULL;
        if (cart_ready_decode (buf.data, buf.size, &ready, &error) != -1)
            fail_msg ("READY accepted: %s", cases[i].why);
        assert_non_null (error);
        msgpack_sbuffer_destroy (&buf);
    }
    //  Hand-made: 4 fields, a map, a str shard, trailing bytes
    const struct {
        const char *bytes;
        size_t size;
    } raw[] = {
        {"\x94\x10\x64\x91\x01\x00", 6},         {"\x83\x10\x64\x91\x01", 5},
        {"\x93\x10\x64\x91\xa1\x31", 6},         {"\x93\x10\x64\x91\x01\xc0", 6},
        {"\x93\x10\x64\xdd\xff\xff\xff\xff", 8}, {"", 0},
    };
    for (size_t i = 0; i < COUNT (raw); i++) {
        cart_ready_t ready;
        const char *error = NULL;
        if (cart_ready_decode (raw[i].bytes, raw[i].size, &ready, &error) != -1)
            fail_msg ("READY raw case %zu accepted", i);
        assert_non_null (error);
    }
    //  Their valid twin is accepted
    cart_ready_t ready;
    const char *error = NULL;
    assert_int_equal (cart_ready_decode ("\x93\x10\x64\x91\x01", 5, &ready, &error), 0);
    assert_int_equal (cart_ready_next (&ready), 1);
}

//  Every proper prefix of a valid READY is refused, and nothing is read
//  past it.
static void
test_ready_truncated (void **state)
{
    const uint32_t list[] = {3, 9999, 70000 % CART_SHARDS_MAX, 0};
    msgpack_sbuffer buf = s_ready_body (10000, 100, list, COUNT (list));
    for (size_t len = 0; len < buf.size; len++) {
        char *copy = malloc (len ? len : 1);
        memcpy (copy, buf.data, len);
        cart_ready_t ready;
        const char *error = NULL;
        if (cart_ready_decode (copy, len, &ready, &error) != -1)
            fail_msg ("READY prefix of %zu of %zu bytes accepted", len, buf.size);
        assert_non_null (error);
        free (copy);
    }
    msgpack_sbuffer_destroy (&buf);
}

//  --------------------------------------------------------------------------
//  Load and stats

static const cart_shard_stats_t s_stats_entries[] = {
    {.shard = 0,
     .live = true,
     .stalled = false,
     .carts = 1,
     .items = 2,
     .expired = 4,
     .requests = 3,
     .load_age_ms = 0},
    {.shard = 1, .live = false, .stalled = true, .load_age_ms = -1},
    {.shard = 9998,
     .live = true,
     .stalled = true,
     .carts = 300,
     .items = 70000,
     .expired = 1ULL << 33,
     .requests = 1ULL << 40,
     .load_age_ms = 1234},
    {.shard = 9999,
     .live = false,
     .stalled = false,
     .carts = UINT64_MAX,
     .items = UINT64_MAX - 1,
     .expired = UINT64_MAX - 2,
     .requests = UINT64_MAX,
     .load_age_ms = CART_LOAD_AGE_MAX_MS},
};

static msgpack_sbuffer
s_stats_body (uint32_t shards, bool load)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    if (load)
        cart_load_encode (&pk, COUNT (s_stats_entries));
    else
        cart_stats_encode (&pk, shards, COUNT (s_stats_entries));
    for (size_t i = 0; i < COUNT (s_stats_entries); i++)
        if (load)
            cart_load_encode_entry (&pk, &s_stats_entries[i]);
        else
            cart_stats_encode_entry (&pk, &s_stats_entries[i]);
    return buf;
}

//  Reads a whole list: returns the entries read, or -1 when the list or
//  any entry is refused (or the list does not end where the body does).
static int
s_read_list (const void *data, size_t size, bool load, cart_shard_stats_t *out,
             size_t max)
{
    cart_stats_list_t list;
    const char *error = NULL;
    int rc = load ? cart_load_decode (data, size, &list, &error)
                  : cart_stats_decode (data, size, &list, &error);
    if (rc) {
        assert_non_null (error);
        return -1;
    }
    size_t n = 0;
    cart_shard_stats_t entry;
    while ((rc = cart_stats_next (&list, &entry, &error)) == 1) {
        assert_true (n < list.n_entries);
        assert_true (entry.shard < CART_SHARDS_MAX);
        if (out && n < max)
            out[n] = entry;
        n++;
    }
    if (rc == -1) {
        assert_non_null (error);
        return -1;
    }
    assert_int_equal (n, list.n_entries);
    return (int)n;
}

static void
test_stats_round_trip (void **state)
{
    msgpack_sbuffer buf = s_stats_body (10000, false);
    cart_stats_list_t list;
    const char *error = NULL;
    assert_int_equal (cart_stats_decode (buf.data, buf.size, &list, &error), 0);
    assert_int_equal (list.shards, 10000);
    assert_int_equal (list.n_entries, COUNT (s_stats_entries));
    for (size_t i = 0; i < COUNT (s_stats_entries); i++) {
        cart_shard_stats_t entry;
        assert_int_equal (cart_stats_next (&list, &entry, &error), 1);
        const cart_shard_stats_t *want = &s_stats_entries[i];
        assert_int_equal (entry.shard, want->shard);
        assert_int_equal (entry.live, want->live);
        assert_int_equal (entry.stalled, want->stalled);
        assert_int_equal (entry.carts, want->carts);
        assert_int_equal (entry.items, want->items);
        assert_int_equal (entry.requests, want->requests);
        assert_int_equal (entry.expired, want->expired);
        assert_int_equal (entry.load_age_ms, want->load_age_ms);
    }
    cart_shard_stats_t entry;
    assert_int_equal (cart_stats_next (&list, &entry, &error), 0);
    msgpack_sbuffer_destroy (&buf);
}

static void
test_load_round_trip (void **state)
{
    msgpack_sbuffer buf = s_stats_body (0, true);
    cart_shard_stats_t out[COUNT (s_stats_entries)];
    assert_int_equal (s_read_list (buf.data, buf.size, true, out, COUNT (out)),
                      COUNT (s_stats_entries));
    for (size_t i = 0; i < COUNT (s_stats_entries); i++) {
        assert_int_equal (out[i].shard, s_stats_entries[i].shard);
        assert_int_equal (out[i].carts, s_stats_entries[i].carts);
        assert_int_equal (out[i].items, s_stats_entries[i].items);
        assert_int_equal (out[i].expired, s_stats_entries[i].expired);
        //  A load carries none of the broker's fields
        assert_false (out[i].live);
        assert_false (out[i].stalled);
        assert_int_equal (out[i].requests, 0);
        assert_int_equal (out[i].load_age_ms, -1);
    }
    msgpack_sbuffer_destroy (&buf);

    //  An empty load is a load
    assert_int_equal (s_read_list ("\x90", 1, true, NULL, 0), 0);
}

//  The field order on the wire, written by hand: a stats entry is
//  [shard, live, stalled, carts, items, requests, expired, load-age], a
//  load entry [shard, carts, items, expired].
static void
test_stats_wire_order (void **state)
{
    const char stats[] = "\x92\x10\x91\x98\x05\xc2\xc3\x01\x02\x03\x04\xcd\x01\x00";
    cart_shard_stats_t out[1];
    assert_int_equal (s_read_list (stats, sizeof (stats) - 1, false, out, 1), 1);
    assert_int_equal (out[0].shard, 5);
    assert_false (out[0].live);
    assert_true (out[0].stalled);
    assert_int_equal (out[0].carts, 1);
    assert_int_equal (out[0].items, 2);
    assert_int_equal (out[0].requests, 3);
    assert_int_equal (out[0].expired, 4);
    assert_int_equal (out[0].load_age_ms, 256);

    //  No load yet: nil
    const char never[] = "\x92\x10\x91\x98\x05\xc3\xc2\x00\x00\x00\x00\xc0";
    assert_int_equal (s_read_list (never, sizeof (never) - 1, false, out, 1), 1);
    assert_true (out[0].live);
    assert_int_equal (out[0].load_age_ms, -1);

    const char load[] = "\x91\x94\x07\x08\x09\x0a";
    assert_int_equal (s_read_list (load, sizeof (load) - 1, true, out, 1), 1);
    assert_int_equal (out[0].shard, 7);
    assert_int_equal (out[0].carts, 8);
    assert_int_equal (out[0].items, 9);
    assert_int_equal (out[0].expired, 10);

    //  An age past the bound is sent as the bound
    cart_shard_stats_t old = {.shard = 3, .load_age_ms = INT64_MAX};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    cart_stats_encode (&pk, 4, 1);
    cart_stats_encode_entry (&pk, &old);
    assert_int_equal (s_read_list (buf.data, buf.size, false, out, 1), 1);
    assert_int_equal (out[0].load_age_ms, CART_LOAD_AGE_MAX_MS);
    msgpack_sbuffer_destroy (&buf);
}

static void
test_stats_ill_formed (void **state)
{
    const struct {
        const char *bytes;
        size_t size;
        bool load;
        const char *why;
    } cases[] = {
        {"\x92\x10\x91\x95\x05\xc3\x01\x02\x03", 9, false, "CART/1's 5-field entry"},
        {"\x92\x10\x91\x96\x05\xc2\xc3\x01\x02\x03", 10, false,
         "the 6-field entry before load ages"},
        {"\x92\x10\x91\x97\x05\xc2\xc3\x01\x02\x03\x04\x05", 12, false,
         "8 fields in an entry declared as 7"},
        {"\x92\x10\x91\x99\x05\xc2\xc3\x01\x02\x03\x04\x05\x06", 13, false, "9 fields"},
        {"\x92\x10\x91\x94\x05\x01\x02\x03", 8, false, "a load entry in stats"},
        {"\x91\x93\x07\x08\x09", 5, true, "the 3-field load entry before expired"},
        {"\x91\x95\x07\x08\x09\x0a", 6, true, "4 fields in a load entry declared as 5"},
        {"\x91\x92\x07\x08\x09", 5, true, "3 fields in a load entry declared as 2"},
        {"\x91\x98\x05\xc3\xc2\x01\x02\x03\x04\x05", 10, true, "a stats entry in a load"},
        {"\x92\x10\x91\x98\xcd\x27\x10\xc3\xc2\x01\x02\x03\x04\x05", 14, false,
         "shard 10000"},
        {"\x91\x94\xcd\x27\x10\x01\x02\x03", 8, true, "load shard 10000"},
        {"\x92\x10\x91\x98\x05\x01\xc2\x01\x02\x03\x04\x05", 12, false, "live is an int"},
        {"\x92\x10\x91\x98\x05\xc3\x00\x01\x02\x03\x04\x05", 12, false,
         "stalled is an int"},
        {"\x92\x10\x91\x98\x05\xc3\xc2\xff\x02\x03\x04\x05", 12, false, "negative carts"},
        {"\x92\x10\x91\x98\x05\xc3\xc2\x01\x02\x03\xff\x05", 12, false,
         "negative expired"},
        {"\x91\x94\x05\x01\x02\xc0", 6, true, "nil expired in a load"},
        {"\x92\x10\x91\x98\x05\xc3\xc2\x01\x02\x03\x04\xff", 12, false,
         "a negative load age"},
        {"\x92\x10\x91\x98\x05\xc3\xc2\x01\x02\x03\x04\xce\x80\x00\x00\x00", 16, false,
         "a load age of 2^31 ms"},
        {"\x92\x10\x91\x98\x05\xc3\xc2\x01\x02\x03\x04\xc3", 12, false,
         "a load age that is a bool"},
        {"\x92\x10\x91\x98\x05\xc3\xc2\x01\x02\x03\x04\xa1\x31", 13, false,
         "a load age that is a str"},
        {"\x92\x00\x90", 3, false, "a cluster of 0 shards"},
        {"\x92\xcd\x27\x11\x90", 5, false, "a cluster of 10001 shards"},
        {"\x93\x10\x90\x90", 4, false, "3 fields"},
        {"\x92\x10\x92\x98\x05\xc3\xc2\x01\x02\x03\x04\x05", 12, false,
         "2 entries declared, 1"},
        {"\x92\x10\x91\x98\x05\xc3\xc2\x01\x02\x03\x04\x05\xc0", 13, false,
         "trailing byte"},
        {"\x92\x10\xdd\xff\xff\xff\xff", 7, false, "2^32-1 entries"},
        {"\xdd\x00\x01\x00\x00", 5, true, "load of 65536 entries"},
        {"", 0, false, "empty stats"},
        {"", 0, true, "empty load"},
    };
    for (size_t i = 0; i < COUNT (cases); i++)
        if (s_read_list (cases[i].bytes, cases[i].size, cases[i].load, NULL, 0) != -1)
            fail_msg ("accepted: %s", cases[i].why);
}

//  Every proper prefix of a stats or load body is refused, by the head's
//  decoder or by an entry's.
static void
test_stats_truncated (void **state)
{
    for (int load = 0; load < 2; load++) {
        msgpack_sbuffer buf = s_stats_body (10000, load);
        for (size_t len = 0; len < buf.size; len++) {
            char *copy = malloc (len ? len : 1);
            memcpy (copy, buf.data, len);
            if (s_read_list (copy, len, load, NULL, 0) != -1)
                fail_msg ("%s prefix of %zu of %zu bytes accepted",
                          load ? "load" : "stats", len, buf.size);
            free (copy);
        }
        assert_int_equal (s_read_list (buf.data, buf.size, load, NULL, 0),
                          COUNT (s_stats_entries));
        msgpack_sbuffer_destroy (&buf);
    }
}

//  Random mutations never crash a reader (s_read_list checks every entry
//  accepted).
static void
test_stats_mutations (void **state)
{
    unsigned seed = 54321;
    for (int load = 0; load < 2; load++) {
        msgpack_sbuffer buf = s_stats_body (10000, load);
        char *copy = malloc (buf.size);
        for (int round = 0; round < 100000; round++) {
            memcpy (copy, buf.data, buf.size);
            int flips = 1 + rand_r (&seed) % 3;
            for (int f = 0; f < flips; f++)
                copy[rand_r (&seed) % buf.size] = (char)rand_r (&seed);
            size_t len = buf.size - (size_t)(rand_r (&seed) % 2);
            s_read_list (copy, len, load, NULL, 0);
        }
        free (copy);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  --------------------------------------------------------------------------
//  The header frame

typedef struct {
    int command;
    const char *name;
    cart_body_rule_t body;
    int receivers;
} command_t;

#define S_COMMAND(NAME, value, body, receivers) {value, #NAME, body, receivers},
static const command_t s_commands[] = {CART_COMMANDS (S_COMMAND)};
#undef S_COMMAND

static const int s_ends[] = {CART_AT_FRONTEND, CART_AT_CLIENT, CART_AT_BACKEND,
                             CART_AT_WORKER};

static const command_t *
s_command (int command)
{
    for (size_t i = 0; i < COUNT (s_commands); i++)
        if (s_commands[i].command == command)
            return &s_commands[i];
    fail_msg ("no command %d", command);
    return NULL;
}

//  The lowest end that may receive a command
static int
s_receiver (int command)
{
    int receivers = s_command (command)->receivers;
    return receivers & -receivers;
}

//  A header with every field set to something other than 0, as far as the
//  command allows.
static cart_header_t
s_header (int command)
{
    cart_header_t header = {.command = (uint8_t)command,
                            .flags = 0,
                            .status = 0,
                            .shard = 9999,
                            .timeout_ms = 0xF1F2F3F4,
                            .acked = 0xA1A2A3A4,
                            .corr = 0x0102030405060708ULL,
                            .key = (1ULL << 63) - 1 - 0x1122};
    if (command == CART_CMD_REPLY)
        header.status = CART_UNAVAILABLE;
    if (command == CART_CMD_REFUSE)
        header.status = CART_CONFLICT;
    return header;
}

static void
s_assert_headers_equal (const cart_header_t *a, const cart_header_t *b)
{
    assert_int_equal (a->command, b->command);
    assert_int_equal (a->flags, b->flags);
    assert_int_equal (a->status, b->status);
    assert_int_equal (a->shard, b->shard);
    assert_int_equal (a->timeout_ms, b->timeout_ms);
    assert_int_equal (a->acked, b->acked);
    assert_int_equal (a->corr, b->corr);
    assert_int_equal (a->key, b->key);
}

//  Decodes a copy of exactly size bytes (so that ASan sees an overread);
//  on failure checks that an error was given.
static int
s_decode (const void *data, size_t size, int at, cart_header_t *header,
          const char **error_p)
{
    void *copy = malloc (size ? size : 1);
    memcpy (copy, data, size);
    const char *error = NULL;
    int rc = cart_header_decode (copy, size, at, header, &error);
    free (copy);
    assert_true (rc == 0 || rc == -1);
    if (rc) {
        assert_non_null (error);
        assert_true (strlen (error) > 0);
    }
    if (error_p)
        *error_p = error;
    return rc;
}

static void
test_header_layout (void **state)
{
    cart_header_t header = {.command = CART_CMD_REPLY,
                            .flags = 0x5A,
                            .status = 0x01F7, //  503
                            .shard = 0x270F,  //  9999
                            .timeout_ms = 0x11223344,
                            .acked = 0x55667788,
                            .corr = 0x99AABBCCDDEEFF00ULL,
                            .key = 0x7F0E0D0C0B0A0908ULL};
    uint8_t wire[CART_HEADER_SIZE];
    memset (wire, 0xEE, sizeof (wire));
    cart_header_encode (&header, wire);
    const uint8_t want[CART_HEADER_SIZE] = {
        'C',  2,    CART_CMD_REPLY, 0x5A, 0x01, 0xF7, 0x27, 0x0F, 0x11, 0x22, 0x33,
        0x44, 0x55, 0x66,           0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE,
        0xFF, 0x00, 0x7F,           0x0E, 0x0D, 0x0C, 0x0B, 0x0A, 0x09, 0x08};
    assert_memory_equal (wire, want, CART_HEADER_SIZE);
    assert_int_equal (CART_HEADER_SIZE, 32);

    uint8_t u32[4];
    cart_put_u32 (u32, 0xDEADBEEF);
    assert_memory_equal (u32, "\xde\xad\xbe\xef", 4);
    assert_int_equal (cart_get_u32 (u32), 0xDEADBEEF);
}

//  Every command, encoded and decoded at every end that may receive it;
//  refused at every other.
static void
test_header_round_trip (void **state)
{
    assert_int_equal (COUNT (s_commands), 8);
    for (size_t c = 0; c < COUNT (s_commands); c++) {
        const command_t *command = &s_commands[c];
        assert_string_equal (cart_command_name (command->command), command->name);
        assert_int_equal (cart_command_body (command->command), command->body);
        cart_header_t header = s_header (command->command);
        uint8_t wire[CART_HEADER_SIZE];
        cart_header_encode (&header, wire);
        int received = 0;
        for (size_t e = 0; e < COUNT (s_ends); e++) {
            cart_header_t out;
            const char *error;
            int rc = s_decode (wire, sizeof (wire), s_ends[e], &out, &error);
            if (command->receivers & s_ends[e]) {
                if (rc)
                    fail_msg ("%s at end %d: %s", command->name, s_ends[e], error);
                received++;
            } else {
                if (rc != -1)
                    fail_msg ("%s accepted at end %d", command->name, s_ends[e]);
            }
            //  Decoded either way, so that a malformed request can be answered
            s_assert_headers_equal (&out, &header);
        }
        assert_true (received >= 1);

        //  The extremes of every field
        cart_header_t edge = {.command = header.command,
                              .flags = 0xFF,
                              .status = header.status,
                              .shard = CART_SHARDS_MAX - 1,
                              .timeout_ms = UINT32_MAX,
                              .acked = UINT32_MAX,
                              .corr = UINT64_MAX,
                              .key = (1ULL << 63) - 1};
        cart_header_encode (&edge, wire);
        cart_header_t out;
        assert_int_equal (
            s_decode (wire, sizeof (wire), s_receiver (header.command), &out, NULL), 0);
        s_assert_headers_equal (&out, &edge);
        cart_header_t zero = {.command = header.command, .status = header.status};
        cart_header_encode (&zero, wire);
        assert_int_equal (
            s_decode (wire, sizeof (wire), s_receiver (header.command), &out, NULL), 0);
        s_assert_headers_equal (&out, &zero);
    }
    assert_string_equal (cart_command_name (0), "UNKNOWN");
    assert_string_equal (cart_command_name (9), "UNKNOWN");
    assert_string_equal (cart_command_name (-1), "UNKNOWN");
    assert_string_equal (cart_command_name (255), "UNKNOWN");

    //  Spot checks of the table against the spec
    assert_int_equal (cart_command_body (CART_CMD_REQUEST), CART_BODY_ALWAYS);
    assert_int_equal (cart_command_body (CART_CMD_PING), CART_BODY_NEVER);
    assert_int_equal (cart_command_body (CART_CMD_REPLY), CART_BODY_OPTIONAL);
}

//  A REPLY and a REFUSE take every known status, and no other.
static void
test_header_status (void **state)
{
#define S_STATUS(NAME, code, meaning) code,
    const int known[] = {CART_STATUSES (S_STATUS)};
#undef S_STATUS
    const int commands[] = {CART_CMD_REPLY, CART_CMD_REFUSE};
    for (size_t c = 0; c < 2; c++) {
        int at = s_receiver (commands[c]);
        size_t accepted = 0;
        for (int status = 0; status <= UINT16_MAX; status++) {
            cart_header_t header = s_header (commands[c]);
            header.status = (uint16_t)status;
            uint8_t wire[CART_HEADER_SIZE];
            cart_header_encode (&header, wire);
            cart_header_t out;
            const char *error = NULL;
            int rc = cart_header_decode (wire, sizeof (wire), at, &out, &error);
            bool is_known = false;
            for (size_t k = 0; k < COUNT (known); k++)
                is_known |= known[k] == status;
            if (is_known != (rc == 0))
                fail_msg ("%s with status %d: rc %d", cart_command_name (commands[c]),
                          status, rc);
            if (rc) {
                assert_non_null (strstr (error, "status"));
                assert_int_equal (out.corr, header.corr);
            } else
                accepted++;
        }
        assert_int_equal (accepted, COUNT (known));
    }
}

static void
test_header_refused (void **state)
{
    uint8_t valid[CART_HEADER_SIZE];
    cart_header_t request = s_header (CART_CMD_REQUEST);
    cart_header_encode (&request, valid);
    cart_header_t out;
    const char *error;

    //  The valid frame is accepted, so that each refusal below is for its
    //  one change
    assert_int_equal (s_decode (valid, sizeof (valid), CART_AT_FRONTEND, &out, NULL), 0);

    //  Wrong sizes
    uint8_t longer[CART_HEADER_SIZE * 2];
    memcpy (longer, valid, sizeof (valid));
    memcpy (longer + sizeof (valid), valid, sizeof (valid));
    const size_t sizes[] = {0, 1, 2, 7, 31, 33, 64};
    for (size_t i = 0; i < COUNT (sizes); i++) {
        assert_int_equal (s_decode (longer, sizes[i], CART_AT_FRONTEND, &out, &error),
                          -1);
        assert_null (strstr (error, "CART/1"));
    }

    //  Wrong signature
    uint8_t wire[CART_HEADER_SIZE];
    const uint8_t signatures[] = {0, 'c', 'D', 0xC3, 0xFF};
    for (size_t i = 0; i < COUNT (signatures); i++) {
        memcpy (wire, valid, sizeof (wire));
        wire[0] = signatures[i];
        assert_int_equal (s_decode (wire, sizeof (wire), CART_AT_FRONTEND, &out, &error),
                          -1);
    }

    //  CART/1's protocol frames: the error says so
    const char *cart1[] = {"CARTC01", "CARTW01"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal (s_decode (cart1[i], 7, CART_AT_FRONTEND, &out, &error), -1);
        if (!strstr (error, "CART/1"))
            fail_msg ("%s: \"%s\" does not name CART/1", cart1[i], error);
        assert_int_equal (s_decode (cart1[i], 7, CART_AT_BACKEND, &out, &error), -1);
        assert_non_null (strstr (error, "CART/1"));
    }
    //  ...and only those
    assert_int_equal (s_decode ("HELLO01", 7, CART_AT_FRONTEND, &out, &error), -1);
    assert_null (strstr (error, "CART/1"));

    //  Another version byte
    const uint8_t versions[] = {0, 1, 3, 'A', 0xFF};
    for (size_t i = 0; i < COUNT (versions); i++) {
        memcpy (wire, valid, sizeof (wire));
        wire[1] = versions[i];
        assert_int_equal (s_decode (wire, sizeof (wire), CART_AT_FRONTEND, &out, &error),
                          -1);
        assert_non_null (strstr (error, "version"));
    }

    //  Unknown commands, at every end
    const uint8_t commands[] = {0, 9, 10, 0x7F, 0x80, 0xFF};
    for (size_t i = 0; i < COUNT (commands); i++)
        for (size_t e = 0; e < COUNT (s_ends); e++) {
            memcpy (wire, valid, sizeof (wire));
            wire[2] = commands[i];
            assert_int_equal (s_decode (wire, sizeof (wire), s_ends[e], &out, &error),
                              -1);
            assert_non_null (strstr (error, "command"));
        }

    //  Commands sent to the wrong end
    const struct {
        int command, at;
    } misrouted[] = {
        {CART_CMD_REQUEST, CART_AT_CLIENT},      {CART_CMD_REQUEST, CART_AT_BACKEND},
        {CART_CMD_REPLY, CART_AT_FRONTEND},      {CART_CMD_REPLY, CART_AT_WORKER},
        {CART_CMD_PING, CART_AT_BACKEND},        {CART_CMD_STATS, CART_AT_WORKER},
        {CART_CMD_READY, CART_AT_FRONTEND},      {CART_CMD_HEARTBEAT, CART_AT_CLIENT},
        {CART_CMD_DISCONNECT, CART_AT_FRONTEND}, {CART_CMD_REFUSE, CART_AT_BACKEND},
    };
    for (size_t i = 0; i < COUNT (misrouted); i++) {
        cart_header_t header = s_header (misrouted[i].command);
        cart_header_encode (&header, wire);
        if (s_decode (wire, sizeof (wire), misrouted[i].at, &out, &error) != -1)
            fail_msg ("%s accepted at end %d", cart_command_name (misrouted[i].command),
                      misrouted[i].at);
        assert_int_equal (out.corr, header.corr);
    }

    //  Unknown status in a REPLY
    const uint16_t statuses[] = {0, 1, 100, 202, 300, 999, 0xFFFF};
    for (size_t i = 0; i < COUNT (statuses); i++) {
        cart_header_t header = s_header (CART_CMD_REPLY);
        header.status = statuses[i];
        cart_header_encode (&header, wire);
        assert_int_equal (s_decode (wire, sizeof (wire), CART_AT_CLIENT, &out, &error),
                          -1);
        assert_non_null (strstr (error, "status"));
    }

    //  Key at or above 2^63
    const uint64_t keys[] = {1ULL << 63, (1ULL << 63) + 1, UINT64_MAX};
    for (size_t i = 0; i < COUNT (keys); i++) {
        cart_header_t header = s_header (CART_CMD_REQUEST);
        header.key = keys[i];
        cart_header_encode (&header, wire);
        assert_int_equal (s_decode (wire, sizeof (wire), CART_AT_FRONTEND, &out, &error),
                          -1);
        assert_non_null (strstr (error, "key"));
        assert_int_equal (out.corr, header.corr);
    }

    //  Shard at or above 10000, in every command
    const uint16_t shards[] = {CART_SHARDS_MAX, CART_SHARDS_MAX + 1, 0x8000, UINT16_MAX};
    for (size_t c = 0; c < COUNT (s_commands); c++)
        for (size_t i = 0; i < COUNT (shards); i++) {
            cart_header_t header = s_header (s_commands[c].command);
            header.shard = shards[i];
            cart_header_encode (&header, wire);
            assert_int_equal (s_decode (wire, sizeof (wire),
                                        s_receiver (s_commands[c].command), &out, &error),
                              -1);
            assert_non_null (strstr (error, "shard"));
        }

    //  A NULL error is allowed
    assert_int_equal (cart_header_decode ("CARTC01", 7, CART_AT_FRONTEND, &out, NULL),
                      -1);
    memcpy (wire, valid, sizeof (wire));
    wire[2] = 0;
    assert_int_equal (
        cart_header_decode (wire, sizeof (wire), CART_AT_FRONTEND, &out, NULL), -1);
}

//  A header that decodes has every property the decoder promises, and
//  encodes back to the very bytes it came from.
static void
s_assert_sound (const uint8_t *wire, int at, const cart_header_t *header)
{
    const command_t *command = s_command (header->command);
    assert_true (command->receivers & at);
    assert_true (header->key >> 63 == 0);
    assert_true (header->shard < CART_SHARDS_MAX);
    if (header->command == CART_CMD_REPLY || header->command == CART_CMD_REFUSE)
        assert_true (cart_status_known (header->status));
    uint8_t again[CART_HEADER_SIZE];
    cart_header_encode (header, again);
    assert_memory_equal (again, wire, CART_HEADER_SIZE);
}

//  Every single-byte change of every command's header, at every end:
//  decoded soundly or refused with an error.
static void
test_header_mutations (void **state)
{
    size_t accepted = 0, refused = 0;
    for (size_t c = 0; c < COUNT (s_commands); c++) {
        cart_header_t header = s_header (s_commands[c].command);
        uint8_t valid[CART_HEADER_SIZE];
        cart_header_encode (&header, valid);
        for (size_t at = 0; at < CART_HEADER_SIZE; at++)
            for (int value = 0; value < 256; value++) {
                uint8_t wire[CART_HEADER_SIZE];
                memcpy (wire, valid, sizeof (wire));
                wire[at] = (uint8_t)value;
                for (size_t e = 0; e < COUNT (s_ends); e++) {
                    cart_header_t out;
                    const char *error = NULL;
                    if (cart_header_decode (wire, sizeof (wire), s_ends[e], &out,
                                            &error) == 0) {
                        s_assert_sound (wire, s_ends[e], &out);
                        accepted++;
                    } else {
                        assert_non_null (error);
                        refused++;
                    }
                }
            }
    }
    //  Both outcomes happen: the loop tests something
    assert_true (accepted > 0);
    assert_true (refused > 0);
}

//  Every truncation of a valid header is refused, without reading past it.
static void
test_header_truncated (void **state)
{
    for (size_t c = 0; c < COUNT (s_commands); c++) {
        cart_header_t header = s_header (s_commands[c].command);
        uint8_t valid[CART_HEADER_SIZE];
        cart_header_encode (&header, valid);
        for (size_t len = 0; len < CART_HEADER_SIZE; len++)
            for (size_t e = 0; e < COUNT (s_ends); e++) {
                cart_header_t out;
                if (s_decode (valid, len, s_ends[e], &out, NULL) != -1)
                    fail_msg ("%s cut to %zu bytes accepted", s_commands[c].name, len);
            }
        //  ...while the whole frame is accepted
        cart_header_t out;
        assert_int_equal (
            s_decode (valid, CART_HEADER_SIZE, s_receiver (header.command), &out, NULL),
            0);
    }
}

//  --------------------------------------------------------------------------
//  Messages on sockets

typedef struct {
    void *ctx;
    void *bound;     //  ROUTER or PAIR
    void *connected; //  DEALER or PAIR
} link_t;

static void
s_set (void *socket, int option, int value)
{
    assert_int_equal (zmq_setsockopt (socket, option, &value, sizeof (value)), 0);
}

//  Two connected sockets in a fresh context; every receive waits at most
//  10 s, so that a broken test fails rather than hangs.
static link_t
s_link (int bound_type, int connected_type, bool tcp)
{
    link_t link;
    link.ctx = zmq_ctx_new ();
    assert_non_null (link.ctx);
    link.bound = zmq_socket (link.ctx, bound_type);
    link.connected = zmq_socket (link.ctx, connected_type);
    assert_non_null (link.bound);
    assert_non_null (link.connected);
    void *sockets[] = {link.bound, link.connected};
    for (int i = 0; i < 2; i++) {
        s_set (sockets[i], ZMQ_LINGER, 0);
        s_set (sockets[i], ZMQ_RCVTIMEO, 10000);
    }
    char endpoint[256] = "inproc://test_proto";
    if (tcp) {
        assert_int_equal (zmq_bind (link.bound, "tcp://127.0.0.1:*"), 0);
        size_t size = sizeof (endpoint);
        assert_int_equal (zmq_getsockopt (link.bound, ZMQ_LAST_ENDPOINT, endpoint, &size),
                          0);
    } else
        assert_int_equal (zmq_bind (link.bound, endpoint), 0);
    assert_int_equal (zmq_connect (link.connected, endpoint), 0);
    return link;
}

static void
s_unlink (link_t *link)
{
    zmq_close (link->bound);
    zmq_close (link->connected);
    assert_int_equal (zmq_ctx_term (link->ctx), 0);
}

//  Sends raw frames as one message.
static void
s_send_raw (void *socket, const cart_frame_t *frames, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = zmq_send (socket, frames[i].data, frames[i].size,
                           i + 1 < n ? ZMQ_SNDMORE : 0);
        assert_int_equal (rc, (int)frames[i].size);
    }
}

//  Receives at `at`, expecting a well-formed message.
static void
s_recv_ok (void *socket, int at, bool routed, cart_msg_t *msg)
{
    const char *error = NULL;
    int rc = cart_msg_recv (socket, at, routed, msg, 0, &error);
    if (rc != 1)
        fail_msg ("cart_msg_recv: %d (%s)", rc, rc == -1 ? error : zmq_strerror (errno));
}

//  Receives at `at`, expecting a malformed message; returns its error.
static const char *
s_recv_bad (void *socket, int at, bool routed, cart_msg_t *msg)
{
    const char *error = NULL;
    int rc = cart_msg_recv (socket, at, routed, msg, 0, &error);
    if (rc != -1)
        fail_msg ("cart_msg_recv: %d, not -1 for a malformed message", rc);
    assert_non_null (error);
    return error;
}

static void
s_assert_body (cart_msg_t *msg, const void *data, size_t size)
{
    assert_int_equal (cart_msg_body_size (msg), size);
    if (size)
        assert_memory_equal (cart_msg_body (msg), data, size);
}

//  A request with a body and a ping without one, on a PAIR.
static void
test_msg_pair (void **state)
{
    link_t link = s_link (ZMQ_PAIR, ZMQ_PAIR, false);
    cart_msg_t msg;
    cart_msg_init (&msg);

    cart_header_t request = s_header (CART_CMD_REQUEST);
    cart_frame_t body = cart_frame_bytes ("\x92\x01\xa7jea-265", 10);
    assert_int_equal (cart_msg_send (link.connected, NULL, &request, &body), 0);
    s_recv_ok (link.bound, CART_AT_FRONTEND, false, &msg);
    s_assert_headers_equal (&msg.header, &request);
    assert_int_equal (msg.frames, 2);
    s_assert_body (&msg, "\x92\x01\xa7jea-265", 10);
    assert_int_equal (zmq_msg_size (&msg.identity), 0);

    cart_header_t ping = s_header (CART_CMD_PING);
    ping.corr = 42;
    assert_int_equal (cart_msg_send (link.connected, NULL, &ping, NULL), 0);
    s_recv_ok (link.bound, CART_AT_FRONTEND, false, &msg);
    s_assert_headers_equal (&msg.header, &ping);
    assert_int_equal (msg.frames, 1);
    s_assert_body (&msg, NULL, 0);

    //  Nothing more: 0, EAGAIN
    const char *error = NULL;
    assert_int_equal (
        cart_msg_recv (link.bound, CART_AT_FRONTEND, false, &msg, ZMQ_DONTWAIT, &error),
        0);
    assert_int_equal (errno, EAGAIN);
    cart_msg_close (&msg);
    s_unlink (&link);
}

//  A client's request through a ROUTER, answered by moving its identity
//  and body back: the moved frames are left empty.
static void
s_dealer_router (bool tcp)
{
    link_t link = s_link (ZMQ_ROUTER, ZMQ_DEALER, tcp);
    cart_msg_t msg;
    cart_msg_init (&msg);

    //  A body larger than libzmq's very small messages, so that it is
    //  really moved
    size_t size = 3000;
    uint8_t *bytes = malloc (size);
    for (size_t i = 0; i < size; i++)
        bytes[i] = (uint8_t)(i * 7 + 1);
    cart_header_t request = s_header (CART_CMD_REQUEST);
    cart_frame_t body = cart_frame_bytes (bytes, size);
    assert_int_equal (cart_msg_send (link.connected, NULL, &request, &body), 0);
    s_recv_ok (link.bound, CART_AT_FRONTEND, true, &msg);
    assert_int_equal (msg.frames, 3);
    assert_true (zmq_msg_size (&msg.identity) > 0);
    s_assert_headers_equal (&msg.header, &request);
    s_assert_body (&msg, bytes, size);

    //  Keep a copy of the client's identity, to answer it once more below
    uint8_t client[CART_IDENTITY_MAX];
    size_t client_size = zmq_msg_size (&msg.identity);
    assert_true (client_size <= sizeof (client));
    memcpy (client, zmq_msg_data (&msg.identity), client_size);

    cart_header_t reply = s_header (CART_CMD_REPLY);
    reply.corr = msg.header.corr;
    cart_frame_t identity = cart_frame_msg (&msg.identity);
    cart_frame_t moved = cart_frame_msg (&msg.body);
    assert_int_equal (cart_msg_send (link.bound, &identity, &reply, &moved), 0);
    assert_int_equal (zmq_msg_size (&msg.identity), 0);
    assert_int_equal (zmq_msg_size (&msg.body), 0);
    cart_msg_close (&msg);

    s_recv_ok (link.connected, CART_AT_CLIENT, false, &msg);
    s_assert_headers_equal (&msg.header, &reply);
    assert_int_equal (msg.frames, 2);
    s_assert_body (&msg, bytes, size);

    //  A reply without a body, to an identity given as bytes
    cart_header_t empty = s_header (CART_CMD_REPLY);
    empty.status = CART_DELETED;
    empty.corr = 77;
    identity = cart_frame_bytes (client, client_size);
    assert_int_equal (cart_msg_send (link.bound, &identity, &empty, NULL), 0);
    s_recv_ok (link.connected, CART_AT_CLIENT, false, &msg);
    s_assert_headers_equal (&msg.header, &empty);
    assert_int_equal (msg.frames, 1);
    s_assert_body (&msg, NULL, 0);
    cart_msg_close (&msg);
    free (bytes);
    s_unlink (&link);
}

static void
test_msg_dealer_router_inproc (void **state)
{
    s_dealer_router (false);
}

static void
test_msg_dealer_router_tcp (void **state)
{
    s_dealer_router (true);
}

//  Every zmq_msg_t given to a send that fails is closed and left empty.
static void
test_msg_send_failure_consumes (void **state)
{
    //  A ROUTER_MANDATORY socket, to a peer it does not have
    link_t link = s_link (ZMQ_ROUTER, ZMQ_DEALER, false);
    s_set (link.bound, ZMQ_ROUTER_MANDATORY, 1);
    zmq_msg_t identity, body;
    assert_int_equal (zmq_msg_init_size (&identity, 6), 0);
    memcpy (zmq_msg_data (&identity), "nobody", 6);
    assert_int_equal (zmq_msg_init_size (&body, 500), 0);
    memset (zmq_msg_data (&body), 'b', 500);
    cart_frame_t id_frame = cart_frame_msg (&identity);
    cart_frame_t body_frame = cart_frame_msg (&body);
    cart_header_t reply = s_header (CART_CMD_REPLY);
    errno = 0;
    assert_int_equal (cart_msg_send (link.bound, &id_frame, &reply, &body_frame), -1);
    assert_int_equal (errno, EHOSTUNREACH);
    assert_int_equal (zmq_msg_size (&identity), 0);
    assert_int_equal (zmq_msg_size (&body), 0);
    assert_int_equal (zmq_msg_close (&identity), 0);
    assert_int_equal (zmq_msg_close (&body), 0);
    //  Nothing reached the dealer
    char byte;
    assert_int_equal (zmq_recv (link.connected, &byte, 1, ZMQ_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    s_unlink (&link);

    //  A PAIR without a peer has no room: EAGAIN
    void *ctx = zmq_ctx_new ();
    void *lone = zmq_socket (ctx, ZMQ_PAIR);
    s_set (lone, ZMQ_LINGER, 0);
    assert_int_equal (zmq_bind (lone, "inproc://test_proto_lone"), 0);
    assert_int_equal (zmq_msg_init_size (&body, 500), 0);
    body_frame = cart_frame_msg (&body);
    cart_header_t request = s_header (CART_CMD_REQUEST);
    errno = 0;
    assert_int_equal (cart_msg_send (lone, NULL, &request, &body_frame), -1);
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (zmq_msg_size (&body), 0);
    assert_int_equal (zmq_msg_close (&body), 0);
    zmq_close (lone);
    assert_int_equal (zmq_ctx_term (ctx), 0);
}

//  A message of more than a header and a body is dropped whole, and the
//  next one is read from its start.
static void
test_msg_too_many_frames (void **state)
{
    for (int routed = 0; routed < 2; routed++) {
        link_t link = routed ? s_link (ZMQ_ROUTER, ZMQ_DEALER, false)
                             : s_link (ZMQ_PAIR, ZMQ_PAIR, false);
        cart_msg_t msg;
        cart_msg_init (&msg);
        uint8_t wire[CART_HEADER_SIZE];
        for (size_t extra = 1; extra <= 4; extra++) {
            cart_header_t bad = s_header (CART_CMD_REQUEST);
            bad.corr = 1000 + extra;
            cart_header_encode (&bad, wire);
            cart_frame_t frames[6] = {cart_frame_bytes (wire, sizeof (wire)),
                                      cart_frame_bytes ("\x92\x01\xa1x", 4)};
            for (size_t i = 0; i < extra; i++)
                frames[2 + i] = cart_frame_bytes ("extra", 5);
            s_send_raw (link.connected, frames, 2 + extra);

            cart_header_t good = s_header (CART_CMD_REQUEST);
            good.corr = 2000 + extra;
            cart_frame_t body = cart_frame_bytes ("\x92\x01\xa1y", 4);
            assert_int_equal (cart_msg_send (link.connected, NULL, &good, &body), 0);

            s_recv_bad (link.bound, CART_AT_FRONTEND, routed, &msg);
            assert_int_equal (msg.frames, (size_t)routed + 2 + extra);
            //  The header was read, so that the sender can be answered
            assert_int_equal (msg.header.corr, bad.corr);
            if (routed)
                assert_true (zmq_msg_size (&msg.identity) > 0);

            s_recv_ok (link.bound, CART_AT_FRONTEND, routed, &msg);
            s_assert_headers_equal (&msg.header, &good);
            assert_int_equal (msg.frames, (size_t)routed + 2);
            s_assert_body (&msg, "\x92\x01\xa1y", 4);
        }
        const char *error;
        assert_int_equal (cart_msg_recv (link.bound, CART_AT_FRONTEND, routed, &msg,
                                         ZMQ_DONTWAIT, &error),
                          0);
        cart_msg_close (&msg);
        s_unlink (&link);
    }
}

//  Each command's body rule, at an end that may receive it: a body where
//  it has none, or none where it needs one, is refused, and the next
//  message is read.
static void
test_msg_body_rules (void **state)
{
    link_t link = s_link (ZMQ_PAIR, ZMQ_PAIR, false);
    cart_msg_t msg;
    cart_msg_init (&msg);
    for (size_t c = 0; c < COUNT (s_commands); c++) {
        const command_t *command = &s_commands[c];
        int at = s_receiver (command->command);
        cart_header_t header = s_header (command->command);
        //  With a body, an empty body frame, and none
        const struct {
            bool frame;
            size_t size;
        } bodies[] = {{true, 3}, {true, 0}, {false, 0}};
        for (size_t b = 0; b < COUNT (bodies); b++) {
            header.corr++;
            cart_frame_t body = cart_frame_bytes ("abc", bodies[b].size);
            assert_int_equal (cart_msg_send (link.connected, NULL, &header,
                                             bodies[b].frame ? &body : NULL),
                              0);
            bool allowed = bodies[b].frame ? command->body != CART_BODY_NEVER
                                           : command->body != CART_BODY_ALWAYS;
            const char *error = NULL;
            int rc = cart_msg_recv (link.bound, at, false, &msg, 0, &error);
            if (rc != (allowed ? 1 : -1))
                fail_msg ("%s %s: rc %d", command->name,
                          bodies[b].frame ? "with a body frame" : "without a body frame",
                          rc);
            assert_int_equal (msg.header.corr, header.corr);
            if (rc == 1) {
                s_assert_body (&msg, "abc", bodies[b].size);
                assert_int_equal (msg.frames, bodies[b].frame ? 2 : 1);
            } else
                assert_non_null (strstr (error, "body"));
        }
    }
    //  The named cases, as raw frames: a PING with a body, a REQUEST
    //  without one, a READY without one
    cart_header_t ping = s_header (CART_CMD_PING);
    uint8_t wire[CART_HEADER_SIZE];
    cart_header_encode (&ping, wire);
    s_send_raw (link.connected,
                (cart_frame_t[]){cart_frame_bytes (wire, sizeof (wire)),
                                 cart_frame_bytes ("x", 1)},
                2);
    assert_non_null (
        strstr (s_recv_bad (link.bound, CART_AT_FRONTEND, false, &msg), "body"));
    cart_header_t request = s_header (CART_CMD_REQUEST);
    cart_header_encode (&request, wire);
    s_send_raw (link.connected, (cart_frame_t[]){cart_frame_bytes (wire, sizeof (wire))},
                1);
    assert_non_null (
        strstr (s_recv_bad (link.bound, CART_AT_FRONTEND, false, &msg), "body"));
    cart_header_t ready = s_header (CART_CMD_READY);
    assert_int_equal (cart_msg_send (link.connected, NULL, &ready, NULL), 0);
    assert_non_null (
        strstr (s_recv_bad (link.bound, CART_AT_BACKEND, false, &msg), "body"));
    //  Nothing of them is left: the next message is read whole
    ping.corr = 4321;
    assert_int_equal (cart_msg_send (link.connected, NULL, &ping, NULL), 0);
    s_recv_ok (link.bound, CART_AT_FRONTEND, false, &msg);
    s_assert_headers_equal (&msg.header, &ping);
    cart_msg_close (&msg);
    s_unlink (&link);
}

//  Malformed header frames on a ROUTER: dropped whole, with the sender's
//  identity kept, and the next message read.
static void
test_msg_bad_header (void **state)
{
    link_t link = s_link (ZMQ_ROUTER, ZMQ_DEALER, false);
    cart_msg_t msg;
    cart_msg_init (&msg);
    uint8_t corr[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    uint8_t wire[CART_HEADER_SIZE];
    cart_header_t reply = s_header (CART_CMD_REPLY);
    cart_header_encode (&reply, wire);
    struct {
        cart_frame_t frames[5];
        size_t n;
        const char *says;
    } cases[] = {
        //  A CART/1 request: 5 frames
        {{cart_frame_bytes ("CARTC01", 7), cart_frame_bytes ("\x01", 1),
          cart_frame_bytes (corr, 8), cart_frame_bytes (corr, 8),
          cart_frame_bytes ("\x92\x01\xa1x", 4)},
         5,
         "CART/1"},
        //  A CART/1 ping: 3 frames
        {{cart_frame_bytes ("CARTC01", 7), cart_frame_bytes ("\x02", 1),
          cart_frame_bytes (corr, 8)},
         3,
         "CART/1"},
        //  A REPLY is not for the frontend
        {{cart_frame_bytes (wire, sizeof (wire))}, 1, "command"},
        //  An empty frame
        {{cart_frame_bytes ("", 0)}, 1, "header"},
        //  A header one byte short
        {{cart_frame_bytes (wire, sizeof (wire) - 1), cart_frame_bytes ("x", 1)},
         2,
         "header"},
    };
    for (size_t i = 0; i < COUNT (cases); i++) {
        s_send_raw (link.connected, cases[i].frames, cases[i].n);
        cart_header_t ping = s_header (CART_CMD_PING);
        ping.corr = 500 + i;
        assert_int_equal (cart_msg_send (link.connected, NULL, &ping, NULL), 0);

        const char *error = s_recv_bad (link.bound, CART_AT_FRONTEND, true, &msg);
        if (!strstr (error, cases[i].says))
            fail_msg ("case %zu: \"%s\" does not say %s", i, error, cases[i].says);
        assert_int_equal (msg.frames, cases[i].n + 1);
        assert_true (zmq_msg_size (&msg.identity) > 0);

        s_recv_ok (link.bound, CART_AT_FRONTEND, true, &msg);
        assert_int_equal (msg.header.command, CART_CMD_PING);
        assert_int_equal (msg.header.corr, 500 + i);
        assert_int_equal (msg.frames, 2);
    }
    cart_msg_close (&msg);
    s_unlink (&link);
}

//  A body frame of up to 1 MiB is taken; one byte more is refused.
static void
test_msg_body_too_large (void **state)
{
    link_t link = s_link (ZMQ_PAIR, ZMQ_PAIR, false);
    cart_msg_t msg;
    cart_msg_init (&msg);
    size_t size = CART_BODY_WIRE_MAX + 1;
    char *bytes = calloc (1, size);
    cart_header_t reply = s_header (CART_CMD_REPLY);
    cart_frame_t body = cart_frame_bytes (bytes, size);
    assert_int_equal (cart_msg_send (link.connected, NULL, &reply, &body), 0);
    body = cart_frame_bytes (bytes, size - 1);
    assert_int_equal (cart_msg_send (link.connected, NULL, &reply, &body), 0);
    const char *error = s_recv_bad (link.bound, CART_AT_CLIENT, false, &msg);
    assert_non_null (strstr (error, "body"));
    s_recv_ok (link.bound, CART_AT_CLIENT, false, &msg);
    assert_int_equal (cart_msg_body_size (&msg), CART_BODY_WIRE_MAX);
    cart_msg_close (&msg);
    free (bytes);
    s_unlink (&link);
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
        cmocka_unit_test (test_request_expiry_rfc3339),
        cmocka_unit_test (test_request_options_round_trip),
        cmocka_unit_test (test_request_without_options),
        cmocka_unit_test (test_request_options_malformed),
        cmocka_unit_test (test_request_options_encode_refused),
        cmocka_unit_test (test_idem_valid),
        cmocka_unit_test (test_mpack_nil),
        cmocka_unit_test (test_reply_item_round_trip),
        cmocka_unit_test (test_reply_cart_round_trip),
        cmocka_unit_test (test_reply_cart_lies_about_count),
        cmocka_unit_test (test_reply_error_and_empty),
        cmocka_unit_test (test_reply_ill_formed),
        cmocka_unit_test (test_reply_expiry_rfc3339),
        cmocka_unit_test (test_reply_error_body),
        cmocka_unit_test (test_ready_round_trip),
        cmocka_unit_test (test_ready_refused),
        cmocka_unit_test (test_ready_truncated),
        cmocka_unit_test (test_stats_round_trip),
        cmocka_unit_test (test_load_round_trip),
        cmocka_unit_test (test_stats_wire_order),
        cmocka_unit_test (test_stats_ill_formed),
        cmocka_unit_test (test_stats_truncated),
        cmocka_unit_test (test_stats_mutations),
        cmocka_unit_test (test_header_layout),
        cmocka_unit_test (test_header_round_trip),
        cmocka_unit_test (test_header_status),
        cmocka_unit_test (test_header_refused),
        cmocka_unit_test (test_header_mutations),
        cmocka_unit_test (test_header_truncated),
        cmocka_unit_test (test_msg_pair),
        cmocka_unit_test (test_msg_dealer_router_inproc),
        cmocka_unit_test (test_msg_dealer_router_tcp),
        cmocka_unit_test (test_msg_send_failure_consumes),
        cmocka_unit_test (test_msg_too_many_frames),
        cmocka_unit_test (test_msg_body_rules),
        cmocka_unit_test (test_msg_bad_header),
        cmocka_unit_test (test_msg_body_too_large),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
