/* The static markers of the "python" provider (python-systemtap's
 * probes.d): the C that fires them, in one copy.
 *
 * Two includers:
 *
 * - CPython 3.13+ with python-systemtap's patches: the build installs this
 *   file as Python/dtrace_markers.c.h, and Python/legacy_tracing.c includes
 *   it (Py_BUILD_CORE, WITH_DTRACE).  Everything below is used there.
 *
 * - A module that fires the same markers from sys.monitoring callbacks
 *   (no Py_BUILD_CORE): only the first part, the markers' arguments, on
 *   the public and unstable C API.  It defines, before including this file,
 *   the PyDTrace_* macros of its own header made from probes.d, and
 *   DTRACE_ID(NAME), a str "NAME" that lives as long as the interpreter.
 *
 * The helpers never raise and leave any exception being propagated as it
 * was: a name that is not available as a C string is passed as NULL.
 */

#ifdef Py_BUILD_CORE
#  include "pycore_code.h"        // _PyCoMonitoringData
#  include "pycore_dict.h"        // DK_UNICODE_ENTRIES()
#  include "pycore_dtrace.h"      // PyDTrace_LINE(), _PyDTrace_Update()
#  include "pycore_pyerrors.h"    // _PyErr_GetRaisedException()
#  include "pycore_pystate.h"     // HEAD_LOCK()
#  include "pycore_runtime.h"     // _Py_ID()
#  if PY_VERSION_HEX >= 0x030E0000
#    include "pycore_interpframe.h" // _PyFrame_GetBytecode()
#  else
#    include "pycore_frame.h"     // _PyFrame_GetCode()
#  endif
#  define DTRACE_ID(NAME) (&_Py_ID(NAME))
#endif

/* The bytes of a code unit: offsets in code units times this are the
   bytes offsets of the C API (sizeof(_Py_CODEUNIT), an internal type) */
#ifdef Py_BUILD_CORE
#  define DTRACE_CODEUNIT_SIZE ((int)sizeof(_Py_CODEUNIT))
#else
#  define DTRACE_CODEUNIT_SIZE 2
#endif

#include <string.h>               // memcpy(), strrchr()


/* --- The markers' arguments ----------------------------------------- */

/* The bytes of a str that is all ASCII and compact (as nearly every str
   is: interned names always), as they are, or NULL: what dtrace_string()
   gives without a call that could raise. */
static inline const char *
dtrace_ascii(PyObject *o)
{
    if (o == NULL || !PyUnicode_Check(o) || !PyUnicode_IS_COMPACT_ASCII(o)) {
        return NULL;
    }
    return (const char *)((PyASCIIObject *)o + 1);
}

/* The same for a name of a code object, a str (the code constructor's
   checks): no test of its type */
static inline const char *
dtrace_code_ascii(PyObject *name)
{
    assert(PyUnicode_Check(name));
    if (!PyUnicode_IS_COMPACT_ASCII(name)) {
        return NULL;
    }
    return (const char *)((PyASCIIObject *)name + 1);
}

/* The UTF-8 bytes of a str, or NULL.  Valid as long as the object is. */
static inline const char *
dtrace_string(PyObject *o)
{
    const char *ascii = dtrace_ascii(o);
    if (ascii != NULL || o == NULL || !PyUnicode_Check(o)) {
        return ascii;
    }
    /* May raise (lone surrogates); the caller restores the error state */
    return PyUnicode_AsUTF8(o);
}

/* The line marker: line of code.  Names that are ASCII, as nearly all
   are, need no encoding, so nothing can raise and the error state needs
   no saving. */
static inline void
dtrace_line_marker(PyCodeObject *code, int line)
{
    PyObject *filename = code->co_filename, *funcname = code->co_name;
    /* One test of both (&, not &&): the marker of every line */
    if (PyUnicode_IS_COMPACT_ASCII(filename) &
        PyUnicode_IS_COMPACT_ASCII(funcname)) {
        PyDTrace_LINE((const char *)((PyASCIIObject *)filename + 1),
                      (const char *)((PyASCIIObject *)funcname + 1), line);
        return;
    }
    PyObject *exc = PyErr_GetRaisedException();
    PyDTrace_LINE(dtrace_string(code->co_filename),
                  dtrace_string(code->co_name), line);
    PyErr_SetRaisedException(exc);
}

/* The __name__ of a module's dict where module_init_dict() puts it, its
   first entry, read in place as LOAD_GLOBAL's specializations read a
   global (a dict has a key once, so it is what a lookup would find); a
   strong reference, or NULL: then only a lookup can tell.  Never raises.
   A module reads the first entry with PyDict_Next(), which needs the
   dict's lock on a free-threaded build: not there. */
static inline PyObject *
dtrace_first_name(PyObject *globals)
{
#if !defined(Py_BUILD_CORE) && !defined(Py_GIL_DISABLED)
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    if (globals == NULL || !PyDict_Check(globals) ||
        !PyDict_Next(globals, &pos, &key, &value) ||
        key != DTRACE_ID(__name__)) {
        return NULL;
    }
    return Py_NewRef(value);
#elif defined(Py_BUILD_CORE) && !defined(Py_GIL_DISABLED)
    if (globals == NULL || !PyDict_Check(globals)) {
        return NULL;
    }
    PyDictObject *dict = (PyDictObject *)globals;
    PyDictKeysObject *keys = dict->ma_keys;
    if (dict->ma_values != NULL || !DK_IS_UNICODE(keys) ||
        keys->dk_nentries == 0) {
        return NULL;
    }
    PyDictUnicodeEntry *first = DK_UNICODE_ENTRIES(keys);
    if (first->me_key != DTRACE_ID(__name__) || first->me_value == NULL) {
        return NULL;
    }
    return Py_NewRef(first->me_value);
#else
    (void)globals;
    return NULL;
#endif
}

/* The __name__ of a frame's globals: the module of its code (not the
   function's __module__, which functools.wraps copies from the function
   it wraps).  *ref holds a strong reference to it, or NULL. */
static const char *
dtrace_module_name(PyObject *globals, PyObject **ref)
{
    *ref = dtrace_first_name(globals);
    if (*ref != NULL) {
        return dtrace_string(*ref);
    }
    if (globals == NULL || !PyDict_Check(globals) ||
        PyDict_GetItemRef(globals, DTRACE_ID(__name__), ref) <= 0) {
        return NULL;
    }
    return dtrace_string(*ref);
}

/* Static types whose tp_name has no dot, whose module is "builtins"
   (list, dict, str...), whose C methods are most of those a program
   calls: a direct-mapped cache, so that their calls need no strrchr().
   A static type lives as long as the process; any thread reads and
   writes an entry, whole (relaxed atomics). */
#define DTRACE_BUILTIN_TYPES 16
static PyTypeObject *dtrace_builtin_types[DTRACE_BUILTIN_TYPES];

static inline PyTypeObject **
dtrace_builtin_slot(PyTypeObject *type)
{
    /* Fibonacci hashing: the top 4 bits of the address times 2**64/phi */
    uint64_t h = (uint64_t)(uintptr_t)type * UINT64_C(0x9E3779B97F4A7C15);
    return &dtrace_builtin_types[h >> 60];
}

/* Whether the cache has type */
static inline int
dtrace_builtin_type(PyTypeObject *type)
{
    return __atomic_load_n(dtrace_builtin_slot(type), __ATOMIC_RELAXED) == type;
}

/* The module of a static type: the part of tp_name before its last dot,
   copied into buf */
static const char *
dtrace_static_type_module(PyTypeObject *type, char *buf, size_t size)
{
    const char *dot = strrchr(type->tp_name, '.');
    if (dot == NULL) {
        __atomic_store_n(dtrace_builtin_slot(type), type, __ATOMIC_RELAXED);
        return "builtins";
    }
    size_t n = (size_t)(dot - type->tp_name);
    if (n >= size) {
        n = size - 1;
    }
    memcpy(buf, type->tp_name, n);
    buf[n] = '\0';
    return buf;
}

/* The module a type reports as its __module__: for a heap type, its
   dict's __module__ (a strong reference in *ref); for a static type,
   dtrace_static_type_module(). */
static const char *
dtrace_type_module(PyTypeObject *type, char *buf, size_t size,
                   PyObject **ref)
{
    *ref = NULL;
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        return dtrace_static_type_module(type, buf, size);
    }
    PyObject *dict = type->tp_dict;
    if (dict == NULL ||
        PyDict_GetItemRef(dict, DTRACE_ID(__module__), ref) <= 0) {
        return NULL;
    }
    return dtrace_string(*ref);
}

/* The line of the code unit at offset in code, as frame.f_lineno gives it
 * (PyCode_Addr2Line()).  That scans the line table from its start: on
 * every return from a long function, or C call in one, more work than the
 * rest of the event.  So each code object that fires a marker gets the
 * line of each of its code units, computed in one pass the first time:
 * four bytes per code unit, as much as instrumentation's own tables.  The
 * interpreter keeps that table with them (_PyCoMonitoringData, freed with
 * them; a code object that fires a marker is instrumented); a module
 * keeps it in co_extra, at the index of which *lines_index holds 1 + (0:
 * none requested yet, -1: none available).  The free-threaded build
 * computes each line every time: neither place is thread-safe there. */
#ifndef Py_GIL_DISABLED
/* lines[i] for each code unit i of code (n of them), -1 where none */
static int
dtrace_fill_lines(PyCodeObject *code, int *lines, int n)
{
#ifdef Py_BUILD_CORE
    PyCodeAddressRange range;
    _PyCode_InitAddressRange(code, &range);
    for (int i = 0; i < n; i++) {
        lines[i] = _PyCode_CheckLineNumber(i * DTRACE_CODEUNIT_SIZE,
                                           &range);
    }
    return 0;
#else
    for (int i = 0; i < n; i++) {
        lines[i] = -1;
    }
    PyObject *ranges = PyObject_CallMethod((PyObject *)code, "co_lines",
                                           NULL);
    if (ranges == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(ranges)) != NULL) {
        int start, end, line = -1;
        PyObject *line_obj;
        int ok = PyArg_ParseTuple(item, "iiO", &start, &end, &line_obj);
        Py_DECREF(item);
        if (!ok) {
            break;
        }
        if (line_obj != Py_None) {
            line = PyLong_AsInt(line_obj);
        }
        for (int i = start / DTRACE_CODEUNIT_SIZE;
             i >= 0 && i < n && i < end / DTRACE_CODEUNIT_SIZE; i++) {
            lines[i] = line;
        }
    }
    Py_DECREF(ranges);
    return PyErr_Occurred() ? -1 : 0;
#endif
}

/* code's line table, or NULL: none made yet, or none can be kept */
static inline int *
dtrace_lines_of(PyCodeObject *code, const Py_ssize_t *lines_index)
{
#ifdef Py_BUILD_CORE
    (void)lines_index;
    _PyCoMonitoringData *data = code->_co_monitoring;
    return data != NULL ? data->dtrace_lines : NULL;
#else
    void *lines = NULL;
    if (*lines_index > 0) {
        (void)PyUnstable_Code_GetExtra((PyObject *)code, *lines_index - 1,
                                       &lines);
    }
    return (int *)lines;
#endif
}

/* Whether code can keep a line table */
static inline int
dtrace_lines_keepable(PyCodeObject *code, const Py_ssize_t *lines_index)
{
#ifdef Py_BUILD_CORE
    (void)lines_index;
    return code->_co_monitoring != NULL;
#else
    (void)code;
    return *lines_index >= 0;
#endif
}

/* Make code's line table and keep it.  May raise: the caller restores the
   error state. */
static int *
dtrace_make_lines(PyCodeObject *code, Py_ssize_t *lines_index)
{
#ifndef Py_BUILD_CORE
    if (*lines_index == 0) {
        Py_ssize_t i = PyUnstable_Eval_RequestCodeExtraIndex(PyMem_Free);
        *lines_index = i < 0 ? -1 : i + 1;
    }
    if (*lines_index < 0) {
        return NULL;
    }
#endif
    int n = (int)Py_SIZE(code);
    int *lines = PyMem_Malloc(n * sizeof(int));
    if (lines == NULL) {
        return NULL;
    }
    if (dtrace_fill_lines(code, lines, n) < 0) {
        PyMem_Free(lines);
        return NULL;
    }
#ifdef Py_BUILD_CORE
    code->_co_monitoring->dtrace_lines = lines;
#else
    if (PyUnstable_Code_SetExtra((PyObject *)code, *lines_index - 1,
                                 lines) < 0) {
        PyMem_Free(lines);
        return NULL;
    }
#endif
    return lines;
}
#endif

/* Whether code keeps a line per instruction (LINE events instrumented):
   PyCode_Addr2Line() reads that then, without a scan */
static inline int
dtrace_lines_instrumented(PyCodeObject *code)
{
#ifdef Py_BUILD_CORE
    return code->_co_monitoring != NULL && code->_co_monitoring->lines != NULL;
#else
    (void)code;
    return 0;
#endif
}

#define DTRACE_LINE_UNKNOWN (-2)

/* The line of the code unit at offset in code from its line table, or
   DTRACE_LINE_UNKNOWN if it has none (yet): the fast paths' lookup, which
   calls nothing, so that they need no stack frame */
static inline int
dtrace_line_table(const Py_ssize_t *lines_index, PyCodeObject *code,
                  int offset)
{
#ifndef Py_GIL_DISABLED
    if (offset >= 0 && offset < Py_SIZE(code)) {
        int *lines = dtrace_lines_of(code, lines_index);
        if (lines != NULL) {
            return lines[offset];
        }
    }
#else
    (void)lines_index;
    (void)code;
    (void)offset;
#endif
    return DTRACE_LINE_UNKNOWN;
}

/* The line of the code unit at offset in code when telling it cannot
   raise: the code's line table is made, or none is to be made.  Otherwise
   DTRACE_LINE_UNKNOWN: then dtrace_line() makes the table. */
static inline int
dtrace_line_known(const Py_ssize_t *lines_index, PyCodeObject *code,
                  int offset)
{
    int line = dtrace_line_table(lines_index, code, offset);
    if (line != DTRACE_LINE_UNKNOWN) {
        return line;
    }
#ifndef Py_GIL_DISABLED
    if (offset >= 0 && offset < Py_SIZE(code) &&
        dtrace_lines_keepable(code, lines_index) &&
        !dtrace_lines_instrumented(code)) {
        return DTRACE_LINE_UNKNOWN;
    }
#endif
    return PyCode_Addr2Line(code, offset * DTRACE_CODEUNIT_SIZE);
}

/* The same, making the code's line table if needed (which may raise: the
   caller restores the error state) */
static int
dtrace_line(Py_ssize_t *lines_index, PyCodeObject *code, int offset)
{
    int line = dtrace_line_known(lines_index, code, offset);
#ifndef Py_GIL_DISABLED
    if (line == DTRACE_LINE_UNKNOWN) {
        /* offset is in range, and the code has no table yet */
        int *lines = dtrace_make_lines(code, lines_index);
        line = (lines != NULL
                ? lines[offset]
                : PyCode_Addr2Line(code, offset * DTRACE_CODEUNIT_SIZE));
    }
#endif
    return line;
}

static inline void
dtrace_function_marker(int entry, const char *filename, const char *funcname,
                       int lineno, const char *module)
{
    if (entry) {
        PyDTrace_FUNCTION_ENTRY(filename, funcname, lineno, module);
    }
    else {
        PyDTrace_FUNCTION_RETURN(filename, funcname, lineno, module);
    }
}

/* dtrace_function() when something on the way may raise: a name to
   encode, the code's first line table to make (lineno
   DTRACE_LINE_UNKNOWN), a __name__ to look up */
static Py_NO_INLINE void
dtrace_function_slow(int entry, PyCodeObject *code, int offset, int lineno,
                     PyObject *globals, Py_ssize_t *lines_index)
{
    PyObject *exc = PyErr_GetRaisedException();
    const char *filename = dtrace_string(code->co_filename);
    const char *funcname = dtrace_string(code->co_name);
    if (lineno == DTRACE_LINE_UNKNOWN) {
        lineno = dtrace_line(lines_index, code, offset);
    }
    PyObject *name;
    const char *module = dtrace_module_name(globals, &name);
    dtrace_function_marker(entry, filename, funcname, lineno, module);
    Py_XDECREF(name);
    PyErr_SetRaisedException(exc);
}

/* function__entry or function__return of the code running in a frame,
   stopped at offset (in code units), with the frame's globals.  Nearly
   always, the names are ASCII, the line table is made and __name__ is
   first in the globals: then nothing can raise, and the error state needs
   no saving. */
static inline Py_ALWAYS_INLINE void
dtrace_function(int entry, PyCodeObject *code, int offset, PyObject *globals,
                Py_ssize_t *lines_index)
{
    const char *filename = dtrace_code_ascii(code->co_filename);
    const char *funcname = dtrace_code_ascii(code->co_name);
    int lineno = dtrace_line_known(lines_index, code, offset);
    if (filename != NULL && funcname != NULL &&
        lineno != DTRACE_LINE_UNKNOWN) {
        PyObject *name = dtrace_first_name(globals);
        const char *module = dtrace_ascii(name);
        if (module != NULL) {
            dtrace_function_marker(entry, filename, funcname, lineno, module);
            Py_DECREF(name);
            return;
        }
        Py_XDECREF(name);
    }
    dtrace_function_slow(entry, code, offset, lineno, globals, lines_index);
}

/* A C function, as the profiler's c_call, c_return and c_exception events
   report it. */
struct dtrace_cfunction {
    PyMethodDef *def;
    PyObject *module;            /* its m_module (borrowed), or NULL */
    PyTypeObject *owner_type;    /* the type that defines a method, or NULL */
};

/* The type in type's MRO whose methods include def: a method of a C type
   called on an instance of a Python subclass is the C type's. */
static PyTypeObject *
dtrace_defining_type(PyTypeObject *type, PyMethodDef *def)
{
    PyObject *mro = type->tp_mro;
    if (mro == NULL || !PyTuple_Check(mro)) {
        return type;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        for (PyMethodDef *m = t->tp_methods; m != NULL && m->ml_name; m++) {
            if (m == def) {
                return t;
            }
        }
    }
    return type;
}

/* A call event's first argument that says there is none: NULL, or in the
   interpreter sys.monitoring's MISSING as well */
#ifdef Py_BUILD_CORE
#  define DTRACE_NO_ARG(o) ((o) == NULL || (o) == &_PyInstrumentation_MISSING)
#else
#  define DTRACE_NO_ARG(o) ((o) == NULL)
#endif

/* Whether a call of callable, with self_arg its first argument
   (DTRACE_NO_ARG(): none), calls into C; then *f is the C function.  Not
   for a method descriptor that does not apply to its first argument: the
   call raises before it runs, and the profiler sees no event of it.  With
   fast, it calls nothing, and returns -1 where telling would take a call
   (a type test of a subclass, an unusual callable). */
static inline Py_ALWAYS_INLINE int
dtrace_cfunction_of_impl(PyObject *callable, PyObject *self_arg,
                         struct dtrace_cfunction *f, int fast)
{
    PyTypeObject *type = Py_TYPE(callable);
    if (type == &PyMethod_Type) {
        callable = PyMethod_GET_FUNCTION(callable);
        type = Py_TYPE(callable);
    }
    f->module = NULL;
    f->owner_type = NULL;
    /* The exact types first, the commonest first: PyCFunction_Check() of
       another type walks its MRO */
    if (type == &PyMethodDescr_Type) {
        if (DTRACE_NO_ARG(self_arg)) {
            return 0;
        }
        f->owner_type = PyDescr_TYPE(callable);
        if (!Py_IS_TYPE(self_arg, f->owner_type)) {
            if (fast) {
                return -1;
            }
            if (!PyObject_TypeCheck(self_arg, f->owner_type)) {
                return 0;
            }
        }
        f->def = ((PyMethodDescrObject *)callable)->d_method;
        return 1;
    }
    if (type != &PyCFunction_Type) {
        if (type == &PyFunction_Type) {
            return 0;
        }
        if (fast) {
            return -1;
        }
        if (!PyCFunction_Check(callable)) {
            return 0;
        }
    }
    PyCFunctionObject *func = (PyCFunctionObject *)callable;
    f->def = func->m_ml;
    f->module = func->m_module;
    PyObject *self = func->m_self;
    if (self != NULL && !Py_IS_TYPE(self, &PyModule_Type)) {
        if (fast) {
            return -1;
        }
        if (!PyModule_Check(self)) {
            f->owner_type = dtrace_defining_type(Py_TYPE(self), f->def);
        }
    }
    return 1;
}

static inline int
dtrace_cfunction_of(PyObject *callable, PyObject *self_arg,
                    struct dtrace_cfunction *f)
{
    return dtrace_cfunction_of_impl(callable, self_arg, f, 0);
}

/* Whether f names its module (m_module), or the module is its type's */
static inline int
dtrace_has_module(struct dtrace_cfunction *f)
{
    return f->module != NULL && f->module != Py_None;
}

static inline void
dtrace_cfunction_marker(int entry, const char *filename, const char *name,
                        int lineno, const char *module)
{
    if (entry) {
        PyDTrace_CFUNCTION_ENTRY(filename, name, lineno, module);
    }
    else {
        PyDTrace_CFUNCTION_RETURN(filename, name, lineno, module);
    }
}

/* dtrace_cfunction() when dtrace_cfunction_fast() could not: a name that
   is not ASCII, the code's first line table to make, the __module__ of a
   heap type, a static type's first call, anything that may raise */
static Py_NO_INLINE void
dtrace_cfunction_slow(int entry, struct dtrace_cfunction *f,
                      PyCodeObject *code, int offset,
                      Py_ssize_t *lines_index)
{
    char buf[128];
    PyObject *exc = PyErr_GetRaisedException();
    const char *module = NULL;
    PyObject *module_ref = NULL;
    if (dtrace_has_module(f)) {
        module = dtrace_string(f->module);
    }
    else if (f->owner_type != NULL) {
        module = dtrace_type_module(f->owner_type, buf, sizeof(buf),
                                    &module_ref);
    }
    const char *filename = dtrace_string(code->co_filename);
    int lineno = dtrace_line(lines_index, code, offset);
    dtrace_cfunction_marker(entry, filename, f->def->ml_name, lineno, module);
    Py_XDECREF(module_ref);
    PyErr_SetRaisedException(exc);
}

/* cfunction__entry or cfunction__return of a call of f, from the code
   running in a frame stopped at offset (in code units), when that calls
   nothing: the names are ASCII, the code's line table is made, and the
   module is a str or that of a static type without a dot in its name
   that was seen before.  Returns whether it fired; if not, nothing has
   happened, and dtrace_cfunction_slow() is the way.  Calling nothing, it
   needs no stack frame of its own. */
static inline Py_ALWAYS_INLINE int
dtrace_cfunction_fast(int entry, struct dtrace_cfunction *f,
                      PyCodeObject *code, int offset,
                      Py_ssize_t *lines_index)
{
    const char *filename = dtrace_code_ascii(code->co_filename);
    int lineno = dtrace_line_table(lines_index, code, offset);
    if (filename == NULL || lineno == DTRACE_LINE_UNKNOWN) {
        return 0;
    }
    const char *module = NULL;
    if (dtrace_has_module(f)) {
        module = dtrace_ascii(f->module);
        if (module == NULL) {
            return 0;
        }
    }
    else if (f->owner_type != NULL) {
        if (!dtrace_builtin_type(f->owner_type)) {
            return 0;
        }
        module = "builtins";
    }
    dtrace_cfunction_marker(entry, filename, f->def->ml_name, lineno, module);
    return 1;
}

/* cfunction__entry or cfunction__return of a call of f, from the code
   running in a frame stopped at offset (in code units).  As for
   dtrace_function(), the error state is saved only when something could
   raise (dtrace_cfunction_slow()). */
static inline Py_ALWAYS_INLINE void
dtrace_cfunction(int entry, struct dtrace_cfunction *f, PyCodeObject *code,
                 int offset, Py_ssize_t *lines_index)
{
    if (!dtrace_cfunction_fast(entry, f, code, offset, lines_index)) {
        dtrace_cfunction_slow(entry, f, code, offset, lines_index);
    }
}


#ifdef Py_BUILD_CORE
/* --- The interpreter: its profile and trace hooks -------------------- */
/*
 * The function, cfunction and line markers fire from the hooks of
 * Python/legacy_tracing.c, where sys.setprofile and sys.settrace see their
 * events, so they see exactly those events, with the same values.  While a
 * consumer is attached to one of them, _PyDTrace_Update() turns the hooks
 * on for the whole interpreter, just as a profile or trace function in
 * some thread would; while none is, the code is not instrumented and the
 * markers cost nothing.  While no thread profiles and no other tool wants
 * them, the events skip the hooks: the instrumentation's entry points
 * (_Py_call_instrumentation() and the like) hand them to _PyDTrace_Take()
 * before they make the tools' arguments.  What the hooks do for the
 * profiler they do only while a thread profiles, and a tool that comes
 * while a call is in flight sees no more of it than it would without the
 * markers: the program's own profilers, tracers and tools see what they
 * would see untraced.
 */

/* Of Python/legacy_tracing.c, which includes this file */
static int setup_profile_callbacks(void *);
static int setup_trace_callbacks(void *);
static int set_monitoring_profile_events(PyInterpreterState *interp);
static int set_monitoring_trace_events(PyInterpreterState *interp);

/* What differs between the versions of the interpreter */

/* The frame runs no code of its own (an entry frame of the C stack) */
static inline int
dtrace_frame_is_shim(_PyInterpreterFrame *frame)
{
#if PY_VERSION_HEX >= 0x030E0000
    return frame->owner >= FRAME_OWNED_BY_INTERPRETER;
#else
    return frame->owner == FRAME_OWNED_BY_CSTACK;
#endif
}

/* The first code unit of the bytecode a frame runs */
static inline _Py_CODEUNIT *
dtrace_frame_bytecode(_PyInterpreterFrame *frame)
{
#if PY_VERSION_HEX >= 0x030E0000
    return _PyFrame_GetBytecode(frame);
#else
    return _PyCode_CODE(_PyFrame_GetCode(frame));
#endif
}

/* The opcode at offset in code, not instrumented or specialized */
static inline int
dtrace_base_opcode(PyCodeObject *code, int offset)
{
#if PY_VERSION_HEX >= 0x030E0000
    return _Py_GetBaseCodeUnit(code, offset).op.code;
#else
    return _Py_GetBaseOpcode(code, offset);
#endif
}

/* interp->dtrace_profiling and dtrace_tracing change with the world
   stopped, and are read with it running (free-threaded build) */
static inline int
dtrace_profiling(PyInterpreterState *interp)
{
    return _Py_atomic_load_int_relaxed(&interp->dtrace_profiling);
}

static inline int
dtrace_tracing(PyInterpreterState *interp)
{
    return _Py_atomic_load_int_relaxed(&interp->dtrace_tracing);
}

static inline int
dtrace_profiled(PyInterpreterState *interp)
{
    return _Py_atomic_load_ssize_relaxed(&interp->sys_profiling_threads) != 0;
}

/* The semaphores _PyDTrace_Update() last found the hooks right for
   (interp->dtrace_seen_*): set by any thread, read by all */
static inline uint64_t
dtrace_seen_semaphores(PyInterpreterState *interp)
{
    return _Py_atomic_load_uint64_relaxed(&interp->dtrace_seen_semaphores);
}

static inline int
dtrace_seen_cfunction_return(PyInterpreterState *interp)
{
    return _Py_atomic_load_int_relaxed(&interp->dtrace_seen_cfunction_return);
}

static void
dtrace_seen(PyInterpreterState *interp, uint64_t semaphores,
            int cfunction_return)
{
    _Py_atomic_store_uint64_relaxed(&interp->dtrace_seen_semaphores,
                                    semaphores);
    _Py_atomic_store_int_relaxed(&interp->dtrace_seen_cfunction_return,
                                 cfunction_return);
}

/* Fire a function marker for a frame stopped at offset, or with its
   consumer gone, see whether the hooks can be turned off. */
static inline Py_ALWAYS_INLINE void
dtrace_frame_event(PyThreadState *tstate, int entry,
                   _PyInterpreterFrame *frame, int offset)
{
    if (entry ? PyDTrace_FUNCTION_ENTRY_ENABLED()
              : PyDTrace_FUNCTION_RETURN_ENABLED()) {
        /* No co_extra index: the line tables are the interpreter's */
        dtrace_function(entry, _PyFrame_GetCode(frame), offset,
                        frame->f_globals, NULL);
    }
    else if (dtrace_profiling(tstate->interp)) {
        _PyDTrace_Update(tstate);
    }
}

/* A call event whose marker has no consumer: see whether the hooks can
   be turned off.  Returns 0. */
static Py_NO_INLINE int
dtrace_call_unwanted(PyThreadState *tstate)
{
    if (dtrace_profiling(tstate->interp)) {
        _PyDTrace_Update(tstate);
    }
    return 0;
}

/* dtrace_call_event() when dtrace_cfunction_fast() could not.  Returns 0. */
static Py_NO_INLINE int
dtrace_call_slow(int entry, _PyInterpreterFrame *frame,
                 PyObject *callable, PyObject *self_arg)
{
    struct dtrace_cfunction f;
    if (dtrace_cfunction_of(callable, self_arg, &f)) {
        dtrace_cfunction_slow(entry, &f, _PyFrame_GetCode(frame),
                              _PyInterpreterFrame_LASTI(frame), NULL);
    }
    return 0;
}

/* The same for a call into C (CALL, C_RETURN, C_RAISE) from frame (the
   running frame); self_arg DTRACE_NO_ARG(): none.  Whatever it calls, it
   calls last, so that the path that fires the marker needs no stack frame.
   Returns 0. */
static inline Py_ALWAYS_INLINE int
dtrace_call_event(PyThreadState *tstate, int entry,
                  _PyInterpreterFrame *frame,
                  PyObject *callable, PyObject *self_arg)
{
    if (!(entry ? PyDTrace_CFUNCTION_ENTRY_ENABLED()
                : PyDTrace_CFUNCTION_RETURN_ENABLED())) {
        return dtrace_call_unwanted(tstate);
    }
    if (frame == NULL) {
        return 0;
    }
    struct dtrace_cfunction f;
    int c = dtrace_cfunction_of_impl(callable, self_arg, &f, 1);
    if (c == 0) {
        return 0;
    }
    if (c > 0 &&
        dtrace_cfunction_fast(entry, &f, _PyFrame_GetCode(frame),
                              _PyInterpreterFrame_LASTI(frame), NULL)) {
        return 0;
    }
    return dtrace_call_slow(entry, frame, callable, self_arg);
}

/* The profile hooks of frame events (sys_profile_start() and the like):
   the function marker of the running frame, at its own instruction (for
   PY_UNWIND not the one the event is reported at). */
static inline void
dtrace_function_hook(int entry)
{
    _PyInterpreterFrame *frame = _PyEval_GetFrame();
    if (frame != NULL) {
        dtrace_frame_event(_PyThreadState_GET(), entry, frame,
                           _PyInterpreterFrame_LASTI(frame));
    }
}

/* The profile hook of call events (sys_profile_call_or_return()): the
   cfunction marker.  Returns whether only the markers turned the hook on:
   then nothing else is to be done (without them there would be no hook to
   convert a descriptor, which may raise). */
static inline int
dtrace_call_hook(int entry, PyObject *callable, PyObject *self_arg)
{
    PyThreadState *tstate = _PyThreadState_GET();
    dtrace_call_event(tstate, entry, _PyEval_GetFrame(), callable, self_arg);
    return !dtrace_profiled(tstate->interp);
}

/* The line marker, from where sys.settrace's line events come: LINE
   events (_Py_call_instrumentation_line() calls this directly, as it calls
   the trace function) and backward jumps (sys_trace_jump_func()). */
void
_PyDTrace_Line(PyThreadState *tstate, PyCodeObject *code, int line)
{
    if (PyDTrace_LINE_ENABLED()) {
        dtrace_line_marker(code, line);
    }
    else if (dtrace_tracing(tstate->interp)) {
        _PyDTrace_Update(tstate);
    }
}

/* _PyDTrace_EndEvent() of a frame event and of a call event, apart: the
   path of a call event calls nothing but last, and then needs no stack
   frame */
static Py_NO_INLINE int
dtrace_end_frame(PyThreadState *tstate, int entry,
                 _PyInterpreterFrame *frame)
{
    dtrace_frame_event(tstate, entry, frame,
                       _PyInterpreterFrame_LASTI(frame));
    return 0;
}

static Py_NO_INLINE int
dtrace_end_call(PyThreadState *tstate, int entry, _PyInterpreterFrame *frame,
                PyObject *callable, PyObject *self_arg)
{
    return dtrace_call_event(tstate, entry, frame, callable, self_arg);
}

int
_PyDTrace_EndEvent(PyThreadState *tstate, int event,
                   _PyInterpreterFrame *frame,
                   PyObject *callable, PyObject *self_arg)
{
    uint32_t bit = 1u << event;
    if (bit & _PyDTrace_CALL_EVENTS) {
        return dtrace_end_call(tstate, event == PY_MONITORING_EVENT_CALL,
                               frame, callable, self_arg);
    }
    return dtrace_end_frame(tstate, (bit & _PyDTrace_ENTRY_EVENTS) != 0,
                            frame);
}

/* Calls in flight.  The markers share the profile tool of sys.setprofile.
   While they are its only user, a CALL instruction that they instrument
   would, without them, run uninstrumented: then its C_RETURN or C_RAISE
   reaches nobody, even the tools that came while the call was in flight.
   So when the instrumentation changes, each such call in flight is marked
   (in the thread state), and its end fires the markers alone. */

static inline int
dtrace_call_ends_with(int event)
{
    return (event == PY_MONITORING_EVENT_CALL ||
            event == PY_MONITORING_EVENT_C_RETURN ||
            event == PY_MONITORING_EVENT_C_RAISE);
}

static inline int
dtrace_ends_a_call(int opcode)
{
    return (opcode == CALL || opcode == CALL_KW ||
            opcode == CALL_FUNCTION_EX || opcode == LOAD_SUPER_ATTR);
}

/* Whether a call is still in flight: its frame is in ts's stack, stopped
   at its instruction. */
static int
dtrace_in_flight(PyThreadState *ts, struct _PyDTrace_Call *call)
{
    for (_PyInterpreterFrame *f = ts->current_frame; f; f = f->previous) {
        if (f == call->frame) {
            return f->instr_ptr == call->instr;
        }
    }
    return 0;
}

static void
dtrace_mark_call(_PyThreadStateImpl *ts, _PyInterpreterFrame *frame,
                 _Py_CODEUNIT *instr)
{
    for (int i = 0; i < ts->dtrace_calls_count; i++) {
        if (ts->dtrace_calls[i].frame == frame &&
            ts->dtrace_calls[i].instr == instr) {
            return;
        }
    }
    if (ts->dtrace_calls_count == ts->dtrace_calls_size) {
        int size = ts->dtrace_calls_size ? 2 * ts->dtrace_calls_size : 8;
        struct _PyDTrace_Call *calls = PyMem_RawRealloc(
            ts->dtrace_calls, size * sizeof(struct _PyDTrace_Call));
        if (calls == NULL) {
            return;
        }
        ts->dtrace_calls = calls;
        ts->dtrace_calls_size = size;
    }
    ts->dtrace_calls[ts->dtrace_calls_count].frame = frame;
    ts->dtrace_calls[ts->dtrace_calls_count].instr = instr;
    ts->dtrace_calls_count++;
}

/* Mark the calls in flight in C of a thread that only the markers
   instrumented.  A frame is in a C call if it runs one of the instructions
   that call, and no Python frame of its own call is above it. */
static void
dtrace_mark_calls_of(_PyThreadStateImpl *impl)
{
    _PyInterpreterFrame *above = NULL;
    for (_PyInterpreterFrame *f = impl->base.current_frame; f != NULL;
         above = f, f = f->previous) {
        if (dtrace_frame_is_shim(f)) {
            continue;
        }
        if (above != NULL && !dtrace_frame_is_shim(above)) {
            continue;
        }
        PyCodeObject *code = _PyFrame_GetCode(f);
        _PyCoMonitoringData *data = code->_co_monitoring;
        int offset = (int)(f->instr_ptr - dtrace_frame_bytecode(f));
        if (data == NULL || offset < 0 || offset >= Py_SIZE(code)) {
            continue;
        }
        if (!dtrace_ends_a_call(dtrace_base_opcode(code, offset))) {
            continue;
        }
        uint8_t tools = data->tools ? data->tools[offset] :
            data->active_monitors.tools[PY_MONITORING_EVENT_CALL];
        if (tools == (1 << PY_MONITORING_SYS_PROFILE_ID)) {
            dtrace_mark_call(impl, f, f->instr_ptr);
        }
    }
}

/* Before a tool's events change, or a profiler comes: forget the marked
   calls that are over, and mark the calls in flight in C that only the
   markers instrumented. */
void
_PyDTrace_MarkCalls(PyInterpreterState *interp)
{
#if defined(Py_DEBUG) && defined(Py_GIL_DISABLED)
    assert(interp->stoptheworld.world_stopped);
#endif
    /* As instrumented now, before the change */
    int markers_only = interp->dtrace_calls_only;
    HEAD_LOCK(&_PyRuntime);
    for (PyThreadState *ts = interp->threads.head; ts; ts = ts->next) {
        _PyThreadStateImpl *impl = (_PyThreadStateImpl *)ts;
        int n = 0;
        for (int i = 0; i < impl->dtrace_calls_count; i++) {
            if (dtrace_in_flight(ts, &impl->dtrace_calls[i])) {
                impl->dtrace_calls[n++] = impl->dtrace_calls[i];
            }
        }
        impl->dtrace_calls_count = n;
        if (markers_only) {
            dtrace_mark_calls_of(impl);
        }
    }
    HEAD_UNLOCK(&_PyRuntime);
}

/* Forget the mark of this call, if it had one; whether it had. */
static int
dtrace_unmark_call(PyThreadState *tstate, _PyInterpreterFrame *frame,
                   _Py_CODEUNIT *instr)
{
    _PyThreadStateImpl *ts = (_PyThreadStateImpl *)tstate;
    for (int i = ts->dtrace_calls_count - 1; i >= 0; i--) {
        if (ts->dtrace_calls[i].frame == frame &&
            ts->dtrace_calls[i].instr == instr) {
            ts->dtrace_calls_count--;
            memmove(&ts->dtrace_calls[i], &ts->dtrace_calls[i + 1],
                    (ts->dtrace_calls_count - i) *
                    sizeof(struct _PyDTrace_Call));
            return 1;
        }
    }
    return 0;
}

void
_PyDTrace_ClearThread(PyThreadState *tstate)
{
    _PyThreadStateImpl *impl = (_PyThreadStateImpl *)tstate;
    PyMem_RawFree(impl->dtrace_calls);
    impl->dtrace_calls = NULL;
    impl->dtrace_calls_count = 0;
    impl->dtrace_calls_size = 0;
}

int
_PyDTrace_Take(PyThreadState *tstate, int event, _PyInterpreterFrame *frame,
               _Py_CODEUNIT *instr, int only_markers)
{
    _PyThreadStateImpl *ts = (_PyThreadStateImpl *)tstate;
    int ends_marked_call = 0;
    if (ts->dtrace_calls_count != 0 && dtrace_call_ends_with(event)) {
        /* A CALL only forgets a mark left by a call that did not end */
        int marked = dtrace_unmark_call(tstate, frame, instr);
        ends_marked_call = marked && event != PY_MONITORING_EVENT_CALL;
    }
    if (!ends_marked_call) {
        /* Not the end of a call that only the markers instrumented */
        if (!only_markers) {
            return 0;
        }
        PyInterpreterState *interp = tstate->interp;
        if (!dtrace_profiling(interp) || dtrace_profiled(interp)) {
            return 0;
        }
    }
    return _PyDTrace_IsEvent(event);
}

int
_PyDTrace_SetProfileEvents(PyInterpreterState *interp, uint32_t events)
{
    if (interp->sys_profiling_threads == 0) {
        /* Only the markers: only the events their consumers want */
        events = 0;
        if (interp->dtrace_profiling & _PyDTrace_FUNCTIONS) {
            events |= _PyDTrace_FRAME_EVENTS;
        }
        if (interp->dtrace_profiling & _PyDTrace_CFUNCTIONS) {
            events |= (1 << PY_MONITORING_EVENT_CALL);
        }
    }
    else if (interp->dtrace_calls_only) {
        /* A profiler comes, maybe with the same events: it must not see
           the ends of the calls that only the markers saw begin */
        _PyDTrace_MarkCalls(interp);
    }
    int ret = _PyMonitoring_SetEvents(PY_MONITORING_SYS_PROFILE_ID, events);
    interp->dtrace_calls_only = (interp->sys_profiling_threads == 0 &&
                                 (events & (1 << PY_MONITORING_EVENT_CALL)));
    return ret;
}

/* Set one of the markers' reasons for the hooks (*state), with the world
   stopped, and the tool's events that follow; back to the events of
   before, as far as that goes, on failure. */
static void
dtrace_set_hooks(PyInterpreterState *interp, int *state, int value,
                 int (*set_events)(PyInterpreterState *))
{
    int was = *state;
    _PyEval_StopTheWorld(interp);
    _Py_atomic_store_int_relaxed(state, value);
    if (set_events(interp) < 0) {
        _Py_atomic_store_int_relaxed(state, was);
        (void)set_events(interp);
    }
    _PyEval_StartTheWorld(interp);
}

/* _PyDTrace_Update() once the semaphores differ from those it last found
   the hooks right for (semaphores and cfunction_return, as it read them) */
static Py_NO_INLINE int
dtrace_update(PyThreadState *tstate, uint64_t semaphores,
              int cfunction_return)
{
    PyInterpreterState *interp = tstate->interp;
    /* The hooks follow the semaphores as read once, the values recorded
       below: read again, a consumer that came and went in between would
       leave hooks that the next look, finding the recorded values, never
       corrects.  The word holds function__entry's, cfunction__entry's,
       line's and function__return's, in memory order (probes.d's). */
    uint16_t word[4];
    memcpy(word, &semaphores, sizeof(word));
    int profiling = 0;
    if (word[0] != 0 || word[3] != 0) {
        profiling |= _PyDTrace_FUNCTIONS;
    }
    if (word[1] != 0 || cfunction_return) {
        profiling |= _PyDTrace_CFUNCTIONS;
    }
    int tracing = word[2] != 0;
    int was_profiling = dtrace_profiling(interp);
    int was_tracing = dtrace_tracing(interp);

    if (profiling == was_profiling && tracing == was_tracing) {
        dtrace_seen(interp, semaphores, cfunction_return);
        return 0;
    }
    if (_PyInterpreterState_GetFinalizing(interp) != NULL) {
        return 0;
    }
    PyObject *exc = _PyErr_GetRaisedException(tstate);
    if (profiling != was_profiling &&
        _PyOnceFlag_CallOnce(&interp->sys_profile_once_flag,
                             setup_profile_callbacks, NULL) == 0) {
        dtrace_set_hooks(interp, &interp->dtrace_profiling, profiling,
                         set_monitoring_profile_events);
    }
    if (tracing != was_tracing &&
        _PyOnceFlag_CallOnce(&interp->sys_trace_once_flag,
                             setup_trace_callbacks, NULL) == 0) {
        dtrace_set_hooks(interp, &interp->dtrace_tracing, tracing,
                         set_monitoring_trace_events);
    }
    /* Failing to turn the markers on must not show in the program */
    _PyErr_SetRaisedException(tstate, exc);
    if (dtrace_profiling(interp) == profiling &&
        dtrace_tracing(interp) == tracing) {
        /* Else try again next time */
        dtrace_seen(interp, semaphores, cfunction_return);
    }
    return (dtrace_profiling(interp) != was_profiling ||
            dtrace_tracing(interp) != was_tracing);
}

/* Follow the semaphores of the function, cfunction and line markers: turn
   the profile hooks on while a consumer is attached to any of the first
   four, the line and jump hooks while one is attached to the line marker,
   and off again after.  Called by RESUME (whose specialization
   RESUME_CHECK leaves the fast path while a consumer is attached, see
   _PyDTrace_Wanted(); INSTRUMENTED_RESUME calls it at every start of an
   instrumented frame), when the eval breaker is handled, and by the hooks
   themselves once their consumers are gone.  While the semaphores are
   what they were when the hooks were last found right, it only compares
   them.  Returns whether it turned hooks on or off. */
int
_PyDTrace_Update(PyThreadState *tstate)
{
    PyInterpreterState *interp = tstate->interp;
    uint64_t semaphores = _PyDTrace_FrameSemaphores;
    int cfunction_return = PyDTrace_CFUNCTION_RETURN_ENABLED() != 0;
    if (semaphores == dtrace_seen_semaphores(interp) &&
        cfunction_return == dtrace_seen_cfunction_return(interp)) {
        return 0;
    }
    return dtrace_update(tstate, semaphores, cfunction_return);
}
#endif /* Py_BUILD_CORE */
