"""The bpftrace example scripts (examples/bpftrace/*.bt) run against the
fixtures of tests/dtracedata.  What they must print comes from the suite's
expected events (tests/dtracedata/expected/<series>/), which test_semantics
holds to the interpreter's own sys.setprofile: the call tree, the calls per
function, the latency script's call counts and the folded stacks are derived
from them exactly; the GC script's counts are checked against collections
the fixture makes itself.
"""

import collections
import os
import re

import pytest

import cases
import consumers
import harness

BT = os.path.join(harness.REPO, "examples", "bpftrace")
BPFTRACE = consumers.Bpftrace()


def need_bpftrace():
    harness.require(BPFTRACE)


@pytest.mark.parametrize("build", cases.consumer_builds("examples", cases.function_cases("call_stack")))
def test_calltree(build):
    need_bpftrace()
    with harness.FixtureDir() as d:
        text = BPFTRACE.run_launched(os.path.join(BT, "calltree.bt"), build, d.path, [d.path + "call_stack.py"])
        got = []
        for line in text.splitlines():
            m = re.match(r"\d+ ( *)(=>|<=) (\S+) in (\S+):(\d+)$", line)
            if m and m.group(4).startswith(d.path) and m.group(4) != d.path + "launch.py":
                got.append("%s%s %s in %s:%s" % (m.group(1), m.group(2), m.group(3),
                                                 m.group(4)[len(d.path):], m.group(5)))
    expected, depth = [], 0
    for kind, func, file, line in cases.expected_calls(build, "call_stack"):
        if kind == "function__return":
            depth -= 1
        expected.append("%s%s %s in %s:%d" % ("  " * depth, "=>" if kind == "function__entry" else "<=",
                                               func, file, line))
        if kind == "function__entry":
            depth += 1
    # Frames entered before bpftrace attached (the launcher's; in 3.13 also
    # frames it resumes) may or may not indent the tree: compare the tree
    # relative to the fixture's first line.
    base = len(got[0]) - len(got[0].lstrip(" ")) if got else 0
    assert all(line.startswith(" " * base) for line in got)
    assert [line[base:] for line in got] == expected


def map_entries(text, name):
    """{(key, ...): value} of a bpftrace map printed as @name[k, ...]: v."""
    entries = collections.Counter()
    for m in re.finditer(r"^@%s\[(.*)\]: (\d+)$" % name, text, flags=re.M):
        entries[tuple(k.strip() for k in m.group(1).split(","))] += int(m.group(2))
    return entries


@pytest.mark.parametrize("build", cases.consumer_builds("examples", cases.function_cases("call_stack")))
def test_top(build):
    """Calls per function and file, summed over the refreshes (no ROWS
    argument: every function is shown)."""
    need_bpftrace()
    with harness.FixtureDir() as d:
        text = BPFTRACE.run_launched(os.path.join(BT, "top.bt"), build, d.path, [d.path + "call_stack.py"])
        got = collections.Counter()
        for (pid, func, file), n in map_entries(text, "calls").items():
            if file.startswith(d.path):
                got[(func, file[len(d.path):])] += n
    assert "calls since the last refresh" in text
    expected = collections.Counter(
        (func, file) for kind, func, file, _ in cases.expected_calls(build, "call_stack")
        if kind == "function__entry")
    assert got == expected


@pytest.mark.parametrize("build", cases.consumer_builds("examples", cases.function_cases("call_stack")))
def test_latency(build):
    """One timed call per return; every call has a histogram and a total."""
    need_bpftrace()
    with harness.FixtureDir() as d:
        text = BPFTRACE.run_launched(os.path.join(BT, "latency.bt"), build, d.path, [d.path + "call_stack.py"])
        calls = dict(((f, file[len(d.path):]), n) for (f, file), n
                     in map_entries(text, "calls").items() if file.startswith(d.path))
        totals = set((f, file[len(d.path):]) for (f, file) in map_entries(text, "total_us")
                     if file.startswith(d.path))
        hists = set((m.group(1), m.group(2)[len(d.path):]) for m in re.finditer(
            r"^@us\[(.*), (\S+)\]:\s*$", text, flags=re.M) if m.group(2).startswith(d.path))
    expected = collections.Counter(
        (func, file) for kind, func, file, _ in cases.expected_calls(build, "call_stack")
        if kind == "function__return")
    assert calls == dict(expected)
    assert totals == set(expected) == hists


@pytest.mark.parametrize("build", cases.consumer_builds("examples", cases.function_cases("call_stack")))
def test_stacks(build):
    """One folded line per return: the stack, outermost first, and a time."""
    need_bpftrace()
    comm = os.path.basename(harness.interpreter(build))[:15]
    with harness.FixtureDir() as d:
        # -S: no site.py, whose main() would share the fixture's prefix.
        text = BPFTRACE.run_launched(os.path.join(BT, "stacks.bt"), build, d.path, [d.path + "call_stack.py"], ["-S"])
    prefix = comm + ";<module>;main"
    got = []
    for line in text.splitlines():
        m = re.match(r"(\S+) (-?\d+)$", line)
        if m and (m.group(1) + ";").startswith(prefix + ";"):
            assert int(m.group(2)) >= 0, line
            got.append(m.group(1))
    expected, stack = [], [comm]
    for kind, func, _, _ in cases.expected_calls(build, "call_stack"):
        if kind == "function__entry":
            stack.append(func)
        else:
            line = ";".join(stack)
            if (line + ";").startswith(prefix + ";"):
                expected.append(line)
            stack.pop()
    assert got == expected


GC_PROGRAM = """\
import gc, os, sys
gc.disable()
if sys.argv[1] == "collect":
    for _ in range(3):
        cycle = []
        cycle.append(cycle)
    del cycle
    gc.collect(0)
    gc.collect(1)
    gc.collect(1)
    gc.collect(2)
os._exit(0)
"""


@pytest.mark.parametrize("build", cases.consumer_builds("examples", harness.builds()))
def test_gc(build):
    """The fixture collects generation 0 once (finding its 3 cycles), 1
    twice, 2 once, on top of what start-up collects: the difference from a
    run that does not is exactly that."""
    need_bpftrace()
    with harness.FixtureDir() as d:
        program = os.path.join(d.path, "gc_counts.py")
        with open(program, "w") as f:
            f.write(GC_PROGRAM)
        env = {"PYTHONHASHSEED": "0"}
        base = BPFTRACE.run_launched(os.path.join(BT, "gc.bt"), build, d.path, [program, "none"], ["-S"], env)
        test = BPFTRACE.run_launched(os.path.join(BT, "gc.bt"), build, d.path, [program, "collect"], ["-S"], env)

    def counts(text, name):
        return dict((int(k[0]), v) for k, v in map_entries(text, name).items())

    added = collections.Counter(counts(test, "collections"))
    added.subtract(counts(base, "collections"))
    assert dict((g, n) for g, n in added.items() if n) == {0: 1, 1: 2, 2: 1}
    found = collections.Counter(counts(test, "found"))
    found.subtract(counts(base, "found"))
    if build.endswith("-ft"):
        # The free-threaded collector is not generational: any collection
        # examines every object, start-up's garbage included.
        assert sum(found.values()) >= 3
    else:
        assert sum(found.values()) == 3
    for g in (0, 1, 2):
        assert g in counts(test, "total_us") and g in counts(test, "max_us")
