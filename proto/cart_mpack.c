/*  =========================================================================
    cart_mpack - the bounded msgpack reader (see cart_mpack.h for why).
    =========================================================================
*/
#include "cart_mpack.h"

cart_mpack_t
cart_mpack_start (const void *data, size_t size)
{
    return (cart_mpack_t){(const uint8_t *)data, (const uint8_t *)data + size};
}

bool
cart_mpack_done (const cart_mpack_t *r)
{
    return r->p == r->end;
}

static size_t
s_left (const cart_mpack_t *r)
{
    return (size_t)(r->end - r->p);
}

//  Reads a big-endian unsigned integer of width bytes.
static int
s_take (cart_mpack_t *r, size_t width, uint64_t *value)
{
    if (s_left (r) < width)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v = (v << 8) | *r->p++;
    *value = v;
    return 0;
}

//  Reads an array header of at most max elements; an array can't claim
//  more elements than bytes are left.
int
cart_mpack_array (cart_mpack_t *r, size_t max, size_t *n)
{
    if (s_left (r) < 1)
        return -1;
    uint8_t tag = *r->p++;
    uint64_t count;
    if ((tag & 0xF0) == 0x90)
        count = tag & 0x0F;
    else if (tag == 0xDC) {
        if (s_take (r, 2, &count))
            return -1;
    } else if (tag == 0xDD) {
        if (s_take (r, 4, &count))
            return -1;
    } else
        return -1;
    if (count > max || count > s_left (r))
        return -1;
    *n = (size_t)count;
    return 0;
}

//  Reads a non-negative integer no larger than max. Encoders differ on
//  whether they write small non-negative numbers as uint or int; both
//  are accepted when the value is non-negative.
int
cart_mpack_uint (cart_mpack_t *r, uint64_t max, uint64_t *value)
{
    if (s_left (r) < 1)
        return -1;
    uint8_t tag = *r->p++;
    uint64_t v;
    if (tag <= 0x7F)
        v = tag;
    else if (tag >= 0xCC && tag <= 0xCF) {
        if (s_take (r, (size_t)1 << (tag - 0xCC), &v))
            return -1;
    } else if (tag >= 0xD0 && tag <= 0xD3) {
        size_t width = (size_t)1 << (tag - 0xD0);
        if (s_take (r, width, &v) || (v >> (width * 8 - 1)))
            return -1; //  short, or negative
    } else
        return -1;
    if (v > max)
        return -1;
    *value = v;
    return 0;
}

//  Reads a str of 0..max bytes.
int
cart_mpack_str (cart_mpack_t *r, size_t max, const char **text, size_t *len)
{
    if (s_left (r) < 1)
        return -1;
    uint8_t tag = *r->p++;
    uint64_t size;
    if ((tag & 0xE0) == 0xA0)
        size = tag & 0x1F;
    else if (tag >= 0xD9 && tag <= 0xDB) {
        if (s_take (r, (size_t)1 << (tag - 0xD9), &size))
            return -1;
    } else
        return -1;
    if (size > max || size > s_left (r))
        return -1;
    *text = (const char *)r->p;
    *len = (size_t)size;
    r->p += size;
    return 0;
}

int
cart_mpack_bool (cart_mpack_t *r, bool *value)
{
    if (s_left (r) < 1 || (*r->p != 0xC2 && *r->p != 0xC3))
        return -1;
    *value = *r->p++ == 0xC3;
    return 0;
}

int
cart_mpack_opt_uint (cart_mpack_t *r, uint64_t max, uint64_t *value, bool *present)
{
    *present = !cart_mpack_nil (r);
    if (*present)
        return cart_mpack_uint (r, max, value);
    *value = 0;
    return 0;
}

bool
cart_mpack_nil (cart_mpack_t *r)
{
    if (s_left (r) < 1 || *r->p != 0xC0)
        return false;
    r->p++;
    return true;
}

//  Reads nil (*text = NULL) or a str of 1..max bytes.
int
cart_mpack_opt_str (cart_mpack_t *r, size_t max, const char **text, size_t *len)
{
    if (cart_mpack_nil (r)) {
        *text = NULL;
        *len = 0;
        return 0;
    }
    if (cart_mpack_str (r, max, text, len))
        return -1;
    return *len ? 0 : -1;
}

void
cart_mpack_pack_str (msgpack_packer *pk, const char *text, size_t len)
{
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

void
cart_mpack_pack_opt_str (msgpack_packer *pk, const char *text, size_t len)
{
    if (text)
        cart_mpack_pack_str (pk, text, len);
    else
        msgpack_pack_nil (pk);
}

void
cart_mpack_pack_bool (msgpack_packer *pk, bool value)
{
    if (value)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
}
