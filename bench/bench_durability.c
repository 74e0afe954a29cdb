/*  =========================================================================
    bench_durability - what keeping the carts on disk costs a write: ADD
    throughput and latency under each durability mode, beside the disk's
    own rate of one write per fdatasync (issue 9).

    The modes: in memory (no data directory), and a data directory under
    each fsync policy of cart_log.h: no (the kernel writes when it will),
    everysec (a thread syncs every log about once a second) and always
    (group commit: a worker drains up to 256 queued requests, writes their
    records with one write () per shard and calls fdatasync once per shard
    before it sends their replies).

    Each run starts a fresh cluster in this process (bench_cluster: the
    broker actor and cart_workers_new's threads, over inproc) on a fresh
    subdirectory of the data directory, and drives it with one cart_client
    that keeps W ADDs in flight ("W writers": W = 1 is one request at a
    time, send, wait, send). An ADD puts one unit of one of a few items in
    the cart of a customer picked at random. After a warm-up, the run is
    bounded by a count and a time, whichever comes first; the latency of
    an add runs from just before its send to just after its reply, on the
    monotonic clock, into a bench_hist (within 0.8 %). The subdirectory is
    removed after its run, so that one run's dirty pages are not the next
    one's writeback, and the filesystem is synced (syncfs) before each run.

    The disk's own rate: write (100 bytes) + fdatasync on an appended file
    in the same directory, one at a time, for a bounded time, before the
    runs and again after them (a shared disk's rate moves; the ratio takes
    the mean). It is what group commit is measured against: with W
    writers, always can beat it by up to the number of adds a batch
    gathers.

    Counting the syncs. This program is linked with -Wl,--wrap=fdatasync
    (bench/CMakeLists.txt), so every fdatasync of the process (the
    workers' commits, the everysec thread, the probe) goes through
    __wrap_fdatasync here, which counts the calls and the time they take
    (and syncfs, with which a worker syncs several logs at once, counted
    as one). That gives adds per sync, which is what group commit is for.
    =========================================================================
*/
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "bench_cluster.h"
#include "bench_env.h"
#include "bench_hist.h"
#include "cart_args.h"
#include "cart_worker.h"

#define LIST_MAX     8      //  entries of --modes and of --writers
#define WRITERS_MAX  1024   //  under the 2,000 replies a broker queues a client
#define MODE_MEMORY  (-1)   //  a mode is this or a cart_fsync_t
#define NAME_SIZE    24     //  a customerId and its NUL
#define ITEMS        5      //  distinct items an ADD picks from
#define PROBE_BYTES  100    //  one write of the disk's probe
#define PROBE_MAX    100000 //  writes of the probe at most
#define RECV_WAIT_MS 100    //  longest wait for one reply before the clocks
#define NS_PER_S     1000000000LL
#define ROOT_MAX     (PATH_MAX / 2) //  room in a path for the files under it

typedef struct {
    const char *dir; //  where the data directory is made
    double seconds;  //  a run's measured interval at most
    double warmup;   //  before it, not counted
    double probe_seconds;
    long requests; //  a run's measured adds at most
    int modes[LIST_MAX];
    size_t n_modes;
    long writers[LIST_MAX];
    size_t n_writers;
    uint32_t shards;
    size_t workers;
    long customers;
    long timeout_ms; //  an add's deadline
    bool keep;
} options_t;

//  What one run (or the probe) measured.
typedef struct {
    int mode;
    long writers;
    uint64_t ok;
    uint64_t errors; //  answered with a failure, timed out or not sent
    uint64_t unfinished;
    uint64_t warmup_errors; //  failures of adds sent in the warm-up
    double elapsed;         //  seconds, from the interval's start to the last reply
    double cpu;             //  CPU seconds of the process over the interval
    uint64_t syncs;         //  fdatasync calls of the process over the interval
    uint64_t sync_ns;
    bool by_count; //  ended by --requests, not by --seconds
    bench_hist_t latency;
} run_t;

//  The client's side of one run.
typedef struct {
    cart_client_t *client;
    const options_t *options;
    const char *names; //  customers x NAME_SIZE
    char items[ITEMS][16];
    uint64_t rng;
    int64_t *sent_at; //  per window slot
    uint32_t *free;   //  slots not in flight
    size_t n_free;
    int64_t start; //  of the measured interval
    int64_t last;  //  the last measured reply
    uint64_t sent; //  measured adds sent
} driver_t;

//  --------------------------------------------------------------------------
//  Clocks and counters

int __real_fdatasync (int fd);
int __wrap_fdatasync (int fd);
int __real_syncfs (int fd);
int __wrap_syncfs (int fd);

static _Atomic uint64_t s_syncs;
static _Atomic uint64_t s_sync_ns;

static int64_t
s_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * NS_PER_S + now.tv_nsec;
}

//  Every fdatasync of the process comes here (-Wl,--wrap=fdatasync).
int
__wrap_fdatasync (int fd)
{
    int64_t start = s_now_ns ();
    int rc = __real_fdatasync (fd);
    atomic_fetch_add (&s_sync_ns, (uint64_t)(s_now_ns () - start));
    atomic_fetch_add (&s_syncs, 1);
    return rc;
}

//  A worker's commit of several logs syncs them with one syncfs: counted
//  as one sync
int
__wrap_syncfs (int fd)
{
    int64_t start = s_now_ns ();
    int rc = __real_syncfs (fd);
    atomic_fetch_add (&s_sync_ns, (uint64_t)(s_now_ns () - start));
    atomic_fetch_add (&s_syncs, 1);
    return rc;
}

//  CPU seconds of the whole process, every thread.
static double
s_cpu (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
           (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

//  The counters at the start of an interval, and what they grew by at its end.
typedef struct {
    double cpu;
    uint64_t syncs;
    uint64_t sync_ns;
} counters_t;

static counters_t
s_counters (void)
{
    return (counters_t){s_cpu (), atomic_load (&s_syncs), atomic_load (&s_sync_ns)};
}

static void
s_counters_end (const counters_t *start, run_t *run)
{
    counters_t end = s_counters ();
    run->cpu = end.cpu - start->cpu;
    run->syncs = end.syncs - start->syncs;
    run->sync_ns = end.sync_ns - start->sync_ns;
}

static const char *
s_mode_name (int mode)
{
    return mode == MODE_MEMORY ? "memory" : cart_fsync_name ((cart_fsync_t)mode);
}

static double
s_us (uint64_t ns)
{
    return (double)ns / 1000.0;
}

static double
s_rate (const run_t *run)
{
    return run->elapsed > 0 ? (double)run->ok / run->elapsed : 0;
}

//  --------------------------------------------------------------------------
//  The data directory

//  The filesystem's name, from statfs's magic number.
static const char *
s_fs_name (const char *path)
{
    static const struct {
        unsigned long magic;
        const char *name;
    } known[] = {{0xEF53, "ext2/3/4"},  {0x01021994, "tmpfs"},     {0x58465342, "xfs"},
                 {0x9123683E, "btrfs"}, {0x794C7630, "overlayfs"}, {0xF2F52010, "f2fs"},
                 {0x2FC12FC1, "zfs"},   {0x6969, "nfs"},           {0x858458F6, "ramfs"}};
    struct statfs info;
    if (statfs (path, &info))
        return "unknown";
    for (size_t i = 0; i < sizeof (known) / sizeof (known[0]); i++)
        if ((unsigned long)info.f_type == known[i].magic)
            return known[i].name;
    return "another filesystem";
}

static int
s_remove_entry (const char *path, const struct stat *info, int type, struct FTW *at)
{
    if (remove (path))
        fprintf (stderr, "bench_durability: cannot remove %s: %s\n", path,
                 strerror (errno));
    return 0;
}

//  Removes a directory this program made, and what is in it.
static void
s_remove_tree (const char *path)
{
    nftw (path, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

//  Makes a fresh DIR/bench_durability.XXXXXX into root. Returns 0 or -1.
static int
s_make_root (const char *dir, char *root, size_t size)
{
    if ((size_t)snprintf (root, size, "%s/bench_durability.XXXXXX", dir) >= size) {
        fprintf (stderr, "bench_durability: the path '%s' is too long\n", dir);
        return -1;
    }
    if (!mkdtemp (root)) {
        fprintf (stderr, "bench_durability: cannot make a directory in '%s': %s\n", dir,
                 strerror (errno));
        return -1;
    }
    return 0;
}

//  Writes back every dirty page of the filesystem that holds path.
static void
s_syncfs (const char *path)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd != -1) {
        syncfs (fd);
        close (fd);
    }
}

//  --------------------------------------------------------------------------
//  The disk's own rate: one write, one fdatasync, one at a time

static int
s_probe (const char *root, double seconds, run_t *run)
{
    char path[PATH_MAX];
    snprintf (path, sizeof (path), "%s/fsync-probe", root);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        fprintf (stderr, "bench_durability: cannot open %s: %s\n", path,
                 strerror (errno));
        return -1;
    }
    char record[PROBE_BYTES];
    memset (record, 'x', sizeof (record));
    *run = (run_t){.mode = MODE_MEMORY, .writers = 1};
    bench_hist_init (&run->latency);
    counters_t start = s_counters ();
    int64_t begin = s_now_ns (), until = begin + (int64_t)(seconds * NS_PER_S);
    int64_t now = begin;
    while (now < until && run->ok < PROBE_MAX && !zsys_interrupted) {
        if (write (fd, record, sizeof (record)) != (ssize_t)sizeof (record) ||
            fdatasync (fd)) {
            fprintf (stderr, "bench_durability: writing %s: %s\n", path,
                     strerror (errno));
            close (fd);
            return -1;
        }
        int64_t done = s_now_ns ();
        bench_hist_record (&run->latency, (uint64_t)(done - now));
        run->ok++;
        now = done;
    }
    run->elapsed = (double)(now - begin) / 1e9;
    run->by_count = run->ok == PROBE_MAX;
    s_counters_end (&start, run);
    close (fd);
    unlink (path);
    fprintf (stderr, "bench_durability: the disk: %.0f writes + fdatasync a second\n",
             s_rate (run));
    return 0;
}

//  --------------------------------------------------------------------------
//  The writers

static void
s_driver_init (driver_t *self, cart_client_t *client, const options_t *options,
               const char *names, long window)
{
    *self = (driver_t){.client = client, .options = options, .names = names};
    self->rng = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < ITEMS; i++)
        snprintf (self->items[i], sizeof (self->items[i]), "%012d", 400638133 + i);
    self->sent_at = (int64_t *)calloc ((size_t)window, sizeof (int64_t));
    self->free = (uint32_t *)calloc ((size_t)window, sizeof (uint32_t));
    assert (self->sent_at && self->free);
    for (long i = 0; i < window; i++)
        self->free[self->n_free++] = (uint32_t)i;
}

static void
s_driver_free (driver_t *self)
{
    free (self->sent_at);
    free (self->free);
}

static uint64_t
s_random (driver_t *self)
{
    self->rng ^= self->rng >> 12;
    self->rng ^= self->rng << 25;
    self->rng ^= self->rng >> 27;
    return self->rng * 0x2545F4914F6CDD1DULL;
}

//  Sends one ADD in a free slot. Returns 0, or -1 when it was refused.
static int
s_send (driver_t *self)
{
    uint64_t roll = s_random (self);
    const char *customer =
        self->names + (roll % (uint64_t)self->options->customers) * NAME_SIZE;
    const char *item = self->items[(roll >> 40) % ITEMS];
    cart_request_t req = {
        .op = CART_OP_ADD,
        .customer = customer,
        .customer_len = strlen (customer),
        .item = {.id = item, .id_len = strlen (item), .price_cents = 1999, .count = 1}};
    uint32_t slot = self->free[--self->n_free];
    self->sent_at[slot] = s_now_ns ();
    const char *error = NULL;
    if (cart_client_send (self->client, &req, (int)self->options->timeout_ms,
                          (void *)(uintptr_t)slot, NULL, &error)) {
        assert (errno == EAGAIN); //  every request here keeps the rules
        self->free[self->n_free++] = slot;
        return -1;
    }
    if (self->sent_at[slot] >= self->start)
        self->sent++;
    return 0;
}

//  Fills the window, measured adds up to the count.
static void
s_fill (driver_t *self, run_t *run)
{
    while (self->n_free > 0 && self->sent < (uint64_t)self->options->requests)
        if (s_send (self)) {
            if (s_now_ns () >= self->start)
                run->errors++;
            break;
        }
}

//  Takes one reply, waiting up to wait_ms, and counts it when it belongs
//  to the measured interval.
static void
s_take (driver_t *self, run_t *run, int wait_ms)
{
    cart_result_t result;
    if (cart_client_recv (self->client, &result, wait_ms) != 1)
        return;
    int64_t now = s_now_ns ();
    uint32_t slot = (uint32_t)(uintptr_t)result.user;
    self->free[self->n_free++] = slot;
    bool ok = result.status == CART_CREATED || result.status == CART_OK;
    if (self->sent_at[slot] < self->start) {
        run->warmup_errors += ok ? 0 : 1; //  not measured, but not hidden
        return;
    }
    self->last = now;
    if (ok) {
        run->ok++;
        bench_hist_record (&run->latency, (uint64_t)(now - self->sent_at[slot]));
    } else
        run->errors++;
}

//  The warm-up, then the measured interval up to the count or the time,
//  then the replies still due, up to the adds' deadline and a second.
static void
s_drive (driver_t *self, run_t *run)
{
    const options_t *options = self->options;
    int64_t begin = s_now_ns ();
    self->start = begin + (int64_t)(options->warmup * NS_PER_S);
    int64_t stop = self->start + (int64_t)(options->seconds * NS_PER_S);
    int64_t drain_until = 0;
    bool sending = true, counting = false;
    counters_t counters = {0};
    while (true) {
        int64_t now = s_now_ns ();
        if (!counting && now >= self->start) {
            counting = true;
            counters = s_counters ();
        }
        if (sending && (now >= stop || zsys_interrupted ||
                        self->sent >= (uint64_t)options->requests)) {
            sending = false;
            run->by_count = self->sent >= (uint64_t)options->requests;
            drain_until = now + (options->timeout_ms + 1000) * 1000000;
        }
        size_t pending = cart_client_pending (self->client);
        if (!sending && (pending == 0 || now >= drain_until)) {
            run->unfinished = pending;
            break;
        }
        if (sending)
            s_fill (self, run);
        s_take (self, run, RECV_WAIT_MS);
    }
    run->elapsed =
        self->last > self->start ? (double)(self->last - self->start) / 1e9 : 0;
    s_counters_end (&counters, run);
}

//  The customers' ids, customers x NAME_SIZE.
static char *
s_names (long customers)
{
    char *names = (char *)malloc ((size_t)customers * NAME_SIZE);
    assert (names);
    for (long i = 0; i < customers; i++)
        snprintf (names + i * NAME_SIZE, NAME_SIZE, "customer-%07d", (int)i);
    return names;
}

//  One run: a fresh cluster on a fresh subdirectory, driven, stopped.
static int
s_run (const options_t *options, const char *root, const char *names, int mode,
       long writers, run_t *run)
{
    char dir[PATH_MAX];
    snprintf (dir, sizeof (dir), "%s/%s-%ld", root, s_mode_name (mode), writers);
    s_syncfs (root);
    bench_cluster_config_t config = {.shards = options->shards,
                                     .workers = options->workers,
                                     .place = BENCH_PLACE_OS,
                                     .data_dir = mode == MODE_MEMORY ? NULL : dir,
                                     .fsync = mode == MODE_MEMORY ? CART_FSYNC_NO
                                                                  : (cart_fsync_t)mode};
    const char *error = NULL;
    bench_cluster_t *cluster = bench_cluster_new (&config, &error);
    if (!cluster) {
        fprintf (stderr, "bench_durability: %s, %ld writers: %s\n", s_mode_name (mode),
                 writers, error);
        return -1;
    }
    *run = (run_t){.mode = mode, .writers = writers};
    bench_hist_init (&run->latency);
    driver_t driver;
    s_driver_init (&driver, bench_cluster_client (cluster), options, names, writers);
    s_drive (&driver, run);
    s_driver_free (&driver);
    bench_cluster_destroy (&cluster);
    if (mode != MODE_MEMORY && !options->keep)
        s_remove_tree (dir);
    return 0;
}

//  --------------------------------------------------------------------------
//  Report

static void
s_row (const char *what, const run_t *run, const char *note)
{
    const bench_hist_t *h = &run->latency;
    printf ("| %s | %ld | %llu | %llu | %.0f | %.1f | %.1f | %.1f | %.1f | %llu | ", what,
            run->writers, (unsigned long long)run->ok,
            (unsigned long long)(run->errors + run->unfinished + run->warmup_errors),
            s_rate (run), s_us (bench_hist_percentile (h, 50)),
            s_us (bench_hist_percentile (h, 99)), s_us (bench_hist_percentile (h, 99.9)),
            s_us (h->max), (unsigned long long)run->syncs);
    if (run->syncs)
        printf ("%.1f | %.1f | ", (double)run->ok / (double)run->syncs,
                s_us (run->sync_ns) / (double)run->syncs);
    else
        printf ("— | — | ");
    printf ("%.1f | %s |\n", run->ok ? run->cpu * 1e6 / (double)run->ok : 0, note);
}

static const run_t *
s_find (const run_t *runs, size_t n_runs, int mode, long writers)
{
    for (size_t i = 0; i < n_runs; i++)
        if (runs[i].mode == mode && runs[i].writers == writers)
            return &runs[i];
    return NULL;
}

//  A ratio row; target > 0 is the least the ratio should be.
static void
s_ratio (const char *what, double top, double bottom, double target)
{
    if (bottom <= 0)
        return;
    double ratio = top / bottom;
    char note[96] = "";
    if (target > 0)
        snprintf (note, sizeof (note), "target ≥ %.2f×: **%s**", target,
                  ratio >= target ? "met" : "missed");
    printf ("| **%s** | | | | **%.2f×** | | | | | | | | | %s |\n", what, ratio, note);
}

static void
s_ratios (const options_t *options, const run_t *runs, size_t n_runs, const run_t *probes)
{
    long most = options->writers[0], least = options->writers[0];
    for (size_t i = 1; i < options->n_writers; i++) {
        most = options->writers[i] > most ? options->writers[i] : most;
        least = options->writers[i] < least ? options->writers[i] : least;
    }
    const run_t *memory = s_find (runs, n_runs, MODE_MEMORY, most);
    const run_t *everysec = s_find (runs, n_runs, CART_FSYNC_EVERYSEC, most);
    const run_t *always = s_find (runs, n_runs, CART_FSYNC_ALWAYS, most);
    const run_t *always_one = s_find (runs, n_runs, CART_FSYNC_ALWAYS, least);
    char what[160];
    if (always && probes) {
        snprintf (what, sizeof (what),
                  "always, %ld in flight / the disk's write + fdatasync (mean of the "
                  "two)",
                  most);
        s_ratio (what, s_rate (always), (s_rate (&probes[0]) + s_rate (&probes[1])) / 2,
                 10);
    }
    if (everysec && memory) {
        snprintf (what, sizeof (what), "everysec / in memory, %ld in flight", most);
        s_ratio (what, s_rate (everysec), s_rate (memory), 0.67);
    }
    if (always && memory) {
        snprintf (what, sizeof (what), "always / in memory, %ld in flight", most);
        s_ratio (what, s_rate (always), s_rate (memory), 0);
    }
    if (always && always_one && most != least) {
        snprintf (what, sizeof (what), "always, %ld in flight / %ld in flight", most,
                  least);
        s_ratio (what, s_rate (always), s_rate (always_one), 0);
    }
}

//  What ended a run, and what went wrong outside its measured adds.
static void
s_note (const run_t *run, char *note, size_t size)
{
    int used = snprintf (note, size, "%.2f s, ended by the %s", run->elapsed,
                         run->by_count ? "count" : "time");
    if (run->warmup_errors)
        used +=
            snprintf (note + used, size - (size_t)used, "; %llu error(s) in the warm-up",
                      (unsigned long long)run->warmup_errors);
    if (run->ok == 0)
        snprintf (note + used, size - (size_t)used, "; no add answered in time");
}

static void
s_report (const options_t *options, const run_t *runs, size_t n_runs, const run_t *probes)
{
    printf ("| durability | writers in flight | adds | errors | adds/s | p50 µs | p99 µs "
            "| p99.9 µs | max µs | syncs (fdatasync, syncfs) | adds per sync | µs per "
            "sync | CPU µs per add | note |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: | --- |\n");
    for (int i = 0; probes && i < 2; i++) {
        char what[96], note[96];
        snprintf (what, sizeof (what), "disk: write 100 B + fdatasync, one at a time, %s",
                  i ? "after the runs" : "before the runs");
        snprintf (note, sizeof (note), "writes/s in adds/s; %.1f s%s", probes[i].elapsed,
                  probes[i].by_count ? ", stopped at the count" : "");
        s_row (what, &probes[i], note);
    }
    for (size_t i = 0; i < n_runs; i++) {
        char what[64], note[160];
        const run_t *run = &runs[i];
        snprintf (what, sizeof (what), "%s%s", run->mode == MODE_MEMORY ? "" : "fsync ",
                  run->mode == MODE_MEMORY ? "in memory" : s_mode_name (run->mode));
        s_note (run, note, sizeof (note));
        s_row (what, run, note);
    }
    s_ratios (options, runs, n_runs, probes);
}

//  --------------------------------------------------------------------------
//  Options

static void
s_help (void)
{
    printf (
        "usage: bench_durability [options]\n\n"
        "ADD throughput (adds/s) and latency (p50, p99, per add from send to reply)\n"
        "of the cart service under each durability mode, at each number of writers,\n"
        "and the disk's own rate of one write + fdatasync, in one markdown table.\n"
        "The broker and workers run as threads of this process (inproc); one\n"
        "cart_client keeps W adds in flight (W writers).\n\n"
        "  --dir DIR            make the data directory (bench_durability.XXXXXX) in\n"
        "                       DIR, on the disk to test; removed at the end\n"
        "                       (default /tmp)\n"
        "  --modes LIST         durability modes, comma-separated, of memory (no data\n"
        "                       directory), no, everysec, always (fsync policies)\n"
        "                       (default memory,no,everysec,always)\n"
        "  --writers LIST       adds in flight, comma-separated, each 1..%d\n"
        "                       (default 1,64); the ratios use the largest\n"
        "  --seconds T          a run's measured time at most, 0.1..600 (default 5)\n"
        "  --requests N         a run's measured adds at most (default 1000000);\n"
        "                       a run ends at whichever of the two comes first\n"
        "  --warmup T           seconds before each run's measured time, 0..60\n"
        "                       (default 0.5)\n"
        "  --probe-seconds T    how long the disk's write + fdatasync loop runs, before\n"
        "                       the runs and again after them, 0 (skip it)..60\n"
        "                       (default 2; at most %d writes each)\n"
        "  --shards S           shards, 1..%d (default 4, as cartd)\n"
        "  --workers N          worker threads sharing the shards, 1..%d (default:\n"
        "                       the number of CPUs, as cartd)\n"
        "  --customers N        carts the adds are spread over (default 10000)\n"
        "  --timeout-ms MS      an add's deadline, 100..60000 (default 10000)\n"
        "  --keep               keep the data directory and its logs\n"
        "  --help               this text\n\n"
        "With the defaults, 8 runs of about 6 s and two probes: about a minute.\n"
        "Exit status: 0, 1 when a run could not be made, 2 for a bad option.\n",
        WRITERS_MAX, PROBE_MAX, CART_SHARDS_MAX, CART_THREADS_MAX);
}

//  Parses a comma-separated list into a fixed array, each entry through
//  one. Returns 0 or -1.
static int
s_list (const char *text, int (*one) (const char *, void *), void *array, size_t size,
        size_t *n)
{
    char copy[256];
    if (snprintf (copy, sizeof (copy), "%s", text) >= (int)sizeof (copy))
        return -1;
    *n = 0;
    char *state = NULL;
    for (char *word = strtok_r (copy, ",", &state); word;
         word = strtok_r (NULL, ",", &state)) {
        if (*n == LIST_MAX || one (word, (char *)array + *n * size))
            return -1;
        (*n)++;
    }
    return *n ? 0 : -1;
}

static int
s_mode_one (const char *word, void *out)
{
    cart_fsync_t policy;
    if (strcmp (word, "memory") == 0)
        *(int *)out = MODE_MEMORY;
    else if (cart_fsync_parse (word, &policy) == 0)
        *(int *)out = (int)policy;
    else
        return -1;
    return 0;
}

static int
s_writers_one (const char *word, void *out)
{
    return cart_args_number (word, 1, WRITERS_MAX, (long *)out);
}

static const struct option s_longs[] = {{"dir", required_argument, NULL, 'd'},
                                        {"modes", required_argument, NULL, 'm'},
                                        {"writers", required_argument, NULL, 'W'},
                                        {"seconds", required_argument, NULL, 't'},
                                        {"requests", required_argument, NULL, 'n'},
                                        {"warmup", required_argument, NULL, 'u'},
                                        {"probe-seconds", required_argument, NULL, 'p'},
                                        {"shards", required_argument, NULL, 's'},
                                        {"workers", required_argument, NULL, 'w'},
                                        {"customers", required_argument, NULL, 'c'},
                                        {"timeout-ms", required_argument, NULL, 'T'},
                                        {"keep", no_argument, NULL, 'k'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};

//  One option's value into *options. Returns 0, or -1 when it is bad.
static int
s_option (int opt, const char *arg, options_t *options)
{
    long n = 0;
    int rc = -1;
    if (opt == 'd') {
        options->dir = arg;
        rc = 0;
    } else if (opt == 'm')
        rc = s_list (arg, s_mode_one, options->modes, sizeof (int), &options->n_modes);
    else if (opt == 'W')
        rc = s_list (arg, s_writers_one, options->writers, sizeof (long),
                     &options->n_writers);
    else if (opt == 't')
        rc = cart_args_real (arg, 0.1, 600, &options->seconds);
    else if (opt == 'u')
        rc = cart_args_real (arg, 0, 60, &options->warmup);
    else if (opt == 'p')
        rc = cart_args_real (arg, 0, 60, &options->probe_seconds);
    else if (opt == 'n' && (rc = cart_args_number (arg, 1, 1000000000, &n)) == 0)
        options->requests = n;
    else if (opt == 's' && (rc = cart_args_number (arg, 1, CART_SHARDS_MAX, &n)) == 0)
        options->shards = (uint32_t)n;
    else if (opt == 'w' && (rc = cart_args_number (arg, 1, CART_THREADS_MAX, &n)) == 0)
        options->workers = (size_t)n;
    else if (opt == 'c' && (rc = cart_args_number (arg, 1, 10000000, &n)) == 0)
        options->customers = n;
    else if (opt == 'T' && (rc = cart_args_number (arg, 100, 60000, &n)) == 0)
        options->timeout_ms = n;
    return rc;
}

static const char *
s_option_name (int opt)
{
    for (const struct option *o = s_longs; o->name; o++)
        if (o->val == opt)
            return o->name;
    return "?";
}

//  Returns 0 to run, 1 after --help, 2 for a bad option (said on stderr).
static int
s_parse (int argc, char **argv, options_t *options)
{
    opterr = 0;
    int opt;
    while ((opt = getopt_long (argc, argv, "", s_longs, NULL)) != -1) {
        if (opt == 'h') {
            s_help ();
            return 1;
        }
        if (opt == 'k')
            options->keep = true;
        else if (opt == '?' || opt == ':') {
            fprintf (stderr,
                     "bench_durability: unknown option, or no value given: '%s' (try "
                     "--help)\n",
                     argv[optind - 1]);
            return 2;
        } else if (s_option (opt, optarg, options)) {
            fprintf (stderr, "bench_durability: bad value '%s' for --%s (try --help)\n",
                     optarg, s_option_name (opt));
            return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "bench_durability: unexpected argument '%s' (try --help)\n",
                 argv[optind]);
        return 2;
    }
    return 0;
}

//  --------------------------------------------------------------------------

static void
s_print_setup (const options_t *options, const char *root)
{
    printf ("# data directory: %s (%s), a fresh subdirectory per run, %s\n", root,
            s_fs_name (root), options->keep ? "kept" : "removed after it");
    printf ("# cluster: %u shards on %zu worker thread(s), broker and workers as "
            "threads of this process (inproc); W writers = one cart_client with W "
            "adds in flight\n",
            options->shards, options->workers);
    printf ("# each run: %.1f s warm-up, then up to %ld adds or %.1f s, whichever "
            "first; an add is one unit of one of %d items into one of %ld carts, at "
            "random; latency per add, send to reply; fdatasync counted over the whole "
            "process\n\n",
            options->warmup, options->requests, options->seconds, ITEMS,
            options->customers);
}

//  Runs every mode at every number of writers into runs. Returns how many
//  ran, or -1 when one could not.
static long
s_runs (const options_t *options, const char *root, run_t *runs)
{
    char *names = s_names (options->customers);
    size_t n = 0;
    for (size_t m = 0; m < options->n_modes; m++)
        for (size_t w = 0; w < options->n_writers && !zsys_interrupted; w++) {
            run_t *run = &runs[n];
            if (s_run (options, root, names, options->modes[m], options->writers[w],
                       run)) {
                free (names);
                return -1;
            }
            n++;
            fprintf (stderr,
                     "bench_durability: %s, %ld in flight: %.0f adds/s, p50 %.1f µs, p99 "
                     "%.1f µs, %llu fdatasync\n",
                     s_mode_name (run->mode), run->writers, s_rate (run),
                     s_us (bench_hist_percentile (&run->latency, 50)),
                     s_us (bench_hist_percentile (&run->latency, 99)),
                     (unsigned long long)run->syncs);
        }
    free (names);
    return (long)n;
}

int
main (int argc, char **argv)
{
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);
    options_t options = {
        .dir = "/tmp",
        .seconds = 5,
        .warmup = 0.5,
        .probe_seconds = 2,
        .requests = 1000000,
        .modes = {MODE_MEMORY, CART_FSYNC_NO, CART_FSYNC_EVERYSEC, CART_FSYNC_ALWAYS},
        .n_modes = 4,
        .writers = {1, 64},
        .n_writers = 2,
        .shards = 4,
        .workers = cpus > 0 && cpus <= CART_THREADS_MAX ? (size_t)cpus : 2,
        .customers = 10000,
        .timeout_ms = 10000};
    int rc = s_parse (argc, argv, &options);
    if (rc)
        return rc == 1 ? 0 : 2;
    zsys_init ();
    zsys_set_logstream (stderr);
    char root[ROOT_MAX];
    if (s_make_root (options.dir, root, sizeof (root)))
        return 1;
    bench_env_print (stdout, argc, argv);
    s_print_setup (&options, root);
    fflush (stdout);
    run_t probes[2];
    bool probed = options.probe_seconds > 0;
    if (probed && s_probe (root, options.probe_seconds, &probes[0])) {
        s_remove_tree (root);
        return 1;
    }
    run_t *runs = (run_t *)calloc (options.n_modes * options.n_writers, sizeof (run_t));
    assert (runs);
    long n_runs = s_runs (&options, root, runs);
    if (probed && n_runs >= 0 && s_probe (root, options.probe_seconds, &probes[1]))
        n_runs = -1;
    if (!options.keep)
        s_remove_tree (root);
    if (n_runs < 0) {
        free (runs);
        return 1;
    }
    s_report (&options, runs, (size_t)n_runs, probed ? probes : NULL);
    free (runs);
    char load[64];
    bench_env_loadavg (load, sizeof (load));
    printf ("\n# load average at end: %s\n", load);
    return zsys_interrupted ? 130 : 0;
}
