/*  =========================================================================
    cart_log - a shard's append-only log (see cart_log.h).

    Why a record looks as it does. The length comes first so that a reader
    knows where the next record starts; the checksum covers the sequence
    number and the payload, so that a record whose bytes were torn by a
    crash, or damaged later, never replays; the sequence number catches a
    record that is whole but out of place (a block of an older file). A
    crash can only tear the last write, so damage at the very end of the
    file is a torn tail and is cut; damage followed by more data is not a
    crash's doing, and a person must decide (--repair). "The very end" is
    the last CART_LOG_TAIL_MAX bytes, the most one commit writes, and only
    when no valid record follows the damage: a record whole after it means
    the damage is not a torn end, and a cut would drop what was
    acknowledged.

    The everysec thread. fdatasync can take milliseconds to seconds; run in
    the worker's thread it would stall every shard the worker serves. One
    thread per process syncs every open log once a second, under a mutex
    that close takes too, so that it never syncs a descriptor being closed.
    A failed background sync is remembered, and the log's next commit fails
    on it: a write the disk may not have is never acknowledged again.
    =========================================================================
*/
#define _GNU_SOURCE //  syncfs
#include "cart_log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cart_types.h"
#include "cart_wire.h"

struct _cart_log_t {
    char path[512];
    char lock_path[520];
    char dir[512];
    _Atomic int fd; //  swapped by a rotation while the everysec thread reads it
    cart_fsync_t fsync;
    uint64_t sequence; //  of the last record written or buffered
    uint8_t *buffer;   //  records appended, not yet sealed
    size_t used;
    size_t capacity;
    uint64_t buffered; //  records in buffer
    //  Records sealed for a commit, which another thread may be writing
    //  (cart_log_seal, cart_log_write_sealed): touched by that thread only
    //  until the commit is over
    uint8_t *sealed;
    size_t sealed_used;
    size_t sealed_capacity;
    uint64_t sealed_records;
    bool dir_sync_due; //  a rotation's new name is not yet synced (always)
    bool failed;
    _Atomic int sync_errno; //  set by the everysec thread
    cart_log_stats_t stats;
    cart_log_t *next_synced; //  the everysec thread's list
};

//  --------------------------------------------------------------------------
//  Fixed-width fields

static uint32_t
s_checksum (const uint8_t *from, size_t size)
{
    return (uint32_t)crc32 (0L, from, (uInt)size);
}

//  --------------------------------------------------------------------------
//  The everysec thread

//  s_sync_control serialises starting and stopping the thread (so that only
//  one caller ever joins it); s_sync_lock guards the list it syncs.
static pthread_mutex_t s_sync_control = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t s_sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_sync_wake = PTHREAD_COND_INITIALIZER;
static cart_log_t *s_synced; //  logs under everysec
static pthread_t s_sync_thread;
static bool s_sync_running;

static void *
s_sync_loop (void *args)
{
    pthread_mutex_lock (&s_sync_lock);
    while (s_synced) {
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait (&s_sync_wake, &s_sync_lock, &until);
        for (cart_log_t *log = s_synced; log; log = log->next_synced)
            if (fdatasync (atomic_load (&log->fd)) == -1)
                atomic_store (&log->sync_errno, errno);
    }
    pthread_mutex_unlock (&s_sync_lock);
    return NULL;
}

static void
s_sync_add (cart_log_t *self)
{
    pthread_mutex_lock (&s_sync_control);
    pthread_mutex_lock (&s_sync_lock);
    self->next_synced = s_synced;
    s_synced = self;
    if (!s_sync_running) {
        int rc = pthread_create (&s_sync_thread, NULL, s_sync_loop, NULL);
        assert (rc == 0);
        s_sync_running = true;
    }
    pthread_mutex_unlock (&s_sync_lock);
    pthread_mutex_unlock (&s_sync_control);
}

static void
s_sync_remove (cart_log_t *self)
{
    pthread_mutex_lock (&s_sync_control);
    pthread_mutex_lock (&s_sync_lock);
    for (cart_log_t **at = &s_synced; *at; at = &(*at)->next_synced)
        if (*at == self) {
            *at = self->next_synced;
            break;
        }
    bool last = !s_synced && s_sync_running;
    if (last)
        pthread_cond_signal (&s_sync_wake);
    pthread_mutex_unlock (&s_sync_lock);
    if (last) {
        pthread_join (s_sync_thread, NULL);
        s_sync_running = false;
    }
    pthread_mutex_unlock (&s_sync_control);
}

//  --------------------------------------------------------------------------
//  Opening: the directory, the lock

static int s_sync_dir (const char *dir, const char **error);

#define LOCK_ATTEMPTS 10 //  tries to lock a log another worker is renaming

static int
s_make_dir (const char *dir, const char **error)
{
    char path[512];
    snprintf (path, sizeof (path), "%s", dir);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir (path, 0755) == -1 && errno != EEXIST)
                break;
            *p = '/';
        }
    if (mkdir (path, 0755) == -1 && errno != EEXIST) {
        *error = cart_errorf ("cannot make the data directory '%s': %s", dir,
                              strerror (errno));
        return -1;
    }
    return 0;
}

//  Opens shard's log and locks it (flock on the log itself, so that a shard
//  costs one descriptor), then writes our pid beside it in shard-K.lock
//  for whoever finds the log locked; names the holder if another process
//  has it.
static int
s_lock (cart_log_t *self, uint32_t shard, const char *dir, const char **error)
{
    //  A worker rotating its log gives the name to a new file: a lock taken
    //  on the file that had the name a moment before locks nothing (the
    //  other worker lets go of it once compacted), so the lock counts only
    //  while the name still leads to the file locked
    bool locked = false, renamed = true;
    for (int attempt = 0; attempt < LOCK_ATTEMPTS && renamed; attempt++) {
        if (self->fd != -1)
            close (self->fd);
        self->fd = open (self->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (self->fd == -1) {
            *error = cart_errorf ("cannot open '%s': %s", self->path, strerror (errno));
            return -1;
        }
        locked = flock (self->fd, LOCK_EX | LOCK_NB) == 0;
        struct stat held, named;
        renamed =
            locked && (fstat (self->fd, &held) == -1 || stat (self->path, &named) == -1 ||
                       held.st_ino != named.st_ino || held.st_dev != named.st_dev);
    }
    if (!locked || renamed) {
        char holder[32] = "";
        int fd = open (self->lock_path, O_RDONLY | O_CLOEXEC);
        ssize_t got = fd == -1 ? -1 : read (fd, holder, sizeof (holder) - 1);
        if (fd != -1)
            close (fd);
        holder[got > 0 ? got : 0] = 0;
        holder[strcspn (holder, "\n")] = 0;
        *error = cart_errorf ("shard %u's data in '%s' is in use by another worker "
                              "(process %s); one writer per shard",
                              shard, dir, *holder ? holder : "unknown");
        return -1;
    }
    char pid[32];
    int len = snprintf (pid, sizeof (pid), "%d\n", (int)getpid ());
    int fd = open (self->lock_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool written = fd != -1 && write (fd, pid, (size_t)len) == len;
    if (fd != -1)
        close (fd);
    if (!written) {
        *error = cart_errorf ("cannot write '%s': %s", self->lock_path, strerror (errno));
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Opening: reading the log through

//  Copies the damaged log beside it before a repair cuts it.
static int
s_keep_copy (cart_log_t *self, uint64_t offset, const char **error)
{
    char copy[600];
    snprintf (copy, sizeof (copy), "%s.damaged-%llu", self->path,
              (unsigned long long)offset);
    int fd = open (copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd != -1;
    char chunk[65536];
    for (off_t at = 0; ok;) {
        ssize_t got = pread (self->fd, chunk, sizeof (chunk), at);
        ok = got >= 0;
        if (got <= 0)
            break;
        for (ssize_t done = 0; ok && done < got;) {
            ssize_t wrote = write (fd, chunk + done, (size_t)(got - done));
            ok = wrote > 0;
            done += ok ? wrote : 0;
        }
        at += got;
    }
    ok = ok && fsync (fd) == 0;
    if (fd != -1)
        close (fd);
    if (!ok)
        *error = cart_errorf ("cannot keep a copy of '%s' as '%s': %s", self->path, copy,
                              strerror (errno));
    return ok ? 0 : -1;
}

static const char s_sequence_fault[] = "a record's sequence number is out of order";
static const char s_gap_fault[] =
    "records are missing before this one (its sequence number leaves a gap)";

//  Why the record at data[offset..) is not whole and valid, or NULL. The
//  first record of a file may carry any number up to scan->after + 1 (the
//  records up to after are already applied, from a snapshot or an older
//  log); each later one carries one more than the one before it.
static const char *
s_record_fault (const uint8_t *data, size_t size, uint64_t offset,
                const cart_log_scan_t *scan, size_t *length)
{
    if (size - offset < CART_LOG_HEAD)
        return "a record's head is cut short";
    const uint8_t *p = data + offset;
    *length = (size_t)cart_get_be (p, 4);
    if (*length == 0 || *length > CART_LOG_RECORD_MAX)
        return "a record's length is out of range";
    if (*length > size - offset - CART_LOG_HEAD)
        return "a record is cut short";
    if (s_checksum (p + 8, 8 + *length) != (uint32_t)cart_get_be (p + 4, 4))
        return "a record's checksum does not match";
    uint64_t number = cart_get_be (p + 8, 8);
    if (scan->last ? number != scan->last + 1 : number < 1 || number > scan->after + 1)
        return scan->last || number < 1 ? s_sequence_fault : s_gap_fault;
    return NULL;
}

//  True when a whole, valid record of a later sequence number starts
//  anywhere after `offset`: then the damage at offset is not the torn end
//  of the log, and cutting there would lose acknowledged records.
static bool
s_valid_after (const uint8_t *data, size_t size, uint64_t offset, uint64_t sequence)
{
    uint64_t most = sequence + 1 + (size - offset) / (CART_LOG_HEAD + 1);
    for (uint64_t at = offset + 1; at + CART_LOG_HEAD < size; at++) {
        const uint8_t *p = data + at;
        size_t length = (size_t)cart_get_be (p, 4);
        uint64_t number = cart_get_be (p + 8, 8);
        if (length == 0 || length > CART_LOG_RECORD_MAX ||
            length > size - at - CART_LOG_HEAD || number <= sequence || number > most)
            continue;
        if (s_checksum (p + 8, 8 + length) == (uint32_t)cart_get_be (p + 4, 4))
            return true;
    }
    return false;
}

//  Reads data[0..size) through, replaying each record past scan->after.
//  Stops at the first damage (scan->fault). Returns 0, or -1 with *error
//  set when replay refused a record.
static int
s_scan (const char *path, const uint8_t *data, size_t size, cart_log_scan_t *scan,
        const char **error)
{
    uint64_t offset = 0;
    scan->size = size;
    while (offset < size) {
        size_t length = 0;
        const char *fault = s_record_fault (data, size, offset, scan, &length);
        if (fault) {
            //  A crash tears only what was written since the last sync,
            //  which is at most one commit: damage that close to the end,
            //  with nothing whole after it, is a torn tail
            scan->fault = fault;
            scan->fault_at = offset;
            //  A whole record with the wrong number is never torn: it is
            //  out of place, or records are missing before it
            bool whole = fault == s_sequence_fault || fault == s_gap_fault;
            scan->torn = !whole && size - offset <= CART_LOG_TAIL_MAX &&
                         !s_valid_after (data, size, offset,
                                         scan->last ? scan->last : scan->after);
            break;
        }
        //  A record up to `after` is only looked at (check), a later one
        //  applied (replay)
        uint64_t number = cart_get_be (data + offset + 8, 8);
        bool skipped = number <= scan->after;
        cart_log_replay_fn *take = skipped ? scan->check : scan->replay;
        if (take && take (scan->arg, data + offset + CART_LOG_HEAD, length)) {
            *error =
                cart_errorf ("'%s': the record at offset %llu (number %llu) %s", path,
                             (unsigned long long)offset, (unsigned long long)number,
                             skipped ? "is not a change" : "cannot be applied");
            scan->refused = true;
            scan->fault_at = offset;
            scan->bytes = offset;
            return -1;
        }
        if (skipped)
            scan->skipped++;
        else
            scan->records++;
        if (!scan->first)
            scan->first = number;
        scan->last = number;
        offset += CART_LOG_HEAD + length;
    }
    scan->bytes = offset;
    return 0;
}

//  Scans the file open on fd (path names it in messages).
static int
s_scan_fd (int fd, const char *path, cart_log_scan_t *scan, const char **error)
{
    struct stat info;
    if (fstat (fd, &info) == -1) {
        *error = cart_errorf ("cannot read '%s': %s", path, strerror (errno));
        return -1;
    }
    size_t size = (size_t)info.st_size;
    if (size == 0)
        return 0;
    void *data = mmap (NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) {
        *error = cart_errorf ("cannot read '%s': %s", path, strerror (errno));
        return -1;
    }
    int rc = s_scan (path, (const uint8_t *)data, size, scan, error);
    munmap (data, size);
    return rc;
}

int
cart_log_scan_fd (int fd, const char *path, cart_log_scan_t *scan, const char **error)
{
    return fd == -1 ? 1 : s_scan_fd (fd, path, scan, error);
}

int
cart_log_open_file (const char *path, const char **error)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd == -1 && errno != ENOENT) {
        *error = cart_errorf ("cannot open '%s': %s", path, strerror (errno));
        return -2;
    }
    return fd;
}

int
cart_log_scan (const char *path, cart_log_scan_t *scan, const char **error)
{
    int fd = cart_log_open_file (path, error);
    if (fd == -2)
        return -1;
    int rc = cart_log_scan_fd (fd, path, scan, error);
    if (fd != -1)
        close (fd);
    return rc;
}

//  Reads the log through; on damage, decides between a cut (a torn tail,
//  or --repair) and a refusal. Returns 0 or -1.
static int
s_read_through (cart_log_t *self, const cart_log_options_t *options,
                cart_log_scan_t *scan, const char **error)
{
    if (s_scan_fd (self->fd, self->path, scan, error)) {
        //  A whole record that cannot be applied is damage too, for a
        //  repair: it changed nothing, and the log is cut before it
        if (scan->refused && !options->repair)
            *error =
                cart_errorf ("%s (--repair cuts the log there, keeping a copy)", *error);
        if (!scan->refused || !options->repair)
            return -1;
        fprintf (stderr, "cart_log: %s\n", *error);
        scan->fault = "a record cannot be applied";
    }
    if (scan->fault) {
        if (!scan->torn && !options->repair) {
            *error =
                cart_errorf ("'%s' is damaged at offset %llu (%s); start with "
                             "--repair to cut it there, keeping a copy",
                             self->path, (unsigned long long)scan->fault_at, scan->fault);
            return -1;
        }
        if (!scan->torn && s_keep_copy (self, scan->fault_at, error))
            return -1;
        self->stats.cut_at = scan->fault_at;
        self->stats.cut_bytes = scan->size - scan->fault_at;
        fprintf (stderr, "cart_log: %s: %s at offset %llu; cut %llu byte(s) there%s\n",
                 self->path, scan->fault, (unsigned long long)scan->fault_at,
                 (unsigned long long)self->stats.cut_bytes,
                 scan->torn ? " (a torn last write)" : "");
        if (ftruncate (self->fd, (off_t)scan->bytes) == -1 || fsync (self->fd) == -1) {
            *error = cart_errorf ("cannot cut '%s': %s", self->path, strerror (errno));
            return -1;
        }
    }
    self->stats.records = scan->records;
    self->stats.bytes = scan->bytes;
    return 0;
}

//  A data directory belongs to one cluster size: a shard's keys are those
//  of its ring, so the same logs under another shard count would hide
//  every cart in the wrong shard. DIR/cluster records the count.
int
cart_log_cluster (const char *dir, uint32_t *shards, const char **error)
{
    char path[600], text[32] = "";
    snprintf (path, sizeof (path), "%s/cluster", dir);
    FILE *file = fopen (path, "r");
    if (!file && errno == ENOENT)
        return 1;
    unsigned known = 0;
    bool read = file && fgets (text, sizeof (text), file) &&
                sscanf (text, "shards %u", &known) == 1 && known >= 1 &&
                known <= CART_SHARDS_MAX;
    if (file)
        fclose (file);
    if (!read) {
        *error = cart_errorf ("'%s' is not a cart data directory's cluster file", path);
        return -1;
    }
    *shards = known;
    return 0;
}

//  Under a lock on the directory itself, so that two workers claiming a
//  new directory at once agree on one count
static int
s_claim (const char *dir, uint32_t shards, const char **error)
{
    uint32_t known;
    int rc = cart_log_cluster (dir, &known, error);
    if (rc == -1)
        return -1;
    if (rc == 0 && known != shards) {
        *error = cart_errorf ("'%s' holds the data of a cluster of %u shards; this "
                              "worker was started for %u (--shards)",
                              dir, known, shards);
        return -1;
    }
    if (rc == 0)
        return 0;
    //  Written whole or not at all: a temporary file, synced, renamed
    char path[600], temporary[620];
    snprintf (path, sizeof (path), "%s/cluster", dir);
    snprintf (temporary, sizeof (temporary), "%s.new", path);
    FILE *file = fopen (temporary, "w");
    bool ok = file && fprintf (file, "shards %u\n", shards) > 0 && fflush (file) == 0 &&
              fsync (fileno (file)) == 0;
    if (file)
        fclose (file);
    if (!ok || rename (temporary, path) == -1) {
        *error = cart_errorf ("cannot write '%s': %s", path, strerror (errno));
        return -1;
    }
    return s_sync_dir (dir, error);
}

int
cart_log_claim_dir (const char *dir, uint32_t shards, const char **error)
{
    if (s_make_dir (dir, error))
        return -1;
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1 || flock (fd, LOCK_EX) == -1) {
        *error = cart_errorf ("cannot open the data directory '%s': %s", dir,
                              strerror (errno));
        if (fd != -1)
            close (fd);
        return -1;
    }
    int rc = s_claim (dir, shards, error);
    close (fd);
    return rc;
}

//  --------------------------------------------------------------------------
//  The log

static void
s_free (cart_log_t *self)
{
    if (self->fd != -1)
        close (self->fd);
    free (self->buffer);
    free (self->sealed);
    free (self);
}

int
cart_log_file (char *path, size_t size, const char *dir, uint32_t shard,
               cart_file_t which)
{
    static const char *const suffix[] = {[CART_FILE_LOG] = "log",
                                         [CART_FILE_OLD_LOG] = "log.old",
                                         [CART_FILE_NEW_LOG] = "log.new",
                                         [CART_FILE_SNAPSHOT] = "snap",
                                         [CART_FILE_NEW_SNAPSHOT] = "snap.new",
                                         [CART_FILE_LOCK] = "lock"};
    char name[32];
    snprintf (name, sizeof (name), "/shard-%u.%s", shard, suffix[which]);
    size_t dir_len = strlen (dir), name_len = strlen (name);
    if (dir_len + name_len >= size)
        return -1;
    memcpy (path, dir, dir_len);
    memcpy (path + dir_len, name, name_len + 1);
    return 0;
}

cart_log_t *
cart_log_lock (const cart_log_options_t *options, uint32_t shard, const char **error)
{
    const char *fault = NULL;
    if (s_make_dir (options->dir, &fault)) {
        *error = fault;
        return NULL;
    }
    cart_log_t *self = (cart_log_t *)calloc (1, sizeof (cart_log_t));
    assert (self);
    self->fd = -1;
    self->fsync = options->fsync;
    snprintf (self->dir, sizeof (self->dir), "%s", options->dir);
    //  The longest name is shard-9999.snap.new
    if (strlen (options->dir) > sizeof (self->dir) - 24 ||
        cart_log_file (self->path, sizeof (self->path), options->dir, shard,
                       CART_FILE_LOG)) {
        *error = cart_errorf ("the data directory's path is too long (at most %zu "
                              "characters)",
                              sizeof (self->dir) - 24);
        s_free (self);
        return NULL;
    }
    cart_log_file (self->lock_path, sizeof (self->lock_path), options->dir, shard,
                   CART_FILE_LOCK);
    if (s_lock (self, shard, options->dir, error)) {
        s_free (self);
        return NULL;
    }
    return self;
}

int
cart_log_replay (cart_log_t *self, const cart_log_options_t *options, uint64_t after,
                 cart_log_replay_fn *replay, void *arg, const char **error)
{
    assert (!self->sequence && !self->used);
    cart_log_scan_t scan = {.after = after, .replay = replay, .arg = arg};
    if (s_read_through (self, options, &scan, error))
        return -1;
    if (lseek (self->fd, (off_t)self->stats.bytes, SEEK_SET) == -1) {
        *error = cart_errorf ("cannot seek in '%s': %s", self->path, strerror (errno));
        return -1;
    }
    self->sequence = scan.last > after ? scan.last : after;
    if (self->fsync == CART_FSYNC_EVERYSEC)
        s_sync_add (self);
    return 0;
}

cart_log_t *
cart_log_open (const cart_log_options_t *options, uint32_t shard, uint64_t after,
               cart_log_replay_fn *replay, void *arg, const char **error)
{
    const char *fault = NULL;
    cart_log_t *self = cart_log_lock (options, shard, &fault);
    if (self && cart_log_replay (self, options, after, replay, arg, &fault))
        s_free (self);
    else if (self)
        return self;
    if (error)
        *error = fault;
    return NULL;
}

uint64_t
cart_log_sequence (cart_log_t *self)
{
    return self->sequence;
}

//  fsync of the directory: makes a rename or a new file's name durable.
static int
s_sync_dir (const char *dir, const char **error)
{
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd == -1 ? -1 : fsync (fd);
    int saved = errno;
    if (fd != -1)
        close (fd);
    if (rc == -1)
        *error =
            cart_errorf ("cannot sync the directory '%s': %s", dir, strerror (saved));
    return rc;
}

int
cart_log_sync_dir (const char *dir, const char **error)
{
    return s_sync_dir (dir, error);
}

int
cart_log_rotate (cart_log_t *self, uint32_t shard, int *old_fd, uint64_t *covered,
                 const char **error)
{
    assert (!self->sealed_used);
    *error = NULL;
    char old[520], fresh[520];
    cart_log_file (old, sizeof (old), self->dir, shard, CART_FILE_OLD_LOG);
    cart_log_file (fresh, sizeof (fresh), self->dir, shard, CART_FILE_NEW_LOG);
    if (self->failed) {
        *error = cart_errorf ("'%s' failed before; it takes no more writes", self->path);
        return -1;
    }
    //  The current log keeps its name all along (a second worker opening it
    //  finds it locked): a second name for it first, then the new log takes
    //  the name in one rename
    if (link (self->path, old) == -1) {
        *error = cart_errorf ("cannot link '%s' as '%s': %s", self->path, old,
                              strerror (errno));
        return -1;
    }
    int fd = open (fresh, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1 || flock (fd, LOCK_EX | LOCK_NB) == -1 ||
        rename (fresh, self->path) == -1) {
        *error =
            cart_errorf ("cannot start a new log '%s': %s", self->path, strerror (errno));
        if (fd != -1)
            close (fd);
        unlink (fresh);
        unlink (old); //  only a second name of the log still in use
        return -1;
    }
    //  Renamed: the new log is the log now, whatever follows; what is
    //  buffered goes into it
    *old_fd = atomic_exchange (&self->fd, fd);
    *covered = self->sequence - self->buffered;
    self->stats.bytes = 0;
    self->stats.records = 0;
    //  Under always nothing is acknowledged in the new log before its name
    //  is on disk: the next commit syncs the directory first (in the
    //  committer's thread: a slow disk must not stop the worker's)
    self->dir_sync_due = self->fsync == CART_FSYNC_ALWAYS;
    return 0;
}

int
cart_log_retire (int fd, cart_fsync_t policy, const char *dir, const char **error)
{
    //  Under always every record was synced at its commit, and the rename
    //  with the directory at the rotation
    int rc = 0;
    if (policy != CART_FSYNC_ALWAYS && fdatasync (fd) == -1) {
        *error =
            cart_errorf ("cannot sync a rotated log in '%s': %s", dir, strerror (errno));
        rc = -1;
    }
    if (rc == 0 && policy != CART_FSYNC_ALWAYS)
        rc = s_sync_dir (dir, error);
    //  The everysec thread may still hold the number from before the swap
    pthread_mutex_lock (&s_sync_lock);
    close (fd);
    pthread_mutex_unlock (&s_sync_lock);
    return rc;
}

const cart_log_stats_t *
cart_log_stats (cart_log_t *self)
{
    return &self->stats;
}

int
cart_log_append (cart_log_t *self, const void *payload, size_t size)
{
    if (size < 1 || size > CART_LOG_RECORD_MAX)
        return -1;
    size_t need = self->used + CART_LOG_HEAD + size;
    if (need > self->capacity) {
        self->capacity = need > 2 * self->capacity ? need : 2 * self->capacity;
        self->buffer = (uint8_t *)realloc (self->buffer, self->capacity);
        assert (self->buffer);
    }
    uint8_t *p = self->buffer + self->used;
    cart_put_be (p, size, 4);
    cart_put_be (p + 8, ++self->sequence, 8);
    memcpy (p + CART_LOG_HEAD, payload, size);
    cart_put_be (p + 4, s_checksum (p + 8, 8 + size), 4);
    self->used = need;
    self->buffered++;
    return 0;
}

void
cart_log_discard (cart_log_t *self)
{
    self->sequence -= self->buffered + self->sealed_records;
    self->buffered = self->sealed_records = 0;
    self->used = self->sealed_used = 0;
}

bool
cart_log_pending (cart_log_t *self)
{
    return self->used > 0 || self->sealed_used > 0;
}

bool
cart_log_seal (cart_log_t *self)
{
    assert (!self->sealed_used);
    uint8_t *buffer = self->sealed;
    size_t capacity = self->sealed_capacity;
    self->sealed = self->buffer;
    self->sealed_capacity = self->capacity;
    self->sealed_used = self->used;
    self->sealed_records = self->buffered;
    self->buffer = buffer;
    self->capacity = capacity;
    self->used = 0;
    self->buffered = 0;
    return self->sealed_used > 0;
}

int
cart_log_write_sealed (cart_log_t *self, bool sync, const char **error)
{
    int late = atomic_load (&self->sync_errno);
    if (late && !self->failed) {
        self->failed = true;
        *error = cart_errorf ("a background sync of '%s' failed: %s", self->path,
                              strerror (late));
        return -1;
    }
    if (self->failed) {
        *error = cart_errorf ("'%s' failed before; it takes no more writes", self->path);
        return -1;
    }
    if (self->dir_sync_due && s_sync_dir (self->dir, error)) {
        self->failed = true;
        return -1;
    }
    self->dir_sync_due = false;
    for (size_t done = 0; done < self->sealed_used;) {
        ssize_t wrote = write (self->fd, self->sealed + done, self->sealed_used - done);
        if (wrote == -1 && errno == EINTR)
            continue;
        if (wrote <= 0) {
            self->failed = true;
            *error = cart_errorf ("cannot write '%s': %s", self->path,
                                  wrote == 0 ? "no progress" : strerror (errno));
            return -1;
        }
        done += (size_t)wrote;
    }
    self->stats.bytes += self->sealed_used;
    self->stats.records += self->sealed_records;
    self->sealed_used = 0;
    self->sealed_records = 0;
    if (sync && self->fsync == CART_FSYNC_ALWAYS && fdatasync (self->fd) == -1) {
        self->failed = true;
        *error = cart_errorf ("cannot sync '%s': %s", self->path, strerror (errno));
        return -1;
    }
    return 0;
}

int
cart_log_sync_all (cart_log_t **logs, size_t n, const char **error)
{
    if (n == 0 || logs[0]->fsync != CART_FSYNC_ALWAYS)
        return 0;
    //  One syncfs for all: every dirty page of the filesystem written and
    //  waited for, and one journal commit and cache flush, where n
    //  fdatasyncs would make n of each, one after another. It reports a
    //  write-back error of any file of the filesystem (Linux 5.8 and
    //  later), and then every log of the batch fails.
    if (syncfs (logs[0]->fd) == 0)
        return 0;
    *error = cart_errorf ("cannot sync '%s' and %zu other log(s): %s", logs[0]->path,
                          n - 1, strerror (errno));
    for (size_t i = 0; i < n; i++)
        logs[i]->failed = true;
    return -1;
}

int
cart_log_commit (cart_log_t *self, const char **error)
{
    const char *fault = NULL;
    cart_log_seal (self);
    if (cart_log_write_sealed (self, true, &fault) == 0)
        return 0;
    if (error)
        *error = fault;
    return -1;
}

void
cart_log_close (cart_log_t **self_p)
{
    cart_log_t *self = *self_p;
    if (!self)
        return;
    const char *error = NULL;
    if (!self->failed && cart_log_pending (self) && cart_log_commit (self, &error))
        fprintf (stderr, "cart_log: %s\n", error);
    if (self->fsync == CART_FSYNC_EVERYSEC)
        s_sync_remove (self);
    if (!self->failed && fdatasync (self->fd) == -1)
        fprintf (stderr, "cart_log: cannot sync '%s': %s\n", self->path,
                 strerror (errno));
    s_free (self);
    *self_p = NULL;
}

cart_log_t *
cart_log_create (const char *path, const char **error)
{
    cart_log_t *self = (cart_log_t *)calloc (1, sizeof (cart_log_t));
    assert (self);
    self->fsync = CART_FSYNC_NO;
    snprintf (self->path, sizeof (self->path), "%s", path);
    self->fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (self->fd == -1) {
        *error = cart_errorf ("cannot make '%s': %s", path, strerror (errno));
        s_free (self);
        return NULL;
    }
    return self;
}

int
cart_log_finish (cart_log_t **self_p, const char **error)
{
    cart_log_t *self = *self_p;
    int rc = cart_log_commit (self, error);
    if (rc == 0 && fsync (self->fd) == -1) {
        *error = cart_errorf ("cannot sync '%s': %s", self->path, strerror (errno));
        rc = -1;
    }
    s_free (self);
    *self_p = NULL;
    return rc;
}

int
cart_fsync_parse (const char *text, cart_fsync_t *policy)
{
    static const char *const names[] = {"always", "everysec", "no"};
    for (int i = 0; i < 3; i++)
        if (strcmp (text, names[i]) == 0) {
            *policy = (cart_fsync_t)i;
            return 0;
        }
    return -1;
}

const char *
cart_fsync_name (cart_fsync_t policy)
{
    return policy == CART_FSYNC_ALWAYS     ? "always"
           : policy == CART_FSYNC_EVERYSEC ? "everysec"
                                           : "no";
}
