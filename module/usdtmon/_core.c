/* usdtmon's core: the markers of the "python" provider (probes.d) on a
 * stock CPython 3.13+, fired from sys.monitoring callbacks that are
 * registered only while a consumer is attached.
 *
 * The markers' semaphores are this module's own: a consumer attaching to
 * a marker of this shared object increments its semaphore here, in every
 * process that maps it (one that maps it later, at its mmap).  A watcher
 * thread of C, which takes the interpreter only when something changed,
 * reads them every interval and registers with sys.monitoring the events
 * whose markers are wanted; with none wanted, no tool id is held and no
 * event is monitored.  The markers' arguments are computed by the same C
 * as the patched interpreters' (markers/dtrace_markers.c.h).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "probes.h"     /* dtrace -h of probes.d, with CPython's PyDTrace_ names */

#include "pydtrace_sites.h"  /* x86-64: libbpf usdt.h's site, nop then nop10 */

static PyObject *dtrace_id___name__;
static PyObject *dtrace_id___module__;
#define DTRACE_ID(NAME) dtrace_id_##NAME

#include "dtrace_markers.c.h"

/* The families of markers, as the Python part names them */
#define FAMILY_FUNCTION  1      /* function__entry, function__return */
#define FAMILY_CFUNCTION 2      /* cfunction__entry, cfunction__return */
#define FAMILY_LINE      4      /* line */
#define FAMILY_GC        8      /* gc__start, gc__done */
#define FAMILY_ALL       15

/* Tool ids no standard tool takes (0 debugger, 1 coverage, 2 profiler,
   5 optimizer), in the order they are tried */
static const int tool_ids[] = {4, 3};

static struct {
    /* Set at import, then only with the interpreter held */
    int allowed;                /* the families this process may fire;
                                   -1: not known yet (resolve) */
    PyObject *resolve;          /* () -> allowed, called once when needed */
    int on;                     /* the families registered now */
    int tool_id;                /* held while on != 0, else -1 */
    int told_no_tool;           /* the user was told no tool id was free */
    int refused;                /* the families wanted when no tool id was
                                   free; the watcher asks again for them
                                   only at retry_ms (backing off) */
    long retry_ms, backoff_ms;
    Py_ssize_t lines_index;     /* dtrace_line()'s co_extra index */
    PyObject *monitoring;       /* sys.monitoring */
    PyObject *disable;          /* sys.monitoring.DISABLE */
    PyObject *missing;          /* sys.monitoring.MISSING */
    PyObject *gc_callbacks;     /* gc.callbacks */
    PyObject *callbacks;        /* {event: callable} */
    PyObject *gc_callback;

    /* The Python frames in flight on the thread that imported usdtmon,
       when its function markers came on there (see seen_return()) */
    _Atomic(PyThreadState *) inflight_thread;  /* NULL once they have all left */
    int inflight;               /* how many have not left yet */
    int nested;                 /* frames entered on top of them since */

    /* The watcher: interval, and its thread, stopped at exit */
    long interval_ms;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int running;
    int stop;
    int finalizing;             /* atexit ran: no more changes */
} st = {.tool_id = -1, .refused = -1, .lock = PTHREAD_MUTEX_INITIALIZER,
        .wake = PTHREAD_COND_INITIALIZER};

static void report(const char *what);

/* The families whose consumers are attached, as the semaphores say */
static int
families_wanted(void)
{
    int wanted = 0;
    if (PyDTrace_FUNCTION_ENTRY_ENABLED() || PyDTrace_FUNCTION_RETURN_ENABLED()) {
        wanted |= FAMILY_FUNCTION;
    }
    if (PyDTrace_CFUNCTION_ENTRY_ENABLED() || PyDTrace_CFUNCTION_RETURN_ENABLED()) {
        wanted |= FAMILY_CFUNCTION;
    }
    if (PyDTrace_LINE_ENABLED()) {
        wanted |= FAMILY_LINE;
    }
    if (PyDTrace_GC_START_ENABLED() || PyDTrace_GC_DONE_ENABLED()) {
        wanted |= FAMILY_GC;
    }
    return st.allowed < 0 ? wanted : wanted & st.allowed;
}

/* Which families may fire: asked of the Python part the first time a
   consumer is seen (reading the interpreter's notes costs more than the
   rest of the import).  Never raises. */
static int
allowed_families(void)
{
    if (st.allowed >= 0) {
        return st.allowed;
    }
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *result = PyObject_CallNoArgs(st.resolve);
    int allowed = result != NULL ? PyLong_AsInt(result) : -1;
    Py_XDECREF(result);
    if (allowed < 0) {
        report("cannot tell which markers the interpreter fires itself: none fire here");
        allowed = 0;
    }
    st.allowed = allowed & FAMILY_ALL;
    Py_CLEAR(st.resolve);
    PyErr_SetRaisedException(exc);
    return st.allowed;
}


/* --- The callbacks ---------------------------------------------------- */

/* A callback's int argument (an offset, a line), or -1 if it is not an
   int from 0 to INT_MAX.  sys.monitoring passes exact ints: read a
   compact one inline, as PyLong_AsInt's call and checks cost as much as
   a fifth of a marker's work. */
static inline int
int_arg(PyObject *arg)
{
    if (PyLong_CheckExact(arg) && PyUnstable_Long_IsCompact((PyLongObject *)arg)) {
        Py_ssize_t value = PyUnstable_Long_CompactValue((PyLongObject *)arg);
        return value >= 0 && value <= INT_MAX ? (int)value : -1;
    }
    PyObject *exc = PyErr_GetRaisedException();
    int value = PyLong_Check(arg) ? PyLong_AsInt(arg) : -1;
    PyErr_SetRaisedException(exc);
    return value < 0 ? -1 : value;
}

/* An offset in bytes (a callback's argument) in code units, or -1 */
static int
code_units(PyObject *offset)
{
    int bytes = int_arg(offset);
    return bytes < 0 ? -1 : bytes / DTRACE_CODEUNIT_SIZE;
}

static void
fire_function(int entry, PyObject *code, int offset)
{
    if (!PyCode_Check(code) || offset < 0) {
        return;
    }
    PyObject *globals = PyEval_GetFrameGlobals();
    dtrace_function(entry, (PyCodeObject *)code, offset, globals,
                    &st.lines_index);
    Py_XDECREF(globals);
}

/* The frames in flight when usdtmon's import turned the function
   markers on (runpy's and the import system's under -m usdtmon, the
   importer's otherwise) were entered unseen: their returns do not fire,
   so that a program started under a consumer is seen from its first frame,
   balanced, as on an interpreter with markers of its own.  They are
   counted on the importing thread alone: the frames entered on top of
   them since, and those of them that have not left. */
static inline int
on_inflight_thread(void)
{
    PyThreadState *thread = atomic_load_explicit(&st.inflight_thread,
                                                 memory_order_relaxed);
    /* A thread-local read; PyThread_get_thread_ident() is two calls */
    return thread != NULL && thread == PyThreadState_GetUnchecked();
}

static void
seen_entry(void)
{
    if (on_inflight_thread()) {
        st.nested++;
    }
}

/* Whether a return fires: not that of a frame in flight */
static int
seen_return(void)
{
    if (!on_inflight_thread()) {
        return 1;
    }
    if (st.nested > 0) {
        st.nested--;
        return 1;
    }
    if (--st.inflight == 0) {
        atomic_store_explicit(&st.inflight_thread, NULL, memory_order_relaxed);
    }
    return 0;
}

/* PY_START, PY_RESUME, PY_THROW (code, offset, ...) */
static PyObject *
on_function_entry(PyObject *self, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    seen_entry();
    if (PyDTrace_FUNCTION_ENTRY_ENABLED() && nargs >= 2) {
        fire_function(1, args[0], code_units(args[1]));
    }
    Py_RETURN_NONE;
}

/* PY_RETURN, PY_YIELD (code, offset, value) */
static PyObject *
on_function_return(PyObject *self, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (seen_return() && PyDTrace_FUNCTION_RETURN_ENABLED() && nargs >= 2) {
        fire_function(0, args[0], code_units(args[1]));
    }
    Py_RETURN_NONE;
}

/* PY_UNWIND (code, offset, exception): at the frame's own instruction, as
   the profile hooks see it (the event's offset may be another) */
static PyObject *
on_function_unwind(PyObject *self, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (seen_return() && PyDTrace_FUNCTION_RETURN_ENABLED() && nargs >= 2) {
        struct _PyInterpreterFrame *frame = PyThreadState_Get()->current_frame;
        int offset = frame == NULL ? code_units(args[1]) :
            PyUnstable_InterpreterFrame_GetLasti(frame) / DTRACE_CODEUNIT_SIZE;
        fire_function(0, args[0], offset);
    }
    Py_RETURN_NONE;
}

static void
fire_cfunction(int entry, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 4 || !PyCode_Check(args[0])) {
        return;
    }
    PyObject *self_arg = args[3] == st.missing ? NULL : args[3];
    struct dtrace_cfunction f;
    if (!dtrace_cfunction_of(args[2], self_arg, &f)) {
        return;
    }
    int offset = code_units(args[1]);
    if (offset >= 0) {
        dtrace_cfunction(entry, &f, (PyCodeObject *)args[0], offset,
                         &st.lines_index);
    }
}

/* CALL (code, offset, callable, arg0) */
static PyObject *
on_call(PyObject *self, PyObject *const *args, size_t nargsf,
        PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (PyDTrace_CFUNCTION_ENTRY_ENABLED()) {
        fire_cfunction(1, args, nargs);
    }
    Py_RETURN_NONE;
}

/* C_RETURN, C_RAISE (code, offset, callable, arg0) */
static PyObject *
on_call_end(PyObject *self, PyObject *const *args, size_t nargsf,
            PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (PyDTrace_CFUNCTION_RETURN_ENABLED()) {
        fire_cfunction(0, args, nargs);
    }
    Py_RETURN_NONE;
}

/* LINE (code, line) */
static PyObject *
on_line(PyObject *self, PyObject *const *args, size_t nargsf,
        PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (PyDTrace_LINE_ENABLED() && nargs >= 2 && PyCode_Check(args[0])) {
        int line = int_arg(args[1]);
        if (line >= 0) {
            dtrace_line_marker((PyCodeObject *)args[0], line);
        }
    }
    Py_RETURN_NONE;
}

/* JUMP (code, from, to): a backward jump within a line starts the line
   again, as sys.settrace reports it; any other jump never will */
static PyObject *
on_jump(PyObject *self, PyObject *const *args, size_t nargsf,
        PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 3 || !PyCode_Check(args[0])) {
        Py_RETURN_NONE;
    }
    PyCodeObject *code = (PyCodeObject *)args[0];
    int from = code_units(args[1]);
    int to = code_units(args[2]);
    if (from < 0 || to < 0 || to > from) {
        return Py_NewRef(st.disable);
    }
    PyObject *exc = PyErr_GetRaisedException();
    int to_line = dtrace_line(&st.lines_index, code, to);
    int from_line = dtrace_line(&st.lines_index, code, from);
    PyErr_SetRaisedException(exc);
    if (to_line != from_line) {
        return Py_NewRef(st.disable);
    }
    if (PyDTrace_LINE_ENABLED()) {
        dtrace_line_marker(code, to_line);
    }
    Py_RETURN_NONE;
}

/* gc.callbacks: (phase, info) */
static PyObject *
on_gc(PyObject *self, PyObject *const *args, size_t nargsf,
      PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 2 || !PyUnicode_Check(args[0]) || !PyDict_Check(args[1])) {
        Py_RETURN_NONE;
    }
    PyObject *exc = PyErr_GetRaisedException();
    if (PyUnicode_CompareWithASCIIString(args[0], "start") == 0) {
        if (PyDTrace_GC_START_ENABLED()) {
            PyObject *generation;
            if (PyDict_GetItemStringRef(args[1], "generation", &generation) > 0) {
                PyDTrace_GC_START(PyLong_AsInt(generation));
                Py_DECREF(generation);
            }
        }
    }
    else if (PyDTrace_GC_DONE_ENABLED()) {
        PyObject *collected, *uncollectable;
        Py_ssize_t n = 0;
        if (PyDict_GetItemStringRef(args[1], "collected", &collected) > 0) {
            n += PyLong_AsSsize_t(collected);
            Py_DECREF(collected);
        }
        if (PyDict_GetItemStringRef(args[1], "uncollectable", &uncollectable) > 0) {
            n += PyLong_AsSsize_t(uncollectable);
            Py_DECREF(uncollectable);
        }
        PyDTrace_GC_DONE(n);
    }
    PyErr_SetRaisedException(exc);
    Py_RETURN_NONE;
}

/* The callbacks' type.  sys.monitoring calls a callback through its
   vectorcall slot: a callable of this type is its C function, where a
   builtin function's slot adds its own dispatch and a recursion check,
   a tenth of a line marker's work. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    const char *name;
} callback_object;

static PyObject *
callback_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<usdtmon callback %s>",
                                ((callback_object *)self)->name);
}

static void
callback_dealloc(PyObject *self)
{
    PyObject_Free(self);
}

static PyTypeObject callback_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "usdtmon._core.Callback",
    .tp_basicsize = sizeof(callback_object),
    .tp_dealloc = callback_dealloc,
    .tp_vectorcall_offset = offsetof(callback_object, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_repr = callback_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A sys.monitoring or gc callback of usdtmon",
};

static const struct {
    const char *name;
    vectorcallfunc func;
} callback_defs[] = {
    {"function_entry", on_function_entry},
    {"function_return", on_function_return},
    {"function_unwind", on_function_unwind},
    {"call", on_call},
    {"call_end", on_call_end},
    {"line", on_line},
    {"jump", on_jump},
    {"gc", on_gc},
};

/* Which callback takes which event, for which family */
static const struct {
    int event;
    int family;
    const char *callback;
} event_defs[] = {
    {PY_MONITORING_EVENT_PY_START, FAMILY_FUNCTION, "function_entry"},
    {PY_MONITORING_EVENT_PY_RESUME, FAMILY_FUNCTION, "function_entry"},
    {PY_MONITORING_EVENT_PY_THROW, FAMILY_FUNCTION, "function_entry"},
    {PY_MONITORING_EVENT_PY_RETURN, FAMILY_FUNCTION, "function_return"},
    {PY_MONITORING_EVENT_PY_YIELD, FAMILY_FUNCTION, "function_return"},
    {PY_MONITORING_EVENT_PY_UNWIND, FAMILY_FUNCTION, "function_unwind"},
    {PY_MONITORING_EVENT_CALL, FAMILY_CFUNCTION, "call"},
    {PY_MONITORING_EVENT_C_RETURN, FAMILY_CFUNCTION, "call_end"},
    {PY_MONITORING_EVENT_C_RAISE, FAMILY_CFUNCTION, "call_end"},
    {PY_MONITORING_EVENT_LINE, FAMILY_LINE, "line"},
    {PY_MONITORING_EVENT_JUMP, FAMILY_LINE, "jump"},
};
#define N_EVENTS (int)(sizeof(event_defs) / sizeof(event_defs[0]))


/* --- Registration, with the interpreter held ---------------------------- */

static long
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void
report(const char *what)
{
    /* Seen by the user, never by the program: stderr, and no exception */
    PyObject *exc = PyErr_GetRaisedException();
    fprintf(stderr, "usdtmon: %s", what);
    if (exc != NULL) {
        PyObject *text = PyObject_Str(exc);
        const char *s = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
        fprintf(stderr, ": %s", s != NULL ? s : "(unprintable error)");
        Py_XDECREF(text);
        PyErr_Clear();
    }
    fprintf(stderr, "\n");
    Py_XDECREF(exc);
}

static int
call_monitoring(const char *method, const char *format, ...)
{
    va_list va;
    va_start(va, format);
    PyObject *callable = PyObject_GetAttrString(st.monitoring, method);
    PyObject *args = callable != NULL ? Py_VaBuildValue(format, va) : NULL;
    va_end(va);
    PyObject *result = args != NULL ? PyObject_CallObject(callable, args) : NULL;
    Py_XDECREF(callable);
    Py_XDECREF(args);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

static int
claim_tool_id(void)
{
    for (size_t i = 0; i < sizeof(tool_ids) / sizeof(tool_ids[0]); i++) {
        if (call_monitoring("use_tool_id", "(is)", tool_ids[i], "usdtmon") == 0) {
            return tool_ids[i];
        }
        PyErr_Clear();
    }
    return -1;
}

/* Register the callbacks and events of the families wanted, and only
   those; with none, give the tool id back.  Never raises. */
static void
apply(int wanted)
{
    if (wanted != 0) {
        wanted &= allowed_families();
    }
    PyObject *exc = PyErr_GetRaisedException();
    int monitored = FAMILY_FUNCTION | FAMILY_CFUNCTION | FAMILY_LINE;
    if ((wanted & monitored) != (st.on & monitored)) {
        if ((wanted & monitored) && st.tool_id < 0) {
            st.tool_id = claim_tool_id();
            if (st.tool_id < 0) {
                if (!st.told_no_tool) {
                    report("no sys.monitoring tool id is free (3 and 4 are taken): "
                           "the function, cfunction and line markers do not fire");
                    st.told_no_tool = 1;
                }
                /* Ask again after 1 s, then 2, 4 ... 32 s: not at every
                   look of the watcher, which would take the interpreter */
                st.backoff_ms = st.backoff_ms ? Py_MIN(st.backoff_ms * 2, 32000) : 1000;
                st.retry_ms = now_ms() + st.backoff_ms;
                st.refused = wanted;
                wanted &= ~monitored;
            }
            else {
                st.backoff_ms = 0;
                st.refused = -1;
            }
        }
        if (st.tool_id >= 0) {
            int events = 0;
            for (int i = 0; i < N_EVENTS; i++) {
                int on = (wanted & event_defs[i].family) != 0;
                PyObject *callback = on ? PyDict_GetItemString(
                    st.callbacks, event_defs[i].callback) : Py_None;
                if (call_monitoring("register_callback", "(iiO)", st.tool_id,
                                    1 << event_defs[i].event, callback) < 0) {
                    report("cannot register a sys.monitoring callback");
                }
                /* C_RETURN and C_RAISE come with CALL */
                if (on && event_defs[i].event != PY_MONITORING_EVENT_C_RETURN &&
                    event_defs[i].event != PY_MONITORING_EVENT_C_RAISE) {
                    events |= 1 << event_defs[i].event;
                }
            }
            if (call_monitoring("set_events", "(ii)", st.tool_id, events) < 0) {
                report("cannot set the sys.monitoring events");
            }
            if (!(wanted & monitored)) {
                if (call_monitoring("free_tool_id", "(i)", st.tool_id) < 0) {
                    report("cannot free the sys.monitoring tool id");
                }
                st.tool_id = -1;
            }
        }
    }
    if ((wanted & FAMILY_GC) != (st.on & FAMILY_GC) && st.gc_callbacks != NULL) {
        if (wanted & FAMILY_GC) {
            if (PyList_Append(st.gc_callbacks, st.gc_callback) < 0) {
                report("cannot add a gc callback");
                wanted &= ~FAMILY_GC;
            }
        }
        else {
            PyObject *r = PyObject_CallMethod(st.gc_callbacks, "remove", "O",
                                              st.gc_callback);
            if (r == NULL) {
                PyErr_Clear();  /* the program removed it itself */
            }
            Py_XDECREF(r);
        }
    }
    if (!(wanted & FAMILY_FUNCTION)) {
        /* Only the import's frames are left unseen (seen_return()) */
        atomic_store_explicit(&st.inflight_thread, NULL, memory_order_relaxed);
    }
    st.on = wanted;
    PyErr_SetRaisedException(exc);
}


/* --- The watcher --------------------------------------------------------- */

static void *
watch(void *unused)
{
    pthread_mutex_lock(&st.lock);
    while (!st.stop) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += st.interval_ms / 1000;
        deadline.tv_nsec += (st.interval_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (!st.stop && rc != ETIMEDOUT) {
            rc = pthread_cond_timedwait(&st.wake, &st.lock, &deadline);
        }
        if (st.stop) {
            break;
        }
        /* st.on and st.refused change only with the interpreter held; a
           stale read here costs one more look below */
        int wanted = families_wanted();
        if (wanted == st.on || (wanted == st.refused && now_ms() < st.retry_ms)) {
            continue;
        }
        pthread_mutex_unlock(&st.lock);
        PyGILState_STATE gil = PyGILState_Ensure();
        if (!st.finalizing) {
            apply(families_wanted());
        }
        PyGILState_Release(gil);
        pthread_mutex_lock(&st.lock);
    }
    st.running = 0;
    pthread_mutex_unlock(&st.lock);
    return NULL;
}

static int
start_watcher(void)
{
    if (st.running) {
        return 0;
    }
    st.stop = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = pthread_create(&st.thread, &attr, watch, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    st.running = 1;
    return 0;
}

/* Stop the watcher thread, with the interpreter held */
static void
stop_watcher(void)
{
    if (!st.running) {
        return;
    }
    pthread_mutex_lock(&st.lock);
    st.stop = 1;
    pthread_cond_signal(&st.wake);
    pthread_mutex_unlock(&st.lock);
    /* The watcher may wait for the interpreter: let it go */
    Py_BEGIN_ALLOW_THREADS
    pthread_join(st.thread, NULL);
    Py_END_ALLOW_THREADS
    st.running = 0;
}

/* atexit: stop the watcher before the interpreter finalizes, and leave
   sys.monitoring as it was */
static PyObject *
stop(PyObject *self, PyObject *unused)
{
    st.finalizing = 1;
    stop_watcher();
    apply(0);
    Py_RETURN_NONE;
}

/* os.register_at_fork(before=...): no watcher thread at a fork, so that
   os.fork() counts the program's own threads alone (its warning about
   forking a multi-threaded process), and no lock is held by it */
static PyObject *
before_fork(PyObject *self, PyObject *unused)
{
    stop_watcher();
    Py_RETURN_NONE;
}

static void
restart_watcher(const char *where)
{
    if (st.finalizing) {
        return;
    }
    apply(families_wanted());
    if (start_watcher() < 0) {
        PyErr_Clear();
        report(where);
    }
}

/* os.register_at_fork(after_in_parent=...) */
static PyObject *
after_fork_parent(PyObject *self, PyObject *unused)
{
    restart_watcher("cannot start the watcher again after a fork");
    Py_RETURN_NONE;
}

/* os.register_at_fork(after_in_child=...): the child looks at its own
   semaphores, with a watcher of its own */
static PyObject *
after_fork_child(PyObject *self, PyObject *unused)
{
    restart_watcher("cannot start the watcher in a forked child");
    Py_RETURN_NONE;
}

/* start(families, interval_ms): fire the markers of these families (an
   int, or a callable that returns it, called once a consumer is seen),
   look at the semaphores now and every interval_ms from now on */
static PyObject *
start(PyObject *self, PyObject *args)
{
    PyObject *families;
    long interval_ms;
    if (!PyArg_ParseTuple(args, "Ol", &families, &interval_ms)) {
        return NULL;
    }
    if (interval_ms < 1) {
        PyErr_SetString(PyExc_ValueError, "the interval must be at least 1 ms");
        return NULL;
    }
    if (PyCallable_Check(families)) {
        st.allowed = -1;
        Py_XSETREF(st.resolve, Py_NewRef(families));
    }
    else {
        int allowed = PyLong_AsInt(families);
        if (allowed == -1 && PyErr_Occurred()) {
            return NULL;
        }
        st.allowed = allowed & FAMILY_ALL;
    }
    st.interval_ms = interval_ms;
    /* The frames in flight here, should the function markers come on now */
    int inflight = 0;
    PyFrameObject *frame = (PyFrameObject *)Py_XNewRef(PyEval_GetFrame());
    while (frame != NULL) {
        inflight++;
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    st.inflight = inflight;
    st.nested = 0;
    if (inflight > 0) {
        atomic_store_explicit(&st.inflight_thread, PyThreadState_Get(),
                              memory_order_relaxed);
    }
    apply(families_wanted());
    if (start_watcher() < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* state(): (families allowed, families on, tool id, watching) */
static PyObject *
state(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("(iiii)", allowed_families(), st.on, st.tool_id, st.running);
}

static PyMethodDef module_methods[] = {
    {"start", start, METH_VARARGS,
     "start(families, interval_ms): fire the markers of these families"},
    {"stop", stop, METH_NOARGS, "stop watching and monitoring (atexit)"},
    {"before_fork", before_fork, METH_NOARGS, "stop watching for a fork"},
    {"after_fork_parent", after_fork_parent, METH_NOARGS, "watch again after a fork"},
    {"after_fork_child", after_fork_child, METH_NOARGS, "watch in a forked child"},
    {"state", state, METH_NOARGS,
     "(families allowed, families on, tool id, watching)"},
    {NULL}
};

static int
exec_module(PyObject *module)
{
    if (st.monitoring != NULL) {
        PyErr_SetString(PyExc_ImportError, "usdtmon._core is loaded once per process");
        return -1;
    }
    dtrace_id___name__ = PyUnicode_InternFromString("__name__");
    dtrace_id___module__ = PyUnicode_InternFromString("__module__");
    if (dtrace_id___name__ == NULL || dtrace_id___module__ == NULL) {
        return -1;
    }
    PyObject *sys = PyImport_ImportModule("sys");
    if (sys == NULL) {
        return -1;
    }
    st.monitoring = PyObject_GetAttrString(sys, "monitoring");
    Py_DECREF(sys);
    if (st.monitoring == NULL) {
        return -1;
    }
    st.disable = PyObject_GetAttrString(st.monitoring, "DISABLE");
    st.missing = PyObject_GetAttrString(st.monitoring, "MISSING");
    if (st.disable == NULL || st.missing == NULL) {
        return -1;
    }
    PyObject *gc = PyImport_ImportModule("gc");
    if (gc == NULL) {
        return -1;
    }
    st.gc_callbacks = PyObject_GetAttrString(gc, "callbacks");
    Py_DECREF(gc);
    if (st.gc_callbacks == NULL) {
        return -1;
    }
    st.callbacks = PyDict_New();
    if (st.callbacks == NULL) {
        return -1;
    }
    if (PyType_Ready(&callback_type) < 0) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(callback_defs) / sizeof(callback_defs[0]); i++) {
        callback_object *f = PyObject_New(callback_object, &callback_type);
        if (f == NULL) {
            return -1;
        }
        f->vectorcall = callback_defs[i].func;
        f->name = callback_defs[i].name;
        int err = PyDict_SetItemString(st.callbacks, f->name, (PyObject *)f);
        Py_DECREF(f);
        if (err < 0) {
            return -1;
        }
    }
    st.gc_callback = PyDict_GetItemString(st.callbacks, "gc");
    Py_INCREF(st.gc_callback);
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, exec_module},
    /* One watcher and one tool id per process: the main interpreter's */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL}
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "usdtmon._core",
    .m_doc = "The markers of the python provider from sys.monitoring.",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&module_def);
}
