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
    int fd;
    cart_fsync_t fsync;
    uint64_t sequence; //  of the last record written or buffered
    uint8_t *buffer;   //  records appended, not yet written
    size_t used;
    size_t capacity;
    uint64_t buffered; //  records in buffer
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
            if (fdatasync (log->fd) == -1)
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
    self->fd = open (self->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->fd == -1) {
        *error = cart_errorf ("cannot open '%s': %s", self->path, strerror (errno));
        return -1;
    }
    if (flock (self->fd, LOCK_EX | LOCK_NB) == -1) {
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
s_keep_copy (cart_log_t *self, const uint8_t *data, size_t size, uint64_t offset,
             const char **error)
{
    char copy[600];
    snprintf (copy, sizeof (copy), "%s.damaged-%llu", self->path,
              (unsigned long long)offset);
    int fd = open (copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd != -1;
    for (size_t done = 0; ok && done < size;) {
        ssize_t wrote = write (fd, data + done, size - done);
        ok = wrote > 0;
        done += ok ? (size_t)wrote : 0;
    }
    ok = ok && fsync (fd) == 0;
    if (fd != -1)
        close (fd);
    if (!ok)
        *error = cart_errorf ("cannot keep a copy of '%s' as '%s': %s", self->path, copy,
                              strerror (errno));
    return ok ? 0 : -1;
}

//  Why the record at data[offset..) is not whole and valid, or NULL.
static const char *
s_record_fault (const uint8_t *data, size_t size, uint64_t offset, uint64_t sequence,
                size_t *length)
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
    if (cart_get_be (p + 8, 8) != sequence + 1)
        return "a record's sequence number is out of order";
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

//  Replays data[0..size); on damage, decides between a cut (a torn tail,
//  or --repair) and a refusal. Returns 0 or -1.
static int
s_replay (cart_log_t *self, const cart_log_options_t *options, const uint8_t *data,
          size_t size, cart_log_replay_fn *replay, void *arg, const char **error)
{
    uint64_t offset = 0;
    while (offset < size) {
        size_t length = 0;
        const char *fault = s_record_fault (data, size, offset, self->sequence, &length);
        if (fault) {
            //  A crash tears only what was written since the last sync,
            //  which is at most one batch: damage that close to the end is
            //  a torn tail
            bool tail = size - offset <= CART_LOG_TAIL_MAX &&
                        !s_valid_after (data, size, offset, self->sequence);
            if (!tail && !options->repair) {
                *error = cart_errorf ("'%s' is damaged at offset %llu (%s); start with "
                                      "--repair to cut it there, keeping a copy",
                                      self->path, (unsigned long long)offset, fault);
                return -1;
            }
            if (!tail && s_keep_copy (self, data, size, offset, error))
                return -1;
            self->stats.cut_at = offset;
            self->stats.cut_bytes = size - offset;
            fprintf (
                stderr, "cart_log: %s: %s at offset %llu; cut %llu byte(s) there%s\n",
                self->path, fault, (unsigned long long)offset,
                (unsigned long long)(size - offset), tail ? " (a torn last write)" : "");
            break;
        }
        if (replay (arg, data + offset + CART_LOG_HEAD, length)) {
            *error = cart_errorf ("'%s': the record at offset %llu cannot be applied",
                                  self->path, (unsigned long long)offset);
            return -1;
        }
        self->sequence++;
        self->stats.records++;
        offset += CART_LOG_HEAD + length;
    }
    self->stats.bytes = offset;
    return 0;
}

static int
s_read_through (cart_log_t *self, const cart_log_options_t *options,
                cart_log_replay_fn *replay, void *arg, const char **error)
{
    struct stat info;
    if (fstat (self->fd, &info) == -1) {
        *error = cart_errorf ("cannot read '%s': %s", self->path, strerror (errno));
        return -1;
    }
    size_t size = (size_t)info.st_size;
    if (size == 0)
        return 0;
    void *data = mmap (NULL, size, PROT_READ, MAP_PRIVATE, self->fd, 0);
    if (data == MAP_FAILED) {
        *error = cart_errorf ("cannot read '%s': %s", self->path, strerror (errno));
        return -1;
    }
    int rc = s_replay (self, options, (const uint8_t *)data, size, replay, arg, error);
    munmap (data, size);
    if (rc == 0 && self->stats.bytes < size &&
        (ftruncate (self->fd, (off_t)self->stats.bytes) == -1 ||
         fsync (self->fd) == -1)) {
        *error = cart_errorf ("cannot cut '%s': %s", self->path, strerror (errno));
        rc = -1;
    }
    return rc;
}

//  A data directory belongs to one cluster size: a shard's keys are those
//  of its ring, so the same logs under another shard count would hide
//  every cart in the wrong shard. DIR/cluster records the count.
int
cart_log_claim_dir (const char *dir, uint32_t shards, const char **error)
{
    if (s_make_dir (dir, error))
        return -1;
    char path[600], text[32] = "";
    snprintf (path, sizeof (path), "%s/cluster", dir);
    FILE *file = fopen (path, "r");
    if (file) {
        unsigned known = 0;
        bool read =
            fgets (text, sizeof (text), file) && sscanf (text, "shards %u", &known) == 1;
        fclose (file);
        if (!read) {
            *error =
                cart_errorf ("'%s' is not a cart data directory's cluster file", path);
            return -1;
        }
        if (known != shards) {
            *error = cart_errorf ("'%s' holds the data of a cluster of %u shards; this "
                                  "worker was started for %u (--shards)",
                                  dir, known, shards);
            return -1;
        }
        return 0;
    }
    //  Written whole or not at all: a temporary file, synced, renamed
    char temporary[620];
    snprintf (temporary, sizeof (temporary), "%s.new", path);
    file = fopen (temporary, "w");
    bool ok = file && fprintf (file, "shards %u\n", shards) > 0 && fflush (file) == 0 &&
              fsync (fileno (file)) == 0;
    if (file)
        fclose (file);
    if (!ok || rename (temporary, path) == -1) {
        *error = cart_errorf ("cannot write '%s': %s", path, strerror (errno));
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  The log

static void
s_free (cart_log_t *self)
{
    if (self->fd != -1)
        close (self->fd);
    free (self->buffer);
    free (self);
}

cart_log_t *
cart_log_open (const cart_log_options_t *options, uint32_t shard,
               cart_log_replay_fn *replay, void *arg, const char **error)
{
    const char *fault = NULL;
    if (s_make_dir (options->dir, &fault)) {
        if (error)
            *error = fault;
        return NULL;
    }
    cart_log_t *self = (cart_log_t *)calloc (1, sizeof (cart_log_t));
    assert (self);
    self->fd = -1;
    self->fsync = options->fsync;
    int used = snprintf (self->path, sizeof (self->path), "%s/shard-%u.log", options->dir,
                         shard);
    if (used < 0 || (size_t)used >= sizeof (self->path)) {
        if (error)
            *error = cart_errorf ("the data directory's path is too long (at most %zu "
                                  "characters)",
                                  sizeof (self->path) - 24);
        s_free (self);
        return NULL;
    }
    snprintf (self->lock_path, sizeof (self->lock_path), "%s/shard-%u.lock", options->dir,
              shard);
    s_lock (self, shard, options->dir, &fault);
    if (!fault && s_read_through (self, options, replay, arg, &fault) == 0 &&
        lseek (self->fd, (off_t)self->stats.bytes, SEEK_SET) == -1)
        fault = cart_errorf ("cannot seek in '%s': %s", self->path, strerror (errno));
    if (fault) {
        if (error)
            *error = fault;
        s_free (self);
        return NULL;
    }
    if (self->fsync == CART_FSYNC_EVERYSEC)
        s_sync_add (self);
    return self;
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
    self->sequence -= self->buffered;
    self->buffered = 0;
    self->used = 0;
}

bool
cart_log_pending (cart_log_t *self)
{
    return self->used > 0;
}

int
cart_log_commit (cart_log_t *self, const char **error)
{
    int late = atomic_load (&self->sync_errno);
    if (late && !self->failed) {
        self->failed = true;
        if (error)
            *error = cart_errorf ("a background sync of '%s' failed: %s", self->path,
                                  strerror (late));
        return -1;
    }
    if (self->failed) {
        if (error)
            *error =
                cart_errorf ("'%s' failed before; it takes no more writes", self->path);
        return -1;
    }
    for (size_t done = 0; done < self->used;) {
        ssize_t wrote = write (self->fd, self->buffer + done, self->used - done);
        if (wrote == -1 && errno == EINTR)
            continue;
        if (wrote <= 0) {
            self->failed = true;
            if (error)
                *error = cart_errorf ("cannot write '%s': %s", self->path,
                                      wrote == 0 ? "no progress" : strerror (errno));
            return -1;
        }
        done += (size_t)wrote;
    }
    self->used = 0;
    self->buffered = 0;
    if (self->fsync == CART_FSYNC_ALWAYS && fdatasync (self->fd) == -1) {
        self->failed = true;
        if (error)
            *error = cart_errorf ("cannot sync '%s': %s", self->path, strerror (errno));
        return -1;
    }
    return 0;
}

void
cart_log_close (cart_log_t **self_p)
{
    cart_log_t *self = *self_p;
    if (!self)
        return;
    const char *error = NULL;
    if (self->used && cart_log_commit (self, &error))
        fprintf (stderr, "cart_log: %s\n", error);
    if (self->fsync == CART_FSYNC_EVERYSEC)
        s_sync_remove (self);
    if (!self->failed && fdatasync (self->fd) == -1)
        fprintf (stderr, "cart_log: cannot sync '%s': %s\n", self->path,
                 strerror (errno));
    s_free (self);
    *self_p = NULL;
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
