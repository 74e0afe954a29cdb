/*  =========================================================================
    cart_route - HTTP request -> CART/1 request, by ../shared/API.md.

    Order of checks, so that a user sees the most useful error first: the
    route (404), the method (405 with Allow), the identifiers (400), the
    Content-Type of a body (415), then the body's JSON and fields (400).

    Prices. jansson would hand a price over as a double, which cannot tell
    0.10000000000000001 from 0.1. So jansson only checks the JSON and the
    field's type, and the price is read from its own text, as written, into
    integer cents: digits, decimal point and exponent, exactly. A price
    with a fraction of a cent is refused, whatever its precision. The cents
    are an integer from here to the shard and back: no float holds a price.
    =========================================================================
*/
#include "cart_route.h"
#include "cart_time.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SEGMENTS_MAX 4

static bool
s_streq (const char *a, const char *b)
{
    return strcmp (a, b) == 0;
}

static const char *s_label_names[] = {"list",     "add",     "set",     "remove",
                                      "checkout", "healthz", "metrics", "openapi",
                                      "other",    "invalid"};
_Static_assert(sizeof (s_label_names) / sizeof (s_label_names[0]) == CART_LABELS,
               "every metrics label has its name");

const char *
cart_route_label_name (cart_label_t label)
{
    return label < CART_LABELS ? s_label_names[label] : "other";
}

//  Sets route to an error; returns CART_ROUTE_ERROR.
static cart_route_kind_t s_fail (cart_route_t *route, int status, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static cart_route_kind_t
s_fail (cart_route_t *route, int status, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (route->message, sizeof (route->message), format, args);
    va_end (args);
    route->kind = CART_ROUTE_ERROR;
    route->status = status;
    return CART_ROUTE_ERROR;
}

//  --------------------------------------------------------------------------
//  The path

typedef struct {
    const char *start;
    size_t len;
} segment_t;

//  Splits "/a/b/c" (up to '?') into segments. Returns the count, or -1
//  when the path does not start with '/' or has too many segments.
static int
s_split (const char *path, segment_t *segments)
{
    if (path[0] != '/')
        return -1;
    size_t end = strcspn (path, "?#");
    int n = 0;
    size_t at = 1;
    while (true) {
        size_t len = 0;
        while (at + len < end && path[at + len] != '/')
            len++;
        if (n == SEGMENTS_MAX)
            return -1;
        segments[n++] = (segment_t){path + at, len};
        at += len;
        if (at >= end)
            return n;
        at++; //  the '/'
    }
}

static bool
s_segment_is (const segment_t *segment, const char *text)
{
    return segment->len == strlen (text) &&
           memcmp (segment->start, text, segment->len) == 0;
}

static int
s_hex (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower ((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

//  Percent-decodes a segment into out (room for CART_ID_MAX bytes + NUL)
//  and checks it as an identifier. Returns its length, or -1 with route
//  set to a 400 naming the field.
static int
s_decode_id (const segment_t *segment, char *out, const char *field, cart_route_t *route)
{
    size_t len = 0;
    for (size_t i = 0; i < segment->len; i++) {
        int c = (unsigned char)segment->start[i];
        if (c == '%') {
            int high = i + 2 < segment->len ? s_hex (segment->start[i + 1]) : -1;
            int low = i + 2 < segment->len ? s_hex (segment->start[i + 2]) : -1;
            if (high < 0 || low < 0) {
                s_fail (route, 400, "%s has a bad percent-escape", field);
                return -1;
            }
            c = high * 16 + low;
            i += 2;
        }
        if (len == CART_ID_MAX) {
            s_fail (route, 400, "%s is longer than %d characters", field, CART_ID_MAX);
            return -1;
        }
        out[len++] = (char)c;
    }
    out[len] = 0;
    if (!cart_id_valid (out, len)) {
        s_fail (route, 400,
                len ? "%s may hold only A-Z a-z 0-9 . _ ~ @ : -"
                    : "%s is empty; it must be 1 to 128 characters",
                field);
        return -1;
    }
    return (int)len;
}

//  --------------------------------------------------------------------------
//  Bodies

static bool
s_is_json_type (const char *content_type)
{
    while (*content_type == ' ' || *content_type == '\t')
        content_type++;
    size_t len = strlen ("application/json");
    if (strncasecmp (content_type, "application/json", len))
        return false;
    char next = content_type[len];
    return next == 0 || next == ';' || next == ' ' || next == '\t';
}

//  Loads a body that must be a JSON object. Returns it, or NULL with
//  route set to a 400.
static json_t *
s_load_object (const char *body, size_t size, cart_route_t *route)
{
    if (size == 0) {
        s_fail (route, 400, "the request needs a JSON object body");
        return NULL;
    }
    json_error_t error;
    json_t *root = json_loadb (body, size, JSON_REJECT_DUPLICATES, &error);
    if (!root) {
        s_fail (route, 400, "malformed JSON at line %d, column %d: %s", error.line,
                error.column, error.text);
        return NULL;
    }
    if (!json_is_object (root)) {
        json_decref (root);
        s_fail (route, 400, "the body must be a JSON object");
        return NULL;
    }
    return root;
}

//  The digits of a number's integer and fraction parts, read as one
//  digit string: k-th digit of "12.34" is 1, 2, 3, 4.
typedef struct {
    const char *whole;
    size_t whole_len;
    const char *fraction;
    size_t fraction_len;
} digits_t;

static int
s_digit_at (const digits_t *d, size_t k)
{
    return (k < d->whole_len ? d->whole[k] : d->fraction[k - d->whole_len]) - '0';
}

//  Reads [-]int[.frac][(e|E)[+-]exp]; returns false if text is not that.
static bool
s_number_parts (const char *text, size_t len, digits_t *d, long *exponent, bool *negative)
{
    size_t i = 0;
    *negative = i < len && text[i] == '-';
    i += *negative;
    d->whole = text + i;
    while (i < len && isdigit ((unsigned char)text[i]))
        i++;
    d->whole_len = (size_t)(text + i - d->whole);
    d->fraction = text + i;
    d->fraction_len = 0;
    if (i < len && text[i] == '.') {
        d->fraction = text + ++i;
        while (i < len && isdigit ((unsigned char)text[i]))
            i++;
        d->fraction_len = (size_t)(text + i - d->fraction);
        if (d->fraction_len == 0)
            return false;
    }
    *exponent = 0;
    if (i < len && (text[i] == 'e' || text[i] == 'E')) {
        i++;
        bool down = i < len && text[i] == '-';
        i += i < len && (text[i] == '-' || text[i] == '+');
        size_t first = i;
        for (; i < len && isdigit ((unsigned char)text[i]); i++)
            if (*exponent < 100000)
                *exponent = *exponent * 10 + (text[i] - '0');
        if (i == first)
            return false;
        *exponent = down ? -*exponent : *exponent;
    }
    return i == len && d->whole_len > 0;
}

bool
cart_route_price_cents (const char *text, size_t len, uint64_t *cents)
{
    digits_t d;
    long exponent;
    bool negative;
    if (!s_number_parts (text, len, &d, &exponent, &negative))
        return false;
    //  value = D x 10^(exponent - fraction_len); cents = D x 10^shift
    size_t total = d.whole_len + d.fraction_len, first = 0;
    while (first < total && s_digit_at (&d, first) == 0)
        first++;
    if (first == total) { //  zero, however written
        *cents = 0;
        return true;
    }
    long shift = exponent - (long)d.fraction_len + 2;
    size_t last = total; //  digits [first, last) make the cents
    for (; shift < 0; shift++) {
        if (last == first || s_digit_at (&d, last - 1) != 0)
            return false; //  a fraction of a cent
        last--;
    }
    if (negative || (long)(last - first) + shift > 15)
        return false;
    uint64_t value = 0;
    for (size_t k = first; k < last; k++)
        value = value * 10 + (uint64_t)s_digit_at (&d, k);
    for (; shift > 0; shift--)
        value *= 10;
    if (value > CART_PRICE_MAX)
        return false;
    *cents = value;
    return true;
}

//  Finds the text of the index-th number in a JSON text, skipping strings.
//  Used on a body that jansson has accepted and whose values are all
//  scalars, so the index-th number is the index-th numeric value.
static bool
s_nth_number (const char *text, size_t size, size_t index, const char **start,
              size_t *len)
{
    size_t i = 0, count = 0;
    while (i < size) {
        char c = text[i];
        if (c == '"') {
            for (i++; i < size && text[i] != '"'; i++)
                i += text[i] == '\\';
            i++;
        } else if (c == '-' || isdigit ((unsigned char)c)) {
            size_t begin = i;
            while (i < size && strchr ("0123456789+-.eE", text[i]) && text[i])
                i++;
            if (count++ == index) {
                *start = text + begin;
                *len = i - begin;
                return true;
            }
        } else
            i++;
    }
    return false;
}

//  Reads an integer field in min..max into *value; sets a 400 otherwise.
static int
s_integer_field (const char *name, const json_t *json, long min, long max, long *value,
                 cart_route_t *route)
{
    if (!json_is_integer (json) || json_integer_value (json) < min ||
        json_integer_value (json) > max) {
        s_fail (route, 400, "%s must be an integer from %ld to %ld", name, min, max);
        return -1;
    }
    *value = (long)json_integer_value (json);
    return 0;
}

static int
s_expiry_field (const json_t *json, cart_route_t *route)
{
    cart_item_t *item = &route->req.item;
    if (json_is_null (json)) {
        item->expiry = NULL;
        item->expiry_len = 0;
        return 0;
    }
    const char *text = json_string_value (json);
    size_t len = json_string_length (json);
    if (!text || len > CART_EXPIRY_MAX || !cart_time_valid (text, len)) {
        s_fail (route, 400,
                "saleExpiration must be null or an RFC 3339 date-time such as "
                "2026-12-01T00:00:00Z");
        return -1;
    }
    memcpy (route->expiry, text, len);
    route->expiry[len] = 0;
    item->expiry = route->expiry;
    item->expiry_len = len;
    return 0;
}

static int
s_bad_price (cart_route_t *route)
{
    s_fail (route, 400,
            "offeredPrice must be a number from 0 to 1000000000000 with at most two "
            "decimals");
    return -1;
}

//  Reads one field of an item body.
static int
s_item_field (const char *key, const json_t *value, bool *have_price, bool *have_count,
              cart_route_t *route)
{
    cart_item_t *item = &route->req.item;
    long count;
    if (s_streq (key, "offeredPrice")) {
        if (!json_is_number (value))
            return s_bad_price (route);
        *have_price = true; //  its exact value is read from the text
        return 0;
    }
    if (s_streq (key, "itemCount") || s_streq (key, "unitCount")) {
        if (*have_count) {
            s_fail (route, 400, "give itemCount or unitCount, not both");
            return -1;
        }
        if (s_integer_field (key, value, 1, CART_COUNT_MAX, &count, route))
            return -1;
        item->count = (uint32_t)count;
        *have_count = true;
        return 0;
    }
    if (s_streq (key, "specialSale")) {
        if (!json_is_boolean (value)) {
            s_fail (route, 400, "specialSale must be true or false");
            return -1;
        }
        item->special_sale = json_is_true (value);
        return 0;
    }
    if (s_streq (key, "saleExpiration"))
        return s_expiry_field (value, route);
    s_fail (route, 400, "unknown field '%.64s'", key);
    return -1;
}

static cart_route_kind_t
s_item_body (const char *body, size_t size, cart_route_t *route)
{
    json_t *root = s_load_object (body, size, route);
    if (!root)
        return CART_ROUTE_ERROR;
    route->req.item.count = 1;
    bool have_price = false, have_count = false;
    size_t numbers = 0, price_index = 0;
    const char *key;
    json_t *value;
    json_object_foreach (root, key, value)
    {
        if (s_item_field (key, value, &have_price, &have_count, route)) {
            json_decref (root);
            return CART_ROUTE_ERROR;
        }
        if (s_streq (key, "offeredPrice"))
            price_index = numbers;
        numbers += json_is_number (value);
    }
    json_decref (root);
    if (!have_price)
        return s_fail (route, 400, "offeredPrice is required");
    //  jansson keeps members in the order written, so the price is the
    //  price_index-th number of the text: read it exactly from there
    const char *text;
    size_t len;
    if (!s_nth_number (body, size, price_index, &text, &len) ||
        !cart_route_price_cents (text, len, &route->req.item.price_cents)) {
        s_bad_price (route);
        return CART_ROUTE_ERROR;
    }
    return CART_ROUTE_CART;
}

static cart_route_kind_t
s_count_body (const char *body, size_t size, cart_route_t *route)
{
    json_t *root = s_load_object (body, size, route);
    if (!root)
        return CART_ROUTE_ERROR;
    const char *key;
    json_t *value;
    bool have_count = false;
    long count;
    json_object_foreach (root, key, value)
    {
        if (!s_streq (key, "newCount")) {
            s_fail (route, 400, "unknown field '%.64s'", key);
            break;
        }
        if (s_integer_field ("newCount", value, 0, CART_COUNT_MAX, &count, route))
            break;
        route->req.item.count = (uint32_t)count;
        have_count = true;
    }
    json_decref (root);
    if (route->kind == CART_ROUTE_ERROR)
        return CART_ROUTE_ERROR;
    if (!have_count)
        return s_fail (route, 400, "newCount is required");
    return CART_ROUTE_CART;
}

//  --------------------------------------------------------------------------
//  Routes

typedef struct {
    const char *method;
    cart_op_t op;
    cart_label_t label;
} method_t;

//  The methods of one path shape
typedef struct {
    const char *first; //  first segment
    int segments;      //  segments in the path
    const char *allow;
    method_t methods[3];
} shape_t;

static const shape_t s_shapes[] = {
    {"items",
     2,
     "GET, DELETE",
     {{"GET", CART_OP_GET, CART_LABEL_LIST},
      {"DELETE", CART_OP_CHECKOUT, CART_LABEL_CHECKOUT}}},
    {"item",
     3,
     "POST, PUT, DELETE",
     {{"POST", CART_OP_ADD, CART_LABEL_ADD},
      {"PUT", CART_OP_SET, CART_LABEL_SET},
      {"DELETE", CART_OP_REMOVE, CART_LABEL_REMOVE}}},
    {"items", 3, "POST", {{"POST", CART_OP_ADD, CART_LABEL_ADD}}},
};

static cart_route_kind_t
s_cart_route (const method_t *method, const segment_t *segments, int n,
              const char *content_type, const char *body, size_t size,
              cart_route_t *route)
{
    cart_request_t *req = &route->req;
    req->op = method->op;
    route->label = method->label;
    int len = s_decode_id (&segments[1], route->customer, "customerId", route);
    if (len < 0)
        return CART_ROUTE_ERROR;
    req->customer = route->customer;
    req->customer_len = (size_t)len;
    if (n == 3) {
        len = s_decode_id (&segments[2], route->item, "itemId", route);
        if (len < 0)
            return CART_ROUTE_ERROR;
        req->item.id = route->item;
        req->item.id_len = (size_t)len;
    }
    if (size > 0 && content_type && !s_is_json_type (content_type))
        return s_fail (route, 415,
                       "a request body must be application/json, not '%.64s' (with curl: "
                       "-H 'Content-Type: application/json', or --json)",
                       content_type);
    route->kind = CART_ROUTE_CART;
    if (req->op == CART_OP_ADD)
        return s_item_body (body, size, route);
    if (req->op == CART_OP_SET)
        return s_count_body (body, size, route);
    return CART_ROUTE_CART;
}

//  The paths of one segment, each allowing GET only
typedef struct {
    const char *name;
    cart_route_kind_t kind;
    cart_label_t label;
} operations_path_t;

static const operations_path_t s_operations[] = {
    {"healthz", CART_ROUTE_HEALTHZ, CART_LABEL_HEALTHZ},
    {"metrics", CART_ROUTE_METRICS, CART_LABEL_METRICS},
    {"openapi.json", CART_ROUTE_OPENAPI, CART_LABEL_OPENAPI},
};

//  The operations path a one-segment path names, or NULL
static const operations_path_t *
s_operations_path (const segment_t *segment)
{
    for (size_t i = 0; i < sizeof (s_operations) / sizeof (s_operations[0]); i++)
        if (s_segment_is (segment, s_operations[i].name))
            return &s_operations[i];
    return NULL;
}

static cart_route_kind_t
s_operations_route (const char *method, const operations_path_t *path,
                    cart_route_t *route)
{
    route->label = path->label;
    if (!s_streq (method, "GET")) {
        route->allow = "GET";
        return s_fail (route, 405, "this path allows only GET");
    }
    route->kind = path->kind;
    return route->kind;
}

//  The path of a request target in absolute form ("http://host/path"),
//  which a server must accept (RFC 9112 section 3.2.2); other targets as
//  they are
static const char *
s_origin_form (const char *target)
{
    size_t scheme = strncasecmp (target, "http://", 7) == 0    ? 7
                    : strncasecmp (target, "https://", 8) == 0 ? 8
                                                               : 0;
    if (!scheme)
        return target;
    const char *path = strchr (target + scheme, '/');
    return path ? path : "/";
}

cart_route_kind_t
cart_route_map (const char *method, const char *path, const char *content_type,
                const char *body, size_t body_size, cart_route_t *route)
{
    memset (route, 0, offsetof (cart_route_t, message));
    route->message[0] = 0;
    route->label = CART_LABEL_OTHER;
    path = s_origin_form (path);
    //  "/items/c/" would split into the legacy add route with an empty item
    size_t length = strlen (path);
    if (length > 1 && path[length - 1] == '/')
        return s_fail (route, 404, "no such route: a path does not end with '/' (%.*s)",
                       (int)(length > 160 ? 160 : length - 1), path);
    segment_t segments[SEGMENTS_MAX];
    int n = s_split (path, segments);
    if (n < 0)
        return s_fail (route, 404, "no such route");
    const operations_path_t *operations =
        n == 1 ? s_operations_path (&segments[0]) : NULL;
    if (operations)
        return s_operations_route (method, operations, route);
    for (size_t s = 0; s < sizeof (s_shapes) / sizeof (s_shapes[0]); s++) {
        const shape_t *shape = &s_shapes[s];
        if (shape->segments != n || !s_segment_is (&segments[0], shape->first))
            continue;
        for (int m = 0; m < 3 && shape->methods[m].method; m++)
            if (s_streq (method, shape->methods[m].method))
                return s_cart_route (&shape->methods[m], segments, n, content_type, body,
                                     body_size, route);
        route->allow = shape->allow;
        return s_fail (route, 405, "this path allows only %s", shape->allow);
    }
    return s_fail (route, 404, "no such route");
}

//  --------------------------------------------------------------------------
//  Conditional and idempotency headers

//  Skips HTTP's optional white space.
static const char *
s_skip_ows (const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

//  Reads an entity tag at *p: "N" (or W/"N" when weak is allowed), N the
//  decimal digits of a cart version. Returns 1 and sets *version for ours,
//  0 for a well-formed tag that is not ours (it matches nothing), -1 for
//  a malformed one. Moves *p past it.
static int
s_entity_tag (const char **p, bool weak_allowed, bool *weak, uint64_t *version)
{
    const char *q = *p;
    *weak = false;
    if (q[0] == 'W' && q[1] == '/') {
        if (!weak_allowed)
            return -1;
        *weak = true;
        q += 2;
    }
    if (*q != '"')
        return -1;
    const char *start = ++q;
    while (*q && *q != '"') {
        unsigned char c = (unsigned char)*q;
        if (c < 0x21 || c == 0x7F) //  etagc: %x21 / %x23-7E / obs-text
            return -1;
        q++;
    }
    if (*q != '"')
        return -1;
    size_t len = (size_t)(q - start);
    *p = q + 1;
    if (len < 1 || len > 19)
        return 0;
    uint64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (start[i] < '0' || start[i] > '9' || (len > 1 && i == 0 && start[i] == '0'))
            return 0;
        value = value * 10 + (uint64_t)(start[i] - '0');
    }
    if (value >> 63)
        return 0;
    *version = value;
    return 1;
}

static cart_route_kind_t
s_idempotency_key (cart_route_t *route, const char *value)
{
    const char *p = s_skip_ows (value);
    size_t len = strlen (p);
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
        p++;
        len -= 2;
    }
    if (!cart_idem_valid (p, len))
        return s_fail (route, 400,
                       "the Idempotency-Key header must be 1 to %d visible ASCII "
                       "characters (no spaces), optionally in double quotes",
                       CART_IDEM_MAX);
    memcpy (route->idem, p, len);
    route->idem[len] = 0;
    route->req.idem = route->idem;
    route->req.idem_len = len;
    return route->kind;
}

static cart_route_kind_t
s_if_match (cart_route_t *route, const char *value)
{
    const char *p = s_skip_ows (value);
    if (*p == '*') {
        p = s_skip_ows (p + 1);
        route->req.match = CART_MATCH_ANY;
    } else {
        bool weak;
        uint64_t version = 0;
        int rc = s_entity_tag (&p, true, &weak, &version);
        if (rc < 0 || weak)
            return s_fail (route, 400,
                           "If-Match takes one strong entity tag, as an ETag header "
                           "gave it (\"12\"), or *");
        route->req.match = CART_MATCH_VERSION;
        route->req.version = rc == 1 ? version : (1ULL << 63) - 1; //  none has it
        p = s_skip_ows (p);
    }
    if (*p)
        return s_fail (route, 400,
                       "If-Match takes one entity tag (\"12\") or *, not a list");
    return route->kind;
}

static cart_route_kind_t
s_if_none_match (cart_route_t *route, const char *value)
{
    const char *p = s_skip_ows (value);
    if (*p == '*' && !*s_skip_ows (p + 1)) {
        route->none_match_any = true;
        return route->kind;
    }
    while (*p) {
        bool weak;
        uint64_t version;
        int rc = s_entity_tag (&p, true, &weak, &version);
        if (rc < 0)
            return s_fail (route, 400,
                           "If-None-Match takes entity tags as ETag headers gave them "
                           "(\"12\", W/\"12\"), separated by commas, or *");
        if (rc == 1 && route->n_none_match < CART_NONE_MATCH_MAX)
            route->none_match[route->n_none_match++] = version;
        p = s_skip_ows (p);
        if (*p == ',')
            p = s_skip_ows (p + 1);
        else if (*p)
            return s_fail (route, 400,
                           "If-None-Match takes entity tags separated by commas");
    }
    return route->kind;
}

cart_route_kind_t
cart_route_headers (cart_route_t *route, const char *idempotency_key,
                    const char *if_match, const char *if_none_match)
{
    if (route->kind != CART_ROUTE_CART)
        return route->kind;
    bool writes = cart_op_writes (route->req.op);
    if (writes && idempotency_key &&
        s_idempotency_key (route, idempotency_key) == CART_ROUTE_ERROR)
        return route->kind;
    if (if_match && s_if_match (route, if_match) == CART_ROUTE_ERROR)
        return route->kind;
    if (!writes && if_none_match)
        s_if_none_match (route, if_none_match);
    return route->kind;
}

bool
cart_route_not_modified (bool any, const uint64_t *versions, size_t n, uint64_t version)
{
    if (any)
        return version != 0; //  * matches a cart that exists
    for (size_t i = 0; i < n; i++)
        if (versions[i] == version)
            return true;
    return false;
}

const char *
cart_route_etag (uint64_t version, char *tag)
{
    snprintf (tag, CART_ETAG_MAX, "\"%llu\"", (unsigned long long)version);
    return tag;
}
