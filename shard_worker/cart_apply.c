/*  =========================================================================
    cart_apply - what each operation does to a partition (see cart_apply.h).
    =========================================================================
*/
#include "cart_apply.h"

#include "cart_hash.h"
#include "cart_ring.h"

typedef int (*apply_fn) (cart_partition_t *part, const cart_request_t *req, uint64_t key,
                         cart_item_t *stored);

static int
s_apply_get (cart_partition_t *part, const cart_request_t *req, uint64_t key,
             cart_item_t *stored)
{
    (void)part, (void)req, (void)key, (void)stored;
    return CART_OK;
}

static int
s_apply_add (cart_partition_t *part, const cart_request_t *req, uint64_t key,
             cart_item_t *stored)
{
    return cart_partition_add (part, key, req->customer, req->customer_len, &req->item,
                               stored);
}

static int
s_apply_set (cart_partition_t *part, const cart_request_t *req, uint64_t key,
             cart_item_t *stored)
{
    return cart_partition_set_count (part, key, req->customer, req->customer_len,
                                     req->item.id, req->item.id_len, req->item.count,
                                     stored);
}

static int
s_apply_remove (cart_partition_t *part, const cart_request_t *req, uint64_t key,
                cart_item_t *stored)
{
    (void)stored;
    return cart_partition_remove (part, key, req->customer, req->customer_len,
                                  req->item.id, req->item.id_len);
}

static int
s_apply_checkout (cart_partition_t *part, const cart_request_t *req, uint64_t key,
                  cart_item_t *stored)
{
    (void)stored;
    int rc = cart_partition_drop (part, key, req->customer, req->customer_len);
    return rc == CART_DELETED ? CART_OK : rc;
}

//  From CART_OPS: an operation without its function does not compile
#define CART_OP_APPLY(NAME, name, number, request, reply, writes)                        \
    [number] = s_apply_##name,
static const apply_fn s_applies[] = {CART_OPS (CART_OP_APPLY)};
#undef CART_OP_APPLY
_Static_assert(sizeof (s_applies) / sizeof (s_applies[0]) == CART_OP_COUNT + 1,
               "every operation has its function");

int
cart_apply (cart_partition_t *part, const cart_request_t *req, uint64_t key,
            cart_item_t *stored)
{
    return s_applies[req->op](part, req, key, stored);
}

bool
cart_apply_changed (const cart_request_t *req, int status)
{
    return cart_op_writes (req->op) &&
           (status == CART_OK || status == CART_CREATED || status == CART_DELETED);
}

int
cart_apply_record (cart_partition_t *part, const void *body, size_t size, uint32_t shard,
                   uint32_t shards, const char **error)
{
    cart_request_t req;
    if (cart_request_decode (body, size, &req, error))
        return -1;
    uint64_t key = cart_hash_key (req.customer, req.customer_len);
    if (cart_ring_shard (key, shards) != shard) {
        *error = cart_errorf ("customer '%.*s' belongs to shard %u of %u, not %u",
                              (int)req.customer_len, req.customer,
                              cart_ring_shard (key, shards), shards, shard);
        return -1;
    }
    cart_apply (part, &req, key, NULL);
    return 0;
}
