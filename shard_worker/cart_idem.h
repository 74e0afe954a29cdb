/*  =========================================================================
    cart_idem - the idempotency keys of one shard: for each (customer, key)
    the answer its first request got, so that a retry with the same key is
    given that answer again instead of being applied twice (HTTP's
    Idempotency-Key; PROTOCOL.md 4.1).

    A key is kept with its customer, not inside the cart, since the answer
    of a checkout must outlive the cart it removed. Keys are kept in the
    order they were made: cart_idem_expire forgets the oldest first, with
    bounded work, and each customer keeps at most CART_IDEM_PER_CART keys
    and CART_IDEM_BYTES_PER_CART bytes of answers (the oldest go first).
    The table is rebuilt from the shard's log at start (a logged change
    carries its key) and written whole into snapshots.

    Not thread-safe: one owner, like the partition it belongs to.
    =========================================================================
*/
#ifndef CART_IDEM_H_INCLUDED
#define CART_IDEM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CART_IDEM_PER_CART       100            //  keys kept per customer
#define CART_IDEM_BYTES_PER_CART (1024 * 1024)  //  bytes of answers per customer
#define CART_IDEM_TTL            (24 * 60 * 60) //  default, in seconds

typedef struct _cart_idem_t cart_idem_t;

//  What is kept of the first request made with a key
typedef struct {
    uint64_t fingerprint; //  of the request (cart_apply.h), to tell another one
    uint16_t status;      //  its answer: the status,
    uint64_t version;     //  the cart's version after it,
    const uint8_t *body;  //  and the reply body (owned by the table)
    size_t size;
    uint64_t at;  //  when it was applied, in seconds since the epoch
    uint64_t seq; //  its log record, still pending while the log has not
                  //  committed it; 0 when committed or in memory
} cart_idem_entry_t;

//  Create an empty table; aborts on out-of-memory, as czmq does.
cart_idem_t *cart_idem_new (void);

//  Destroy the table and what it holds; sets *self_p to NULL.
void cart_idem_destroy (cart_idem_t **self_p);

//  The entry of (customer, key), or NULL. It stays valid until the next
//  call that changes the table.
const cart_idem_entry_t *cart_idem_find (cart_idem_t *self, const char *customer,
                                         size_t customer_len, const char *key,
                                         size_t key_len);

//  Keeps entry (its body copied) for (customer, key), replacing one kept
//  before, then forgets the customer's oldest keys beyond the bounds.
void cart_idem_put (cart_idem_t *self, const char *customer, size_t customer_len,
                    const char *key, size_t key_len, const cart_idem_entry_t *entry);

//  Forgets the keys made at or before `before` (seconds since the epoch),
//  oldest first, at most max of them. Returns how many it forgot.
size_t cart_idem_expire (cart_idem_t *self, uint64_t before, size_t max);

//  Steps through the keys, oldest first: *cursor starts NULL; fills the
//  out arguments and returns true, or returns false after the last. A
//  change to the table ends the walk.
bool cart_idem_next (cart_idem_t *self, void **cursor, const char **customer,
                     size_t *customer_len, const char **key, size_t *key_len,
                     const cart_idem_entry_t **entry);

//  Keys kept, and bytes of heap they hold.
size_t cart_idem_size (cart_idem_t *self);
size_t cart_idem_bytes (cart_idem_t *self);

#endif
