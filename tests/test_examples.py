"""The SystemTap example scripts (examples/*.stp) elaborate against every
build whose markers they use, with our tapsets installed next to SystemTap's
own python.stp, and compile to a kernel module against the installed kernel
headers.  Running them is the guest's job (tests/guest): GUEST_CASES below
says what each shows for which fixture.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

import harness
import markers
import staptools

# For the guest (pass 5): (example, arguments, fixture of tests/dtracedata,
# what its output must contain, as a list of lines or fragments).
GUEST_CASES = [
    ("calltree.stp", [], "call_stack", ["=> middle in ", " => leaf in ", " <= leaf in "]),
    ("top.stp", [], "call_stack", ["fact ("]),
    ("latency.stp", [], "call_stack", ["fact ("]),
    ("slowcalls.stp", ["0"], "call_stack", ["leaf took 0 ms", "    middle ("]),
    ("gc.stp", [], "gc_import", ["generation 2: "]),
    ("imports.stp", [], "gc_import", ["dtrace_helper", "dtrace_no_such_module (not found)"]),
    ("lines.stp", [], "line", ["line.py:"]),
    ("stacks.stp", [], "call_stack", [";<module>;main;middle;leaf "]),
    ("cfunctions.stp", [], "call_stack", ["sorted"]),
]

BUILDS = harness.builds()


def build_markers(build):
    return set(s.name for s in markers.read_sites(harness.marker_object(build))
               if s.provider == "python")


def cases():
    """(build, example) where the build has every marker the example uses."""
    for build in BUILDS:
        have = build_markers(build)
        for example in staptools.examples():
            used = staptools.aliases_used(os.path.join(staptools.EXAMPLES, example))
            if set(staptools.alias_marker(a) for a in used) <= have:
                yield build, example


CASES = list(cases())


def need_stap():
    reason = staptools.stap_unavailable()
    if reason:
        if harness.REQUIRE_CONSUMERS:
            pytest.fail("REQUIRE_ALL_CONSUMERS=1 but stap cannot run: " + reason)
        pytest.skip(reason)


def test_every_example_is_checked():
    """Each example elaborates somewhere, and the guest knows them all."""
    examples = staptools.examples()
    assert len(examples) >= 9
    assert set(examples) == set(e for _, e in CASES)
    assert set(examples) == set(c[0] for c in GUEST_CASES)
    for example in examples:
        with open(os.path.join(staptools.EXAMPLES, example)) as f:
            head = f.read().split("*/", 1)[0]
        for needed in (" - ", "-c '", "-x PID", "Sample output"):
            assert needed in head, "%s: its header lacks %r" % (example, needed)
        assert "%{" not in open(os.path.join(staptools.EXAMPLES, example)).read()


@pytest.fixture(scope="module")
def trees():
    """A tapset tree per linkage, with every build of it installed."""
    made = {}
    yield made
    for tree in made.values():
        tree.__exit__(None, None, None)


def tree_for(trees, build):
    key = staptools.variant(build)
    if key not in trees:
        installed = [b for b in BUILDS if staptools.variant(b) == key]
        trees[key] = staptools.TapsetTree([harness.interpreter(b) for b in installed]).__enter__()
    return trees[key]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "%s-%s" % c)
def test_example_elaborates(trees, case):
    build, example = case
    need_stap()
    tree = tree_for(trees, build)
    args = [a for e, a, _, _ in GUEST_CASES if e == example][0]
    proc = tree.stap("-p2", os.path.join(staptools.EXAMPLES, example), *args)
    assert proc.returncode == 0, proc.stderr
    probed = set(p for p, _ in staptools.derived_probes(proc.stdout))
    assert harness.marker_object(build) in probed


@pytest.fixture(scope="module")
def runtime():
    """SystemTap's runtime, fixed for the headers (tests/guest/fix-runtime.sh
    says why), in a scratch directory."""
    scratch = tempfile.mkdtemp(prefix="pst-runtime-")
    out = os.path.join(scratch, "runtime")
    proc = subprocess.run([staptools.FIX_RUNTIME, staptools.headers(), out],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    yield out
    shutil.rmtree(scratch)


# Compiling takes seconds per script: each example once, against the first
# build that has its markers, and the seed against every linkage.
COMPILE = []
for _build, _example in CASES:
    if _example not in [e for _, e in COMPILE]:
        COMPILE.append((_build, _example))


@pytest.mark.parametrize("case", COMPILE, ids=lambda c: "%s-%s" % c)
def test_example_compiles(trees, runtime, case):
    build, example = case
    need_stap()
    tree = tree_for(trees, build)
    args = [a for e, a, _, _ in GUEST_CASES if e == example][0]
    out = tempfile.mkdtemp(prefix="pst-p4-")
    try:
        proc = tree.stap("-p4", "-R", runtime, "-m", "pst_example", "--tmpdir=" + out,
                         os.path.join(staptools.EXAMPLES, example), *args, cwd=out,
                         timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert os.path.exists(os.path.join(out, "pst_example.ko"))
    finally:
        shutil.rmtree(out)
