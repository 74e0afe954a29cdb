/*  =========================================================================
    cart_types - identifier rule, status names, the operations table and the
    error buffer.
    =========================================================================
*/
#include "cart_types.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

//  One bit per byte value allowed in an identifier: [A-Za-z0-9._~@:-].
static bool
s_id_byte_ok (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '~' || c == '@' || c == ':' || c == '-';
}

bool
cart_id_valid (const char *id, size_t len)
{
    if (!id || len == 0 || len > CART_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_id_byte_ok ((unsigned char)id[i]))
            return false;
    return true;
}

const char *
cart_status_name (int status)
{
#define CART_STATUS_CASE(name, code, meaning)                                            \
    case code:                                                                           \
        return #name;
    switch (status) {
        CART_STATUSES (CART_STATUS_CASE)
    }
#undef CART_STATUS_CASE
    return "UNKNOWN";
}

bool
cart_status_known (int status)
{
    return strcmp (cart_status_name (status), "UNKNOWN") != 0;
}

//  --------------------------------------------------------------------------
//  Operations

typedef struct {
    const char *name;
    cart_shape_t shape;
    cart_reply_shape_t reply;
    bool writes;
} op_info_t;

#define CART_OP_INFO(NAME, name, number, request, reply, writes)                         \
    [number] = {#name, request, reply, writes},
static const op_info_t s_ops[] = {CART_OPS (CART_OP_INFO)};
#undef CART_OP_INFO
_Static_assert(sizeof (s_ops) / sizeof (s_ops[0]) == CART_OP_COUNT + 1,
               "operations are numbered 1..CART_OP_COUNT without a gap");

bool
cart_op_valid (int op)
{
    return op >= CART_OP_MIN && op <= CART_OP_MAX && s_ops[op].name;
}

const char *
cart_op_name (int op)
{
    return cart_op_valid (op) ? s_ops[op].name : "unknown";
}

cart_shape_t
cart_op_shape (cart_op_t op)
{
    assert (cart_op_valid (op));
    return s_ops[op].shape;
}

cart_reply_shape_t
cart_op_reply (cart_op_t op)
{
    assert (cart_op_valid (op));
    return s_ops[op].reply;
}

bool
cart_op_writes (cart_op_t op)
{
    assert (cart_op_valid (op));
    return s_ops[op].writes;
}

//  --------------------------------------------------------------------------
//  Errors

const char *
cart_errorf (const char *format, ...)
{
    static _Thread_local char buffer[512];
    char text[sizeof (buffer)]; //  an argument may point into buffer
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof (text), format, args);
    va_end (args);
    memcpy (buffer, text, sizeof (buffer));
    return buffer;
}
