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

#define HEAD_SIZE   32
#define END_SIZE    24
#define COMMIT_SIZE (1024 * 1024) //  written in pieces of about this much
#define STOP_EVERY  1024          //  carts between looks at *stop

static const char s_head_magic[8] = "CARTSNAP";
static const char s_end_magic[8] = "CARTEND";

//  --------------------------------------------------------------------------
//  Writing

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
    cart_log_append (file, head, sizeof (head));

    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    uint64_t carts = 0, items = 0, pending = 0;
    size_t cursor = 0;
    cart_view_t view;
    int rc = 0;
    while (rc == 0 && cart_partition_next (part, &cursor, &view, NULL)) {
        buffer.size = 0;
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
    msgpack_sbuffer_destroy (&buffer);
    uint8_t end[END_SIZE];
    memcpy (end, s_end_magic, 8);
    cart_put_be (end + 8, carts, 8);
    cart_put_be (end + 16, items, 8);
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
    if (size != HEAD_SIZE || memcmp (data, s_head_magic, 8) != 0)
        self->why = "it does not start with a snapshot's head";
    else if (cart_get_be (data + 8, 4) != CART_SNAPSHOT_VERSION)
        self->why =
            cart_errorf ("it is of version %u; this build reads version %d",
                         (unsigned)cart_get_be (data + 8, 4), CART_SNAPSHOT_VERSION);
    else if (cart_get_be (data + 12, 4) != self->shard ||
             cart_get_be (data + 16, 4) != self->shards)
        self->why =
            cart_errorf ("it holds shard %u of %u, not shard %u of %u",
                         (unsigned)cart_get_be (data + 12, 4),
                         (unsigned)cart_get_be (data + 16, 4), self->shard, self->shards);
    else
        self->info->covered = cart_get_be (data + 24, 8);
    return self->why ? s_refuse (self) : 0;
}

static int
s_load_end (load_t *self, const uint8_t *data, size_t size)
{
    if (size != END_SIZE)
        self->why = "its end record is malformed";
    else if (cart_get_be (data + 8, 8) != self->info->carts ||
             cart_get_be (data + 16, 8) != self->info->items)
        self->why = cart_errorf (
            "its end counts %llu carts and %llu items, but it holds %llu and %llu",
            (unsigned long long)cart_get_be (data + 8, 8),
            (unsigned long long)cart_get_be (data + 16, 8),
            (unsigned long long)self->info->carts, (unsigned long long)self->info->items);
    self->ended = true;
    return self->why ? s_refuse (self) : 0;
}

static int
s_load_cart (load_t *self, const uint8_t *data, size_t size)
{
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
    self->info->carts++;
    self->info->items += cart.n_items;
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
