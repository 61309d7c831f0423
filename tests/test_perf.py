"""perf (linux-perf) with our markers, as docs/consumers.md's "perf" gives
it, on every build: `perf buildid-cache --add` makes perf list exactly the
markers the build claims (sdt_python:*); `perf probe` defines one as a
trace event, with the marker's semaphore as its reference counter; `perf
record` of the fixture records it once per hit, next to the same site
defined by `scripts/usdt.py uprobe` with its arguments as strings, whose
values are exactly the fixture's expected function__entry events; `perf
report` counts the samples perf script shows; and the probe definitions are
gone after `perf probe -d` and the uprobe_events removal.  perf's build-id
cache lives in a scratch directory (--buildid-dir), never in ~/.debug.
"""

import collections
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import cases
import consumers
import harness
import usdt

UPROBE_EVENTS = consumers.Perf.UPROBE_EVENTS
GROUP = "pst_perf"          # our string-fetching events: not a user's "python"
FIXTURE = "call_stack"
# A marker whose arguments are all registers, and one with a string behind
# a memory operand (cfunction's funcname: 8@(%r14) on 3.13).
MARKERS = ("function__entry", "cfunction__entry")


PERF = consumers.Perf()


def uprobe_lines(elf):
    with open(UPROBE_EVENTS) as f:
        return [line for line in f.read().splitlines() if " %s:" % elf in line]


def write_uprobe_events(line):
    # Not open(..., "a"): Python seeks to the end, which tracefs refuses.
    fd = os.open(UPROBE_EVENTS, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


# A string the kernel cannot read (a NULL pointer) shows as (fault).
TRACE = re.compile(r'^\s*(\S+):\s.*filename=(?:"([^"]*)"|\(fault\)) '
                   r'funcname=(?:"([^"]*)"|\(fault\)) lineno=(-?\d+) '
                   r'modulename=(?:"([^"]*)"|\(fault\))$')


# Our builds of the matrix, and Debian 13's own python3.13 with usdtmon
# (its function and cfunction markers from the module's shared object,
# which perf probe's semaphore makes usdtmon turn on).
PERF_BUILDS = cases.consumer_builds("perf", harness.builds()) + ["python3.13-trixie+usdtmon"]


@pytest.mark.parametrize("build", PERF_BUILDS)
def test_perf(build):
    reason = PERF.unavailable()
    if reason:
        harness.cannot_run("perf cannot run: " + reason)
    elf = harness.marker_object(build)
    claims = set(usdt.parse_claims(harness.claims(build)))
    assert set(MARKERS) <= claims
    declarations = usdt.parse_declarations(harness.PROBES_D)
    ours = [line for m in MARKERS for line in usdt.uprobe_events(elf, declarations, m, group=GROUP)]
    events = [re.match(r"^p:(\S+)/(\S+) ", line).groups() for line in ours]
    scratch = tempfile.mkdtemp(prefix="pst-perf-")
    buildid = os.path.join(scratch, "buildid")
    try:
        # list: exactly the claimed markers, once the ELF is in the cache.
        PERF.run(buildid, "buildid-cache", "--add", elf)
        listed = set(re.findall(r"^\s*sdt_python:(\w+)\s", PERF.run(buildid, "list", "sdt_python:*"),
                                re.M))
        assert listed == claims

        # probe: the markers as trace events, counting on their semaphores.
        for marker in MARKERS:
            PERF.run(buildid, "probe", "-q", "-x", elf, "-a", "sdt_python:" + marker)
        sdt = [line for line in uprobe_lines(elf) if line.startswith("p:sdt_python/")]
        assert len(sdt) >= len(MARKERS), sdt
        assert all(re.search(r":0x[0-9a-f]+\(0x[0-9a-f]+\)", line) for line in sdt), sdt
        for line in ours:
            write_uprobe_events(line)

        # record, script, report: one sample per hit of each; the string
        # events' values are the fixture's expected events of those markers.
        data = os.path.join(scratch, "perf.data")
        with harness.FixtureDir(harness.root_of(build)) as d:
            PERF.run(buildid, "record", "-q", "-o", data, *["-esdt_python:" + m for m in MARKERS],
                     *["-e%s:%s" % e for e in events],
                     "--", *harness.command(build, d.inner + FIXTURE + ".py"), cwd=d.path,
                     env=harness.environment(build))
            script = PERF.run(buildid, "script", "-i", data, "--ns",
                              "-F", "tid,time,event,trace").splitlines()
            got = []
            counts = collections.Counter()      # hits: what the markers did
            records = collections.Counter()     # what perf report counts
            for previous, record in zip([None] + script, script):
                line = re.match(r"^\s*\d+\s+\d+\.\d{9}:\s*(.*)$", record).group(1)
                group, marker = re.match(r"^(\w+):(\w+?)(?:_\d+)?:", line).groups()
                records["sdt" if group == "sdt_python" else "ours", marker] += 1
                if record == previous:
                    # perf 6.1 on this kernel sometimes writes a round's last
                    # record again at the next round's start: same thread,
                    # nanosecond and bytes (two hits never share a nanosecond).
                    continue
                if group == "sdt_python":
                    counts["sdt", marker] += 1
                    continue
                m = TRACE.match(line)
                assert m and m.group(1).startswith(GROUP + ":"), "a line of perf script: %r" % line
                marker = re.sub(r"_\d+$", "", m.group(1)[len(GROUP) + 1:])
                counts["ours", marker] += 1
                _, filename, funcname, lineno, module = m.groups()
                if filename and filename.startswith(d.inner):
                    got.append("%s %s %s %s %s" % (
                        marker, filename[len(d.inner):], funcname, lineno, module))
        want = [e for e in harness.read_expected(build, FIXTURE) if e.split()[0] in MARKERS]
        assert got == want, harness.mismatch(got, want)
        for marker in MARKERS:
            n = len([e for e in want if e.split()[0] == marker])
            assert counts["sdt", marker] == counts["ours", marker] > n, (marker, counts)
        report = PERF.run(buildid, "report", "-i", data, "--stdio", "--sort", "trace")
        samples = collections.Counter()
        for event, n in re.findall(r"^# Samples: \S+\s+of event '([^']+)'\n"
                                   r"# Event count \(approx\.\): (\d+)$", report, re.M):
            group, name = event.split(":")
            samples["sdt" if group == "sdt_python" else "ours",
                    re.sub(r"_\d+$", "", name)] += int(n)
        assert samples == records, report[:2000]
        assert re.search(r'funcname="fact"', report), report[:2000]
    finally:
        for marker in MARKERS:
            subprocess.run(["perf", "--buildid-dir", buildid, "probe", "-q", "-d",
                            "sdt_python:" + marker],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for group, event in events:
            if any(line.startswith("p:%s/%s " % (group, event)) for line in uprobe_lines(elf)):
                write_uprobe_events("-:%s/%s" % (group, event))
        shutil.rmtree(scratch)
    # Cleaned up: no definition of ours or perf's left on this ELF.
    assert not [line for line in uprobe_lines(elf)
                if line.startswith(("p:sdt_python/", "p:%s/" % GROUP))]
