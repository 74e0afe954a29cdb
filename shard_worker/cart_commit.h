/*  =========================================================================
    cart_commit - a worker's committer: a thread that writes and syncs the
    logs of a batch while the worker goes on.

    Why: under --fsync always a batch's replies wait for fdatasync, which
    takes a millisecond on a good disk and hundreds on a busy one. Done in
    the worker's thread, that wait stops its heartbeats too, and a broker
    that hears nothing for 300 ms drops the worker with its requests in
    flight. With a committer, the worker seals the batch's records
    (cart_log_seal), hands them over and goes back to its socket: it
    heartbeats, and takes the next batch, whose records go to the disk in
    the next commit (group commit, pipelined). One commit is in flight at
    a time; its end is signalled on a descriptor the worker polls.

        cart_commit_t *commit = cart_commit_new ();
        cart_commit_start (commit, logs, n);           //  sealed logs, in order
        ... zmq_poll on cart_commit_fd (commit) ...
        size_t failed_at;
        if (cart_commit_finish (commit, &failed_at, &error))
            ... logs[failed_at..n) are not written ...
        cart_commit_destroy (&commit);
    =========================================================================
*/
#ifndef CART_COMMIT_H_INCLUDED
#define CART_COMMIT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "cart_log.h"

typedef struct _cart_commit_t cart_commit_t;

//  Starts the thread. Aborts when it cannot, as czmq does on no memory.
cart_commit_t *cart_commit_new (void);

//  Waits for a commit in flight, stops the thread, sets *self_p to NULL.
void cart_commit_destroy (cart_commit_t **self_p);

//  Readable (POLLIN) once the commit in flight is over.
int cart_commit_fd (cart_commit_t *self);

//  True from cart_commit_start until cart_commit_finish.
bool cart_commit_busy (cart_commit_t *self);

//  Writes (cart_log_write_sealed) logs[0..n), each sealed by the caller,
//  in order, stopping at the first failure. logs must stay valid until
//  cart_commit_finish. Nothing may be in flight.
void cart_commit_start (cart_commit_t *self, cart_log_t **logs, size_t n);

//  Waits for the commit in flight to end (at once once cart_commit_fd is
//  readable). Returns 0, or -1 with *failed_at set to the index of the
//  log that failed (it and those after it are not written) and *error.
int cart_commit_finish (cart_commit_t *self, size_t *failed_at, const char **error);

#endif
