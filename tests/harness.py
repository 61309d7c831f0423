"""What the tests share: the builds, the fixtures and the consumers.

A build is an interpreter under build/bin (python2.7, python3.13, python3.14,
and the variants `make build-shared` and `make build-variants` made).  A
fixture is a small program in tests/dtracedata; a consumer (bpftrace; gdb
and stap plug in the same way) runs a fixture under one of its scripts,
tests/dtracedata/*.bt, and yields the events in the suite's format:

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
import signal
import subprocess
import tempfile
import threading
import time

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
DATA = os.path.join(TESTS, "dtracedata")
BUILD = os.environ.get("PYTHON_SYSTEMTAP_BUILD", os.path.join(REPO, "build"))
PROBES_D = os.path.join(REPO, "probes.d")

# Variants of a series' build: --enable-shared (markers in libpython), and
# Python 3.13 and 3.14 free-threaded and with the tier-2 interpreter.
VARIANTS = ("-shared", "-ft", "-jit")

# CI sets this: a consumer that cannot run is then a failure, not a skip.
REQUIRE_CONSUMERS = os.environ.get("REQUIRE_ALL_CONSUMERS") == "1"


def series():
    """The Pythons we patch: patches/<series>/markers exists."""
    return sorted(os.path.basename(os.path.dirname(p))
                  for p in glob.glob(os.path.join(REPO, "patches", "*", "markers")))


def builds():
    """Every build to test: each series, and those of its variants that
    were built (make build-shared, make build-variants)."""
    found = []
    for s in series():
        found.append(s)
        for variant in VARIANTS:
            if os.path.exists(os.path.join(BUILD, "bin", s + variant)):
                found.append(s + variant)
    return found


def series_of(build):
    """python3.13-ft -> python3.13, python3.14+usdtmon -> python3.14"""
    return build.split("+", 1)[0].split("-", 1)[0]


# usdtmon, the module that fires the markers from sys.monitoring: a build
# "B+usdtmon" runs programs on build B with the module loaded (python -m
# usdtmon) and firing every family (USDTMON_MARKERS=all), its markers in
# its own shared object, which make module builds (build/module/B).
MODULE = "usdtmon"
MODULE_CLAIMS = os.path.join(REPO, "module", MODULE, "markers")


def host_of(build):
    """The interpreter's build: python3.14+usdtmon -> python3.14"""
    return build.split("+", 1)[0]


def is_module(build):
    return build.endswith("+" + MODULE)


# Stock interpreters, which only usdtmon gives our markers: Debian 13's own
# python3.13 in a private root of Debian 13 (make trixie: build/trixie,
# with usdtmon built there by its own gcc into /opt/usdtmon).  A program
# runs there chrooted, with a /proc of its own (in a mount namespace of
# its own, gone with it), and usdtmon as a user would have it: firing the
# families the interpreter lacks (USDTMON_MARKERS unset).
TRIXIE = os.path.join(BUILD, "trixie")
STOCK = {"python3.13-trixie": (TRIXIE, "/usr/bin/python3.13", "/opt/usdtmon")}


def root_of(build):
    """The root directory programs of build run in ("" for this one)."""
    return STOCK[host_of(build)][0] if host_of(build) in STOCK else ""


def module_dir(build):
    """The directory that holds the module's package for build."""
    if host_of(build) in STOCK:
        root, _, inner = STOCK[host_of(build)]
        return root + inner
    return os.path.join(BUILD, "module", host_of(build))


def interpreter(build):
    """The interpreter of build (for a stock one, its path in its root)."""
    if host_of(build) in STOCK:
        root, python, _ = STOCK[host_of(build)]
        if not os.path.exists(root + python):
            raise AssertionError("%s is missing: run 'make trixie'" % (root + python))
        return python
    path = os.path.join(BUILD, "bin", host_of(build))
    if not os.path.exists(path):
        raise AssertionError("%s is missing: run 'make build'" % path)
    return path


def command(build, program, *args):
    """The command that runs the Python file program (a path as build's
    programs see it) on build."""
    argv = [interpreter(build)] + (["-m", MODULE] if is_module(build) else [])
    argv += [program] + list(args)
    root = root_of(build)
    if root:
        argv = ["unshare", "--mount", "sh", "-c",
                'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"', root] + argv
    return argv


def environment(build):
    """The environment programs run in on build."""
    env = dict(os.environ)
    if host_of(build) in STOCK:
        env.update(PYTHONPATH=STOCK[host_of(build)][2])
    elif is_module(build):
        env.update(PYTHONPATH=module_dir(build), USDTMON_MARKERS="all")
    return env


def marker_object(build):
    """The ELF file holding the markers: the module's shared object, or
    libpython if the interpreter links it dynamically, else the interpreter
    itself."""
    if is_module(build):
        found = glob.glob(os.path.join(module_dir(build), MODULE, "_core.*.so"))
        if len(found) != 1:
            raise AssertionError("%s holds no one _core.*.so: run 'make module'"
                                 % module_dir(build))
        return found[0]
    python = os.path.realpath(interpreter(build))
    out = subprocess.run(["ldd", python], stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    m = re.search(r"libpython\S*\s+=>\s+(\S+)", out)
    return os.path.realpath(m.group(1)) if m else python


def claims(build):
    if is_module(build):
        return MODULE_CLAIMS
    return os.path.join(REPO, "patches", series_of(build), "markers")


def expected_path(build, fixture):
    return os.path.join(DATA, "expected", series_of(build), fixture + ".txt")


def read_expected(build, fixture):
    with open(expected_path(build, fixture)) as f:
        return [line.rstrip("\n") for line in f
                if line.strip() and not line.startswith("#")]


def mismatch(got, want, details=""):
    """A short account of how the event lists got and want differ (pytest's
    own diff of long lists is cut), with details (what the consumer said)."""
    first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w),
                 min(len(got), len(want)))
    lines = ["%d events, %d expected; first difference at event %d" % (len(got), len(want), first)]
    for name, events in (("got", got), ("expected", want)):
        lines.append("%s from event %d:" % (name, max(0, first - 2)))
        lines += ["  " + e for e in events[max(0, first - 2):first + 4]]
    lines.append("last events got: " + " | ".join(got[-3:]))
    if details:
        lines.append(details)
    return "\n".join(lines)


def tracing_unavailable(who):
    """Why who (a consumer that defines uprobes through the kernel's
    tracing file system) cannot trace here, or None."""
    if os.geteuid() != 0:
        return "%s needs root" % who
    if not any(os.path.exists(p) for p in (
            "/sys/kernel/tracing/uprobe_events",
            "/sys/kernel/debug/tracing/uprobe_events")):
        return "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)"
    return None


def wait_until_still(path):
    """Return once the file a tracer writes has kept its size for a second:
    the tracer has printed what its buffers held."""
    size, still = -1, 0
    while still < 5:
        time.sleep(0.2)
        now = os.path.getsize(path)
        still = still + 1 if now == size else 0
        size = now


class Held(object):
    """A program started held before its exec: its PID is known, and
    nothing of it runs (no library is loaded) until release().  Its stdin
    is the pipe that holds it, closed once it runs."""

    def __init__(self, argv, **popen):
        self._proc = subprocess.Popen(["sh", "-c", 'read -r _ && exec "$@"', "sh"] + list(argv),
                                      stdin=subprocess.PIPE, **popen)
        self.pid = self._proc.pid

    def release(self, timeout):
        """Let the program run; its exit status."""
        self._proc.stdin.write(b"go\n")
        self._proc.stdin.close()
        return self._proc.wait(timeout=timeout)

    def kill(self):
        if not self._proc.stdin.closed:
            self._proc.stdin.close()
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


# The test session's background work (the guest's run, the RPMs' build):
# the processes it waits for, which a session that ends first kills.
_BACKGROUND = set()
_STOPPING = threading.Event()


def run_in_background(argv, timeout=None, **popen):
    """subprocess.run for background work: in a process group of its own,
    which stop_background() kills; refused once the session is ending."""
    if _STOPPING.is_set():
        raise RuntimeError("the test session ended")
    proc = subprocess.Popen(argv, start_new_session=True, **popen)
    _BACKGROUND.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        _BACKGROUND.discard(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def stop_background():
    """The test session ends (conftest.py): kill what run_in_background()
    still waits for, and start nothing more."""
    _STOPPING.set()
    for proc in list(_BACKGROUND):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def uprobe_tracers():
    """The uprobe tracers running here (bpftrace, bcc's tools, perf), as
    a line of what may have disturbed gdb, or ""."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        words = " ".join(os.path.basename(a) for a in argv[:2])
        if re.search(r"\b(bpftrace|perf|staprun|ucalls|uflow|ugc|ustat)\b|bpfcc", words):
            found.append("%s (%s)" % (pid, " ".join(argv[:3])))
    if not found:
        return ""
    return ("uprobe tracers running meanwhile, whose uprobes on the markers' sites "
            "take gdb's breakpoints away: " + ", ".join(found))


class FixtureDir(object):
    """A private, short-named copy of tests/dtracedata: bpftrace compares at
    most 64 bytes of a string, so fixture paths stay short.  Under a root
    (root_of(build)), path is where it is here, inner where the programs
    that run there see it."""

    def __init__(self, root=""):
        self.root = root

    def __enter__(self):
        tmp = self.root + "/tmp" if self.root else "/tmp"
        self.path = tempfile.mkdtemp(prefix="pst", dir=tmp) + "/"
        self.inner = self.path[len(self.root):]
        for name in os.listdir(DATA):
            if name.endswith(".py"):
                shutil.copy(os.path.join(DATA, name), self.path)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path)

    def relative(self, lines):
        return [line.replace(self.inner, "") for line in lines]


def oracle(build, mode, fixture):
    """What sys.setprofile or sys.settrace sees of a fixture (on build's
    interpreter, without usdtmon)."""
    host = host_of(build)
    with FixtureDir(root_of(host)) as d:
        out = subprocess.run(
            command(host, os.path.join(d.inner, "oracle.py"), mode,
                    os.path.join(d.inner, fixture + ".py")),
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
        return tracing_unavailable("bpftrace")

    # Room for bursts: a recursion 500 deep is 1000 events at once.
    ENV = dict(os.environ, BPFTRACE_PERF_RB_PAGES="1024")

    def _script(self, d, build, script, pid="cpid"):
        """The script, filled in: @PID@ is the traced program's PID (cpid,
        bpftrace's name for the program it starts with -c).  The probes of
        markers the build does not claim are left out (bpftrace refuses a
        probe without a site)."""
        with open(os.path.join(DATA, script + self.suffix)) as f:
            text = f.read()
        import usdt
        claimed = usdt.parse_claims(claims(build))
        text = "\n\n".join(
            block for block in text.split("\n\n")
            if not re.match(r"usdt:@OBJECT@:python:(\w+)", block) or
            re.match(r"usdt:@OBJECT@:python:(\w+)", block).group(1) in claimed)
        text = (text.replace("@OBJECT@", marker_object(build))
                    .replace("@DIRLEN@", str(len(d.inner)))
                    .replace("@DIR@", d.inner)
                    .replace("@PID@", str(pid)))
        path = os.path.join(d.path, script + self.suffix)
        with open(path, "w") as f:
            f.write(text)
        return path

    @staticmethod
    def _events(d, returncode, stderr, out):
        with open(out) as f:
            raw = f.read()
        assert returncode == 0, (stderr, raw)
        assert "Lost" not in stderr + raw, "bpftrace lost events"
        events = []
        for line in raw.splitlines():
            m = re.match(r"(\d+) (\d+) (.*)$", line)
            if m:
                events.append((int(m.group(1)), int(m.group(2)),
                               d.relative([m.group(3)])[0]))
        # Per-CPU buffers: order by time, not by arrival.
        events.sort()
        return [(tid, event) for _, tid, event in events]

    def trace(self, build, script, fixture):
        """Run fixture under script: its (thread id, event)s, oldest first."""
        with FixtureDir(root_of(build)) as d:
            out = os.path.join(d.path, "out.txt")
            program = command(build, os.path.join(d.inner, fixture + ".py"))
            if marker_object(build) == os.path.realpath(program[0]):
                bt = self._script(d, build, script)
                with open(out, "w") as f:
                    proc = subprocess.run(
                        ["bpftrace", "-c", " ".join(program), bt],
                        stdout=f, stderr=subprocess.PIPE, universal_newlines=True,
                        timeout=300, cwd=d.path, env=self.ENV)
                return self._events(d, proc.returncode, proc.stderr, out)
            # Markers in a shared library: bpftrace 0.17 cannot find them
            # for a process it starts with -c, which has not loaded the
            # library yet ("Error finding location for probe").  So trace
            # the library system-wide, and start the program held before
            # its exec: its PID is known to the script (@PID@) before it
            # loads anything.
            held = Held(program, cwd=d.path, env=environment(build))
            try:
                bt = self._script(d, build, script, held.pid)
                with open(out, "w") as f:
                    tracer = subprocess.Popen(
                        ["bpftrace", bt], stdout=f, stderr=subprocess.PIPE,
                        universal_newlines=True, env=self.ENV)
                try:
                    self._wait_attached(tracer, out)
                    assert held.release(timeout=300) == 0, "%s failed" % program
                    # Let bpftrace drain its buffers before it is stopped.
                    wait_until_still(out)
                finally:
                    stderr = self.interrupt(tracer)
            finally:
                held.kill()
            return self._events(d, tracer.returncode, stderr, out)

    @staticmethod
    def interrupt(tracer):
        """Stop a bpftrace started with stderr=PIPE as Ctrl-C does; its
        stderr.  bpftrace 0.17 has been seen here to miss a SIGINT and wait
        on: the signal is sent again after 10 s, for a minute.  Not sooner:
        a second SIGINT while bpftrace is still detaching (slow beside the
        guest's qemu) kills it (exit status -2)."""
        for _ in range(6):
            tracer.send_signal(signal.SIGINT)
            try:
                return tracer.communicate(timeout=10)[1]
            except subprocess.TimeoutExpired:
                pass
        tracer.kill()
        raise AssertionError("bpftrace did not stop on SIGINT: %s" % tracer.communicate()[1])

    @staticmethod
    def _wait_attached(tracer, out):
        """Wait until BEGIN printed "tracing": every probe is attached."""
        deadline = time.time() + 60
        while time.time() < deadline and tracer.poll() is None:
            if os.path.exists(out) and "tracing" in open(out).read():
                return
            time.sleep(0.1)
        raise AssertionError("bpftrace did not start: %s" % (tracer.stderr.read()
                             if tracer.poll() is not None else "timeout"))

    def run(self, build, script, fixture):
        """Run fixture under script: its events, oldest first."""
        return [event for _, event in self.trace(build, script, fixture)]

    def attach(self, build, script, fixture):
        """Start fixture; once it says "ready", attach script to it, then
        let it go on by creating the file its argument names.  Its events,
        oldest first."""
        with FixtureDir() as d:
            bt = self._script(d, build, script)
            out = os.path.join(d.path, "out.txt")
            go = os.path.join(d.path, "go")
            program = subprocess.Popen(
                [interpreter(build), os.path.join(d.path, fixture + ".py"), go],
                stdout=subprocess.PIPE, universal_newlines=True)
            tracer = None
            try:
                assert program.stdout.readline() == "ready\n"
                with open(out, "w") as f:
                    tracer = subprocess.Popen(
                        ["bpftrace", "-p", str(program.pid), bt],
                        stdout=f, stderr=subprocess.PIPE,
                        universal_newlines=True, env=self.ENV)
                self._wait_attached(tracer, out)
                open(go, "w").close()
                assert program.wait(timeout=60) == 0
                _, stderr = tracer.communicate(timeout=60)
            finally:
                for p in (program, tracer):
                    if p is not None and p.poll() is None:
                        p.kill()
            return [e for _, e in self._events(d, tracer.returncode, stderr, out)]


# gdb as the tests run it: no init files, quiet, batch, and no debugging
# information read (--readnever: the markers' notes and the ELF symbols are
# all it needs; reading libpython's DWARF costs about half a second a run).
GDB = ["gdb", "-nx", "-q", "-batch", "--readnever"]


class Gdb(object):
    """gdb, with breakpoints on the markers (-probe-stap) whose commands,
    in gdb's Python, write the events to a file and never stop."""
    name = "gdb"
    suffix = ".gdb"

    def unavailable(self):
        if shutil.which("gdb") is None:
            return "gdb is not installed (apt-get install gdb)"
        return None

    def run(self, build, script, fixture):
        """Run fixture under script; the events, in order."""
        with FixtureDir() as d:
            out = os.path.join(d.path, "out.txt")
            with open(os.path.join(DATA, script + self.suffix)) as f:
                text = f.read().replace("@DIR@", d.path).replace("@OUT@", out)
            path = os.path.join(d.path, script + self.suffix)
            with open(path, "w") as f:
                f.write(text)
            proc = subprocess.run(
                GDB + ["-x", path, "--args",
                 interpreter(build), os.path.join(d.path, fixture + ".py")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                universal_newlines=True, timeout=600, cwd=d.path)
            assert proc.returncode == 0, proc.stdout
            assert "exited normally" in proc.stdout, proc.stdout
            # What could have taken gdb's breakpoints (test_sites.py,
            # test_gdb_loses_a_site_to_a_uprobe).
            self.details = uprobe_tracers()
            with open(out) as f:
                return d.relative(f.read().splitlines())


class Stap(object):
    """SystemTap with its module runtime, in a qemu guest (tests/guest): the
    scripts are dtracedata/*.stp; every stap run of a test session shares
    one boot, done when the first result is wanted."""
    name = "stap"
    suffix = ".stp"

    def unavailable(self):
        from guest.session import session
        return session().unavailable()

    def run(self, build, script, fixture):
        """Run fixture under script; the events, oldest first."""
        from guest import jobs
        from guest.session import session
        result = session().result(jobs.semantics_name(build, script, fixture))
        self.details = result.describe()
        prefix = result.job.data["fixtures"]
        return [line.replace(prefix, "") for line in result.trace().splitlines()]


CONSUMERS = [Bpftrace(), Gdb(), Stap()]


def cannot_run(reason):
    """The calling test needs a consumer or tool that cannot run here: skip
    it, saying why, or under REQUIRE_ALL_CONSUMERS=1 (CI) fail it."""
    import pytest
    if REQUIRE_CONSUMERS:
        pytest.fail("REQUIRE_ALL_CONSUMERS=1 but " + reason)
    pytest.skip(reason)


def require(consumer):
    """The consumer, if it can run here; otherwise cannot_run()."""
    reason = consumer.unavailable()
    if reason:
        cannot_run("%s cannot run: %s" % (consumer.name, reason))
    return consumer
