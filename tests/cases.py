"""What the tests run, as data: the test modules and the guest's jobs
(tests/guest/jobs.py) both read it here, so that no test module imports
another and the guest imports none.

  SCRIPT, script_of    the consumer script (and the oracle's mode) each
                       fixture of tests/dtracedata is traced with
  semantics_cases()    (build, fixture) for each fixture with an expected
                       output in the build's series (test_semantics.py, the
                       guest's stap runs of them)
  GUEST_EXAMPLES       examples/*.stp run in the guest (test_examples.py)
  FORK_FIXTURES        the fixtures that fork (test_fork.py, the guest's)
  function_cases(),    builds with function markers and the function events
  expected_calls()     a fixture's expected output holds (the example
                       scripts' tests, bcc's)
  consumer_builds(),   which builds and fixtures each consumer runs on
  consumer_fixture()   (docs/testing.md, "The matrix")
"""

import os

import harness

# The consumer script (and oracle mode) a fixture is traced with: "calls"
# unless named here.
SCRIPT = {"line": "lines"}


def script_of(fixture):
    return SCRIPT.get(fixture, "calls")


def semantics_cases():
    for build in harness.builds():
        directory = os.path.join(harness.DATA, "expected", harness.series_of(build))
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            if name.endswith(".txt"):
                yield build, name[:-len(".txt")]


# Run in the guest (tests/guest/jobs.py examples) on every series:
# (example, its arguments, the fixture of tests/dtracedata it runs with -c).
# test_examples.py's CHECKS says what each must print.
GUEST_EXAMPLES = [
    ("calltree.stp", [], "call_stack"),
    ("top.stp", [], "spin"),
    ("latency.stp", [], "spin"),
    ("slowcalls.stp", ["0"], "call_stack"),
    ("gc.stp", [], "gc_import"),
    ("imports.stp", [], "gc_import"),
    ("lines.stp", [], "spin"),
    ("stacks.stp", [], "call_stack"),
    ("cfunctions.stp", [], "spin"),
]

# The fixtures that fork: os.fork() children, a multiprocessing Pool,
# subprocess calls (test_fork.py).
FORK_FIXTURES = ("forks", "pool", "subprocesses")


def function_cases(fixture):
    """Builds claiming the function markers, with expected events for fixture."""
    for build in harness.builds():
        with open(harness.claims(build)) as f:
            claimed = f.read().split()
        if "function__entry" in claimed and os.path.exists(harness.expected_path(build, fixture)):
            yield build


def expected_calls(build, fixture):
    """[(kind, func, file, line)] of the function events, in order."""
    events = []
    for line in harness.read_expected(build, fixture):
        words = line.split()
        if words[0] in ("function__entry", "function__return"):
            events.append((words[0], words[2], words[1], int(words[3])))
    return events


# --- which builds each consumer runs on (docs/testing.md, "The matrix") -----
#
# bpftrace and the oracle hold every build to the fixtures' expectations.
# The costlier consumers run on fewer: gdb (a ptrace stop and its Python
# per hit), bcc (a BPF compile per run), perf and the example scripts run
# on each series' own build and its --enable-shared one (markers in a
# shared library), not on the free-threaded and tier-2 variants, whose
# difference is the interpreter loop that bpftrace and the oracle check
# there.  stap (a module and a run in the qemu guest, under TCG, per case)
# runs the fixtures on 2.7's own build and on the newest 3.x series' (the
# older 3.x series runs the same marker C, markers/, its hooks checked by
# bpftrace, gdb and the oracle on every fixture); its one-line call tree,
# aliases and semaphores run on every build (test_guest.py).  gdb on the
# forking fixtures (a stop per hit in programs that import
# multiprocessing: about two minutes each on 3.x) runs on each series' own
# build alone.

# gdb on every fixture but async_chain: its import of asyncio alone is
# thousands of function events, each a ptrace stop (50 s a build); its
# coroutine events are bpftrace's, the oracle's and stap's.
GDB_SPARED = ("async_chain",)


def consumer_fixture(consumer, fixture):
    """Whether consumer runs fixture in test_semantics."""
    return not (consumer == "gdb" and fixture in GDB_SPARED)


def full_matrix(build):
    """Whether the costlier consumers run on build."""
    return not build.endswith(("-ft", "-jit"))


def newest_3x():
    """Our newest 3.x series (python3.14)."""
    return max((s for s in harness.series() if s.startswith("python3.")),
               key=lambda s: tuple(int(n) for n in s[len("python"):].split(".")))


def consumer_builds(consumer, builds):
    """The builds of builds that consumer (bpftrace, gdb, stap, bcc, perf,
    examples, fork-gdb, fork-stap) runs on."""
    if consumer == "bpftrace":
        return list(builds)
    if consumer == "stap":
        ours = [b for b in builds if b == harness.series_of(b)]
        return [b for b in ours if not b.startswith("python3.") or b == newest_3x()]
    if consumer in ("fork-gdb", "fork-stap"):
        return [b for b in builds if b == harness.series_of(b)]
    return [b for b in builds if full_matrix(b)]
