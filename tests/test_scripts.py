"""Bad input to the build scripts gives a clear error and a non-zero exit,
and leaves nothing half-written."""

import hashlib
import os
import subprocess
import tarfile

import pytest

import harness
import pythons

# They need no build (make check-quick).
pytestmark = pytest.mark.quick

FETCH = os.path.join(harness.REPO, "scripts", "fetch-source.sh")
PREPARE = os.path.join(harness.REPO, "scripts", "prepare-source.sh")


def run(*argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600)


def test_corrupt_tarball_is_refused(tmp_path):
    python = pythons.by_name()["python2.7"]
    tarball = tmp_path / python.tarball
    tarball.write_bytes(b"not the release")
    pinned = python.sha256
    proc = run(FETCH, tarball.name, pinned, "python2.7", "file:///nonexistent", str(tmp_path))
    assert proc.returncode != 0
    assert "checksum mismatch for %s" % python.tarball in proc.stderr
    assert pinned in proc.stderr
    assert hashlib.sha256(b"not the release").hexdigest() in proc.stderr
    assert tarball.read_bytes() == b"not the release"


def test_present_tarball_with_the_right_sum_is_kept(tmp_path):
    data = b"a tarball"
    tarball = tmp_path / "Python-9.9.9.tgz"
    tarball.write_bytes(data)
    proc = run(FETCH, tarball.name, hashlib.sha256(data).hexdigest(),
               "no-such-source-package", "file:///nonexistent", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "sha256 OK" in proc.stdout


def test_unobtainable_tarball_fails_and_leaves_nothing(tmp_path):
    proc = run(FETCH, "Python-9.9.9.tgz", "0" * 64, "no-such-source-package",
               "file:///nonexistent/Python-9.9.9.tgz", str(tmp_path))
    assert proc.returncode != 0
    assert "could not get Python-9.9.9.tgz" in proc.stderr
    assert os.listdir(str(tmp_path)) == []


def test_patch_that_does_not_apply_is_reported(tmp_path):
    src = tmp_path / "Python-0.0"
    (src / "Include").mkdir(parents=True)
    (src / "file.c").write_text("int x;\n")
    tarball = tmp_path / "Python-0.0.tgz"
    with tarfile.open(str(tarball), "w:gz") as t:
        t.add(str(src), arcname="Python-0.0")
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-bad.patch").write_text(
        "--- a/file.c\n+++ b/file.c\n@@ -1 +1 @@\n-int y;\n+int z;\n")
    dest = tmp_path / "tree"
    proc = run(PREPARE, str(tarball), str(patches), harness.PROBES_D, str(dest))
    assert proc.returncode != 0
    assert "0001-bad.patch does not apply" in proc.stderr
    assert not dest.exists()
    assert not (tmp_path / "tree.tmp").exists()


def _tiny_tarball(tmp_path, internal):
    src = tmp_path / "Python-0.0"
    (src / "Include").mkdir(parents=True)
    (src / "Python").mkdir()
    if internal:
        (src / "Include" / "internal").mkdir()
    tarball = tmp_path / "Python-0.0.tgz"
    with tarfile.open(str(tarball), "w:gz") as t:
        t.add(str(src), arcname="Python-0.0")
    patches = tmp_path / "patches"
    patches.mkdir()
    return tarball, patches


def marker_c_files(series):
    """The files of markers/ the table gives series, as paths."""
    return [os.path.join(harness.REPO, f) for f in pythons.marker_c(pythons.by_name()[series])]


@pytest.mark.parametrize("series, where", [
    ("python3.14", {"pydtrace_sites.h": "Include", "pycore_dtrace.h": "Include/internal",
                    "dtrace_markers.c.h": "Python"}),
    ("python2.7", {"pydtrace_sites.h": "Include"})])
def test_marker_c_is_installed_into_the_tree(tmp_path, series, where):
    tarball, patches = _tiny_tarball(tmp_path, internal=series.startswith("python3."))
    dest = tmp_path / "tree"
    files = marker_c_files(series)
    assert sorted(os.path.basename(f) for f in files) == sorted(where)
    proc = run(PREPARE, str(tarball), str(patches), harness.PROBES_D, str(dest), *files)
    assert proc.returncode == 0, proc.stderr
    for f in files:
        name = os.path.basename(f)
        with open(f) as source:
            assert (dest / where[name] / name).read_text() == source.read()


def test_missing_marker_c_is_reported(tmp_path):
    tarball, patches = _tiny_tarball(tmp_path, internal=True)
    missing = str(tmp_path / "markers" / "pycore_dtrace.h")
    dest = tmp_path / "tree"
    proc = run(PREPARE, str(tarball), str(patches), harness.PROBES_D, str(dest), missing)
    assert proc.returncode != 0
    assert "no marker C %s" % missing in proc.stderr
    assert not dest.exists()


def test_unknown_marker_c_is_refused(tmp_path):
    tarball, patches = _tiny_tarball(tmp_path, internal=True)
    dest = tmp_path / "tree"
    proc = run(PREPARE, str(tarball), str(patches), harness.PROBES_D, str(dest),
               harness.PROBES_D)
    assert proc.returncode != 0
    assert "not a marker C file this script knows" in proc.stderr
    assert not dest.exists()


def test_3x_marker_c_needs_a_3x_tree(tmp_path):
    tarball, patches = _tiny_tarball(tmp_path, internal=False)
    dest = tmp_path / "tree"
    proc = run(PREPARE, str(tarball), str(patches), harness.PROBES_D, str(dest),
               *marker_c_files("python3.14"))
    assert proc.returncode != 0
    assert "has no Include/internal/" in proc.stderr
    assert not dest.exists()
