/* The live-probe floor: one USDT marker hit in a tight loop, so that a
   count-only consumer's cost per hit can be measured (make bench).

   usage: floor N      prints the loop's wall time in nanoseconds

   Built twice: as sys/sdt.h emits it (a 1-byte nop at the site) and with
   -DNOP5, the 5-byte nop site of the patches "Make every marker site a
   5-byte nop on x86-64",
   made the same way (_SDT_NOP redefined after the include). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/sdt.h>

#if defined(NOP5) && defined(__x86_64__)
#undef _SDT_NOP
#define _SDT_NOP .byte 0x0f; .byte 0x1f; .byte 0x44; .byte 0x00; .byte 0x00
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
