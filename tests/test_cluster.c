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
    char list[8];
    snprintf (list, sizeof (list), "%d", shard);
    char line[256];
    s_workers[shard] = test_spawn (line, sizeof (line), "shard_worker", "--broker",
                                   s_backend, "--shard", list, NULL);
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
    char *error = NULL;
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

static zframe_t *
s_frame_at (zmsg_t *msg, size_t index)
{
    zframe_t *frame = zmsg_first (msg);
    while (frame && index--)
        frame = zmsg_next (msg);
    assert_non_null (frame);
    return frame;
}

//  Bad input from the bus: answered or dropped, and the cluster serves on.
static void
test_malformed_from_the_bus (void **state)
{
    zsock_t *raw = zsock_new_dealer (s_frontend);
    assert_non_null (raw);
    zsock_set_rcvtimeo (raw, 5000);
    uint8_t corr[8] = {0, 0, 0, 0, 0, 0, 0, 42};
    uint8_t key[8];
    //  A request whose key is not hash_key of its customer: the worker says 400
    cart_put_u64 (key, cart_hash_key_str ("someone-else"));
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, CART_PROTO_CLIENT, CART_PROTO_LEN);
    zmsg_addmem (msg, "\x01", 1);
    zmsg_addmem (msg, corr, 8);
    zmsg_addmem (msg, key, 8);
    zmsg_addmem (msg,
                 "\x92\x01\xa3"
                 "abc",
                 6);
    zmsg_send (&msg, raw);
    zmsg_t *reply = zmsg_recv (raw);
    assert_non_null (reply);
    assert_int_equal (zmsg_size (reply), 5);
    assert_memory_equal (zframe_data (s_frame_at (reply, 3)), "\x01\x90", 2); //  400
    zmsg_destroy (&reply);

    //  A request with a truncated key frame: the broker says 400
    msg = zmsg_new ();
    zmsg_addmem (msg, CART_PROTO_CLIENT, CART_PROTO_LEN);
    zmsg_addmem (msg, "\x01", 1);
    zmsg_addmem (msg, corr, 8);
    zmsg_addmem (msg, key, 3);
    zmsg_addmem (msg, "", 0);
    zmsg_send (&msg, raw);
    reply = zmsg_recv (raw);
    assert_non_null (reply);
    assert_memory_equal (zframe_data (s_frame_at (reply, 3)), "\x01\x90", 2);
    zmsg_destroy (&reply);

    //  Garbage: dropped without an answer; the next request is served
    zstr_sendx (raw, "garbage", "more", NULL);
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

//  A rogue peer on the backend: it takes shard 0 with READY, then answers
//  a request with correlation ids that are not the request's (0, which
//  every free slot of a client holds, and a random one). The client must
//  not take them for results: the request ends at its deadline. When the
//  rogue leaves, shard 0's real worker gets its shard back by itself.
static void
test_rogue_worker (void **state)
{
    char id[32];
    s_customer_on (0, id, sizeof (id));
    zsock_t *rogue = zsock_new_dealer (s_backend);
    assert_non_null (rogue);
    zsock_set_rcvtimeo (rogue, 5000);
    uint8_t shard[4] = {0, 0, 0, 0};
    zmsg_t *ready = zmsg_new ();
    zmsg_addmem (ready, CART_PROTO_WORKER, CART_PROTO_LEN);
    zmsg_addmem (ready, "\x01", 1);
    zmsg_addmem (ready, shard, 4);
    zmsg_send (&ready, rogue);
    //  Send requests until one reaches the rogue (READY is read first)
    zmsg_t *request = NULL;
    int64_t until = zclock_mono () + 5000;
    while (!request && zclock_mono () < until) {
        cart_request_t req = {
            .op = CART_OP_GET, .customer = id, .customer_len = strlen (id)};
        assert_int_equal (cart_client_send (s_client, &req, 300, NULL, NULL, NULL), 0);
        cart_result_t result;
        assert_int_equal (cart_client_recv (s_client, &result, -1), 1);
        if (result.status == CART_TIMEOUT)
            request = zmsg_recv (rogue);
    }
    assert_non_null (request);
    //  [proto][REQUEST][shard][client][corr][key][body]: answer with bad corrs
    zframe_t *client = s_frame_at (request, 3);
    uint8_t corrs[2][8] = {{0}, {1, 2, 3, 4, 5, 6, 7, 8}};
    for (int i = 0; i < 2; i++) {
        zmsg_t *reply = zmsg_new ();
        zmsg_addmem (reply, CART_PROTO_WORKER, CART_PROTO_LEN);
        zmsg_addmem (reply, "\x03", 1);
        zmsg_addmem (reply, zframe_data (client), zframe_size (client));
        zmsg_addmem (reply, corrs[i], 8);
        zmsg_addmem (reply, "\x00\xc8", 2);
        zmsg_addmem (reply, "", 0);
        zmsg_send (&reply, rogue);
    }
    zmsg_destroy (&request);
    //  A request now: nothing but its own result or its timeout comes back
    cart_request_t req = {
        .op = CART_OP_GET, .customer = "other-customer", .customer_len = 14};
    uint64_t corr = 0;
    assert_int_equal (cart_client_send (s_client, &req, 2000, NULL, &corr, NULL), 0);
    cart_result_t result;
    assert_int_equal (cart_client_recv (s_client, &result, -1), 1);
    assert_int_equal (result.corr, corr);
    assert_int_equal (cart_client_pending (s_client), 0);
    zsock_destroy (&rogue);
    assert_int_equal (s_wait_serving (id, 30000), CART_OK);
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
        cmocka_unit_test (test_broker_restart),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
