/*  =========================================================================
    cart_partition - the carts that one shard owns.

    Layout. The table is an array of 16-byte slots {key, cart}, open
    addressing with linear probing and backward-shift deletion: removing a
    cart moves the rest of its probe run back, so there are no tombstones
    and a probe never grows longer than the live carts make it. A slot keeps
    the full 63-bit key, so a probe compares keys inside the array it is
    already reading and touches a cart only on a key match; the cart then
    confirms the customerId, which is how two customers whose keys collide
    keep two carts (they sit in one probe run). Each cart is one malloc'd
    block: an 11-byte header, the customerId, then the items packed in the
    order they were first added, each a 13-byte header (id fingerprint, id
    and expiry lengths, flags, 3-byte count, 6-byte price) followed by the
    id and expiry bytes. A cart of ten 12-byte barcodes is thus ~300 bytes
    in one allocation, where a hash per cart in Redis pays a key object, a
    dict entry and a listpack with per-field encodings: the compact block
    is how we stay at or under Redis's bytes per item. The price is that
    an item lookup is a linear scan, bounded by CART_ITEMS_MAX records; it
    skips records by their length bytes and compares a 1-byte fingerprint
    of the id before any id bytes, so it reads ~1/256 of the ids it passes.

    Load factor. The table doubles once it passes 3/4 full and halves when
    under 1/8 full (never below TABLE_MIN slots), so it is 3/8 to 3/4 full
    once grown. At 3/4, linear probing averages ~2.5 probes for a hit and
    ~8.5 for a miss (Knuth), with four slots per cache line: one or two
    lines. Just after a doubling the table costs 16 / (3/8) = 43 bytes per
    cart, ~4 bytes per item of a ten-item cart; a lower bound would buy
    little speed for that memory, a higher one lengthens misses quickly.

    Resizing: the invariant. A resize has an old table and a new one, and
    while carts move between them (the seeking and moving phases below)
    every cart is in exactly one of the two, each table on its own is a
    valid linear-probing table (every cart sits at the end of an unbroken
    run of full slots that begins at its home slot), the old table takes
    no new carts, and old_carts counts the carts left in it. So a lookup
    probes the old table and then the new, an insert goes to the new, and
    a removal backward-shifts within the table that held the cart, which
    keeps that table valid as it always has. Moving keeps the old table
    valid without any shift because it walks it backwards from a slot
    `start` that was empty when moving began, visiting start-1, start-2,
    ... and round to start+1: `start` and every slot already visited are
    empty and stay so (nothing is inserted there now, and a backward shift
    only fills a slot that a cart has just left), so the slot under the
    cursor is always the last of its run, no cart's probe path passes
    through it, and taking its cart out strands none. Counts cover both
    tables; a cart's block never moves in a resize, only its slot, so
    views and stored items stay valid across steps.

    Resizing: the steps. The next resize begins (s_plan) only when none is
    in progress, and runs as bounded steps, one at the start of every
    operation that passes its argument checks, more from an idle worker
    through cart_partition_rehash_step. Clearing: a step zeroes the new
    table up to the end of one 4 KiB page (a fresh table's first touch is
    a page fault, ~10 us on our VM, so a step takes at most one); carts
    still go to the old table. Seeking: the old table is closed to new
    carts and a step looks for an empty slot to start from. Moving: a step
    moves at most CART_REHASH_BUCKETS carts and visits at most ten times
    as many old slots, and the phase ends as soon as old_carts is 0. The
    new table then becomes the table; an old table of MAP_MIN bytes or
    more was mapped from the system and later steps unmap it 256 KiB at a
    time (on our VM munmap costs ~3 us a page below 33 pages, where Linux
    flushes the TLB page by page, and ~0.3 us a page above), a smaller one
    is freed at once. Neither table can fill, as every operation that adds
    a cart takes a step first, and a moving step ends only at 16 carts
    moved or 160 slots visited, so moving n slots takes at most carts/16 +
    n/160 steps. A doubling that begins at 3/4 of n slots clears 32n bytes
    in n/128 steps, so the old table takes at most n/128 more carts (3/4 +
    1/128 full), then moves in at most 0.054n steps, leaving the new table
    of 2n slots at most 41% full; a halving that begins under 1/8 of n
    clears in n/512 steps and moves in at most 0.014n, leaving the new
    table of n/2 slots at most 29% full. Giving back takes n/16384 steps
    more before the next resize may begin. Asserts check it.
    The cost of a resize is spread, not lowered: the same slots are placed
    and the same pages are faulted and given back as in one pass, ~0.2 us
    per cart, carts themselves do not move. Measured on our VM with
    bench_rehash (each add at its fastest of 3 runs): in one pass the add
    that doubled the table to 2M slots took 105 ms and the one to 8M slots
    417 ms; now a step that moves carts takes 0.5 us at p50 and ~1 us at
    p99, one that zeroes a page ~11 us (a page fault here), one that gives
    back 256 KiB 20-45 us, though the first such step of a big old table
    stalls in the hypervisor ~13 us per MB of it (5 ms for 64 MB).

    Carts. A cart grows by realloc to 9/8 of what it needs (rounded to
    16k+8 bytes, sizes that glibc's malloc fills exactly), so a cart is
    copied O(1) times per byte added, and it shrinks when a removal leaves
    it under half full. A cart block is at most ~205 KB (1,000 items of
    128-byte ids and 64-byte expiries).

    Slot choice. customerIds come from users and SHA-1 is public, so with
    the key's low bits as the index someone could cheaply make ids that
    land on one slot range and build long probe runs. The index is the key
    mixed with a per-partition random seed instead (not a cryptographic
    MAC, but the attacker no longer knows where an id lands). Whole-key
    collisions are still possible and are handled by the customerId check.
    =========================================================================
*/
#include "cart_partition.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

//  An item record: a fixed header, then the id bytes, then the expiry
//  bytes. Multi-byte fields are little-endian and need no alignment.
#define ITEM_FP      0 //  1-byte fingerprint of the id
#define ITEM_ID_LEN  1
#define ITEM_EXP_LEN 2 //  0 when the expiry is null
#define ITEM_FLAGS   3
#define ITEM_COUNT   4 //  3 bytes
#define ITEM_PRICE   7 //  6 bytes
#define ITEM_HEADER  13
#define ITEM_MAX     (ITEM_HEADER + CART_ID_MAX + CART_EXPIRY_MAX)
#define ITEM_SALE    0x01 //  flag: special sale

#define TABLE_MIN 16          //  slots; a power of two
#define MAP_MIN   (64 * 1024) //  bytes of a table from which it is mapped

_Static_assert(CART_COUNT_MAX < (1UL << 24), "a count fits in 3 bytes");
_Static_assert(CART_PRICE_MAX < (1ULL << 48), "a price fits in 6 bytes");
_Static_assert(CART_ID_MAX <= UINT8_MAX, "an id length fits in a byte");
_Static_assert(CART_EXPIRY_MAX <= UINT8_MAX, "an expiry length fits in a byte");
_Static_assert(CART_ITEMS_MAX <= UINT16_MAX, "an item count fits in 16 bits");

//  One cart: a single block holding the customerId then the item records.
typedef struct {
    uint64_t version;     //  the partition's change count at the cart's last change
    uint32_t touched;     //  when it last changed, in seconds since the epoch
    uint32_t used;        //  bytes of data in use
    uint32_t cap;         //  bytes of data allocated
    uint16_t n_items;     //  item records after the customerId
    uint8_t customer_len; //  the customerId opens data
    uint8_t data[];
} cart_t;

#define CART_HEAD offsetof (cart_t, data)

typedef struct {
    uint64_t key;
    cart_t *cart; //  NULL when the slot is empty
} slot_t;

typedef struct {
    slot_t *slots;
    size_t mask; //  slot count - 1
    bool mapped; //  from mmap (MAP_MIN bytes or more), else from malloc
} table_t;

//  Where a resize is: see "Resizing" at the top.
enum { PHASE_IDLE, PHASE_CLEARING, PHASE_SEEKING, PHASE_MOVING };

struct _cart_partition_t {
    table_t tab[2]; //  the table; during a resize the old one, and the new one
    int phase;
    size_t cleared;   //  bytes of tab[1] zeroed (clearing)
    size_t seek;      //  next slot of tab[0] to try for an empty one (seeking)
    size_t start;     //  the empty slot of tab[0] that moving walks back from
    size_t visited;   //  slots of tab[0] visited so far (moving)
    size_t old_carts; //  carts still in tab[0] (seeking, moving)
    uint8_t *retired; //  a mapped table being given back, from its end
    size_t retired_len;
    size_t n_carts; //  in both tables
    size_t n_items;
    size_t bytes; //  asked of the allocator and of mmap, all blocks
    uint64_t seed;
    uint64_t changes; //  changes made, the next cart version is one more
    uint32_t now;     //  the clock carts are stamped with (cart_partition_set_now)
    cart_idem_t *idem;
    //  Stats
    size_t resizes, steps;
    size_t step_moved, step_visited, step_cleared, step_released;
};

//  --------------------------------------------------------------------------
//  Allocation, counted in self->bytes; out-of-memory aborts.

static void *
s_alloc (cart_partition_t *self, size_t size)
{
    void *block = malloc (size);
    if (!block)
        abort ();
    self->bytes += size;
    return block;
}

static void *
s_realloc (cart_partition_t *self, void *block, size_t old_size, size_t size)
{
    block = realloc (block, size);
    if (!block)
        abort ();
    self->bytes = self->bytes - old_size + size;
    return block;
}

static void
s_free (cart_partition_t *self, void *block, size_t size)
{
    free (block);
    self->bytes -= size;
}

//  --------------------------------------------------------------------------
//  Item records

static void
s_put_le (uint8_t *dest, uint64_t value, size_t width)
{
    for (size_t i = 0; i < width; i++)
        dest[i] = (uint8_t)(value >> (8 * i));
}

static uint64_t
s_get_le (const uint8_t *src, size_t width)
{
    uint64_t value = 0;
    for (size_t i = width; i-- > 0;)
        value = value << 8 | src[i];
    return value;
}

//  FNV-1a folded to one byte: cheap, and enough to skip most ids unread.
static uint8_t
s_fingerprint (const char *id, size_t len)
{
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < len; i++)
        hash = (hash ^ (uint8_t)id[i]) * 16777619u;
    hash ^= hash >> 16;
    return (uint8_t)(hash ^ hash >> 8);
}

static size_t
s_item_size (const uint8_t *rec)
{
    return ITEM_HEADER + rec[ITEM_ID_LEN] + rec[ITEM_EXP_LEN];
}

//  Encodes the item, with the given count, into rec (ITEM_MAX bytes);
//  returns the record's size.
static size_t
s_item_encode (uint8_t *rec, const cart_item_t *item, uint32_t count)
{
    size_t exp_len = item->expiry ? item->expiry_len : 0;
    rec[ITEM_FP] = s_fingerprint (item->id, item->id_len);
    rec[ITEM_ID_LEN] = (uint8_t)item->id_len;
    rec[ITEM_EXP_LEN] = (uint8_t)exp_len;
    rec[ITEM_FLAGS] = item->special_sale ? ITEM_SALE : 0;
    s_put_le (rec + ITEM_COUNT, count, 3);
    s_put_le (rec + ITEM_PRICE, item->price_cents, 6);
    memcpy (rec + ITEM_HEADER, item->id, item->id_len);
    if (exp_len)
        memcpy (rec + ITEM_HEADER + item->id_len, item->expiry, exp_len);
    return ITEM_HEADER + item->id_len + exp_len;
}

//  Fills *item from a record; its strings point into the record.
static void
s_item_decode (const uint8_t *rec, cart_item_t *item)
{
    size_t id_len = rec[ITEM_ID_LEN];
    size_t exp_len = rec[ITEM_EXP_LEN];
    const char *id = (const char *)rec + ITEM_HEADER;
    *item = (cart_item_t){.id = id,
                          .id_len = id_len,
                          .price_cents = s_get_le (rec + ITEM_PRICE, 6),
                          .count = (uint32_t)s_get_le (rec + ITEM_COUNT, 3),
                          .special_sale = (rec[ITEM_FLAGS] & ITEM_SALE) != 0,
                          .expiry = exp_len ? id + id_len : NULL,
                          .expiry_len = exp_len};
}

//  --------------------------------------------------------------------------
//  Argument checks: everything here comes from the bus.

static bool
s_customer_valid (uint64_t key, const char *customer, size_t customer_len)
{
    return key < (1ULL << 63) && cart_id_valid (customer, customer_len);
}

static bool
s_expiry_valid (const char *expiry, size_t expiry_len)
{
    if (!expiry)
        return expiry_len == 0;
    return expiry_len >= 1 && expiry_len <= CART_EXPIRY_MAX;
}

static bool
s_item_valid (const cart_item_t *item)
{
    return item && cart_id_valid (item->id, item->id_len) && item->count >= 1 &&
           item->count <= CART_COUNT_MAX && item->price_cents <= CART_PRICE_MAX &&
           s_expiry_valid (item->expiry, item->expiry_len);
}

//  --------------------------------------------------------------------------
//  Carts

//  Bytes of data to allocate for a cart that needs `need`: 1/8 more, with
//  the whole block rounded up to 16k+8 bytes.
static size_t
s_cart_cap (size_t need)
{
    size_t total = CART_HEAD + need;
    total += total / 8;
    total = ((total + 7) & ~(size_t)15) + 8;
    return total - CART_HEAD;
}

static cart_t *
s_cart_new (cart_partition_t *self, const char *customer, size_t customer_len,
            size_t need)
{
    size_t cap = s_cart_cap (customer_len + need);
    cart_t *cart = s_alloc (self, CART_HEAD + cap);
    cart->used = (uint32_t)customer_len;
    cart->cap = (uint32_t)cap;
    cart->n_items = 0;
    cart->customer_len = (uint8_t)customer_len;
    cart->version = 0;
    cart->touched = self->now;
    memcpy (cart->data, customer, customer_len);
    return cart;
}

//  Reallocates the cart to fit `used` bytes of data with slack.
static cart_t *
s_cart_resize (cart_partition_t *self, cart_t *cart, size_t used)
{
    size_t cap = s_cart_cap (used);
    cart = s_realloc (self, cart, CART_HEAD + cart->cap, CART_HEAD + cap);
    cart->cap = (uint32_t)cap;
    return cart;
}

//  Replaces old_len bytes at offset `off` of the slot's cart data with
//  new_len bytes of room, left for the caller to fill, keeping the bytes
//  after them in order. Returns the cart, which may have moved.
static cart_t *
s_cart_splice (cart_partition_t *self, slot_t *slot, size_t off, size_t old_len,
               size_t new_len)
{
    cart_t *cart = slot->cart;
    size_t tail = cart->used - off - old_len;
    size_t used = cart->used - old_len + new_len;
    if (used > cart->cap)
        cart = s_cart_resize (self, cart, used);
    memmove (cart->data + off + new_len, cart->data + off + old_len, tail);
    cart->used = (uint32_t)used;
    if (s_cart_cap (used) < cart->cap / 2)
        cart = s_cart_resize (self, cart, used);
    slot->cart = cart;
    return cart;
}

static bool
s_cart_is (const cart_t *cart, const char *customer, size_t customer_len)
{
    return cart->customer_len == customer_len &&
           memcmp (cart->data, customer, customer_len) == 0;
}

//  Returns the item's record in the cart, or NULL.
static uint8_t *
s_cart_item (cart_t *cart, const char *id, size_t id_len)
{
    uint8_t fp = s_fingerprint (id, id_len);
    uint8_t *limit = cart->data + cart->used;
    for (uint8_t *rec = cart->data + cart->customer_len; rec < limit;
         rec += s_item_size (rec))
        if (rec[ITEM_FP] == fp && rec[ITEM_ID_LEN] == id_len &&
            memcmp (rec + ITEM_HEADER, id, id_len) == 0)
            return rec;
    return NULL;
}

//  --------------------------------------------------------------------------
//  The tables

static uint64_t
s_seed (void)
{
    uint64_t seed;
    if (getrandom (&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (uintptr_t)&seed; //  no entropy yet: the stack's place
    return seed;
}

//  The key's home slot in the table: the key mixed with the seed
//  (splitmix64's finaliser), masked. Both tables use the same mix.
static size_t
s_home (const cart_partition_t *self, const table_t *table, uint64_t key)
{
    uint64_t hash = key ^ self->seed;
    hash = (hash ^ hash >> 30) * 0xBF58476D1CE4E5B9ULL;
    hash = (hash ^ hash >> 27) * 0x94D049BB133111EBULL;
    return (size_t)(hash ^ hash >> 31) & table->mask;
}

static size_t
s_table_size (const table_t *table)
{
    return (table->mask + 1) * sizeof (slot_t);
}

//  A table of n_slots (a power of two), not zeroed: large ones are mapped
//  from the system so that they can be given back in pieces.
static table_t
s_table_new (cart_partition_t *self, size_t n_slots)
{
    table_t table = {.mask = n_slots - 1, .mapped = n_slots * sizeof (slot_t) >= MAP_MIN};
    size_t size = s_table_size (&table);
    if (table.mapped) {
        void *block =
            mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (block == MAP_FAILED)
            abort ();
        table.slots = block;
        self->bytes += size;
    } else
        table.slots = s_alloc (self, size);
    return table;
}

//  Frees the table at once (s_finish and s_step_release are the bounded
//  way, for an old table).
static void
s_table_free (cart_partition_t *self, table_t *table)
{
    if (!table->slots)
        return;
    size_t size = s_table_size (table);
    if (table->mapped) {
        munmap (table->slots, size);
        self->bytes -= size;
    } else
        s_free (self, table->slots, size);
    *table = (table_t){0};
}

//  Whether the table's carts belong to lookups: the old one unless it has
//  been emptied, the new one once moving has begun.
static bool
s_live (const cart_partition_t *self, int which)
{
    if (which == 0)
        return self->phase < PHASE_SEEKING || self->old_carts > 0;
    return self->phase >= PHASE_SEEKING;
}

static slot_t *
s_lookup (cart_partition_t *self, table_t *table, uint64_t key, const char *customer,
          size_t customer_len)
{
    for (size_t i = s_home (self, table, key);; i = (i + 1) & table->mask) {
        slot_t *slot = &table->slots[i];
        if (!slot->cart)
            return NULL;
        if (slot->key == key && s_cart_is (slot->cart, customer, customer_len))
            return slot;
    }
}

//  Finds the customer's cart in whichever table holds it; sets *table_p to
//  that table.
static slot_t *
s_find (cart_partition_t *self, uint64_t key, const char *customer, size_t customer_len,
        table_t **table_p)
{
    for (int which = 0; which < 2; which++) {
        if (!s_live (self, which))
            continue;
        slot_t *slot = s_lookup (self, &self->tab[which], key, customer, customer_len);
        if (slot) {
            *table_p = &self->tab[which];
            return slot;
        }
    }
    return NULL;
}

//  Puts the cart into the first empty slot of its probe run.
static slot_t *
s_place (cart_partition_t *self, table_t *table, uint64_t key, cart_t *cart)
{
    size_t i = s_home (self, table, key);
    while (table->slots[i].cart)
        i = (i + 1) & table->mask;
    table->slots[i] = (slot_t){.key = key, .cart = cart};
    return &table->slots[i];
}

//  Empties the slot, moving each later cart of the probe run back into
//  the hole when the hole lies between that cart's home and its slot.
static void
s_clear (cart_partition_t *self, table_t *table, slot_t *slot)
{
    size_t mask = table->mask;
    size_t hole = (size_t)(slot - table->slots);
    for (size_t i = (hole + 1) & mask; table->slots[i].cart; i = (i + 1) & mask) {
        size_t home = s_home (self, table, table->slots[i].key);
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            table->slots[hole] = table->slots[i];
            hole = i;
        }
    }
    table->slots[hole] = (slot_t){.key = 0, .cart = NULL};
}

//  Begins a resize when the load calls for one and none is under way.
static void
s_plan (cart_partition_t *self)
{
    if (self->phase != PHASE_IDLE || self->retired)
        return;
    size_t n_slots = self->tab[0].mask + 1;
    size_t new_slots = 0;
    if (self->n_carts * 4 > n_slots * 3)
        new_slots = n_slots * 2;
    else if (n_slots > TABLE_MIN && self->n_carts * 8 < n_slots)
        new_slots = n_slots / 2;
    if (new_slots) {
        self->tab[1] = s_table_new (self, new_slots);
        self->cleared = 0;
        self->phase = PHASE_CLEARING;
    }
}

//  The old table is empty: the new one becomes the table. A mapped old
//  table is given back by later steps, a heap one at once.
static void
s_finish (cart_partition_t *self)
{
    assert (self->old_carts == 0);
    if (self->tab[0].mapped) {
        assert (!self->retired);
        self->retired = (uint8_t *)self->tab[0].slots;
        self->retired_len = s_table_size (&self->tab[0]);
    } else
        s_table_free (self, &self->tab[0]);
    self->tab[0] = self->tab[1];
    self->tab[1] = (table_t){0};
    self->phase = PHASE_IDLE;
    self->resizes++;
    s_plan (self);
}

//  Zeroes the new table up to the end of the page it has reached.
static void
s_step_clear (cart_partition_t *self)
{
    uint8_t *base = (uint8_t *)self->tab[1].slots;
    size_t size = s_table_size (&self->tab[1]);
    uintptr_t from = (uintptr_t)base + self->cleared;
    size_t len = CART_REHASH_CLEAR_MAX - from % CART_REHASH_CLEAR_MAX;
    if (len > size - self->cleared)
        len = size - self->cleared;
    memset (base + self->cleared, 0, len);
    self->cleared += len;
    self->step_cleared = len;
    if (self->cleared == size) {
        //  From here on the old table takes no new carts.
        self->phase = PHASE_SEEKING;
        self->seek = 0;
        self->old_carts = self->n_carts;
    }
}

//  Finds an empty slot to start from, then moves carts out of the old
//  table walking backwards from it (see the invariant at the top).
static void
s_step_move (cart_partition_t *self, size_t max_moves)
{
    table_t *old = &self->tab[0];
    size_t max_visits = max_moves * CART_REHASH_VISITS;
    size_t visits = 0, moved = 0;
    while (self->phase == PHASE_SEEKING && self->old_carts > 0 && visits < max_visits) {
        visits++;
        if (!old->slots[self->seek].cart) {
            self->start = self->seek;
            self->visited = 0;
            self->phase = PHASE_MOVING;
        } else
            self->seek = (self->seek + 1) & old->mask;
    }
    while (self->phase == PHASE_MOVING && self->old_carts > 0 && moved < max_moves &&
           visits < max_visits) {
        assert (self->visited < old->mask); //  the old table's carts were all met
        slot_t *slot = &old->slots[(self->start - 1 - self->visited) & old->mask];
        self->visited++;
        visits++;
        if (slot->cart) {
            s_place (self, &self->tab[1], slot->key, slot->cart);
            *slot = (slot_t){.key = 0, .cart = NULL};
            self->old_carts--;
            moved++;
        }
    }
    self->step_visited = visits;
    self->step_moved = moved;
    if (self->old_carts == 0)
        s_finish (self);
}

//  Gives back the last CART_REHASH_RELEASE_MAX bytes of the retired table.
static void
s_step_release (cart_partition_t *self)
{
    size_t len = self->retired_len < CART_REHASH_RELEASE_MAX ? self->retired_len
                                                             : CART_REHASH_RELEASE_MAX;
    self->retired_len -= len;
    munmap (self->retired + self->retired_len, len);
    self->bytes -= len;
    self->step_released = len;
    if (self->retired_len == 0) {
        self->retired = NULL;
        s_plan (self);
    }
}

//  One bounded step of the resize in progress. Returns whether work
//  remains.
static bool
s_step (cart_partition_t *self, size_t max_moves)
{
    self->steps++;
    self->step_moved = self->step_visited = 0;
    self->step_cleared = self->step_released = 0;
    if (self->retired)
        s_step_release (self);
    else if (self->phase == PHASE_CLEARING)
        s_step_clear (self);
    else if (self->phase != PHASE_IDLE)
        s_step_move (self, max_moves);
    return self->retired || self->phase != PHASE_IDLE;
}

//  Puts a new cart in the table that takes new carts.
static slot_t *
s_insert (cart_partition_t *self, uint64_t key, cart_t *cart)
{
    table_t *table = &self->tab[self->phase >= PHASE_SEEKING];
    size_t in_table =
        self->n_carts - (self->phase >= PHASE_SEEKING ? self->old_carts : 0);
    assert (in_table < table->mask); //  a table never fills: see the top
    slot_t *slot = s_place (self, table, key, cart);
    self->n_carts++;
    s_plan (self);
    return slot;
}

//  Frees the slot's cart and empties the slot.
static void
s_drop (cart_partition_t *self, table_t *table, slot_t *slot)
{
    cart_t *cart = slot->cart;
    self->n_items -= cart->n_items;
    self->n_carts--;
    if (table == &self->tab[0] && self->phase >= PHASE_SEEKING)
        self->old_carts--;
    s_free (self, cart, CART_HEAD + cart->cap);
    s_clear (self, table, slot);
    s_plan (self);
}

//  --------------------------------------------------------------------------
//  Item operations on a cart found in a slot

//  Counts a change to the slot's cart (NULL: the cart is gone) and stamps
//  it with its version and the clock.
static void
s_changed (cart_partition_t *self, slot_t *slot)
{
    self->changes++;
    if (slot) {
        slot->cart->version = self->changes;
        slot->cart->touched = self->now;
    }
}

//  Writes the item, with the given count, over the old_len-byte record at
//  off (0 bytes at the end to append), and fills *stored when not NULL.
//  The record is built aside first, as the item's strings may point into
//  this very cart.
static void
s_store (cart_partition_t *self, slot_t *slot, size_t off, size_t old_len,
         const cart_item_t *item, uint32_t count, cart_item_t *stored)
{
    uint8_t rec[ITEM_MAX];
    size_t len = s_item_encode (rec, item, count);
    cart_t *cart = s_cart_splice (self, slot, off, old_len, len);
    memcpy (cart->data + off, rec, len);
    if (stored)
        s_item_decode (cart->data + off, stored);
}

static int
s_merge (cart_partition_t *self, slot_t *slot, uint8_t *rec, const cart_item_t *item,
         cart_item_t *stored)
{
    uint32_t count = (uint32_t)s_get_le (rec + ITEM_COUNT, 3) + item->count;
    if (count > CART_COUNT_MAX)
        return CART_CONFLICT;
    size_t off = (size_t)(rec - slot->cart->data);
    s_store (self, slot, off, s_item_size (rec), item, count, stored);
    s_changed (self, slot);
    return CART_OK;
}

static int
s_append (cart_partition_t *self, slot_t *slot, const cart_item_t *item,
          cart_item_t *stored)
{
    if (slot->cart->n_items >= CART_ITEMS_MAX)
        return CART_CONFLICT;
    s_store (self, slot, slot->cart->used, 0, item, item->count, stored);
    slot->cart->n_items++;
    self->n_items++;
    s_changed (self, slot);
    return CART_CREATED;
}

//  Removes the record from the slot's cart, and the cart when it empties.
static void
s_remove (cart_partition_t *self, table_t *table, slot_t *slot, uint8_t *rec)
{
    size_t off = (size_t)(rec - slot->cart->data);
    s_cart_splice (self, slot, off, s_item_size (rec), 0);
    slot->cart->n_items--;
    self->n_items--;
    if (slot->cart->n_items == 0) {
        s_drop (self, table, slot);
        slot = NULL;
    }
    s_changed (self, slot);
}

//  --------------------------------------------------------------------------
//  Public API

cart_partition_t *
cart_partition_new (void)
{
    cart_partition_t *self = calloc (1, sizeof (cart_partition_t));
    if (!self)
        abort ();
    self->bytes = sizeof (cart_partition_t);
    self->seed = s_seed ();
    self->tab[0] = s_table_new (self, TABLE_MIN);
    memset (self->tab[0].slots, 0, s_table_size (&self->tab[0]));
    self->idem = cart_idem_new ();
    return self;
}

void
cart_partition_destroy (cart_partition_t **self_p)
{
    assert (self_p);
    cart_partition_t *self = *self_p;
    if (!self)
        return;
    for (int which = 0; which < 2; which++) {
        table_t *table = &self->tab[which];
        if (self->phase != PHASE_CLEARING || which == 0) //  else not all zeroed yet
            for (size_t i = 0; table->slots && i <= table->mask; i++)
                free (table->slots[i].cart);
        s_table_free (self, table);
    }
    if (self->retired)
        munmap (self->retired, self->retired_len);
    cart_idem_destroy (&self->idem);
    free (self);
    *self_p = NULL;
}

int
cart_partition_add (cart_partition_t *self, uint64_t key, const char *customer,
                    size_t customer_len, const cart_item_t *item, cart_item_t *stored)
{
    assert (self);
    if (!s_customer_valid (key, customer, customer_len) || !s_item_valid (item))
        return CART_BAD_REQUEST;
    s_step (self, CART_REHASH_BUCKETS);
    table_t *table;
    slot_t *slot = s_find (self, key, customer, customer_len, &table);
    if (!slot) {
        size_t need = ITEM_HEADER + item->id_len + item->expiry_len;
        cart_t *cart = s_cart_new (self, customer, customer_len, need);
        slot = s_insert (self, key, cart);
    }
    uint8_t *rec = s_cart_item (slot->cart, item->id, item->id_len);
    if (rec)
        return s_merge (self, slot, rec, item, stored);
    return s_append (self, slot, item, stored);
}

int
cart_partition_set_count (cart_partition_t *self, uint64_t key, const char *customer,
                          size_t customer_len, const char *item_id, size_t item_id_len,
                          uint32_t count, cart_item_t *stored)
{
    assert (self);
    if (!s_customer_valid (key, customer, customer_len) ||
        !cart_id_valid (item_id, item_id_len) || count > CART_COUNT_MAX)
        return CART_BAD_REQUEST;
    s_step (self, CART_REHASH_BUCKETS);
    table_t *table;
    slot_t *slot = s_find (self, key, customer, customer_len, &table);
    uint8_t *rec = slot ? s_cart_item (slot->cart, item_id, item_id_len) : NULL;
    if (!rec)
        return CART_NOT_FOUND;
    if (count == 0) {
        s_remove (self, table, slot, rec);
        return CART_DELETED;
    }
    s_put_le (rec + ITEM_COUNT, count, 3);
    if (stored)
        s_item_decode (rec, stored);
    s_changed (self, slot);
    return CART_OK;
}

int
cart_partition_remove (cart_partition_t *self, uint64_t key, const char *customer,
                       size_t customer_len, const char *item_id, size_t item_id_len)
{
    assert (self);
    if (!s_customer_valid (key, customer, customer_len) ||
        !cart_id_valid (item_id, item_id_len))
        return CART_BAD_REQUEST;
    s_step (self, CART_REHASH_BUCKETS);
    table_t *table;
    slot_t *slot = s_find (self, key, customer, customer_len, &table);
    uint8_t *rec = slot ? s_cart_item (slot->cart, item_id, item_id_len) : NULL;
    if (!rec)
        return CART_NOT_FOUND;
    s_remove (self, table, slot, rec);
    return CART_DELETED;
}

int
cart_partition_get (cart_partition_t *self, uint64_t key, const char *customer,
                    size_t customer_len, cart_view_t *view)
{
    assert (self);
    assert (view);
    *view = (cart_view_t){.customer = customer, .customer_len = customer_len};
    if (!s_customer_valid (key, customer, customer_len))
        return CART_BAD_REQUEST;
    s_step (self, CART_REHASH_BUCKETS);
    table_t *table;
    slot_t *slot = s_find (self, key, customer, customer_len, &table);
    if (!slot)
        return CART_NOT_FOUND;
    cart_t *cart = slot->cart;
    view->customer = (const char *)cart->data;
    view->n_items = cart->n_items;
    view->version = cart->version;
    view->touched = cart->touched;
    view->cursor = cart->data + cart->customer_len;
    view->limit = cart->data + cart->used;
    return CART_OK;
}

bool
cart_partition_next (cart_partition_t *self, size_t *cursor, cart_view_t *view,
                     uint64_t *key)
{
    assert (self && cursor && view);
    //  The cursor counts the slots of tab[0], then those of tab[1]
    size_t before = 0;
    for (int which = 0; which < 2; which++) {
        table_t *table = &self->tab[which];
        size_t size = table->slots ? table->mask + 1 : 0;
        if (*cursor < before)
            *cursor = before;
        for (; s_live (self, which) && *cursor < before + size; (*cursor)++) {
            slot_t *slot = &table->slots[*cursor - before];
            if (!slot->cart)
                continue;
            cart_t *cart = slot->cart;
            *view = (cart_view_t){.customer = (const char *)cart->data,
                                  .customer_len = cart->customer_len,
                                  .n_items = cart->n_items,
                                  .version = cart->version,
                                  .touched = cart->touched,
                                  .cursor = cart->data + cart->customer_len,
                                  .limit = cart->data + cart->used};
            if (key)
                *key = slot->key;
            (*cursor)++;
            return true;
        }
        before += size;
    }
    return false;
}

int
cart_partition_drop (cart_partition_t *self, uint64_t key, const char *customer,
                     size_t customer_len)
{
    assert (self);
    if (!s_customer_valid (key, customer, customer_len))
        return CART_BAD_REQUEST;
    s_step (self, CART_REHASH_BUCKETS);
    table_t *table;
    slot_t *slot = s_find (self, key, customer, customer_len, &table);
    if (!slot)
        return CART_NOT_FOUND;
    s_drop (self, table, slot);
    s_changed (self, NULL);
    return CART_DELETED;
}

int
cart_partition_restore (cart_partition_t *self, uint64_t key, const char *customer,
                        size_t customer_len, uint64_t version, uint32_t touched)
{
    assert (self);
    if (!s_customer_valid (key, customer, customer_len) || version >> 63)
        return CART_BAD_REQUEST;
    table_t *table;
    slot_t *slot = s_find (self, key, customer, customer_len, &table);
    if (!slot)
        return CART_NOT_FOUND;
    slot->cart->version = version;
    slot->cart->touched = touched;
    return CART_OK;
}

void
cart_partition_set_now (cart_partition_t *self, uint32_t now)
{
    assert (self);
    self->now = now;
}

uint64_t
cart_partition_changes (cart_partition_t *self)
{
    assert (self);
    return self->changes;
}

void
cart_partition_set_changes (cart_partition_t *self, uint64_t changes)
{
    assert (self);
    self->changes = changes;
}

cart_idem_t *
cart_partition_idem (cart_partition_t *self)
{
    assert (self);
    return self->idem;
}

bool
cart_view_next (cart_view_t *view, cart_item_t *item)
{
    assert (view);
    assert (item);
    if (!view->cursor || view->cursor >= view->limit)
        return false;
    s_item_decode (view->cursor, item);
    view->cursor += s_item_size (view->cursor);
    return true;
}

size_t
cart_partition_carts (cart_partition_t *self)
{
    assert (self);
    return self->n_carts;
}

size_t
cart_partition_items (cart_partition_t *self)
{
    assert (self);
    return self->n_items;
}

size_t
cart_partition_bytes (cart_partition_t *self)
{
    assert (self);
    return self->bytes;
}

bool
cart_partition_rehash_step (cart_partition_t *self, size_t max_buckets)
{
    assert (self);
    if (max_buckets == 0)
        max_buckets = 1;
    if (max_buckets > SIZE_MAX / CART_REHASH_VISITS) //  so that visits do not wrap
        max_buckets = SIZE_MAX / CART_REHASH_VISITS;
    return s_step (self, max_buckets);
}

void
cart_partition_rehash_stats (cart_partition_t *self, cart_rehash_stats_t *stats)
{
    assert (self);
    assert (stats);
    bool moving = self->phase >= PHASE_SEEKING;
    *stats = (cart_rehash_stats_t){.resizing = self->phase != PHASE_IDLE || self->retired,
                                   .slots = self->tab[moving].mask + 1,
                                   .old_slots = moving ? self->tab[0].mask + 1 : 0,
                                   .old_carts = moving ? self->old_carts : 0,
                                   .resizes = self->resizes,
                                   .steps = self->steps,
                                   .step_moved = self->step_moved,
                                   .step_visited = self->step_visited,
                                   .step_cleared = self->step_cleared,
                                   .step_released = self->step_released};
}
