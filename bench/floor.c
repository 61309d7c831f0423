/* The live-probe floor: one USDT marker hit in a tight loop, so that a
   count-only consumer's cost per hit can be measured (make bench).

   usage: floor N      prints the loop's wall time in nanoseconds

   Built twice: with -DNOP10, the marker site the interpreters have (a
   1-byte nop where the note points, then a 10-byte nop), from the same
   header (markers/pydtrace_sites.h); and as sys/sdt.h emits it (a 1-byte
   nop alone). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/sdt.h>

#ifdef NOP10
#include "pydtrace_sites.h"
#endif

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        STAP_PROBE1(bench, hit, i);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%lld\n", (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL
                     + (t1.tv_nsec - t0.tv_nsec));
    return 0;
}
