/*  =========================================================================
    cart_ring - jump consistent hashing (Lamping and Veach, "A Fast,
    Minimal Memory, Consistent Hash Algorithm", 2014).

    Why not a ring of virtual nodes. On a ring, a shard's share of the keys
    is the sum of the arcs in front of its V points; its relative spread is
    about 1/sqrt(V). To hold the fullest of 16 shards within 1.10 x the
    mean, V must be near 1,000, and at 10,000 shards that is ten million
    points (over 100 MB) to build and to binary-search on every request.

    Jump hashing gives the properties the service needs with no table:
    - balance: each key lands on each of the S shards with probability 1/S,
      so shares differ only by sampling noise;
    - minimal movement: going from S to S+1 shards, a key either stays or
      moves to the new shard S, and a fraction 1/(S+1) of the keys moves;
    - cost: the loop jumps forward through shard numbers, and the expected
      number of jumps is the harmonic number H(S) ~ ln S + 0.58, so a
      lookup is O(log S), and it touches no memory.

    Its one limit is that shards are the numbers 0..S-1 and can be added or
    removed only at the end. That is how this service names shards, and it
    never removes a shard out of the middle: a shard whose worker is dead
    keeps its keys and answers "unavailable" until a worker serves it again.

    The key is hash_key (customerId), already uniform over 63 bits; the
    loop's linear congruential step spreads it further.
    =========================================================================
*/
#include "cart_ring.h"

#include <assert.h>
#include <stddef.h>

uint32_t
cart_ring_shard_steps (uint64_t key, uint32_t shards, uint32_t *steps)
{
    assert (shards >= 1 && shards <= INT32_MAX);
    int64_t bucket = -1;
    int64_t next = 0;
    uint32_t jumps = 0;
    while (next < (int64_t)shards) {
        bucket = next;
        key = key * 2862933555777941757ULL + 1;
        next = (int64_t)((double)(bucket + 1) *
                         ((double)(1LL << 31) / (double)((key >> 33) + 1)));
        jumps++;
    }
    if (steps)
        *steps = jumps;
    return (uint32_t)bucket;
}

uint32_t
cart_ring_shard (uint64_t key, uint32_t shards)
{
    return cart_ring_shard_steps (key, shards, NULL);
}
