/*  slow_sync - a shim for tests, loaded with LD_PRELOAD into a shard_worker:
    every fdatasync, fsync and syncfs takes CART_TEST_SYNC_DELAY_MS
    milliseconds longer, the way a busy disk does. test_durability uses it
    to show that a worker whose disk stalls longer than the broker's
    liveness window still heartbeats (its committer thread waits, not the
    worker).
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int fdatasync (int fd);
int fsync (int fd);
int syncfs (int fd);

static void
s_delay (void)
{
    const char *delay = getenv ("CART_TEST_SYNC_DELAY_MS");
    long ms = delay ? atol (delay) : 0;
    if (ms > 0) {
        struct timespec nap = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep (&nap, NULL);
    }
}

//  Each wrapper calls the real function after the delay
#define SLOW(name)                                                                       \
    int name (int fd)                                                                    \
    {                                                                                    \
        static int (*real) (int);                                                        \
        if (!real)                                                                       \
            real = (int (*) (int))dlsym (RTLD_NEXT, #name);                              \
        s_delay ();                                                                      \
        return real (fd);                                                                \
    }
SLOW (fdatasync)
SLOW (fsync)
SLOW (syncfs)
