#!/usr/bin/env python3
"""The python provider's markers in an ELF file: the one reader of their
SystemTap SDT notes (.note.stapsdt) and of the machine code at their sites,
for gen-tapset, the tests, bench and the spec's %check.

    usdt.py markers PROBES_D CLAIMS ELF
        Every marker CLAIMS lists (patches/<python>/markers, one a line)
        has at least one site in ELF, each with the argument count PROBES_D
        declares and a semaphore; no other marker of the provider has one.
    usdt.py uprobe PROBES_D ELF MARKER
        The lines that define MARKER's sites in ELF as kernel trace events
        python/MARKER (echo them >> /sys/kernel/tracing/uprobe_events),
        with their semaphore and probes.d's parameters by name, strings as
        strings: what perf records with `-e python:MARKER`.
    usdt.py elf PYTHON [MARKER...]
        The ELF file holding PYTHON's markers (PYTHON itself, or the
        libpython an --enable-shared build links), which must have a site
        of each MARKER named.
    usdt.py sites ELF
        Every site of ELF (x86-64) follows libbpf usdt.h's convention: a
        1-byte nop (90) where the note points, then the 10-byte nop
        66 2e 0f 1f 84 00 00 00 00 00.  A consumer that attaches at the
        note puts an int3 uprobe on the 1-byte nop: a trap per hit, nothing
        written to the program's stack.  Not a 5-byte nop: Linux 6.18 turns
        a uprobe on one into a CALL to a trampoline, which stores into the
        red zone and kills a child forked after its parent hit the site.

Both read only the notes and program headers (stripped files can be
checked), print a line per marker or bad site, and exit 0 when all holds,
1 otherwise, 2 when ELF cannot be checked.  Python 3.6+, readelf (binutils).
"""

import os
import re
import subprocess
import sys

PROVIDER = "python"

# usdtmon's families of markers (module/usdtmon: its FAMILIES, checked
# against this table by tests/test_usdt.py): (name, bit, markers).  It
# fires a family where the interpreter lacks the family's first marker.
MODULE_FAMILIES = (
    ("function", 1, ("function__entry", "function__return")),
    ("cfunction", 2, ("cfunction__entry", "cfunction__return")),
    ("line", 4, ("line",)),
    ("gc", 8, ("gc__start", "gc__done")),
)


def module_markers(own):
    """The markers usdtmon fires by default beside an interpreter whose own
    markers are own: those of the families it lacks."""
    return [m for _, _, markers in MODULE_FAMILIES if markers[0] not in own for m in markers]

# Marker sites by the bytes at the note's address.  "nop;nop10": what the
# patches give x86-64 builds; "nop": sys/sdt.h's own.
SHAPES = {"nop;nop10": bytes.fromhex("90" "662e0f1f840000000000"), "nop": bytes.fromhex("90")}
SHIPPED = "nop;nop10"


class Error(Exception):
    pass


class Site(object):
    """One note: a marker's site (address), semaphore (address, 0 for
    none) and arguments (SystemTap's argument specifiers)."""

    def __init__(self, provider, name, address, semaphore, arguments):
        self.provider = provider
        self.name = name
        self.address = address
        self.semaphore = semaphore
        self.arguments = arguments

    def __repr__(self):
        return "Site(%s:%s at %#x, semaphore=%#x, args=%r)" % (
            self.provider, self.name, self.address, self.semaphore, self.arguments)


def _readelf(*args):
    proc = subprocess.run(["readelf"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if proc.returncode != 0:
        raise Error("%s: not an ELF file readelf can read: %s"
                    % (args[-1], proc.stderr.strip()))
    return proc.stdout


def read_sites(elf, provider=PROVIDER):
    """The provider's sites in elf (every provider's if provider is None)."""
    sites, current = [], None
    for line in _readelf("--notes", "--wide", elf).splitlines():
        line = line.strip()
        m = re.search(r"Provider:\s*(\S+)", line)
        if m:
            current = dict(provider=m.group(1), arguments=[])
            sites.append(current)
            continue
        if current is None:
            continue
        m = re.match(r"Name:\s*(\S+)", line)
        if m:
            current["name"] = m.group(1)
        m = re.match(r"Location:\s*(0x[0-9a-fA-F]+)", line)
        if m:
            current["address"] = int(m.group(1), 16)
        m = re.search(r"Semaphore:\s*(0x[0-9a-fA-F]+)", line)
        if m:
            current["semaphore"] = int(m.group(1), 16)
        # A marker without arguments prints no Arguments line.
        m = re.match(r"Arguments:\s*(.*)", line)
        if m:
            current["arguments"] = m.group(1).split()
    return [Site(s["provider"], s.get("name"), s.get("address", 0), s.get("semaphore", 0),
                 s["arguments"])
            for s in sites if provider is None or s["provider"] == provider]


def markers(elf):
    """{marker: argument count} of the python provider's sites in elf."""
    found = {}
    for s in read_sites(elf):
        if found.setdefault(s.name, len(s.arguments)) != len(s.arguments):
            raise Error("%s: marker %s has sites with %d and %d arguments"
                        % (elf, s.name, found[s.name], len(s.arguments)))
    return found


def marker_elf(python, root=""):
    """The ELF file holding a Python's markers: the interpreter itself, or
    for an --enable-shared build the libpython it links (ldd).  With root,
    python is a path in that root directory (a chroot's), and so is what
    it links: the file is found there (the root's library directories) and
    returned as this system sees it."""
    if not os.path.isfile(root + python):
        raise Error("%s: no such file" % (root + python))
    python = os.path.realpath(root + python)
    if read_sites(python):
        return python
    lib = None
    if not root:
        proc = subprocess.run(["ldd", python], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True)
        m = re.search(r"libpython\S*\s+=>\s+(/\S+)", proc.stdout)
        lib = m and os.path.realpath(m.group(1))
    else:
        m = re.search(r"\(NEEDED\)\s+Shared library: \[(libpython[^]]+)\]",
                      _readelf("-d", python))
        for directory in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
                          "/usr/lib", "/lib"):
            if m and os.path.exists(root + directory + "/" + m.group(1)):
                lib = os.path.realpath(root + directory + "/" + m.group(1))
                break
    if lib:
        if read_sites(lib):
            return lib
        raise Error("%s: no python markers, nor in %s (built without "
                    "--with-dtrace?)" % (python, lib))
    raise Error("%s: no python markers (not a Python built --with-dtrace, "
                "and it links no libpython)" % python)


def load_segments(elf):
    """[(address, file offset, size in the file)] of elf's PT_LOAD segments."""
    segments = []
    for line in _readelf("-lW", elf).splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            segments.append((int(f[2], 16), int(f[1], 16), int(f[4], 16)))
    if not segments:
        raise Error("%s has no PT_LOAD segment" % elf)
    return segments


def file_offset(elf, address, segments=None):
    """Where in elf's file the byte at address (as linked) is."""
    for vaddr, offset, size in segments or load_segments(elf):
        if vaddr <= address < vaddr + size:
            return address - vaddr + offset
    raise Error("%s: %#x is in no segment's file contents" % (elf, address))


def is_x86_64(elf):
    return re.search(r"^\s*Machine:\s+Advanced Micro Devices X86-64$",
                     _readelf("-h", elf), re.M) is not None


def site_problems(elf, shape=SHIPPED):
    """A line for each of elf's sites (every provider's) whose code is not
    SHAPES[shape]; Error if elf is not x86-64 or has no sites."""
    if not is_x86_64(elf):
        raise Error("%s is not an x86-64 ELF file" % elf)
    sites = read_sites(elf, provider=None)
    if not sites:
        raise Error("%s has no marker sites" % elf)
    code, segments = SHAPES[shape], load_segments(elf)
    with open(elf, "rb") as f:
        data = f.read()
    out = []
    for s in sorted(sites, key=lambda s: s.address):
        off = file_offset(elf, s.address, segments)
        if data[off:off + len(code)] != code:
            out.append("%s at %#x: %s, not %s" % (s.name, s.address,
                                                  data[off:off + len(code)].hex(" "), code.hex(" ")))
    return out


# The markers whose semaphores the 3.x interpreters' RESUME_CHECK reads
# as one 8-byte word (markers/pycore_dtrace.h, _PyDTrace_ResumeStale()): they
# must be adjacent, 2 bytes each, in this order (probes.d's).
SEMAPHORE_WORD = ("function__entry", "cfunction__entry", "line", "function__return")


def semaphore_word_problem(sites):
    """Why the semaphores of SEMAPHORE_WORD in sites are not one word as
    RESUME_CHECK reads it, or None."""
    where = {}
    for site in sites:
        if site.name in SEMAPHORE_WORD and site.semaphore:
            where.setdefault(site.name, set()).add(site.semaphore)
    missing = [m for m in SEMAPHORE_WORD if len(where.get(m, ())) != 1]
    if missing:
        return "no single semaphore for %s" % ", ".join(missing)
    first = min(where[SEMAPHORE_WORD[0]])
    got = [min(where[m]) - first for m in SEMAPHORE_WORD]
    if got != [0, 2, 4, 6]:
        return "the semaphores of %s lie at %s from the first, not 0, 2, 4, 6" % (
            ", ".join(SEMAPHORE_WORD), ", ".join("%+d" % g for g in got))
    return None


def parse_declarations(path):
    """{marker: [(C type, parameter name)]} for the provider in a .d file."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    probes = {}
    for name, args in re.findall(r"\bprobe\s+(\w+)\s*\(([^)]*)\)\s*;", text):
        args = args.strip()
        params = []
        for arg in ([] if args in ("", "void") else args.split(",")):
            m = re.match(r"(.*?)(\w+)$", arg.strip())
            params.append((m.group(1).strip(), m.group(2)))
        probes[name] = params
    if not probes:
        raise Error("%s declares no probes" % path)
    return probes


def parse_probes(path):
    """{marker: argument count} for the provider in a .d file."""
    return dict((name, len(params)) for name, params in parse_declarations(path).items())


# x86-64 registers as SystemTap's argument specifiers name them (any width)
# -> the kernel's probe-event names.
_REGISTERS = dict(
    [(r, r[1:]) for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "rip")]
    + [(r[1:] if r[0] == "r" else r, r[1:]) for r in ("eax", "ebx", "ecx", "edx", "esi",
                                                        "edi", "ebp", "esp")]
    + [("e" + r[1:], r[1:]) for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp")]
    + [("r%d%s" % (n, w), "r%d" % n) for n in range(8, 16) for w in ("", "d", "w", "b")])


def fetcharg(spec, string=False):
    """A site's argument specifier (SystemTap's: 8@%rax, -4@%r12d, 8@16(%rsp),
    -4@$0) as a kernel uprobe-event fetch argument: the value with its
    type, or with string, the C string it points to.  x86-64 only."""
    m = re.match(r"^(-?)(\d+)@(.*)$", spec)
    if not m:
        raise Error("argument specifier %r: not SIZE@WHERE" % spec)
    signed, size, where = m.group(1) == "-", int(m.group(2)), m.group(3)
    m = re.match(r"^%(\w+)$", where)
    if m and m.group(1) in _REGISTERS:
        value = "%" + _REGISTERS[m.group(1)]
    else:
        m = re.match(r"^(-?\d*)\(%(\w+)\)$", where)
        if m and m.group(2) in _REGISTERS:
            value = "+%s(%%%s)" % (m.group(1) or "0", _REGISTERS[m.group(2)])
        elif re.match(r"^\$-?\d+$", where):
            value = "\\" + where[1:]
        else:
            raise Error("argument specifier %r: no kernel fetch argument for it" % spec)
    if string:
        return "+0(%s):string" % value
    return "%s:%s%d" % (value, "s" if signed else "u", size * 8)


def uprobe_events(elf, declarations, marker, group=PROVIDER):
    """The lines for the kernel's uprobe_events that define marker's sites in
    elf as trace events GROUP/MARKER (GROUP/MARKER_N for a second site...),
    each with the site's semaphore as its reference counter (the kernel
    then sets it, as for any consumer) and probes.d's parameters by name:
    char pointers as strings, integers with their width and sign."""
    lines = []
    sites = [s for s in read_sites(elf) if s.name == marker]
    if not sites:
        raise Error("%s has no site of marker %s" % (elf, marker))
    segments = load_segments(elf)
    for i, site in enumerate(sites):
        params = declarations[marker]
        if len(params) != len(site.arguments):
            raise Error("%s: %s passes %d arguments, probes.d declares %d"
                        % (elf, marker, len(site.arguments), len(params)))
        args = ["%s=%s" % (name, fetcharg(spec, string="char" in ctype and "*" in ctype))
                for (ctype, name), spec in zip(params, site.arguments)]
        where = "%s:%#x" % (elf, file_offset(elf, site.address, segments))
        if site.semaphore:
            where += "(%#x)" % file_offset(elf, site.semaphore, segments)
        lines.append(" ".join(["p:%s/%s%s" % (group, marker, "_%d" % i if i else ""), where]
                              + args))
    return lines


def parse_claims(path):
    """The marker names listed in a claims file (# starts a comment)."""
    claims = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                claims.append(line)
    return claims


def check(probes, claims, sites):
    """A list of (marker, ok, message), one per marker of probes.d."""
    results = []
    ours = [s for s in sites if s.provider == PROVIDER]
    for marker in claims:
        if marker not in probes:
            results.append((marker, False, "claimed but not declared in probes.d"))
    for marker, nargs in sorted(probes.items()):
        at = [s for s in ours if s.name == marker]
        if marker not in claims:
            if at:
                results.append((marker, False, "%d site(s) but not claimed" % len(at)))
            else:
                results.append((marker, True, "not claimed, no site"))
            continue
        if not at:
            results.append((marker, False, "claimed but no site in .note.stapsdt"))
            continue
        bad = [s for s in at if len(s.arguments) != nargs]
        if bad:
            results.append((marker, False, "%d site(s) with %s arguments, probes.d says %d"
                            % (len(bad), sorted({len(s.arguments) for s in bad}), nargs)))
            continue
        if any(not s.semaphore for s in at):
            results.append((marker, False, "a site without a semaphore"))
            continue
        results.append((marker, True, "%d site(s), %d argument(s), semaphore %#x"
                        % (len(at), nargs, at[0].semaphore)))
    return results


def main(argv):
    try:
        if argv[1:2] == ["markers"] and len(argv) == 5:
            results = check(parse_probes(argv[2]), parse_claims(argv[3]), read_sites(argv[4]))
            for marker, ok, message in results:
                print("%-4s %-28s %s" % ("ok" if ok else "FAIL", marker, message))
            return 0 if all(ok for _, ok, _ in results) else 1
        if argv[1:2] == ["uprobe"] and len(argv) == 5:
            for line in uprobe_events(argv[3], parse_declarations(argv[2]), argv[4]):
                print(line)
            return 0
        if argv[1:2] == ["elf"] and len(argv) >= 3:
            elf = marker_elf(argv[2])
            missing = sorted(set(argv[3:]) - set(markers(elf)))
            if missing:
                raise Error("%s has no %s marker: not a python-systemtap build"
                            % (elf, ", ".join(missing)))
            print(elf)
            return 0
        if argv[1:2] == ["sites"] and len(argv) == 3:
            elf = argv[2]
            bad = site_problems(elf)
            for line in bad:
                print("usdt.py: %s: %s" % (elf, line))
            if not bad:
                print("usdt.py: %s: %d sites, every one a 1-byte nop then a 10-byte nop"
                      % (elf, len(read_sites(elf, provider=None))))
            return 1 if bad else 0
    except (Error, OSError) as e:
        print("usdt.py: %s" % e, file=sys.stderr)
        return 2
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
