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

#define CART_LOG_HEAD 16
//  A request body is at most CART_REQUEST_WIRE_MAX; a snapshot's record (a
//  whole cart) at most a cart reply, CART_BODY_WIRE_MAX
#define CART_LOG_RECORD_MAX (1024 * 1024)
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

//  What an open found, and what was written since.
typedef struct {
    uint64_t records; //  replayed at open, then committed since (this file)
    uint64_t bytes;   //  of the log after any cut, then committed since
    uint64_t cut_at;  //  the offset a torn tail was cut at, or 0
    uint64_t cut_bytes;
} cart_log_stats_t;

//  Makes dir if missing and checks that it holds the data of a cluster of
//  `shards` shards (DIR/cluster), recording it when new: the same logs
//  under another shard count would put every cart in the wrong shard.
//  Returns 0, or -1 with *error set.
int cart_log_claim_dir (const char *dir, uint32_t shards, const char **error);

//  Reads the shard count recorded in dir. Returns 0, 1 when dir has none,
//  or -1 with *error set.
int cart_log_cluster (const char *dir, uint32_t *shards, const char **error);

//  The files of a shard in a data directory (DIR/shard-K.SUFFIX).
typedef enum {
    CART_FILE_LOG,          //  .log: the log written now
    CART_FILE_OLD_LOG,      //  .log.old: the log before a rotation, until compacted
    CART_FILE_NEW_LOG,      //  .log.new: a rotation's next log, for a moment
    CART_FILE_SNAPSHOT,     //  .snap: the newest snapshot (cart_snapshot.h)
    CART_FILE_NEW_SNAPSHOT, //  .snap.new: a snapshot being written
    CART_FILE_LOCK          //  .lock: the pid of the worker holding the log
} cart_file_t;

//  Writes the path of a shard's file into path[size]. Returns 0, or -1
//  when it does not fit.
int cart_log_file (char *path, size_t size, const char *dir, uint32_t shard,
                   cart_file_t which);

//  Opens (or creates) shard's log in options->dir, takes its lock and
//  replays it through replay (arg). `after` is the sequence number up to
//  which changes are already applied (from a snapshot and an older log):
//  the log's records up to it are checked and skipped, and its first
//  record may not leave a gap after it. Returns the log, or NULL with
//  *error set (cart_types.h): the directory cannot be made or written,
//  another process holds the shard (its pid named), a record in the middle
//  is damaged (file and offset named), records are missing, or replay
//  refused a record.
cart_log_t *cart_log_open (const cart_log_options_t *options, uint32_t shard,
                           uint64_t after, cart_log_replay_fn *replay, void *arg,
                           const char **error);

//  cart_log_open in two steps, for a caller that reads a snapshot and an
//  older log under the lock first: cart_log_lock takes the lock (and
//  makes the log if new) and reads nothing; cart_log_replay reads the log
//  through as cart_log_open does. A log that is locked but not replayed
//  takes no appends; close it with cart_log_close.
cart_log_t *cart_log_lock (const cart_log_options_t *options, uint32_t shard,
                           const char **error);
int cart_log_replay (cart_log_t *self, const cart_log_options_t *options, uint64_t after,
                     cart_log_replay_fn *replay, void *arg, const char **error);

//  The sequence number of the last record written or buffered.
uint64_t cart_log_sequence (cart_log_t *self);

//  Reading a file of records without opening it as a log: an older log, a
//  snapshot, or anything for a check.
typedef struct {
    //  In
    uint64_t after;             //  records up to this number are checked, not replayed
    cart_log_replay_fn *replay; //  or NULL: check only
    cart_log_replay_fn *check;  //  or NULL: called for each record skipped
    void *arg;                  //  (up to after), to look at without applying
    //  Out
    uint64_t first, last; //  the first and last record's numbers; 0 if none
    uint64_t records;     //  replayed
    uint64_t skipped;     //  up to after
    uint64_t bytes;       //  of whole, valid records from the start
    uint64_t size;        //  of the file
    const char *fault;    //  the first damage (a literal), or NULL
    uint64_t fault_at;    //  its offset
    bool torn;            //  the damage looks like a torn last write
    bool refused;         //  replay refused the record at fault_at
} cart_log_scan_t;

//  Reads path through, stopping at the first damage (scan->fault).
//  Returns 0, 1 when there is no such file, or -1 with *error set when it
//  cannot be read or replay refused a record.
int cart_log_scan (const char *path, cart_log_scan_t *scan, const char **error);

//  The same on a file opened with cart_log_open_file (fd -1: none; path
//  names it in messages), for a reader that must hold several files of a
//  shard at once while a worker may rename them.
int cart_log_scan_fd (int fd, const char *path, cart_log_scan_t *scan,
                      const char **error);

//  Opens path to read. Returns the descriptor, -1 when there is no such
//  file, or -2 with *error set.
int cart_log_open_file (const char *path, const char **error);

//  Starts a new log: the current one is given a second name
//  (shard-K.log.old) and a new empty file takes shard-K.log, locked, in
//  one rename (under CART_FSYNC_ALWAYS the directory is synced before
//  anything more is acknowledged; if that fails, the log fails). Records
//  buffered go into the new log; nothing may be sealed. Sequence numbers
//  go on. *old_fd gets the old log's descriptor, for cart_log_retire, and
//  *covered the number of its last record. Returns 0, or -1 with *error
//  set (the log is then as it was).
int cart_log_rotate (cart_log_t *self, uint32_t shard, int *old_fd, uint64_t *covered,
                     const char **error);

//  Syncs a rotated log (unless the policy synced it already) and the
//  directory, then closes it. For a thread other than the log's. Returns
//  0, or -1 with *error set (it is closed either way).
int cart_log_retire (int fd, cart_fsync_t policy, const char *dir, const char **error);

//  fsync of a directory (a rename or new name made durable). Returns 0, or
//  -1 with *error set.
int cart_log_sync_dir (const char *dir, const char **error);

//  A new file of records at path (truncated if there; not locked; numbered
//  from 1), written with cart_log_append and cart_log_commit, then
//  cart_log_finish: the way a snapshot is written. Returns NULL with
//  *error set when it cannot be made.
cart_log_t *cart_log_create (const char *path, const char **error);

//  Commits, fsyncs and closes a file made by cart_log_create. Returns 0, or
//  -1 with *error set. Sets *self_p to NULL either way.
int cart_log_finish (cart_log_t **self_p, const char **error);

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

//  A commit in two halves, for a worker that goes on taking requests while
//  another thread writes: cart_log_seal sets the buffered records aside
//  (returns false when there were none); cart_log_write_sealed, from any
//  one thread, writes them as cart_log_commit does, and syncs them when
//  `sync` (else the caller syncs them, with cart_log_sync_all). Between
//  the two, the log's thread may append (to a new buffer) but call
//  nothing else of this log. Nothing may be sealed already.
bool cart_log_seal (cart_log_t *self);
int cart_log_write_sealed (cart_log_t *self, bool sync, const char **error);

//  Under CART_FSYNC_ALWAYS, makes what was written to logs[0..n) (all in
//  one directory) durable at once, with one syncfs. Returns 0, or -1 with
//  *error set, every one of the logs failed then.
int cart_log_sync_all (cart_log_t **logs, size_t n, const char **error);

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
