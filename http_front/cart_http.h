/*  =========================================================================
    cart_http - the HTTP front end: N servers of czmq's zhttp (patched,
    see deps/patches/) sharing one port (SO_REUSEPORT), each handling its
    requests in its own thread with its own cart_client to the broker,
    keeping many requests in flight.

        cart_http_config_t config = {.port = 8080,
                                     .broker = "tcp://127.0.0.1:5555"};
        const char *error = NULL;
        cart_http_t *http = cart_http_new (&config, &error);
        ...
        cart_http_destroy (&http);

    A request is parsed, mapped (cart_route), sent on the bus, and when the
    reply or the deadline comes, rendered (cart_render) and answered, all
    in the one libmicrohttpd thread that accepted its connection; the only
    thread hand-offs are the bus's.
    =========================================================================
*/
#ifndef CART_HTTP_H_INCLUDED
#define CART_HTTP_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "cart_curve.h"

//  The defaults of the limits against slow and hostile clients
#define CART_HTTP_PER_CLIENT     1024        //  connections per client address and thread
#define CART_HTTP_HEADER_TIMEOUT 10          //  seconds for a whole request
#define CART_HTTP_IDLE_TIMEOUT   30          //  seconds of silence on a connection
#define CART_HTTP_REPLY_MEMORY   (32u << 20) //  bytes of answers not yet read

typedef struct {
    const char *host;   //  IPv4 address to listen on; NULL: 127.0.0.1
    int port;           //  0: a free port (see cart_http_port)
    const char *broker; //  the broker's frontend endpoint
    int threads;        //  servers (threads) on the port; 0: 2
    int deadline_ms;    //  per request; 0: CART_DEADLINE_MS
    bool verbose;
    const cart_curve_t *curve; //  CURVE keys to the broker; NULL: a plain bus
    //  Limits against slow and hostile clients, given by cart_http_option;
    //  0 in each: its default (above), -1: none
    long per_client;
    long header_timeout;
    long idle_timeout;
    uint64_t reply_memory;  //  0: the default
    const char *access_log; //  a file to append a line per answer to; "-":
                            //  stdout; NULL: none (cart_access.h)
} cart_http_config_t;

//  The limits and the access log as command-line options, shared by the
//  programs that serve HTTP: entries for getopt_long's table, its short
//  letters, and --help's lines.
#define CART_HTTP_OPTIONS                                                                \
    {"per-client", required_argument, NULL, 'P'},                                        \
        {"header-timeout", required_argument, NULL, 'H'},                                \
        {"idle-timeout", required_argument, NULL, 'I'},                                  \
        {"reply-memory", required_argument, NULL, 'Y'},                                  \
    {                                                                                    \
        "access-log", required_argument, NULL, 'A'                                       \
    }
#define CART_HTTP_SHORT "P:H:I:Y:A:"
const char *cart_http_help (void);

//  Applies option opt (its argument arg) to config. Returns 0, 1 when opt
//  is not one of them, or -1 with *error set on a bad value.
int cart_http_option (cart_http_config_t *config, int opt, const char *arg,
                      const char **error);

typedef struct _cart_http_t cart_http_t;

//  Start the HTTP front. Returns NULL with *error set (caller frees) when
//  the port cannot be bound or the broker endpoint is not valid.
cart_http_t *cart_http_new (const cart_http_config_t *config, const char **error);

//  Stop it and destroy it; sets *self_p to NULL.
void cart_http_destroy (cart_http_t **self_p);

//  The TCP port it listens on.
int cart_http_port (cart_http_t *self);

#endif
