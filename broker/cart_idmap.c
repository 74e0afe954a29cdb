/*  =========================================================================
    cart_idmap - identity index (see cart_idmap.h).
    =========================================================================
*/
#include "cart_idmap.h"

#include <assert.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

struct _cart_idmap_t {
    const uint8_t *records;
    size_t stride;
    uint32_t *table; //  record index + 1, 0 when empty
    uint32_t mask;
    uint64_t seed;
};

cart_idmap_t *
cart_idmap_new (const void *records, size_t stride, uint32_t capacity)
{
    cart_idmap_t *self = (cart_idmap_t *)calloc (1, sizeof (cart_idmap_t));
    assert (self);
    uint32_t size = 16;
    while (size < 2 * capacity)
        size *= 2;
    self->table = (uint32_t *)calloc (size, sizeof (uint32_t));
    assert (self->table);
    self->mask = size - 1;
    self->records = (const uint8_t *)records;
    self->stride = stride;
    if (RAND_bytes ((unsigned char *)&self->seed, sizeof (self->seed)) != 1)
        self->seed = (uint64_t)(uintptr_t)self ^ 0x9E3779B97F4A7C15ULL;
    return self;
}

void
cart_idmap_destroy (cart_idmap_t **self_p)
{
    cart_idmap_t *self = *self_p;
    if (!self)
        return;
    free (self->table);
    free (self);
    *self_p = NULL;
}

static const cart_id_t *
s_id (cart_idmap_t *self, uint32_t index)
{
    return (const cart_id_t *)(self->records + (size_t)index * self->stride);
}

//  A seeded multiply-xorshift hash of up to 255 bytes
static uint32_t
s_hash (cart_idmap_t *self, const uint8_t *bytes, size_t len)
{
    uint64_t h = self->seed ^ (len * 0xFF51AFD7ED558CCDULL);
    for (size_t i = 0; i < len; i++) {
        h ^= bytes[i];
        h *= 0x100000001B3ULL;
        h ^= h >> 29;
    }
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return (uint32_t)h;
}

uint32_t
cart_idmap_find (cart_idmap_t *self, const void *id, size_t len)
{
    for (uint32_t at = s_hash (self, (const uint8_t *)id, len) & self->mask;;
         at = (at + 1) & self->mask) {
        uint32_t entry = self->table[at];
        if (entry == 0)
            return CART_IDMAP_NONE;
        const cart_id_t *record = s_id (self, entry - 1);
        if (record->len == len && memcmp (record->bytes, id, len) == 0)
            return entry - 1;
    }
}

void
cart_idmap_insert (cart_idmap_t *self, uint32_t index)
{
    const cart_id_t *record = s_id (self, index);
    uint32_t at = s_hash (self, record->bytes, record->len) & self->mask;
    while (self->table[at])
        at = (at + 1) & self->mask;
    self->table[at] = index + 1;
}

void
cart_idmap_remove (cart_idmap_t *self, uint32_t index)
{
    const cart_id_t *record = s_id (self, index);
    uint32_t at = s_hash (self, record->bytes, record->len) & self->mask;
    while (self->table[at] != index + 1) {
        assert (self->table[at]);
        at = (at + 1) & self->mask;
    }
    //  Backward shift: move later entries of the chain into the hole
    uint32_t hole = at;
    for (uint32_t next = (hole + 1) & self->mask; self->table[next];
         next = (next + 1) & self->mask) {
        const cart_id_t *moved = s_id (self, self->table[next] - 1);
        uint32_t home = s_hash (self, moved->bytes, moved->len) & self->mask;
        //  The entry may fill the hole if its home is not in (hole, next]
        if (((next - home) & self->mask) >= ((next - hole) & self->mask)) {
            self->table[hole] = self->table[next];
            hole = next;
        }
    }
    self->table[hole] = 0;
}

uint64_t
cart_id_hash (const void *bytes, size_t len)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= ((const uint8_t *)bytes)[i];
        h *= 0x100000001B3ULL;
    }
    return h ? h : 1; //  0 means "none" to its users
}

void
cart_id_set (cart_id_t *id, const void *bytes, size_t len)
{
    assert (len >= 1 && len <= CART_IDENTITY_MAX);
    id->len = (uint8_t)len;
    memcpy (id->bytes, bytes, len);
}
