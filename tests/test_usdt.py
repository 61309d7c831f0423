"""scripts/usdt.py's parsers, on inputs written here: argument specifiers
(fetcharg), probes.d declarations, claims files and the markers check.
They need no build (make check-quick)."""

import pytest

import usdt

# They need no build (make check-quick).
pytestmark = pytest.mark.quick


@pytest.mark.parametrize("spec, string, fetch", [
    ("8@%rax", False, "%ax:u64"),
    ("-4@%r12d", False, "%r12:s32"),
    ("-4@%esi", False, "%si:s32"),
    ("4@%edi", False, "%di:u32"),
    ("2@%r9w", False, "%r9:u16"),
    ("8@16(%rsp)", False, "+16(%sp):u64"),
    ("-8@-24(%rbp)", False, "+-24(%bp):s64"),
    ("8@(%rbx)", False, "+0(%bx):u64"),
    ("-4@$0", False, "\\0:s32"),
    ("-4@$-1", False, "\\-1:s32"),
    ("8@%rdi", True, "+0(%di):string"),
    ("8@8(%rsp)", True, "+0(+8(%sp)):string"),
])
def test_fetcharg(spec, string, fetch):
    assert usdt.fetcharg(spec, string=string) == fetch


@pytest.mark.parametrize("spec", ["8%rax", "8@%xmm0", "8@16(%xmm0)", "@%rax", "8@rax", ""])
def test_fetcharg_refuses_what_it_cannot_express(spec):
    with pytest.raises(usdt.Error):
        usdt.fetcharg(spec)


def test_declarations(tmp_path):
    d = tmp_path / "p.d"
    d.write_text("/* a comment with probe fake(int x); inside */\n"
                 "provider python {\n"
                 "    probe function__entry(const char *filename, const char *funcname,\n"
                 "                          int lineno, const char *module);\n"
                 "    probe gc__start(int);\n"
                 "    probe empty();\n"
                 "    probe nothing(void);\n"
                 "};\n")
    decl = usdt.parse_declarations(str(d))
    assert decl == {
        "function__entry": [("const char *", "filename"), ("const char *", "funcname"),
                            ("int", "lineno"), ("const char *", "module")],
        "gc__start": [("", "int")],
        "empty": [],
        "nothing": [],
    }
    assert usdt.parse_probes(str(d)) == {"function__entry": 4, "gc__start": 1,
                                          "empty": 0, "nothing": 0}


def test_no_declaration_is_an_error(tmp_path):
    d = tmp_path / "p.d"
    d.write_text("provider python { };\n")
    with pytest.raises(usdt.Error, match="declares no probes"):
        usdt.parse_declarations(str(d))


def test_claims(tmp_path):
    c = tmp_path / "markers"
    c.write_text("# a comment\nfunction__entry\n  line   # trailing\n\n")
    assert usdt.parse_claims(str(c)) == ["function__entry", "line"]


def site(name, nargs, semaphore=0x10):
    return usdt.Site("python", name, 0x1000, semaphore, ["8@%rax"] * nargs)


def test_check_sees_each_kind_of_problem():
    probes = {"a": 1, "b": 2, "c": 0, "d": 1, "e": 1}
    claims = ["a", "b", "d", "undeclared"]
    sites = [site("a", 1), site("b", 1), site("c", 0), site("d", 1, semaphore=0),
             usdt.Site("other", "e", 0x1000, 0, [])]
    results = dict((m, (ok, msg)) for m, ok, msg in usdt.check(probes, claims, sites))
    assert results["a"][0] is True
    assert results["b"] == (False, "1 site(s) with [1] arguments, probes.d says 2")
    assert results["c"] == (False, "1 site(s) but not claimed")
    assert results["d"] == (False, "a site without a semaphore")
    assert results["e"] == (True, "not claimed, no site")
    assert results["undeclared"] == (False, "claimed but not declared in probes.d")


def test_module_families_are_usdtmons():
    """usdt.MODULE_FAMILIES (gen-tapset's and the tests' rule for which
    markers usdtmon fires) is module/usdtmon's own FAMILIES table."""
    import ast
    import os
    import harness
    path = os.path.join(harness.REPO, "module", "usdtmon", "__init__.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    table = [node.value for node in tree.body if isinstance(node, ast.Assign)
             and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["FAMILIES"]]
    assert len(table) == 1, path
    families = ast.literal_eval(table[0])
    ours = dict((name, (bit, markers[0])) for name, bit, markers in usdt.MODULE_FAMILIES)
    assert families == ours


def test_module_markers():
    own = {"function__entry": 3, "function__return": 3, "gc__start": 1, "gc__done": 1}
    assert usdt.module_markers(own) == ["cfunction__entry", "cfunction__return", "line"]
    assert usdt.module_markers({}) == [m for _, _, ms in usdt.MODULE_FAMILIES for m in ms]


def test_module_claims_are_its_families():
    """module/usdtmon/markers (what test_module.py holds its shared object
    to) lists exactly the markers of its families."""
    import harness
    assert sorted(usdt.parse_claims(harness.MODULE_CLAIMS)) == \
        sorted(m for _, _, ms in usdt.MODULE_FAMILIES for m in ms)
