/* The live-probe floor: one USDT marker hit in a tight loop, so that a
   count-only consumer's cost per hit can be measured (make bench).

   usage: floor N      prints the loop's wall time in nanoseconds

   Built twice: with -DNOP10, the marker site the patches "Follow the nop;
   nop10 marker site convention on x86-64" give the interpreters (a 1-byte
   nop where the note points, then the 10-byte nop 66 2e 0f 1f 84 00 00 00
   00 00), made the same way (_SDT_NOP redefined after the include); and
   as sys/sdt.h emits it (a 1-byte nop alone). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/sdt.h>

#if defined(NOP10) && defined(__x86_64__)
#undef _SDT_NOP
#define _SDT_NOP nop; .byte 0x66; .byte 0x2e; .byte 0x0f; .byte 0x1f; \
    .byte 0x84; .byte 0x00; .byte 0x00; .byte 0x00; .byte 0x00; .byte 0x00
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
