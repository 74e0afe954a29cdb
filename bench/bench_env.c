/*  =========================================================================
    bench_env - the header every benchmark prints. Reads /proc, uname and
    the clock; nothing here is timed.
    =========================================================================
*/
#include "bench_env.h"

#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_BUILD_TYPE
#define BENCH_BUILD_TYPE "unknown"
#endif

//  The first "model name" of /proc/cpuinfo into text, or "unknown".
static void
s_cpu_model (char *text, size_t size)
{
    snprintf (text, size, "unknown");
    FILE *file = fopen ("/proc/cpuinfo", "r");
    if (!file)
        return;
    char line[512];
    while (fgets (line, sizeof (line), file)) {
        char *colon = strchr (line, ':');
        if (strncmp (line, "model name", 10) == 0 && colon) {
            snprintf (text, size, "%s", colon + 2);
            text[strcspn (text, "\n")] = 0;
            break;
        }
    }
    fclose (file);
}

void
bench_env_loadavg (char *text, size_t size)
{
    double load[3] = {0, 0, 0};
    if (getloadavg (load, 3) != 3)
        snprintf (text, size, "unknown");
    else
        snprintf (text, size, "%.2f %.2f %.2f", load[0], load[1], load[2]);
}

void
bench_env_print (FILE *out, int argc, char **argv)
{
    fprintf (out, "# command:");
    for (int i = 0; i < argc; i++)
        fprintf (out, " %s", argv[i]);
    char cpu[256], load[64], date[64];
    s_cpu_model (cpu, sizeof (cpu));
    bench_env_loadavg (load, sizeof (load));
    time_t now = time (NULL);
    strftime (date, sizeof (date), "%Y-%m-%dT%H:%M:%S%z", localtime (&now));
    struct utsname names;
    if (uname (&names))
        snprintf (names.release, sizeof (names.release), "unknown");
    fprintf (out,
             "\n# machine: nproc %ld, %s, Linux %s\n# date: %s\n"
             "# load average (1/5/15 min) at start: %s\n# build: %s\n\n",
             sysconf (_SC_NPROCESSORS_ONLN), cpu, names.release, date, load,
             BENCH_BUILD_TYPE);
}

size_t
bench_env_rss (void)
{
    FILE *file = fopen ("/proc/self/status", "r");
    if (!file)
        return 0;
    char line[256];
    size_t kib = 0;
    while (fgets (line, sizeof (line), file))
        if (sscanf (line, "VmRSS: %zu kB", &kib) == 1)
            break;
    fclose (file);
    return kib * 1024;
}
