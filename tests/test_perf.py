"""perf (linux-perf) with our markers, as README's "Tracing with perf" gives
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

import os
import re
import shutil
import subprocess
import tempfile

import pytest

import harness
import usdt

UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"
GROUP = "pst_perf"          # our string-fetching events: not a user's "python"
FIXTURE = "call_stack"


def unavailable():
    if shutil.which("perf") is None:
        return "perf is not installed (apt-get install linux-perf)"
    if os.geteuid() != 0:
        return "perf probe needs root"
    if not os.path.exists(UPROBE_EVENTS):
        return "tracefs is not mounted on /sys/kernel/tracing"
    return None


def perf(buildid_dir, *args, **kw):
    proc = subprocess.run(["perf", "--buildid-dir", buildid_dir] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300, **kw)
    assert proc.returncode == 0, "perf %s: %s" % (" ".join(args), proc.stderr)
    return proc.stdout


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


TRACE = re.compile(r'^\s*(\S+):\s.*filename="([^"]*)" funcname="([^"]*)" '
                   r'lineno=(-?\d+) modulename="([^"]*)"$')


@pytest.mark.parametrize("build", harness.builds())
def test_perf(build):
    reason = unavailable()
    if reason:
        harness.cannot_run("perf cannot run: " + reason)
    elf = harness.marker_object(build)
    claims = set(usdt.parse_claims(harness.claims(build)))
    assert "function__entry" in claims
    ours = usdt.uprobe_events(elf, usdt.parse_declarations(harness.PROBES_D),
                              "function__entry", group=GROUP)
    events = [re.match(r"^p:(\S+)/(\S+) ", line).groups() for line in ours]
    scratch = tempfile.mkdtemp(prefix="pst-perf-")
    buildid = os.path.join(scratch, "buildid")
    try:
        # list: exactly the claimed markers, once the ELF is in the cache.
        perf(buildid, "buildid-cache", "--add", elf)
        listed = set(re.findall(r"^\s*sdt_python:(\w+)\s", perf(buildid, "list", "sdt_python:*"),
                                re.M))
        assert listed == claims

        # probe: the marker as a trace event, counting on its semaphore.
        perf(buildid, "probe", "-q", "-x", elf, "-a", "sdt_python:function__entry")
        sdt = [line for line in uprobe_lines(elf) if line.startswith("p:sdt_python/function__entry")]
        assert sdt and all(re.search(r":0x[0-9a-f]+\(0x[0-9a-f]+\)", line) for line in sdt), sdt
        for line in ours:
            write_uprobe_events(line)

        # record, script, report: one sample per hit; the string event's
        # values are the fixture's function__entry events.
        data = os.path.join(scratch, "perf.data")
        with harness.FixtureDir() as d:
            perf(buildid, "record", "-q", "-o", data, "-e", "sdt_python:function__entry",
                 *["-e%s:%s" % e for e in events],
                 "--", harness.interpreter(build), d.path + FIXTURE + ".py", cwd=d.path)
            script = perf(buildid, "script", "-i", data, "-F", "event,trace").splitlines()
            got = []
            counts = {"sdt_python:function__entry": 0, GROUP: 0}
            for line in script:
                if line.strip().startswith("sdt_python:function__entry:"):
                    counts["sdt_python:function__entry"] += 1
                    continue
                m = TRACE.match(line)
                assert m and m.group(1).startswith(GROUP + ":"), "a line of perf script: %r" % line
                counts[GROUP] += 1
                _, filename, funcname, lineno, module = m.groups()
                if filename.startswith(d.path):
                    got.append("function__entry %s %s %s %s" % (
                        filename[len(d.path):], funcname, lineno, module))
        want = [e for e in harness.read_expected(build, FIXTURE) if e.startswith("function__entry ")]
        assert got == want, harness.mismatch(got, want)
        assert counts["sdt_python:function__entry"] == counts[GROUP] > len(want), counts
        report = perf(buildid, "report", "-i", data, "--stdio", "--sort", "trace")
        samples = dict((e, int(n)) for e, n in re.findall(
            r"^# Samples: \S+\s+of event '([^']+)'\n# Event count \(approx\.\): (\d+)$", report, re.M))
        assert samples == {"sdt_python:function__entry": counts["sdt_python:function__entry"],
                           "%s:%s" % events[0]: counts[GROUP]}, report[:2000]
        assert re.search(r'funcname="fact"', report), report[:2000]
    finally:
        subprocess.run(["perf", "--buildid-dir", buildid, "probe", "-q", "-d",
                        "sdt_python:function__entry"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for group, event in events:
            if any(line.startswith("p:%s/%s " % (group, event)) for line in uprobe_lines(elf)):
                write_uprobe_events("-:%s/%s" % (group, event))
        shutil.rmtree(scratch)
    # Cleaned up: no definition of ours or perf's left on this ELF.
    assert not [line for line in uprobe_lines(elf)
                if line.startswith(("p:sdt_python/function__entry", "p:%s/" % GROUP))]
