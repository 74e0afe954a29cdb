/*  =========================================================================
    bench_env - what every benchmark of bench/seed.cmake prints first: the
    command line, the machine (cores, CPU model, kernel), the date, the load
    average and the build type, so that a table pasted elsewhere still says
    where and how it was taken.

        bench_env_print (stdout, argc, argv);

    Also the process's resident memory, for bench_memory.
    =========================================================================
*/
#ifndef BENCH_ENV_H_INCLUDED
#define BENCH_ENV_H_INCLUDED

#include <stddef.h>
#include <stdio.h>

//  Print the header lines, each prefixed "# " (markdown-safe), then a
//  blank line.
void bench_env_print (FILE *out, int argc, char **argv);

//  The three load averages into text (at least 64 bytes).
void bench_env_loadavg (char *text, size_t size);

//  Resident set size of this process in bytes (VmRSS), 0 if unknown.
size_t bench_env_rss (void);

#endif
