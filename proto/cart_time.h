/*  =========================================================================
    cart_time - the RFC 3339 date-time rule of an item's saleExpiration,
    shared by the HTTP front and the wire decoders, so that a date sent
    over the bus is held to the same rule as one sent over HTTP.
    =========================================================================
*/
#ifndef CART_TIME_H_INCLUDED
#define CART_TIME_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Returns true when text[0..len) is an RFC 3339 date-time (section 5.6,
//  with the calendar's month lengths and leap years, 'T' or 't', and a
//  'Z' or numeric offset).
bool cart_time_valid (const char *text, size_t len);

#endif
