/*  =========================================================================
    cart_http - the HTTP front end.

    Each handler thread polls three sockets: its pipe, its DEALER to the
    zhttp server's backend (requests in, responses out) and its cart_client
    (replies, deadlines). A request in flight is a small record from a
    fixed pool of PENDING_MAX per handler; when the pool is empty, or the
    bus refuses the send, the answer is 503 at once: the front never
    queues without bound. Every request gets exactly one response, since
    the client library ends each one with a reply or a timeout.

    Metrics are counters shared by the handler threads, updated with
    relaxed atomic adds: requests by route and status, and a latency
    histogram. /metrics and /healthz also ask the broker for its per-shard
    stats, asynchronously, like any other request.
    =========================================================================
*/
#include "cart_http.h"

#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>

#include "cart_actor.h"
#include "cart_client.h"
#include "cart_hash.h"
#include "cart_render.h"
#include "cart_route.h"

#define PENDING_MAX  16384
#define NONE         UINT32_MAX
#define HANDLERS_MAX 64

//  HTTP statuses counted by metrics; the last entry counts any other
static const int s_statuses[] = {200, 201, 204, 400, 404, 405,
                                 409, 415, 500, 503, 504, 0};
#define STATUSES (sizeof (s_statuses) / sizeof (s_statuses[0]))

//  Latency buckets, in microseconds; one more bucket counts the rest
static const uint64_t s_buckets[] = {100,    250,    500,     1000,   2500,
                                     5000,   10000,  25000,   50000,  100000,
                                     250000, 500000, 1000000, 2500000};
#define BUCKETS (sizeof (s_buckets) / sizeof (s_buckets[0]))

typedef struct {
    _Atomic uint64_t requests[CART_LABELS][STATUSES];
    _Atomic uint64_t latency[BUCKETS + 1];
    _Atomic uint64_t latency_sum_us;
} metrics_t;

typedef struct {
    void *connection; //  zhttp's handle of the HTTP request
    cart_op_t op;
    cart_label_t label;
    int64_t start_us;
    uint32_t next_free;
} pending_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *http; //  DEALER to the zhttp server's backend
    cart_client_t *client;
    zhttp_request_t *request;
    zhttp_response_t *response;
    metrics_t *metrics;
    int deadline_ms;
    pending_t *pending;
    uint32_t free_head;
    cart_buf_t buf;
    cart_route_t route;
    bool terminated;
    bool quiet; //  shutting down: answer nothing more
} handler_t;

typedef struct {
    const char *backend; //  the zhttp server's backend address
    const char *broker;
    int deadline_ms;
    metrics_t *metrics;
    const cart_curve_t *curve; //  NULL: a plain bus
} handler_args_t;

//  --------------------------------------------------------------------------
//  Metrics

static void
s_count (metrics_t *metrics, cart_label_t label, int status, int64_t start_us)
{
    size_t index = STATUSES - 1;
    for (size_t i = 0; i + 1 < STATUSES; i++)
        if (s_statuses[i] == status)
            index = i;
    atomic_fetch_add_explicit (&metrics->requests[label][index], 1, memory_order_relaxed);
    uint64_t elapsed = (uint64_t)(zclock_usecs () - start_us);
    size_t bucket = 0;
    while (bucket < BUCKETS && elapsed > s_buckets[bucket])
        bucket++;
    atomic_fetch_add_explicit (&metrics->latency[bucket], 1, memory_order_relaxed);
    atomic_fetch_add_explicit (&metrics->latency_sum_us, elapsed, memory_order_relaxed);
}

static uint64_t
s_load (_Atomic uint64_t *counter)
{
    return atomic_load_explicit (counter, memory_order_relaxed);
}

static void
s_render_counters (metrics_t *metrics, cart_buf_t *buf)
{
    cart_buf_printf (buf, "# HELP cart_http_requests_total HTTP requests by route and "
                          "status.\n# TYPE cart_http_requests_total counter\n");
    for (int label = 0; label < CART_LABELS; label++)
        for (size_t s = 0; s < STATUSES; s++) {
            uint64_t n = s_load (&metrics->requests[label][s]);
            if (n == 0)
                continue;
            char status[8] = "other";
            if (s_statuses[s])
                snprintf (status, sizeof (status), "%d", s_statuses[s]);
            cart_buf_printf (
                buf, "cart_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                cart_route_label_name ((cart_label_t)label), status,
                (unsigned long long)n);
        }
    cart_buf_printf (buf, "# HELP cart_http_request_duration_seconds Time from request "
                          "to response.\n# TYPE cart_http_request_duration_seconds "
                          "histogram\n");
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= BUCKETS; b++) {
        cumulative += s_load (&metrics->latency[b]);
        if (b < BUCKETS)
            cart_buf_printf (
                buf, "cart_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                (double)s_buckets[b] / 1e6, (unsigned long long)cumulative);
        else
            cart_buf_printf (
                buf, "cart_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)cumulative);
    }
    cart_buf_printf (buf,
                     "cart_http_request_duration_seconds_sum %.6f\n"
                     "cart_http_request_duration_seconds_count %llu\n",
                     (double)s_load (&metrics->latency_sum_us) / 1e6,
                     (unsigned long long)cumulative);
}

//  Appends the broker's per-shard figures; returns false when the stats
//  body is malformed.
static bool
s_render_shards (const cart_result_t *result, cart_buf_t *buf)
{
    cart_stats_list_t list;
    cart_shard_stats_t entry;
    const char *error;
    if (cart_stats_decode (result->body, result->body_size, &list, &error))
        return false;
    cart_buf_printf (buf, "# HELP cart_shard_up 1 when a live worker serves the shard.\n"
                          "# TYPE cart_shard_up gauge\n"
                          "# HELP cart_shard_keys Carts (customers) held by the shard.\n"
                          "# TYPE cart_shard_keys gauge\n"
                          "# HELP cart_shard_items Items held by the shard.\n"
                          "# TYPE cart_shard_items gauge\n");
    int rc;
    while ((rc = cart_stats_next (&list, &entry, &error)) == 1)
        cart_buf_printf (
            buf,
            "cart_shard_up{shard=\"%u\"} %d\ncart_shard_keys{shard=\"%u\"} %llu\n"
            "cart_shard_items{shard=\"%u\"} %llu\n",
            entry.shard, entry.live, entry.shard, (unsigned long long)entry.carts,
            entry.shard, (unsigned long long)entry.items);
    return rc == 0;
}

//  --------------------------------------------------------------------------
//  Responses

static const char *
s_header (zhash_t *headers, const char *name)
{
    for (const char *value = (const char *)zhash_first (headers); value;
         value = (const char *)zhash_next (headers))
        if (strcasecmp (zhash_cursor (headers), name) == 0)
            return value;
    return NULL;
}

//  Sends the response in self->buf (empty: no body) for a connection.
static void
s_respond (handler_t *self, void *connection, int status, const char *content_type,
           const char *allow)
{
    if (self->quiet) { //  the server is closing every connection
        self->buf.len = 0;
        return;
    }
    zhttp_response_t *response = self->response;
    zhttp_response_set_status_code (response, (uint32_t)status);
    zhash_t *headers = zhttp_response_headers (response);
    if (self->buf.len) {
        zhash_insert (headers, "Content-Type", (void *)content_type);
        char *content = cart_buf_take (&self->buf);
        zhttp_response_set_content (response, &content);
    }
    if (allow)
        zhash_insert (headers, "Allow", (void *)allow);
    if (status == 503)
        zhash_insert (headers, "Retry-After", "1");
    if (zhttp_response_send (response, self->http, &connection) == -1) {
        //  The server is gone (shutdown): drop what the response holds, so
        //  that the next one starts clean
        zhttp_response_reset_content (response);
        zhash_delete (headers, "Content-Type");
        zhash_delete (headers, "Allow");
        zhash_delete (headers, "Retry-After");
    }
    self->buf.len = 0;
}

static void
s_respond_error (handler_t *self, void *connection, int status, const char *message,
                 const char *allow)
{
    self->buf.len = 0;
    cart_render_error (&self->buf, status, message, strlen (message));
    s_respond (self, connection, status, "application/json", allow);
}

//  --------------------------------------------------------------------------
//  Requests in flight

static pending_t *
s_pending_take (handler_t *self)
{
    if (self->free_head == NONE)
        return NULL;
    pending_t *pending = &self->pending[self->free_head];
    self->free_head = pending->next_free;
    return pending;
}

static void
s_pending_free (handler_t *self, pending_t *pending)
{
    uint32_t index = (uint32_t)(pending - self->pending);
    pending->next_free = self->free_head;
    self->free_head = index;
}

//  Sends a cart request or a STATS for a mapped route; answers 503 when
//  the front or the bus has no room.
static void
s_dispatch (handler_t *self, void *connection, int64_t start_us)
{
    cart_route_t *route = &self->route;
    pending_t *pending = s_pending_take (self);
    int rc = -1;
    if (pending) {
        *pending = (pending_t){connection, route->req.op, route->label, start_us, NONE};
        if (route->kind == CART_ROUTE_CART)
            rc = cart_client_send (self->client, &route->req, self->deadline_ms, pending,
                                   NULL, NULL);
        else
            rc = cart_client_send_command (self->client, CART_CMD_STATS,
                                           self->deadline_ms, pending, NULL);
        if (rc)
            s_pending_free (self, pending);
    }
    if (rc) {
        s_respond_error (self, connection, 503,
                         "the service is overloaded or its broker is unreachable; try "
                         "again shortly",
                         NULL);
        s_count (self->metrics, route->label, 503, start_us);
    }
}

static void
s_handle_http (handler_t *self)
{
    void *connection = zhttp_request_recv (self->request, self->http);
    if (!connection || self->quiet)
        return; //  (its headers and body are freed by the next recv)
    int64_t start_us = zclock_usecs ();
    const char *body = zhttp_request_content (self->request);
    cart_route_t *route = &self->route;
    cart_route_map (zhttp_request_method (self->request),
                    zhttp_request_url (self->request),
                    s_header (zhttp_request_headers (self->request), "Content-Type"),
                    body, body ? strlen (body) : 0, route);
    if (route->kind == CART_ROUTE_ERROR) {
        s_respond_error (self, connection, route->status, route->message, route->allow);
        s_count (self->metrics, route->label, route->status, start_us);
        return;
    }
    s_dispatch (self, connection, start_us);
}

//  /healthz: 200 when every shard is live, else 503; the body lists them.
static int
s_render_health (const cart_result_t *result, cart_buf_t *buf)
{
    cart_stats_list_t list;
    cart_shard_stats_t entry;
    const char *error;
    if (result->status != CART_OK ||
        cart_stats_decode (result->body, result->body_size, &list, &error)) {
        const char *message = "the broker did not answer; no shard can be reached";
        cart_render_error (buf, 503, message, strlen (message));
        return 503;
    }
    size_t live = 0;
    cart_buf_append (buf, "{\"shards\": [", 12);
    for (size_t i = 0; cart_stats_next (&list, &entry, &error) == 1; i++) {
        cart_buf_printf (buf, "%s{\"shard\": %u, \"state\": \"%s\"}", i ? ", " : "",
                         entry.shard,
                         entry.live      ? "live"
                         : entry.stalled ? "stalled"
                                         : "unavailable");
        live += entry.live;
    }
    bool healthy = live == list.shards;
    cart_buf_printf (buf, "], \"live\": %zu, \"total\": %u, \"status\": \"%s\"}", live,
                     list.shards, healthy ? "ok" : "degraded");
    return healthy ? 200 : 503;
}

static void
s_handle_result (handler_t *self, const cart_result_t *result)
{
    pending_t *pending = (pending_t *)result->user;
    self->buf.len = 0;
    int status;
    const char *type = "application/json";
    if (pending->label == CART_LABEL_HEALTHZ)
        status = s_render_health (result, &self->buf);
    else if (pending->label == CART_LABEL_METRICS) {
        status = 200;
        type = "text/plain; version=0.0.4";
        s_render_counters (self->metrics, &self->buf);
        if (result->status == CART_OK)
            s_render_shards (result, &self->buf);
    } else
        status = cart_render_reply (pending->op, result->status, result->body,
                                    result->body_size, &self->buf);
    s_respond (self, pending->connection, status, type, NULL);
    s_count (self->metrics, pending->label, status, pending->start_us);
    s_pending_free (self, pending);
}

//  --------------------------------------------------------------------------
//  The handler actor

static handler_t *
s_handler_new (zsock_t *pipe, handler_args_t *args)
{
    handler_t *self = (handler_t *)zmalloc (sizeof (handler_t));
    assert (self);
    self->pipe = pipe;
    self->metrics = args->metrics;
    self->deadline_ms = args->deadline_ms;
    self->http = zsock_new (ZMQ_DEALER);
    assert (self->http);
    //  Responses are bounded by the pending pool, not by a high-water mark,
    //  and a response to a server that is gone fails at once
    zsock_set_sndhwm (self->http, 0);
    zsock_set_sndtimeo (self->http, 0);
    zsock_connect (self->http, "%s", args->backend);
    self->client = cart_client_new_curve (args->broker, args->curve, NULL);
    self->request = zhttp_request_new ();
    self->response = zhttp_response_new ();
    self->pending = (pending_t *)calloc (PENDING_MAX, sizeof (pending_t));
    assert (self->http && self->client && self->request && self->response &&
            self->pending);
    for (uint32_t i = 0; i < PENDING_MAX; i++)
        self->pending[i].next_free = i + 1 < PENDING_MAX ? i + 1 : NONE;
    return self;
}

static void
s_handler_destroy (handler_t **self_p)
{
    handler_t *self = *self_p;
    zsock_destroy (&self->http);
    cart_client_destroy (&self->client);
    zhttp_request_destroy (&self->request);
    zhttp_response_destroy (&self->response);
    cart_buf_free (&self->buf);
    free (self->pending);
    free (self);
    *self_p = NULL;
}

static void
s_handler_loop (handler_t *self)
{
    //  The pipe is looked at every CART_PIPE_MS, not in every poll: each
    //  socket in a zmq_poll costs system calls on every wake-up
    static const char *const commands[] = {"QUIET", NULL};
    void *http = zsock_resolve (self->http);
    int64_t pipe_at = 0;
    while (!self->terminated) {
        zmq_pollitem_t items[] = {{http, 0, ZMQ_POLLIN, 0},
                                  {cart_client_handle (self->client), 0, ZMQ_POLLIN, 0}};
        int timeout = cart_client_next_timeout (self->client);
        int rc = zmq_poll (
            items, 2, timeout < 0 || timeout > CART_PIPE_MS ? CART_PIPE_MS : timeout);
        if (rc == -1 && zmq_errno () != EINTR)
            break;
        if (cart_actor_due (&pipe_at) && (zsock_events (self->pipe) & ZMQ_POLLIN)) {
            int command = cart_actor_recv (self->pipe, "http handler", commands);
            if (command == 0) { //  QUIET
                self->quiet = true;
                zsock_signal (self->pipe, 0);
            } else if (command == CART_ACTOR_TERM)
                self->terminated = true;
        }
        for (int i = 0; i < 256 && (zsock_events (self->http) & ZMQ_POLLIN); i++)
            s_handle_http (self);
        cart_result_t result;
        for (int i = 0; i < 256 && cart_client_recv (self->client, &result, 0) == 1; i++)
            s_handle_result (self, &result);
    }
}

//  At shutdown, after the server is gone: requests it handed over and we
//  never read carry heap pointers (headers, body); take and free them.
static void
s_drain_requests (handler_t *self)
{
    while (zsock_events (self->http) & ZMQ_POLLIN)
        if (!zhttp_request_recv (self->request, self->http))
            break;
}

static void
s_handler_actor (zsock_t *pipe, void *args)
{
    handler_t *self = s_handler_new (pipe, (handler_args_t *)args);
    cart_actor_ready (pipe, NULL);
    s_handler_loop (self);
    s_drain_requests (self);
    s_handler_destroy (&self);
    cart_hash_thread_end ();
}

//  --------------------------------------------------------------------------
//  The front

struct _cart_http_t {
    zhttp_server_options_t *options;
    zhttp_server_t *server;
    zactor_t *handlers[HANDLERS_MAX];
    int n_handlers;
    metrics_t metrics;
    char *backend;
    int port;
};

void
cart_http_destroy (cart_http_t **self_p)
{
    cart_http_t *self = *self_p;
    if (!self)
        return;
    //  Requests and responses cross between the server and the handlers as
    //  heap pointers, so nothing may be left in flight when they part:
    //  1. each handler goes quiet: it sends no more responses, and frees
    //     the requests it still receives;
    //  2. the server stops: it frees the responses queued to it and closes
    //     every connection; it never blocks, as the handlers still read;
    //  3. the handlers stop, freeing the requests left in their queue.
    for (int i = 0; i < self->n_handlers; i++) {
        zstr_send (self->handlers[i], "QUIET");
        zsock_wait (self->handlers[i]);
    }
    zhttp_server_destroy (&self->server);
    cart_actors_destroy (self->handlers, (size_t)self->n_handlers);
    zhttp_server_options_destroy (&self->options);
    zstr_free (&self->backend);
    free (self);
    *self_p = NULL;
}

cart_http_t *
cart_http_new (const cart_http_config_t *config, const char **error)
{
    cart_client_t *probe = cart_client_new_curve (config->broker, config->curve, error);
    if (!probe)
        return NULL;
    cart_client_destroy (&probe);
    cart_http_t *self = (cart_http_t *)zmalloc (sizeof (cart_http_t));
    assert (self);
    static _Atomic int instance;
    self->backend =
        zsys_sprintf ("inproc://cart-http-%d", atomic_fetch_add (&instance, 1));
    self->options = zhttp_server_options_new ();
    zhttp_server_options_set_port (self->options, config->port);
    zhttp_server_options_set_host (self->options,
                                   config->host ? config->host : "127.0.0.1");
    zhttp_server_options_set_backend_address (self->options, self->backend);
    zhttp_server_options_set_max_body_size (self->options, CART_BODY_MAX);
    zhttp_server_options_set_raw_path (self->options, true);
    self->server = zhttp_server_new (self->options);
    if (!self->server) {
        if (error)
            *error =
                cart_errorf ("cannot listen on %s:%d",
                             config->host ? config->host : "127.0.0.1", config->port);
        cart_http_destroy (&self);
        return NULL;
    }
    self->port = zhttp_server_port (self->server);
    handler_args_t args = {self->backend, config->broker,
                           config->deadline_ms > 0 ? config->deadline_ms
                                                   : CART_DEADLINE_MS,
                           &self->metrics, config->curve};
    int threads = config->threads > 0 ? config->threads : 2;
    if (threads > HANDLERS_MAX)
        threads = HANDLERS_MAX;
    for (int i = 0; i < threads; i++)
        self->handlers[self->n_handlers++] =
            cart_actor_start (s_handler_actor, &args, NULL);
    return self;
}

int
cart_http_port (cart_http_t *self)
{
    return self->port;
}
