/*  =========================================================================
    bench_bus - the message bus's throughput and latency, through the real
    broker and worker code, beside the raw libzmq ceiling.

        build/bin/bench_bus [--clients N] [--window W] [--seconds S | --requests N]
                            [--shards-list 1,4,16] [--transport inproc,tcp,curve] ...

    For inproc and tcp, it runs the raw ROUTER/ROUTER forwarder with an
    echo worker (bench_raw.h), then the CART/2 cluster (bench_cart.h) at
    each shard count; CURVE's cluster at a shard count runs right after
    tcp's at that count, so that the two whose ratio is taken share the
    machine's state as far as they can. It prints one line as each
    configuration ends and a markdown table at the end. bench/run_bus.sh
    runs redis-benchmark first and passes its figure here (--redis-rps)
    for one more ratio. --help lists every option. The default run takes
    about a minute.
    =========================================================================
*/
#include <czmq.h>
#include <getopt.h>
#include <sys/utsname.h>
#include <time.h>

#include "bench_cart.h"
#include "bench_raw.h"
#include "cart_args.h"
#include "cart_types.h"

#ifndef BENCH_BUILD_TYPE
#define BENCH_BUILD_TYPE "unknown"
#endif

#define SHARD_COUNTS_MAX 16
#define TARGET_RPS       300000.0 //  over tcp with 4 shards, pipelined
#define TARGET_SHARDS    4
#define WINDOW_MAX       4096 //  well under the sockets' HWM of 10,000
//  Rows of one run: per transport, two raw rows and one per shard count
#define ROWS_MAX (BENCH_TRANSPORTS * (SHARD_COUNTS_MAX + 2))

typedef struct {
    bench_load_t load;
    bench_cart_config_t cart; //  transport and shards vary per row
    uint32_t shard_counts[SHARD_COUNTS_MAX];
    size_t n_shard_counts;
    bool transports[BENCH_TRANSPORTS]; //  those to run
    bool raw;                          //  the one-frame raw ceiling
    bool raw_cart;                     //  the raw path with CART/2's frame layout
    int io_threads;   //  libzmq I/O threads, in czmq's context and the raw one
    double redis_rps; //  0: not given
} options_t;

//  One row of the table.
typedef struct {
    bool raw;
    int frames; //  raw: frames per message
    bench_transport_t transport;
    uint32_t shards;
    size_t threads; //  worker threads
    bench_result_t result;
    bool failed;
    char error[512]; //  why the row failed, copied from the error buffer
} row_t;

//  --------------------------------------------------------------------------
//  Options

//  Every transport's name, comma-separated: "inproc,tcp,curve".
static const char *
s_transport_list (char *buffer, size_t size)
{
    size_t used = 0;
    buffer[0] = 0;
    for (int t = 0; t < BENCH_TRANSPORTS && used < size; t++)
        used += (size_t)snprintf (buffer + used, size - used, "%s%s", t ? "," : "",
                                  bench_transport_names[t]);
    return buffer;
}

static void
s_usage (FILE *out)
{
    char transports[64];
    fprintf (out,
             "usage: bench_bus [options]\n"
             "  --clients N         client threads, each with its own socket (2)\n"
             "  --window W          requests in flight per client, 1-%d (256)\n"
             "  --seconds S         measured seconds per configuration (4)\n"
             "  --warmup S          seconds run before measuring (0.5)\n"
             "  --requests N        instead of --seconds: requests per configuration\n"
             "  --shards-list L     shard counts to run, e.g. 1,4,16 (1,4,16)\n"
             "  --transport T       a comma list of transports; curve is tcp with\n"
             "                      CURVE on the broker's sockets (%s)\n"
             "  --worker-threads N  most worker threads per cluster (4)\n"
             "  --customers N       customers the requests pick from (10000)\n"
             "  --get-percent P     share of GETs; the rest are ADDs (80)\n"
             "  --raw-frames L      raw rows: 1 (the ceiling), 2 (CART/2's layout), or\n"
             "                      1,2 (1,2)\n"
             "  --no-raw            no raw rows\n"
             "  --io-threads N      libzmq I/O threads (1, czmq's default)\n"
             "  --redis-rps R       redis-benchmark's SET requests/s, for the ratio\n",
             WINDOW_MAX, s_transport_list (transports, sizeof (transports)));
}

static int
s_number (const char *name, const char *text, long min, long max, long *value)
{
    if (cart_args_number (text, min, max, value) == 0)
        return 0;
    fprintf (stderr, "bench_bus: %s must be %ld to %ld, not '%s'\n", name, min, max,
             text);
    return -1;
}

static int
s_seconds (const char *name, const char *text, double min, double max, double *value)
{
    char *end;
    double parsed = strtod (text, &end);
    if (end != text && !*end && parsed >= min && parsed <= max) {
        *value = parsed;
        return 0;
    }
    fprintf (stderr, "bench_bus: %s must be %g to %g, not '%s'\n", name, min, max, text);
    return -1;
}

static int
s_shard_counts (options_t *self, const char *text)
{
    long value;
    self->n_shard_counts = 0;
    char *copy = strdup (text), *saveptr = NULL;
    int rc = 0;
    for (char *piece = strtok_r (copy, ",", &saveptr); piece && rc == 0;
         piece = strtok_r (NULL, ",", &saveptr))
        if (self->n_shard_counts == SHARD_COUNTS_MAX ||
            s_number ("a shard count", piece, 1, CART_SHARDS_MAX, &value))
            rc = -1;
        else
            self->shard_counts[self->n_shard_counts++] = (uint32_t)value;
    free (copy);
    return rc == 0 && self->n_shard_counts > 0 ? 0 : -1;
}

static int
s_raw_frames (options_t *self, const char *text)
{
    self->raw = strchr (text, '1') != NULL;
    self->raw_cart = strchr (text, '2') != NULL;
    if (strspn (text, "12,") == strlen (text) && (self->raw || self->raw_cart))
        return 0;
    fprintf (stderr, "bench_bus: --raw-frames is 1, 2 or 1,2\n");
    return -1;
}

//  The transport named name, or BENCH_TRANSPORTS.
static bench_transport_t
s_transport (const char *name)
{
    int t = 0;
    while (t < BENCH_TRANSPORTS && !streq (name, bench_transport_names[t]))
        t++;
    return (bench_transport_t)t;
}

static int
s_transports (options_t *self, const char *text)
{
    memset (self->transports, 0, sizeof (self->transports));
    char *copy = strdup (text), *saveptr = NULL;
    int rc = 0;
    for (char *piece = strtok_r (copy, ",", &saveptr); piece && rc == 0;
         piece = strtok_r (NULL, ",", &saveptr)) {
        bench_transport_t t = s_transport (piece);
        if (t < BENCH_TRANSPORTS)
            self->transports[t] = true;
        else
            rc = -1;
    }
    free (copy);
    bool any = false;
    for (int t = 0; t < BENCH_TRANSPORTS; t++)
        any |= self->transports[t];
    if (rc == 0 && any)
        return 0;
    char names[64];
    fprintf (stderr, "bench_bus: --transport is a comma list of %s, not '%s'\n",
             s_transport_list (names, sizeof (names)), text);
    return -1;
}

enum {
    OPT_WARMUP = 256,
    OPT_WORKERS,
    OPT_CUSTOMERS,
    OPT_GETS,
    OPT_NO_RAW,
    OPT_RAW_FRAMES,
    OPT_IO_THREADS,
    OPT_REDIS
};

static const struct option s_long_options[] = {
    {"clients", required_argument, NULL, 'c'},
    {"window", required_argument, NULL, 'w'},
    {"seconds", required_argument, NULL, 's'},
    {"requests", required_argument, NULL, 'n'},
    {"shards-list", required_argument, NULL, 'S'},
    {"transport", required_argument, NULL, 't'},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"worker-threads", required_argument, NULL, OPT_WORKERS},
    {"customers", required_argument, NULL, OPT_CUSTOMERS},
    {"get-percent", required_argument, NULL, OPT_GETS},
    {"no-raw", no_argument, NULL, OPT_NO_RAW},
    {"raw-frames", required_argument, NULL, OPT_RAW_FRAMES},
    {"io-threads", required_argument, NULL, OPT_IO_THREADS},
    {"redis-rps", required_argument, NULL, OPT_REDIS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

//  Applies one option; returns 0, or -1 when its value is wrong.
static int
s_option (options_t *self, int opt, const char *arg)
{
    long value = 0;
    int rc = 0;
    switch (opt) {
        case 'c':
            rc = s_number ("--clients", arg, 1, 64, &value);
            self->load.clients = (size_t)value;
            break;
        case 'w':
            rc = s_number ("--window", arg, 1, WINDOW_MAX, &value);
            self->load.window = (size_t)value;
            break;
        case 's':
            rc = s_seconds ("--seconds", arg, 0.1, 600, &self->load.seconds);
            break;
        case 'n':
            rc = s_number ("--requests", arg, 1, 1000000000L, &value);
            self->load.requests = (uint64_t)value;
            break;
        case 'S':
            rc = s_shard_counts (self, arg);
            break;
        case 't':
            rc = s_transports (self, arg);
            break;
        case OPT_WARMUP:
            rc = s_seconds ("--warmup", arg, 0, 60, &self->load.warmup);
            break;
        case OPT_WORKERS:
            rc = s_number ("--worker-threads", arg, 1, 64, &value);
            self->cart.worker_threads = (size_t)value;
            break;
        case OPT_CUSTOMERS:
            rc = s_number ("--customers", arg, 1, 1000000, &value);
            self->cart.customers = (size_t)value;
            break;
        case OPT_GETS:
            rc = s_number ("--get-percent", arg, 0, 100, &value);
            self->cart.get_percent = (int)value;
            break;
        case OPT_NO_RAW:
            self->raw = self->raw_cart = false;
            break;
        case OPT_RAW_FRAMES:
            rc = s_raw_frames (self, arg);
            break;
        case OPT_IO_THREADS:
            rc = s_number ("--io-threads", arg, 1, 16, &value);
            self->io_threads = (int)value;
            break;
        case OPT_REDIS:
            rc = s_seconds ("--redis-rps", arg, 0, 1e12, &self->redis_rps);
            break;
        default:
            rc = -1;
    }
    return rc;
}

//  Returns 0, 1 for --help, or -1 on a bad command line.
static int
s_options_parse (options_t *self, int argc, char **argv)
{
    *self =
        (options_t){.load = {.clients = 2, .window = 256, .seconds = 4, .warmup = 0.5},
                    .cart = {.worker_threads = 4, .customers = 10000, .get_percent = 80},
                    .shard_counts = {1, 4, 16},
                    .n_shard_counts = 3,
                    .raw = true,
                    .raw_cart = true,
                    .io_threads = 1};
    for (int t = 0; t < BENCH_TRANSPORTS; t++)
        self->transports[t] = true;
    int opt;
    while ((opt = getopt_long (argc, argv, "h", s_long_options, NULL)) != -1) {
        if (opt == 'h')
            return 1;
        if (s_option (self, opt, optarg))
            return -1;
    }
    if (optind < argc) {
        fprintf (stderr, "bench_bus: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Printing

//  Writes value with thousands separators into buffer.
static const char *
s_commas (char *buffer, size_t size, double value)
{
    char digits[32];
    snprintf (digits, sizeof (digits), "%.0f", value);
    size_t len = strlen (digits), out = 0;
    for (size_t i = 0; i < len && out + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0 && digits[i - 1] != '-')
            buffer[out++] = ',';
        buffer[out++] = digits[i];
    }
    buffer[out] = 0;
    return buffer;
}

static double
s_rps (const bench_result_t *result)
{
    return result->elapsed > 0 ? (double)result->ok / result->elapsed : 0;
}

//  CPU microseconds of the whole process per successful request.
static double
s_cpu_us (const bench_result_t *result)
{
    return result->ok ? result->cpu * 1e6 / (double)result->ok : 0;
}

//  The machine's load averages, as /proc/loadavg has them.
static const char *
s_loadavg (char *buffer, size_t size)
{
    snprintf (buffer, size, "unknown");
    FILE *file = fopen ("/proc/loadavg", "r");
    if (file) {
        double one, five, fifteen;
        if (fscanf (file, "%lf %lf %lf", &one, &five, &fifteen) == 3)
            snprintf (buffer, size, "%.2f %.2f %.2f", one, five, fifteen);
        fclose (file);
    }
    return buffer;
}

static double
s_us (const bench_result_t *result, double percent)
{
    return (double)bench_hist_percentile (&result->latency, percent) / 1000.0;
}

static const char *
s_cpu_model (char *buffer, size_t size)
{
    snprintf (buffer, size, "unknown");
    FILE *file = fopen ("/proc/cpuinfo", "r");
    if (!file)
        return buffer;
    char line[256];
    for (int i = 0; i < 10000 && fgets (line, sizeof (line), file); i++) {
        char *colon = strchr (line, ':');
        if (strncmp (line, "model name", 10) == 0 && colon) {
            snprintf (buffer, size, "%s", colon + 2);
            buffer[strcspn (buffer, "\n")] = 0;
            break;
        }
    }
    fclose (file);
    return buffer;
}

//  Prints the command line, quoting what a shell would split.
static void
s_print_command (int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        bool plain =
            argv[i][0] && strspn (argv[i], "abcdefghijklmnopqrstuvwxyz"
                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789-_./=,:+@%") == strlen (argv[i]);
        printf (plain ? "%s%s" : "%s'%s'", i ? " " : "", argv[i]);
    }
}

static void
s_print_header (const options_t *self, int argc, char **argv)
{
    char model[128], date[64], load[64];
    time_t now = time (NULL);
    strftime (date, sizeof (date), "%Y-%m-%d %H:%M:%S %Z", localtime (&now));
    struct utsname host;
    uname (&host);
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    printf ("# bench_bus: CART/2 over ZeroMQ, broker path vs raw libzmq\n\n");
    printf ("- date: %s\n- command: `", date);
    s_print_command (argc, argv);
    printf ("`\n- machine: %ld CPUs (nproc), %s; %s %s %s\n",
            sysconf (_SC_NPROCESSORS_ONLN), s_cpu_model (model, sizeof (model)),
            host.sysname, host.release, host.machine);
    printf ("- load average before the run (1, 5, 15 min): %s\n",
            s_loadavg (load, sizeof (load)));
    printf ("- software: libzmq %d.%d.%d, czmq %d.%d.%d, build %s; %d libzmq I/O "
            "thread(s)\n",
            major, minor, patch, CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR,
            CZMQ_VERSION_PATCH, BENCH_BUILD_TYPE, self->io_threads);
    printf ("- load: %zu client thread(s) x %zu requests in flight each; ",
            self->load.clients, self->load.window);
    if (self->load.requests)
        printf ("%llu requests per configuration\n",
                (unsigned long long)self->load.requests);
    else
        printf ("%.1f s measured after %.1f s of warm-up per configuration\n",
                self->load.seconds, self->load.warmup);
    printf ("- CART mix: %d%% GET / %d%% ADD over %zu customers, carts filled with %d "
            "items first; worker threads = shards, at most %zu\n",
            self->cart.get_percent, 100 - self->cart.get_percent, self->cart.customers,
            BENCH_PREFILL_ITEMS, self->cart.worker_threads);
    printf ("- raw: DEALER clients -> ROUTER/ROUTER forwarder -> echo DEALER, plain "
            "zmq_msg_recv/zmq_msg_send, one thread each; `raw libzmq` sends one "
            "16-byte frame, `raw, 2 frames` CART/2's request layout (32+64 bytes), "
            "echoed whole\n");
    if (self->transports[BENCH_CURVE])
        printf ("- curve: tcp on 127.0.0.1 with CURVE on both of the broker's sockets, "
                "keys made for the run (zcert); every handshake ends before the "
                "measured time (the workers' before every shard is live, a client's "
                "before its socket can send); no raw row\n");
    printf ("\n");
    fflush (stdout);
}

static const char *
s_row_name (const row_t *row, char *buffer, size_t size)
{
    if (row->raw)
        snprintf (buffer, size, row->frames == 1 ? "raw libzmq" : "raw, %d frames",
                  row->frames);
    else
        snprintf (buffer, size, "CART %u shard%s", row->shards,
                  row->shards > 1 ? "s" : "");
    return buffer;
}

//  The raw row of the same transport, when there is one that ran.
static const row_t *
s_ceiling (const row_t *rows, size_t n, const row_t *row)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].raw && rows[i].frames == 1 && !rows[i].failed &&
            rows[i].transport == row->transport)
            return &rows[i];
    return NULL;
}

//  For a CURVE row, the plain tcp row at the same shard count, when there
//  is one that ran.
static const row_t *
s_plain (const row_t *rows, size_t n, const row_t *row)
{
    if (row->raw || row->failed || row->transport != BENCH_CURVE)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!rows[i].raw && !rows[i].failed && rows[i].transport == BENCH_TCP &&
            rows[i].shards == row->shards && s_rps (&rows[i].result) > 0)
            return &rows[i];
    return NULL;
}

static void
s_print_progress (const row_t *rows, size_t index, size_t total)
{
    const row_t *row = &rows[index];
    char name[64], rps[32];
    printf ("[%zu/%zu] %-6s %-15s ", index + 1, total,
            bench_transport_names[row->transport], s_row_name (row, name, sizeof (name)));
    if (row->failed) {
        printf ("FAILED: %s\n", row->error);
        fflush (stdout);
        return;
    }
    const bench_result_t *r = &row->result;
    printf ("%9s req/s  p50 %.1f us  p99 %.1f us  p99.9 %.1f us  CPU %.1f us/req  "
            "failed %llu",
            s_commas (rps, sizeof (rps), s_rps (r)), s_us (r, 50), s_us (r, 99),
            s_us (r, 99.9), s_cpu_us (r), (unsigned long long)r->failed);
    const row_t *raw = s_ceiling (rows, index + 1, row);
    if (raw && raw != row && s_rps (&raw->result) > 0)
        printf ("  (%.1f%% of raw %s)", 100 * s_rps (r) / s_rps (&raw->result),
                bench_transport_names[row->transport]);
    const row_t *plain = s_plain (rows, index + 1, row);
    if (plain)
        printf ("  (%.2fx tcp)", s_rps (r) / s_rps (&plain->result));
    printf ("\n");
    fflush (stdout);
}

//  One table row's cells after the path and transport; raw and plain are
//  the rows it is compared with (NULL: none).
static void
s_print_cells (const row_t *row, const row_t *raw, const row_t *plain)
{
    const bench_result_t *r = &row->result;
    char shards[16] = "-", threads[16] = "1 (echo)", count[32], rps[32], share[16] = "",
         ratio[16] = "";
    if (!row->raw) {
        snprintf (shards, sizeof (shards), "%u", row->shards);
        snprintf (threads, sizeof (threads), "%zu", row->threads);
    }
    if (raw && s_rps (&raw->result) > 0)
        snprintf (share, sizeof (share), "%.1f%%",
                  100 * s_rps (r) / s_rps (&raw->result));
    if (plain)
        snprintf (ratio, sizeof (ratio), "%.2fx", s_rps (r) / s_rps (&plain->result));
    printf (
        "%s | %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %llu | %s | %s "
        "|\n",
        shards, threads, s_commas (count, sizeof (count), (double)r->ok),
        s_commas (rps, sizeof (rps), s_rps (r)), s_us (r, 50), s_us (r, 99),
        s_us (r, 99.9), (double)r->latency.max / 1000.0, s_cpu_us (r),
        r->elapsed > 0 ? r->cpu / r->elapsed : 0, (unsigned long long)r->failed, share,
        ratio);
}

static void
s_print_table (const row_t *rows, size_t n)
{
    printf ("\n| path | transport | shards | worker threads | requests | requests/s "
            "| p50 us | p99 us | p99.9 us | max us | CPU us/req | cores busy | failed "
            "| of raw | curve / tcp |\n");
    printf ("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: | ---: | ---: |\n");
    for (size_t i = 0; i < n; i++) {
        const row_t *row = &rows[i];
        char name[64];
        printf ("| %s | %s | ", s_row_name (row, name, sizeof (name)),
                bench_transport_names[row->transport]);
        if (row->failed)
            printf ("%u | %zu | failed: %s ||||||||||| \n", row->shards, row->threads,
                    row->error);
        else
            s_print_cells (row, s_ceiling (rows, n, row), s_plain (rows, n, row));
    }
}

//  What CURVE costs at each shard count: requests/s and CPU beside tcp's.
static void
s_print_curve (const row_t *rows, size_t n)
{
    char a[32], b[32];
    for (size_t i = 0; i < n; i++) {
        const row_t *plain = s_plain (rows, n, &rows[i]);
        if (!plain)
            continue;
        const bench_result_t *curve = &rows[i].result, *tcp = &plain->result;
        printf ("- CURVE / tcp at %u shard(s): %s / %s requests/s = %.2fx; CPU %.2f / "
                "%.2f us/req (%+.2f us); p50 %.1f / %.1f us\n",
                rows[i].shards, s_commas (a, sizeof (a), s_rps (curve)),
                s_commas (b, sizeof (b), s_rps (tcp)), s_rps (curve) / s_rps (tcp),
                s_cpu_us (curve), s_cpu_us (tcp), s_cpu_us (curve) - s_cpu_us (tcp),
                s_us (curve, 50), s_us (tcp, 50));
    }
}

//  The lines under the table: the target, Redis, and what the columns mean.
static void
s_print_summary (const options_t *self, const row_t *rows, size_t n)
{
    char a[32], b[32];
    printf ("\n");
    for (size_t i = 0; i < n; i++) {
        const row_t *row = &rows[i];
        if (!row->raw && !row->failed && row->transport == BENCH_TCP &&
            row->shards == TARGET_SHARDS)
            printf ("- target: >= %s requests/s over tcp with %d shards; measured %s "
                    "(%s)\n",
                    s_commas (a, sizeof (a), TARGET_RPS), TARGET_SHARDS,
                    s_commas (b, sizeof (b), s_rps (&row->result)),
                    s_rps (&row->result) >= TARGET_RPS ? "met" : "below target");
    }
    for (size_t i = 0; i < n && self->redis_rps > 0; i++) {
        const row_t *row = &rows[i];
        if (!row->raw && !row->failed && row->transport == BENCH_TCP)
            printf ("- CART tcp %u shard(s): %s requests/s = %.1f%% of redis-benchmark "
                    "SET -P 16 (%s requests/s)\n",
                    row->shards, s_commas (a, sizeof (a), s_rps (&row->result)),
                    100 * s_rps (&row->result) / self->redis_rps,
                    s_commas (b, sizeof (b), self->redis_rps));
    }
    s_print_curve (rows, n);
    if (self->redis_rps <= 0)
        printf ("- redis-benchmark: not run (bench/run_bus.sh runs it and passes "
                "--redis-rps)\n");
    char load[64];
    printf ("- load average after the run: %s; other programs on the machine lower "
            "requests/s\n  (`cores busy` well under the CPU count says they did), and "
            "change batching, so CPU us/req too\n",
            s_loadavg (load, sizeof (load)));
    printf ("- requests/s counts successful replies only; `failed` counts other "
            "statuses and timeouts;\n  latency is per request, from just before the "
            "send call to just after its result, over all of them\n  (a log "
            "histogram, within 0.8%%); `CPU us/req` is the process's CPU time (all "
            "threads)\n  per successful request and `cores busy` its CPU seconds per "
            "second;\n  `of raw` is requests/s over the `raw libzmq` row of the same "
            "transport, and\n  `curve / tcp` a CURVE row's requests/s over the tcp "
            "row's at the same shard count.\n");
}

//  --------------------------------------------------------------------------
//  Running

static void
s_run_row (const options_t *self, row_t *row)
{
    int rc;
    const char *error = NULL;
    if (row->raw)
        rc = bench_raw_run (bench_transport_names[row->transport], row->frames,
                            self->io_threads, &self->load, &row->result, &error);
    else {
        bench_cart_config_t cart = self->cart;
        cart.transport = row->transport;
        cart.shards = row->shards;
        rc = bench_cart_run (&cart, &self->load, &row->result, &error);
    }
    row->failed = rc != 0;
    if (row->failed)
        snprintf (row->error, sizeof (row->error), "%s", error ? error : "?");
}

//  Appends the raw rows of transport t (bench_raw runs on inproc and tcp).
static size_t
s_plan_raw (const options_t *self, bench_transport_t t, row_t *rows, size_t n)
{
    if (t == BENCH_CURVE)
        return n;
    if (self->raw)
        rows[n++] = (row_t){.raw = true, .frames = 1, .transport = t, .threads = 1};
    if (self->raw_cart)
        rows[n++] = (row_t){
            .raw = true, .frames = BENCH_RAW_FRAMES_CART, .transport = t, .threads = 1};
    return n;
}

//  Appends the CART row of transport t at a shard count.
static size_t
s_plan_cart (const options_t *self, bench_transport_t t, uint32_t shards, row_t *rows,
             size_t n)
{
    size_t threads =
        shards < self->cart.worker_threads ? shards : self->cart.worker_threads;
    rows[n++] = (row_t){.transport = t, .shards = shards, .threads = threads};
    return n;
}

//  Lays out the rows: per transport, the raw ceiling, then each shard
//  count; with tcp, CURVE's row at a shard count comes right after tcp's.
static size_t
s_plan (const options_t *self, row_t *rows)
{
    bool paired = self->transports[BENCH_TCP] && self->transports[BENCH_CURVE];
    size_t n = 0;
    for (int t = 0; t < BENCH_TRANSPORTS; t++) {
        if (!self->transports[t] || (paired && t == BENCH_CURVE))
            continue;
        n = s_plan_raw (self, (bench_transport_t)t, rows, n);
        for (size_t s = 0; s < self->n_shard_counts; s++) {
            n = s_plan_cart (self, (bench_transport_t)t, self->shard_counts[s], rows, n);
            if (paired && t == BENCH_TCP)
                n = s_plan_cart (self, BENCH_CURVE, self->shard_counts[s], rows, n);
        }
    }
    assert (n <= ROWS_MAX);
    return n;
}

int
main (int argc, char **argv)
{
    options_t options;
    int rc = s_options_parse (&options, argc, argv);
    if (rc) {
        s_usage (rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }
    zsys_set_io_threads ((size_t)options.io_threads);
    zsys_init ();
    s_print_header (&options, argc, argv);
    //  Each row holds its latency histogram: on the heap, not the stack
    row_t *rows = (row_t *)calloc (ROWS_MAX, sizeof (row_t));
    assert (rows);
    size_t n = s_plan (&options, rows);
    bool all_ran = true;
    for (size_t i = 0; i < n; i++) {
        s_run_row (&options, &rows[i]);
        all_ran &= !rows[i].failed;
        s_print_progress (rows, i, n);
    }
    s_print_table (rows, n);
    s_print_summary (&options, rows, n);
    free (rows);
    return all_ran ? 0 : 1;
}
