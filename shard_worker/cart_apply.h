/*  =========================================================================
    cart_apply - what each operation does to a partition: the one place it
    is said, used to serve a request (cart_worker), to replay a log at
    start and to rebuild a shard for a snapshot (cart_store).

        cart_item_t stored;
        int status = cart_apply (partition, &request, key, &stored);
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

//  Applies a logged change (a request body as the worker applied it) to
//  the partition of `shard` in a cluster of `shards`. Returns 0, or -1
//  with *error set when the body does not decode or its customer belongs
//  to another shard (a log copied, swapped or from another cluster size).
int cart_apply_record (cart_partition_t *part, const void *body, size_t size,
                       uint32_t shard, uint32_t shards, const char **error);

#endif
