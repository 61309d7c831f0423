#!/usr/bin/env python3
"""Check the machine code at the static marker sites of an x86-64 ELF file.

    sites.py ELF

Every site of ELF's .note.stapsdt must follow libbpf usdt.h's convention:
a 1-byte nop (90) where the note points, then the 10-byte nop 66 2e 0f 1f
84 00 00 00 00 00 (nopw %cs:0x0(%rax,%rax,1)).  A consumer that attaches
at the note puts an int3 uprobe on the 1-byte nop, which costs a trap per
hit and writes nothing to the program's stack or code beyond it.  The site
must not be a 5-byte nop: Linux 6.18 turns a uprobe on one into a CALL to
a trampoline, which stores into the red zone and kills a child forked
after the parent hit the site.  Only the notes and program headers are
read: stripped binaries can be checked.  Exit status 0 when every site
holds, 1 otherwise, with a line per bad site; 2 when ELF cannot be checked
(not an x86-64 ELF, no sites).

The spec's %check runs this on the installed interpreters; the test suite
imports it.
"""

import re
import subprocess
import sys

SITE = bytes.fromhex("90" "662e0f1f840000000000")


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


def problems(elf):
    """A line for each site that is not 90 then the 10-byte nop; ValueError
    if ELF is not x86-64 or has no sites."""
    if not re.search(r"^\s*Machine:\s+Advanced Micro Devices X86-64$",
                     run(["readelf", "-h", elf]), re.M):
        raise ValueError("%s is not an x86-64 ELF file" % elf)
    found = sites(elf)
    if not found:
        raise ValueError("%s has no marker sites" % elf)
    with open(elf, "rb") as f:
        data = f.read()
    out = []
    for marker, address in found:
        off = file_offset(elf, address)
        code = data[off:off + len(SITE)]
        if code != SITE:
            out.append("%s at %#x: %s, not %s" % (marker, address, code.hex(" "), SITE.hex(" ")))
    return out


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    try:
        bad = problems(argv[1])
    except (ValueError, OSError, subprocess.CalledProcessError) as e:
        print("sites.py: %s" % (e.output.strip() if getattr(e, "output", None) else e),
              file=sys.stderr)
        return 2
    for line in bad:
        print("sites.py: %s: %s" % (argv[1], line))
    if bad:
        return 1
    print("sites.py: %s: %d sites, every one a 1-byte nop then a 10-byte nop" % (
        argv[1], len(sites(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
