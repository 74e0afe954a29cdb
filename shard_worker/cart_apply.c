/*  =========================================================================
    cart_apply - what each operation does to a partition (see cart_apply.h).
    =========================================================================
*/
#include "cart_apply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cart_hash.h"
#include "cart_mpack.h"
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

//  --------------------------------------------------------------------------
//  Serving a request: the reply body

typedef struct {
    cart_partition_t *part;
    const cart_request_t *req;
    uint64_t key;
    msgpack_packer pk;
    uint64_t version; //  the cart's, for a GET and a 412
} run_t;

static void s_error (run_t *run, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_error (run_t *run, const char *format, ...)
{
    char text[512];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof (text), format, args);
    va_end (args);
    cart_reply_encode_error (&run->pk, text);
}

static void
s_encode_view (run_t *run, cart_view_t *view)
{
    cart_reply_encode_cart (&run->pk, view->customer, view->customer_len, view->n_items);
    cart_item_t item;
    while (cart_view_next (view, &item))
        cart_reply_encode_item (&run->pk, &item);
}

//  The cart, or an empty one for a customer without; sets run->version.
static void
s_encode_cart (run_t *run)
{
    cart_view_t view;
    const cart_request_t *req = run->req;
    int rc =
        cart_partition_get (run->part, run->key, req->customer, req->customer_len, &view);
    run->version = view.version;
    if (rc == CART_NOT_FOUND)
        cart_reply_encode_cart (&run->pk, req->customer, req->customer_len, 0);
    else
        s_encode_view (run, &view);
}

static int
s_run_get (run_t *run)
{
    s_encode_cart (run);
    return CART_OK;
}

static int
s_run_checkout (run_t *run)
{
    const cart_request_t *req = run->req;
    cart_view_t view;
    int rc =
        cart_partition_get (run->part, run->key, req->customer, req->customer_len, &view);
    if (rc == CART_NOT_FOUND) {
        s_error (run, "customer '%.*s' has no cart to check out", (int)req->customer_len,
                 req->customer);
        return rc;
    }
    s_encode_view (run, &view);
    return cart_apply (run->part, req, run->key, NULL);
}

//  Tells which limit an ADD that conflicted would have passed.
static void
s_explain_conflict (run_t *run)
{
    const cart_request_t *req = run->req;
    cart_view_t view;
    cart_item_t item;
    cart_partition_get (run->part, run->key, req->customer, req->customer_len, &view);
    while (cart_view_next (&view, &item))
        if (item.id_len == req->item.id_len &&
            memcmp (item.id, req->item.id, item.id_len) == 0) {
            s_error (run, "item '%.*s' would have %u units; an item has at most %d",
                     (int)item.id_len, item.id, item.count + req->item.count,
                     CART_COUNT_MAX);
            return;
        }
    s_error (run, "the cart already holds %d items, the most it can", CART_ITEMS_MAX);
}

static int
s_run_add (run_t *run)
{
    cart_item_t stored;
    int rc = cart_apply (run->part, run->req, run->key, &stored);
    if (rc == CART_OK || rc == CART_CREATED)
        cart_reply_encode_item (&run->pk, &stored);
    else if (rc == CART_CONFLICT)
        s_explain_conflict (run);
    else
        s_error (run, "the item was refused by the shard");
    return rc;
}

static void
s_item_not_found (run_t *run)
{
    const cart_request_t *req = run->req;
    s_error (run, "item '%.*s' is not in customer '%.*s''s cart", (int)req->item.id_len,
             req->item.id, (int)req->customer_len, req->customer);
}

static int
s_run_set (run_t *run)
{
    cart_item_t stored;
    int rc = cart_apply (run->part, run->req, run->key, &stored);
    if (rc == CART_OK)
        cart_reply_encode_item (&run->pk, &stored);
    else if (rc == CART_NOT_FOUND)
        s_item_not_found (run);
    else if (rc != CART_DELETED)
        s_error (run, "the new count was refused by the shard");
    return rc;
}

static int
s_run_remove (run_t *run)
{
    int rc = cart_apply (run->part, run->req, run->key, NULL);
    if (rc == CART_NOT_FOUND)
        s_item_not_found (run);
    else if (rc != CART_DELETED)
        s_error (run, "the removal was refused by the shard");
    return rc;
}

//  Each operation's function, from CART_OPS: a new operation without one
//  does not compile, and none runs by default.
typedef int (*run_fn) (run_t *run);
#define CART_OP_RUN(NAME, name, number, request, reply, writes) [number] = s_run_##name,
static const run_fn s_runs[] = {CART_OPS (CART_OP_RUN)};
#undef CART_OP_RUN
_Static_assert(sizeof (s_runs) / sizeof (s_runs[0]) == CART_OP_COUNT + 1,
               "every operation has its function");

//  The request as its idempotency key names it: everything but the key
//  and the time, hashed.
static uint64_t
s_fingerprint (const cart_request_t *req)
{
    cart_request_t bare = *req;
    bare.at = 0;
    bare.idem = NULL;
    bare.idem_len = 0;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    uint64_t fingerprint = 0;
    if (cart_request_encode (&bare, &buf, NULL) == 0)
        fingerprint = cart_hash_key (buf.data, buf.size);
    msgpack_sbuffer_destroy (&buf);
    return fingerprint;
}

//  An earlier request with the same key, while it is kept: its answer
//  again, or why not. Returns false when there is none.
static bool
s_run_idem (run_t *run, const cart_context_t *context, uint64_t fingerprint,
            msgpack_sbuffer *out, cart_outcome_t *outcome)
{
    const cart_request_t *req = run->req;
    const cart_idem_entry_t *entry =
        cart_idem_find (cart_partition_idem (run->part), req->customer, req->customer_len,
                        req->idem, req->idem_len);
    uint64_t ttl = context->idem_ttl ? context->idem_ttl : CART_IDEM_TTL;
    if (!entry || entry->at + ttl <= context->now)
        return false;
    if (entry->fingerprint != fingerprint) {
        s_error (run,
                 "the idempotency key '%.*s' was used for another request on this cart; "
                 "use a new key for a new request",
                 (int)req->idem_len, req->idem);
        outcome->status = CART_UNPROCESSABLE;
    } else if (entry->seq > context->committed) {
        s_error (run,
                 "a request with the idempotency key '%.*s' is still being "
                 "applied; try again shortly",
                 (int)req->idem_len, req->idem);
        outcome->status = CART_CONFLICT;
    } else {
        msgpack_sbuffer_write (out, (const char *)entry->body, entry->size);
        *outcome = (cart_outcome_t){
            .status = entry->status, .version = entry->version, .replayed = true};
    }
    return true;
}

//  The request's condition on the cart's version: true when it holds;
//  else the answer is 412 with the cart.
static bool
s_run_match (run_t *run, cart_outcome_t *outcome)
{
    const cart_request_t *req = run->req;
    cart_view_t view;
    int rc =
        cart_partition_get (run->part, run->key, req->customer, req->customer_len, &view);
    bool holds =
        req->match == CART_MATCH_ANY ? rc == CART_OK : view.version == req->version;
    if (holds)
        return true;
    s_encode_cart (run);
    outcome->status = CART_PRECONDITION_FAILED;
    outcome->version = run->version;
    return false;
}

void
cart_apply_run (cart_partition_t *part, const cart_request_t *req, uint64_t key,
                const cart_context_t *context, msgpack_sbuffer *out,
                cart_outcome_t *outcome)
{
    run_t run = {.part = part, .req = req, .key = key};
    msgpack_packer_init (&run.pk, out, msgpack_sbuffer_write);
    *outcome = (cart_outcome_t){0};
    if (context->now)
        cart_partition_set_now (part, (uint32_t)context->now);
    bool writes = cart_op_writes (req->op);
    bool keyed = writes && req->idem;
    uint64_t fingerprint = keyed ? s_fingerprint (req) : 0;
    if (!context->replay) {
        if (keyed && s_run_idem (&run, context, fingerprint, out, outcome))
            return;
        if (req->match != CART_MATCH_NONE && !s_run_match (&run, outcome))
            return;
    }
    size_t start = out->size;
    outcome->status = s_runs[req->op](&run);
    outcome->changed = cart_apply_changed (req, outcome->status);
    outcome->version = outcome->changed ? cart_partition_changes (part) : run.version;
    if (keyed && outcome->changed) {
        cart_idem_entry_t entry = {.fingerprint = fingerprint,
                                   .status = (uint16_t)outcome->status,
                                   .version = outcome->version,
                                   .body = (const uint8_t *)out->data + start,
                                   .size = out->size - start,
                                   .at = context->now,
                                   .seq = context->seq};
        cart_idem_put (cart_partition_idem (part), req->customer, req->customer_len,
                       req->idem, req->idem_len, &entry);
    }
}

//  --------------------------------------------------------------------------
//  Log records

#define RECORD_EXPIRY 0 //  the first field of an expiry; a request's is its op

void
cart_apply_encode_expiry (msgpack_sbuffer *out, const char *customer, size_t customer_len,
                          uint64_t at)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, 3);
    msgpack_pack_uint8 (&pk, RECORD_EXPIRY);
    cart_mpack_pack_str (&pk, customer, customer_len);
    msgpack_pack_uint64 (&pk, at);
}

//  Decodes an expiry record; returns 1 when it is one, 0 when the body is
//  not one (a request, presumably), -1 when it is a malformed one.
static int
s_decode_expiry (const void *body, size_t size, const char **customer,
                 size_t *customer_len, uint64_t *at)
{
    cart_mpack_t r = cart_mpack_start (body, size);
    size_t n;
    uint64_t tag;
    if (cart_mpack_array (&r, 8, &n) || cart_mpack_uint (&r, UINT8_MAX, &tag) ||
        tag != RECORD_EXPIRY)
        return 0;
    if (n != 3 || cart_mpack_str (&r, CART_ID_MAX, customer, customer_len) ||
        !cart_id_valid (*customer, *customer_len) ||
        cart_mpack_uint (&r, UINT64_MAX, at) || !cart_mpack_done (&r))
        return -1;
    return 1;
}

//  Decodes a record into *req (an expiry: op 0, customer and at only) and
//  checks its shard; sets *key.
static int
s_decode_record (const void *body, size_t size, uint32_t shard, uint32_t shards,
                 cart_request_t *req, uint64_t *key, const char **error)
{
    memset (req, 0, sizeof (*req));
    int expiry =
        s_decode_expiry (body, size, &req->customer, &req->customer_len, &req->at);
    if (expiry < 0)
        CART_FAIL (error, "an expiry record is not [0, customer, at]");
    if (expiry == 0 && cart_request_decode (body, size, req, error))
        return -1;
    *key = cart_hash_key (req->customer, req->customer_len);
    if (cart_ring_shard (*key, shards) != shard) {
        *error = cart_errorf ("customer '%.*s' belongs to shard %u of %u, not %u",
                              (int)req->customer_len, req->customer,
                              cart_ring_shard (*key, shards), shards, shard);
        return -1;
    }
    return 0;
}

int
cart_apply_record_check (const void *body, size_t size, uint32_t shard, uint32_t shards,
                         const char **error)
{
    cart_request_t req;
    uint64_t key;
    return s_decode_record (body, size, shard, shards, &req, &key, error);
}

int
cart_apply_record (cart_partition_t *part, const void *body, size_t size, uint32_t shard,
                   uint32_t shards, const char **error)
{
    cart_request_t req;
    uint64_t key;
    if (s_decode_record (body, size, shard, shards, &req, &key, error))
        return -1;
    if (req.at)
        cart_partition_set_now (part, (uint32_t)req.at);
    if (req.op == RECORD_EXPIRY) {
        cart_partition_drop (part, key, req.customer, req.customer_len);
        return 0;
    }
    if (!req.idem) {
        cart_apply (part, &req, key, NULL);
        return 0;
    }
    //  A change made with a key keeps its answer: it is made again as it
    //  was served, to rebuild that answer
    cart_context_t context = {.now = req.at, .replay = true};
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    cart_outcome_t outcome;
    cart_apply_run (part, &req, key, &context, &out, &outcome);
    msgpack_sbuffer_destroy (&out);
    return 0;
}
