"""The stapsdt notes of the running interpreter's ELF files: which markers
of a provider they hold.  Only what usdtmon needs at import, with no tool
beyond the standard library (python-systemtap's scripts/usdt.py reads the
notes and sites with readelf for the build and the tests)."""

import os
import struct
import sys

SHT_NOTE = 7
NT_STAPSDT = 3


def interpreter_objects():
    """The executable, and the libpython it maps (if it maps one)."""
    paths = [os.path.realpath(sys.executable)] if sys.executable else []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and "/libpython" in parts[5]:
                    path = parts[5].strip()
                    if path not in paths:
                        paths.append(path)
    except OSError:
        pass
    return paths


def provider_markers(path, provider):
    """The names of the markers of provider in the .note.stapsdt section of
    the ELF file at path."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if ident[:4] != b"\x7fELF":
            raise ValueError("%s is not an ELF file" % path)
        wide = ident[4] == 2
        end = "<" if ident[5] == 1 else ">"
        word = "Q" if wide else "I"
        f.seek(0x28 if wide else 0x20)
        (shoff,) = struct.unpack(end + word, f.read(8 if wide else 4))
        f.seek(0x3A if wide else 0x2E)
        shentsize, shnum, shstrndx = struct.unpack(end + "HHH", f.read(6))
        shdr = end + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")

        def section(i):
            f.seek(shoff + i * shentsize)
            return struct.unpack(shdr, f.read(struct.calcsize(shdr)))

        names = section(shstrndx)
        f.seek(names[4])
        strtab = f.read(names[5])
        found = set()
        for i in range(shnum):
            sh = section(i)
            name = strtab[sh[0]:strtab.index(b"\0", sh[0])]
            if sh[1] != SHT_NOTE or name != b".note.stapsdt":
                continue
            f.seek(sh[4])
            found |= _markers(f.read(sh[5]), end, 8 if wide else 4, provider)
        return found


def _markers(notes, end, word, provider):
    found = set()
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from(end + "III", notes, pos)
        pos += 12
        name = notes[pos:pos + namesz].rstrip(b"\0")
        pos += (namesz + 3) & ~3
        desc = notes[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        if name != b"stapsdt" or kind != NT_STAPSDT:
            continue
        # pc, base, semaphore, then provider, name and arguments as strings
        fields = desc[3 * word:].split(b"\0")
        if len(fields) >= 2 and fields[0] == provider.encode():
            found.add(fields[1].decode("ascii", "replace"))
    return found
