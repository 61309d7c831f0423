#!/usr/bin/env bash
# Put one pristine CPython tarball into the sources directory, checked
# against its pinned sha256.
#
# usage: fetch-source.sh TARBALL SHA256 DEBIAN_SOURCE_PACKAGE URL DESTDIR [DEBIAN_VERSION]
#
# DEBIAN_VERSION, if given, is the Debian revision tried first (a pin such
# as 3.11.2-6+deb12u8); the others of the same upstream version follow.
# Order: the tarball is already in DESTDIR; else the upstream tarball of a
# Debian source package of that version (Debian's orig tarballs are
# python.org's, byte for byte); else that orig tarball by its path in the
# archive's pool, which some releases keep although no index lists them
# (python3.14_3.14.7.orig.tar.xz); else URL.  Debian's archive is the one
# the system's apt sources name (its address is never written here), reached
# through a private apt configuration in a scratch directory: the system's
# apt sources and lists are never touched.  Nothing half-written is left in
# DESTDIR: a download lands there only after its checksum matched.
set -euo pipefail

die() { printf 'fetch-source: %s\n' "$*" >&2; exit 1; }

[ $# -eq 5 ] || [ $# -eq 6 ] ||
    die "usage: fetch-source.sh TARBALL SHA256 DEBIAN_SOURCE_PACKAGE URL DESTDIR [DEBIAN_VERSION]"
tarball=$1 sha256=$2 debpkg=$3 url=$4 destdir=$5 debversion=${6:-}

# Python-3.13.15.tar.xz -> 3.13.15
version=${tarball#Python-}
version=${version%.tar.xz}
version=${version%.tgz}
# Debian spells a pre-release with a tilde: 3.15.0rc2 -> 3.15.0~rc2.
debian_upstream=$(printf '%s' "$version" | sed -E 's/([0-9])(a|b|rc)([0-9]+)$/\1~\2\3/')

sum_of() { sha256sum "$1" | cut -d' ' -f1; }

check() {
    local file=$1 what=$2 got
    got=$(sum_of "$file")
    if [ "$got" != "$sha256" ]; then
        printf 'fetch-source: checksum mismatch for %s (%s)\n  expected sha256 %s\n  got      sha256 %s\n' \
            "$tarball" "$what" "$sha256" "$got" >&2
        return 1
    fi
}

mkdir -p "$destdir"
if [ -e "$destdir/$tarball" ]; then
    check "$destdir/$tarball" "$destdir/$tarball" ||
        die "$destdir/$tarball is corrupt or not the pinned release: remove it and run 'make sources' again"
    printf '%s: present, sha256 OK\n' "$tarball"
    exit 0
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/fetch-source.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# Install a candidate into DESTDIR if its checksum matches.
take() {
    local file=$1 what=$2
    check "$file" "$what" || return 1
    # Same file system as DESTDIR, so the final rename is atomic.
    cp "$file" "$destdir/.$tarball.part"
    mv "$destdir/.$tarball.part" "$destdir/$tarball"
    printf '%s: from %s, sha256 OK\n' "$tarball" "$what"
    exit 0
}

# The address of the Debian archive in the system's apt sources (the index
# targets apt knows, labelled Debian: not debian-security nor a third party).
debian_archive() {
    # shellcheck disable=SC2016 # apt's format fields, not shell expansions
    apt-get indextargets --format '$(LABEL) $(REPO_URI)' 2>/dev/null |
        awk '$1 == "Debian" { sub("/$", "", $2); print $2; exit }'
}

from_debian() {
    command -v apt-get >/dev/null || { echo "  apt-get not available" >&2; return 1; }
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -r "$keyring" ] || { echo "  $keyring missing" >&2; return 1; }
    local archive
    archive=$(debian_archive)
    [ -n "$archive" ] ||
        { echo "  the system's apt sources name no Debian archive (apt-get update first?)" >&2; return 1; }
    local root=$scratch/apt suite
    mkdir -p "$root/lists/partial" "$root/cache/archives/partial" "$root/dl"
    : > "$root/sources.list"
    for suite in bullseye bookworm trixie sid; do
        printf 'deb-src [signed-by=%s] %s %s main\n' \
            "$keyring" "$archive" "$suite" >> "$root/sources.list"
    done
    local -a opts=(
        -o "Dir::Etc::SourceList=$root/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$root/lists"
        -o "Dir::Cache=$root/cache"
        -o "Dir::Cache::pkgcache="
        -o "Dir::Cache::srcpkgcache="
        -o "APT::Sandbox::User=root"
    )
    apt-get "${opts[@]}" -qq update >"$root/update.log" 2>&1 ||
        { echo "  apt-get update of the private deb-src lists failed:" >&2; tail -3 "$root/update.log" >&2; return 1; }
    # Every Debian revision of this upstream version, newest first; some
    # pool files are gone (404), so try them in turn.
    local v
    for v in $debversion $(apt-cache "${opts[@]}" showsrc "$debpkg" 2>/dev/null |
               sed -n 's/^Version: //p' | grep -E "^${debian_upstream//./\\.}-" | sort -rV | uniq |
               grep -vxF -e "${debversion:-/}"); do
        rm -f "$root/dl/"*
        if (cd "$root/dl" && apt-get "${opts[@]}" -qq source --download-only --tar-only "$debpkg=$v") \
                >"$root/source.log" 2>&1; then
            local orig
            orig=$(find "$root/dl" -name "${debpkg}_${debian_upstream}.orig.tar.*" | head -n 1)
            [ -n "$orig" ] && take "$orig" "Debian source package $debpkg=$v"
        else
            printf '  %s=%s: %s\n' "$debpkg" "$v" "$(grep -m1 '^E:' "$root/source.log" || echo failed)" >&2
        fi
    done
    echo "  no Debian source package $debpkg with upstream version $version could be downloaded" >&2
    # The orig tarball by its pool path, checked by apt's own download
    # method (the system's proxy settings apply) against the pinned sum.
    local ext name
    for ext in xz gz; do
        name=${debpkg}_${debian_upstream}.orig.tar.$ext
        if /usr/lib/apt/apt-helper "${opts[@]}" download-file \
               "$archive/pool/main/${debpkg:0:1}/$debpkg/$name" "$root/dl/$name" "SHA256:$sha256" \
               >"$root/pool.log" 2>&1; then
            take "$root/dl/$name" "$archive/pool/main/${debpkg:0:1}/$debpkg/$name"
        fi
    done
    echo "  not in the archive's pool either: $debpkg/${debpkg}_${debian_upstream}.orig.tar.{xz,gz}" >&2
    return 1
}

from_url() {
    local out=$scratch/$tarball
    if command -v curl >/dev/null; then
        curl -fsSL --retry 2 -o "$out" "$url" || return 1
    elif command -v wget >/dev/null; then
        wget -q -O "$out" "$url" || return 1
    else
        echo "  neither curl nor wget available" >&2
        return 1
    fi
    take "$out" "$url"
}

printf '%s: trying Debian source packages (%s)\n' "$tarball" "$debpkg"
from_debian || true
printf '%s: trying %s\n' "$tarball" "$url"
from_url || true
die "could not get $tarball from Debian or $url; put it into $destdir by hand (sha256 $sha256)"
