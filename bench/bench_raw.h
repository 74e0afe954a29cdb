/*  =========================================================================
    bench_raw - the ceiling: what libzmq itself does on the broker's path,
    with none of CART/2's code.

        client DEALER ──► ROUTER ┌───────────┐ ROUTER ◄── echo DEALER
        client DEALER ──►        │ forwarder │
                                 └───────────┘

    Each client sends one 16-byte frame (its send time and a sequence
    number), or, to tell libzmq's cost per frame from CART/2's own work,
    a message laid out as a CART/2 request: two frames, a 32-byte header
    (with the send time in it) and a 64-byte body, which the worker echoes
    whole as the reply. The forwarder, a plain zmq_msg_recv /
   zmq_msg_send loop in one thread, moves it to the echo worker with the client's identity
   in front, and the worker's echo back to the client. The same hops, the same sockets and
   the same thread count (one broker thread, one worker thread) as the CART path with one
   shard, so the CART path's requests per second as a share of this one is the share of
   the ceiling that CART/2's own work leaves. The raw path runs in its own libzmq context
    with as many I/O threads as czmq's (bench_raw_run's io_threads).
    =========================================================================
*/
#ifndef BENCH_RAW_H_INCLUDED
#define BENCH_RAW_H_INCLUDED

#include "bench_run.h"

#define BENCH_RAW_FRAMES_CART 2 //  frames of a message laid out as CART/2's

//  Runs the raw path over transport ("inproc" or "tcp", on 127.0.0.1) with
//  load, messages of `frames` frames (1 or BENCH_RAW_FRAMES_CART) and a
//  libzmq context of io_threads I/O threads, and fills *result. Returns 0,
//  or -1 with *error set (the caller frees).
int bench_raw_run (const char *transport, int frames, int io_threads,
                   const bench_load_t *load, bench_result_t *result, const char **error);

#endif
