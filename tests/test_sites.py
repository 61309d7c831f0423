"""The marker sites on x86-64 are 5-byte nops (0f 1f 44 00 00), which Linux
6.18+ runs a uprobe on through a trampoline instead of an int3 trap
(patches/python2.7/0002, patches/python3.13/0004), and the consumers that
read the ELF notes still find and use them: readelf and eu-readelf agree
on every note, objdump shows the nop at every site's address, and gdb
stops at one and reads its arguments.  (bpftrace and SystemTap consume the
same sites in test_semantics.py, test_examples_bpftrace.py and
test_guest.py.)  Every site sits in a function that keeps nothing in
the red zone, which the kernel's trampoline CALL would overwrite."""

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

import harness
import sites as site_check

SITES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sites.py")

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="5-byte sites are emitted on x86-64 only")


run = site_check.run
readelf_sites = site_check.sites


def eu_readelf_sites(elf):
    """The same, as elfutils' eu-readelf -n reads them."""
    sites, pc = [], None
    for line in run(["eu-readelf", "-n", elf]).splitlines():
        m = re.match(r"\s+PC: 0x([0-9a-f]+),", line)
        if m:
            pc = int(m.group(1), 16)
        m = re.match(r"\s+Provider: \S+, Name: (\S+),", line)
        if m:
            sites.append((m.group(1), pc))
    return sorted(sites)


@pytest.mark.parametrize("build", harness.builds())
def test_sites_are_5_byte_nops(build):
    elf = harness.marker_object(build)
    sites = readelf_sites(elf)
    assert sites, "no markers in %s" % elf
    assert eu_readelf_sites(elf) == sites
    # objdump decodes each as one 5-byte nop starting at the note's address.
    for marker, address in sites:
        out = run(["objdump", "-d", "--start-address=%#x" % address,
                   "--stop-address=%#x" % (address + 5), elf])
        assert re.search(r"^\s*%x:\s+0f 1f 44 00 00\s+nopl\s+0x0\(%%rax,%%rax,1\)" % address,
                         out, re.M), (marker, out)


@pytest.mark.parametrize("build", harness.builds())
def test_sites_are_not_in_red_zone_functions(build):
    """tests/sites.py (which the spec's %check runs too) on each build: no
    site in a function that may keep data in the red zone, which Linux
    6.18's trampoline CALL overwrites on every hit."""
    elf = harness.marker_object(build)
    out = subprocess.run([sys.executable, SITES, elf], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True)
    assert out.returncode == 0, out.stdout
    assert "%d sites, every one a 5-byte nop outside the red zone" % len(
        readelf_sites(elf)) in out.stdout, out.stdout


LEAF = r"""
#include <sys/sdt.h>
#undef _SDT_NOP
#define _SDT_NOP .byte 0x0f; .byte 0x1f; .byte 0x44; .byte 0x00; .byte 0x00
__attribute__((noinline)) long leaf(long a)
{
    volatile long t[15];
    long s = 0;
    for (int i = 0; i < 15; i++) t[i] = a + i;
    STAP_PROBE1(test, hit, a);
    for (int i = 0; i < 15; i++) s += t[i] - (a + i);
    return s;
}
int main(int argc, char **argv) { (void)argv; return (int)leaf(argc); }
"""


def test_sites_py_finds_a_red_zone_leaf():
    """The checker itself: a leaf function that keeps an array below rsp
    with a 5-byte site in it (which, traced on Linux 6.18, returns wrong
    results) is reported and fails; a stripped binary is an error."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the leaf function")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "leaf.c"), os.path.join(tmp, "leaf")
        with open(src, "w") as f:
            f.write(LEAF)
        subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
        out = subprocess.run([sys.executable, SITES, exe], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True)
        assert out.returncode == 1, out.stdout
        assert re.search(r"hit at 0x[0-9a-f]+: in leaf, which may keep data in the red zone",
                         out.stdout), out.stdout
        subprocess.run(["strip", exe], check=True)
        out = subprocess.run([sys.executable, SITES, exe], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True)
        assert out.returncode == 2 and "no symbol table" in out.stdout, out.stdout


@pytest.mark.parametrize("build", harness.builds())
def test_gdb_stops_at_a_5_byte_site(build):
    if shutil.which("gdb") is None:
        if harness.REQUIRE_CONSUMERS:
            pytest.fail("gdb is not installed")
        pytest.skip("gdb is not installed (apt-get install gdb)")
    python = harness.interpreter(build)
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "site.py")
        with open(script, "w") as f:
            f.write("def probed_function(x):\n    return x + 1\n\n\nprobed_function(1)\n")
        commands = os.path.join(tmp, "site.gdb")
        with open(commands, "w") as f:
            # Pending: in the -shared builds the markers are in libpython,
            # loaded after the program starts.
            f.write("set pagination off\n"
                    "set breakpoint pending on\n"
                    "break -probe-stap python:function__entry\n"
                    "commands\n"
                    "silent\n"
                    "printf \"ENTRY %s %s %d\\n\", $_probe_arg0, $_probe_arg1, $_probe_arg2\n"
                    "x/i $pc\n"
                    "continue\n"
                    "end\n"
                    "run\n")
        out = subprocess.run(
            ["gdb", "-nx", "-q", "-batch", "-x", commands, "--args", python, "-S", script],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
            timeout=300).stdout
    assert "ENTRY %s probed_function 1" % script in out, out[-3000:]
    assert re.search(r"=> 0x[0-9a-f]+ <[^>]*>:\s+nopl\s+0x0\(%rax,%rax,1\)", out), out[-3000:]
