/*  =========================================================================
    cart_worker - the shard worker actor.

    States and events, as the worker sees the broker:

        state        event                       action
        registering  any message from broker     -> serving
        serving      REQUEST                     run it on the shard's
                                                 partition, send REPLY
        serving      HEARTBEAT                   renew the broker's expiry
        any          DISCONNECT                  send READY at the next beat
        any          REFUSE 409 (a shard has     send READY again at each beat,
                     another live worker)        for up to 3 x liveness beats
                                                 (its predecessor may be dead
                                                 but not yet known so); then
                                                 -> failed
        any          REFUSE, any other status    -> failed
        failed       -                           report FATAL on the pipe,
                                                 close the socket, wait for
                                                 $TERM
        any          heartbeat timer             send HEARTBEAT (with load
                                                 once a second)
        any          broker silent for liveness  new socket, READY
                     x heartbeat                 -> registering

    A request that cannot be run (malformed body, a key that does not match
    its customerId, a shard this worker does not own) is answered 400 or
    503 with a message and changes nothing.

    The reply body is written into one msgpack buffer that is reused for
    every request. Operations are run through a table built from CART_OPS,
    so that every operation has its function and none runs by default.
    =========================================================================
*/
#include "cart_worker.h"

#include <errno.h>
#include <unistd.h>
#include <openssl/rand.h>

#include "cart_actor.h"
#include "cart_body.h"
#include "cart_client.h"
#include "cart_commit.h"
#include "cart_control.h"
#include "cart_hash.h"
#include "cart_apply.h"
#include "cart_args.h"
#include "cart_log.h"
#include "cart_msg.h"
#include "cart_partition.h"
#include "cart_ring.h"
#include "cart_store.h"
#include "cart_wire.h"

#define LOAD_MS     1000 //  how often a heartbeat carries the load
#define BATCH       256  //  requests read and answered in one go
#define WORKER_HWM  10000
#define REFUSALS    (3 * CART_LIVENESS) //  beats a 409 refusal is retried
#define WATCH_MS    10000               //  a failing handshake is logged this often
#define SWEEP_CARTS 256                 //  carts looked at for expiry per heartbeat
#define SWEEP_KEYS  1024 //  idempotency keys forgotten per shard per heartbeat

//  A reply held back until its batch is committed
typedef struct {
    cart_header_t header;
    size_t offset; //  of its body in the batch's out
    size_t size;
} reply_t;

//  The replies of one batch
typedef struct {
    reply_t replies[BATCH];
    size_t n;
    msgpack_sbuffer out; //  their bodies
} batch_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *dealer;
    void *sock;
    char *endpoint;
    cart_curve_t curve; //  with use_curve: the keys of each new socket
    bool use_curve;
    cart_curve_watch_t *watch; //  the socket's handshakes, to say why it is
    cart_curve_state_t told;   //  not heard (the state last logged)
    int64_t told_at;
    size_t n_shards;
    uint32_t *shards;              //  the shards owned, in config order
    cart_partition_t **partitions; //  one per entry of shards
    int32_t *slot_of;              //  shard number -> index in shards, or -1
    uint32_t slot_limit;           //  entries in slot_of
    uint32_t cluster_shards;       //  the cluster's shard count
    int heartbeat_ms;
    int liveness;
    int64_t heartbeat_at;
    int64_t load_at;
    int64_t broker_expiry;
    uint32_t reconnects; //  in a row, with nothing heard from the broker
    int64_t pipe_at;
    bool verbose;
    bool terminated;
    bool failed;       //  refused for good: waiting for $TERM
    bool ready_due;    //  the broker asked us to register again
    int refusals;      //  409 refusals in a row
    char identity[40]; //  kept across reconnections, so that the broker
                       //  knows this worker after a pause (PROTOCOL.md 7)
    cart_msg_t msg;
    msgpack_sbuffer out;
    msgpack_packer pk;
    char text[512]; //  an error message being built
    //  Durability (data_dir set): one store (snapshot and log) per shard;
    //  the replies of a batch wait until its changes are committed (group
    //  commit), by the committer thread, while the next batch gathers
    cart_store_t **stores; //  per slot, or NULL when in memory
    bool *dirty;           //  per slot: records buffered in the gathering batch
    bool *lost;            //  per slot: changes not committed (after a failure)
    batch_t batches[2];
    batch_t *gathering; //  taking requests
    batch_t *flight;    //  waiting for its commit
    cart_commit_t *commit;
    cart_log_t **flight_logs; //  the logs the commit in flight writes
    uint32_t *flight_slots;   //  and their slots
    uint64_t *flight_seqs;    //  and the last record of each
    size_t n_flight;
    uint64_t *committed;    //  per slot: the last log record committed
    msgpack_sbuffer record; //  a change as it is logged
    bool expired_dirty;     //  expiries buffered in logs, with no request
    //  Expiry (cart_ttl) and idempotency keys (idem_ttl), seconds
    uint64_t cart_ttl;
    uint64_t idem_ttl;
    uint64_t *expired; //  per slot: carts removed for their age
    size_t *sweep_at;  //  per slot: where the sweep for old carts is
    size_t sweep_slot; //  the slot the next sweep starts with
} self_t;

//  --------------------------------------------------------------------------
//  Set-up

static int
s_check_config (const cart_worker_config_t *config, const char **error)
{
    uint32_t cluster = config->cluster_shards;
    *error = NULL;
    if (!config->broker || !*config->broker)
        *error = "no broker endpoint";
    else if (cluster < 1 || cluster > CART_SHARDS_MAX)
        *error = cart_errorf ("the cluster's shard count %u is not 1 to %d", cluster,
                              CART_SHARDS_MAX);
    else if (config->n_shards < 1 || config->n_shards > cluster)
        *error = cart_errorf ("a worker serves 1 to %u shards", cluster);
    else
        for (size_t i = 0; i < config->n_shards && !*error; i++)
            if (config->shards[i] >= cluster)
                *error = cart_errorf ("shard %u is outside the cluster's %u shards (0 to "
                                      "%u; see --shards)",
                                      config->shards[i], cluster, cluster - 1);
    return *error ? -1 : 0;
}

static void
s_self_destroy (self_t **self_p)
{
    self_t *self = *self_p;
    if (!self)
        return;
    cart_curve_watch_destroy (&self->watch);
    zsock_destroy (&self->dealer);
    for (size_t i = 0; i < self->n_shards; i++)
        cart_partition_destroy (&self->partitions[i]);
    free (self->partitions);
    free (self->shards);
    free (self->slot_of);
    zstr_free (&self->endpoint);
    cart_msg_close (&self->msg);
    cart_commit_destroy (&self->commit); //  after a commit in flight
    for (size_t i = 0; self->stores && i < self->n_shards; i++)
        cart_store_close (&self->stores[i]);
    free (self->stores);
    free (self->dirty);
    free (self->lost);
    free (self->flight_logs);
    free (self->flight_slots);
    free (self->flight_seqs);
    free (self->committed);
    free (self->expired);
    free (self->sweep_at);
    msgpack_sbuffer_destroy (&self->record);
    msgpack_sbuffer_destroy (&self->batches[0].out);
    msgpack_sbuffer_destroy (&self->batches[1].out);
    msgpack_sbuffer_destroy (&self->out);
    free (self);
    *self_p = NULL;
}

//  Seconds since the epoch, the time carts and keys are stamped with
static uint64_t
s_now (void)
{
    return (uint64_t)(zclock_time () / 1000);
}

//  Builds the shard table; a shard listed twice is an error.
static int
s_own_shards (self_t *self, const cart_worker_config_t *config, const char **error)
{
    self->n_shards = config->n_shards;
    self->shards = (uint32_t *)malloc (config->n_shards * sizeof (uint32_t));
    self->partitions = (cart_partition_t **)calloc (config->n_shards, sizeof (void *));
    self->slot_limit = 0;
    for (size_t i = 0; i < config->n_shards; i++)
        if (config->shards[i] + 1 > self->slot_limit)
            self->slot_limit = config->shards[i] + 1;
    self->slot_of = (int32_t *)malloc (self->slot_limit * sizeof (int32_t));
    assert (self->shards && self->partitions && self->slot_of);
    memset (self->slot_of, 0xFF, self->slot_limit * sizeof (int32_t));
    for (size_t i = 0; i < config->n_shards; i++) {
        uint32_t shard = config->shards[i];
        if (self->slot_of[shard] >= 0) {
            *error = cart_errorf ("shard %u is listed twice", shard);
            return -1;
        }
        self->slot_of[shard] = (int32_t)i;
        self->shards[i] = shard;
        self->partitions[i] = cart_partition_new ();
    }
    self->expired = (uint64_t *)calloc (config->n_shards, sizeof (uint64_t));
    self->sweep_at = (size_t *)calloc (config->n_shards, sizeof (size_t));
    assert (self->expired && self->sweep_at);
    return 0;
}

static int s_recover (self_t *self, const cart_worker_config_t *config,
                      const char **error);

static self_t *
s_self_new (zsock_t *pipe, const cart_worker_config_t *config, const char **error)
{
    if (s_check_config (config, error))
        return NULL;
    self_t *self = (self_t *)zmalloc (sizeof (self_t));
    assert (self);
    cart_msg_init (&self->msg);
    uint8_t random[16];
    if (RAND_bytes (random, sizeof (random)) != 1)
        cart_put_u32 (random, (uint32_t)zclock_usecs ());
    int used = snprintf (self->identity, sizeof (self->identity), "w-");
    for (size_t i = 0; i < sizeof (random); i++)
        used += snprintf (self->identity + used, sizeof (self->identity) - (size_t)used,
                          "%02x", random[i]);
    self->pipe = pipe;
    self->cluster_shards = config->cluster_shards;
    self->endpoint = strdup (config->broker);
    if (config->curve) {
        self->curve = *config->curve;
        self->use_curve = true;
    }
    self->heartbeat_ms =
        config->heartbeat_ms > 0 ? config->heartbeat_ms : CART_HEARTBEAT_MS;
    self->liveness = config->liveness > 0 ? config->liveness : CART_LIVENESS;
    self->verbose = config->verbose;
    self->cart_ttl = config->cart_ttl;
    self->idem_ttl = config->idem_ttl ? config->idem_ttl : CART_IDEM_TTL;
    msgpack_sbuffer_init (&self->out);
    msgpack_sbuffer_init (&self->record);
    msgpack_sbuffer_init (&self->batches[0].out);
    msgpack_sbuffer_init (&self->batches[1].out);
    self->gathering = &self->batches[0];
    self->flight = &self->batches[1];
    msgpack_packer_init (&self->pk, &self->out, msgpack_sbuffer_write);
    if (s_own_shards (self, config, error) ||
        (config->data_dir && s_recover (self, config, error))) {
        s_self_destroy (&self);
        return NULL;
    }
    return self;
}

//  --------------------------------------------------------------------------
//  Talking to the broker

static void
s_send_ready (self_t *self)
{
    self->out.size = 0;
    cart_ready_encode (&self->pk, self->cluster_shards, (uint32_t)self->heartbeat_ms,
                       self->shards, self->n_shards);
    cart_header_t header = {.command = CART_CMD_READY};
    cart_frame_t body = cart_frame_bytes (self->out.data, self->out.size);
    cart_msg_send (self->sock, NULL, &header, &body);
}

//  (Re)connects to the broker with a fresh socket and registers.
static int
s_connect (self_t *self, const char **error)
{
    //  The new socket replaces the old one only once it is connected, so a
    //  failed reconnection leaves the worker on its old socket
    cart_curve_watch_t *watch = NULL;
    zsock_t *dealer =
        cart_client_dealer (self->endpoint, WORKER_HWM, false, self->identity,
                            self->use_curve ? &self->curve : NULL, &watch, error);
    if (!dealer)
        return -1;
    cart_curve_watch_destroy (&self->watch);
    self->watch = watch;
    zsock_destroy (&self->dealer);
    self->dealer = dealer;
    self->sock = zsock_resolve (self->dealer);
    s_send_ready (self);
    //  A handshake (CURVE's crypto) and READY on a busy machine may take
    //  longer than the liveness window: each reconnection in a row waits
    //  twice as long for the broker, up to 16 windows (4.8 s by default), so
    //  that a slow connection is not thrown away before it is made
    uint32_t factor = 1u << (self->reconnects < 4 ? self->reconnects : 4);
    self->broker_expiry =
        zclock_mono () + (int64_t)self->heartbeat_ms * self->liveness * factor;
    return 0;
}

static void
s_send_heartbeat (self_t *self)
{
    int64_t now = zclock_mono ();
    bool with_load = now >= self->load_at;
    self->heartbeat_at = now + self->heartbeat_ms;
    cart_header_t header = {.command = CART_CMD_HEARTBEAT};
    if (!with_load) {
        cart_msg_send (self->sock, NULL, &header, NULL);
        return;
    }
    self->out.size = 0;
    cart_load_encode (&self->pk, self->n_shards);
    for (size_t i = 0; i < self->n_shards; i++) {
        cart_shard_stats_t entry = {.shard = self->shards[i],
                                    .carts = cart_partition_carts (self->partitions[i]),
                                    .items = cart_partition_items (self->partitions[i]),
                                    .expired = self->expired[i]};
        cart_load_encode_entry (&self->pk, &entry);
    }
    cart_frame_t body = cart_frame_bytes (self->out.data, self->out.size);
    cart_msg_send (self->sock, NULL, &header, &body);
    self->load_at = now + LOAD_MS;
}

//  --------------------------------------------------------------------------
//  Running requests

static void s_error (self_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_error (self_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->text, sizeof (self->text), format, args);
    va_end (args);
    cart_reply_encode_error (&self->pk, self->text);
}

//  Runs the current request on its shard (cart_apply_run) and writes the
//  reply body into self->out, its status, version and flags into *reply.
//  A change to be logged is encoded, with its time, into self->record;
//  returns the slot of the partition it changed, or -1.
static int32_t
s_run (self_t *self, cart_header_t *reply)
{
    const cart_header_t *header = &self->msg.header;
    int32_t slot = header->shard < self->slot_limit ? self->slot_of[header->shard] : -1;
    if (slot < 0) {
        s_error (self, "shard %u is not served by this worker", header->shard);
        reply->status = CART_UNAVAILABLE;
        return -1;
    }
    cart_request_t req;
    const char *error;
    if (cart_request_decode (cart_msg_body (&self->msg), cart_msg_body_size (&self->msg),
                             &req, &error)) {
        s_error (self, "%s", error);
        reply->status = CART_BAD_REQUEST;
        return -1;
    }
    if (cart_hash_key (req.customer, req.customer_len) != header->key) {
        s_error (self, "the routing key is not hash_key of the customerId");
        reply->status = CART_BAD_REQUEST;
        return -1;
    }
    cart_log_t *log = self->stores ? cart_store_log (self->stores[slot]) : NULL;
    cart_context_t context = {.now = s_now (),
                              .idem_ttl = self->idem_ttl,
                              .seq = log ? cart_log_sequence (log) + 1 : 0,
                              .committed = log ? self->committed[slot] : 0};
    cart_outcome_t outcome;
    cart_apply_run (self->partitions[slot], &req, header->key, &context, &self->out,
                    &outcome);
    reply->status = (uint16_t)outcome.status;
    reply->key = outcome.version;
    reply->flags = outcome.replayed ? CART_FLAG_REPLAYED : 0;
    if (!outcome.changed)
        return -1;
    if (log) {
        req.at = context.now; //  its replay stamps the cart as this did
        self->record.size = 0;
        int rc = cart_request_encode (&req, &self->record, NULL);
        assert (rc == 0); //  it was decoded and checked
    }
    return slot;
}

//  --------------------------------------------------------------------------
//  Recovery: each shard's snapshot and log, before the worker registers
//  with the broker (cart_store.h)

static int
s_recover (self_t *self, const cart_worker_config_t *config, const char **error)
{
    cart_store_options_t options = {.log = {.dir = config->data_dir,
                                            .fsync = config->fsync,
                                            .repair = config->repair,
                                            .verbose = config->verbose},
                                    .shards = self->cluster_shards,
                                    .compact_min = config->compact_min,
                                    .compact_factor = config->compact_factor};
    self->stores = (cart_store_t **)calloc (self->n_shards, sizeof (cart_store_t *));
    self->dirty = (bool *)calloc (self->n_shards, sizeof (bool));
    self->lost = (bool *)calloc (self->n_shards, sizeof (bool));
    self->flight_logs = (cart_log_t **)calloc (self->n_shards, sizeof (cart_log_t *));
    self->flight_slots = (uint32_t *)calloc (self->n_shards, sizeof (uint32_t));
    self->flight_seqs = (uint64_t *)calloc (self->n_shards, sizeof (uint64_t));
    self->committed = (uint64_t *)calloc (self->n_shards, sizeof (uint64_t));
    assert (self->stores && self->dirty && self->lost && self->flight_logs &&
            self->flight_slots && self->flight_seqs && self->committed);
    self->commit = cart_commit_new ();
    int64_t start = zclock_usecs ();
    uint64_t records = 0, carts = 0;
    for (size_t i = 0; i < self->n_shards; i++) {
        if (i == 0 && cart_log_claim_dir (config->data_dir, self->cluster_shards, error))
            return -1;
        self->stores[i] =
            cart_store_open (&options, self->shards[i], self->partitions[i], error);
        if (!self->stores[i])
            return -1;
        self->committed[i] = cart_log_sequence (cart_store_log (self->stores[i]));
        records += cart_store_stats (self->stores[i])->replayed;
        carts += cart_store_stats (self->stores[i])->snapshot.carts;
    }
    if (records || carts || self->verbose)
        zsys_info ("worker: recovered %zu shard(s) from %s: %llu cart(s) from snapshots "
                   "and %llu change(s) replayed in %.3f s",
                   self->n_shards, config->data_dir, (unsigned long long)carts,
                   (unsigned long long)records, (double)(zclock_usecs () - start) / 1e6);
    return 0;
}

//  Answers the current REQUEST with a REPLY of the same corr and shard: at
//  once when in memory; with data, after the batch's changes are
//  committed to their logs (s_flush), as Redis does before its event loop
//  sleeps.
static void
s_handle_request (self_t *self)
{
    self->out.size = 0;
    cart_header_t header = {.command = CART_CMD_REPLY,
                            .shard = self->msg.header.shard,
                            .corr = self->msg.header.corr};
    int32_t changed = s_run (self, &header);
    if (!self->stores) {
        cart_frame_t body = cart_frame_bytes (self->out.data, self->out.size);
        cart_msg_send (self->sock, NULL, &header, &body); //  dropped when full
        return;
    }
    if (changed >= 0) {
        int rc = cart_log_append (cart_store_log (self->stores[changed]),
                                  self->record.data, self->record.size);
        assert (rc == 0); //  a request body is at most CART_REQUEST_WIRE_MAX
        self->dirty[changed] = true;
    }
    batch_t *batch = self->gathering;
    assert (batch->n < BATCH);
    batch->replies[batch->n++] = (reply_t){header, batch->out.size, self->out.size};
    msgpack_sbuffer_write (&batch->out, self->out.data, self->out.size);
}

static void s_fail (self_t *self, const char *why);

//  Sends a batch's replies: those of a shard whose changes were lost as
//  500 (the outcome is unknown), `why` saying so.
static void
s_send_batch (self_t *self, batch_t *batch, const char *why)
{
    for (size_t i = 0; i < batch->n; i++) {
        reply_t *reply = &batch->replies[i];
        cart_frame_t body =
            cart_frame_bytes (batch->out.data + reply->offset, reply->size);
        uint32_t shard = reply->header.shard;
        int32_t slot = shard < self->slot_limit ? self->slot_of[shard] : -1;
        if (why && slot >= 0 && self->lost[slot]) {
            self->out.size = 0;
            cart_reply_encode_error (&self->pk, why);
            reply->header.status = CART_INTERNAL;
            body = cart_frame_bytes (self->out.data, self->out.size);
        }
        if (self->sock)
            cart_msg_send (self->sock, NULL, &reply->header, &body);
    }
    batch->n = 0;
    batch->out.size = 0;
}

//  Hands the gathering batch to the committer: its logs sealed, the next
//  batch gathering meanwhile. A batch that changed nothing is answered at
//  once, since everything before it is committed.
static void
s_commit_start (self_t *self)
{
    assert (!cart_commit_busy (self->commit));
    self->n_flight = 0;
    for (size_t i = 0; i < self->n_shards; i++)
        if (self->dirty[i]) {
            self->dirty[i] = false;
            cart_log_t *log = cart_store_log (self->stores[i]);
            if (cart_log_seal (log)) {
                self->flight_logs[self->n_flight] = log;
                self->flight_seqs[self->n_flight] = cart_log_sequence (log);
                self->flight_slots[self->n_flight++] = (uint32_t)i;
            }
        }
    self->expired_dirty = false;
    batch_t *batch = self->gathering;
    self->gathering = self->flight;
    self->flight = batch;
    if (self->n_flight)
        cart_commit_start (self->commit, self->flight_logs, self->n_flight);
    else
        s_send_batch (self, self->flight, NULL);
}

//  The commit in flight is over: its replies go out, then the next batch
//  is handed over. When a shard's log could not be written or synced, no
//  reply of a change of that shard says success, nor of those after it in
//  the commit, nor of the batch gathering: each is answered 500, and the
//  worker stops serving rather than lie. The others stand.
static void
s_commit_end (self_t *self)
{
    size_t failed_at;
    const char *error = NULL;
    int rc = cart_commit_finish (self->commit, &failed_at, &error);
    char text[700];
    if (rc) {
        snprintf (text, sizeof (text),
                  "the shard could not write its log (%s); the change may not be kept",
                  error);
        for (size_t k = failed_at; k < self->n_flight; k++)
            self->lost[self->flight_slots[k]] = true;
        for (size_t i = 0; i < self->n_shards; i++)
            self->lost[i] |= self->dirty[i];
        for (size_t i = 0; i < self->n_shards; i++)
            if (self->lost[i])
                cart_log_discard (cart_store_log (self->stores[i]));
        s_send_batch (self, self->flight, text);
        s_send_batch (self, self->gathering, text);
        memset (self->dirty, 0, self->n_shards * sizeof (bool));
        s_fail (self, text);
        return;
    }
    //  Its keys are no longer being applied: a retry gets their answers
    for (size_t k = 0; k < self->n_flight; k++)
        self->committed[self->flight_slots[k]] = self->flight_seqs[k];
    s_send_batch (self, self->flight, NULL);
    //  A shard whose log has grown enough starts its compaction (a
    //  rotation; the rest runs in another thread)
    for (size_t k = 0; k < self->n_flight; k++)
        cart_store_tick (self->stores[self->flight_slots[k]]);
    self->n_flight = 0;
    if (self->gathering->n || self->expired_dirty)
        s_commit_start (self);
}

//  Waits for the commit in flight and what gathers after it: everything
//  answered (stopping, or failing).
static void
s_commit_all (self_t *self)
{
    while (
        self->commit && !self->failed &&
        (cart_commit_busy (self->commit) || self->gathering->n || self->expired_dirty)) {
        if (cart_commit_busy (self->commit))
            s_commit_end (self);
        else
            s_commit_start (self);
    }
}

//  --------------------------------------------------------------------------
//  Refusal

//  The broker refused our READY: a shard already served by another live
//  worker is retried for a few beats (a predecessor that crashed is not
//  yet known dead); anything else, or a refusal that lasts, is final.
static void
s_handle_refuse (self_t *self)
{
    cart_reply_t reply;
    char text[300] = "the broker refused this worker";
    if (cart_reply_decode (cart_msg_body (&self->msg), cart_msg_body_size (&self->msg),
                           &reply, NULL) == 0 &&
        reply.kind == CART_BODY_ERROR)
        snprintf (text, sizeof (text), "the broker refused this worker: %.*s",
                  (int)reply.message_len, reply.message);
    if (self->msg.header.status == CART_CONFLICT && ++self->refusals < REFUSALS) {
        if (self->verbose)
            zsys_info ("worker: %s; trying again", text);
        self->ready_due = true;
        return;
    }
    s_fail (self, text);
}

//  Gives up for good: reports FATAL on the pipe, closes the socket (the
//  broker sees us gone) and waits for $TERM.
static void
s_fail (self_t *self, const char *why)
{
    zsys_error ("worker: %s", why);
    zstr_sendm (self->pipe, "FATAL");
    zstr_send (self->pipe, why);
    cart_curve_watch_destroy (&self->watch);
    zsock_destroy (&self->dealer);
    self->sock = NULL;
    self->failed = true;
}

//  --------------------------------------------------------------------------
//  The loop

//  Receives and handles one message from the broker (flags 0 waits up to
//  ZMQ_RCVTIMEO). Returns false when none came.
static bool
s_handle_broker (self_t *self, int flags)
{
    const char *error;
    int rc = cart_msg_recv (self->sock, CART_AT_WORKER, false, &self->msg, flags, &error);
    if (rc == -1 && self->verbose)
        zsys_warning ("worker: dropped a malformed message: %s", error);
    if (rc != 1)
        return rc != 0;
    self->broker_expiry = zclock_mono () + (int64_t)self->heartbeat_ms * self->liveness;
    self->reconnects = 0;
    switch ((cart_command_t)self->msg.header.command) {
        case CART_CMD_REQUEST:
            self->refusals = 0; //  the broker routes to us: we are in
            s_handle_request (self);
            break;
        case CART_CMD_DISCONNECT:
            self->ready_due = true; //  at the next heartbeat: never a READY storm
            break;
        case CART_CMD_REFUSE:
            s_handle_refuse (self);
            break;
        case CART_CMD_HEARTBEAT:
            self->refusals = 0;
            break;
        case CART_CMD_REPLY:
        case CART_CMD_PING:
        case CART_CMD_STATS:
        case CART_CMD_READY:
            break; //  cart_msg_recv lets none of these through at a worker
    }
    return true;
}

//  Waits up to wait_ms for the broker, or for the commit in flight to end
//  (which it then finishes); returns true when the socket may have more.
static bool
s_wait (self_t *self, int wait_ms)
{
    if (!cart_commit_busy (self->commit)) {
        //  A blocking receive with a timeout waits at the cost of one system
        //  call, where zmq_poll costs several (it checks the socket's
        //  mailbox before and after)
        zmq_setsockopt (self->sock, ZMQ_RCVTIMEO, &wait_ms, sizeof (wait_ms));
        return true;
    }
    //  A full gathering batch waits for the commit alone
    zmq_pollitem_t items[2] = {{NULL, cart_commit_fd (self->commit), ZMQ_POLLIN, 0},
                               {self->sock, 0, ZMQ_POLLIN, 0}};
    bool room = self->gathering->n < BATCH;
    if (zmq_poll (items, room ? 2 : 1, wait_ms) > 0 && (items[0].revents & ZMQ_POLLIN))
        s_commit_end (self);
    int zero = 0;
    zmq_setsockopt (self->sock, ZMQ_RCVTIMEO, &zero, sizeof (zero));
    return room && (items[1].revents & ZMQ_POLLIN);
}

//  Returns how many messages it handled.
static int
s_drain (self_t *self, int wait_ms)
{
    int handled = 0;
    if (!self->commit) {
        zmq_setsockopt (self->sock, ZMQ_RCVTIMEO, &wait_ms, sizeof (wait_ms));
        while (handled < BATCH && self->sock &&
               s_handle_broker (self, handled ? ZMQ_DONTWAIT : 0))
            handled++;
        cart_msg_close (&self->msg);
        return handled;
    }
    //  With data: requests gather while the commit before them is in flight
    bool more = s_wait (self, wait_ms);
    while (more && !self->failed && self->gathering->n < BATCH && self->sock &&
           s_handle_broker (self, handled ? ZMQ_DONTWAIT : 0))
        handled++;
    cart_msg_close (&self->msg);
    if ((self->gathering->n || self->expired_dirty) && !self->failed &&
        !cart_commit_busy (self->commit))
        s_commit_start (self);
    return handled;
}

//  Moves a partition's table on while it grows or shrinks, a bounded step
//  at a time, so that no resize holds the worker (cart_partition.h). Only
//  when idle: under load every operation takes its own step already.
static void
s_rehash (self_t *self)
{
    for (size_t i = 0; i < self->n_shards; i++) {
        cart_partition_rehash_step (self->partitions[i], CART_REHASH_BUCKETS);
        if (self->stores && !self->failed && !cart_commit_busy (self->commit))
            cart_store_tick (self->stores[i]); //  a compaction's end, or one left
    }
}

//  Removes a cart that has not changed for cart_ttl, and logs it.
static void
s_expire (self_t *self, size_t slot, const cart_view_t *view, uint64_t key, uint64_t now)
{
    char customer[CART_ID_MAX];
    size_t len = view->customer_len;
    memcpy (customer, view->customer, len); //  the view ends with the cart
    if (self->stores) {
        self->record.size = 0;
        cart_apply_encode_expiry (&self->record, customer, len, now);
        int rc = cart_log_append (cart_store_log (self->stores[slot]), self->record.data,
                                  self->record.size);
        assert (rc == 0); //  a few bytes
        self->dirty[slot] = true;
        self->expired_dirty = true;
    }
    cart_partition_t *part = self->partitions[slot];
    cart_partition_set_now (part, (uint32_t)now);
    if (cart_partition_drop (part, key, customer, len) == CART_DELETED)
        self->expired[slot]++;
}

//  Looks at up to SWEEP_CARTS carts, going round the shards, and removes
//  those unchanged for cart_ttl; forgets idempotency keys older than
//  idem_ttl. Each heartbeat: a cart is removed within a pass over all the
//  carts (SWEEP_CARTS per heartbeat) after its time.
static void
s_sweep (self_t *self)
{
    uint64_t now = s_now ();
    for (size_t i = 0; i < self->n_shards && now > self->idem_ttl; i++)
        cart_idem_expire (cart_partition_idem (self->partitions[i]), now - self->idem_ttl,
                          SWEEP_KEYS);
    if (!self->cart_ttl || now <= self->cart_ttl)
        return;
    uint64_t before = now - self->cart_ttl;
    size_t budget = SWEEP_CARTS, passed = 0;
    while (budget && passed < self->n_shards) {
        size_t slot = self->sweep_slot;
        cart_view_t view;
        uint64_t key;
        if (!cart_partition_next (self->partitions[slot], &self->sweep_at[slot], &view,
                                  &key)) {
            self->sweep_at[slot] = 0; //  a pass over this shard is done
            self->sweep_slot = (slot + 1) % self->n_shards;
            passed++;
            continue;
        }
        budget--;
        if (view.touched <= before)
            s_expire (self, slot, &view, key, now);
    }
}

//  Says why the broker does not hear us when a handshake fails: at once
//  when that changes, then every WATCH_MS while it lasts. Takes the watch's
//  events at every tick, which also keeps its queue short.
static void
s_watch (self_t *self, int64_t now)
{
    cart_curve_state_t state = cart_curve_watch_state (self->watch);
    bool failing = state == CART_CURVE_REFUSED || state == CART_CURVE_FAILED;
    if (failing && (state != self->told || now - self->told_at >= WATCH_MS)) {
        zsys_warning ("worker: %s (%s)", cart_curve_state_text (state), self->endpoint);
        self->told_at = now;
    }
    self->told = state;
}

static void
s_timers (self_t *self)
{
    int64_t now = zclock_mono ();
    s_watch (self, now);
    if (now >= self->broker_expiry) {
        if (self->verbose)
            zsys_info ("worker: broker silent; reconnecting to %s", self->endpoint);
        self->reconnects++;
        s_connect (self, NULL);
    }
    if (now >= self->heartbeat_at) {
        if (self->ready_due)
            s_send_ready (self);
        self->ready_due = false;
        s_send_heartbeat (self);
        s_sweep (self);
    }
}

static void
s_loop (self_t *self)
{
    while (!self->terminated) {
        if (self->failed) {
            //  Nothing left to do but wait for $TERM, blocking
            if (cart_actor_recv (self->pipe, "worker", NULL) == CART_ACTOR_TERM)
                self->terminated = true;
            continue;
        }
        int64_t wait = self->heartbeat_at - zclock_mono ();
        if (wait > CART_PIPE_MS)
            wait = CART_PIPE_MS;
        if (s_drain (self, wait > 0 ? (int)wait : 0) == 0)
            s_rehash (self);
        if (!self->failed)
            s_timers (self);
        if (cart_actor_due (&self->pipe_at) && (zsock_events (self->pipe) & ZMQ_POLLIN) &&
            cart_actor_recv (self->pipe, "worker", NULL) == CART_ACTOR_TERM)
            self->terminated = true;
    }
}

void
cart_worker_actor (zsock_t *pipe, void *args)
{
    const char *error = NULL;
    self_t *self = s_self_new (pipe, (const cart_worker_config_t *)args, &error);
    if (self && s_connect (self, &error))
        s_self_destroy (&self);
    if (cart_actor_ready (pipe, self ? NULL : error) == 0) {
        s_loop (self);
        s_commit_all (self); //  every change answered before the logs close
        s_self_destroy (&self);
    }
    cart_hash_thread_end ();
}

//  --------------------------------------------------------------------------
//  Sets of workers

struct _cart_workers_t {
    size_t count;
    zactor_t **actors;
    char failure[320]; //  the first FATAL report, or ""
};

void
cart_workers_destroy (cart_workers_t **self_p)
{
    cart_workers_t *self = *self_p;
    if (!self)
        return;
    cart_actors_destroy (self->actors, self->count);
    free (self->actors);
    free (self);
    *self_p = NULL;
}

//  Checks the shard list of a set: in range, none twice.
static int
s_check_set (const cart_worker_config_t *config, size_t threads, const char **error)
{
    if (config->n_shards == 0 || threads == 0 || threads > CART_THREADS_MAX) {
        *error = cart_errorf ("a set of workers runs 1 to %d threads on 1 or more shards",
                              CART_THREADS_MAX);
        return -1;
    }
    //  A shard owned by two threads would have two partitions: refuse
    uint8_t *seen = (uint8_t *)calloc (CART_SHARDS_MAX, 1);
    assert (seen);
    int rc = 0;
    for (size_t i = 0; i < config->n_shards && rc == 0; i++) {
        uint32_t shard = config->shards[i];
        if (shard < CART_SHARDS_MAX && seen[shard]++) {
            *error = cart_errorf ("shard %u is listed twice", shard);
            rc = -1;
        }
    }
    free (seen);
    return rc;
}

cart_workers_t *
cart_workers_new (const cart_worker_config_t *config, size_t threads, const char **error)
{
    const char *fault = NULL;
    if (s_check_set (config, threads, &fault)) {
        if (error)
            *error = fault;
        return NULL;
    }
    cart_workers_t *self = (cart_workers_t *)zmalloc (sizeof (cart_workers_t));
    size_t count = threads < config->n_shards ? threads : config->n_shards;
    self->actors = (zactor_t **)calloc (count, sizeof (zactor_t *));
    uint32_t *mine = (uint32_t *)malloc (config->n_shards * sizeof (uint32_t));
    assert (self && self->actors && mine);
    for (size_t t = 0; t < count; t++) {
        cart_worker_config_t own = *config;
        own.shards = mine;
        own.n_shards = 0;
        for (size_t i = t; i < config->n_shards; i += count)
            mine[own.n_shards++] = config->shards[i];
        self->actors[t] = cart_actor_start (cart_worker_actor, &own, error);
        if (!self->actors[t])
            break;
        self->count++;
    }
    free (mine);
    if (self->count < count)
        cart_workers_destroy (&self);
    return self;
}

const char *
cart_workers_failure (cart_workers_t *self)
{
    for (size_t i = 0; i < self->count && !self->failure[0]; i++)
        if (zsock_events (zactor_sock (self->actors[i])) & ZMQ_POLLIN) {
            char *kind = NULL, *text = NULL;
            if (zstr_recvx (self->actors[i], &kind, &text, NULL) == 2 &&
                streq (kind, "FATAL"))
                snprintf (self->failure, sizeof (self->failure), "%s", text);
            zstr_free (&kind);
            zstr_free (&text);
        }
    return self->failure[0] ? self->failure : NULL;
}

//  --------------------------------------------------------------------------
//  Command-line options

const char cart_worker_durable_help[] =
    "  --fsync POLICY   with a data directory: always (a reply waits for the\n"
    "                   disk), everysec (at most about 1 s of changes lost in\n"
    "                   a crash of the machine) or no (default everysec)\n"
    "  --repair         cut a damaged log at the damage, keeping a copy\n"
    "  --compact-min SIZE\n"
    "                   a shard's log is compacted into a snapshot once it\n"
    "                   holds SIZE bytes (k, m, g: KiB, MiB, GiB; default 64m)\n"
    "  --compact-factor F\n"
    "                   ... and F times its last snapshot (default 2)\n"
    "  --cart-ttl TIME  a cart not changed for TIME is removed, and the removal\n"
    "                   logged (s, m, h, d; default 30d; 0 keeps carts for ever)\n"
    "  --idempotency-ttl TIME\n"
    "                   how long the answer to a request with an Idempotency-Key\n"
    "                   is kept for its retries (default 24h)\n";

void
cart_worker_config_defaults (cart_worker_config_t *config)
{
    config->cart_ttl = CART_CART_TTL;
    config->idem_ttl = CART_IDEM_TTL;
}

int
cart_worker_durable_option (cart_worker_config_t *config, int opt, const char *arg,
                            const char **error)
{
    switch (opt) {
        case 'F':
            if (cart_fsync_parse (arg, &config->fsync) == 0)
                return 0;
            *error = cart_errorf ("--fsync is always, everysec or no, not '%s'", arg);
            return -1;
        case 'R':
            config->repair = true;
            return 0;
        case 'C':
            if (cart_args_bytes (arg, 4096, 1ULL << 40, &config->compact_min) == 0)
                return 0;
            *error =
                cart_errorf ("--compact-min is a size from 4k to 1024g, not '%s'", arg);
            return -1;
        case 'X':
            if (cart_args_real (arg, 1.1, 1000, &config->compact_factor) == 0)
                return 0;
            *error = cart_errorf (
                "--compact-factor is a number from 1.1 to 1000, not '%s'", arg);
            return -1;
        case 'E':
            if (cart_args_seconds (arg, UINT32_MAX, &config->cart_ttl) == 0)
                return 0;
            *error = cart_errorf ("--cart-ttl is a time such as 3600, 90m, 24h or 30d "
                                  "(0: for ever), not '%s'",
                                  arg);
            return -1;
        case 'K':
            if (cart_args_seconds (arg, UINT32_MAX, &config->idem_ttl) == 0 &&
                config->idem_ttl > 0)
                return 0;
            *error = cart_errorf (
                "--idempotency-ttl is a time such as 600, 90m or 24h, not '%s'", arg);
            return -1;
        default:
            return 1;
    }
}
