/*  test_curve - CURVE on the bus, over tcp on loopback: build/bin/broker
    with --cert, --worker-keys and --client-keys, two build/bin/shard_worker
    with keys granting shard 0 and shard 1, and clients through the client
    library; keys made by build/bin/cartctl keygen in a fresh directory.

    Who is refused is shown by what libzmq itself reports: a socket monitor
    on the refused socket sees its handshake fail (ZMQ_EVENT_HANDSHAKE_
    FAILED_AUTH with the ZAP handler's 400, or a mechanism mismatch for a
    plain peer) and never succeed. Every wait is on a reply, an event, a
    process's output or exit, with a deadline; nothing sleeps.

    Two groups: the key files and the CART_* environment without
    processes, then the cluster.
*/
#define _GNU_SOURCE //  nftw
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <czmq.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cart_args.h"
#include "cart_client.h"
#include "cart_control.h"
#include "cart_curve.h"
#include "cart_hash.h"
#include "cart_ring.h"
#include "test_process.h"

#define SHARDS     2
#define SHARDS_TXT "2"
#define WAIT_MS    10000 //  deadline of a wait that normally takes milliseconds

//  The key directory (mkdtemp), laid out as an operator would:
//    broker/   the broker's pair (--cert)
//    workers/  the workers' keys (--worker-keys): worker-0 (shards 0),
//              worker-1 (shards 1); their secrets beside them
//    clients/  the clients' keys (--client-keys): client, ops
//    rogue/    pairs the broker does not know: rogue (shards 0), stranger
//    staging/  late (shards 1), listed only while test_key_added runs
static char s_keys[] = "/tmp/test_curve.XXXXXX";
static char s_frontend[128];
static char s_backend[128];
static pid_t s_broker;
static pid_t s_workers[SHARDS];
static cart_curve_t s_client_keys;
static cart_client_t *s_client;

//  --------------------------------------------------------------------------
//  Files

//  dir/relative into path (PATH_MAX).
static void
s_path (char *path, const char *dir, const char *relative)
{
    assert_true (snprintf (path, PATH_MAX, "%s/%s", dir, relative) < PATH_MAX);
}

static int
s_remove_one (const char *path, const struct stat *info, int flag, struct FTW *ftw)
{
    return remove (path);
}

static void
s_remove_tree (const char *dir)
{
    assert_int_equal (nftw (dir, s_remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

//  A whole small file into text (size bytes, NUL-terminated).
static void
s_read_file (const char *path, char *text, size_t size)
{
    FILE *file = fopen (path, "r");
    assert_non_null (file);
    size_t got = fread (text, 1, size - 1, file);
    text[got] = 0;
    fclose (file);
}

//  Makes the pair keys/subdir/NAME with the built cartctl keygen; shards
//  (NULL: none) goes into its metadata.
static void
s_keygen (const char *subdir, const char *name, const char *shards)
{
    char dir[PATH_MAX], out[1024];
    s_path (dir, s_keys, subdir);
    int status = shards ? test_run (out, sizeof (out), WAIT_MS, "cartctl", "keygen",
                                    "--dir", dir, "--shards", shards, name, NULL)
                        : test_run (out, sizeof (out), WAIT_MS, "cartctl", "keygen",
                                    "--dir", dir, name, NULL);
    if (status)
        print_message ("%s", out);
    assert_int_equal (status, 0);
}

//  The key file keys/relative ("workers/worker-0.key") into path.
static void
s_key (char *path, const char *relative)
{
    s_path (path, s_keys, relative);
}

//  Loads keys/relative with the broker's public key, as a program would.
static void
s_load (cart_curve_t *curve, const char *relative)
{
    char cert[PATH_MAX], broker_key[PATH_MAX];
    s_key (cert, relative);
    s_key (broker_key, "broker/broker.key");
    const char *error = NULL;
    if (cart_curve_load (curve, cert, broker_key, &error))
        fail_msg ("%s", error);
}

//  --------------------------------------------------------------------------
//  Processes

static void
s_start_broker (const char *frontend, const char *backend)
{
    char line[512], cert[PATH_MAX], workers[PATH_MAX], clients[PATH_MAX];
    s_key (cert, "broker/broker.key");
    s_key (workers, "workers");
    s_key (clients, "clients");
    s_broker = test_spawn (line, sizeof (line), "broker", "--frontend", frontend,
                           "--backend", backend, "--shards", SHARDS_TXT, "--cert", cert,
                           "--worker-keys", workers, "--client-keys", clients, NULL);
    //  "broker: clients on EP, workers on EP, S shards, CURVE"
    assert_int_equal (sscanf (line, "broker: clients on %127[^,], workers on %127[^,],",
                              s_frontend, s_backend),
                      2);
    assert_null (strstr (line, "no CURVE"));
}

//  Starts a shard_worker for shard (a list) with the key file cert over
//  CURVE, or plain when cert is NULL; returns its pid.
static pid_t
s_spawn_worker (const char *cert, const char *shard)
{
    char line[256], broker_key[PATH_MAX];
    s_key (broker_key, "broker/broker.key");
    pid_t pid =
        cert ? test_spawn (line, sizeof (line), "shard_worker", "--broker", s_backend,
                           "--shards", SHARDS_TXT, "--shard", shard, "--cert", cert,
                           "--broker-key", broker_key, NULL)
             : test_spawn (line, sizeof (line), "shard_worker", "--broker", s_backend,
                           "--shards", SHARDS_TXT, "--shard", shard, NULL);
    //  "shard_worker: 1 shard(s) on 1 thread(s), broker EP[ over CURVE], ..."
    assert_true ((strstr (line, "over CURVE") != NULL) == (cert != NULL));
    return pid;
}

//  The listed worker of shard, with its own key.
static void
s_start_worker (uint32_t shard)
{
    char cert[PATH_MAX], name[64], list[8];
    snprintf (name, sizeof (name), "workers/worker-%u.key", shard);
    snprintf (list, sizeof (list), "%u", shard);
    s_key (cert, name);
    s_workers[shard] = s_spawn_worker (cert, list);
}

//  cartctl stats --shard LIST over CURVE with the ops key (key NULL), or
//  plain (key ""); returns its exit status: 0 every listed shard live, 3
//  not, 1 no answer.
static int
s_stats (const char *list, const char *key)
{
    char out[2048], cert[PATH_MAX], broker_key[PATH_MAX];
    s_key (cert, "clients/ops.key");
    s_key (broker_key, "broker/broker.key");
    if (key && !*key)
        return test_run (out, sizeof (out), WAIT_MS, "cartctl", "stats", "--broker",
                         s_frontend, "--timeout", "500", NULL);
    return test_run (out, sizeof (out), WAIT_MS, "cartctl", "stats", "--broker",
                     s_frontend, "--timeout", "2000", "--shard", list, "--cert", cert,
                     "--broker-key", broker_key, NULL);
}

//  Runs s_stats (list) until it exits with want, for up to timeout_ms.
//  Returns the last exit status. Waiting for live shards is cartctl's own
//  stats --wait, once.
static int
s_wait_stats (const char *list, int want, int timeout_ms)
{
    if (want == 0) {
        char out[2048], cert[PATH_MAX], broker_key[PATH_MAX], wait[16];
        s_key (cert, "clients/ops.key");
        s_key (broker_key, "broker/broker.key");
        snprintf (wait, sizeof (wait), "%d", timeout_ms / 1000);
        return test_run (out, sizeof (out), timeout_ms + WAIT_MS, "cartctl", "stats",
                         "--broker", s_frontend, "--shard", list, "--wait", wait,
                         "--cert", cert, "--broker-key", broker_key, NULL);
    }
    int64_t until = zclock_mono () + timeout_ms;
    int status;
    do
        status = s_stats (list, NULL);
    while (status != want && zclock_mono () < until);
    return status;
}

//  True while a process runs (it has not ended, nor been reaped).
static bool
s_running (pid_t pid)
{
    int status;
    return pid > 0 && waitpid (pid, &status, WNOHANG) == 0;
}

//  --------------------------------------------------------------------------
//  Requests, through s_client (over CURVE with the client key)

//  Sends one request with a deadline and waits for its result; returns its
//  status, or -1 when it could not be sent. The result's body is copied
//  into body (when not NULL) as a zchunk.
static int
s_call (cart_op_t op, const char *customer, const char *item, zchunk_t **body)
{
    cart_request_t req = {
        .op = op, .customer = customer, .customer_len = strlen (customer)};
    if (item)
        req.item = (cart_item_t){
            .id = item, .id_len = strlen (item), .price_cents = 1999, .count = 1};
    if (cart_client_send (s_client, &req, 1000, NULL, NULL, NULL))
        return -1; //  not sent: no broker connected now
    cart_result_t result;
    assert_int_equal (cart_client_recv (s_client, &result, -1), 1);
    if (body)
        *body = zchunk_new (result.body, result.body_size);
    return result.status;
}

//  The items in a GET's reply.
static size_t
s_items (const char *customer)
{
    zchunk_t *body = NULL;
    assert_int_equal (s_call (CART_OP_GET, customer, NULL, &body), CART_OK);
    cart_reply_t reply;
    assert_int_equal (
        cart_reply_decode (zchunk_data (body), zchunk_size (body), &reply, NULL), 0);
    assert_int_equal (reply.kind, CART_BODY_CART);
    size_t n = reply.n_items;
    zchunk_destroy (&body);
    return n;
}

//  The n-th customer id whose cart lives on shard.
static void
s_customer_on (uint32_t shard, int n, char *id, size_t size)
{
    for (int i = 0;; i++) {
        snprintf (id, size, "curve-customer-%d", i);
        if (cart_ring_shard (cart_hash_key_str (id), SHARDS) == shard && n-- == 0)
            return;
    }
}

//  Polls with GET until shard answers 200, for up to timeout_ms. Returns
//  the last status.
static int
s_wait_serving (uint32_t shard, int timeout_ms)
{
    char id[32];
    s_customer_on (shard, 0, id, sizeof (id));
    int64_t until = zclock_mono () + timeout_ms;
    int status;
    do {
        status = s_call (CART_OP_GET, id, NULL, NULL);
        if (status == -1) { //  no connection yet: let the socket work
            cart_result_t ignored;
            cart_client_recv (s_client, &ignored, 20);
        }
    } while (status != CART_OK && zclock_mono () < until);
    return status;
}

//  --------------------------------------------------------------------------
//  Socket monitors

//  Starts a monitor of every event of a libzmq socket (zmq_socket_monitor)
//  and returns the PAIR socket that reads it. Attach it before the socket
//  connects to see its first handshake.
static zsock_t *
s_monitor_new (void *socket)
{
    static int count;
    char endpoint[64];
    snprintf (endpoint, sizeof (endpoint), "inproc://test-curve-monitor-%d", count++);
    assert_int_equal (zmq_socket_monitor (socket, endpoint, ZMQ_EVENT_ALL), 0);
    zsock_t *monitor = zsock_new (ZMQ_PAIR);
    assert_non_null (monitor);
    assert_int_equal (zsock_connect (monitor, "%s", endpoint), 0);
    return monitor;
}

static void
s_monitor_destroy (zsock_t **monitor, void *socket)
{
    zmq_socket_monitor (socket, NULL, 0);
    zsock_destroy (monitor);
}

//  Reads monitor events for up to timeout_ms until one of those in wanted
//  (a mask) comes; ORs each event read into *seen. Returns that event,
//  with its value (a ZAP status, a protocol error) in *value; or 0 at the
//  deadline, once no event is left to read. wanted 0 reads every event
//  until then.
static int
s_await_event (zsock_t *monitor, int wanted, int timeout_ms, int *seen, uint32_t *value)
{
    int64_t until = zclock_mono () + timeout_ms;
    void *socket = zsock_resolve (monitor);
    while (true) {
        int64_t left = until - zclock_mono ();
        zmq_pollitem_t item = {socket, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, left > 0 ? left : 0) <= 0)
            return 0;
        //  Frame 1: the event (16 bits) and its value (32 bits); frame 2:
        //  the endpoint
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        assert_true (zmq_msg_recv (&frame, socket, 0) >= 6);
        uint16_t event;
        uint32_t event_value;
        memcpy (&event, zmq_msg_data (&frame), sizeof (event));
        memcpy (&event_value, (uint8_t *)zmq_msg_data (&frame) + 2, sizeof (event_value));
        while (zmq_msg_more (&frame))
            assert_true (zmq_msg_recv (&frame, socket, 0) >= 0);
        zmq_msg_close (&frame);
        *seen |= event;
        if (event & wanted) {
            if (value)
                *value = event_value;
            return event;
        }
    }
}

//  A DEALER of our own, CURVE with keys (NULL: plain), monitored from
//  before its first handshake, connected to endpoint. libzmq never tries
//  again after a failed handshake (session_base.cpp: a protocol error is
//  not reconnected), so one such socket is one attempt.
static zsock_t *
s_raw_peer (const char *endpoint, const cart_curve_t *keys, zsock_t **monitor)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    assert_non_null (sock);
    zsock_set_linger (sock, 0);
    if (keys) {
        zsock_set_curve_serverkey (sock, keys->server_txt);
        zsock_set_curve_publickey (sock, keys->public_txt);
        zsock_set_curve_secretkey (sock, keys->secret_txt);
    }
    *monitor = s_monitor_new (zsock_resolve (sock));
    assert_int_equal (zsock_connect (sock, "%s", endpoint), 0);
    return sock;
}

static void
s_raw_destroy (zsock_t **sock, zsock_t **monitor)
{
    s_monitor_destroy (monitor, zsock_resolve (*sock));
    zsock_destroy (sock);
}

#define HANDSHAKE_ENDED                                                                  \
    (ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |                   \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)

//  One attempt: how a fresh socket's handshake with endpoint ended (one
//  of HANDSHAKE_ENDED, its value in *value), or 0 when it had not within
//  WAIT_MS.
static int
s_handshake (const char *endpoint, const cart_curve_t *keys, uint32_t *value)
{
    zsock_t *monitor;
    zsock_t *sock = s_raw_peer (endpoint, keys, &monitor);
    int seen = 0;
    int event = s_await_event (monitor, HANDSHAKE_ENDED, WAIT_MS, &seen, value);
    s_raw_destroy (&sock, &monitor);
    return event;
}

//  Attempts with fresh sockets until one's handshake ends in want, for up
//  to timeout_ms; returns the attempts made, or fails the test.
static int
s_handshake_until (const char *endpoint, const cart_curve_t *keys, int want,
                   int timeout_ms)
{
    int64_t until = zclock_mono () + timeout_ms;
    uint32_t value = 0;
    int attempts = 0;
    do {
        attempts++;
        if (s_handshake (endpoint, keys, &value) == want)
            return attempts;
    } while (zclock_mono () < until);
    fail_msg ("no handshake ended in 0x%x within %d ms (%d attempts)", want, timeout_ms,
              attempts);
    return attempts;
}

//  Sends a READY for one shard, as a worker registers (cart_worker.c).
//  Without ZMQ_IMMEDIATE it is queued until a handshake succeeds.
static void
s_send_ready (zsock_t *sock, uint32_t shard)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    cart_ready_encode (&pk, SHARDS, CART_HEARTBEAT_MS, &shard, 1);
    cart_header_t header = {.command = CART_CMD_READY};
    cart_frame_t body = cart_frame_bytes (buffer.data, buffer.size);
    assert_int_equal (cart_msg_send (zsock_resolve (sock), NULL, &header, &body), 0);
    msgpack_sbuffer_destroy (&buffer);
}

//  True when a message waits on sock (a poll that does not wait).
static bool
s_has_message (zsock_t *sock)
{
    zmq_pollitem_t item = {zsock_resolve (sock), 0, ZMQ_POLLIN, 0};
    return zmq_poll (&item, 1, 0) == 1;
}

//  Lists a public key for the broker: keys/from copied to keys/to whole
//  (written aside, then renamed), as an operator would add one.
static void
s_list_key (const char *from, const char *to)
{
    char source[PATH_MAX], target[PATH_MAX], partial[PATH_MAX], text[4096];
    s_key (source, from);
    s_key (target, to);
    assert_true (snprintf (partial, sizeof (partial), "%s.partial", target) <
                 (int)sizeof (partial));
    s_read_file (source, text, sizeof (text));
    FILE *file = fopen (partial, "w");
    assert_non_null (file);
    assert_true (fputs (text, file) >= 0);
    assert_int_equal (fclose (file), 0);
    assert_int_equal (rename (partial, target), 0);
}

//  Takes the stranger client's handshake events (cart_client_recv does, a
//  little at a time) until its state is want, for up to timeout_ms.
static cart_curve_state_t
s_wait_client_state (cart_client_t *client, cart_curve_state_t want, int timeout_ms)
{
    int64_t until = zclock_mono () + timeout_ms;
    cart_curve_state_t state;
    cart_result_t result;
    while ((state = cart_client_curve_state (client)) != want && zclock_mono () < until)
        assert_int_equal (cart_client_recv (client, &result, 20), 0);
    return state;
}

//  --------------------------------------------------------------------------
//  The cluster: set up once, each test leaves it as it found it

static int
s_setup (void **state)
{
    assert_non_null (mkdtemp (s_keys));
    s_keygen ("broker", "broker", NULL);
    s_keygen ("workers", "worker-0", "0");
    s_keygen ("workers", "worker-1", "1");
    s_keygen ("clients", "client", NULL);
    s_keygen ("clients", "ops", NULL);
    s_keygen ("rogue", "rogue", "0");
    s_keygen ("rogue", "stranger", NULL);
    s_keygen ("staging", "late", "1");
    s_start_broker ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    for (uint32_t shard = 0; shard < SHARDS; shard++)
        s_start_worker (shard);
    s_load (&s_client_keys, "clients/client.key");
    const char *error = NULL;
    s_client = cart_client_new_curve (s_frontend, &s_client_keys, &error);
    assert_non_null (s_client);
    for (uint32_t shard = 0; shard < SHARDS; shard++)
        assert_int_equal (s_wait_serving (shard, 30000), CART_OK);
    return 0;
}

static int
s_teardown (void **state)
{
    cart_client_destroy (&s_client);
    for (int i = 0; i < SHARDS; i++)
        test_kill (&s_workers[i], SIGTERM);
    test_kill (&s_broker, SIGTERM);
    s_remove_tree (s_keys);
    return 0;
}

//  --------------------------------------------------------------------------
//  The cluster's tests

//  With every key in place the cluster works, and keeps working across a
//  worker's restart and the broker's: both find each other again over
//  CURVE, and so does the client (the same client object).
static void
test_every_key_in_place (void **state)
{
    char ids[SHARDS][32];
    for (uint32_t shard = 0; shard < SHARDS; shard++) {
        s_customer_on (shard, 1, ids[shard], sizeof (ids[shard]));
        assert_int_equal (s_call (CART_OP_ADD, ids[shard], "apple", NULL), CART_CREATED);
        assert_int_equal (s_items (ids[shard]), 1);
    }

    //  A worker restarted (its carts are in memory: shard 1 starts empty)
    test_kill (&s_workers[1], SIGTERM);
    s_start_worker (1);
    assert_int_equal (s_wait_serving (1, 30000), CART_OK);
    assert_int_equal (s_items (ids[1]), 0);
    assert_int_equal (s_call (CART_OP_ADD, ids[1], "pear", NULL), CART_CREATED);
    assert_int_equal (s_items (ids[0]), 1);

    //  The broker restarted on the same ports: the workers register again,
    //  and both shards serve with the carts their workers hold
    char frontend[128], backend[128];
    snprintf (frontend, sizeof (frontend), "%s", s_frontend);
    snprintf (backend, sizeof (backend), "%s", s_backend);
    test_kill (&s_broker, SIGTERM);
    s_start_broker (frontend, backend);
    assert_string_equal (s_frontend, frontend);
    assert_string_equal (s_backend, backend);
    for (uint32_t shard = 0; shard < SHARDS; shard++) {
        assert_int_equal (s_wait_serving (shard, 30000), CART_OK);
        assert_int_equal (s_items (ids[shard]), 1);
    }
}

//  The "Done when": a rogue with a key pair of its own connects to
//  the backend and asks for shard 0, which its real worker serves. The
//  broker's ZAP handler refuses its key (libzmq reports the 400 to the
//  rogue), and during a burst of requests for shard 0, every one answered
//  by the real worker, the rogue receives nothing; a second rogue
//  connection, made while the burst is in flight, is refused the same way.
static void
test_rogue_worker_receives_nothing (void **state)
{
    enum { CUSTOMERS = 20, N = 400 };
    char kept[32];
    s_customer_on (0, 2, kept, sizeof (kept));
    assert_int_equal (s_call (CART_OP_ADD, kept, "kept", NULL), CART_CREATED);

    cart_curve_t rogue_keys;
    s_load (&rogue_keys, "rogue/rogue.key");
    zsock_t *monitor;
    zsock_t *rogue = s_raw_peer (s_backend, &rogue_keys, &monitor);
    s_send_ready (rogue, 0);
    int seen = 0;
    uint32_t value = 0;
    assert_int_equal (s_await_event (monitor, HANDSHAKE_ENDED, WAIT_MS, &seen, &value),
                      ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert_int_equal (value, 400);
    assert_int_equal (
        s_await_event (monitor, ZMQ_EVENT_DISCONNECTED, WAIT_MS, &seen, NULL),
        ZMQ_EVENT_DISCONNECTED);

    //  The burst: N requests in flight for shard 0's customers, and the
    //  second rogue knocking meanwhile
    char ids[CUSTOMERS][32];
    for (int i = 0; i < CUSTOMERS; i++)
        s_customer_on (0, 10 + i, ids[i], sizeof (ids[i]));
    for (int i = 0; i < N; i++) {
        const char *id = ids[i % CUSTOMERS];
        cart_request_t req = {
            .op = CART_OP_ADD, .customer = id, .customer_len = strlen (id)};
        req.item = (cart_item_t){.id = "x", .id_len = 1, .price_cents = 1, .count = 1};
        assert_int_equal (cart_client_send (s_client, &req, 5000, NULL, NULL, NULL), 0);
    }
    zsock_t *monitor_2;
    zsock_t *rogue_2 = s_raw_peer (s_backend, &rogue_keys, &monitor_2);
    s_send_ready (rogue_2, 0);
    int created = 0, ok = 0;
    for (int i = 0; i < N; i++) {
        cart_result_t result;
        assert_int_equal (cart_client_recv (s_client, &result, -1), 1);
        created += result.status == CART_CREATED;
        ok += result.status == CART_OK;
    }
    assert_int_equal (created, CUSTOMERS); //  each customer's first add
    assert_int_equal (ok, N - CUSTOMERS);
    int seen_2 = 0;
    assert_int_equal (
        s_await_event (monitor_2, HANDSHAKE_ENDED, WAIT_MS, &seen_2, &value),
        ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert_int_equal (value, 400);

    //  Neither rogue got in, nor received anything
    s_await_event (monitor, 0, 0, &seen, NULL);
    assert_false (seen & ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    assert_false (seen_2 & ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    assert_false (s_has_message (rogue));
    assert_false (s_has_message (rogue_2));
    //  ... and shard 0 is its real worker's, with its carts
    assert_int_equal (s_items (kept), 1);
    assert_true (s_running (s_workers[0]));
    s_raw_destroy (&rogue_2, &monitor_2);
    s_raw_destroy (&rogue, &monitor);
}

//  A client whose key the broker does not list never completes a
//  handshake (libzmq reports the 400), so the client library, which
//  connects with ZMQ_IMMEDIATE, queues nothing for it: a PING is refused
//  at once (-1, EAGAIN), with no result to follow, rather than ending in a
//  504; cartctl says the key was refused. Once the key is listed, the same
//  client object gets in (it makes a new socket a second after a refusal).
static void
test_unknown_client_key (void **state)
{
    cart_curve_t stranger_keys;
    s_load (&stranger_keys, "rogue/stranger.key");
    uint32_t value = 0;
    assert_int_equal (s_handshake (s_frontend, &stranger_keys, &value),
                      ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert_int_equal (value, 400);

    const char *error = NULL;
    cart_client_t *stranger = cart_client_new_curve (s_frontend, &stranger_keys, &error);
    assert_non_null (stranger);
    assert_int_equal (s_wait_client_state (stranger, CART_CURVE_REFUSED, WAIT_MS),
                      CART_CURVE_REFUSED);
    errno = 0;
    assert_int_equal (cart_client_send_command (stranger, CART_CMD_PING, 500, NULL, NULL),
                      -1);
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (cart_client_pending (stranger), 0);
    cart_result_t result;
    assert_int_equal (cart_client_recv (stranger, &result, 0), 0);

    char out[2048], cert[PATH_MAX], broker_key[PATH_MAX];
    s_key (cert, "rogue/stranger.key");
    s_key (broker_key, "broker/broker.key");
    assert_int_equal (test_run (out, sizeof (out), WAIT_MS, "cartctl", "ping", "--broker",
                                s_frontend, "--timeout", "1000", "--cert", cert,
                                "--broker-key", broker_key, NULL),
                      1);
    assert_non_null (strstr (out, "refused this key"));

    //  Listed: the same client is admitted and answered
    s_list_key ("rogue/stranger.key", "clients/stranger.key");
    int64_t listed = zclock_mono ();
    assert_int_equal (s_wait_client_state (stranger, CART_CURVE_ADMITTED, WAIT_MS),
                      CART_CURVE_ADMITTED);
    print_message ("the client was admitted %lld ms after its key was listed\n",
                   (long long)(zclock_mono () - listed));
    zmq_pollitem_t item = {cart_client_handle (stranger), 0, ZMQ_POLLOUT, 0};
    assert_int_equal (zmq_poll (&item, 1, WAIT_MS), 1);
    assert_int_equal (
        cart_client_send_command (stranger, CART_CMD_PING, 1000, NULL, NULL), 0);
    assert_int_equal (cart_client_recv (stranger, &result, -1), 1);
    assert_int_equal (result.status, CART_OK);
    cart_client_destroy (&stranger);
    char listed_key[PATH_MAX];
    s_key (listed_key, "clients/stranger.key");
    assert_int_equal (unlink (listed_key), 0);
}

//  A peer without CURVE cannot connect to the backend: a plain DEALER's
//  handshake fails (the mechanisms differ) and its connection closes; a
//  plain shard_worker never makes its shard live, while a listed worker
//  started with it makes its own live; then a listed worker takes the
//  plain one's shard (it was never taken).
static void
test_plain_worker_cannot_connect (void **state)
{
    zsock_t *monitor;
    zsock_t *plain = s_raw_peer (s_backend, NULL, &monitor);
    s_send_ready (plain, 0);
    int seen = 0;
    uint32_t value = 0;
    //  The plain side sees the mismatch, or the broker's side closing first
    int event = s_await_event (monitor, HANDSHAKE_ENDED, WAIT_MS, &seen, &value);
    print_message ("plain DEALER: event 0x%x, value 0x%x\n", event, value);
    assert_true (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                 event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        assert_int_equal (value, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH);
    assert_int_equal (
        s_await_event (monitor, ZMQ_EVENT_DISCONNECTED, WAIT_MS, &seen, NULL),
        ZMQ_EVENT_DISCONNECTED);
    assert_false (seen & ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    assert_false (s_has_message (plain));
    s_raw_destroy (&plain, &monitor);

    //  Both shards free; a plain worker for shard 0, a listed one for 1
    test_kill (&s_workers[0], SIGTERM);
    test_kill (&s_workers[1], SIGTERM);
    assert_int_equal (s_wait_stats ("0-1", 3, WAIT_MS), 3);
    pid_t plain_worker = s_spawn_worker (NULL, "0");
    int64_t started = zclock_mono ();
    s_start_worker (1);
    assert_int_equal (s_wait_stats ("1", 0, WAIT_MS), 0);
    int64_t listed_ms = zclock_mono () - started;
    //  For as long again, and at least a second (the plain worker makes a
    //  new socket after 3 silent heartbeats, then after twice as long each
    //  time: 2 attempts at least), shard 0 stays unserved
    int64_t window = listed_ms > 1000 ? listed_ms : 1000, checks = 0;
    int64_t until = zclock_mono () + window;
    do {
        assert_int_equal (s_stats ("0", NULL), 3);
        checks++;
    } while (zclock_mono () < until);
    print_message ("the listed worker was live in %lld ms; the plain one not in %lld ms "
                   "(%lld checks)\n",
                   (long long)listed_ms, (long long)(zclock_mono () - started),
                   (long long)checks);
    assert_true (s_running (plain_worker));
    char id[32];
    s_customer_on (0, 0, id, sizeof (id));
    assert_int_equal (s_call (CART_OP_GET, id, NULL, NULL), CART_UNAVAILABLE);
    //  The listed worker of shard 0 takes it: the plain one had not
    s_start_worker (0);
    assert_int_equal (s_wait_serving (0, 30000), CART_OK);
    assert_int_equal (s_wait_stats ("0-1", 0, WAIT_MS), 0);
    test_kill (&plain_worker, SIGTERM);
}

//  shard_worker with the shard-0 key and --shard 1; returns its exit
//  status, its output in out.
static int
s_run_ungranted (char *out, size_t size)
{
    char cert[PATH_MAX], broker_key[PATH_MAX];
    s_key (cert, "workers/worker-0.key");
    s_key (broker_key, "broker/broker.key");
    int status = test_run (out, size, WAIT_MS, "shard_worker", "--broker", s_backend,
                           "--shards", SHARDS_TXT, "--shard", "1", "--cert", cert,
                           "--broker-key", broker_key, NULL);
    print_message ("%s", out);
    return status;
}

//  A listed worker that claims a shard its key does not grant is refused
//  with 403, and shard_worker exits 1 naming the key's shards: while shard
//  1 is served (its worker keeps it, with its carts; the refusal says
//  nothing of who serves it), and while shard 1 is free (it stays free).
static void
test_ungranted_shard_refused (void **state)
{
    char out[4096], id[32];
    s_customer_on (1, 3, id, sizeof (id));
    assert_int_equal (s_call (CART_OP_ADD, id, "kept", NULL), CART_CREATED);
    assert_int_equal (s_run_ungranted (out, sizeof (out)), 1);
    assert_non_null (
        strstr (out, "the key 'worker-0' may serve shards 0 only, not shard 1"));
    assert_null (strstr (out, "served by another live worker"));
    assert_int_equal (s_items (id), 1);
    assert_true (s_running (s_workers[1]));

    test_kill (&s_workers[1], SIGTERM);
    assert_int_equal (s_wait_stats ("1", 3, WAIT_MS), 3);
    assert_int_equal (s_run_ungranted (out, sizeof (out)), 1);
    assert_non_null (
        strstr (out, "the key 'worker-0' may serve shards 0 only, not shard 1"));
    assert_int_equal (s_stats ("1", NULL), 3);
    s_start_worker (1);
    assert_int_equal (s_wait_serving (1, 30000), CART_OK);
}

//  A key added to the worker-keys directory while the broker runs counts
//  for the next connection (the directory is read again at most once a
//  second): a worker started with it before it was listed registers once
//  it is, without a restart; once removed, a new connection with it is
//  refused again. And cartctl without CURVE gets nothing from a CURVE
//  broker.
static void
test_key_added_while_running (void **state)
{
    cart_curve_t late_keys;
    s_load (&late_keys, "staging/late.key");
    uint32_t value = 0;
    assert_int_equal (s_handshake (s_backend, &late_keys, &value),
                      ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert_int_equal (value, 400);

    //  Shard 1 free, and a worker for it with the late key: refused
    test_kill (&s_workers[1], SIGTERM);
    assert_int_equal (s_wait_stats ("1", 3, WAIT_MS), 3);
    char cert[PATH_MAX];
    s_key (cert, "staging/late.key");
    pid_t late = s_spawn_worker (cert, "1");
    assert_int_equal (s_stats ("1", NULL), 3);

    //  Listed: the worker registers within a few seconds (at its next
    //  reconnection, which backs off: 0.3, 0.6, 1.2, 2.4 s, after the next
    //  reread of the directory)
    s_list_key ("staging/late.key", "workers/late.key");
    int64_t listed = zclock_mono ();
    assert_int_equal (s_wait_serving (1, WAIT_MS), CART_OK);
    print_message ("the worker served %lld ms after its key was listed\n",
                   (long long)(zclock_mono () - listed));
    assert_int_equal (s_handshake (s_backend, &late_keys, &value),
                      ZMQ_EVENT_HANDSHAKE_SUCCEEDED);

    //  Removed: a new connection is refused (within the next reread)
    char listed_key[PATH_MAX];
    s_key (listed_key, "workers/late.key");
    assert_int_equal (unlink (listed_key), 0);
    int attempts = s_handshake_until (s_backend, &late_keys,
                                      ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, WAIT_MS);
    print_message ("refused again after %d attempt(s)\n", attempts);
    test_kill (&late, SIGTERM);
    s_start_worker (1);
    assert_int_equal (s_wait_serving (1, 30000), CART_OK);

    //  cartctl stats: with the ops key every shard is live; without CURVE
    //  it reaches no broker
    assert_int_equal (s_stats ("0-1", NULL), 0);
    assert_int_equal (s_stats (NULL, ""), 1);
}

//  Key files that could widen who is admitted are not read so: the same
//  key in a second file (which one counts would depend on the directory's
//  order) admits neither, and a key whose shard list is empty is skipped
//  rather than read as "every shard". Both are undone by removing the
//  file. Each handshake is a fresh socket: the broker rereads the
//  directory at most once a second.
static void
test_key_files_that_widen_refused (void **state)
{
    cart_curve_t worker_keys;
    s_load (&worker_keys, "workers/worker-1.key");
    s_handshake_until (s_backend, &worker_keys, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, WAIT_MS);

    s_list_key ("workers/worker-1.key", "workers/copy-of-worker-1.key");
    s_handshake_until (s_backend, &worker_keys, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, WAIT_MS);
    char copy[PATH_MAX];
    s_key (copy, "workers/copy-of-worker-1.key");
    assert_int_equal (unlink (copy), 0);
    s_handshake_until (s_backend, &worker_keys, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, WAIT_MS);

    //  A hand-edited key with an empty list ("shards =", which zconfig
    //  reads as ""): refused, not granted every shard
    s_keygen ("staging", "empty-grant", "0");
    char path[PATH_MAX], text[4096];
    s_key (path, "staging/empty-grant.key");
    s_read_file (path, text, sizeof (text));
    const char *listed = "shards = \"0\"";
    char *grant = strstr (text, listed);
    assert_non_null (grant);
    memmove (grant + strlen ("shards ="), grant + strlen (listed),
             strlen (grant + strlen (listed)) + 1);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    assert_true (fputs (text, file) >= 0);
    assert_int_equal (fclose (file), 0);
    s_list_key ("staging/empty-grant.key", "workers/empty-grant.key");
    cart_curve_t empty_keys;
    s_load (&empty_keys, "staging/empty-grant.key");
    //  Listed a second ago at most: a second and a half of refusals
    int64_t until = zclock_mono () + 1500;
    uint32_t value = 0;
    while (zclock_mono () < until)
        assert_int_equal (s_handshake (s_backend, &empty_keys, &value),
                          ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    s_key (path, "workers/empty-grant.key");
    assert_int_equal (unlink (path), 0);
}

//  --------------------------------------------------------------------------
//  Without processes: the environment, and key files

//  A program calls cart_args_env once; this test calls it again and
//  again, and each call frees the array of the one before, but not the
//  options it built from variables: the test keeps those reachable.
static char *s_env_built[32];
static size_t s_env_n_built;

//  cart_args_env on argv (NULL-terminated), then getopt_long over the
//  result: the value of --x-y into x_y ("" when not given), and whether
//  --verbose and --help were given. Returns 0, or -1 with *error set.
static int
s_parse_env (const char **argv, char *x_y, size_t size, bool *verbose, bool *help,
             const char **error)
{
    static const struct option options[] = {{"x-y", required_argument, NULL, 'x'},
                                            {"verbose", no_argument, NULL, 'v'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int argc = 0;
    while (argv[argc])
        argc++;
    char **args = cart_args_env (&argc, (char **)argv, options, error);
    if (!args)
        return -1;
    for (int i = 1; i < argc; i++) {
        bool given = false;
        for (int j = 1; argv[j]; j++)
            given |= args[i] == argv[j];
        if (!given) {
            assert_true (s_env_n_built < sizeof (s_env_built) / sizeof (s_env_built[0]));
            s_env_built[s_env_n_built++] = args[i];
        }
    }
    *x_y = 0;
    *verbose = *help = false;
    optind = 0; //  glibc: start getopt afresh
    int opt;
    while ((opt = getopt_long (argc, args, "x:vh", options, NULL)) != -1) {
        if (opt == 'x')
            snprintf (x_y, size, "%s", optarg);
        else if (opt == 'v')
            *verbose = true;
        else if (opt == 'h')
            *help = true;
        else
            fail_msg ("getopt: '%c'", opt);
    }
    assert_int_equal (optind, argc);
    return 0;
}

//  Each option from CART_<NAME> ('-' as '_'); a flag on the command line
//  wins; a flag without a value takes 1/0 and nothing else; empty is not
//  given; --help never comes from the environment.
static void
test_options_from_environment (void **state)
{
    char x_y[64];
    bool verbose, help;
    const char *error = NULL;
    const char *none[] = {"prog", NULL};
    const char *flag[] = {"prog", "--x-y", "from-flag", NULL};
    const char *flag_eq[] = {"prog", "--x-y=from-flag", NULL};
    const char *short_flag[] = {"prog", "-x", "from-short", NULL};
    const char *short_joined[] = {"prog", "-xfrom-short", NULL};

    unsetenv ("CART_X_Y");
    unsetenv ("CART_VERBOSE");
    setenv ("CART_HELP", "1", 1);
    assert_int_equal (s_parse_env (none, x_y, sizeof (x_y), &verbose, &help, &error), 0);
    assert_string_equal (x_y, "");
    assert_false (verbose);
    assert_false (help);

    setenv ("CART_X_Y", "from-env", 1);
    assert_int_equal (s_parse_env (none, x_y, sizeof (x_y), &verbose, &help, &error), 0);
    assert_string_equal (x_y, "from-env");
    assert_int_equal (s_parse_env (flag, x_y, sizeof (x_y), &verbose, &help, &error), 0);
    assert_string_equal (x_y, "from-flag");
    assert_int_equal (s_parse_env (flag_eq, x_y, sizeof (x_y), &verbose, &help, &error),
                      0);
    assert_string_equal (x_y, "from-flag");
    //  The short letter is the flag too: the variable adds no argument (a
    //  --shard list would take both)
    size_t built = s_env_n_built;
    assert_int_equal (
        s_parse_env (short_flag, x_y, sizeof (x_y), &verbose, &help, &error), 0);
    assert_string_equal (x_y, "from-short");
    assert_int_equal (
        s_parse_env (short_joined, x_y, sizeof (x_y), &verbose, &help, &error), 0);
    assert_string_equal (x_y, "from-short");
    assert_int_equal (s_env_n_built, built);
    setenv ("CART_X_Y", "", 1);
    assert_int_equal (s_parse_env (none, x_y, sizeof (x_y), &verbose, &help, &error), 0);
    assert_string_equal (x_y, "");
    unsetenv ("CART_X_Y");

    setenv ("CART_VERBOSE", "1", 1);
    assert_int_equal (s_parse_env (none, x_y, sizeof (x_y), &verbose, &help, &error), 0);
    assert_true (verbose);
    setenv ("CART_VERBOSE", "0", 1);
    assert_int_equal (s_parse_env (none, x_y, sizeof (x_y), &verbose, &help, &error), 0);
    assert_false (verbose);
    setenv ("CART_VERBOSE", "", 1);
    assert_int_equal (s_parse_env (none, x_y, sizeof (x_y), &verbose, &help, &error), 0);
    assert_false (verbose);
    setenv ("CART_VERBOSE", "maybe", 1);
    error = NULL;
    assert_int_equal (s_parse_env (none, x_y, sizeof (x_y), &verbose, &help, &error), -1);
    assert_non_null (error);
    assert_non_null (strstr (error, "CART_VERBOSE=maybe"));
    unsetenv ("CART_VERBOSE");
    unsetenv ("CART_HELP");
}

//  cart_curve_keygen never overwrites, --keep keeps, names are checked, the
//  secret is 0600; cart_curve_load refuses a secret others may read and a
//  pair whose halves differ. The same through the built cartctl keygen.
static void
test_key_files (void **state)
{
    char dir[] = "/tmp/test_curve_keys.XXXXXX";
    assert_non_null (mkdtemp (dir));
    char one[PATH_MAX], one_secret[PATH_MAX], two[PATH_MAX], before[4096], after[4096];
    s_path (one, dir, "one.key");
    s_path (one_secret, dir, "one.key_secret");
    s_path (two, dir, "two.key");
    const char *error = NULL;
    bool kept = true;
    assert_int_equal (cart_curve_keygen (dir, "one", "0-1", false, &kept, &error), 0);
    assert_false (kept);
    struct stat info;
    assert_int_equal (stat (one_secret, &info), 0);
    assert_int_equal (info.st_mode & 0777, 0600);
    s_read_file (one_secret, before, sizeof (before));
    assert_non_null (strstr (before, "shards = \"0-1\""));

    //  Never overwritten; --keep leaves it as it is
    error = NULL;
    assert_int_equal (cart_curve_keygen (dir, "one", NULL, false, &kept, &error), -1);
    assert_non_null (strstr (error, "exists"));
    assert_int_equal (cart_curve_keygen (dir, "one", NULL, true, &kept, &error), 0);
    assert_true (kept);
    s_read_file (one_secret, after, sizeof (after));
    assert_string_equal (before, after);
    char out[1024];
    assert_int_equal (test_run (out, sizeof (out), WAIT_MS, "cartctl", "keygen", "--dir",
                                dir, "one", NULL),
                      1);
    assert_int_equal (test_run (out, sizeof (out), WAIT_MS, "cartctl", "keygen", "--dir",
                                dir, "--keep", "one", NULL),
                      0);
    assert_non_null (strstr (out, "kept"));
    s_read_file (one_secret, after, sizeof (after));
    assert_string_equal (before, after);

    //  Names and shard lists are checked
    const char *bad_names[] = {
        "",           ".hidden",
        "a/b",        "../up",
        "sp ace",     "-x",
        "semi;colon", "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof (bad_names) / sizeof (bad_names[0]); i++) {
        error = NULL;
        assert_int_equal (
            cart_curve_keygen (dir, bad_names[i], NULL, false, &kept, &error), -1);
        assert_non_null (strstr (error, "not a key name"));
    }
    assert_int_equal (cart_curve_keygen (dir, "shardless", "x", false, &kept, &error),
                      -1);
    assert_int_equal (cart_curve_keygen (dir, "shardless", " 1", false, &kept, &error),
                      -1);
    assert_int_equal (cart_curve_keygen (dir, "shardless", "+1", false, &kept, &error),
                      -1);
    assert_int_equal (test_run (out, sizeof (out), WAIT_MS, "cartctl", "keygen", "--dir",
                                dir, ".x", NULL),
                      1);

    //  Loaded whole; a secret others may read is refused
    cart_curve_t curve;
    assert_int_equal (cart_curve_load (&curve, one, NULL, &error), 0);
    assert_int_equal (strlen (curve.public_txt), 40);
    assert_int_equal (strlen (curve.secret_txt), 40);
    assert_int_equal (chmod (one_secret, 0644), 0);
    error = NULL;
    assert_int_equal (cart_curve_load (&curve, one, NULL, &error), -1);
    assert_non_null (strstr (error, "chmod 600"));
    assert_int_equal (chmod (one_secret, 0600), 0);
    assert_int_equal (cart_curve_load (&curve, one, NULL, &error), 0);

    //  A public file swapped for another key's: the halves differ
    assert_int_equal (cart_curve_keygen (dir, "two", NULL, false, &kept, &error), 0);
    assert_int_equal (rename (two, one), 0);
    error = NULL;
    assert_int_equal (cart_curve_load (&curve, one, NULL, &error), -1);
    assert_non_null (strstr (error, "hold different keys"));
    //  ... and --keep does not keep such a pair, nor half of one
    assert_int_equal (cart_curve_keygen (dir, "one", NULL, true, &kept, &error), -1);
    assert_int_equal (cart_curve_keygen (dir, "two", NULL, true, &kept, &error), -1);
    s_remove_tree (dir);
}

int
main (void)
{
    const struct CMUnitTest files[] = {
        cmocka_unit_test (test_options_from_environment),
        cmocka_unit_test (test_key_files),
    };
    const struct CMUnitTest cluster[] = {
        cmocka_unit_test (test_every_key_in_place),
        cmocka_unit_test (test_rogue_worker_receives_nothing),
        cmocka_unit_test (test_unknown_client_key),
        cmocka_unit_test (test_plain_worker_cannot_connect),
        cmocka_unit_test (test_ungranted_shard_refused),
        cmocka_unit_test (test_key_added_while_running),
        cmocka_unit_test (test_key_files_that_widen_refused),
    };
    int failed = cmocka_run_group_tests_name ("files", files, NULL, NULL);
    return failed + cmocka_run_group_tests_name ("cluster", cluster, s_setup, s_teardown);
}
