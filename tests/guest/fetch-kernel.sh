#!/usr/bin/env bash
# The guest's kernel: the Debian kernel image whose headers are installed, so
# that modules compiled on the host against those headers load in the guest.
#
#   fetch-kernel.sh DIR
#
# Takes the newest installed linux-headers-6.1.0-N-amd64 (or the release
# named by GUEST_KERNEL_RELEASE), downloads linux-image-<release> of the
# same package version with `apt-get download` into DIR/debs and unpacks it
# with dpkg-deb -x into DIR/<release>.  Nothing is installed: the host's
# /boot and /lib/modules are never touched.  A kernel already unpacked is
# reused.  Prints, one a line:
#
#   release=6.1.0-56-amd64
#   version=6.1.192-2
#   headers=/usr/src/linux-headers-6.1.0-56-amd64
#   root=DIR/6.1.0-56-amd64       (holds boot/vmlinuz-* and lib/modules/*)
set -euo pipefail

die() { echo "fetch-kernel.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: fetch-kernel.sh DIR"
dir=$1

release=${GUEST_KERNEL_RELEASE:-}
if [ -z "$release" ]; then
    # dpkg-query exits 1 when no package matches (none installed): an empty
    # list, which the check below reports.  Any other failure is an error.
    status=0
    installed=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' 'linux-headers-6.1.0-*-amd64' 2>/dev/null) \
        || status=$?
    [ "$status" -le 1 ] || die "dpkg-query failed (exit status $status) listing linux-headers-6.1.0-*-amd64"
    release=$(printf '%s\n' "$installed" \
        | awk '$1 == "ii" { sub(/^linux-headers-/, "", $2); print $2 }' | sort -V | tail -n 1)
fi
[ -n "$release" ] || die "no linux-headers-6.1.0-N-amd64 is installed (apt-get install linux-headers-amd64)"

headers=/usr/src/linux-headers-$release
[ -f "$headers/Makefile" ] || die "$headers is missing (apt-get install linux-headers-$release)"
version=$(dpkg-query -W -f '${Version}' "linux-headers-$release") \
    || die "linux-headers-$release is not installed"

root=$dir/$release
stamp=$root/.unpacked-$version
if [ ! -e "$stamp" ]; then
    mkdir -p "$dir/debs"
    image=linux-image-$release
    deb=$(find "$dir/debs" -maxdepth 1 -name "${image}_${version//:/%3a}_amd64.deb" -print -quit)
    if [ -z "$deb" ]; then
        # apt-get download writes into the current directory.
        (cd "$dir/debs" && apt-get download -q "$image=$version" >&2) \
            || die "cannot download $image=$version (apt-get update first?)"
        deb=$(find "$dir/debs" -maxdepth 1 -name "${image}_*_amd64.deb" -print -quit)
        [ -n "$deb" ] || die "apt-get download left no $image .deb in $dir/debs"
    fi
    rm -rf "$root" "$root.tmp"
    mkdir -p "$root.tmp"
    dpkg-deb -x "$deb" "$root.tmp"
    [ -f "$root.tmp/boot/vmlinuz-$release" ] || die "$deb holds no boot/vmlinuz-$release"
    [ -d "$root.tmp/lib/modules/$release" ] || die "$deb holds no lib/modules/$release"
    touch "$root.tmp/.unpacked-$version"
    mv "$root.tmp" "$root"
fi

echo "release=$release"
echo "version=$version"
echo "headers=$headers"
echo "root=$root"
