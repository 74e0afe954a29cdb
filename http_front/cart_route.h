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

//  Room for the decoded ids and expiry that req points into
typedef struct {
    cart_route_kind_t kind;
    cart_label_t label;
    cart_request_t req; //  CART_ROUTE_CART
    int status;         //  CART_ROUTE_ERROR: HTTP status
    const char *allow;  //  405: the methods the path allows
    char message[256];  //  CART_ROUTE_ERROR: what was wrong
    char customer[CART_ID_MAX + 1];
    char item[CART_ID_MAX + 1];
    char expiry[CART_EXPIRY_MAX + 1];
} cart_route_t;

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
