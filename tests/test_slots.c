/*  test_slots - the table of requests in flight (cart_slots): taking,
    finding and freeing slots, correlation ids that a reused slot does not
    answer to, expiry in deadline order, a full table, and no corr of 0.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cart_slots.h"

#define COUNT(array) (sizeof (array) / sizeof ((array)[0]))

static void
test_slots_take_find_free (void **state)
{
    cart_slots_t *slots = cart_slots_new (8, 1);
    assert_int_equal (cart_slots_pending (slots), 0);
    assert_int_equal (cart_slots_next_timeout (slots, 0), -1);
    assert_int_equal (cart_slots_expired (slots, INT64_MAX), CART_SLOT_NONE);

    uint64_t corr[3];
    uint32_t slot[3];
    for (int i = 0; i < 3; i++) {
        slot[i] = cart_slots_take (slots, 1000 + i, &corr[i]);
        assert_int_not_equal (slot[i], CART_SLOT_NONE);
        assert_true (slot[i] < 8);
        assert_int_not_equal (corr[i], 0);
        assert_int_equal (cart_slots_pending (slots), (size_t)i + 1);
        for (int j = 0; j < i; j++) {
            assert_int_not_equal (slot[i], slot[j]);
            assert_int_not_equal (corr[i], corr[j]);
        }
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal (cart_slots_find (slots, corr[i]), slot[i]);
        assert_int_equal (cart_slots_corr (slots, slot[i]), corr[i]);
    }

    cart_slots_free (slots, slot[1]);
    assert_int_equal (cart_slots_pending (slots), 2);
    assert_int_equal (cart_slots_find (slots, corr[1]), CART_SLOT_NONE);
    assert_int_equal (cart_slots_find (slots, corr[0]), slot[0]);
    assert_int_equal (cart_slots_find (slots, corr[2]), slot[2]);

    cart_slots_free (slots, slot[0]);
    cart_slots_free (slots, slot[2]);
    assert_int_equal (cart_slots_pending (slots), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal (cart_slots_find (slots, corr[i]), CART_SLOT_NONE);
    assert_int_equal (cart_slots_next_timeout (slots, 0), -1);
    cart_slots_destroy (&slots);
    assert_null (slots);
    cart_slots_destroy (&slots); //  twice is harmless
}

//  A freed slot, taken again, has a new corr: a late reply to its old
//  request does not find the new one.
static void
test_slots_stale_corr (void **state)
{
    cart_slots_t *slots = cart_slots_new (1, 77);
    uint64_t seen[100];
    for (int round = 0; round < 100; round++) {
        uint64_t corr;
        assert_int_equal (cart_slots_take (slots, round, &corr), 0);
        assert_int_not_equal (corr, 0);
        for (int j = 0; j < round; j++) {
            assert_int_not_equal (corr, seen[j]);
            assert_int_equal (cart_slots_find (slots, seen[j]), CART_SLOT_NONE);
        }
        assert_int_equal (cart_slots_find (slots, corr), 0);
        seen[round] = corr;
        cart_slots_free (slots, 0);
        assert_int_equal (cart_slots_find (slots, corr), CART_SLOT_NONE);
    }
    cart_slots_destroy (&slots);
}

//  Ids that were never given find nothing.
static void
test_slots_find_unknown (void **state)
{
    cart_slots_t *slots = cart_slots_new (4, 1);
    uint64_t corr;
    uint32_t slot = cart_slots_take (slots, 10, &corr);
    assert_int_not_equal (slot, CART_SLOT_NONE);
    //  0, the mark of a free slot, matches none, in flight or free
    assert_int_equal (cart_slots_find (slots, 0), CART_SLOT_NONE);
    //  The same slot with another sequence
    assert_int_equal (cart_slots_find (slots, corr + (1ULL << 16)), CART_SLOT_NONE);
    assert_int_equal (cart_slots_find (slots, corr - (1ULL << 16)), CART_SLOT_NONE);
    //  Another slot's index under this sequence: free, or past capacity
    uint64_t sequence = corr & ~(uint64_t)0xFFFF;
    for (uint64_t index = 0; index < 0x10000; index++)
        if (index != slot)
            assert_int_equal (cart_slots_find (slots, sequence | index), CART_SLOT_NONE);
    assert_int_equal (cart_slots_find (slots, UINT64_MAX), CART_SLOT_NONE);
    assert_int_equal (cart_slots_find (slots, corr), slot);
    cart_slots_destroy (&slots);
}

//  Slots expire earliest deadline first, whatever order they were taken
//  in; equal deadlines in the order taken.
static void
test_slots_expiry_order (void **state)
{
    cart_slots_t *slots = cart_slots_new (16, 1);
    const int64_t deadlines[] = {50, 10, 30, 10, 70, 20, 5, 70, 60, 10};
    uint32_t slot[COUNT (deadlines)];
    for (size_t i = 0; i < COUNT (deadlines); i++) {
        uint64_t corr;
        slot[i] = cart_slots_take (slots, deadlines[i], &corr);
        assert_int_not_equal (slot[i], CART_SLOT_NONE);
    }
    assert_int_equal (cart_slots_next_timeout (slots, 0), 5);
    assert_int_equal (cart_slots_next_timeout (slots, 3), 2);
    assert_int_equal (cart_slots_next_timeout (slots, 5), 0);
    assert_int_equal (cart_slots_next_timeout (slots, 1000), 0);
    //  Nothing has expired before the earliest deadline; it has at it
    assert_int_equal (cart_slots_expired (slots, 4), CART_SLOT_NONE);
    assert_int_equal (cart_slots_expired (slots, 5), slot[6]);
    //  ...and stays in flight until freed
    assert_int_equal (cart_slots_expired (slots, 5), slot[6]);
    assert_int_equal (cart_slots_pending (slots), COUNT (deadlines));

    //  Free one from the middle of the list: the rest keep their order
    cart_slots_free (slots, slot[2]); //  deadline 30

    const size_t order[] = {6, 1, 3, 9, 5, 0, 8, 4, 7};
    for (size_t i = 0; i < COUNT (order); i++) {
        int64_t deadline = deadlines[order[i]];
        assert_int_equal (cart_slots_next_timeout (slots, 0), deadline);
        assert_int_equal (cart_slots_expired (slots, deadline - 1), CART_SLOT_NONE);
        uint32_t expired = cart_slots_expired (slots, 1000);
        if (expired != slot[order[i]])
            fail_msg ("expiry %zu: slot %u, expected %u (deadline %lld)", i, expired,
                      slot[order[i]], (long long)deadline);
        cart_slots_free (slots, expired);
    }
    assert_int_equal (cart_slots_pending (slots), 0);
    assert_int_equal (cart_slots_expired (slots, INT64_MAX), CART_SLOT_NONE);
    assert_int_equal (cart_slots_next_timeout (slots, 0), -1);
    cart_slots_destroy (&slots);
}

//  Random takes and frees against a plain model: the slot that expires
//  first is always the earliest deadline, earliest taken among equals.
static void
test_slots_expiry_model (void **state)
{
    enum { CAPACITY = 64 };
    cart_slots_t *slots = cart_slots_new (CAPACITY, 12345);
    struct {
        bool used;
        uint64_t corr;
        int64_t deadline;
        uint64_t taken; //  order of taking
    } model[CAPACITY];
    memset (model, 0, sizeof (model));
    unsigned seed = 4242;
    uint64_t clock = 0;
    size_t pending = 0;
    for (int round = 0; round < 200000; round++) {
        int action = rand_r (&seed) % 4;
        if (action < 2) {
            //  Take, with a deadline from a few distinct values
            int64_t deadline = (int64_t)(rand_r (&seed) % 8) * 100;
            uint64_t corr;
            uint32_t slot = cart_slots_take (slots, deadline, &corr);
            if (pending == CAPACITY) {
                assert_int_equal (slot, CART_SLOT_NONE);
                continue;
            }
            assert_true (slot < CAPACITY);
            assert_false (model[slot].used);
            assert_int_not_equal (corr, 0);
            model[slot].used = true;
            model[slot].corr = corr;
            model[slot].deadline = deadline;
            model[slot].taken = clock++;
            pending++;
        } else if (action == 2 && pending) {
            //  Free a random slot in flight, as a reply would
            uint32_t slot;
            do
                slot = (uint32_t)(rand_r (&seed) % CAPACITY);
            while (!model[slot].used);
            assert_int_equal (cart_slots_find (slots, model[slot].corr), slot);
            cart_slots_free (slots, slot);
            model[slot].used = false;
            pending--;
        } else {
            //  Expire the head, as a timer would
            int64_t now = (int64_t)(rand_r (&seed) % 8) * 100;
            uint32_t want = CART_SLOT_NONE;
            for (uint32_t i = 0; i < CAPACITY; i++)
                if (model[i].used &&
                    (want == CART_SLOT_NONE || model[i].deadline < model[want].deadline ||
                     (model[i].deadline == model[want].deadline &&
                      model[i].taken < model[want].taken)))
                    want = i;
            int64_t wait = want == CART_SLOT_NONE       ? -1
                           : model[want].deadline > now ? model[want].deadline - now
                                                        : 0;
            assert_int_equal (cart_slots_next_timeout (slots, now), wait);
            if (want != CART_SLOT_NONE && model[want].deadline > now)
                want = CART_SLOT_NONE;
            uint32_t got = cart_slots_expired (slots, now);
            if (got != want)
                fail_msg ("round %d: expired %u, model says %u", round, got, want);
            if (got != CART_SLOT_NONE) {
                cart_slots_free (slots, got);
                model[got].used = false;
                pending--;
            }
        }
        assert_int_equal (cart_slots_pending (slots), pending);
    }
    cart_slots_destroy (&slots);
}

//  A full table takes no more, until a slot is freed.
static void
test_slots_capacity (void **state)
{
    const uint32_t capacities[] = {1, 3, CART_SLOTS_MAX};
    for (size_t c = 0; c < COUNT (capacities); c++) {
        uint32_t capacity = capacities[c];
        cart_slots_t *slots = cart_slots_new (capacity, 1);
        uint64_t *corrs = calloc (capacity, sizeof (uint64_t));
        bool *taken = calloc (capacity, sizeof (bool));
        for (uint32_t i = 0; i < capacity; i++) {
            uint64_t corr;
            uint32_t slot = cart_slots_take (slots, 0, &corr);
            assert_true (slot < capacity);
            assert_false (taken[slot]);
            assert_int_not_equal (corr, 0);
            taken[slot] = true;
            corrs[slot] = corr;
        }
        assert_int_equal (cart_slots_pending (slots), capacity);
        uint64_t corr = 12345;
        assert_int_equal (cart_slots_take (slots, 0, &corr), CART_SLOT_NONE);
        assert_int_equal (cart_slots_take (slots, 0, &corr), CART_SLOT_NONE);
        assert_int_equal (cart_slots_pending (slots), capacity);
        for (uint32_t i = 0; i < capacity; i++)
            assert_int_equal (cart_slots_find (slots, corrs[i]), i);

        //  One freed: one more taken, and it is that slot
        uint32_t last = capacity - 1;
        cart_slots_free (slots, last);
        assert_int_equal (cart_slots_take (slots, 0, &corr), last);
        assert_int_not_equal (corr, corrs[last]);
        assert_int_equal (cart_slots_take (slots, 0, &corr), CART_SLOT_NONE);
        free (corrs);
        free (taken);
        cart_slots_destroy (&slots);
    }
}

//  No corr is 0, even where the sequence wraps: slot 0 with sequence 0
//  would be 0.
static void
test_slots_corr_never_zero (void **state)
{
    const uint64_t firsts[] = {0,          (1ULL << 48) - 1, (1ULL << 48) - 3,
                               1ULL << 48, UINT64_MAX,       UINT64_MAX - 1};
    for (size_t f = 0; f < COUNT (firsts); f++) {
        cart_slots_t *slots = cart_slots_new (1, firsts[f]);
        uint64_t previous = 0;
        for (int round = 0; round < 10; round++) {
            uint64_t corr = 0;
            assert_int_equal (cart_slots_take (slots, 0, &corr), 0);
            if (corr == 0)
                fail_msg ("first sequence %llu, take %d: corr 0",
                          (unsigned long long)firsts[f], round);
            assert_int_not_equal (corr, previous);
            assert_int_equal (cart_slots_find (slots, corr), 0);
            previous = corr;
            cart_slots_free (slots, 0);
            assert_int_equal (cart_slots_find (slots, 0), CART_SLOT_NONE);
        }
        cart_slots_destroy (&slots);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_slots_take_find_free),
        cmocka_unit_test (test_slots_stale_corr),
        cmocka_unit_test (test_slots_find_unknown),
        cmocka_unit_test (test_slots_expiry_order),
        cmocka_unit_test (test_slots_expiry_model),
        cmocka_unit_test (test_slots_capacity),
        cmocka_unit_test (test_slots_corr_never_zero),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
