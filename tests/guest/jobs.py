"""The jobs a test session runs in the guest, by the tests that read them.

A provider takes the session's Run and returns Jobs; session.py compiles
their modules and runs them all in one boot.  A test reads its job's Result
with session.session().result(NAME), and its module says which jobs each of
its tests reads with a function guest_jobs_of(item) (conftest.py runs only
the jobs of the selected tests).  Add a provider to PROVIDERS for new kinds
of guest tests.
"""

import filecmp
import glob
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import cases
import harness
import staptools
import usdt
from guest.session import GUEST, HERE, Job, Module, staprun_twice


def ident(text):
    """text as a piece of a module name."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def object_script(path, build):
    """The stap script at path with @OBJECT@ set to build's marker object."""
    with open(path) as f:
        return f.read().replace("@OBJECT@", harness.marker_object(build))


def as_typed(run, name, module, build, fixture):
    """Job name: module run with -c `python FIXTURE.py` from the fixture's
    directory, as a user types it."""
    fixtures = run.fixtures(name)
    command = "cd %s && %s" % (fixtures, staprun_twice(
        run.module(module), "%s %s.py" % (harness.interpreter(build), fixture),
        output=os.path.join(run.job_dir(name), "out.txt")))
    return Job(name, command, [module], data={"fixtures": fixtures})


def claimed(build):
    return usdt.parse_claims(harness.claims(build))


# --- test_semantics.py: the Stap consumer (consumers.Stap) --------------------

def semantics_name(build, script, fixture):
    return "semantics-%s-%s-%s" % (build, script, fixture)


def consumer_module(build, script):
    """tests/dtracedata/SCRIPT.stp for build: one module serves every fixture
    (the fixture's directory is a module parameter)."""
    # A guest under TCG on a busy host can spend more than half its time in
    # probes: stap's overload limit must not end a test run.
    return Module("pst_%s_%s" % (ident(script), ident(build)),
                  object_script(os.path.join(harness.DATA, script + ".stp"), build),
                  ["-DSTP_NO_OVERLOAD"])


def semantics(run):
    # The cases and scripts test_semantics.py checks with every consumer.
    jobs = []
    for build, fixture in cases.semantics_cases():
        if not cases.consumer_builds("stap", [build]):
            continue
        script = cases.script_of(fixture)
        name = semantics_name(build, script, fixture)
        module = consumer_module(build, script)
        fixtures = run.fixtures(name)
        target = "%s %s%s.py" % (harness.interpreter(build), fixtures, fixture)
        command = staprun_twice(run.module(module), target, params=[("dir", fixtures)])
        jobs.append(Job(name, command, [module], data={"fixtures": fixtures}))
    return jobs


# --- test_guest.py: README's one-line call tree ----------------------------

CALLTREE_FIXTURE = "call_stack"

# As README gives it, run as `stap -I TAPSETS -e CALLTREE -c "python fixture.py"`.
CALLTREE = ('probe python.function.entry { printf("%s => %s in %s:%d\\n", '
        'thread_indent(1), funcname, filename, lineno) } '
        'probe python.function.return { printf("%s <= %s in %s:%d\\n", '
        'thread_indent(-1), funcname, filename, lineno) }')


def tapset_dir(build):
    """The directory where `make tapset` put a tapset probing build's marker
    object (build/tapset, build/tapset-shared ...), or None."""
    wanted = 'process("%s")' % harness.marker_object(build)
    name = "lib%s-64.stp" % harness.series_of(build)
    for path in sorted(glob.glob(os.path.join(harness.BUILD, "tapset*", name))):
        with open(path) as f:
            if wanted in f.read():
                return os.path.dirname(path)
    return None


def variant_tapset_dir(build):
    """For a build `make tapset` leaves out (python3.13-ft, -jit): its tapset,
    written by scripts/gen-tapset into build/guest/tapset-BUILD (rewritten only
    when it changes: stap's cache keys on the tapsets' time stamps)."""
    directory = os.path.join(GUEST, "tapset-" + build)
    scratch = tempfile.mkdtemp(prefix="tapset.", dir=GUEST)
    try:
        subprocess.run([os.path.join(harness.REPO, "scripts", "gen-tapset"),
                        os.path.join(harness.REPO, "tapset", "libpython.stp.in"),
                        harness.interpreter(build), scratch],
                       check=True, stdout=subprocess.PIPE, timeout=120)
        if not (os.path.isdir(directory)
                and filecmp.dircmp(scratch, directory).diff_files == []
                and sorted(os.listdir(scratch)) == sorted(os.listdir(directory))):
            shutil.rmtree(directory, ignore_errors=True)
            os.rename(scratch, directory)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return directory


def calltree_builds():
    """The builds the one-line call tree traces: those with function markers."""
    return [b for b in harness.builds()
            if {"function__entry", "function__return"} <= set(claimed(b))]


def calltree(run):
    jobs = []
    for build in calltree_builds():
        name = "calltree-" + build
        # One module for every build of a linkage: the aliases cover them all.
        tapsets = tapset_dir(build)
        if tapsets is None and build.endswith(("-ft", "-jit")):
            tapsets = variant_tapset_dir(build)
        if tapsets is None:
            jobs.append(Job(name, "false", error="no tapset in build/tapset*/ probes %s (make tapset)"
                            % harness.marker_object(build)))
            continue
        module = Module("pst_calltree_" + ident(os.path.basename(tapsets)), CALLTREE + "\n",
                        ["-I", tapsets])
        jobs.append(as_typed(run, name, module, build, CALLTREE_FIXTURE))
    return jobs


# --- test_guest.py: semaphores ---------------------------------------------

def first_load(elf):
    """The address elf's first PT_LOAD segment is linked at."""
    return usdt.load_segments(elf)[0][0]


def semaphores_of(build):
    """[(marker, semaphore address, number of sites)] for build's claims."""
    sites = [s for s in usdt.read_sites(harness.marker_object(build))
             if s.provider == usdt.PROVIDER]
    found = []
    for marker in claimed(build):
        at = [s for s in sites if s.name == marker]
        addresses = set(s.semaphore for s in at)
        assert len(addresses) == 1, "%s: %s has semaphores %s" % (build, marker, addresses)
        found.append((marker, addresses.pop(), len(at)))
    return found


def semaphore_module(build):
    """A module probing every marker build claims; "ready" once they are in place."""
    obj = harness.marker_object(build)
    points = ",\n      ".join('process("%s").mark("%s")' % (obj, marker)
                              for marker, _, _ in semaphores_of(build))
    script = ("global hits\n"
              "probe begin { printf(\"ready\\n\") }\n"
              "probe %s\n{\n    hits++\n}\n"
              "probe end { if (hits < 0) println(hits) }\n" % points)
    return Module("pst_semaphores_" + ident(build), script)


def semaphores(run):
    jobs = []
    for build in harness.builds():
        name = "semaphores-" + build
        try:
            module = semaphore_module(build)
        except AssertionError as e:
            jobs.append(Job(name, "false", error=str(e)))
            continue
        obj = harness.marker_object(build)
        words = [harness.interpreter(build), os.path.join(HERE, "semaphores.py"),
                 obj, "%#x" % first_load(obj)]
        words += ["%s=%#x" % (marker, address) for marker, address, _ in semaphores_of(build)]
        words += ["--", "staprun", run.module(module)]
        jobs.append(Job(name, " ".join(words), [module]))
    return jobs


# --- test_guest.py: every tapset alias ----------------------------------------

# The fixtures the alias jobs run (those of them with an expected output for
# the build's series): together they make every marker fire.
ALIAS_FIXTURES = ("call_stack", "gc_import", "line", "unencodable", "audit")

ALIAS = re.compile(r'^probe (\S+) = process\("([^"]+)"\)\.mark\("(\w+)"\)', re.M)
WIDER = re.compile(r'^probe (\S+) = (\S+) \? \{ \}$', re.M)

# What an alias job prints for each kind of alias, after its family and a tab:
# the event in the suite's format (tests/harness.py), a tab, argstr.  The
# function aliases keep the depth of fixture frames per family and thread;
# GC, import and audit events count only two fixture frames deep, as in
# tests/dtracedata/calls.stp.
ALIAS_BODY = {
    "function.entry": ('if (fixture(filename)) {\n'
                       '        depth["@F@", tid()]++\n'
                       '        out("@F@", sprintf("%s %s %s %d@M@", name, filename, funcname, lineno@MV@), argstr)\n'
                       '    }'),
    "function.return": ('if (fixture(filename)) {\n'
                        '        depth["@F@", tid()]--\n'
                        '        out("@F@", sprintf("%s %s %s %d@M@", name, filename, funcname, lineno@MV@), argstr)\n'
                        '    }'),
    "cfunction.entry": ('if (fixture(filename))\n'
                        '        out("@F@", sprintf("%s %s %s %d %s", name, filename, funcname, lineno, module), argstr)'),
    "cfunction.return": ('if (fixture(filename))\n'
                         '        out("@F@", sprintf("%s %s %s %d %s", name, filename, funcname, lineno, module), argstr)'),
    "line": ('if (fixture(filename))\n'
             '        out("@F@", sprintf("%s %s %s %d", name, filename, funcname, lineno), argstr)'),
    "gc.start": ('if (depth["@F@", tid()] >= 2)\n'
                 '        out("@F@", sprintf("%s %d", name, generation), argstr)'),
    "gc.done": ('if (depth["@F@", tid()] >= 2)\n'
                '        out("@F@", sprintf("%s %d", name, collected), argstr)'),
    "import.find_load.start": ('if (depth["@F@", tid()] >= 2)\n'
                               '        out("@F@", sprintf("%s %s", name, module), argstr)'),
    "import.find_load.done": ('if (depth["@F@", tid()] >= 2)\n'
                              '        out("@F@", sprintf("%s %s %d", name, module, found), argstr)'),
    "audit": ('if (depth["@F@", tid()] >= 2)\n'
              '        out("@F@", sprintf("%s %s %d", name, event, args != 0), argstr)'),
}

ALIAS_HEADER = '''\
// Every alias of a tapset, each printing its variables (tests/guest/jobs.py).
global dir = ""
global depth

function fixture:long (file:string)
{
    return dir != "" && substr(file, 0, strlen(dir)) == dir
}

function out (family:string, event:string, argstr:string)
{
    printf("%s\\t%s\\t%s\\n", family, event, argstr)
}
'''


def alias_kind(alias):
    """(family, kind) of an alias name: python.v3.function.entry ->
    (python.v3, function.entry)."""
    for kind in sorted(ALIAS_BODY, key=len, reverse=True):
        if alias.endswith("." + kind):
            return alias[:-len(kind) - 1], kind
    raise AssertionError("an alias of an unknown kind: " + alias)


def build_tapset(build):
    """The tapset file offering build's markers: build/tapset*/ or, for the
    -ft and -jit builds, one written for the guest; None if missing."""
    tapsets = tapset_dir(build)
    if tapsets is None and build.endswith(("-ft", "-jit")):
        tapsets = variant_tapset_dir(build)
    if tapsets is None:
        return None
    return os.path.join(tapsets, "lib%s-64.stp" % harness.series_of(build))


def tapset_aliases(path, build):
    """[(alias, marker, passes a module)] of the tapset file path whose probes
    point at build's marker object, in file order."""
    with open(path) as f:
        text = f.read()
    found = []
    matches = list(ALIAS.finditer(text))
    for i, m in enumerate(matches):
        alias, where, marker = m.groups()
        if where != harness.marker_object(build):
            continue
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        found.append((alias, marker, "\tmodule = " in text[m.end():end]))
    # The wider names: aliases of those.
    own = dict((alias, (marker, module)) for alias, marker, module in found)
    for alias, target in WIDER.findall(text):
        if target in own:
            found.append((alias,) + own[target])
    return found


def alias_script(aliases):
    parts = [ALIAS_HEADER]
    for alias, _, has_module in aliases:
        family, kind = alias_kind(alias)
        body = ALIAS_BODY[kind].replace("@F@", family)
        body = body.replace("@M@", " %s" if has_module else "")
        body = body.replace("@MV@", ", module" if has_module else "")
        parts.append("probe %s\n{\n    %s\n}\n" % (alias, body))
    return "\n".join(parts)


def alias_name(build, fixture):
    return "aliases-%s-%s" % (build, fixture)


def alias_fixtures(build):
    return [f for f in ALIAS_FIXTURES
            if os.path.exists(harness.expected_path(build, f))]


def aliases(run):
    jobs = []
    for build in harness.builds():
        path = build_tapset(build)
        names = [alias_name(build, f) for f in alias_fixtures(build)]
        if path is None or not os.path.exists(path):
            jobs += [Job(n, "false", error="no tapset for %s in build/tapset*/ (make tapset)" % build)
                     for n in names]
            continue
        found = tapset_aliases(path, build)
        # Every line of every frame, read under TCG: more than stap's overload
        # limit (half the CPU time) allows.
        module = Module("pst_aliases_" + ident(build), alias_script(found),
                        ["-I", os.path.dirname(path), "-DSTP_NO_OVERLOAD"])
        for fixture, name in zip(alias_fixtures(build), names):
            fixtures = run.fixtures(name)
            command = staprun_twice(run.module(module),
                                    "%s %s%s.py" % (harness.interpreter(build), fixtures, fixture),
                                    params=[("dir", fixtures)])
            jobs.append(Job(name, command, [module],
                            data={"fixtures": fixtures, "aliases": found, "tapset": path}))
    return jobs


# --- test_examples.py: examples/*.stp ----------------------------------------

# Every series' default build.
EXAMPLE_BUILDS = tuple(harness.series())


def example_name(example, build):
    return "example-%s-%s" % (example[:-len(".stp")], build)


def examples(run):
    """Each example of cases.GUEST_EXAMPLES, as a user runs it (stap
    EXAMPLE -c 'python FIXTURE.py', the tapsets `make install` leaves),
    on every Python: their tapsets share build/tapset, so one module per
    example serves them all."""
    jobs = []
    for example, args, fixture in cases.GUEST_EXAMPLES:
        with open(os.path.join(harness.REPO, "examples", example)) as f:
            script = f.read()
        for build in EXAMPLE_BUILDS:
            name = example_name(example, build)
            tapsets = tapset_dir(build)
            if build not in harness.builds() or tapsets is None:
                jobs.append(Job(name, "false", error="no build %s with a tapset in build/tapset*/ "
                                "(make build tapset)" % build))
                continue
            # No overload limit, as for the consumers above: under TCG a
            # probe costs tens of times what it costs on hardware, and
            # lines.stp on spin.py was once stopped by it.
            module = Module("pst_example_%s_%s" % (ident(example[:-len(".stp")]),
                                                   ident(os.path.basename(tapsets))),
                            script, ["-I", tapsets, "-DSTP_NO_OVERLOAD"], args)
            jobs.append(as_typed(run, name, module, build, fixture))
    return jobs


# --- test_fork.py: forked children under stap ---------------------------------

def fork_name(build, fixture):
    return "fork-%s-%s" % (build, fixture)


def fork_module(build):
    """A module counting every marker build claims, by name, and the calls of
    the fixture's own functions (in the directory of module parameter dir),
    by process: stap traces every process of the ELF, forked children too."""
    obj = harness.marker_object(build)
    points = ",\n      ".join('process("%s").mark("%s")' % (obj, marker)
                              for marker in claimed(build))
    script = ('global dir = ""\n'
              "global hits, fixture\n"
              "probe %s\n{\n    hits[$$name]++\n}\n"
              'probe process("%s").mark("function__entry")\n{\n'
              '    if (dir != "" && $arg1 != 0 && substr(user_string($arg1), 0, strlen(dir)) == dir)\n'
              "        fixture[pid()]++\n}\n"
              "probe end\n{\n"
              '    foreach (marker+ in hits)\n        printf("hits %%s %%d\\n", marker, hits[marker])\n'
              '    foreach (p+ in fixture)\n        printf("fixture %%d %%d\\n", p, fixture[p])\n'
              "}\n" % (points, obj))
    # Every line of every process, under TCG: past stap's overload limit.
    return Module("pst_fork_" + ident(build), script, ["-DSTP_NO_OVERLOAD"])


def forks(run):
    """Each fixture of cases.FORK_FIXTURES on each build, started by staprun
    -c: its stdout is the job's (Result.target_stdout())."""
    jobs = []
    for build in cases.consumer_builds("fork-stap", harness.builds()):
        module = fork_module(build)
        for fixture in cases.FORK_FIXTURES:
            name = fork_name(build, fixture)
            fixtures = run.fixtures(name)
            command = staprun_twice(run.module(module),
                                    "%s %s%s.py" % (harness.interpreter(build), fixtures, fixture),
                                    params=[("dir", fixtures)])
            jobs.append(Job(name, command, [module], data={"fixtures": fixtures}))
    return jobs


# --- test_guest.py: what make install installs -------------------------------
#
# `make install` into a scratch prefix, build/guest/installed/usr/local (the
# same path in the guest), with a copy of SystemTap's tapset directory for
# it to install into as it would into /usr/share/systemtap/tapset (moving
# SystemTap's python.stp aside).  Then, as a user types them, with the
# installed pythonX.Y on PATH and that directory as stap's own: README's
# one-line call tree, and the installed examples/calltree.stp.

INSTALLED = os.path.join(GUEST, "installed")
INSTALLED_PREFIX = os.path.join(INSTALLED, "usr", "local")
INSTALLED_TAPSETS = os.path.join(INSTALLED, "tapset")
INSTALLED_EXAMPLE = os.path.join(INSTALLED_PREFIX, "share", "python-systemtap", "examples",
                                 "calltree.stp")


def installed_series():
    """The series whose installed interpreter the guest traces."""
    return [s for s in harness.series() if s in calltree_builds()]


def installed_names():
    return ["installed-%s-%s" % (what, s) for s in installed_series()
            for what in ("calltree", "example")]


def install_tree():
    """make install into INSTALLED, unless the last one is newer than the
    builds and everything make install reads."""
    stamp = os.path.join(INSTALLED, ".installed")
    inputs = [os.path.join(harness.BUILD, "obj", s, ".built") for s in harness.series()]
    inputs += [os.path.join(harness.REPO, p) for p in (
        "Makefile", "scripts/install.sh", "scripts/gen-tapset", "scripts/usdt.py",
        "tapset/libpython.stp.in", "tapset/python.stp", "examples/calltree.stp")]
    if os.path.exists(stamp) and \
            os.path.getmtime(stamp) >= max(os.path.getmtime(p) for p in inputs):
        return
    shutil.rmtree(INSTALLED, ignore_errors=True)
    os.makedirs(INSTALLED)
    staptools.tapset_directory(INSTALLED_TAPSETS, python_stp=None)
    proc = staptools.make_with_builds("install", "PREFIX=" + INSTALLED_PREFIX,
                                      "tapsetdir=" + INSTALLED_TAPSETS)
    assert proc.returncode == 0, "make install into %s failed:\n%s%s" % (
        INSTALLED, proc.stdout, proc.stderr)
    with open(stamp, "w"):
        pass


def installed(run):
    from guest.session import session
    selected = session().selected
    if selected is None or selected & set(installed_names()):
        install_tree()
    example = INSTALLED_EXAMPLE if os.path.exists(INSTALLED_EXAMPLE) else \
        os.path.join(harness.REPO, "examples", "calltree.stp")
    with open(example) as f:
        modules = {"calltree": Module("pst_installed_calltree", CALLTREE + "\n",
                                      tapsets=INSTALLED_TAPSETS),
                   "example": Module("pst_installed_example", f.read(), tapsets=INSTALLED_TAPSETS)}
    jobs = []
    for series in installed_series():
        for what, module in sorted(modules.items()):
            name = "installed-%s-%s" % (what, series)
            fixtures = run.fixtures(name)
            # `python3.13 call_stack.py`, found on PATH.
            command = "cd %s && PATH=%s:$PATH %s" % (
                fixtures, os.path.join(INSTALLED_PREFIX, "bin"),
                staprun_twice(run.module(module), "%s %s.py" % (series, CALLTREE_FIXTURE),
                        output=os.path.join(run.job_dir(name), "out.txt")))
            jobs.append(Job(name, command, [module], data={"fixtures": fixtures}))
    return jobs


# --- test_guest.py: README's call tree on the Python people already run ------
#
# Debian 13's own python3.13 in its private root (make trixie), with
# usdtmon installed there as README tells a Debian user to (make
# install-module, run in the root: the package in /usr/local, the tapset
# and our python.stp in /opt/usdtmon-tapset), then README's one-line call
# tree, compiled with that tapset (stap --sysroot: the root's paths) and run
# as typed, `python3.13 -m usdtmon call_stack.py`, chrooted in the guest.

STOCK_BUILD = "python3.13-trixie"
STOCK_TAPSET_DIR = "/opt/usdtmon-tapset"
STOCK_FIXTURES = "/tmp/pst-guest/"
STOCK_JOB = "calltree-trixie-usdtmon"


def stock_install():
    """make install-module's script for Debian 13's python3.13, run in its
    root; the path of the tapset it wrote."""
    root = harness.root_of(STOCK_BUILD)
    src = root + "/tmp/pst-install-module"
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    subprocess.run(["cp", "-R"] + [os.path.join(harness.REPO, p) for p in (
        "scripts", "module", "markers", "probes.d", "tapset")] + [src], check=True)
    try:
        proc = subprocess.run(harness.in_root(root, [
            "sh", "-c", "cd /tmp/pst-install-module && scripts/install-module.sh "
            "--tapsetdir=%s /usr/bin/python3.13" % STOCK_TAPSET_DIR]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
            timeout=300)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    if proc.returncode != 0:
        raise AssertionError("install-module in %s failed:\n%s" % (root, proc.stdout))
    tapset = root + STOCK_TAPSET_DIR + "/usdtmon-python3.13-64.stp"
    if not os.path.exists(tapset):
        raise AssertionError("install-module wrote no %s:\n%s" % (tapset, proc.stdout))
    return tapset


def stock(run):
    from guest.session import session
    selected = session().selected
    if selected is not None and STOCK_JOB not in selected:
        return []
    root = harness.root_of(STOCK_BUILD)
    if not os.path.exists(root + "/usr/bin/python3.13"):
        return [Job(STOCK_JOB, "false", error="%s has no Debian 13 root (make trixie)" % root)]
    tapset = stock_install()
    tapsets = os.path.join(GUEST, "tapsets-trixie")
    staptools.tapset_directory(tapsets, python_stp=root + STOCK_TAPSET_DIR + "/python.stp",
                               extra=[tapset])
    fixtures = root + STOCK_FIXTURES
    shutil.rmtree(fixtures, ignore_errors=True)
    os.makedirs(fixtures)
    shutil.copy(os.path.join(harness.DATA, CALLTREE_FIXTURE + ".py"), fixtures)
    module = Module("pst_calltree_trixie_usdtmon", CALLTREE + "\n", ["--sysroot=" + root],
                    tapsets=tapsets)
    target = " ".join(shlex.quote(w) for w in harness.in_root(root, [
        "/usr/bin/python3.13", "-m", "usdtmon", STOCK_FIXTURES + CALLTREE_FIXTURE + ".py"]))
    command = staprun_twice(run.module(module), target,
                            output=os.path.join(run.job_dir(STOCK_JOB), "out.txt"))
    return [Job(STOCK_JOB, command, [module], data={"fixtures": STOCK_FIXTURES})]


PROVIDERS = [semantics, calltree, semaphores, aliases, examples, forks, installed, stock]


def wanted_by(item):
    """The names of the guest jobs a collected test item reads: its module's
    guest_jobs_of(item), or, for test_semantics.py, the stap consumer's."""
    if item.module.__name__ == "test_semantics" and item.originalname == "test_consumer":
        params = item.callspec.params
        if params["consumer"].name != "stap":
            return []
        build, fixture = params["case"]
        return [semantics_name(build, cases.script_of(fixture), fixture)]
    of = getattr(item.module, "guest_jobs_of", None)
    return list(of(item)) if of else []
