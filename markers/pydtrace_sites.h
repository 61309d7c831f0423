/* The marker site on x86-64, for every build with markers: the patched
   interpreters (Include/pydtrace.h includes it after pydtrace_probes.h),
   usdtmon and bench/floor.c.  Include it after <sys/sdt.h>.

   Each site is a 1-byte nop, where the note points, then a 10-byte nop (66
   2e 0f 1f 84 00 00 00 00 00, nopw %cs:0x0(%rax,%rax,1)): the site
   convention of libbpf's usdt.h.  A consumer that attaches at the note's
   address gets an int3 uprobe, as with sys/sdt.h's own site; one that
   knows the convention may attach at the next byte, where a kernel that
   optimizes 10-byte nops needs no int3 and leaves the red zone alone.
   Never a 5-byte nop at the note: Linux 6.18 rewrites a probed one into a
   CALL that a forked child inherits without its trampoline.  sys/sdt.h
   pastes _SDT_NOP into each site's asm when a marker's macro expands,
   after this point.  The bytes are spelled out, separated by ';' (a comma
   would split the macro's argument), so that no assembler picks another
   encoding. */
#ifndef Py_PYDTRACE_SITES_H
#define Py_PYDTRACE_SITES_H

#if defined(__x86_64__) && defined(_SDT_NOP)
#undef _SDT_NOP
#define _SDT_NOP nop; .byte 0x66; .byte 0x2e; .byte 0x0f; .byte 0x1f; \
    .byte 0x84; .byte 0x00; .byte 0x00; .byte 0x00; .byte 0x00; .byte 0x00
#endif

#endif /* !Py_PYDTRACE_SITES_H */
