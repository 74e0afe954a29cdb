/*  =========================================================================
    fuzz_common - helpers shared by the libFuzzer targets in tests/fuzz/.

    A failed invariant prints what broke and aborts, so libFuzzer records
    the input as a crash. The check does not depend on NDEBUG.
    =========================================================================
*/
#ifndef FUZZ_COMMON_H_INCLUDED
#define FUZZ_COMMON_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart_proto.h"

#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf (stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,        \
                     #cond);                                                             \
            abort ();                                                                    \
        }                                                                                \
    } while (0)

//  Returns a fresh heap copy of len bytes, of exactly that size, so that
//  AddressSanitizer catches a read one byte past its end. Caller frees.
static inline void *
fuzz_copy (const void *data, size_t len)
{
    void *copy = malloc (len ? len : 1);
    FUZZ_CHECK (copy);
    if (len)
        memcpy (copy, data, len);
    return copy;
}

//  Returns a fresh NUL-terminated heap copy of len bytes (cut at the first
//  NUL, as a C string would be). Caller frees.
static inline char *
fuzz_strndup (const void *data, size_t len)
{
    const void *nul = memchr (data, 0, len);
    if (nul)
        len = (size_t)((const char *)nul - (const char *)data);
    char *copy = (char *)malloc (len + 1);
    FUZZ_CHECK (copy);
    memcpy (copy, data, len);
    copy[len] = 0;
    return copy;
}

static inline bool
fuzz_bytes_equal (const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && (a_len == 0 || memcmp (a, b, a_len) == 0);
}

//  Checks the rules PROTOCOL.md 4 sets on an item of a reply.
static inline void
fuzz_check_item (const cart_item_t *item)
{
    FUZZ_CHECK (cart_id_valid (item->id, item->id_len));
    FUZZ_CHECK (item->price_cents <= CART_PRICE_MAX);
    FUZZ_CHECK (item->count >= 1 && item->count <= CART_COUNT_MAX);
    if (item->expiry)
        FUZZ_CHECK (item->expiry_len >= 1 && item->expiry_len <= CART_EXPIRY_MAX);
    else
        FUZZ_CHECK (item->expiry_len == 0);
}

static inline void
fuzz_check_items_equal (const cart_item_t *a, const cart_item_t *b)
{
    FUZZ_CHECK (fuzz_bytes_equal (a->id, a->id_len, b->id, b->id_len));
    FUZZ_CHECK (a->price_cents == b->price_cents);
    FUZZ_CHECK (a->count == b->count);
    FUZZ_CHECK (a->special_sale == b->special_sale);
    FUZZ_CHECK ((a->expiry == NULL) == (b->expiry == NULL));
    if (a->expiry)
        FUZZ_CHECK (
            fuzz_bytes_equal (a->expiry, a->expiry_len, b->expiry, b->expiry_len));
}

static inline void
fuzz_check_requests_equal (const cart_request_t *a, const cart_request_t *b)
{
    FUZZ_CHECK (a->op == b->op);
    FUZZ_CHECK (
        fuzz_bytes_equal (a->customer, a->customer_len, b->customer, b->customer_len));
    if (a->op == CART_OP_GET || a->op == CART_OP_CHECKOUT)
        return;
    FUZZ_CHECK (
        fuzz_bytes_equal (a->item.id, a->item.id_len, b->item.id, b->item.id_len));
    if (a->op == CART_OP_REMOVE)
        return;
    FUZZ_CHECK (a->item.count == b->item.count);
    if (a->op == CART_OP_SET)
        return;
    fuzz_check_items_equal (&a->item, &b->item);
}

#endif
