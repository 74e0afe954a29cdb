/*  =========================================================================
    cart_log - a shard's append-only log: every change a worker applies to
    a shard is appended here before its reply is sent, and replayed at
    start (the way Redis's append-only file works).

    The log of shard K is DIR/shard-K.log; one directory may hold many
    shards' logs. A worker holds a lock (flock) on its log for as long as
    it is open, with its pid written beside it in DIR/shard-K.lock, so that
    a second worker pointed at the same files refuses to start and names
    the holder. A shard costs one file descriptor.

    A record is a 16-byte head and a payload (the request body as applied):

        offset  size  field
             0     4  payload length, big-endian, 1 .. CART_LOG_RECORD_MAX
             4     4  CRC-32 (zlib) of bytes 8 .. end of the payload
             8     8  sequence number, big-endian, one more than the last
            16     n  payload

    so that a torn record (a crash in the middle of a write) or a damaged
    one is always detected. At open, the log is read through: damage in
    its last CART_LOG_TAIL_MAX bytes (what one commit writes) with no
    valid record after it is a torn tail and is cut off (the offset is
    logged); any other damage stops the open with the file and offset, and
    `repair` cuts the log there after copying the original beside it
    (shard-K.log.damaged-OFFSET).

    Appends are buffered; cart_log_commit writes what is buffered with one
    write () and, under CART_FSYNC_ALWAYS, one fdatasync () (group commit).
    Under CART_FSYNC_EVERYSEC a thread of this module calls fdatasync on
    every open log about once a second; under CART_FSYNC_NO the kernel
    decides.

        cart_log_t *log = cart_log_open (&options, 3, replay, partition, &error);
        cart_log_append (log, body, size);
        ...
        if (cart_log_commit (log, &error))   //  then send the replies
            ...  stop serving: the changes may not be on disk
        cart_log_close (&log);
    =========================================================================
*/
#ifndef CART_LOG_H_INCLUDED
#define CART_LOG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CART_LOG_HEAD       16
#define CART_LOG_RECORD_MAX (64 * 1024) //  a request body is a few hundred bytes
//  The most one commit writes: a batch of 256 requests of at most 4 KiB
//  each. Damage within this distance of the end is a torn tail.
#define CART_LOG_TAIL_MAX (256 * (CART_LOG_HEAD + 4096))

typedef enum {
    CART_FSYNC_ALWAYS,   //  fdatasync before any reply of the batch is sent
    CART_FSYNC_EVERYSEC, //  fdatasync about once a second, from a thread
    CART_FSYNC_NO        //  never; the kernel writes when it will
} cart_fsync_t;

typedef struct {
    const char *dir;    //  where the shards' files live; made if missing
    cart_fsync_t fsync; //  the policy
    bool repair;        //  cut a damaged log instead of refusing to start
    bool verbose;
} cart_log_options_t;

typedef struct _cart_log_t cart_log_t;

//  Called for each valid record at open, in order. Returns 0, or -1 when
//  the payload cannot be applied (then the open fails, naming the record).
typedef int (cart_log_replay_fn) (void *arg, const void *payload, size_t size);

//  What an open found.
typedef struct {
    uint64_t records; //  replayed
    uint64_t bytes;   //  of the log after any cut
    uint64_t cut_at;  //  the offset a torn tail was cut at, or 0
    uint64_t cut_bytes;
} cart_log_stats_t;

//  Makes dir if missing and checks that it holds the data of a cluster of
//  `shards` shards (DIR/cluster), recording it when new: the same logs
//  under another shard count would put every cart in the wrong shard.
//  Returns 0, or -1 with *error set.
int cart_log_claim_dir (const char *dir, uint32_t shards, const char **error);

//  Opens (or creates) shard's log in options->dir, takes its lock and
//  replays it through replay (arg). Returns the log, or NULL with *error
//  set (cart_types.h): the directory cannot be made or written, another
//  process holds the shard (its pid named), a record in the middle is
//  damaged (file and offset named), or replay refused a record.
cart_log_t *cart_log_open (const cart_log_options_t *options, uint32_t shard,
                           cart_log_replay_fn *replay, void *arg, const char **error);

//  What the open found.
const cart_log_stats_t *cart_log_stats (cart_log_t *self);

//  Buffers a record of payload[0..size), 1..CART_LOG_RECORD_MAX bytes.
//  Returns 0, or -1 when the size is out of range.
int cart_log_append (cart_log_t *self, const void *payload, size_t size);

//  Drops the records buffered and not yet written (their changes were
//  answered as failed).
void cart_log_discard (cart_log_t *self);

//  True when records are buffered and not yet written.
bool cart_log_pending (cart_log_t *self);

//  Writes the buffered records with one write () and, under
//  CART_FSYNC_ALWAYS, fdatasync. Returns 0, or -1 with *error set when
//  the write or the sync failed: then nothing buffered may be taken as
//  written, and the log refuses every later commit.
int cart_log_commit (cart_log_t *self, const char **error);

//  Commits what is buffered (errors are logged), syncs, releases the lock
//  and closes. Sets *self_p to NULL.
void cart_log_close (cart_log_t **self_p);

//  Parses "always", "everysec" or "no". Returns 0 or -1.
int cart_fsync_parse (const char *text, cart_fsync_t *policy);

//  The policy's name.
const char *cart_fsync_name (cart_fsync_t policy);

#endif
