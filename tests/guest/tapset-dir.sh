#!/usr/bin/env bash
# A copy of SystemTap's tapset directory as `make install` leaves it, for
# stap run with SYSTEMTAP_TAPSET pointing at it.
#
#   tapset-dir.sh PYTHON_STP OUT
#
# Why: SystemTap's own python.stp defines python.function.entry/return over
# /usr/lib*/libpython*.so*; stap reads its own tapset directory before any
# -I directory and fails on that definition here (no such library), so
# `stap -I build/tapset` cannot use our aliases.  `make install` replaces
# that file by ours (tapset/python.stp, PYTHON_STP); this copy does the same
# without touching the system.  A copy already in OUT with the same contents
# is left as it is (stap's cache keys on the tapsets' time stamps).  Prints
# what it did, one line.
set -euo pipefail

die() { echo "tapset-dir.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: tapset-dir.sh PYTHON_STP OUT"
python_stp=$1 out=$2
tapsets=${SYSTEMTAP_TAPSET:-/usr/share/systemtap/tapset}
[ -d "$tapsets" ] || die "$tapsets is missing (apt-get install systemtap-common)"
[ -f "$python_stp" ] || die "$python_stp is missing"

rm -rf "$out.tmp"
mkdir -p "$(dirname "$out")"
cp -a "$tapsets" "$out.tmp"
cp -p "$python_stp" "$out.tmp/python.stp"
if [ -d "$out" ] && diff -r -q "$out" "$out.tmp" >/dev/null; then
    rm -rf "$out.tmp"
else
    rm -rf "$out"
    mv "$out.tmp" "$out"
fi
echo "$tapsets with python.stp replaced by $python_stp"
