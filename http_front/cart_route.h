/*  =========================================================================
    cart_route - the HTTP API's request side, without any socket: a method,
    a raw path, a Content-Type and a body become either a CART/1 request,
    an operations route, or an HTTP error with a message a user can act on.

    It is a pure function of its input, so the fuzzer drives it directly.
    ../shared/API.md is the contract: every route, alias, field and limit
    is enforced here, and a request it refuses reaches no shard.
    =========================================================================
*/
#ifndef CART_ROUTE_H_INCLUDED
#define CART_ROUTE_H_INCLUDED

#include <jansson.h>

#include "cart_proto.h"

//  What a request asks for
typedef enum {
    CART_ROUTE_ERROR,   //  answer with status and message now
    CART_ROUTE_CART,    //  a cart operation: send req to its shard
    CART_ROUTE_HEALTHZ, //  GET /healthz
    CART_ROUTE_METRICS, //  GET /metrics
    CART_ROUTE_OPENAPI  //  GET /openapi.json: the API's description
} cart_route_kind_t;

//  Labels for metrics, one per endpoint
typedef enum {
    CART_LABEL_LIST,
    CART_LABEL_ADD,
    CART_LABEL_SET,
    CART_LABEL_REMOVE,
    CART_LABEL_CHECKOUT,
    CART_LABEL_HEALTHZ,
    CART_LABEL_METRICS,
    CART_LABEL_OPENAPI,
    CART_LABEL_OTHER,
    CART_LABEL_INVALID, //  refused by the HTTP layer before routing
    CART_LABELS
} cart_label_t;

#define CART_NONE_MATCH_MAX 4 //  tags of an If-None-Match that count

//  Room for the decoded ids and expiry that req points into
typedef struct {
    cart_route_kind_t kind;
    cart_label_t label;
    cart_request_t req; //  CART_ROUTE_CART
    int status;         //  CART_ROUTE_ERROR: HTTP status
    const char *allow;  //  405: the methods the path allows
    //  GET with If-None-Match (cart_route_headers): the tags it lists
    bool none_match_any; //  *
    size_t n_none_match;
    uint64_t none_match[CART_NONE_MATCH_MAX]; //  the versions, in "N" or W/"N"
    char message[256];                        //  CART_ROUTE_ERROR: what was wrong
    char customer[CART_ID_MAX + 1];
    char item[CART_ID_MAX + 1];
    char expiry[CART_EXPIRY_MAX + 1];
    char idem[CART_IDEM_MAX + 1];
} cart_route_t;

//  Reads a cart request's conditional and idempotency headers into
//  route->req (each argument NULL when absent), after cart_route_map:
//  - Idempotency-Key on a write (POST, PUT, DELETE): 1..CART_IDEM_MAX
//    visible ASCII characters, optionally in double quotes (a structured
//    field string); ignored on a GET;
//  - If-Match on any cart request: one strong entity tag "N" or *; a tag
//    that this service never makes matches no cart;
//  - If-None-Match on a GET: a list of tags ("N" or W/"N") or *, kept in
//    route for the answer (cart_route_not_modified); ignored on a write.
//  A malformed header makes the route an error (400). Returns route->kind.
cart_route_kind_t cart_route_headers (cart_route_t *route, const char *idempotency_key,
                                      const char *if_match, const char *if_none_match);

//  True when a GET's If-None-Match, as kept in a route (any: *, and n
//  versions), matches the cart's version: the answer is then 304 Not
//  Modified.
bool cart_route_not_modified (bool any, const uint64_t *versions, size_t n,
                              uint64_t version);

//  Writes the entity tag of a cart version ("N", quotes included) into
//  tag[CART_ETAG_MAX]; returns tag.
#define CART_ETAG_MAX 24
const char *cart_route_etag (uint64_t version, char *tag);

//  Maps one request. path is the raw request target as sent (percent-
//  encoded, a query string allowed and ignored); content_type may be NULL
//  (absent); body is body_size bytes (may be NULL when 0). Fills *route
//  and returns route->kind. Never fails otherwise; allocates only inside
//  jansson while a body is parsed.
cart_route_kind_t cart_route_map (const char *method, const char *path,
                                  const char *content_type, const char *body,
                                  size_t body_size, cart_route_t *route);

//  The name of a metrics label ("add", ...).
const char *cart_route_label_name (cart_label_t label);

//  Converts a JSON number as written (e.g. "19.99", "5e2", "0.50") to
//  integer cents, exactly: true when it is 0..1e12 and a whole number of
//  cents (at most two decimals, trailing zeros aside).
bool cart_route_price_cents (const char *text, size_t len, uint64_t *cents);

#endif
