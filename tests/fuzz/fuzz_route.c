/*  =========================================================================
    fuzz_route - libFuzzer target for cart_route_map, the HTTP request
    mapping of http_front/cart_route.c.

    Input: METHOD '\n' PATH '\n' CONTENT-TYPE '\n' BODY. The first three
    fields are C strings (cut at a NUL, as the HTTP server hands them over);
    an empty or missing CONTENT-TYPE means the header is absent (NULL). The
    body is the rest, raw, in a buffer of exactly its size.

    Invariants, for any input: the kind is one of the enum's values; an
    error has status 400, 404, 405 or 415, a non-empty NUL-terminated
    message, and an Allow value exactly when it is a 405; a cart route maps
    the method to its operation, passes cart_request_check with valid ids,
    and survives cart_request_encode then cart_request_decode unchanged.
    =========================================================================
*/
#include "fuzz_common.h"

#include "cart_route.h"
#include "cart_time.h"

#include <math.h>
#include <strings.h>

//  Cuts the next '\n'-separated field off *data; returns its length and
//  sets *found to whether a separator ended it.
static size_t
s_field (const uint8_t **data, size_t *size, bool *found)
{
    const uint8_t *sep = (const uint8_t *)memchr (*data, '\n', *size);
    size_t len = sep ? (size_t)(sep - *data) : *size;
    *found = sep != NULL;
    return len;
}

static void
s_next (const uint8_t **data, size_t *size, size_t len, bool found)
{
    size_t skip = len + (found ? 1 : 0);
    *data += skip;
    *size -= skip;
}

//  True for the plainest JSON types, "application/json" (any case) or
//  "application/json;..."; cart_route accepts these whatever else it does.
static bool
s_is_plain_json_type (const char *content_type)
{
    return strncasecmp (content_type, "application/json", 16) == 0 &&
           (content_type[16] == 0 || content_type[16] == ';');
}

static void
s_check_error (const cart_route_t *route, const char *content_type, size_t body_size)
{
    FUZZ_CHECK (route->status == 400 || route->status == 404 || route->status == 405 ||
                route->status == 415);
    FUZZ_CHECK (memchr (route->message, 0, sizeof (route->message)) != NULL);
    FUZZ_CHECK (route->message[0] != 0);
    FUZZ_CHECK ((route->status == 405) == (route->allow != NULL));
    if (route->allow)
        FUZZ_CHECK (route->allow[0] != 0);
    if (route->status == 415)
        FUZZ_CHECK (body_size > 0 && content_type &&
                    !s_is_plain_json_type (content_type));
}

//  The operation each method maps to on a cart path
static bool
s_method_fits (const char *method, cart_op_t op)
{
    switch (op) {
        case CART_OP_GET:
            return strcmp (method, "GET") == 0;
        case CART_OP_ADD:
            return strcmp (method, "POST") == 0;
        case CART_OP_SET:
            return strcmp (method, "PUT") == 0;
        case CART_OP_REMOVE:
        case CART_OP_CHECKOUT:
            return strcmp (method, "DELETE") == 0;
        default:
            return false;
    }
}

//  --------------------------------------------------------------------------
//  Prices

//  Cents of text when it is plainly a price, digits with at most two
//  decimals and no exponent ("0", "19.9", "1000000000000.00"); false for
//  any other text, which this simple reading cannot judge.
static bool
s_plain_price (const char *text, size_t len, uint64_t *cents)
{
    size_t i = 0, decimals = 0;
    uint64_t value = 0;
    while (i < len && text[i] >= '0' && text[i] <= '9' && i < 13)
        value = value * 10 + (uint64_t)(text[i++] - '0');
    if (i == 0 || (text[0] == '0' && i > 1))
        return false;
    if (i < len && text[i] == '.') {
        for (i++; i < len && text[i] >= '0' && text[i] <= '9' && decimals < 2; i++)
            value = value * 10 + (uint64_t)(text[i] - '0'), decimals++;
        if (decimals == 0)
            return false;
    }
    if (i != len)
        return false;
    for (; decimals < 2; decimals++)
        value *= 10;
    *cents = value;
    return value <= CART_PRICE_MAX;
}

//  cart_route_price_cents on any text: what it accepts is near the value
//  strtod reads, and every plain price is accepted, exactly.
static void
s_check_price_text (const char *text, size_t len)
{
    uint64_t cents = UINT64_MAX, plain;
    bool accepted = cart_route_price_cents (text, len, &cents);
    if (s_plain_price (text, len, &plain)) {
        FUZZ_CHECK (accepted);
        FUZZ_CHECK (cents == plain);
    }
    if (!accepted)
        return;
    FUZZ_CHECK (cents <= CART_PRICE_MAX);
    char *copy = fuzz_strndup (text, len);
    double value = strtod (copy, NULL);
    free (copy);
    FUZZ_CHECK (fabs (value * 100 - (double)cents) <= 1e-6 * ((double)cents + 1));
}

//  The price of an item body, as jansson reads it (a double), agrees with
//  the route's exact cents; an integer price in range is never refused.
static void
s_check_price_json (const cart_route_t *route, const char *body, size_t size)
{
    json_t *root = json_loadb (body, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *price = json_object_get (root, "offeredPrice");
    if (route->kind == CART_ROUTE_CART) {
        FUZZ_CHECK (json_is_number (price));
        double value = json_number_value (price);
        uint64_t cents = route->req.item.price_cents;
        FUZZ_CHECK (fabs (value * 100 - (double)cents) <= 1e-6 * ((double)cents + 1));
    } else if (json_is_integer (price) && json_integer_value (price) >= 0 &&
               json_integer_value (price) <= (json_int_t)(CART_PRICE_MAX / 100))
        FUZZ_CHECK (strncmp (route->message, "offeredPrice", 12) != 0);
    json_decref (root);
}

static void
s_round_trip (const cart_request_t *req)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    const char *error = NULL;
    FUZZ_CHECK (cart_request_encode (req, &buf, &error) == 0);
    //  Decode from an exact-size copy so that an over-read shows
    void *copy = fuzz_copy (buf.data, buf.size);
    cart_request_t decoded;
    error = NULL;
    int rc = cart_request_decode (copy, buf.size, &decoded, &error);
    if (rc)
        fprintf (stderr, "decode failed: %s\n", error ? error : "(no error)");
    FUZZ_CHECK (rc == 0);
    fuzz_check_requests_equal (req, &decoded);
    free (copy);
    msgpack_sbuffer_destroy (&buf);
}

static void
s_check_cart (const cart_route_t *route, const char *method)
{
    const cart_request_t *req = &route->req;
    const char *error = NULL;
    FUZZ_CHECK (cart_request_check (req, &error) == 0);
    FUZZ_CHECK (cart_id_valid (req->customer, req->customer_len));
    FUZZ_CHECK (req->customer == route->customer);
    FUZZ_CHECK (strlen (route->customer) == req->customer_len);
    FUZZ_CHECK (s_method_fits (method, req->op));
    if (req->op != CART_OP_GET && req->op != CART_OP_CHECKOUT) {
        FUZZ_CHECK (cart_id_valid (req->item.id, req->item.id_len));
        FUZZ_CHECK (req->item.id == route->item);
    }
    if (req->op == CART_OP_ADD) {
        FUZZ_CHECK (req->item.count >= 1 && req->item.count <= CART_COUNT_MAX);
        FUZZ_CHECK (req->item.price_cents <= CART_PRICE_MAX);
        if (req->item.expiry)
            FUZZ_CHECK (cart_time_valid (req->item.expiry, req->item.expiry_len));
    }
    if (req->op == CART_OP_SET)
        FUZZ_CHECK (req->item.count <= CART_COUNT_MAX);
    s_round_trip (req);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    bool found;
    size_t len = s_field (&data, &size, &found);
    char *method = fuzz_strndup (data, len);
    s_next (&data, &size, len, found);
    len = s_field (&data, &size, &found);
    char *path = fuzz_strndup (data, len);
    s_next (&data, &size, len, found);
    len = s_field (&data, &size, &found);
    char *content_type = len ? fuzz_strndup (data, len) : NULL;
    s_next (&data, &size, len, found);
    char *body = size ? (char *)fuzz_copy (data, size) : NULL;

    cart_route_t route;
    cart_route_kind_t kind =
        cart_route_map (method, path, content_type, body, size, &route);
    FUZZ_CHECK (kind == route.kind);
    FUZZ_CHECK (route.label < CART_LABELS);
    if (route.label == CART_LABEL_ADD && size > 0 &&
        (kind == CART_ROUTE_CART || route.status == 400))
        s_check_price_json (&route, body, size);
    s_check_price_text (body ? body : "", size);
    switch (kind) {
        case CART_ROUTE_ERROR:
            s_check_error (&route, content_type, size);
            break;
        case CART_ROUTE_CART:
            s_check_cart (&route, method);
            break;
        case CART_ROUTE_HEALTHZ:
            FUZZ_CHECK (route.label == CART_LABEL_HEALTHZ);
            FUZZ_CHECK (strcmp (method, "GET") == 0);
            break;
        case CART_ROUTE_METRICS:
            FUZZ_CHECK (route.label == CART_LABEL_METRICS);
            FUZZ_CHECK (strcmp (method, "GET") == 0);
            break;
        default:
            FUZZ_CHECK (!"kind is not a cart_route_kind_t value");
    }
    free (method);
    free (path);
    free (content_type);
    free (body);
    return 0;
}
