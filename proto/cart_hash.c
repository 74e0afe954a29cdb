/*  =========================================================================
    cart_hash - hash_key with OpenSSL's SHA-1.

    The low-level SHA1 () call is deprecated in OpenSSL 3, and EVP_Digest
    with EVP_sha1 () fetches the algorithm again on every call. So the
    algorithm is fetched once per process and EVP_Digest uses it. (A
    context kept per thread would save EVP_Digest's one short allocation,
    but czmq actor threads can still be running their thread-exit
    destructors when the process exits, which leaves such a context behind.)
    =========================================================================
*/
#include "cart_hash.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

static EVP_MD *s_sha1;
static pthread_once_t s_sha1_once = PTHREAD_ONCE_INIT;

static void
s_sha1_fetch (void)
{
    s_sha1 = EVP_MD_fetch (NULL, "SHA1", NULL);
    assert (s_sha1); //  kept for the life of the process
}

uint64_t
cart_hash_key (const void *data, size_t size)
{
    pthread_once (&s_sha1_once, s_sha1_fetch);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    int ok = EVP_Digest (data, size, digest, &digest_len, s_sha1, NULL);
    assert (ok && digest_len == 20);

    uint64_t key = 0;
    for (int i = 12; i < 20; i++)
        key = (key << 8) | digest[i];
    return key & 0x7FFFFFFFFFFFFFFFULL;
}

void
cart_hash_thread_end (void)
{
    OPENSSL_thread_stop ();
}

uint64_t
cart_hash_key_str (const char *string)
{
    return cart_hash_key (string, strlen (string));
}
