#!/usr/bin/env bash
# Stage every Source and Patch of the spec into rpmbuild's sources
# directory, under the names the spec gives them.
#
# usage: rpm-sources.sh SPEC TARBALL_DIR DESTDIR
#
# Where each comes from:
#   Python-*.tgz, Python-*.tar.xz   TARBALL_DIR (make sources)
#   SERIES-NNNN-NAME.patch          patches/SERIES/NNNN-NAME.patch
#   SERIES.markers                  patches/SERIES/markers
#   anything else                   the one file of that name in the
#                                   checkout's ., scripts, tapset, markers, examples
#                                   or examples/bpftrace
# DESTDIR is emptied first, so it holds exactly the spec's sources.  A name
# the spec lists and the checkout lacks (or has twice) is an error.
set -euo pipefail

die() { printf 'rpm-sources: %s\n' "$*" >&2; exit 1; }

[ $# -eq 3 ] || die "usage: rpm-sources.sh SPEC TARBALL_DIR DESTDIR"
spec=$1 tarballs=$2 dest=$3
top=$(cd "$(dirname "$0")/.." && pwd)
command -v rpmspec >/dev/null || die "rpmspec is not installed (apt-get install rpm, or dnf install rpm-build)"
[ -r "$spec" ] || die "no spec $spec"

names=$(rpmspec -q --srpm --qf '[%{SOURCE}\n][%{PATCH}\n]' "$spec") ||
    die "rpmspec cannot read $spec"
[ -n "$names" ] || die "$spec lists no sources"

origin() {
    local name=$1 found=() dir
    case $name in
        Python-*.tgz|Python-*.tar.xz)
            printf '%s\n' "$tarballs/$name"
            return ;;
        python[0-9]*.[0-9]*-[0-9][0-9][0-9][0-9]-*.patch)
            printf '%s\n' "$top/patches/${name%%-[0-9][0-9][0-9][0-9]-*}/${name#python*.*-}"
            return ;;
        python[0-9]*.[0-9]*.markers)
            printf '%s\n' "$top/patches/${name%.markers}/markers"
            return ;;
    esac
    for dir in . scripts tapset markers examples examples/bpftrace docs; do
        [ -f "$top/$dir/$name" ] && found+=("$top/$dir/$name")
    done
    [ ${#found[@]} -eq 1 ] ||
        die "$name: ${#found[@]} files of that name in the checkout (${found[*]:-none}), the spec needs one"
    printf '%s\n' "${found[0]}"
}

rm -rf "$dest"
mkdir -p "$dest"
while IFS= read -r name; do
    src=$(origin "$name")
    case $name in
        Python-*)
            [ -f "$src" ] || die "$name is not in $tarballs (run 'make sources')"
            # Large, and never written to: a link where possible.
            ln -f "$src" "$dest/$name" 2>/dev/null || cp -p "$src" "$dest/$name" ;;
        *)
            [ -f "$src" ] || die "$name: $src is missing"
            cp -p "$src" "$dest/$name" ;;
    esac
done <<< "$names"
printf 'rpm-sources: %d sources and patches of %s in %s\n' "$(wc -l <<< "$names")" "$spec" "$dest"
