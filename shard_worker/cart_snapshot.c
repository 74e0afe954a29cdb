/*  =========================================================================
    cart_snapshot - a shard's carts in one file (see cart_snapshot.h).
    =========================================================================
*/
#include "cart_snapshot.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cart_body.h"
#include "cart_hash.h"
#include "cart_log.h"
#include "cart_ring.h"
#include "cart_wire.h"

#define HEAD_SIZE_V1 32
#define HEAD_SIZE    40 //  version 2: and the change count
#define END_SIZE_V1  24
#define END_SIZE     32            //  version 2: and the keys
#define CART_PREFIX  13            //  'C', u64 version, u32 time
#define KEY_PREFIX   27            //  'K', u16 status, u64 version, fingerprint, time
#define COMMIT_SIZE  (1024 * 1024) //  written in pieces of about this much
#define STOP_EVERY   1024          //  carts between looks at *stop

static const char s_head_magic[8] = "CARTSNAP";
static const char s_end_magic[8] = "CARTEND";

//  --------------------------------------------------------------------------
//  Writing

//  Writes the partition's idempotency keys, one record each.
static int
s_write_keys (cart_log_t *file, cart_partition_t *part, msgpack_sbuffer *buffer,
              uint64_t *keys, const char **error)
{
    void *cursor = NULL;
    const char *customer, *key;
    size_t customer_len, key_len;
    const cart_idem_entry_t *entry;
    while (cart_idem_next (cart_partition_idem (part), &cursor, &customer, &customer_len,
                           &key, &key_len, &entry)) {
        buffer->size = 0;
        uint8_t prefix[KEY_PREFIX] = {'K'};
        cart_put_be (prefix + 1, entry->status, 2);
        cart_put_be (prefix + 3, entry->version, 8);
        cart_put_be (prefix + 11, entry->fingerprint, 8);
        cart_put_be (prefix + 19, entry->at, 8);
        uint8_t len = (uint8_t)customer_len;
        msgpack_sbuffer_write (buffer, (const char *)prefix, sizeof (prefix));
        msgpack_sbuffer_write (buffer, (const char *)&len, 1);
        msgpack_sbuffer_write (buffer, customer, customer_len);
        len = (uint8_t)key_len;
        msgpack_sbuffer_write (buffer, (const char *)&len, 1);
        msgpack_sbuffer_write (buffer, key, key_len);
        msgpack_sbuffer_write (buffer, (const char *)entry->body, entry->size);
        if (cart_log_append (file, buffer->data, buffer->size)) {
            *error = "an idempotency key's answer is too large for a snapshot record";
            return -1;
        }
        ++*keys;
    }
    return 0;
}

int
cart_snapshot_write (const char *dir, uint32_t shard, uint32_t shards, uint64_t covered,
                     cart_partition_t *part, const atomic_bool *stop,
                     cart_snapshot_info_t *info, const char **error)
{
    char path[520], fresh[520];
    if (cart_log_file (path, sizeof (path), dir, shard, CART_FILE_SNAPSHOT) ||
        cart_log_file (fresh, sizeof (fresh), dir, shard, CART_FILE_NEW_SNAPSHOT)) {
        *error = "the data directory's path is too long";
        return -1;
    }
    cart_log_t *file = cart_log_create (fresh, error);
    if (!file)
        return -1;
    uint8_t head[HEAD_SIZE] = {0};
    memcpy (head, s_head_magic, 8);
    cart_put_be (head + 8, CART_SNAPSHOT_VERSION, 4);
    cart_put_be (head + 12, shard, 4);
    cart_put_be (head + 16, shards, 4);
    cart_put_be (head + 24, covered, 8);
    cart_put_be (head + 32, cart_partition_changes (part), 8);
    cart_log_append (file, head, sizeof (head));

    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    uint64_t carts = 0, items = 0, keys = 0, pending = 0;
    size_t cursor = 0;
    cart_view_t view;
    int rc = 0;
    while (rc == 0 && cart_partition_next (part, &cursor, &view, NULL)) {
        buffer.size = 0;
        uint8_t prefix[CART_PREFIX] = {'C'};
        cart_put_be (prefix + 1, view.version, 8);
        cart_put_be (prefix + 9, view.touched, 4);
        msgpack_sbuffer_write (&buffer, (const char *)prefix, sizeof (prefix));
        cart_reply_encode_cart (&pk, view.customer, view.customer_len, view.n_items);
        cart_item_t item;
        while (cart_view_next (&view, &item))
            cart_reply_encode_item (&pk, &item);
        rc = cart_log_append (file, buffer.data, buffer.size);
        if (rc)
            *error = "a cart is too large for a snapshot record";
        carts++;
        items += view.n_items;
        pending += buffer.size;
        if (rc == 0 && pending >= COMMIT_SIZE) {
            rc = cart_log_commit (file, error);
            pending = 0;
        }
        if (rc == 0 && stop && carts % STOP_EVERY == 0 && atomic_load (stop)) {
            *error = "stopped";
            rc = -1;
        }
    }
    if (rc == 0)
        rc = s_write_keys (file, part, &buffer, &keys, error);
    msgpack_sbuffer_destroy (&buffer);
    uint8_t end[END_SIZE];
    memcpy (end, s_end_magic, 8);
    cart_put_be (end + 8, carts, 8);
    cart_put_be (end + 16, items, 8);
    cart_put_be (end + 24, keys, 8);
    if (rc == 0)
        cart_log_append (file, end, sizeof (end));
    if (rc == 0)
        rc = cart_log_finish (&file, error);
    else {
        const char *ignored;
        cart_log_finish (&file, &ignored);
    }
    if (rc == 0 && rename (fresh, path) == -1) {
        *error =
            cart_errorf ("cannot rename '%s' to '%s': %s", fresh, path, strerror (errno));
        rc = -1;
    }
    if (rc) {
        unlink (fresh);
        return -1;
    }
    if (cart_log_sync_dir (dir, error))
        return -1;
    if (info) {
        *info = (cart_snapshot_info_t){
            .present = true, .covered = covered, .carts = carts, .items = items};
        struct stat made;
        info->bytes = stat (path, &made) == 0 ? (uint64_t)made.st_size : 0;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Loading

typedef struct {
    cart_partition_t *part;
    uint32_t shard;
    uint32_t shards;
    uint64_t records;
    uint32_t version; //  the snapshot's format
    uint64_t changes; //  version 2: the partition's change count
    uint64_t keys;
    bool ended;
    cart_snapshot_info_t *info;
    const char *why; //  what is wrong with the record refused
    char text[300];  //  why, kept (the scan's own message reuses the buffer)
} load_t;

//  Keeps self->why's text and refuses the record.
static int
s_refuse (load_t *self)
{
    snprintf (self->text, sizeof (self->text), "%s", self->why);
    return -1;
}

static int
s_load_head (load_t *self, const uint8_t *data, size_t size)
{
    uint32_t version = size >= 12 ? (uint32_t)cart_get_be (data + 8, 4) : 0;
    if (size < HEAD_SIZE_V1 || memcmp (data, s_head_magic, 8) != 0)
        self->why = "it does not start with a snapshot's head";
    else if (version < 1 || version > CART_SNAPSHOT_VERSION)
        self->why = cart_errorf ("it is of version %u; this build reads versions 1 to %d",
                                 version, CART_SNAPSHOT_VERSION);
    else if (size != (version == 1 ? HEAD_SIZE_V1 : HEAD_SIZE))
        self->why = "its head is malformed";
    else if (cart_get_be (data + 12, 4) != self->shard ||
             cart_get_be (data + 16, 4) != self->shards)
        self->why =
            cart_errorf ("it holds shard %u of %u, not shard %u of %u",
                         (unsigned)cart_get_be (data + 12, 4),
                         (unsigned)cart_get_be (data + 16, 4), self->shard, self->shards);
    else {
        self->info->covered = cart_get_be (data + 24, 8);
        self->version = version;
        self->changes = version == 1 ? 0 : cart_get_be (data + 32, 8);
    }
    return self->why ? s_refuse (self) : 0;
}

static int
s_load_end (load_t *self, const uint8_t *data, size_t size)
{
    if (size != (self->version == 1 ? END_SIZE_V1 : END_SIZE))
        self->why = "its end record is malformed";
    else if (self->version > 1 && cart_get_be (data + 24, 8) != self->keys)
        self->why =
            cart_errorf ("its end counts %llu idempotency keys, but it holds %llu",
                         (unsigned long long)cart_get_be (data + 24, 8),
                         (unsigned long long)self->keys);
    else if (cart_get_be (data + 8, 8) != self->info->carts ||
             cart_get_be (data + 16, 8) != self->info->items)
        self->why = cart_errorf (
            "its end counts %llu carts and %llu items, but it holds %llu and %llu",
            (unsigned long long)cart_get_be (data + 8, 8),
            (unsigned long long)cart_get_be (data + 16, 8),
            (unsigned long long)self->info->carts, (unsigned long long)self->info->items);
    self->ended = true;
    //  A version 1 snapshot's carts count as changed in the order loaded
    if (!self->why && self->version > 1)
        cart_partition_set_changes (self->part, self->changes);
    return self->why ? s_refuse (self) : 0;
}

static int
s_load_cart (load_t *self, const uint8_t *data, size_t size)
{
    uint64_t version = 0;
    uint32_t touched = 0;
    if (self->version > 1) {
        if (size < CART_PREFIX || data[0] != 'C') {
            self->why = "a record is neither a cart nor an idempotency key";
            return s_refuse (self);
        }
        version = cart_get_be (data + 1, 8);
        touched = (uint32_t)cart_get_be (data + 9, 4);
        data += CART_PREFIX;
        size -= CART_PREFIX;
    }
    cart_reply_t cart;
    if (cart_reply_decode (data, size, &cart, &self->why) ||
        cart.kind != CART_BODY_CART || cart.n_items == 0) {
        self->why = self->why ? self->why : "a record is not a cart with items";
        return s_refuse (self);
    }
    uint64_t key = cart_hash_key (cart.customer, cart.customer_len);
    if (cart_ring_shard (key, self->shards) != self->shard) {
        self->why = "a cart belongs to another shard";
        return s_refuse (self);
    }
    cart_item_t item;
    int rc;
    while ((rc = cart_reply_next_item (&cart, &item, &self->why)) == 1)
        if (cart_partition_add (self->part, key, cart.customer, cart.customer_len, &item,
                                NULL) != CART_CREATED) {
            self->why = "a cart holds an item twice or one the shard refuses";
            return s_refuse (self);
        }
    if (rc)
        return s_refuse (self);
    if (self->version > 1 &&
        cart_partition_restore (self->part, key, cart.customer, cart.customer_len,
                                version, touched) != CART_OK) {
        self->why = "a cart's version is out of range";
        return s_refuse (self);
    }
    self->info->carts++;
    self->info->items += cart.n_items;
    return 0;
}

static int
s_load_key (load_t *self, const uint8_t *data, size_t size)
{
    cart_idem_entry_t entry = {.status = (uint16_t)cart_get_be (data + 1, 2),
                               .version = cart_get_be (data + 3, 8),
                               .fingerprint = cart_get_be (data + 11, 8),
                               .at = cart_get_be (data + 19, 8)};
    size_t at = KEY_PREFIX, customer_len = 0, key_len = 0;
    const char *customer = NULL, *key = NULL;
    if (size > at) {
        customer_len = data[at];
        customer = (const char *)data + at + 1;
        at += 1 + customer_len;
    }
    if (size > at) {
        key_len = data[at];
        key = (const char *)data + at + 1;
        at += 1 + key_len;
    }
    if (size < KEY_PREFIX || size < at || !cart_id_valid (customer, customer_len) ||
        !cart_idem_valid (key, key_len) || !cart_status_known (entry.status) ||
        size - at > CART_IDEM_BYTES_PER_CART) {
        self->why = "an idempotency key's record is malformed";
        return s_refuse (self);
    }
    if (cart_ring_shard (cart_hash_key (customer, customer_len), self->shards) !=
        self->shard) {
        self->why = "an idempotency key belongs to another shard";
        return s_refuse (self);
    }
    entry.body = data + at;
    entry.size = size - at;
    cart_idem_put (cart_partition_idem (self->part), customer, customer_len, key, key_len,
                   &entry);
    self->keys++;
    return 0;
}

static int
s_load (void *arg, const void *payload, size_t size)
{
    load_t *self = (load_t *)arg;
    const uint8_t *data = (const uint8_t *)payload;
    if (self->ended) {
        self->why = "records follow its end";
        return s_refuse (self);
    }
    if (self->records++ == 0)
        return s_load_head (self, data, size);
    if (size >= 8 && memcmp (data, s_end_magic, 8) == 0)
        return s_load_end (self, data, size);
    if (self->version > 1 && size >= 1 && data[0] == 'K')
        return s_load_key (self, data, size);
    return s_load_cart (self, data, size);
}

int
cart_snapshot_load_fd (int fd, const char *path, uint32_t shard, uint32_t shards,
                       cart_partition_t *part, cart_snapshot_info_t *info,
                       const char **error)
{
    *info = (cart_snapshot_info_t){0};
    load_t load = {.part = part, .shard = shard, .shards = shards, .info = info};
    cart_log_scan_t scan = {.replay = s_load, .arg = &load};
    const char *fault = NULL;
    int rc = cart_log_scan_fd (fd, path, &scan, &fault);
    if (rc == 1)
        return 0;
    info->present = true;
    info->bytes = scan.size;
    if (rc && load.why)
        fault =
            cart_errorf ("%s: %s", fault, load.text); //  cart_errorf may build on itself
    else if (rc == 0 && scan.fault)
        fault = cart_errorf ("'%s' is damaged at offset %llu (%s); a snapshot is "
                             "written whole, so this is not a crash's doing: restore "
                             "the shard from a backup",
                             path, (unsigned long long)scan.fault_at, scan.fault);
    else if (rc == 0 && !load.ended)
        fault = cart_errorf ("'%s' is not a valid snapshot: it has no end record", path);
    if (fault) {
        *error = fault;
        return -1;
    }
    return 0;
}

int
cart_snapshot_load (const char *dir, uint32_t shard, uint32_t shards,
                    cart_partition_t *part, cart_snapshot_info_t *info,
                    const char **error)
{
    *info = (cart_snapshot_info_t){0};
    char path[520];
    if (cart_log_file (path, sizeof (path), dir, shard, CART_FILE_SNAPSHOT)) {
        *error = "the data directory's path is too long";
        return -1;
    }
    int fd = cart_log_open_file (path, error);
    if (fd == -2)
        return -1;
    int rc = cart_snapshot_load_fd (fd, path, shard, shards, part, info, error);
    if (fd != -1)
        close (fd);
    return rc;
}
