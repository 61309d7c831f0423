"""The test suite's two layers: test modules (tests/test_*.py) hold tests,
and the infrastructure (consumers.py, cases.py, harness.py, staptools.py,
guest/ ...) holds what they share.  No module imports a test module: a
case list two places read is data in cases.py, a runner is in
consumers.py.

It needs no build (make check-quick)."""

import ast
import glob
import os

import pytest

import harness

pytestmark = pytest.mark.quick

TESTS = os.path.join(harness.REPO, "tests")
TEST_MODULES = {os.path.basename(p)[:-3]
                for p in glob.glob(os.path.join(TESTS, "test_*.py"))}
SOURCES = sorted(p for p in glob.glob(os.path.join(TESTS, "**", "*.py"), recursive=True)
                 if "dtracedata" not in os.path.relpath(p, TESTS).split(os.sep))


def imported(path):
    """The names of the modules path imports, anywhere in it."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""
            # from . import test_x, from tests import test_x
            for alias in node.names:
                yield alias.name


def test_the_suite_has_both_layers():
    assert len(TEST_MODULES) > 10 and len(SOURCES) > len(TEST_MODULES), SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: os.path.relpath(p, TESTS))
def test_no_module_imports_a_test_module(path):
    bad = sorted({name for name in imported(path)
                  if set(name.split(".")) & TEST_MODULES})
    assert not bad, "%s imports test module(s) %s: move what they share to the " \
        "infrastructure (cases.py, consumers.py, harness.py)" % (
            os.path.relpath(path, TESTS), ", ".join(bad))
