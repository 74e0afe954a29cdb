/*  =========================================================================
    cart_partition - the carts that one shard owns.

    A hash table from customerId to cart. The table is indexed by the
    customer's 63-bit key (hash_key of the id, as the broker routed it) and
    each entry keeps the full customerId, so two customers whose keys
    collide keep separate carts. A cart keeps its items in the order they
    were first added. Prices are integer cents.

    The partition is not thread-safe by design: exactly one thread (the
    shard's worker) owns it and calls it. Every operation either succeeds
    or changes nothing.

    Every operation validates its arguments as input (ids, counts, prices,
    lengths against cart_types.h) and answers CART_BAD_REQUEST instead of
    asserting: the arguments come from the bus.

    The table resizes incrementally: a resize is spread over many small
    steps, and every operation that passes its argument checks takes one
    step first (at most CART_REHASH_BUCKETS carts moved), so no operation
    pays for a whole table. A step changes nothing that the operations
    show (carts, items, views, stored items); only cart_partition_bytes
    moves as old tables are given back. A worker that has nothing to do
    can take further steps with cart_partition_rehash_step.
    =========================================================================
*/
#ifndef CART_PARTITION_H_INCLUDED
#define CART_PARTITION_H_INCLUDED

#include "cart_idem.h"
#include "cart_types.h"

typedef struct _cart_partition_t cart_partition_t;

//  A read-only view of one cart, for iterating its items in order. It stays
//  valid until the next call that changes the partition.
typedef struct {
    const char *customer; //  the cart's customerId
    size_t customer_len;
    size_t n_items;   //  distinct items
    uint64_t version; //  the cart's version (0: no cart), see "Versions" below
    uint32_t touched; //  when it last changed, in seconds since the epoch
    //  Private to the partition
    const uint8_t *cursor;
    const uint8_t *limit;
} cart_view_t;

//  Create an empty partition. Aborts on out-of-memory, as czmq does.
cart_partition_t *cart_partition_new (void);

//  Destroy a partition and every cart in it; sets *self_p to NULL.
void cart_partition_destroy (cart_partition_t **self_p);

//  Add an item to a customer's cart, creating the cart if needed. When the
//  cart already holds item->id, the counts are added and price, sale flag
//  and expiry replaced with the new ones. Fills *stored (when not NULL)
//  with the item as now stored; its strings stay valid until the next call
//  that changes the partition.
//  Returns CART_CREATED (new item), CART_OK (merged), CART_CONFLICT (the
//  merged count would pass CART_COUNT_MAX, or the cart already holds
//  CART_ITEMS_MAX items), or CART_BAD_REQUEST (invalid argument).
int cart_partition_add (cart_partition_t *self, uint64_t key, const char *customer,
                        size_t customer_len, const cart_item_t *item,
                        cart_item_t *stored);

//  Set the count of an item in a cart; a count of 0 removes the item.
//  Returns CART_OK (and fills *stored when not NULL), CART_DELETED (count
//  was 0), CART_NOT_FOUND (no such cart or item) or CART_BAD_REQUEST.
int cart_partition_set_count (cart_partition_t *self, uint64_t key, const char *customer,
                              size_t customer_len, const char *item_id,
                              size_t item_id_len, uint32_t count, cart_item_t *stored);

//  Remove one item from a cart. A cart left with no items is removed.
//  Returns CART_DELETED, CART_NOT_FOUND or CART_BAD_REQUEST.
int cart_partition_remove (cart_partition_t *self, uint64_t key, const char *customer,
                           size_t customer_len, const char *item_id, size_t item_id_len);

//  Find a customer's cart and fill *view. Returns CART_OK, CART_NOT_FOUND
//  (the customer has no cart, i.e. an empty one; *view then has no items
//  and points at the given customer string) or CART_BAD_REQUEST.
int cart_partition_get (cart_partition_t *self, uint64_t key, const char *customer,
                        size_t customer_len, cart_view_t *view);

//  Remove a customer's whole cart (the second half of checkout, after the
//  caller has read it through cart_partition_get). Returns CART_DELETED or
//  CART_NOT_FOUND or CART_BAD_REQUEST.
int cart_partition_drop (cart_partition_t *self, uint64_t key, const char *customer,
                         size_t customer_len);

//  Step through a view: fills *item with the next item and returns true,
//  or returns false after the last one.
bool cart_view_next (cart_view_t *view, cart_item_t *item);

//  Steps through every cart, in no set order: *cursor starts at 0; fills
//  *view (and *key, the cart's key) and returns true, or returns false
//  after the last cart. Takes no rehash step; the views stay valid until
//  the next call that changes the partition, and a change ends the walk.
bool cart_partition_next (cart_partition_t *self, size_t *cursor, cart_view_t *view,
                          uint64_t *key);

//  Versions. The partition counts its changes (each add, set, remove and
//  drop that succeeds counts one), and a cart's version is the count at
//  its last change: every change makes it larger, and no two carts of the
//  partition's life share one, so that a cart checked out and filled again
//  never takes an old version back. A replay of the same changes from the
//  same start gives the same versions. Each changed cart is stamped with
//  the partition's clock, which its owner sets before each operation.

//  The clock that changed carts are stamped with, in seconds since the
//  epoch (a worker sets its own before each request; a replay, the time
//  the record says).
void cart_partition_set_now (cart_partition_t *self, uint32_t now);

//  The change count: the version of the latest change.
uint64_t cart_partition_changes (cart_partition_t *self);

//  Sets the change count (a snapshot's, once its carts are loaded).
void cart_partition_set_changes (cart_partition_t *self, uint64_t changes);

//  Sets an existing cart's version and time (a snapshot's load). Returns
//  CART_OK, CART_NOT_FOUND or CART_BAD_REQUEST.
int cart_partition_restore (cart_partition_t *self, uint64_t key, const char *customer,
                            size_t customer_len, uint64_t version, uint32_t touched);

//  The idempotency keys kept with the partition's carts (cart_idem.h):
//  they live and die with the partition, and its snapshots hold them.
cart_idem_t *cart_partition_idem (cart_partition_t *self);

//  Number of carts (customers with at least one item).
size_t cart_partition_carts (cart_partition_t *self);

//  Number of items over all carts.
size_t cart_partition_items (cart_partition_t *self);

//  Bytes of heap that the partition holds (its table and carts, as asked
//  of the allocator), for stats and the memory benchmark. During a resize
//  this counts both tables.
size_t cart_partition_bytes (cart_partition_t *self);

//  What one rehash step may do at most. A step does one of three things:
//  it zeroes (and so faults in) at most CART_REHASH_CLEAR_MAX bytes of a
//  new table, all within one 4 KiB page; or it moves at most max_buckets
//  carts from the old table to the new, visiting at most
//  CART_REHASH_VISITS * max_buckets slots of the old table; or it gives
//  back to the system at most CART_REHASH_RELEASE_MAX bytes of a table
//  that is no longer used. Each operation's own step has max_buckets =
//  CART_REHASH_BUCKETS.
#define CART_REHASH_BUCKETS     16
#define CART_REHASH_VISITS      10
#define CART_REHASH_CLEAR_MAX   4096
#define CART_REHASH_RELEASE_MAX (256 * 1024)

//  Take one bounded step of the resize in progress, if any (max_buckets 0
//  counts as 1). Returns true while resize work remains: a worker calls it
//  between requests, while it has none waiting, until it returns false.
//  Never needed for correctness: operations take their own steps, and
//  every resize finishes before the table it fills needs one.
bool cart_partition_rehash_step (cart_partition_t *self, size_t max_buckets);

//  The state of the table and what the latest step did, for stats and
//  tests.
typedef struct {
    bool resizing; //  a resize is in progress, or an old table is still being given back
    size_t slots;  //  slots of the table that takes new carts (the new one, once moving)
    size_t old_slots; //  slots of the table being emptied into it; 0 when none
    size_t old_carts; //  carts still in the table being emptied
    size_t resizes;   //  resizes completed since the partition was created
    size_t steps;     //  steps taken since then (operations' and rehash_step's)
    //  The latest step (a rejected operation takes none):
    size_t step_moved;    //  carts moved from the old table
    size_t step_visited;  //  slots of the old table visited
    size_t step_cleared;  //  bytes of the new table zeroed
    size_t step_released; //  bytes of an unused table given back
} cart_rehash_stats_t;

void cart_partition_rehash_stats (cart_partition_t *self, cart_rehash_stats_t *stats);

#endif
