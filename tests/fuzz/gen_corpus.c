/*  =========================================================================
    gen_corpus - writes the fuzz targets' seed corpora (a handful of valid
    inputs each) into DIR/<target>/, using the project's own encoders so
    that every seed is well-formed CART/2.

        clang -Iproto tests/fuzz/gen_corpus.c proto/cart_types.c \
            proto/cart_time.c proto/cart_wire.c proto/cart_mpack.c \
            proto/cart_body.c proto/cart_control.c -lmsgpackc \
            -o build/fuzz/gen_corpus
        rm -rf tests/fuzz/corpus/fuzz_frames
        build/fuzz/gen_corpus tests/fuzz/corpus
    =========================================================================
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cart_body.h"
#include "cart_control.h"
#include "cart_wire.h"

static const char *s_dir;

static void
s_write (const char *target, const char *name, const void *data, size_t size)
{
    char path[512];
    snprintf (path, sizeof (path), "%s/%s", s_dir, target);
    if (mkdir (path, 0755) && errno != EEXIST) {
        perror (path);
        exit (1);
    }
    snprintf (path, sizeof (path), "%s/%s/%s", s_dir, target, name);
    FILE *file = fopen (path, "wb");
    if (!file || fwrite (data, 1, size, file) != size || fclose (file)) {
        perror (path);
        exit (1);
    }
}

static void
s_write_text (const char *target, const char *name, const char *text)
{
    s_write (target, name, text, strlen (text));
}

//  --------------------------------------------------------------------------
//  fuzz_route: METHOD \n PATH \n CONTENT-TYPE \n BODY

static void
s_route (void)
{
    const char *t = "fuzz_route";
    s_write_text (t, "add",
                  "POST\n/item/jea-265/036000291459\napplication/json\n"
                  "{\"offeredPrice\": 50, \"itemCount\": 6}");
    s_write_text (t, "add_alias_all_fields",
                  "POST\n/items/jea-265/036000291459\napplication/json; charset=utf-8\n"
                  "{\"offeredPrice\": 50.25, \"unitCount\": 2, \"specialSale\": true, "
                  "\"saleExpiration\": \"2026-12-01T00:00:00Z\"}");
    s_write_text (t, "add_offset_expiry",
                  "POST\n/item/a.b_c~d@e:f/X-1\n\n"
                  "{\"offeredPrice\": 0.1, \"saleExpiration\": "
                  "\"2024-02-29T23:59:60.123+05:30\", \"specialSale\": false}");
    s_write_text (t, "add_null_expiry",
                  "POST\n/item/c%2D1/i%7E2\nAPPLICATION/JSON\n"
                  "{\"offeredPrice\": 1000000000000, \"saleExpiration\": null}");
    s_write_text (t, "add_exponent_price",
                  "POST\n/item/jea-265/036000291459\napplication/json\n"
                  "{\"itemCount\": 3, \"specialSale\": true, \"offeredPrice\": 1999E-2}");
    s_write_text (t, "add_price_last",
                  "POST\n/item/jea-265/x\napplication/json\n"
                  "{\"saleExpiration\": \"2026-12-01t00:00:00.25-01:00\", "
                  "\"unitCount\": 10, \"offeredPrice\": 12.50e+1}");
    s_write_text (t, "set",
                  "PUT\n/item/jea-265/036000291459\napplication/json\n"
                  "{\"newCount\": 0}");
    s_write_text (t, "remove", "DELETE\n/item/jea-265/036000291459\n\n");
    s_write_text (t, "list", "GET\n/items/jea-265?verbose=1\n\n");
    s_write_text (t, "checkout", "DELETE\n/items/jea%2D265\n\n");
    s_write_text (t, "healthz", "GET\n/healthz\n\n");
    s_write_text (t, "metrics", "GET\n/metrics#x\n\n");
    s_write_text (t, "method_405", "PATCH\n/item/a/b\n\n");
    s_write_text (t, "type_415", "POST\n/item/a/b\ntext/plain\nhello");
    s_write_text (t, "array_body", "PUT\n/item/a/b\napplication/json\n[0]");
    s_write_text (t, "both_counts",
                  "POST\n/item/a/b\napplication/json\n"
                  "{\"itemCount\": 1, \"unitCount\": 2}");
    s_write_text (t, "bad_json",
                  "POST\n/item/a/b\napplication/json\n{\"offeredPrice\": ");
}

//  --------------------------------------------------------------------------
//  fuzz_request_decode: request bodies

static cart_request_t
s_request (cart_op_t op)
{
    cart_request_t req = {.op = op, .customer = "jea-265", .customer_len = 7};
    req.item = (cart_item_t){.id = "036000291459", .id_len = 12, .count = 6};
    if (op == CART_OP_ADD) {
        req.item.price_cents = 5000;
        req.item.special_sale = true;
        req.item.expiry = "2026-12-01T00:00:00Z";
        req.item.expiry_len = 20;
    }
    return req;
}

static msgpack_sbuffer
s_encode_request (const cart_request_t *req)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    const char *error;
    if (cart_request_encode (req, &buf, &error)) {
        fprintf (stderr, "encode: %s\n", error);
        exit (1);
    }
    return buf;
}

static void
s_requests (void)
{
    static const char *names[] = {NULL, "get", "add", "set", "remove", "checkout"};
    for (cart_op_t op = CART_OP_MIN; op <= CART_OP_MAX; op++) {
        cart_request_t req = s_request (op);
        msgpack_sbuffer buf = s_encode_request (&req);
        s_write ("fuzz_request_decode", names[op], buf.data, buf.size);
        msgpack_sbuffer_destroy (&buf);
    }
    cart_request_t req = s_request (CART_OP_ADD);
    req.item.expiry = NULL;
    req.item.expiry_len = 0;
    req.item.price_cents = CART_PRICE_MAX;
    req.item.count = CART_COUNT_MAX;
    msgpack_sbuffer buf = s_encode_request (&req);
    s_write ("fuzz_request_decode", "add_max_no_expiry", buf.data, buf.size);
    msgpack_sbuffer_destroy (&buf);

    //  Just past a limit: an expiry of 65 bytes (the encoder refuses it)
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    const char *expiry =
        "2026-12-01T00:00:00.00000000000000000000000000000000000000000000Z";
    msgpack_pack_array (&pk, 7);
    msgpack_pack_uint8 (&pk, CART_OP_ADD);
    msgpack_pack_str_with_body (&pk, "jea-265", 7);
    msgpack_pack_str_with_body (&pk, "036000291459", 12);
    msgpack_pack_uint64 (&pk, 5000);
    msgpack_pack_uint32 (&pk, 6);
    msgpack_pack_false (&pk);
    msgpack_pack_str_with_body (&pk, expiry, strlen (expiry));
    s_write ("fuzz_request_decode", "add_expiry_65", buf.data, buf.size);
    msgpack_sbuffer_destroy (&buf);
}

//  --------------------------------------------------------------------------
//  fuzz_reply_decode: reply bodies

typedef void (body_fn) (msgpack_packer *pk);

static void
s_body (const char *target, const char *name, body_fn *fn)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    fn (&pk);
    s_write (target, name, buf.data, buf.size);
    msgpack_sbuffer_destroy (&buf);
}

static void
s_item_body (msgpack_packer *pk)
{
    cart_request_t req = s_request (CART_OP_ADD);
    cart_reply_encode_item (pk, &req.item);
}

static void
s_cart_body (msgpack_packer *pk)
{
    cart_request_t req = s_request (CART_OP_ADD);
    cart_reply_encode_cart (pk, "jea-265", 7, 2);
    cart_reply_encode_item (pk, &req.item);
    req.item = (cart_item_t){.id = "x", .id_len = 1, .price_cents = 99, .count = 1};
    cart_reply_encode_item (pk, &req.item);
}

static void
s_empty_cart_body (msgpack_packer *pk)
{
    cart_reply_encode_cart (pk, "jea-265", 7, 0);
}

static void
s_error_body (msgpack_packer *pk)
{
    cart_reply_encode_error (pk, "no such item \"036000291459\"\n\tin cart");
}

static void
s_replies (void)
{
    const char *t = "fuzz_reply_decode";
    s_body (t, "item", s_item_body);
    s_body (t, "cart", s_cart_body);
    s_body (t, "cart_empty", s_empty_cart_body);
    s_body (t, "error", s_error_body);
    s_write (t, "empty", "", 0);
}

//  --------------------------------------------------------------------------
//  fuzz_frames: N, then length-prefixed frames (a header and a body); or a
//  raw frame (a header, a READY, load or stats body). N = frames + 5 *
//  (end + 4 * routed), end indexing FRONTEND, CLIENT, BACKEND, WORKER
//  (fuzz_frames.c): the socket end that reads the message.

typedef enum { FRONTEND, CLIENT, BACKEND, WORKER } end_t;

typedef struct {
    uint8_t data[4096];
    size_t size;
} seed_t;

static void
s_seed_start (seed_t *seed, size_t frames, end_t end, bool routed)
{
    seed->data[0] = (uint8_t)(frames + 5 * (end + 4 * routed));
    seed->size = 1;
}

static void
s_seed_frame (seed_t *seed, const void *data, size_t size)
{
    if (seed->size + 2 + size > sizeof (seed->data)) {
        fprintf (stderr, "seed too large\n");
        exit (1);
    }
    seed->data[seed->size++] = (uint8_t)(size >> 8);
    seed->data[seed->size++] = (uint8_t)size;
    memcpy (seed->data + seed->size, data, size);
    seed->size += size;
}

//  Writes a message seed: the header, and the body unless it is NULL, for
//  the end that receives it: the broker's frontend and backend are ROUTER
//  sockets, clients and workers DEALER ones (no identity frame).
static void
s_seed_message (const char *name, end_t end, const cart_header_t *header,
                const msgpack_sbuffer *body)
{
    uint8_t wire[CART_HEADER_SIZE];
    cart_header_encode (header, wire);
    seed_t seed;
    s_seed_start (&seed, body ? 2 : 1, end, end == FRONTEND || end == BACKEND);
    s_seed_frame (&seed, wire, sizeof (wire));
    if (body)
        s_seed_frame (&seed, body->data, body->size);
    s_write ("fuzz_frames", name, seed.data, seed.size);
}

static void
s_load_body (msgpack_packer *pk)
{
    cart_load_encode (pk, 2);
    cart_load_encode_entry (pk,
                            &(cart_shard_stats_t){.shard = 0, .carts = 3, .items = 7});
    cart_load_encode_entry (
        pk, &(cart_shard_stats_t){.shard = 2, .carts = 1, .items = 1, .expired = 2});
}

static void
s_stats_body (msgpack_packer *pk)
{
    cart_stats_encode (pk, 3, 2);
    cart_stats_encode_entry (pk, &(cart_shard_stats_t){.shard = 0,
                                                       .live = true,
                                                       .carts = 3,
                                                       .items = 7,
                                                       .expired = 1,
                                                       .requests = 100,
                                                       .load_age_ms = 350});
    cart_stats_encode_entry (
        pk, &(cart_shard_stats_t){
                .shard = 2, .stalled = true, .requests = 5, .load_age_ms = -1});
}

static void
s_ready_body (msgpack_packer *pk)
{
    static const uint32_t shards[] = {0, 1, 2};
    cart_ready_encode (pk, 3, CART_HEARTBEAT_MS, shards, 3);
}

static void
s_refuse_body (msgpack_packer *pk)
{
    uint8_t buffer[260];
    size_t size = cart_reply_error_body (buffer, sizeof (buffer),
                                         "shard 2 already has a worker (worker 0, live)");
    //  Already msgpack: written as it is
    pk->callback (pk->data, (const char *)buffer, size);
}

static msgpack_sbuffer
s_pack (body_fn *fn)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    fn (&pk);
    return buf;
}

//  A plausible header for each command, as its usual sender fills it
static cart_header_t
s_header (cart_command_t command)
{
    cart_header_t header = {.command = command, .corr = 42};
    switch (command) {
        case CART_CMD_REQUEST:
            header.timeout_ms = 5000;
            header.key = 938870058641657986;
            header.shard = 2;
            break;
        case CART_CMD_REPLY:
            header.status = CART_OK;
            header.shard = 2;
            break;
        case CART_CMD_PING:
        case CART_CMD_STATS:
            header.timeout_ms = 1000;
            header.acked = 4096;
            break;
        case CART_CMD_REFUSE:
            header.status = CART_CONFLICT;
            header.corr = 0;
            break;
        case CART_CMD_READY:
        case CART_CMD_HEARTBEAT:
        case CART_CMD_DISCONNECT:
            header.corr = 0;
            break;
    }
    return header;
}

static void
s_frames (void)
{
    const char *t = "fuzz_frames";

    //  Each command's header alone, as a raw frame
#define SEED_HEADER(NAME, value, body, receivers)                                        \
    {                                                                                    \
        cart_header_t header = s_header (CART_CMD_##NAME);                               \
        uint8_t wire[CART_HEADER_SIZE];                                                  \
        cart_header_encode (&header, wire);                                              \
        s_write (t, "header_" #NAME, wire, sizeof (wire));                               \
    }
    CART_COMMANDS (SEED_HEADER)
#undef SEED_HEADER

    //  Whole messages
    cart_request_t req = s_request (CART_OP_ADD);
    msgpack_sbuffer request = s_encode_request (&req);
    msgpack_sbuffer cart = s_pack (s_empty_cart_body);
    msgpack_sbuffer load = s_pack (s_load_body);
    msgpack_sbuffer stats = s_pack (s_stats_body);
    msgpack_sbuffer ready = s_pack (s_ready_body);
    msgpack_sbuffer refuse = s_pack (s_refuse_body);
    msgpack_sbuffer error = s_pack (s_error_body);

    cart_header_t header = s_header (CART_CMD_REQUEST);
    header.shard = 0;
    s_seed_message ("msg_request", FRONTEND, &header, &request);
    header = s_header (CART_CMD_REQUEST);
    s_seed_message ("msg_request_worker", WORKER, &header, &request);
    header = s_header (CART_CMD_REPLY);
    s_seed_message ("msg_reply", CLIENT, &header, &cart);
    header.status = CART_DELETED;
    s_seed_message ("msg_reply_none", CLIENT, &header, NULL);
    header = (cart_header_t){
        .command = CART_CMD_REPLY, .status = CART_NOT_FOUND, .corr = 42, .shard = 2};
    s_seed_message ("msg_reply_error", BACKEND, &header, &error);
    header = (cart_header_t){.command = CART_CMD_REPLY, .status = CART_OK, .corr = 8};
    s_seed_message ("msg_reply_stats", CLIENT, &header, &stats);
    header = s_header (CART_CMD_PING);
    s_seed_message ("msg_ping", FRONTEND, &header, NULL);
    header = s_header (CART_CMD_STATS);
    s_seed_message ("msg_stats", FRONTEND, &header, NULL);
    header = s_header (CART_CMD_READY);
    s_seed_message ("msg_ready", BACKEND, &header, &ready);
    header = s_header (CART_CMD_HEARTBEAT);
    s_seed_message ("msg_heartbeat", BACKEND, &header, &load);
    s_seed_message ("msg_heartbeat_empty", WORKER, &header, NULL);
    header = s_header (CART_CMD_DISCONNECT);
    s_seed_message ("msg_disconnect", WORKER, &header, NULL);
    header = s_header (CART_CMD_REFUSE);
    s_seed_message ("msg_refuse", WORKER, &header, &refuse);

    //  Bodies alone, as raw frames
    s_write (t, "body_ready", ready.data, ready.size);
    s_write (t, "body_load", load.data, load.size);
    s_write (t, "body_stats", stats.data, stats.size);

    //  What an older peer sends: CART/1's first frame, a version 1 header
    s_write (t, "cart1_frame", "CARTC01", 7);
    uint8_t wire[CART_HEADER_SIZE];
    header = s_header (CART_CMD_PING);
    cart_header_encode (&header, wire);
    wire[1] = 1;
    s_write (t, "header_version_1", wire, sizeof (wire));

    msgpack_sbuffer_destroy (&request);
    msgpack_sbuffer_destroy (&cart);
    msgpack_sbuffer_destroy (&load);
    msgpack_sbuffer_destroy (&stats);
    msgpack_sbuffer_destroy (&ready);
    msgpack_sbuffer_destroy (&refuse);
    msgpack_sbuffer_destroy (&error);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    s_dir = argv[1];
    if (mkdir (s_dir, 0755) && errno != EEXIST) {
        perror (s_dir);
        return 1;
    }
    s_route ();
    s_requests ();
    s_replies ();
    s_frames ();
    return 0;
}
