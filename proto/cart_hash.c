/*  =========================================================================
    cart_hash - hash_key with OpenSSL's SHA-1.

    The low-level SHA1() call is deprecated in OpenSSL 3, and EVP_Digest
    with EVP_sha1 () fetches the algorithm again on every call. So the
    algorithm is fetched once per process, and each thread keeps one digest
    context that it reuses, which makes a call allocation-free.
    =========================================================================
*/
#include "cart_hash.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>
#include <openssl/evp.h>

static EVP_MD *s_sha1;
static pthread_once_t s_sha1_once = PTHREAD_ONCE_INIT;
static pthread_key_t s_ctx_key;

static void
s_ctx_free (void *ctx)
{
    EVP_MD_CTX_free ((EVP_MD_CTX *)ctx);
}

static void
s_sha1_fetch (void)
{
    s_sha1 = EVP_MD_fetch (NULL, "SHA1", NULL);
    assert (s_sha1);
    int rc = pthread_key_create (&s_ctx_key, s_ctx_free);
    assert (rc == 0);
}

//  The calling thread's digest context, made on its first call and freed
//  when the thread ends.
static EVP_MD_CTX *
s_thread_ctx (void)
{
    pthread_once (&s_sha1_once, s_sha1_fetch);
    EVP_MD_CTX *ctx = (EVP_MD_CTX *)pthread_getspecific (s_ctx_key);
    if (!ctx) {
        ctx = EVP_MD_CTX_new ();
        assert (ctx);
        pthread_setspecific (s_ctx_key, ctx);
    }
    return ctx;
}

uint64_t
cart_hash_key (const void *data, size_t size)
{
    EVP_MD_CTX *ctx = s_thread_ctx ();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    int ok = EVP_DigestInit_ex2 (ctx, s_sha1, NULL) &&
             EVP_DigestUpdate (ctx, data, size) &&
             EVP_DigestFinal_ex (ctx, digest, &digest_len);
    assert (ok && digest_len == 20);

    uint64_t key = 0;
    for (int i = 12; i < 20; i++)
        key = (key << 8) | digest[i];
    return key & 0x7FFFFFFFFFFFFFFFULL;
}

uint64_t
cart_hash_key_str (const char *string)
{
    return cart_hash_key (string, strlen (string));
}
