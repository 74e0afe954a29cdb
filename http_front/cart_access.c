/*  =========================================================================
    cart_access - the HTTP front's access log.

    The writer thread is an actor with a PULL socket bound on an inproc
    endpoint of its own; each server thread's writer has a PUSH socket
    connected to it and sends a buffer as one frame, without waiting
    (ZMQ_DONTWAIT): a full queue drops that buffer's lines and counts them.
    The frame is a copy of a few KiB once a second at most per thread,
    cheaper than handing a pointer's ownership across. At $TERM the actor
    reads what is queued (the server threads have stopped by then), writes
    it and returns.
    =========================================================================
*/
#include "cart_access.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "cart_actor.h"

struct _cart_access_t {
    zactor_t *actor;
    char endpoint[64];
    int fd;
    bool own_fd; //  not stdout
    _Atomic uint64_t dropped;
    cart_warn_t warn; //  the writer thread's, for failed writes
};

struct _cart_access_writer_t {
    cart_access_t *log;
    zsock_t *push;
    cart_buf_t buf;
    size_t lines;     //  in buf
    int64_t flush_at; //  when buf is handed over, at the latest
    time_t second;    //  of the date cached below
    char date[32];    //  "02/Dec/2026:07:45:35 +0000"
};

//  --------------------------------------------------------------------------
//  Lines

//  Appends text (len bytes, at most CART_ACCESS_FIELD_MAX of them) with
//  what could end the field or the line escaped.
static void
s_append_field (cart_buf_t *buf, const char *text, size_t len)
{
    bool cut = len > CART_ACCESS_FIELD_MAX;
    if (cut)
        len = CART_ACCESS_FIELD_MAX;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c <= 0x7E && c != '"' && c != '\\')
            continue;
        cart_buf_append (buf, text + start, i - start);
        cart_buf_printf (buf, "\\x%02X", c);
        start = i + 1;
    }
    cart_buf_append (buf, text + start, len - start);
    if (cut)
        cart_buf_append (buf, "...", 3);
}

static void
s_date (time_t seconds, char *date, size_t size)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r (&seconds, &tm);
    snprintf (date, size, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday,
              months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
s_format (cart_buf_t *buf, const cart_access_entry_t *entry, const char *date)
{
    const char *host = entry->host && entry->host[0] ? entry->host : "-";
    const char *version = entry->version ? entry->version : "HTTP/1.1";
    cart_buf_printf (buf, "%s - - [%s] \"", host, date);
    s_append_field (buf, entry->method, strlen (entry->method));
    cart_buf_append (buf, " ", 1);
    s_append_field (buf, entry->target, strlen (entry->target));
    cart_buf_append (buf, " ", 1);
    s_append_field (buf, version, strlen (version));
    if (entry->bytes)
        cart_buf_printf (buf, "\" %d %zu\n", entry->status, entry->bytes);
    else
        cart_buf_printf (buf, "\" %d -\n", entry->status);
}

void
cart_access_format (cart_buf_t *buf, const cart_access_entry_t *entry)
{
    char date[32];
    s_date (entry->time, date, sizeof (date));
    s_format (buf, entry, date);
}

//  --------------------------------------------------------------------------
//  The writer thread

static size_t
s_count_lines (const char *data, size_t size)
{
    size_t lines = 0;
    for (const char *p = data; (p = memchr (p, '\n', size - (size_t)(p - data))); p++)
        lines++;
    return lines;
}

//  Writes a buffer whole; a failed write drops what is left of it.
static void
s_write (cart_access_t *self, const char *data, size_t size)
{
    while (size) {
        ssize_t n = write (self->fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            size_t lines = s_count_lines (data, size);
            atomic_fetch_add_explicit (&self->dropped, lines, memory_order_relaxed);
            cart_warn (&self->warn, "access log: a write failed (%s); %zu line(s) lost",
                       n < 0 ? strerror (errno) : "nothing written", lines);
            return;
        }
        data += n;
        size -= (size_t)n;
    }
}

//  Writes every buffer queued now. Returns how many.
static size_t
s_drain (cart_access_t *self, void *pull)
{
    size_t taken = 0;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    while (zmq_msg_recv (&msg, pull, ZMQ_DONTWAIT) >= 0) {
        s_write (self, (const char *)zmq_msg_data (&msg), zmq_msg_size (&msg));
        taken++;
    }
    zmq_msg_close (&msg);
    return taken;
}

static void
s_writer_actor (zsock_t *pipe, void *args)
{
    cart_access_t *self = (cart_access_t *)args;
    zsock_t *pull = zsock_new (ZMQ_PULL);
    if (pull) {
        zsock_set_rcvhwm (pull, CART_ACCESS_QUEUE);
        if (zsock_bind (pull, "%s", self->endpoint) != 0)
            zsock_destroy (&pull);
    }
    if (cart_actor_ready (pipe, pull ? NULL : "the access log cannot bind its socket"))
        return;
    zpoller_t *poller = zpoller_new (pipe, pull, NULL);
    assert (poller);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == pull)
            s_drain (self, zsock_resolve (pull));
        else if (which == pipe) {
            if (cart_actor_recv (pipe, "access log", NULL) == CART_ACTOR_TERM)
                break;
        } else if (zpoller_terminated (poller))
            break;
    }
    s_drain (self, zsock_resolve (pull));
    cart_warn_flush (&self->warn, "failed access log writes");
    zpoller_destroy (&poller);
    zsock_destroy (&pull);
}

//  --------------------------------------------------------------------------
//  The log

cart_access_t *
cart_access_new (const char *path, const char **error)
{
    assert (path);
    bool out = strcmp (path, "-") == 0;
    int fd = out ? STDOUT_FILENO
                 : open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (error)
            *error = cart_errorf ("cannot open the access log '%s': %s", path,
                                  strerror (errno));
        return NULL;
    }
    cart_access_t *self = (cart_access_t *)zmalloc (sizeof (cart_access_t));
    assert (self);
    self->fd = fd;
    self->own_fd = !out;
    snprintf (self->endpoint, sizeof (self->endpoint), "inproc://cart-access-%p",
              (void *)self);
    self->actor = cart_actor_start (s_writer_actor, self, error);
    if (!self->actor) {
        cart_access_destroy (&self);
        return NULL;
    }
    return self;
}

void
cart_access_destroy (cart_access_t **self_p)
{
    cart_access_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    if (self->own_fd)
        close (self->fd);
    free (self);
    *self_p = NULL;
}

uint64_t
cart_access_dropped (cart_access_t *self)
{
    return atomic_load_explicit (&self->dropped, memory_order_relaxed);
}

//  --------------------------------------------------------------------------
//  A server thread's writer

cart_access_writer_t *
cart_access_writer_new (cart_access_t *log)
{
    assert (log);
    cart_access_writer_t *self =
        (cart_access_writer_t *)zmalloc (sizeof (cart_access_writer_t));
    assert (self);
    self->log = log;
    self->second = -1;
    self->push = zsock_new (ZMQ_PUSH);
    assert (self->push);
    zsock_set_sndhwm (self->push, CART_ACCESS_QUEUE);
    //  What was sent before the close is read by the writer at its $TERM
    zsock_set_linger (self->push, 1000);
    int rc = zsock_connect (self->push, "%s", log->endpoint);
    assert (rc == 0); //  bound by cart_access_new
    return self;
}

//  Sends the buffer to the writer thread, or drops its lines.
static void
s_hand_over (cart_access_writer_t *self)
{
    if (self->buf.len == 0)
        return;
    if (zmq_send (zsock_resolve (self->push), self->buf.data, self->buf.len,
                  ZMQ_DONTWAIT) < 0)
        atomic_fetch_add_explicit (&self->log->dropped, self->lines,
                                   memory_order_relaxed);
    self->buf.len = 0;
    self->lines = 0;
}

void
cart_access_writer_destroy (cart_access_writer_t **self_p)
{
    cart_access_writer_t *self = *self_p;
    if (!self)
        return;
    s_hand_over (self);
    zsock_destroy (&self->push);
    cart_buf_free (&self->buf);
    free (self);
    *self_p = NULL;
}

void
cart_access_writer_add (cart_access_writer_t *self, const cart_access_entry_t *entry)
{
    if (entry->time != self->second) {
        s_date (entry->time, self->date, sizeof (self->date));
        self->second = entry->time;
    }
    if (self->lines == 0)
        self->flush_at = zclock_mono () + CART_ACCESS_FLUSH_MS;
    s_format (&self->buf, entry, self->date);
    self->lines++;
    if (self->buf.len >= CART_ACCESS_BATCH)
        s_hand_over (self);
}

void
cart_access_writer_tick (cart_access_writer_t *self)
{
    if (self->lines && zclock_mono () >= self->flush_at)
        s_hand_over (self);
}
