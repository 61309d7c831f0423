"""The interpreter's own view of a fixture: the oracle for the markers.

    python oracle.py calls|lines FIXTURE

Runs FIXTURE as __main__ under sys.setprofile (calls: call, return, c_call,
c_return, c_exception) or sys.settrace (lines: line), and prints what those
hooks saw of code in FIXTURE's directory, in the suite's event format.  The
markers promise exactly these events with exactly these values.  Python 2
and 3.
"""
import os
import sys


def c_module(func):
    """The module the cfunction markers name for a C function: its
    __module__, or for a method, the module of the type that defines it
    (a method of a C type called on an instance of a Python subclass is the
    C type's)."""
    module = getattr(func, "__module__", None)
    if module is None:
        owner = getattr(func, "__self__", None)
        if owner is not None:
            for cls in type(owner).__mro__:
                if type(vars(cls).get(func.__name__)).__name__ in (
                        "method_descriptor", "classmethod_descriptor"):
                    return cls.__module__
            module = type(owner).__module__
    return module


def text(value):
    """A marker's string argument as the consumers print it: a name that is
    not valid UTF-8 (a lone surrogate) is passed as NULL."""
    if value is None:
        return "(null)"
    if isinstance(value, bytes):
        return value
    try:
        value.encode("utf-8")
    except UnicodeError:
        return "(null)"
    return value


def main():
    mode, path = sys.argv[1], os.path.abspath(sys.argv[2])
    prefix = os.path.dirname(path) + os.sep
    events = []

    me = os.path.abspath(__file__).rstrip("co")

    def ours(frame):
        filename = frame.f_code.co_filename
        return filename.startswith(prefix) and filename != me

    def where(frame):
        return "%s %s %d" % (frame.f_code.co_filename,
                             text(frame.f_code.co_name), frame.f_lineno)

    def profile(frame, event, arg):
        if not ours(frame):
            return
        if event in ("call", "return"):
            events.append("function__%s %s %s" % (
                "entry" if event == "call" else "return", where(frame),
                text(frame.f_globals.get("__name__"))))
        elif event in ("c_call", "c_return", "c_exception"):
            events.append("cfunction__%s %s %s %d %s" % (
                "entry" if event == "c_call" else "return",
                frame.f_code.co_filename, arg.__name__, frame.f_lineno,
                text(c_module(arg))))

    def trace(frame, event, arg):
        if not ours(frame):
            return None
        if event == "line":
            events.append("line %s" % where(frame))
        return trace

    with open(path) as f:
        code = compile(f.read(), path, "exec")
    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)
    scope = {"__name__": "__main__", "__file__": path}
    if mode == "calls":
        sys.setprofile(profile)
    elif mode == "lines":
        sys.settrace(trace)
    else:
        raise SystemExit("oracle.py: mode is calls or lines, not %r" % mode)
    try:
        exec(code, scope)
    finally:
        sys.setprofile(None)
        sys.settrace(None)
    for event in events:
        print(event)


main()
