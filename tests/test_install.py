"""make install and make uninstall (scripts/install.sh), into a scratch
DESTDIR, never the real system: the Pythons by CPython's altinstall (only
versioned names), each runnable there with its standard library and its
markers; their tapsets probing PREFIX/bin/pythonX.Y; python.stp; the
examples; a manifest listing exactly what was installed, which make
uninstall removes, leaving no file.  Another PREFIX than the builds' works;
LINKAGE=shared is refused; the dpkg-divert of SystemTap's python.stp is
made and undone (with stand-ins for dpkg's tools).
"""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

import harness
import staptools

SERIES = harness.series()
PREFIX = "/usr/local"
TAPSETDIR = staptools.TAPSETDIR
SHARE = "/share/python-systemtap"
MANIFEST = SHARE + "/installed-files"
# What no install may bring: it would replace or shadow the system's.
UNVERSIONED = ("python", "python2", "python3", "python-config", "python2-config",
               "python3-config", "idle", "idle2", "idle3", "pydoc", "pydoc2", "pydoc3",
               "2to3", "smtpd.py")


def version(series):
    return series[len("python"):]


make = staptools.make_with_builds


def files_under(root):
    """Every file (and symbolic link) below root, as an absolute path without root."""
    found = set()
    for d, dirs, names in os.walk(root):
        found.update("/" + os.path.relpath(os.path.join(d, n), root) for n in names)
        found.update("/" + os.path.relpath(os.path.join(d, n), root) for n in dirs
                     if os.path.islink(os.path.join(d, n)))
    return found


def manifest(root, prefix=PREFIX):
    with open(root + prefix + MANIFEST) as f:
        return f.read().splitlines()


def probed_paths(tapset):
    with open(tapset) as f:
        return set(re.findall(r'process\("([^"]+)"\)', f.read()))


def run(argv, **kw):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("PYTHON"))
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, env=env, **kw)


@pytest.fixture(scope="module")
def installed():
    """One `make install` of every series into a scratch DESTDIR."""
    root = tempfile.mkdtemp(prefix="pst-install-test-")
    try:
        proc = make("install", "DESTDIR=" + root, "PREFIX=" + PREFIX, "tapsetdir=" + TAPSETDIR)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield root
    finally:
        shutil.rmtree(root)


def has_sqlite3(build):
    """-B: no byte code into the build's source tree."""
    return run([harness.interpreter(build), "-B", "-c", "import sqlite3"]).returncode == 0


@pytest.mark.parametrize("series", SERIES)
def test_interpreter_runs_with_its_standard_library(installed, series):
    python = installed + PREFIX + "/bin/" + series
    assert os.access(python, os.X_OK), python
    modules = ["json", "os"]
    if has_sqlite3(series):
        modules.append("sqlite3")
    code = ("import sys, %s; sys.stdout.write('%%s\\n%%s\\n' %% (sys.prefix, json.__file__))"
            % ", ".join(modules))
    proc = run([python, "-c", code], cwd="/")
    assert proc.returncode == 0, proc.stderr
    prefix, json_file = proc.stdout.splitlines()
    assert os.path.realpath(prefix) == os.path.realpath(installed + PREFIX)
    # Its own library, not the build tree's.
    assert os.path.realpath(json_file).startswith(
        os.path.realpath(installed + PREFIX + "/lib/python" + version(series) + "/json/"))


@pytest.mark.parametrize("series", SERIES)
def test_interpreter_carries_the_markers(installed, series):
    if shutil.which("readelf") is None:
        harness.cannot_run("readelf is not installed (apt-get install binutils)")
    proc = run(["readelf", "-n", installed + PREFIX + "/bin/" + series])
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Provider: python\s+Name: function__entry\b", proc.stdout)


def test_nothing_unversioned(installed):
    """altinstall's names only: nothing that could replace or shadow the
    system's python3, pydoc, idle, 2to3 (Python 2.7's setup.py installs
    them unversioned: versioned, as in the RPM package)."""
    bindir = installed + PREFIX + "/bin"
    names = set(os.listdir(bindir))
    assert not names & set(UNVERSIONED)
    for d in (bindir, installed + PREFIX + "/lib/pkgconfig", installed + PREFIX + "/share/man/man1"):
        for name in os.listdir(d) if os.path.isdir(d) else []:
            assert re.search(r"\d\.\d", name), os.path.join(d, name)
    expected = set()
    for s in SERIES:
        v = version(s)
        expected |= {s, s + "-config", "idle" + v, "pydoc" + v}
        if v == "2.7":
            expected.add("2to3-2.7")
    assert names == expected


def test_no_test_suite(installed):
    for s in SERIES:
        assert not os.path.exists(installed + PREFIX + "/lib/" + s + "/test"), s


@pytest.mark.parametrize("series", SERIES)
def test_tapset_probes_the_installed_interpreter(installed, series):
    tapset = "%s%s/lib%s-64.stp" % (installed, TAPSETDIR, series)
    assert oct(os.stat(tapset).st_mode & 0o777) == "0o644"
    path = PREFIX + "/bin/" + series
    assert probed_paths(tapset) == {path}
    with open(tapset) as f:
        text = f.read()
    assert re.search(r"^//\s+markers in:\s+%s$" % re.escape(path), text, flags=re.M)
    assert harness.BUILD not in text and installed not in text and "pst-install" not in text


def test_python_stp_and_only_our_tapsets(installed):
    names = sorted(os.listdir(installed + TAPSETDIR))
    assert names == sorted(["lib%s-64.stp" % s for s in SERIES] + ["python.stp"])
    with open(installed + TAPSETDIR + "/python.stp") as f, open(staptools.OUR_PYTHON_STP) as g:
        assert f.read() == g.read()


def test_examples(installed):
    here = os.path.join(harness.REPO, "examples")
    wanted = sorted(n for n in os.listdir(here) if n.endswith(".stp")) + ["workload.py"]
    wanted += ["bpftrace/" + n for n in sorted(os.listdir(os.path.join(here, "bpftrace")))
               if n.endswith(".bt")]
    there = installed + PREFIX + SHARE + "/examples"
    got = sorted(os.path.relpath(os.path.join(d, n), there)
                 for d, _, names in os.walk(there) for n in names)
    assert got == sorted(wanted)
    for name in wanted:
        with open(os.path.join(here, name)) as f, open(os.path.join(there, name)) as g:
            assert f.read() == g.read(), name


def test_manifest_lists_every_file_installed(installed):
    listed = manifest(installed)
    assert listed == sorted(set(listed)), "sorted, once each"
    assert all(p.startswith("/") and not p.startswith(installed) for p in listed)
    assert set(listed) == files_under(installed)


def test_uninstall_removes_every_file(installed):
    """In a copy of the installation, so that the other tests keep theirs."""
    root = tempfile.mkdtemp(prefix="pst-uninstall-test-")
    try:
        copy = os.path.join(root, "d")
        subprocess.run(["cp", "-a", installed, copy], check=True)
        # A file someone else put in our library stays, with its directory.
        other = copy + PREFIX + "/lib/" + SERIES[-1] + "/site-packages/theirs.py"
        with open(other, "w") as f:
            f.write("")
        proc = make("uninstall", "DESTDIR=" + copy, "PREFIX=" + PREFIX, "tapsetdir=" + TAPSETDIR)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "removed %d files" % len(manifest(installed)) in proc.stdout
        assert files_under(copy) == {other[len(copy):]}
        assert "kept %s" % (copy + PREFIX + "/lib/" + SERIES[-1]) in proc.stdout
        # The directories it created under lib/pythonX.Y, include/pythonX.Y
        # and share/python-systemtap are gone, when empty.
        for s in SERIES[:-1]:
            assert not os.path.exists(copy + PREFIX + "/lib/" + s)
        assert not os.path.exists(copy + PREFIX + SHARE)
        assert not [d for d in os.listdir(copy + PREFIX + "/include") if d.startswith("python")]
        # Once more: there is nothing left to uninstall.
        proc = make("uninstall", "DESTDIR=" + copy, "PREFIX=" + PREFIX, "tapsetdir=" + TAPSETDIR)
        assert proc.returncode != 0
        assert "no manifest %s" % (copy + PREFIX + MANIFEST) in proc.stderr
    finally:
        shutil.rmtree(root)


def test_uninstall_without_manifest_fails(tmp_path):
    proc = make("uninstall", "DESTDIR=%s" % tmp_path, "PREFIX=/opt/pst", "tapsetdir=" + TAPSETDIR)
    assert proc.returncode != 0
    assert "no manifest %s/opt/pst%s" % (tmp_path, MANIFEST) in proc.stderr
    assert "nothing was installed with PREFIX=/opt/pst" in proc.stderr


def test_another_prefix(tmp_path):
    """The builds' prefix is /usr/local; installed elsewhere, an interpreter
    finds its standard library from its own path, and the scripts name it.
    Two series (the oldest and the newest) keep it short."""
    chosen = sorted(set([SERIES[0], SERIES[-1]]))
    root, prefix = str(tmp_path), "/opt/pst-test"
    proc = make("install", "SERIES=" + " ".join(chosen), "DESTDIR=" + root,
                "PREFIX=" + prefix, "tapsetdir=" + TAPSETDIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for s in chosen:
        python = root + prefix + "/bin/" + s
        proc = run([python, "-c", "import sys, json; sys.stdout.write(sys.prefix)"], cwd="/")
        assert proc.returncode == 0, proc.stderr
        assert os.path.realpath(proc.stdout) == os.path.realpath(root + prefix)
        for script in ("idle", "pydoc"):
            with open(root + prefix + "/bin/" + script + version(s)) as f:
                assert f.readline() == "#!%s/bin/%s\n" % (prefix, s)
        assert probed_paths("%s%s/lib%s-64.stp" % (root, TAPSETDIR, s)) == {prefix + "/bin/" + s}
    assert set(manifest(root, prefix)) == files_under(root)
    proc = make("uninstall", "DESTDIR=" + root, "PREFIX=" + prefix)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert files_under(root) == set()


@pytest.mark.quick
def test_shared_linkage_is_refused(tmp_path):
    """The -shared builds run build/obj's libpython (rpath): not installable."""
    proc = staptools.make("install", "LINKAGE=shared", "DESTDIR=%s" % tmp_path)
    assert proc.returncode != 0
    assert "LINKAGE=shared" in proc.stderr and "make install-tapsets LINKAGE=shared" in proc.stderr
    assert files_under(str(tmp_path)) == set()


FAKE_DPKG = r'''#!/usr/bin/python3
# A stand-in for dpkg-divert and dpkg-query: one local diversion at most,
# in $FAKE_DPKG_STATE; every call logged to $FAKE_DPKG_STATE.log.
import os, sys
state = os.environ["FAKE_DPKG_STATE"]
with open(state + ".log", "a") as log:
    log.write(" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\n")
args, path = sys.argv[1:], sys.argv[-1]
diverted = open(state).read() if os.path.exists(state) else None
if os.path.basename(sys.argv[0]) == "dpkg-query":
    sys.exit(0 if args[0] == "-S" and path.endswith("/python.stp") else 1)
if "--listpackage" in args:
    print("LOCAL" if diverted else "")
elif "--truename" in args:
    print(diverted or path)
elif "--add" in args:
    to = args[args.index("--divert") + 1]
    assert "--local" in args and "--rename" in args
    if not diverted:
        os.rename(path, to)
        open(state, "w").write(to)
elif "--remove" in args:
    assert "--local" in args and "--rename" in args and diverted
    assert not os.path.exists(path), "remove: the diverted file is still there"
    os.rename(diverted, path)
    os.remove(state)
else:
    sys.exit("fake dpkg-divert: %s" % args)
'''


def test_python_stp_diversion_made_and_undone(tmp_path):
    """Without DESTDIR, on a dpkg system: SystemTap's python.stp diverted
    aside, ours in its place; uninstalled, SystemTap's is back.  In a
    scratch tapset directory and prefix, with stand-ins for dpkg's tools;
    the tapsets alone (make install-tapsets), as make install does them."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("dpkg-divert", "dpkg-query"):
        (fake / name).write_text(FAKE_DPKG)
        (fake / name).chmod(0o755)
    tapsetdir, prefix = tmp_path / "tapset", tmp_path / "prefix"
    tapsetdir.mkdir()
    theirs = "// SystemTap's own python.stp\n"
    (tapsetdir / "python.stp").write_text(theirs)
    state = tmp_path / "diverted"
    env = dict(os.environ, PATH="%s:%s" % (fake, os.environ["PATH"]), FAKE_DPKG_STATE=str(state))
    links = ["-o" + os.path.join(harness.BUILD, "bin", s) for s in SERIES]
    for s in SERIES:
        harness.interpreter(s)
    args = ["DESTDIR=", "PREFIX=%s" % prefix, "tapsetdir=%s" % tapsetdir] + links
    proc = staptools.make("install-tapsets", *args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(staptools.OUR_PYTHON_STP) as f:
        assert (tapsetdir / "python.stp").read_text() == f.read()
    assert (tapsetdir / "python.stp.systemtap").read_text() == theirs
    assert state.read_text() == "%s/python.stp.systemtap" % tapsetdir
    proc = staptools.make("uninstall", *args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "dpkg-divert --local --rename --remove %s/python.stp" % tapsetdir in proc.stdout
    assert sorted(os.listdir(str(tapsetdir))) == ["python.stp"]
    assert (tapsetdir / "python.stp").read_text() == theirs
    assert not state.exists()
    assert files_under(str(prefix)) == set()
