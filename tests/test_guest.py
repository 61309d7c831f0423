"""SystemTap's module runtime, for real, in a qemu guest (tests/guest).

Each script is compiled on the host for Debian's 6.1 kernel and run with
staprun in a guest booted on that kernel; all guest tests of a session
share one boot (tests/guest/session.py).  The fixtures of tests/dtracedata
traced by stap are checked in test_semantics.py (the stap consumer); here:

  test_calltree_one_liner
                    README's one-line call tree: exactly the fixture's tree
  test_aliases      every alias of every tapset, on fixtures that fire them,
                    with exact values
  test_installed    after make install, the one-line call tree and the
                    installed examples/calltree.stp, as typed, with the
                    installed Python on PATH
  test_calltree_on_a_stock_python_with_usdtmon
                    README's one-line call tree on Debian 13's own
                    python3.13 with usdtmon, installed as README says
  test_semaphores   the markers' semaphores are 0 before stap runs, set
                    while it runs, 0 again after it exits, as the traced
                    Python itself reads them
  test_boot_limit   a guest that does not come up is killed at its limit
                    and reported with the console's tail
  test_fetch_kernel_needs_headers
                    without the 6.1 headers the guest's kernel cannot be
                    chosen: a clear error, not an empty release
  test_lost_end_runs_again
                    a run whose output lacks its last line (SystemTap's
                    transport lost it) runs again, and the test reads that
"""

import os
import re
import subprocess
import tempfile

import pytest

import harness
import staptools
from guest import jobs
from guest.session import (END_OF_TRACE, GUEST, HERE, RERUN_LIMIT, UP_LIMIT, Job, Result,
                           required, reruns_problem, staprun_twice)

def guest_jobs_of(item):
    """The guest jobs a test of this file reads (tests/guest/jobs.py)."""
    build = item.callspec.params.get("build") if hasattr(item, "callspec") else None
    if item.originalname == "test_calltree_one_liner":
        return ["calltree-" + build]
    if item.originalname == "test_installed":
        return ["installed-%s-%s" % (item.callspec.params["what"], item.callspec.params["series"])]
    if item.originalname == "test_calltree_on_a_stock_python_with_usdtmon":
        return [jobs.STOCK_JOB]
    if item.originalname == "test_semaphores":
        return ["semaphores-" + build]
    if item.originalname == "test_aliases":
        return [jobs.alias_name(*item.callspec.params["case"])]
    if item.originalname == "test_reruns_are_rare":
        # Any job: it reads the whole session, so it runs with the readers.
        return ["calltree-" + harness.series()[-1]]
    return []


@pytest.mark.parametrize("build", harness.builds())
def test_calltree_one_liner(build):
    if not {"function__entry", "function__return"} <= set(jobs.claimed(build)):
        pytest.skip("%s claims no function__entry/return markers (%s)"
                    % (build, harness.claims(build)))
    tapsets = jobs.tapset_dir(build)
    if build.endswith(("-ft", "-jit")):
        tapsets = tapsets or jobs.variant_tapset_dir(build)
    # make tapset covers each series and its -shared build.
    assert tapsets, "no tapset in build/tapset*/ probes %s (make tapset)" % harness.marker_object(build)
    with open(os.path.join(tapsets, "lib%s-64.stp" % harness.series_of(build))) as f:
        assert 'mark("function__entry")' in f.read(), \
            "the tapset for %s offers no python.function.entry: out of date (make tapset)" % build
    result = required().result("calltree-" + build)
    tree = staptools.calltree_lines(result.trace(), result.job.data["fixtures"])
    expected = os.path.join(staptools.CALLTREE_EXPECTED, harness.series_of(build), "calltree.txt")
    assert os.path.exists(expected), \
        "no expected call tree for %s: write %s; the one-liner printed:\n%s" % (
            build, expected, "\n".join(tree))
    assert tree == staptools.expected_calltree(harness.series_of(build))


# --- what make install installs ----------------------------------------------

@pytest.mark.parametrize("what", ["calltree", "example"])
@pytest.mark.parametrize("series", jobs.installed_series())
def test_installed(series, what):
    """After `make install` (into a scratch prefix and a copy of SystemTap's
    tapset directory), with the installed pythonX.Y on PATH: README's
    one-line call tree as typed (calltree), and the installed
    examples/calltree.stp (example), each exactly the fixture's tree."""
    result = required().result("installed-%s-%s" % (what, series))
    assert result.error is None and result.status == 0, result.describe()
    tree = staptools.calltree_lines(result.trace(), result.job.data["fixtures"])
    assert tree, result.describe()
    assert tree == staptools.expected_calltree(series)


# --- the Python people already run ------------------------------------------

def test_calltree_on_a_stock_python_with_usdtmon():
    """Debian 13's own python3.13 with usdtmon installed as README says
    (make install-module's script, in its root): README's one-line call
    tree, compiled with the tapset install-module wrote, run as typed,
    `python3.13 -m usdtmon call_stack.py`, gives our 3.13's tree: the
    function markers come from usdtmon there."""
    result = required().result(jobs.STOCK_JOB)
    assert result.error is None and result.status == 0, result.describe()
    tree = staptools.calltree_lines(result.trace(), result.job.data["fixtures"])
    assert tree, result.describe()
    # -m usdtmon runs the program under runpy's frames: the same tree, one
    # level deeper.
    assert outdented(tree) == outdented(
        staptools.expected_calltree(harness.series_of(jobs.STOCK_BUILD)))


def outdented(tree):
    """The lines of tree less the indentation they all share."""
    common = min(len(line) - len(line.lstrip()) for line in tree)
    return [line[common:] for line in tree]


# --- semaphores --------------------------------------------------------------

@pytest.mark.parametrize("build", harness.builds())
def test_semaphores(build):
    result = required().result("semaphores-" + build)
    assert result.error is None and result.status == 0, result.describe()
    found = jobs.semaphores_of(build)
    # The kernel counts every uprobe on a semaphore: one per site.
    expected = [
        "before " + " ".join("%s=0" % marker for marker, _, _ in found),
        "during " + " ".join("%s=%d" % (marker, sites) for marker, _, sites in found),
        "after " + " ".join("%s=0" % marker for marker, _, _ in found),
    ]
    assert result.stdout.splitlines() == expected, result.describe()


# --- every tapset alias ------------------------------------------------------

ALIAS_CASES = [(build, fixture) for build in harness.builds()
               for fixture in jobs.alias_fixtures(build)]


def quoted(value):
    return "NULL" if value == "(null)" else '"%s"' % value


def argstr_of(event):
    """The argstr an alias must give for event (the suite's format, as the
    alias job prints it): its arguments in marker order, strings quoted,
    NULL for a NULL pointer."""
    words = event.split(" ")
    kind = words[0]
    if kind in ("function__entry", "function__return", "cfunction__entry",
                "cfunction__return", "line"):
        args = [quoted(words[1]), quoted(words[2]), words[3]] + [quoted(w) for w in words[4:]]
    elif kind in ("gc__start", "gc__done"):
        args = [words[1]]
    elif kind == "import__find__load__start":
        args = [quoted(words[1])]
    elif kind == "import__find__load__done":
        args = [quoted(words[1]), words[2]]
    else:
        raise AssertionError("no argstr rule for " + event)
    return ", ".join(args)


@pytest.mark.parametrize("case", ALIAS_CASES, ids=lambda c: "%s-%s" % c)
def test_aliases(case):
    """Every alias of the build's tapset (python.*, python.vX.*, python.vX_Y.*)
    against a fixture: per family, exactly the fixture's expected events,
    from the alias's variables (name, filename, funcname, lineno, module,
    generation, collected, found, event, args), and an argstr that says
    the same."""
    build, fixture = case
    result = required().result(jobs.alias_name(build, fixture))
    prefix = result.job.data["fixtures"]
    found = result.job.data["aliases"]
    families = sorted(set(jobs.alias_kind(alias)[0] for alias, _, _ in found))
    assert len(families) == 3, "%s: alias families %s" % (result.job.data["tapset"], families)
    seen = dict((family, []) for family in families)
    for line in result.trace().splitlines():
        family, event, argstr = line.replace(prefix, "").split("\t")
        assert family in seen, "an event of an unknown family: %r" % line
        seen[family].append((event, argstr))
    want = harness.read_expected(build, fixture)
    for family in families:
        events = [e for e, _ in seen[family]]
        if fixture == "line":
            got = [e for e in events if e.startswith("line ")]
        else:
            got = [e for e in events if not e.startswith(("line ", "audit "))]
        assert got == want, "%s.*: %s" % (family, harness.mismatch(got, want, result.describe()))
        for event, argstr in seen[family]:
            if event.startswith("audit "):
                _, name, has_args = event.split(" ")
                assert has_args == "1" and re.match(r'^"%s", 0x[0-9a-f]+$' % re.escape(name), argstr), \
                    "%s.audit: %r %r" % (family, event, argstr)
            else:
                assert argstr == argstr_of(event), "%s: %r for %r" % (family, argstr, event)
        if fixture == "audit":
            audits = [e for e in events if e.startswith("audit ")]
            assert audits == ["audit python_systemtap.fixture 1"], "%s.audit: %s" % (family, audits)


def test_every_alias_is_run():
    """Each alias of each build's tapset is in a job, and the fixtures make
    every marker the build claims fire."""
    for build in harness.builds():
        path = jobs.build_tapset(build)
        assert path and os.path.exists(path), "no tapset for %s (make tapset)" % build
        found = jobs.tapset_aliases(path, build)
        markers_of = set(marker for _, marker, _ in found)
        assert markers_of == set(jobs.claimed(build)), (build, markers_of)
        # Every marker has an expected event in some fixture the jobs run.
        events = set()
        for fixture in jobs.alias_fixtures(build):
            events.update(e.split(" ")[0] for e in harness.read_expected(build, fixture))
        if "audit" in markers_of:
            assert "audit" in jobs.alias_fixtures(build)
            events.add("audit")
        assert markers_of <= events, (build, markers_of - events)


# --- the boot's time limit -----------------------------------------------------

def test_boot_limit():
    """A guest that is not up in time is killed, and the console tells why."""
    kernel, initrd = required().boot_files()
    run = tempfile.mkdtemp(prefix="limit.", dir=GUEST)
    console = run + ".console"
    try:
        # Up within 1 s: never under TCG, so boot.sh must kill it.
        proc = subprocess.run(
            [os.path.join(HERE, "boot.sh"), kernel, initrd, run, "1", str(UP_LIMIT), console],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
            timeout=120)
    finally:
        for path in (console,):
            if os.path.exists(path):
                os.remove(path)
        os.rmdir(run)
    assert proc.returncode == 1, proc.stdout
    assert "did not come up within 1 s: killed" in proc.stdout, proc.stdout
    assert "last 40 lines of the guest console" in proc.stdout, proc.stdout


# --- the guest's kernel --------------------------------------------------------

@pytest.mark.parametrize("installed,status,says", [
    ("", 1, "no linux-headers-6.1.0-N-amd64 is installed (apt-get install linux-headers-amd64)"),
    ("ii  linux-headers-6.1.0-999-amd64", 0, "/usr/src/linux-headers-6.1.0-999-amd64 is missing"),
    ("", 2, "dpkg-query failed (exit status 2)"),
])
@pytest.mark.quick
def test_fetch_kernel_needs_headers(installed, status, says):
    """fetch-kernel.sh picks the newest installed linux-headers-6.1.0-N-amd64
    (dpkg-query, here a stand-in that lists installed and exits with status:
    1 as dpkg-query does when no package matches); none, or one whose tree is
    gone, is an error that says what to install, a dpkg-query that fails
    otherwise an error of its own, and nothing is fetched."""
    with harness.FixtureDir() as d:
        fake = os.path.join(d.path, "dpkg-query")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\necho '%s'\nexit %d\n" % (installed, status))
        os.chmod(fake, 0o755)
        env = dict(os.environ, PATH=d.path + ":" + os.environ["PATH"])
        env.pop("GUEST_KERNEL_RELEASE", None)
        proc = subprocess.run([os.path.join(HERE, "fetch-kernel.sh"), d.path + "kernel"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=60)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert proc.stderr.startswith("fetch-kernel.sh: " + says), proc.stderr
        assert not os.path.exists(d.path + "kernel")


# --- a run that lost its end ---------------------------------------------------

# Stands in for staprun: -o FILE, then the module; run N (counted in the
# file runs) writes the lines of its module parameter runN (| for newlines)
# into FILE, and "target's run N" to stdout, as its target would.
FAKE_STAPRUN = """\
#!/bin/sh
set -eu
out=$2
n=$(( $(cat runs 2>/dev/null || echo 0) + 1 ))
echo "$n" > runs
echo "target's run $n"
for param in "$@"; do
    case $param in run$n=*) printf '%s\\n' "${param#*=}" | tr '|' '\\n' > "$out";; esac
done
"""


@pytest.mark.parametrize("first,second,read", [
    ("a|b|" + END_OF_TRACE, None, "a\nb\n"),
    ("a", "a|b|" + END_OF_TRACE, "a\nb\n"),
    ("a", "a|b", None),
])
@pytest.mark.quick
def test_lost_end_runs_again(first, second, read):
    """staprun_twice's command runs the target again only when the first
    output's last line is not END_OF_TRACE; Result.trace() reads the whole
    output, less that line, with a warning when it is the second, and
    Result.target_stdout() the target's stdout in that run; an end lost
    twice fails."""
    with harness.FixtureDir() as d:
        staprun = os.path.join(d.path, "staprun")
        with open(staprun, "w") as f:
            f.write(FAKE_STAPRUN)
        os.chmod(staprun, 0o755)
        params = [("run1", first)] + ([("run2", second)] if second else [])
        command = staprun_twice("module.ko", "true", params)
        proc = subprocess.run(["sh", "-c", "{ %s; } > stdout" % command], cwd=d.path,
                              env=dict(os.environ, PATH=d.path + ":" + os.environ["PATH"]),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=60)
        assert proc.returncode == 0, proc.stdout
        with open(d.path + "runs") as f:
            assert int(f.read()) == (1 if second is None else 2)
        files = {}
        for name in os.listdir(d.path):
            with open(d.path + name) as f:
                files[name] = f.read()
    stdout = files.pop("stdout")
    result = Result(Job("fake", command), status=0, stdout=stdout, files=files)
    if read is None:
        with pytest.raises(AssertionError, match="lost the end of both runs"):
            result.trace()
    elif second is None:
        assert result.trace() == read
        assert result.target_stdout() == "target's run 1\n"
    else:
        with pytest.warns(UserWarning, match="lost the end of the output of the first"):
            assert result.trace() == read
        assert result.target_stdout() == "target's run 2\n"


def test_reruns_are_rare():
    """At most one guest job in RERUN_LIMIT ran a second time because stap
    lost the end of its first output: more means a regression in stap's
    transport or in our runtime fix (tests/guest/fix-runtime.sh), which the
    reruns would otherwise hide."""
    again, jobs = required().reruns()
    assert jobs > 0
    problem = reruns_problem(again, jobs)
    assert problem is None, problem


@pytest.mark.parametrize("again, jobs, fails", [
    (0, 1, False), (1, 20, False), (2, 40, False), (2, 39, True), (1, 19, True), (3, 20, True),
])
@pytest.mark.quick
def test_rerun_limit(again, jobs, fails):
    problem = reruns_problem(["job%d" % i for i in range(again)], jobs)
    assert (problem is not None) == fails
    if fails:
        assert ("more than 1 in %d" % RERUN_LIMIT) in problem
