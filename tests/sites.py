#!/usr/bin/env python3
"""Check the machine code at the static marker sites of an x86-64 ELF file.

    sites.py ELF

Every site in ELF's .note.stapsdt must be a 5-byte nop (0f 1f 44 00 00)
in a function that keeps no data in the red zone, the 128 bytes below the
stack pointer.  Linux 6.18 runs a uprobe on a 5-byte nop by writing a CALL
to its trampoline over it; that CALL stores its return address at rsp-8,
so a live marker in a function that keeps data there would overwrite it
on every hit.  A function keeps nothing there when none of its memory
operands is below %rsp, and it either calls another function (GCC uses the
red zone in leaf functions only) or has no memory operand below %rbp.  ELF
needs its symbol table (check the build tree's binaries, not stripped
ones).  Exit status 0 when all holds, 1 otherwise, with a line per site;
2 when ELF cannot be checked (no sites, no symbols).

The spec's %check runs this on the interpreters it built; the test suite
imports it.
"""

import re
import subprocess
import sys

NOP5 = bytes.fromhex("0f1f440000")


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=True).stdout


def sites(elf):
    """[(marker, address)] of the ELF's stapsdt notes (readelf -n)."""
    found, name = [], None
    for line in run(["readelf", "-n", elf]).splitlines():
        m = re.match(r"\s+Name: (\S+)", line)
        if m:
            name = m.group(1)
        m = re.match(r"\s+Location: 0x([0-9a-f]+)", line)
        if m:
            found.append((name, int(m.group(1), 16)))
    return sorted(found)


def file_offset(elf, address):
    for line in run(["readelf", "-lW", elf]).splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            offset, vaddr, filesz = int(f[1], 16), int(f[2], 16), int(f[4], 16)
            if vaddr <= address < vaddr + filesz:
                return address - vaddr + offset
    raise ValueError("%#x is in no LOAD segment of %s" % (address, elf))


def functions(elf):
    """[(start, size, name)] of the ELF's code symbols."""
    found = []
    for line in run(["nm", "-S", "--defined-only", elf]).splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTW":
            found.append((int(f[0], 16), int(f[1], 16), f[3]))
    return found


def red_zone_use(elf, start, size):
    """The first instruction of the function at start that shows it may
    keep data in the red zone, or None."""
    code = run(["objdump", "-d", "--no-show-raw-insn", "--start-address=%#x" % start,
                "--stop-address=%#x" % (start + size), elf])
    below_rsp = re.findall(r"^.*-0x[0-9a-f]+\(%rsp[,)].*$", code, re.M)
    below_rbp = re.findall(r"^.*-0x[0-9a-f]+\(%rbp[,)].*$", code, re.M)
    leaf = not re.search(r"\scall\s", code)
    if below_rsp:
        return below_rsp[0].strip()
    if leaf and below_rbp:
        return below_rbp[0].strip()
    return None


def problems(elf):
    """A line for each site that is not a 5-byte nop or sits in a function
    that may keep data in the red zone; ValueError if ELF has no sites or
    no symbols to check them against."""
    found = sites(elf)
    if not found:
        raise ValueError("%s has no marker sites" % elf)
    syms = functions(elf)
    if not syms:
        raise ValueError("%s has no symbol table to check its sites against" % elf)
    with open(elf, "rb") as f:
        data = f.read()
    out = []
    for marker, address in found:
        off = file_offset(elf, address)
        if data[off:off + 5] != NOP5:
            out.append("%s at %#x: %s, not 0f 1f 44 00 00" % (
                marker, address, data[off:off + 5].hex()))
        fn = [s for s in syms if s[0] <= address < s[0] + s[1]]
        if not fn:
            out.append("%s at %#x: in no function" % (marker, address))
            continue
        start, size, name = fn[0]
        use = red_zone_use(elf, start, size)
        if use:
            out.append("%s at %#x: in %s, which may keep data in the red zone (%s)" % (
                marker, address, name, use))
    return out


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    try:
        bad = problems(argv[1])
    except (ValueError, OSError, subprocess.CalledProcessError) as e:
        print("sites.py: %s" % e, file=sys.stderr)
        return 2
    for line in bad:
        print("sites.py: %s: %s" % (argv[1], line))
    if bad:
        return 1
    print("sites.py: %s: %d sites, every one a 5-byte nop outside the red zone" % (
        argv[1], len(sites(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
