/*
 * The "python" USDT provider: the ABI of python-systemtap's static markers.
 *
 * This file is the single source of truth for every build: the build copies
 * it over each patched source tree's Include/pydtrace.d, which the
 * interpreter's Makefile feeds to dtrace(1) (-h for the header, -G for the
 * object holding the semaphores).
 *
 * Compatible with upstream CPython's provider: every marker upstream has
 * keeps its name and its arguments in the same order, so a script written
 * for upstream's markers reads ours.  What upstream has: 3.11 declares
 * function__entry/return (three arguments) and line, but fires them only
 * while a Python-level trace or profile function is set; 3.12 to 3.14 fire
 * gc__start/done, import__find__load__start/done and audit only; 3.15
 * restores function__entry/return with three arguments (no site for a frame
 * unwound by an exception, none in the tier-2 traces).  No upstream release
 * has cfunction__entry/return or line markers that fire, or a fourth
 * argument: those are this project's extension.
 *
 * A marker with no call site in a given interpreter leaves no note in its
 * ELF file; patches/<python>/markers lists what each build claims to fire,
 * and the tests hold each build to that list.
 *
 * Argument semantics, identical in every build:
 *   filename, funcname  co_filename and co_name of the code object;
 *   lineno              what frame.f_lineno says at that moment: the first
 *                       line for a fresh call, the resumption line for a
 *                       resumed generator, the executing line on return;
 *   modulename          __name__ of the frame's globals; for the cfunction
 *                       markers the C function's module (its __module__, or
 *                       for a method of a C type, that type's module);
 *   for cfunction__*    filename and lineno are the calling Python frame's.
 * A string that cannot be represented as a C string is passed as NULL.
 */

provider python {
    /* function__entry: a Python frame starts (a call, a generator's
       resumption); function__return: it exits (return, yield, unwinding by
       an exception).  cfunction__entry: Python code calls a C function;
       cfunction__return: the call returns or raises (our extension).
       line: execution reaches the start of a line, or jumps backwards
       (declared by upstream 3.11, fired by none of its releases since).
       modulename: our extension.
       Their order here is the build's, not the ABI's: the semaphores of
       the first four are adjacent in this order, and the 3.x
       interpreters' RESUME_CHECK reads them with one load
       (markers/pycore_dtrace.h, _PyDTrace_Wanted()). */
    probe function__entry(const char *filename, const char *funcname,
                          int lineno, const char *modulename);
    probe cfunction__entry(const char *filename, const char *funcname,
                           int lineno, const char *modulename);
    probe line(const char *filename, const char *funcname, int lineno);
    probe function__return(const char *filename, const char *funcname,
                           int lineno, const char *modulename);
    probe cfunction__return(const char *filename, const char *funcname,
                            int lineno, const char *modulename);

    /* A garbage collection of one generation starts; it ends, having found
       this many unreachable objects (collected plus uncollectable). */
    probe gc__start(int generation);
    probe gc__done(long collected);

    /* The import system looks for a module not yet in sys.modules, and
       loads it (found is 1) or does not find it (found is 0). */
    probe import__find__load__start(const char *modulename);
    probe import__find__load__done(const char *modulename, int found);

    /* sys.audit() or PySys_Audit() raises an audit event (Python 3.8+). */
    probe audit(const char *event, void *args);
};

#pragma D attributes Evolving/Evolving/Common provider python provider
#pragma D attributes Private/Private/Common provider python module
#pragma D attributes Private/Private/Common provider python function
#pragma D attributes Evolving/Evolving/Common provider python name
#pragma D attributes Evolving/Evolving/Common provider python args
