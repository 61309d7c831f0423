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

import harness

# The consumer script (and oracle mode) each fixture is traced with.
SCRIPT = {"line": "lines"}
ORACLE_SEES = ("function__", "cfunction__", "line ")


def cases():
    for build in harness.builds():
        directory = os.path.join(harness.DATA, "expected", harness.series_of(build))
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            if name.endswith(".txt"):
                yield build, name[:-len(".txt")]


CASES = list(cases())


def ids(case):
    return "%s-%s" % case


@pytest.mark.parametrize("consumer", harness.CONSUMERS, ids=lambda c: c.name)
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_consumer(consumer, case):
    build, fixture = case
    reason = consumer.unavailable()
    if reason:
        if harness.REQUIRE_CONSUMERS:
            pytest.fail("REQUIRE_ALL_CONSUMERS=1 but %s cannot run: %s" % (consumer.name, reason))
        pytest.skip("%s: %s" % (consumer.name, reason))
    got = consumer.run(build, SCRIPT.get(fixture, "calls"), fixture)
    assert got == harness.read_expected(build, fixture)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_oracle(case):
    build, fixture = case
    got = harness.oracle(build, SCRIPT.get(fixture, "calls"), fixture)
    expected = [e for e in harness.read_expected(build, fixture) if e.startswith(ORACLE_SEES)]
    assert got == expected


def test_every_fixture_has_expectations():
    """A fixture nobody checks is a fixture that can rot."""
    fixtures = set(name[:-3] for name in os.listdir(harness.DATA)
                   if name.endswith(".py") and name not in ("oracle.py", "dtrace_helper.py"))
    checked = set(fixture for _, fixture in CASES)
    assert fixtures <= checked, sorted(fixtures - checked)
