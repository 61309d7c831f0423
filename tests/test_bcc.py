"""bcc's Python tools (Debian's bpfcc-tools: ucalls, uflow, ugc and ustat
with -l python, which pythoncalls-bpfcc, pythonflow-bpfcc, pythongc-bpfcc
and pythonstat-bpfcc run) on every build, against the fixtures of
tests/dtracedata:

  test_calls  ucalls' calls per function of call_stack.py and deep_calls.py
              are exactly the function__entry events the suite expects
  test_flow   uflow's tree of call_stack.py (entries and returns, their
              order and depth) is exactly the expected function events'
  test_gc     ugc reports one collection per gc.collect() of gc_import.py,
              each with a time (and its generation, once bcc's formatter
              returns its description: bcc 0.26's prints "None")
  test_stat   ustat, which attaches only to processes whose comm is
              "python" (here: a symlink of that name to the build), counts
              the method calls and collections a program makes while it
              is attached

ucalls, uflow and ugc attach to a process by its PID, ustat to every
process named python: the program waits (a fixture under
harness.LAUNCHER) until the tool traces, then runs.
While a tool runs, the semaphores of its markers are set in the traced
process; once it is stopped with SIGINT (Ctrl-C) they must be 0 again.
bcc compiles its BPF program against kernel headers: the running kernel
has none here, so Debian's 6.1 headers are merged into build/bcc-headers
(scripts/bcc-headers.sh) and passed as BCC_KERNEL_SOURCE.
"""

import collections
import glob
import os
import re
import subprocess
import time

import pytest

import cases
import consumers
import harness
import usdt
from harness import LAUNCHER, READY

BCC = consumers.Bcc()


def wait_for(what, condition, processes, timeout=300):
    """Poll condition() until true; fail if a process ends first."""
    deadline = time.time() + timeout
    while not condition():
        for p in processes:
            if p.poll() is not None:
                raise AssertionError("%s: %s exited with %s first: %s" % (
                    what, p.args[0], p.returncode, p.communicate()[1]))
        assert time.time() < deadline, "timed out: " + what
        time.sleep(0.05)


def read(path):
    with open(path) as f:
        return f.read()


def trace(tool, build, d, argv, markers, flags=(), python=None, attached=None):
    """Run a program (argv: a script and its arguments) under tool (a list:
    the tool and its options; the program's PID is added, unless attached
    is given) and return the tool's output and the PID.  The program says
    READY (its first line: the tool starts then), waits for "go" on stdin,
    runs, says "done" and waits for its stdin to close, so that the tool
    stops while it still lives: the markers' semaphores, set while the tool
    runs, must then be 0 again.  It is
    pinned to one CPU, so that per-CPU buffers keep its events in order.
    attached(tracer, out) says when the tool traces (default: it printed
    its "Tracing" line)."""
    out = os.path.join(d, "tool.txt")
    said = os.path.join(d, "program.txt")
    with open(said, "w") as f:
        program = subprocess.Popen(
            [python or harness.interpreter(build)] + list(flags) + argv,
            stdin=subprocess.PIPE, stdout=f, stderr=subprocess.PIPE,
            universal_newlines=True, cwd=d,
            preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    tracer = None
    try:
        wait_for("the program ready", lambda: read(said).startswith(READY + "\n"), [program])
        with open(out, "w") as f:
            tracer = subprocess.Popen(
                tool + ([] if attached else [str(program.pid)]), stdout=f,
                stderr=subprocess.PIPE, universal_newlines=True, cwd=d, env=BCC.env(),
                preexec_fn=consumers.default_sigint)
        if attached is None:
            wait_for("%s attached" % tool[0],
                     lambda: re.search(r"^Tracing", read(out), re.M), [tracer, program])
        else:
            wait_for("%s attached" % tool[0], lambda: attached(tracer, out), [tracer, program])
        for marker in markers:
            assert consumers.semaphore(program.pid, harness.marker_object(build), marker) > 0, \
                "%s attached, %s's semaphore is 0" % (tool[0], marker)
        program.stdin.write("go\n")
        program.stdin.flush()
        wait_for("the program's end", lambda: "done\n" in read(said), [program])
        # Let the tool print what its buffers hold.
        harness.wait_until_still(out)
        stderr = consumers.interrupt(tracer)
        text = read(out)
        assert tracer.returncode == 0, (tracer.returncode, stderr, text)
        assert not re.search(r"lost \d+ samples", stderr + text, re.I), (stderr, text)
        for marker in markers:
            assert consumers.semaphore(program.pid, harness.marker_object(build), marker) == 0, \
                "%s's semaphore is still set after %s stopped on SIGINT" % (marker, tool[0])
        _, err = program.communicate("", timeout=60)
        assert program.returncode == 0, err
        return text, program.pid
    finally:
        for p in (program, tracer):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()


def launch(d, fixture, prologue=""):
    """harness.LAUNCHER for fixture, preceded by
    prologue, that says "done" when the fixture has run."""
    launcher = os.path.join(d, "launch.py")
    with open(launcher, "w") as f:
        f.write(prologue + LAUNCHER + "sys.stdout.write('done\\n')\nsys.stdout.flush()\n"
                "sys.stdin.read()\n")
    return [launcher, os.path.join(d, fixture + ".py")]


def fixture_file(d, file):
    """The fixture's file relative to its directory, or None for others
    (the launcher's, the standard library's)."""
    if file.startswith(d) and file != d + "launch.py":
        return file[len(d):]
    return None


@pytest.mark.parametrize("build,fixture", [(b, f) for f in ("call_stack", "deep_calls")
                                           for b in cases.consumer_builds(
                                               "bcc", cases.function_cases(f))])
def test_calls(build, fixture):
    """ucalls -l python PID: on SIGINT, a line per function (FILE.FUNC and
    its calls), equal to the expected function__entry events by function."""
    harness.require(BCC)
    with harness.FixtureDir() as d:
        text, _ = trace([BCC.tool_path("ucalls"), "-l", "python"], build, d.path,
                        launch(d.path, fixture), ["function__entry"])
        got = collections.Counter()
        rows = text.split("# CALLS\n", 1)
        assert len(rows) == 2, text
        for line in rows[1].splitlines():
            m = re.match(r"^(.*)\.(\S*?)\s+(\d+)$", line)
            assert m, "not a row of ucalls: %r\n%s" % (line, text)
            file = fixture_file(d.path, m.group(1))
            if file:
                got[(m.group(2), file)] += int(m.group(3))
    expected = collections.Counter((func, file) for kind, func, file, _
                                   in cases.expected_calls(build, fixture)
                                   if kind == "function__entry")
    assert got == expected, text


@pytest.mark.parametrize("build", cases.consumer_builds("bcc", cases.function_cases("call_stack")))
def test_flow(build):
    """uflow -l python PID: a line per entry (->) and return (<-), indented
    by depth, in order; the fixture's are exactly the expected tree."""
    harness.require(BCC)
    with harness.FixtureDir() as d:
        text, _ = trace([BCC.tool_path("uflow"), "-l", "python"], build, d.path,
                        launch(d.path, "call_stack"), ["function__entry", "function__return"])
        got = []
        for line in text.splitlines():
            # CPU PID TID TIME(us) (%-8.3f, then a space) INDENT-> FILE.FUNC
            m = re.match(r"^\d+ +\d+ +\d+ +(\d+\.\d{3})( +)(->|<-) (.*)\.(\S+?)\s*$", line)
            if m:
                file = fixture_file(d.path, m.group(4))
                indent = len(m.group(2)) - 1 - max(0, 8 - len(m.group(1)))
                if file:
                    got.append("%s%s %s in %s" % (" " * indent, m.group(3), m.group(5), file))
    expected, depth = [], 0
    for kind, func, file, _ in cases.expected_calls(build, "call_stack"):
        if kind == "function__return":
            depth -= 1
        expected.append("%s%s %s in %s" % ("  " * depth, "->" if kind == "function__entry"
                                           else "<-", func, file))
        if kind == "function__entry":
            depth += 1
    # The launcher's frames, entered before uflow attached, may or may not
    # count: compare the tree relative to the fixture's first line.
    assert got, text
    base = len(got[0]) - len(got[0].lstrip(" "))
    assert all(line.startswith(" " * base) for line in got), text
    assert [line[base:] for line in got] == expected, text


def gc_cases():
    for build in harness.builds():
        with open(harness.claims(build)) as f:
            claimed = f.read().split()
        if "gc__start" in claimed and os.path.exists(harness.expected_path(build, "gc_import")):
            yield build


@pytest.mark.parametrize("build", cases.consumer_builds("bcc", gc_cases()))
def test_gc(build):
    """ugc -l python PID: a line per collection (its start, its time in
    us, a description).  gc_import.py calls gc.collect() twice (the
    expected events' cfunction calls of gc.collect), with automatic
    collections disabled from before ugc attaches: exactly two lines.
    bcc 0.26's Python formatter returns nothing, so the description is
    "None"; a fixed one says "gen 2 GC collected N objects"."""
    harness.require(BCC)
    with harness.FixtureDir() as d:
        text, _ = trace([BCC.tool_path("ugc"), "-l", "python"], build, d.path,
                        launch(d.path, "gc_import", "import gc\ngc.disable()\n"),
                        ["gc__start", "gc__done"], ["-S"])
    header = re.search(r"^START +TIME \(us\) +DESCRIPTION *\n", text, re.M)
    assert header, text
    collections_ = []
    for line in text[header.end():].splitlines():
        m = re.match(r"^(\d+\.\d+) +(\d+\.\d+) (.*)$", line)
        assert m, "not a line of ugc: %r\n%s" % (line, text)
        collections_.append((float(m.group(2)), m.group(3).strip()))
    calls = [e for e in harness.read_expected(build, "gc_import")
             if re.match(r"cfunction__entry \S+ collect \d+ gc$", e)]
    assert len(collections_) == len(calls) == 2, text
    for took, description in collections_:
        assert took > 0, text
        if description != "None":
            # gc.collect() collects generation 2.
            assert re.match(r"gen 2 GC collected \d+ objects$", description), text


# Calls a function CALLS times and collects COLLECTIONS times once told to:
# nothing else enters a Python function or collects meanwhile (os.read and
# os.write, not sys.stdin's decoder).
STAT_PROGRAM = """\
import gc, os
gc.disable()


def f():
    pass


os.write(1, b"%s\\n")
os.read(0, 3)
for _ in range(%d):
    f()
for _ in range(%d):
    gc.collect()
os.write(1, b"done\\n")
while os.read(0, 100):
    pass
os._exit(0)
"""

INTERVAL = 10
CALLS, COLLECTIONS = 1000 * INTERVAL, 2 * INTERVAL


@pytest.mark.parametrize("build", cases.consumer_builds("bcc", harness.builds()))
def test_stat(build):
    """ustat -l python -C INTERVAL 1: it finds its targets by comm, so the
    program runs through a symlink named python; attached (it holds a
    perf event per site of function__entry and gc__start), the program
    makes CALLS calls and COLLECTIONS collections, then ustat is stopped
    with SIGINT: its row for the program shows the counts divided by
    INTERVAL, rounded down, so they must be CALLS / INTERVAL and
    COLLECTIONS / INTERVAL (the counts are in [CALLS, CALLS + INTERVAL),
    and likewise)."""
    harness.require(BCC)
    sites = len([s for s in usdt.read_sites(harness.marker_object(build))
                 if s.name in ("function__entry", "gc__start")])

    def attached(tracer, out):
        events = 0
        for fd in glob.glob("/proc/%d/fd/*" % tracer.pid):
            try:
                events += os.readlink(fd) == "anon_inode:[perf_event]"
            except OSError:
                pass
        return events >= sites

    with harness.FixtureDir() as d:
        python = os.path.join(d.path, "python")
        os.symlink(harness.interpreter(build), python)
        program = os.path.join(d.path, "stat_program.py")
        with open(program, "w") as f:
            f.write(STAT_PROGRAM % (READY, CALLS, COLLECTIONS))
        # One output, INTERVAL seconds long unless SIGINT cuts it short.
        text, pid = trace([BCC.tool_path("ustat"), "-l", "python", "-C", str(INTERVAL), "1"],
                          build, d.path, [program], ["function__entry", "gc__start"], ["-S"],
                          python, attached)
    header = re.search(r"^PID +CMDLINE +METHOD/s +GC/s +OBJNEW/s +CLOAD/s +EXC/s +THR/s *$",
                       text, re.M)
    assert header, text
    row = re.search(r"^%d +(.{20}) (.*)$" % pid, text, re.M)
    assert row and (python + " -S " + program).startswith(row.group(1)), text
    method, gc, objnew, cload, exc, thr = (int(n) for n in row.group(2).split())
    assert (method, gc) == (CALLS // INTERVAL, COLLECTIONS // INTERVAL), text
    assert (objnew, cload, exc, thr) == (0, 0, 0, 0), text
