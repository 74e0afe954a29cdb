/*  =========================================================================
    cart_store - a shard's snapshot and log: recovery and compaction (see
    cart_store.h).

    Why compaction rebuilds from files rather than copying the live
    partition: the worker's partition changes under every request, and a
    consistent copy of it would stop the worker for as long as the copy
    takes (hundreds of milliseconds at millions of carts), or need
    copy-on-write pages (fork, which a threaded process cannot use
    safely). The previous snapshot and the old log are immutable once the
    log is rotated, so a second thread can replay them into a partition of
    its own, exactly as recovery would, while the worker goes on.
    =========================================================================
*/
#define _GNU_SOURCE //  pthread_tryjoin_np
#include "cart_store.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>

#include "cart_apply.h"
#include "cart_hash.h"
#include "cart_ring.h"

//  A compaction, run by its own thread
typedef struct {
    pthread_t thread;
    bool running;     //  the thread exists (joined by the worker's thread)
    atomic_bool done; //  the thread has finished
    atomic_bool stop; //  the store is closing: give up
    int old_fd;       //  the rotated log's descriptor, or -1
    uint64_t covered; //  the old log's last record: what the snapshot holds
    bool failed;
    char error[600];
    cart_snapshot_info_t made;
} compaction_t;

struct _cart_store_t {
    cart_store_options_t options;
    char dir[512];
    uint32_t shard;
    cart_partition_t *part; //  the worker's, filled at open
    cart_log_t *log;
    bool old_log;      //  shard-K.log.old exists and is not yet compacted
    uint64_t old_last; //  its last record, as found at open
    compaction_t job;
    int64_t retry_at; //  after a failure, no new compaction before (ms)
    cart_store_stats_t stats;
    char why[300]; //  why a record could not be applied
};

//  Compactions running in this process
static atomic_int s_running;

static int64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static bool
s_take_slot (void)
{
    int running = atomic_load (&s_running);
    while (running < CART_COMPACT_PARALLEL)
        if (atomic_compare_exchange_weak (&s_running, &running, running + 1))
            return true;
    return false;
}

//  --------------------------------------------------------------------------
//  Replay: a log's records into a partition

typedef struct {
    cart_partition_t *part;
    uint32_t shard;
    uint32_t shards;
    char *why;               //  [300]: why a record was refused
    const atomic_bool *stop; //  a compaction's: give up when set (or NULL)
    uint64_t count;
} replay_t;

static int
s_replay (void *arg, const void *payload, size_t size)
{
    replay_t *replay = (replay_t *)arg;
    const char *error = NULL;
    if (replay->stop && ++replay->count % 4096 == 0 && atomic_load (replay->stop)) {
        snprintf (replay->why, 300, "stopped");
        return -1;
    }
    if (cart_apply_record (replay->part, payload, size, replay->shard, replay->shards,
                           &error) == 0)
        return 0;
    snprintf (replay->why, 300, "%s", error);
    return -1;
}

//  check-data's look at a record it skips (already in the snapshot): a
//  change of this shard, decoded but not applied.
static int
s_check_skipped (void *arg, const void *payload, size_t size)
{
    replay_t *replay = (replay_t *)arg;
    const char *error = NULL;
    if (cart_apply_record_check (payload, size, replay->shard, replay->shards, &error) ==
        0)
        return 0;
    snprintf (replay->why, 300, "%s", error);
    return -1;
}

//  Adds to a refused record's message why replay refused it.
static int
s_scan_result (replay_t *replay, int rc, const char **error)
{
    if (rc == -1 && replay && *replay->why)
        *error = cart_errorf ("%s: %s", *error, replay->why); //  it may build on itself
    return rc;
}

//  Scans one of shard's files, replaying its records after scan->after
//  into replay->part (replay may be NULL: check only). Returns as
//  cart_log_scan does, with the reason of a refused record in *error.
static int
s_scan (const char *dir, uint32_t shard, cart_file_t which, replay_t *replay,
        cart_log_scan_t *scan, char *path, const char **error)
{
    cart_log_file (path, 520, dir, shard, which);
    scan->replay = replay ? s_replay : NULL;
    scan->arg = replay;
    return s_scan_result (replay, cart_log_scan (path, scan, error), error);
}

//  Replays the old log (if any) into replay->part after `after`. Returns
//  0 (*present says whether there is one) or -1 with *error set.
static int
s_replay_old (const char *dir, uint32_t shard, replay_t *replay, cart_log_scan_t *scan,
              bool *present, const char **error)
{
    char path[520];
    int rc = s_scan (dir, shard, CART_FILE_OLD_LOG, replay, scan, path, error);
    *present = rc != 1;
    if (rc == 0 && scan->fault) {
        *error = cart_errorf ("'%s' is damaged at offset %llu (%s); a rotated log is "
                              "complete when it is rotated, so this is not a crash of "
                              "the worker: restore the shard from a backup",
                              path, (unsigned long long)scan->fault_at, scan->fault);
        return -1;
    }
    return rc == -1 ? -1 : 0;
}

//  The last record number that scan has seen, or its `after`.
static uint64_t
s_last (const cart_log_scan_t *scan)
{
    return scan->last > scan->after ? scan->last : scan->after;
}

//  --------------------------------------------------------------------------
//  Compaction, in its own thread

static int
s_compact_run (cart_store_t *self, const char **error)
{
    compaction_t *job = &self->job;
    if (job->old_fd != -1) {
        int fd = job->old_fd;
        job->old_fd = -1;
        if (cart_log_retire (fd, self->options.log.fsync, self->dir, error))
            return -1;
    }
    cart_partition_t *part = cart_partition_new ();
    char why[300] = "";
    replay_t replay = {part, self->shard, self->options.shards, why, &self->job.stop, 0};
    cart_snapshot_info_t info;
    bool present;
    int rc = cart_snapshot_load (self->dir, self->shard, self->options.shards, part,
                                 &info, error);
    cart_log_scan_t scan = {.after = info.covered};
    if (rc == 0)
        rc = s_replay_old (self->dir, self->shard, &replay, &scan, &present, error);
    if (rc == 0 && s_last (&scan) != job->covered) {
        *error = cart_errorf ("the rotated log of shard %u ends at record %llu, not %llu",
                              self->shard, (unsigned long long)s_last (&scan),
                              (unsigned long long)job->covered);
        rc = -1;
    }
    //  Already covered (a compaction that crashed after its rename): only
    //  the old log is left to remove
    if (rc == 0 && info.covered < job->covered)
        rc = cart_snapshot_write (self->dir, self->shard, self->options.shards,
                                  job->covered, part, &job->stop, &job->made, error);
    else if (rc == 0)
        job->made = info;
    cart_partition_destroy (&part);
    char path[520];
    cart_log_file (path, sizeof (path), self->dir, self->shard, CART_FILE_OLD_LOG);
    if (rc == 0 && unlink (path) == -1 && errno != ENOENT) {
        *error = cart_errorf ("cannot remove '%s': %s", path, strerror (errno));
        rc = -1;
    }
    return rc;
}

static void *
s_compact (void *arg)
{
    cart_store_t *self = (cart_store_t *)arg;
    const char *error = NULL;
    if (s_compact_run (self, &error)) {
        self->job.failed = true;
        snprintf (self->job.error, sizeof (self->job.error), "%s", error);
    }
    atomic_store (&self->job.done, true);
    return NULL;
}

static void
s_compact_start (cart_store_t *self, int old_fd, uint64_t covered)
{
    compaction_t *job = &self->job;
    job->old_fd = old_fd;
    job->covered = covered;
    job->failed = false;
    job->error[0] = 0;
    atomic_store (&job->done, false);
    atomic_store (&job->stop, false);
    int rc = pthread_create (&job->thread, NULL, s_compact, self);
    assert (rc == 0);
    job->running = true;
}

//  Joins a finished compaction and takes in what it did. Unless `wait`,
//  only once its thread has quite ended: a thread's exit gives its malloc
//  arena back to the system (hundreds of milliseconds after a partition
//  of millions of carts), and a join would hold the worker for that long.
//  Returns false when the thread has not ended yet.
static bool
s_compact_finish (cart_store_t *self, bool wait)
{
    compaction_t *job = &self->job;
    if (wait)
        pthread_join (job->thread, NULL);
    else if (pthread_tryjoin_np (job->thread, NULL) != 0)
        return false;
    job->running = false;
    atomic_fetch_sub (&s_running, 1);
    if (job->old_fd != -1) { //  failed before retiring it
        const char *ignored;
        cart_log_retire (job->old_fd, self->options.log.fsync, self->dir, &ignored);
        job->old_fd = -1;
    }
    if (job->failed) {
        self->stats.failures++;
        self->retry_at = s_now_ms () + self->options.retry_ms;
        if (!atomic_load (&job->stop))
            fprintf (stderr,
                     "cart_store: shard %u: compaction failed (%s); the log "
                     "keeps every change, and it is tried again in %.1f s\n",
                     self->shard, job->error, self->options.retry_ms / 1e3);
        return true;
    }
    self->old_log = false;
    self->stats.snapshot = job->made;
    self->stats.compactions++;
    if (self->options.log.verbose)
        fprintf (stderr,
                 "cart_store: shard %u: snapshot of %llu carts (%llu bytes) up to "
                 "record %llu\n",
                 self->shard, (unsigned long long)job->made.carts,
                 (unsigned long long)job->made.bytes,
                 (unsigned long long)job->made.covered);
    return true;
}

static bool
s_due (cart_store_t *self)
{
    uint64_t least = self->options.compact_min;
    double by_factor = self->options.compact_factor * (double)self->stats.snapshot.bytes;
    if (by_factor > (double)least)
        least = (uint64_t)by_factor;
    return cart_log_stats (self->log)->bytes >= least;
}

void
cart_store_tick (cart_store_t *self)
{
    if (self->job.running) {
        if (!atomic_load (&self->job.done) || !s_compact_finish (self, false))
            return;
    }
    if ((!self->old_log && !s_due (self)) || s_now_ms () < self->retry_at ||
        !s_take_slot ())
        return;
    if (self->old_log) { //  left by a compaction that did not finish
        s_compact_start (self, -1, self->old_last);
        return;
    }
    int old_fd;
    const char *error = NULL;
    uint64_t covered;
    if (cart_log_rotate (self->log, self->shard, &old_fd, &covered, &error)) {
        atomic_fetch_sub (&s_running, 1);
        self->stats.failures++;
        self->retry_at = s_now_ms () + self->options.retry_ms;
        fprintf (stderr,
                 "cart_store: shard %u: cannot rotate its log (%s); tried again "
                 "in %.1f s\n",
                 self->shard, error, self->options.retry_ms / 1e3);
        return;
    }
    self->old_log = true;
    self->old_last = covered; //  what a retry of this compaction must cover
    s_compact_start (self, old_fd, covered);
}

bool
cart_store_compacting (cart_store_t *self)
{
    return self->job.running;
}

//  --------------------------------------------------------------------------
//  Open and close

static void
s_destroy (cart_store_t *self)
{
    if (self->job.running) {
        atomic_store (&self->job.stop, true);
        s_compact_finish (self, true);
    }
    cart_log_close (&self->log);
    free (self);
}

//  True when shard-K.log.old is a second name of shard-K.log: a crash
//  came between the two steps of a rotation (cart_log_rotate), and the
//  log holds everything.
static bool
s_same_file (const char *dir, uint32_t shard)
{
    char log[520], old[520];
    cart_log_file (log, sizeof (log), dir, shard, CART_FILE_LOG);
    cart_log_file (old, sizeof (old), dir, shard, CART_FILE_OLD_LOG);
    struct stat a, b;
    return stat (log, &a) == 0 && stat (old, &b) == 0 && a.st_ino == b.st_ino &&
           a.st_dev == b.st_dev;
}

static int
s_drop_old (const char *dir, uint32_t shard, const char **error)
{
    char old[520];
    cart_log_file (old, sizeof (old), dir, shard, CART_FILE_OLD_LOG);
    if (unlink (old) == -1) {
        *error = cart_errorf ("cannot remove '%s': %s", old, strerror (errno));
        return -1;
    }
    return cart_log_sync_dir (dir, error);
}

cart_store_t *
cart_store_open (const cart_store_options_t *options, uint32_t shard,
                 cart_partition_t *part, const char **error)
{
    int64_t start = s_now_ms ();
    cart_store_t *self = (cart_store_t *)calloc (1, sizeof (cart_store_t));
    assert (self);
    self->options = *options;
    if (!self->options.compact_min)
        self->options.compact_min = CART_COMPACT_MIN;
    if (self->options.compact_factor <= 0)
        self->options.compact_factor = CART_COMPACT_FACTOR;
    if (self->options.retry_ms <= 0)
        self->options.retry_ms = CART_COMPACT_RETRY_MS;
    snprintf (self->dir, sizeof (self->dir), "%s", options->log.dir);
    self->options.log.dir = self->dir;
    self->shard = shard;
    self->part = part;
    self->job.old_fd = -1;
    //  The lock first: what follows reads files another worker would write
    self->log = cart_log_lock (&self->options.log, shard, error);
    if (!self->log) {
        free (self);
        return NULL;
    }
    char fresh[520];
    cart_log_file (fresh, sizeof (fresh), self->dir, shard, CART_FILE_NEW_SNAPSHOT);
    unlink (fresh); //  a snapshot a crash left half written
    cart_log_file (fresh, sizeof (fresh), self->dir, shard, CART_FILE_NEW_LOG);
    unlink (fresh); //  a rotation a crash interrupted before its rename
    if (s_same_file (self->dir, shard) && s_drop_old (self->dir, shard, error)) {
        s_destroy (self);
        return NULL;
    }

    replay_t replay = {part, shard, options->shards, self->why, NULL, 0};
    int rc = cart_snapshot_load (self->dir, shard, options->shards, part,
                                 &self->stats.snapshot, error);
    cart_log_scan_t old = {.after = self->stats.snapshot.covered};
    if (rc == 0)
        rc = s_replay_old (self->dir, shard, &replay, &old, &self->old_log, error);
    if (rc == 0 && cart_log_replay (self->log, &self->options.log, s_last (&old),
                                    s_replay, &replay, error))
        rc = s_scan_result (&replay, -1, error);
    if (rc) {
        s_destroy (self);
        return NULL;
    }
    self->old_last = s_last (&old);
    self->stats.replayed = old.records + cart_log_stats (self->log)->records;
    self->stats.seconds = (double)(s_now_ms () - start) / 1e3;
    return self;
}

cart_log_t *
cart_store_log (cart_store_t *self)
{
    return self->log;
}

const cart_store_stats_t *
cart_store_stats (cart_store_t *self)
{
    return &self->stats;
}

void
cart_store_close (cart_store_t **self_p)
{
    if (*self_p)
        s_destroy (*self_p);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Checking, offline

//  Reports one log file's scan; returns 0, or -1 with *error set on damage
//  that a start would refuse.
static int
s_check_report (FILE *out, const char *path, int rc, const cart_log_scan_t *scan,
                bool torn_ok, const char **error)
{
    if (rc == 1) {
        fprintf (out, "  %s: none\n", path);
        return 0;
    }
    if (rc == -1) {
        fprintf (out, "  %s: FAILED: %s\n", path, *error);
        return -1;
    }
    fprintf (out, "  %s: %llu bytes, ", path, (unsigned long long)scan->size);
    if (scan->first)
        fprintf (out, "records %llu to %llu (%llu applied, %llu already in the snapshot)",
                 (unsigned long long)scan->first, (unsigned long long)scan->last,
                 (unsigned long long)scan->records, (unsigned long long)scan->skipped);
    else
        fprintf (out, "no records");
    if (!scan->fault) {
        fprintf (out, "; whole\n");
        return 0;
    }
    if (scan->torn && torn_ok) {
        fprintf (out,
                 "; a torn last write at offset %llu (%llu bytes, cut at the next "
                 "start)\n",
                 (unsigned long long)scan->fault_at,
                 (unsigned long long)(scan->size - scan->bytes));
        return 0;
    }
    *error = cart_errorf ("'%s' is damaged at offset %llu (%s)", path,
                          (unsigned long long)scan->fault_at, scan->fault);
    fprintf (out, "; DAMAGED at offset %llu: %s\n", (unsigned long long)scan->fault_at,
             scan->fault);
    return -1;
}

//  The pid in shard-K.lock when another process holds the shard's log, or
//  0 when it is free.
static long
s_holder (const char *dir, uint32_t shard)
{
    char path[520];
    cart_log_file (path, sizeof (path), dir, shard, CART_FILE_LOG);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return 0;
    bool held = flock (fd, LOCK_SH | LOCK_NB) == -1 && errno == EWOULDBLOCK;
    close (fd);
    if (!held)
        return 0;
    cart_log_file (path, sizeof (path), dir, shard, CART_FILE_LOCK);
    FILE *file = fopen (path, "r");
    long pid = -1;
    if (file && fscanf (file, "%ld", &pid) != 1)
        pid = -1;
    if (file)
        fclose (file);
    return pid;
}

int
cart_store_check (const char *dir, uint32_t shard, uint32_t shards, FILE *out,
                  const char **error)
{
    fprintf (out, "shard %u:\n", shard);
    long holder = s_holder (dir, shard);
    if (holder)
        fprintf (out,
                 "  in use by process %ld: its latest writes may show as a torn "
                 "tail\n",
                 holder);
    //  Opened in the order a backup copies them (README), so that a
    //  compaction of the running worker cannot leave a gap between them
    static const cart_file_t order[3] = {CART_FILE_LOG, CART_FILE_OLD_LOG,
                                         CART_FILE_SNAPSHOT};
    char paths[3][520];
    int fds[3];
    int failed = 0;
    for (int i = 0; i < 3; i++) {
        cart_log_file (paths[i], sizeof (paths[i]), dir, shard, order[i]);
        fds[i] = cart_log_open_file (paths[i], error);
        if (fds[i] == -2) {
            fprintf (out, "  %s: FAILED: %s\n", paths[i], *error);
            failed = -1;
        }
    }
    cart_partition_t *part = cart_partition_new ();
    char why[300] = "";
    replay_t replay = {part, shard, shards, why, NULL, 0};
    cart_snapshot_info_t info = {0};
    if (!failed &&
        cart_snapshot_load_fd (fds[2], paths[2], shard, shards, part, &info, error)) {
        fprintf (out, "  %s: FAILED: %s\n", paths[2], *error);
        failed = -1;
    } else if (!failed && info.present)
        fprintf (out,
                 "  %s: %llu bytes, %llu carts, %llu items, up to record %llu; "
                 "whole\n",
                 paths[2], (unsigned long long)info.bytes, (unsigned long long)info.carts,
                 (unsigned long long)info.items, (unsigned long long)info.covered);
    else if (!failed)
        fprintf (out, "  %s: none\n", paths[2]);
    cart_log_scan_t old = {.after = info.covered,
                           .replay = s_replay,
                           .check = s_check_skipped,
                           .arg = &replay};
    if (!failed) {
        int rc = s_scan_result (&replay, cart_log_scan_fd (fds[1], paths[1], &old, error),
                                error);
        failed |= s_check_report (out, paths[1], rc, &old, false, error);
    }
    cart_log_scan_t log = {.after = s_last (&old),
                           .replay = s_replay,
                           .check = s_check_skipped,
                           .arg = &replay};
    if (!failed) {
        int rc = s_scan_result (&replay, cart_log_scan_fd (fds[0], paths[0], &log, error),
                                error);
        failed |= s_check_report (out, paths[0], rc, &log, true, error);
    }
    if (!failed)
        fprintf (out, "  holds %zu carts, %zu items, up to record %llu\n",
                 cart_partition_carts (part), cart_partition_items (part),
                 (unsigned long long)s_last (&log));
    cart_partition_destroy (&part);
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close (fds[i]);
    return failed ? -1 : 0;
}
