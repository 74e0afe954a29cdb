/*  =========================================================================
    cart_apply - what each operation does to a partition: the one place it
    is said, used to serve a request (cart_worker), to replay a log at
    start and to rebuild a shard for a snapshot (cart_store).

    cart_apply changes the partition alone; cart_apply_run serves a request
    whole, as a worker answers it: its idempotency key (cart_idem.h), its
    condition on the cart's version, the operation, and the reply body.

        cart_outcome_t outcome;
        cart_apply_run (partition, &request, key, &context, &out, &outcome);
    =========================================================================
*/
#ifndef CART_APPLY_H_INCLUDED
#define CART_APPLY_H_INCLUDED

#include "cart_body.h"
#include "cart_partition.h"

//  Applies a checked request to part, key being hash_key of its customerId.
//  ADD, SET and REMOVE change the item as cart_partition_add, _set_count
//  and _remove do (*stored, when not NULL, gets the item as stored);
//  CHECKOUT drops the cart (a caller that answers with the cart reads it
//  first); GET changes nothing. Returns the partition's status.
int cart_apply (cart_partition_t *part, const cart_request_t *req, uint64_t key,
                cart_item_t *stored);

//  True when the status says that the request changed the partition (what
//  a log keeps).
bool cart_apply_changed (const cart_request_t *req, int status);

//  When and how a request is served
typedef struct {
    uint64_t now;       //  seconds since the epoch: the cart's and the key's time
    uint64_t idem_ttl;  //  seconds a key is kept (0: CART_IDEM_TTL)
    uint64_t seq;       //  the log record a change will be (0: in memory)
    uint64_t committed; //  the last log record committed: a key whose record
                        //  is later is still being applied
    bool replay;        //  a logged change applied again: no key or version
                        //  check (it passed them when first applied)
} cart_context_t;

//  What serving a request gave, besides its reply body
typedef struct {
    int status;       //  the reply's status
    uint64_t version; //  the cart's version after it (0: no cart); meaningful
                      //  for a success, a GET and a 412
    bool replayed;    //  the answer kept for its idempotency key, given again
    bool changed;     //  the partition changed: the request must be logged
} cart_outcome_t;

//  Serves a checked request on part: a write with an idempotency key that
//  was used within the key's time gets that answer again (or 422 when the
//  key was used for another request, 409 while that one is still being
//  applied); a request whose version condition fails is 412 with the cart;
//  else the operation runs. Appends the reply body to out (an item, a
//  cart, or an error message) and fills *outcome. A change made with a
//  key keeps its answer under it.
void cart_apply_run (cart_partition_t *part, const cart_request_t *req, uint64_t key,
                     const cart_context_t *context, msgpack_sbuffer *out,
                     cart_outcome_t *outcome);

//  A log record that is not a request: a cart removed because it was not
//  changed for the cart time-to-live, [0, customer, at]. Appends it to out.
void cart_apply_encode_expiry (msgpack_sbuffer *out, const char *customer,
                               size_t customer_len, uint64_t at);

//  Applies a logged change (a request body as the worker applied it, or an
//  expiry) to the partition of `shard` in a cluster of `shards`. Returns 0,
//  or -1 with *error set when the body does not decode or its customer
//  belongs to another shard (a log copied, swapped or from another cluster
//  size).
int cart_apply_record (cart_partition_t *part, const void *body, size_t size,
                       uint32_t shard, uint32_t shards, const char **error);

//  Checks a logged change as cart_apply_record does, without applying it.
int cart_apply_record_check (const void *body, size_t size, uint32_t shard,
                             uint32_t shards, const char **error);

#endif
