/*  =========================================================================
    fuzz_frames - libFuzzer target for the CART/2 frame decoders: the
    header codec cart_header_decode (proto/cart_wire.c) at every end of the
    bus; the control bodies cart_ready_decode with cart_ready_next, and
    cart_load_decode / cart_stats_decode with cart_stats_next
    (proto/cart_control.c); and the message reader cart_msg_recv
    (proto/cart_msg.c), on inproc sockets.

    Input: one byte N, then each frame as a two-byte big-endian length and
    its bytes (cut at the input's end; frames past the end are empty). N
    says how many frames there are, N % 5: none, a header alone, a header
    and a body, and one or two more than a message may have; and which
    end reads them as a message: (N / 5) % 4 indexes FRONTEND, CLIENT,
    BACKEND, WORKER (the CART_AT_ bits), and (N / 20) % 2 is 1 when a
    ROUTER reads it (sent by a DEALER, so with an identity frame in
    front), 0 when a PAIR does. Every frame lives in a heap buffer of
    exactly its size. Every decoder runs on the whole input and on every
    frame, the header decoder for each end; then the frames are sent as
    one message and read back with cart_msg_recv at the end N names (one
    end per input: a round trip through libzmq costs more than all the
    decoders together).

    Invariants: a decoded header has a command of CART_COMMANDS that its
    receiver may get, a key below 2^63, a shard below CART_SHARDS_MAX and,
    in a REPLY or REFUSE, a known status; encoding it again gives back the
    same 32 bytes. A READY lists 1 to CART_SHARDS_MAX shards, each below
    CART_SHARDS_MAX, and encodes back to the same values. A load or stats
    list reads to its end without running past its entry count, its
    entries are in range, and a whole list encodes back to the same values.
    A message cart_msg_recv takes has the frames its command's body rule
    allows and the header cart_header_decode gives, and each read leaves
    the socket at a message boundary.
    =========================================================================
*/
#include "fuzz_common.h"

#include <errno.h>

//  Up to two frames more than a message's header and body: N % FRAMES_MAX
#define FRAMES_MAX 5

//  The commands' rules, from CART_COMMANDS itself rather than from the
//  decoder's own tables
#define COMMAND_NAME(NAME, value, body, receivers) [value] = #NAME,
static const char *s_names[] = {CART_COMMANDS (COMMAND_NAME)};
#undef COMMAND_NAME
#define COMMAND_RECEIVERS(NAME, value, body, receivers) [value] = (receivers),
static const int s_receivers[] = {CART_COMMANDS (COMMAND_RECEIVERS)};
#undef COMMAND_RECEIVERS
#define COMMAND_BODY(NAME, value, body, receivers) [value] = (body),
static const cart_body_rule_t s_bodies[] = {CART_COMMANDS (COMMAND_BODY)};
#undef COMMAND_BODY
#define COMMANDS (sizeof (s_names) / sizeof (s_names[0]))

static const int s_ats[] = {CART_AT_FRONTEND, CART_AT_CLIENT, CART_AT_BACKEND,
                            CART_AT_WORKER};
#define ATS (sizeof (s_ats) / sizeof (s_ats[0]))

static bool
s_command_known (int command)
{
    return command >= 0 && (size_t)command < COMMANDS && s_names[command];
}

static uint64_t
s_get_u64 (const uint8_t *p)
{
    uint64_t value = 0;
    for (size_t i = 0; i < 8; i++)
        value = value << 8 | p[i];
    return value;
}

//  --------------------------------------------------------------------------
//  Header

static bool
s_headers_equal (const cart_header_t *a, const cart_header_t *b)
{
    return a->command == b->command && a->flags == b->flags && a->status == b->status &&
           a->shard == b->shard && a->timeout_ms == b->timeout_ms &&
           a->acked == b->acked && a->corr == b->corr && a->key == b->key;
}

//  Decodes a frame as a header received at `at`; returns cart_header_decode's
//  answer, with *header as it left it.
static int
s_check_header (const uint8_t *data, size_t size, int at, cart_header_t *header)
{
    const char *error = NULL;
    int rc = cart_header_decode (data, size, at, header, &error);
    FUZZ_CHECK (rc == 0 || rc == -1);
    bool signed_v2 =
        size == CART_HEADER_SIZE && data[0] == 'C' && data[1] == CART_VERSION;
    if (signed_v2) {
        //  A broker answers a malformed request by its corr
        FUZZ_CHECK (header->command == data[2]);
        FUZZ_CHECK (header->corr == s_get_u64 (data + 16));
    }
    if (rc) {
        FUZZ_CHECK (error && error[0]);
        return -1;
    }
    FUZZ_CHECK (signed_v2);
    FUZZ_CHECK (s_command_known (header->command));
    FUZZ_CHECK (s_receivers[header->command] & at);
    FUZZ_CHECK (header->key >> 63 == 0);
    FUZZ_CHECK (header->shard < CART_SHARDS_MAX);
    if (header->command == CART_CMD_REPLY || header->command == CART_CMD_REFUSE)
        FUZZ_CHECK (cart_status_known (header->status));
    uint8_t wire[CART_HEADER_SIZE];
    cart_header_encode (header, wire);
    FUZZ_CHECK (memcmp (wire, data, CART_HEADER_SIZE) == 0);
    return 0;
}

//  What cart_command_name and cart_command_body say of a command byte
static void
s_check_command (uint8_t command)
{
    if (!s_command_known (command)) {
        FUZZ_CHECK (strcmp (cart_command_name (command), "UNKNOWN") == 0);
        return;
    }
    FUZZ_CHECK (strcmp (cart_command_name (command), s_names[command]) == 0);
    FUZZ_CHECK (cart_command_body (command) == s_bodies[command]);
}

//  --------------------------------------------------------------------------
//  READY

static int
s_decode_ready (const void *data, size_t size, cart_ready_t *ready)
{
    const char *error = NULL;
    int rc = cart_ready_decode (data, size, ready, &error);
    FUZZ_CHECK (rc == 0 || rc == -1);
    if (rc) {
        FUZZ_CHECK (error && error[0]);
        return -1;
    }
    FUZZ_CHECK (ready->n_shards >= 1 && ready->n_shards <= CART_SHARDS_MAX);
    FUZZ_CHECK (ready->shards >= 1 && ready->shards <= CART_SHARDS_MAX);
    return 0;
}

//  Reads a decoded READY's shards; caller frees the list.
static uint32_t *
s_read_ready (cart_ready_t *ready)
{
    uint32_t *list = (uint32_t *)calloc (ready->n_shards, sizeof (*list));
    FUZZ_CHECK (list);
    for (size_t i = 0; i < ready->n_shards; i++) {
        list[i] = cart_ready_next (ready);
        FUZZ_CHECK (list[i] < CART_SHARDS_MAX);
    }
    return list;
}

static void
s_check_ready (const void *data, size_t size)
{
    cart_ready_t ready;
    if (s_decode_ready (data, size, &ready))
        return;
    uint32_t *list = s_read_ready (&ready);

    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    cart_ready_encode (&pk, ready.shards, ready.heartbeat_ms, list, ready.n_shards);
    //  A canonical encoding is never longer than what was decoded
    FUZZ_CHECK (buf.size <= size);
    void *copy = fuzz_copy (buf.data, buf.size);
    cart_ready_t again;
    FUZZ_CHECK (s_decode_ready (copy, buf.size, &again) == 0);
    FUZZ_CHECK (again.shards == ready.shards &&
                again.heartbeat_ms == ready.heartbeat_ms &&
                again.n_shards == ready.n_shards);
    uint32_t *list_again = s_read_ready (&again);
    FUZZ_CHECK (memcmp (list, list_again, ready.n_shards * sizeof (*list)) == 0);
    free (list_again);
    free (copy);
    msgpack_sbuffer_destroy (&buf);
    free (list);
}

//  --------------------------------------------------------------------------
//  Load and stats

static void
s_check_entry (const cart_shard_stats_t *entry, bool stats)
{
    FUZZ_CHECK (entry->shard < CART_SHARDS_MAX);
    FUZZ_CHECK (entry->load_age_ms >= -1 && entry->load_age_ms <= CART_LOAD_AGE_MAX_MS);
    if (!stats)
        FUZZ_CHECK (!entry->live && !entry->stalled && entry->requests == 0 &&
                    entry->load_age_ms == -1);
}

static void
s_check_entries_equal (const cart_shard_stats_t *a, const cart_shard_stats_t *b)
{
    FUZZ_CHECK (a->shard == b->shard && a->live == b->live && a->stalled == b->stalled &&
                a->carts == b->carts && a->items == b->items &&
                a->expired == b->expired && a->requests == b->requests &&
                a->load_age_ms == b->load_age_ms);
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
    //  After the end, the reader stays at the end
    cart_shard_stats_t extra;
    FUZZ_CHECK (cart_stats_next (list, &extra, &error) == 0);
    return (long)n;
}

static int
s_decode_list (bool stats, const void *data, size_t size, cart_stats_list_t *list)
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
s_round_trip_list (bool stats, const cart_stats_list_t *list,
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
    FUZZ_CHECK (s_decode_list (stats, copy, buf.size, &again) == 0);
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
    if (s_decode_list (stats, data, size, &list))
        return;
    cart_shard_stats_t *entries;
    long n = s_read_list (&list, stats, &entries);
    if (n >= 0)
        s_round_trip_list (stats, &list, entries, (size_t)n);
    free (entries);
}

//  --------------------------------------------------------------------------
//  Every decoder on one frame

static void
s_check_frame (const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < ATS; i++) {
        cart_header_t header;
        s_check_header (data, size, s_ats[i], &header);
    }
    if (size > 2)
        s_check_command (data[2]);
    s_check_ready (data, size);
    s_check_list (false, data, size);
    s_check_list (true, data, size);
}

//  --------------------------------------------------------------------------
//  Messages on sockets: cart_msg_recv

typedef struct {
    const void *data;
    size_t size;
} frame_t;

static void *s_context;
static void *s_pair_send, *s_pair_recv; //  routed = false
static void *s_dealer, *s_router;       //  routed = true

static void *
s_socket (int type)
{
    void *socket = zmq_socket (s_context, type);
    FUZZ_CHECK (socket);
    int linger = 0, timeout = 5000;
    FUZZ_CHECK (zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof (linger)) == 0);
    FUZZ_CHECK (zmq_setsockopt (socket, ZMQ_RCVTIMEO, &timeout, sizeof (timeout)) == 0);
    FUZZ_CHECK (zmq_setsockopt (socket, ZMQ_SNDTIMEO, &timeout, sizeof (timeout)) == 0);
    return socket;
}

static void
s_sockets_open (void)
{
    s_context = zmq_ctx_new ();
    FUZZ_CHECK (s_context);
    s_pair_recv = s_socket (ZMQ_PAIR);
    FUZZ_CHECK (zmq_bind (s_pair_recv, "inproc://fuzz-frames-pair") == 0);
    s_pair_send = s_socket (ZMQ_PAIR);
    FUZZ_CHECK (zmq_connect (s_pair_send, "inproc://fuzz-frames-pair") == 0);
    s_router = s_socket (ZMQ_ROUTER);
    FUZZ_CHECK (zmq_bind (s_router, "inproc://fuzz-frames-router") == 0);
    s_dealer = s_socket (ZMQ_DEALER);
    FUZZ_CHECK (zmq_connect (s_dealer, "inproc://fuzz-frames-router") == 0);
}

static void
s_send_frames (void *socket, const frame_t *frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK (zmq_send (socket, frames[i].data, frames[i].size,
                              i + 1 < n ? ZMQ_SNDMORE : 0) == (int)frames[i].size);
}

//  Sends the frames as one message and reads it back at `at`.
static void
s_check_message (const frame_t *frames, size_t n, int at, bool routed)
{
    s_send_frames (routed ? s_dealer : s_pair_send, frames, n);
    void *socket = routed ? s_router : s_pair_recv;
    cart_msg_t msg;
    cart_msg_init (&msg);
    const char *error = NULL;
    //  libFuzzer's timeout alarm (SIGALRM) may interrupt a receive: EINTR
    //  is tried again, never taken for an answer
    int rc;
    do
        rc = cart_msg_recv (socket, at, routed, &msg, 0, &error);
    while (rc == 0 && errno == EINTR);
    FUZZ_CHECK (rc == 1 || rc == -1); //  a message was there to read
    //  The whole message was read, and nothing more
    FUZZ_CHECK (msg.frames == n + (routed ? 1 : 0));
    zmq_msg_t spare;
    zmq_msg_init (&spare);
    int spare_rc;
    do
        spare_rc = zmq_msg_recv (&spare, socket, ZMQ_DONTWAIT);
    while (spare_rc == -1 && errno == EINTR);
    FUZZ_CHECK (spare_rc == -1 && errno == EAGAIN);
    zmq_msg_close (&spare);
    if (routed)
        FUZZ_CHECK (zmq_msg_size (&msg.identity) >= 1 &&
                    zmq_msg_size (&msg.identity) <= CART_IDENTITY_MAX);
    else
        FUZZ_CHECK (zmq_msg_size (&msg.identity) == 0);
    if (rc == -1) {
        FUZZ_CHECK (error && error[0]);
        cart_msg_close (&msg);
        return;
    }
    cart_header_t header;
    FUZZ_CHECK (s_check_header ((const uint8_t *)frames[0].data, frames[0].size, at,
                                &header) == 0);
    FUZZ_CHECK (s_headers_equal (&msg.header, &header));
    cart_body_rule_t rule = s_bodies[header.command];
    FUZZ_CHECK (n == 1 || n == 2);
    FUZZ_CHECK (n == 1 ? rule != CART_BODY_ALWAYS : rule != CART_BODY_NEVER);
    size_t body_size = n == 2 ? frames[1].size : 0;
    FUZZ_CHECK (cart_msg_body_size (&msg) == body_size);
    FUZZ_CHECK (body_size <= CART_BODY_WIRE_MAX);
    if (body_size)
        FUZZ_CHECK (memcmp (cart_msg_body (&msg), frames[1].data, body_size) == 0);
    cart_msg_close (&msg);
    FUZZ_CHECK (cart_msg_body_size (&msg) == 0 && msg.frames == 0);
}

//  --------------------------------------------------------------------------

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    s_sockets_open ();
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_check_frame (data, size);
    if (size < 1)
        return 0;
    size_t n = data[0] % FRAMES_MAX;
    const uint8_t *p = data + 1;
    size_t left = size - 1;

    frame_t frames[FRAMES_MAX];
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
        frames[i] = (frame_t){copies[i], len};
        p += len;
        left -= len;
    }
    for (size_t i = 0; i < n; i++)
        s_check_frame ((const uint8_t *)frames[i].data, frames[i].size);
    if (n > 0)
        s_check_message (frames, n, s_ats[data[0] / FRAMES_MAX % ATS],
                         data[0] / (FRAMES_MAX * ATS) % 2);
    for (size_t i = 0; i < n; i++)
        free (copies[i]);
    return 0;
}
