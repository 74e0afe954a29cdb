/*  =========================================================================
    cart_actor - what every actor of the service (broker, worker, HTTP
    handler) does the same way: start and report, read its pipe, stop.

    An actor looks at its pipe at least every CART_PIPE_MS, whatever its
    heartbeat, so that $TERM stops it within that time; it does not put
    the pipe in its hot poll, where every socket costs system calls on
    every wake-up. Any command it does not know is logged and ignored.

        //  in the actor
        cart_actor_ready (pipe, self ? NULL : error);   //  after set-up
        ...
        if (cart_actor_due (&pipe_at) && (zsock_events (pipe) & ZMQ_POLLIN))
            switch (cart_actor_recv (pipe, "broker", NULL)) ...

        //  in the handle
        zactor_t *actor = cart_actor_start (my_actor, &config, &error);
    =========================================================================
*/
#ifndef CART_ACTOR_H_INCLUDED
#define CART_ACTOR_H_INCLUDED

#include <czmq.h>

#define CART_PIPE_MS 50 //  how often an actor looks at its pipe, at most

#define CART_ACTOR_TERM    -1 //  $TERM, or the pipe is gone: stop now
#define CART_ACTOR_UNKNOWN -2 //  logged and ignored

//  Tells the caller of cart_actor_start that set-up is over: error NULL
//  means it worked, else the actor then waits for $TERM and returns.
//  Returns 0 when the actor should run, -1 when it should return.
int cart_actor_ready (zsock_t *pipe, const char *error);

//  Starts an actor that calls cart_actor_ready. Returns it, or NULL with
//  *error set (cart_types.h) when its set-up failed.
zactor_t *cart_actor_start (zactor_fn *actor, void *args, const char **error);

//  True when the pipe is due for a look (every CART_PIPE_MS); then *at
//  moves on.
bool cart_actor_due (int64_t *at);

//  Reads one command from the pipe. Returns CART_ACTOR_TERM, the index of
//  the command in `known` (a NULL-terminated list, or NULL for none), or
//  CART_ACTOR_UNKNOWN after logging it as `who`'s.
int cart_actor_recv (zsock_t *pipe, const char *who, const char *const *known);

//  Stops several actors together: every one is sent $TERM before any is
//  waited for. Sets each pointer NULL.
void cart_actors_destroy (zactor_t **actors, size_t count);

//  A kind of warning that a stranger could cause at any rate: logged at
//  most once per CART_WARN_MS, saying how many like it were held back.
#define CART_WARN_MS 1000
typedef struct {
    int64_t at; //  when one was last logged; 0: never
    uint64_t suppressed;
} cart_warn_t;

void cart_warn (cart_warn_t *warn, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Once the window is over, says how many of a kind were held back (what
//  names the kind), so that none goes unmentioned when no later one
//  comes. Call it on a timer.
void cart_warn_flush (cart_warn_t *warn, const char *what);

#endif
