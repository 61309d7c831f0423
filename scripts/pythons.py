#!/usr/bin/env python3
"""The table of Pythons (the file `pythons` at the top of the checkout):
its one reader, for the Makefile, bench/bench.py and the tests.

    pythons.py make
        The table as make variables (the Makefile includes them):
        PYTHONS, PATCHED, STOCK, ANCHORS (names); for each NAME:
        version.NAME, tarball-name.NAME, sha256.NAME, debian.NAME,
        revision.NAME (empty for "-"), role.NAME, variants.NAME (a list),
        url.NAME (python.org's), marker-c.NAME (the files of markers/ a
        patched series' tree gets: marker_c()).
"""

import collections
import os
import re
import sys

TABLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pythons")

Python = collections.namedtuple(
    "Python", "name version sha256 debian revision role variants tarball url")
ROLES = ("patched", "stock", "anchor")
VARIANTS = ("shared", "ft", "jit")


class Error(Exception):
    pass


def tarball_of(version):
    """python.org's tarball of version: .tgz for 2.x and 3.11, else .tar.xz
    (as Debian's source packages keep them)."""
    major_minor = tuple(int(p) for p in version.split(".")[:2])
    return "Python-%s.%s" % (version, "tgz" if major_minor <= (3, 11) else "tar.xz")


def url_of(version, tarball):
    release = re.match(r"\d+\.\d+\.\d+", version).group(0)
    return "https://www.python.org/ftp/python/%s/%s" % (release, tarball)


def read(path=TABLE):
    """[Python], in the table's order."""
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 7:
                raise Error("%s:%d: %d fields, not 7" % (path, number, len(words)))
            name, version, sha256, debian, revision, role, variants = words
            if not re.match(r"^python\d+\.\d+$", name):
                raise Error("%s:%d: name %r is not pythonX.Y" % (path, number, name))
            if not name.endswith(".".join(version.split(".")[:2])) or \
                    not re.match(r"^\d+\.\d+\.\d+((a|b|rc)\d+)?$", version):
                raise Error("%s:%d: version %r is not %s's" % (path, number, version, name))
            if not re.match(r"^[0-9a-f]{64}$", sha256):
                raise Error("%s:%d: %r is not a sha256" % (path, number, sha256))
            if role not in ROLES:
                raise Error("%s:%d: role %r is not one of %s" % (path, number, role, ROLES))
            variants = [] if variants == "-" else variants.split(",")
            if not set(variants) <= set(VARIANTS):
                raise Error("%s:%d: variants %r: not of %s" % (path, number, variants, VARIANTS))
            tarball = tarball_of(version)
            rows.append(Python(name, version, sha256, debian, "" if revision == "-" else revision,
                               role, variants, tarball, url_of(version, tarball)))
    if len(set(p.name for p in rows)) != len(rows):
        raise Error("%s: a name appears twice" % path)
    return rows


# The marker C of markers/ (scripts/prepare-source.sh installs each where
# the tree wants it): the site convention for every patched series, the
# arguments and the hooks' helpers for the 3.x ones.
MARKER_SITE = "markers/pydtrace_sites.h"
MARKER_C = (MARKER_SITE, "markers/pycore_dtrace.h", "markers/dtrace_markers.c.h")


def marker_c(python):
    """The files of markers/ (relative to the checkout) that a patched
    series' tree gets."""
    if python.role != "patched":
        return []
    return list(MARKER_C) if python.version.startswith("3.") else [MARKER_SITE]


def by_name(path=TABLE):
    return collections.OrderedDict((p.name, p) for p in read(path))


def make_variables(pythons):
    lines = ["PYTHONS := " + " ".join(p.name for p in pythons)]
    for role, var in (("patched", "PATCHED"), ("stock", "STOCK"), ("anchor", "ANCHORS")):
        lines.append("%s := %s" % (var, " ".join(p.name for p in pythons if p.role == role)))
    for p in pythons:
        for field, value in (("version", p.version), ("tarball-name", p.tarball),
                             ("sha256", p.sha256), ("debian", p.debian),
                             ("revision", p.revision), ("role", p.role),
                             ("variants", " ".join(p.variants)), ("url", p.url),
                             ("marker-c", " ".join(marker_c(p)))):
            lines.append("%s.%s := %s" % (field, p.name, value))
    return "\n".join(lines) + "\n"


def main(argv):
    if argv[1:] != ["make"]:
        sys.stderr.write("usage: pythons.py make\n")
        return 2
    try:
        sys.stdout.write(make_variables(read()))
    except (Error, OSError) as e:
        sys.stderr.write("pythons.py: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
