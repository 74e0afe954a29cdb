/*  =========================================================================
    cart_slots - requests in flight (see cart_slots.h).
    =========================================================================
*/
#include "cart_slots.h"

#include <assert.h>
#include <stdlib.h>

#define SLOT_BITS 16
_Static_assert(CART_SLOTS_MAX == 1 << SLOT_BITS, "a slot index fits its bits");

typedef struct {
    uint64_t corr; //  0 when the slot is free
    int64_t deadline;
    uint32_t prev; //  deadline list, or free list (next only)
    uint32_t next;
} slot_t;

struct _cart_slots_t {
    slot_t *slots;
    uint32_t capacity;
    uint32_t free_head;
    uint32_t head; //  earliest deadline
    uint32_t tail;
    size_t pending;
    uint64_t sequence;
};

cart_slots_t *
cart_slots_new (uint32_t capacity, uint64_t first_sequence)
{
    assert (capacity >= 1 && capacity <= CART_SLOTS_MAX);
    cart_slots_t *self = (cart_slots_t *)calloc (1, sizeof (cart_slots_t));
    assert (self);
    self->slots = (slot_t *)calloc (capacity, sizeof (slot_t));
    assert (self->slots);
    self->capacity = capacity;
    for (uint32_t i = 0; i < capacity; i++)
        self->slots[i].next = i + 1 < capacity ? i + 1 : CART_SLOT_NONE;
    self->free_head = 0;
    self->head = self->tail = CART_SLOT_NONE;
    //  Sequences wrap within 48 bits, so that a corr never loses them
    self->sequence = first_sequence & ((1ULL << (64 - SLOT_BITS)) - 1);
    return self;
}

void
cart_slots_destroy (cart_slots_t **self_p)
{
    cart_slots_t *self = *self_p;
    if (!self)
        return;
    free (self->slots);
    free (self);
    *self_p = NULL;
}

//  Puts a taken slot on the deadline list, keeping it ordered.
static void
s_list_insert (cart_slots_t *self, uint32_t index)
{
    slot_t *slot = &self->slots[index];
    uint32_t after = self->tail;
    while (after != CART_SLOT_NONE && self->slots[after].deadline > slot->deadline)
        after = self->slots[after].prev;
    slot->prev = after;
    slot->next = after == CART_SLOT_NONE ? self->head : self->slots[after].next;
    if (slot->next == CART_SLOT_NONE)
        self->tail = index;
    else
        self->slots[slot->next].prev = index;
    if (after == CART_SLOT_NONE)
        self->head = index;
    else
        self->slots[after].next = index;
}

static void
s_list_remove (cart_slots_t *self, uint32_t index)
{
    slot_t *slot = &self->slots[index];
    if (slot->prev == CART_SLOT_NONE)
        self->head = slot->next;
    else
        self->slots[slot->prev].next = slot->next;
    if (slot->next == CART_SLOT_NONE)
        self->tail = slot->prev;
    else
        self->slots[slot->next].prev = slot->prev;
}

uint32_t
cart_slots_take (cart_slots_t *self, int64_t deadline, uint64_t *corr)
{
    uint32_t index = self->free_head;
    if (index == CART_SLOT_NONE)
        return CART_SLOT_NONE;
    slot_t *slot = &self->slots[index];
    self->free_head = slot->next;
    self->sequence = (self->sequence + 1) & ((1ULL << (64 - SLOT_BITS)) - 1);
    if (self->sequence == 0)
        self->sequence = 1; //  so that no corr is 0, the mark of a free slot
    slot->corr = (self->sequence << SLOT_BITS) | index;
    slot->deadline = deadline;
    s_list_insert (self, index);
    self->pending++;
    *corr = slot->corr;
    return index;
}

uint32_t
cart_slots_find (cart_slots_t *self, uint64_t corr)
{
    uint32_t index = (uint32_t)(corr & (CART_SLOTS_MAX - 1));
    if (corr == 0 || index >= self->capacity || self->slots[index].corr != corr)
        return CART_SLOT_NONE;
    return index;
}

uint64_t
cart_slots_corr (cart_slots_t *self, uint32_t slot)
{
    assert (slot < self->capacity);
    return self->slots[slot].corr;
}

void
cart_slots_free (cart_slots_t *self, uint32_t index)
{
    assert (index < self->capacity && self->slots[index].corr);
    s_list_remove (self, index);
    self->slots[index].corr = 0;
    self->slots[index].next = self->free_head;
    self->free_head = index;
    self->pending--;
}

uint32_t
cart_slots_expired (cart_slots_t *self, int64_t now)
{
    if (self->head == CART_SLOT_NONE || self->slots[self->head].deadline > now)
        return CART_SLOT_NONE;
    return self->head;
}

int64_t
cart_slots_next_timeout (cart_slots_t *self, int64_t now)
{
    if (self->head == CART_SLOT_NONE)
        return -1;
    int64_t wait = self->slots[self->head].deadline - now;
    return wait > 0 ? wait : 0;
}

size_t
cart_slots_pending (cart_slots_t *self)
{
    return self->pending;
}
