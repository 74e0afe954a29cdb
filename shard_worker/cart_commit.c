/*  =========================================================================
    cart_commit - a worker's committer thread (see cart_commit.h).
    =========================================================================
*/
#include "cart_commit.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct _cart_commit_t {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; //  a job, or quit
    pthread_cond_t over; //  the job is done
    int fd;              //  eventfd: one count per job done
    bool quit;
    bool busy; //  started, not yet finished (the worker's view)
    //  The job, under lock
    bool queued; //  given, not yet taken
    bool done;
    cart_log_t **logs;
    size_t n;
    size_t failed_at; //  n when none failed
    char error[600];
};

static void *
s_run (void *arg)
{
    cart_commit_t *self = (cart_commit_t *)arg;
    pthread_mutex_lock (&self->lock);
    while (true) {
        while (!self->queued && !self->quit)
            pthread_cond_wait (&self->wake, &self->lock);
        if (!self->queued)
            break; //  quit, nothing left
        self->queued = false;
        cart_log_t **logs = self->logs;
        size_t n = self->n, failed_at = n;
        pthread_mutex_unlock (&self->lock);
        //  One log syncs itself; several are written, then synced at once
        const char *error = NULL;
        for (size_t i = 0; i < n && failed_at == n; i++)
            if (cart_log_write_sealed (logs[i], n == 1, &error))
                failed_at = i;
        if (n > 1 && failed_at == n && cart_log_sync_all (logs, n, &error))
            failed_at = 0;
        pthread_mutex_lock (&self->lock);
        self->failed_at = failed_at;
        if (failed_at < n)
            snprintf (self->error, sizeof (self->error), "%s", error);
        self->done = true;
        pthread_cond_signal (&self->over);
        uint64_t one = 1;
        ssize_t wrote = write (self->fd, &one, sizeof (one));
        assert (wrote == sizeof (one));
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

cart_commit_t *
cart_commit_new (void)
{
    cart_commit_t *self = (cart_commit_t *)calloc (1, sizeof (cart_commit_t));
    assert (self);
    self->fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert (self->fd != -1);
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    pthread_cond_init (&self->over, NULL);
    int rc = pthread_create (&self->thread, NULL, s_run, self);
    assert (rc == 0);
    return self;
}

void
cart_commit_destroy (cart_commit_t **self_p)
{
    cart_commit_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    self->quit = true;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->thread, NULL); //  after the job in flight, if any
    pthread_cond_destroy (&self->wake);
    pthread_cond_destroy (&self->over);
    pthread_mutex_destroy (&self->lock);
    close (self->fd);
    free (self);
    *self_p = NULL;
}

int
cart_commit_fd (cart_commit_t *self)
{
    return self->fd;
}

bool
cart_commit_busy (cart_commit_t *self)
{
    return self->busy;
}

void
cart_commit_start (cart_commit_t *self, cart_log_t **logs, size_t n)
{
    assert (!self->busy);
    pthread_mutex_lock (&self->lock);
    self->logs = logs;
    self->n = n;
    self->queued = true;
    self->done = false;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    self->busy = true;
}

int
cart_commit_finish (cart_commit_t *self, size_t *failed_at, const char **error)
{
    assert (self->busy);
    pthread_mutex_lock (&self->lock);
    while (!self->done)
        pthread_cond_wait (&self->over, &self->lock);
    size_t at = self->failed_at, n = self->n;
    pthread_mutex_unlock (&self->lock);
    uint64_t count;
    ssize_t got = read (self->fd, &count, sizeof (count)); //  back to unreadable
    (void)got;
    self->busy = false;
    if (at == n)
        return 0;
    *failed_at = at;
    *error = self->error;
    return -1;
}
