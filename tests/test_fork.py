"""Forked children are unharmed by a consumer of the markers.

Each fixture fires every marker in the parent first, then forks children
that run Python code: forks.py (os.fork() children that call functions,
collect garbage, import, and os._exit() with statuses of their own),
pool.py (a multiprocessing Pool of forked workers), subprocesses.py
(subprocess.call and check_output, which on Python 2.7 run Python code
between fork and exec).  Each runs untraced and under every consumer,
attached to every marker the build claims: bpftrace on the fixture's
process alone (started with -c; -p on a shared libpython, see bpftrace_c)
and attached system-wide to the ELF, gdb on the parent (it detaches from the
children), stap in the qemu guest.  What the fixture prints (the
children's exit statuses, the pool's results, the return codes) must be
what it prints untraced, and the consumer must have seen every marker
fire and the fixture's own calls (a consumer of every process of the ELF:
in each child of forks.py too).

The C program dtracedata/forksite.c shows why the sites follow libbpf
usdt.h's convention (scripts/usdt.py sites): on Linux 6.18 a child forked after
its parent hit a probed 5-byte nop dies of SIGSEGV; with the 1-byte nop
then the 10-byte nop, it exits normally.  (The guest's 6.1 kernel does not
optimize uprobes: under stap the fixtures only show that stap leaves
children alone.)
"""

import functools
import os
import re
import subprocess
import tempfile
import warnings

import pytest

import cases
import consumers
import harness
import usdt
from guest import jobs

FIXTURES = cases.FORK_FIXTURES

# What each fixture prints untraced.
EXPECTED = {
    "forks": ["child %d: exit %d" % (k, 10 + k) for k in range(4)],
    "pool": ["sum 328350", "pool sum 328350", "workers exit [0, 0]"],
    "subprocesses": sum((["call %d" % (3 + i), "output echo %d" % i] for i in range(3)), []),
}

# The processes that run the fixture's own functions, which a consumer
# tracing every process of the ELF must see: the parent, and forks.py's
# children (pool.py's workers may not all get a task).
PROCESSES = {"forks": 5, "pool": 1, "subprocesses": 1}

TIMEOUT = 300


def claimed(build):
    return usdt.parse_claims(harness.claims(build))


def run_fixture(command, **kw):
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=TIMEOUT, **kw)
    assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
    return proc.stdout.splitlines()


@functools.lru_cache(maxsize=None)
def untraced(build, fixture):
    with harness.FixtureDir() as d:
        return run_fixture([harness.interpreter(build), d.path + fixture + ".py"])


# --- the consumers: (what the fixture printed, {marker: events},
#     {pid: the fixture's function__entry events}) ------------------------------

def bpftrace_script(build, d):
    """Counts each marker's events, and the fixture's own calls by process,
    one block per marker (bpftrace 0.17 fails to load a script that names
    a usdt probe in two blocks, one of them using `probe`)."""
    blocks = ['BEGIN { printf("tracing\\n"); }\n']
    for marker in claimed(build):
        fixture = ""
        if marker == "function__entry":
            fixture = ('\n    if (strncmp(str(arg0), "%s", %d) == 0) { @fixture[pid] = count(); }'
                       % (d.path, len(d.path)))
        blocks.append('usdt:%s:python:%s\n{\n    @hits["%s"] = count();%s\n}\n'
                      % (harness.marker_object(build), marker, marker, fixture))
    return "".join(blocks)


def bpftrace_counts(text):
    hits = dict((m, int(n)) for m, n in re.findall(r"^@hits\[(\w+)\]: (\d+)$", text, re.M))
    pids = dict((int(p), int(n)) for p, n in re.findall(r"^@fixture\[(\d+)\]: (\d+)$", text, re.M))
    return hits, pids


def bpftrace_c(build, fixture):
    """bpftrace on the fixture's process alone: started with -c, whose
    stdout is the fixture's (bpftrace's own output goes to -o's file).  A
    shared libpython's markers bpftrace 0.17 cannot find in a process it
    starts with -c (the library is not loaded yet): there the fixture waits
    in harness.LAUNCHER, libpython loaded, for bpftrace -p."""
    with harness.FixtureDir() as d:
        bt, out = d.path + "fork.bt", d.path + "out.txt"
        with open(bt, "w") as f:
            f.write(bpftrace_script(build, d))
        if harness.marker_object(build) != os.path.realpath(harness.interpreter(build)):
            printed = []
            text = consumers.Bpftrace().run_launched(bt, build, d.path,
                                                   [d.path + fixture + ".py"], printed=printed)
            return (printed,) + bpftrace_counts(text)
        command = "%s %s%s.py" % (harness.interpreter(build), d.path, fixture)
        # bpftrace prints blank lines to stdout as it exits.
        printed = [line for line in run_fixture(["bpftrace", "-o", out, "-c", command, bt],
                                                cwd=d.path, env=consumers.Bpftrace.ENV) if line]
        with open(out) as f:
            return (printed,) + bpftrace_counts(f.read())


def bpftrace_system(build, fixture):
    """bpftrace attached to the ELF, for every process: the fixture runs on
    its own once every probe is in place."""
    with harness.FixtureDir() as d:
        bt, out = d.path + "fork.bt", d.path + "out.txt"
        with open(bt, "w") as f:
            f.write(bpftrace_script(build, d))
        tracer = consumers.Bpftrace().start(bt, out)
        try:
            printed = run_fixture([harness.interpreter(build), d.path + fixture + ".py"],
                                  cwd=d.path)
        finally:
            stderr = consumers.Bpftrace.interrupt(tracer)
        with open(out) as f:
            text = f.read()
        assert tracer.returncode == 0, (stderr, text)
        return (printed,) + bpftrace_counts(text)


GDB_SCRIPT = """\
set pagination off
set confirm off
set breakpoint pending on
set detach-on-fork on
set follow-fork-mode parent
python
import gdb

CHAR_P = gdb.lookup_type("char").pointer()
hits, fixture = {}, {}


class Marker(gdb.Breakpoint):
    def __init__(self, name):
        gdb.Breakpoint.__init__(self, "-probe-stap python:" + name, internal=True)
        self.name = name

    def stop(self):
        hits[self.name] = hits.get(self.name, 0) + 1
        if self.name == "function__entry":
            filename = int(gdb.parse_and_eval("$_probe_arg0"))
            if filename and gdb.Value(filename).cast(CHAR_P).string().startswith("@DIR@"):
                pid = gdb.selected_inferior().pid
                fixture[pid] = fixture.get(pid, 0) + 1
        return False


for name in @MARKERS@:
    Marker(name)
end
run @FIXTURE@ > @DIR@printed.txt
python
with open("@DIR@counts.txt", "w") as f:
    for name, n in sorted(hits.items()):
        f.write("@hits[%s]: %d\\n" % (name, n))
    for pid, n in fixture.items():
        f.write("@fixture[%d]: %d\\n" % (pid, n))
end
"""


def gdb(build, fixture):
    """gdb on the parent: breakpoints that count and never stop; at each
    fork gdb detaches from the child, its breakpoints removed."""
    with harness.FixtureDir() as d:
        script = d.path + "fork.gdb"
        with open(script, "w") as f:
            f.write(GDB_SCRIPT.replace("@DIR@", d.path)
                    .replace("@FIXTURE@", d.path + fixture + ".py")
                    .replace("@MARKERS@", repr(claimed(build))))
        out = subprocess.run(
            consumers.GDB + ["-x", script, harness.interpreter(build)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
            timeout=TIMEOUT, cwd=d.path).stdout
        assert "exited normally" in out, out[-3000:]
        # The breakpoints' Python must have run without fault.
        assert "Python Exception" not in out and "Error occurred in Python" not in out, out[-3000:]
        with open(d.path + "printed.txt") as f:
            printed = f.read().splitlines()
        with open(d.path + "counts.txt") as f:
            return (printed,) + bpftrace_counts(f.read())


def guest_jobs_of(item):
    """The guest jobs a test of this file reads (tests/guest/jobs.py)."""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    if params.get("consumer") == "stap":
        return [jobs.fork_name(params["build"], params["fixture"])]
    return []


def stap(build, fixture):
    """stap in the guest (tests/guest/jobs.py: forks): staprun -c runs the
    fixture, whose stdout the job keeps; the module's counts are out.txt."""
    from guest.session import session
    result = session().result(jobs.fork_name(build, fixture))
    counts = result.trace()
    hits = dict((m, int(n)) for m, n in re.findall(r"^hits (\w+) (\d+)$", counts, re.M))
    pids = dict((int(p), int(n)) for p, n in re.findall(r"^fixture (\d+) (\d+)$", counts, re.M))
    return result.target_stdout().splitlines(), hits, pids


# consumer: (harness's consumer, which says whether it can run; the runner;
# whether it traces every process of the ELF).
CONSUMERS = {
    "bpftrace-c": (consumers.Bpftrace(), bpftrace_c, False),
    "bpftrace": (consumers.Bpftrace(), bpftrace_system, True),
    "gdb": (consumers.Gdb(), gdb, False),
    "stap": (consumers.Stap(), stap, True),
}


@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("build", harness.builds())
def test_untraced(build, fixture):
    """The fixtures themselves: their children do what they are told."""
    assert untraced(build, fixture) == EXPECTED[fixture]


# (build, fixture, consumer): gdb and stap on the builds cases.consumer_builds
# gives them.
RUNS = [(build, fixture, consumer) for build in harness.builds() for fixture in FIXTURES
        for consumer in sorted(CONSUMERS)
        if cases.consumer_builds({"gdb": "fork-gdb", "bpftrace-c": "bpftrace",
                                  "stap": "fork-stap"}.get(consumer, consumer), [build])]


@pytest.mark.parametrize("build, fixture, consumer", RUNS, ids=["-".join(r) for r in RUNS])
def test_children_unharmed(build, fixture, consumer):
    tool, runner, every_process = CONSUMERS[consumer]
    harness.require(tool)
    printed, hits, pids = runner(build, fixture)
    assert printed == untraced(build, fixture), (hits, pids)
    # Not vacuous: every marker fired while the consumer was attached, and
    # it saw the fixture's calls, in each process it traces.
    assert sorted(m for m in claimed(build) if hits.get(m, 0) > 0) == sorted(claimed(build)), hits
    assert sum(pids.values()) > 0, pids
    if every_process:
        assert len(pids) >= PROCESSES[fixture], pids


# --- the hazard, in C ----------------------------------------------------------

def test_c_site_conventions_under_bpftrace():
    """A C program hits its marker 5 times, then forks 3 children that hit
    it once each and exit 7, 8, 9, traced by bpftrace -c.  With the nop;
    nop10 site every child exits as untraced; with a 5-byte nop, on a
    kernel that optimizes it (Linux 6.18), every child dies of SIGSEGV."""
    harness.require(consumers.Bpftrace())
    fine = ["child %d: exit %d" % (c, 7 + c) for c in range(3)]
    got = {}
    with tempfile.TemporaryDirectory() as tmp:
        for site in harness.SITE_NOPS:
            exe = harness.forksite(tmp, site)
            assert run_fixture([exe]) == fine, site
            out = os.path.join(tmp, site + ".txt")
            got[site] = [line for line in run_fixture(
                ["bpftrace", "-o", out, "-c", exe, "-e", "usdt:%s:pst:tick { @ = count(); }" % exe])
                if line]
            with open(out) as f:
                text = f.read()
            assert re.search(r"^@: [5-8]$", text, re.M), (site, text)
    assert got["nop-nop10"] == fine
    crashed = ["child %d: signal 11" % c for c in range(3)]
    if got["nop5"] == crashed:
        print("%s: on this kernel (%s) the 5-byte nop site kills every forked child "
              "(SIGSEGV); the nop; nop10 site does not" % (harness.FORKSITE, os.uname().release))
    else:
        assert got["nop5"] == fine, got["nop5"]
        warnings.warn("on this kernel (%s) a probed 5-byte nop site does not harm forked "
                      "children: only the nop; nop10 site was checked" % os.uname().release)
