"""usdtmon: the static markers of the "python" provider (python-systemtap's
probes.d) for a stock CPython 3.13+, from sys.monitoring, with no rebuild.

Importing it is enough: while no consumer (SystemTap, bpftrace, bcc, perf,
gdb) is attached to one of its markers, it holds no sys.monitoring tool id
and monitors no event; a watcher thread looks at the markers' semaphores
every USDTMON_INTERVAL_MS milliseconds (100) and turns on only the events
whose markers are wanted, off again when the last consumer goes.

By default it fires only the markers the interpreter lacks (an interpreter
built with python-systemtap's patches fires all of them itself, upstream
3.15 its own function markers), so that no event is counted twice.  The
environment decides otherwise:

  USDTMON=0            do nothing (turns a site-wide load off)
  USDTMON_MARKERS=all  fire every family, whatever the interpreter has
                       (the interpreter's own markers then stay untraced)
  USDTMON_INTERVAL_MS  how often to look at the semaphores, in ms
"""

import os
import sys

# The families of markers, as _core counts them, and the marker that tells
# whether the interpreter fires a family itself.
FAMILIES = {
    "function": (1, "function__entry"),
    "cfunction": (2, "cfunction__entry"),
    "line": (4, "line"),
    "gc": (8, "gc__start"),
}

DEFAULT_INTERVAL_MS = 100


def interpreter_markers():
    """The markers of the python provider that the running interpreter
    fires itself: the stapsdt notes of its executable and of the libpython
    it maps."""
    from . import _elf
    found = set()
    for path in _elf.interpreter_objects():
        try:
            found |= _elf.provider_markers(path, "python")
        except (OSError, ValueError):
            pass
    return found


ALL = sum(bit for bit, _ in FAMILIES.values())


def _auto():
    """The families whose markers the interpreter lacks."""
    own = interpreter_markers()
    return sum(bit for bit, marker in FAMILIES.values() if marker not in own)


def _families(setting):
    """What _core.start takes for USDTMON_MARKERS: all families, or the
    ones the interpreter lacks, found once a consumer is seen (reading
    the interpreter's notes costs more than the rest of the import)."""
    if setting == "all":
        return ALL
    if setting not in ("", "auto"):
        raise ValueError("USDTMON_MARKERS must be 'auto' or 'all', not %r" % setting)
    return _auto


def _interval():
    text = os.environ.get("USDTMON_INTERVAL_MS", "")
    if not text:
        return DEFAULT_INTERVAL_MS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError("USDTMON_INTERVAL_MS must be a whole number of ms, at least 1, not %r"
                         % text)
    return value


def _start():
    if os.environ.get("USDTMON", "1") == "0":
        return False
    if sys.implementation.name != "cpython" or sys.version_info < (3, 13):
        sys.stderr.write("usdtmon: needs CPython 3.13 or later, not %s %s; no markers\n"
                         % (sys.implementation.name, sys.version.split()[0]))
        return False
    try:
        wanted = _families(os.environ.get("USDTMON_MARKERS", "auto"))
        interval = _interval()
    except ValueError as e:
        sys.stderr.write("usdtmon: %s; no markers\n" % e)
        return False
    from . import _core
    import atexit
    _core.start(wanted, interval)
    atexit.register(_core.stop)
    os.register_at_fork(before=_core.before_fork, after_in_parent=_core.after_fork_parent,
                        after_in_child=_core.after_fork_child)
    return True


def state():
    """What usdtmon does now: {"families": the families it may fire,
    "on": those whose events are monitored now, "tool_id": the
    sys.monitoring tool id it holds (None: none), "watching": whether
    its watcher runs}."""
    if not started:
        return {"families": [], "on": [], "tool_id": None, "watching": False}
    from . import _core
    allowed, on, tool_id, watching = _core.state()
    names = lambda bits: [n for n, (bit, _) in sorted(FAMILIES.items()) if bits & bit]
    return {"families": names(allowed), "on": names(on),
            "tool_id": None if tool_id < 0 else tool_id, "watching": bool(watching)}


started = _start()
