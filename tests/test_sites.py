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
import tempfile

import pytest

import harness

NOP5 = bytes.fromhex("0f1f440000")

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="5-byte sites are emitted on x86-64 only")


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=True).stdout


def readelf_sites(elf):
    """[(marker, address)] as binutils' readelf -n reads the notes."""
    sites, name = [], None
    for line in run(["readelf", "-n", elf]).splitlines():
        m = re.match(r"\s+Name: (\S+)", line)
        if m:
            name = m.group(1)
        m = re.match(r"\s+Location: 0x([0-9a-f]+)", line)
        if m:
            sites.append((name, int(m.group(1), 16)))
    return sorted(sites)


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


def file_offset(elf, address):
    for line in run(["readelf", "-lW", elf]).splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            offset, vaddr, filesz = int(f[1], 16), int(f[2], 16), int(f[4], 16)
            if vaddr <= address < vaddr + filesz:
                return address - vaddr + offset
    raise AssertionError("%#x is in no LOAD segment of %s" % (address, elf))


@pytest.mark.parametrize("build", harness.builds())
def test_sites_are_5_byte_nops(build):
    elf = harness.marker_object(build)
    sites = readelf_sites(elf)
    assert sites, "no markers in %s" % elf
    assert eu_readelf_sites(elf) == sites
    with open(elf, "rb") as f:
        data = f.read()
    wrong = [(m, hex(a), data[file_offset(elf, a):file_offset(elf, a) + 5].hex())
             for m, a in sites if data[file_offset(elf, a):file_offset(elf, a) + 5] != NOP5]
    assert not wrong, "sites that are not 0f 1f 44 00 00: %s" % wrong
    # objdump decodes each as one instruction starting at the note's address.
    for marker, address in sites:
        out = run(["objdump", "-d", "--start-address=%#x" % address,
                   "--stop-address=%#x" % (address + 5), elf])
        assert re.search(r"^\s*%x:\s+0f 1f 44 00 00\s+nopl\s+0x0\(%%rax,%%rax,1\)" % address,
                         out, re.M), (marker, out)


def functions(elf):
    """[(start, size, name)] of the ELF's code symbols."""
    found = []
    for line in run(["nm", "-S", "--defined-only", elf]).splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTW":
            found.append((int(f[0], 16), int(f[1], 16), f[3]))
    return found


@pytest.mark.parametrize("build", harness.builds())
def test_sites_are_not_in_red_zone_functions(build):
    """Linux 6.18 runs a uprobe on a 5-byte nop by writing a CALL into
    its trampoline over the nop: the CALL stores its return address at
    [rsp-8], inside the x86-64 red zone, where a leaf function may keep
    data without moving rsp.  A live marker in such a function would
    corrupt the traced program, so every site must sit in a function that
    keeps nothing below rsp: one with no memory operand below %rsp, and
    either a call of its own (GCC uses the red zone in leaf functions
    only) or no memory operand below %rbp."""
    elf = harness.marker_object(build)
    syms = functions(elf)
    assert syms, "%s has no symbols to check the sites against" % elf
    wrong = []
    for marker, address in readelf_sites(elf):
        fn = [s for s in syms if s[0] <= address < s[0] + s[1]]
        assert fn, "%s at %#x is in no function of %s" % (marker, address, elf)
        start, size, name = fn[0]
        code = run(["objdump", "-d", "--no-show-raw-insn", "--start-address=%#x" % start,
                    "--stop-address=%#x" % (start + size), elf])
        below_rsp = re.findall(r"^.*-0x[0-9a-f]+\(%rsp\).*$", code, re.M)
        below_rbp = re.findall(r"^.*-0x[0-9a-f]+\(%rbp\).*$", code, re.M)
        leaf = not re.search(r"\scall\s", code)
        if below_rsp or (leaf and below_rbp):
            wrong.append((marker, hex(address), name, (below_rsp or below_rbp)[0].strip()))
    assert not wrong, "sites in functions that keep data below rsp: %s" % wrong


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
