"""A naive sys.monitoring tool in Python: what usdtmon's work per event is
held against (bench.py, phase module).

    python naive_tool.py FAMILY SCRIPT [ARGS...]

registers a tool for FAMILY's events (function, cfunction or line), whose
callbacks compute the arguments usdtmon's markers pass (file, function and
module names, line number) and drop them, then runs SCRIPT as __main__, as
`python -m usdtmon SCRIPT` does.  The first thing anyone would write to
get those values without a C extension.
"""

import runpy
import sys
import types

mon = sys.monitoring
E = mon.events
TOOL = mon.PROFILER_ID + 1          # 3: no standard tool's
C_TYPES = (types.BuiltinFunctionType, types.MethodDescriptorType,
           types.WrapperDescriptorType, types.MethodWrapperType,
           types.ClassMethodDescriptorType)
sink = []


def frame_event(code, offset, *rest):
    frame = sys._getframe(1)
    sink.append((code.co_filename, code.co_qualname, frame.f_lineno,
                 frame.f_globals.get("__name__")))
    del sink[:]


def call(code, offset, callable_, arg0):
    if isinstance(callable_, C_TYPES):
        frame = sys._getframe(1)
        sink.append((code.co_filename, callable_.__name__, frame.f_lineno,
                     getattr(callable_, "__module__", None)))
        del sink[:]


def c_return(code, offset, callable_, arg0):
    call(code, offset, callable_, arg0)


def line(code, line_number):
    sink.append((code.co_filename, code.co_qualname, line_number))
    del sink[:]


FAMILIES = {
    "function": {E.PY_START: frame_event, E.PY_RESUME: frame_event, E.PY_THROW: frame_event,
                 E.PY_RETURN: frame_event, E.PY_YIELD: frame_event, E.PY_UNWIND: frame_event},
    "cfunction": {E.CALL: call, E.C_RETURN: c_return, E.C_RAISE: c_return},
    "line": {E.LINE: line},
}


def main(argv):
    if len(argv) < 2 or argv[0] not in FAMILIES:
        sys.stderr.write("usage: naive_tool.py function|cfunction|line SCRIPT [ARGS...]\n")
        return 2
    callbacks = FAMILIES[argv[0]]
    mon.use_tool_id(TOOL, "naive")
    events = 0
    for event, fn in callbacks.items():
        mon.register_callback(TOOL, event, fn)
        events |= event
    mon.set_events(TOOL, events)
    sys.argv[:] = argv[1:]
    runpy.run_path(argv[1], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
