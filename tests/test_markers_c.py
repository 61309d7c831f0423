"""The marker C in markers/ is one copy for every 3.x series: the patched
trees include all of it (the builds test that), and a module outside the
core compiles its first part, the markers' arguments, on the public and
unstable C API alone.  Here that part compiles, warning-free, against the
headers of each 3.x build (free-threaded ones too), with the PyDTrace_*
macros a module makes from probes.d."""

import os
import subprocess

import pytest

import harness
import usdt

MARKERS = os.path.join(harness.REPO, "markers")

# A module's use of the shared part: its own names for the strings, the
# header dtrace(1) makes from probes.d, and a call of each helper.
MODULE_C = r"""
#include <Python.h>
#include "probes.h"

static PyObject *dtrace_id___name__, *dtrace_id___module__;
#define DTRACE_ID(NAME) dtrace_id_##NAME

#include "dtrace_markers.c.h"

void markers_c_fire(int entry, PyCodeObject *code, PyObject *globals,
                    PyObject *callable, PyObject *self_arg);

void
markers_c_fire(int entry, PyCodeObject *code, PyObject *globals,
               PyObject *callable, PyObject *self_arg)
{
    static Py_ssize_t lines_index;
    struct dtrace_cfunction f;
    dtrace_function(entry, code, 0, globals, &lines_index);
    if (dtrace_cfunction_of(callable, self_arg, &f)) {
        dtrace_cfunction(entry, &f, code, 0, &lines_index);
    }
}
"""


def three_builds():
    return [b for b in harness.builds()
            if harness.series_of(b).startswith("python3.") and "-shared" not in b]


@pytest.fixture(scope="module")
def probes_h(tmp_path_factory):
    """probes.d as a module's header: dtrace -h, with CPython's names."""
    d = tmp_path_factory.mktemp("probes")
    raw = d / "raw.h"
    subprocess.run(["dtrace", "-h", "-s", harness.PROBES_D, "-o", str(raw)],
                   check=True, timeout=120)
    (d / "probes.h").write_text(raw.read_text().replace("PYTHON_", "PyDTrace_"))
    return d


@pytest.mark.parametrize("build", three_builds())
def test_module_part_compiles_on_the_public_api(build, probes_h, tmp_path):
    obj = os.path.dirname(os.path.realpath(harness.interpreter(build)))
    src = os.path.join(harness.BUILD, "src", harness.series_of(build))
    source = tmp_path / "markers_c.c"
    source.write_text(MODULE_C)
    proc = subprocess.run(
        ["gcc", "-c", "-O2", "-Wall", "-Wextra", "-Werror",
         "-Wno-unused-parameter", "-Wno-missing-field-initializers",
         "-I", str(probes_h), "-I", MARKERS, "-I", obj,
         "-I", os.path.join(src, "Include"),
         "-o", str(tmp_path / "markers_c.o"), str(source)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stdout
    # The markers it fires are probes.d's, at sites of its own
    found = usdt.markers(str(tmp_path / "markers_c.o"))
    fired = ("function__entry", "function__return", "cfunction__entry",
             "cfunction__return")
    assert {m: found.get(m) for m in fired} == {m: 4 for m in fired}

