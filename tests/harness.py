"""What the tests share: the builds, the fixtures and the consumers.

A build is an interpreter under build/bin (python2.7, python3.13, and the
-shared variants when `make build-shared` made them).  A fixture is a small
program in tests/dtracedata; a consumer (bpftrace; gdb and stap plug in the
same way) runs a fixture under one of its scripts, tests/dtracedata/*.bt,
and yields the events in the suite's format:

    function__entry FILE FUNC LINE MODULE     (likewise function__return,
    cfunction__entry FILE FUNC LINE MODULE     cfunction__return)
    line FILE FUNC LINE
    gc__start GENERATION
    gc__done FOUND
    import__find__load__start MODULE
    import__find__load__done MODULE FOUND

with FILE relative to the fixture directory and (null) for a NULL string.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
DATA = os.path.join(TESTS, "dtracedata")
BUILD = os.environ.get("PYTHON_SYSTEMTAP_BUILD", os.path.join(REPO, "build"))
PROBES_D = os.path.join(REPO, "probes.d")

# CI sets this: a consumer that cannot run is then a failure, not a skip.
REQUIRE_CONSUMERS = os.environ.get("REQUIRE_ALL_CONSUMERS") == "1"


def series():
    """The Pythons we patch: patches/<series>/markers exists."""
    return sorted(os.path.basename(os.path.dirname(p))
                  for p in glob.glob(os.path.join(REPO, "patches", "*", "markers")))


def builds():
    """Every build to test: each series, and its -shared variant if built."""
    found = []
    for s in series():
        found.append(s)
        if os.path.exists(os.path.join(BUILD, "bin", s + "-shared")):
            found.append(s + "-shared")
    return found


def series_of(build):
    return build[:-len("-shared")] if build.endswith("-shared") else build


def interpreter(build):
    path = os.path.join(BUILD, "bin", build)
    if not os.path.exists(path):
        raise AssertionError("%s is missing: run 'make build'" % path)
    return path


def marker_object(build):
    """The ELF file holding the markers: libpython if the interpreter links
    it dynamically, else the interpreter itself."""
    python = os.path.realpath(interpreter(build))
    out = subprocess.run(["ldd", python], stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    m = re.search(r"libpython\S*\s+=>\s+(\S+)", out)
    return os.path.realpath(m.group(1)) if m else python


def claims(build):
    return os.path.join(REPO, "patches", series_of(build), "markers")


def expected_path(build, fixture):
    return os.path.join(DATA, "expected", series_of(build), fixture + ".txt")


def read_expected(build, fixture):
    with open(expected_path(build, fixture)) as f:
        return [line.rstrip("\n") for line in f
                if line.strip() and not line.startswith("#")]


class FixtureDir(object):
    """A private, short-named copy of tests/dtracedata: bpftrace compares at
    most 64 bytes of a string, so fixture paths stay short."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="pst", dir="/tmp") + "/"
        for name in os.listdir(DATA):
            if name.endswith(".py"):
                shutil.copy(os.path.join(DATA, name), self.path)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path)

    def relative(self, lines):
        return [line.replace(self.path, "") for line in lines]


def oracle(build, mode, fixture):
    """What sys.setprofile or sys.settrace sees of a fixture."""
    with FixtureDir() as d:
        out = subprocess.run(
            [interpreter(build), os.path.join(d.path, "oracle.py"), mode,
             os.path.join(d.path, fixture + ".py")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return d.relative(out.stdout.splitlines())


class Bpftrace(object):
    name = "bpftrace"
    suffix = ".bt"

    def unavailable(self):
        if shutil.which("bpftrace") is None:
            return "bpftrace is not installed (apt-get install bpftrace)"
        if os.geteuid() != 0:
            return "bpftrace needs root"
        if not any(os.path.exists(p) for p in (
                "/sys/kernel/tracing/uprobe_events",
                "/sys/kernel/debug/tracing/uprobe_events")):
            return ("tracefs is not mounted "
                    "(mount -t tracefs nodev /sys/kernel/tracing)")
        return None

    def run(self, build, script, fixture):
        """Run fixture under script; the events, oldest first."""
        with FixtureDir() as d:
            with open(os.path.join(DATA, script + self.suffix)) as f:
                text = f.read()
            text = (text.replace("@OBJECT@", marker_object(build))
                        .replace("@DIRLEN@", str(len(d.path)))
                        .replace("@DIR@", d.path))
            bt = os.path.join(d.path, script + self.suffix)
            out = os.path.join(d.path, "out.txt")
            with open(bt, "w") as f:
                f.write(text)
            command = "%s %s" % (interpreter(build),
                                 os.path.join(d.path, fixture + ".py"))
            proc = subprocess.run(
                ["bpftrace", "-o", out, "-c", command, bt],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                universal_newlines=True, timeout=300, cwd=d.path)
            with open(out) as f:
                raw = f.read()
            assert proc.returncode == 0, (proc.stderr, raw)
            assert "Lost" not in proc.stderr + raw, "bpftrace lost events"
            events = []
            for line in raw.splitlines():
                m = re.match(r"(\d+) (\d+) (.*)$", line)
                if m:
                    events.append((int(m.group(1)), int(m.group(2)), m.group(3)))
            # Per-CPU buffers: order by time, not by arrival.
            events.sort()
            return d.relative([e for _, _, e in events])


CONSUMERS = [Bpftrace()]
