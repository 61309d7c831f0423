"""The marker sites on x86-64 follow libbpf usdt.h's convention: a 1-byte nop
where the note points, then a 10-byte nop (patches/python2.7/0002,
patches/python3.13/0005).  Consumers attach at the note and put an int3
uprobe on the 1-byte nop; a 5-byte nop there would be optimized by Linux
6.18 into a CALL that kills forked children (test_fork.py).  Here:
readelf and eu-readelf agree on every note, objdump decodes the two nops at
every site, scripts/usdt.py sites (which the spec's %check runs on the stripped,
installed interpreters) passes on every build, stripped too, and fails on
a 5-byte site, and gdb stops at a site and reads its arguments.  (bpftrace
and SystemTap consume the same sites in test_semantics.py, test_fork.py,
test_examples_bpftrace.py and test_guest.py.)"""

import os
import platform
import re
import subprocess
import sys
import tempfile

import pytest

import consumers
import harness
import usdt

USDT = os.path.join(harness.REPO, "scripts", "usdt.py")

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the nop, nop10 sites are emitted on x86-64 only")


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=True).stdout


def readelf_sites(elf):
    """[(marker, address)] of every provider's sites, as usdt.py reads them."""
    return sorted((s.name, s.address) for s in usdt.read_sites(elf, provider=None))


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


def usdt_sites(elf):
    return subprocess.run([sys.executable, USDT, "sites", elf], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)


@pytest.mark.parametrize("build", harness.builds())
def test_sites_are_nop_then_nop10(build):
    elf = harness.marker_object(build)
    sites = readelf_sites(elf)
    assert sites, "no markers in %s" % elf
    assert eu_readelf_sites(elf) == sites
    # objdump decodes a 1-byte nop at the note's address, then one
    # 10-byte nop.
    for marker, address in sites:
        out = run(["objdump", "-d", "--insn-width=11", "--start-address=%#x" % address,
                   "--stop-address=%#x" % (address + 11), elf])
        assert re.search(r"^\s*%x:\s+90\s+nop\n\s*%x:\s+66 2e 0f 1f 84 00 00 00 00 00\s+"
                         r"cs nopw 0x0\(%%rax,%%rax,1\)$" % (address, address + 1),
                         out, re.M), (marker, out)


@pytest.mark.parametrize("build", harness.builds())
def test_sites_py_passes(build):
    """scripts/usdt.py sites (which the spec's %check runs too) on each build, and
    on a stripped copy, as the packages ship it."""
    elf = harness.marker_object(build)
    summary = "%d sites, every one a 1-byte nop then a 10-byte nop" % len(readelf_sites(elf))
    out = usdt_sites(elf)
    assert out.returncode == 0 and summary in out.stdout, out.stdout
    with tempfile.TemporaryDirectory() as tmp:
        stripped = os.path.join(tmp, os.path.basename(elf))
        subprocess.run(["strip", "-o", stripped, elf], check=True)
        assert "symtab" not in run(["readelf", "-S", stripped])
        out = usdt_sites(stripped)
        assert out.returncode == 0 and summary in out.stdout, out.stdout


@pytest.mark.quick
def test_sites_py_rejects_a_5_byte_site():
    """The checker itself, on dtracedata/forksite.c: the 5-byte site of the
    old convention fails with a line naming it, the nop, nop10 one passes,
    sys/sdt.h's own 1-byte nop fails too, and a program without sites
    cannot be checked."""
    with tempfile.TemporaryDirectory() as tmp:
        out = usdt_sites(harness.forksite(tmp, "nop5"))
        assert out.returncode == 1, out.stdout
        assert re.search(r"^usdt.py: \S+: tick at 0x[0-9a-f]+: 0f 1f 44 00 00 .*, not "
                         r"90 66 2e 0f 1f 84 00 00 00 00 00$", out.stdout, re.M), out.stdout
        out = usdt_sites(harness.forksite(tmp, "nop-nop10"))
        assert out.returncode == 0 and "1 sites, every one" in out.stdout, out.stdout
        plain = os.path.join(tmp, "plain")
        subprocess.run(["gcc", "-O2", "-o", plain, harness.FORKSITE], check=True)
        out = usdt_sites(plain)
        assert out.returncode == 1 and re.search(r"tick at 0x[0-9a-f]+: 90 ", out.stdout), out.stdout
        out = usdt_sites("/bin/true")
        assert out.returncode == 2 and "no marker sites" in out.stdout, out.stdout


@pytest.mark.parametrize("build", harness.builds())
def test_gdb_stops_at_a_site(build):
    harness.require(consumers.Gdb())
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
                    "x/2i $pc\n"
                    "continue\n"
                    "end\n"
                    "run\n")
        out = subprocess.run(
            consumers.GDB + ["-x", commands, "--args", python, "-S", script],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
            timeout=300).stdout
    assert "ENTRY %s probed_function 1" % script in out, out[-3000:]
    assert re.search(r"=> 0x[0-9a-f]+ <[^>]*>:\s+nop\n\s+0x[0-9a-f]+ <[^>]*>:\s+"
                     r"cs nopw 0x0\(%rax,%rax,1\)", out), out[-3000:]


SHARED_SITE = """\
import os, sys, time


def before():
    pass


def after():
    pass


for _ in range(5):
    before()
sys.stdout.write("ready %d\\n" % os.getpid())
sys.stdout.flush()
while True:      # C calls only: no Python frame stops gdb meanwhile
    try:
        os.stat(sys.argv[1])
        break
    except OSError:
        time.sleep(0.01)
for _ in range(5):
    after()
"""


def test_gdb_loses_a_site_to_a_uprobe():
    """The hazard the suite works around by never running gdb and a uprobe
    tracer on one process at once (consumers.Gdb says which tracers ran
    meanwhile when its events differ), shown here: gdb's breakpoint and a
    uprobe on the same marker site share one int3.  While the uprobe is
    registered the kernel takes the trap, and when it goes it writes the
    site's original instruction back, gdb's int3 with it: gdb, which
    believes its breakpoint inserted, misses that marker for good (kernel
    6.18, gdb 13.1, bpftrace 0.17)."""
    harness.require(consumers.Gdb())
    bpftrace = harness.require(consumers.Bpftrace())
    build = "python3.13"
    with harness.FixtureDir() as d:
        script, go = d.path + "shared_site.py", d.path + "go"
        with open(script, "w") as f:
            f.write(SHARED_SITE)
        commands = d.path + "count.gdb"
        with open(commands, "w") as f:
            f.write("set pagination off\n"
                    "break -probe-stap python:function__entry\n"
                    "commands\n"
                    "silent\n"
                    "printf \"HIT %s\\n\", $_probe_arg1\n"
                    "continue\n"
                    "end\n"
                    "run\n")
        debugger = subprocess.Popen(
            consumers.GDB + ["-x", commands, "--args",
             harness.interpreter(build), script, go],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        tracer = None
        try:
            lines = []
            while not lines or not lines[-1].startswith("ready"):
                line = debugger.stdout.readline()
                assert line, "".join(lines)
                lines.append(line)
            pid = lines[-1].split()[1]
            out = d.path + "bpftrace.txt"
            with open(out, "w") as f:
                tracer = subprocess.Popen(
                    ["bpftrace", "-p", pid, "-e",
                     'BEGIN { printf("tracing\\n"); } usdt:%s:python:function__entry '
                     '{ @n = count(); }' % harness.marker_object(build)],
                    stdout=f, stderr=subprocess.PIPE, universal_newlines=True)
            bpftrace._wait_attached(tracer, out)
            bpftrace.interrupt(tracer)
            open(go, "w").close()
            rest, _ = debugger.communicate(timeout=120)
        finally:
            for p in (debugger, tracer):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.communicate()
        hits = re.findall(r"^HIT (\w+)$", "".join(lines) + rest, re.M)
        assert "exited normally" in rest, rest
        # Each before() stopped gdb; no after() did: its int3 is gone.
        assert hits.count("before") == 5 and hits.count("after") == 0, hits
