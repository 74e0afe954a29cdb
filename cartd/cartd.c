/*  =========================================================================
    cartd - the all-in-one cart service: broker, shard workers and HTTP
    front in one process, talking over inproc.

    The cluster (broker, workers) and the HTTP front are not built yet;
    until they are, cartd says so and exits with status 1.
    =========================================================================
*/
#include <stdio.h>
#include <string.h>

static void
s_help (FILE *out)
{
    fprintf (out, "usage: cartd [--help]\n\n"
                  "The cart service in one process: HTTP on 127.0.0.1:8080, a broker\n"
                  "and 4 shard workers over inproc.\n");
}

int
main (int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
            s_help (stdout);
            return 0;
        }
        fprintf (stderr, "cartd: unknown argument '%s'\n", argv[i]);
        s_help (stderr);
        return 2;
    }
    fprintf (stderr, "cartd: the broker, shard workers and HTTP front are not built "
                     "yet,\nso there is nothing to serve. 'cartctl hash KEY' works.\n");
    return 1;
}
