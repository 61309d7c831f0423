#!/usr/bin/env bash
# A private root of Debian 13 (trixie) with its own python3.13, the stock
# interpreter usdtmon serves, and what builds usdtmon there: its -dev
# package, gcc, dtrace(1), and pip with setuptools (usdtmon's pip install
# from the checkout, tests/test_module.py).  Nothing of the host changes: debootstrap writes
# only into ROOT, with the archive the host's apt uses.
#
# usage: trixie-root.sh ROOT
#
# ROOT is replaced only when everything succeeded.  MIRROR overrides the
# archive (default: the first URIs/deb line of the host's apt sources, or
# http://deb.debian.org/debian).
set -euo pipefail

die() { printf 'trixie-root: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: trixie-root.sh ROOT"
root=$1
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null ||
    die "debootstrap is missing: run 'make setup' as root (or apt-get install debootstrap)"

mirror=${MIRROR:-}
if [ -z "$mirror" ]; then
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
        [ -r "$f" ] || continue
        mirror=$(awk '$1 == "URIs:" && $2 ~ /\/debian\/?$/ { print $2; exit }
                      $1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' "$f")
        [ -n "$mirror" ] && break
    done
fi
mirror=${mirror:-http://deb.debian.org/debian}

tmp="$root.tmp"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
log="$root.log"
mkdir -p "$(dirname "$root")"
printf 'trixie-root: debootstrap trixie from %s into %s (log: %s)\n' "$mirror" "$root" "$log"
if ! debootstrap --variant=minbase \
        --include=python3.13,python3.13-dev,gcc,libc6-dev,systemtap-sdt-dev,python3-pip,python3-setuptools \
        trixie "$tmp" "$mirror" > "$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "debootstrap failed; full log in $log"
fi
[ -x "$tmp/usr/bin/python3.13" ] || die "the root has no /usr/bin/python3.13"
# shellcheck disable=SC2016  # dpkg-query's own ${fields}
chroot "$tmp" dpkg-query -W -f='trixie-root: ${Package} ${Version}\n' python3.13 libpython3.13

rm -rf "$root"
mv "$tmp" "$root"
