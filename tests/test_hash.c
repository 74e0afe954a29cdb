/*  test_hash - hash_key against vectors computed independently, with
    Python's hashlib: int(hashlib.sha1(s.encode()).hexdigest(), 16) % 2**63.
    tests/hash_vectors.py checks many more, through cartctl.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cart_hash.h"

typedef struct {
    const char *text; //  NULL: 'x' repeated size times
    size_t size;
    uint64_t key;
} vector_t;

static const vector_t s_vectors[] = {
    {"", 0, 1540258082265237257ULL},
    {"jea-265", 7, 938870058641657986ULL},
    {"a", 1, 4173406296385939384ULL},
    {"customer-000123", 15, 5710147248021516046ULL},
    {"Hello, World!", 13, 6299115597312974337ULL},
    {"a\0b", 3, 3525828375037345208ULL},
    //  "ünïcödé"
    {"\xc3\xbcn\xc3\xaf"
     "c\xc3\xb6"
     "d\xc3\xa9",
     11, 5891730361480557774ULL},
    //  "日本語のカート"
    {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x82\xab\xe3\x83\xbc\xe3\x83"
     "\x88",
     21, 5104152184477676299ULL},
    //  "🛒🛍️"
    {"\xf0\x9f\x9b\x92\xf0\x9f\x9b\x8d\xef\xb8\x8f", 11, 3276690229824668695ULL},
    {NULL, 128, 3891813036647069538ULL},
    {NULL, 1000, 7883275414738728504ULL},
};
#define VECTORS (sizeof (s_vectors) / sizeof (s_vectors[0]))

static uint64_t
s_hash_vector (const vector_t *v)
{
    if (v->text)
        return cart_hash_key (v->text, v->size);
    char buffer[1000];
    assert_true (v->size <= sizeof (buffer));
    memset (buffer, 'x', v->size);
    return cart_hash_key (buffer, v->size);
}

static void
test_vectors (void **state)
{
    for (size_t i = 0; i < VECTORS; i++) {
        uint64_t key = s_hash_vector (&s_vectors[i]);
        if (key != s_vectors[i].key)
            fail_msg ("vector %zu: got %llu, want %llu", i, (unsigned long long)key,
                      (unsigned long long)s_vectors[i].key);
    }
}

static void
test_string_form (void **state)
{
    assert_int_equal (cart_hash_key_str ("jea-265"), 938870058641657986ULL);
    assert_int_equal (cart_hash_key_str (""), 1540258082265237257ULL);
}

static void
test_top_bit_clear (void **state)
{
    //  A key is below 2^63 whatever the digest
    char text[32];
    for (int i = 0; i < 10000; i++) {
        int len = snprintf (text, sizeof (text), "k%d", i);
        assert_true (cart_hash_key (text, (size_t)len) < (1ULL << 63));
    }
}

static void *
s_hash_all (void *arg)
{
    int *mismatches = (int *)arg;
    for (int round = 0; round < 200; round++)
        for (size_t i = 0; i < VECTORS; i++)
            if (s_hash_vector (&s_vectors[i]) != s_vectors[i].key)
                (*mismatches)++;
    return NULL;
}

static void
test_threads (void **state)
{
    //  Each thread keeps its own digest context: results never mix
    pthread_t threads[4];
    int mismatches[4] = {0};
    for (int i = 0; i < 4; i++)
        assert_int_equal (pthread_create (&threads[i], NULL, s_hash_all, &mismatches[i]),
                          0);
    for (int i = 0; i < 4; i++) {
        pthread_join (threads[i], NULL);
        assert_int_equal (mismatches[i], 0);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_vectors),
        cmocka_unit_test (test_string_form),
        cmocka_unit_test (test_top_bit_clear),
        cmocka_unit_test (test_threads),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
