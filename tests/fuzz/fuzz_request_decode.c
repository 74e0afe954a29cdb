/*  =========================================================================
    fuzz_request_decode - libFuzzer target for cart_request_decode
    (proto/cart_body.c) on raw bytes.

    Invariants: a decoded request passes cart_request_check and its strings
    lie inside the input; encoding it and decoding the result gives the
    same request; and the encoding is stable (encoding that again gives the
    same bytes).
    =========================================================================
*/
#include "fuzz_common.h"

static bool
s_inside (const void *p, size_t len, const uint8_t *data, size_t size)
{
    const uint8_t *b = (const uint8_t *)p;
    return b >= data && len <= size && b - data <= (ptrdiff_t)(size - len);
}

static void
s_encode (const cart_request_t *req, msgpack_sbuffer *buf)
{
    msgpack_sbuffer_init (buf);
    const char *error = NULL;
    int rc = cart_request_encode (req, buf, &error);
    if (rc)
        fprintf (stderr, "encode failed: %s\n", error ? error : "(no error)");
    FUZZ_CHECK (rc == 0);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    cart_request_t req;
    const char *error = NULL;
    if (cart_request_decode (data, size, &req, &error)) {
        FUZZ_CHECK (error && error[0]);
        return 0;
    }
    FUZZ_CHECK (cart_request_check (&req, &error) == 0);
    FUZZ_CHECK (s_inside (req.customer, req.customer_len, data, size));
    if (req.op != CART_OP_GET && req.op != CART_OP_CHECKOUT)
        FUZZ_CHECK (s_inside (req.item.id, req.item.id_len, data, size));
    if (req.item.expiry)
        FUZZ_CHECK (s_inside (req.item.expiry, req.item.expiry_len, data, size));

    msgpack_sbuffer first;
    s_encode (&req, &first);
    void *copy = fuzz_copy (first.data, first.size);
    cart_request_t again;
    int rc = cart_request_decode (copy, first.size, &again, &error);
    if (rc)
        fprintf (stderr, "decode of re-encoded request failed: %s\n", error);
    FUZZ_CHECK (rc == 0);
    fuzz_check_requests_equal (&req, &again);
    //  Fields an op does not carry decode as zero, both times
    fuzz_check_items_equal (&req.item, &again.item);

    msgpack_sbuffer second;
    s_encode (&again, &second);
    FUZZ_CHECK (fuzz_bytes_equal (first.data, first.size, second.data, second.size));
    //  A canonical encoding is never longer than what was decoded
    FUZZ_CHECK (first.size <= size);

    msgpack_sbuffer_destroy (&second);
    free (copy);
    msgpack_sbuffer_destroy (&first);
    return 0;
}
