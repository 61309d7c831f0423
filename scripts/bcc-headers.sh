#!/bin/bash
# Usage: bcc-headers.sh OUTDIR
#
# A kernel header tree that bcc (BCC_KERNEL_SOURCE=OUTDIR) can compile its
# BPF programs against when the running kernel has no headers of its own:
# Debian's installed linux-headers-VERSION-amd64 merged over its
# linux-headers-VERSION-common into OUTDIR, as symbolic links (cp -rs).
# Neither directory alone works: -common lacks the configuration and the
# generated headers, -amd64 the rest.  Nothing outside OUTDIR is changed.
#
# OUTDIR is rebuilt only when it is missing or stale (other headers
# installed, or the installed ones changed); the directory is printed.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
case $out in
    /*) ;;
    *) out=$PWD/$out ;;
esac
stamp_name=.bcc-headers

# The newest installed linux-headers-*-amd64 that has its -common beside it.
amd64=
common=
while read -r dir; do
    if [ -f "$dir/.config" ] && [ -f "$dir/include/generated/autoconf.h" ] &&
       [ -d "${dir%-amd64}-common/include" ]; then
        amd64=$dir
        common=${dir%-amd64}-common
    fi
done < <(find /usr/src -mindepth 1 -maxdepth 1 -type d -name 'linux-headers-*-amd64' | sort -V)
if [ -z "$amd64" ]; then
    echo "$0: no linux-headers-VERSION-amd64 with its -common under /usr/src" \
         "(apt-get install linux-headers-amd64)" >&2
    exit 1
fi

# What the tree is made of: the two directories and their key files' sizes
# and times (a package upgrade rewrites them).
want=$(printf 'common %s\namd64 %s\n' "$common" "$amd64"
       stat -c '%n %s %Y' "$common/Makefile" "$amd64/.config" "$amd64/Makefile" \
            "$amd64/include/generated/autoconf.h")

if [ -f "$out/$stamp_name" ] && [ "$(cat "$out/$stamp_name")" = "$want" ]; then
    echo "$out"
    exit 0
fi
if [ -e "$out" ] && [ ! -f "$out/$stamp_name" ] &&
   ! { [ -d "$out" ] && [ -z "$(ls -A "$out")" ]; }; then
    echo "$0: $out exists, is not empty and was not made by this script:" \
         "not replacing it" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$out.new.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
cp -rsT "$common" "$tmp"
cp -rsfT "$amd64" "$tmp"
printf '%s\n' "$want" > "$tmp/$stamp_name"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
