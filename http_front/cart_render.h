/*  =========================================================================
    cart_render - the HTTP API's response side, without any socket: a
    CART/1 reply becomes an HTTP status and a JSON body, written into one
    growing buffer that the HTTP server then takes over.
    =========================================================================
*/
#ifndef CART_RENDER_H_INCLUDED
#define CART_RENDER_H_INCLUDED

#include "cart_proto.h"

//  A growing byte buffer; data is NUL-terminated whenever len > 0.
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} cart_buf_t;

//  Append bytes, or printf-formatted text.
void cart_buf_append (cart_buf_t *buf, const char *data, size_t len);
void cart_buf_printf (cart_buf_t *buf, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Append text as a JSON string, quotes included, escaping what JSON
//  requires; valid UTF-8 passes through, a byte that is not part of valid
//  UTF-8 becomes U+FFFD.
void cart_buf_json_string (cart_buf_t *buf, const char *text, size_t len);

//  Hand the buffer's data to the caller (who frees it) and empty it.
char *cart_buf_take (cart_buf_t *buf);

//  Free what the buffer holds.
void cart_buf_free (cart_buf_t *buf);

//  Append the API's error body {"error": {"status": S, "message": "..."}}.
void cart_render_error (cart_buf_t *buf, int status, const char *message, size_t len);

//  Render the reply to a cart request of operation op: status is the
//  CART/1 status (or CART_TIMEOUT), body the msgpack reply body. Appends
//  the JSON (nothing for 204) and returns the HTTP status.
int cart_render_reply (cart_op_t op, int status, const void *body, size_t size,
                       cart_buf_t *buf);

#endif
