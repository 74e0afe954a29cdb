/*  test_store - a shard's carts on disk (cart_store: snapshot, old log,
    log) against its contract, in process, without sockets.

    Every change is a real request body: a seeded random run of ADD, SET,
    REMOVE, CHECKOUT (and GET) for customers of the shard, encoded with
    cart_request_encode, applied to the store's partition with cart_apply
    and, when cart_apply_changed, appended and committed to the store's
    log, as the worker does. A second partition fed the same requests is
    the model: after every reopen the recovered partition must hold the
    model's carts, cart by cart and item by item.

    The tests: compaction round trips (several compactions, the log
    shrinking and the old log gone after each, then a reopen and
    cart_store_check); each state a crash can leave, built by hand from
    the files of a real run (a rotation cut between its link and its
    rename, a half-written snapshot, a snapshot renamed but the old log
    not yet removed, an old log beside the previous snapshot), each
    recovering to the model and, where a compaction is left, finishing it;
    damage refused by cart_store_check and by the open, naming the file:
    each byte of a snapshot flipped, the snapshot cut at each length,
    another shard's snapshot, an old log's bytes flipped (those of every
    record head, of its first and last records, one in eight of the rest);
    the open is tried on a sample of these, as each open rewrites the lock
    file and syncs the log. Then a log whose first record leaves a gap
    after the snapshot, refused; a store closed while its compaction runs
    on 50,000 carts; a failed compaction tried again (this one waits out
    RETRY_MS here).

    Every wait for a compaction is a bounded poll of cart_store_tick and
    cart_store_compacting with a deadline; nothing sleeps and hopes. Every
    test works in a fresh directory made by mkdtemp under /tmp, removed by
    its teardown.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cart_apply.h"
#include "cart_body.h"
#include "cart_hash.h"
#include "cart_log.h"
#include "cart_mpack.h"
#include "cart_ring.h"
#include "cart_snapshot.h"
#include "cart_store.h"
#include "cart_wire.h"
#include "test_files.h"

enum {
    SHARDS = 4,       //  the cluster's shard count
    SHARD = 2,        //  the shard under test
    OTHER_SHARD = 1,  //  another shard's snapshot, renamed
    CUSTOMERS = 16,   //  customers of the random runs
    ITEM_IDS = 10,    //  item ids they pick from
    BATCH = 8,        //  requests per commit
    WAIT_S = 10,      //  deadline of a compaction (ASan, a loaded machine)
    BIG_CARTS = 50000 //  the partition that a close stops compacting
};

//  The smallest compact_min (a compaction of a few KiB), and one never
//  reached
#define COMPACT_SMALL 4096ULL
#define COMPACT_NEVER (1ULL << 50)
#define RETRY_MS      500 //  a failed compaction is tried again after this

//  --------------------------------------------------------------------------
//  Helpers

//  splitmix64: every random choice, reproducible.
static uint64_t
s_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  A customer of the run, with its key.
typedef struct {
    char id[24];
    uint64_t key;
} s_customer_t;

//  Per test: a fresh directory, the open store, its partition, the model.
typedef struct {
    char dir[64];
    uint32_t shard; //  of the store opened and the customers made
    cart_store_t *store;
    cart_partition_t *part;  //  the store's
    cart_partition_t *model; //  the same requests, never stored
    s_customer_t *customers;
    size_t n_customers;
    uint64_t seed;
    msgpack_sbuffer body;
    //  What s_history made
    cart_partition_t *model_l; //  the carts at record L
    uint64_t c0, l, e;         //  snap0 covers c0, log1 ends at l, log2 at e
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *self = calloc (1, sizeof (s_fixture_t));
    if (!self)
        return -1;
    snprintf (self->dir, sizeof (self->dir), "/tmp/test_store.XXXXXX");
    if (!mkdtemp (self->dir)) {
        free (self);
        return -1;
    }
    self->shard = SHARD;
    self->seed = 20261201;
    self->model = cart_partition_new ();
    msgpack_sbuffer_init (&self->body);
    *state = self;
    return 0;
}

static char *s_logged; //  what s_quiet_end read last

static int
s_teardown (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    if (test_saved_stderr != -1) { //  a test failed while quiet
        dup2 (test_saved_stderr, 2);
        close (test_saved_stderr);
        test_saved_stderr = -1;
    }
    //  A store left open by a failed test would hold the process's
    //  compaction slot (CART_COMPACT_PARALLEL) from the next tests
    cart_store_close (&self->store);
    free (s_logged);
    s_logged = NULL;
    cart_partition_destroy (&self->part);
    cart_partition_destroy (&self->model);
    cart_partition_destroy (&self->model_l);
    msgpack_sbuffer_destroy (&self->body);
    free (self->customers);
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

//  The path of one of the shard's files, in one of a few rotating buffers
//  (so that a call can take two or three).
static const char *
s_file (const s_fixture_t *self, cart_file_t which)
{
    static char paths[4][256];
    static int next;
    char *path = paths[next++ % 4];
    assert_int_equal (cart_log_file (path, 256, self->dir, self->shard, which), 0);
    return path;
}

//  The path of a kept copy (a name the store never reads).
static const char *
s_kept (const s_fixture_t *self, const char *tag)
{
    static char paths[2][256];
    static int next;
    char *path = paths[next++ % 2];
    snprintf (path, 256, "%s/keep-%s", self->dir, tag);
    return path;
}

static bool
s_exists (const char *path)
{
    struct stat info;
    return stat (path, &info) == 0;
}

//  Copies the first `limit` bytes of from (all of it: SIZE_MAX) to to.
static void
s_copy (const char *from, const char *to, size_t limit)
{
    size_t size;
    uint8_t *data = test_read_file (from, &size);
    test_write_file (to, data, size < limit ? size : limit);
    free (data);
}

//  Removes every file of the shard.
static void
s_clear (const s_fixture_t *self)
{
    for (int which = CART_FILE_LOG; which <= CART_FILE_LOCK; which++)
        unlink (s_file (self, (cart_file_t)which));
}

//  Restores stderr (test_quiet_begin); returns what was written, valid
//  until the next call (the teardown frees the last).
static char *
s_quiet_end (void)
{
    free (s_logged);
    s_logged = test_quiet_end ();
    return s_logged;
}

static void
s_assert_has (const char *text, const char *needle)
{
    if (!text || !strstr (text, needle))
        fail_msg ("expected \"%s\" in: %s", needle, text ? text : "(nothing)");
}

//  --------------------------------------------------------------------------
//  The carts: customers, requests, the model

//  Makes count customers of self->shard ("c-N" whose key the ring gives
//  to it).
static void
s_customers (s_fixture_t *self, size_t count)
{
    free (self->customers);
    self->customers = calloc (count, sizeof (s_customer_t));
    assert_non_null (self->customers);
    self->n_customers = 0;
    for (unsigned n = 0; self->n_customers < count; n++) {
        s_customer_t *customer = &self->customers[self->n_customers];
        snprintf (customer->id, sizeof (customer->id), "c-%u", n);
        customer->key = cart_hash_key (customer->id, strlen (customer->id));
        if (cart_ring_shard (customer->key, SHARDS) == self->shard)
            self->n_customers++;
    }
}

//  Asserts that got holds exactly want's carts, each with the same items
//  in the same order and the same version, and want's change count.
static void
s_assert_same (cart_partition_t *got, cart_partition_t *want)
{
    assert_int_equal (cart_partition_carts (got), cart_partition_carts (want));
    assert_int_equal (cart_partition_items (got), cart_partition_items (want));
    assert_int_equal (cart_partition_changes (got), cart_partition_changes (want));
    size_t cursor = 0;
    cart_view_t view;
    uint64_t key;
    while (cart_partition_next (want, &cursor, &view, &key)) {
        cart_view_t other;
        if (cart_partition_get (got, key, view.customer, view.customer_len, &other) !=
            CART_OK)
            fail_msg ("customer '%.*s' has no cart after the reopen",
                      (int)view.customer_len, view.customer);
        assert_int_equal (other.n_items, view.n_items);
        assert_int_equal (other.version, view.version);
        cart_item_t a, b;
        while (cart_view_next (&view, &a)) {
            assert_true (cart_view_next (&other, &b));
            assert_int_equal (b.id_len, a.id_len);
            assert_memory_equal (b.id, a.id, a.id_len);
            assert_int_equal (b.count, a.count);
            assert_int_equal (b.price_cents, a.price_cents);
            assert_int_equal (b.special_sale, a.special_sale);
            assert_int_equal (b.expiry_len, a.expiry_len);
            assert_int_equal (b.expiry == NULL, a.expiry == NULL);
            if (a.expiry)
                assert_memory_equal (b.expiry, a.expiry, a.expiry_len);
        }
        assert_false (cart_view_next (&other, &b));
    }
}

//  A copy of part, versions and change count too.
static cart_partition_t *
s_clone (cart_partition_t *part)
{
    cart_partition_t *copy = cart_partition_new ();
    size_t cursor = 0;
    cart_view_t view;
    uint64_t key;
    while (cart_partition_next (part, &cursor, &view, &key)) {
        cart_item_t item;
        while (cart_view_next (&view, &item))
            assert_int_equal (cart_partition_add (copy, key, view.customer,
                                                  view.customer_len, &item, NULL),
                              CART_CREATED);
        assert_int_equal (cart_partition_restore (copy, key, view.customer,
                                                  view.customer_len, view.version,
                                                  view.touched),
                          CART_OK);
    }
    cart_partition_set_changes (copy, cart_partition_changes (part));
    return copy;
}

//  A random request of one of the run's customers; item_id[16] holds the
//  item's id.
static void
s_request (s_fixture_t *self, cart_request_t *req, char *item_id, uint64_t *key)
{
    uint64_t r = s_next (&self->seed);
    const s_customer_t *customer = &self->customers[r % self->n_customers];
    unsigned pick = (unsigned)((r >> 16) % 100);
    snprintf (item_id, 16, "sku-%u", (unsigned)((r >> 24) % ITEM_IDS));
    uint64_t more = s_next (&self->seed);
    *req = (cart_request_t){.customer = customer->id,
                            .customer_len = strlen (customer->id),
                            .item = {.id = item_id, .id_len = strlen (item_id)}};
    *key = customer->key;
    if (pick < 55) {
        req->op = CART_OP_ADD;
        req->item.count = 1 + (uint32_t)(more % 5);
        req->item.price_cents = (more >> 8) % 1000000;
        req->item.special_sale = (more >> 40) & 1;
        if ((more >> 41) & 1) {
            req->item.expiry = "2026-12-01T00:00:00Z";
            req->item.expiry_len = strlen (req->item.expiry);
        }
    } else if (pick < 75) {
        req->op = CART_OP_SET;
        req->item.count = (uint32_t)(more % 4); //  0 removes
    } else if (pick < 90)
        req->op = CART_OP_REMOVE;
    else if (pick < 95)
        req->op = CART_OP_CHECKOUT;
    else
        req->op = CART_OP_GET;
}

//  Applies req as the worker does: to the store's partition and, when it
//  changed it, to the log (buffered); and to the model.
static void
s_apply (s_fixture_t *self, const cart_request_t *req, uint64_t key)
{
    const char *error = NULL;
    self->body.size = 0;
    if (cart_request_encode (req, &self->body, &error))
        fail_msg ("cart_request_encode: %s", error);
    int status = cart_apply (self->part, req, key, NULL);
    assert_int_equal (cart_apply (self->model, req, key, NULL), status);
    if (cart_apply_changed (req, status))
        assert_int_equal (cart_log_append (cart_store_log (self->store), self->body.data,
                                           self->body.size),
                          0);
}

static void
s_commit (s_fixture_t *self)
{
    const char *error = NULL;
    if (cart_log_commit (cart_store_log (self->store), &error))
        fail_msg ("cart_log_commit: %s", error);
}

//  count random requests, then a commit.
static void
s_batch (s_fixture_t *self, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        cart_request_t req;
        char item_id[16];
        uint64_t key;
        s_request (self, &req, item_id, &key);
        s_apply (self, &req, key);
    }
    s_commit (self);
}

//  count requests in batches, each commit followed by a tick (the worker's
//  way).
static void
s_run (s_fixture_t *self, size_t count)
{
    for (size_t done = 0; done < count; done += BATCH) {
        s_batch (self, count - done < BATCH ? count - done : BATCH);
        cart_store_tick (self->store);
    }
}

//  --------------------------------------------------------------------------
//  The store

static cart_store_options_t
s_options (const s_fixture_t *self, uint64_t compact_min)
{
    return (cart_store_options_t){.log = {.dir = self->dir, .fsync = CART_FSYNC_NO},
                                  .shards = SHARDS,
                                  .compact_min = compact_min,
                                  .retry_ms = RETRY_MS};
}

//  Opens the store into a fresh self->part, asserting success.
static void
s_open (s_fixture_t *self, uint64_t compact_min)
{
    assert_null (self->store);
    cart_partition_destroy (&self->part);
    self->part = cart_partition_new ();
    cart_store_options_t options = s_options (self, compact_min);
    const char *error = NULL;
    self->store = cart_store_open (&options, self->shard, self->part, &error);
    if (!self->store)
        fail_msg ("cart_store_open of shard %u in %s: %s", self->shard, self->dir,
                  error ? error : "(no error)");
}

static void
s_close (s_fixture_t *self)
{
    cart_store_close (&self->store);
    assert_null (self->store);
}

//  Opens, asserts that the store holds the model's carts, closes.
static void
s_reopen_same (s_fixture_t *self, cart_partition_t *want)
{
    s_open (self, COMPACT_NEVER);
    s_assert_same (self->part, want);
    s_close (self);
}

//  Asserts that the open is refused with an error naming `path` and
//  holding `why`; returns a copy of the error (free it). What the open
//  wrote on stderr is shown if it was not refused.
static char *
s_refused (s_fixture_t *self, const char *path, const char *why)
{
    cart_partition_t *part = cart_partition_new ();
    cart_store_options_t options = s_options (self, COMPACT_NEVER);
    const char *error = NULL;
    test_quiet_begin (self->dir);
    cart_store_t *store = cart_store_open (&options, self->shard, part, &error);
    char *logged = s_quiet_end ();
    cart_partition_destroy (&part);
    if (store) {
        self->store = store; //  closed by the teardown
        fail_msg ("the open of shard %u was not refused (want an error naming '%s', "
                  "\"%s\"); it wrote: %s",
                  self->shard, path, why, logged);
    }
    assert_non_null (error);
    s_assert_has (error, path);
    s_assert_has (error, why);
    return strdup (error);
}

//  cart_store_check of the shard; returns its rc, *text what it wrote.
static int
s_check (const s_fixture_t *self, char **text, const char **error)
{
    size_t size;
    FILE *out = open_memstream (text, &size);
    assert_non_null (out);
    *error = NULL;
    int rc = cart_store_check (self->dir, self->shard, SHARDS, out, error);
    fclose (out);
    return rc;
}

//  Waits for the compaction in progress (if any) to finish, ticking as the
//  worker does, for at most WAIT_S seconds. Returns false if it did not.
static bool
s_wait_done (s_fixture_t *self)
{
    int64_t deadline = s_now_ms () + WAIT_S * 1000;
    while (cart_store_compacting (self->store)) {
        cart_store_tick (self->store);
        if (!cart_store_compacting (self->store))
            break;
        if (s_now_ms () > deadline)
            return false;
        struct timespec nap = {0, 1000000};
        nanosleep (&nap, NULL);
    }
    return true;
}

static void
s_wait (s_fixture_t *self)
{
    if (!s_wait_done (self))
        fail_msg ("shard %u's compaction still runs after %d s", self->shard, WAIT_S);
}

//  Ticks once, which must start a compaction (left at open, or due), and
//  waits for it; asserts that it finished, leaving no old log and no new
//  snapshot, with the snapshot covering `covered`.
static void
s_compact_now (s_fixture_t *self, uint64_t covered)
{
    const cart_store_stats_t *stats = cart_store_stats (self->store);
    uint64_t before = stats->compactions;
    test_quiet_begin (self->dir);
    cart_store_tick (self->store);
    bool started = cart_store_compacting (self->store);
    bool done = s_wait_done (self);
    char *logged = s_quiet_end ();
    if (!done)
        fail_msg ("shard %u's compaction still runs after %d s; it wrote: %s",
                  self->shard, WAIT_S, logged);
    if (!started)
        fail_msg ("a tick started no compaction of shard %u; it wrote: %s", self->shard,
                  logged);
    if (stats->failures || stats->compactions != before + 1)
        fail_msg ("shard %u: %llu compaction(s) finished, %llu failed; it wrote: %s",
                  self->shard, (unsigned long long)(stats->compactions - before),
                  (unsigned long long)stats->failures, logged);
    assert_false (s_exists (s_file (self, CART_FILE_OLD_LOG)));
    assert_false (s_exists (s_file (self, CART_FILE_NEW_SNAPSHOT)));
    assert_true (stats->snapshot.present);
    assert_int_equal (stats->snapshot.covered, covered);
}

//  Ticks and waits for whatever compaction that starts (one left at the
//  open, or none if the open settled it itself); asserts that none failed
//  and that no old log and no new snapshot is left.
static void
s_settle (s_fixture_t *self)
{
    const cart_store_stats_t *stats = cart_store_stats (self->store);
    test_quiet_begin (self->dir);
    cart_store_tick (self->store);
    bool done = s_wait_done (self);
    char *logged = s_quiet_end ();
    if (!done)
        fail_msg ("shard %u's compaction still runs after %d s; it wrote: %s",
                  self->shard, WAIT_S, logged);
    if (stats->failures)
        fail_msg ("shard %u: %llu compaction(s) failed; it wrote: %s", self->shard,
                  (unsigned long long)stats->failures, logged);
    assert_false (s_exists (s_file (self, CART_FILE_OLD_LOG)));
    assert_false (s_exists (s_file (self, CART_FILE_NEW_SNAPSHOT)));
}

//  Scans one file of records (check only; its first record may carry any
//  number); asserts it is whole.
static cart_log_scan_t
s_scan (const char *path)
{
    cart_log_scan_t scan = {.after = UINT64_MAX - 1};
    const char *error = NULL;
    int rc = cart_log_scan (path, &scan, &error);
    if (rc)
        fail_msg ("cart_log_scan of '%s': %s", path, rc == 1 ? "no such file" : error);
    if (scan.fault)
        fail_msg ("'%s' is damaged at %llu: %s", path, (unsigned long long)scan.fault_at,
                  scan.fault);
    return scan;
}

//  --------------------------------------------------------------------------
//  A real run's files, for the crash states

//  Runs the store through what makes every file a crash can leave, and
//  keeps a copy of each (keep-*):
//
//      snap0   the first snapshot, covering records 1..c0
//      log1    the log after it, records c0+1..l: what a rotation makes
//              the old log (shard-K.log.old)
//      snap1   the next snapshot, made by a real compaction of snap0 and
//              log1: it covers l
//      log2    the log after that rotation, records l+1..e (a few)
//
//  self->model holds the carts at e, self->model_l those at l. Leaves no
//  shard file behind.
static void
s_history (s_fixture_t *self, size_t log1_requests, size_t log2_requests)
{
    s_customers (self, CUSTOMERS);
    //  snap0: the first compaction that comes due
    s_open (self, COMPACT_SMALL);
    for (int i = 0; !cart_store_compacting (self->store); i++) {
        assert_true (i < 10000);
        s_batch (self, BATCH);
        cart_store_tick (self->store);
    }
    s_wait (self);
    const cart_store_stats_t *stats = cart_store_stats (self->store);
    assert_int_equal (stats->compactions, 1);
    self->c0 = stats->snapshot.covered;
    assert_int_equal (self->c0, cart_log_sequence (cart_store_log (self->store)));
    s_close (self);
    s_copy (s_file (self, CART_FILE_SNAPSHOT), s_kept (self, "snap0"), SIZE_MAX);

    //  log1: nothing comes due
    s_open (self, COMPACT_NEVER);
    s_run (self, log1_requests);
    self->l = cart_log_sequence (cart_store_log (self->store));
    assert_false (cart_store_compacting (self->store));
    s_close (self);
    s_copy (s_file (self, CART_FILE_LOG), s_kept (self, "log1"), SIZE_MAX);
    self->model_l = s_clone (self->model);

    //  snap1: the compaction of snap0 and log1, due at the first tick
    s_open (self, COMPACT_SMALL);
    s_compact_now (self, self->l);
    s_copy (s_file (self, CART_FILE_SNAPSHOT), s_kept (self, "snap1"), SIZE_MAX);

    //  log2: no tick, so nothing more is compacted
    for (size_t done = 0; done < log2_requests; done += BATCH)
        s_batch (self, log2_requests - done < BATCH ? log2_requests - done : BATCH);
    self->e = cart_log_sequence (cart_store_log (self->store));
    s_close (self);
    s_copy (s_file (self, CART_FILE_LOG), s_kept (self, "log2"), SIZE_MAX);

    //  What each file holds, as named above
    cart_log_scan_t scan = s_scan (s_kept (self, "log1"));
    assert_int_equal (scan.first, self->c0 + 1);
    assert_int_equal (scan.last, self->l);
    scan = s_scan (s_kept (self, "log2"));
    assert_int_equal (scan.first, self->l + 1);
    assert_int_equal (scan.last, self->e);
    assert_true (self->l - self->c0 > 50 && self->e - self->l > 5);
    s_clear (self);
}

//  Puts a kept copy in place of one of the shard's files.
static void
s_place (s_fixture_t *self, const char *tag, cart_file_t which)
{
    s_copy (s_kept (self, tag), s_file (self, which), SIZE_MAX);
}

//  --------------------------------------------------------------------------
//  1. Compaction round trip

//  Many random requests at the smallest compact_min, through at least
//  ROUNDS compactions while the requests go on. After each: the old log
//  is gone, the log is smaller than it was at the rotation and starts
//  right after the new snapshot. Then a reopen holds the model, and
//  cart_store_check finds every file whole and the same carts.
static void
test_compaction_round_trip (void **state)
{
    enum { ROUNDS = 8, REQUESTS_MAX = 40000, AFTER = 3 };
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 3 * CUSTOMERS);
    s_open (self, COMPACT_SMALL);
    const cart_store_stats_t *stats = cart_store_stats (self->store);
    const char *log_path = s_file (self, CART_FILE_LOG);
    char log[256];
    snprintf (log, sizeof (log), "%s", log_path);
    long long at_rotation = 0;
    uint64_t covered = 0, before = 0;
    int batches_since = -1; //  since the compaction started; -1: none runs
    size_t requests = 0;
    while (stats->compactions < ROUNDS) {
        if (requests > REQUESTS_MAX)
            fail_msg ("%llu compaction(s) after %zu requests; want %d",
                      (unsigned long long)stats->compactions, requests, ROUNDS);
        s_batch (self, BATCH);
        requests += BATCH;
        long long size = test_file_size (log);
        uint64_t sequence = cart_log_sequence (cart_store_log (self->store));
        cart_store_tick (self->store);
        if (batches_since == -1 && cart_store_compacting (self->store)) {
            //  This tick rotated the log: the snapshot will cover it
            batches_since = 0;
            at_rotation = size;
            covered = sequence;
            before = stats->compactions;
            assert_true (at_rotation >= (long long)COMPACT_SMALL);
            continue;
        }
        //  A few batches go into the new log while the compaction runs,
        //  fewer bytes than compact_min, so that none comes due
        if (batches_since == -1 || ++batches_since < AFTER)
            continue;
        s_wait (self);
        batches_since = -1;
        assert_int_equal (stats->failures, 0);
        assert_int_equal (stats->compactions, before + 1);
        assert_int_equal (stats->snapshot.covered, covered);
        assert_false (s_exists (s_file (self, CART_FILE_OLD_LOG)));
        assert_false (s_exists (s_file (self, CART_FILE_NEW_SNAPSHOT)));
        assert_true (test_file_size (log) < at_rotation);
        cart_log_scan_t scan = s_scan (log);
        assert_int_equal (scan.first, covered + 1);
        assert_int_equal (scan.last, cart_log_sequence (cart_store_log (self->store)));
        assert_int_equal (test_file_size (s_file (self, CART_FILE_SNAPSHOT)),
                          (long long)stats->snapshot.bytes);
    }
    uint64_t sequence = cart_log_sequence (cart_store_log (self->store));
    uint64_t snapshot_covered = stats->snapshot.covered;
    s_close (self);
    print_message ("  %zu requests, %llu records, %d compactions, %zu carts, %zu items\n",
                   requests, (unsigned long long)sequence, ROUNDS,
                   cart_partition_carts (self->model),
                   cart_partition_items (self->model));
    assert_true (cart_partition_carts (self->model) > 0);

    //  The reopen: the snapshot, then the log's records after it
    s_open (self, COMPACT_NEVER);
    s_assert_same (self->part, self->model);
    stats = cart_store_stats (self->store);
    assert_true (stats->snapshot.present);
    assert_int_equal (stats->snapshot.covered, snapshot_covered);
    assert_int_equal (stats->replayed, sequence - snapshot_covered);
    assert_int_equal (cart_log_sequence (cart_store_log (self->store)), sequence);
    s_close (self);

    char *text = NULL;
    const char *error;
    int rc = s_check (self, &text, &error);
    if (rc)
        fail_msg ("cart_store_check: %s; it wrote:\n%s", error, text);
    char holds[128];
    snprintf (holds, sizeof (holds), "holds %zu carts, %zu items, up to record %llu",
              cart_partition_carts (self->model), cart_partition_items (self->model),
              (unsigned long long)sequence);
    s_assert_has (text, holds);
    s_assert_has (text, "whole");
    free (text);
}

//  --------------------------------------------------------------------------
//  2. Crash states

//  (a) A crash between the rotation's link and its rename: the log has
//  its second name (shard-K.log.old, the same file), and the next log was
//  made (shard-K.log.new, empty) but did not take the log's name. Every
//  record is in both names: the open removes the next log and applies
//  each record once (whether it takes the old log as one to compact or
//  drops the second name); after a tick, and the compaction it may
//  resume, no old log is left, and a reopen holds the same carts.
static void
test_crash_after_link (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_history (self, 200, 20);
    s_place (self, "snap0", CART_FILE_SNAPSHOT);
    s_place (self, "log1", CART_FILE_LOG);
    assert_int_equal (
        link (s_file (self, CART_FILE_LOG), s_file (self, CART_FILE_OLD_LOG)), 0);
    test_write_file (s_file (self, CART_FILE_NEW_LOG), NULL, 0);
    s_open (self, COMPACT_NEVER);
    assert_false (s_exists (s_file (self, CART_FILE_NEW_LOG)));
    s_assert_same (self->part, self->model_l);
    const cart_store_stats_t *stats = cart_store_stats (self->store);
    assert_int_equal (stats->snapshot.covered, self->c0);
    assert_int_equal (stats->replayed, self->l - self->c0); //  once, not twice
    assert_int_equal (cart_log_sequence (cart_store_log (self->store)), self->l);
    s_settle (self);
    s_close (self);
    s_reopen_same (self, self->model_l);
}

//  (a), then the worker serves a batch before its first tick (it ticks
//  after every commit): the changes go to the log, the file that the old
//  log also names if the open kept that name. A compaction the tick
//  resumes must not fail on it, no old log be left, nothing be lost.
static void
test_crash_after_link_then_write (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_history (self, 200, 20);
    s_place (self, "snap0", CART_FILE_SNAPSHOT);
    s_place (self, "log1", CART_FILE_LOG);
    assert_int_equal (
        link (s_file (self, CART_FILE_LOG), s_file (self, CART_FILE_OLD_LOG)), 0);
    cart_partition_destroy (&self->model);
    self->model = s_clone (self->model_l); //  the carts at l, then this batch
    s_open (self, COMPACT_NEVER);
    s_assert_same (self->part, self->model);
    s_batch (self, BATCH);
    uint64_t sequence = cart_log_sequence (cart_store_log (self->store));
    assert_true (sequence > self->l);
    s_settle (self);
    s_close (self);
    s_reopen_same (self, self->model);
}

//  (b) A crash while a compaction writes its snapshot: a half-written
//  shard-K.snap.new beside the previous snapshot, the old log and the
//  log. The open ignores and removes it, and recovers from the previous
//  snapshot and both logs.
static void
test_crash_half_snapshot (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_history (self, 200, 20);
    s_place (self, "snap0", CART_FILE_SNAPSHOT);
    s_place (self, "log1", CART_FILE_OLD_LOG);
    s_place (self, "log2", CART_FILE_LOG);
    long long whole = test_file_size (s_kept (self, "snap1"));
    s_copy (s_kept (self, "snap1"), s_file (self, CART_FILE_NEW_SNAPSHOT),
            (size_t)whole / 2);
    s_open (self, COMPACT_NEVER);
    assert_false (s_exists (s_file (self, CART_FILE_NEW_SNAPSHOT)));
    s_assert_same (self->part, self->model);
    const cart_store_stats_t *stats = cart_store_stats (self->store);
    assert_int_equal (stats->snapshot.covered, self->c0);
    assert_int_equal (stats->replayed, self->e - self->c0);
    //  The compaction left is done again, from the files
    s_compact_now (self, self->l);
    s_close (self);
    s_reopen_same (self, self->model);
}

//  (c) A crash after the new snapshot took its name but before the old
//  log was removed: every record of the old log is covered by the
//  snapshot, so each is checked and skipped; only the log is replayed.
//  What is left to do is to remove the old log (at the open, or by the
//  compaction a tick resumes); the snapshot is not made again.
static void
test_crash_before_unlink (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_history (self, 200, 20);
    s_place (self, "snap1", CART_FILE_SNAPSHOT);
    s_place (self, "log1", CART_FILE_OLD_LOG);
    s_place (self, "log2", CART_FILE_LOG);
    struct stat before;
    assert_int_equal (stat (s_file (self, CART_FILE_SNAPSHOT), &before), 0);
    s_open (self, COMPACT_NEVER);
    s_assert_same (self->part, self->model);
    const cart_store_stats_t *stats = cart_store_stats (self->store);
    assert_int_equal (stats->snapshot.covered, self->l);
    assert_int_equal (stats->replayed, self->e - self->l);
    s_settle (self);
    assert_int_equal (stats->snapshot.covered, self->l);
    //  Nothing to rebuild: the snapshot is the file that was there
    struct stat after;
    assert_int_equal (stat (s_file (self, CART_FILE_SNAPSHOT), &after), 0);
    assert_int_equal (after.st_ino, before.st_ino);
    s_close (self);
    s_reopen_same (self, self->model);
}

//  (d) A crash while a compaction runs, before its rename: the previous
//  snapshot, the old log and the log. The open replays both logs; the
//  tick resumes the compaction, which makes the snapshot of the old log
//  and removes it.
static void
test_crash_before_rename (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_history (self, 200, 20);
    s_place (self, "snap0", CART_FILE_SNAPSHOT);
    s_place (self, "log1", CART_FILE_OLD_LOG);
    s_place (self, "log2", CART_FILE_LOG);
    s_open (self, COMPACT_NEVER);
    s_assert_same (self->part, self->model);
    const cart_store_stats_t *stats = cart_store_stats (self->store);
    assert_int_equal (stats->snapshot.covered, self->c0);
    assert_int_equal (stats->replayed, self->e - self->c0);
    s_compact_now (self, self->l);
    s_close (self);
    //  The snapshot made holds what the real run's did (perhaps in another
    //  order of carts: the same size), and the reopen reads it
    assert_int_equal (test_file_size (s_file (self, CART_FILE_SNAPSHOT)),
                      test_file_size (s_kept (self, "snap1")));
    s_open (self, COMPACT_NEVER);
    s_assert_same (self->part, self->model);
    assert_int_equal (cart_store_stats (self->store)->replayed, self->e - self->l);
    s_close (self);
}

//  --------------------------------------------------------------------------
//  3. Damage

//  Asserts that cart_store_check refuses the files and, when `open`, that
//  the open does too, naming path and saying why.
static void
s_assert_refused (s_fixture_t *self, bool open, const char *path, const char *why,
                  const char *what)
{
    char *text = NULL;
    const char *check_error;
    int rc = s_check (self, &text, &check_error);
    if (rc != -1)
        fail_msg ("cart_store_check passed %s; it wrote:\n%s", what, text);
    assert_non_null (check_error);
    s_assert_has (check_error, path);
    if (!strstr (text, "FAILED") && !strstr (text, "DAMAGED"))
        fail_msg ("cart_store_check of %s wrote neither FAILED nor DAMAGED:\n%s", what,
                  text);
    free (text);
    if (open)
        free (s_refused (self, path, why));
}

//  Which damaged states the open is tried on, beside the check (which
//  reads the same files through the same code, cart_snapshot_load and
//  cart_log_scan, and is tried on all): each open costs a truncating
//  write of the lock file and a sync, about 1.5 ms on ext4. The first and
//  last 64 bytes (the first records' heads, the snapshot's head and end),
//  and one byte in 24 elsewhere, drawn from the seeded PRNG.
static bool
s_try_open (s_fixture_t *self, size_t at, size_t size)
{
    return at < 64 || size - at <= 64 || s_next (&self->seed) % 24 == 0;
}

//  A record's payload length, from its head.
static size_t
s_length (const uint8_t *head)
{
    return ((size_t)head[0] << 24) | ((size_t)head[1] << 16) | ((size_t)head[2] << 8) |
           head[3];
}

//  A file of records' heads: head[at] is true where a record's 16-byte
//  head lies, and in its first and last record (free it).
static bool *
s_heads (const uint8_t *data, size_t size)
{
    bool *head = calloc (size ? size : 1, sizeof (bool));
    assert_non_null (head);
    size_t start = 0, last = 0;
    while (start + CART_LOG_HEAD <= size) {
        for (size_t at = start; at < start + CART_LOG_HEAD; at++)
            head[at] = true;
        last = start;
        start += CART_LOG_HEAD + s_length (data + start);
    }
    assert_int_equal (start, size);
    size_t first_end = size ? CART_LOG_HEAD + s_length (data) : 0;
    for (size_t at = 0; at < size; at++)
        head[at] = head[at] || at < first_end || at >= last;
    return head;
}

//  Flips the bytes of path in turn (by a random non-zero mask), asserting
//  each time that the files are refused, naming path and saying why: every
//  byte when `all`, else every byte of the records' heads and of the first
//  and last record, and one in eight of the other payload bytes (an old
//  log's check replays it, which costs more).
static void
s_flip_each (s_fixture_t *self, const char *path, const char *why, bool all)
{
    size_t size, flips = 0, opens = 0;
    uint8_t *data = test_read_file (path, &size);
    bool *head = s_heads (data, size);
    int fd = open (path, O_WRONLY);
    assert_true (fd != -1);
    for (size_t at = 0; at < size; at++) {
        if (!all && !head[at] && at % 8 != 0)
            continue;
        uint8_t flipped = data[at] ^ (uint8_t)(1 + s_next (&self->seed) % 255);
        assert_int_equal (pwrite (fd, &flipped, 1, (off_t)at), 1);
        char what[96];
        snprintf (what, sizeof (what), "'%s' flipped at byte %zu", path, at);
        bool open = s_try_open (self, at, size);
        flips++;
        opens += open;
        s_assert_refused (self, open, path, why, what);
        assert_int_equal (pwrite (fd, &data[at], 1, (off_t)at), 1);
    }
    close (fd);
    free (head);
    free (data);
    print_message ("  %zu of %zu bytes flipped one at a time (%zu opens)\n", flips, size,
                   opens);
}

//  Every byte of a snapshot flipped in turn: the check and the open
//  refuse it, naming the snapshot.
static void
test_damaged_snapshot (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_history (self, 200, 20);
    s_place (self, "snap0", CART_FILE_SNAPSHOT);
    s_place (self, "log1", CART_FILE_OLD_LOG);
    s_place (self, "log2", CART_FILE_LOG);
    char path[256];
    snprintf (path, sizeof (path), "%s", s_file (self, CART_FILE_SNAPSHOT));
    s_flip_each (self, path, "", true);
    s_reopen_same (self, self->model); //  and whole again
}

//  The snapshot cut at every length short of whole, 0 included: there is
//  no torn tail to cut in a snapshot (cut at a record's end, it has no
//  end record).
static void
test_truncated_snapshot (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_history (self, 200, 20);
    s_place (self, "snap1", CART_FILE_SNAPSHOT);
    s_place (self, "log2", CART_FILE_LOG);
    char path[256];
    snprintf (path, sizeof (path), "%s", s_file (self, CART_FILE_SNAPSHOT));
    size_t size, opens = 0;
    uint8_t *data = test_read_file (path, &size);
    //  Each record's start: a cut there leaves whole records only
    bool *start = calloc (size, sizeof (bool));
    assert_non_null (start);
    size_t at = 0;
    for (; at + CART_LOG_HEAD <= size; at += CART_LOG_HEAD + s_length (data + at))
        start[at] = true;
    assert_int_equal (at, size);
    //  Shorter and shorter, in place: a cut within the file's last block
    //  frees nothing (a truncation to zero and a rewrite each time costs a
    //  discard of the block on this disk)
    int fd = open (path, O_WRONLY);
    assert_true (fd != -1);
    for (size_t cut = size; cut-- > 0;) {
        assert_int_equal (ftruncate (fd, (off_t)cut), 0);
        char what[96];
        snprintf (what, sizeof (what), "a snapshot cut at %zu of %zu bytes", cut, size);
        bool open = start[cut] || s_try_open (self, cut, size);
        opens += open;
        s_assert_refused (self, open, path, start[cut] ? "no end record" : "", what);
    }
    close (fd);
    free (start);
    test_write_file (path, data, size);
    free (data);
    print_message ("  cut at each of %zu lengths (%zu opens)\n", size, opens);
    s_reopen_same (self, self->model);
}

//  Shard 1's snapshot renamed as shard 2's: its head says whose it is.
static void
test_other_shard_snapshot (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    self->shard = OTHER_SHARD;
    s_customers (self, CUSTOMERS);
    s_open (self, COMPACT_SMALL);
    for (int i = 0; !cart_store_compacting (self->store); i++) {
        assert_true (i < 10000);
        s_batch (self, BATCH);
        cart_store_tick (self->store);
    }
    s_wait (self);
    assert_int_equal (cart_store_stats (self->store)->compactions, 1);
    s_close (self);
    char from[256];
    snprintf (from, sizeof (from), "%s", s_file (self, CART_FILE_SNAPSHOT));
    self->shard = SHARD;
    assert_int_equal (rename (from, s_file (self, CART_FILE_SNAPSHOT)), 0);
    char why[64];
    snprintf (why, sizeof (why), "holds shard %d of %d, not shard %d of %d", OTHER_SHARD,
              SHARDS, SHARD, SHARDS);
    s_assert_refused (self, true, s_file (self, CART_FILE_SNAPSHOT), why,
                      "another shard's snapshot");
}

//  A snapshot copied over the old log: its records are numbered from 1,
//  all covered by the snapshot, so a start skips them; check-data decodes
//  what it skips and finds they are not changes.
static void
test_snapshot_as_old_log (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, CUSTOMERS);
    s_open (self, COMPACT_SMALL);
    for (int i = 0; !cart_store_compacting (self->store); i++) {
        assert_true (i < 10000);
        s_batch (self, BATCH);
        cart_store_tick (self->store);
    }
    s_wait (self);
    s_close (self);
    char snap[256];
    snprintf (snap, sizeof (snap), "%s", s_file (self, CART_FILE_SNAPSHOT));
    s_copy (snap, s_file (self, CART_FILE_OLD_LOG), SIZE_MAX);
    char *text = NULL;
    const char *error = NULL;
    int rc = s_check (self, &text, &error);
    if (rc != -1)
        print_error ("check-data:\n%s\n", text);
    assert_int_equal (rc, -1);
    s_assert_has (error, "is not a change");
    free (text);
}

//  Every byte of an old log flipped in turn: a rotated log was complete
//  when it was rotated, so no damage in it is a torn tail, the last
//  record's included.
static void
test_damaged_old_log (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_history (self, 200, 20);
    s_place (self, "snap0", CART_FILE_SNAPSHOT);
    s_place (self, "log1", CART_FILE_OLD_LOG);
    s_place (self, "log2", CART_FILE_LOG);
    char path[256];
    snprintf (path, sizeof (path), "%s", s_file (self, CART_FILE_OLD_LOG));
    s_flip_each (self, path, "damaged", false);
    s_reopen_same (self, self->model);
}

//  --------------------------------------------------------------------------
//  4. Records missing

//  State (d) without its old log: the log's first record (l+1) leaves a
//  gap after the snapshot (c0). The records l+1..e are whole and valid,
//  and what comes before them is lost: the open must refuse, saying
//  records are missing, and leave the log as it is; so must the check.
static void
test_gap_after_snapshot (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_history (self, 200, 20);
    s_place (self, "snap0", CART_FILE_SNAPSHOT);
    s_place (self, "log2", CART_FILE_LOG);
    long long size = test_file_size (s_file (self, CART_FILE_LOG));
    char *error = s_refused (self, s_file (self, CART_FILE_LOG), "missing");
    free (error);
    assert_int_equal (test_file_size (s_file (self, CART_FILE_LOG)), size); //  not cut
    char *text = NULL;
    const char *check_error;
    int rc = s_check (self, &text, &check_error);
    if (rc != -1)
        fail_msg ("cart_store_check passed a log with a gap; it wrote:\n%s", text);
    s_assert_has (check_error, "missing");
    free (text);
}

//  --------------------------------------------------------------------------
//  5. A close during a compaction

//  BIG_CARTS carts, one item each, then the tick that rotates and starts
//  the compaction, and a close at once: the close stops it (the new
//  snapshot is removed) or, if it was already done, it is whole; either
//  way no .snap.new is left and the reopen holds the model. Then the
//  compaction left is resumed and finishes.
static void
test_close_during_compaction (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, BIG_CARTS);
    s_open (self, COMPACT_SMALL);
    for (size_t i = 0; i < self->n_customers; i++) {
        const s_customer_t *customer = &self->customers[i];
        cart_request_t req = {.op = CART_OP_ADD,
                              .customer = customer->id,
                              .customer_len = strlen (customer->id),
                              .item = {.id = "sku-0",
                                       .id_len = 5,
                                       .count = 1 + (uint32_t)(i % 7),
                                       .price_cents = i}};
        s_apply (self, &req, customer->key);
        if (i % 256 == 255)
            s_commit (self); //  no tick: the compaction starts below
    }
    s_commit (self);
    uint64_t sequence = cart_log_sequence (cart_store_log (self->store));
    assert_int_equal (sequence, BIG_CARTS);
    cart_store_tick (self->store);
    assert_true (cart_store_compacting (self->store));
    int64_t start = s_now_ms ();
    s_close (self);
    int64_t took = s_now_ms () - start;
    assert_false (s_exists (s_file (self, CART_FILE_NEW_SNAPSHOT)));
    bool stopped = !s_exists (s_file (self, CART_FILE_SNAPSHOT));
    if (stopped) //  the old log holds everything (else the snapshot does)
        assert_true (s_exists (s_file (self, CART_FILE_OLD_LOG)));
    bool left = s_exists (s_file (self, CART_FILE_OLD_LOG));
    print_message ("  the close took %lld ms; the compaction was %s\n", (long long)took,
                   stopped ? "stopped" : "done");

    s_open (self, COMPACT_NEVER);
    s_assert_same (self->part, self->model);
    assert_int_equal (cart_log_sequence (cart_store_log (self->store)), sequence);
    if (left)
        s_compact_now (self, sequence);
    s_close (self);
    s_open (self, COMPACT_NEVER);
    s_assert_same (self->part, self->model);
    const cart_store_stats_t *stats = cart_store_stats (self->store);
    assert_int_equal (stats->snapshot.carts, BIG_CARTS);
    assert_int_equal (stats->replayed, 0);
    s_close (self);
}

//  --------------------------------------------------------------------------
//  6. A failed compaction, tried again

//  A compaction that fails (its snapshot cannot be made: a directory holds
//  the name shard-K.snap.new) loses nothing, and is tried again
//  CART_COMPACT_RETRY_MS later, while the worker goes on; once the cause
//  is gone, the retry must make the snapshot of the old log and remove it.
//  This test waits out the retry delay (RETRY_MS, idle).
static void
test_failed_compaction_retried (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, CUSTOMERS);
    s_open (self, COMPACT_SMALL);
    const char *fresh = s_file (self, CART_FILE_NEW_SNAPSHOT);
    char blocker[256];
    snprintf (blocker, sizeof (blocker), "%s", fresh);
    assert_int_equal (mkdir (blocker, 0755), 0);
    const cart_store_stats_t *stats = cart_store_stats (self->store);
    uint64_t covered = 0;
    test_quiet_begin (self->dir);
    for (int i = 0; !cart_store_compacting (self->store); i++) {
        assert_true (i < 10000);
        s_batch (self, BATCH);
        covered = cart_log_sequence (cart_store_log (self->store));
        cart_store_tick (self->store);
    }
    bool done = s_wait_done (self);
    char *logged = s_quiet_end ();
    assert_true (done);
    if (stats->failures != 1 || stats->compactions != 0)
        fail_msg ("the compaction with no room for its snapshot: %llu done, %llu "
                  "failed; it wrote: %s",
                  (unsigned long long)stats->compactions,
                  (unsigned long long)stats->failures, logged);
    s_assert_has (logged, "compaction failed");
    assert_true (s_exists (s_file (self, CART_FILE_OLD_LOG)));
    assert_int_equal (rmdir (blocker), 0);

    //  The worker goes on, its changes in the new log (fewer bytes than
    //  compact_min: no other compaction comes due), and ticks
    test_quiet_begin (self->dir);
    for (int i = 0; i < 3; i++) {
        s_batch (self, BATCH);
        cart_store_tick (self->store);
    }
    int64_t deadline = s_now_ms () + RETRY_MS + WAIT_S * 1000;
    while (stats->compactions == 0 && stats->failures == 1 && s_now_ms () < deadline) {
        cart_store_tick (self->store);
        struct timespec nap = {0, 20 * 1000000};
        nanosleep (&nap, NULL);
    }
    done = s_wait_done (self);
    logged = s_quiet_end ();
    assert_true (done);
    if (stats->failures != 1 || stats->compactions != 1)
        fail_msg ("the compaction tried again: %llu done, %llu failed in all; it "
                  "wrote: %s",
                  (unsigned long long)stats->compactions,
                  (unsigned long long)stats->failures, logged);
    assert_int_equal (stats->snapshot.covered, covered);
    assert_false (s_exists (s_file (self, CART_FILE_OLD_LOG)));
    assert_false (s_exists (s_file (self, CART_FILE_NEW_SNAPSHOT)));
    s_close (self);
    s_reopen_same (self, self->model);
}

//  --------------------------------------------------------------------------
//  Serving a request whole (cart_apply_run): idempotency keys, versions

//  A request of customer c (of self->customers) on item "sku-1".
static cart_request_t
s_req (const s_fixture_t *self, size_t c, cart_op_t op, uint32_t count, const char *idem)
{
    const char *id = self->customers[c].id;
    return (cart_request_t){
        .op = op,
        .customer = id,
        .customer_len = strlen (id),
        .item = {.id = "sku-1", .id_len = 5, .count = count, .price_cents = 100},
        .idem = idem,
        .idem_len = idem ? strlen (idem) : 0};
}

//  Serves req on part; the reply body is left in self->body.
static cart_outcome_t
s_serve (s_fixture_t *self, cart_partition_t *part, const cart_request_t *req,
         const cart_context_t *context)
{
    self->body.size = 0;
    cart_outcome_t outcome;
    cart_apply_run (part, req, cart_hash_key (req->customer, req->customer_len), context,
                    &self->body, &outcome);
    return outcome;
}

//  What "changes nothing" compares: the change count, the keys kept, the
//  carts and items.
typedef struct {
    uint64_t changes;
    size_t keys, carts, items;
} s_state_t;

static s_state_t
s_state (cart_partition_t *part)
{
    return (s_state_t){cart_partition_changes (part),
                       cart_idem_size (cart_partition_idem (part)),
                       cart_partition_carts (part), cart_partition_items (part)};
}

static void
s_assert_state (cart_partition_t *part, s_state_t before)
{
    s_state_t after = s_state (part);
    assert_int_equal (after.changes, before.changes);
    assert_int_equal (after.keys, before.keys);
    assert_int_equal (after.carts, before.carts);
    assert_int_equal (after.items, before.items);
}

//  The reply body in self->body is of this kind (and, for an item, has
//  this count; for a cart, this many items).
static void
s_assert_body (const s_fixture_t *self, cart_body_kind_t kind, size_t n)
{
    cart_reply_t reply;
    const char *error = NULL;
    if (cart_reply_decode (self->body.data, self->body.size, &reply, &error))
        fail_msg ("reply body: %s", error);
    assert_int_equal (reply.kind, kind);
    if (kind == CART_BODY_ITEM)
        assert_int_equal (reply.item.count, n);
    if (kind == CART_BODY_CART)
        assert_int_equal (reply.n_items, n);
}

static uint64_t
s_cart_version (cart_partition_t *part, const s_fixture_t *self, size_t c)
{
    const s_customer_t *customer = &self->customers[c];
    cart_view_t view;
    cart_partition_get (part, customer->key, customer->id, strlen (customer->id), &view);
    return view.version;
}

//  A keyed write is applied once; its retry gets the same answer, marked
//  replayed, and changes nothing; the key with another request is 422.
static void
test_apply_idempotent_write (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 2);
    self->part = cart_partition_new ();
    cart_context_t context = {.now = 1000, .seq = 5, .committed = 5};
    cart_request_t add = s_req (self, 0, CART_OP_ADD, 2, "k1");
    cart_outcome_t first = s_serve (self, self->part, &add, &context);
    assert_int_equal (first.status, CART_CREATED);
    assert_true (first.changed);
    assert_false (first.replayed);
    assert_int_equal (first.version, 1);
    s_assert_body (self, CART_BODY_ITEM, 2);
    char body[256];
    size_t size = self->body.size;
    memcpy (body, self->body.data, size);
    const cart_idem_entry_t *entry = cart_idem_find (
        cart_partition_idem (self->part), add.customer, add.customer_len, "k1", 2);
    assert_non_null (entry);
    assert_int_equal (entry->at, 1000);
    assert_int_equal (entry->seq, 5);

    //  Retries, later and with another time in the options
    s_state_t before = s_state (self->part);
    for (int retry = 0; retry < 2; retry++) {
        context.now = 1001 + (uint64_t)retry;
        add.at = (uint64_t)retry * 77;
        cart_outcome_t again = s_serve (self, self->part, &add, &context);
        assert_int_equal (again.status, CART_CREATED);
        assert_true (again.replayed);
        assert_false (again.changed);
        assert_int_equal (again.version, 1);
        assert_int_equal (self->body.size, size);
        assert_memory_equal (self->body.data, body, size);
        s_assert_state (self->part, before);
    }
    add.at = 0;

    //  The same key for another request: another count, item, operation
    cart_request_t others[] = {
        s_req (self, 0, CART_OP_ADD, 3, "k1"),
        s_req (self, 0, CART_OP_ADD, 2, "k1"),
        s_req (self, 0, CART_OP_SET, 2, "k1"),
        s_req (self, 0, CART_OP_REMOVE, 0, "k1"),
        s_req (self, 0, CART_OP_CHECKOUT, 0, "k1"),
    };
    others[1].item.id = "sku-2";
    for (size_t i = 0; i < sizeof (others) / sizeof (others[0]); i++) {
        cart_outcome_t other = s_serve (self, self->part, &others[i], &context);
        if (other.status != CART_UNPROCESSABLE)
            fail_msg ("another request %zu with the key: %d", i, other.status);
        assert_false (other.changed);
        assert_false (other.replayed);
        s_assert_body (self, CART_BODY_ERROR, 0);
        s_assert_state (self->part, before);
    }
    assert_int_equal (s_cart_version (self->part, self, 0), 1);

    //  Keys are per customer: another one's k1 is its own
    cart_request_t theirs = s_req (self, 1, CART_OP_ADD, 3, "k1");
    cart_outcome_t own = s_serve (self, self->part, &theirs, &context);
    assert_int_equal (own.status, CART_CREATED);
    assert_false (own.replayed);
    assert_int_equal (own.version, 2);

    //  A keyed change that removes the cart: version 0 (no cart), and so
    //  on its replay
    cart_request_t set0 = s_req (self, 0, CART_OP_SET, 0, "k2");
    cart_outcome_t gone = s_serve (self, self->part, &set0, &context);
    assert_int_equal (gone.status, CART_DELETED);
    assert_true (gone.changed);
    assert_int_equal (gone.version, 0);
    assert_int_equal (cart_partition_changes (self->part), 3);
    gone = s_serve (self, self->part, &set0, &context);
    assert_int_equal (gone.status, CART_DELETED);
    assert_true (gone.replayed);
    assert_int_equal (gone.version, 0);

    //  A keyed checkout: its replay has the cart it checked out
    cart_request_t checkout = s_req (self, 1, CART_OP_CHECKOUT, 0, "k3");
    cart_outcome_t out = s_serve (self, self->part, &checkout, &context);
    assert_int_equal (out.status, CART_OK);
    assert_int_equal (out.version, 0);
    s_assert_body (self, CART_BODY_CART, 1);
    before = s_state (self->part);
    out = s_serve (self, self->part, &checkout, &context);
    assert_int_equal (out.status, CART_OK);
    assert_true (out.replayed);
    assert_int_equal (out.version, 0);
    s_assert_body (self, CART_BODY_CART, 1);
    s_assert_state (self->part, before);
    //  Without its key the same checkout is a 404
    checkout.idem = NULL, checkout.idem_len = 0;
    assert_int_equal (s_serve (self, self->part, &checkout, &context).status,
                      CART_NOT_FOUND);
}

//  A retry while the first request's log record is not committed is 409;
//  once it is, the answer is replayed.
static void
test_apply_idem_pending (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 1);
    self->part = cart_partition_new ();
    cart_context_t context = {.now = 1000, .seq = 10, .committed = 9};
    cart_request_t add = s_req (self, 0, CART_OP_ADD, 2, "k");
    assert_int_equal (s_serve (self, self->part, &add, &context).status, CART_CREATED);
    s_state_t before = s_state (self->part);
    context.seq = 11;
    cart_outcome_t pending = s_serve (self, self->part, &add, &context);
    assert_int_equal (pending.status, CART_CONFLICT);
    assert_false (pending.changed);
    assert_false (pending.replayed);
    s_assert_body (self, CART_BODY_ERROR, 0);
    s_assert_state (self->part, before);
    context.committed = 10;
    cart_outcome_t replayed = s_serve (self, self->part, &add, &context);
    assert_int_equal (replayed.status, CART_CREATED);
    assert_true (replayed.replayed);
    s_assert_state (self->part, before);
}

//  A key older than idem_ttl is not replayed: the request runs again.
static void
test_apply_idem_ttl (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 1);
    self->part = cart_partition_new ();
    cart_context_t context = {.now = 1000, .idem_ttl = 60};
    cart_request_t add = s_req (self, 0, CART_OP_ADD, 2, "k");
    s_serve (self, self->part, &add, &context);
    context.now = 1059;
    assert_true (s_serve (self, self->part, &add, &context).replayed);
    context.now = 1060;
    cart_outcome_t late = s_serve (self, self->part, &add, &context);
    assert_int_equal (late.status, CART_OK); //  merged: applied twice
    assert_false (late.replayed);
    assert_true (late.changed);
    s_assert_body (self, CART_BODY_ITEM, 4);
    //  ... and is kept anew, with its new time
    context.now = 1119;
    assert_true (s_serve (self, self->part, &add, &context).replayed);
    //  idem_ttl 0 is CART_IDEM_TTL
    context = (cart_context_t){.now = 5000};
    cart_request_t other = s_req (self, 0, CART_OP_ADD, 1, "j");
    s_serve (self, self->part, &other, &context);
    context.now = 5000 + CART_IDEM_TTL - 1;
    assert_true (s_serve (self, self->part, &other, &context).replayed);
    context.now = 5000 + CART_IDEM_TTL;
    assert_false (s_serve (self, self->part, &other, &context).replayed);
}

//  If-Match: a version that is not the cart's is 412 with the cart and its
//  version, and changes nothing; * needs a cart; 0 names no cart.
static void
test_apply_if_match (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 2);
    self->part = cart_partition_new ();
    cart_context_t context = {.now = 1000};
    cart_request_t add = s_req (self, 0, CART_OP_ADD, 2, NULL);
    s_serve (self, self->part, &add, &context);
    s_serve (self, self->part, &add, &context);
    uint64_t version = s_cart_version (self->part, self, 0);
    assert_int_equal (version, 2);
    s_state_t before = s_state (self->part);
    const struct {
        cart_op_t op;
        cart_match_t match;
        uint64_t version;
    } failing[] = {
        {CART_OP_ADD, CART_MATCH_VERSION, 1},
        {CART_OP_SET, CART_MATCH_VERSION, 3},
        {CART_OP_REMOVE, CART_MATCH_VERSION, 0},
        {CART_OP_CHECKOUT, CART_MATCH_VERSION, 1},
        {CART_OP_GET, CART_MATCH_VERSION, 1},
    };
    for (size_t i = 0; i < sizeof (failing) / sizeof (failing[0]); i++) {
        cart_request_t req = s_req (self, 0, failing[i].op, 1, i % 2 ? "key" : NULL);
        req.match = failing[i].match;
        req.version = failing[i].version;
        cart_outcome_t outcome = s_serve (self, self->part, &req, &context);
        if (outcome.status != CART_PRECONDITION_FAILED)
            fail_msg ("condition %zu: %d", i, outcome.status);
        assert_int_equal (outcome.version, version);
        assert_false (outcome.changed);
        s_assert_body (self, CART_BODY_CART, 1);
        s_assert_state (self->part, before);
    }
    //  The right version: applied
    cart_request_t req = s_req (self, 0, CART_OP_SET, 7, NULL);
    req.match = CART_MATCH_VERSION;
    req.version = version;
    cart_outcome_t outcome = s_serve (self, self->part, &req, &context);
    assert_int_equal (outcome.status, CART_OK);
    assert_int_equal (outcome.version, 3);
    //  *: the cart exists
    req.match = CART_MATCH_ANY;
    assert_int_equal (s_serve (self, self->part, &req, &context).status, CART_OK);
    cart_request_t none = s_req (self, 1, CART_OP_ADD, 1, NULL);
    none.match = CART_MATCH_ANY;
    before = s_state (self->part);
    outcome = s_serve (self, self->part, &none, &context);
    assert_int_equal (outcome.status, CART_PRECONDITION_FAILED);
    assert_int_equal (outcome.version, 0);
    s_assert_body (self, CART_BODY_CART, 0);
    s_assert_state (self->part, before);
    //  0: there is no cart
    none.match = CART_MATCH_VERSION;
    none.version = 0;
    outcome = s_serve (self, self->part, &none, &context);
    assert_int_equal (outcome.status, CART_CREATED);
    assert_int_equal (outcome.version, cart_partition_changes (self->part));
    before = s_state (self->part);
    assert_int_equal (s_serve (self, self->part, &none, &context).status,
                      CART_PRECONDITION_FAILED);
    s_assert_state (self->part, before);
    //  A keyed retry is replayed, though the version it named has passed
    cart_request_t keyed = s_req (self, 1, CART_OP_ADD, 1, "once");
    keyed.match = CART_MATCH_VERSION;
    keyed.version = s_cart_version (self->part, self, 1);
    assert_int_equal (s_serve (self, self->part, &keyed, &context).status, CART_OK);
    outcome = s_serve (self, self->part, &keyed, &context);
    assert_int_equal (outcome.status, CART_OK);
    assert_true (outcome.replayed);
}

//  A GET's key is ignored: nothing kept, nothing replayed, never 422.
static void
test_apply_get_ignores_key (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 1);
    self->part = cart_partition_new ();
    cart_context_t context = {.now = 1000};
    cart_request_t get = s_req (self, 0, CART_OP_GET, 0, "k");
    cart_outcome_t outcome = s_serve (self, self->part, &get, &context);
    assert_int_equal (outcome.status, CART_OK);
    assert_int_equal (outcome.version, 0);
    assert_false (outcome.changed);
    s_assert_body (self, CART_BODY_CART, 0);
    assert_int_equal (cart_idem_size (cart_partition_idem (self->part)), 0);
    cart_request_t add = s_req (self, 0, CART_OP_ADD, 1, "k");
    s_serve (self, self->part, &add, &context);
    outcome = s_serve (self, self->part, &get, &context);
    assert_int_equal (outcome.status, CART_OK);
    assert_false (outcome.replayed);
    assert_int_equal (outcome.version, 1);
    s_assert_body (self, CART_BODY_CART, 1);
    //  A failed keyed write keeps nothing either
    cart_request_t missing = s_req (self, 0, CART_OP_REMOVE, 0, "k2");
    missing.item.id = "nope", missing.item.id_len = 4;
    assert_int_equal (s_serve (self, self->part, &missing, &context).status,
                      CART_NOT_FOUND);
    assert_int_equal (cart_idem_size (cart_partition_idem (self->part)), 1);
}

//  The record a worker logs for a served request: the request with its
//  time (cart_worker's s_run).
static void
s_logged_record (const cart_request_t *req, uint64_t at, msgpack_sbuffer *out)
{
    cart_request_t logged = *req;
    logged.at = at;
    out->size = 0;
    const char *error = NULL;
    if (cart_request_encode (&logged, out, &error))
        fail_msg ("cart_request_encode: %s", error);
}

//  Replaying a keyed record rebuilds its key's answer (the same body as
//  served), the cart's version and time.
static void
test_apply_record_keyed (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 1);
    self->part = cart_partition_new ();
    cart_partition_t *replayed = cart_partition_new ();
    msgpack_sbuffer record;
    msgpack_sbuffer_init (&record);
    cart_request_t reqs[] = {
        s_req (self, 0, CART_OP_ADD, 2, "a"),
        s_req (self, 0, CART_OP_ADD, 1, NULL),
        s_req (self, 0, CART_OP_SET, 5, "b"),
        s_req (self, 0, CART_OP_CHECKOUT, 0, "c"),
    };
    for (size_t i = 0; i < sizeof (reqs) / sizeof (reqs[0]); i++) {
        cart_context_t context = {.now = 2000 + i};
        cart_outcome_t outcome = s_serve (self, self->part, &reqs[i], &context);
        assert_true (outcome.changed);
        s_logged_record (&reqs[i], context.now, &record);
        const char *error = NULL;
        if (cart_apply_record (replayed, record.data, record.size, SHARD, SHARDS, &error))
            fail_msg ("record %zu: %s", i, error);
        assert_int_equal (cart_partition_changes (replayed),
                          cart_partition_changes (self->part));
        assert_int_equal (s_cart_version (replayed, self, 0),
                          s_cart_version (self->part, self, 0));
        if (i == 2) {
            cart_view_t view;
            cart_partition_get (replayed, self->customers[0].key, reqs[0].customer,
                                reqs[0].customer_len, &view);
            assert_int_equal (view.touched, 2002);
        }
        if (!reqs[i].idem)
            continue;
        const cart_idem_entry_t *want =
            cart_idem_find (cart_partition_idem (self->part), reqs[i].customer,
                            reqs[i].customer_len, reqs[i].idem, reqs[i].idem_len);
        const cart_idem_entry_t *got =
            cart_idem_find (cart_partition_idem (replayed), reqs[i].customer,
                            reqs[i].customer_len, reqs[i].idem, reqs[i].idem_len);
        assert_non_null (want);
        assert_non_null (got);
        assert_int_equal (got->fingerprint, want->fingerprint);
        assert_int_equal (got->status, want->status);
        assert_int_equal (got->version, want->version);
        assert_int_equal (got->at, want->at);
        assert_int_equal (got->seq, 0);
        assert_int_equal (got->size, want->size);
        assert_memory_equal (got->body, want->body, want->size);
    }
    assert_int_equal (cart_idem_size (cart_partition_idem (replayed)), 3);
    //  A retry on the replayed partition gets the first answer
    cart_context_t context = {.now = 2010};
    cart_outcome_t outcome = s_serve (self, replayed, &reqs[3], &context);
    assert_true (outcome.replayed);
    assert_int_equal (outcome.status, CART_OK);
    s_assert_body (self, CART_BODY_CART, 1);
    msgpack_sbuffer_destroy (&record);
    cart_partition_destroy (&replayed);
}

//  An expiry record [0, customer, at] drops the cart on replay; records
//  of another shard and malformed expiries are refused.
static void
test_apply_record_expiry (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 1);
    self->part = cart_partition_new ();
    cart_context_t context = {.now = 1000};
    cart_request_t add = s_req (self, 0, CART_OP_ADD, 2, NULL);
    s_serve (self, self->part, &add, &context);
    msgpack_sbuffer record;
    msgpack_sbuffer_init (&record);
    cart_apply_encode_expiry (&record, add.customer, add.customer_len, 5000);
    //  Its encoding: [0, customer, at]
    cart_mpack_t r = cart_mpack_start (record.data, record.size);
    size_t n;
    uint64_t tag, at;
    const char *customer;
    size_t customer_len;
    assert_int_equal (cart_mpack_array (&r, 8, &n), 0);
    assert_int_equal (n, 3);
    assert_int_equal (cart_mpack_uint (&r, 255, &tag), 0);
    assert_int_equal (tag, 0);
    assert_int_equal (cart_mpack_str (&r, CART_ID_MAX, &customer, &customer_len), 0);
    assert_memory_equal (customer, add.customer, add.customer_len);
    assert_int_equal (cart_mpack_uint (&r, UINT64_MAX, &at), 0);
    assert_int_equal (at, 5000);
    assert_true (cart_mpack_done (&r));
    const char *error = NULL;
    assert_int_equal (
        cart_apply_record_check (record.data, record.size, SHARD, SHARDS, &error), 0);
    assert_int_equal (cart_partition_carts (self->part), 1);
    assert_int_equal (
        cart_apply_record (self->part, record.data, record.size, SHARD, SHARDS, &error),
        0);
    assert_int_equal (cart_partition_carts (self->part), 0);
    assert_int_equal (cart_partition_changes (self->part), 2);
    //  Of a cart that is not there (nothing to drop): accepted
    assert_int_equal (
        cart_apply_record (self->part, record.data, record.size, SHARD, SHARDS, &error),
        0);
    //  Another shard's customer, as an expiry and as a request
    uint32_t other = (SHARD + 1) % SHARDS;
    error = NULL;
    assert_int_equal (
        cart_apply_record (self->part, record.data, record.size, other, SHARDS, &error),
        -1);
    assert_non_null (strstr (error, "belongs to shard"));
    s_logged_record (&add, 1000, &record);
    error = NULL;
    assert_int_equal (
        cart_apply_record_check (record.data, record.size, other, SHARDS, &error), -1);
    assert_non_null (error);
    assert_int_equal (cart_partition_carts (self->part), 0);
    //  Malformed expiries
    char long_id[CART_ID_MAX + 1];
    memset (long_id, 'a', sizeof (long_id));
    const struct {
        const char *bytes;
        size_t size;
        const char *why;
    } bad[] = {
        {"\x92\x00\xa1x", 4, "no time"},
        {"\x94\x00\xa1x\x01\x01", 6, "four fields"},
        {"\x93\x00\xa3x y\x01", 7, "a customer with a space"},
        {"\x93\x00\xa0\x01", 4, "an empty customer"},
        {"\x93\x00\x01\x01", 4, "a customer that is a number"},
        {"\x93\x00\xa1x\xd0\xff", 6, "a negative time"},
        {"\x93\x00\xa1x\xa1y", 6, "a time that is a string"},
        {"\x93\x00\xa1x\x01\xc0", 6, "bytes after its end"},
        {"\x93\x00\xa1x", 4, "cut short"},
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        error = NULL;
        if (cart_apply_record (self->part, bad[i].bytes, bad[i].size, SHARD, SHARDS,
                               &error) != -1)
            fail_msg ("accepted: %s", bad[i].why);
        assert_non_null (error);
    }
    record.size = 0;
    msgpack_packer pk;
    msgpack_packer_init (&pk, &record, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, 3);
    msgpack_pack_uint8 (&pk, 0);
    msgpack_pack_str_with_body (&pk, long_id, sizeof (long_id));
    msgpack_pack_uint8 (&pk, 1);
    assert_int_equal (
        cart_apply_record (self->part, record.data, record.size, SHARD, SHARDS, &error),
        -1);
    msgpack_sbuffer_destroy (&record);
}

//  --------------------------------------------------------------------------
//  Snapshots, version 2: versions, times, the change count and keys

//  Asserts that got holds want's versions, times, change count and keys.
static void
s_assert_same_versions (cart_partition_t *got, cart_partition_t *want)
{
    s_assert_same (got, want);
    assert_int_equal (cart_partition_changes (got), cart_partition_changes (want));
    size_t cursor = 0;
    cart_view_t view, other;
    uint64_t key;
    while (cart_partition_next (want, &cursor, &view, &key)) {
        cart_partition_get (got, key, view.customer, view.customer_len, &other);
        assert_int_equal (other.version, view.version);
        assert_int_equal (other.touched, view.touched);
    }
    cart_idem_t *a = cart_partition_idem (want), *b = cart_partition_idem (got);
    assert_int_equal (cart_idem_size (b), cart_idem_size (a));
    void *ca = NULL, *cb = NULL;
    const char *customer_a, *key_a, *customer_b, *key_b;
    size_t customer_a_len, key_a_len, customer_b_len, key_b_len;
    const cart_idem_entry_t *ea, *eb;
    while (
        cart_idem_next (a, &ca, &customer_a, &customer_a_len, &key_a, &key_a_len, &ea)) {
        assert_true (cart_idem_next (b, &cb, &customer_b, &customer_b_len, &key_b,
                                     &key_b_len, &eb));
        assert_int_equal (customer_b_len, customer_a_len);
        assert_memory_equal (customer_b, customer_a, customer_a_len);
        assert_int_equal (key_b_len, key_a_len);
        assert_memory_equal (key_b, key_a, key_a_len);
        assert_int_equal (eb->fingerprint, ea->fingerprint);
        assert_int_equal (eb->status, ea->status);
        assert_int_equal (eb->version, ea->version);
        assert_int_equal (eb->at, ea->at);
        assert_int_equal (eb->size, ea->size);
        assert_memory_equal (eb->body, ea->body, ea->size);
    }
}

static void
test_snapshot_versions_and_keys (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 6);
    self->part = cart_partition_new ();
    for (uint64_t i = 0; i < 60; i++) {
        char key[16];
        snprintf (key, sizeof (key), "key-%llu", (unsigned long long)i);
        cart_op_t op = i % 7 == 6 ? CART_OP_CHECKOUT : CART_OP_ADD;
        cart_request_t req =
            s_req (self, (size_t)(i % 6), op, (uint32_t)(1 + i % 3), i % 2 ? key : NULL);
        if (i % 5 == 0)
            req.item.id = "sku-2";
        cart_context_t context = {.now = 1000 + i * 10};
        s_serve (self, self->part, &req, &context);
    }
    assert_true (cart_partition_carts (self->part) > 0);
    assert_true (cart_idem_size (cart_partition_idem (self->part)) > 10);
    const char *error = NULL;
    cart_snapshot_info_t info;
    if (cart_snapshot_write (self->dir, SHARD, SHARDS, 42, self->part, NULL, &info,
                             &error))
        fail_msg ("cart_snapshot_write: %s", error);
    cart_partition_t *loaded = cart_partition_new ();
    cart_snapshot_info_t got;
    if (cart_snapshot_load (self->dir, SHARD, SHARDS, loaded, &got, &error))
        fail_msg ("cart_snapshot_load: %s", error);
    assert_true (got.present);
    assert_int_equal (got.covered, 42);
    assert_int_equal (got.carts, cart_partition_carts (self->part));
    s_assert_same_versions (loaded, self->part);
    cart_partition_destroy (&loaded);
}

//  A snapshot built by hand from records (cart_log framing).
static void
s_write_records (const char *path, const msgpack_sbuffer *records, size_t n)
{
    const char *error = NULL;
    cart_log_t *file = cart_log_create (path, &error);
    if (!file)
        fail_msg ("cart_log_create: %s", error);
    for (size_t i = 0; i < n; i++)
        assert_int_equal (cart_log_append (file, records[i].data, records[i].size), 0);
    if (cart_log_finish (&file, &error))
        fail_msg ("cart_log_finish: %s", error);
}

static void
s_head (msgpack_sbuffer *record, uint32_t version, uint64_t changes)
{
    uint8_t head[40] = "CARTSNAP";
    cart_put_be (head + 8, version, 4);
    cart_put_be (head + 12, SHARD, 4);
    cart_put_be (head + 16, SHARDS, 4);
    cart_put_be (head + 24, 7, 8); //  covered
    cart_put_be (head + 32, changes, 8);
    msgpack_sbuffer_write (record, (const char *)head, version == 1 ? 32 : 40);
}

static void
s_end (msgpack_sbuffer *record, uint32_t version, uint64_t carts, uint64_t items,
       uint64_t keys)
{
    uint8_t end[32] = "CARTEND";
    cart_put_be (end + 8, carts, 8);
    cart_put_be (end + 16, items, 8);
    cart_put_be (end + 24, keys, 8);
    msgpack_sbuffer_write (record, (const char *)end, version == 1 ? 24 : 32);
}

//  A cart of customer c with items "a" and "b", after a version 2 prefix
//  when version > 0.
static void
s_cart_record (msgpack_sbuffer *record, const s_fixture_t *self, size_t c,
               uint64_t version, uint32_t touched)
{
    if (version) {
        uint8_t prefix[13] = {'C'};
        cart_put_be (prefix + 1, version, 8);
        cart_put_be (prefix + 9, touched, 4);
        msgpack_sbuffer_write (record, (const char *)prefix, sizeof (prefix));
    }
    msgpack_packer pk;
    msgpack_packer_init (&pk, record, msgpack_sbuffer_write);
    const char *id = self->customers[c].id;
    cart_reply_encode_cart (&pk, id, strlen (id), 2);
    cart_item_t a = {.id = "a", .id_len = 1, .count = 1, .price_cents = 5};
    cart_item_t b = {.id = "b", .id_len = 1, .count = 2, .price_cents = 6};
    cart_reply_encode_item (&pk, &a);
    cart_reply_encode_item (&pk, &b);
}

//  A key record: 'K', u16 status, u64 version, fingerprint, at, then
//  lengths and bytes of customer and key, then the body.
static void
s_key_record (msgpack_sbuffer *record, const char *customer, const char *key,
              uint16_t status)
{
    uint8_t prefix[27] = {'K'};
    cart_put_be (prefix + 1, status, 2);
    cart_put_be (prefix + 3, 9, 8);
    cart_put_be (prefix + 11, 0xF00D, 8);
    cart_put_be (prefix + 19, 1234, 8);
    msgpack_sbuffer_write (record, (const char *)prefix, sizeof (prefix));
    uint8_t len = (uint8_t)strlen (customer);
    msgpack_sbuffer_write (record, (const char *)&len, 1);
    msgpack_sbuffer_write (record, customer, len);
    len = (uint8_t)strlen (key);
    msgpack_sbuffer_write (record, (const char *)&len, 1);
    msgpack_sbuffer_write (record, key, len);
    msgpack_sbuffer_write (record, "body", 4);
}

//  Loads the shard's snapshot into a fresh partition: 0, or -1 with the
//  error in *error.
static int
s_load_snapshot (s_fixture_t *self, cart_partition_t **part, const char **error)
{
    cart_partition_destroy (part);
    *part = cart_partition_new ();
    cart_snapshot_info_t info;
    *error = NULL;
    return cart_snapshot_load (self->dir, SHARD, SHARDS, *part, &info, error);
}

//  Version 1 (the layout before versions) still loads: its carts take
//  distinct versions and the time of the load.
static void
test_snapshot_version_1 (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 3);
    msgpack_sbuffer records[5];
    for (size_t i = 0; i < 5; i++)
        msgpack_sbuffer_init (&records[i]);
    s_head (&records[0], 1, 0);
    for (size_t c = 0; c < 3; c++)
        s_cart_record (&records[1 + c], self, c, 0, 0);
    s_end (&records[4], 1, 3, 6, 0);
    s_write_records (s_file (self, CART_FILE_SNAPSHOT), records, 5);
    uint32_t before = (uint32_t)time (NULL);
    const char *error;
    if (s_load_snapshot (self, &self->part, &error))
        fail_msg ("a version 1 snapshot: %s", error);
    assert_int_equal (cart_partition_carts (self->part), 3);
    assert_int_equal (cart_partition_items (self->part), 6);
    uint64_t versions[3];
    for (size_t c = 0; c < 3; c++) {
        const s_customer_t *customer = &self->customers[c];
        cart_view_t view;
        assert_int_equal (cart_partition_get (self->part, customer->key, customer->id,
                                              strlen (customer->id), &view),
                          CART_OK);
        versions[c] = view.version;
        assert_true (view.version > 0);
        assert_true (view.version <= cart_partition_changes (self->part));
        assert_true (view.touched >= before); //  the load's time, not 1970's
        assert_true (view.touched <= (uint32_t)time (NULL));
    }
    assert_true (versions[0] != versions[1] && versions[1] != versions[2] &&
                 versions[0] != versions[2]);
    assert_int_equal (cart_idem_size (cart_partition_idem (self->part)), 0);
    //  A version 2 end or head in a version 1 snapshot is refused
    records[4].size = 0;
    s_end (&records[4], 2, 3, 6, 0);
    s_write_records (s_file (self, CART_FILE_SNAPSHOT), records, 5);
    assert_int_equal (s_load_snapshot (self, &self->part, &error), -1);
    assert_non_null (strstr (error, "end record is malformed"));
    for (size_t i = 0; i < 5; i++)
        msgpack_sbuffer_destroy (&records[i]);
}

//  A damaged key record, or an end whose key count is not the keys', is
//  refused with what is wrong.
static void
test_snapshot_bad_keys (void **state)
{
    s_fixture_t *self = (s_fixture_t *)*state;
    s_customers (self, 1);
    const char *customer = self->customers[0].id;
    //  A customer of another shard
    const char *stranger = NULL;
    char name[24];
    for (unsigned n = 0; !stranger; n++) {
        snprintf (name, sizeof (name), "c-%u", n);
        if (cart_ring_shard (cart_hash_key (name, strlen (name)), SHARDS) != SHARD)
            stranger = name;
    }
    msgpack_sbuffer records[4];
    for (size_t i = 0; i < 4; i++)
        msgpack_sbuffer_init (&records[i]);
    s_head (&records[0], 2, 10);
    s_cart_record (&records[1], self, 0, 8, 77);
    s_key_record (&records[2], customer, "k", CART_CREATED);
    s_end (&records[3], 2, 1, 2, 1);
    s_write_records (s_file (self, CART_FILE_SNAPSHOT), records, 4);
    const char *error;
    if (s_load_snapshot (self, &self->part, &error))
        fail_msg ("a good version 2 snapshot: %s", error);
    assert_int_equal (cart_partition_changes (self->part), 10);
    assert_int_equal (s_cart_version (self->part, self, 0), 8);
    const cart_idem_entry_t *entry = cart_idem_find (cart_partition_idem (self->part),
                                                     customer, strlen (customer), "k", 1);
    assert_non_null (entry);
    assert_int_equal (entry->status, CART_CREATED);
    assert_int_equal (entry->version, 9);
    assert_int_equal (entry->fingerprint, 0xF00D);
    assert_int_equal (entry->at, 1234);
    assert_int_equal (entry->size, 4);
    assert_memory_equal (entry->body, "body", 4);

    //  The end's key count
    for (uint64_t keys = 0; keys <= 2; keys += 2) {
        records[3].size = 0;
        s_end (&records[3], 2, 1, 2, keys);
        s_write_records (s_file (self, CART_FILE_SNAPSHOT), records, 4);
        assert_int_equal (s_load_snapshot (self, &self->part, &error), -1);
        s_assert_has (error, "idempotency keys, but it holds 1");
    }
    records[3].size = 0;
    s_end (&records[3], 2, 1, 2, 1);

    //  Damaged key records, each cut or wrong in one way
    msgpack_sbuffer good;
    msgpack_sbuffer_init (&good);
    s_key_record (&good, customer, "k", CART_CREATED);
    const struct {
        size_t cut; //  bytes kept of the good record (0: all)
        const char *customer, *key;
        uint16_t status;
        const char *why;
    } bad[] = {
        {1, NULL, NULL, 0, "'K' alone"},
        {26, NULL, NULL, 0, "a prefix cut short"},
        {27, NULL, NULL, 0, "no customer"},
        {28 + 2, NULL, NULL, 0, "a customer cut short"},
        {0, "a b", "k", CART_CREATED, "a customer with a space"},
        {0, "", "k", CART_CREATED, "an empty customer"},
        {0, NULL, "", CART_CREATED, "an empty key"},
        {0, NULL, "a b", CART_CREATED, "a key with a space"},
        {0, NULL, "a\x7f", CART_CREATED, "a key with 0x7F"},
        {0, NULL, "k", 299, "an unknown status"},
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        records[2].size = 0;
        if (bad[i].cut)
            msgpack_sbuffer_write (&records[2], good.data, bad[i].cut);
        else
            s_key_record (&records[2], bad[i].customer ? bad[i].customer : customer,
                          bad[i].key, bad[i].status);
        s_write_records (s_file (self, CART_FILE_SNAPSHOT), records, 4);
        if (s_load_snapshot (self, &self->part, &error) != -1)
            fail_msg ("accepted: %s", bad[i].why);
        s_assert_has (error, "an idempotency key's record is malformed");
    }
    //  A key of another shard's customer
    records[2].size = 0;
    s_key_record (&records[2], stranger, "k", CART_CREATED);
    s_write_records (s_file (self, CART_FILE_SNAPSHOT), records, 4);
    assert_int_equal (s_load_snapshot (self, &self->part, &error), -1);
    s_assert_has (error, "belongs to another shard");
    //  A record that is neither a cart nor a key
    records[2].size = 0;
    msgpack_sbuffer_write (&records[2], "X123456789abcdef", 16);
    s_write_records (s_file (self, CART_FILE_SNAPSHOT), records, 4);
    assert_int_equal (s_load_snapshot (self, &self->part, &error), -1);
    s_assert_has (error, "neither a cart nor an idempotency key");
    msgpack_sbuffer_destroy (&good);
    for (size_t i = 0; i < 4; i++)
        msgpack_sbuffer_destroy (&records[i]);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_compaction_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_after_link, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_after_link_then_write, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_half_snapshot, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_before_unlink, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_before_rename, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_damaged_snapshot, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_truncated_snapshot, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_other_shard_snapshot, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_damaged_old_log, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_snapshot_as_old_log, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_gap_after_snapshot, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_close_during_compaction, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_failed_compaction_retried, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_apply_idempotent_write, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_apply_idem_pending, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_apply_idem_ttl, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_apply_if_match, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_apply_get_ignores_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_apply_record_keyed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_apply_record_expiry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_snapshot_versions_and_keys, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_snapshot_version_1, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_snapshot_bad_keys, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
