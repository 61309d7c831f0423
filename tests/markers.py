#!/usr/bin/env python3
"""Check the static markers an ELF file carries against probes.d.

    markers.py PROBES_D CLAIMS ELF

PROBES_D is the provider; CLAIMS lists, one a line, the markers this build
claims to fire (patches/<python>/markers).  Every claimed marker must have
at least one site in ELF's .note.stapsdt, each site with the argument count
probes.d declares and a semaphore; no other marker of the provider may have
a site.  Exit status 0 when all holds, 1 otherwise, with a line per marker.

The spec's %check runs this on the built interpreters; the test suite
imports it.
"""

import re
import subprocess
import sys

PROVIDER = "python"


def parse_probes(path):
    """{marker: argument count} for the python provider in a .d file."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    probes = {}
    for name, args in re.findall(r"\bprobe\s+(\w+)\s*\(([^)]*)\)\s*;", text):
        args = args.strip()
        probes[name] = 0 if args in ("", "void") else args.count(",") + 1
    if not probes:
        raise ValueError("%s declares no probes" % path)
    return probes


def parse_claims(path):
    """The marker names listed in a claims file (# starts a comment)."""
    claims = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                claims.append(line)
    return claims


class Site(object):
    def __init__(self, provider, name, semaphore, arguments):
        self.provider = provider
        self.name = name
        self.semaphore = semaphore
        self.arguments = arguments

    def __repr__(self):
        return "Site(%s:%s, semaphore=%#x, args=%r)" % (
            self.provider, self.name, self.semaphore, self.arguments)


def read_sites(elf):
    """Every SystemTap SDT note of an ELF file, as Site objects."""
    out = subprocess.run(["readelf", "--notes", "--wide", elf],
                         check=True, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    sites = []
    provider = name = semaphore = None
    for line in out.splitlines():
        line = line.strip()
        m = re.search(r"Provider:\s*(\S+)", line)
        if m:
            provider, name, semaphore = m.group(1), None, None
            continue
        m = re.match(r"Name:\s*(\S+)", line)
        if m:
            name = m.group(1)
            continue
        m = re.search(r"Semaphore:\s*(0x[0-9a-fA-F]+)", line)
        if m:
            semaphore = int(m.group(1), 16)
            continue
        m = re.match(r"Arguments:\s*(.*)", line)
        if m and provider is not None:
            sites.append(Site(provider, name, semaphore, m.group(1).split()))
            provider = None
    # A site whose probe has no arguments prints no Arguments line.
    return sites


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
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    probes = parse_probes(argv[1])
    claims = parse_claims(argv[2])
    results = check(probes, claims, read_sites(argv[3]))
    for marker, ok, message in results:
        print("%-4s %-28s %s" % ("ok" if ok else "FAIL", marker, message))
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
