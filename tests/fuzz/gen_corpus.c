/*  =========================================================================
    gen_corpus - writes the fuzz targets' seed corpora (a handful of valid
    inputs each) into DIR/<target>/, using the project's own encoders so
    that every seed is well-formed CART/1.

        clang -Iproto tests/fuzz/gen_corpus.c proto/cart_types.c \
            proto/cart_proto.c -lmsgpackc -o build/fuzz/gen_corpus
        build/fuzz/gen_corpus tests/fuzz/corpus
    =========================================================================
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cart_proto.h"

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
//  fuzz_frames: N, S (2 bytes), then length-prefixed frames; or a raw body

typedef struct {
    uint8_t data[4096];
    size_t size;
} seed_t;

static void
s_seed_start (seed_t *seed, size_t frames, uint16_t shards)
{
    seed->data[0] = (uint8_t)frames;
    seed->data[1] = (uint8_t)(shards >> 8);
    seed->data[2] = (uint8_t)shards;
    seed->size = 3;
}

static void
s_seed_frame (seed_t *seed, const void *data, size_t size)
{
    seed->data[seed->size++] = (uint8_t)(size >> 8);
    seed->data[seed->size++] = (uint8_t)size;
    memcpy (seed->data + seed->size, data, size);
    seed->size += size;
}

static void
s_seed_frames (const char *name, cart_frame_t *frames, size_t n, uint16_t shards)
{
    seed_t seed;
    s_seed_start (&seed, n, shards);
    for (size_t i = 0; i < n; i++)
        s_seed_frame (&seed, frames[i].data, frames[i].size);
    s_write ("fuzz_frames", name, seed.data, seed.size);
}

static void
s_load_body (msgpack_packer *pk)
{
    cart_load_encode (pk, 2);
    cart_load_encode_entry (pk,
                            &(cart_shard_stats_t){.shard = 0, .carts = 3, .items = 7});
    cart_load_encode_entry (pk,
                            &(cart_shard_stats_t){.shard = 2, .carts = 1, .items = 1});
}

static void
s_stats_body (msgpack_packer *pk)
{
    cart_stats_encode (pk, 3, 2);
    cart_stats_encode_entry (pk, &(cart_shard_stats_t){0, true, 3, 7, 100});
    cart_stats_encode_entry (pk, &(cart_shard_stats_t){2, false, 0, 0, 5});
}

static void
s_frames (void)
{
    cart_frame_t frames[CART_FRAMES_MAX];
    cart_request_t req = s_request (CART_OP_ADD);
    msgpack_sbuffer body = s_encode_request (&req);
    msgpack_sbuffer reply;
    msgpack_sbuffer_init (&reply);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &reply, msgpack_sbuffer_write);
    s_empty_cart_body (&pk);
    msgpack_sbuffer load;
    msgpack_sbuffer_init (&load);
    msgpack_packer_init (&pk, &load, msgpack_sbuffer_write);
    s_load_body (&pk);
    static const uint8_t shards[] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2};

    cart_msg_t msg = {.command = CART_C_REQUEST, .corr = 42, .key = 938870058641657986};
    msg.body = (cart_frame_t){body.data, body.size};
    s_seed_frames ("c_request", frames, cart_msg_frames_client (&msg, frames), 3);
    msg = (cart_msg_t){.command = CART_C_PING, .corr = 7};
    s_seed_frames ("c_ping", frames, cart_msg_frames_client (&msg, frames), 3);
    msg = (cart_msg_t){.command = CART_C_STATS, .corr = 8};
    s_seed_frames ("c_stats", frames, cart_msg_frames_client (&msg, frames), 3);
    msg = (cart_msg_t){.command = CART_C_REPLY, .corr = 42, .status = CART_OK};
    msg.body = (cart_frame_t){reply.data, reply.size};
    s_seed_frames ("c_reply", frames, cart_msg_frames_client (&msg, frames), 3);

    msg = (cart_msg_t){.command = CART_W_READY, .shards = shards, .n_shards = 3};
    s_seed_frames ("w_ready", frames, cart_msg_frames_worker (&msg, frames), 3);
    msg = (cart_msg_t){
        .command = CART_W_REQUEST, .corr = 42, .key = 938870058641657986, .shard = 2};
    msg.client = (cart_frame_t){"\0\x80\x00\x41\xa7", 5};
    msg.body = (cart_frame_t){body.data, body.size};
    s_seed_frames ("w_request", frames, cart_msg_frames_worker (&msg, frames), 3);
    msg = (cart_msg_t){.command = CART_W_REPLY, .corr = 42, .status = CART_NOT_FOUND};
    msg.client = (cart_frame_t){"\0\x80\x00\x41\xa7", 5};
    msg.body = (cart_frame_t){"\xa9not found", 10};
    s_seed_frames ("w_reply", frames, cart_msg_frames_worker (&msg, frames), 3);
    msg = (cart_msg_t){.command = CART_W_HEARTBEAT};
    msg.body = (cart_frame_t){load.data, load.size};
    s_seed_frames ("w_heartbeat", frames, cart_msg_frames_worker (&msg, frames), 3);
    msg = (cart_msg_t){.command = CART_W_DISCONNECT};
    s_seed_frames ("w_disconnect", frames, cart_msg_frames_worker (&msg, frames), 3);

    s_body ("fuzz_frames", "load", s_load_body);
    s_body ("fuzz_frames", "stats", s_stats_body);
    msgpack_sbuffer_destroy (&body);
    msgpack_sbuffer_destroy (&reply);
    msgpack_sbuffer_destroy (&load);
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
