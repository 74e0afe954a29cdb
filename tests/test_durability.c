/*  test_durability - every acknowledged write survives kill -9 of its
    worker: a broker and a shard_worker with --data-dir as processes over
    tcp, a client pipelining adds, the worker killed at random moments
    under that load and started again, many times in a row. After each
    restart, every add that was answered 201 is in its cart, and none that
    was refused before reaching the worker (503) is. Run with --fsync
    always and with everysec: a process's crash loses nothing either way
    (its writes are in the kernel); everysec risks the last second only
    when the machine itself goes down, which a test cannot do here. A
    third run compacts the logs all the time (--compact-min 4k), so that
    kills land during snapshots and rotations; after each restart
    `cartctl check-data` must find every file whole.

    Every wait is on a reply or a process's output, with a deadline.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <czmq.h>
#include <stdlib.h>

#include "cart_client.h"
#include "cart_hash.h"
#include "test_process.h"

#define SHARDS    2
#define CUSTOMERS 16
#define ROUNDS    6
#define PER_ROUND 240 //  adds sent per round; the kill falls somewhere in them
#define WINDOW    32  //  adds in flight

typedef enum { UNSENT, PENDING, ACKED, REFUSED, UNKNOWN } fate_t;

typedef struct {
    char frontend[128];
    char backend[128];
    char dir[64];
    const char *fsync;
    bool compact;         //  compact the logs as often as possible
    bool keyed;           //  every add carries an idempotency key
    const char *cart_ttl; //  the workers' --cart-ttl, or NULL
    pid_t broker;
    pid_t worker;
    cart_client_t *client;
    fate_t fate[ROUNDS * PER_ROUND];
} cluster_t;

static cluster_t s_cluster;

static void
s_start_worker (cluster_t *self)
{
    char line[512], shards[8];
    snprintf (shards, sizeof (shards), "%d", SHARDS);
    //  --compact-min's least, and a factor that compacts at about each
    //  doubling of the data
    const char *compact = self->compact ? "--compact-min" : NULL;
    if (self->cart_ttl)
        self->worker =
            test_spawn (line, sizeof (line), "shard_worker", "--broker", self->backend,
                        "--shards", shards, "--shard", "0-1", "--data-dir", self->dir,
                        "--fsync", self->fsync, "--cart-ttl", self->cart_ttl, NULL);
    else
        self->worker = test_spawn (line, sizeof (line), "shard_worker", "--broker",
                                   self->backend, "--shards", shards, "--shard", "0-1",
                                   "--data-dir", self->dir, "--fsync", self->fsync,
                                   compact, "4k", "--compact-factor", "1.1", NULL);
}

//  A broker on free ports of loopback; its endpoints in self.
static void
s_start_broker (cluster_t *self)
{
    char line[512], shards[8];
    snprintf (shards, sizeof (shards), "%d", SHARDS);
    self->broker =
        test_spawn (line, sizeof (line), "broker", "--frontend", "tcp://127.0.0.1:*",
                    "--backend", "tcp://127.0.0.1:*", "--shards", shards, NULL);
    assert_int_equal (sscanf (line, "broker: clients on %127[^,], workers on %127[^,],",
                              self->frontend, self->backend),
                      2);
}

//  Stops the client, the worker and the broker; removes the data.
static void
s_stop (cluster_t *self)
{
    cart_client_destroy (&self->client);
    test_kill (&self->worker, SIGTERM);
    test_kill (&self->broker, SIGTERM);
    char command[128];
    snprintf (command, sizeof (command), "rm -rf '%.64s'", self->dir);
    assert_int_equal (system (command), 0);
}

//  The customer and item of add number n
static void
s_names (int n, char *customer, char *item)
{
    snprintf (customer, 32, "durable-%d", n % CUSTOMERS);
    snprintf (item, 32, "sku-%d", n);
}

//  Sends add number n of `count` units, with the idempotency key "key-n"
//  when keyed.
static int
s_send_add_of (cluster_t *self, int n, uint32_t count, bool keyed)
{
    char customer[32], item[32], key[32];
    s_names (n, customer, item);
    snprintf (key, sizeof (key), "key-%d", n);
    cart_request_t req = {
        .op = CART_OP_ADD,
        .customer = customer,
        .customer_len = strlen (customer),
        .item = {.id = item, .id_len = strlen (item), .price_cents = 100, .count = count},
        .idem = keyed ? key : NULL,
        .idem_len = keyed ? strlen (key) : 0};
    return cart_client_send (self->client, &req, 3000, (void *)(intptr_t)n, NULL, NULL);
}

static int
s_send_add (cluster_t *self, int n)
{
    return s_send_add_of (self, n, 1, self->keyed);
}

static void
s_take (cluster_t *self, const cart_result_t *result)
{
    int n = (int)(intptr_t)result->user;
    self->fate[n] = result->status == CART_CREATED       ? ACKED
                    : result->status == CART_UNAVAILABLE ? REFUSED
                                                         : UNKNOWN;
}

//  Sends a round of adds, kill -9 of the worker after `kill_after` of them.
static void
s_round (cluster_t *self, int round, int kill_after)
{
    int first = round * PER_ROUND, sent = 0;
    cart_result_t result;
    while (sent < PER_ROUND || cart_client_pending (self->client)) {
        while (sent < PER_ROUND && cart_client_pending (self->client) < WINDOW) {
            if (s_send_add (self, first + sent)) {
                self->fate[first + sent] = UNSENT; //  no connection: never sent
            } else
                self->fate[first + sent] = PENDING;
            sent++;
            if (sent == kill_after)
                test_kill (&self->worker, SIGKILL);
        }
        if (cart_client_recv (self->client, &result, 5000) == 1)
            s_take (self, &result);
    }
}

//  GETs a customer until served (the restarted worker has registered).
static int
s_get (cluster_t *self, const char *customer, zchunk_t **body)
{
    int64_t until = zclock_mono () + 30000;
    cart_result_t result = {0};
    while (zclock_mono () < until) {
        cart_request_t req = {
            .op = CART_OP_GET, .customer = customer, .customer_len = strlen (customer)};
        if (cart_client_send (self->client, &req, 500, NULL, NULL, NULL) == 0 &&
            cart_client_recv (self->client, &result, -1) == 1 &&
            result.status == CART_OK) {
            *body = zchunk_new (result.body, result.body_size);
            return CART_OK;
        }
        cart_client_recv (self->client, &result, 20); //  let the socket connect
    }
    return result.status;
}

//  Every acknowledged add up to `upto` is in its cart; no refused one is.
static void
s_check (cluster_t *self, int upto)
{
    static bool present[ROUNDS * PER_ROUND];
    memset (present, 0, sizeof (present));
    for (int c = 0; c < CUSTOMERS; c++) {
        char customer[32];
        snprintf (customer, sizeof (customer), "durable-%d", c);
        zchunk_t *body = NULL;
        assert_int_equal (s_get (self, customer, &body), CART_OK);
        cart_reply_t reply;
        cart_item_t item;
        assert_int_equal (
            cart_reply_decode (zchunk_data (body), zchunk_size (body), &reply, NULL), 0);
        while (cart_reply_next_item (&reply, &item, NULL) == 1) {
            char id[CART_ID_MAX + 1];
            snprintf (id, sizeof (id), "%.*s", (int)item.id_len, item.id);
            assert_memory_equal (id, "sku-", 4);
            int n = atoi (id + 4);
            assert_true (n >= 0 && n < upto);
            assert_int_equal (item.count, 1); //  applied once, not twice
            present[n] = true;
        }
        zchunk_destroy (&body);
    }
    int acked = 0, lost = 0, ghosts = 0;
    for (int n = 0; n < upto; n++) {
        acked += self->fate[n] == ACKED;
        lost += self->fate[n] == ACKED && !present[n];
        ghosts += (self->fate[n] == REFUSED || self->fate[n] == UNSENT) && present[n];
    }
    print_message ("after %d adds: %d acknowledged, %d of them lost, %d refused ones "
                   "present\n",
                   upto, acked, lost, ghosts);
    assert_int_equal (lost, 0);
    assert_int_equal (ghosts, 0);
    assert_true (acked > 0);
}

//  cartctl check-data on the directory: every file whole (the worker runs:
//  its latest write may be torn, which counts as whole).
static void
s_check_data (cluster_t *self)
{
    char out[8192];
    int rc =
        test_run (out, sizeof (out), 30000, "cartctl", "check-data", self->dir, NULL);
    if (rc != 0)
        print_error ("cartctl check-data %s:\n%s\n", self->dir, out);
    assert_int_equal (rc, 0);
}

//  How many shards have a snapshot in the directory.
static int
s_snapshots (cluster_t *self)
{
    int found = 0;
    for (int shard = 0; shard < SHARDS; shard++) {
        char path[128];
        snprintf (path, sizeof (path), "%.64s/shard-%d.snap", self->dir, shard);
        found += access (path, F_OK) == 0;
    }
    return found;
}

static void s_start_slow_worker (cluster_t *self);

//  A cluster of the given options (fsync, compact, keyed, cart_ttl) on a
//  new data directory: a broker, a worker (slow: its syncs 400 ms slower)
//  and a client.
static cluster_t *
s_begin (cluster_t options, bool slow)
{
    cluster_t *self = &s_cluster;
    *self = options;
    snprintf (self->dir, sizeof (self->dir), "/tmp/test_durability-XXXXXX");
    assert_non_null (mkdtemp (self->dir));
    s_start_broker (self);
    if (slow)
        s_start_slow_worker (self);
    else
        s_start_worker (self);
    self->client = cart_client_new (self->frontend, NULL);
    assert_non_null (self->client);
    return self;
}

static void
s_run (const char *fsync, bool compact)
{
    cluster_t *self = s_begin ((cluster_t){.fsync = fsync, .compact = compact}, false);
    unsigned seed = (unsigned)zclock_usecs ();
    print_message ("fsync %s, seed %u\n", fsync, seed);
    for (int round = 0; round < ROUNDS; round++) {
        zchunk_t *body = NULL;
        assert_int_equal (s_get (self, "durable-0", &body), CART_OK); //  serving
        zchunk_destroy (&body);
        //  Past the first window, so that every round acknowledges some
        s_round (self, round,
                 2 * WINDOW + (int)(rand_r (&seed) % (PER_ROUND - 2 * WINDOW)));
        s_start_worker (self);
        s_check (self, (round + 1) * PER_ROUND);
        s_check_data (self);
    }
    if (compact)
        assert_int_equal (s_snapshots (self), SHARDS);
    s_stop (self);
}

static void
test_kill9_fsync_always (void **state)
{
    s_run ("always", false);
}

//  Kills land while logs are rotated and snapshots written
static void
test_kill9_while_compacting (void **state)
{
    s_run ("always", true);
}

static void
test_kill9_fsync_everysec (void **state)
{
    s_run ("everysec", false);
}

//  Sends adds first..first+n once more with their keys (as a client that
//  is not sure of their fate does) and waits for every answer: each is
//  201; one answered 201 before is marked replayed. Returns how many were
//  replayed.
static int
s_retry (cluster_t *self, int first, int n)
{
    int sent = 0, answered = 0, replayed = 0;
    cart_result_t result;
    while (answered < n) {
        while (sent < n && cart_client_pending (self->client) < WINDOW)
            assert_int_equal (s_send_add (self, first + sent++), 0);
        assert_int_equal (cart_client_recv (self->client, &result, 10000), 1);
        int k = (int)(intptr_t)result.user;
        if (result.status != CART_CREATED)
            print_error ("retry of add %d: status %d\n", k, result.status);
        assert_int_equal (result.status, CART_CREATED);
        if (self->fate[k] == ACKED)
            assert_true (result.replayed);
        replayed += result.replayed;
        self->fate[k] = ACKED;
        answered++;
    }
    return replayed;
}

//  A retried add with the same key never adds twice, across a kill -9 of
//  the worker and its restart in between: each round sends keyed adds,
//  kills the worker among them, starts it again and sends every add of the
//  round again with its key. Every retry is 201 (the first answer again,
//  marked replayed, when the add had been applied), every item holds one
//  unit (s_check), and the same key with another count is 422. With
//  compaction, the keys also go through snapshots.
static void
s_run_keyed (bool compact)
{
    cluster_t *self = s_begin (
        (cluster_t){.fsync = "always", .compact = compact, .keyed = true}, false);
    unsigned seed = (unsigned)zclock_usecs ();
    print_message ("keyed adds, compact %d, seed %u\n", compact, seed);
    enum { KEYED_ROUNDS = 3 };
    int replayed = 0;
    for (int round = 0; round < KEYED_ROUNDS; round++) {
        zchunk_t *body = NULL;
        assert_int_equal (s_get (self, "durable-0", &body), CART_OK); //  serving
        zchunk_destroy (&body);
        s_round (self, round,
                 2 * WINDOW + (int)(rand_r (&seed) % (PER_ROUND - 2 * WINDOW)));
        s_start_worker (self);
        assert_int_equal (s_get (self, "durable-0", &body), CART_OK);
        zchunk_destroy (&body);
        replayed += s_retry (self, round * PER_ROUND, PER_ROUND);
        s_check (self, (round + 1) * PER_ROUND);
    }
    print_message ("%d retries were answered with the first answer again\n", replayed);
    assert_true (replayed > 0);
    //  The same key for another request
    cart_result_t result;
    assert_int_equal (s_send_add_of (self, 0, 2, true), 0);
    assert_int_equal (cart_client_recv (self->client, &result, 10000), 1);
    assert_int_equal (result.status, CART_UNPROCESSABLE);
    s_check (self, KEYED_ROUNDS * PER_ROUND);
    if (compact)
        assert_int_equal (s_snapshots (self), SHARDS);
    s_stop (self);
}

static void
test_keyed_retry_after_kill9 (void **state)
{
    s_run_keyed (false);
}

static void
test_keyed_retry_while_compacting (void **state)
{
    s_run_keyed (true);
}

//  The number of items in a customer's cart, or -1 when it cannot be read.
static int
s_items (cluster_t *self, const char *customer)
{
    zchunk_t *body = NULL;
    cart_reply_t reply;
    int items = -1;
    if (s_get (self, customer, &body) == CART_OK &&
        cart_reply_decode (zchunk_data (body), zchunk_size (body), &reply, NULL) == 0)
        items = (int)reply.n_items;
    zchunk_destroy (&body);
    return items;
}

//  A cart not changed for --cart-ttl is removed, and the removal is
//  logged: it stays removed when the worker starts again, while a cart
//  changed since stays. Polls, with a deadline, for the removal.
static void
test_cart_expiry (void **state)
{
    cluster_t *self = s_begin ((cluster_t){.fsync = "always", .cart_ttl = "2"}, false);
    assert_int_equal (s_items (self, "durable-0"), 0); //  serving
    cart_result_t result;
    for (int n = 0; n < 2; n++) { //  durable-0 and durable-1
        assert_int_equal (s_send_add (self, n), 0);
        assert_int_equal (cart_client_recv (self->client, &result, 10000), 1);
        assert_int_equal (result.status, CART_CREATED);
    }
    int64_t start = zclock_mono ();
    //  durable-1 is kept changing; durable-0 is left alone
    int items = 1;
    for (int n = CUSTOMERS + 1; items > 0 && zclock_mono () - start < 20000;
         n += CUSTOMERS) {
        assert_int_equal (s_send_add (self, n), 0);
        assert_int_equal (cart_client_recv (self->client, &result, 10000), 1);
        assert_int_equal (result.status, CART_CREATED);
        items = s_items (self, "durable-0");
        if (items > 0)
            cart_client_recv (self->client, &result, 200); //  a pause, not a wait
    }
    int64_t waited = zclock_mono () - start;
    print_message ("the cart was removed %lld ms after its last change\n",
                   (long long)waited);
    assert_int_equal (items, 0);
    assert_true (waited >= 1000); //  not at once (the time-to-live is 2 s)
    assert_true (s_items (self, "durable-1") > 0);
    //  Started again with carts kept for ever: the removal was logged
    test_kill (&self->worker, SIGKILL);
    self->cart_ttl = NULL;
    s_start_worker (self);
    assert_int_equal (s_items (self, "durable-0"), 0);
    assert_true (s_items (self, "durable-1") > 0);
    s_stop (self);
}

//  Starts the worker with every sync 400 ms slower (tests/slow_sync.c).
static void
s_start_slow_worker (cluster_t *self)
{
    //  The shim goes first in the worker's libraries; under ASan, ahead of
    //  its runtime, which must be told that this is meant
    const char *asan = getenv ("ASAN_OPTIONS");
    char *saved = asan ? strdup (asan) : NULL;
    char options[512];
    snprintf (options, sizeof (options), "%s%sverify_asan_link_order=0", asan ? asan : "",
              asan ? ":" : "");
    setenv ("ASAN_OPTIONS", options, 1);
    setenv ("LD_PRELOAD", CART_SLOW_SYNC, 1);
    setenv ("CART_TEST_SYNC_DELAY_MS", "400", 1);
    s_start_worker (self);
    unsetenv ("LD_PRELOAD");
    unsetenv ("CART_TEST_SYNC_DELAY_MS");
    if (saved)
        setenv ("ASAN_OPTIONS", saved, 1);
    else
        unsetenv ("ASAN_OPTIONS");
    free (saved);
}

//  A retry while the first request with its key is still being applied
//  (its log record not yet on a disk that takes 400 ms to sync) is 409,
//  and changes nothing; once the first is answered, a retry gets its
//  answer again.
static void
test_retry_while_committing (void **state)
{
    cluster_t *self = s_begin ((cluster_t){.fsync = "always"}, true);
    zchunk_t *body = NULL;
    assert_int_equal (s_get (self, "durable-0", &body), CART_OK); //  serving
    zchunk_destroy (&body);
    //  Twice at once: the second reaches the worker while the first waits
    //  for the disk
    assert_int_equal (s_send_add_of (self, 0, 1, true), 0);
    assert_int_equal (s_send_add_of (self, 0, 1, true), 0);
    int statuses[2];
    cart_result_t result;
    for (int i = 0; i < 2; i++) {
        assert_int_equal (cart_client_recv (self->client, &result, 10000), 1);
        statuses[i] = result.status;
    }
    //  In either order: replies wait for the batch before them
    assert_true ((statuses[0] == CART_CREATED && statuses[1] == CART_CONFLICT) ||
                 (statuses[0] == CART_CONFLICT && statuses[1] == CART_CREATED));
    assert_int_equal (s_send_add_of (self, 0, 1, true), 0);
    assert_int_equal (cart_client_recv (self->client, &result, 10000), 1);
    assert_int_equal (result.status, CART_CREATED);
    assert_true (result.replayed);
    self->fate[0] = ACKED;
    s_check (self, 1);
    s_stop (self);
}

//  A disk that stalls longer than the broker's liveness window (300 ms):
//  every fdatasync, fsync and syncfs of the worker takes 400 ms more
//  (tests/slow_sync.c, LD_PRELOAD), and the logs are compacted all the
//  time (a rotation syncs the directory). The worker's committer waits for the disk while
//  the worker goes on heartbeating, so the broker keeps it: every add is answered 201,
//  none times out or is refused. (With the sync in the worker's own thread, the broker
//  dropped the worker at the first sync.)
static void
test_slow_disk (void **state)
{
    cluster_t *self = s_begin ((cluster_t){.fsync = "always", .compact = true}, true);
    zchunk_t *body = NULL;
    assert_int_equal (s_get (self, "durable-0", &body), CART_OK); //  serving
    zchunk_destroy (&body);

    enum { ADDS = 240, IN_FLIGHT = 16 }; //  past --compact-min 4k on each shard
    int64_t start = zclock_mono ();
    int sent = 0, created = 0, other = 0;
    cart_result_t result;
    while (created + other < ADDS) {
        while (sent < ADDS && cart_client_pending (self->client) < IN_FLIGHT)
            assert_int_equal (s_send_add (self, sent++), 0);
        assert_int_equal (cart_client_recv (self->client, &result, 10000), 1);
        if (result.status == CART_CREATED)
            created++;
        else {
            other++;
            print_error ("add %d: status %d\n", (int)(intptr_t)result.user,
                         result.status);
        }
    }
    int64_t elapsed = zclock_mono () - start;
    print_message ("%d adds through a disk that syncs in 400+ ms: %d answered 201 in "
                   "%lld ms\n",
                   ADDS, created, (long long)elapsed);
    assert_true (elapsed >= 400); //  the disk was slow indeed
    assert_int_equal (created, ADDS);
    //  Each shard's log was rotated (its snapshot made, or being made)
    for (int shard = 0; shard < SHARDS; shard++) {
        char snap[128], old[128];
        snprintf (snap, sizeof (snap), "%.64s/shard-%d.snap", self->dir, shard);
        snprintf (old, sizeof (old), "%.64s/shard-%d.log.old", self->dir, shard);
        assert_true (access (snap, F_OK) == 0 || access (old, F_OK) == 0);
    }
    s_stop (self);
}

//  cartd keeps its data by default: started on a directory that does not
//  exist yet (nested), it makes it and serves; a second cartd on the same
//  directory refuses to start (one writer per shard).
static void
test_cartd_makes_its_data_dir (void **state)
{
    char dir[64] = "/tmp/test_durability-XXXXXX", data[96], line[512], out[2048];
    assert_non_null (mkdtemp (dir));
    snprintf (data, sizeof (data), "%s/a/b", dir);
    pid_t cartd = test_spawn (line, sizeof (line), "cartd", "--listen", "0", "--bus",
                              "none", "--data-dir", data, NULL);
    assert_non_null (strstr (line, "data in"));
    int status = test_run (out, sizeof (out), 30000, "cartd", "--listen", "0", "--bus",
                           "none", "--data-dir", data, NULL);
    print_message ("%s", out);
    assert_int_equal (status, 1);
    assert_non_null (strstr (out, "in use by another worker"));
    test_kill (&cartd, SIGTERM);
    char command[128];
    snprintf (command, sizeof (command), "rm -rf '%.64s'", dir);
    assert_int_equal (system (command), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_kill9_fsync_always),
        cmocka_unit_test (test_kill9_fsync_everysec),
        cmocka_unit_test (test_kill9_while_compacting),
        cmocka_unit_test (test_slow_disk),
        cmocka_unit_test (test_keyed_retry_after_kill9),
        cmocka_unit_test (test_keyed_retry_while_compacting),
        cmocka_unit_test (test_retry_while_committing),
        cmocka_unit_test (test_cart_expiry),
        cmocka_unit_test (test_cartd_makes_its_data_dir),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
