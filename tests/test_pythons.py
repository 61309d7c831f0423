"""The table of Pythons (pythons) and its reader, scripts/pythons.py: the
rows it refuses, and what the Makefile, bench and the tests take from it.
They need no build (make check-quick)."""

import subprocess

import pytest

import harness
import pythons

pytestmark = pytest.mark.quick

SHA = "0" * 64


@pytest.mark.parametrize("row, said", [
    ("python3.13 3.13.15 %s python3.13 - patched" % SHA, "6 fields, not 7"),
    ("py3.13 3.13.15 %s python3.13 - patched -" % SHA, "is not pythonX.Y"),
    ("python3.13 3.14.1 %s python3.14 - patched -" % SHA, "is not python3.13's"),
    ("python3.13 3.13 %s python3.13 - patched -" % SHA, "is not python3.13's"),
    ("python3.13 3.13.15 abc python3.13 - patched -", "is not a sha256"),
    ("python3.13 3.13.15 %s python3.13 - ours -" % SHA, "role 'ours'"),
    ("python3.13 3.13.15 %s python3.13 - patched gil" % SHA, "variants"),
])
def test_bad_rows_are_refused(tmp_path, row, said):
    table = tmp_path / "pythons"
    table.write_text("# a comment\n\n" + row + "\n")
    with pytest.raises(pythons.Error, match=said):
        pythons.read(str(table))


def test_a_name_twice_is_refused(tmp_path):
    table = tmp_path / "pythons"
    row = "python3.13 3.13.15 %s python3.13 - patched -\n" % SHA
    table.write_text(row + row)
    with pytest.raises(pythons.Error, match="twice"):
        pythons.read(str(table))


@pytest.mark.parametrize("version, tarball, url", [
    ("2.7.18", "Python-2.7.18.tgz", "https://www.python.org/ftp/python/2.7.18/Python-2.7.18.tgz"),
    ("3.11.2", "Python-3.11.2.tgz", "https://www.python.org/ftp/python/3.11.2/Python-3.11.2.tgz"),
    ("3.15.0rc2", "Python-3.15.0rc2.tar.xz",
     "https://www.python.org/ftp/python/3.15.0/Python-3.15.0rc2.tar.xz"),
])
def test_tarball_and_url(tmp_path, version, tarball, url):
    table = tmp_path / "pythons"
    name = "python" + ".".join(version.split(".")[:2])
    table.write_text("%s %s %s %s - anchor -\n" % (name, version, SHA, name))
    (python,) = pythons.read(str(table))
    assert (python.tarball, python.url) == (tarball, url)


def test_the_table_names_our_series_and_stock_pythons():
    """Its patched rows are the series with patches (harness.series()), its
    stock rows the stock Pythons the tests build (harness.STOCK)."""
    table = pythons.read()
    assert [p.name for p in table if p.role == "patched"] == harness.series()
    assert set(p.name for p in table if p.role == "stock") <= set(harness.STOCK)


def test_make_reads_the_table():
    """make's view of the table: the names by role, and each Python's
    fields (make -p prints the variables it read)."""
    proc = subprocess.run(["make", "-s", "-C", harness.REPO, "-n", "-p", "sources"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    variables = dict(line.split(" := ", 1) for line in proc.stdout.splitlines()
                     if " := " in line and not line.startswith("#"))
    table = pythons.read()
    assert variables["SERIES"].split() == [p.name for p in table if p.role == "patched"]
    for p in table:
        assert variables["sha256." + p.name] == p.sha256
        assert variables["tarball." + p.name].endswith("/" + p.tarball)
