/*  =========================================================================
    cart_snapshot - a shard's carts written whole to one file, so that its
    log can start again from empty (compaction, cart_store.h).

    A snapshot is a file of records in the log's framing (cart_log.h: a
    length, a CRC-32 and a number, counted from 1 in each file):

        record 1      the head, 40 bytes: "CARTSNAP", then big-endian
                      u32 version (2), u32 shard, u32 the cluster's shard
                      count, u32 zero, u64 the last log sequence number
                      the snapshot holds ("covered"), u64 the partition's
                      change count (cart_partition.h, "Versions")
        records 2..   one cart each: 'C', u64 its version, u32 when it
                      last changed (seconds since the epoch), then a GET
                      reply body (PROTOCOL.md 4.2): [customerId, [item,
                      ...]], items in cart order
        then          one idempotency key each (cart_idem.h), oldest
                      first: 'K', u16 status, u64 version, u64 the
                      request's fingerprint, u64 when it was applied, u8
                      length and the customerId, u8 length and the key,
                      then the reply body
        last record   the end, 32 bytes: "CARTEND\0", u64 carts, u64
                      items, u64 keys

    Version 1 (a 32-byte head without the change count, carts without
    their prefix, no keys, a 24-byte end) is still read: its carts take
    versions in the order they are loaded, and the time of the load.

    It is written as DIR/shard-K.snap.new, synced, renamed to
    DIR/shard-K.snap and the directory synced: a snapshot under its name
    is whole, and any damage to it is refused (there is no torn tail to
    cut: restore the shard from a backup).
    =========================================================================
*/
#ifndef CART_SNAPSHOT_H_INCLUDED
#define CART_SNAPSHOT_H_INCLUDED

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cart_partition.h"

#define CART_SNAPSHOT_VERSION 2

typedef struct {
    bool present;     //  a snapshot was found
    uint64_t covered; //  the last log sequence number it holds
    uint64_t carts;
    uint64_t items;
    uint64_t bytes; //  its size
} cart_snapshot_info_t;

//  Writes part as shard's snapshot in dir, covering log records up to
//  `covered`, and puts it in place of the previous one. Polls *stop (when
//  not NULL) as it goes, and gives up when it is set. Returns 0, or -1 with
//  *error set; the previous snapshot is untouched then.
int cart_snapshot_write (const char *dir, uint32_t shard, uint32_t shards,
                         uint64_t covered, cart_partition_t *part,
                         const atomic_bool *stop, cart_snapshot_info_t *info,
                         const char **error);

//  Loads shard's snapshot from dir into part (empty), checking every
//  record, the head against shard and shards, and every cart's shard.
//  Returns 0 (info->present false when there is none), or -1 with *error
//  set, naming the file and what is wrong.
int cart_snapshot_load (const char *dir, uint32_t shard, uint32_t shards,
                        cart_partition_t *part, cart_snapshot_info_t *info,
                        const char **error);

//  The same from a file opened with cart_log_open_file (fd -1: none; path
//  names it in messages).
int cart_snapshot_load_fd (int fd, const char *path, uint32_t shard, uint32_t shards,
                           cart_partition_t *part, cart_snapshot_info_t *info,
                           const char **error);

#endif
