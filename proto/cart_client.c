/*  =========================================================================
    cart_client - pipelined CART/1 client.

    Requests in flight live in a fixed table of CART_CLIENT_INFLIGHT slots.
    A correlation id is (sequence << 16 | slot), so a reply finds its slot
    in one step, and a late reply for a slot since reused does not match
    its new id. The slots in flight are also on a list ordered by deadline:
    a request is put at the tail, walking back only past requests with a
    later deadline, which with one timeout per caller (the usual case) is
    no walk at all; the head is the next to expire. Nothing is allocated
    after cart_client_new.
    =========================================================================
*/
#include "cart_client.h"

#include <czmq.h>
#include <errno.h>

#include "cart_hash.h"

#define NONE       UINT32_MAX
#define SLOT_BITS  16
#define CLIENT_HWM 10000

_Static_assert(CART_CLIENT_INFLIGHT == 1 << SLOT_BITS, "a slot index fits its bits");

typedef struct {
    uint64_t corr;    //  0 when the slot is free
    int64_t deadline; //  zclock_mono () time
    void *user;
    uint32_t prev; //  deadline list, or free list (next only)
    uint32_t next;
} slot_t;

struct _cart_client_t {
    zsock_t *dealer;
    void *sock;
    slot_t *slots;
    uint32_t free_head;
    uint32_t head; //  earliest deadline
    uint32_t tail;
    size_t pending;
    uint64_t sequence;
    msgpack_sbuffer out;
    zmq_msg_t parts[CART_FRAMES_MAX];
    size_t n_parts; //  frames held for the last result
};

cart_client_t *
cart_client_new (const char *endpoint, char **error)
{
    cart_client_t *self = (cart_client_t *)zmalloc (sizeof (cart_client_t));
    assert (self);
    self->dealer = zsock_new (ZMQ_DEALER);
    assert (self->dealer);
    zsock_set_sndhwm (self->dealer, CLIENT_HWM);
    zsock_set_rcvhwm (self->dealer, CLIENT_HWM);
    zsock_set_maxmsgsize (self->dealer, CART_WIRE_MSG_MAX);
    zsock_set_linger (self->dealer, 0);
    zsock_set_immediate (self->dealer, 1);
    zsock_set_reconnect_ivl (self->dealer, 100);
    zsock_set_reconnect_ivl_max (self->dealer, 1000);
    if (!endpoint || zsock_connect (self->dealer, "%s", endpoint)) {
        if (error)
            *error = zsys_sprintf ("cannot connect to '%s': %s",
                                   endpoint ? endpoint : "(none)",
                                   zmq_strerror (zmq_errno ()));
        cart_client_destroy (&self);
        return NULL;
    }
    self->sock = zsock_resolve (self->dealer);
    self->slots = (slot_t *)calloc (CART_CLIENT_INFLIGHT, sizeof (slot_t));
    assert (self->slots);
    for (uint32_t i = 0; i < CART_CLIENT_INFLIGHT; i++)
        self->slots[i].next = i + 1 < CART_CLIENT_INFLIGHT ? i + 1 : NONE;
    self->free_head = 0;
    self->head = self->tail = NONE;
    msgpack_sbuffer_init (&self->out);
    return self;
}

static void
s_release_parts (cart_client_t *self)
{
    for (size_t i = 0; i < self->n_parts; i++)
        zmq_msg_close (&self->parts[i]);
    self->n_parts = 0;
}

void
cart_client_destroy (cart_client_t **self_p)
{
    cart_client_t *self = *self_p;
    if (!self)
        return;
    s_release_parts (self);
    zsock_destroy (&self->dealer);
    free (self->slots);
    msgpack_sbuffer_destroy (&self->out);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  The table of requests in flight

//  Puts a taken slot on the deadline list, keeping it ordered.
static void
s_list_insert (cart_client_t *self, uint32_t index)
{
    slot_t *slot = &self->slots[index];
    uint32_t after = self->tail;
    while (after != NONE && self->slots[after].deadline > slot->deadline)
        after = self->slots[after].prev;
    slot->prev = after;
    slot->next = after == NONE ? self->head : self->slots[after].next;
    if (slot->next == NONE)
        self->tail = index;
    else
        self->slots[slot->next].prev = index;
    if (after == NONE)
        self->head = index;
    else
        self->slots[after].next = index;
}

static void
s_list_remove (cart_client_t *self, uint32_t index)
{
    slot_t *slot = &self->slots[index];
    if (slot->prev == NONE)
        self->head = slot->next;
    else
        self->slots[slot->prev].next = slot->next;
    if (slot->next == NONE)
        self->tail = slot->prev;
    else
        self->slots[slot->next].prev = slot->prev;
}

//  Takes a free slot for a new request; returns its index, or NONE.
static uint32_t
s_slot_take (cart_client_t *self, int timeout_ms, void *user)
{
    uint32_t index = self->free_head;
    if (index == NONE)
        return NONE;
    slot_t *slot = &self->slots[index];
    self->free_head = slot->next;
    slot->corr = (++self->sequence << SLOT_BITS) | index;
    slot->deadline = zclock_mono () + (timeout_ms > 0 ? timeout_ms : CART_DEADLINE_MS);
    slot->user = user;
    s_list_insert (self, index);
    self->pending++;
    return index;
}

//  Ends a request: its slot goes back on the free list.
static void
s_slot_free (cart_client_t *self, uint32_t index)
{
    s_list_remove (self, index);
    self->slots[index].corr = 0;
    self->slots[index].next = self->free_head;
    self->free_head = index;
    self->pending--;
}

//  --------------------------------------------------------------------------
//  Sending

static int
s_send_frames (cart_client_t *self, cart_msg_t *msg)
{
    cart_frame_t frames[CART_FRAMES_MAX];
    size_t n = cart_msg_frames_client (msg, frames);
    for (size_t i = 0; i < n; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);
        if (zmq_send (self->sock, frames[i].data, frames[i].size, flags) == -1) {
            assert (i == 0); //  a message is queued whole or not at all
            return -1;
        }
    }
    return 0;
}

//  Sends a message for a new request in a fresh slot.
static int
s_send_request (cart_client_t *self, cart_msg_t *msg, int timeout_ms, void *user,
                uint64_t *corr)
{
    uint32_t index = s_slot_take (self, timeout_ms, user);
    if (index == NONE) {
        errno = EAGAIN;
        return -1;
    }
    msg->corr = self->slots[index].corr;
    if (s_send_frames (self, msg)) {
        s_slot_free (self, index);
        errno = EAGAIN;
        return -1;
    }
    if (corr)
        *corr = msg->corr;
    return 0;
}

int
cart_client_send (cart_client_t *self, const cart_request_t *req, int timeout_ms,
                  void *user, uint64_t *corr, const char **error)
{
    assert (self);
    self->out.size = 0;
    const char *fault;
    if (cart_request_encode (req, &self->out, &fault)) {
        if (error)
            *error = fault;
        errno = EINVAL;
        return -1;
    }
    cart_msg_t msg = {.command = CART_C_REQUEST,
                      .key = cart_hash_key (req->customer, req->customer_len),
                      .body = {self->out.data, self->out.size}};
    return s_send_request (self, &msg, timeout_ms, user, corr);
}

int
cart_client_send_command (cart_client_t *self, int command, int timeout_ms, void *user,
                          uint64_t *corr)
{
    assert (self);
    assert (command == CART_C_PING || command == CART_C_STATS);
    cart_msg_t msg = {.command = command};
    return s_send_request (self, &msg, timeout_ms, user, corr);
}

//  --------------------------------------------------------------------------
//  Receiving

//  Reads one whole message into self->parts; false when none is waiting.
//  A message of more frames than a reply has is read and dropped whole.
static bool
s_recv_parts (cart_client_t *self, int64_t wait_ms)
{
    s_release_parts (self);
    //  Waiting in a blocking receive costs one system call where zmq_poll
    //  costs several (it checks the socket's mailbox before and after)
    int flags = ZMQ_DONTWAIT;
    if (wait_ms != 0) {
        int timeout = wait_ms < 0 || wait_ms > INT32_MAX ? -1 : (int)wait_ms;
        zmq_setsockopt (self->sock, ZMQ_RCVTIMEO, &timeout, sizeof (timeout));
        flags = 0;
    }
    size_t count = cart_msg_recv (self->sock, self->parts, CART_FRAMES_MAX, flags);
    self->n_parts = count < CART_FRAMES_MAX ? count : CART_FRAMES_MAX;
    if (count > CART_FRAMES_MAX)
        s_release_parts (self); //  longer than any reply: dropped whole
    return count > 0;
}

//  Matches the received message to its request. Returns 1 and fills
//  *result, or 0 when the message is malformed or its request is over.
static int
s_take_reply (cart_client_t *self, cart_result_t *result)
{
    cart_frame_t frames[CART_FRAMES_MAX];
    for (size_t i = 0; i < self->n_parts; i++)
        frames[i] = (cart_frame_t){zmq_msg_data (&self->parts[i]),
                                   zmq_msg_size (&self->parts[i])};
    cart_msg_t msg;
    const char *error;
    if (self->n_parts == 0 ||
        cart_msg_parse_client (frames, self->n_parts, &msg, &error) ||
        msg.command != CART_C_REPLY)
        return 0;
    uint32_t index = (uint32_t)(msg.corr & (CART_CLIENT_INFLIGHT - 1));
    if (msg.corr == 0 || self->slots[index].corr != msg.corr)
        return 0; //  late (its deadline passed), or never ours: a free slot has 0
    *result = (cart_result_t){.corr = msg.corr,
                              .status = msg.status,
                              .user = self->slots[index].user,
                              .body = msg.body.data,
                              .body_size = msg.body.size};
    s_slot_free (self, index);
    return 1;
}

//  Ends the earliest request if its deadline has passed.
static int
s_take_expired (cart_client_t *self, cart_result_t *result)
{
    if (self->head == NONE || self->slots[self->head].deadline > zclock_mono ())
        return 0;
    uint32_t index = self->head;
    *result = (cart_result_t){.corr = self->slots[index].corr,
                              .status = CART_TIMEOUT,
                              .user = self->slots[index].user};
    s_slot_free (self, index);
    return 1;
}

int
cart_client_next_timeout (cart_client_t *self)
{
    if (self->head == NONE)
        return -1;
    int64_t wait = self->slots[self->head].deadline - zclock_mono ();
    return wait > 0 ? (int)wait : 0;
}

int
cart_client_recv (cart_client_t *self, cart_result_t *result, int wait_ms)
{
    assert (self);
    int64_t until = wait_ms < 0 ? INT64_MAX : zclock_mono () + wait_ms;
    while (true) {
        int64_t now = zclock_mono ();
        if (self->head != NONE && self->slots[self->head].deadline <= now) {
            //  A deadline has passed: replies already here win over it
            while (s_recv_parts (self, 0))
                if (s_take_reply (self, result))
                    return 1;
            if (s_take_expired (self, result))
                return 1;
        }
        int64_t wait = now >= until ? 0 : until - now;
        int deadline = cart_client_next_timeout (self);
        if (deadline >= 0 && (wait < 0 || deadline < wait))
            wait = deadline;
        if (wait_ms < 0 && deadline < 0)
            wait = -1; //  no deadline to watch: wait for a reply
        if (s_recv_parts (self, wait)) {
            if (s_take_reply (self, result))
                return 1;
            continue; //  malformed or late: look again
        }
        if (zmq_errno () == EINTR || zclock_mono () >= until)
            return 0; //  interrupted, or waited long enough
    }
}

void *
cart_client_handle (cart_client_t *self)
{
    return self->sock;
}

size_t
cart_client_pending (cart_client_t *self)
{
    return self->pending;
}
