"""What the tapset and example tests share: generating and installing
tapsets, a SystemTap tapset tree with them installed, and running stap.

stap never loads a kernel module here: -p2 elaborates, -L lists, -p4
compiles against the installed kernel headers (pass 5 is the guest's job).
"""

import fcntl
import glob
import os
import re
import shutil
import subprocess
import tempfile

import harness

GEN_TAPSET = os.path.join(harness.REPO, "scripts", "gen-tapset")
TEMPLATE = os.path.join(harness.REPO, "tapset", "libpython.stp.in")
OUR_PYTHON_STP = os.path.join(harness.REPO, "tapset", "python.stp")
EXAMPLES = os.path.join(harness.REPO, "examples")
FIX_RUNTIME = os.path.join(harness.TESTS, "guest", "fix-runtime.sh")
SYSTEM_TAPSETS = "/usr/share/systemtap/tapset"
# The install's tapsetdir in the tests: SystemTap's own, under DESTDIR.
TAPSETDIR = SYSTEM_TAPSETS


def make(*args, **kw):
    """make in the top directory, one at a time: the guest's make install
    (guest/jobs.py) runs in the background beside the tests' own."""
    os.makedirs(harness.BUILD, exist_ok=True)
    with open(os.path.join(harness.BUILD, ".make-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return subprocess.run(["make", "-s", "-C", harness.REPO] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=600, **kw)


def make_with_builds(*args, **kw):
    """make, never (re)building a Python (-o each series' link): what make
    install does with the builds there are."""
    for s in harness.series():
        harness.interpreter(s)
    return make(*(list(args) + ["-o" + os.path.join(harness.BUILD, "bin", s)
                                for s in harness.series()]), **kw)


def gen_tapset(python, outdir, *options):
    """Run gen-tapset; the path of the tapset it wrote."""
    proc = subprocess.run([GEN_TAPSET] + list(options) + [TEMPLATE, python, outdir],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# README's one-line call tree, as the fixture call_stack.py gives it on
# each series: tests/guest/expected/SERIES/calltree.txt.
CALLTREE_EXPECTED = os.path.join(harness.TESTS, "guest", "expected")

# thread_indent's columns: microseconds since the thread's first event,
# execname(tid): (the comm differs between builds), then the indentation.
# (A function's name may hold spaces: 3.13's typing has "<generic
# parameters of SupportsAbs>".)
CALLTREE_LINE = re.compile(r"^\s*\d+ \S+\(\d+\):( *(?:=>|<=) .+? in (.+):\d+)$")


def expected_calltree(series):
    return harness.read_lines(os.path.join(CALLTREE_EXPECTED, series, "calltree.txt"))


def calltree_lines(out, fixtures):
    """The one-liner's output without its time and execname(tid) columns, only
    the lines of the fixture's own code, in the directory fixtures (Python 2
    names it call_stack.py, Python 3 with its directory), file names
    relative to it.  The standard library's start-up and shutdown frames
    depend on the installation."""
    tree = []
    for line in out.splitlines():
        m = CALLTREE_LINE.match(line)
        assert m, "not a line of the call tree's format: %r" % line
        event, filename = m.groups()
        if filename.startswith(fixtures):
            tree.append(event.replace(" in " + fixtures, " in "))
        elif not filename.startswith(("/", "<")):
            tree.append(event)
    return tree


def variant(build):
    """python3.13-shared -> -shared, python2.7 -> ''."""
    return build[len(harness.series_of(build)):]


def installations(builds):
    """The builds grouped as they can be installed together (one of each
    series): the plain builds, then each variant's."""
    groups = {}
    for build in builds:
        groups.setdefault(variant(build), []).append(build)
    return [groups[v] for v in sorted(groups)]


def headers():
    """The newest installed kernel build tree (linux-headers-*), or None."""
    trees = [d for d in glob.glob("/usr/src/linux-headers-*")
             if os.path.exists(os.path.join(d, ".config"))]

    def version(path):
        return [int(n) if n.isdigit() else n
                for n in re.split(r"(\d+)", os.path.basename(path))]
    return sorted(trees, key=version)[-1] if trees else None


def stap_unavailable():
    if shutil.which("stap") is None:
        return "stap is not installed (apt-get install systemtap)"
    if not os.path.isdir(SYSTEM_TAPSETS):
        return "SystemTap's tapsets are missing: %s" % SYSTEM_TAPSETS
    if headers() is None:
        return ("no kernel headers for stap -r "
                "(apt-get install linux-headers-amd64)")
    return None


def need_stap():
    """Skip the calling test where stap cannot run here (fail instead under
    REQUIRE_ALL_CONSUMERS=1)."""
    reason = stap_unavailable()
    if reason:
        harness.cannot_run("stap cannot run: " + reason)


def tapset_directory(out, python_stp=OUR_PYTHON_STP, extra=()):
    """SystemTap's tapset directory as a package of ours leaves it, at out,
    for stap to read through SYSTEMTAP_TAPSET in place of its own: symbolic
    links to SystemTap's files, its python.stp replaced by python_stp (None:
    kept, as beside a tapset installed by hand), and the files extra.  An
    identical directory already at out is left as it is (stap's cache keys
    on the tapsets' time stamps).  Why a copy: SystemTap's own python.stp
    defines python.function.entry/return over /usr/lib*/libpython*.so*, and
    stap reads its own directory before any -I directory.  What it made, in
    a line."""
    if not os.path.isdir(SYSTEM_TAPSETS):
        raise AssertionError("%s is missing (apt-get install systemtap-common)" % SYSTEM_TAPSETS)
    scratch = out + ".tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    subprocess.run(["cp", "-rs", SYSTEM_TAPSETS, scratch], check=True)
    for path in ([python_stp] if python_stp else []) + list(extra):
        target = os.path.join(scratch, os.path.basename(path))
        if os.path.lexists(target):
            os.remove(target)
        shutil.copy2(path, target)
    same = os.path.isdir(out) and subprocess.run(
        ["diff", "-r", "-q", out, scratch], stdout=subprocess.DEVNULL).returncode == 0
    if same:
        shutil.rmtree(scratch)
    else:
        shutil.rmtree(out, ignore_errors=True)
        os.rename(scratch, out)
    return "%s with %s" % (SYSTEM_TAPSETS, ", ".join(
        (["python.stp replaced by " + python_stp] if python_stp else [])
        + [os.path.basename(p) + " added" for p in extra]) or "nothing changed")


class TapsetTree(object):
    """A scratch tapset directory (tapset_directory) with our tapsets
    installed into it by `make install PYTHON=...` for each Python given
    (ours: our python.stp too), as on a machine with our package installed."""

    def __init__(self, pythons, ours=True, extra=()):
        self.pythons = pythons
        self.ours = ours
        self.extra = extra

    def __enter__(self):
        self.scratch = tempfile.mkdtemp(prefix="pst-tapsets-")
        self.path = os.path.join(self.scratch, "tapset")
        installed = []
        if self.ours:
            root = os.path.join(self.scratch, "root")
            for python in self.pythons:
                proc = make("install", "PYTHON=" + python, "DESTDIR=" + root,
                            "tapsetdir=" + TAPSETDIR)
                assert proc.returncode == 0, proc.stderr
            installed = [os.path.join(root + TAPSETDIR, name)
                         for name in sorted(os.listdir(root + TAPSETDIR))]
        tapset_directory(self.path, python_stp=None, extra=installed + list(self.extra))
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.scratch)

    def stap(self, *args, **kw):
        env = dict(os.environ, SYSTEMTAP_TAPSET=self.path)
        return subprocess.run(["stap", "-r", headers()] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=env,
                              timeout=kw.pop("timeout", 300), **kw)


def derived_probes(stdout):
    """The process(...).statement(...) lines of stap -p2's "# probes"."""
    part = stdout.split("# probes", 1)[-1]
    return re.findall(r'^process\("([^"]+)"\)\.statement\((0x[0-9a-f]+)\)',
                      part, flags=re.M)


def listed_aliases(stdout):
    """stap -L output: {alias: {variable: type}} (no $argN)."""
    aliases = {}
    for line in stdout.splitlines():
        words = line.split()
        if not words or not words[0].startswith("python"):
            continue
        aliases[words[0]] = dict(w.split(":", 1) for w in words[1:]
                                 if ":" in w and not w.startswith("$"))
    return aliases


def examples():
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.stp")))


def aliases_used(script):
    """The python.* probe points a script uses."""
    with open(script) as f:
        return sorted(set(re.findall(r"^probe\s+(python\.[\w.]+)", f.read(), flags=re.M)))


def alias_marker(alias):
    """python[.vX[_Y]].gc.start -> gc__start."""
    rest = re.sub(r"^python(\.v\d+(_\d+)?)?\.", "", alias)
    return {"function.entry": "function__entry", "function.return": "function__return",
            "cfunction.entry": "cfunction__entry", "cfunction.return": "cfunction__return",
            "line": "line", "gc.start": "gc__start", "gc.done": "gc__done",
            "import.find_load.start": "import__find__load__start",
            "import.find_load.done": "import__find__load__done",
            "audit": "audit"}[rest]
