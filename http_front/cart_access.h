/*  =========================================================================
    cart_access - the HTTP front's access log: one line per answered
    request, in the Common Log Format,

        127.0.0.1 - - [02/Dec/2026:07:45:35 +0000] "GET /items/c1 HTTP/1.1" 200 123

    (the time is the request's arrival, in UTC; the size is the body's
    bytes, "-" for none).

        cart_access_t *log = cart_access_new ("access.log", &error);  //  "-": stdout
        //  in each server thread
        cart_access_writer_t *writer = cart_access_writer_new (log);
        cart_access_writer_add (writer, &entry);     //  per answer: a buffer
        cart_access_writer_tick (writer);            //  before each wait
        cart_access_writer_destroy (&writer);        //  hands over what is left
        //  after every writer is gone
        cart_access_destroy (&log);                  //  writes it all, closes

    A server thread never writes to the file: it appends lines to a buffer
    of its own and hands the buffer to the log's writer thread (an actor,
    over inproc) once it holds CART_ACCESS_BATCH bytes or a second after its
    first line, whichever comes first. Only the writer thread writes, a
    whole buffer of whole lines at a time, so a slow disk delays the log,
    not the answers, and no line is ever cut by another. What the writer
    has not taken is bounded (CART_ACCESS_QUEUE buffers per server thread);
    past it, and when a write fails, lines are dropped and counted
    (cart_access_dropped, in /metrics). Lines of different threads are in
    the file in the order their buffers were handed over, not strictly in
    time order.
    =========================================================================
*/
#ifndef CART_ACCESS_H_INCLUDED
#define CART_ACCESS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cart_render.h"

#define CART_ACCESS_BATCH     (32u << 10) //  bytes a thread buffers before handing over
#define CART_ACCESS_FLUSH_MS  1000        //  ... or this long after its first line
#define CART_ACCESS_QUEUE     64          //  buffers waiting for the writer, per thread
#define CART_ACCESS_FIELD_MAX 4096        //  bytes of a logged method or target

typedef struct _cart_access_t cart_access_t;
typedef struct _cart_access_writer_t cart_access_writer_t;

//  One answered request.
typedef struct {
    const char *host;    //  the client's address; NULL: "-"
    const char *method;  //  as received (sanitized when written)
    const char *target;  //  the request's path, as received
    const char *version; //  "HTTP/1.1"; NULL: "HTTP/1.1"
    time_t time;         //  when the request arrived (wall clock)
    int status;
    size_t bytes; //  of the answer's body
} cart_access_entry_t;

//  Opens (appends to, creating it 0644) the log at path, "-" for stdout,
//  and starts its writer thread. Returns NULL with *error set when the
//  file cannot be opened.
cart_access_t *cart_access_new (const char *path, const char **error);

//  Writes what the writers handed over, stops the writer thread and closes
//  the file (not stdout). Call after every writer is destroyed. Sets
//  *self_p to NULL.
void cart_access_destroy (cart_access_t **self_p);

//  Lines dropped so far: the writer thread's queue was full, or a write
//  failed. Any thread.
uint64_t cart_access_dropped (cart_access_t *self);

//  A server thread's buffer for the log; in that thread only.
cart_access_writer_t *cart_access_writer_new (cart_access_t *log);

//  Hands over what it holds and destroys it; sets *self_p to NULL.
void cart_access_writer_destroy (cart_access_writer_t **self_p);

//  Appends the line of an answered request.
void cart_access_writer_add (cart_access_writer_t *self,
                             const cart_access_entry_t *entry);

//  Hands the buffer over when it is due (CART_ACCESS_FLUSH_MS after its
//  first line). Cheap: call it before every wait.
void cart_access_writer_tick (cart_access_writer_t *self);

//  Appends entry's line, newline included, to buf: what a writer buffers.
//  The method, target and version are written with every byte below 0x20
//  or above 0x7E, '"' and '\' as \xHH, each cut at CART_ACCESS_FIELD_MAX
//  bytes (then ending in "..."), so that a line is one line and its
//  quoted request one field.
void cart_access_format (cart_buf_t *buf, const cart_access_entry_t *entry);

#endif
