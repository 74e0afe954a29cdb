/*  test_threads - the cluster in one process, over inproc: a broker actor
    and worker threads that share 10,000 shards, serving requests on a
    sample of shards and stopping cleanly (no leak under ASan).

    What 10,000 shards need: the shards are dealt out to a few worker
    threads (each owning ~2,500 partitions), so the process holds one
    socket per worker thread plus the broker's two and the client's, far
    below ZMQ_MAX_SOCKETS (1,023) and the file-descriptor limit. An empty
    partition costs ~300 bytes (its 16-slot table), so 10,000 shards start
    in a few megabytes.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cart_broker.h"
#include "cart_client.h"
#include "cart_hash.h"
#include "cart_ring.h"
#include "cart_worker.h"

static int
s_get (cart_client_t *client, const char *customer)
{
    cart_request_t req = {
        .op = CART_OP_GET, .customer = customer, .customer_len = strlen (customer)};
    if (cart_client_send (client, &req, 5000, NULL, NULL, NULL))
        return -1;
    cart_result_t result;
    assert_int_equal (cart_client_recv (client, &result, -1), 1);
    return result.status;
}

static void
s_run_cluster (uint32_t shards, size_t threads, int sample)
{
    //  Fresh endpoint names for each cluster: libzmq releases an inproc
    //  name when the reaper thread closes the socket, not at zmq_close
    static int clusters;
    char frontend[64], backend[64];
    snprintf (frontend, sizeof (frontend), "inproc://test-threads-front-%d", clusters);
    snprintf (backend, sizeof (backend), "inproc://test-threads-back-%d", clusters++);
    cart_broker_config_t config = {
        .frontend = frontend, .backend = backend, .shards = shards};
    const char *error = NULL;
    cart_broker_t *broker = cart_broker_new (&config, &error);
    assert_non_null (broker);

    uint32_t *list = (uint32_t *)malloc (shards * sizeof (uint32_t));
    for (uint32_t i = 0; i < shards; i++)
        list[i] = i;
    cart_worker_config_t worker_config = {.broker = config.backend,
                                          .cluster_shards = shards,
                                          .shards = list,
                                          .n_shards = shards};
    cart_workers_t *workers = cart_workers_new (&worker_config, threads, &error);
    assert_non_null (workers);
    free (list);

    cart_client_t *client = cart_client_new (config.frontend, &error);
    assert_non_null (client);

    //  Customers on `sample` distinct shards: each is served (polling until
    //  its worker has registered, with a deadline) and keeps its item
    char *seen = (char *)calloc (shards, 1);
    char id[32];
    int served = 0;
    for (int i = 0; served < sample; i++) {
        snprintf (id, sizeof (id), "thread-customer-%d", i);
        uint32_t shard = cart_ring_shard (cart_hash_key_str (id), shards);
        if (seen[shard])
            continue;
        seen[shard] = 1;
        int64_t until = zclock_mono () + 10000;
        int status;
        while ((status = s_get (client, id)) != CART_OK && zclock_mono () < until)
            ;
        assert_int_equal (status, CART_OK);
        cart_request_t add = {
            .op = CART_OP_ADD, .customer = id, .customer_len = strlen (id)};
        add.item =
            (cart_item_t){.id = "sku", .id_len = 3, .price_cents = 100, .count = 2};
        assert_int_equal (cart_client_send (client, &add, 5000, NULL, NULL, NULL), 0);
        cart_result_t result;
        assert_int_equal (cart_client_recv (client, &result, -1), 1);
        assert_int_equal (result.status, CART_CREATED);
        served++;
    }
    free (seen);
    cart_client_destroy (&client);
    cart_workers_destroy (&workers);
    cart_broker_destroy (&broker);
    assert_null (broker);
}

static void
test_ten_thousand_shards (void **state)
{
    s_run_cluster (CART_SHARDS_MAX, 4, 300);
}

static void
test_one_shard (void **state)
{
    s_run_cluster (1, 4, 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_ten_thousand_shards),
        cmocka_unit_test (test_one_shard),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
