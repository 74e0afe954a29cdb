/*  =========================================================================
    cart_mpack - a bounded, typed msgpack reader for the few shapes of the
    CART/2 bodies, and the packing helpers that go with it.

    msgpack-c's unpacker reserves memory for a container by its declared
    element count before it checks that the bytes exist: a 5-byte body
    declaring an array of 2^28 elements makes it ask for 8 GiB (measured
    with msgpack-c 4.0). This reader bounds every count by the bytes left,
    allocates nothing and points into the input for strings. Bodies are
    written with msgpack-c's packer.

    Every reader returns 0, or -1 when the next object is missing, of
    another type or out of range; the cursor is then left anywhere.
    =========================================================================
*/
#ifndef CART_MPACK_H_INCLUDED
#define CART_MPACK_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *p;   //  the next byte to read
    const uint8_t *end; //  one past the last
} cart_mpack_t;

//  Starts reading data[0..size).
cart_mpack_t cart_mpack_start (const void *data, size_t size);

//  True when every byte has been read.
bool cart_mpack_done (const cart_mpack_t *r);

//  Reads an array header of at most max elements.
int cart_mpack_array (cart_mpack_t *r, size_t max, size_t *n);

//  Reads a non-negative integer no larger than max (as uint or int).
int cart_mpack_uint (cart_mpack_t *r, uint64_t max, uint64_t *value);

//  Reads a str of 0..max bytes; *text points into the input.
int cart_mpack_str (cart_mpack_t *r, size_t max, const char **text, size_t *len);

//  Reads a bool.
int cart_mpack_bool (cart_mpack_t *r, bool *value);

//  Reads nil (*present = false) or a non-negative integer no larger than
//  max (*present = true).
int cart_mpack_opt_uint (cart_mpack_t *r, uint64_t max, uint64_t *value, bool *present);

//  Reads nil (*text = NULL) or a str of 1..max bytes.
int cart_mpack_opt_str (cart_mpack_t *r, size_t max, const char **text, size_t *len);

//  Takes a nil and returns true when the next object is one; else reads
//  nothing and returns false.
bool cart_mpack_nil (cart_mpack_t *r);

//  Packs a str, a str or nil (text NULL), a bool.
void cart_mpack_pack_str (msgpack_packer *pk, const char *text, size_t len);
void cart_mpack_pack_opt_str (msgpack_packer *pk, const char *text, size_t len);
void cart_mpack_pack_bool (msgpack_packer *pk, bool value);

#endif
