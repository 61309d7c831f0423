#!/usr/bin/env bash
# Unpack a pristine CPython tarball, apply a patch series and install the
# provider, probes.d, as the tree's Include/pydtrace.d, and the marker C
# its patches include (markers/), each file where the tree wants it:
#   pydtrace_sites.h     Include/pydtrace_sites.h (every series)
#   pycore_dtrace.h      Include/internal/pycore_dtrace.h (3.x)
#   dtrace_markers.c.h   Python/dtrace_markers.c.h (3.x)
#
# usage: prepare-source.sh TARBALL PATCHDIR PROBES_D DESTDIR [MARKER_FILE...]
#
# The patches of PATCHDIR apply in file-name order (NNNN-*.patch).  DESTDIR
# is replaced only when everything succeeded.
set -euo pipefail

die() { printf 'prepare-source: %s\n' "$*" >&2; exit 1; }

[ $# -ge 4 ] ||
    die "usage: prepare-source.sh TARBALL PATCHDIR PROBES_D DESTDIR [MARKER_FILE...]"
tarball=$1 patchdir=$2 probes=$3 dest=$4
shift 4

[ -r "$tarball" ] || die "no tarball $tarball (run 'make sources')"
[ -d "$patchdir" ] || die "no patch directory $patchdir"
[ -r "$probes" ] || die "no provider $probes"
# Where each marker C file goes in the tree.
place() {
    case ${1##*/} in
        pydtrace_sites.h) echo Include/pydtrace_sites.h ;;
        pycore_dtrace.h) echo Include/internal/pycore_dtrace.h ;;
        dtrace_markers.c.h) echo Python/dtrace_markers.c.h ;;
        *) return 1 ;;
    esac
}
for f in "$@"; do
    place "$f" >/dev/null || die "$f: not a marker C file this script knows"
    [ -r "$f" ] || die "no marker C $f"
done

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
for f in "$@"; do
    rel=$(place "$f")
    [ -d "$tmp/${rel%/*}" ] || die "$tarball has no ${rel%/*}/: $f is for another series"
    cp "$f" "$tmp/$rel"
done

rm -rf "$dest"
mv "$tmp" "$dest"
