"""Every shell script of the checkout (found by its #! line) is
shellcheck-clean, and each bash script stops at the first failure (set
-euo pipefail).  They need no build (make check-quick)."""

import os
import shutil
import subprocess

import pytest

import harness

pytestmark = pytest.mark.quick

SHELLS = ("#!/bin/sh", "#!/bin/bash", "#!/usr/bin/env bash", "#!/usr/bin/env sh")


def shell_scripts():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=harness.REPO, stdout=subprocess.PIPE,
                            check=True).stdout.decode().split("\0")
    found = []
    for name in filter(None, listed):
        path = os.path.join(harness.REPO, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            first = f.readline().decode(errors="replace").strip()
        if first in SHELLS:
            found.append((name, first))
    return found


SCRIPTS = shell_scripts()


def test_scripts_are_found():
    names = [name for name, _ in SCRIPTS]
    assert ".ci/run" in names and "scripts/fetch-source.sh" in names, names


@pytest.mark.parametrize("name, shebang", SCRIPTS, ids=[n for n, _ in SCRIPTS])
def test_shellcheck_clean(name, shebang):
    if shutil.which("shellcheck") is None:
        harness.cannot_run("shellcheck is not installed (apt-get install shellcheck)")
    proc = subprocess.run(["shellcheck", name], cwd=harness.REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("name", [n for n, s in SCRIPTS if "bash" in s])
def test_bash_stops_at_the_first_failure(name):
    with open(os.path.join(harness.REPO, name)) as f:
        assert "\nset -euo pipefail\n" in f.read(), name
