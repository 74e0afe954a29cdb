/*  test_stall - a shard worker whose partition grows past several table
    doublings never misses a heartbeat: it is never silent for the
    broker's liveness window (CART_HEARTBEAT_MS x CART_LIVENESS, 300 ms),
    after which a broker drops it.

    The test is the broker: a socket bound on a free tcp port of
    loopback, a shard_worker process (one shard of one) registered on it,
    and adds pipelined to it, WINDOW in flight, each for a new customer so
    that each makes a cart, until the partition holds CARTS. The test
    heartbeats the worker as a broker does and times every message the
    worker sends. Every add must be answered CREATED, once; no two
    heartbeats may be the window apart; the worker's last load report must
    count every cart. Run in memory and with --data-dir (--fsync
    everysec), where each add is also logged.

    Timing. The test shares two cores with the worker, and it pauses too
    (a thread waiting for a core, its allocator at work), after which it
    reads late, all at once, what arrived meanwhile. So each message's arrival is
   bracketed: after the last time the test found its socket empty (`early`), before the
    test read it (`late`). A gap between heartbeats is counted from the
    first one's `late` to the next one's `early`: at most the true gap,
    so a pause of the test can only shorten it, while a pause of the
    worker shows in full, as the test looks at its socket every SLICE_MS
    while it waits. (Arrival-to-arrival gaps are printed beside it, and
    how long the worker's threads waited for a core in the longest gap.)
    And the test allocates nothing per add, so that it pauses less: the
    keys are computed before the runs (EVP_Digest allocates in every
    hash_key), and the socket is a DEALER, which with one peer reaches the
    worker as a broker's ROUTER does, without a ROUTER's identity frame,
    which is allocated for every message it receives. Not built under the
    sanitizers (tests/CMakeLists.txt): there the worker's own pauses come
    within reach of the bound.

    Why it can fail: the partition's table starts at 16 slots and doubles
    when a cart takes it past 3/4 full (cart_partition.c), so as carts are
    added the table of 2^k slots doubles at cart 3 * 2^(k-2) + 1. Done in
    one pass, a doubling holds the worker for as long as it takes to fault
    in the new table and place every cart: 105 ms to 2M slots and 417 ms
    to 8M slots on our VM (bench_rehash). The partition now spreads a
    resize over bounded steps (cart_partition_rehash_step); with the
    one-pass resize put back, this test fails (see CARTS).

    Every wait is on a message with a deadline; nothing sleeps.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>

#include "cart_body.h"
#include "cart_control.h"
#include "cart_hash.h"
#include "cart_msg.h"
#include "cart_ring.h"
#include "test_process.h"

//  Carts the partition reaches. Its table doubles to 2M slots at cart
//  786,433, to 4M at 1,572,865 and to 8M at 3,145,729, and a doubling from
//  n slots is over (the new table zeroed a page per operation, 16 carts
//  moved per operation, the old table given back) about n/128 + 3n/64
//  carts later: the one to 8M slots by cart 3,376,000. The test goes
//  through all three. Done in one pass, the last made heartbeat gaps of
//  460 to 700 ms here, the one to 4M slots 313 to 364 ms, to 2M 155 to 176.
#define CARTS 3400000

#define WINDOW      1000                                //  adds in flight
#define LIVENESS_MS (CART_HEARTBEAT_MS * CART_LIVENESS) //  the broker's window
#define SLICE_MS    10     //  how often a waiting test looks at its socket
#define WAIT_MS     5000   //  the longest the worker may send nothing
#define DEADLINE_MS 120000 //  the longest one run may take (10 to 20 s here)
#define DRAIN_MAX   1024   //  messages read before the test heartbeats again

static uint64_t *s_keys; //  hash_key of add n's customer, for each n

//  Add n's customer, stall-n, into customer[32]; returns its length.
static size_t
s_customer (size_t n, char *customer)
{
    return (size_t)snprintf (customer, 32, "stall-%zu", n);
}

//  How long each thread of a process has waited for a core, as the kernel
//  counts it (/proc/PID/task/TID/schedstat, its second field, in ns)
#define TASKS_MAX 64
typedef struct {
    size_t n;
    int tid[TASKS_MAX];
    uint64_t waited_ns[TASKS_MAX];
} waits_t;

typedef struct {
    zsock_t *socket; //  the worker's broker
    pid_t worker;
    char dir[64]; //  the worker's data directory, or ""
    msgpack_sbuffer body;
    cart_msg_t msg;
    uint8_t *answered; //  a bit per add: its reply came
    size_t sent;
    size_t created;
    int64_t started;
    int64_t beat_at;      //  when the test heartbeats the worker next
    int64_t empty_at;     //  when the test last found its socket empty
    int64_t looked_at;    //  when it last looked at its socket
    int64_t longest_away; //  the longest it did not (sending, or paused)
    //  What the worker sent
    int64_t heartbeat_late; //  when the last heartbeat was read; 0 before one
    int64_t longest_gap;    //  from one heartbeat's late to the next's early
    size_t gap_carts;       //  carts answered when the longest gap ended
    int64_t gap_waits[2];   //  then: the most a thread of the worker, of the
                            //  test waited for a core since the heartbeat before
    int64_t longest_apart;  //  from one heartbeat's late to the next's late
    waits_t waits[2];       //  the worker's and the test's at the last heartbeat
    size_t heartbeats;
    uint64_t load_carts; //  in the last load report
    size_t loads;
} stall_t;

static stall_t s_stall;

//  --------------------------------------------------------------------------
//  Whether the machine held the worker back: a gap is also another
//  program's load keeping the worker, or this test, off the cores. The
//  kernel counts how long each thread was ready to run but waited; the
//  messages say the most any one thread waited in the gap.

static void
s_waits_read (pid_t pid, waits_t *waits)
{
    char path[64];
    snprintf (path, sizeof (path), "/proc/%d/task", (int)pid);
    DIR *tasks = opendir (path);
    struct dirent *task;
    waits->n = 0;
    while (tasks && waits->n < TASKS_MAX && (task = readdir (tasks))) {
        char file[128];
        snprintf (file, sizeof (file), "%s/%.16s/schedstat", path, task->d_name);
        FILE *stat = task->d_name[0] == '.' ? NULL : fopen (file, "r");
        unsigned long long ran, waited;
        if (stat && fscanf (stat, "%llu %llu", &ran, &waited) == 2) {
            waits->tid[waits->n] = atoi (task->d_name);
            waits->waited_ns[waits->n++] = waited;
        }
        if (stat)
            fclose (stat);
    }
    if (tasks)
        closedir (tasks);
}

//  The most that one thread of pid waited for a core since *last was
//  read, in ms; *last is read again.
static int64_t
s_waited (pid_t pid, waits_t *last)
{
    waits_t now;
    s_waits_read (pid, &now);
    uint64_t most = 0;
    for (size_t i = 0; i < now.n; i++)
        for (size_t j = 0; j < last->n; j++)
            if (now.tid[i] == last->tid[j] &&
                now.waited_ns[i] - last->waited_ns[j] > most)
                most = now.waited_ns[i] - last->waited_ns[j];
    *last = now;
    return (int64_t)(most / 1000000);
}

//  What the machine did meanwhile, for a message.
static const char *
s_machine (int64_t worker_waited, int64_t test_waited)
{
    static char text[160];
    double load = 0;
    getloadavg (&load, 1);
    snprintf (text, sizeof (text),
              "meanwhile a thread of the worker waited up to %lld ms for a core, one "
              "of this test %lld ms; load average %.2f on %ld cores",
              (long long)worker_waited, (long long)test_waited, load,
              sysconf (_SC_NPROCESSORS_ONLN));
    return text;
}

//  --------------------------------------------------------------------------
//  The test as the worker's broker

//  Binds the socket on a free port of loopback; fills endpoint.
static void
s_bind (stall_t *self, char *endpoint, size_t capacity)
{
    self->socket = zsock_new (ZMQ_DEALER);
    assert_non_null (self->socket);
    zsock_set_linger (self->socket, 0);
    zsock_set_sndhwm (self->socket, 10 * WINDOW);
    zsock_set_rcvhwm (self->socket, 10 * WINDOW);
    zsock_set_maxmsgsize (self->socket, CART_BODY_WIRE_MAX);
    int port = zsock_bind (self->socket, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    snprintf (endpoint, capacity, "tcp://127.0.0.1:%d", port);
}

//  Sends to the worker without waiting; fails when that cannot be done
//  (no worker connected, or 10 x WINDOW messages queued for it).
static void
s_send (stall_t *self, const cart_header_t *header, const void *body, size_t size)
{
    cart_frame_t frame = cart_frame_bytes (body, size);
    if (cart_msg_send (zsock_resolve (self->socket), NULL, header, body ? &frame : NULL))
        fail_msg ("cannot send to the worker after %zu carts: %s", self->created,
                  errno == EAGAIN ? "it is gone (reconnecting?) or not reading"
                                  : zmq_strerror (errno));
}

//  Add number n: item sku-1 into the new cart of customer stall-n.
static void
s_send_add (stall_t *self, size_t n)
{
    char customer[32];
    size_t len = s_customer (n, customer);
    cart_request_t req = {
        .op = CART_OP_ADD,
        .customer = customer,
        .customer_len = len,
        .item = {.id = "sku-1", .id_len = 5, .price_cents = 100, .count = 1}};
    self->body.size = 0;
    const char *error = NULL;
    if (cart_request_encode (&req, &self->body, &error))
        fail_msg ("cart_request_encode: %s", error);
    cart_header_t header = {.command = CART_CMD_REQUEST,
                            .shard = 0,
                            .timeout_ms = WAIT_MS,
                            .corr = n + 1, //  corr 0 is no request's
                            .key = s_keys[n]};
    assert_int_equal (cart_ring_shard (header.key, 1), 0);
    s_send (self, &header, self->body.data, self->body.size);
}

//  Reads a message that is already there. Returns 1, or 0 when there was
//  none (the time of the look is then kept in empty_at); a malformed
//  message fails the test.
static int
s_read (stall_t *self)
{
    int64_t look = zclock_mono ();
    if (self->looked_at && look - self->looked_at > self->longest_away)
        self->longest_away = look - self->looked_at;
    const char *error = NULL;
    int rc = cart_msg_recv (zsock_resolve (self->socket), CART_AT_BACKEND, false,
                            &self->msg, ZMQ_DONTWAIT, &error);
    if (rc == -1)
        fail_msg ("the worker sent a malformed message: %s", error);
    if (rc == 0)
        self->empty_at = look;
    self->looked_at = zclock_mono ();
    return rc;
}

//  Waits up to timeout_ms for a message; returns whether one is there.
static bool
s_wait (stall_t *self, int timeout_ms)
{
    zmq_pollitem_t item = {zsock_resolve (self->socket), 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll (&item, 1, timeout_ms);
    self->looked_at = zclock_mono ();
    return rc == 1;
}

//  Starts the worker (with a data directory when dir is not "") and takes
//  its READY.
static void
s_start (stall_t *self, const char *endpoint)
{
    char line[512], heartbeat[16];
    snprintf (heartbeat, sizeof (heartbeat), "%d", CART_HEARTBEAT_MS);
    if (*self->dir)
        self->worker =
            test_spawn (line, sizeof (line), "shard_worker", "--shard", "0", "--shards",
                        "1", "--broker", endpoint, "--heartbeat", heartbeat, "--data-dir",
                        self->dir, "--fsync", "everysec", NULL);
    else
        self->worker =
            test_spawn (line, sizeof (line), "shard_worker", "--shard", "0", "--shards",
                        "1", "--broker", endpoint, "--heartbeat", heartbeat, NULL);
    print_message ("%s\n", line);
    if (!s_wait (self, WAIT_MS) || s_read (self) != 1 ||
        self->msg.header.command != CART_CMD_READY)
        fail_msg ("no READY from the worker within %d ms", WAIT_MS);
    cart_ready_t ready;
    const char *error = NULL;
    if (cart_ready_decode (cart_msg_body (&self->msg), cart_msg_body_size (&self->msg),
                           &ready, &error))
        fail_msg ("READY body: %s", error);
    assert_int_equal (ready.shards, 1);
    assert_int_equal (ready.heartbeat_ms, CART_HEARTBEAT_MS);
    assert_int_equal (ready.n_shards, 1);
    assert_int_equal (cart_ready_next (&ready), 0);
}

//  --------------------------------------------------------------------------
//  What the worker sends

//  A heartbeat that arrived after `early` and was read at `late`.
static void
s_take_heartbeat (stall_t *self, int64_t early, int64_t late)
{
    int64_t waited[2] = {s_waited (self->worker, &self->waits[0]),
                         s_waited (getpid (), &self->waits[1])};
    if (self->heartbeat_late) {
        int64_t gap = early - self->heartbeat_late;
        if (gap > self->longest_gap) {
            self->longest_gap = gap;
            self->gap_carts = self->created;
            memcpy (self->gap_waits, waited, sizeof (waited));
        }
        if (late - self->heartbeat_late > self->longest_apart)
            self->longest_apart = late - self->heartbeat_late;
    }
    self->heartbeat_late = late;
    self->heartbeats++;
    if (cart_msg_body_size (&self->msg) == 0)
        return;
    cart_stats_list_t list;
    cart_shard_stats_t entry;
    const char *error = NULL;
    if (cart_load_decode (cart_msg_body (&self->msg), cart_msg_body_size (&self->msg),
                          &list, &error) ||
        cart_stats_next (&list, &entry, &error) != 1)
        fail_msg ("the heartbeat's load: %s", error ? error : "no entry");
    assert_int_equal (entry.shard, 0);
    self->load_carts = entry.carts;
    self->loads++;
}

static void
s_take_reply (stall_t *self)
{
    const cart_header_t *header = &self->msg.header;
    if (header->corr == 0 || header->corr > self->sent)
        fail_msg ("a reply to corr %llu, which no add had",
                  (unsigned long long)header->corr);
    size_t n = (size_t)header->corr - 1;
    if (self->answered[n / 8] & (1u << (n % 8)))
        fail_msg ("add %zu was answered twice", n);
    self->answered[n / 8] |= (uint8_t)(1u << (n % 8));
    if (header->status != CART_CREATED) {
        cart_reply_t reply;
        bool text =
            cart_reply_decode (cart_msg_body (&self->msg),
                               cart_msg_body_size (&self->msg), &reply, NULL) == 0 &&
            reply.kind == CART_BODY_ERROR;
        fail_msg ("add %zu was answered %u, not 201: %.*s", n, header->status,
                  text ? (int)reply.message_len : 0, text ? reply.message : "");
    }
    self->created++;
}

//  Handles the message just read.
static void
s_take (stall_t *self)
{
    switch ((cart_command_t)self->msg.header.command) {
        case CART_CMD_HEARTBEAT:
            s_take_heartbeat (self, self->empty_at, zclock_mono ());
            break;
        case CART_CMD_REPLY:
            s_take_reply (self);
            break;
        case CART_CMD_READY: {
            //  It heard nothing from this test (which sends every 100 ms)
            //  for its liveness window: it stood still that long, or the
            //  test did, or the machine held them back
            int64_t worker_waited = s_waited (self->worker, &self->waits[0]);
            fail_msg ("the worker found this test silent and registered again, "
                      "after %zu carts; the test had looked away from its socket for "
                      "up to %lld ms; %s",
                      self->created, (long long)self->longest_away,
                      s_machine (worker_waited, s_waited (getpid (), &self->waits[1])));
        }
        case CART_CMD_DISCONNECT:
        case CART_CMD_REQUEST: //  cart_msg_recv lets none of these through
        case CART_CMD_PING:
        case CART_CMD_STATS:
        case CART_CMD_REFUSE:
            fail_msg ("the worker sent %s after %zu carts",
                      cart_command_name (self->msg.header.command), self->created);
    }
}

//  --------------------------------------------------------------------------
//  The run

//  One turn: heartbeats the worker when due, fills the window, reads what
//  the worker sent, or waits a slice for it.
static void
s_turn (stall_t *self)
{
    int64_t now = zclock_mono ();
    if (now >= self->beat_at) {
        cart_header_t beat = {.command = CART_CMD_HEARTBEAT};
        s_send (self, &beat, NULL, 0);
        self->beat_at = now + CART_HEARTBEAT_MS;
    }
    while (self->sent < CARTS && self->sent - self->created < WINDOW)
        s_send_add (self, self->sent++);
    int taken = 0;
    while (taken < DRAIN_MAX && s_read (self) == 1) {
        s_take (self);
        taken++;
    }
    if (taken == 0)
        s_wait (self, SLICE_MS); //  what comes is read in the next turn
    now = zclock_mono ();
    if (now - self->started > DEADLINE_MS)
        fail_msg ("only %zu of %d adds answered within %d s", self->created, CARTS,
                  DEADLINE_MS / 1000);
    if (now - (self->heartbeat_late ? self->heartbeat_late : self->started) > WAIT_MS)
        fail_msg ("no heartbeat from the worker for %d ms, after %zu carts", WAIT_MS,
                  self->created);
}

static void
s_run (bool data_dir)
{
    stall_t *self = &s_stall;
    if (data_dir) {
        snprintf (self->dir, sizeof (self->dir), "/tmp/test_stall-XXXXXX");
        assert_non_null (mkdtemp (self->dir));
    }
    char endpoint[64];
    s_bind (self, endpoint, sizeof (endpoint));
    self->answered = calloc (CARTS / 8 + 1, 1);
    assert_non_null (self->answered);
    s_start (self, endpoint);
    self->started = zclock_mono ();
    while (self->created < CARTS)
        s_turn (self);
    int64_t loaded = zclock_mono ();
    //  Every cart is in the partition: the next load report counts them
    size_t loads = self->loads;
    while (self->loads == loads)
        s_turn (self);
    double seconds = (double)(loaded - self->started) / 1000;
    print_message ("%s: %zu carts in %.1f s (%.0f adds/s, %d in flight), %zu "
                   "heartbeats; the longest gap %lld ms, after %zu carts (%lld ms from "
                   "one arrival to the next at most; in that gap a thread of the "
                   "worker waited %lld ms for a core at most); the test looked away "
                   "for up to %lld ms; the last load report: %llu carts\n",
                   *self->dir ? "data dir, fsync everysec" : "in memory", self->created,
                   seconds, (double)self->created / seconds, WINDOW, self->heartbeats,
                   (long long)self->longest_gap, self->gap_carts,
                   (long long)self->longest_apart, (long long)self->gap_waits[0],
                   (long long)self->longest_away, (unsigned long long)self->load_carts);
    assert_int_equal (self->load_carts, CARTS);
    if (self->longest_gap >= LIVENESS_MS)
        fail_msg ("the worker sent no heartbeat for %lld ms (after %zu carts): a "
                  "broker drops it after %d ms; %s",
                  (long long)self->longest_gap, self->gap_carts, LIVENESS_MS,
                  s_machine (self->gap_waits[0], self->gap_waits[1]));
    test_kill (&self->worker, SIGTERM);
}

static int
s_setup (void **state)
{
    memset (&s_stall, 0, sizeof (s_stall));
    msgpack_sbuffer_init (&s_stall.body);
    cart_msg_init (&s_stall.msg);
    return 0;
}

//  Closes what the run left open, also when it failed (by longjmp).
static int
s_teardown (void **state)
{
    stall_t *self = &s_stall;
    test_kill (&self->worker, SIGKILL); //  after a clean stop, nothing to do
    cart_msg_close (&self->msg);
    zsock_destroy (&self->socket);
    msgpack_sbuffer_destroy (&self->body);
    free (self->answered);
    if (*self->dir) {
        char command[128];
        snprintf (command, sizeof (command), "rm -rf '%.64s'", self->dir);
        assert_int_equal (system (command), 0);
    }
    return 0;
}

static void
test_grow_in_memory (void **state)
{
    s_run (false);
}

static void
test_grow_with_data_dir (void **state)
{
    s_run (true);
}

//  The keys of every add, for both runs.
static int
s_group_setup (void **state)
{
    s_keys = malloc (CARTS * sizeof (uint64_t));
    assert_non_null (s_keys);
    for (size_t n = 0; n < CARTS; n++) {
        char customer[32];
        size_t len = s_customer (n, customer);
        s_keys[n] = cart_hash_key (customer, len);
    }
    return 0;
}

static int
s_group_teardown (void **state)
{
    free (s_keys);
    s_keys = NULL;
    return 0;
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_grow_in_memory, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_grow_with_data_dir, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
