/*  =========================================================================
    cart_curve - CURVE keys and the broker's ZAP handler. See cart_curve.h.

    The handler is an actor with a REP socket bound on libzmq's fixed ZAP
    endpoint. libzmq sends it one request per CURVE handshake on a socket
    of this process that has a ZAP domain (RFC 27): version, request id,
    domain, address, routing id, mechanism, and the client's 32-byte
    public key. It answers 200 with the key's name as User-Id and its
    shards as metadata, or 400. A domain it does not know, a mechanism
    other than CURVE, a malformed request: 400. So the handler fails
    closed too.
    =========================================================================
*/
#include "cart_curve.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "cart_actor.h"
#include "cart_args.h"
#include "cart_types.h"

//  Draft in libzmq 4.3 (zmq.h declares it under ZMQ_BUILD_DRAFT_API);
//  cart_curve_server reads it back, so a libzmq without it fails closed
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define RESCAN_MS    1000       //  a directory is looked at once a second at most
#define KEY_FILE_MAX (64 << 10) //  a key file is a few hundred bytes

//  --------------------------------------------------------------------------
//  Key files

//  True for a key's name: 1..CART_CURVE_NAME_MAX of [A-Za-z0-9._-], not
//  starting with '.' or '-'.
static bool
s_name_ok (const char *name, size_t len)
{
    if (len == 0 || len > CART_CURVE_NAME_MAX || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum ((unsigned char)name[i]) && !strchr ("._-", name[i]))
            return false;
    return true;
}

//  True when text is a shard list that cart_args_shards takes.
static bool
s_shards_ok (const char *text)
{
    if (strlen (text) > CART_CURVE_SHARDS_MAX)
        return false;
    uint32_t *scratch = (uint32_t *)malloc (CART_SHARDS_MAX * sizeof (uint32_t));
    assert (scratch);
    size_t n = 0;
    bool ok = cart_args_shards (text, scratch, CART_SHARDS_MAX, &n) == 0;
    free (scratch);
    return ok;
}

//  Reads a certificate file: its public key (Z85, checked) into public_txt,
//  its secret key into secret_txt if that is not NULL, and its "shards"
//  metadata into shards (shards_size, "" when none) if that is not NULL.
//  Returns 0, or -1 with *error set.
static int
s_read_cert (const char *path, char *public_txt, char *secret_txt, char *shards,
             size_t shards_size, const char **error)
{
    struct stat info;
    if (stat (path, &info)) {
        *error = cart_errorf ("cannot read key file '%s': %s", path, strerror (errno));
        return -1;
    }
    if (!S_ISREG (info.st_mode) || info.st_size > KEY_FILE_MAX) {
        *error = cart_errorf ("'%s' is not a key file (a file of at most %d bytes)", path,
                              KEY_FILE_MAX);
        return -1;
    }
    if (secret_txt && (info.st_mode & 077)) {
        *error = cart_errorf ("secret key file '%s' may be read by others (mode %03o): "
                              "chmod 600 it",
                              path, (unsigned)(info.st_mode & 0777));
        return -1;
    }
    if (access (path, R_OK)) {
        *error = cart_errorf ("cannot read key file '%s': %s", path, strerror (errno));
        return -1;
    }
    zconfig_t *root = zconfig_load (path);
    const char *public_key = root ? zconfig_get (root, "/curve/public-key", NULL) : NULL;
    const char *secret_key = root ? zconfig_get (root, "/curve/secret-key", NULL) : NULL;
    uint8_t bytes[32];
    int rc = -1;
    if (!public_key || strlen (public_key) != 40 || !zmq_z85_decode (bytes, public_key))
        *error = cart_errorf ("'%s' has no valid curve/public-key (czmq's certificate "
                              "format; make one with cartctl keygen)",
                              path);
    else if (secret_txt && (!secret_key || strlen (secret_key) != 40 ||
                            !zmq_z85_decode (bytes, secret_key)))
        *error = cart_errorf ("'%s' has no valid curve/secret-key", path);
    else {
        char derived[41];
        if (secret_txt &&
            (zmq_curve_public (derived, secret_key) || strcmp (derived, public_key) != 0))
            *error =
                cart_errorf ("'%s': the secret key does not match the public key", path);
        else {
            strcpy (public_txt, public_key);
            if (secret_txt)
                strcpy (secret_txt, secret_key);
            rc = 0;
        }
    }
    if (rc == 0 && shards) {
        //  A list that is there must be one: an empty one grants nothing,
        //  and is refused rather than read as "every shard"
        bool listed = zconfig_locate (root, "/metadata/shards") != NULL;
        const char *list = zconfig_get (root, "/metadata/shards", "");
        if (listed && !s_shards_ok (list)) {
            *error = cart_errorf ("'%s': metadata shards = \"%s\" is not a shard list "
                                  "such as 3, 0,2,5 or 0-7",
                                  path, list);
            rc = -1;
        } else
            snprintf (shards, shards_size, "%s", list);
    }
    zconfig_destroy (&root);
    return rc;
}

int
cart_curve_load (cart_curve_t *curve, const char *cert, const char *broker_key,
                 const char **error)
{
    memset (curve, 0, sizeof (*curve));
    char secret[PATH_MAX];
    if (snprintf (secret, sizeof (secret), "%s_secret", cert) >= (int)sizeof (secret)) {
        *error = cart_errorf ("key file name '%s' is too long", cert);
        return -1;
    }
    if (s_read_cert (secret, curve->public_txt, curve->secret_txt, NULL, 0, error))
        return -1;
    char check[41];
    if (s_read_cert (cert, check, NULL, NULL, 0, error))
        return -1;
    if (strcmp (check, curve->public_txt)) {
        *error = cart_errorf ("'%s' and '%s' hold different keys", cert, secret);
        return -1;
    }
    if (broker_key && s_read_cert (broker_key, curve->server_txt, NULL, NULL, 0, error))
        return -1;
    return 0;
}

const char cart_curve_client_help[] =
    "  --cert FILE      talk to the broker over CURVE with this key (FILE, and\n"
    "                   FILE_secret beside it; cartctl keygen makes them)\n"
    "  --broker-key FILE  with --cert: the broker's public key\n";

int
cart_curve_options (const char *cert, const char *broker_key, cart_curve_t *curve,
                    const cart_curve_t **out, const char **error)
{
    *out = NULL;
    if (!cert && !broker_key)
        return 0;
    if (!cert || !broker_key) {
        *error = "--cert and --broker-key go together";
        return -1;
    }
    if (cart_curve_load (curve, cert, broker_key, error))
        return -1;
    *out = curve;
    return 0;
}

void
cart_curve_client (zsock_t *sock, const cart_curve_t *curve)
{
    if (!curve)
        return;
    zsock_set_curve_serverkey (sock, curve->server_txt);
    zsock_set_curve_publickey (sock, curve->public_txt);
    zsock_set_curve_secretkey (sock, curve->secret_txt);
}

int
cart_curve_server (zsock_t *sock, const cart_curve_t *curve, const char *domain,
                   const char **error)
{
    zsock_set_curve_server (sock, 1);
    zsock_set_curve_publickey (sock, curve->public_txt);
    zsock_set_curve_secretkey (sock, curve->secret_txt);
    zsock_set_zap_domain (sock, domain);
    //  Without it, a handshake that finds no ZAP handler is let in
    int on = 1, value = 0;
    size_t size = sizeof (value);
    void *handle = zsock_resolve (sock);
    if (zmq_setsockopt (handle, ZMQ_ZAP_ENFORCE_DOMAIN, &on, sizeof (on)) ||
        zmq_getsockopt (handle, ZMQ_ZAP_ENFORCE_DOMAIN, &value, &size) || value != 1) {
        //  A libzmq that cannot fail closed must not serve CURVE at all
        *error = "this libzmq lacks ZMQ_ZAP_ENFORCE_DOMAIN (4.3 with drafts): a CURVE "
                 "server could admit anyone, so none is started";
        return -1;
    }
    return 0;
}

struct _cart_curve_watch_t {
    void *sock;       //  the watched socket (libzmq's handle)
    zsock_t *monitor; //  PAIR on the socket's monitor endpoint
    cart_curve_state_t state;
    bool handshaking; //  connected, handshake not ended
};

cart_curve_watch_t *
cart_curve_watch_new (void *sock)
{
    static _Atomic unsigned instance;
    char endpoint[64];
    snprintf (endpoint, sizeof (endpoint), "inproc://cart-curve-watch-%u-%d",
              atomic_fetch_add (&instance, 1), (int)getpid ());
    int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                 ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    void *handle = zsock_resolve (sock);
    if (zmq_socket_monitor (handle, endpoint, events))
        return NULL;
    cart_curve_watch_t *self = (cart_curve_watch_t *)zmalloc (sizeof (*self));
    assert (self);
    self->sock = handle;
    self->monitor = zsock_new (ZMQ_PAIR);
    assert (self->monitor);
    //  libzmq sends monitor events blocking (socket_base.cpp monitor_event):
    //  a full pipe would hold its I/O thread. No bound here, and the owner
    //  takes the events at every tick of its loop
    zsock_set_rcvhwm (self->monitor, 0);
    if (zsock_connect (self->monitor, "%s", endpoint)) {
        zmq_socket_monitor (handle, NULL, 0);
        zsock_destroy (&self->monitor);
        free (self);
        return NULL;
    }
    return self;
}

void
cart_curve_watch_destroy (cart_curve_watch_t **self_p)
{
    if (!*self_p)
        return;
    //  The monitor first, while our end still reads: libzmq's I/O thread
    //  sends an event blocking, and one sent to a closed reader would hold
    //  that thread for good (and every socket of the process with it)
    zmq_socket_monitor ((*self_p)->sock, NULL, 0);
    zsock_destroy (&(*self_p)->monitor);
    free (*self_p);
    *self_p = NULL;
}

cart_curve_state_t
cart_curve_watch_state (cart_curve_watch_t *self)
{
    if (!self)
        return CART_CURVE_PENDING;
    void *handle = zsock_resolve (self->monitor);
    while (true) {
        //  An event: its number and value (6 bytes), then its endpoint
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&frame);
            break;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size (&frame) == 6) {
            memcpy (&event, zmq_msg_data (&frame), 2);
            memcpy (&value, (uint8_t *)zmq_msg_data (&frame) + 2, 4);
        }
        while (zmq_msg_more (&frame) && zmq_msg_recv (&frame, handle, ZMQ_DONTWAIT) != -1)
            ;
        zmq_msg_close (&frame);
        if (event == ZMQ_EVENT_CONNECTED)
            self->handshaking = true;
        else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            self->handshaking = false;
            self->state = CART_CURVE_ADMITTED;
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            self->handshaking = false;
            self->state = value == 300 ? CART_CURVE_FAILED : CART_CURVE_REFUSED;
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                   event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
                   (event == ZMQ_EVENT_DISCONNECTED && self->handshaking)) {
            self->handshaking = false;
            self->state = CART_CURVE_FAILED;
        }
    }
    return self->state;
}

const char *
cart_curve_state_text (cart_curve_state_t state)
{
    switch (state) {
        case CART_CURVE_PENDING:
            return "no CURVE handshake with the broker has ended yet";
        case CART_CURVE_ADMITTED:
            return "the broker admitted this key";
        case CART_CURVE_REFUSED:
            return "the broker refused this key: it is not among the keys the broker "
                   "admits (broker --worker-keys or --client-keys)";
        case CART_CURVE_FAILED:
            return "the connection to the broker closed during the handshake: is "
                   "--broker-key the broker's public key, and do both sides use CURVE?";
    }
    return "?";
}

int
cart_curve_keygen (const char *dir, const char *name, const char *shards, bool keep,
                   bool *kept, const char **error)
{
    *kept = false;
    if (!s_name_ok (name, strlen (name))) {
        *error = cart_errorf ("'%s' is not a key name: 1 to %d of A-Z a-z 0-9 . _ -, "
                              "not starting with '.'",
                              name, CART_CURVE_NAME_MAX);
        return -1;
    }
    if (shards && !s_shards_ok (shards)) {
        *error = cart_errorf ("'%s' is not a shard list such as 3, 0,2,5 or 0-7", shards);
        return -1;
    }
    char path[PATH_MAX], secret[PATH_MAX];
    if (snprintf (path, sizeof (path), "%s/%s.key", dir, name) >= (int)sizeof (path) ||
        snprintf (secret, sizeof (secret), "%s_secret", path) >= 256) {
        *error = cart_errorf ("key file name '%s/%s.key' is too long", dir, name);
        return -1;
    }
    if (mkdir (dir, 0755) && errno != EEXIST) {
        *error = cart_errorf ("cannot make directory '%s': %s", dir, strerror (errno));
        return -1;
    }
    struct stat info;
    bool has_public = stat (path, &info) == 0, has_secret = stat (secret, &info) == 0;
    if (has_public || has_secret) {
        if (!keep) {
            *error = cart_errorf ("'%s' exists: a key is never overwritten (remove it, "
                                  "or --keep to leave it)",
                                  has_public ? path : secret);
            return -1;
        }
        cart_curve_t check;
        if (cart_curve_load (&check, path, NULL, error))
            return -1; //  half a pair, or damaged: say so rather than keep it
        *kept = true;
        return 0;
    }
    zcert_t *cert = zcert_new ();
    assert (cert);
    zcert_set_meta (cert, "name", "%s", name);
    if (shards)
        zcert_set_meta (cert, "shards", "%s", shards);
    //  The secret first, private from its creation (zcert_save_secret sets
    //  the umask to 077 while it writes)
    int rc = zcert_save_secret (cert, secret);
    if (rc == 0)
        rc = zcert_save_public (cert, path);
    zcert_destroy (&cert);
    if (rc) {
        *error = cart_errorf ("cannot write '%s': %s", path, strerror (errno));
        unlink (secret);
        unlink (path);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  The ZAP handler

typedef struct {
    uint8_t key[32];
    char name[CART_CURVE_NAME_MAX + 1];
    char shards[CART_CURVE_SHARDS_MAX + 1];
} entry_t;

typedef struct {
    const char *domain;
    char *dir;
    entry_t *entries;
    size_t n_entries;
    uint64_t signature; //  of the directory's key files: names, sizes, times
    int64_t looked_at;
} list_t;

typedef struct {
    list_t lists[2]; //  workers, clients
    bool verbose;
    cart_warn_t refusals; //  logged once a second at most
} zap_t;

struct _cart_zap_t {
    zactor_t *actor;
};

typedef struct {
    const char *worker_dir;
    const char *client_dir;
    bool verbose;
} zap_args_t;

//  True when a directory entry names a public key file: NAME.key.
static bool
s_key_file (const char *file, size_t *name_len)
{
    size_t len = strlen (file);
    if (len < 5 || strcmp (file + len - 4, ".key") != 0)
        return false;
    *name_len = len - 4;
    return true;
}

//  A signature of the key files of dir, to tell that they changed; or -1
//  with *error set when dir cannot be read.
static int
s_signature (const char *dir, uint64_t *signature, const char **error)
{
    DIR *handle = opendir (dir);
    if (!handle) {
        *error =
            cart_errorf ("cannot read key directory '%s': %s", dir, strerror (errno));
        return -1;
    }
    uint64_t sum = 0;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        size_t name_len;
        if (!s_key_file (entry->d_name, &name_len))
            continue;
        struct stat info;
        if (fstatat (dirfd (handle), entry->d_name, &info, 0))
            continue;
        //  FNV-1a over the name, then the size and time mixed in: a sum, so
        //  the directory's order does not matter
        uint64_t hash = 1469598103934665603ull;
        for (const char *c = entry->d_name; *c; c++)
            hash = (hash ^ (uint8_t)*c) * 1099511628211ull;
        hash ^= (uint64_t)info.st_size * 0x9e3779b97f4a7c15ull;
        //  ctime too: a write or a rename sets it, and no tool sets it back
        hash ^= (uint64_t)info.st_ino * 0xff51afd7ed558ccdull;
        hash ^= ((uint64_t)info.st_ctim.tv_sec * 1000000000ull +
                 (uint64_t)info.st_ctim.tv_nsec) *
                0xc4ceb9fe1a85ec53ull;
        hash ^= ((uint64_t)info.st_mtim.tv_sec * 1000000000ull +
                 (uint64_t)info.st_mtim.tv_nsec) *
                0xc2b2ae3d27d4eb4full;
        sum += hash;
    }
    closedir (handle);
    *signature = sum;
    return 0;
}

//  Reads every NAME.key of a list's directory. Files that are not keys
//  are skipped with a warning. Returns 0, or -1 when the directory cannot
//  be read (the list stays as it was).
static int
s_load (zap_t *self, list_t *list, const char **error)
{
    uint64_t signature;
    if (s_signature (list->dir, &signature, error))
        return -1;
    list->looked_at = zclock_mono ();
    if (signature == list->signature && list->entries)
        return 0;
    DIR *handle = opendir (list->dir);
    if (!handle) {
        *error = cart_errorf ("cannot read key directory '%s': %s", list->dir,
                              strerror (errno));
        return -1;
    }
    entry_t *entries = NULL;
    size_t n = 0, capacity = 0;
    struct dirent *file;
    while ((file = readdir (handle))) {
        size_t name_len;
        if (!s_key_file (file->d_name, &name_len))
            continue;
        if (!s_name_ok (file->d_name, name_len)) {
            zsys_warning ("broker: skipping key file '%s/%s': not a key name", list->dir,
                          file->d_name);
            continue;
        }
        char path[PATH_MAX], public_txt[41];
        snprintf (path, sizeof (path), "%s/%s", list->dir, file->d_name);
        if (n == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            entries = (entry_t *)realloc (entries, capacity * sizeof (entry_t));
            assert (entries);
        }
        entry_t *entry = &entries[n];
        const char *why = NULL;
        if (s_read_cert (path, public_txt, NULL, entry->shards, sizeof (entry->shards),
                         &why)) {
            zsys_warning ("broker: skipping key file: %s", why);
            continue;
        }
        zmq_z85_decode (entry->key, public_txt);
        memcpy (entry->name, file->d_name, name_len);
        entry->name[name_len] = 0;
        n++;
    }
    closedir (handle);
    //  One key in two files: which would count depends on the directory's
    //  order, so neither does
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (memcmp (entries[i].key, entries[j].key, 32) == 0) {
                if (entries[j].name[0])
                    zsys_warning ("broker: '%s.key' in %s holds a key that another "
                                  "file holds too; admitting neither",
                                  entries[j].name, list->dir);
                entries[i].name[0] = entries[j].name[0] = 0;
            }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (entries[i].name[0])
            entries[kept++] = entries[i];
    n = kept;
    free (list->entries);
    list->entries = entries;
    list->n_entries = n;
    list->signature = signature;
    if (self->verbose || n == 0)
        zsys_info ("broker: %zu key(s) for %s in %s", n, list->domain, list->dir);
    return 0;
}

static const entry_t *
s_find (zap_t *self, list_t *list, const uint8_t *key)
{
    const char *error = NULL;
    int64_t now = zclock_mono ();
    if (now - list->looked_at >= RESCAN_MS) {
        list->looked_at = now; //  a directory that fails is tried once a second
        if (s_load (self, list, &error))
            cart_warn (&self->refusals, "broker: %s; keeping the keys read before",
                       error);
    }
    for (size_t i = 0; i < list->n_entries; i++)
        if (memcmp (list->entries[i].key, key, 32) == 0)
            return &list->entries[i];
    return NULL;
}

//  Appends a ZMTP property (name length, name, value length, value) to buf.
static size_t
s_property (uint8_t *buf, const char *name, const char *value)
{
    size_t name_len = strlen (name), value_len = strlen (value);
    buf[0] = (uint8_t)name_len;
    memcpy (buf + 1, name, name_len);
    uint8_t *at = buf + 1 + name_len;
    at[0] = (uint8_t)(value_len >> 24);
    at[1] = (uint8_t)(value_len >> 16);
    at[2] = (uint8_t)(value_len >> 8);
    at[3] = (uint8_t)value_len;
    memcpy (at + 4, value, value_len);
    return 1 + name_len + 4 + value_len;
}

//  Answers one ZAP request on handler.
static void
s_answer (zap_t *self, zsock_t *handler)
{
    zmsg_t *request = zmsg_recv (handler);
    if (!request)
        return;
    zframe_t *frames[7] = {NULL};
    size_t n = zmsg_size (request);
    for (size_t i = 0; i < 7 && i < n; i++)
        frames[i] = i ? zmsg_next (request) : zmsg_first (request);
    //  version, request id, domain, address, routing id, mechanism, key
    const char *status = "400", *text = "refused";
    const entry_t *entry = NULL;
    char domain[32] = "", address[64] = "";
    if (n >= 6) {
        snprintf (domain, sizeof (domain), "%.*s", (int)zframe_size (frames[2]),
                  (char *)zframe_data (frames[2]));
        snprintf (address, sizeof (address), "%.*s", (int)zframe_size (frames[3]),
                  (char *)zframe_data (frames[3]));
    }
    list_t *list = NULL;
    for (int i = 0; i < 2; i++)
        if (strcmp (domain, self->lists[i].domain) == 0)
            list = &self->lists[i];
    if (n != 7 || !zframe_streq (frames[0], "1.0") || !list ||
        !zframe_streq (frames[5], "CURVE") || zframe_size (frames[6]) != 32) {
        cart_warn (&self->refusals,
                   "broker: refused a connection from %s: not a CURVE handshake for the "
                   "workers' or the clients' socket",
                   address[0] ? address : "an unknown address");
        text = "not a CURVE handshake this broker knows";
    } else if (!(entry = s_find (self, list, zframe_data (frames[6])))) {
        char z85[41];
        zmq_z85_encode (z85, zframe_data (frames[6]), 32);
        cart_warn (
            &self->refusals,
            "broker: refused a %s connection from %s: its CURVE key %s is not in %s",
            list == &self->lists[0] ? "worker" : "client", address, z85, list->dir);
        text = "unknown key";
    } else {
        status = "200";
        text = "OK";
        if (self->verbose)
            zsys_info ("broker: admitted %s '%s' from %s", list->domain, entry->name,
                       address);
    }
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    if (frames[1])
        zmsg_addmem (reply, zframe_data (frames[1]), zframe_size (frames[1]));
    else
        zmsg_addstr (reply, "");
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, entry ? entry->name : "");
    uint8_t metadata[1 + sizeof (CART_PEER_SHARDS) + 4 + CART_CURVE_SHARDS_MAX + 1];
    size_t size = entry && entry->shards[0]
                      ? s_property (metadata, CART_PEER_SHARDS, entry->shards)
                      : 0;
    zmsg_addmem (reply, metadata, size);
    zmsg_send (&reply, handler);
    zmsg_destroy (&request);
}

static void
s_zap_actor (zsock_t *pipe, void *args)
{
    const zap_args_t *config = (const zap_args_t *)args;
    zap_t self = {.verbose = config->verbose};
    self.lists[0] =
        (list_t){.domain = CART_CURVE_WORKERS, .dir = strdup (config->worker_dir)};
    self.lists[1] =
        (list_t){.domain = CART_CURVE_CLIENTS, .dir = strdup (config->client_dir)};
    const char *error = NULL;
    zsock_t *handler = zsock_new (ZMQ_REP);
    assert (handler);
    if (zsock_bind (handler, ZAP_ENDPOINT))
        error = cart_errorf ("cannot bind %s (%s): another CURVE broker runs in this "
                             "process",
                             ZAP_ENDPOINT, zmq_strerror (zmq_errno ()));
    for (int i = 0; i < 2 && !error; i++)
        s_load (&self, &self.lists[i], &error);
    zsock_signal (pipe, 0);
    zstr_send (pipe, error ? error : "OK");
    zpoller_t *poller = error ? NULL : zpoller_new (pipe, handler, NULL);
    while (poller) {
        void *which = zpoller_wait (poller, CART_WARN_MS);
        cart_warn_flush (&self.refusals, "broker: refused connections");
        if (which == handler)
            s_answer (&self, handler);
        else if (which || zpoller_terminated (poller)) {
            char *command = which ? zstr_recv (pipe) : NULL;
            bool stop = !which || !command || streq (command, "$TERM");
            zstr_free (&command);
            if (stop)
                break;
        }
    }
    zpoller_destroy (&poller);
    zsock_destroy (&handler);
    for (int i = 0; i < 2; i++) {
        free (self.lists[i].entries);
        free (self.lists[i].dir);
    }
}

cart_zap_t *
cart_zap_new (const char *worker_dir, const char *client_dir, bool verbose,
              const char **error)
{
    zap_args_t args = {worker_dir, client_dir, verbose};
    cart_zap_t *self = (cart_zap_t *)zmalloc (sizeof (cart_zap_t));
    assert (self);
    self->actor = zactor_new (s_zap_actor, &args);
    assert (self->actor);
    char *status = zstr_recv (self->actor);
    if (!status || strcmp (status, "OK")) {
        *error = cart_errorf ("%s", status ? status : "the ZAP handler did not start");
        zstr_free (&status);
        cart_zap_destroy (&self);
        return NULL;
    }
    zstr_free (&status);
    return self;
}

void
cart_zap_destroy (cart_zap_t **self_p)
{
    if (!*self_p)
        return;
    zactor_destroy (&(*self_p)->actor);
    free (*self_p);
    *self_p = NULL;
}
