/*  test_partition - the cart partition against its contract: every
    operation and status, argument checks that change nothing, insertion
    order, the limits at and one past them, customers whose keys collide,
    strings that alias the partition, a seeded random run against a naive
    model over 200,000 customers, incremental resizing (the step call's
    contract, every step within its bound through fifteen doublings with
    the longest add printed, operations on carts in both tables while they
    move, the model through waves of doublings and halvings with idle
    steps between, destruction mid-resize), and the memory that each
    stored item costs (printed, not judged).
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cart_partition.h"

//  splitmix64, 63 bits: keys and random choices, reproducible.
static uint64_t
s_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFULL;
}

static cart_item_t
s_item (const char *id, uint32_t count, uint64_t price, bool sale, const char *expiry)
{
    return (cart_item_t){.id = id,
                         .id_len = strlen (id),
                         .count = count,
                         .price_cents = price,
                         .special_sale = sale,
                         .expiry = expiry,
                         .expiry_len = expiry ? strlen (expiry) : 0};
}

//  Shorthands taking NUL-terminated strings.
static int
s_add (cart_partition_t *p, uint64_t key, const char *customer, cart_item_t item,
       cart_item_t *stored)
{
    return cart_partition_add (p, key, customer, strlen (customer), &item, stored);
}

static int
s_set (cart_partition_t *p, uint64_t key, const char *customer, const char *id,
       uint32_t count, cart_item_t *stored)
{
    return cart_partition_set_count (p, key, customer, strlen (customer), id, strlen (id),
                                     count, stored);
}

static int
s_remove (cart_partition_t *p, uint64_t key, const char *customer, const char *id)
{
    return cart_partition_remove (p, key, customer, strlen (customer), id, strlen (id));
}

static int
s_drop (cart_partition_t *p, uint64_t key, const char *customer)
{
    return cart_partition_drop (p, key, customer, strlen (customer));
}

static bool
s_bytes_are (const char *bytes, size_t len, const char *text)
{
    return bytes && len == strlen (text) && memcmp (bytes, text, len) == 0;
}

static void
s_assert_item (const cart_item_t *item, const char *id, uint32_t count, uint64_t price,
               bool sale, const char *expiry)
{
    assert_true (s_bytes_are (item->id, item->id_len, id));
    assert_int_equal (item->count, count);
    assert_int_equal (item->price_cents, price);
    assert_int_equal (item->special_sale, sale);
    if (expiry)
        assert_true (s_bytes_are (item->expiry, item->expiry_len, expiry));
    else {
        assert_null (item->expiry);
        assert_int_equal (item->expiry_len, 0);
    }
}

//  The cart as text, "id*count@price[s][{expiry}];..." in view order, or
//  "-" when the customer has no cart. Checks the view's own fields on the
//  way. Caller frees.
static char *
s_dump (cart_partition_t *p, uint64_t key, const char *customer)
{
    cart_view_t view;
    int rc = cart_partition_get (p, key, customer, strlen (customer), &view);
    assert_true (rc == CART_OK || rc == CART_NOT_FOUND);
    assert_true (s_bytes_are (view.customer, view.customer_len, customer));
    char *text;
    size_t size;
    FILE *out = open_memstream (&text, &size);
    assert_non_null (out);
    fputs (rc == CART_OK ? "" : "-", out);
    size_t n = 0;
    cart_item_t item;
    for (; cart_view_next (&view, &item); n++)
        fprintf (out, "%.*s*%u@%llu%s{%.*s};", (int)item.id_len, item.id, item.count,
                 (unsigned long long)item.price_cents, item.special_sale ? "s" : "",
                 (int)item.expiry_len, item.expiry ? item.expiry : "");
    assert_int_equal (n, view.n_items);
    assert_true (rc == CART_OK ? n > 0 : n == 0);
    fclose (out);
    return text;
}

static void
s_assert_dump (cart_partition_t *p, uint64_t key, const char *customer,
               const char *expected)
{
    char *text = s_dump (p, key, customer);
    assert_string_equal (text, expected);
    free (text);
}

//  What "nothing changed" compares: the totals and one cart's content.
typedef struct {
    size_t carts, items, bytes;
    char *dump;
} snap_t;

static snap_t
s_snap (cart_partition_t *p, uint64_t key, const char *customer)
{
    return (snap_t){cart_partition_carts (p), cart_partition_items (p),
                    cart_partition_bytes (p), s_dump (p, key, customer)};
}

static void
s_assert_unchanged (cart_partition_t *p, uint64_t key, const char *customer,
                    snap_t *before)
{
    snap_t after = s_snap (p, key, customer);
    assert_int_equal (after.carts, before->carts);
    assert_int_equal (after.items, before->items);
    assert_int_equal (after.bytes, before->bytes);
    assert_string_equal (after.dump, before->dump);
    free (after.dump);
    free (before->dump);
}

//  --------------------------------------------------------------------------
//  Operations and statuses

static void
test_empty (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    assert_int_equal (cart_partition_carts (p), 0);
    assert_int_equal (cart_partition_items (p), 0);
    assert_true (cart_partition_bytes (p) > 0);
    const char *nobody = "nobody";
    cart_view_t view;
    assert_int_equal (cart_partition_get (p, 1, nobody, 6, &view), CART_NOT_FOUND);
    assert_ptr_equal (view.customer, nobody);
    assert_int_equal (view.customer_len, 6);
    assert_int_equal (view.n_items, 0);
    cart_item_t item;
    assert_false (cart_view_next (&view, &item));
    assert_int_equal (s_drop (p, 1, nobody), CART_NOT_FOUND);
    assert_int_equal (s_set (p, 1, nobody, "x", 1, NULL), CART_NOT_FOUND);
    assert_int_equal (s_remove (p, 1, nobody, "x"), CART_NOT_FOUND);
    cart_partition_destroy (&p);
    assert_null (p);
    cart_partition_destroy (&p);
}

static void
test_add_new (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    size_t empty_bytes = cart_partition_bytes (p);
    char id[] = "036000291459";
    cart_item_t stored;
    assert_int_equal (s_add (p, 5, "jea-265", s_item (id, 6, 5000, false, NULL), &stored),
                      CART_CREATED);
    s_assert_item (&stored, "036000291459", 6, 5000, false, NULL);
    assert_ptr_not_equal (stored.id, id); //  a copy, owned by the partition
    const char *when = "2026-12-01T00:00:00Z";
    assert_int_equal (s_add (p, 5, "jea-265", s_item ("b", 1, 0, true, when), &stored),
                      CART_CREATED);
    s_assert_item (&stored, "b", 1, 0, true, when);
    assert_ptr_not_equal (stored.expiry, when);
    assert_int_equal (cart_partition_carts (p), 1);
    assert_int_equal (cart_partition_items (p), 2);
    assert_true (cart_partition_bytes (p) > empty_bytes);

    char customer[] = "jea-265";
    cart_view_t view;
    assert_int_equal (cart_partition_get (p, 5, customer, 7, &view), CART_OK);
    assert_true (s_bytes_are (view.customer, view.customer_len, "jea-265"));
    assert_ptr_not_equal (view.customer, customer);
    assert_int_equal (view.n_items, 2);
    cart_item_t item;
    assert_true (cart_view_next (&view, &item));
    s_assert_item (&item, "036000291459", 6, 5000, false, NULL);
    assert_true (cart_view_next (&view, &item));
    s_assert_item (&item, "b", 1, 0, true, when);
    assert_false (cart_view_next (&view, &item));
    assert_false (cart_view_next (&view, &item));
    cart_partition_destroy (&p);
}

static void
test_add_merges (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    const char *e1 = "2026-12-01T00:00:00Z", *e2 = "2027-01-01T00:00:00.5+01:00";
    assert_int_equal (s_add (p, 9, "c", s_item ("A", 2, 100, false, NULL), NULL),
                      CART_CREATED);
    assert_int_equal (s_add (p, 9, "c", s_item ("B", 1, 200, true, e1), NULL),
                      CART_CREATED);
    assert_int_equal (s_add (p, 9, "c", s_item ("C", 3, 300, false, NULL), NULL),
                      CART_CREATED);
    cart_item_t stored;
    //  Every field but the count is replaced; the record grows in place.
    assert_int_equal (s_add (p, 9, "c", s_item ("A", 3, 150, true, e2), &stored),
                      CART_OK);
    s_assert_item (&stored, "A", 5, 150, true, e2);
    s_assert_dump (p, 9, "c",
                   "A*5@150s{2027-01-01T00:00:00.5+01:00};"
                   "B*1@200s{2026-12-01T00:00:00Z};C*3@300{};");
    //  The middle record shrinks; its neighbours keep their place.
    assert_int_equal (s_add (p, 9, "c", s_item ("B", 1, 250, false, NULL), &stored),
                      CART_OK);
    s_assert_item (&stored, "B", 2, 250, false, NULL);
    assert_int_equal (s_add (p, 9, "c", s_item ("C", 1, 300, false, e1), NULL), CART_OK);
    s_assert_dump (p, 9, "c",
                   "A*5@150s{2027-01-01T00:00:00.5+01:00};B*2@250{};"
                   "C*4@300{2026-12-01T00:00:00Z};");
    assert_int_equal (cart_partition_carts (p), 1);
    assert_int_equal (cart_partition_items (p), 3);
    cart_partition_destroy (&p);
}

static void
test_set_count (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    size_t empty_bytes = cart_partition_bytes (p);
    const char *e1 = "2026-12-01T00:00:00Z";
    s_add (p, 3, "c", s_item ("A", 1, 10, false, NULL), NULL);
    s_add (p, 3, "c", s_item ("B", 2, 20, true, e1), NULL);
    s_add (p, 3, "c", s_item ("C", 3, 30, false, NULL), NULL);
    cart_item_t stored;
    assert_int_equal (s_set (p, 3, "c", "B", 7, &stored), CART_OK);
    s_assert_item (&stored, "B", 7, 20, true, e1);
    assert_int_equal (s_set (p, 3, "c", "B", CART_COUNT_MAX, NULL), CART_OK);
    assert_int_equal (s_set (p, 3, "c", "B", 1, NULL), CART_OK);
    s_assert_dump (p, 3, "c", "A*1@10{};B*1@20s{2026-12-01T00:00:00Z};C*3@30{};");

    snap_t before = s_snap (p, 3, "c");
    assert_int_equal (s_set (p, 3, "c", "Z", 1, NULL), CART_NOT_FOUND);
    assert_int_equal (s_set (p, 3, "d", "A", 1, NULL), CART_NOT_FOUND);
    assert_int_equal (s_set (p, 4, "c", "A", 1, NULL), CART_NOT_FOUND);
    assert_int_equal (s_set (p, 3, "c", "Z", 0, NULL), CART_NOT_FOUND);
    s_assert_unchanged (p, 3, "c", &before);

    assert_int_equal (s_set (p, 3, "c", "B", 0, NULL), CART_DELETED);
    s_assert_dump (p, 3, "c", "A*1@10{};C*3@30{};");
    assert_int_equal (cart_partition_items (p), 2);
    assert_int_equal (s_set (p, 3, "c", "B", 0, NULL), CART_NOT_FOUND);
    assert_int_equal (s_set (p, 3, "c", "A", 0, NULL), CART_DELETED);
    assert_int_equal (s_set (p, 3, "c", "C", 0, NULL), CART_DELETED);
    s_assert_dump (p, 3, "c", "-");
    assert_int_equal (cart_partition_carts (p), 0);
    assert_int_equal (cart_partition_items (p), 0);
    assert_int_equal (cart_partition_bytes (p), empty_bytes);
    cart_partition_destroy (&p);
}

static void
test_remove (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    size_t empty_bytes = cart_partition_bytes (p);
    const char *e1 = "2026-12-01T00:00:00Z";
    s_add (p, 3, "c", s_item ("A", 1, 10, false, e1), NULL);
    s_add (p, 3, "c", s_item ("B", 2, 20, true, NULL), NULL);
    s_add (p, 3, "c", s_item ("C", 3, 30, false, e1), NULL);
    s_add (p, 3, "c", s_item ("D", 4, 40, false, NULL), NULL);
    assert_int_equal (s_remove (p, 3, "c", "B"), CART_DELETED);
    s_assert_dump (p, 3, "c",
                   "A*1@10{2026-12-01T00:00:00Z};C*3@30{2026-12-01T00:00:00Z};"
                   "D*4@40{};");
    assert_int_equal (s_remove (p, 3, "c", "D"), CART_DELETED);
    assert_int_equal (s_remove (p, 3, "c", "A"), CART_DELETED);
    s_assert_dump (p, 3, "c", "C*3@30{2026-12-01T00:00:00Z};");
    //  An item re-added after removal goes to the end.
    s_add (p, 3, "c", s_item ("A", 5, 10, false, NULL), NULL);
    s_assert_dump (p, 3, "c", "C*3@30{2026-12-01T00:00:00Z};A*5@10{};");

    snap_t before = s_snap (p, 3, "c");
    assert_int_equal (s_remove (p, 3, "c", "B"), CART_NOT_FOUND);
    assert_int_equal (s_remove (p, 3, "other", "A"), CART_NOT_FOUND);
    assert_int_equal (s_remove (p, 2, "c", "A"), CART_NOT_FOUND);
    s_assert_unchanged (p, 3, "c", &before);

    assert_int_equal (s_remove (p, 3, "c", "C"), CART_DELETED);
    assert_int_equal (s_remove (p, 3, "c", "A"), CART_DELETED);
    s_assert_dump (p, 3, "c", "-");
    assert_int_equal (s_remove (p, 3, "c", "A"), CART_NOT_FOUND);
    assert_int_equal (cart_partition_carts (p), 0);
    assert_int_equal (cart_partition_items (p), 0);
    assert_int_equal (cart_partition_bytes (p), empty_bytes);
    cart_partition_destroy (&p);
}

static void
test_drop (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    size_t empty_bytes = cart_partition_bytes (p);
    s_add (p, 1, "ann", s_item ("A", 1, 10, false, NULL), NULL);
    s_add (p, 1, "ann", s_item ("B", 1, 10, false, NULL), NULL);
    s_add (p, 2, "bob", s_item ("A", 2, 10, false, NULL), NULL);
    assert_int_equal (s_drop (p, 1, "ann"), CART_DELETED);
    s_assert_dump (p, 1, "ann", "-");
    s_assert_dump (p, 2, "bob", "A*2@10{};");
    assert_int_equal (cart_partition_carts (p), 1);
    assert_int_equal (cart_partition_items (p), 1);
    assert_int_equal (s_drop (p, 1, "ann"), CART_NOT_FOUND);
    assert_int_equal (s_drop (p, 1, "bob"), CART_NOT_FOUND);
    assert_int_equal (s_drop (p, 2, "bob"), CART_DELETED);
    assert_int_equal (cart_partition_carts (p), 0);
    assert_int_equal (cart_partition_items (p), 0);
    assert_int_equal (cart_partition_bytes (p), empty_bytes);
    cart_partition_destroy (&p);
}

//  --------------------------------------------------------------------------
//  Limits, exactly at and one past

static void
test_count_limit (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    assert_int_equal (
        s_add (p, 1, "c", s_item ("X", CART_COUNT_MAX, 1, false, NULL), NULL),
        CART_CREATED);
    assert_int_equal (
        s_add (p, 1, "c", s_item ("Y", CART_COUNT_MAX - 1, 2, false, NULL), NULL),
        CART_CREATED);
    cart_item_t stored;
    assert_int_equal (s_add (p, 1, "c", s_item ("Y", 1, 3, false, NULL), &stored),
                      CART_OK);
    assert_int_equal (stored.count, CART_COUNT_MAX);

    //  One past: conflict, and neither count nor price nor sale replaced.
    snap_t before = s_snap (p, 1, "c");
    const char *e = "2026-12-01T00:00:00Z";
    assert_int_equal (s_add (p, 1, "c", s_item ("X", 1, 9, true, e), NULL),
                      CART_CONFLICT);
    assert_int_equal (s_add (p, 1, "c", s_item ("Y", CART_COUNT_MAX, 9, true, e), NULL),
                      CART_CONFLICT);
    assert_int_equal (
        s_add (p, 1, "c", s_item ("Z", CART_COUNT_MAX + 1, 1, false, NULL), NULL),
        CART_BAD_REQUEST);
    assert_int_equal (s_set (p, 1, "c", "X", CART_COUNT_MAX + 1, NULL), CART_BAD_REQUEST);
    s_assert_unchanged (p, 1, "c", &before);
    s_assert_dump (p, 1, "c", "X*1000000@1{};Y*1000000@3{};");
    cart_partition_destroy (&p);
}

static void
s_fill_cart (cart_partition_t *p, const char *customer, int n, int id_len,
             const char *expiry)
{
    char id[CART_ID_MAX + 1];
    for (int i = 0; i < n; i++) {
        snprintf (id, sizeof (id), "%0*d", id_len, i);
        assert_int_equal (s_add (p, 1, customer, s_item (id, 1, i, i % 2, expiry), NULL),
                          CART_CREATED);
    }
}

//  Returns the index that the view's next item's id encodes.
static int
s_next_index (cart_view_t *view)
{
    cart_item_t item;
    assert_true (cart_view_next (view, &item));
    char id[CART_ID_MAX + 1];
    memcpy (id, item.id, item.id_len);
    id[item.id_len] = 0;
    return atoi (id);
}

static void
test_items_limit (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    s_fill_cart (p, "c", CART_ITEMS_MAX, 4, NULL);
    assert_int_equal (cart_partition_items (p), CART_ITEMS_MAX);
    snap_t before = s_snap (p, 1, "c");
    assert_int_equal (s_add (p, 1, "c", s_item ("1000", 1, 1, false, NULL), NULL),
                      CART_CONFLICT);
    s_assert_unchanged (p, 1, "c", &before);
    //  A full cart still merges into its items.
    assert_int_equal (s_add (p, 1, "c", s_item ("0500", 1, 1, false, NULL), NULL),
                      CART_OK);
    assert_int_equal (s_remove (p, 1, "c", "0000"), CART_DELETED);
    assert_int_equal (s_add (p, 1, "c", s_item ("1000", 1, 1, false, NULL), NULL),
                      CART_CREATED);
    cart_view_t view;
    assert_int_equal (cart_partition_get (p, 1, "c", 1, &view), CART_OK);
    assert_int_equal (view.n_items, CART_ITEMS_MAX);
    for (int i = 1; i <= CART_ITEMS_MAX; i++)
        assert_int_equal (s_next_index (&view), i);

    //  The largest cart there can be: 1,000 records of the longest fields.
    char expiry[CART_EXPIRY_MAX + 1];
    memset (expiry, 'e', CART_EXPIRY_MAX);
    expiry[CART_EXPIRY_MAX] = 0;
    s_fill_cart (p, "big", CART_ITEMS_MAX, CART_ID_MAX, expiry);
    assert_int_equal (s_add (p, 1, "big", s_item ("x", 1, 1, false, NULL), NULL),
                      CART_CONFLICT);
    assert_int_equal (cart_partition_get (p, 1, "big", 3, &view), CART_OK);
    cart_item_t item;
    for (int i = 0; cart_view_next (&view, &item); i++) {
        assert_int_equal (item.id_len, CART_ID_MAX);
        assert_int_equal (item.price_cents, i);
        assert_true (s_bytes_are (item.expiry, item.expiry_len, expiry));
    }
    assert_int_equal (cart_partition_items (p), 2 * CART_ITEMS_MAX);
    cart_partition_destroy (&p);
}

//  Ids that are prefixes of stored ids, or share their length, are other
//  items: among 1,000 stored ids some share any one-byte fingerprint, so
//  this fails if a lookup trusts a fingerprint or a prefix.
static void
test_prefix_ids (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    s_fill_cart (p, "c", CART_ITEMS_MAX, 4, NULL);
    snap_t before = s_snap (p, 1, "c");
    const char *others[] = {"0", "00", "000", "099", "1", "09999", "0999a", "a999"};
    for (size_t i = 0; i < sizeof (others) / sizeof (others[0]); i++) {
        assert_int_equal (s_set (p, 1, "c", others[i], 5, NULL), CART_NOT_FOUND);
        assert_int_equal (s_remove (p, 1, "c", others[i]), CART_NOT_FOUND);
    }
    s_assert_unchanged (p, 1, "c", &before);
    char id[8];
    for (int i = 0; i < CART_ITEMS_MAX; i++) {
        snprintf (id, sizeof (id), "%04d", i);
        cart_item_t stored;
        assert_int_equal (s_set (p, 1, "c", id, 7, &stored), CART_OK);
        assert_true (s_bytes_are (stored.id, stored.id_len, id));
    }
    cart_partition_destroy (&p);
}

//  A cart gives memory back as it empties: 1,000 items then one left.
static void
test_cart_shrinks (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    size_t empty_bytes = cart_partition_bytes (p);
    s_fill_cart (p, "c", CART_ITEMS_MAX, 4, NULL);
    size_t full_bytes = cart_partition_bytes (p);
    assert_true (full_bytes > empty_bytes + CART_ITEMS_MAX * 4);
    char id[8];
    for (int i = 0; i < CART_ITEMS_MAX - 1; i++) {
        snprintf (id, sizeof (id), "%04d", i);
        assert_int_equal (s_remove (p, 1, "c", id), CART_DELETED);
    }
    s_assert_dump (p, 1, "c", "0999*1@999s{};");
    assert_true (cart_partition_bytes (p) < empty_bytes + 128);
    cart_partition_destroy (&p);
}

//  --------------------------------------------------------------------------
//  Bad arguments: CART_BAD_REQUEST, and nothing changed

static void
s_assert_bad_add (cart_partition_t *p, uint64_t key, const char *customer,
                  size_t customer_len, const cart_item_t *item)
{
    snap_t before = s_snap (p, 7, "alice");
    cart_item_t stored = {0};
    assert_int_equal (cart_partition_add (p, key, customer, customer_len, item, &stored),
                      CART_BAD_REQUEST);
    s_assert_unchanged (p, 7, "alice", &before);
}

static void
test_bad_add (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    cart_item_t good = s_item ("A", 1, 10, false, NULL);
    assert_int_equal (s_add (p, 7, "alice", good, NULL), CART_CREATED);
    char long_id[CART_ID_MAX + 2];
    memset (long_id, 'a', sizeof (long_id));
    char long_expiry[CART_EXPIRY_MAX + 1];
    memset (long_expiry, '9', sizeof (long_expiry));

    s_assert_bad_add (p, 1ULL << 63, "alice", 5, &good);
    s_assert_bad_add (p, UINT64_MAX, "alice", 5, &good);
    s_assert_bad_add (p, 7, NULL, 5, &good);
    s_assert_bad_add (p, 7, "alice", 0, &good);
    s_assert_bad_add (p, 7, long_id, CART_ID_MAX + 1, &good);
    s_assert_bad_add (p, 7, "al/ce", 5, &good);
    s_assert_bad_add (p, 7, "al ce", 5, &good);
    s_assert_bad_add (p, 7, "al\xc3\xa9", 4, &good);
    s_assert_bad_add (p, 7, "alice", 6, &good); //  the NUL is in range
    s_assert_bad_add (p, 7, "alice", 5, NULL);

    cart_item_t bad = good;
    bad.id = NULL;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.id_len = 0;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.id = long_id, bad.id_len = CART_ID_MAX + 1;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.id = "A?", bad.id_len = 2;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.count = 0;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.count = CART_COUNT_MAX + 1;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.count = UINT32_MAX;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.price_cents = CART_PRICE_MAX + 1;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.price_cents = UINT64_MAX;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.expiry = "", bad.expiry_len = 0;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.expiry = long_expiry, bad.expiry_len = CART_EXPIRY_MAX + 1;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    bad = good, bad.expiry = NULL, bad.expiry_len = 3;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    //  A bad merge into the existing item changes nothing either.
    bad = good, bad.price_cents = CART_PRICE_MAX + 1, bad.count = 5;
    s_assert_bad_add (p, 7, "alice", 5, &bad);
    cart_partition_destroy (&p);
}

//  Each field exactly at its limit is accepted.
static void
test_good_at_limits (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    char id[CART_ID_MAX + 1], expiry[CART_EXPIRY_MAX + 1];
    memset (id, 'Z', CART_ID_MAX);
    id[CART_ID_MAX] = 0;
    memset (expiry, 'T', CART_EXPIRY_MAX);
    expiry[CART_EXPIRY_MAX] = 0;
    const uint64_t key = (1ULL << 63) - 1;
    cart_item_t stored;
    cart_item_t item = s_item (id, CART_COUNT_MAX, CART_PRICE_MAX, true, expiry);
    assert_int_equal (s_add (p, key, id, item, &stored), CART_CREATED);
    s_assert_item (&stored, id, CART_COUNT_MAX, CART_PRICE_MAX, true, expiry);
    assert_int_equal (
        s_add (p, 0, "a", s_item ("._~@:-09azAZ", 1, 0, false, "x"), &stored),
        CART_CREATED);
    s_assert_item (&stored, "._~@:-09azAZ", 1, 0, false, "x");
    cart_view_t view;
    assert_int_equal (cart_partition_get (p, key, id, CART_ID_MAX, &view), CART_OK);
    assert_true (s_bytes_are (view.customer, view.customer_len, id));
    assert_true (cart_view_next (&view, &stored));
    s_assert_item (&stored, id, CART_COUNT_MAX, CART_PRICE_MAX, true, expiry);
    cart_partition_destroy (&p);
}

static void
s_assert_bad_others (cart_partition_t *p, uint64_t key, const char *customer,
                     size_t customer_len, const char *id, size_t id_len)
{
    snap_t before = s_snap (p, 7, "alice");
    cart_item_t stored;
    assert_int_equal (
        cart_partition_set_count (p, key, customer, customer_len, id, id_len, 1, &stored),
        CART_BAD_REQUEST);
    assert_int_equal (
        cart_partition_set_count (p, key, customer, customer_len, id, id_len, 0, &stored),
        CART_BAD_REQUEST);
    assert_int_equal (cart_partition_remove (p, key, customer, customer_len, id, id_len),
                      CART_BAD_REQUEST);
    bool id_ok = cart_id_valid (id, id_len);
    if (id_ok) { //  get and drop take no item id
        cart_view_t view;
        assert_int_equal (cart_partition_get (p, key, customer, customer_len, &view),
                          CART_BAD_REQUEST);
        assert_int_equal (view.n_items, 0);
        assert_int_equal (cart_partition_drop (p, key, customer, customer_len),
                          CART_BAD_REQUEST);
    }
    s_assert_unchanged (p, 7, "alice", &before);
}

static void
test_bad_others (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    assert_int_equal (s_add (p, 7, "alice", s_item ("A", 1, 10, false, NULL), NULL),
                      CART_CREATED);
    char long_id[CART_ID_MAX + 1];
    memset (long_id, 'A', sizeof (long_id));

    s_assert_bad_others (p, 1ULL << 63, "alice", 5, "A", 1);
    s_assert_bad_others (p, UINT64_MAX, "alice", 5, "A", 1);
    s_assert_bad_others (p, 7, NULL, 5, "A", 1);
    s_assert_bad_others (p, 7, "alice", 0, "A", 1);
    s_assert_bad_others (p, 7, long_id, CART_ID_MAX + 1, "A", 1);
    s_assert_bad_others (p, 7, "ali#e", 5, "A", 1);
    s_assert_bad_others (p, 7, "alice", 5, NULL, 1);
    s_assert_bad_others (p, 7, "alice", 5, "A", 0);
    s_assert_bad_others (p, 7, long_id, 5, long_id, CART_ID_MAX + 1);
    s_assert_bad_others (p, 7, "alice", 5, "A%", 2);
    snap_t before = s_snap (p, 7, "alice");
    assert_int_equal (s_set (p, 7, "alice", "A", CART_COUNT_MAX + 1, NULL),
                      CART_BAD_REQUEST);
    assert_int_equal (s_set (p, 7, "alice", "A", UINT32_MAX, NULL), CART_BAD_REQUEST);
    s_assert_unchanged (p, 7, "alice", &before);
    cart_partition_destroy (&p);
}

//  --------------------------------------------------------------------------
//  Colliding keys, aliasing

static void
test_same_key (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    const uint64_t key = 938870058641657986ULL;
    assert_int_equal (s_add (p, key, "cust-a", s_item ("X", 1, 10, false, NULL), NULL),
                      CART_CREATED);
    assert_int_equal (s_add (p, key, "cust-b", s_item ("X", 2, 20, false, NULL), NULL),
                      CART_CREATED);
    assert_int_equal (s_add (p, key, "cust-a2", s_item ("X", 3, 30, false, NULL), NULL),
                      CART_CREATED);
    assert_int_equal (cart_partition_carts (p), 3);
    s_assert_dump (p, key, "cust-a", "X*1@10{};");
    s_assert_dump (p, key, "cust-b", "X*2@20{};");
    s_assert_dump (p, key, "cust-a2", "X*3@30{};");
    //  The same customer under another key is another cart (the caller
    //  always gives one customer the same key).
    s_assert_dump (p, key + 1, "cust-a", "-");

    assert_int_equal (s_remove (p, key, "cust-a", "X"), CART_DELETED);
    s_assert_dump (p, key, "cust-a", "-");
    s_assert_dump (p, key, "cust-b", "X*2@20{};");
    s_assert_dump (p, key, "cust-a2", "X*3@30{};");
    assert_int_equal (s_drop (p, key, "cust-b"), CART_DELETED);
    s_assert_dump (p, key, "cust-a2", "X*3@30{};");
    assert_int_equal (cart_partition_carts (p), 1);
    cart_partition_destroy (&p);
}

#define CLUSTER 64  //  customers on one key
#define SCATTER 500 //  customers on their own keys

static uint64_t
s_cluster_key (int i)
{
    uint64_t seed = (uint64_t)i;
    return i < CLUSTER ? 12345 : s_next (&seed);
}

static void
s_assert_cluster (cart_partition_t *p, const bool *live)
{
    char name[32];
    for (int i = 0; i < CLUSTER + SCATTER; i++) {
        int len = snprintf (name, sizeof (name), "c%d", i);
        cart_view_t view;
        cart_item_t item;
        int rc = cart_partition_get (p, s_cluster_key (i), name, (size_t)len, &view);
        assert_int_equal (rc, live[i] ? CART_OK : CART_NOT_FOUND);
        assert_true (s_bytes_are (view.customer, view.customer_len, name));
        assert_int_equal (cart_view_next (&view, &item), live[i]);
        if (live[i])
            assert_int_equal (item.count, i + 1);
    }
}

//  A long probe run of one key among others, emptied in random order:
//  every removal shifts the run back, and every cart stays findable.
static void
test_same_key_cluster (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    size_t empty_bytes = cart_partition_bytes (p);
    int order[CLUSTER + SCATTER];
    bool live[CLUSTER + SCATTER];
    char name[32];
    for (int i = 0; i < CLUSTER + SCATTER; i++) {
        snprintf (name, sizeof (name), "c%d", i);
        assert_int_equal (s_add (p, s_cluster_key (i), name,
                                 s_item ("X", (uint32_t)i + 1, 0, false, NULL), NULL),
                          CART_CREATED);
        order[i] = i, live[i] = true;
    }
    uint64_t rng = 77;
    for (int i = CLUSTER + SCATTER - 1; i > 0; i--) {
        int j = (int)(s_next (&rng) % (uint64_t)(i + 1));
        int swap = order[i];
        order[i] = order[j], order[j] = swap;
    }
    for (int i = 0; i < CLUSTER + SCATTER; i++) {
        snprintf (name, sizeof (name), "c%d", order[i]);
        assert_int_equal (s_drop (p, s_cluster_key (order[i]), name), CART_DELETED);
        live[order[i]] = false;
        if (i % 8 == 0)
            s_assert_cluster (p, live);
    }
    assert_int_equal (cart_partition_carts (p), 0);
    assert_int_equal (cart_partition_bytes (p), empty_bytes);
    cart_partition_destroy (&p);
}

//  Items whose strings point into the partition itself, as a caller that
//  echoes a stored item or copies from a view would pass them.
static void
test_aliasing (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    const char *e1 = "2026-12-01T00:00:00.123456789+01:00";
    cart_item_t a, b;
    s_add (p, 1, "c", s_item ("A", 1, 10, false, e1), &a);
    s_add (p, 1, "c", s_item ("B", 1, 20, false, NULL), &b);
    assert_int_equal (s_set (p, 1, "c", "A", 1, &a), CART_OK); //  a fresh view of A
    //  B takes A's expiry, read from A's record while B's record grows.
    cart_item_t item = b;
    item.expiry = a.expiry, item.expiry_len = a.expiry_len;
    assert_int_equal (cart_partition_add (p, 1, "c", 1, &item, &b), CART_OK);
    s_assert_item (&b, "B", 2, 20, false, e1);
    //  A merged with itself, as stored.
    assert_int_equal (cart_partition_add (p, 1, "c", 1, &b, &b), CART_OK);
    s_assert_item (&b, "B", 4, 20, false, e1);
    //  A cart copied into another through a view.
    cart_view_t view;
    assert_int_equal (cart_partition_get (p, 1, "c", 1, &view), CART_OK);
    for (int i = 0; i < 2; i++) {
        assert_true (cart_view_next (&view, &item));
        assert_int_equal (cart_partition_add (p, 2, "d", 1, &item, NULL), CART_CREATED);
    }
    s_assert_dump (p, 2, "d",
                   "A*1@10{2026-12-01T00:00:00.123456789+01:00};"
                   "B*4@20{2026-12-01T00:00:00.123456789+01:00};");
    cart_partition_destroy (&p);
}

//  --------------------------------------------------------------------------
//  A seeded random run against a naive model

#define M_CUSTOMERS 200000
#define M_IDS       8
#define M_EXPIRIES  3

static const char *m_ids[M_IDS] = {"036000291452",  "a",
                                   "4006381333931", "item-with-a-much-longer-id.v2",
                                   "x:y",           "9780201633610",
                                   "b~c@d",         "0"};
static const char *m_expiries[M_EXPIRIES] = {NULL, "2026-12-01T00:00:00Z",
                                             "2027-06-30T23:59:59.999+02:00"};

typedef struct {
    uint64_t price;
    uint32_t count;
    uint8_t id, expiry;
    bool sale;
} m_item_t;

typedef struct {
    uint8_t n;
    m_item_t items[M_IDS]; //  in insertion order
} m_cart_t;

typedef struct {
    cart_partition_t *p;
    m_cart_t *carts; //  one per customer
    size_t n_carts, n_items;
    uint64_t rng;
    char name[32]; //  the current customer's id
} model_t;

//  Customers below m_cluster (0 unless a test sets it) all share one key,
//  a probe run as long as they are many.
static uint32_t m_cluster;

//  Every fifth customer shares its key with the one before.
static uint64_t
m_key (uint32_t customer)
{
    if (customer < m_cluster)
        return 0x5EED5EED5EEDULL;
    uint64_t seed = customer - (customer % 5 == 4);
    return s_next (&seed);
}

static const char *
m_name (model_t *m, uint32_t customer)
{
    snprintf (m->name, sizeof (m->name), "cust-%06u", customer);
    return m->name;
}

static int
m_find (const m_cart_t *cart, uint8_t id)
{
    for (int i = 0; i < cart->n; i++)
        if (cart->items[i].id == id)
            return i;
    return -1;
}

static void
m_remove_at (model_t *m, m_cart_t *cart, int at)
{
    memmove (&cart->items[at], &cart->items[at + 1],
             (size_t)(cart->n - at - 1) * sizeof (m_item_t));
    cart->n--;
    m->n_items--;
    m->n_carts -= cart->n == 0;
}

static void
m_assert_item (const cart_item_t *item, const m_item_t *expected)
{
    s_assert_item (item, m_ids[expected->id], expected->count, expected->price,
                   expected->sale, m_expiries[expected->expiry]);
}

static void
m_check_cart (model_t *m, uint32_t customer)
{
    const m_cart_t *cart = &m->carts[customer];
    const char *name = m_name (m, customer);
    cart_view_t view;
    int rc = cart_partition_get (m->p, m_key (customer), name, strlen (name), &view);
    assert_int_equal (rc, cart->n ? CART_OK : CART_NOT_FOUND);
    assert_true (s_bytes_are (view.customer, view.customer_len, name));
    assert_int_equal (view.n_items, cart->n);
    cart_item_t item;
    for (int i = 0; i < cart->n; i++) {
        assert_true (cart_view_next (&view, &item));
        m_assert_item (&item, &cart->items[i]);
    }
    assert_false (cart_view_next (&view, &item));
}

static uint32_t
m_random_count (model_t *m)
{
    uint64_t r = s_next (&m->rng);
    if (r % 50 == 0) //  near the limit, so that merges conflict
        return CART_COUNT_MAX - (uint32_t)(r / 50 % 20);
    return 1 + (uint32_t)(r / 50 % 5);
}

static void
m_add (model_t *m, uint32_t customer)
{
    uint64_t r = s_next (&m->rng);
    m_item_t new = {.id = r % M_IDS,
                    .expiry = r / M_IDS % M_EXPIRIES,
                    .sale = r / 64 % 2,
                    .price = s_next (&m->rng) % (CART_PRICE_MAX + 1),
                    .count = m_random_count (m)};
    cart_item_t item =
        s_item (m_ids[new.id], new.count, new.price, new.sale, m_expiries[new.expiry]);
    m_cart_t *cart = &m->carts[customer];
    int at = m_find (cart, new.id);
    int expected = CART_CREATED;
    if (at >= 0) {
        new.count += cart->items[at].count;
        expected = new.count > CART_COUNT_MAX ? CART_CONFLICT : CART_OK;
        if (expected == CART_OK)
            cart->items[at] = new;
    } else {
        m->n_carts += cart->n == 0;
        m->n_items++;
        cart->items[at = cart->n++] = new;
    }
    cart_item_t stored;
    int rc = s_add (m->p, m_key (customer), m_name (m, customer), item, &stored);
    assert_int_equal (rc, expected);
    if (rc != CART_CONFLICT)
        m_assert_item (&stored, &cart->items[at]);
}

static void
m_set (model_t *m, uint32_t customer)
{
    uint64_t r = s_next (&m->rng);
    uint8_t id = r % M_IDS;
    uint32_t count = r / M_IDS % 4 == 0 ? 0 : m_random_count (m);
    m_cart_t *cart = &m->carts[customer];
    int at = m_find (cart, id);
    int expected = at < 0 ? CART_NOT_FOUND : count ? CART_OK : CART_DELETED;
    if (expected == CART_OK)
        cart->items[at].count = count;
    if (expected == CART_DELETED)
        m_remove_at (m, cart, at);
    cart_item_t stored;
    assert_int_equal (
        s_set (m->p, m_key (customer), m_name (m, customer), m_ids[id], count, &stored),
        expected);
    if (expected == CART_OK)
        m_assert_item (&stored, &cart->items[at]);
}

static void
m_remove (model_t *m, uint32_t customer)
{
    uint8_t id = s_next (&m->rng) % M_IDS;
    m_cart_t *cart = &m->carts[customer];
    int at = m_find (cart, id);
    if (at >= 0)
        m_remove_at (m, cart, at);
    assert_int_equal (s_remove (m->p, m_key (customer), m_name (m, customer), m_ids[id]),
                      at < 0 ? CART_NOT_FOUND : CART_DELETED);
}

static void
m_drop (model_t *m, uint32_t customer)
{
    m_cart_t *cart = &m->carts[customer];
    int expected = cart->n ? CART_DELETED : CART_NOT_FOUND;
    m->n_carts -= cart->n != 0;
    m->n_items -= cart->n;
    cart->n = 0;
    assert_int_equal (s_drop (m->p, m_key (customer), m_name (m, customer)), expected);
}

static void
m_random_op (model_t *m, uint32_t customer)
{
    uint64_t op = s_next (&m->rng) % 100;
    if (op < 50)
        m_add (m, customer);
    else if (op < 65)
        m_set (m, customer);
    else if (op < 80)
        m_remove (m, customer);
    else if (op < 84)
        m_drop (m, customer);
    else
        m_check_cart (m, customer);
    assert_int_equal (cart_partition_carts (m->p), m->n_carts);
    assert_int_equal (cart_partition_items (m->p), m->n_items);
}

//  Customers join one every third step, so the table grows from 16 slots
//  past 200,000 carts through every doubling, with removals, drops and
//  merges on the customers already there in between; the whole partition
//  is compared with the model every 100,000 steps and at the end, then
//  emptied back to its first size.
static void
test_random_model (void **state)
{
    (void)state;
    model_t m = {.p = cart_partition_new (), .rng = 20240601};
    m.carts = calloc (M_CUSTOMERS, sizeof (m_cart_t));
    assert_non_null (m.carts);
    size_t empty_bytes = cart_partition_bytes (m.p);
    size_t peak_carts = 0;
    uint32_t joined = 0;
    for (uint32_t step = 0; step < 3 * M_CUSTOMERS; step++) {
        if (step % 3 == 0)
            m_add (&m, joined++);
        else
            m_random_op (&m, (uint32_t)(s_next (&m.rng) % joined));
        if (m.n_carts > peak_carts)
            peak_carts = m.n_carts;
        if ((step + 1) % 100000 == 0)
            for (uint32_t c = 0; c < joined; c++)
                m_check_cart (&m, c);
    }
    printf ("random run: %zu carts at peak, %zu carts and %zu items at the end\n",
            peak_carts, m.n_carts, m.n_items);
    assert_true (peak_carts > 100000);
    for (uint32_t c = 0; c < M_CUSTOMERS; c++)
        m_drop (&m, c);
    assert_int_equal (cart_partition_carts (m.p), 0);
    assert_int_equal (cart_partition_items (m.p), 0);
    assert_int_equal (cart_partition_bytes (m.p), empty_bytes);
    free (m.carts);
    cart_partition_destroy (&m.p);
}

//  --------------------------------------------------------------------------
//  Incremental resizing

static cart_rehash_stats_t
s_stats (cart_partition_t *p)
{
    cart_rehash_stats_t stats;
    cart_partition_rehash_stats (p, &stats);
    return stats;
}

//  What the latest step did is within its contract for max_buckets, and
//  it did one kind of work at most.
static void
s_assert_step (const cart_rehash_stats_t *stats, size_t max_buckets)
{
    assert_true (stats->step_moved <= max_buckets);
    assert_true (stats->step_moved <= stats->step_visited);
    assert_true (stats->step_visited <= CART_REHASH_VISITS * max_buckets);
    assert_true (stats->step_cleared <= CART_REHASH_CLEAR_MAX);
    assert_true (stats->step_released <= CART_REHASH_RELEASE_MAX);
    int kinds = (stats->step_visited > 0) + (stats->step_cleared > 0) +
                (stats->step_released > 0);
    assert_true (kinds <= 1);
    assert_true (stats->old_carts <= stats->old_slots);
    if (!stats->resizing)
        assert_int_equal (stats->old_slots, 0);
}

static void
s_assert_op_step (cart_partition_t *p)
{
    cart_rehash_stats_t stats = s_stats (p);
    s_assert_step (&stats, CART_REHASH_BUCKETS);
}

//  Takes idle steps until none is left, and then no resize is due: the
//  table is at most 3/4 full, and at least 1/8 unless at its first size.
//  Returns how many steps it took.
static size_t
s_drain (cart_partition_t *p, size_t max_buckets)
{
    size_t steps = 0;
    while (cart_partition_rehash_step (p, max_buckets)) {
        cart_rehash_stats_t stats = s_stats (p);
        s_assert_step (&stats, max_buckets ? max_buckets : 1);
        assert_true (stats.resizing);
        assert_true (++steps < 100000000);
    }
    cart_rehash_stats_t stats = s_stats (p);
    assert_false (stats.resizing);
    size_t carts = cart_partition_carts (p);
    assert_true (carts * 4 <= stats.slots * 3);
    assert_true (stats.slots == 16 || carts * 8 >= stats.slots);
    return steps;
}

static double
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static uint64_t
s_plain_key (uint32_t c)
{
    uint64_t seed = c + 1000000007ULL;
    return s_next (&seed);
}

//  Adds customer c's cart with one item, its price c.
static void
s_add_plain (cart_partition_t *p, uint32_t c)
{
    char name[32];
    snprintf (name, sizeof (name), "plain-%u", c);
    assert_int_equal (
        s_add (p, s_plain_key (c), name, s_item ("X", 1, c, false, NULL), NULL),
        CART_CREATED);
}

static void
s_assert_plain (cart_partition_t *p, uint32_t c, bool live)
{
    char name[32], expected[48];
    snprintf (name, sizeof (name), "plain-%u", c);
    snprintf (expected, sizeof (expected), "X*1@%u{};", c);
    s_assert_dump (p, s_plain_key (c), name, live ? expected : "-");
}

//  The step call's contract: each step within its budget (0 counting as
//  1), true exactly while work remains, and a resize that idle steps
//  alone carry to its end, over as many steps as its carts need.
static void
test_rehash_step_api (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    assert_false (cart_partition_rehash_step (p, 16)); //  nothing to do
    cart_rehash_stats_t stats = s_stats (p);
    assert_false (stats.resizing);
    assert_int_equal (stats.slots, 16);
    assert_int_equal (stats.step_moved + stats.step_visited + stats.step_cleared, 0);

    //  Fill to the brink of the doubling from 8,192 slots (6,144 carts),
    //  then let the doubling begin.
    uint32_t c = 0;
    while (s_stats (p).slots < 8192 || s_stats (p).resizing)
        s_add_plain (p, c++), s_drain (p, 64);
    while (c < 6145)
        s_add_plain (p, c++);
    stats = s_stats (p);
    assert_true (stats.resizing);
    //  Clearing: 128 KiB of new table, at most one page per step.
    size_t clearing = 0;
    while (s_stats (p).old_slots == 0) {
        assert_true (cart_partition_rehash_step (p, 1000));
        stats = s_stats (p);
        assert_true (stats.step_cleared > 0 && stats.step_cleared <= 4096);
        clearing++;
    }
    assert_true (clearing >= 16384 * 16 / 4096);
    assert_int_equal (stats.old_slots, 8192);
    assert_int_equal (stats.slots, 16384);
    assert_int_equal (stats.old_carts, 6145);
    //  Moving with budgets 0, 1, 2, 3: never more than that.
    size_t budget = 0, moved = 0, steps = 0;
    while (s_stats (p).old_carts > 0) {
        bool more = cart_partition_rehash_step (p, budget);
        stats = s_stats (p);
        s_assert_step (&stats, budget ? budget : 1);
        assert_true (more == stats.resizing);
        moved += stats.step_moved;
        steps++;
        budget = (budget + 1) % 4;
    }
    assert_int_equal (moved, 6145); //  every cart moved once, no more
    assert_true (steps >= 6145 / 3);
    //  Giving back the old 128 KiB, 256 KiB a step at most: one step.
    assert_true (s_stats (p).resizing);
    assert_false (cart_partition_rehash_step (p, 1));
    stats = s_stats (p);
    assert_int_equal (stats.step_released, 8192 * 16);
    assert_false (stats.resizing);
    assert_int_equal (stats.slots, 16384);
    assert_int_equal (cart_partition_carts (p), 6145);
    for (uint32_t i = 0; i < c; i++)
        s_assert_plain (p, i, true);
    assert_false (cart_partition_rehash_step (p, 1));
    cart_partition_destroy (&p);

    //  Emptied while it doubles: idle steps alone take it back down to 16
    //  slots, one halving after another, and give all the memory back.
    p = cart_partition_new ();
    size_t empty_bytes = cart_partition_bytes (p);
    for (c = 0; c < 6144; c++)
        s_add_plain (p, c), s_drain (p, 64);
    s_add_plain (p, c++);
    assert_true (s_stats (p).resizing);
    char name[32];
    for (uint32_t i = 0; i < c; i++) {
        snprintf (name, sizeof (name), "plain-%u", i);
        assert_int_equal (s_drop (p, s_plain_key (i), name), CART_DELETED);
    }
    s_drain (p, 3);
    stats = s_stats (p);
    assert_int_equal (stats.slots, 16);
    assert_int_equal (cart_partition_bytes (p), empty_bytes);
    cart_partition_destroy (&p);

    //  An idle worker may ask for as much as it likes in one step.
    p = cart_partition_new ();
    for (c = 0; c < 6144; c++)
        s_add_plain (p, c), s_drain (p, 64);
    s_add_plain (p, c++);
    while (s_stats (p).old_slots == 0)
        cart_partition_rehash_step (p, SIZE_MAX);
    assert_true (cart_partition_rehash_step (p, SIZE_MAX));
    stats = s_stats (p);
    assert_int_equal (stats.step_moved, 6145);
    assert_int_equal (stats.old_slots, 0);
    assert_true (stats.resizing); //  the old table is still to give back
    cart_partition_destroy (&p);
}

//  Grows from 16 to 524,288 slots (nine tables mapped and given back),
//  checking every add's step against the bound, and that each resize's
//  carts all moved, in steps. Prints the longest add; asserts no time.
static void
test_resize_bounded_steps (void **state)
{
    (void)state;
    const uint32_t carts = 393216; //  3/4 of 524,288: one more would double it
    cart_partition_t *p = cart_partition_new ();
    size_t resizing_steps = 0, moved = 0, to_move = 0, longest_resize = 0, run = 0;
    size_t old_slots = 0;
    double longest = 0, longest_moving = 0;
    uint32_t longest_at = 0;
    for (uint32_t c = 0; c < carts; c++) {
        double t0 = s_now_us ();
        s_add_plain (p, c);
        double took = s_now_us () - t0;
        cart_rehash_stats_t stats = s_stats (p);
        s_assert_step (&stats, CART_REHASH_BUCKETS);
        if (took > longest)
            longest = took, longest_at = c + 1;
        if (stats.step_moved && took > longest_moving)
            longest_moving = took;
        moved += stats.step_moved;
        resizing_steps += stats.resizing;
        if (stats.old_slots != old_slots) { //  moving began or ended
            if (stats.old_slots)
                to_move += stats.old_carts + stats.step_moved, run = 0;
            old_slots = stats.old_slots;
        }
        if (stats.old_slots && ++run > longest_resize)
            longest_resize = run;
    }
    s_drain (p, CART_REHASH_BUCKETS);
    cart_rehash_stats_t stats = s_stats (p);
    print_message ("%u adds: longest %.1f us (add %u), longest that moved carts %.1f us; "
                   "%zu resizes over %zu of the steps, the longest moving over %zu\n",
                   carts, longest, longest_at, longest_moving, stats.resizes,
                   resizing_steps, longest_resize);
    assert_int_equal (stats.resizes, 15); //  16 -> 524,288 slots
    assert_int_equal (stats.slots, 524288);
    assert_int_equal (moved, to_move); //  each resize moved all its old carts
    //  The last doubling moved 196,608+ carts, 16 at most per add.
    assert_true (longest_resize >= 196608 / CART_REHASH_BUCKETS);
    for (uint32_t c = 0; c < carts; c += 97)
        s_assert_plain (p, c, true);
    cart_partition_destroy (&p);
}

//  Gets, adds, set counts, removals and drops while carts are moving,
//  each checked against the model, on carts in both tables: a dropped
//  cart is known to have been in the old table when old_carts falls by
//  one more than the step moved. Half of them go to 100 customers on one
//  key, whose run is longer than a step moves: a move that stranded the
//  rest of a run would show there.
static void
test_ops_during_resize (void **state)
{
    (void)state;
    const uint32_t customers = 60000;
    m_cluster = 100;
    model_t m = {.p = cart_partition_new (), .rng = 4242};
    m.carts = calloc (customers, sizeof (m_cart_t));
    assert_non_null (m.carts);
    size_t ops_moving = 0, drops_old = 0, drops_new = 0;
    uint32_t joined = 0;
    while (joined < customers) {
        m_add (&m, joined++);
        s_assert_op_step (m.p);
        cart_rehash_stats_t before = s_stats (m.p);
        if (before.old_carts == 0)
            continue; //  carts not moving
        for (int k = 0; k < 3; k++) {
            uint32_t c = (uint32_t)(s_next (&m.rng) % joined);
            if (k % 2 == 0)
                c %= m_cluster;
            before = s_stats (m.p);
            switch (s_next (&m.rng) % 5) {
                case 0:
                    m_check_cart (&m, c);
                    break;
                case 1:
                    m_add (&m, c);
                    break;
                case 2:
                    m_set (&m, c);
                    break;
                case 3:
                    m_remove (&m, c);
                    break;
                default: {
                    bool had = m.carts[c].n > 0;
                    m_drop (&m, c);
                    cart_rehash_stats_t after = s_stats (m.p);
                    if (had && before.old_carts > 0 && after.old_slots) {
                        size_t fell =
                            before.old_carts - after.old_carts - after.step_moved;
                        assert_true (fell <= 1);
                        drops_old += fell, drops_new += 1 - fell;
                    }
                }
            }
            s_assert_op_step (m.p);
            ops_moving += before.old_carts > 0;
            assert_int_equal (cart_partition_carts (m.p), m.n_carts);
            assert_int_equal (cart_partition_items (m.p), m.n_items);
        }
    }
    print_message ("%zu operations while carts moved; drops from the old table %zu, "
                   "from the new %zu\n",
                   ops_moving, drops_old, drops_new);
    assert_true (ops_moving > 3000);
    assert_true (drops_old > 100 && drops_new > 100);
    for (uint32_t c = 0; c < customers; c++)
        m_check_cart (&m, c);
    m_cluster = 0;
    free (m.carts);
    cart_partition_destroy (&m.p);
}

//  The model through many doublings and halvings: waves of joins, then of
//  drops, over 50,000 customers, with idle steps of random budgets taken
//  between operations and the whole partition compared with the model
//  while carts are moving. Ends empty, back at its first size.
static void
test_random_model_resizing (void **state)
{
    (void)state;
    const uint32_t customers = 50000, wave = 100000, waves = 10;
    model_t m = {.p = cart_partition_new (), .rng = 31337};
    m.carts = calloc (customers, sizeof (m_cart_t));
    assert_non_null (m.carts);
    size_t empty_bytes = cart_partition_bytes (m.p);
    size_t idle_steps = 0, halvings_seen = 0, checks_moving = 0, checks_halving = 0;
    bool check_due = false, halving_check_due = false;
    for (uint32_t step = 0; step < wave * waves; step++) {
        bool growing = step / wave % 2 == 0;
        uint32_t c = (uint32_t)(s_next (&m.rng) % customers);
        uint64_t r = s_next (&m.rng) % 100;
        if (growing ? r < 60 : r < 2)
            m_add (&m, c);
        else if (!growing && r < 80) { //  a customer with a cart, mostly
            for (int tries = 0; tries < 16 && m.carts[c].n == 0; tries++)
                c = (uint32_t)(s_next (&m.rng) % customers);
            m_drop (&m, c);
        } else
            m_random_op (&m, c);
        s_assert_op_step (m.p);
        if (s_next (&m.rng) % 3 == 0) {
            size_t budget = s_next (&m.rng) % 40;
            bool more = cart_partition_rehash_step (m.p, budget);
            cart_rehash_stats_t stats = s_stats (m.p);
            s_assert_step (&stats, budget ? budget : 1);
            assert_true (more == stats.resizing);
            idle_steps++;
        }
        cart_rehash_stats_t stats = s_stats (m.p);
        halvings_seen += stats.old_slots > stats.slots;
        if ((step + 1) % 25000 == 0)
            check_due = true;
        if (check_due && stats.old_carts > stats.old_slots / 16) {
            for (uint32_t i = 0; i < customers; i++)
                m_check_cart (&m, i);
            checks_moving++;
            check_due = false;
        }
        if (halving_check_due && stats.old_slots > stats.slots &&
            stats.old_carts > stats.old_slots / 32) {
            for (uint32_t i = 0; i < customers; i++)
                m_check_cart (&m, i);
            checks_halving++;
            halving_check_due = false;
        }
        if ((step + 1) % wave == 0)
            halving_check_due = true;
        if ((step + 1) % 100000 == 0) //  now and then, idle steps to the end
            s_drain (m.p, 1 + step % 100);
    }
    cart_rehash_stats_t stats = s_stats (m.p);
    print_message ("%zu resizes, %zu idle steps, %zu steps into halvings, "
                   "%zu whole checks while moving, %zu of them halving\n",
                   stats.resizes, idle_steps, halvings_seen,
                   checks_moving + checks_halving, checks_halving);
    assert_true (stats.resizes >= 40);
    assert_true (halvings_seen > 500);
    assert_true (checks_moving >= 10 && checks_halving >= 3);
    for (uint32_t c = 0; c < customers; c++)
        m_check_cart (&m, c);
    for (uint32_t c = 0; c < customers; c++)
        m_drop (&m, c);
    s_drain (m.p, 7);
    assert_int_equal (cart_partition_carts (m.p), 0);
    assert_int_equal (cart_partition_items (m.p), 0);
    assert_int_equal (s_stats (m.p).slots, 16);
    assert_int_equal (cart_partition_bytes (m.p), empty_bytes);
    free (m.carts);
    cart_partition_destroy (&m.p);
}

//  Destroyed in each phase of a resize: nothing leaks (the sanitizer
//  build checks) and the new table is not read before it is zeroed.
static void
test_destroy_mid_resize (void **state)
{
    (void)state;
    for (int phase = 0; phase < 4; phase++) {
        cart_partition_t *p = cart_partition_new ();
        uint32_t c = 0;
        while (c < 6144)
            s_add_plain (p, c++), s_drain (p, 64);
        s_add_plain (p, c++); //  the doubling from 8,192 slots begins
        cart_rehash_stats_t stats = s_stats (p);
        assert_true (stats.resizing && stats.old_slots == 0 && stats.slots == 8192);
        if (phase >= 1) { //  carts in both tables
            while (s_stats (p).old_slots == 0)
                cart_partition_rehash_step (p, 4);
            for (int i = 0; i < 100; i++)
                cart_partition_rehash_step (p, 4);
            stats = s_stats (p);
            assert_true (stats.old_carts > 0 && stats.old_carts < 6145);
        }
        if (phase >= 2) { //  the old table still to give back
            while (s_stats (p).old_slots)
                cart_partition_rehash_step (p, 4);
            assert_true (s_stats (p).resizing);
        }
        if (phase >= 3)
            s_drain (p, 4);
        assert_int_equal (cart_partition_carts (p), 6145);
        cart_partition_destroy (&p);
        assert_null (p);
    }
}

//  --------------------------------------------------------------------------
//  Memory per stored item

static size_t
s_rss (void)
{
    FILE *file = fopen ("/proc/self/statm", "r");
    assert_non_null (file);
    unsigned long size, resident;
    assert_int_equal (fscanf (file, "%lu %lu", &size, &resident), 2);
    fclose (file);
    return resident * (size_t)sysconf (_SC_PAGESIZE);
}

//  100,000 carts of 10 items, 12-digit barcodes, no expiry: the shape the
//  benchmark gives Redis as one hash per cart. Runs first, on a fresh heap,
//  so that RSS growth is the partition's own.
static void
test_memory_per_item (void **state)
{
    (void)state;
    const int carts = 100000, items = 10;
    uint64_t rng = 42;
    char customer[32], barcode[16];
    size_t rss_before = s_rss ();
    cart_partition_t *p = cart_partition_new ();
    for (int c = 0; c < carts; c++) {
        int len = snprintf (customer, sizeof (customer), "customer-%06d", c);
        uint64_t key = s_next (&rng);
        for (int i = 0; i < items; i++) {
            snprintf (barcode, sizeof (barcode), "%012llu",
                      (unsigned long long)(s_next (&rng) % 1000000000000ULL));
            cart_item_t item = s_item (barcode, 1 + (uint32_t)(s_next (&rng) % 5),
                                       s_next (&rng) % 100000, false, NULL);
            int rc = cart_partition_add (p, key, customer, (size_t)len, &item, NULL);
            assert_true (rc == CART_CREATED || rc == CART_OK);
        }
    }
    size_t rss_after = s_rss ();
    size_t stored = cart_partition_items (p), bytes = cart_partition_bytes (p);
    assert_int_equal (cart_partition_carts (p), carts);
    double rss_per_item = ((double)rss_after - (double)rss_before) / (double)stored;
    printf ("partition memory: %.1f bytes/item (allocator-requested), "
            "%.1f bytes/item (RSS), %zu carts, %zu items\n",
            (double)bytes / (double)stored, rss_per_item, (size_t)carts, stored);
    assert_true (stored > (size_t)carts * (items - 1));
    assert_true (bytes >= stored * 12); //  at least the barcodes themselves
    assert_true (rss_per_item > 0);
    cart_partition_destroy (&p);
}

//  --------------------------------------------------------------------------
//  Versions: the change count, carts' versions and times

//  The cart's version (0: none) and time.
static uint64_t
s_version (cart_partition_t *p, uint64_t key, const char *customer, uint32_t *touched)
{
    cart_view_t view;
    cart_partition_get (p, key, customer, strlen (customer), &view);
    if (touched)
        *touched = view.touched;
    return view.version;
}

//  Each successful change counts one, and stamps its cart with the count
//  and the clock; other carts keep theirs.
static void
test_versions_count_changes (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    cart_partition_set_now (p, 1000);
    assert_int_equal (cart_partition_changes (p), 0);
    uint32_t touched;
    assert_int_equal (s_version (p, 1, "ann", &touched), 0);
    assert_int_equal (s_add (p, 1, "ann", s_item ("A", 1, 10, false, NULL), NULL),
                      CART_CREATED);
    assert_int_equal (cart_partition_changes (p), 1);
    assert_int_equal (s_version (p, 1, "ann", &touched), 1);
    assert_int_equal (touched, 1000);
    cart_partition_set_now (p, 1010);
    assert_int_equal (s_add (p, 1, "ann", s_item ("A", 2, 10, false, NULL), NULL),
                      CART_OK); //  merged
    assert_int_equal (s_version (p, 1, "ann", &touched), 2);
    assert_int_equal (touched, 1010);
    cart_partition_set_now (p, 1020);
    assert_int_equal (s_set (p, 1, "ann", "A", 7, NULL), CART_OK);
    assert_int_equal (s_version (p, 1, "ann", &touched), 3);
    assert_int_equal (touched, 1020);
    assert_int_equal (s_add (p, 1, "ann", s_item ("B", 1, 10, false, NULL), NULL),
                      CART_CREATED);
    assert_int_equal (s_version (p, 1, "ann", NULL), 4);
    cart_partition_set_now (p, 1030);
    assert_int_equal (s_remove (p, 1, "ann", "B"), CART_DELETED);
    assert_int_equal (s_version (p, 1, "ann", &touched), 5);
    assert_int_equal (touched, 1030);
    //  Another cart's change leaves ann's version and time
    cart_partition_set_now (p, 2000);
    assert_int_equal (s_add (p, 2, "bob", s_item ("A", 1, 10, false, NULL), NULL),
                      CART_CREATED);
    assert_int_equal (cart_partition_changes (p), 6);
    assert_int_equal (s_version (p, 2, "bob", &touched), 6);
    assert_int_equal (touched, 2000);
    assert_int_equal (s_version (p, 1, "ann", &touched), 5);
    assert_int_equal (touched, 1030);
    //  A get, a walk and the clock change nothing
    cart_partition_set_now (p, 3000);
    size_t cursor = 0, seen = 0;
    cart_view_t view;
    uint64_t key;
    while (cart_partition_next (p, &cursor, &view, &key)) {
        assert_int_equal (view.version, key == 1 ? 5 : 6);
        assert_int_equal (view.touched, key == 1 ? 1030 : 2000);
        seen++;
    }
    assert_int_equal (seen, 2);
    assert_int_equal (cart_partition_changes (p), 6);
    //  A drop counts one too
    assert_int_equal (s_drop (p, 2, "bob"), CART_DELETED);
    assert_int_equal (cart_partition_changes (p), 7);
    assert_int_equal (s_version (p, 2, "bob", NULL), 0);
    cart_partition_destroy (&p);
}

//  What fails (404, 409, 400) counts no change and leaves every version.
static void
test_versions_failures_change_nothing (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    cart_partition_set_now (p, 100);
    s_add (p, 1, "ann", s_item ("A", CART_COUNT_MAX, 10, false, NULL), NULL);
    s_fill_cart (p, "full", CART_ITEMS_MAX, 4, NULL);
    uint64_t changes = cart_partition_changes (p);
    uint64_t ann = s_version (p, 1, "ann", NULL);
    uint64_t full = s_version (p, 1, "full", NULL);
    cart_partition_set_now (p, 200);
    char long_id[CART_ID_MAX + 2];
    memset (long_id, 'x', sizeof (long_id) - 1);
    long_id[sizeof (long_id) - 1] = 0;
    const int rcs[] = {
        s_add (p, 1, "ann", s_item ("A", 1, 10, false, NULL), NULL),
        s_add (p, 1, "full", s_item ("new", 1, 10, false, NULL), NULL),
        s_add (p, 1, "ann", s_item ("A", 0, 10, false, NULL), NULL),
        s_add (p, 1, "ann", s_item (long_id, 1, 10, false, NULL), NULL),
        s_set (p, 1, "ann", "nope", 1, NULL),
        s_set (p, 1, "nobody", "A", 1, NULL),
        s_set (p, 1, "ann", "A", CART_COUNT_MAX + 1, NULL),
        s_remove (p, 1, "ann", "nope"),
        s_remove (p, 1, "ann", "a b"),
        s_drop (p, 1, "nobody"),
        s_drop (p, 1, "no body"),
    };
    const int want[] = {CART_CONFLICT,    CART_CONFLICT,   CART_BAD_REQUEST,
                        CART_BAD_REQUEST, CART_NOT_FOUND,  CART_NOT_FOUND,
                        CART_BAD_REQUEST, CART_NOT_FOUND,  CART_BAD_REQUEST,
                        CART_NOT_FOUND,   CART_BAD_REQUEST};
    for (size_t i = 0; i < sizeof (rcs) / sizeof (rcs[0]); i++)
        if (rcs[i] != want[i])
            fail_msg ("failure %zu: %d, not %d", i, rcs[i], want[i]);
    assert_int_equal (cart_partition_changes (p), changes);
    uint32_t touched;
    assert_int_equal (s_version (p, 1, "ann", &touched), ann);
    assert_int_equal (touched, 100);
    assert_int_equal (s_version (p, 1, "full", &touched), full);
    assert_int_equal (touched, 100);
    assert_int_equal (s_version (p, 1, "nobody", NULL), 0);
    cart_partition_destroy (&p);
}

//  A cart removed (dropped, its last item removed or set to 0) and made
//  again never takes back a version it had.
static void
test_versions_after_removal (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    uint64_t last = 0;
    for (int how = 0; how < 3; how++) {
        assert_int_equal (s_add (p, 1, "ann", s_item ("A", 1, 10, false, NULL), NULL),
                          CART_CREATED);
        uint64_t version = s_version (p, 1, "ann", NULL);
        assert_true (version > last);
        uint64_t changes = cart_partition_changes (p);
        assert_int_equal (version, changes);
        if (how == 0)
            assert_int_equal (s_drop (p, 1, "ann"), CART_DELETED);
        else if (how == 1)
            assert_int_equal (s_remove (p, 1, "ann", "A"), CART_DELETED);
        else
            assert_int_equal (s_set (p, 1, "ann", "A", 0, NULL), CART_DELETED);
        assert_int_equal (cart_partition_changes (p), changes + 1);
        assert_int_equal (s_version (p, 1, "ann", NULL), 0);
        assert_int_equal (cart_partition_carts (p), 0);
        last = version;
    }
    assert_int_equal (s_add (p, 1, "ann", s_item ("B", 1, 10, false, NULL), NULL),
                      CART_CREATED);
    assert_int_equal (s_version (p, 1, "ann", NULL), 7);
    cart_partition_destroy (&p);
}

//  A snapshot's load: restore sets a cart's version and time, set_changes
//  the count; neither counts a change.
static void
test_versions_restore (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    assert_int_equal (cart_partition_restore (p, 1, "ann", 3, 5, 5), CART_NOT_FOUND);
    s_add (p, 1, "ann", s_item ("A", 1, 10, false, NULL), NULL);
    s_add (p, 2, "bob", s_item ("A", 1, 10, false, NULL), NULL);
    assert_int_equal (cart_partition_restore (p, 1, "ann", 3, 40, 1234), CART_OK);
    assert_int_equal (cart_partition_changes (p), 2);
    uint32_t touched;
    assert_int_equal (s_version (p, 1, "ann", &touched), 40);
    assert_int_equal (touched, 1234);
    assert_int_equal (s_version (p, 2, "bob", NULL), 2);
    assert_int_equal (cart_partition_restore (p, 1, "ann", 3, 1ULL << 63, 1),
                      CART_BAD_REQUEST);
    assert_int_equal (cart_partition_restore (p, 1, "a b", 3, 1, 1), CART_BAD_REQUEST);
    assert_int_equal (cart_partition_restore (p, 2, "ann", 3, 1, 1), CART_NOT_FOUND);
    assert_int_equal (s_version (p, 1, "ann", NULL), 40);
    assert_int_equal (cart_partition_restore (p, 1, "ann", 3, (1ULL << 63) - 1, 0),
                      CART_OK);
    assert_int_equal (s_version (p, 1, "ann", NULL), (1ULL << 63) - 1);
    cart_partition_set_changes (p, 100);
    assert_int_equal (cart_partition_changes (p), 100);
    cart_partition_set_now (p, 7);
    s_add (p, 2, "bob", s_item ("B", 1, 10, false, NULL), NULL);
    assert_int_equal (s_version (p, 2, "bob", &touched), 101);
    assert_int_equal (touched, 7);
    cart_partition_destroy (&p);
}

//  --------------------------------------------------------------------------
//  Idempotency keys (cart_idem)

static cart_idem_entry_t
s_entry (uint64_t fingerprint, const void *body, size_t size, uint64_t at)
{
    return (cart_idem_entry_t){.fingerprint = fingerprint,
                               .status = CART_CREATED,
                               .version = fingerprint + 1,
                               .body = (const uint8_t *)body,
                               .size = size,
                               .at = at,
                               .seq = fingerprint + 2};
}

static void
s_put (cart_idem_t *idem, const char *customer, const char *key,
       const cart_idem_entry_t *entry)
{
    cart_idem_put (idem, customer, strlen (customer), key, strlen (key), entry);
}

static const cart_idem_entry_t *
s_find (cart_idem_t *idem, const char *customer, const char *key)
{
    return cart_idem_find (idem, customer, strlen (customer), key, strlen (key));
}

static void
test_idem_put_find (void **state)
{
    (void)state;
    cart_idem_t *idem = cart_idem_new ();
    assert_int_equal (cart_idem_size (idem), 0);
    assert_int_equal (cart_idem_bytes (idem), 0);
    assert_null (s_find (idem, "ann", "k1"));
    char body[] = "the answer";
    cart_idem_entry_t entry = s_entry (7, body, sizeof (body), 100);
    entry.status = CART_DELETED;
    s_put (idem, "ann", "k1", &entry);
    body[0] = 'X'; //  kept as a copy
    const cart_idem_entry_t *found = s_find (idem, "ann", "k1");
    assert_non_null (found);
    assert_int_equal (found->fingerprint, 7);
    assert_int_equal (found->status, CART_DELETED);
    assert_int_equal (found->version, 8);
    assert_int_equal (found->at, 100);
    assert_int_equal (found->seq, 9);
    assert_int_equal (found->size, sizeof (body));
    assert_memory_equal (found->body, "the answer", sizeof (body));
    assert_ptr_not_equal (found->body, body);
    //  Another customer's key, another key, names that would join alike
    assert_null (s_find (idem, "bob", "k1"));
    assert_null (s_find (idem, "ann", "k2"));
    assert_null (s_find (idem, "ann", "k"));
    s_put (idem, "ab", "c", &entry);
    assert_null (s_find (idem, "a", "bc"));
    assert_non_null (s_find (idem, "ab", "c"));
    //  An empty body
    cart_idem_entry_t empty = s_entry (1, NULL, 0, 100);
    s_put (idem, "bob", "k1", &empty);
    assert_int_equal (s_find (idem, "bob", "k1")->size, 0);
    assert_int_equal (cart_idem_size (idem), 3);
    assert_true (cart_idem_bytes (idem) > 2 * sizeof (body));
    //  Out of range: nothing kept, nothing found
    char key[CART_IDEM_MAX + 2];
    memset (key, 'k', sizeof (key) - 1);
    key[sizeof (key) - 1] = 0;
    s_put (idem, "bob", key, &entry);
    assert_null (s_find (idem, "bob", key));
    s_put (idem, "", "k", &entry);
    assert_int_equal (cart_idem_size (idem), 3);
    key[CART_IDEM_MAX] = 0; //  at the limit
    s_put (idem, "bob", key, &entry);
    assert_non_null (s_find (idem, "bob", key));
    cart_idem_destroy (&idem);
    assert_null (idem);
    cart_idem_destroy (&idem);
}

//  Putting a key again replaces its entry, and makes it the newest.
static void
test_idem_replace (void **state)
{
    (void)state;
    cart_idem_t *idem = cart_idem_new ();
    cart_idem_entry_t first = s_entry (1, "one", 3, 10);
    cart_idem_entry_t other = s_entry (2, "two", 3, 20);
    cart_idem_entry_t again = s_entry (3, "three!", 6, 30);
    s_put (idem, "ann", "k", &first);
    s_put (idem, "ann", "j", &other);
    size_t bytes = cart_idem_bytes (idem);
    s_put (idem, "ann", "k", &again);
    assert_int_equal (cart_idem_size (idem), 2);
    assert_int_equal (cart_idem_bytes (idem), bytes + 3);
    const cart_idem_entry_t *found = s_find (idem, "ann", "k");
    assert_int_equal (found->fingerprint, 3);
    assert_memory_equal (found->body, "three!", 6);
    //  The walk: j, then k (the newest)
    void *cursor = NULL;
    const char *customer, *key;
    size_t customer_len, key_len;
    const cart_idem_entry_t *entry;
    assert_true (
        cart_idem_next (idem, &cursor, &customer, &customer_len, &key, &key_len, &entry));
    assert_true (s_bytes_are (key, key_len, "j"));
    assert_true (
        cart_idem_next (idem, &cursor, &customer, &customer_len, &key, &key_len, &entry));
    assert_true (s_bytes_are (key, key_len, "k"));
    assert_true (s_bytes_are (customer, customer_len, "ann"));
    assert_int_equal (entry->fingerprint, 3);
    assert_false (
        cart_idem_next (idem, &cursor, &customer, &customer_len, &key, &key_len, &entry));
    //  Replacing a customer's only key (its holder is made again)
    s_put (idem, "bob", "k", &first);
    s_put (idem, "bob", "k", &other);
    assert_int_equal (s_find (idem, "bob", "k")->fingerprint, 2);
    assert_int_equal (cart_idem_expire (idem, UINT64_MAX, SIZE_MAX), 3);
    assert_int_equal (cart_idem_size (idem), 0);
    assert_int_equal (cart_idem_bytes (idem), 0);
    cart_idem_destroy (&idem);
}

//  A customer keeps at most CART_IDEM_PER_CART keys: the oldest of that
//  customer goes; the others' keys stay.
static void
test_idem_per_cart_bound (void **state)
{
    (void)state;
    cart_idem_t *idem = cart_idem_new ();
    char key[16];
    for (int i = 0; i < CART_IDEM_PER_CART; i++) {
        snprintf (key, sizeof (key), "k%d", i);
        cart_idem_entry_t entry = s_entry ((uint64_t)i, "x", 1, (uint64_t)i);
        s_put (idem, "ann", key, &entry);
        s_put (idem, "bob", key, &entry);
    }
    assert_int_equal (cart_idem_size (idem), 2 * CART_IDEM_PER_CART);
    cart_idem_entry_t entry = s_entry (1000, "x", 1, 1000);
    s_put (idem, "ann", "one-more", &entry);
    assert_int_equal (cart_idem_size (idem), 2 * CART_IDEM_PER_CART);
    assert_null (s_find (idem, "ann", "k0"));
    assert_non_null (s_find (idem, "ann", "k1"));
    assert_non_null (s_find (idem, "ann", "one-more"));
    assert_non_null (s_find (idem, "bob", "k0"));
    s_put (idem, "ann", "two-more", &entry);
    assert_null (s_find (idem, "ann", "k1"));
    assert_non_null (s_find (idem, "ann", "k2"));
    assert_non_null (s_find (idem, "bob", "k1"));
    //  Replacing a kept key is not one more
    s_put (idem, "ann", "k2", &entry);
    assert_non_null (s_find (idem, "ann", "k3"));
    assert_int_equal (cart_idem_size (idem), 2 * CART_IDEM_PER_CART);
    cart_idem_destroy (&idem);
}

//  ... and at most CART_IDEM_BYTES_PER_CART bytes of answers.
static void
test_idem_bytes_bound (void **state)
{
    (void)state;
    cart_idem_t *idem = cart_idem_new ();
    size_t quarter = CART_IDEM_BYTES_PER_CART / 4;
    uint8_t *body = calloc (1, CART_IDEM_BYTES_PER_CART + 1);
    assert_non_null (body);
    const char *keys[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        cart_idem_entry_t entry = s_entry ((uint64_t)i, body, quarter, 1);
        s_put (idem, "ann", keys[i], &entry);
    }
    cart_idem_entry_t small = s_entry (9, body, 10, 1);
    s_put (idem, "bob", "a", &small);
    assert_int_equal (cart_idem_size (idem), 5); //  exactly at the bound
    cart_idem_entry_t one = s_entry (5, body, 1, 1);
    s_put (idem, "ann", "e", &one);
    assert_int_equal (cart_idem_size (idem), 5);
    assert_null (s_find (idem, "ann", "a"));
    assert_non_null (s_find (idem, "ann", "b"));
    assert_non_null (s_find (idem, "ann", "e"));
    assert_non_null (s_find (idem, "bob", "a"));
    //  One answer of the whole bound is kept alone
    cart_idem_entry_t whole = s_entry (6, body, CART_IDEM_BYTES_PER_CART, 1);
    s_put (idem, "ann", "f", &whole);
    assert_non_null (s_find (idem, "ann", "f"));
    assert_null (s_find (idem, "ann", "e"));
    assert_int_equal (cart_idem_size (idem), 2);
    //  One larger is not kept (and the kept ones stay)
    cart_idem_entry_t huge = s_entry (7, body, CART_IDEM_BYTES_PER_CART + 1, 1);
    s_put (idem, "ann", "g", &huge);
    assert_null (s_find (idem, "ann", "g"));
    assert_non_null (s_find (idem, "ann", "f"));
    free (body);
    assert_int_equal (cart_idem_expire (idem, 1, 100), 2);
    assert_int_equal (cart_idem_bytes (idem), 0);
    cart_idem_destroy (&idem);
}

//  Expiry forgets the oldest first, those made at or before its time, at
//  most max per call.
static void
test_idem_expire (void **state)
{
    (void)state;
    cart_idem_t *idem = cart_idem_new ();
    const struct {
        const char *customer, *key;
        uint64_t at;
    } puts[] = {{"ann", "1", 10}, {"bob", "1", 20}, {"ann", "2", 30}, {"cy", "1", 40}};
    for (size_t i = 0; i < 4; i++) {
        cart_idem_entry_t entry = s_entry (i, "body", 4, puts[i].at);
        s_put (idem, puts[i].customer, puts[i].key, &entry);
    }
    assert_int_equal (cart_idem_expire (idem, 9, 10), 0);
    assert_int_equal (cart_idem_expire (idem, 30, 0), 0);
    assert_int_equal (cart_idem_expire (idem, 30, 1), 1);
    assert_null (s_find (idem, "ann", "1"));
    assert_non_null (s_find (idem, "bob", "1"));
    assert_int_equal (cart_idem_expire (idem, 29, 10), 1); //  20, not 30
    assert_null (s_find (idem, "bob", "1"));
    assert_non_null (s_find (idem, "ann", "2"));
    assert_int_equal (cart_idem_expire (idem, 30, 10), 1); //  at its time
    assert_int_equal (cart_idem_size (idem), 1);
    //  The walk, oldest first, after a put
    cart_idem_entry_t entry = s_entry (9, "b", 1, 50);
    s_put (idem, "ann", "3", &entry);
    void *cursor = NULL;
    const char *customer, *key;
    size_t customer_len, key_len;
    const cart_idem_entry_t *found;
    assert_true (
        cart_idem_next (idem, &cursor, &customer, &customer_len, &key, &key_len, &found));
    assert_true (s_bytes_are (customer, customer_len, "cy"));
    assert_int_equal (found->at, 40);
    assert_true (
        cart_idem_next (idem, &cursor, &customer, &customer_len, &key, &key_len, &found));
    assert_true (s_bytes_are (customer, customer_len, "ann"));
    assert_true (s_bytes_are (key, key_len, "3"));
    assert_false (
        cart_idem_next (idem, &cursor, &customer, &customer_len, &key, &key_len, &found));
    assert_int_equal (cart_idem_expire (idem, UINT64_MAX, 10), 2);
    assert_int_equal (cart_idem_size (idem), 0);
    assert_int_equal (cart_idem_bytes (idem), 0);
    cursor = NULL;
    assert_false (
        cart_idem_next (idem, &cursor, &customer, &customer_len, &key, &key_len, &found));
    //  A key made again after it was forgotten
    s_put (idem, "ann", "1", &entry);
    assert_non_null (s_find (idem, "ann", "1"));
    cart_idem_destroy (&idem); //  with a key left: ASan sees any leak
}

//  The partition holds its table of keys, and frees it
static void
test_idem_of_partition (void **state)
{
    (void)state;
    cart_partition_t *p = cart_partition_new ();
    cart_idem_t *idem = cart_partition_idem (p);
    assert_non_null (idem);
    assert_ptr_equal (cart_partition_idem (p), idem);
    cart_idem_entry_t entry = s_entry (1, "body", 4, 1);
    s_put (idem, "ann", "k", &entry);
    s_drop (p, 1, "ann"); //  keys outlive carts
    assert_non_null (s_find (idem, "ann", "k"));
    cart_partition_destroy (&p);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_memory_per_item),
        cmocka_unit_test (test_empty),
        cmocka_unit_test (test_add_new),
        cmocka_unit_test (test_add_merges),
        cmocka_unit_test (test_set_count),
        cmocka_unit_test (test_remove),
        cmocka_unit_test (test_drop),
        cmocka_unit_test (test_count_limit),
        cmocka_unit_test (test_items_limit),
        cmocka_unit_test (test_prefix_ids),
        cmocka_unit_test (test_cart_shrinks),
        cmocka_unit_test (test_bad_add),
        cmocka_unit_test (test_good_at_limits),
        cmocka_unit_test (test_bad_others),
        cmocka_unit_test (test_same_key),
        cmocka_unit_test (test_same_key_cluster),
        cmocka_unit_test (test_aliasing),
        cmocka_unit_test (test_random_model),
        cmocka_unit_test (test_rehash_step_api),
        cmocka_unit_test (test_resize_bounded_steps),
        cmocka_unit_test (test_ops_during_resize),
        cmocka_unit_test (test_random_model_resizing),
        cmocka_unit_test (test_destroy_mid_resize),
        cmocka_unit_test (test_versions_count_changes),
        cmocka_unit_test (test_versions_failures_change_nothing),
        cmocka_unit_test (test_versions_after_removal),
        cmocka_unit_test (test_versions_restore),
        cmocka_unit_test (test_idem_put_find),
        cmocka_unit_test (test_idem_replace),
        cmocka_unit_test (test_idem_per_cart_bound),
        cmocka_unit_test (test_idem_bytes_bound),
        cmocka_unit_test (test_idem_expire),
        cmocka_unit_test (test_idem_of_partition),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
