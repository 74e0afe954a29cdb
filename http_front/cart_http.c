/*  =========================================================================
    cart_http - the HTTP front end.

    Each server thread waits in one poll () on libmicrohttpd's sockets and
    its cart_client (replies, deadlines): zhttp calls s_request with each
    whole request and s_ready when the client's socket may have replies
    (deadline_ms bounds how long a connection stays suspended). A request
    in flight is a small record from a fixed pool of PENDING_MAX per
    thread; when the pool is empty, or the bus refuses the send, the
    answer is 503 at once: the front never queues without bound. Every
    request gets exactly one response, since the client library ends
    each one with a reply or a timeout, and zhttp answers those still in
    flight when it stops.

    Metrics are counters shared by the server threads, updated with
    relaxed atomic adds: requests by route and status, and a latency
    histogram. /metrics and /healthz also ask the broker for its per-shard
    stats, asynchronously, like any other request.
    =========================================================================
*/
#include "cart_http.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <unistd.h>

#include "cart_access.h"
#include "cart_args.h"
#include "cart_client.h"
#include "cart_hash.h"
#include "cart_openapi.h"
#include "cart_render.h"
#include "cart_route.h"

#define PENDING_MAX 16384
#define NONE        UINT32_MAX
#define SERVERS_MAX 64

//  HTTP statuses counted by metrics; the last entry counts any other
static const int s_statuses[] = {200, 201, 204, 304, 400, 404, 405, 409, 412, 413,
                                 414, 415, 422, 431, 500, 501, 503, 504, 505, 0};
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

//  What the access log and the latency histogram need of a request; the
//  strings are zhttp's, valid until the request is answered
typedef struct {
    const char *method;
    const char *target;
    int64_t start_us; //  zclock_usecs (monotonic), for the latency
    time_t arrived;   //  the wall clock, for the access log (0 without one)
} request_info_t;

typedef struct {
    zhttp_server_connection_t *connection; //  the HTTP request, held by zhttp
    cart_op_t op;
    cart_label_t label;
    request_info_t info;
    uint32_t next_free;
    //  A GET's If-None-Match (cart_route_headers)
    bool none_match_any;
    uint8_t n_none_match;
    uint64_t none_match[CART_NONE_MATCH_MAX];
} pending_t;

typedef struct _handler_args_t handler_args_t;

//  The state of one server thread, made by s_attach in that thread
typedef struct {
    cart_client_t *client;
    handler_args_t *args;
    int index;     //  its place in args->up
    int64_t up_at; //  when it next says whether its client is connected
    metrics_t *metrics;
    int deadline_ms;
    pending_t *pending;
    uint32_t free_head;
    int answered;                 //  responses sent since s_ready last returned
    bool close;                   //  the next response closes its connection
    cart_access_writer_t *access; //  NULL: no access log
    //  The next response's entity tag (cart_route_etag), or none, and
    //  whether it is an idempotency key's answer given again
    char etag[CART_ETAG_MAX];
    bool has_etag;
    bool replayed;
    cart_buf_t buf;
    cart_route_t route;
} handler_t;

//  What the server threads share
struct _handler_args_t {
    const char *broker;
    int deadline_ms;
    metrics_t *metrics;
    const cart_curve_t *curve; //  NULL: a plain bus
    cart_access_t *access;     //  NULL: no access log
    int servers;
    _Atomic int attached;         //  each thread takes the next index
    _Atomic bool up[SERVERS_MAX]; //  each thread's client is connected
};

//  Each thread says at most this long after a change whether its client
//  has a connection to the broker, for /healthz
#define UP_CHECK_MS 10

//  --------------------------------------------------------------------------
//  Metrics

static void
s_count_status (metrics_t *metrics, cart_label_t label, int status)
{
    size_t index = STATUSES - 1;
    for (size_t i = 0; i + 1 < STATUSES; i++)
        if (s_statuses[i] == status)
            index = i;
    atomic_fetch_add_explicit (&metrics->requests[label][index], 1, memory_order_relaxed);
}

static void
s_count (metrics_t *metrics, cart_label_t label, int status, int64_t start_us)
{
    s_count_status (metrics, label, status);
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

//  The per-shard metrics, each family rendered whole (its HELP, TYPE and
//  every sample) before the next. A shard's counts come from its worker's
//  last load: a shard that is not live (no worker, or a stalled one) has
//  no carts, items or expired sample, as a target that is down has none,
//  rather than a stale value that would read as current; its up and load
//  age samples say why.
typedef struct {
    const char *name;
    const char *type;
    const char *help;
    //  Writes entry's value into text, or returns false for no sample
    bool (*value) (const cart_shard_stats_t *entry, char *text, size_t size);
} shard_metric_t;

static bool
s_value_up (const cart_shard_stats_t *entry, char *text, size_t size)
{
    snprintf (text, size, "%d", entry->live);
    return true;
}

static bool
s_value_age (const cart_shard_stats_t *entry, char *text, size_t size)
{
    snprintf (text, size, "%.3f", (double)entry->load_age_ms / 1000);
    return entry->load_age_ms >= 0;
}

static bool
s_value_carts (const cart_shard_stats_t *entry, char *text, size_t size)
{
    snprintf (text, size, "%llu", (unsigned long long)entry->carts);
    return entry->live;
}

static bool
s_value_items (const cart_shard_stats_t *entry, char *text, size_t size)
{
    snprintf (text, size, "%llu", (unsigned long long)entry->items);
    return entry->live;
}

static bool
s_value_expired (const cart_shard_stats_t *entry, char *text, size_t size)
{
    snprintf (text, size, "%llu", (unsigned long long)entry->expired);
    return entry->live;
}

static const shard_metric_t s_shard_metrics[] = {
    {"cart_shard_up", "gauge", "1 when a live worker serves the shard.", s_value_up},
    {"cart_shard_load_age_seconds", "gauge",
     "Age of the shard's keys, items and expired counts (its worker's last load "
     "report); absent before the first.",
     s_value_age},
    {"cart_shard_keys", "gauge", "Carts (customers) held by the shard; live shards only.",
     s_value_carts},
    {"cart_shard_items", "gauge", "Items held by the shard; live shards only.",
     s_value_items},
    {"cart_carts_expired_total", "counter",
     "Carts of the shard removed for expiry since its worker started; live shards "
     "only.",
     s_value_expired},
};
#define SHARD_METRICS (sizeof (s_shard_metrics) / sizeof (s_shard_metrics[0]))

//  The access log's lines lost (its writer's queue full, or a write failed)
static void
s_render_access (cart_access_t *access, cart_buf_t *buf)
{
    cart_buf_printf (buf,
                     "# HELP cart_http_access_log_dropped_total Access log lines lost: "
                     "the writer thread's queue was full, or a write failed.\n"
                     "# TYPE cart_http_access_log_dropped_total counter\n"
                     "cart_http_access_log_dropped_total %llu\n",
                     (unsigned long long)cart_access_dropped (access));
}

//  Appends the broker's per-shard figures, one family at a time (the stats
//  are read once per family); returns false when the stats body is
//  malformed.
static bool
s_render_shards (const cart_result_t *result, cart_buf_t *buf)
{
    for (size_t m = 0; m < SHARD_METRICS; m++) {
        const shard_metric_t *metric = &s_shard_metrics[m];
        cart_stats_list_t list;
        cart_shard_stats_t entry;
        const char *error;
        if (cart_stats_decode (result->body, result->body_size, &list, &error))
            return false;
        cart_buf_printf (buf, "# HELP %s %s\n# TYPE %s %s\n", metric->name, metric->help,
                         metric->name, metric->type);
        int rc;
        char value[32];
        while ((rc = cart_stats_next (&list, &entry, &error)) == 1)
            if (metric->value (&entry, value, sizeof (value)))
                cart_buf_printf (buf, "%s{shard=\"%u\"} %s\n", metric->name, entry.shard,
                                 value);
        if (rc != 0)
            return false;
    }
    return true;
}

//  --------------------------------------------------------------------------
//  Responses

//  Appends the answer's line to the access log.
static void
s_log (handler_t *self, zhttp_server_connection_t *connection, const request_info_t *info,
       int status, size_t bytes)
{
    char host[64];
    zhttp_server_client_address (connection, host, sizeof (host));
    cart_access_entry_t entry = {.host = host,
                                 .method = info->method,
                                 .target = info->target,
                                 .version = zhttp_server_version (connection),
                                 .time = info->arrived,
                                 .status = status,
                                 .bytes = bytes};
    cart_access_writer_add (self->access, &entry);
}

//  Sends the response in self->buf (empty: no body) for a connection;
//  returns its status.
static int
s_respond (handler_t *self, zhttp_server_connection_t *connection,
           const request_info_t *info, int status, const char *content_type,
           const char *allow)
{
    const char *headers[13];
    size_t n = 0;
    size_t len = self->buf.len;
    char *content = len ? cart_buf_take (&self->buf) : NULL;
    if (content) {
        headers[n++] = "Content-Type";
        headers[n++] = content_type;
    }
    if (allow) {
        headers[n++] = "Allow";
        headers[n++] = allow;
    }
    if (status == 503) {
        headers[n++] = "Retry-After";
        headers[n++] = "1";
    }
    if (self->close) {
        headers[n++] = "Connection";
        headers[n++] = "close";
    }
    if (self->has_etag) {
        headers[n++] = "ETag";
        headers[n++] = self->etag;
    }
    if (self->replayed) {
        headers[n++] = "Idempotent-Replayed";
        headers[n++] = "true";
    }
    headers[n] = NULL;
    self->buf.len = 0;
    if (self->access)
        s_log (self, connection, info, status, len);
    zhttp_server_reply (connection, (unsigned)status, headers, content, len);
    self->close = false;
    self->has_etag = false;
    self->replayed = false;
    self->answered++;
    return status;
}

static int
s_respond_error (handler_t *self, zhttp_server_connection_t *connection,
                 const request_info_t *info, int status, const char *message,
                 const char *allow)
{
    self->buf.len = 0;
    cart_render_error (&self->buf, status, message, strlen (message));
    return s_respond (self, connection, info, status, "application/json", allow);
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
s_dispatch (handler_t *self, zhttp_server_connection_t *connection,
            const request_info_t *info)
{
    cart_route_t *route = &self->route;
    pending_t *pending = s_pending_take (self);
    int rc = -1;
    if (pending) {
        *pending = (pending_t){.connection = connection,
                               .op = route->req.op,
                               .label = route->label,
                               .info = *info,
                               .next_free = NONE,
                               .none_match_any = route->none_match_any,
                               .n_none_match = (uint8_t)route->n_none_match};
        memcpy (pending->none_match, route->none_match,
                route->n_none_match * sizeof (uint64_t));
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
        s_respond_error (self, connection, info, 503,
                         "the service is overloaded or its broker is unreachable; try "
                         "again shortly",
                         NULL);
        s_count (self->metrics, route->label, 503, info->start_us);
    }
}

//  GET /openapi.json, from the copy built in: no trip to the broker. A
//  read, so its answer (tens of KiB) waits for no memory that slow clients
//  hold, as a cart's does not
static int
s_respond_openapi (handler_t *self, zhttp_server_connection_t *connection,
                   const request_info_t *info)
{
    if (!zhttp_server_reply_fits (connection, cart_openapi_json_size)) {
        self->close = true;
        return s_respond_error (self, connection, info, 503,
                                "the server holds too many answers that slow clients "
                                "have not read yet; try again shortly",
                                NULL);
    }
    self->buf.len = 0;
    cart_buf_append (&self->buf, (const char *)cart_openapi_json, cart_openapi_json_size);
    return s_respond (self, connection, info, 200, "application/json", NULL);
}

//  zhttp's request hook: a whole request, in the server's thread
static void
s_request (void *state, zhttp_server_connection_t *connection, const char *method,
           const char *url, const char *content, size_t content_length)
{
    handler_t *self = (handler_t *)state;
    request_info_t info = {method, url, zclock_usecs (), self->access ? time (NULL) : 0};
    cart_route_t *route = &self->route;
    cart_route_map (method, url, zhttp_server_header (connection, "Content-Type"),
                    content, content ? content_length : 0, route);
    if (route->kind == CART_ROUTE_CART)
        cart_route_headers (route, zhttp_server_header (connection, "Idempotency-Key"),
                            zhttp_server_header (connection, "If-Match"),
                            zhttp_server_header (connection, "If-None-Match"));
    if (route->kind == CART_ROUTE_ERROR) {
        s_respond_error (self, connection, &info, route->status, route->message,
                         route->allow);
        s_count (self->metrics, route->label, route->status, info.start_us);
        return;
    }
    if (route->kind == CART_ROUTE_OPENAPI) {
        s_count (self->metrics, route->label, s_respond_openapi (self, connection, &info),
                 info.start_us);
        return;
    }
    s_dispatch (self, connection, &info);
}

//  /healthz: 200 when every server thread can reach the broker and every
//  shard is live, else 503; the body lists the shards.
static int
s_render_health (handler_t *self, const cart_result_t *result, cart_buf_t *buf)
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
    //  A thread whose connection is down answers 503 to its requests
    int down = 0;
    for (int i = 0; i < self->args->servers; i++)
        down += !atomic_load_explicit (&self->args->up[i], memory_order_relaxed);
    if (down) {
        char message[128];
        snprintf (message, sizeof (message),
                  "%d of %d server threads have no connection to the broker yet", down,
                  self->args->servers);
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

//  A cart request's answer: its entity tag, and 304 for a GET whose
//  If-None-Match names the cart's version.
static int
s_render_cart (handler_t *self, const pending_t *pending, const cart_result_t *result)
{
    int status = result->status;
    self->has_etag = status == CART_OK || status == CART_CREATED ||
                     status == CART_DELETED || status == CART_PRECONDITION_FAILED;
    self->replayed = result->replayed;
    if (self->has_etag)
        cart_route_etag (result->version, self->etag);
    if (status == CART_OK && pending->op == CART_OP_GET &&
        cart_route_not_modified (pending->none_match_any, pending->none_match,
                                 pending->n_none_match, result->version))
        return 304;
    return cart_render_reply (pending->op, status, result->body, result->body_size,
                              &self->buf);
}

static void
s_handle_result (handler_t *self, const cart_result_t *result)
{
    pending_t *pending = (pending_t *)result->user;
    self->buf.len = 0;
    int status;
    const char *type = "application/json";
    if (pending->label == CART_LABEL_HEALTHZ)
        status = s_render_health (self, result, &self->buf);
    else if (pending->label == CART_LABEL_METRICS) {
        status = 200;
        type = "text/plain; version=0.0.4";
        s_render_counters (self->metrics, &self->buf);
        if (self->args->access)
            s_render_access (self->args->access, &self->buf);
        if (result->status == CART_OK)
            s_render_shards (result, &self->buf);
    } else
        status = s_render_cart (self, pending, result);
    //  A read's answer waits for no memory that slow clients hold: it is
    //  replaced, and the connection closed so that what its client pipelined
    //  is not worked on either. A write's has changed the cart: it goes out
    bool read = pending->label == CART_LABEL_LIST ||
                pending->label == CART_LABEL_HEALTHZ ||
                pending->label == CART_LABEL_METRICS;
    if (read && !zhttp_server_reply_fits (pending->connection, self->buf.len)) {
        self->close = true;
        status = s_respond_error (self, pending->connection, &pending->info, 503,
                                  "the server holds too many answers that slow clients "
                                  "have not read yet; try again shortly",
                                  NULL);
    } else
        status =
            s_respond (self, pending->connection, &pending->info, status, type, NULL);
    s_count (self->metrics, pending->label, status, pending->info.start_us);
    s_pending_free (self, pending);
}

//  --------------------------------------------------------------------------
//  zhttp's hooks: the handler's life in its server's thread

static void *
s_attach (void *arg)
{
    handler_args_t *args = (handler_args_t *)arg;
    handler_t *self = (handler_t *)zmalloc (sizeof (handler_t));
    assert (self);
    self->metrics = args->metrics;
    self->deadline_ms = args->deadline_ms;
    self->args = args;
    self->index = atomic_fetch_add (&args->attached, 1);
    assert (self->index < SERVERS_MAX);
    //  The endpoint was tried by cart_http_new: this cannot fail
    self->client = cart_client_new_curve (args->broker, args->curve, NULL);
    self->pending = (pending_t *)calloc (PENDING_MAX, sizeof (pending_t));
    assert (self->client && self->pending);
    for (uint32_t i = 0; i < PENDING_MAX; i++)
        self->pending[i].next_free = i + 1 < PENDING_MAX ? i + 1 : NONE;
    self->free_head = 0;
    if (args->access)
        self->access = cart_access_writer_new (args->access);
    return self;
}

//  The client's socket changes when the broker refused our CURVE key
static void *
s_socket (void *state, int *timeout_ms)
{
    handler_t *self = (handler_t *)state;
    if (self->access)
        cart_access_writer_tick (self->access);
    int64_t now = zclock_mono ();
    if (now >= self->up_at) {
        self->up_at = now + UP_CHECK_MS;
        atomic_store_explicit (&self->args->up[self->index],
                               cart_client_connected (self->client),
                               memory_order_relaxed);
        //  Reading ZMQ_EVENTS may have taken the descriptor's wake-up for
        //  replies: s_ready looks before the thread waits
        *timeout_ms = 0;
        return cart_client_handle (self->client);
    }
    int timeout = cart_client_next_timeout (self->client);
    if (timeout >= 0 && (*timeout_ms < 0 || timeout < *timeout_ms))
        *timeout_ms = timeout;
    return cart_client_handle (self->client);
}

//  Takes every reply and every request past its deadline: the socket's
//  descriptor only says that something changed
static int
s_ready (void *state)
{
    handler_t *self = (handler_t *)state;
    self->answered = 0;
    cart_result_t result;
    while (cart_client_recv (self->client, &result, 0) == 1)
        s_handle_result (self, &result);
    return self->answered;
}

//  At shutdown. A request in flight may have changed its cart already: it
//  gets its real answer, or 504 at its deadline (the outcome unknown), not
//  a 503 that would say nothing changed; so this waits for each, at most
//  the deadline. zhttp answers 503 to any left (the wait interrupted)
static void
s_detach (void **state_p)
{
    handler_t *self = (handler_t *)*state_p;
    cart_result_t result;
    while (cart_client_pending (self->client) > 0 &&
           cart_client_recv (self->client, &result, -1) == 1)
        s_handle_result (self, &result);
    cart_access_writer_destroy (&self->access);
    cart_client_destroy (&self->client);
    cart_buf_free (&self->buf);
    free (self->pending);
    free (self);
    cart_hash_thread_end ();
    *state_p = NULL;
}

//  An answer zhttp made on its own, to a request never routed (no latency:
//  its start is not known)
static void
s_error (void *state, unsigned int status)
{
    handler_t *self = (handler_t *)state;
    s_count_status (self->metrics, CART_LABEL_INVALID, (int)status);
}

static const zhttp_server_handler_t s_hooks = {s_attach,  s_socket, s_ready,
                                               s_request, s_detach, s_error};

//  --------------------------------------------------------------------------
//  The front

struct _cart_http_t {
    zhttp_server_options_t *options[SERVERS_MAX];
    zhttp_server_t *servers[SERVERS_MAX];
    int n_servers;
    handler_args_t args;
    metrics_t metrics;
    int port;
    zhttp_server_limits_t limits; //  each server's share
    cart_access_t *access;
};

void
cart_http_destroy (cart_http_t **self_p)
{
    cart_http_t *self = *self_p;
    if (!self)
        return;
    //  Each server answers and resumes the requests it holds, then stops
    for (int i = 0; i < self->n_servers; i++) {
        zhttp_server_destroy (&self->servers[i]);
        zhttp_server_options_destroy (&self->options[i]);
    }
    //  After the servers: their threads handed their last lines over
    cart_access_destroy (&self->access);
    free (self);
    *self_p = NULL;
}

//  Each server's limits. MHD counts a client address's connections per
//  server, and the kernel spreads them over the servers by a hash, so an
//  even share would refuse some of a client that stays under the whole
//  limit: each server allows the whole of it, and an address holds at most
//  a quarter (by default) of each server's table
static void
s_limits (const cart_http_config_t *config, int servers, zhttp_server_limits_t *limits)
{
    long per_client = config->per_client ? config->per_client : CART_HTTP_PER_CLIENT;
    long header =
        config->header_timeout ? config->header_timeout : CART_HTTP_HEADER_TIMEOUT;
    long idle = config->idle_timeout ? config->idle_timeout : CART_HTTP_IDLE_TIMEOUT;
    uint64_t memory =
        config->reply_memory ? config->reply_memory : CART_HTTP_REPLY_MEMORY;
    *limits = (zhttp_server_limits_t){
        .per_ip_connections = per_client > 0 ? (unsigned)per_client : 0,
        .header_timeout = header > 0 ? (unsigned)header : 0,
        .idle_timeout = idle > 0 ? (unsigned)idle : 0,
        .reply_bytes = (size_t)(memory / (uint64_t)servers)};
}

const char *
cart_http_help (void)
{
    static char text[1536];
    snprintf (
        text, sizeof (text),
        "  --per-client N   connections one client address may hold on each server\n"
        "                   thread (default %d; 0: no limit, for a proxy that is\n"
        "                   the only client)\n"
        "  --header-timeout S\n"
        "                   seconds a request (line, headers, body) may take, from\n"
        "                   the connection's start or its previous answer\n"
        "                   (default %d; 0: none); an idle keep-alive connection\n"
        "                   closes then too\n"
        "  --idle-timeout S seconds a connection may stay silent (default %d; 0: none)\n"
        "  --reply-memory SIZE\n"
        "                   memory for answers that clients have not read yet (k,\n"
        "                   m, g; default %um); past it, large answers to reads are "
        "503\n"
        "  --access-log FILE\n"
        "                   append a line per answered request to FILE, in the\n"
        "                   Common Log Format ('-': stdout; default: none)\n",
        CART_HTTP_PER_CLIENT, CART_HTTP_HEADER_TIMEOUT, CART_HTTP_IDLE_TIMEOUT,
        CART_HTTP_REPLY_MEMORY >> 20);
    return text;
}

int
cart_http_option (cart_http_config_t *config, int opt, const char *arg,
                  const char **error)
{
    long *field = opt == 'P'   ? &config->per_client
                  : opt == 'H' ? &config->header_timeout
                  : opt == 'I' ? &config->idle_timeout
                               : NULL;
    if (field) {
        long max = opt == 'P' ? 1000000 : 86400, n;
        if (cart_args_number (arg, 0, max, &n) == 0) {
            *field = n ? n : -1; //  0 in the config is the default
            return 0;
        }
        *error = cart_errorf ("--%s is a number from 0 to %ld, not '%s'",
                              opt == 'P'   ? "per-client"
                              : opt == 'H' ? "header-timeout"
                                           : "idle-timeout",
                              max, arg);
        return -1;
    }
    if (opt == 'A') {
        config->access_log = arg;
        return 0;
    }
    if (opt != 'Y')
        return 1;
    if (cart_args_bytes (arg, 1 << 20, 1ULL << 40, &config->reply_memory) == 0)
        return 0;
    *error = cart_errorf ("--reply-memory is a size from 1m to 1024g, not '%s'", arg);
    return -1;
}

//  With SO_REUSEPORT a second front on a busy port would share it rather
//  than fail: a plain bind tells first whether someone listens there
static bool
s_port_free (const char *host, int port)
{
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons ((uint16_t)port)};
    if (inet_pton (AF_INET, host, &address.sin_addr) != 1)
        return false;
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof (on));
    bool free_ =
        fd != -1 && bind (fd, (struct sockaddr *)&address, sizeof (address)) == 0;
    if (fd != -1)
        close (fd);
    return free_;
}

//  Starts one more server on the port (0: any, for the first)
static zhttp_server_t *
s_server_new (cart_http_t *self, const char *host, int port)
{
    zhttp_server_options_t *options = zhttp_server_options_new ();
    zhttp_server_options_set_port (options, port);
    zhttp_server_options_set_host (options, host);
    zhttp_server_options_set_max_body_size (options, CART_BODY_MAX);
    zhttp_server_options_set_raw_path (options, true);
    zhttp_server_options_set_reuse_port (options, true);
    zhttp_server_options_set_handler (options, &s_hooks, &self->args);
    zhttp_server_options_set_limits (options, &self->limits);
    zhttp_server_t *server = zhttp_server_new (options);
    if (!server) {
        zhttp_server_options_destroy (&options);
        return NULL;
    }
    self->options[self->n_servers] = options;
    self->servers[self->n_servers++] = server;
    return server;
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
    const char *host = config->host ? config->host : "127.0.0.1";
    int servers = config->threads > 0 ? config->threads : 2;
    if (servers > SERVERS_MAX)
        servers = SERVERS_MAX;
    self->args.broker = config->broker;
    self->args.deadline_ms =
        config->deadline_ms > 0 ? config->deadline_ms : CART_DEADLINE_MS;
    self->args.metrics = &self->metrics;
    self->args.curve = config->curve;
    self->args.servers = servers;
    if (config->access_log) {
        self->access = cart_access_new (config->access_log, error);
        if (!self->access) {
            free (self);
            return NULL;
        }
        self->args.access = self->access;
    }
    s_limits (config, servers, &self->limits);
    //  Answers of a few hundred KiB (a big cart) are made and freed at a high
    //  rate. Above a fixed threshold each is a mapping of its own, given back
    //  to the system when freed; glibc's sliding threshold would soon put them
    //  on a heap, and after a burst of slow clients keep that memory
    mallopt (M_MMAP_THRESHOLD, 128 * 1024);
    //  The first server's port (chosen by the kernel for port 0) is the others'
    self->port = config->port;
    if (self->port == 0 || s_port_free (host, self->port))
        for (int i = 0; i < servers; i++) {
            zhttp_server_t *server = s_server_new (self, host, self->port);
            if (!server)
                break;
            if (i == 0)
                self->port = zhttp_server_port (server);
        }
    if (self->n_servers < servers) {
        if (error)
            *error = cart_errorf ("cannot listen on %s:%d", host, config->port);
        cart_http_destroy (&self);
        return NULL;
    }
    return self;
}

int
cart_http_port (cart_http_t *self)
{
    return self->port;
}
