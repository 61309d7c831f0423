"""make demo's last step, scripts/demo.sh: on each build, the call tree of
examples/workload.py from its first frame (start-up and shutdown folded into
a line each) must be exactly what sys.setprofile sees of the workload's
Python calls, its table must count each function's calls as the tree does,
and the whole must stay short enough to read (under 150 lines a Python).
"""

import collections
import os
import re
import subprocess

import pytest

import consumers
import harness

DEMO = os.path.join(harness.REPO, "scripts", "demo.sh")
WORKLOAD = "examples/workload.py"
BPFTRACE = consumers.Bpftrace()


def oracle_calls(build):
    """(kind, name, lineno) of the workload's Python frames, as its
    interpreter's sys.setprofile reports them."""
    out = subprocess.run(
        [harness.interpreter(build), os.path.join(harness.REPO, "tests", "dtracedata", "oracle.py"),
         "calls", os.path.join(harness.REPO, WORKLOAD)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
        timeout=120, cwd=harness.REPO)
    assert out.returncode == 0, out.stderr
    events = []
    for line in out.stdout.splitlines():
        kind, _, name, lineno = line.split()[:4]
        if kind == "function__entry":
            events.append(("=>", name, int(lineno)))
        elif kind == "function__return":
            events.append(("<=", name, None))
    return events


def demo(build):
    out = subprocess.run([DEMO, harness.interpreter(build)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


TREE = re.compile(r"^( *)(=>|<=) (\S+)(?: in (\S+):(\d+)|  [0-9.]+ us)$")
ROW = re.compile(r"^ +(\d+) +[0-9.]+ +[0-9.]+  (\S+) \((\S+)\)$")


@pytest.mark.parametrize("build", harness.builds())
def test_demo(build):
    harness.require(BPFTRACE)
    lines = demo(build)
    assert lines[0].startswith("== build/bin/%s: %s" % (build, WORKLOAD)), lines[0]
    start = [i for i, l in enumerate(lines) if re.match(r"^ +\(start-up: \d+ calls", l)]
    end = [i for i, l in enumerate(lines) if re.match(r"^ +\(shutdown: \d+ calls", l)]
    assert len(start) == 1 and len(end) == 1, "\n".join(lines)
    assert int(re.search(r"\d+", lines[start[0]]).group()) > 0, "start-up shows no call"

    tree, depth = [], 0
    for line in lines[start[0] + 1:end[0]]:
        m = TREE.match(line)
        assert m, "not a line of the tree: %r" % line
        indent, arrow, name, path, lineno = m.groups()
        if arrow == "<=":
            depth -= 1
        assert len(indent) == 2 * depth, "indentation of %r" % line
        if arrow == "=>":
            depth += 1
            assert path == WORKLOAD, line
        tree.append((arrow, name, int(lineno) if lineno else None))
    assert depth == 0
    assert tree[0] == ("=>", "<module>", tree[0][2]), "the tree starts at %r" % (tree[0],)
    got = ["%s %s %s" % e for e in tree]
    want = ["%s %s %s" % e for e in oracle_calls(build)]
    assert got == want, harness.mismatch(got, want)

    calls = collections.Counter(name for arrow, name, _ in tree if arrow == "=>")
    rows = [ROW.match(l) for l in lines[end[0] + 1:]]
    rows = [m.groups() for m in rows if m]
    assert rows, "no table of the hottest functions"
    for count, name, path in rows:
        assert path == WORKLOAD and int(count) == calls[name], (count, name, calls[name])
    assert len(rows) == min(8, len(calls))
    assert len(lines) < 150, "%d lines" % len(lines)
