"""The generated files a patch series carries (the interpreter's cases,
generated from Python/bytecodes.c by Tools/cases_generator) are exactly
what the generators make of the patched sources: `make regen-cases` on the
patched tree changes nothing.

The regeneration runs in a copy of the patched tree, through the build's own
Makefile (srcdir pointed at the copy), with Debian's python3 as
PYTHON_FOR_REGEN.  Before it runs, the copy's generated_cases.c.h is
emptied: the run must write it back, byte for byte."""

import filecmp
import os
import shutil
import subprocess

import pytest

import harness

# The series whose patches change the bytecode DSL.
SERIES = [s for s in harness.series()
          if any("Python/bytecodes.c" in open(os.path.join(harness.REPO, "patches", s, p)).read()
                 for p in os.listdir(os.path.join(harness.REPO, "patches", s))
                 if p.endswith(".patch"))]
REGEN_PYTHON = "/usr/bin/python3"


def differences(a, b):
    """The files that differ between trees a and b (byte for byte), or that
    only one of them has; Python's byte-code caches left out."""
    found = []
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    stack = [("", cmp)]
    while stack:
        prefix, c = stack.pop()
        found += [prefix + n for n in c.left_only + c.right_only + c.funny_files]
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        found += [prefix + n for n in mismatch + errors]
        stack += [(prefix + n + "/", sub) for n, sub in c.subdirs.items()]
    return sorted(found)


def test_some_series_changes_the_dsl():
    assert {"python3.13", "python3.14"} <= set(SERIES), SERIES


@pytest.mark.parametrize("series", SERIES)
def test_regen_cases_reproduces_the_patched_files(series, tmp_path):
    src = os.path.join(harness.BUILD, "src", series)
    makefile = os.path.join(harness.BUILD, "obj", series, "Makefile")
    for path in (os.path.join(src, ".prepared"), makefile):
        assert os.path.exists(path), "%s is missing: run 'make build'" % path
    copy = str(tmp_path / "src")
    shutil.copytree(src, copy, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    generated = os.path.join(copy, "Python", "generated_cases.c.h")
    open(generated, "w").close()
    proc = subprocess.run(
        ["make", "-C", os.path.dirname(makefile), "regen-cases",
         "srcdir=" + copy, "PYTHON_FOR_REGEN=" + REGEN_PYTHON],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert os.path.getsize(generated) > 0, "regen-cases did not write generated_cases.c.h"
    assert differences(src, copy) == []
