/* The static markers of the interpreter (python-systemtap): what the
   interpreter's hooks call, and the state they keep.  The build installs
   this file as Include/internal/pycore_dtrace.h of each CPython 3.13+
   tree; Python/dtrace_markers.c.h holds the code. */

#ifndef Py_INTERNAL_DTRACE_H
#define Py_INTERNAL_DTRACE_H
#ifdef __cplusplus
extern "C" {
#endif

#ifndef Py_BUILD_CORE
#  error "this header requires Py_BUILD_CORE define"
#endif

#ifdef WITH_DTRACE

#include "pydtrace.h"             // PyDTrace_LINE_ENABLED()
#include "pycore_instruments.h"   // PY_MONITORING_SYS_PROFILE_ID
#include "pycore_interp.h"        // PyInterpreterState
#include "pycore_tstate.h"        // _PyThreadStateImpl
#if PY_VERSION_HEX >= 0x030E0000
#  include "pycore_interpframe.h" // _PyFrame_GetBytecode()
#else
#  include "pycore_frame.h"       // _PyFrame_GetCode()
#endif

/* interp->dtrace_profiling: which markers' consumers want the profile
   hooks */
#define _PyDTrace_FUNCTIONS 1   /* function__entry, function__return */
#define _PyDTrace_CFUNCTIONS 2  /* cfunction__entry, cfunction__return */

/* A C call in flight whose CALL instruction only the markers had
   instrumented when a tool came: its end fires the markers alone */
struct _PyDTrace_Call {
    struct _PyInterpreterFrame *frame;
    _Py_CODEUNIT *instr;
};

/* The semaphores of function__entry, cfunction__entry, line and
   function__return, adjacent in that order: probes.d declares them so, and
   the build keeps dtrace -G's definitions in that order
   (-fno-toplevel-reorder).  Read as one (2-byte aligned) 8-byte word. */
typedef uint64_t _PyDTrace_SemaphoreWord __attribute__((aligned(2)));
extern const _PyDTrace_SemaphoreWord _PyDTrace_FrameSemaphores
    __asm__("python_function__entry_semaphore")
    __attribute__((visibility("hidden")));

/* Whether a consumer is attached to the function__entry,
   cfunction__entry, line or function__return marker: one load and one
   branch.  The optimizer's _TIER2_RESUME_CHECK leaves its trace then
   (RESUME_CHECK: _PyDTrace_ResumeStale()), and RESUME turns the markers'
   hooks on (_PyDTrace_Update()). */
static inline int
_PyDTrace_Wanted(void)
{
    return __builtin_expect(_PyDTrace_FrameSemaphores != 0, 0);
}

/* RESUME_CHECK's test: the eval breaker differs from the code's
   instrumentation version (upstream's test), or a consumer is attached
   to one of those four markers.  The semaphores are ORed into the
   compare: no second branch on the path of every generator resumption. */
static inline int
_PyDTrace_ResumeStale(uintptr_t eval_breaker, uintptr_t version)
{
    return __builtin_expect(
        ((eval_breaker ^ version) | _PyDTrace_FrameSemaphores) != 0, 0);
}

/* Turn the markers' hooks on or off as consumers come and go (RESUME,
   the eval breaker).  Returns whether it did. */
extern int _PyDTrace_Update(PyThreadState *tstate);

/* The line marker, from the trace hooks' LINE and JUMP events */
extern void _PyDTrace_Line(PyThreadState *tstate, PyCodeObject *code,
                           int line);

/* An event of instrumentation, before its tools, while this thread has
   calls in flight that only the markers saw begin: the markers take an
   event that only they want (only_markers: the profile tool is the
   instruction's only tool) or that ends such a call.  Returns whether the
   markers take it (_PyDTrace_TakeEvent()). */
extern int _PyDTrace_Take(PyThreadState *tstate, int event,
                          struct _PyInterpreterFrame *frame,
                          _Py_CODEUNIT *instr, int only_markers);

/* The events of the profile tool that the markers take: their marker
   (function or cfunction, entry or return) fires, no hook runs */
#define _PyDTrace_ENTRY_EVENTS \
    ((1u << PY_MONITORING_EVENT_PY_START) | \
     (1u << PY_MONITORING_EVENT_PY_RESUME) | \
     (1u << PY_MONITORING_EVENT_PY_THROW))
#define _PyDTrace_FRAME_EVENTS \
    (_PyDTrace_ENTRY_EVENTS | \
     (1u << PY_MONITORING_EVENT_PY_RETURN) | \
     (1u << PY_MONITORING_EVENT_PY_YIELD) | \
     (1u << PY_MONITORING_EVENT_PY_UNWIND))
#define _PyDTrace_CALL_EVENTS \
    ((1u << PY_MONITORING_EVENT_CALL) | \
     (1u << PY_MONITORING_EVENT_C_RETURN) | \
     (1u << PY_MONITORING_EVENT_C_RAISE))

#define _PyDTrace_EVENTS (_PyDTrace_FRAME_EVENTS | _PyDTrace_CALL_EVENTS)

/* Whether event is one that the markers take */
static inline int
_PyDTrace_IsEvent(int event)
{
    return ((1u << event) & _PyDTrace_EVENTS) != 0;
}

/* The instrumentation's entry points (_Py_call_instrumentation() and the
   like) offer each event to the markers before they make the tools'
   arguments; tools_of is instrumentation.c's get_tools_for_instruction()
   (inlined here).  The markers take the event when they alone turned the
   profile hooks on and no other tool wants it here, or when it ends a
   call only they saw begin.  Returns whether they take it: then the entry
   point returns _PyDTrace_EndEvent() (a tail call), and no tool sees the
   event.  What is decided here is inlined: the entry point of an event of
   the tools calls nothing more. */
static inline int
_PyDTrace_TakeEvent(PyThreadState *tstate, int event,
                    struct _PyInterpreterFrame *frame, _Py_CODEUNIT *instr,
                    uint8_t (*tools_of)(PyCodeObject *, PyInterpreterState *,
                                        int, int))
{
    if (tstate->tracing) {
        return 0;
    }
    int marked = ((_PyThreadStateImpl *)tstate)->dtrace_calls_count != 0;
    PyInterpreterState *interp = tstate->interp;
    if (!marked &&
        (_Py_atomic_load_int_relaxed(&interp->dtrace_profiling) == 0 ||
         _Py_atomic_load_ssize_relaxed(&interp->sys_profiling_threads) != 0)) {
        return 0;
    }
    PyCodeObject *code = _PyFrame_GetCode(frame);
#if PY_VERSION_HEX >= 0x030E0000
    int offset = (int)(instr - _PyFrame_GetBytecode(frame));
#else
    int offset = (int)(instr - _PyCode_CODE(code));
#endif
    int only_markers = tools_of(code, interp, offset, event) ==
                       (1 << PY_MONITORING_SYS_PROFILE_ID);
    if (marked) {
        /* Calls in flight that only the markers saw begin */
        return _PyDTrace_Take(tstate, event, frame, instr, only_markers);
    }
    return only_markers && _PyDTrace_IsEvent(event);
}

/* An entry point's result for an event the markers take: fires its
   marker, the one its profile hook would, without boxing the offset and
   calling the hook; callable and self_arg are a call event's arguments.
   Returns 0. */
extern int _PyDTrace_EndEvent(PyThreadState *tstate, int event,
                              struct _PyInterpreterFrame *frame,
                              PyObject *callable, PyObject *self_arg);

/* The profile tool's events: the profilers' (events), or while no thread
   profiles the markers' own; set them (_PyMonitoring_SetEvents()). */
extern int _PyDTrace_SetProfileEvents(PyInterpreterState *interp,
                                      uint32_t events);

/* Before the instrumentation changes: mark the C calls in flight that
   only the markers instrumented (world stopped) */
extern void _PyDTrace_MarkCalls(PyInterpreterState *interp);

/* A thread state is cleared */
extern void _PyDTrace_ClearThread(PyThreadState *tstate);

#endif /* WITH_DTRACE */

#ifdef __cplusplus
}
#endif
#endif /* !Py_INTERNAL_DTRACE_H */
