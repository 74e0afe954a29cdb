/*  =========================================================================
    cart_store - a shard's carts on disk: its snapshot, its log, recovery
    at start and compaction while it runs.

    The files of shard K in the data directory (names from cart_log_file):

        shard-K.snap      the newest snapshot (cart_snapshot.h): every cart
                          as of log record `covered`
        shard-K.log.old   the log before the latest rotation, while it is
                          being compacted into a new snapshot
        shard-K.log       the log written now (cart_log.h), locked
        shard-K.lock      the pid of the worker holding the log

    Recovery: under the lock, the snapshot is loaded, then the old log's
    records after it are replayed, then the log's (cart_log_open's
    `after`), through cart_apply. A damaged snapshot or old log stops the
    start (neither is ever torn by a crash: a snapshot is renamed into
    place whole, an old log was complete when it was rotated).

    Compaction: once the log holds more than max (compact_min,
    compact_factor x the snapshot's size) bytes, the worker's thread
    rotates the log (cart_log_rotate: a link, an open, a rename; a few
    system calls) and a thread of the store builds the next snapshot
    from the previous one and the old log, in a partition of its own,
    writes it (shard-K.snap.new, fsync, rename, fsync of the directory)
    and removes the old log. The worker's partition is never touched and
    the worker never waits: requests and heartbeats go on. A crash at any
    point loses nothing: until the new snapshot has its name, the previous
    snapshot and the old log hold everything; after, the old log's records
    are all covered and are skipped. At most CART_COMPACT_PARALLEL
    compactions run at once in a process (each needs the memory of its
    shard's carts once more).

        cart_store_t *store = cart_store_open (&options, shard, partition, &error);
        cart_log_append (cart_store_log (store), body, size);
        cart_log_commit (cart_store_log (store), &error);   //  then reply
        cart_store_tick (store);   //  now and then: compaction
        cart_store_close (&store);
    =========================================================================
*/
#ifndef CART_STORE_H_INCLUDED
#define CART_STORE_H_INCLUDED

#include <stdio.h>

#include "cart_log.h"
#include "cart_partition.h"
#include "cart_snapshot.h"

#define CART_COMPACT_MIN      (64ULL * 1024 * 1024) //  default compact_min, bytes
#define CART_COMPACT_FACTOR   2.0                   //  default compact_factor
#define CART_COMPACT_PARALLEL 1     //  compactions running at once in a process
#define CART_COMPACT_RETRY_MS 10000 //  after a failed compaction

typedef struct {
    cart_log_options_t log; //  directory, fsync policy, repair, verbose
    uint32_t shards;        //  the cluster's shard count
    uint64_t compact_min;   //  0: CART_COMPACT_MIN
    double compact_factor;  //  0: CART_COMPACT_FACTOR
    int retry_ms;           //  after a failed compaction; 0: CART_COMPACT_RETRY_MS
} cart_store_options_t;

typedef struct {
    cart_snapshot_info_t snapshot; //  loaded at open, then the latest written
    uint64_t replayed;             //  log records replayed at open (both logs)
    uint64_t compactions;          //  finished since open
    uint64_t failures;             //  compactions that failed since open
    double seconds;                //  the open took
} cart_store_stats_t;

typedef struct _cart_store_t cart_store_t;

//  Locks shard's files in options->log.dir and rebuilds part (empty) from
//  them. Returns the store, or NULL with *error set.
cart_store_t *cart_store_open (const cart_store_options_t *options, uint32_t shard,
                               cart_partition_t *part, const char **error);

//  The shard's log, for cart_log_append, _commit, _discard.
cart_log_t *cart_store_log (cart_store_t *self);

//  Finishes a compaction that is done and starts one that is due. Cheap;
//  the worker calls it after each commit and when idle, never while a
//  commit of the log is in flight (cart_log_seal). Never blocks on the
//  compaction.
void cart_store_tick (cart_store_t *self);

//  True while a compaction runs.
bool cart_store_compacting (cart_store_t *self);

const cart_store_stats_t *cart_store_stats (cart_store_t *self);

//  Stops a compaction in progress (what it wrote is removed; nothing is
//  lost), closes the log and sets *self_p to NULL.
void cart_store_close (cart_store_t **self_p);

//  Checks shard's files in dir without taking its lock or changing
//  anything, and reports what they hold (cartctl check-data). Writes one
//  line per file and a summary to out. Returns 0 when every file is
//  whole, -1 (with *error set to the first fault) when not.
int cart_store_check (const char *dir, uint32_t shard, uint32_t shards, FILE *out,
                      const char **error);

#endif
