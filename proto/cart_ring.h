/*  =========================================================================
    cart_ring - consistent key routing: which of S shards owns a key.

    Every part of the service (front, broker, worker, cartctl) asks this
    one function, so they all agree. See cart_ring.c for why it is jump
    consistent hashing rather than a ring of virtual nodes.
    =========================================================================
*/
#ifndef CART_RING_H_INCLUDED
#define CART_RING_H_INCLUDED

#include <stdint.h>

//  Returns the shard, 0..shards-1, that owns key. shards is 1..2^31-1 (the
//  service uses 1..CART_SHARDS_MAX). O(log shards) steps, no allocation,
//  thread-safe.
uint32_t cart_ring_shard (uint64_t key, uint32_t shards);

//  The same, and sets *steps to the number of jumps taken (for the tests
//  that check the O(log shards) bound).
uint32_t cart_ring_shard_steps (uint64_t key, uint32_t shards, uint32_t *steps);

#endif
