"""The markers fire where the interpreter's own hooks fire, with the values
those hooks see.

For each build and fixture with an expected output (expected/<series>/), each
consumer's view of the fixture must be exactly the expected output, and so
must the oracle's (sys.setprofile / sys.settrace), for the kinds of event the
oracle can see.  The expected files are thus checked twice: a marker that is
missing, misplaced or given wrong arguments fails the consumer test, and an
expected file that drifted from what the interpreter itself reports fails the
oracle test.
"""

import os

import pytest

import cases
import consumers
import harness
import usdt

ORACLE_SEES = ("function__", "cfunction__", "line ")
# Not fixtures with an expected output: the oracle, modules fixtures
# import, the fixtures of the property tests at the end, the busy loop the
# examples run in the guest (test_examples.py), and the fork fixtures
# (test_fork.py).
NOT_COMPARED = ("oracle.py", "dtrace_helper.py", "wrappers.py", "threads.py", "attach.py",
                "spin.py", "profiled.py", "forks.py", "pool.py", "subprocesses.py")


CASES = list(cases.semantics_cases())


def ids(case):
    return "%s-%s" % case


# (case, consumer): each consumer on the builds cases.consumer_builds gives
# it, and the fixtures cases.consumer_fixture does.
CONSUMER_CASES = [(case, consumer) for consumer in consumers.CONSUMERS for case in CASES
                  if case[0] in cases.consumer_builds(consumer.name, [case[0]])
                  and cases.consumer_fixture(consumer.name, case[1])]


@pytest.mark.parametrize("case, consumer", CONSUMER_CASES,
                         ids=["%s-%s-%s" % (c + (k.name,)) for c, k in CONSUMER_CASES])
def test_consumer(consumer, case):
    build, fixture = case
    harness.require(consumer)
    consumer.details = ""
    got = consumer.run(build, cases.script_of(fixture), fixture)
    want = harness.read_expected(build, fixture)
    assert got == want, harness.mismatch(got, want, consumer.details)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_oracle(case):
    build, fixture = case
    got = harness.oracle(build, cases.script_of(fixture), fixture)
    expected = [e for e in harness.read_expected(build, fixture) if e.startswith(ORACLE_SEES)]
    assert got == expected


@pytest.mark.quick
def test_every_fixture_has_expectations():
    """A fixture nobody checks is a fixture that can rot."""
    fixtures = set(name[:-3] for name in os.listdir(harness.DATA)
                   if name.endswith(".py") and name not in NOT_COMPARED)
    checked = set(fixture for _, fixture in CASES)
    assert fixtures <= checked, sorted(fixtures - checked)


def builds_claiming(marker):
    return [b for b in harness.builds()
            if marker in usdt.parse_claims(harness.claims(b))]


def bpftrace():
    return harness.require(consumers.Bpftrace())


@pytest.mark.parametrize("build", builds_claiming("function__entry"))
def test_threads_balance(build):
    """Two threads calling at once: per thread, entries and returns nest."""
    events = bpftrace().trace(build, "calls", "threads")
    stacks, calls = {}, {}
    for tid, event in events:
        kind, filename, funcname = event.split()[:3]
        stack = stacks.setdefault(tid, [])
        if kind == "function__entry":
            stack.append(funcname)
            calls.setdefault(tid, []).append(funcname)
        elif kind == "function__return":
            assert stack and stack[-1] == funcname, (tid, event, stack)
            stack.pop()
    assert all(not s for s in stacks.values()), stacks
    workers = [tid for tid, names in calls.items() if "run" in names]
    assert len(workers) == 2
    for tid in workers:
        assert calls[tid].count("run") == 1
        assert calls[tid].count("work") == 50 * 11


@pytest.mark.parametrize("build", builds_claiming("function__entry"))
def test_attach_to_running_program(build):
    """A consumer attached to a running program sees the returns of frames
    that started before it came, then everything."""
    events = bpftrace().attach(build, "calls", "attach")
    seen = [tuple(e.split()[:3:2]) for e in events if e.startswith("function__")]
    assert seen == [
        ("function__return", "wait_for"),
        ("function__entry", "after"),
        ("function__return", "after"),
        ("function__return", "main"),
        ("function__return", "<module>"),
    ]


@pytest.mark.parametrize("build", builds_claiming("function__entry"))
def test_program_with_own_profiler(build):
    """The program profiles itself for a while: the markers see the same
    calls, with the same values, before, during and after (on 3.13 they
    then come through the profile hooks instead of straight from PEP 669's
    dispatch), and the program's profile function sees exactly its own
    events (the fixture calls verdict_right() if so)."""
    events = bpftrace().run(build, "calls", "profiled")
    names = ("work", "leaf", "verdict_right", "verdict_wrong")
    calls = [e for e in events
             if e.startswith("function__") and e.split()[2] in names]
    one_round = [("function__entry", "work"), ("function__entry", "leaf"),
                 ("function__return", "leaf"), ("function__entry", "leaf"),
                 ("function__return", "leaf"), ("function__return", "work")]
    assert [tuple(e.split()[:3:2]) for e in calls] == one_round * 3 + [
        ("function__entry", "verdict_right"), ("function__return", "verdict_right")]
    before, during, after = calls[0:6], calls[6:12], calls[12:18]
    assert before == during == after


@pytest.mark.parametrize("build", builds_claiming("function__entry"))
def test_balanced_from_the_start(build):
    """A program started under a consumer: every return of every thread has
    its entry, from the interpreter's first frame (on 3.13, the frame whose
    RESUME turns the hooks on included) to its last, and all of them
    return."""
    events = bpftrace().trace(build, "every_call", "call_stack")
    assert len(events) > 100, events
    depth = {}
    for tid, event in events:
        kind = event.split()[0]
        depth[tid] = depth.get(tid, 0) + (1 if kind == "function__entry" else -1)
        assert depth[tid] >= 0, (tid, event)
    assert all(d == 0 for d in depth.values()), depth
    first = events[0][1].split()
    assert first[0] == "function__entry", first
