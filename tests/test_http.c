/*  test_http - the HTTP API end to end, over real HTTP on loopback, against
    (1) the all-in-one service, build/bin/cartd, and (2) a cluster of
    separate processes: broker, two shard_workers and http_front. The same
    contract tests run against both; failure tests (503, 504) run against
    the cluster. Every wait is a read with a deadline; nothing sleeps.
*/
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <czmq.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "cart_hash.h"
#include "cart_proto.h"
#include "cart_ring.h"
#include "test_process.h"

#define SHARDS 4

static int s_port;     //  the HTTP port under test
static pid_t s_server; //  the process serving HTTP (cartd or http_front)
static pid_t s_broker;
static pid_t s_workers[2];
static char s_backend[128]; //  the broker's backend (cluster only)
static CURL *s_curl;

//  --------------------------------------------------------------------------
//  Processes

//  A server stopped with SIGTERM must exit 0 (see test_process.h)
static void
s_kill (pid_t *pid)
{
    test_kill (pid, SIGTERM);
}

//  --------------------------------------------------------------------------
//  HTTP with libcurl

typedef struct {
    long status;
    char *body;
    size_t size;
    char headers[2048];
} response_t;

static size_t
s_on_body (char *data, size_t size, size_t count, void *arg)
{
    response_t *response = (response_t *)arg;
    size_t n = size * count;
    response->body = (char *)realloc (response->body, response->size + n + 1);
    memcpy (response->body + response->size, data, n);
    response->size += n;
    response->body[response->size] = 0;
    return n;
}

static size_t
s_on_header (char *data, size_t size, size_t count, void *arg)
{
    response_t *response = (response_t *)arg;
    size_t n = size * count;
    size_t used = strlen (response->headers);
    if (used + n < sizeof (response->headers)) {
        memcpy (response->headers + used, data, n);
        response->headers[used + n] = 0;
    }
    return n;
}

//  Performs one request on the shared keep-alive handle. content_type
//  NULL sends none; body NULL sends none.
static response_t
s_http (const char *method, const char *path, const char *content_type, const char *body)
{
    response_t response = {0};
    char url[1024];
    snprintf (url, sizeof (url), "http://127.0.0.1:%d%s", s_port, path);
    CURL *curl = s_curl;
    curl_easy_reset (curl);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, &response);
    struct curl_slist *headers = curl_slist_append (NULL, "Expect:");
    char type[256];
    if (content_type) {
        snprintf (type, sizeof (type), "Content-Type: %s", content_type);
        headers = curl_slist_append (headers, type);
    } else
        headers = curl_slist_append (headers, "Content-Type:");
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    if (body) {
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE, (long)strlen (body));
    }
    CURLcode rc = curl_easy_perform (curl);
    curl_slist_free_all (headers);
    if (rc != CURLE_OK)
        fail_msg ("%s %s: %s", method, path, curl_easy_strerror (rc));
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &response.status);
    return response;
}

static void
s_free (response_t *response)
{
    free (response->body);
    response->body = NULL;
}

static json_t *
s_json (const response_t *response)
{
    json_error_t error;
    json_t *json =
        json_loadb (response->body ? response->body : "", response->size, 0, &error);
    if (!json)
        fail_msg ("not JSON (%s): %.200s", error.text,
                  response->body ? response->body : "");
    return json;
}

//  Asserts a response is the API's error with this status, and returns 0.
static void
s_expect_error (const char *method, const char *path, const char *type, const char *body,
                long status, const char *words)
{
    response_t response = s_http (method, path, type, body);
    if (response.status != status)
        fail_msg ("%s %s: status %ld, want %ld: %s", method, path, response.status,
                  status, response.body ? response.body : "");
    json_t *json = s_json (&response);
    json_t *error = json_object_get (json, "error");
    assert_non_null (error);
    assert_int_equal (json_integer_value (json_object_get (error, "status")), status);
    const char *message = json_string_value (json_object_get (error, "message"));
    assert_non_null (message);
    if (words && !strstr (message, words))
        fail_msg ("%s %s: message '%s' lacks '%s'", method, path, message, words);
    json_decref (json);
    s_free (&response);
}

//  GET a cart and return its JSON (caller decrefs).
static json_t *
s_cart (const char *customer)
{
    char path[512];
    snprintf (path, sizeof (path), "/items/%s", customer);
    response_t response = s_http ("GET", path, NULL, NULL);
    assert_int_equal (response.status, 200);
    json_t *json = s_json (&response);
    s_free (&response);
    return json;
}

static char *
s_cart_text (const char *customer)
{
    json_t *json = s_cart (customer);
    char *text = json_dumps (json, JSON_SORT_KEYS);
    json_decref (json);
    return text;
}

static void
s_add (const char *customer, const char *item, const char *body, long status)
{
    char path[512];
    snprintf (path, sizeof (path), "/item/%s/%s", customer, item);
    response_t response = s_http ("POST", path, "application/json", body);
    if (response.status != status)
        fail_msg ("POST %s: %ld, want %ld: %s", path, response.status, status,
                  response.body ? response.body : "");
    s_free (&response);
}

//  --------------------------------------------------------------------------
//  Raw sockets

static int
s_connect (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons (s_port)};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (connect (fd, (struct sockaddr *)&address, sizeof (address)), 0);
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    return fd;
}

static void
s_write (int fd, const char *data, size_t size)
{
    while (size) {
        ssize_t n = send (fd, data, size, MSG_NOSIGNAL);
        if (n <= 0)
            return; //  the server closed: the caller reads why
        data += n;
        size -= (size_t)n;
    }
}

//  Reads one response (head and Content-Length body) into buffer and no
//  byte of the next, which a pipelining test reads with the next call;
//  returns its status, or 0 if the connection closed or 30 s passed first.
static int
s_read_response (int fd, char *buffer, size_t capacity)
{
    size_t used = 0, want = 0; //  want: the whole response, once the head is in
    int64_t until = zclock_mono () + 30000;
    while (used + 1 < capacity) {
        struct pollfd item = {fd, POLLIN, 0};
        int64_t wait = until - zclock_mono ();
        if (wait <= 0 || poll (&item, 1, (int)wait) != 1)
            return 0;
        //  The head a byte at a time, as it cannot be told from the body
        //  before its end; then the body in one read of its exact size
        size_t size = want ? want - used : 1;
        if (size > capacity - used - 1)
            return 0;
        ssize_t n = recv (fd, buffer + used, size, 0);
        if (n <= 0)
            return 0;
        used += (size_t)n;
        buffer[used] = 0;
        if (!want && used >= 4 && memcmp (buffer + used - 4, "\r\n\r\n", 4) == 0) {
            const char *length = strcasestr (buffer, "content-length:");
            want = used + (length ? strtoul (length + 15, NULL, 10) : 0);
        }
        if (want && used == want) {
            int status = 0;
            sscanf (buffer, "HTTP/1.%*d %d", &status);
            return status;
        }
    }
    return 0;
}

static long
s_rss_peak_kb (pid_t pid)
{
    char path[64], line[256];
    snprintf (path, sizeof (path), "/proc/%d/status", pid);
    FILE *file = fopen (path, "r");
    assert_non_null (file);
    long kb = -1;
    while (fgets (line, sizeof (line), file))
        if (sscanf (line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose (file);
    return kb;
}

//  --------------------------------------------------------------------------
//  Fixtures

static int
s_start_cartd (void **state)
{
    char line[512];
    s_server = test_spawn (line, sizeof (line), "cartd", "--in-memory", "--listen", "0",
                           "--bus", "none", "--shards", "4", NULL);
    assert_int_equal (sscanf (line, "cartd: http://127.0.0.1:%d/", &s_port), 1);
    s_curl = curl_easy_init ();
    return 0;
}

static int
s_start_cluster (void **state)
{
    char line[512], frontend[128], shards[8];
    snprintf (shards, sizeof (shards), "%d", SHARDS);
    s_broker =
        test_spawn (line, sizeof (line), "broker", "--frontend", "tcp://127.0.0.1:*",
                    "--backend", "tcp://127.0.0.1:*", "--shards", shards, NULL);
    assert_int_equal (sscanf (line, "broker: clients on %127[^,], workers on %127[^,],",
                              frontend, s_backend),
                      2);
    s_workers[0] = test_spawn (line, sizeof (line), "shard_worker", "--broker", s_backend,
                               "--shard", "0,1", NULL);
    s_workers[1] = test_spawn (line, sizeof (line), "shard_worker", "--broker", s_backend,
                               "--shard", "2-3", NULL);
    s_server = test_spawn (line, sizeof (line), "http_front", "--listen", "0", "--broker",
                           frontend, "--deadline", "500", NULL);
    assert_int_equal (
        sscanf (line, "http_front: listening on http://127.0.0.1:%d", &s_port), 1);
    s_curl = curl_easy_init ();
    //  Wait, with a deadline, until every shard has registered
    int64_t until = zclock_mono () + 30000;
    long status = 0;
    while (status != 200 && zclock_mono () < until) {
        response_t response = s_http ("GET", "/healthz", NULL, NULL);
        status = response.status;
        s_free (&response);
    }
    assert_int_equal (status, 200);
    return 0;
}

static int
s_stop (void **state)
{
    curl_easy_cleanup (s_curl);
    s_curl = NULL;
    s_kill (&s_server);
    s_kill (&s_workers[0]);
    s_kill (&s_workers[1]);
    s_kill (&s_broker);
    return 0;
}

//  --------------------------------------------------------------------------
//  The contract

static void
test_seed_readme_examples (void **state)
{
    //  curl -X POST -H 'Content-Type: application/json'
    //       -d '{"unitCount": 6, "offeredPrice": 50}' .../items/jea-265/036000291459
    response_t response =
        s_http ("POST", "/items/jea-265/036000291459", "application/json",
                "{\"unitCount\": 6, \"offeredPrice\": 50}");
    assert_int_equal (response.status, 201);
    json_t *item = s_json (&response);
    assert_string_equal (json_string_value (json_object_get (item, "itemId")),
                         "036000291459");
    assert_int_equal (json_integer_value (json_object_get (item, "itemCount")), 6);
    assert_true (json_number_value (json_object_get (item, "offeredPrice")) == 50.0);
    assert_true (json_is_false (json_object_get (item, "specialSale")));
    assert_true (json_is_null (json_object_get (item, "saleExpiration")));
    assert_non_null (strstr (response.body, "\"offeredPrice\": 50.00"));
    json_decref (item);
    s_free (&response);
    //  curl -X GET -H 'Content-Type: application/json' .../items/jea-265
    response = s_http ("GET", "/items/jea-265", "application/json", NULL);
    assert_int_equal (response.status, 200);
    assert_non_null (strstr (response.body, "\"total\": 300.00"));
    json_t *cart = s_json (&response);
    assert_string_equal (json_string_value (json_object_get (cart, "customerId")),
                         "jea-265");
    assert_int_equal (json_integer_value (json_object_get (cart, "itemCount")), 6);
    assert_int_equal (json_array_size (json_object_get (cart, "items")), 1);
    json_decref (cart);
    s_free (&response);
    response = s_http ("DELETE", "/items/jea-265", NULL, NULL);
    assert_int_equal (response.status, 200);
    s_free (&response);
}

static void
test_every_endpoint (void **state)
{
    const char *who = "every-endpoint";
    json_t *cart = s_cart (who);
    assert_int_equal (json_array_size (json_object_get (cart, "items")), 0);
    assert_true (json_number_value (json_object_get (cart, "total")) == 0.0);
    json_decref (cart);

    s_add (who, "a", "{\"offeredPrice\": 19.99, \"itemCount\": 2}", 201);
    s_add (who, "b",
           "{\"offeredPrice\": 5, \"specialSale\": true, \"saleExpiration\": "
           "\"2026-12-01T00:00:00Z\"}",
           201);
    s_add (who, "a", "{\"offeredPrice\": 20.01, \"itemCount\": 3}", 200);
    cart = s_cart (who);
    json_t *items = json_object_get (cart, "items");
    assert_int_equal (json_array_size (items), 2);
    json_t *a = json_array_get (items, 0), *b = json_array_get (items, 1);
    assert_string_equal (json_string_value (json_object_get (a, "itemId")), "a");
    assert_int_equal (json_integer_value (json_object_get (a, "itemCount")), 5);
    assert_true (json_number_value (json_object_get (a, "offeredPrice")) == 20.01);
    assert_true (json_is_true (json_object_get (b, "specialSale")));
    assert_string_equal (json_string_value (json_object_get (b, "saleExpiration")),
                         "2026-12-01T00:00:00Z");
    assert_int_equal (json_integer_value (json_object_get (cart, "itemCount")), 6);
    json_decref (cart);

    response_t response =
        s_http ("PUT", "/item/every-endpoint/a", "application/json", "{\"newCount\": 4}");
    assert_int_equal (response.status, 200);
    assert_non_null (strstr (response.body, "\"itemCount\": 4"));
    s_free (&response);
    response = s_http ("GET", "/items/every-endpoint", NULL, NULL);
    assert_non_null (strstr (response.body, "\"total\": 85.04")); //  4 x 20.01 + 5
    s_free (&response);
    response = s_http ("PUT", "/item/every-endpoint/b", NULL, "{\"newCount\": 0}");
    assert_int_equal (response.status, 204);
    assert_int_equal (response.size, 0);
    s_free (&response);
    response = s_http ("DELETE", "/item/every-endpoint/a", NULL, NULL);
    assert_int_equal (response.status, 204);
    s_free (&response);
    s_add (who, "c", "{\"offeredPrice\": 0.5}", 201);
    response = s_http ("DELETE", "/items/every-endpoint", NULL, NULL);
    assert_int_equal (response.status, 200);
    json_t *final = s_json (&response);
    assert_true (json_is_true (json_object_get (final, "checkedOut")));
    assert_int_equal (json_array_size (json_object_get (final, "items")), 1);
    json_decref (final);
    s_free (&response);
    cart = s_cart (who);
    assert_int_equal (json_array_size (json_object_get (cart, "items")), 0);
    json_decref (cart);
}

static void
test_error_rows (void **state)
{
    const char *json = "application/json";
    s_add ("errors", "x", "{\"offeredPrice\": 1}", 201);
    char *before = s_cart_text ("errors");
    //  400
    s_expect_error ("POST", "/item/errors/x", json, "{\"offeredPrice\": ", 400, "JSON");
    s_expect_error ("POST", "/item/errors/x", json, "{}", 400, "offeredPrice");
    s_expect_error ("POST", "/item/errors/x", json, "{\"offeredPrice\": \"5\"}", 400,
                    "offeredPrice");
    s_expect_error ("POST", "/item/errors/x", json, "{\"offeredPrice\": 1.001}", 400,
                    "offeredPrice");
    s_expect_error ("POST", "/item/errors/x", json,
                    "{\"offeredPrice\": 1, \"itemCount\": 1000001}", 400, "itemCount");
    s_expect_error ("POST", "/item/errors/x", json,
                    "{\"offeredPrice\": 1, \"colour\": 1}", 400, "colour");
    s_expect_error ("POST", "/item/errors/x", json,
                    "{\"offeredPrice\": 1, \"itemCount\": 1, \"unitCount\": 1}", 400,
                    NULL);
    s_expect_error ("POST", "/item/errors/x", json,
                    "{\"offeredPrice\": 1, \"saleExpiration\": \"tomorrow\"}", 400,
                    "saleExpiration");
    s_expect_error ("POST", "/item/err%20ors/x", json, "{\"offeredPrice\": 1}", 400,
                    "customerId");
    s_expect_error ("PUT", "/item/errors/x", json, "{\"newCount\": -1}", 400, "newCount");
    //  404
    s_expect_error ("GET", "/nothing/here", NULL, NULL, 404, NULL);
    s_expect_error ("PUT", "/item/errors/missing", json, "{\"newCount\": 2}", 404, NULL);
    s_expect_error ("DELETE", "/item/errors/missing", NULL, NULL, 404, NULL);
    s_expect_error ("DELETE", "/items/nobody-at-all", NULL, NULL, 404, NULL);
    //  405, with Allow
    response_t response = s_http ("PATCH", "/item/errors/x", NULL, NULL);
    assert_int_equal (response.status, 405);
    assert_non_null (strcasestr (response.headers, "Allow: POST, PUT, DELETE"));
    s_free (&response);
    response = s_http ("PUT", "/items/errors", NULL, NULL);
    assert_int_equal (response.status, 405);
    assert_non_null (strcasestr (response.headers, "Allow: GET, DELETE"));
    s_free (&response);
    //  409: a count past 1,000,000
    s_expect_error ("POST", "/item/errors/x", json,
                    "{\"offeredPrice\": 1, \"itemCount\": 1000000}", 409, NULL);
    //  415
    s_expect_error ("POST", "/item/errors/x", "text/plain", "{\"offeredPrice\": 1}", 415,
                    NULL);
    //  Nothing changed
    char *after = s_cart_text ("errors");
    assert_string_equal (before, after);
    free (before);
    free (after);
}

static void
test_items_limit (void **state)
{
    char item[32];
    for (int i = 0; i < CART_ITEMS_MAX; i++) {
        snprintf (item, sizeof (item), "sku-%d", i);
        s_add ("full-cart", item, "{\"offeredPrice\": 1}", 201);
    }
    s_expect_error ("POST", "/item/full-cart/one-more", "application/json",
                    "{\"offeredPrice\": 1}", 409, "1000");
    s_add ("full-cart", "sku-0", "{\"offeredPrice\": 1}", 200);
    json_t *cart = s_cart ("full-cart");
    assert_int_equal (json_array_size (json_object_get (cart, "items")), CART_ITEMS_MAX);
    assert_int_equal (json_integer_value (json_object_get (cart, "itemCount")),
                      CART_ITEMS_MAX + 1);
    json_decref (cart);
}

static void
test_identifier_lengths (void **state)
{
    char id[CART_ID_MAX + 2];
    memset (id, 'k', CART_ID_MAX);
    id[CART_ID_MAX] = 0;
    char path[512];
    snprintf (path, sizeof (path), "/item/%s/%s", id, id);
    response_t response =
        s_http ("POST", path, "application/json", "{\"offeredPrice\": 2}");
    assert_int_equal (response.status, 201);
    s_free (&response);
    json_t *cart = s_cart (id);
    assert_int_equal (json_array_size (json_object_get (cart, "items")), 1);
    json_decref (cart);
    strcat (id, "k");
    snprintf (path, sizeof (path), "/items/%s", id);
    s_expect_error ("GET", path, NULL, NULL, 400, "128");
    snprintf (path, sizeof (path), "/item/ok/%s", id);
    s_expect_error ("POST", path, "application/json", "{\"offeredPrice\": 2}", 400,
                    "itemId");
    //  Percent-encoded ids decode before the rules apply
    s_add ("pct%41", "x", "{\"offeredPrice\": 2}", 201);
    cart = s_cart ("pctA");
    assert_int_equal (json_array_size (json_object_get (cart, "items")), 1);
    json_decref (cart);
    s_expect_error ("GET", "/items/a%2Fb", NULL, NULL, 400, "customerId");
    s_expect_error ("GET", "/items/a%zz", NULL, NULL, 400, NULL);
}

static void
test_body_too_large (void **state)
{
    size_t size = 17 * 1024;
    char *body = (char *)malloc (size + 1);
    memset (body, ' ', size);
    memcpy (body, "{\"offeredPrice\": 1", 18);
    body[size - 1] = '}';
    body[size] = 0;
    response_t response = s_http ("POST", "/item/big/x", "application/json", body);
    assert_int_equal (response.status, 413);
    json_t *json = s_json (&response);
    assert_int_equal (
        json_integer_value (json_object_get (json_object_get (json, "error"), "status")),
        413);
    json_decref (json);
    s_free (&response);
    free (body);
}

//  1 MiB bodies are refused without the server buffering them: its peak
//  resident memory does not grow by anything near a body.
static void
test_megabyte_bodies_not_buffered (void **state)
{
    enum { MIB = 1024 * 1024, ROUNDS = 8 };
    char *body = (char *)calloc (1, MIB);
    memset (body, 'x', MIB);
    char head[256], reply[4096];
    int length = snprintf (head, sizeof (head),
                           "POST /item/huge/x HTTP/1.1\r\nHost: t\r\nContent-Type: "
                           "application/json\r\nContent-Length: %d\r\n\r\n",
                           MIB);
    long before = 0;
    for (int round = 0; round <= ROUNDS; round++) {
        if (round == 1)
            before = s_rss_peak_kb (s_server); //  after one warm-up round
        int fd = s_connect ();
        s_write (fd, head, (size_t)length);
        s_write (fd, body, MIB);
        assert_int_equal (s_read_response (fd, reply, sizeof (reply)), 413);
        close (fd);
    }
    long after = s_rss_peak_kb (s_server);
    print_message ("peak RSS %ld kB -> %ld kB over %d bodies of 1 MiB\n", before, after,
                   ROUNDS);
    assert_true (after - before < 512);
    free (body);
}

static void
test_keep_alive (void **state)
{
    for (int i = 0; i < 20; i++) {
        response_t response = s_http ("GET", "/items/keep-alive", NULL, NULL);
        assert_int_equal (response.status, 200);
        assert_null (strcasestr (response.headers, "Connection: close"));
        long connects = -1;
        curl_easy_getinfo (s_curl, CURLINFO_NUM_CONNECTS, &connects);
        if (i > 0)
            assert_int_equal (connects, 0);
        s_free (&response);
    }
}

static void
test_lowercase_headers (void **state)
{
    const char *body = "{\"offeredPrice\": 3, \"itemCount\": 2}";
    char request[512], reply[4096];
    int n = snprintf (request, sizeof (request),
                      "POST /item/lower/x HTTP/1.1\r\nhost: t\r\ncontent-type: "
                      "application/json\r\ncontent-length: %zu\r\n\r\n%s"
                      "GET /items/lower HTTP/1.1\r\nhost: t\r\n\r\n",
                      strlen (body), body);
    int fd = s_connect ();
    s_write (fd, request, (size_t)n);
    assert_int_equal (s_read_response (fd, reply, sizeof (reply)), 201);
    assert_int_equal (s_read_response (fd, reply, sizeof (reply)), 200);
    assert_non_null (strstr (reply, "\"itemCount\": 2"));
    close (fd);
}

static void
test_byte_at_a_time (void **state)
{
    const char *request = "POST /item/slow/x HTTP/1.1\r\nHost: t\r\nContent-Type: "
                          "application/json\r\nContent-Length: 19\r\n\r\n"
                          "{\"offeredPrice\": 7}";
    int fd = s_connect ();
    for (size_t i = 0; request[i]; i++)
        s_write (fd, request + i, 1);
    char reply[4096];
    assert_int_equal (s_read_response (fd, reply, sizeof (reply)), 201);
    close (fd);
}

static void
test_thousand_connections (void **state)
{
    enum { N = 1000 };
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit (RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < N + 64)
        skip ();
    static int fds[N];
    const char *request = "GET /items/crowd HTTP/1.1\r\nHost: t\r\n\r\n";
    for (int i = 0; i < N; i++) {
        fds[i] = s_connect ();
        s_write (fds[i], request, strlen (request));
    }
    char reply[4096];
    int ok = 0;
    for (int i = 0; i < N; i++) {
        ok += s_read_response (fds[i], reply, sizeof (reply)) == 200;
        close (fds[i]);
    }
    assert_int_equal (ok, N);
}

static void
test_malformed_requests (void **state)
{
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET\r\n\r\n",
        "GET /items/x HTTP/7.0\r\nHost: t\r\n\r\n",
        "GET /items/x HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
        "\x01\x02\x03\x04\r\n\r\n",
        "GET items/x HTTP/1.1\r\nHost: t\r\n\r\n",
        "POST /item/m/x HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n",
        "POST /item/m/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    char reply[4096];
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        int fd = s_connect ();
        s_write (fd, bad[i], strlen (bad[i]));
        shutdown (fd, SHUT_WR);
        int status = s_read_response (fd, reply, sizeof (reply));
        close (fd);
        if (status != 0 && (status < 400 || status > 505))
            fail_msg ("malformed request %zu answered %d", i, status);
        //  and the server still serves
        response_t response = s_http ("GET", "/items/after-malformed", NULL, NULL);
        assert_int_equal (response.status, 200);
        s_free (&response);
    }
    //  A path of 10,000 characters
    char *path = (char *)malloc (10010);
    strcpy (path, "/items/");
    memset (path + 7, 'p', 10000);
    path[10007] = 0;
    response_t response = s_http ("GET", path, NULL, NULL);
    assert_true (response.status == 400 || response.status == 414);
    s_free (&response);
    free (path);
}

static void
test_operations_endpoints (void **state)
{
    response_t response = s_http ("GET", "/healthz", NULL, NULL);
    assert_int_equal (response.status, 200);
    json_t *health = s_json (&response);
    assert_int_equal (json_array_size (json_object_get (health, "shards")), SHARDS);
    json_decref (health);
    s_free (&response);
    response = s_http ("GET", "/metrics", NULL, NULL);
    assert_int_equal (response.status, 200);
    assert_non_null (strstr (response.body, "cart_http_requests_total{route=\"list\""));
    assert_non_null (strstr (response.body, "cart_http_request_duration_seconds_bucket"));
    assert_non_null (strstr (response.body, "cart_shard_up{shard=\"3\"} 1"));
    assert_non_null (strstr (response.body, "cart_shard_keys{shard=\"0\"}"));
    s_free (&response);
    s_expect_error ("POST", "/healthz", NULL, NULL, 405, NULL);
}

//  The front's servers share their port (SO_REUSEPORT) with each other
//  only: a second front on the same port fails to start, rather than
//  taking part of the first one's connections.
static void
test_port_taken (void **state)
{
    char port[16], out[1024];
    snprintf (port, sizeof (port), "%d", s_port);
    assert_int_equal (test_run (out, sizeof (out), 10000, "cartd", "--in-memory",
                                "--listen", port, "--bus", "none", NULL),
                      1);
    assert_non_null (strstr (out, "cannot listen on 127.0.0.1:"));
    assert_int_equal (test_run (out, sizeof (out), 10000, "http_front", "--listen", port,
                                "--broker", "tcp://127.0.0.1:1", NULL),
                      1);
    assert_non_null (strstr (out, "cannot listen on 127.0.0.1:"));
    response_t response = s_http ("GET", "/items/still-ours", NULL, NULL);
    assert_int_equal (response.status, 200);
    s_free (&response);
}

//  SIGTERM while requests are arriving and in flight: the server stops,
//  cleanly (s_kill checks exit status 0), instead of blocking on a handler
//  that is gone.
static void
test_stop_under_load (void **state)
{
    enum { N = 300 };
    static int fds[N];
    const char *request = "GET /items/stopping HTTP/1.1\r\nHost: t\r\n\r\n";
    for (int i = 0; i < N; i++) {
        fds[i] = s_connect ();
        for (int r = 0; r < 3; r++)
            s_write (fds[i], request, strlen (request));
    }
    s_kill (&s_server);
    for (int i = 0; i < N; i++)
        close (fds[i]);
}

//  --------------------------------------------------------------------------
//  Failures (cluster only)

//  A customer whose cart lives on the given shard.
static void
s_customer_on (uint32_t shard, char *id, size_t size)
{
    for (int i = 0;; i++) {
        snprintf (id, size, "failure-%d", i);
        if (cart_ring_shard (cart_hash_key_str (id), SHARDS) == shard)
            return;
    }
}

//  A worker that registers shard 0 and never answers: 504 at the deadline.
//  Shard 0's worker is stopped first: a shard has one worker at a time.
static void
test_deadline_504 (void **state)
{
    s_kill (&s_workers[0]); //  shards 0 and 1
    zsock_t *stalled = zsock_new_dealer (s_backend);
    assert_non_null (stalled);
    uint32_t shard = 0;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    cart_ready_encode (&pk, SHARDS, CART_HEARTBEAT_MS, &shard, 1);
    cart_header_t ready = {.command = CART_CMD_READY};
    cart_frame_t body = cart_frame_bytes (buffer.data, buffer.size);
    cart_msg_send (zsock_resolve (stalled), NULL, &ready, &body);
    char id[32];
    s_customer_on (0, id, sizeof (id));
    char path[64];
    snprintf (path, sizeof (path), "/items/%s", id);
    //  Poll until a request is routed to the stalled worker (504), with a
    //  deadline
    int64_t until = zclock_mono () + 30000;
    long status = 0;
    response_t response = {0};
    cart_msg_t refused;
    cart_msg_init (&refused);
    while (status != 504 && zclock_mono () < until) {
        //  Refused while the broker still takes the killed worker for live:
        //  register again
        if (cart_msg_recv (zsock_resolve (stalled), CART_AT_WORKER, false, &refused,
                           ZMQ_DONTWAIT, NULL) == 1 &&
            refused.header.command == CART_CMD_REFUSE) {
            body = cart_frame_bytes (buffer.data, buffer.size);
            cart_msg_send (zsock_resolve (stalled), NULL, &ready, &body);
        }
        s_free (&response);
        response = s_http ("GET", path, NULL, NULL);
        status = response.status;
    }
    cart_msg_close (&refused);
    msgpack_sbuffer_destroy (&buffer);
    assert_int_equal (status, 504);
    assert_non_null (strstr (response.body, "\"status\": 504"));
    s_free (&response);
    zsock_destroy (&stalled);
}

static void
test_unavailable_503 (void **state)
{
    char id[32];
    s_customer_on (3, id, sizeof (id));
    char path[64];
    snprintf (path, sizeof (path), "/items/%s", id);
    s_kill (&s_workers[1]); //  shards 2 and 3
    //  The broker learns of the exit a moment later: until then a request
    //  goes to the worker's queue and gets 504 at its deadline
    response_t response = {0};
    for (int64_t until = zclock_mono () + 5000; zclock_mono () < until;) {
        response = s_http ("GET", "/healthz", NULL, NULL);
        long status = response.status;
        s_free (&response);
        if (status == 503)
            break;
        zclock_sleep (20);
    }
    response = s_http ("GET", path, NULL, NULL);
    assert_int_equal (response.status, 503);
    assert_non_null (strcasestr (response.headers, "Retry-After:"));
    assert_non_null (strstr (response.body, "\"status\": 503"));
    s_free (&response);
    response = s_http ("GET", "/healthz", NULL, NULL);
    assert_int_equal (response.status, 503);
    assert_non_null (strstr (response.body, "unavailable"));
    s_free (&response);
}

int
main (void)
{
    curl_global_init (CURL_GLOBAL_ALL);
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest contract[] = {
        cmocka_unit_test (test_seed_readme_examples),
        cmocka_unit_test (test_every_endpoint),
        cmocka_unit_test (test_error_rows),
        cmocka_unit_test (test_items_limit),
        cmocka_unit_test (test_identifier_lengths),
        cmocka_unit_test (test_body_too_large),
        cmocka_unit_test (test_megabyte_bodies_not_buffered),
        cmocka_unit_test (test_keep_alive),
        cmocka_unit_test (test_lowercase_headers),
        cmocka_unit_test (test_byte_at_a_time),
        cmocka_unit_test (test_thousand_connections),
        cmocka_unit_test (test_malformed_requests),
        cmocka_unit_test (test_operations_endpoints),
        cmocka_unit_test (test_port_taken),
        cmocka_unit_test (test_stop_under_load),
    };
    const struct CMUnitTest cluster[] = {
        cmocka_unit_test (test_seed_readme_examples),
        cmocka_unit_test (test_every_endpoint),
        cmocka_unit_test (test_error_rows),
        cmocka_unit_test (test_identifier_lengths),
        cmocka_unit_test (test_keep_alive),
        cmocka_unit_test (test_megabyte_bodies_not_buffered),
        cmocka_unit_test (test_thousand_connections),
        cmocka_unit_test (test_operations_endpoints),
        cmocka_unit_test (test_port_taken),
        cmocka_unit_test (test_deadline_504),
        cmocka_unit_test (test_unavailable_503),
        cmocka_unit_test (test_stop_under_load),
    };
    int failed =
        cmocka_run_group_tests_name ("all-in-one cartd", contract, s_start_cartd, s_stop);
    failed += cmocka_run_group_tests_name ("cluster of processes", cluster,
                                           s_start_cluster, s_stop);
    curl_global_cleanup ();
    return failed;
}
