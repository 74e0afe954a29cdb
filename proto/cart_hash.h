/*  =========================================================================
    cart_hash - the key of a customer, as every part of the service and the
    earlier service compute it.

    hash_key (id) = SHA-1 of the id's UTF-8 bytes, read as one big-endian
    160-bit integer, modulo 2^63: the digest's last 8 bytes, big-endian,
    with the top bit cleared. Example: hash_key ("jea-265") =
    938870058641657986.
    =========================================================================
*/
#ifndef CART_HASH_H_INCLUDED
#define CART_HASH_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  Returns hash_key of the byte range data[0..size). Thread-safe.
uint64_t cart_hash_key (const void *data, size_t size);

//  Frees OpenSSL's state for the calling thread. A thread that hashed calls
//  it last thing: czmq's actor threads may still be exiting (and running
//  OpenSSL's thread-exit clean-up) when the process itself exits.
void cart_hash_thread_end (void);

//  Returns hash_key of a NUL-terminated string.
uint64_t cart_hash_key_str (const char *string);

#endif
