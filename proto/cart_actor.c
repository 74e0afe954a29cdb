/*  =========================================================================
    cart_actor - actor start, pipe and stop.
    =========================================================================
*/
#include "cart_actor.h"

#include "cart_types.h"

int
cart_actor_ready (zsock_t *pipe, const char *error)
{
    zsock_signal (pipe, 0);
    zstr_send (pipe, error ? error : "OK");
    if (!error)
        return 0;
    //  Wait for $TERM, as every actor must
    char *command;
    while ((command = zstr_recv (pipe)) && !streq (command, "$TERM"))
        zstr_free (&command);
    zstr_free (&command);
    return -1;
}

zactor_t *
cart_actor_start (zactor_fn *actor, void *args, const char **error)
{
    zactor_t *self = zactor_new (actor, args);
    assert (self);
    char *status = zstr_recv (self);
    if (status && streq (status, "OK")) {
        zstr_free (&status);
        return self;
    }
    if (error)
        *error = cart_errorf ("%s", status ? status : "the thread was interrupted");
    zstr_free (&status);
    zactor_destroy (&self);
    return NULL;
}

bool
cart_actor_due (int64_t *at)
{
    int64_t now = zclock_mono ();
    if (now < *at)
        return false;
    *at = now + CART_PIPE_MS;
    return true;
}

int
cart_actor_recv (zsock_t *pipe, const char *who, const char *const *known)
{
    char *command = zstr_recv (pipe);
    if (!command || streq (command, "$TERM")) {
        zstr_free (&command);
        return CART_ACTOR_TERM;
    }
    for (int i = 0; known && known[i]; i++)
        if (streq (command, known[i])) {
            zstr_free (&command);
            return i;
        }
    zsys_warning ("%s: unknown command '%.40s' ignored", who, command);
    zstr_free (&command);
    return CART_ACTOR_UNKNOWN;
}

void
cart_actors_destroy (zactor_t **actors, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (actors[i])
            zstr_send (actors[i], "$TERM");
    //  zactor_destroy sends $TERM again (never read) and waits for the
    //  thread's exit signal, skipping anything else on the pipe
    for (size_t i = 0; i < count; i++)
        zactor_destroy (&actors[i]);
}

void
cart_warn (cart_warn_t *warn, const char *format, ...)
{
    int64_t now = zclock_mono ();
    if (warn->at && now - warn->at < CART_WARN_MS) {
        warn->suppressed++;
        return;
    }
    char text[512];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof (text), format, args);
    va_end (args);
    if (warn->suppressed)
        zsys_warning ("%s (and %llu more like it in the last %d ms)", text,
                      (unsigned long long)warn->suppressed, CART_WARN_MS);
    else
        zsys_warning ("%s", text);
    warn->at = now;
    warn->suppressed = 0;
}

void
cart_warn_flush (cart_warn_t *warn, const char *what)
{
    int64_t now = zclock_mono ();
    if (warn->suppressed && now - warn->at >= CART_WARN_MS) {
        zsys_warning ("%llu more warning(s) like the last of its kind (%s)",
                      (unsigned long long)warn->suppressed, what);
        warn->suppressed = 0;
        warn->at = now;
    }
}
