/*  =========================================================================
    cart_idmap - finds a peer by its ROUTER identity: an index over an
    array of records that each begin with a cart_id_t (the broker's
    workers and clients).

    Open addressing with linear probing and backward-shift deletion, so
    that no tombstones build up; the table is sized at twice the records,
    so probes stay short. The hash is seeded at random per map, so that a
    client choosing its own identities cannot aim them at one chain.
    =========================================================================
*/
#ifndef CART_IDMAP_H_INCLUDED
#define CART_IDMAP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "cart_wire.h"

#define CART_IDMAP_NONE UINT32_MAX

typedef struct {
    uint8_t len; //  0: no identity
    uint8_t bytes[CART_IDENTITY_MAX];
} cart_id_t;

typedef struct _cart_idmap_t cart_idmap_t;

//  An index over records[0..capacity), each `stride` bytes and beginning
//  with a cart_id_t.
cart_idmap_t *cart_idmap_new (const void *records, size_t stride, uint32_t capacity);

//  Destroy a map; sets *self_p to NULL.
void cart_idmap_destroy (cart_idmap_t **self_p);

//  The record whose identity is id[0..len), or CART_IDMAP_NONE.
uint32_t cart_idmap_find (cart_idmap_t *self, const void *id, size_t len);

//  Index record `index` under the identity it holds (not indexed yet).
void cart_idmap_insert (cart_idmap_t *self, uint32_t index);

//  Remove record `index` (indexed) from the map.
void cart_idmap_remove (cart_idmap_t *self, uint32_t index);

//  A 64-bit hash of an identity, the same in every map and run (FNV-1a),
//  for remembering an identity without keeping it.
uint64_t cart_id_hash (const void *bytes, size_t len);

//  Copy an identity into a record's cart_id_t (len 1..CART_IDENTITY_MAX).
void cart_id_set (cart_id_t *id, const void *bytes, size_t len);

#endif
