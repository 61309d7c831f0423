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

import collections
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
    """Every build to test: each series, and those of its variants (the
    table of Pythons, pythons) that were built (make build-shared, make
    build-variants)."""
    import pythons
    table = pythons.by_name()
    found = []
    for s in series():
        found.append(s)
        for variant in VARIANTS:
            if variant[1:] in table[s].variants and \
                    os.path.exists(os.path.join(BUILD, "bin", s + variant)):
                found.append(s + variant)
    return found


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


# Stock interpreters, which only usdtmon gives our markers, as a user has
# them: usdtmon fires the families the interpreter lacks (USDTMON_MARKERS
# unset), the interpreter its own.  For each: the root its programs run in
# ("": this one), the interpreter and usdtmon's directory there, and the
# series whose expected outputs its fixtures must give.
#   python3.13-trixie  Debian 13's own python3.13 (gc, import and audit
#                      markers), in a private root of Debian 13 (make
#                      trixie: build/trixie, usdtmon built there by its own
#                      gcc into /opt/usdtmon).  A program runs there
#                      chrooted, with a /proc of its own (in a mount
#                      namespace of its own, gone with it).
#   python3.15         upstream's 3.15 as released, --with-dtrace (its own
#                      function markers, three arguments), make stock.
Stock = collections.namedtuple("Stock", "root python module series")
TRIXIE = os.path.join(BUILD, "trixie")
STOCK = {
    "python3.13-trixie": Stock(TRIXIE, "/usr/bin/python3.13", "/opt/usdtmon", "python3.13"),
    "python3.15": Stock("", os.path.join(BUILD, "bin", "python3.15"),
                        os.path.join(BUILD, "module", "python3.15"), "python3.14"),
}


def series_of(build):
    """python3.13-ft -> python3.13, python3.14+usdtmon -> python3.14; a
    stock interpreter's: the series whose expected outputs it gives."""
    host = host_of(build)
    if host in STOCK:
        return STOCK[host].series
    return host.split("-", 1)[0]


def root_of(build):
    """The root directory programs of build run in ("" for this one)."""
    return STOCK[host_of(build)].root if host_of(build) in STOCK else ""


def module_dir(build):
    """The directory that holds the module's package for build."""
    if host_of(build) in STOCK:
        return STOCK[host_of(build)].root + STOCK[host_of(build)].module
    return os.path.join(BUILD, "module", host_of(build))


def interpreter(build):
    """The interpreter of build (for a stock one, its path in its root)."""
    if host_of(build) in STOCK:
        stock = STOCK[host_of(build)]
        if not os.path.exists(stock.root + stock.python):
            raise AssertionError("%s is missing: run 'make %s'" % (
                stock.root + stock.python, "trixie" if stock.root else "stock"))
        return stock.python
    path = os.path.join(BUILD, "bin", host_of(build))
    if not os.path.exists(path):
        raise AssertionError("%s is missing: run 'make build'" % path)
    return path


def command(build, program, *args):
    """The command that runs the Python file program (a path as build's
    programs see it) on build."""
    argv = [interpreter(build)] + (["-m", MODULE] if is_module(build) else [])
    return in_root(root_of(build), argv + [program] + list(args))


def in_root(root, argv):
    """argv run in the directory root as its root (chroot), with a /proc
    of its own, in a mount namespace of its own (gone with it); argv
    itself for root ""."""
    if not root:
        return list(argv)
    return ["unshare", "--mount", "sh", "-c",
            'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"', root] + list(argv)


def environment(build):
    """The environment programs run in on build."""
    env = dict(os.environ)
    if host_of(build) in STOCK:
        env.update(PYTHONPATH=STOCK[host_of(build)].module)
    elif is_module(build):
        env.update(PYTHONPATH=module_dir(build), USDTMON_MARKERS="all")
    return env


def marker_object(build):
    """The ELF file holding the markers: the module's shared object, or
    the interpreter's own (interpreter_object)."""
    if is_module(build):
        found = glob.glob(os.path.join(module_dir(build), MODULE, "_core.*.so"))
        if len(found) != 1:
            raise AssertionError("%s holds no one _core.*.so: run 'make module'"
                                 % module_dir(build))
        return found[0]
    return interpreter_object(build)


def interpreter_object(build):
    """The ELF file holding the interpreter's own markers (usdt.py's
    marker_elf: the interpreter, or the libpython it links), for a stock
    one as this system sees it under its root."""
    import usdt
    return usdt.marker_elf(interpreter(build), root_of(build))


def marker_objects(build):
    """{marker: the ELF file that fires it} for the markers a consumer of
    build traces.  On a stock interpreter with usdtmon: the module's for
    the families it fires there (those the interpreter lacks), the
    interpreter's own for the function, C-function and line markers it
    has itself; otherwise every claimed marker of marker_object()."""
    import usdt
    if not (is_module(build) and host_of(build) in STOCK):
        obj = marker_object(build)
        return dict((marker, obj) for marker in usdt.parse_claims(claims(build)))
    own_obj = interpreter_object(build)
    own = usdt.markers(own_obj)
    module = marker_object(build)
    fired = usdt.module_markers(own)
    found = dict((marker, module) for marker in fired)
    for family, _, markers in usdt.MODULE_FAMILIES:
        if family in ("function", "cfunction", "line") and markers[0] not in fired:
            found.update((marker, own_obj) for marker in markers)
    return found


def argument_counts(build):
    """{marker: its sites' argument count} for marker_objects(build)."""
    import usdt
    notes, counts = {}, {}
    for marker, obj in marker_objects(build).items():
        if obj not in notes:
            notes[obj] = usdt.markers(obj)
        if marker in notes[obj]:
            counts[marker] = notes[obj][marker]
    return counts


def claims(build):
    if is_module(build):
        return MODULE_CLAIMS
    return os.path.join(REPO, "patches", series_of(build), "markers")


def expected_path(build, fixture):
    return os.path.join(DATA, "expected", series_of(build), fixture + ".txt")


def read_lines(path):
    """An expected output's lines: blank lines and # comments left out."""
    with open(path) as f:
        return [line.rstrip("\n") for line in f
                if line.strip() and not line.startswith("#")]


def read_expected(build, fixture):
    return read_lines(expected_path(build, fixture))


def as_traced(build, events):
    """Events as a consumer of build's marker_objects() prints them: a
    stock interpreter's own markers may have fewer arguments than ours
    (upstream 3.15's function markers: three, no module name), and there
    a missing argument's field is "-" (absent_arguments)."""
    counts = argument_counts(build)
    traced = []
    for event in events:
        fields = event.split(" ")
        count = min(counts.get(fields[0], len(fields) - 1), len(fields) - 1)
        traced.append(" ".join(fields[:count + 1] + ["-"] * (len(fields) - 1 - count)))
    return traced


ABSENT = re.compile(r'arg(\d) == 0 \? "\(null\)" : str\(arg\1\)')


def absent_arguments(block, count):
    """A consumer script's probe block for a marker whose sites have count
    arguments: a string argument it prints beyond them prints "-"."""
    block = ABSENT.sub(lambda m: '"-"' if int(m.group(1)) >= count else m.group(0), block)
    beyond = [n for n in re.findall(r"\barg(\d)\b", block) if int(n) >= count]
    assert not beyond, "the script reads arg%s, which the site lacks:\n%s" % (beyond[0], block)
    return block


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


# dtracedata/forksite.c: a C program with one marker, which forks
# (test_fork.py, test_sites.py), built with either site.
SITE_NOPS = {
    "nop-nop10": "nop; .byte 0x66; .byte 0x2e; .byte 0x0f; .byte 0x1f; .byte 0x84; "
                 ".byte 0x00; .byte 0x00; .byte 0x00; .byte 0x00; .byte 0x00",
    "nop5": ".byte 0x0f; .byte 0x1f; .byte 0x44; .byte 0x00; .byte 0x00",
}
FORKSITE = os.path.join(DATA, "forksite.c")


def forksite(directory, site):
    """dtracedata/forksite.c built in directory with the site SITE_NOPS[site]."""
    if shutil.which("gcc") is None:
        raise AssertionError("gcc is needed to build %s" % FORKSITE)
    exe = os.path.join(directory, "forksite-" + site)
    subprocess.run(["gcc", "-O2", "-o", exe, "-DSITE_NOP=" + SITE_NOPS[site], FORKSITE],
                   check=True)
    return exe


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


# Runs a program as its own __main__ once told to on stdin: a consumer
# attaches to it first (bpftrace -p, bcc's tools), once it said READY
# (interpreter started, libpython loaded, its own frame entered).  Its
# frame, entered before tracing began, is the fixture's caller: the scripts
# see it return, not start.  The fixture runs in the namespace of the
# module __main__ itself, so that what it defines can be pickled by name
# (multiprocessing).
READY = "launcher ready"
LAUNCHER = """\
import sys
import __main__
sys.stdout.write("%s\\n")
sys.stdout.flush()
sys.stdin.readline()
path = sys.argv[1]
sys.argv = sys.argv[1:]
with open(path) as f:
    code = compile(f.read(), path, "exec")
__main__.__file__ = path
exec(code, __main__.__dict__)
""" % READY


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
