/*  test_cluster - the cluster as separate processes over tcp on loopback:
    build/bin/broker and three build/bin/shard_worker, driven through the
    client library. Every wait is on a reply or a process's output, with a
    deadline; nothing sleeps.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <czmq.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cart_client.h"
#include "cart_hash.h"
#include "cart_ring.h"
#include "test_process.h"

#define SHARDS 3

static char s_frontend[128];
static char s_backend[128];
static pid_t s_broker;
static pid_t s_workers[SHARDS];
static cart_client_t *s_client;

//  --------------------------------------------------------------------------
//  Processes

static void
s_start_broker (const char *frontend, const char *backend)
{
    char line[512];
    char shards[8];
    snprintf (shards, sizeof (shards), "%d", SHARDS);
    s_broker = test_spawn (line, sizeof (line), "broker", "--frontend", frontend,
                           "--backend", backend, "--shards", shards, NULL);
    //  "broker: clients on EP, workers on EP, S shards"
    assert_int_equal (sscanf (line, "broker: clients on %127[^,], workers on %127[^,],",
                              s_frontend, s_backend),
                      2);
}

static void
s_start_worker (int shard)
{
    char list[8], shards[8];
    snprintf (list, sizeof (list), "%d", shard);
    snprintf (shards, sizeof (shards), "%d", SHARDS);
    char line[256];
    s_workers[shard] = test_spawn (line, sizeof (line), "shard_worker", "--broker",
                                   s_backend, "--shards", shards, "--shard", list, NULL);
}

//  --------------------------------------------------------------------------
//  Requests

//  Sends one request and waits for its result; returns its status. The
//  result's body is copied into body (when not NULL) as a zchunk.
static int s_call_deadline (cart_op_t op, const char *customer, const char *item,
                            uint32_t count, zchunk_t **body, int deadline_ms);

static int
s_call (cart_op_t op, const char *customer, const char *item, uint32_t count,
        zchunk_t **body)
{
    return s_call_deadline (op, customer, item, count, body, 1000);
}

//  The same with a deadline of its own.
static int
s_call_deadline (cart_op_t op, const char *customer, const char *item, uint32_t count,
                 zchunk_t **body, int deadline_ms)
{
    cart_request_t req = {
        .op = op, .customer = customer, .customer_len = strlen (customer)};
    if (item) {
        req.item.id = item;
        req.item.id_len = strlen (item);
    }
    req.item.count = count;
    req.item.price_cents = 1999;
    const char *error = NULL;
    if (cart_client_send (s_client, &req, deadline_ms, NULL, NULL, &error))
        return -1; //  not sent: no broker connected now
    cart_result_t result;
    assert_int_equal (cart_client_recv (s_client, &result, -1), 1);
    if (body)
        *body = zchunk_new (result.body, result.body_size);
    return result.status;
}

//  A customer id whose cart lives on the given shard.
static void
s_customer_on (uint32_t shard, char *id, size_t size)
{
    for (int i = 0;; i++) {
        snprintf (id, size, "customer-%d", i);
        if (cart_ring_shard (cart_hash_key_str (id), SHARDS) == shard)
            return;
    }
}

//  Polls with GET until the customer's shard answers 200, for up to
//  timeout_ms. Returns the last status.
static int
s_wait_serving (const char *customer, int timeout_ms)
{
    int64_t until = zclock_mono () + timeout_ms;
    int status;
    do {
        status = s_call (CART_OP_GET, customer, NULL, 0, NULL);
        if (status == -1) { //  no connection yet: let the socket work
            cart_result_t ignored;
            cart_client_recv (s_client, &ignored, 20);
        }
    } while (status != CART_OK && zclock_mono () < until);
    return status;
}

static int
s_setup (void **state)
{
    s_start_broker ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    for (int i = 0; i < SHARDS; i++)
        s_start_worker (i);
    const char *error = NULL;
    s_client = cart_client_new (s_frontend, &error);
    assert_non_null (s_client);
    char id[32];
    for (uint32_t shard = 0; shard < SHARDS; shard++) {
        s_customer_on (shard, id, sizeof (id));
        assert_int_equal (s_wait_serving (id, 30000), CART_OK);
    }
    return 0;
}

static int
s_teardown (void **state)
{
    cart_client_destroy (&s_client);
    for (int i = 0; i < SHARDS; i++)
        test_kill (&s_workers[i], SIGTERM);
    test_kill (&s_broker, SIGTERM);
    return 0;
}

//  --------------------------------------------------------------------------
//  Tests

static void
s_assert_item (zchunk_t *body, const char *id, uint32_t count)
{
    cart_reply_t reply;
    const char *error;
    assert_int_equal (
        cart_reply_decode (zchunk_data (body), zchunk_size (body), &reply, &error), 0);
    assert_int_equal (reply.kind, CART_BODY_ITEM);
    assert_int_equal (reply.item.id_len, strlen (id));
    assert_memory_equal (reply.item.id, id, strlen (id));
    assert_int_equal (reply.item.count, count);
    assert_int_equal (reply.item.price_cents, 1999);
}

static size_t
s_cart_items (zchunk_t *body)
{
    cart_reply_t reply;
    const char *error;
    assert_int_equal (
        cart_reply_decode (zchunk_data (body), zchunk_size (body), &reply, &error), 0);
    assert_int_equal (reply.kind, CART_BODY_CART);
    return reply.n_items;
}

static void
test_every_operation (void **state)
{
    zchunk_t *body = NULL;
    const char *who = "ops-customer";
    assert_int_equal (s_call (CART_OP_GET, who, NULL, 0, &body), CART_OK);
    assert_int_equal (s_cart_items (body), 0);
    zchunk_destroy (&body);

    assert_int_equal (s_call (CART_OP_ADD, who, "apple", 2, &body), CART_CREATED);
    s_assert_item (body, "apple", 2);
    zchunk_destroy (&body);
    assert_int_equal (s_call (CART_OP_ADD, who, "apple", 3, &body), CART_OK);
    s_assert_item (body, "apple", 5);
    zchunk_destroy (&body);
    assert_int_equal (s_call (CART_OP_ADD, who, "pear", 1, NULL), CART_CREATED);
    assert_int_equal (s_call (CART_OP_ADD, who, "apple", CART_COUNT_MAX, NULL),
                      CART_CONFLICT);
    assert_int_equal (s_call (CART_OP_SET, who, "apple", 7, &body), CART_OK);
    s_assert_item (body, "apple", 7);
    zchunk_destroy (&body);
    assert_int_equal (s_call (CART_OP_SET, who, "pear", 0, NULL), CART_DELETED);
    assert_int_equal (s_call (CART_OP_SET, who, "pear", 1, NULL), CART_NOT_FOUND);
    assert_int_equal (s_call (CART_OP_REMOVE, who, "pear", 0, NULL), CART_NOT_FOUND);
    assert_int_equal (s_call (CART_OP_ADD, who, "kiwi", 1, NULL), CART_CREATED);
    assert_int_equal (s_call (CART_OP_REMOVE, who, "kiwi", 0, NULL), CART_DELETED);

    assert_int_equal (s_call (CART_OP_CHECKOUT, who, NULL, 0, &body), CART_OK);
    assert_int_equal (s_cart_items (body), 1);
    zchunk_destroy (&body);
    assert_int_equal (s_call (CART_OP_CHECKOUT, who, NULL, 0, NULL), CART_NOT_FOUND);
    assert_int_equal (s_call (CART_OP_GET, who, NULL, 0, &body), CART_OK);
    assert_int_equal (s_cart_items (body), 0);
    zchunk_destroy (&body);
}

//  1,000 requests in flight on one socket; each result comes back once,
//  matched to its request.
static void
test_pipelined (void **state)
{
    enum { N = 1000 };
    static bool seen[N];
    memset (seen, 0, sizeof (seen));
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf (id, sizeof (id), "pipe-%d", i % 50);
        cart_request_t req = {
            .op = CART_OP_ADD, .customer = id, .customer_len = strlen (id)};
        req.item = (cart_item_t){.id = "x", .id_len = 1, .price_cents = 1, .count = 1};
        assert_int_equal (cart_client_send (s_client, &req, 5000, &seen[i], NULL, NULL),
                          0);
    }
    assert_int_equal (cart_client_pending (s_client), N);
    for (int i = 0; i < N; i++) {
        cart_result_t result;
        assert_int_equal (cart_client_recv (s_client, &result, -1), 1);
        assert_true (result.status == CART_OK || result.status == CART_CREATED);
        bool *flag = (bool *)result.user;
        assert_false (*flag);
        *flag = true;
    }
    assert_int_equal (cart_client_pending (s_client), 0);
    //  Each of the 50 carts holds 20 units of x
    zchunk_t *body = NULL;
    assert_int_equal (s_call (CART_OP_SET, "pipe-7", "x", 20, &body), CART_OK);
    zchunk_destroy (&body);
}

//  --------------------------------------------------------------------------
//  Raw peers, for input that the client library would never send

static void
s_raw_send (zsock_t *sock, const cart_header_t *header, const void *body, size_t size)
{
    cart_frame_t frame = cart_frame_bytes (body, size);
    assert_int_equal (
        cart_msg_send (zsock_resolve (sock), NULL, header, body ? &frame : NULL), 0);
}

//  Receives one message at `at` within 5 s; returns cart_msg_recv's result.
static int
s_raw_recv (zsock_t *sock, int at, cart_msg_t *msg)
{
    zsock_set_rcvtimeo (sock, 5000);
    return cart_msg_recv (zsock_resolve (sock), at, false, msg, 0, NULL);
}

//  Bad input from the bus: answered or dropped, and the cluster serves on.
static void
test_malformed_from_the_bus (void **state)
{
    zsock_t *raw = zsock_new_dealer (s_frontend);
    assert_non_null (raw);
    cart_msg_t reply;
    cart_msg_init (&reply);
    //  A request whose key is not hash_key of its customer: the worker says 400
    const char body[] = "\x92\x01\xa3"
                        "abc";
    cart_header_t header = {.command = CART_CMD_REQUEST,
                            .corr = 42,
                            .key = cart_hash_key_str ("someone-else")};
    s_raw_send (raw, &header, body, sizeof (body) - 1);
    assert_int_equal (s_raw_recv (raw, CART_AT_CLIENT, &reply), 1);
    assert_int_equal (reply.header.corr, 42);
    assert_int_equal (reply.header.status, CART_BAD_REQUEST);

    //  A request whose key is not below 2^63: the broker says 400
    header.key = UINT64_MAX;
    header.corr = 43;
    s_raw_send (raw, &header, body, sizeof (body) - 1);
    assert_int_equal (s_raw_recv (raw, CART_AT_CLIENT, &reply), 1);
    assert_int_equal (reply.header.corr, 43);
    assert_int_equal (reply.header.status, CART_BAD_REQUEST);

    //  A CART/1 request and garbage get no answer: the PING sent after them
    //  is the next thing that comes back
    zstr_sendx (raw, "CARTC01", "\x01", "12345678", "12345678", "", NULL);
    zstr_sendx (raw, "garbage", "more", NULL);
    header = (cart_header_t){.command = CART_CMD_PING, .corr = 44};
    s_raw_send (raw, &header, NULL, 0);
    assert_int_equal (s_raw_recv (raw, CART_AT_CLIENT, &reply), 1);
    assert_int_equal (reply.header.corr, 44);
    assert_int_equal (reply.header.status, CART_OK);
    cart_msg_close (&reply);
    zsock_destroy (&raw);
    assert_int_equal (s_call (CART_OP_GET, "after-garbage", NULL, 0, NULL), CART_OK);
}

//  kill -9 one worker: its shard answers UNAVAILABLE within 500 ms while
//  the others serve; a new worker for it serves again.
static void
test_worker_crash_and_restart (void **state)
{
    char victim[32], other[32];
    s_customer_on (1, victim, sizeof (victim));
    s_customer_on (2, other, sizeof (other));
    assert_int_equal (s_call (CART_OP_ADD, other, "keep", 1, NULL), CART_CREATED);

    //  A request sent before the broker sees the connection close is lost
    //  with the worker, and ends at its own deadline: so each probe has a
    //  short one (100 ms), and the bound is on when 503s start. The broker
    //  finds the dead worker when a send to it fails, or after 3 missed
    //  heartbeats (300 ms) at the latest.
    int64_t killed_at = zclock_mono ();
    test_kill (&s_workers[1], SIGKILL);
    int status;
    do
        status = s_call_deadline (CART_OP_GET, victim, NULL, 0, NULL, 100);
    while (status != CART_UNAVAILABLE && zclock_mono () - killed_at < 2000);
    int64_t elapsed = zclock_mono () - killed_at;
    print_message ("UNAVAILABLE %lld ms after kill -9\n", (long long)elapsed);
    int other_get = s_call (CART_OP_GET, other, NULL, 0, NULL);
    int other_add = s_call (CART_OP_ADD, other, "keep", 1, NULL);
    s_start_worker (1); //  before any assert, so later tests have it
    assert_int_equal (status, CART_UNAVAILABLE);
    assert_true (elapsed <= 500);
    assert_int_equal (other_get, CART_OK);
    assert_int_equal (other_add, CART_OK);
    assert_int_equal (s_wait_serving (victim, 30000), CART_OK);
}

//  A stranger on the backend claims shard 0, which a live worker serves:
//  it is refused (409), receives no request, and shard 0's customers keep
//  being served by their worker, with their carts.
static void
test_rogue_worker (void **state)
{
    char id[32];
    s_customer_on (0, id, sizeof (id));
    assert_int_equal (s_call (CART_OP_ADD, id, "kept", 1, NULL), CART_CREATED);
    zsock_t *rogue = zsock_new_dealer (s_backend);
    assert_non_null (rogue);
    uint32_t shard = 0;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    cart_ready_encode (&pk, SHARDS, CART_HEARTBEAT_MS, &shard, 1);
    cart_header_t header = {.command = CART_CMD_READY};
    s_raw_send (rogue, &header, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    cart_msg_t msg;
    cart_msg_init (&msg);
    assert_int_equal (s_raw_recv (rogue, CART_AT_WORKER, &msg), 1);
    assert_int_equal (msg.header.command, CART_CMD_REFUSE);
    assert_int_equal (msg.header.status, CART_CONFLICT);
    //  The cart is still there, served by its worker
    zchunk_t *body = NULL;
    assert_int_equal (s_call (CART_OP_GET, id, NULL, 0, &body), CART_OK);
    cart_reply_t reply;
    assert_int_equal (
        cart_reply_decode (zchunk_data (body), zchunk_size (body), &reply, NULL), 0);
    assert_int_equal (reply.n_items, 1);
    zchunk_destroy (&body);
    //  ... and nothing was routed to the rogue
    assert_int_equal (cart_msg_recv (zsock_resolve (rogue), CART_AT_WORKER, false, &msg,
                                     ZMQ_DONTWAIT, NULL),
                      0);
    cart_msg_close (&msg);
    zsock_destroy (&rogue);
}

//  A second shard_worker for a shard that has a live worker is refused: it
//  exits 1, saying why, and the first keeps the shard.
static void
test_second_worker_refused (void **state)
{
    char out[2048], shards[8];
    snprintf (shards, sizeof (shards), "%d", SHARDS);
    int status = test_run (out, sizeof (out), 30000, "shard_worker", "--broker",
                           s_backend, "--shards", shards, "--shard", "1", NULL);
    print_message ("%s", out);
    assert_int_equal (status, 1);
    assert_non_null (strstr (out, "another live worker"));
    char id[32];
    s_customer_on (1, id, sizeof (id));
    assert_int_equal (s_call (CART_OP_GET, id, NULL, 0, NULL), CART_OK);
}

//  A worker started for another cluster size or heartbeat is refused
//  loudly, the message naming both values.
static void
test_misconfigured_worker (void **state)
{
    char out[2048];
    int status = test_run (out, sizeof (out), 30000, "shard_worker", "--broker",
                           s_backend, "--shards", "4", "--shard", "3", NULL);
    print_message ("%s", out);
    assert_int_equal (status, 1);
    assert_non_null (strstr (out, "3 shards"));
    assert_non_null (strstr (out, "for 4"));
    status = test_run (out, sizeof (out), 30000, "shard_worker", "--broker", s_backend,
                       "--shards", "3", "--shard", "2", "--heartbeat", "250", NULL);
    print_message ("%s", out);
    assert_int_equal (status, 1);
    assert_non_null (strstr (out, "100 ms"));
    assert_non_null (strstr (out, "250 ms"));
}

//  Stops shard's worker with SIGSTOP until the broker takes it for dead
//  (the shard answers 503); returns its pid.
static pid_t
s_pause_worker (uint32_t shard, const char *customer)
{
    pid_t paused = s_workers[shard];
    kill (paused, SIGSTOP);
    int status;
    int64_t until = zclock_mono () + 30000;
    do
        status = s_call_deadline (CART_OP_GET, customer, NULL, 0, NULL, 100);
    while (status != CART_UNAVAILABLE && zclock_mono () < until);
    assert_int_equal (status, CART_UNAVAILABLE);
    return paused;
}

//  A worker paused past its liveness is replaced; when it resumes it does
//  not take its shard back (which would hide what its replacement wrote):
//  it is refused and exits, and the replacement's writes stay.
static void
test_paused_worker_not_reinstated (void **state)
{
    char id[32];
    s_customer_on (2, id, sizeof (id));
    pid_t paused = s_pause_worker (2, id);
    s_start_worker (2);
    assert_int_equal (s_wait_serving (id, 30000), CART_OK);
    assert_int_equal (s_call (CART_OP_ADD, id, "written-by-replacement", 1, NULL),
                      CART_CREATED);
    kill (paused, SIGCONT);
    assert_int_equal (test_wait_exit (&paused, 30000), 1);
    zchunk_t *body = NULL;
    assert_int_equal (s_call (CART_OP_GET, id, NULL, 0, &body), CART_OK);
    cart_reply_t reply;
    cart_item_t item;
    assert_int_equal (
        cart_reply_decode (zchunk_data (body), zchunk_size (body), &reply, NULL), 0);
    assert_int_equal (cart_reply_next_item (&reply, &item, NULL), 1);
    assert_int_equal (item.id_len, strlen ("written-by-replacement"));
    zchunk_destroy (&body);
}

//  A worker replaced while it paused must not come back even when its
//  replacements are gone: its carts are stale. It is refused and exits.
static void
test_paused_worker_stays_out (void **state)
{
    char id[32];
    s_customer_on (2, id, sizeof (id));
    pid_t paused = s_pause_worker (2, id);
    //  Two replacements in turn, each dying: the broker must remember every
    //  worker a shard has left behind, not only the last
    for (int replacement = 0; replacement < 2; replacement++) {
        s_start_worker (2);
        assert_int_equal (s_wait_serving (id, 30000), CART_OK);
        test_kill (&s_workers[2], SIGKILL);
    }
    kill (paused, SIGCONT);
    assert_int_equal (test_wait_exit (&paused, 30000), 1);
    s_start_worker (2); //  a fresh process is welcome
    assert_int_equal (s_wait_serving (id, 30000), CART_OK);
}

//  A client that sets its own routing id and restarts counts its reads
//  from 0 again: the broker must not take the earlier session's reads
//  for debts of the new one.
static void
test_client_restart_same_identity (void **state)
{
    cart_msg_t reply;
    cart_msg_init (&reply);
    for (int session = 0; session < 2; session++) {
        zsock_t *raw = zsock_new (ZMQ_DEALER);
        assert_non_null (raw);
        zsock_set_identity (raw, "fixed-client-id");
        assert_int_equal (zsock_connect (raw, "%s", s_frontend), 0);
        //  Session 0 says it has read 20 MB (it has, of an earlier broker);
        //  session 1 starts from 0
        cart_header_t header = {
            .command = CART_CMD_PING, .corr = 7, .acked = session ? 0 : 20u << 20};
        s_raw_send (raw, &header, NULL, 0);
        assert_int_equal (s_raw_recv (raw, CART_AT_CLIENT, &reply), 1);
        assert_int_equal (reply.header.status, CART_OK);
        const char body[] = "\x92\x01\xa3"
                            "abc";
        header = (cart_header_t){
            .command = CART_CMD_REQUEST, .corr = 8, .key = cart_hash_key_str ("abc")};
        s_raw_send (raw, &header, body, sizeof (body) - 1);
        assert_int_equal (s_raw_recv (raw, CART_AT_CLIENT, &reply), 1);
        assert_int_equal (reply.header.corr, 8);
        assert_int_equal (reply.header.status, CART_OK);
        zsock_destroy (&raw);
    }
    cart_msg_close (&reply);
}

//  kill -9 the broker and start it again on the same endpoints: workers
//  and the client (the same client object) find it by themselves.
static void
test_broker_restart (void **state)
{
    char frontend[128], backend[128];
    snprintf (frontend, sizeof (frontend), "%s", s_frontend);
    snprintf (backend, sizeof (backend), "%s", s_backend);
    char id[32];
    s_customer_on (0, id, sizeof (id));
    test_kill (&s_broker, SIGKILL);
    s_start_broker (frontend, backend);
    assert_string_equal (s_frontend, frontend);
    for (uint32_t shard = 0; shard < SHARDS; shard++) {
        s_customer_on (shard, id, sizeof (id));
        assert_int_equal (s_wait_serving (id, 30000), CART_OK);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_every_operation),
        cmocka_unit_test (test_pipelined),
        cmocka_unit_test (test_malformed_from_the_bus),
        cmocka_unit_test (test_worker_crash_and_restart),
        cmocka_unit_test (test_rogue_worker),
        cmocka_unit_test (test_second_worker_refused),
        cmocka_unit_test (test_misconfigured_worker),
        cmocka_unit_test (test_paused_worker_not_reinstated),
        cmocka_unit_test (test_paused_worker_stays_out),
        cmocka_unit_test (test_client_restart_same_identity),
        cmocka_unit_test (test_broker_restart),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
