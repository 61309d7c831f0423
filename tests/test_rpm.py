"""The RPM packages of python.spec (make rpm, make srpm): what they install
and where, the tapsets' paths, the interpreters' markers, rpmlint, and the
tapsets elaborating (stap -p2) against the interpreters of the same
packages, unpacked into a scratch root.

The packages are built (make build/rpm/.built) in the background from the
start of the test session, once the guest's run is over (conftest.py,
build_in_background()), and the first test that needs them waits for that
build; run alone, it builds them the same way (nothing is rebuilt when
nothing changed).  Without rpmbuild and its tools
the tests skip, saying which is missing; with REQUIRE_ALL_CONSUMERS=1, as
in CI, they fail instead.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import threading

import pytest

import harness
import pythons
import usdt
import staptools

SPEC = os.path.join(harness.REPO, "python.spec")
RPMLINTRC = os.path.join(harness.REPO, "python.rpmlintrc")
# The Makefile's RPM_TOPDIR and RPM_STAMP.
TOPDIR = os.path.join(harness.REPO, "build", "rpm")
STAMP = os.path.join(TOPDIR, ".built")

# Where the packages put their tapsets and documentation.
TAPSETDIR = "/usr/share/systemtap/tapset"
DOCDIR = "/usr/share/doc"
LICENSEDIR = "/usr/share/licenses"
# python-systemtap-3.14: python3.14, one per series.
INTERPRETERS = dict(("python-systemtap-" + s[len("python"):], s) for s in harness.series())
# The packages' Pythons: our series, in the table of Pythons (pythons).
TABLE = [p for p in pythons.read() if p.role == "patched"]
TARBALLS = tuple(p.tarball for p in TABLE)
EXAMPLES = "python-systemtap-examples"

TOOLS = [("rpmbuild", "rpm"), ("rpmspec", "rpm"), ("rpm2cpio", "rpm"),
         ("cpio", "cpio"), ("readelf", "binutils")]


def unavailable(tools=TOOLS):
    missing = ["%s (apt-get install %s)" % (t, p) for t, p in tools
               if shutil.which(t) is None]
    return "not installed: " + ", ".join(missing) if missing else None


def need(tools=TOOLS):
    reason = unavailable(tools)
    if reason:
        harness.cannot_run(reason)


# The background build's thread.
_BACKGROUND = []


def build_in_background(after=None):
    """Start `make build/rpm/.built` in the background, once the thread
    after (the guest's run, which takes a CPU until then) has ended."""
    if _BACKGROUND or unavailable() is not None:
        return

    def work():
        if after is not None:
            after.join()
        try:
            harness.run_in_background(["make", "-s", "-C", harness.REPO, STAMP],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except RuntimeError:        # the session ended first
            pass

    _BACKGROUND.append(threading.Thread(target=work, name="rpm", daemon=True))
    _BACKGROUND[0].start()


def run(*command, **kw):
    return subprocess.run(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=kw.pop("timeout", 600), **kw)


def rpm_eval(expression):
    return run("rpm", "--eval", expression).stdout.strip()


def expected_prefix():
    """python.spec's default pst_prefix, %{_libdir}/python-systemtap."""
    return rpm_eval("%{_libdir}") + "/python-systemtap"


def spec_packages():
    """{name: (version, arch, file name)} of the binary packages the spec
    builds."""
    proc = run("rpmspec", "-q", "--builtrpms", "--qf",
               "%{name} %{version} %{arch} %{name}-%{version}-%{release}.%{arch}.rpm\\n", SPEC)
    assert proc.returncode == 0, proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        name, version, arch, filename = line.split()
        out[name] = (version, arch, filename)
    return out


def srpm_name():
    proc = run("rpmspec", "-q", "--srpm", "--qf", "%{name}-%{version}-%{release}.src.rpm", SPEC)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def packages():
    """{package name: path of the built .rpm}, "src": the source package.
    Builds them (make build/rpm/.built) if python.spec or anything it
    packages changed since."""
    need()
    for thread in _BACKGROUND:
        thread.join()
    # Nothing to do if the background build made them; else its errors.
    proc = run("make", "-s", "-C", harness.REPO, STAMP, timeout=3600)
    assert proc.returncode == 0, "make rpm failed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:]
    found = {}
    for name, (_, arch, filename) in spec_packages().items():
        path = os.path.join(TOPDIR, "RPMS", arch, filename)
        assert os.path.exists(path), "%s was not built" % path
        found[name] = path
    found["src"] = os.path.join(TOPDIR, "SRPMS", srpm_name())
    assert os.path.exists(found["src"]), "%s was not built" % found["src"]
    return found


def file_list(rpm):
    proc = run("rpm", "-qlp", rpm)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.fixture(scope="module")
def payload(packages):
    """A scratch root with every binary package's payload unpacked."""
    root = tempfile.mkdtemp(prefix="pst-rpm-root-")
    for name, rpm in sorted(packages.items()):
        if name == "src":
            continue
        proc = subprocess.run(["bash", "-o", "pipefail", "-c",
                               'rpm2cpio "$1" | cpio -idm --quiet --no-absolute-filenames',
                               "unpack", rpm],
                              cwd=root, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
    yield root
    shutil.rmtree(root)


def tapset_name(series):
    bits = rpm_eval("%{__isa_bits}")
    return "python-systemtap-lib%s-%s.stp" % (series, bits)


def repo_examples():
    """The example files of the checkout, relative to examples/."""
    top = os.path.join(harness.REPO, "examples")
    return sorted(os.path.relpath(p, top) for p in
                  glob.glob(os.path.join(top, "*.stp")) +
                  glob.glob(os.path.join(top, "bpftrace", "*.bt")) +
                  [os.path.join(top, "workload.py")])


def repo_docs():
    """The pages of the checkout's docs/, as docs/NAME."""
    return sorted("docs/" + f for f in os.listdir(os.path.join(harness.REPO, "docs")))


# --- the spec itself (no tools needed) ---------------------------------------

def spec_tags(tag):
    """[(number, value)] of the spec's SourceN or PatchN lines."""
    with open(SPEC) as f:
        return [(int(n), v) for n, v in
                re.findall(r"^%s(\d+):\s*(\S+)\s*$" % tag, f.read(), flags=re.M)]


@pytest.mark.quick
def test_spec_agrees_with_the_table_of_pythons():
    """The spec packages exactly our series of the table (pythons): each
    one's version macro (py2_version for 2.7, pyXY_version for X.Y) is the
    table's, and its tarball Source is python.org's URL of the table's
    tarball."""
    with open(SPEC) as f:
        text = f.read()
    versions = dict(re.findall(r"^%global (py\d+)_version (\S+)$", text, re.M))
    sources = set(v for _, v in spec_tags("Source"))
    assert len(versions) == len(TABLE), versions
    for p in TABLE:
        macro = "py2" if p.name == "python2.7" else "py" + p.name[len("python"):].replace(".", "")
        assert versions.get(macro) == p.version, (p.name, macro, versions)
        url = p.url.replace(p.version, "%%{%s_version}" % macro)
        assert url in sources, (p.name, url, sorted(sources))
    assert set(harness.series()) == set(p.name for p in TABLE)


@pytest.mark.quick
def test_spec_applies_every_patch_in_order():
    """Patch27NN, Patch313NN and Patch314NN are patches/python2.7/00NN-*,
    patches/python3.13/00NN-* and so on, each series complete (%autopatch
    applies a number range, in order)."""
    got = sorted(spec_tags("Patch"))
    want = []
    for series in harness.series():
        for path in sorted(glob.glob(os.path.join(harness.REPO, "patches", series, "*.patch"))):
            base = os.path.basename(path)
            number = int(series.replace("python", "").replace(".", "") + "%02d" % int(base[:4]))
            want.append((number, "%s-%s" % (series, base)))
    assert got == sorted(want)
    with open(SPEC) as f:
        text = f.read()
    for series in harness.series():
        digits = series.replace("python", "").replace(".", "")
        assert "%%autopatch -p1 -m %s00 -M %s99" % (digits, digits) in text, series


@pytest.mark.quick
def test_spec_installs_the_marker_c_of_each_series():
    """%prep installs into each series' tree the files of markers/ its
    patches include (pythons.marker_c, as make's trees get them), each
    under its own name."""
    with open(SPEC) as f:
        text = f.read()
    names = dict(spec_tags("Source"))
    for p in TABLE:
        macro = "py2" if p.name == "python2.7" else "py" + p.name[len("python"):].replace(".", "")
        block = re.search(r"^pushd Python-%%\{%s_version\}\n(.*?)^popd$" % macro,
                          text, re.M | re.S)
        assert block, p.name
        installed = re.findall(r"^install -p -m 644 %\{SOURCE(\d+)\} (\S+)$", block.group(1), re.M)
        got = sorted((names[int(n)], os.path.basename(dest)) for n, dest in installed
                     if names[int(n)] != "probes.d")
        want = sorted((os.path.basename(f), os.path.basename(f)) for f in pythons.marker_c(p))
        assert got == want, p.name


@pytest.mark.quick
def test_spec_packages_every_example_and_page():
    sources = [os.path.basename(v) for _, v in spec_tags("Source")]
    for example in repo_examples() + repo_docs():
        assert os.path.basename(example) in sources, example


# --- scripts/rpm-sources.sh ----------------------------------------------------

RPM_SOURCES = os.path.join(harness.REPO, "scripts", "rpm-sources.sh")


@pytest.mark.quick
def test_rpm_sources_stages_what_the_spec_names():
    """Every Source and Patch of the spec, under the spec's names, from the
    checkout (patches/SERIES/NNNN-x.patch as SERIES-NNNN-x.patch); a missing
    tarball or a file the checkout lacks is an error that says so."""
    need([("rpmspec", "rpm")])
    scratch = tempfile.mkdtemp(prefix="pst-rpm-sources-")
    try:
        tarballs = os.path.join(scratch, "tarballs")
        os.mkdir(tarballs)
        dest = os.path.join(scratch, "SOURCES")
        proc = run(RPM_SOURCES, SPEC, tarballs, dest)
        assert proc.returncode == 1
        assert "is not in %s (run 'make sources')" % tarballs in proc.stderr
        for name in TARBALLS:
            open(os.path.join(tarballs, name), "w").close()
        proc = run(RPM_SOURCES, SPEC, tarballs, dest)
        assert proc.returncode == 0, proc.stderr
        names = run("rpmspec", "-q", "--srpm", "--qf", "[%{SOURCE}\\n][%{PATCH}\\n]",
                    SPEC).stdout.split()
        assert sorted(os.listdir(dest)) == sorted(names)
        with open(os.path.join(dest, "python2.7-0001-Add-static-markers-for-SystemTap-and-DTrace.patch")) as f, \
                open(glob.glob(harness.REPO + "/patches/python2.7/0001-*.patch")[0]) as g:
            assert f.read() == g.read()
        with open(os.path.join(dest, "python3.13.markers")) as f, \
                open(harness.REPO + "/patches/python3.13/markers") as g:
            assert f.read() == g.read()
        spec = os.path.join(scratch, "python.spec")
        with open(SPEC) as f, open(spec, "w") as g:
            g.write(f.read().replace("Source100:      calltree.stp", "Source100:      nosuch.stp"))
        proc = run(RPM_SOURCES, spec, tarballs, dest)
        assert proc.returncode == 1
        assert "nosuch.stp: 0 files of that name in the checkout" in proc.stderr
    finally:
        shutil.rmtree(scratch)


# --- make srpm ---------------------------------------------------------------

def test_make_srpm(packages):
    """make srpm writes the source package, holding the spec, every pristine
    tarball, every patch and every source."""
    proc = run("make", "-s", "-C", harness.REPO, "srpm")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.path.exists(packages["src"])
    got = set(file_list(packages["src"]))
    proc = run("rpmspec", "-q", "--srpm", "--qf", "[%{SOURCE}\\n][%{PATCH}\\n]", SPEC)
    assert proc.returncode == 0, proc.stderr
    assert got == {"python.spec"} | set(proc.stdout.split())
    assert set(TARBALLS) <= got


# --- what the packages install -----------------------------------------------

@pytest.mark.parametrize("name", sorted(INTERPRETERS))
def test_interpreter_package_files(packages, name):
    """The interpreter, its library, its tapset in SystemTap's tapset
    directory; the -devel package has the headers and libpython."""
    series = INTERPRETERS[name]
    prefix = expected_prefix()
    files = set(file_list(packages[name]))
    assert prefix + "/bin/" + series in files
    # CPython's license and the project's, side by side.
    assert {"%s/%s/%s" % (LICENSEDIR, name, f) for f in ("LICENSE", "LICENSE.python-systemtap")} <= files
    assert "%s/lib/%s/os.py" % (prefix, series) in files
    assert "%s/%s" % (TAPSETDIR, tapset_name(series)) in files
    tapsets = [f for f in files if f.startswith(TAPSETDIR + "/")]
    assert tapsets == ["%s/%s" % (TAPSETDIR, tapset_name(series))]
    # No test suite (3.x: --disable-test-modules; 2.7: removed).
    assert not [f for f in files if f.startswith("%s/lib/%s/test/" % (prefix, series))]
    devel = set(file_list(packages[name + "-devel"]))
    assert "%s/include/%s/Python.h" % (prefix, series) in devel
    assert "%s/bin/%s-config" % (prefix, series) in devel
    assert "%s/lib/lib%s.a" % (prefix, series) in devel
    assert not devel & files


def test_examples_package_files(packages):
    """Every example of the checkout and every page of docs/, as
    documentation, and nothing else but README, probes.d and the project's
    license."""
    docdir = "%s/%s" % (DOCDIR, EXAMPLES)
    licensedir = "%s/%s" % (LICENSEDIR, EXAMPLES)
    files = file_list(packages[EXAMPLES])
    dirs = [docdir, docdir + "/bpftrace", docdir + "/docs", licensedir]
    docs = sorted(f for f in files if f not in dirs and not f.startswith(licensedir + "/"))
    assert sorted(os.path.relpath(f, docdir) for f in docs) == \
        sorted(repo_examples() + repo_docs() + ["README", "probes.d"])
    assert sorted(files) == sorted(docs + dirs + [licensedir + "/LICENSE.python-systemtap"])
    proc = run("rpm", "-qp", "--qf", "%{arch}", packages[EXAMPLES])
    assert proc.stdout == "noarch"
    # All marked as documentation (rpm --excludedocs leaves them out).
    proc = run("rpm", "-qdp", packages[EXAMPLES])
    assert sorted(proc.stdout.splitlines()) == docs


def test_nothing_clobbers_the_distributions_python(packages):
    """Every file is under the packages' own prefix, or is one of our
    tapsets, docs or licenses: nothing in /usr/bin, /usr/lib*/pythonX.Y,
    /usr/include."""
    prefix = expected_prefix()
    allowed_dirs = {"/usr/share/systemtap", TAPSETDIR}
    for name, rpm in packages.items():
        if name == "src":
            continue
        for f in file_list(rpm):
            ok = (f == prefix or f.startswith(prefix + "/") or f in allowed_dirs or
                  re.match(r"%s/python-systemtap-[^/]+\.stp$" % TAPSETDIR, f) or
                  re.match(r"(%s|%s)/python-systemtap-[^/]+(/|$)" % (DOCDIR, LICENSEDIR), f) or
                  f == "/usr/lib/.build-id" or f.startswith("/usr/lib/.build-id/"))
            assert ok, "%s installs %s" % (name, f)


def test_dependencies_stay_within_the_packages(packages):
    """A file the packages require is /bin/sh or one of their own (the
    interpreters their scripts name: no /usr/local/bin/python, no
    /usr/bin/env python); they neither require nor provide python(abi) or
    their private extension modules (math.so()(64bit))."""
    ours = set()
    for name, rpm in packages.items():
        if name != "src":
            ours.update(file_list(rpm))
    for name, rpm in packages.items():
        if name == "src":
            continue
        requires = run("rpm", "-qp", "--requires", rpm).stdout.splitlines()
        for req in requires:
            if req.startswith("/"):
                assert req == "/bin/sh" or req in ours, "%s requires %s" % (name, req)
            assert not req.startswith("python(abi)"), "%s requires %s" % (name, req)
        provides = run("rpm", "-qp", "--provides", rpm).stdout.splitlines()
        for prov in provides:
            assert prov.startswith(name + " ") or prov.startswith(name + "(") or \
                prov.startswith(name.replace("-devel", "-static") + " "), \
                "%s provides %s" % (name, prov)


def test_no_build_root_in_the_payload(packages, payload):
    """No file names the build root (rpm's check-buildroot on Fedora)."""
    proc = run("grep", "-rlF", os.path.join(TOPDIR, "BUILDROOT"), payload)
    assert proc.returncode == 1, proc.stdout


# --- the tapsets and markers of the payload ----------------------------------

def tapset_text(payload, series):
    with open(payload + TAPSETDIR + "/" + tapset_name(series)) as f:
        return f.read()


@pytest.mark.parametrize("name", sorted(INTERPRETERS))
def test_tapset_names_the_installed_interpreter(packages, payload, name):
    """The tapset probes the path where its package installs the
    interpreter, and offers exactly the markers the build claims."""
    series = INTERPRETERS[name]
    installed = expected_prefix() + "/bin/" + series
    assert installed in file_list(packages[name])
    text = tapset_text(payload, series)
    assert set(re.findall(r'process\("([^"]+)"\)', text)) == {installed}
    assert re.search(r"^//\s+markers in:\s+%s$" % re.escape(installed), text, flags=re.M)
    assert re.search(r"^//\s+probed path:\s+%s$" % re.escape(installed), text, flags=re.M)
    claimed = usdt.parse_claims(harness.REPO + "/patches/%s/markers" % series)
    assert set(re.findall(r'\.mark\("(\w+)"\)', text)) == set(claimed)


@pytest.mark.parametrize("name", sorted(INTERPRETERS))
def test_payload_interpreter_carries_every_marker(payload, name):
    """The interpreter as packaged (stripped) has a site, with probes.d's
    arguments and a semaphore, for every marker of probes.d its build
    claims, and no other."""
    series = INTERPRETERS[name]
    elf = payload + expected_prefix() + "/bin/" + series
    probes = usdt.parse_probes(harness.PROBES_D)
    claims = usdt.parse_claims(harness.claims(series))
    results = usdt.check(probes, claims, usdt.read_sites(elf))
    assert [r for r in results if not r[1]] == []
    assert sorted(m for m, ok, msg in results if "site(s)," in msg) == sorted(claims)


@pytest.mark.parametrize("name", sorted(INTERPRETERS))
def test_payload_interpreter_runs(payload, name):
    series = INTERPRETERS[name]
    python = payload + expected_prefix() + "/bin/" + series
    proc = run(python, "-E", "-s", "-c",
               "import sys, json, zlib, ssl; sys.stdout.write('%d.%d' % sys.version_info[:2])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == series[len("python"):]


def site_locations(elf):
    """The addresses of the python provider's marker sites in elf."""
    out = run("readelf", "--notes", "--wide", elf).stdout
    return set(int(loc, 16) for loc in re.findall(
        r"Provider: python\s+Name: \w+\s+Location: (0x[0-9a-f]+)", out))


def alias_script(text, families):
    """A script using every alias of the tapset text in these families,
    each printing its variables."""
    out = []
    for alias in re.findall(r"^probe ([\w.]+) = ", text, flags=re.M):
        family = re.sub(r"\.(import|c?function|line|gc|audit)\b.*", "", alias)
        if family in families:
            out.append('probe %s { printf("%%s %%s\\n", name, argstr) }' % alias)
    return out


@pytest.mark.parametrize("name", sorted(INTERPRETERS))
def test_payload_tapset_elaborates(packages, payload, name):
    """The packaged tapset, installed beside SystemTap's own (its python.stp
    included), elaborates against the packaged interpreter: stap --sysroot
    resolves the tapset's installed path inside the unpacked payload.
    python.vX.* and python.vX_Y.* always work; of the plain python.*
    names, those SystemTap's python.stp does not also define."""
    need()
    reason = staptools.stap_unavailable()
    if reason:
        harness.cannot_run(reason)
    series = INTERPRETERS[name]
    major, minor = series[len("python"):].split(".")
    text = tapset_text(payload, series)
    script = alias_script(text, {"python.v" + major, "python.v%s_%s" % (major, minor)})
    script += [line for line in alias_script(text, {"python"})
               if not line.startswith("probe python.function.")]
    claimed = usdt.parse_claims(harness.claims(series))
    assert len(script) == 3 * len(claimed) - 2
    tree = tempfile.mkdtemp(prefix="pst-rpm-tapsets-")
    try:
        # SystemTap's tapset directory as it is with the package installed.
        tapsets = os.path.join(tree, "tapset")
        staptools.tapset_directory(tapsets, python_stp=None,
                                   extra=[payload + TAPSETDIR + "/" + tapset_name(series)])
        with open(os.path.join(tree, "all.stp"), "w") as f:
            f.write("\n".join(script) + "\n")
        env = dict(os.environ, SYSTEMTAP_TAPSET=tapsets)
        proc = run("stap", "-r", staptools.headers(), "--sysroot=" + payload, "-p2",
                   os.path.join(tree, "all.stp"), env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        # The probes name the installed path; their addresses are those of
        # every marker site of the packaged binary, which stap read in the
        # scratch root (nothing is installed at that path on this machine).
        installed = expected_prefix() + "/bin/" + series
        probed = staptools.derived_probes(proc.stdout)
        assert set(p for p, _ in probed) == {installed}
        assert set(int(a, 16) for _, a in probed) == site_locations(payload + installed)
    finally:
        shutil.rmtree(tree)


# --- rpmlint -------------------------------------------------------------------

def rpmlint_filters():
    """[(explanation, regexp)] of python.rpmlintrc."""
    filters, comment = [], []
    with open(RPMLINTRC) as f:
        for line in f:
            line = line.strip()
            if line.startswith("#"):
                comment.append(line.lstrip("# "))
            elif line.startswith("addFilter("):
                filters.append((" ".join(comment), line))
            elif not line:
                comment = []
    return filters


@pytest.mark.quick
def test_rpmlintrc_explains_every_filter():
    filters = rpmlint_filters()
    assert filters
    for explanation, line in filters:
        assert explanation, "%s has no explanation above it" % line


def test_rpmlint(packages):
    """No errors and no warnings left but those python.rpmlintrc filters,
    each with its reason, on the binary packages, the source package and
    the spec."""
    need(TOOLS + [("rpmlint", "rpmlint")])
    rpms = [packages[n] for n in sorted(packages)]
    proc = run("rpmlint", "-r", RPMLINTRC, *(rpms + [SPEC]), timeout=900)
    m = re.search(r"(\d+) errors?, (\d+) warnings?", proc.stdout)
    assert m, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors, warnings = int(m.group(1)), int(m.group(2))
    shown = "\n".join(line for line in proc.stdout.splitlines()
                      if re.search(r": [EW]: ", line))
    assert errors == 0, shown
    assert warnings == 0, shown
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
