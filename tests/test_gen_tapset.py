"""scripts/gen-tapset's template language (parse_template,
expand_conditionals, substitute) and the shipped template's shape, on
inputs written here.  They need no build (make check-quick); the tapsets
generated for real builds are test_tapset.py's."""

import importlib.machinery
import importlib.util
import os

import pytest

import harness

# They need no build (make check-quick).
pytestmark = pytest.mark.quick

PATH = os.path.join(harness.REPO, "scripts", "gen-tapset")


def load():
    loader = importlib.machinery.SourceFileLoader("gen_tapset", PATH)
    spec = importlib.util.spec_from_loader("gen_tapset", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


gen = load()


def test_sections():
    header, sections = gen.parse_template(
        "@@header\n// top @VERSION@\n@@end\n\n"
        "@@marker line 3\nprobe @FAMILY@.line = x\n@@end\n"
        "@@marker gc__start 0\n@@end\n")
    assert header == ["// top @VERSION@"]
    assert sections == [("line", 3, ["probe @FAMILY@.line = x"]), ("gc__start", 0, [])]


@pytest.mark.parametrize("text, said", [
    ("@@header\n@@end\nstray\n", "line 3: text outside a section"),
    ("@@header\n@@end\n@@marker line\n@@end\n", "line 3: @@marker NAME MINARGS"),
    ("@@header\n@@end\n@@marker line x\n@@end\n", "line 3: @@marker NAME MINARGS"),
    ("@@header\n@@end\n@@marker line 1\n", "a section lacks its @@end"),
    ("@@marker line 1\n@@end\n", "no @@header section"),
])
def test_template_errors(text, said):
    with pytest.raises(gen.Error, match=said):
        gen.parse_template(text)


BODY = ["a", "@@if-args 4", "four", "@@if-args 5", "five", "@@else", "not five",
        "@@endif", "@@else", "fewer than four", "@@endif", "z"]


@pytest.mark.parametrize("nargs, kept", [
    (3, ["a", "fewer than four", "z"]),
    (4, ["a", "four", "not five", "z"]),
    (5, ["a", "four", "five", "z"]),
])
def test_conditionals(nargs, kept):
    assert gen.expand_conditionals(BODY, nargs) == kept


@pytest.mark.parametrize("body", [["@@if-args 1", "x"], ["@@else"], ["@@endif"]])
def test_unbalanced_conditionals(body):
    with pytest.raises(gen.Error):
        gen.expand_conditionals(body, 2)


def test_substitute():
    assert gen.substitute(["@A@ and @B@"], {"A": "1", "B": "2"}) == "1 and 2\n"
    with pytest.raises(gen.Error, match="unknown substitution @C@"):
        gen.substitute(["@A@ @C@"], {"A": "1"})


def test_shipped_template_covers_probes_d():
    """tapset/libpython.stp.in has a section for every marker of probes.d,
    none for another, each with a kernel-doc comment naming its alias."""
    import usdt
    with open(os.path.join(harness.REPO, "tapset", "libpython.stp.in")) as f:
        header, sections = gen.parse_template(f.read())
    probes = usdt.parse_probes(harness.PROBES_D)
    assert sorted(name for name, _, _ in sections) == sorted(probes)
    for name, minargs, body in sections:
        assert minargs <= probes[name], name
        assert any(line.startswith(" * probe @FAMILY@.") for line in body), name
        assert body[0] == "/**", name
