/*  =========================================================================
    test_zhttp - our patch to czmq 4.2.1's zhttp_server, over real sockets.

    Each test starts a zhttp_server on 127.0.0.1 (port 0) and an echo actor
    that answers every request with "METHOD PATH\n" followed by the body it
    received; the handler tests instead give the server hooks that answer
    in its own thread, at once or later (zhttp_server_options_set_handler).
    Clients are raw TCP sockets, so that the bytes on the wire are exactly
    what a test writes, and libcurl for a real client's view. Every
    read has a deadline (SO_RCVTIMEO); nothing waits by sleeping.
    =========================================================================
*/
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define S_LIMIT      16384 //  The default body cap
#define S_TIMEOUT_MS 5000  //  Deadline for any one read
#define S_BUFFER     65536 //  Room for the largest reply a test expects

//  --------------------------------------------------------------------------
//  Echo handler: a DEALER on the server's backend, in its own actor.

static void
s_echo_reply (zsock_t *worker, zhttp_request_t *request, zhttp_response_t *response,
              void *connection)
{
    size_t size = zhttp_request_content_length (request);
    const char *content = zhttp_request_content (request);
    char *body = zsys_sprintf ("%s %s\n%s", zhttp_request_method (request),
                               zhttp_request_url (request), size ? content : "");
    zhttp_response_set_content (response, &body);
    zhttp_response_set_content_type (response, "text/plain");
    zhttp_response_set_status_code (response, 200);
    zhttp_response_send (response, worker, &connection);
}

static void
s_echo_actor (zsock_t *pipe, void *args)
{
    zsock_t *worker = zsock_new_dealer ((const char *)args);
    assert (worker);
    zpoller_t *poller = zpoller_new (pipe, worker, NULL);
    zhttp_request_t *request = zhttp_request_new ();
    zhttp_response_t *response = zhttp_response_new ();
    zsock_signal (pipe, 0);

    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != worker)
            break; //  $TERM on the pipe, or interrupted
        void *connection = zhttp_request_recv (request, worker);
        if (connection)
            s_echo_reply (worker, request, response, connection);
    }
    zhttp_response_destroy (&response);
    zhttp_request_destroy (&request);
    zpoller_destroy (&poller);
    zsock_destroy (&worker);
}

//  --------------------------------------------------------------------------
//  Fixture: a server plus its echo actor, fresh for each test.

typedef struct {
    zhttp_server_options_t *options;
    zhttp_server_t *server;
    zactor_t *echo;
    int port;
} fixture_t;

static int
s_fixture_start (fixture_t *self, size_t max_body_size, bool raw_path)
{
    static int instance = 0;
    self->options = zhttp_server_options_new ();
    zhttp_server_options_set_host (self->options, "127.0.0.1");
    zhttp_server_options_set_port (self->options, 0);
    zhttp_server_options_set_max_body_size (self->options, max_body_size);
    zhttp_server_options_set_raw_path (self->options, raw_path);
    char *backend = zsys_sprintf ("inproc://test_zhttp-%d", ++instance);
    zhttp_server_options_set_backend_address (self->options, backend);
    zstr_free (&backend);

    self->server = zhttp_server_new (self->options);
    if (!self->server)
        return -1;
    self->port = zhttp_server_port (self->server);
    self->echo = zactor_new (
        s_echo_actor, (void *)zhttp_server_options_backend_address (self->options));
    return self->port > 0 ? 0 : -1;
}

static void
s_fixture_stop (fixture_t *self)
{
    zhttp_server_destroy (&self->server);
    zactor_destroy (&self->echo);
    zhttp_server_options_destroy (&self->options);
}

static int
s_setup (void **state)
{
    fixture_t *self = (fixture_t *)calloc (1, sizeof (fixture_t));
    assert (self);
    *state = self;
    return s_fixture_start (self, S_LIMIT, false);
}

//  The same, with paths handed over as sent
static int
s_setup_raw (void **state)
{
    fixture_t *self = (fixture_t *)calloc (1, sizeof (fixture_t));
    assert (self);
    *state = self;
    return s_fixture_start (self, S_LIMIT, true);
}

static int
s_teardown (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    s_fixture_stop (self);
    free (self);
    return 0;
}

//  --------------------------------------------------------------------------
//  Raw HTTP/1.1 client: one TCP connection and what it has read so far.

typedef struct {
    int fd;
    size_t size;
    char buffer[S_BUFFER];
} client_t;

typedef struct {
    int status;
    bool close; //  The reply carried "Connection: close"
    char content_type[64];
    char *body;
    size_t body_size;
} reply_t;

static client_t *
s_client_new (int port)
{
    client_t *self = (client_t *)calloc (1, sizeof (client_t));
    assert (self);
    self->fd = socket (AF_INET, SOCK_STREAM, 0);
    assert (self->fd >= 0);
    struct timeval timeout = {S_TIMEOUT_MS / 1000, 0};
    setsockopt (self->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    setsockopt (self->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof (timeout));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons (port)};
    inet_pton (AF_INET, "127.0.0.1", &address.sin_addr);
    int rc = connect (self->fd, (struct sockaddr *)&address, sizeof (address));
    assert_int_equal (rc, 0);
    return self;
}

static void
s_client_destroy (client_t **self_p)
{
    if (*self_p) {
        close ((*self_p)->fd);
        free (*self_p);
        *self_p = NULL;
    }
}

static void
s_client_send (client_t *self, const void *data, size_t size)
{
    const char *cursor = (const char *)data;
    while (size > 0) {
        ssize_t sent = send (self->fd, cursor, size, MSG_NOSIGNAL);
        assert_true (sent > 0);
        cursor += sent;
        size -= (size_t)sent;
    }
}

static void
s_client_sendf (client_t *self, const char *format, ...)
{
    va_list argptr;
    va_start (argptr, format);
    char *text = zsys_vprintf (format, argptr);
    va_end (argptr);
    s_client_send (self, text, strlen (text));
    zstr_free (&text);
}

//  Reads more bytes into the buffer: > 0 read, 0 end of stream, -1 timeout
static ssize_t
s_client_fill (client_t *self)
{
    if (self->size == sizeof (self->buffer))
        return -1;
    ssize_t got =
        recv (self->fd, self->buffer + self->size, sizeof (self->buffer) - self->size, 0);
    if (got > 0)
        self->size += (size_t)got;
    return got;
}

//  Takes one header line of a reply into the reply; remembers Content-Length
static void
s_reply_header (reply_t *reply, char *line, size_t *content_length)
{
    char *colon = strchr (line, ':');
    if (!colon)
        return;
    *colon = '\0';
    char *value = colon + 1;
    while (*value == ' ')
        value++;
    if (strcasecmp (line, "Content-Length") == 0)
        *content_length = strtoul (value, NULL, 10);
    else if (strcasecmp (line, "Connection") == 0 && strcasestr (value, "close"))
        reply->close = true;
    else if (strcasecmp (line, "Content-Type") == 0)
        snprintf (reply->content_type, sizeof (reply->content_type), "%s", value);
}

//  Reads one whole reply, whose end its Content-Length tells; 0 or -1
static int
s_client_recv (client_t *self, reply_t *reply)
{
    memset (reply, 0, sizeof (reply_t));
    char *end;
    while (!(end = (char *)memmem (self->buffer, self->size, "\r\n\r\n", 4)))
        if (s_client_fill (self) <= 0)
            return -1;

    size_t head_size = (size_t)(end - self->buffer) + 4;
    char *head = strndup (self->buffer, head_size - 4);
    size_t content_length = SIZE_MAX;
    char *saveptr = NULL;
    char *line = strtok_r (head, "\r\n", &saveptr);
    if (!line || sscanf (line, "HTTP/1.1 %d", &reply->status) != 1)
        reply->status = -1;
    while ((line = strtok_r (NULL, "\r\n", &saveptr)))
        s_reply_header (reply, line, &content_length);
    free (head);
    if (reply->status < 0 || content_length == SIZE_MAX)
        return -1;

    while (self->size < head_size + content_length)
        if (s_client_fill (self) <= 0)
            return -1;
    reply->body = strndup (self->buffer + head_size, content_length);
    reply->body_size = content_length;
    self->size -= head_size + content_length;
    memmove (self->buffer, self->buffer + head_size + content_length, self->size);
    return 0;
}

//  True when the server has closed the connection (and sent nothing more)
static bool
s_client_closed (client_t *self)
{
    return self->size == 0 && s_client_fill (self) == 0;
}

static void
s_reply_free (reply_t *reply)
{
    free (reply->body);
    reply->body = NULL;
}

//  --------------------------------------------------------------------------
//  Requests and expectations.

//  A body whose bytes show where a piece went missing or moved
static char *
s_body_new (size_t size)
{
    char *body = (char *)malloc (size + 1);
    assert (body);
    for (size_t i = 0; i < size; i++)
        body[i] = (char)('a' + (i * 7 + i / 26) % 26);
    body[size] = '\0';
    return body;
}

static void
s_send_post (client_t *client, const char *path, const char *length_name,
             const char *body, size_t size)
{
    s_client_sendf (client, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s: %zu\r\n\r\n",
                    path, length_name, size);
    s_client_send (client, body, size);
}

//  Sends a body in chunks of chunk_size bytes, each in its own write
static void
s_send_chunked (client_t *client, const char *path, const char *body, size_t size,
                size_t chunk_size)
{
    s_client_sendf (client,
                    "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n",
                    path);
    for (size_t offset = 0; offset < size; offset += chunk_size) {
        size_t piece = size - offset < chunk_size ? size - offset : chunk_size;
        s_client_sendf (client, "%zx\r\n", piece);
        s_client_send (client, body + offset, piece);
        s_client_send (client, "\r\n", 2);
    }
    s_client_send (client, "0\r\n\r\n", 5);
}

//  The next reply is the echo of this request, on a connection kept open
static void
s_expect_echo (client_t *client, const char *method, const char *path, const char *body,
               size_t size)
{
    reply_t reply;
    assert_int_equal (s_client_recv (client, &reply), 0);
    assert_int_equal (reply.status, 200);
    assert_false (reply.close);
    char *expected = zsys_sprintf ("%s %s\n", method, path);
    size_t prefix = strlen (expected);
    assert_int_equal (reply.body_size, prefix + size);
    assert_memory_equal (reply.body, expected, prefix);
    if (size)
        assert_memory_equal (reply.body + prefix, body, size);
    zstr_free (&expected);
    s_reply_free (&reply);
}

static void
s_expect_too_large (client_t *client, size_t limit, bool closing)
{
    reply_t reply;
    assert_int_equal (s_client_recv (client, &reply), 0);
    assert_int_equal (reply.status, 413);
    assert_string_equal (reply.content_type, "application/json");
    char *expected = zsys_sprintf ("{\"error\": {\"status\": 413, \"message\": \"request "
                                   "body is larger than %zu bytes\"}}",
                                   limit);
    assert_string_equal (reply.body, expected);
    assert_int_equal (reply.close, closing);
    zstr_free (&expected);
    s_reply_free (&reply);
}

static void
s_expect_get_works (int port)
{
    client_t *client = s_client_new (port);
    s_client_sendf (client, "GET /still/here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s_expect_echo (client, "GET", "/still/here", NULL, 0);
    s_client_destroy (&client);
}

//  --------------------------------------------------------------------------
//  Keep-alive: one connection serves several requests.

static void
test_keepalive_sequential (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    client_t *client = s_client_new (self->port);
    const char *paths[] = {"/items/jea-265", "/items/two", "/items/three"};
    for (int i = 0; i < 3; i++) {
        s_client_sendf (client, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", paths[i]);
        s_expect_echo (client, "GET", paths[i], NULL, 0);
    }
    s_client_destroy (&client);
}

static void
test_keepalive_pipelined (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    client_t *client = s_client_new (self->port);
    s_client_sendf (client, "GET /first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                            "POST /second HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Length: 5\r\n\r\nhello"
                            "DELETE /third HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s_expect_echo (client, "GET", "/first", NULL, 0);
    s_expect_echo (client, "POST", "/second", "hello", 5);
    s_expect_echo (client, "DELETE", "/third", NULL, 0);
    s_client_destroy (&client);
}

typedef struct {
    bool close;
    char *body;
    size_t size;
} curl_seen_t;

static size_t
s_curl_header (char *data, size_t size, size_t count, void *arg)
{
    curl_seen_t *seen = (curl_seen_t *)arg;
    if (size * count >= 11 && strncasecmp (data, "Connection:", 11) == 0 &&
        memmem (data, size * count, "close", 5))
        seen->close = true;
    return size * count;
}

static size_t
s_curl_body (char *data, size_t size, size_t count, void *arg)
{
    curl_seen_t *seen = (curl_seen_t *)arg;
    seen->body = (char *)realloc (seen->body, seen->size + size * count + 1);
    assert (seen->body);
    memcpy (seen->body + seen->size, data, size * count);
    seen->size += size * count;
    seen->body[seen->size] = '\0';
    return size * count;
}

//  One request on the handle; returns how many new connections it took
static long
s_curl_request (CURL *curl, int port, const char *path, const char *post,
                const char *expected)
{
    curl_seen_t seen = {false, NULL, 0};
    char *url = zsys_sprintf ("http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    if (post)
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, post);
    else
        curl_easy_setopt (curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_curl_header);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, &seen);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_curl_body);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &seen);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long)S_TIMEOUT_MS);
    assert_int_equal (curl_easy_perform (curl), CURLE_OK);

    long status = 0, connects = -1;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo (curl, CURLINFO_NUM_CONNECTS, &connects);
    assert_int_equal (status, 200);
    assert_false (seen.close);
    assert_non_null (seen.body);
    assert_string_equal (seen.body, expected);
    free (seen.body);
    zstr_free (&url);
    return connects;
}

static void
test_keepalive_curl (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    CURL *curl = curl_easy_init ();
    assert_non_null (curl);
    assert_int_equal (s_curl_request (curl, self->port, "/a", NULL, "GET /a\n"), 1);
    assert_int_equal (s_curl_request (curl, self->port, "/b", NULL, "GET /b\n"), 0);
    assert_int_equal (s_curl_request (curl, self->port, "/c", "{\"newCount\": 2}",
                                      "POST /c\n{\"newCount\": 2}"),
                      0);
    assert_int_equal (s_curl_request (curl, self->port, "/d", NULL, "GET /d\n"), 0);
    curl_easy_cleanup (curl);
}

//  --------------------------------------------------------------------------
//  Bodies arrive whole, whatever the case of Content-Length, or chunked.

static void
test_body_lowercase_content_length (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    client_t *client = s_client_new (self->port);
    s_send_post (client, "/lower", "content-length", "hello world", 11);
    s_expect_echo (client, "POST", "/lower", "hello world", 11);

    char *body = s_body_new (5000);
    s_send_post (client, "/lower/big", "content-length", body, 5000);
    s_expect_echo (client, "POST", "/lower/big", body, 5000);
    s_send_post (client, "/upper/big", "Content-Length", body, 5000);
    s_expect_echo (client, "POST", "/upper/big", body, 5000);
    s_send_post (client, "/mixed", "CONTENT-length", body, 10);
    s_expect_echo (client, "POST", "/mixed", body, 10);
    free (body);
    s_client_destroy (&client);
}

static void
test_body_chunked (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    client_t *client = s_client_new (self->port);
    char *body = s_body_new (9000);
    s_send_chunked (client, "/chunked", body, 9000, 1000);
    s_expect_echo (client, "POST", "/chunked", body, 9000);
    s_send_chunked (client, "/chunked/small", body, 3, 1);
    s_expect_echo (client, "POST", "/chunked/small", body, 3);
    free (body);
    s_client_destroy (&client);
}

static void
test_body_exactly_at_limit (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    client_t *client = s_client_new (self->port);
    char *body = s_body_new (S_LIMIT);
    s_send_post (client, "/limit", "Content-Length", body, S_LIMIT);
    s_expect_echo (client, "POST", "/limit", body, S_LIMIT);
    s_send_chunked (client, "/limit/chunked", body, S_LIMIT, 4096);
    s_expect_echo (client, "POST", "/limit/chunked", body, S_LIMIT);
    free (body);
    s_client_destroy (&client);
}

//  --------------------------------------------------------------------------
//  Bodies over the cap get 413 without being buffered.

static void
test_declared_too_large (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    //  Only the headers are sent: the 413 must come without the body
    client_t *client = s_client_new (self->port);
    s_client_sendf (client, "POST /big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Type: application/json\r\n"
                            "content-length: 1048576\r\n\r\n");
    s_expect_too_large (client, S_LIMIT, true);
    assert_true (s_client_closed (client));
    s_client_destroy (&client);

    //  One byte over is over
    client = s_client_new (self->port);
    s_client_sendf (client, "POST /big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Length: 16385\r\n\r\n");
    s_expect_too_large (client, S_LIMIT, true);
    assert_true (s_client_closed (client));
    s_client_destroy (&client);

    s_expect_get_works (self->port);
}

static void
test_chunked_too_large (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    client_t *client = s_client_new (self->port);
    char *body = s_body_new (4 * S_LIMIT);
    s_send_chunked (client, "/big/chunked", body, 4 * S_LIMIT, 8192);
    s_expect_too_large (client, S_LIMIT, false);
    //  The whole body was read, so the same connection goes on
    s_client_sendf (client, "GET /after HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s_expect_echo (client, "GET", "/after", NULL, 0);
    //  One byte over the cap, in one chunk and across chunks
    s_send_chunked (client, "/big/one", body, S_LIMIT + 1, S_LIMIT + 1);
    s_expect_too_large (client, S_LIMIT, false);
    s_send_chunked (client, "/big/two", body, S_LIMIT + 1, 1000);
    s_expect_too_large (client, S_LIMIT, false);
    free (body);
    s_client_destroy (&client);

    s_expect_get_works (self->port);
}

static void
test_custom_limit (void **state)
{
    (void)state;
    fixture_t fixture = {0};
    assert_int_equal (s_fixture_start (&fixture, 100, false), 0);
    assert_int_equal (zhttp_server_options_max_body_size (fixture.options), 100);
    client_t *client = s_client_new (fixture.port);
    char *body = s_body_new (101);
    s_send_post (client, "/hundred", "Content-Length", body, 100);
    s_expect_echo (client, "POST", "/hundred", body, 100);
    s_send_chunked (client, "/hundred/one", body, 101, 50);
    s_expect_too_large (client, 100, false);
    s_client_sendf (client, "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n");
    s_expect_too_large (client, 100, true);
    free (body);
    s_client_destroy (&client);
    s_fixture_stop (&fixture);
}

//  --------------------------------------------------------------------------
//  More connections at once than select () can watch (FD_SETSIZE, 1024).

#define S_MANY 1100

static void
test_many_connections (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    //  Both ends of each connection live in this process
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < 2 * S_MANY + 200)
        skip ();
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < 2 * S_MANY + 200) {
        limit.rlim_cur = 2 * S_MANY + 200;
        assert_int_equal (setrlimit (RLIMIT_NOFILE, &limit), 0);
    }
    client_t **clients = (client_t **)calloc (S_MANY, sizeof (client_t *));
    assert (clients);
    for (int i = 0; i < S_MANY; i++) {
        clients[i] = s_client_new (self->port);
        s_client_sendf (clients[i], "GET /many/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                        i);
    }
    for (int i = 0; i < S_MANY; i++) {
        char *path = zsys_sprintf ("/many/%d", i);
        s_expect_echo (clients[i], "GET", path, NULL, 0);
        zstr_free (&path);
    }
    for (int i = 0; i < S_MANY; i++)
        s_client_destroy (&clients[i]);
    free (clients);
}

//  --------------------------------------------------------------------------
//  Start-up failures and hostile requests.

static void
test_options_defaults (void **state)
{
    (void)state;
    zhttp_server_options_t *options = zhttp_server_options_new ();
    assert_int_equal (zhttp_server_options_max_body_size (options), S_LIMIT);
    assert_null (zhttp_server_options_host (options));
    assert_false (zhttp_server_options_raw_path (options));
    zhttp_server_options_set_raw_path (options, true);
    assert_true (zhttp_server_options_raw_path (options));
    zhttp_server_options_set_raw_path (options, false);
    assert_false (zhttp_server_options_raw_path (options));
    zhttp_server_options_set_host (options, "127.0.0.1");
    assert_string_equal (zhttp_server_options_host (options), "127.0.0.1");
    zhttp_server_options_set_host (options, NULL);
    assert_null (zhttp_server_options_host (options));
    zhttp_server_options_destroy (&options);
}

static void
test_listens_on_host_only (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    //  Linux routes all of 127/8 to lo: a server on any address would answer here
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons (self->port)};
    inet_pton (AF_INET, "127.0.0.2", &address.sin_addr);
    assert_int_not_equal (connect (fd, (struct sockaddr *)&address, sizeof (address)), 0);
    assert_int_equal (errno, ECONNREFUSED);
    close (fd);
    s_expect_get_works (self->port);
}

static void
test_port_in_use (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    zhttp_server_options_t *options = zhttp_server_options_new ();
    zhttp_server_options_set_host (options, "127.0.0.1");
    zhttp_server_options_set_port (options, self->port);
    zhttp_server_options_set_backend_address (options, "inproc://test_zhttp-in-use");
    zhttp_server_t *server = zhttp_server_new (options);
    assert_null (server);

    //  An address that is not IPv4 fails the same way
    zhttp_server_options_set_host (options, "localhost");
    zhttp_server_options_set_port (options, 0);
    server = zhttp_server_new (options);
    assert_null (server);

    //  So does a backend address that another server holds
    zhttp_server_options_set_host (options, "127.0.0.1");
    zhttp_server_options_set_backend_address (
        options, zhttp_server_options_backend_address (self->options));
    server = zhttp_server_new (options);
    assert_null (server);
    zhttp_server_options_destroy (&options);

    s_expect_get_works (self->port);
}

static void
test_long_method (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    client_t *client = s_client_new (self->port);
    char method[301];
    memset (method, 'M', 300);
    method[300] = '\0';
    s_client_sendf (client, "%s /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", method);
    reply_t reply;
    assert_int_equal (s_client_recv (client, &reply), 0);
    assert_int_equal (reply.status, 501);
    s_reply_free (&reply);
    s_client_destroy (&client);

    s_expect_get_works (self->port);
}

//  --------------------------------------------------------------------------
//  Paths: percent-decoded by default (czmq's behaviour), as sent when raw.

static void
s_expect_path (client_t *client, const char *sent, const char *received)
{
    s_client_sendf (client, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", sent);
    s_expect_echo (client, "GET", received, NULL, 0);
}

static void
test_raw_path (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    assert_true (zhttp_server_options_raw_path (self->options));
    client_t *client = s_client_new (self->port);
    s_expect_path (client, "/items/a%2Fb%20c", "/items/a%2Fb%20c");
    s_expect_path (client, "/x%00y", "/x%00y");
    s_expect_path (client, "/carts/c%2F1/items/%41+b", "/carts/c%2F1/items/%41+b");
    //  The query string is cut off, raw or not
    s_expect_path (client, "/items/a%2Fb?q=%2F&r", "/items/a%2Fb");
    s_expect_path (client, "/plain/path", "/plain/path");
    s_client_destroy (&client);
}

static void
test_decoded_path (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    assert_false (zhttp_server_options_raw_path (self->options));
    client_t *client = s_client_new (self->port);
    s_expect_path (client, "/items/a%2Fb%20c", "/items/a/b c");
    s_expect_path (client, "/x%00y", "/x");
    s_expect_path (client, "/items/a%2Fb?q=%2F&r", "/items/a/b");
    s_client_destroy (&client);
}

//  --------------------------------------------------------------------------
//  A body with a NUL byte cannot reach the application whole: 400.

static void
s_expect_nul_refused (client_t *client)
{
    reply_t reply;
    assert_int_equal (s_client_recv (client, &reply), 0);
    assert_int_equal (reply.status, 400);
    assert_string_equal (reply.content_type, "application/json");
    assert_string_equal (reply.body, "{\"error\": {\"status\": 400, \"message\": "
                                     "\"request body contains a NUL byte\"}}");
    assert_false (reply.close);
    s_reply_free (&reply);
}

static void
test_body_with_nul (void **state)
{
    fixture_t *self = (fixture_t *)*state;
    client_t *client = s_client_new (self->port);
    const char body[] = "{\"a\": \"b\0c\"}";
    s_send_post (client, "/nul", "Content-Length", body, sizeof (body) - 1);
    s_expect_nul_refused (client);
    //  A complete request: the same connection goes on
    s_client_sendf (client, "GET /after HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s_expect_echo (client, "GET", "/after", NULL, 0);

    //  At either end, and in a later chunk
    s_send_post (client, "/nul/first", "Content-Length", "\0abc", 4);
    s_expect_nul_refused (client);
    s_send_post (client, "/nul/last", "Content-Length", "abc\0", 4);
    s_expect_nul_refused (client);
    char *big = s_body_new (5000);
    big[4321] = '\0';
    s_send_chunked (client, "/nul/chunked", big, 5000, 1000);
    s_expect_nul_refused (client);
    free (big);
    s_send_post (client, "/after", "Content-Length", "hello", 5);
    s_expect_echo (client, "POST", "/after", "hello", 5);
    s_client_destroy (&client);
}

//  --------------------------------------------------------------------------
//  The handler hook: requests handled in the server's own thread.
//
//  "/now..." is answered inside the request hook; "/later..." is held, and
//  answered from the ready hook when the test sends "RELEASE" on the PAIR
//  that the state of server thread 0 connects to. Every hook notes whether
//  it ran in the thread that attached.

#define S_HELD_MAX 16

typedef struct {
    int id;               //  names the PAIR endpoints of this test
    _Atomic int attached; //  states made so far (their indices)
    _Atomic int detached;
    _Atomic int wrong_thread; //  hooks run outside their attach's thread
    _Atomic int served[2];    //  requests answered by state 0 and 1
    _Atomic int held_at_stop; //  requests detach left to the server
    _Atomic int refused;      //  answers the server made on its own
    _Atomic int last_refused; //  the status of the last
} hook_arg_t;

typedef struct {
    hook_arg_t *arg;
    int index;
    pthread_t thread;
    zsock_t *pair;
    zhttp_server_connection_t *held[S_HELD_MAX];
    char *held_url[S_HELD_MAX];
    size_t n_held;
} hook_state_t;

static void
s_hook_check_thread (hook_state_t *self)
{
    if (!pthread_equal (pthread_self (), self->thread))
        self->arg->wrong_thread++;
}

static void *
s_hook_attach (void *arg)
{
    hook_state_t *self = (hook_state_t *)calloc (1, sizeof (hook_state_t));
    assert (self);
    self->arg = (hook_arg_t *)arg;
    self->index = self->arg->attached++;
    self->thread = pthread_self ();
    self->pair = zsock_new_pair (NULL);
    assert (self->pair);
    int rc = zsock_connect (self->pair, "inproc://test_zhttp-hook-%d-%d", self->arg->id,
                            self->index);
    assert (rc == 0);
    return self;
}

static void *
s_hook_socket (void *state, int *timeout_ms)
{
    hook_state_t *self = (hook_state_t *)state;
    s_hook_check_thread (self);
    return zsock_resolve (self->pair);
}

static void
s_hook_answer (hook_state_t *self, zhttp_server_connection_t *connection,
               const char *text)
{
    const char *headers[] = {"Content-Type", "text/plain", "X-Hook", "yes", NULL};
    char *body = strdup (text);
    zhttp_server_reply (connection, 200, headers, body, strlen (body));
    if (self->index < 2)
        self->arg->served[self->index]++;
}

static int
s_hook_ready (void *state)
{
    hook_state_t *self = (hook_state_t *)state;
    s_hook_check_thread (self);
    int answered = 0;
    while (zsock_has_in (self->pair)) {
        char *command = zstr_recv (self->pair);
        if (command && streq (command, "RELEASE"))
            for (size_t i = 0; i < self->n_held; i++, answered++) {
                //  A held request's client and version stay known
                char peer[64] = "";
                if (strstr (self->held_url[i], "/peer"))
                    zhttp_server_client_address (self->held[i], peer, sizeof (peer));
                char *text = zsys_sprintf ("later %s%s%s", self->held_url[i],
                                           peer[0] ? " " : "", peer);
                s_hook_answer (self, self->held[i], text);
                zstr_free (&text);
                zstr_free (&self->held_url[i]);
            }
        if (command && streq (command, "RELEASE"))
            self->n_held = 0;
        zstr_free (&command);
    }
    return answered;
}

static void
s_hook_request (void *state, zhttp_server_connection_t *connection, const char *method,
                const char *url, const char *content, size_t content_length)
{
    hook_state_t *self = (hook_state_t *)state;
    s_hook_check_thread (self);
    if (strncmp (url, "/later", 6) == 0 && self->n_held < S_HELD_MAX) {
        self->held_url[self->n_held] = strdup (url);
        self->held[self->n_held++] = connection;
        return;
    }
    const char *type = zhttp_server_header (connection, "content-type");
    char peer[64];
    char *text =
        streq (url, "/now/peer")
            ? (zhttp_server_client_address (connection, peer, sizeof (peer)),
               zsys_sprintf ("peer %s %s", peer, zhttp_server_version (connection)))
            : zsys_sprintf ("now %s %s %s\n%s", method, url, type ? type : "-",
                            content ? content : "");
    assert (!content || strlen (content) == content_length);
    s_hook_answer (self, connection, text);
    zstr_free (&text);
}

static void
s_hook_detach (void **state_p)
{
    hook_state_t *self = (hook_state_t *)*state_p;
    s_hook_check_thread (self);
    self->arg->detached++;
    self->arg->held_at_stop += (int)self->n_held;
    for (size_t i = 0; i < self->n_held; i++)
        zstr_free (&self->held_url[i]);
    zsock_destroy (&self->pair);
    free (self);
    *state_p = NULL;
}

static void
s_hook_error (void *state, unsigned int status)
{
    hook_state_t *self = (hook_state_t *)state;
    s_hook_check_thread (self);
    self->arg->refused++;
    self->arg->last_refused = (int)status;
}

static const zhttp_server_handler_t s_hooks = {s_hook_attach, s_hook_socket,
                                               s_hook_ready,  s_hook_request,
                                               s_hook_detach, s_hook_error};

static zhttp_server_t *
s_hook_server_new (hook_arg_t *arg, int port, bool reuse_port,
                   zhttp_server_options_t **options_p)
{
    zhttp_server_options_t *options = zhttp_server_options_new ();
    zhttp_server_options_set_host (options, "127.0.0.1");
    zhttp_server_options_set_port (options, port);
    zhttp_server_options_set_reuse_port (options, reuse_port);
    zhttp_server_options_set_handler (options, &s_hooks, arg);
    zhttp_server_t *server = zhttp_server_new (options);
    if (server)
        *options_p = options;
    else
        zhttp_server_options_destroy (&options);
    return server;
}

static void
s_expect_text (client_t *client, const char *text)
{
    reply_t reply;
    assert_int_equal (s_client_recv (client, &reply), 0);
    assert_int_equal (reply.status, 200);
    assert_false (reply.close);
    assert_string_equal (reply.content_type, "text/plain");
    assert_string_equal (reply.body, text);
    s_reply_free (&reply);
}

static void
test_handler_now_and_later (void **state)
{
    static int id;
    hook_arg_t arg = {.id = ++id};
    zsock_t *control = zsock_new_pair (NULL);
    assert_int_equal (zsock_bind (control, "inproc://test_zhttp-hook-%d-0", arg.id), 0);
    zhttp_server_options_t *options = NULL;
    zhttp_server_t *server = s_hook_server_new (&arg, 0, false, &options);
    assert_non_null (server);
    int port = zhttp_server_port (server);
    assert_int_equal (arg.attached, 1);

    //  Two requests held on two connections; a third is answered meanwhile
    client_t *first = s_client_new (port), *second = s_client_new (port);
    s_client_sendf (first, "GET /later/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s_client_sendf (second, "GET /later/peer HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    client_t *third = s_client_new (port);
    //  The client's address and the request's version
    s_client_sendf (third, "GET /now/peer HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s_expect_text (third, "peer 127.0.0.1 HTTP/1.1");
    s_client_sendf (third, "GET /now/peer HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    s_expect_text (third, "peer 127.0.0.1 HTTP/1.0");
    s_client_sendf (third, "GET /now/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s_expect_text (third, "now GET /now/x -\n");
    //  A body, a header looked up by any case, and the same connection again
    s_send_post (third, "/now/body", "Content-Length", "hello", 5);
    s_expect_text (third, "now POST /now/body -\nhello");
    s_client_sendf (third, "PUT /now/t HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                           "application/json\r\nContent-Length: 2\r\n\r\n{}");
    s_expect_text (third, "now PUT /now/t application/json\n{}");
    //  The checks before the handler stay: a body over the cap is 413
    char *big = s_body_new (S_LIMIT + 1);
    s_send_post (third, "/now/big", "Content-Length", big, S_LIMIT + 1);
    free (big);
    reply_t reply;
    assert_int_equal (s_client_recv (third, &reply), 0);
    assert_int_equal (reply.status, 413);
    s_reply_free (&reply);
    //  ... and is told to the error hook, before it is sent
    assert_int_equal (arg.refused, 1);
    assert_int_equal (arg.last_refused, 413);
    //  So is what libmicrohttpd refuses itself: HTTP/1.1 without Host
    client_t *hostless = s_client_new (port);
    s_client_sendf (hostless, "GET /now/x HTTP/1.1\r\n\r\n");
    assert_int_equal (s_client_recv (hostless, &reply), 0);
    assert_int_equal (reply.status, 400);
    s_reply_free (&reply);
    s_client_destroy (&hostless);
    assert_int_equal (arg.refused, 2);
    assert_int_equal (arg.last_refused, 400);

    //  The held ones are answered from the ready hook, on the same connections
    zstr_send (control, "RELEASE");
    s_expect_text (first, "later /later/1");
    s_expect_text (second, "later /later/peer 127.0.0.1");
    s_client_sendf (first, "GET /now/again HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s_expect_text (first, "now GET /now/again -\n");
    s_client_destroy (&first);
    s_client_destroy (&second);
    s_client_destroy (&third);

    zhttp_server_destroy (&server);
    assert_int_equal (arg.detached, 1);
    assert_int_equal (arg.held_at_stop, 0);
    assert_int_equal (arg.wrong_thread, 0);
    assert_int_equal (arg.served[0], 8);
    zhttp_server_options_destroy (&options);
    zsock_destroy (&control);
}

//  MHD must not stop with a connection suspended: what the handler still
//  holds at its detach is answered 503 by the server, which then stops
static void
test_handler_stop_with_held (void **state)
{
    static int id = 100;
    hook_arg_t arg = {.id = ++id};
    zhttp_server_options_t *options = NULL;
    zhttp_server_t *server = s_hook_server_new (&arg, 0, false, &options);
    assert_non_null (server);
    int port = zhttp_server_port (server);
    client_t *clients[3];
    for (int i = 0; i < 3; i++) {
        clients[i] = s_client_new (port);
        s_client_sendf (clients[i], "GET /later/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                        i);
    }
    //  A request answered after the three were sent: all three are held
    client_t *probe = s_client_new (port);
    s_client_sendf (probe, "GET /now/p HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s_expect_text (probe, "now GET /now/p -\n");
    zhttp_server_destroy (&server);
    assert_int_equal (arg.detached, 1);
    assert_int_equal (arg.held_at_stop, 3);
    assert_int_equal (arg.wrong_thread, 0);
    for (int i = 0; i < 3; i++) {
        reply_t reply;
        assert_int_equal (s_client_recv (clients[i], &reply), 0);
        assert_int_equal (reply.status, 503);
        assert_string_equal (reply.content_type, "application/json");
        assert_string_equal (reply.body, "{\"error\": {\"status\": 503, \"message\": "
                                         "\"the server is stopping\"}}");
        s_reply_free (&reply);
        assert_true (s_client_closed (clients[i]));
        s_client_destroy (&clients[i]);
    }
    s_client_destroy (&probe);
    zhttp_server_options_destroy (&options);
}

//  Servers sharing a port take connections in turn from the kernel; one
//  without SO_REUSEPORT cannot join them, nor they it
static void
test_handler_reuse_port (void **state)
{
    static int id = 200;
    hook_arg_t arg = {.id = ++id};
    zhttp_server_options_t *options[2] = {NULL, NULL}, *other = NULL;
    zhttp_server_t *servers[2];
    servers[0] = s_hook_server_new (&arg, 0, true, &options[0]);
    assert_non_null (servers[0]);
    int port = zhttp_server_port (servers[0]);
    servers[1] = s_hook_server_new (&arg, port, true, &options[1]);
    assert_non_null (servers[1]);
    assert_int_equal (zhttp_server_port (servers[1]), port);
    assert_null (s_hook_server_new (&arg, port, false, &other));
    assert_int_equal (arg.attached, 2); //  a server that cannot listen never attaches

    //  40 connections: the kernel hashes each to one of the two
    for (int i = 0; i < 40; i++) {
        client_t *client = s_client_new (port);
        s_client_sendf (client, "GET /now/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", i);
        char *text = zsys_sprintf ("now GET /now/%d -\n", i);
        s_expect_text (client, text);
        zstr_free (&text);
        s_client_destroy (&client);
    }
    assert_true (arg.served[0] > 0);
    assert_true (arg.served[1] > 0);
    assert_int_equal (arg.served[0] + arg.served[1], 40);
    for (int i = 0; i < 2; i++) {
        zhttp_server_destroy (&servers[i]);
        zhttp_server_options_destroy (&options[i]);
    }
    assert_int_equal (arg.detached, 2);
    assert_int_equal (arg.wrong_thread, 0);

    //  A plain server on a port keeps reuse-port servers out
    fixture_t fixture;
    assert_int_equal (s_fixture_start (&fixture, S_LIMIT, false), 0);
    assert_null (s_hook_server_new (&arg, fixture.port, true, &other));
    s_fixture_stop (&fixture);
}

int
main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_keepalive_sequential, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_keepalive_pipelined, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_keepalive_curl, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_body_lowercase_content_length, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_body_chunked, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_body_exactly_at_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_declared_too_large, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_chunked_too_large, s_setup, s_teardown),
        cmocka_unit_test (test_custom_limit),
        cmocka_unit_test_setup_teardown (test_many_connections, s_setup, s_teardown),
        cmocka_unit_test (test_options_defaults),
        cmocka_unit_test_setup_teardown (test_listens_on_host_only, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_port_in_use, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_long_method, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_raw_path, s_setup_raw, s_teardown),
        cmocka_unit_test_setup_teardown (test_decoded_path, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_body_with_nul, s_setup, s_teardown),
        cmocka_unit_test (test_handler_now_and_later),
        cmocka_unit_test (test_handler_stop_with_held),
        cmocka_unit_test (test_handler_reuse_port),
    };
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    curl_global_cleanup ();
    return failed;
}
