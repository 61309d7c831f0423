"""usdtmon, the markers from sys.monitoring (module/usdtmon), gives the
fixtures' expected outputs, the events of the markers it fires: loaded into
our 3.14 and 3.14-ft builds with every family on (USDTMON_MARKERS=all), and
as a user would have it (the families the interpreter lacks, beside the
interpreter's own) into Debian 13's own python3.13 and upstream's 3.15.
Idle, it holds no tool id and monitors nothing; it comes and goes with its
consumers, also while the main thread blocks; it never breaks the program:
no free tool id, bad settings, forks, exits.  make install-module and pip
install it."""

import os
import re
import subprocess
import time

import pytest

import cases
import consumers
import harness
import usdt

MODULE_BUILDS = [b + "+" + harness.MODULE for b in ("python3.13", "python3.14", "python3.14-ft")
                 if b in harness.builds()]
STOCK_BUILDS = [b + "+" + harness.MODULE for b in sorted(harness.STOCK)]
CLAIMED = usdt.parse_claims(harness.MODULE_CLAIMS)

TRIXIE = "python3.13-trixie"

# The families usdtmon fires on each stock interpreter, by default: those
# the interpreter lacks (Debian 13's python3.13 has gc, import and audit
# markers; upstream's 3.15 also function__entry/return).
STOCK_FAMILIES = {
    "python3.13-trixie+usdtmon": ["cfunction", "function", "line"],
    "python3.15+usdtmon": ["cfunction", "line"],
}

# The markers of each family (usdtmon.FAMILIES)
FAMILY_MARKERS = {"function": ("function__entry", "function__return"),
                  "cfunction": ("cfunction__entry", "cfunction__return"),
                  "line": ("line",), "gc": ("gc__start", "gc__done")}

# Where a stock interpreter's own events differ from our build's of the
# same series: usdtmon then gives what the interpreter's own profile and
# trace hooks see (the oracle), and the difference must still be there.
ACCEPTED = {
    ("python3.13-trixie+usdtmon", "generator"):
        "Python 3.13.5 reports no PY_RESUME for counter() resumed by the for "
        "loop's second iteration, to sys.setprofile either; 3.13.15 does",
}

# The fixtures each module build is compared on: every fixture with an
# expected output in its series, under its script (cases.script_of).


# The builds whose fixtures are traced: on our 3.14 and 3.14-ft every family
# (gc too), on the stock 3.13 and 3.15 the families they lack.  Our 3.13
# with the module adds nothing the stock 3.13 does not (the same families
# from the same C, for CI's time: docs/testing.md).
FIXTURE_BUILDS = [b for b in MODULE_BUILDS if not b.startswith("python3.13+")] + STOCK_BUILDS


def fixture_cases():
    for build in FIXTURE_BUILDS:
        directory = os.path.join(harness.DATA, "expected", harness.series_of(build))
        for name in sorted(os.listdir(directory)):
            if name.endswith(".txt"):
                yield build, name[:-len(".txt")]


_FIRED = {}


def fired(build):
    """The markers usdtmon fires on build, as it says itself."""
    if build not in _FIRED:
        proc = python(build, "import usdtmon; print(' '.join(usdtmon.state()['families']))")
        assert proc.returncode == 0, proc.stderr
        _FIRED[build] = {m for family in proc.stdout.split() for m in FAMILY_MARKERS[family]}
    return _FIRED[build]


def of(markers, events):
    return [e for e in events if e.split(" ", 1)[0] in markers]


# Upstream 3.15's own function markers (function__entry/return: usdtmon
# leaves them to it there), where they differ from ours and from what the
# interpreter's profile hooks report.  Each gap is a check of the events
# the interpreter's markers gave; the fixture's other events (usdtmon's C
# calls and lines) must still be the expected ones.


def _functions(events):
    return [e for e in events if e.startswith("function__")]


def _entry_line_unknown(got, want):
    """A frame entered from C (a class body, a decorated or profile
    function) reports line -1 at its entry."""
    return any(e.split()[3] == "-1" for e in got if e.startswith("function__entry"))


def _entry_at_creation(got, want):
    """Creating a generator or coroutine fires function__entry (its frame
    runs RETURN_GENERATOR) with no function__return: the function is
    entered twice, at the same line, with no return of it between."""
    def twice(events):
        open_at = {}
        for e in _functions(events):
            kind, _, name, line = e.split()[:4]
            if kind == "function__entry":
                if open_at.get(name) == line:
                    return True
                open_at[name] = line
            else:
                open_at.pop(name, None)
        return False
    return twice(got) and not twice(want)


def _no_entry_on_throw_or_close(got, want):
    """A generator resumed by throw() or close() fires no function__entry."""
    def resumed(events):
        found, inside = [], None
        for e in events:
            words = e.split()
            if words[0] == "cfunction__entry" and words[2] in ("throw", "close"):
                inside = words[2]
            elif words[0] == "cfunction__return" and words[2] == inside:
                inside = None
            elif words[0] == "function__entry" and inside:
                found.append(inside)
                inside = None
        return found
    return len(resumed(got)) < len(resumed(want))


def _callback_frames(got, want):
    """The frames of a profile function (run by the interpreter's profile
    hook) fire the markers, which ours and the hooks leave out."""
    names = lambda events: set(e.split()[2] for e in _functions(events))  # noqa: E731
    return bool(names(got) - names(want))


UPSTREAM_GAPS = {
    ("python3.15+usdtmon", "async_chain"): [_entry_at_creation],
    ("python3.15+usdtmon", "call_stack"): [_entry_line_unknown],
    ("python3.15+usdtmon", "generator"): [_entry_at_creation, _no_entry_on_throw_or_close],
    ("python3.15+usdtmon", "generator_ops"): [_entry_at_creation, _no_entry_on_throw_or_close],
    ("python3.15+usdtmon", "profiler_callback"): [_entry_line_unknown, _callback_frames],
    ("python3.15+usdtmon", "wrapped"): [_entry_line_unknown],
}
# Run apart (test_upstream_315_non_utf8_name_fails_the_program): upstream's
# markers fail the program there.
UPSTREAM_FAILS = {("python3.15+usdtmon", "unencodable")}


@pytest.mark.parametrize("case", [c for c in fixture_cases() if c not in UPSTREAM_FAILS],
                         ids=lambda c: "%s-%s" % c)
def test_fixture_under_bpftrace(case):
    build, fixture = case
    bpftrace = harness.require(consumers.Bpftrace())
    got = bpftrace.run(build, cases.script_of(fixture), fixture)
    traced = set(harness.marker_objects(build))
    want = harness.as_traced(build, of(traced, harness.read_expected(build, fixture)))
    if case in UPSTREAM_GAPS:
        others = lambda events: [e for e in events if not e.startswith("function__")]
        assert others(got) == others(want), harness.mismatch(others(got), others(want))
        assert _functions(got) != _functions(want), "no difference left: drop UPSTREAM_GAPS'"
        for gap in UPSTREAM_GAPS[case]:
            assert gap(got, want), "%s: not seen\n%s" % (
                gap.__doc__, harness.mismatch(got, want))
        return
    if (build, fixture) in ACCEPTED:
        assert got != want, "no difference left: drop ACCEPTED's entry"
        want = harness.as_traced(build, of(traced, harness.oracle(
            build, cases.script_of(fixture), fixture)))
    assert got == want, harness.mismatch(got, want)


# gdb on three fixtures (calls and C calls, lines, an exception's unwinding):
# a ptrace stop per event makes each run several seconds long in the root.
GDB_FIXTURES = ("call_stack", "line", "exception")


@pytest.mark.parametrize("case", [c for c in fixture_cases()
                                  if c[0] == TRIXIE + "+usdtmon" and c[1] in GDB_FIXTURES],
                         ids=lambda c: "%s-%s" % c)
def test_fixture_under_gdb(case):
    """gdb on Debian 13's python3.13 with usdtmon, in its root (chroot,
    sysroot): its breakpoints on the module's markers set their semaphores,
    usdtmon turns on, and gdb sees the fixture's expected events."""
    build, fixture = case
    gdb = harness.require(consumers.Gdb())
    got = gdb.run(build, cases.script_of(fixture), fixture)
    traced = set(harness.marker_objects(build))
    want = harness.as_traced(build, of(traced, harness.read_expected(build, fixture)))
    if (build, fixture) in ACCEPTED:
        assert got != want, "no difference left: drop ACCEPTED's entry"
        want = harness.as_traced(build, of(traced, harness.oracle(
            build, cases.script_of(fixture), fixture)))
    assert got == want, harness.mismatch(got, want, gdb.details)


def test_upstream_315_non_utf8_name_fails_the_program(tmp_path):
    """Upstream 3.15.0rc2's own function__entry (Python/ceval.c,
    dtrace_function_entry) takes the function's name with
    PyUnicode_AsUTF8 and leaves its UnicodeEncodeError set: with a
    consumer of that marker attached, a program calling a function whose
    name has a lone surrogate sees a stray UnicodeEncodeError (under
    usdtmon's runpy a SystemError, "returned a result with an exception
    set"; alone, "Exception ignored on threading shutdown").  Untraced, it
    runs clean."""
    build = "python3.15"
    harness.require(consumers.Bpftrace())
    with harness.FixtureDir() as d:
        program = [harness.interpreter(build), d.path + "unencodable.py"]
        untraced = subprocess.run(program, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, timeout=60)
        assert untraced.returncode == 0 and "Error" not in untraced.stderr, untraced.stderr
        traced = subprocess.run(
            ["bpftrace", "-c", " ".join(program), "-e",
             'usdt:%s:python:function__entry { @ = count(); }' % harness.marker_object(build)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
            timeout=120, env=consumers.Bpftrace.ENV)
    assert re.search(r"^UnicodeEncodeError: 'utf-8' codec can't encode character '\\udcff'.*"
                     r"surrogates not allowed$", traced.stdout, re.M), traced.stdout


@pytest.mark.parametrize("build", STOCK_BUILDS)
def test_stock_families(build):
    """usdtmon adds the markers a stock interpreter lacks, and no other."""
    assert fired(build) == set(m for family in STOCK_FAMILIES[build]
                               for m in FAMILY_MARKERS[family])


@pytest.mark.parametrize("case", [c for c in fixture_cases() if c[0] in STOCK_BUILDS],
                         ids=lambda c: "%s-%s" % c)
def test_stock_oracle_agrees(case):
    """What a stock interpreter's own hooks see of each fixture is the
    series' expected output, but for the differences ACCEPTED lists."""
    build, fixture = case
    mode = cases.script_of(fixture)
    kinds = {"calls": ("function__entry", "function__return", "cfunction__entry",
                       "cfunction__return"), "lines": ("line",)}[mode]
    got = harness.oracle(build, mode, fixture)
    want = of(kinds, harness.read_expected(build, fixture))
    if (build, fixture) in ACCEPTED:
        assert got != want
    else:
        assert got == want, harness.mismatch(got, want)


def test_module_sites_are_probes_d_markers():
    """The module's shared object has a site for each marker it claims,
    with probes.d's argument count and a semaphore, and no other."""
    for build in MODULE_BUILDS:
        obj = harness.marker_object(build)
        probes = usdt.parse_probes(harness.PROBES_D)
        sites = usdt.read_sites(obj)
        bad = [r for r in usdt.check(probes, CLAIMED, sites) if not r[1]]
        assert bad == [], obj


def python(build, code, env=None, timeout=60, **popen):
    """Run code on build with usdtmon on sys.path (no consumer)."""
    full = harness.environment(build)
    full.update(env or {})
    argv = harness.command(build.split("+")[0], "-c", code)
    return subprocess.run(argv,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, env=full, **popen)


IDLE = r"""
import sys, usdtmon
def f():
    return 1
for _ in range(1000):
    f()
print(usdtmon.state())
print([sys.monitoring.get_tool(i) for i in range(6)])
print(sys.monitoring._all_events())
"""


@pytest.mark.parametrize("build", MODULE_BUILDS)
def test_idle_holds_no_tool_and_monitors_nothing(build):
    proc = python(build, IDLE)
    assert proc.returncode == 0, proc.stderr
    state, tools, events = proc.stdout.splitlines()
    assert state == ("{'families': ['cfunction', 'function', 'gc', 'line'], 'on': [], "
                     "'tool_id': None, 'watching': True}")
    assert tools == "[None, None, None, None, None, None]"
    assert events == "{}"
    assert proc.stderr == ""


@pytest.mark.parametrize("build", MODULE_BUILDS + STOCK_BUILDS)
def test_import_leaves_the_notes_for_later(build):
    """Which families the interpreter lacks is read from its ELF notes
    the first time a consumer is seen, not at import: most of what the
    import would cost."""
    proc = python(build, "import sys, usdtmon; print('usdtmon._elf' in sys.modules)",
                  env={"USDTMON_MARKERS": "auto"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "False\n"


@pytest.mark.parametrize("build", ["python3.14+" + harness.MODULE])
def test_on_a_patched_build_it_fires_nothing_by_default(build):
    """Our builds fire every marker themselves: usdtmon's default adds none,
    so that no event counts twice."""
    if build not in MODULE_BUILDS:
        pytest.fail("%s is not built: run 'make module'" % build)
    proc = python(build, "import usdtmon; print(usdtmon.state()['families'])",
                  env={"USDTMON_MARKERS": "auto"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n"


@pytest.mark.parametrize("setting, said", [
    ({"USDTMON_MARKERS": "some"}, "USDTMON_MARKERS must be 'auto' or 'all', not 'some'"),
    ({"USDTMON_INTERVAL_MS": "0"}, "USDTMON_INTERVAL_MS must be a whole number of ms"),
    ({"USDTMON_INTERVAL_MS": "soon"}, "USDTMON_INTERVAL_MS must be a whole number of ms"),
])
def test_bad_settings_are_told_and_the_program_runs(setting, said):
    build = MODULE_BUILDS[0]
    proc = python(build, "import usdtmon; print('ran', usdtmon.state()['watching'])",
                  env=setting)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ran False\n"
    assert said in proc.stderr
    assert "no markers" in proc.stderr


def test_usdtmon_0_turns_it_off():
    build = MODULE_BUILDS[0]
    proc = python(build, "import usdtmon; print(usdtmon.state())", env={"USDTMON": "0"})
    assert proc.returncode == 0, proc.stderr
    assert "'watching': False" in proc.stdout
    assert proc.stderr == ""


def test_main_runs_a_script_with_its_arguments(tmp_path):
    build = MODULE_BUILDS[0]
    script = tmp_path / "prog.py"
    script.write_text("import sys\nprint(__name__, sys.argv[1:])\nsys.exit(3)\n")
    proc = subprocess.run(harness.command(build, str(script)) + ["a", "b"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60, env=harness.environment(build))
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "__main__ ['a', 'b']\n"


# A server: the main thread blocks (join), a worker calls tick() every
# 10 ms for 3 s, then says how usdtmon stood.
BLOCKED = r"""
import sys, threading, time, usdtmon
def tick():
    return 1
def work():
    end = time.time() + float(sys.argv[1])
    while time.time() < end:
        tick()
        time.sleep(0.01)
print("ready", flush=True)
t = threading.Thread(target=work)
t.start()
t.join()
print(usdtmon.state())
"""

COUNT = r"""
BEGIN { printf("tracing\n"); }
usdt:@OBJECT@:python:function__entry /pid == @PID@ && str(arg1) == "tick"/ { @ticks = count(); }
"""


def attach_count(build, program_text, seconds, tmp_path, env=None, script_text=COUNT):
    """Start program_text on build; once it printed "ready", count its
    tick() entries with bpftrace for a while; (count, program's stdout,
    stderr, exit status).  The program gets seconds as its argument."""
    program = tmp_path / "prog.py"
    program.write_text(program_text)
    full = harness.environment(build)
    full["USDTMON_INTERVAL_MS"] = "50"
    full.update(env or {})
    proc = subprocess.Popen([harness.interpreter(build), str(program), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=full)
    try:
        assert proc.stdout.readline() == "ready\n"
        script = tmp_path / "count.bt"
        script.write_text(script_text.replace("@OBJECT@", harness.marker_object(build))
                          .replace("@PID@", str(proc.pid)))
        out = tmp_path / "out.txt"
        tracer = consumers.Bpftrace().start(str(script), str(out))
        try:
            time.sleep(1.5)
        finally:
            consumers.Bpftrace.interrupt(tracer)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    m = re.search(r"@ticks: (\d+)", out.read_text())
    return (int(m.group(1)) if m else 0), stdout, stderr, proc.returncode


@pytest.mark.parametrize("build", MODULE_BUILDS)
def test_attach_while_main_thread_blocks_and_detach(build, tmp_path):
    """A consumer that attaches to a running server whose main thread
    blocks sees its calls within the interval; once it is gone, usdtmon
    frees its tool id."""
    harness.require(consumers.Bpftrace())
    ticks, stdout, stderr, status = attach_count(build, BLOCKED, 4, tmp_path)
    assert status == 0, stderr
    # 1.5 s attached, a tick each 10 ms: most of 150, after at most 50 ms
    assert ticks > 50, (ticks, stderr)
    assert stdout.strip().endswith("'on': [], 'tool_id': None, 'watching': True}"), stdout
    assert stderr == ""


NO_TOOL = r"""
import sys, time, usdtmon
sys.monitoring.use_tool_id(3, "mine")
sys.monitoring.use_tool_id(4, "mine too")
def tick():
    return 1
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    tick()
    time.sleep(0.01)
print(usdtmon.state()["tool_id"], sys.monitoring.get_tool(3), sys.monitoring.get_tool(4))
"""


def test_no_free_tool_id_is_told_and_the_program_runs(tmp_path):
    build = MODULE_BUILDS[0]
    harness.require(consumers.Bpftrace())
    ticks, stdout, stderr, status = attach_count(build, NO_TOOL, 3, tmp_path)
    assert status == 0, stderr
    assert ticks == 0
    assert stdout == "None mine mine too\n"
    assert stderr.count("usdtmon: no sys.monitoring tool id is free") == 1, stderr


FORK = r"""
import os, sys, time, usdtmon
def tick():
    return 1
print("ready", flush=True)
pid = os.fork()
end = time.time() + float(sys.argv[1])
while time.time() < end:
    tick()
    time.sleep(0.01)
if pid == 0:
    os._exit(7)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""

COUNT_TREE = r"""
BEGIN { printf("tracing\n"); }
usdt:@OBJECT@:python:function__entry /str(arg1) == "tick"/ { @ticks[pid == @PID@ ? "parent" : "child"] = count(); }
"""


@pytest.mark.parametrize("build", MODULE_BUILDS)
def test_forked_child_is_traced_and_unharmed(build, tmp_path):
    """A child forked from a traced program is traced too (the kernel's
    semaphores and usdtmon's registrations come with the fork, and the
    child gets a watcher of its own), and exits as it would untraced."""
    harness.require(consumers.Bpftrace())
    _, stdout, stderr, status = attach_count(build, FORK, 4, tmp_path,
                                             script_text=COUNT_TREE)
    text = (tmp_path / "out.txt").read_text()
    counts = dict(re.findall(r'@ticks\[(\w+)\]: (\d+)', text))
    assert status == 0, stderr
    assert stdout == "7\n", stderr
    assert int(counts.get("parent", 0)) > 50, text
    assert int(counts.get("child", 0)) > 50, text
    assert stderr == ""


# A program that exits while a daemon thread still calls tick() and the
# watcher may be turning events on or off (interval 1 ms).
EXITING = r"""
import sys, threading, time, usdtmon
def tick():
    return 1
def spin():
    while True:
        tick()
print("ready", flush=True)
for _ in range(4):
    threading.Thread(target=spin, daemon=True).start()
time.sleep(float(sys.argv[1]))
print("exiting", flush=True)
"""


@pytest.mark.parametrize("build", MODULE_BUILDS)
def test_exit_with_a_consumer_and_running_threads(build, tmp_path):
    """Interpreter shutdown never hangs or crashes, traced or not, while
    daemon threads run and the watcher looks every millisecond."""
    harness.require(consumers.Bpftrace())
    for seconds in (0.2, 0.7, 2):
        ticks, stdout, stderr, status = attach_count(
            build, EXITING, seconds, tmp_path, env={"USDTMON_INTERVAL_MS": "1"})
        assert status == 0, stderr
        assert stdout == "exiting\n", stderr
        assert stderr == ""


# --- make install-module and pip, on Debian 13's own python3.13 -----------------


def run_in_root(build, command, tmp_path, timeout=300):
    """command (a shell line) run as root in build's root, in a copy of
    the checkout's scripts, module, marker C, provider and tapset template
    at /tmp/NAME/src (NAME: tmp_path's); its CompletedProcess."""
    root = harness.root_of(build)
    inner = "/tmp/" + tmp_path.name
    src = root + inner + "/src"
    os.makedirs(src)
    subprocess.run(["cp", "-R"] + [os.path.join(harness.REPO, p) for p in (
        "scripts", "module", "markers", "probes.d", "tapset")] + [src], check=True)
    try:
        return subprocess.run(
            harness.in_root(root, ["sh", "-c", "cd %s/src && %s" % (inner, command)]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
            timeout=timeout)
    finally:
        subprocess.run(["rm", "-rf", root + inner], check=True)


def test_install_module_on_a_stock_python(tmp_path):
    """scripts/install-module.sh (make install-module) for Debian 13's
    python3.13, staged under a DESTDIR in its root: the package in that
    Python's platlib, the tapset, and the site-wide .pth.  The tapset
    probes usdtmon's installed shared object for the families the
    interpreter lacks and libpython for its own markers; the .pth, read as
    site.py reads it at start-up, loads usdtmon, unless USDTMON=0.  (-S:
    the root's own site-packages may hold an installed usdtmon, the guest's
    test_calltree_on_a_stock_python_with_usdtmon's.)"""
    stage = "/tmp/%s/stage" % tmp_path.name
    check = ("import site, sys; site.addsitedir(sys.argv[1]); import usdtmon; "
             "print(usdtmon.__file__, usdtmon.state()['watching'])")
    proc = run_in_root(TRIXIE, (
        "scripts/install-module.sh --destdir={stage} --tapsetdir=/tapset --site-wide "
        "/usr/bin/python3.13 && "
        "python3.13 -S -c \"{check}\" {stage}/usr/local/lib/python3.13/dist-packages && "
        "USDTMON=0 python3.13 -S -c \"{check}\" {stage}/usr/local/lib/python3.13/dist-packages && "
        "cat {stage}/tapset/usdtmon-python3.13-64.stp").format(stage=stage, check=check),
        tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    platlib = "/usr/local/lib/python3.13/dist-packages"
    lines = proc.stdout.splitlines()
    installed = [l.split()[1] for l in lines if l.startswith("installed ")]
    so = [p for p in installed if re.search(r"/usdtmon/_core\.cpython-313-x86_64-linux-gnu\.so$", p)]
    assert len(so) == 1 and so[0] == stage + platlib + so[0][len(stage + platlib):], installed
    assert stage + "/tapset/usdtmon-python3.13-64.stp" in installed
    assert stage + "/tapset/python.stp" in installed
    assert stage + platlib + "/usdtmon-site.pth" in installed
    loaded = [l for l in lines if l.endswith((" True", " False"))]
    assert loaded == [stage + platlib + "/usdtmon/__init__.py True",
                      stage + platlib + "/usdtmon/__init__.py False"], lines
    tapset = "\n".join(lines)
    module_so = so[0][len(stage):]
    own = harness.interpreter_object(TRIXIE)[len(harness.root_of(TRIXIE)):]
    points = re.findall(r'process\("([^"]+)"\)\.mark\("(\w+)"\)', tapset)
    where = {}
    for path, marker in points:
        where.setdefault(marker, set()).add(path)
    for marker in ("function__entry", "function__return", "cfunction__entry",
                   "cfunction__return", "line"):
        assert where.get(marker) == {module_so}, (marker, where.get(marker))
    for marker in ("gc__start", "gc__done", "import__find__load__start", "audit"):
        assert where.get(marker) == {own}, (marker, where.get(marker))
    # Each alias's comment says what fires its marker.
    said = {marker: by for by, marker in re.findall(
        r"Covers Python 3\.13 only; fired by (.+?)\.\n \*/\n"
        r'probe python\.v3_13\.\S+ = process\("[^"]+"\)\.mark\("(\w+)"\)', tapset)}
    assert set(said) == set(where), said
    assert {m for m, by in said.items() if by.startswith("usdtmon")} == {
        "function__entry", "function__return", "cfunction__entry", "cfunction__return",
        "line"}, said
    assert {by for m, by in said.items() if not by.startswith("usdtmon")} == {
        "the interpreter itself"}, said


def test_pip_installs_it_offline(tmp_path):
    """pip install --no-build-isolation --no-index ./module, in the Debian
    13 root with its own pip and setuptools: the package, its C core built
    for that Python, which then fires the markers under a consumer."""
    target = "/tmp/%s/pipped" % tmp_path.name
    program = ("import sys; sys.path.insert(0, sys.argv[1]); import usdtmon; "
               "print(usdtmon.__file__, sorted(usdtmon.state()['families']))")
    proc = run_in_root(TRIXIE, (
        "python3.13 -m pip install -q --break-system-packages --no-build-isolation "
        "--no-index --root-user-action=ignore --target {target} ./module && "
        "ls {target}/usdtmon && python3.13 -c \"{program}\" {target}").format(
            target=target, program=program), tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    lines = proc.stdout.splitlines()
    assert "_core.cpython-313-x86_64-linux-gnu.so" in lines, lines
    assert lines[-1] == target + "/usdtmon/__init__.py ['cfunction', 'function', 'line']", lines
