import collections
import os
import sys
import time

import pytest

# The tests import harness.py ... from this directory, and the build tools'
# modules (usdt.py) from scripts/.
HERE = os.path.dirname(os.path.abspath(__file__))

# Under `make check` the tests inherit make's MAKEFLAGS and MAKELEVEL: the
# makes they start would print "Entering directory" lines and pass flags
# on.  They run as a user's make does, from the top.
for _name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
    os.environ.pop(_name, None)
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(os.path.dirname(HERE), "scripts"))


# Per test file: the seconds its tests took, and when (since the session's
# start) its first test began and its last ended: where CI's time goes.
_START = time.monotonic()
_FILES = collections.OrderedDict()


def pytest_runtest_logreport(report):
    name = report.nodeid.split("::")[0]
    now = time.monotonic() - _START
    took, first, last = _FILES.get(name, (0.0, now - report.duration, now))
    _FILES[name] = (took + report.duration, min(first, now - report.duration), now)


def pytest_terminal_summary(terminalreporter):
    """Where the time went, per test file; what the qemu guest ran on
    (kernel, headers, runtime), if a test used it."""
    terminalreporter.section("time per test file (s: own, from, to)")
    for name, (took, first, last) in _FILES.items():
        terminalreporter.write_line("%-34s %7.0f %7.0f %7.0f" % (name, took, first, last))
    import consumers
    if consumers.Bpftrace.launched:
        terminalreporter.section("bpftrace launched runs")
        terminalreporter.write_line(
            "%d of %d ran again (bpftrace could not attach a uprobe)%s" % (
                len(consumers.Bpftrace.reran), consumers.Bpftrace.launched,
                ": " + ", ".join(consumers.Bpftrace.reran) if consumers.Bpftrace.reran else ""))
    from guest import session
    if session._SESSION is not None and session._SESSION.report:
        terminalreporter.section("SystemTap guest (tests/guest)")
        for line in session._SESSION.report:
            terminalreporter.write_line(line)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "quick: needs no interpreter build, guest or consumer (make check-quick)")


@pytest.hookimpl(trylast=True)    # after -k and -m have deselected
def pytest_collection_modifyitems(config, items):
    """The qemu guest runs only the jobs the selected tests read: a run of a
    few tests compiles and boots for those alone, in the background from
    now on.  The tests that read its results run after the others, and
    those that read the RPMs (built after the guest) last, each part in
    its own order."""
    from guest import jobs, session
    wanted = set()
    readers = []
    for item in items:
        if getattr(item, "module", None) is not None:
            names = jobs.wanted_by(item)
            if names:
                readers.append(item)
                wanted.update(names)
    session.session().select(wanted)
    # The RPMs build in the background too, after the guest, if a test
    # reads them (test_rpm.py's packages and payload); those tests run
    # after the guest's readers.
    rpm = [item for item in items
           if getattr(item, "module", None) is not None and item.module.__name__ == "test_rpm"
           and {"packages", "payload"} & set(getattr(item, "fixturenames", ()))]
    later = set(map(id, readers + rpm))
    items[:] = [item for item in items if id(item) not in later] + readers + rpm
    if wanted and not config.option.collectonly:
        session.session().start()
    if rpm and not config.option.collectonly:
        rpm[0].module.build_in_background(after=session.session().thread)


def pytest_sessionfinish():
    """A session that ends before its guest or the RPMs' build (-x,
    Ctrl-C) stops them."""
    import harness
    harness.stop_background()
