#!/usr/bin/env bash
# Unpack a pristine CPython tarball, apply a patch series and install the
# provider, probes.d, as the tree's Include/pydtrace.d.
#
# usage: prepare-source.sh TARBALL PATCHDIR PROBES_D DESTDIR
#
# The patches of PATCHDIR apply in file-name order (NNNN-*.patch).  DESTDIR
# is replaced only when everything succeeded.
set -euo pipefail

die() { printf 'prepare-source: %s\n' "$*" >&2; exit 1; }

[ $# -eq 4 ] || die "usage: prepare-source.sh TARBALL PATCHDIR PROBES_D DESTDIR"
tarball=$1 patchdir=$2 probes=$3 dest=$4

[ -r "$tarball" ] || die "no tarball $tarball (run 'make sources')"
[ -d "$patchdir" ] || die "no patch directory $patchdir"
[ -r "$probes" ] || die "no provider $probes"

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

rm -rf "$dest"
mv "$tmp" "$dest"
