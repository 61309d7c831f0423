#!/usr/bin/env bash
# Unpack a pristine CPython tarball, apply a patch series and install the
# provider, probes.d, as the tree's Include/pydtrace.d, and for a 3.x series
# the marker C that its patches include (markers/: pycore_dtrace.h as
# Include/internal/pycore_dtrace.h, dtrace_markers.c.h as
# Python/dtrace_markers.c.h).
#
# usage: prepare-source.sh TARBALL PATCHDIR PROBES_D DESTDIR [MARKERS_DIR]
#
# The patches of PATCHDIR apply in file-name order (NNNN-*.patch).  DESTDIR
# is replaced only when everything succeeded.
set -euo pipefail

die() { printf 'prepare-source: %s\n' "$*" >&2; exit 1; }

[ $# -eq 4 ] || [ $# -eq 5 ] ||
    die "usage: prepare-source.sh TARBALL PATCHDIR PROBES_D DESTDIR [MARKERS_DIR]"
tarball=$1 patchdir=$2 probes=$3 dest=$4 markers=${5:-}

[ -r "$tarball" ] || die "no tarball $tarball (run 'make sources')"
[ -d "$patchdir" ] || die "no patch directory $patchdir"
[ -r "$probes" ] || die "no provider $probes"
if [ -n "$markers" ]; then
    for f in pycore_dtrace.h dtrace_markers.c.h; do
        [ -r "$markers/$f" ] || die "no marker C $markers/$f"
    done
fi

tmp="$dest.tmp"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
tar -xf "$tarball" -C "$tmp" --strip-components=1

shopt -s nullglob
for p in "$patchdir"/*.patch; do
    printf 'applying %s\n' "$p"
    patch -d "$tmp" -p1 --forward --quiet --no-backup-if-mismatch < "$p" ||
        die "$p does not apply to $tarball"
done
cp "$probes" "$tmp/Include/pydtrace.d"
if [ -n "$markers" ]; then
    [ -d "$tmp/Include/internal" ] || die "$tarball has no Include/internal: not a CPython 3 tree"
    cp "$markers/pycore_dtrace.h" "$tmp/Include/internal/pycore_dtrace.h"
    cp "$markers/dtrace_markers.c.h" "$tmp/Python/dtrace_markers.c.h"
fi

rm -rf "$dest"
mv "$tmp" "$dest"
