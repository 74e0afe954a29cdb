/*  =========================================================================
    cart_control - READY, load and stats bodies.
    =========================================================================
*/
#include "cart_control.h"

#include <assert.h>
#include <string.h>

#include "cart_mpack.h"

#define FAIL(text) CART_FAIL (error, text)

//  --------------------------------------------------------------------------
//  READY

void
cart_ready_encode (msgpack_packer *pk, uint32_t shards, uint32_t heartbeat_ms,
                   const uint32_t *list, size_t n_shards)
{
    msgpack_pack_array (pk, 3);
    msgpack_pack_uint32 (pk, shards);
    msgpack_pack_uint32 (pk, heartbeat_ms);
    msgpack_pack_array (pk, n_shards);
    for (size_t i = 0; i < n_shards; i++)
        msgpack_pack_uint32 (pk, list[i]);
}

int
cart_ready_decode (const void *data, size_t size, cart_ready_t *ready, const char **error)
{
    memset (ready, 0, sizeof (*ready));
    cart_mpack_t r = cart_mpack_start (data, size);
    size_t fields;
    uint64_t shards, heartbeat;
    if (cart_mpack_array (&r, 3, &fields) || fields != 3 ||
        cart_mpack_uint (&r, CART_SHARDS_MAX, &shards) || shards < 1 ||
        cart_mpack_uint (&r, UINT32_MAX, &heartbeat) || heartbeat < 1 ||
        cart_mpack_array (&r, CART_SHARDS_MAX, &ready->n_shards) || ready->n_shards < 1)
        FAIL ("READY is not [shard count, heartbeat ms, [1 to 10000 shards]]");
    ready->shards = (uint32_t)shards;
    ready->heartbeat_ms = (uint32_t)heartbeat;
    ready->cursor = r.p;
    ready->limit = r.end;
    //  Check the whole list now, so that a READY is taken whole or not at all
    uint64_t shard;
    for (size_t i = 0; i < ready->n_shards; i++)
        if (cart_mpack_uint (&r, CART_SHARDS_MAX - 1, &shard))
            FAIL ("READY lists a shard that is not a number below 10000");
    if (!cart_mpack_done (&r))
        FAIL ("READY has bytes after its end");
    return 0;
}

uint32_t
cart_ready_next (cart_ready_t *ready)
{
    cart_mpack_t r = {ready->cursor, ready->limit};
    uint64_t shard = 0;
    int rc = cart_mpack_uint (&r, CART_SHARDS_MAX - 1, &shard);
    assert (rc == 0); //  checked whole by cart_ready_decode
    ready->cursor = r.p;
    return (uint32_t)shard;
}

//  --------------------------------------------------------------------------
//  Load and stats: an entry's fields, in PROTOCOL.md 4.4 and 4.5's order,
//  are written by cart_load_encode_entry or cart_stats_encode_entry and
//  read by s_read_stats_entry

#define LOAD_FIELDS  4 //  shard, carts, items, expired
#define STATS_FIELDS 8 //  shard, live, stalled, carts, items, requests, expired, age

void
cart_load_encode (msgpack_packer *pk, size_t n_entries)
{
    msgpack_pack_array (pk, n_entries);
}

void
cart_load_encode_entry (msgpack_packer *pk, const cart_shard_stats_t *entry)
{
    msgpack_pack_array (pk, LOAD_FIELDS);
    msgpack_pack_uint32 (pk, entry->shard);
    msgpack_pack_uint64 (pk, entry->carts);
    msgpack_pack_uint64 (pk, entry->items);
    msgpack_pack_uint64 (pk, entry->expired);
}

void
cart_stats_encode (msgpack_packer *pk, uint32_t shards, size_t n_entries)
{
    msgpack_pack_array (pk, 2);
    msgpack_pack_uint32 (pk, shards);
    msgpack_pack_array (pk, n_entries);
}

void
cart_stats_encode_entry (msgpack_packer *pk, const cart_shard_stats_t *entry)
{
    msgpack_pack_array (pk, STATS_FIELDS);
    msgpack_pack_uint32 (pk, entry->shard);
    cart_mpack_pack_bool (pk, entry->live);
    cart_mpack_pack_bool (pk, entry->stalled);
    msgpack_pack_uint64 (pk, entry->carts);
    msgpack_pack_uint64 (pk, entry->items);
    msgpack_pack_uint64 (pk, entry->requests);
    msgpack_pack_uint64 (pk, entry->expired);
    if (entry->load_age_ms < 0)
        msgpack_pack_nil (pk);
    else
        msgpack_pack_uint64 (pk, (uint64_t)(entry->load_age_ms < CART_LOAD_AGE_MAX_MS
                                                ? entry->load_age_ms
                                                : CART_LOAD_AGE_MAX_MS));
}

static void
s_list_start (cart_stats_list_t *list, cart_mpack_t *r, bool with_broker_fields)
{
    list->cursor = r->p;
    list->limit = r->end;
    list->with_broker_fields = with_broker_fields;
}

int
cart_load_decode (const void *data, size_t size, cart_stats_list_t *list,
                  const char **error)
{
    memset (list, 0, sizeof (*list));
    cart_mpack_t r = cart_mpack_start (data, size);
    if (cart_mpack_array (&r, CART_SHARDS_MAX, &list->n_entries))
        FAIL ("load is not an array of at most 10000 entries");
    s_list_start (list, &r, false);
    return 0;
}

int
cart_stats_decode (const void *data, size_t size, cart_stats_list_t *list,
                   const char **error)
{
    memset (list, 0, sizeof (*list));
    cart_mpack_t r = cart_mpack_start (data, size);
    size_t fields;
    uint64_t shards;
    if (cart_mpack_array (&r, 2, &fields) || fields != 2 ||
        cart_mpack_uint (&r, CART_SHARDS_MAX, &shards) || shards < 1 ||
        cart_mpack_array (&r, CART_SHARDS_MAX, &list->n_entries))
        FAIL ("stats is not [shard count, [entries]]");
    list->shards = (uint32_t)shards;
    s_list_start (list, &r, true);
    return 0;
}

static int
s_read_stats_entry (cart_mpack_t *r, bool with_broker_fields, cart_shard_stats_t *entry)
{
    size_t fields;
    uint64_t shard, age;
    bool aged;
    memset (entry, 0, sizeof (*entry));
    entry->load_age_ms = -1;
    if (cart_mpack_array (r, STATS_FIELDS, &fields) ||
        fields != (with_broker_fields ? STATS_FIELDS : LOAD_FIELDS) ||
        cart_mpack_uint (r, CART_SHARDS_MAX - 1, &shard))
        return -1;
    entry->shard = (uint32_t)shard;
    if (with_broker_fields &&
        (cart_mpack_bool (r, &entry->live) || cart_mpack_bool (r, &entry->stalled)))
        return -1;
    if (cart_mpack_uint (r, UINT64_MAX, &entry->carts) ||
        cart_mpack_uint (r, UINT64_MAX, &entry->items))
        return -1;
    if (!with_broker_fields)
        return cart_mpack_uint (r, UINT64_MAX, &entry->expired);
    if (cart_mpack_uint (r, UINT64_MAX, &entry->requests) ||
        cart_mpack_uint (r, UINT64_MAX, &entry->expired) ||
        cart_mpack_opt_uint (r, (uint64_t)CART_LOAD_AGE_MAX_MS, &age, &aged))
        return -1;
    entry->load_age_ms = aged ? (int64_t)age : -1;
    return 0;
}

int
cart_stats_next (cart_stats_list_t *list, cart_shard_stats_t *entry, const char **error)
{
    cart_mpack_t r = {list->cursor, list->limit};
    if (list->entries_read == list->n_entries) {
        if (!cart_mpack_done (&r))
            FAIL ("stats body has bytes after its end");
        return 0;
    }
    if (s_read_stats_entry (&r, list->with_broker_fields, entry))
        FAIL ("stats entry has a missing, ill-typed or out-of-range field");
    list->cursor = r.p;
    list->entries_read++;
    return 1;
}
