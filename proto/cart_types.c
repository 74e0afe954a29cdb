/*  =========================================================================
    cart_types - identifier rule and status names.
    =========================================================================
*/
#include "cart_types.h"

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
    switch (status) {
        case CART_OK:
            return "OK";
        case CART_CREATED:
            return "CREATED";
        case CART_DELETED:
            return "DELETED";
        case CART_BAD_REQUEST:
            return "BAD_REQUEST";
        case CART_NOT_FOUND:
            return "NOT_FOUND";
        case CART_CONFLICT:
            return "CONFLICT";
        case CART_INTERNAL:
            return "INTERNAL";
        case CART_UNAVAILABLE:
            return "UNAVAILABLE";
        case CART_TIMEOUT:
            return "TIMEOUT";
        default:
            return "UNKNOWN";
    }
}
