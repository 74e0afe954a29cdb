/*  =========================================================================
    fuzz_reply_decode - libFuzzer target for cart_reply_decode and
    cart_reply_next_item (proto/cart_body.c), and cart_render_reply
    (http_front/cart_render.c) on the same bytes.

    Invariants: a decoded reply's fields keep PROTOCOL.md's rules; a cart's
    items read to the end without running past n_items; a body that
    decodes whole encodes back to the same values; and cart_render_reply,
    for every operation and the statuses a client sees, returns the
    status that fits and renders either nothing (204) or one JSON object
    that jansson reads, with no raw NUL in it.
    =========================================================================
*/
#include "fuzz_common.h"

#include <jansson.h>

#include "cart_render.h"

//  The statuses a client sees: CART/2's, and 504 from the client library
static const int s_statuses[] = {200, 201, 204, 400, 404, 409, 500, 503, 504};
#define STATUSES (sizeof (s_statuses) / sizeof (s_statuses[0]))

static void
s_check_reply_head (const cart_reply_t *reply, size_t size)
{
    switch (reply->kind) {
        case CART_BODY_NONE:
            FUZZ_CHECK (size == 0);
            break;
        case CART_BODY_ITEM:
            fuzz_check_item (&reply->item);
            break;
        case CART_BODY_CART:
            FUZZ_CHECK (cart_id_valid (reply->customer, reply->customer_len));
            FUZZ_CHECK (reply->n_items <= CART_ITEMS_MAX);
            break;
        case CART_BODY_ERROR:
            FUZZ_CHECK (reply->message_len <= CART_ERROR_MAX);
            break;
        default:
            FUZZ_CHECK (!"kind is not a cart_body_kind_t value");
    }
}

//  Reads a cart's items to the end. Returns the number read when the body
//  is whole, or -1; *items gets them (caller frees).
static long
s_read_items (cart_reply_t *reply, cart_item_t **items)
{
    *items = (cart_item_t *)calloc (reply->n_items + 1, sizeof (cart_item_t));
    FUZZ_CHECK (*items);
    size_t n = 0;
    const char *error = NULL;
    int rc;
    while ((rc = cart_reply_next_item (reply, &(*items)[n], &error)) == 1) {
        fuzz_check_item (&(*items)[n]);
        n++;
        FUZZ_CHECK (n <= reply->n_items);
    }
    FUZZ_CHECK (rc == 0 || rc == -1);
    if (rc == -1) {
        FUZZ_CHECK (error && error[0]);
        return -1;
    }
    FUZZ_CHECK (n == reply->n_items);
    //  After the end, the reader stays at the end
    cart_item_t extra;
    FUZZ_CHECK (cart_reply_next_item (reply, &extra, &error) == 0);
    return (long)n;
}

//  Decodes what pk wrote, from an exact-size copy; the caller frees *copy.
static void
s_decode_again (msgpack_sbuffer *buf, void **copy, cart_reply_t *reply)
{
    *copy = fuzz_copy (buf->data, buf->size);
    const char *error = NULL;
    int rc = cart_reply_decode (*copy, buf->size, reply, &error);
    if (rc)
        fprintf (stderr, "decode of re-encoded reply failed: %s\n", error);
    FUZZ_CHECK (rc == 0);
}

static void
s_round_trip (const cart_reply_t *reply, const cart_item_t *items, size_t n_items)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    if (reply->kind == CART_BODY_ITEM)
        cart_reply_encode_item (&pk, &reply->item);
    else if (reply->kind == CART_BODY_CART) {
        cart_reply_encode_cart (&pk, reply->customer, reply->customer_len, n_items);
        for (size_t i = 0; i < n_items; i++)
            cart_reply_encode_item (&pk, &items[i]);
    } else if (reply->kind == CART_BODY_ERROR) {
        //  The encoder takes a C string: only messages without a NUL
        //  (and not empty, which would still decode) round-trip
        if (memchr (reply->message, 0, reply->message_len)) {
            msgpack_sbuffer_destroy (&buf);
            return;
        }
        char *message = fuzz_strndup (reply->message, reply->message_len);
        cart_reply_encode_error (&pk, message);
        free (message);
    } else {
        msgpack_sbuffer_destroy (&buf);
        return;
    }
    void *copy;
    cart_reply_t again;
    s_decode_again (&buf, &copy, &again);
    FUZZ_CHECK (again.kind == reply->kind);
    if (reply->kind == CART_BODY_ITEM)
        fuzz_check_items_equal (&reply->item, &again.item);
    else if (reply->kind == CART_BODY_ERROR)
        FUZZ_CHECK (fuzz_bytes_equal (reply->message, reply->message_len, again.message,
                                      again.message_len));
    else {
        FUZZ_CHECK (fuzz_bytes_equal (reply->customer, reply->customer_len,
                                      again.customer, again.customer_len));
        FUZZ_CHECK (again.n_items == n_items);
        cart_item_t *items_again;
        FUZZ_CHECK (s_read_items (&again, &items_again) == (long)n_items);
        for (size_t i = 0; i < n_items; i++)
            fuzz_check_items_equal (&items[i], &items_again[i]);
        free (items_again);
    }
    free (copy);
    msgpack_sbuffer_destroy (&buf);
}

//  The HTTP status cart_render_reply may return for a CART/2 status
static bool
s_status_fits (int status, int http)
{
    if (status == 204)
        return http == 204;
    if (status == 200 || status == 201)
        return http == status || http == 200 || http == 500;
    return http == status;
}

static void
s_check_rendered (int status, int http, const cart_buf_t *buf)
{
    FUZZ_CHECK (s_status_fits (status, http));
    if (http == 204) {
        FUZZ_CHECK (buf->len == 0);
        return;
    }
    FUZZ_CHECK (buf->len > 0 && buf->data);
    FUZZ_CHECK (buf->len < buf->cap);
    FUZZ_CHECK (strlen (buf->data) == buf->len);
    json_error_t error;
    json_t *root = json_loadb (buf->data, buf->len, JSON_ALLOW_NUL, &error);
    if (!root)
        fprintf (stderr, "rendered JSON is invalid (%s at %d:%d): %.*s\n", error.text,
                 error.line, error.column, (int)(buf->len > 2000 ? 2000 : buf->len),
                 buf->data);
    FUZZ_CHECK (root != NULL);
    FUZZ_CHECK (json_is_object (root));
    if (http >= 400) {
        json_t *inner = json_object_get (root, "error");
        FUZZ_CHECK (json_is_object (inner));
        FUZZ_CHECK (json_integer_value (json_object_get (inner, "status")) == http);
        FUZZ_CHECK (json_is_string (json_object_get (inner, "message")));
    }
    json_decref (root);
}

//  A rendering already checked, with the HTTP status it came with
typedef struct {
    cart_buf_t buf;
    int http;
} rendered_t;

//  Renders data for every operation and status. Most renderings repeat
//  (an error's does not depend on the operation), and jansson under ASan
//  is the slowest part of a run, so each distinct output is parsed once.
static void
s_render_all (const uint8_t *data, size_t size)
{
    rendered_t seen[(CART_OP_MAX - CART_OP_MIN + 1) * STATUSES];
    size_t n_seen = 0;
    for (cart_op_t op = CART_OP_MIN; op <= CART_OP_MAX; op++)
        for (size_t s = 0; s < STATUSES; s++) {
            cart_buf_t buf = {NULL, 0, 0};
            int http = cart_render_reply (op, s_statuses[s], data, size, &buf);
            size_t i = 0;
            while (i < n_seen && (seen[i].http != http ||
                                  !fuzz_bytes_equal (seen[i].buf.data, seen[i].buf.len,
                                                     buf.data, buf.len)))
                i++;
            if (i < n_seen) {
                FUZZ_CHECK (s_status_fits (s_statuses[s], http));
                cart_buf_free (&buf);
                continue;
            }
            s_check_rendered (s_statuses[s], http, &buf);
            seen[n_seen++] = (rendered_t){buf, http};
        }
    for (size_t i = 0; i < n_seen; i++)
        cart_buf_free (&seen[i].buf);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    cart_reply_t reply;
    const char *error = NULL;
    if (cart_reply_decode (data, size, &reply, &error) == 0) {
        s_check_reply_head (&reply, size);
        cart_item_t *items = NULL;
        long n = 0;
        if (reply.kind == CART_BODY_CART)
            n = s_read_items (&reply, &items);
        if (n >= 0)
            s_round_trip (&reply, items, (size_t)n);
        free (items);
    } else
        FUZZ_CHECK (error && error[0]);
    s_render_all (data, size);
    return 0;
}
