/*  =========================================================================
    cart_proto - the CART/2 wire protocol (proto/PROTOCOL.md), one header
    for those who use all of it:

        cart_wire.h     the header frame: layout, commands, limits
        cart_msg.h      messages on libzmq sockets: every send and receive
        cart_body.h     request and reply bodies (msgpack)
        cart_control.h  READY, load and stats bodies (msgpack)
        cart_mpack.h    the bounded msgpack reader they share
    =========================================================================
*/
#ifndef CART_PROTO_H_INCLUDED
#define CART_PROTO_H_INCLUDED

#include "cart_body.h"
#include "cart_control.h"
#include "cart_msg.h"
#include "cart_wire.h"

#endif
