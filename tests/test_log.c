/*  test_log - a shard's append-only log (cart_log) against its contract:
    round trips of records of varied sizes over several commits and
    reopens; a cut at every byte of the last records (a torn tail); a bit
    flipped at every byte of a small log; damage in the middle of a big
    log, refused and then repaired (the copy kept, the log cut); the tail
    boundary; one writer per shard, naming the holder's pid; a replay that
    refuses a record; the fsync policies and the everysec thread; the
    record sizes refused.

    Every test works in a fresh directory made by mkdtemp under /tmp and
    removed by its teardown.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cart_log.h"
#include "test_files.h"

//  --------------------------------------------------------------------------
//  Helpers

//  splitmix64: payloads and sizes, reproducible.
static uint64_t
s_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

//  A record's payload, as the tests keep it.
typedef struct {
    uint8_t *data;
    size_t size;
} s_payload_t;

//  A list of payloads: what a test appended, or what a replay gave back.
typedef struct {
    s_payload_t *items;
    size_t count;
    size_t capacity;
    size_t refuse_at; //  the replay refuses this record (SIZE_MAX: none)
    size_t calls;
} s_list_t;

static void
s_list_init (s_list_t *list)
{
    memset (list, 0, sizeof (*list));
    list->refuse_at = SIZE_MAX;
}

static void
s_list_push (s_list_t *list, const void *data, size_t size)
{
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? 2 * list->capacity : 64;
        list->items = realloc (list->items, list->capacity * sizeof (s_payload_t));
        assert_non_null (list->items);
    }
    s_payload_t *item = &list->items[list->count++];
    item->data = malloc (size ? size : 1);
    assert_non_null (item->data);
    memcpy (item->data, data, size);
    item->size = size;
}

static void
s_list_clear (s_list_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        free (list->items[i].data);
    free (list->items);
    size_t refuse_at = list->refuse_at;
    s_list_init (list);
    list->refuse_at = refuse_at;
}

//  The replay callback: keeps every payload; refuses record refuse_at.
static int
s_replay (void *arg, const void *payload, size_t size)
{
    s_list_t *list = (s_list_t *)arg;
    if (list->calls++ == list->refuse_at)
        return -1;
    s_list_push (list, payload, size);
    return 0;
}

//  Asserts that got starts with the first count records of want.
static void
s_assert_starts (const s_list_t *got, const s_list_t *want, size_t count)
{
    assert_true (count <= want->count);
    assert_true (count <= got->count);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal (got->items[i].size, want->items[i].size);
        assert_memory_equal (got->items[i].data, want->items[i].data,
                             want->items[i].size);
    }
}

//  Asserts that got holds exactly the first count records of want.
static void
s_assert_prefix (const s_list_t *got, const s_list_t *want, size_t count)
{
    assert_int_equal (got->count, count);
    s_assert_starts (got, want, count);
}

//  Appends a random payload of size bytes to log and to want.
static void
s_append_random (cart_log_t *log, s_list_t *want, size_t size, uint64_t *seed)
{
    uint8_t *data = malloc (size);
    assert_non_null (data);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)s_next (seed);
    assert_int_equal (cart_log_append (log, data, size), 0);
    s_list_push (want, data, size);
    free (data);
}

static void
s_commit (cart_log_t *log)
{
    const char *error = NULL;
    int rc = cart_log_commit (log, &error);
    if (rc)
        print_error ("commit: %s\n", error ? error : "(no error)");
    assert_int_equal (rc, 0);
    assert_false (cart_log_pending (log));
}

//  Per test: a fresh directory.
typedef struct {
    char dir[64];
    char log_path[128]; //  dir/shard-0.log
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *self = calloc (1, sizeof (s_fixture_t));
    if (!self)
        return -1;
    snprintf (self->dir, sizeof (self->dir), "/tmp/test_log.XXXXXX");
    if (!mkdtemp (self->dir)) {
        free (self);
        return -1;
    }
    snprintf (self->log_path, sizeof (self->log_path), "%s/shard-0.log", self->dir);
    *state = self;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    DIR *dir = opendir (self->dir);
    if (dir) {
        struct dirent *entry;
        while ((entry = readdir (dir))) {
            if (strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0)
                continue;
            char path[384];
            snprintf (path, sizeof (path), "%s/%s", self->dir, entry->d_name);
            unlink (path);
        }
        closedir (dir);
    }
    int rc = rmdir (self->dir);
    free (self);
    return rc;
}

static cart_log_options_t
s_options (const s_fixture_t *self, cart_fsync_t policy)
{
    return (cart_log_options_t){.dir = self->dir, .fsync = policy};
}

//  Opens, asserting success; replays into got (cleared first).
static cart_log_t *
s_open (const cart_log_options_t *options, uint32_t shard, s_list_t *got)
{
    const char *error = NULL;
    s_list_clear (got);
    cart_log_t *log = cart_log_open (options, shard, 0, s_replay, got, &error);
    if (!log)
        print_error ("open: %s\n", error ? error : "(no error)");
    assert_non_null (log);
    return log;
}

//  Writes want->count records' worth of a log at dir/shard-0.log: the
//  records' starts go to starts[0..count] (starts[count] = the size).
static void
s_make_log (const s_fixture_t *self, s_list_t *want, size_t count, size_t min_size,
            size_t max_size, size_t batch, uint64_t seed, uint64_t *starts)
{
    cart_log_options_t options = s_options (self, CART_FSYNC_NO);
    s_list_t got;
    s_list_init (&got);
    cart_log_t *log = s_open (&options, 0, &got);
    assert_int_equal (got.count, 0);
    uint64_t offset = 0;
    for (size_t i = 0; i < count; i++) {
        size_t size = min_size + (size_t)(s_next (&seed) % (max_size - min_size + 1));
        if (starts)
            starts[i] = offset;
        offset += CART_LOG_HEAD + size;
        s_append_random (log, want, size, &seed);
        if ((i + 1) % batch == 0)
            s_commit (log);
    }
    if (starts)
        starts[count] = offset;
    cart_log_close (&log);
    assert_null (log);
    s_list_clear (&got);
    assert_int_equal (test_file_size (self->log_path), (long long)offset);
}

//  --------------------------------------------------------------------------
//  1. Round trip

static void
test_round_trip (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    cart_log_options_t options = s_options (self, CART_FSYNC_NO);
    uint64_t seed = 1;
    s_list_t want, got;
    s_list_init (&want);
    s_list_init (&got);

    //  N records of 1 byte .. 4 KiB, in batches of 1, 7, 100 and the rest
    enum { N = 500, M = 37 };
    cart_log_t *log = s_open (&options, 0, &got);
    assert_int_equal (got.count, 0);
    assert_int_equal (cart_log_stats (log)->records, 0);
    assert_int_equal (cart_log_stats (log)->bytes, 0);
    assert_false (cart_log_pending (log));
    const size_t batches[] = {1, 7, 100, N - 108};
    uint64_t bytes = 0;
    size_t done = 0;
    for (size_t b = 0; b < sizeof (batches) / sizeof (batches[0]); b++) {
        for (size_t i = 0; i < batches[b]; i++, done++) {
            size_t size = done == 0   ? 1
                          : done == 1 ? 4096
                                      : 1 + (size_t)(s_next (&seed) % 4096);
            s_append_random (log, &want, size, &seed);
            bytes += CART_LOG_HEAD + size;
            assert_true (cart_log_pending (log));
        }
        s_commit (log);
        assert_int_equal (test_file_size (self->log_path), (long long)bytes);
    }
    assert_int_equal (done, N);
    cart_log_close (&log);
    assert_null (log);
    cart_log_close (&log); //  a NULL log is nothing to close

    log = s_open (&options, 0, &got);
    s_assert_prefix (&got, &want, N);
    assert_int_equal (cart_log_stats (log)->records, N);
    assert_int_equal (cart_log_stats (log)->bytes, bytes);
    assert_int_equal (cart_log_stats (log)->cut_at, 0);
    assert_int_equal (cart_log_stats (log)->cut_bytes, 0);

    //  Appends after a reopen continue the sequence; the last batch is
    //  left for close to commit
    for (size_t i = 0; i < M; i++) {
        size_t size = 1 + (size_t)(s_next (&seed) % 4096);
        s_append_random (log, &want, size, &seed);
        bytes += CART_LOG_HEAD + size;
        if (i == M / 2)
            s_commit (log);
    }
    assert_true (cart_log_pending (log));
    cart_log_close (&log);
    assert_int_equal (test_file_size (self->log_path), (long long)bytes);

    log = s_open (&options, 0, &got);
    s_assert_prefix (&got, &want, N + M);
    assert_int_equal (cart_log_stats (log)->records, N + M);
    assert_int_equal (cart_log_stats (log)->bytes, bytes);
    assert_int_equal (cart_log_stats (log)->cut_at, 0);
    cart_log_close (&log);

    //  An empty log stays empty and opens
    options.dir = self->dir;
    log = s_open (&options, 1, &got);
    assert_int_equal (got.count, 0);
    cart_log_close (&log);
    log = s_open (&options, 1, &got);
    assert_int_equal (got.count, 0);
    assert_int_equal (cart_log_stats (log)->records, 0);
    cart_log_close (&log);

    s_list_clear (&want);
    s_list_clear (&got);
}

//  --------------------------------------------------------------------------
//  2. A cut at every byte of the last records

static void
test_truncation (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    enum { COUNT = 50, FIRST = 45 };
    s_list_t want, got;
    s_list_init (&want);
    s_list_init (&got);
    uint64_t starts[COUNT + 1];
    s_make_log (self, &want, COUNT, 1, 200, 10, 2, starts);
    size_t size;
    uint8_t *original = test_read_file (self->log_path, &size);
    assert_int_equal (size, starts[COUNT]);

    cart_log_options_t options = s_options (self, CART_FSYNC_NO);
    const uint8_t extra[] = "one more";
    size_t record = FIRST; //  the record that the cut falls in or at
    for (uint64_t cut = starts[FIRST]; cut <= size; cut++) {
        while (record < COUNT && starts[record + 1] <= cut)
            record++;
        bool boundary = starts[record] == cut;
        test_write_file (self->log_path, original, cut);

        test_quiet_begin (self->dir);
        const char *error = NULL;
        s_list_clear (&got);
        cart_log_t *log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
        char *logged = test_quiet_end ();
        if (!log)
            print_error ("cut at %llu: %s\n", (unsigned long long)cut, error);
        assert_non_null (log);
        const cart_log_stats_t *stats = cart_log_stats (log);
        s_assert_prefix (&got, &want, record);
        assert_int_equal (stats->records, record);
        assert_int_equal (stats->bytes, starts[record]);
        assert_int_equal (stats->cut_at, boundary ? 0 : starts[record]);
        assert_int_equal (stats->cut_bytes, cut - starts[record]);
        assert_int_equal (test_file_size (self->log_path), (long long)starts[record]);
        if (boundary)
            assert_string_equal (logged, "");
        else {
            //  The cut is logged, with its offset
            char offset[64];
            snprintf (offset, sizeof (offset), "offset %llu",
                      (unsigned long long)starts[record]);
            assert_non_null (strstr (logged, offset));
            assert_non_null (strstr (logged, self->log_path));
        }
        free (logged);

        //  The log goes on from the cut: one more record, then a reopen
        assert_int_equal (cart_log_append (log, extra, sizeof (extra)), 0);
        s_commit (log);
        cart_log_close (&log);
        log = s_open (&options, 0, &got);
        assert_int_equal (got.count, record + 1);
        s_assert_starts (&got, &want, record);
        assert_int_equal (cart_log_stats (log)->records, record + 1);
        assert_int_equal (got.items[record].size, sizeof (extra));
        assert_memory_equal (got.items[record].data, extra, sizeof (extra));
        assert_int_equal (cart_log_stats (log)->cut_at, 0);
        cart_log_close (&log);
    }
    free (original);
    s_list_clear (&want);
    s_list_clear (&got);
}

//  --------------------------------------------------------------------------
//  3. A bit flipped at every byte of a small log: in the last record it is
//  a torn end and is cut; before it, whole records follow, and the open is
//  refused (a cut would drop acknowledged records)

static void
test_flipped_small (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    enum { COUNT = 16 };
    s_list_t want, got;
    s_list_init (&want);
    s_list_init (&got);
    uint64_t starts[COUNT + 1];
    s_make_log (self, &want, COUNT, 1, 48, 5, 3, starts);
    size_t size;
    uint8_t *original = test_read_file (self->log_path, &size);
    assert_true (size < CART_LOG_TAIL_MAX);
    uint8_t *copy = malloc (size);
    assert_non_null (copy);

    cart_log_options_t options = s_options (self, CART_FSYNC_NO);
    size_t record = 0; //  the record holding the flipped byte
    for (size_t at = 0; at < size; at++) {
        while (starts[record + 1] <= at)
            record++;
        memcpy (copy, original, size);
        copy[at] ^= (uint8_t)(1u << (at % 8));
        test_write_file (self->log_path, copy, size);

        test_quiet_begin (self->dir);
        const char *error = NULL;
        s_list_clear (&got);
        cart_log_t *log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
        char *logged = test_quiet_end ();
        if (record + 1 < COUNT) {
            //  Whole records follow the damage: not a torn end, refused
            if (log)
                print_error ("flip at %zu (record %zu): opened\n", at, record);
            assert_null (log);
            char needle[64];
            snprintf (needle, sizeof (needle), "offset %llu",
                      (unsigned long long)starts[record]);
            assert_non_null (strstr (error, needle));
            assert_int_equal (test_file_size (self->log_path), (long long)size);
            free (logged);
            continue;
        }
        if (!log)
            print_error ("flip at %zu: %s\n", at, error);
        assert_non_null (log);
        const cart_log_stats_t *stats = cart_log_stats (log);
        if (got.count != record || stats->cut_at != starts[record])
            print_error ("flip at %zu (record %zu at %llu): %zu record(s) replayed, "
                         "cut at %llu\n",
                         at, record, (unsigned long long)starts[record], got.count,
                         (unsigned long long)stats->cut_at);
        s_assert_prefix (&got, &want, record);
        assert_int_equal (stats->records, record);
        assert_int_equal (stats->cut_at, starts[record]);
        assert_int_equal (stats->cut_bytes, size - starts[record]);
        assert_int_equal (stats->bytes, starts[record]);
        assert_int_equal (test_file_size (self->log_path), (long long)starts[record]);
        assert_true (strlen (logged) > 0);
        free (logged);
        cart_log_close (&log);
    }
    free (copy);
    free (original);
    s_list_clear (&want);
    s_list_clear (&got);
}

//  --------------------------------------------------------------------------
//  4. Damage in the middle of a big log

enum { BIG_COUNT = 12000, BIG_SIZE = 100, BIG_RECORD = CART_LOG_HEAD + BIG_SIZE };

//  Writes the big log, returns its bytes.
static uint8_t *
s_make_big (const s_fixture_t *self, s_list_t *want, size_t *size)
{
    s_make_log (self, want, BIG_COUNT, BIG_SIZE, BIG_SIZE, 256, 4, NULL);
    uint8_t *original = test_read_file (self->log_path, size);
    assert_int_equal (*size, (size_t)BIG_COUNT * BIG_RECORD);
    assert_true (*size > CART_LOG_TAIL_MAX);
    return original;
}

static void
s_damaged_path (const s_fixture_t *self, uint64_t offset, char *path, size_t size)
{
    snprintf (path, size, "%s.damaged-%llu", self->log_path, (unsigned long long)offset);
}

static void
test_damage_middle (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_list_t want, got;
    s_list_init (&want);
    s_list_init (&got);
    size_t size;
    uint8_t *original = s_make_big (self, &want, &size);

    //  A byte of record 10's payload
    const uint64_t offset = 10 * BIG_RECORD;
    uint8_t *damaged = malloc (size);
    assert_non_null (damaged);
    memcpy (damaged, original, size);
    damaged[offset + CART_LOG_HEAD + 50] ^= 0xFF;
    test_write_file (self->log_path, damaged, size);

    //  Refused, naming the file and the offset; the file is left as it was
    cart_log_options_t options = s_options (self, CART_FSYNC_NO);
    const char *error = NULL;
    cart_log_t *log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
    assert_null (log);
    assert_non_null (error);
    assert_non_null (strstr (error, self->log_path));
    char needle[64];
    snprintf (needle, sizeof (needle), "offset %llu", (unsigned long long)offset);
    if (!strstr (error, needle))
        print_error ("error: %s\n", error);
    assert_non_null (strstr (error, needle));
    size_t after_size;
    uint8_t *after = test_read_file (self->log_path, &after_size);
    assert_int_equal (after_size, size);
    assert_memory_equal (after, damaged, size);
    free (after);
    char copy_path[192];
    s_damaged_path (self, offset, copy_path, sizeof (copy_path));
    assert_int_equal (test_file_size (copy_path), -1);

    //  Repaired: 10 records, the original kept beside, the log cut
    options.repair = true;
    test_quiet_begin (self->dir);
    s_list_clear (&got);
    error = NULL;
    log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
    char *logged = test_quiet_end ();
    if (!log)
        print_error ("repair: %s\n", error);
    assert_non_null (log);
    assert_non_null (strstr (logged, needle));
    free (logged);
    s_assert_prefix (&got, &want, 10);
    assert_int_equal (cart_log_stats (log)->records, 10);
    assert_int_equal (cart_log_stats (log)->cut_at, offset);
    assert_int_equal (cart_log_stats (log)->cut_bytes, size - offset);
    assert_int_equal (cart_log_stats (log)->bytes, offset);
    assert_int_equal (test_file_size (self->log_path), (long long)offset);
    size_t kept_size;
    uint8_t *kept = test_read_file (copy_path, &kept_size);
    assert_int_equal (kept_size, size);
    assert_memory_equal (kept, damaged, size);
    free (kept);

    //  It goes on from there
    const uint8_t extra[] = "after the repair";
    assert_int_equal (cart_log_append (log, extra, sizeof (extra)), 0);
    cart_log_close (&log);
    options.repair = false;
    log = s_open (&options, 0, &got);
    assert_int_equal (got.count, 11);
    s_assert_starts (&got, &want, 10);
    assert_int_equal (cart_log_stats (log)->records, 11);
    assert_memory_equal (got.items[10].data, extra, sizeof (extra));
    cart_log_close (&log);

    free (damaged);
    free (original);
    s_list_clear (&want);
    s_list_clear (&got);
}

//  The tail's boundary in a big log: damage in the last record is a torn
//  tail (cut, no copy kept); damage in the first record within the last
//  CART_LOG_TAIL_MAX bytes has whole records after it, and is refused like
//  the record before it (outside those bytes).
static void
test_damage_boundary (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_list_t want, got;
    s_list_init (&want);
    s_list_init (&got);
    size_t size;
    uint8_t *original = s_make_big (self, &want, &size);
    uint8_t *damaged = malloc (size);
    assert_non_null (damaged);
    cart_log_options_t options = s_options (self, CART_FSYNC_NO);

    size_t first_tail = (size - CART_LOG_TAIL_MAX + BIG_RECORD - 1) / BIG_RECORD;
    assert_true (size - first_tail * BIG_RECORD <= CART_LOG_TAIL_MAX);
    assert_true (size - (first_tail - 1) * BIG_RECORD > CART_LOG_TAIL_MAX);

    //  The last record: cut. (The first record in the tail has whole ones
    //  after it: refused, below.)
    const size_t tails[] = {BIG_COUNT - 1};
    for (size_t t = 0; t < 1; t++) {
        uint64_t offset = tails[t] * BIG_RECORD;
        memcpy (damaged, original, size);
        damaged[offset + 5] ^= 0x01; //  its checksum
        test_write_file (self->log_path, damaged, size);
        test_quiet_begin (self->dir);
        const char *error = NULL;
        s_list_clear (&got);
        cart_log_t *log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
        char *logged = test_quiet_end ();
        if (!log)
            print_error ("record %zu: %s\n", tails[t], error);
        assert_non_null (log);
        free (logged);
        s_assert_prefix (&got, &want, tails[t]);
        assert_int_equal (cart_log_stats (log)->cut_at, offset);
        assert_int_equal (test_file_size (self->log_path), (long long)offset);
        char copy_path[192];
        s_damaged_path (self, offset, copy_path, sizeof (copy_path));
        assert_int_equal (test_file_size (copy_path), -1);
        cart_log_close (&log);
    }

    //  The first record in the tail and the record before the tail, damaged
    //  in their checksums: refused
    const size_t refused[] = {first_tail, first_tail - 1};
    for (size_t r = 0; r < 2; r++) {
        uint64_t offset = refused[r] * BIG_RECORD;
        memcpy (damaged, original, size);
        damaged[offset + 5] ^= 0x01;
        test_write_file (self->log_path, damaged, size);
        const char *error = NULL;
        s_list_clear (&got);
        cart_log_t *log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
        assert_null (log);
        char needle[64];
        snprintf (needle, sizeof (needle), "offset %llu", (unsigned long long)offset);
        assert_non_null (strstr (error, needle));
        assert_int_equal (test_file_size (self->log_path), (long long)size);
    }

    free (damaged);
    free (original);
    s_list_clear (&want);
    s_list_clear (&got);
}

//  A record that is whole but out of place (a block of an older file, its
//  checksums right): its sequence number gives it away. At the end of the
//  file it is cut like a torn tail; in the middle of a big log it is
//  refused, naming its offset.
static void
test_out_of_place (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_list_t want, got;
    s_list_init (&want);
    s_list_init (&got);
    cart_log_options_t options = s_options (self, CART_FSYNC_NO);

    //  A small log followed by itself
    enum { COUNT = 10 };
    uint64_t starts[COUNT + 1];
    s_make_log (self, &want, COUNT, 1, 100, 4, 5, starts);
    size_t size;
    uint8_t *original = test_read_file (self->log_path, &size);
    uint8_t *twice = malloc (2 * size);
    assert_non_null (twice);
    memcpy (twice, original, size);
    memcpy (twice + size, original, size);
    test_write_file (self->log_path, twice, 2 * size);
    //  Whole records out of place are never a torn write, even at the end:
    //  refused, naming the offset, and cut only by --repair
    const char *error = NULL;
    cart_log_t *log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
    assert_null (log);
    char at[64];
    snprintf (at, sizeof (at), "offset %zu", size);
    assert_non_null (strstr (error, at));
    assert_non_null (strstr (error, "out of order"));
    options.repair = true;
    s_list_clear (&got);
    test_quiet_begin (self->dir);
    log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
    free (test_quiet_end ());
    options.repair = false;
    if (!log)
        print_error ("open: %s\n", error);
    assert_non_null (log);
    s_assert_prefix (&got, &want, COUNT);
    assert_int_equal (cart_log_stats (log)->cut_at, size);
    assert_int_equal (test_file_size (self->log_path), (long long)size);
    cart_log_close (&log);
    free (twice);
    free (original);
    s_list_clear (&want);

    //  A big log with its records 0..4 again after record 19
    assert_int_equal (unlink (self->log_path), 0);
    original = s_make_big (self, &want, &size);
    const size_t block = 5 * BIG_RECORD, offset = 20 * BIG_RECORD;
    uint8_t *spliced = malloc (size + block);
    assert_non_null (spliced);
    memcpy (spliced, original, offset);
    memcpy (spliced + offset, original, block);
    memcpy (spliced + offset + block, original + offset, size - offset);
    test_write_file (self->log_path, spliced, size + block);
    error = NULL;
    s_list_clear (&got);
    log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
    assert_null (log);
    char needle[64];
    snprintf (needle, sizeof (needle), "offset %zu", offset);
    if (!strstr (error, needle))
        print_error ("error: %s\n", error);
    assert_non_null (strstr (error, needle));
    free (spliced);
    free (original);
    s_list_clear (&want);
    s_list_clear (&got);
}

//  --------------------------------------------------------------------------
//  5. One writer per shard

static void
test_one_writer (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    cart_log_options_t options = s_options (self, CART_FSYNC_NO);
    s_list_t got;
    s_list_init (&got);
    cart_log_t *log = s_open (&options, 3, &got);

    char pid[32];
    snprintf (pid, sizeof (pid), "process %d", (int)getpid ());
    for (int attempt = 0; attempt < 2; attempt++) {
        //  A failed open must not release the holder's lock either
        const char *error = NULL;
        s_list_clear (&got);
        cart_log_t *second = cart_log_open (&options, 3, 0, s_replay, &got, &error);
        assert_null (second);
        assert_non_null (error);
        if (!strstr (error, pid))
            print_error ("error: %s\n", error);
        assert_non_null (strstr (error, pid));
        assert_non_null (strstr (error, "shard 3"));
    }
    //  Another shard in the same directory is another lock
    cart_log_t *other = s_open (&options, 4, &got);

    //  The holder still writes
    assert_int_equal (cart_log_append (log, "x", 1), 0);
    s_commit (log);
    cart_log_close (&log);
    cart_log_close (&other);

    log = s_open (&options, 3, &got);
    assert_int_equal (got.count, 1);
    assert_memory_equal (got.items[0].data, "x", 1);
    cart_log_close (&log);
    s_list_clear (&got);
}

//  --------------------------------------------------------------------------
//  6. A replay that refuses a record

static void
test_replay_refuses (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    enum { COUNT = 10, REFUSED = 6 };
    s_list_t want, got;
    s_list_init (&want);
    s_list_init (&got);
    uint64_t starts[COUNT + 1];
    s_make_log (self, &want, COUNT, 1, 300, 3, 6, starts);
    size_t size;
    uint8_t *original = test_read_file (self->log_path, &size);

    cart_log_options_t options = s_options (self, CART_FSYNC_NO);
    got.refuse_at = REFUSED;
    const char *error = NULL;
    cart_log_t *log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
    assert_null (log);
    assert_non_null (error);
    char needle[64];
    snprintf (needle, sizeof (needle), "offset %llu",
              (unsigned long long)starts[REFUSED]);
    if (!strstr (error, needle))
        print_error ("error: %s\n", error);
    assert_non_null (strstr (error, needle));
    assert_non_null (strstr (error, self->log_path));
    assert_int_equal (got.calls, REFUSED + 1); //  stopped there
    s_assert_prefix (&got, &want, REFUSED);

    //  The log is left whole, and the shard free
    size_t after_size;
    uint8_t *after = test_read_file (self->log_path, &after_size);
    assert_int_equal (after_size, size);
    assert_memory_equal (after, original, size);
    free (after);
    got.refuse_at = SIZE_MAX;
    log = s_open (&options, 0, &got);
    s_assert_prefix (&got, &want, COUNT);
    cart_log_close (&log);

    //  Refusing the first record too
    got.refuse_at = 0;
    s_list_clear (&got);
    error = NULL;
    log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
    assert_null (log);
    assert_non_null (strstr (error, "offset 0"));
    assert_non_null (strstr (error, "--repair"));

    //  --repair cuts the log before the record refused, keeping a copy
    options.repair = true;
    got.refuse_at = REFUSED;
    s_list_clear (&got);
    test_quiet_begin (self->dir);
    log = cart_log_open (&options, 0, 0, s_replay, &got, &error);
    free (test_quiet_end ());
    assert_non_null (log);
    s_assert_prefix (&got, &want, REFUSED);
    assert_int_equal (cart_log_stats (log)->cut_at, starts[REFUSED]);
    assert_int_equal (cart_log_sequence (log), REFUSED);
    cart_log_close (&log);
    assert_int_equal (test_file_size (self->log_path), (long long)starts[REFUSED]);
    char copy_path[192];
    s_damaged_path (self, starts[REFUSED], copy_path, sizeof (copy_path));
    size_t kept_size;
    uint8_t *kept = test_read_file (copy_path, &kept_size);
    assert_int_equal (kept_size, size);
    assert_memory_equal (kept, original, size);
    free (kept);

    free (original);
    s_list_clear (&want);
    s_list_clear (&got);
}

//  A log that starts after a snapshot: its records up to `after` are
//  skipped; one that starts beyond after + 1 (a lost snapshot or old log)
//  is refused, however short it is, and never cut as a torn write.
static void
test_gap (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_list_t got;
    s_list_init (&got);
    cart_log_options_t options = s_options (self, CART_FSYNC_NO);
    const char *error = NULL;
    cart_log_t *log = cart_log_open (&options, 0, 999, s_replay, &got, &error);
    assert_non_null (log);
    for (int i = 0; i < 10; i++)
        assert_int_equal (cart_log_append (log, "change", 6), 0);
    s_commit (log);
    assert_int_equal (cart_log_sequence (log), 1009);
    cart_log_close (&log);
    long long size = test_file_size (self->log_path);

    //  After 1004: 1000..1004 checked and skipped, 1005..1009 replayed
    s_list_clear (&got);
    log = cart_log_open (&options, 0, 1004, s_replay, &got, &error);
    assert_non_null (log);
    assert_int_equal (got.count, 5);
    assert_int_equal (cart_log_sequence (log), 1009);
    cart_log_close (&log);

    //  After 998: record 999 is missing
    for (int repair = 0; repair < 2; repair++) {
        options.repair = repair;
        s_list_clear (&got);
        error = NULL;
        test_quiet_begin (self->dir);
        log = cart_log_open (&options, 0, 998, s_replay, &got, &error);
        free (test_quiet_end ());
        if (repair && log) //  a repair keeps a copy and cuts at the gap
            cart_log_close (&log);
        else {
            assert_null (log);
            assert_non_null (strstr (error, "missing"));
            assert_int_equal (test_file_size (self->log_path), size); //  untouched
        }
    }
    s_list_clear (&got);
}

//  --------------------------------------------------------------------------
//  7. The fsync policies

//  This process's threads.
static int
s_threads (void)
{
    DIR *dir = opendir ("/proc/self/task");
    assert_non_null (dir);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (entry->d_name[0] != '.')
            count++;
    closedir (dir);
    return count;
}

static double
s_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

//  Polls, for at most 2 s, until this process has one thread more than
//  threads and that thread sleeps (state S in /proc: the everysec thread
//  in its timed wait, as this thread holds none of the module's locks).
static bool
s_wait_sync_thread_sleeps (int threads)
{
    double deadline = s_now () + 2;
    long me = (long)syscall (SYS_gettid);
    while (s_now () < deadline) {
        DIR *dir = opendir ("/proc/self/task");
        assert_non_null (dir);
        int count = 0;
        bool sleeps = false;
        struct dirent *entry;
        while ((entry = readdir (dir))) {
            if (entry->d_name[0] == '.')
                continue;
            count++;
            if (atol (entry->d_name) == me)
                continue;
            char path[300], stat_text[512] = "";
            snprintf (path, sizeof (path), "/proc/self/task/%s/stat", entry->d_name);
            FILE *file = fopen (path, "r");
            if (file) {
                size_t got = fread (stat_text, 1, sizeof (stat_text) - 1, file);
                stat_text[got] = 0;
                fclose (file);
            }
            const char *end = strrchr (stat_text, ')');
            if (end && end[1] == ' ' && end[2] == 'S')
                sleeps = true;
        }
        closedir (dir);
        if (count == threads + 1 && sleeps)
            return true;
        sched_yield ();
    }
    return false;
}

static void
test_policies (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    cart_fsync_t policy = (cart_fsync_t)-1;
    assert_int_equal (cart_fsync_parse ("always", &policy), 0);
    assert_int_equal (policy, CART_FSYNC_ALWAYS);
    assert_int_equal (cart_fsync_parse ("everysec", &policy), 0);
    assert_int_equal (policy, CART_FSYNC_EVERYSEC);
    assert_int_equal (cart_fsync_parse ("no", &policy), 0);
    assert_int_equal (policy, CART_FSYNC_NO);
    const char *refused[] = {"",    "Always", "ALWAYS", "every", "everysecond", "none",
                             "no ", " no",    "yes",    "1",     "always\n"};
    for (size_t i = 0; i < sizeof (refused) / sizeof (refused[0]); i++) {
        policy = CART_FSYNC_ALWAYS;
        if (cart_fsync_parse (refused[i], &policy) != -1)
            print_error ("accepted '%s'\n", refused[i]);
        assert_int_equal (cart_fsync_parse (refused[i], &policy), -1);
        assert_int_equal (policy, CART_FSYNC_ALWAYS); //  untouched
    }
    assert_string_equal (cart_fsync_name (CART_FSYNC_ALWAYS), "always");
    assert_string_equal (cart_fsync_name (CART_FSYNC_EVERYSEC), "everysec");
    assert_string_equal (cart_fsync_name (CART_FSYNC_NO), "no");

    int threads = s_threads ();

    //  A round trip under each policy, one shard each
    const cart_fsync_t policies[] = {CART_FSYNC_ALWAYS, CART_FSYNC_EVERYSEC,
                                     CART_FSYNC_NO};
    uint64_t seed = 7;
    for (uint32_t p = 0; p < 3; p++) {
        cart_log_options_t options = s_options (self, policies[p]);
        s_list_t want, got;
        s_list_init (&want);
        s_list_init (&got);
        cart_log_t *log = s_open (&options, p, &got);
        assert_int_equal (s_threads (), threads + (policies[p] == CART_FSYNC_EVERYSEC));
        for (int i = 0; i < 40; i++) {
            s_append_random (log, &want, 1 + (size_t)(s_next (&seed) % 700), &seed);
            if (i % 9 == 8)
                s_commit (log);
        }
        cart_log_close (&log);
        assert_int_equal (s_threads (), threads);
        //  Reopened under every policy
        for (uint32_t q = 0; q < 3; q++) {
            options.fsync = policies[q];
            log = s_open (&options, p, &got);
            s_assert_prefix (&got, &want, 40);
            cart_log_close (&log);
        }
        s_list_clear (&want);
        s_list_clear (&got);
    }
    assert_int_equal (s_threads (), threads);

    //  Many everysec logs opened and closed in a row, interleaved: a close
    //  never waits out the thread's second, and the thread is gone after
    //  the last close
    enum { LOGS = 50 };
    cart_log_options_t options = s_options (self, CART_FSYNC_EVERYSEC);
    cart_log_t *logs[LOGS] = {NULL};
    s_list_t got;
    s_list_init (&got);
    double start = s_now ();
    for (uint32_t i = 0; i < LOGS; i++) {
        logs[i] = s_open (&options, 100 + i, &got);
        assert_int_equal (cart_log_append (logs[i], &i, sizeof (i)), 0);
        if (i % 3 == 2) {
            //  Close two of the three open now, the oldest first
            cart_log_close (&logs[i - 2]);
            cart_log_close (&logs[i]);
        }
    }
    for (uint32_t i = 0; i < LOGS; i++) //  the rest, in order
        cart_log_close (&logs[i]);
    assert_int_equal (s_threads (), threads);
    for (uint32_t round = 0; round < LOGS; round++) { //  one at a time
        cart_log_t *log = s_open (&options, 100 + round, &got);
        assert_int_equal (got.count, 1);
        assert_memory_equal (got.items[0].data, &round, sizeof (round));
        assert_int_equal (s_threads (), threads + 1);
        cart_log_close (&log);
        assert_int_equal (s_threads (), threads);
    }
    double took = s_now () - start;
    if (took > 5)
        print_error ("%d everysec opens and closes took %.1f s\n", 2 * LOGS, took);
    assert_true (took < 5);

    //  A close wakes the thread rather than waiting out its second: once
    //  the thread sleeps in its wait (polled in /proc, no sleep here), the
    //  close of the last everysec log takes far less than a second
    for (uint32_t round = 0; round < 3; round++) {
        cart_log_t *log = s_open (&options, 200 + round, &got);
        assert_true (s_wait_sync_thread_sleeps (threads));
        double before = s_now ();
        cart_log_close (&log);
        double close_took = s_now () - before;
        if (close_took >= 0.5)
            print_error ("the close took %.3f s\n", close_took);
        assert_true (close_took < 0.5);
        assert_int_equal (s_threads (), threads);
    }
    s_list_clear (&got);
}

//  --------------------------------------------------------------------------
//  8. The sizes refused

static void
test_sizes (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    cart_log_options_t options = s_options (self, CART_FSYNC_NO);
    s_list_t got;
    s_list_init (&got);
    uint8_t *big = malloc (CART_LOG_RECORD_MAX + 1);
    assert_non_null (big);
    uint64_t seed = 8;
    for (size_t i = 0; i <= CART_LOG_RECORD_MAX; i++)
        big[i] = (uint8_t)s_next (&seed);

    cart_log_t *log = s_open (&options, 0, &got);
    assert_int_equal (cart_log_append (log, big, 0), -1);
    assert_int_equal (cart_log_append (log, big, CART_LOG_RECORD_MAX + 1), -1);
    assert_int_equal (cart_log_append (log, big, SIZE_MAX), -1);
    assert_false (cart_log_pending (log));
    s_commit (log);
    assert_int_equal (test_file_size (self->log_path), 0);

    //  The refusals took no sequence numbers: the records after them replay
    assert_int_equal (cart_log_append (log, big, CART_LOG_RECORD_MAX), 0);
    assert_int_equal (cart_log_append (log, big, 0), -1);
    assert_int_equal (cart_log_append (log, big + 1, 1), 0);
    s_commit (log);
    cart_log_close (&log);
    assert_int_equal (test_file_size (self->log_path),
                      (long long)(2 * CART_LOG_HEAD + CART_LOG_RECORD_MAX + 1));
    log = s_open (&options, 0, &got);
    assert_int_equal (got.count, 2);
    assert_int_equal (cart_log_stats (log)->cut_at, 0);
    assert_int_equal (got.items[0].size, CART_LOG_RECORD_MAX);
    assert_memory_equal (got.items[0].data, big, CART_LOG_RECORD_MAX);
    assert_int_equal (got.items[1].size, 1);
    assert_int_equal (got.items[1].data[0], big[1]);
    cart_log_close (&log);
    free (big);
    s_list_clear (&got);
}

//  --------------------------------------------------------------------------
//  7b. Everysec logs opened and closed from several threads at once (the
//  workers of cartd are threads of one process). Run last: when the
//  module's thread bookkeeping breaks, the threads may be left stuck.

enum { CONC_THREADS = 4, CONC_ROUNDS = 300 };

typedef struct {
    const char *dir;
    uint32_t shard;
    atomic_int *failures;
    atomic_int *finished;
    pthread_mutex_t *lock;
    pthread_cond_t *wake;
} s_worker_t;

static int
s_ignore (void *arg, const void *payload, size_t size)
{
    return 0;
}

static void *
s_worker (void *args)
{
    s_worker_t *self = (s_worker_t *)args;
    cart_log_options_t options = {.dir = self->dir, .fsync = CART_FSYNC_EVERYSEC};
    for (int round = 0; round < CONC_ROUNDS; round++) {
        const char *error = NULL;
        cart_log_t *log =
            cart_log_open (&options, self->shard, 0, s_ignore, NULL, &error);
        if (!log || cart_log_append (log, &round, sizeof (round)) ||
            cart_log_commit (log, &error))
            atomic_fetch_add (self->failures, 1);
        cart_log_close (&log);
    }
    pthread_mutex_lock (self->lock);
    atomic_fetch_add (self->finished, 1);
    pthread_cond_signal (self->wake);
    pthread_mutex_unlock (self->lock);
    return NULL;
}

static void
test_everysec_threads (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    int threads = s_threads ();
    static atomic_int failures, finished;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
    static s_worker_t workers[CONC_THREADS];
    pthread_t ids[CONC_THREADS];
    atomic_store (&failures, 0);
    atomic_store (&finished, 0);
    for (uint32_t i = 0; i < CONC_THREADS; i++) {
        workers[i] = (s_worker_t){self->dir, i, &failures, &finished, &lock, &wake};
        assert_int_equal (pthread_create (&ids[i], NULL, s_worker, &workers[i]), 0);
    }
    //  A deadline, not a sleep: done is signalled by the last worker
    struct timespec until;
    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock (&lock);
    while (atomic_load (&finished) < CONC_THREADS)
        if (pthread_cond_timedwait (&wake, &lock, &until) != 0)
            break;
    int done = atomic_load (&finished);
    pthread_mutex_unlock (&lock);
    if (done < CONC_THREADS) {
        print_error ("%d of %d threads still opening and closing everysec logs after "
                     "5 s (%d rounds each): stuck in cart_log_open/close\n",
                     CONC_THREADS - done, CONC_THREADS, CONC_ROUNDS);
        for (int i = 0; i < CONC_THREADS; i++)
            pthread_detach (ids[i]);
        fail ();
    }
    for (int i = 0; i < CONC_THREADS; i++)
        pthread_join (ids[i], NULL);
    assert_int_equal (atomic_load (&failures), 0);
    assert_int_equal (s_threads (), threads);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_truncation, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_flipped_small, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_damage_middle, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_damage_boundary, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_out_of_place, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_one_writer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_gap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_replay_refuses, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_policies, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_sizes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_everysec_threads, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
