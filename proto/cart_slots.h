/*  =========================================================================
    cart_slots - a fixed table of requests in flight, each with a
    correlation id and a deadline: what the client library keeps for its
    own requests and the broker for those it has routed to workers.

    A correlation id is (sequence << 16 | slot), so that a reply finds its
    slot in one step and a late reply for a slot since reused does not
    match its new id. The slots in flight are also on a list ordered by
    deadline: a request is put at the tail, walking back only past requests
    with a later deadline, which with one timeout per caller (the usual
    case) is no walk at all; the head is the next to expire. Nothing is
    allocated after cart_slots_new.

        cart_slots_t *slots = cart_slots_new (4096, 1);
        uint64_t corr;
        uint32_t slot = cart_slots_take (slots, zclock_mono () + 2000, &corr);
        ...  send the request with corr; keep what it needs in your own
        ...  array at index slot
        slot = cart_slots_find (slots, reply_corr);   //  CART_SLOT_NONE: late
        cart_slots_free (slots, slot);
    =========================================================================
*/
#ifndef CART_SLOTS_H_INCLUDED
#define CART_SLOTS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define CART_SLOT_NONE UINT32_MAX
#define CART_SLOTS_MAX 65536 //  a slot index has 16 bits

typedef struct _cart_slots_t cart_slots_t;

//  A table of capacity slots (1..CART_SLOTS_MAX). Sequences start at
//  first_sequence (give a random one where ids must be hard to guess).
cart_slots_t *cart_slots_new (uint32_t capacity, uint64_t first_sequence);

//  Destroy a table; sets *self_p to NULL.
void cart_slots_destroy (cart_slots_t **self_p);

//  Take a free slot with a deadline (a zclock_mono () time); *corr gets
//  its correlation id, never 0. Returns the slot, or CART_SLOT_NONE when
//  every slot is in flight.
uint32_t cart_slots_take (cart_slots_t *self, int64_t deadline, uint64_t *corr);

//  The slot in flight with this correlation id, or CART_SLOT_NONE.
uint32_t cart_slots_find (cart_slots_t *self, uint64_t corr);

//  The correlation id of a slot in flight.
uint64_t cart_slots_corr (cart_slots_t *self, uint32_t slot);

//  End a slot's request: the slot is free again.
void cart_slots_free (cart_slots_t *self, uint32_t slot);

//  The slot with the earliest deadline if that deadline is at or before
//  now, else CART_SLOT_NONE. The slot stays in flight until freed.
uint32_t cart_slots_expired (cart_slots_t *self, int64_t now);

//  Milliseconds from now to the earliest deadline (0 when passed), or -1
//  when nothing is in flight.
int64_t cart_slots_next_timeout (cart_slots_t *self, int64_t now);

//  Requests in flight.
size_t cart_slots_pending (cart_slots_t *self);

#endif
