/*  =========================================================================
    fuzz_frames - libFuzzer target for the CART/1 frame parsers
    cart_msg_parse_client and cart_msg_parse_worker, and for the load and
    stats body decoders cart_load_decode / cart_stats_decode with
    cart_stats_next (proto/cart_proto.c).

    Input: one byte N (frames = N % 10, so one more than CART_FRAMES_MAX
    is reachable), two bytes big-endian S (the worker parser's shard
    count, S % 10001), then each frame as a two-byte big-endian length and
    its bytes (cut at the input's end; frames past the end are empty).
    Every frame lives in a heap buffer of exactly its size. The load and
    stats decoders run on the whole input and on every frame.

    Invariants: a parsed message has a known command and fields in range,
    and laying it out again with cart_msg_frames_client / _worker gives
    back the same frames; a load or stats list reads to its end without
    running past its entry count, its entries are in range, and a whole
    list encodes back to the same values.
    =========================================================================
*/
#include "fuzz_common.h"

#define FRAMES_MAX (CART_FRAMES_MAX + 2)

static bool
s_frames_equal (const cart_frame_t *a, const cart_frame_t *b)
{
    return fuzz_bytes_equal ((const char *)a->data, a->size, (const char *)b->data,
                             b->size);
}

static void
s_check_layout (const cart_frame_t *frames, size_t n, const cart_frame_t *out,
                size_t n_out)
{
    FUZZ_CHECK (n_out <= CART_FRAMES_MAX);
    FUZZ_CHECK (n_out == n);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK (s_frames_equal (&frames[i], &out[i]));
}

static void
s_check_client (const cart_frame_t *frames, size_t n)
{
    cart_msg_t msg;
    const char *error = NULL;
    int rc = cart_msg_parse_client (frames, n, &msg, &error);
    FUZZ_CHECK (rc == 0 || rc == -1);
    if (rc) {
        FUZZ_CHECK (error && error[0]);
        return;
    }
    FUZZ_CHECK (msg.command >= CART_C_REQUEST && msg.command <= CART_C_REPLY);
    if (msg.command == CART_C_REQUEST)
        FUZZ_CHECK (msg.key >> 63 == 0);
    if (msg.command == CART_C_REPLY)
        FUZZ_CHECK (strcmp (cart_status_name (msg.status), "UNKNOWN") != 0);
    FUZZ_CHECK (msg.body.size <= CART_BODY_WIRE_MAX);
    cart_frame_t out[CART_FRAMES_MAX];
    s_check_layout (frames, n, out, cart_msg_frames_client (&msg, out));
}

static void
s_check_worker (const cart_frame_t *frames, size_t n, uint32_t shards)
{
    cart_msg_t msg;
    const char *error = NULL;
    int rc = cart_msg_parse_worker (frames, n, shards, &msg, &error);
    FUZZ_CHECK (rc == 0 || rc == -1);
    if (rc) {
        FUZZ_CHECK (error && error[0]);
        return;
    }
    FUZZ_CHECK (msg.command >= CART_W_READY && msg.command <= CART_W_DISCONNECT);
    if (msg.command == CART_W_READY) {
        FUZZ_CHECK (msg.n_shards >= 1 && msg.n_shards <= CART_SHARDS_MAX);
        for (size_t i = 0; i < msg.n_shards; i++)
            FUZZ_CHECK (cart_msg_shard_at (&msg, i) < shards);
    }
    if (msg.command == CART_W_REQUEST) {
        FUZZ_CHECK (msg.shard < shards);
        FUZZ_CHECK (msg.key >> 63 == 0);
    }
    if (msg.command == CART_W_REQUEST || msg.command == CART_W_REPLY)
        FUZZ_CHECK (msg.client.size >= 1 && msg.client.size <= CART_IDENTITY_MAX);
    if (msg.command == CART_W_REPLY)
        FUZZ_CHECK (strcmp (cart_status_name (msg.status), "UNKNOWN") != 0);
    FUZZ_CHECK (msg.body.size <= CART_BODY_WIRE_MAX);
    cart_frame_t out[CART_FRAMES_MAX];
    size_t n_out = cart_msg_frames_worker (&msg, out);
    //  A heartbeat's empty load frame is laid out as no frame at all
    if (msg.command == CART_W_HEARTBEAT && n == 3 && frames[2].size == 0)
        n = 2;
    s_check_layout (frames, n, out, n_out);
}

//  --------------------------------------------------------------------------
//  Load and stats

static void
s_check_entry (const cart_shard_stats_t *entry, bool stats)
{
    FUZZ_CHECK (entry->shard < CART_SHARDS_MAX);
    if (!stats)
        FUZZ_CHECK (!entry->live && entry->requests == 0);
}

static void
s_check_entries_equal (const cart_shard_stats_t *a, const cart_shard_stats_t *b)
{
    FUZZ_CHECK (a->shard == b->shard && a->live == b->live && a->carts == b->carts &&
                a->items == b->items && a->requests == b->requests);
}

//  Reads a list to its end; returns the number of entries when it is
//  whole, or -1. *entries gets them (caller frees).
static long
s_read_list (cart_stats_list_t *list, bool stats, cart_shard_stats_t **entries)
{
    FUZZ_CHECK (list->n_entries <= CART_SHARDS_MAX);
    *entries = (cart_shard_stats_t *)calloc (list->n_entries + 1, sizeof (**entries));
    FUZZ_CHECK (*entries);
    size_t n = 0;
    const char *error = NULL;
    int rc;
    while ((rc = cart_stats_next (list, &(*entries)[n], &error)) == 1) {
        s_check_entry (&(*entries)[n], stats);
        n++;
        FUZZ_CHECK (n <= list->n_entries);
    }
    FUZZ_CHECK (rc == 0 || rc == -1);
    if (rc == -1) {
        FUZZ_CHECK (error && error[0]);
        return -1;
    }
    FUZZ_CHECK (n == list->n_entries);
    cart_shard_stats_t extra;
    FUZZ_CHECK (cart_stats_next (list, &extra, &error) == 0);
    return (long)n;
}

static int
s_decode (bool stats, const void *data, size_t size, cart_stats_list_t *list)
{
    const char *error = NULL;
    int rc = stats ? cart_stats_decode (data, size, list, &error)
                   : cart_load_decode (data, size, list, &error);
    FUZZ_CHECK (rc == 0 || rc == -1);
    if (rc)
        FUZZ_CHECK (error && error[0]);
    else if (stats)
        FUZZ_CHECK (list->shards >= 1 && list->shards <= CART_SHARDS_MAX);
    return rc;
}

static void
s_round_trip (bool stats, const cart_stats_list_t *list,
              const cart_shard_stats_t *entries, size_t n)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    if (stats)
        cart_stats_encode (&pk, list->shards, n);
    else
        cart_load_encode (&pk, n);
    for (size_t i = 0; i < n; i++)
        if (stats)
            cart_stats_encode_entry (&pk, &entries[i]);
        else
            cart_load_encode_entry (&pk, &entries[i]);
    void *copy = fuzz_copy (buf.data, buf.size);
    cart_stats_list_t again;
    FUZZ_CHECK (s_decode (stats, copy, buf.size, &again) == 0);
    FUZZ_CHECK (again.shards == list->shards && again.n_entries == n);
    cart_shard_stats_t *entries_again;
    FUZZ_CHECK (s_read_list (&again, stats, &entries_again) == (long)n);
    for (size_t i = 0; i < n; i++)
        s_check_entries_equal (&entries[i], &entries_again[i]);
    free (entries_again);
    free (copy);
    msgpack_sbuffer_destroy (&buf);
}

static void
s_check_list (bool stats, const void *data, size_t size)
{
    cart_stats_list_t list;
    if (s_decode (stats, data, size, &list))
        return;
    cart_shard_stats_t *entries;
    long n = s_read_list (&list, stats, &entries);
    if (n >= 0)
        s_round_trip (stats, &list, entries, (size_t)n);
    free (entries);
}

static void
s_check_lists (const void *data, size_t size)
{
    s_check_list (false, data, size);
    s_check_list (true, data, size);
}

//  --------------------------------------------------------------------------

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_check_lists (data, size);
    if (size < 3)
        return 0;
    size_t n = data[0] % FRAMES_MAX;
    uint32_t shards = ((uint32_t)data[1] << 8 | data[2]) % (CART_SHARDS_MAX + 1);
    const uint8_t *p = data + 3;
    size_t left = size - 3;

    cart_frame_t frames[FRAMES_MAX];
    void *copies[FRAMES_MAX];
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        if (left >= 2) {
            len = (size_t)p[0] << 8 | p[1];
            p += 2;
            left -= 2;
        } else {
            p += left;
            left = 0;
        }
        if (len > left)
            len = left;
        copies[i] = fuzz_copy (p, len);
        frames[i] = (cart_frame_t){copies[i], len};
        p += len;
        left -= len;
    }
    s_check_client (frames, n);
    s_check_worker (frames, n, shards);
    for (size_t i = 0; i < n; i++) {
        s_check_lists (frames[i].data, frames[i].size);
        free (copies[i]);
    }
    return 0;
}
