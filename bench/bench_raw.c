/*  =========================================================================
    bench_raw - the raw libzmq ROUTER/ROUTER forwarder and echo worker.

    Start-up is a handshake: the echo worker sends READY to the backend and
    the main thread takes it (with a deadline) to learn the worker's
    identity before any client starts. Shut-down is libzmq's own: once the
    clients are joined, zmq_ctx_shutdown makes the forwarder's and the
    worker's blocking zmq_poll return ETERM; they close their sockets and
    end, and zmq_ctx_term then returns.
    =========================================================================
*/
#include "bench_raw.h"

#include "cart_types.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define RAW_HWM      10000 //  as the CART sockets
#define RAW_BATCH    256   //  messages moved from one socket in a row
#define RAW_READY_MS 5000  //  longest wait for a connection or READY
#define RAW_ID_MAX   255
#define RAW_PAYLOAD  16 //  a one-frame message: send time, sequence
#define RAW_BODY     64 //  the body frame of a CART-shaped message

typedef struct {
    void *ctx;
    int frames; //  per message: 1 or BENCH_RAW_FRAMES_CART
    char frontend[256];
    char backend[256];
    void *front; //  ROUTER, for clients
    void *back;  //  ROUTER, for the worker
    void *echo;  //  the worker's DEALER
    uint8_t worker_id[RAW_ID_MAX];
    size_t worker_id_len;
} raw_t;

typedef struct {
    void *sock;
    int frames;
    uint64_t sequence;
} raw_client_t;

static const char *
s_error (const char *what)
{
    return cart_errorf ("raw path: %s: %s", what, zmq_strerror (zmq_errno ()));
}

static void
s_options (void *sock)
{
    int hwm = RAW_HWM, linger = 0;
    zmq_setsockopt (sock, ZMQ_SNDHWM, &hwm, sizeof (hwm));
    zmq_setsockopt (sock, ZMQ_RCVHWM, &hwm, sizeof (hwm));
    zmq_setsockopt (sock, ZMQ_LINGER, &linger, sizeof (linger));
}

//  Waits until sock can send (a connection is up), up to timeout_ms.
static int
s_wait_writable (void *sock, int timeout_ms)
{
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLOUT, 0};
    return zmq_poll (&item, 1, timeout_ms) == 1 ? 0 : -1;
}

//  --------------------------------------------------------------------------
//  The forwarder and the echo worker

//  Moves one whole message from `from` to `to` without waiting: first
//  `head` (an identity) when not NULL, then the frames, less the first
//  when drop_first. Returns 0, or -1 when no message was waiting.
static int
s_relay (void *from, void *to, const void *head, size_t head_len, bool drop_first)
{
    zmq_msg_t part;
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, from, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close (&part);
        return -1;
    }
    if (head)
        zmq_send (to, head, head_len, ZMQ_DONTWAIT | ZMQ_SNDMORE);
    for (bool first = true;; first = false) {
        bool more = zmq_msg_more (&part);
        if (!(first && drop_first))
            zmq_msg_send (&part, to, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0));
        zmq_msg_close (&part);
        if (!more)
            return 0;
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, from, 0) == -1) { //  the rest is there already
            zmq_msg_close (&part);
            return 0; //  ETERM
        }
    }
}

static void *
s_forwarder (void *args)
{
    raw_t *self = (raw_t *)args;
    pthread_setname_np (pthread_self (), "raw-forwarder");
    zmq_pollitem_t items[] = {{self->front, 0, ZMQ_POLLIN, 0},
                              {self->back, 0, ZMQ_POLLIN, 0}};
    while (zmq_poll (items, 2, -1) >= 0 || zmq_errno () == EINTR) {
        for (int i = 0; i < RAW_BATCH && (items[1].revents & ZMQ_POLLIN); i++)
            if (s_relay (self->back, self->front, NULL, 0, true))
                break;
        for (int i = 0; i < RAW_BATCH && (items[0].revents & ZMQ_POLLIN); i++)
            if (s_relay (self->front, self->back, self->worker_id, self->worker_id_len,
                         false))
                break;
    }
    zmq_close (self->front);
    zmq_close (self->back);
    return NULL;
}

static void *
s_echo (void *args)
{
    raw_t *self = (raw_t *)args;
    pthread_setname_np (pthread_self (), "raw-echo");
    zmq_pollitem_t item = {self->echo, 0, ZMQ_POLLIN, 0};
    while (zmq_poll (&item, 1, -1) >= 0 || zmq_errno () == EINTR)
        for (int i = 0; i < RAW_BATCH && (item.revents & ZMQ_POLLIN); i++)
            if (s_relay (self->echo, self->echo, NULL, 0, false))
                break;
    zmq_close (self->echo);
    return NULL;
}

//  --------------------------------------------------------------------------
//  Set-up

static int
s_bind (void *sock, const char *endpoint, char *bound, size_t size)
{
    if (zmq_bind (sock, endpoint))
        return -1;
    return zmq_getsockopt (sock, ZMQ_LAST_ENDPOINT, bound, &size);
}

//  Binds the forwarder's sockets and connects the echo worker, then takes
//  its READY to learn its identity.
static int
s_raw_start (raw_t *self, const char *transport, const char **error)
{
    static int instance = 0;
    char front[64], back[64];
    bool tcp = strcmp (transport, "tcp") == 0;
    snprintf (front, sizeof (front), tcp ? "tcp://127.0.0.1:*" : "inproc://raw-front-%d",
              instance);
    snprintf (back, sizeof (back), tcp ? "tcp://127.0.0.1:*" : "inproc://raw-back-%d",
              instance++);
    self->front = zmq_socket (self->ctx, ZMQ_ROUTER);
    self->back = zmq_socket (self->ctx, ZMQ_ROUTER);
    self->echo = zmq_socket (self->ctx, ZMQ_DEALER);
    assert (self->front && self->back && self->echo);
    s_options (self->front);
    s_options (self->back);
    s_options (self->echo);
    if (s_bind (self->front, front, self->frontend, sizeof (self->frontend)) ||
        s_bind (self->back, back, self->backend, sizeof (self->backend)) ||
        zmq_connect (self->echo, self->backend)) {
        *error = s_error ("cannot bind or connect");
        return -1;
    }
    zmq_pollitem_t item = {self->back, 0, ZMQ_POLLIN, 0};
    if (zmq_send (self->echo, "READY", 5, 0) != 5 ||
        zmq_poll (&item, 1, RAW_READY_MS) != 1) {
        *error = s_error ("the echo worker did not register");
        return -1;
    }
    int size = zmq_recv (self->back, self->worker_id, RAW_ID_MAX, 0);
    char ready[8];
    if (size <= 0 || size > RAW_ID_MAX || zmq_recv (self->back, ready, 8, 0) != 5) {
        *error = s_error ("the echo worker's READY is malformed");
        return -1;
    }
    self->worker_id_len = (size_t)size;
    return 0;
}

//  --------------------------------------------------------------------------
//  Clients

static void *
s_client_open (void *arg, size_t index, size_t window, const char **error)
{
    raw_t *raw = (raw_t *)arg;
    raw_client_t *self = (raw_client_t *)calloc (1, sizeof (raw_client_t));
    assert (self);
    self->sock = zmq_socket (raw->ctx, ZMQ_DEALER);
    assert (self->sock);
    s_options (self->sock);
    self->frames = raw->frames;
    int immediate = 1;
    zmq_setsockopt (self->sock, ZMQ_IMMEDIATE, &immediate, sizeof (immediate));
    if (zmq_connect (self->sock, raw->frontend) ||
        s_wait_writable (self->sock, RAW_READY_MS)) {
        *error = s_error ("a client cannot connect");
        zmq_close (self->sock);
        free (self);
        return NULL;
    }
    return self;
}

//  Sends a message laid out as a CART/2 request (a 32-byte header, a body),
//  the send time in the header. A message is queued whole or not at all.
static int
s_client_send_cart (raw_client_t *self, int64_t now)
{
    static const uint8_t body[RAW_BODY] = {0};
    int64_t header[4] = {now, (int64_t)self->sequence++, 0, 0};
    if (zmq_send (self->sock, header, sizeof (header), ZMQ_DONTWAIT | ZMQ_SNDMORE) == -1)
        return -1;
    zmq_send (self->sock, body, RAW_BODY, ZMQ_DONTWAIT);
    return 0;
}

static int
s_client_send (void *driver)
{
    raw_client_t *self = (raw_client_t *)driver;
    int64_t now = bench_now_ns ();
    if (self->frames > 1)
        return s_client_send_cart (self, now);
    int64_t payload[2] = {now, (int64_t)self->sequence++};
    return zmq_send (self->sock, payload, RAW_PAYLOAD, ZMQ_DONTWAIT) == RAW_PAYLOAD ? 0
                                                                                    : -1;
}

//  Receives one whole message without waiting; its send time is at the
//  start of frame 0. Returns 1, or 0 when none is waiting.
static int
s_client_take (raw_client_t *self, bench_done_t *done)
{
    int stamp = 0;
    int64_t payload[RAW_BODY / sizeof (int64_t)];
    int64_t sent = 0;
    int count = 0, more = 1;
    size_t more_size = sizeof (more);
    for (; more && count < 2 * BENCH_RAW_FRAMES_CART; count++) {
        //  Only the first frame may be missing: the rest come with it
        int size =
            zmq_recv (self->sock, payload, sizeof (payload), count ? 0 : ZMQ_DONTWAIT);
        if (size == -1)
            return 0;
        if (count == stamp && size >= 8)
            sent = payload[0];
        zmq_getsockopt (self->sock, ZMQ_RCVMORE, &more, &more_size);
    }
    *done = (bench_done_t){.sent_ns = sent, .ok = count == self->frames && sent > 0};
    return 1;
}

static int
s_client_recv (void *driver, int wait_ms, bench_done_t *done)
{
    raw_client_t *self = (raw_client_t *)driver;
    if (s_client_take (self, done))
        return 1;
    zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
    if (wait_ms > 0 && zmq_poll (&item, 1, wait_ms) == 1)
        return s_client_take (self, done);
    return 0;
}

static void
s_client_close (void **driver_p)
{
    raw_client_t *self = (raw_client_t *)*driver_p;
    zmq_close (self->sock);
    free (self);
    *driver_p = NULL;
}

static const bench_ops_t s_ops = {s_client_open, s_client_send, s_client_recv,
                                  s_client_close};

int
bench_raw_run (const char *transport, int frames, int io_threads,
               const bench_load_t *load, bench_result_t *result, const char **error)
{
    assert (frames == 1 || frames == BENCH_RAW_FRAMES_CART);
    raw_t self = {.ctx = zmq_ctx_new (), .frames = frames};
    assert (self.ctx);
    zmq_ctx_set (self.ctx, ZMQ_IO_THREADS, io_threads);
    int rc = s_raw_start (&self, transport, error);
    pthread_t forwarder, echo;
    if (rc == 0) {
        pthread_create (&forwarder, NULL, s_forwarder, &self);
        pthread_create (&echo, NULL, s_echo, &self);
        rc = bench_run_clients (&s_ops, &self, load, result, error);
        zmq_ctx_shutdown (self.ctx);
        pthread_join (forwarder, NULL);
        pthread_join (echo, NULL);
    } else {
        zmq_close (self.front);
        zmq_close (self.back);
        zmq_close (self.echo);
    }
    zmq_ctx_term (self.ctx);
    return rc;
}
