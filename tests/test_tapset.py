"""The tapsets: tapset/libpython.stp.in turned by scripts/gen-tapset (make
tapset, make install) into one tapset per Python, offering exactly the
markers its ELF notes show: one alias per marker, python.vX_Y.*, reading
the arguments probes.d declares, and python.vX.* and python.* as aliases of
it.  With stap: every alias
elaborates (also for --privilege=stapusr), python.function.entry works next
to SystemTap's own python.stp, and a missing Python breaks nothing.
"""

import os
import re
import shutil
import tempfile

import pytest

import harness
import pythons
import usdt
import staptools

# The tapset's variable for each probes.d parameter name.
VARIABLE = {"filename": "filename", "funcname": "funcname", "lineno": "lineno",
            "modulename": "module", "generation": "generation",
            "collected": "collected", "found": "found", "event": "event",
            "args": "args"}
STRINGS = ("filename", "funcname", "module", "event")
PYTHON311 = "/usr/bin/python3.11"
OTHER_PYTHONS = [p for p in (PYTHON311,) if os.path.exists(p)]


def template_markers():
    with open(staptools.TEMPLATE) as f:
        return re.findall(r"^@@marker (\w+)", f.read(), flags=re.M)


def elf_markers(elf):
    """{marker: argument count} of the python provider in elf."""
    return dict((s.name, len(s.arguments)) for s in usdt.read_sites(elf)
                if s.provider == "python")


def version(build_or_python):
    m = re.search(r"python(\d+)\.(\d+)", build_or_python)
    return m.group(1), m.group(2)


def families(build_or_python):
    major, minor = version(build_or_python)
    return ["python", "python.v" + major, "python.v%s_%s" % (major, minor)]


def alias_name(family, marker):
    return family + "." + {
        "function__entry": "function.entry", "function__return": "function.return",
        "cfunction__entry": "cfunction.entry", "cfunction__return": "cfunction.return",
        "line": "line", "gc__start": "gc.start", "gc__done": "gc.done",
        "import__find__load__start": "import.find_load.start",
        "import__find__load__done": "import.find_load.done", "audit": "audit"}[marker]


def expected_aliases(python):
    """{alias: {variable: type}} a tapset for python must offer."""
    params = parse_params()
    have = elf_markers(harness_elf(python))
    expected = {}
    for marker in template_markers():
        if marker not in have:
            continue
        variables = {"name": "string", "argstr": "string"}
        for param in params[marker][:have[marker]]:
            v = VARIABLE[param]
            variables[v] = "string" if v in STRINGS else "long"
        for family in families(python):
            expected[alias_name(family, marker)] = variables
    return expected


def harness_elf(python):
    if python.startswith("/"):
        return os.path.realpath(python)
    return harness.marker_object(python)


def parse_params():
    """{marker: [parameter names]} from probes.d."""
    with open(harness.PROBES_D) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    params = {}
    for name, args in re.findall(r"\bprobe\s+(\w+)\s*\(([^)]*)\)\s*;", text):
        params[name] = [re.findall(r"(\w+)\s*$", a.strip())[0] for a in args.split(",")]
    return params


def parse_tapset(path):
    """([(alias, path, marker, {variable: N of the $argN it reads}, doc)] of
    the markers' aliases, [(alias, the alias it names, doc)] of the wider
    names)."""
    with open(path) as f:
        text = f.read()
    probes, wrappers = [], []
    for m in re.finditer(r'(/\*\*(?:(?!\*/).)*\*/)\s*\nprobe ([\w.]+) = '
                         r'process\("([^"]+)"\)\.mark\("(\w+)"\) \?\n\{\n(.*?)\n\}',
                         text, flags=re.S):
        doc, alias, probed, marker, body = m.groups()
        reads = {}
        for var, rhs in re.findall(r"^\t(\w+) = (.*)$", body, flags=re.M):
            args = re.findall(r"\$arg(\d)", rhs)
            if args:
                reads[var] = sorted(set(int(a) for a in args))
        probes.append((alias, probed, marker, reads, doc))
    for m in re.finditer(r'(/\*\*(?:(?!\*/).)*\*/)\s*\nprobe ([\w.]+) = ([\w.]+) \? \{ \}\n',
                         text, flags=re.S):
        wrappers.append((m.group(2), m.group(3), m.group(1)))
    assert len(probes) + len(wrappers) == text.count("\nprobe "), "a probe the test cannot parse"
    return probes, wrappers


BUILDS = harness.builds()


@pytest.fixture(scope="module")
def generated():
    """{build or python: the tapset gen-tapset writes for it}."""
    out = tempfile.mkdtemp(prefix="pst-gen-")
    paths = {}
    for python in BUILDS + OTHER_PYTHONS:
        d = os.path.join(out, python.replace("/", "_"))
        target = harness.interpreter(python) if not python.startswith("/") else python
        paths[python] = staptools.gen_tapset(target, d)
    yield paths
    shutil.rmtree(out)


@pytest.mark.parametrize("python", BUILDS + OTHER_PYTHONS)
def test_offers_exactly_the_markers_of_the_elf(generated, python):
    path = generated[python]
    major, minor = version(python)
    with open(harness_elf(python), "rb") as f:
        bits = {1: "32", 2: "64"}[f.read(5)[4]]
    assert os.path.basename(path) == "libpython%s.%s-%s.stp" % (major, minor, bits)
    probes, wrappers = parse_tapset(path)
    assert sorted([a for a, _, _, _, _ in probes] + [a for a, _, _ in wrappers]) == \
        sorted(expected_aliases(python))
    own = families(python)[-1]
    for alias, probed, marker, _, _ in probes:
        assert probed == harness_elf(python), alias
        assert staptools.alias_marker(alias) == marker
        # One alias body per marker, under the version's own name.
        assert alias == alias_name(own, marker), alias
    # The wider names are aliases of it, nothing more.
    for alias, target, doc in wrappers:
        assert target.startswith(own + ".") and target in [a for a, _, _, _, _ in probes]
        suffix = target[len(own) + 1:]
        assert alias in [f + "." + suffix for f in families(python)[:-1]], (alias, target)
        assert re.match(r"/\*\*\n \* probe %s - \S" % re.escape(alias), doc), alias
        assert target in doc, alias


@pytest.mark.parametrize("python", BUILDS + OTHER_PYTHONS)
def test_aliases_read_the_arguments_probes_d_declares(generated, python):
    """filename is $arg1, funcname $arg2 ...: a swapped argument fails."""
    params = parse_params()
    for alias, _, marker, reads, doc in parse_tapset(generated[python])[0]:
        wanted = dict((VARIABLE[p], [i + 1]) for i, p in enumerate(params[marker])
                      if i < elf_markers(harness_elf(python))[marker])
        got = dict((v, n) for v, n in reads.items() if v != "argstr")
        assert got == wanted, alias
        # argstr reads no argument the marker does not pass.
        assert set(reads.get("argstr", [])) <= set(range(1, len(wanted) + 1)), alias
        # The kernel-doc comment documents the alias and each variable.
        assert re.match(r"/\*\*\n \* probe %s - \S" % re.escape(alias), doc), alias
        documented = set(re.findall(r"^ \* @(\w+):", doc, flags=re.M))
        assert documented == set(got) | {"name", "argstr"}, alias


def test_python311_function_markers_have_no_module(generated):
    if PYTHON311 not in generated:
        harness.cannot_run("%s is not installed (apt-get install python3.11)" % PYTHON311)
    with open(generated[PYTHON311]) as f:
        text = f.read()
    assert "probe python.v3_11.function.entry = " in text
    assert "cfunction" not in text
    entry = text.split("probe python.function.entry = ", 1)[1].split("\n}", 1)[0]
    assert "module" not in entry and "$arg4" not in entry


@pytest.mark.quick
def test_no_embedded_c():
    with open(staptools.TEMPLATE) as f:
        assert "%{" not in f.read()
    with open(staptools.OUR_PYTHON_STP) as f:
        assert "%{" not in f.read()


def test_make_tapset_for_a_python_we_did_not_build():
    if not OTHER_PYTHONS:
        harness.cannot_run("%s is not installed (apt-get install python3.11)" % PYTHON311)
    build = tempfile.mkdtemp(prefix="pst-build-")
    try:
        proc = staptools.make("tapset", "PYTHON=" + PYTHON311, "BUILD=" + build)
        assert proc.returncode == 0, proc.stderr
        out = os.path.join(build, "tapset-extra", "libpython3.11-64.stp")
        assert proc.stdout.strip().endswith(out)
        assert ['process("%s")' % os.path.realpath(PYTHON311)] == sorted(set(
            re.findall(r'process\("[^"]+"\)', open(out).read())))
    finally:
        shutil.rmtree(build)


@pytest.mark.parametrize("bad,message", [
    ("/bin/ls", "no python markers"),
    ("/nonexistent/python3.99", "no such file"),
])
@pytest.mark.quick
def test_bad_python_is_refused(bad, message):
    build = tempfile.mkdtemp(prefix="pst-build-")
    try:
        proc = staptools.make("tapset", "PYTHON=" + bad, "BUILD=" + build)
        assert proc.returncode != 0
        assert message in proc.stderr
        assert not os.path.exists(os.path.join(build, "tapset-extra")) or \
            os.listdir(os.path.join(build, "tapset-extra")) == []
    finally:
        shutil.rmtree(build)


def test_make_tapset_writes_the_in_tree_tapsets():
    """build/tapset (make check runs make tapset first): one per build."""
    for build in BUILDS:
        d = os.path.join(harness.BUILD, "tapset" + staptools.variant(build))
        major, minor = version(build)
        path = os.path.join(d, "libpython%s.%s-64.stp" % (major, minor))
        assert os.path.exists(path), "%s: run make tapset" % path
        assert set(p for _, p, _, _, _ in parse_tapset(path)[0]) == {harness.marker_object(build)}


@pytest.mark.parametrize("linkage", ["static", "shared"])
def test_install_to_destdir(linkage):
    """make install-tapsets (the tapsets alone; all of make install:
    test_install.py): the exact file list, with the installed Pythons'
    paths, and the manifest listing it."""
    suffix = "-shared" if linkage == "shared" else ""
    # LINKAGE=shared: the series with a -shared build (pythons' variants).
    series = [s for s in harness.series()
              if not suffix or "shared" in pythons.by_name()[s].variants]
    assert series
    if not all(os.path.exists(os.path.join(harness.BUILD, "bin", s + suffix)) for s in series):
        # Not a consumer: a variant `make check` does not build (yet).
        pytest.skip("the %s builds are missing (make build%s)" % (linkage, suffix and "-shared"))
    root = tempfile.mkdtemp(prefix="pst-destdir-")
    try:
        # -o: never (re)build a Python from a test, even if a link vanished.
        links = ["-o" + os.path.join(harness.BUILD, "bin", b) for b in BUILDS]
        proc = staptools.make("install-tapsets", "DESTDIR=" + root, "PREFIX=/opt/pst",
                              "tapsetdir=/usr/share/systemtap/tapset", "LINKAGE=" + linkage,
                              *links)
        assert proc.returncode == 0, proc.stderr
        files = sorted(os.path.relpath(os.path.join(d, f), root)
                       for d, _, names in os.walk(root) for f in names)
        expected = {}
        for s in series:
            major, minor = version(s)
            if linkage == "static":
                probed = "/opt/pst/bin/python%s.%s" % (major, minor)
            else:
                probed = "/opt/pst/lib/" + os.path.basename(harness.marker_object(s + suffix))
            expected["usr/share/systemtap/tapset/libpython%s.%s-64.stp" % (major, minor)] = probed
        manifest = ["opt/pst/share/python-systemtap/installed-" + n for n in ("files", "dirs")]
        assert files == sorted(list(expected) + ["usr/share/systemtap/tapset/python.stp"] + manifest)
        with open(os.path.join(root, manifest[0])) as f:
            assert f.read().splitlines() == ["/" + n for n in files]
        for name, probed in expected.items():
            path = os.path.join(root, name)
            assert oct(os.stat(path).st_mode & 0o777) == "0o644"
            assert set(p for _, p, _, _, _ in parse_tapset(path)[0]) == {probed}
            assert harness.BUILD not in open(path).read().split("\n\n", 1)[1]
        with open(os.path.join(root, "usr/share/systemtap/tapset/python.stp")) as f, \
                open(staptools.OUR_PYTHON_STP) as g:
            assert f.read() == g.read()
    finally:
        shutil.rmtree(root)


# --- with stap ---------------------------------------------------------------

def every_alias_script(aliases):
    """One probe per alias printing every variable it offers."""
    out = []
    for alias, variables in sorted(aliases.items()):
        names = sorted(variables)
        fmt = " ".join("%s=%s" % (v, "%s" if variables[v] == "string" else "%d") for v in names)
        out.append('probe %s { printf("%s\\n", %s) }' % (alias, fmt, ", ".join(names)))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("build", BUILDS)
def test_every_alias_elaborates(build):
    """-L lists exactly the aliases with their variables and types; a script
    using them all elaborates for --privilege=stapusr (no embedded C)."""
    staptools.need_stap()
    expected = expected_aliases(build)
    with staptools.TapsetTree([harness.interpreter(build)]) as tree:
        proc = tree.stap("-L", "python*.**")
        assert proc.returncode == 0, proc.stderr
        assert staptools.listed_aliases(proc.stdout) == expected
        script = os.path.join(tree.scratch, "all.stp")
        with open(script, "w") as f:
            f.write(every_alias_script(expected))
        proc = tree.stap("-p2", "--privilege=stapusr", script)
        assert proc.returncode == 0, proc.stderr
        assert set(p for p, _ in staptools.derived_probes(proc.stdout)) == \
            {harness.marker_object(build)}


CALLTREE = ('probe python.function.entry { printf("%s => %s in %s:%d\\n", '
        'thread_indent(1), funcname, filename, lineno) }')


def function_sites(builds):
    return sorted((harness.marker_object(b), s.name) for b in builds
                  for s in usdt.read_sites(harness.marker_object(b))
                  if s.provider == "python" and s.name == "function__entry")


@pytest.mark.parametrize("installed", staptools.installations(BUILDS),
                         ids=lambda bs: "+".join(bs))
def test_calltree_one_liner_next_to_systemtaps_python_stp(installed):
    """With SystemTap's python.stp in place, README's one-line call tree works once our tapsets
    are installed, and probes each function__entry site exactly once; without
    our python.stp, SystemTap's definition breaks it."""
    staptools.need_stap()
    with open(os.path.join(staptools.SYSTEM_TAPSETS, "python.stp")) as f:
        assert "python.function.entry" in f.read(), "SystemTap's python.stp changed"
    with_markers = [b for b in installed
                    if "function__entry" in elf_markers(harness.marker_object(b))]
    assert with_markers, "no build has function markers"
    pythons = [harness.interpreter(b) for b in installed]
    with staptools.TapsetTree(pythons) as tree:
        proc = tree.stap("-p2", "-e", CALLTREE)
        assert proc.returncode == 0, proc.stderr
        got = staptools.derived_probes(proc.stdout)
        assert len(got) == len(set(got)), "a site probed twice"
        assert len(got) == len(function_sites(with_markers))
        assert set(p for p, _ in got) == set(harness.marker_object(b) for b in with_markers)
    with staptools.TapsetTree(pythons) as tree:
        # SystemTap's python.stp back over ours: the collision we avoid.
        os.remove(os.path.join(tree.path, "python.stp"))
        os.symlink(os.path.join(staptools.SYSTEM_TAPSETS, "python.stp"),
                   os.path.join(tree.path, "python.stp"))
        proc = tree.stap("-p2", "-e", CALLTREE)
        assert proc.returncode != 0
        assert "libpython" in proc.stderr


def test_a_missing_python_breaks_nothing():
    """A tapset whose Python is gone: unrelated scripts and the other
    Pythons' aliases still work."""
    staptools.need_stap()
    with_markers = [b for b in BUILDS if "function__entry" in elf_markers(harness.marker_object(b))]
    scratch = tempfile.mkdtemp(prefix="pst-gone-")
    try:
        gone = staptools.gen_tapset(harness.interpreter(with_markers[0]),
                                    os.path.join(scratch, "gone"),
                                    "--path", "/nonexistent/bin/python9.9")
        renamed = os.path.join(scratch, "libpython-gone-64.stp")
        os.rename(gone, renamed)
        with staptools.TapsetTree([harness.interpreter(with_markers[0])],
                                  extra=[renamed]) as tree:
            proc = tree.stap("-p2", "-e", "probe begin { exit() }")
            assert proc.returncode == 0, proc.stderr
            proc = tree.stap("-p2", "-e", CALLTREE)
            assert proc.returncode == 0, proc.stderr
            assert set(p for p, _ in staptools.derived_probes(proc.stdout)) == \
                {harness.marker_object(with_markers[0])}
    finally:
        shutil.rmtree(scratch)
