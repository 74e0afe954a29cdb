/*  =========================================================================
    cart_control - the msgpack bodies of the bus's control messages
    (PROTOCOL.md section 4.3 to 4.5): a worker's READY, the load it reports
    in its heartbeats, and the broker's STATS.

    Decoders follow cart_body.h's rules: 0 or -1 with *error set, nothing
    allocated, every count bounded by the bytes there are.
    =========================================================================
*/
#ifndef CART_CONTROL_H_INCLUDED
#define CART_CONTROL_H_INCLUDED

#include <msgpack.h>

#include "cart_types.h"

//  --------------------------------------------------------------------------
//  READY: [cluster shard count, heartbeat ms, [shard, ...]]

typedef struct {
    uint32_t shards;       //  the cluster's shard count, as the worker was told
    uint32_t heartbeat_ms; //  the worker's heartbeat interval
    size_t n_shards;       //  shards it serves, 1..CART_SHARDS_MAX
    //  Private: where the list starts
    const uint8_t *cursor;
    const uint8_t *limit;
} cart_ready_t;

//  Append a READY body.
void cart_ready_encode (msgpack_packer *pk, uint32_t shards, uint32_t heartbeat_ms,
                        const uint32_t *list, size_t n_shards);

//  Decode a READY body, checking its shape and that every listed shard is
//  a number below CART_SHARDS_MAX (below the cluster's count, and none
//  twice, are the broker's checks). Returns 0 or -1. The shards are then
//  read with cart_ready_next.
int cart_ready_decode (const void *data, size_t size, cart_ready_t *ready,
                       const char **error);

//  Reads a decoded READY's shard i in order: call for i = 0..n_shards-1.
uint32_t cart_ready_next (cart_ready_t *ready);

//  --------------------------------------------------------------------------
//  Load (worker heartbeat) and stats (broker reply)

//  One shard's figures, as a worker reports them (load: shard, carts,
//  items, expired) or the broker sees them (stats: all fields).
typedef struct {
    uint32_t shard;
    bool live;    //  stats: a worker serves it and answers
    bool stalled; //  stats: its worker heartbeats but lets requests expire
    uint64_t carts;
    uint64_t items;
    uint64_t expired;    //  carts its worker removed for expiry since it started
    uint64_t requests;   //  stats only
    int64_t load_age_ms; //  stats only: how old carts, items and expired are
                         //  (ms since the broker received them); -1: none yet
} cart_shard_stats_t;

//  The longest load age a stats entry carries (about 24 days); older is
//  sent as this
#define CART_LOAD_AGE_MAX_MS ((int64_t)INT32_MAX)

//  A decoded list of shard figures, read one entry at a time.
typedef struct {
    uint32_t shards; //  stats: the cluster's shard count
    size_t n_entries;
    //  Private
    const uint8_t *cursor;
    const uint8_t *limit;
    size_t entries_read;
    bool with_broker_fields;
} cart_stats_list_t;

//  Append a load body's head (n entries follow).
void cart_load_encode (msgpack_packer *pk, size_t n_entries);

//  Append one load entry.
void cart_load_encode_entry (msgpack_packer *pk, const cart_shard_stats_t *entry);

//  Append a stats body's head (n entries follow).
void cart_stats_encode (msgpack_packer *pk, uint32_t shards, size_t n_entries);

//  Append one stats entry.
void cart_stats_encode_entry (msgpack_packer *pk, const cart_shard_stats_t *entry);

//  Decode the head of a load body. Returns 0 or -1.
int cart_load_decode (const void *data, size_t size, cart_stats_list_t *list,
                      const char **error);

//  Decode the head of a stats body. Returns 0 or -1.
int cart_stats_decode (const void *data, size_t size, cart_stats_list_t *list,
                       const char **error);

//  Read the next entry of a load or stats list. Returns 1, 0 after the last
//  (the body must then have been read exactly), or -1 with *error set.
int cart_stats_next (cart_stats_list_t *list, cart_shard_stats_t *entry,
                     const char **error);

#endif
