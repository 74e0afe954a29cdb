/*  =========================================================================
    cart_render - CART/1 reply -> HTTP status and JSON.

    The JSON is written by hand into one buffer: its shapes are fixed and
    small, and this is the hot path of every response. Strings that came
    over the bus are escaped (identifiers are already limited to safe
    characters by the decoder, but expiries and messages are not). A
    cart's total can pass 2^64 cents (1,000 items x 1e6 units x 1e14
    cents), so it is summed in 128 bits.
    =========================================================================
*/
#include "cart_render.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_reserve (cart_buf_t *buf, size_t more)
{
    if (buf->len + more + 1 <= buf->cap)
        return;
    size_t cap = buf->cap ? buf->cap : 512;
    while (cap < buf->len + more + 1)
        cap *= 2;
    buf->data = (char *)realloc (buf->data, cap);
    if (!buf->data)
        abort ();
    buf->cap = cap;
}

void
cart_buf_append (cart_buf_t *buf, const char *data, size_t len)
{
    s_reserve (buf, len);
    memcpy (buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = 0;
}

void
cart_buf_printf (cart_buf_t *buf, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int needed = vsnprintf (NULL, 0, format, args);
    va_end (args);
    if (needed <= 0)
        return;
    s_reserve (buf, (size_t)needed);
    va_start (args, format);
    vsnprintf (buf->data + buf->len, (size_t)needed + 1, format, args);
    va_end (args);
    buf->len += (size_t)needed;
}

//  Returns the length of the valid UTF-8 sequence at text[0..len), or 0
//  when it is not one (overlong forms, surrogates and values past U+10FFFF
//  are not valid).
static size_t
s_utf8_length (const unsigned char *text, size_t len)
{
    unsigned char c = text[0];
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (n == 0 || c > 0xF4 || n > len)
        return 0;
    uint32_t code = c & (0x3F >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((text[i] & 0xC0) != 0x80)
            return 0;
        code = (code << 6) | (text[i] & 0x3F);
    }
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < least[n] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
        return 0;
    return n;
}

void
cart_buf_json_string (cart_buf_t *buf, const char *text, size_t len)
{
    s_reserve (buf, len * 6 + 2);
    char *out = buf->data + buf->len;
    *out++ = '"';
    const unsigned char *in = (const unsigned char *)text;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = in[i];
        size_t n;
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c < 0x20)
            out += sprintf (out, "\\u%04x", c);
        else if (c < 0x80)
            *out++ = (char)c;
        else if ((n = s_utf8_length (in + i, len - i)) > 0) {
            memcpy (out, in + i, n);
            out += n;
            i += n - 1;
        } else
            out += sprintf (out, "\\ufffd"); //  not UTF-8: the replacement character
    }
    *out++ = '"';
    *out = 0;
    buf->len = (size_t)(out - buf->data);
}

char *
cart_buf_take (cart_buf_t *buf)
{
    char *data = buf->data;
    *buf = (cart_buf_t){NULL, 0, 0};
    return data;
}

void
cart_buf_free (cart_buf_t *buf)
{
    free (buf->data);
    *buf = (cart_buf_t){NULL, 0, 0};
}

void
cart_render_error (cart_buf_t *buf, int status, const char *message, size_t len)
{
    cart_buf_printf (buf, "{\"error\": {\"status\": %d, \"message\": ", status);
    cart_buf_json_string (buf, message, len);
    cart_buf_append (buf, "}}", 2);
}

//  Cents as a JSON number with two decimals: 5000 -> 50.00
static void
s_money (cart_buf_t *buf, unsigned __int128 cents)
{
    char digits[48];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + (int)(cents % 10));
        cents /= 10;
    } while (cents || n < 3);
    char text[50];
    size_t len = 0;
    while (n > 2)
        text[len++] = digits[--n];
    text[len++] = '.';
    text[len++] = digits[1];
    text[len++] = digits[0];
    cart_buf_append (buf, text, len);
}

static void
s_item (cart_buf_t *buf, const cart_item_t *item)
{
    cart_buf_append (buf, "{\"itemId\": ", 11);
    cart_buf_json_string (buf, item->id, item->id_len);
    cart_buf_append (buf, ", \"offeredPrice\": ", 18);
    s_money (buf, item->price_cents);
    cart_buf_printf (buf,
                     ", \"itemCount\": %u, \"specialSale\": %s, \"saleExpiration\": ",
                     item->count, item->special_sale ? "true" : "false");
    if (item->expiry)
        cart_buf_json_string (buf, item->expiry, item->expiry_len);
    else
        cart_buf_append (buf, "null", 4);
    cart_buf_append (buf, "}", 1);
}

//  Renders a cart; returns 0, or -1 when an item is malformed (the buffer
//  is then to be discarded).
static int
s_cart (cart_buf_t *buf, cart_reply_t *reply, bool checked_out)
{
    cart_buf_append (buf, "{\"customerId\": ", 15);
    cart_buf_json_string (buf, reply->customer, reply->customer_len);
    cart_buf_append (buf, ", \"items\": [", 12);
    uint64_t units = 0;
    unsigned __int128 total = 0;
    cart_item_t item;
    const char *error;
    int rc;
    for (size_t i = 0; (rc = cart_reply_next_item (reply, &item, &error)) == 1; i++) {
        if (i)
            cart_buf_append (buf, ", ", 2);
        s_item (buf, &item);
        units += item.count;
        total += (unsigned __int128)item.price_cents * item.count;
    }
    if (rc == -1)
        return -1;
    cart_buf_printf (buf,
                     "], \"itemCount\": %llu, \"total\": ", (unsigned long long)units);
    s_money (buf, total);
    if (checked_out)
        cart_buf_append (buf, ", \"checkedOut\": true", 20);
    cart_buf_append (buf, "}", 1);
    return 0;
}

static const char *
s_default_message (cart_op_t op, int status)
{
    switch (status) {
        case CART_TIMEOUT:
            if (cart_op_writes (op))
                return "the shard that owns this cart did not answer in time, so this "
                       "change may or may not have been applied: send it again with the "
                       "same Idempotency-Key header (it is then applied at most once), "
                       "or read the cart (GET /items/{customerId}) before trying again";
            return "the shard that owns this cart did not answer in time; try again";
        case CART_UNAVAILABLE:
            return "the shard that owns this cart is not available; try again shortly";
        case CART_NOT_FOUND:
            return "not found";
        case CART_CONFLICT:
            return "a limit of the cart would be exceeded";
        case CART_BAD_REQUEST:
            return "the request was refused";
        default:
            return "the service failed to answer this request";
    }
}

static int
s_error (cart_buf_t *buf, cart_op_t op, int status, const void *body, size_t size)
{
    cart_reply_t reply;
    const char *error;
    if (status < 400 || status > 599)
        status = 500;
    if (cart_reply_decode (body, size, &reply, &error) == 0 &&
        reply.kind == CART_BODY_ERROR && reply.message_len > 0)
        cart_render_error (buf, status, reply.message, reply.message_len);
    else {
        const char *message = s_default_message (op, status);
        cart_render_error (buf, status, message, strlen (message));
    }
    return status;
}

static int
s_internal (cart_buf_t *buf)
{
    buf->len = 0;
    const char *message = "the shard's reply was malformed";
    cart_render_error (buf, 500, message, strlen (message));
    return 500;
}

int
cart_render_reply (cart_op_t op, int status, const void *body, size_t size,
                   cart_buf_t *buf)
{
    if (status == CART_DELETED)
        return 204;
    cart_reply_t reply;
    const char *error;
    if (status == CART_PRECONDITION_FAILED) {
        //  The body is the cart as it is now
        if (cart_reply_decode (body, size, &reply, &error) == 0 &&
            reply.kind == CART_BODY_CART)
            return s_cart (buf, &reply, false) ? s_internal (buf) : 412;
        return s_internal (buf);
    }
    if (status != CART_OK && status != CART_CREATED)
        return s_error (buf, op, status, body, size);
    if (cart_reply_decode (body, size, &reply, &error))
        return s_internal (buf);
    bool wants_cart = op == CART_OP_GET || op == CART_OP_CHECKOUT;
    if (wants_cart && reply.kind == CART_BODY_CART)
        return s_cart (buf, &reply, op == CART_OP_CHECKOUT) ? s_internal (buf) : 200;
    if (!wants_cart && reply.kind == CART_BODY_ITEM) {
        s_item (buf, &reply.item);
        return status == CART_CREATED ? 201 : 200;
    }
    return s_internal (buf);
}
