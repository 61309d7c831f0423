#!/usr/bin/env bash
# Configure and build one prepared CPython source tree out of tree.
#
# usage: build-python.sh SRCDIR OBJDIR [CONFIGURE_ARGUMENT...]
#
# OBJDIR is rebuilt from scratch: configure's cache must never outlive a
# change of patches or flags.  JOBS (default: the number of processors)
# sets make's parallelism.
set -euo pipefail

die() { printf 'build-python: %s\n' "$*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: build-python.sh SRCDIR OBJDIR [CONFIGURE_ARGUMENT...]"
src=$(cd "$1" && pwd) || die "no source tree $1"
obj=$2
shift 2

[ -x "$src/configure" ] || die "$src is not a CPython source tree"
case " $* " in
    *" --with-dtrace "*)
        command -v dtrace >/dev/null ||
            die "--with-dtrace needs dtrace(1): run 'make setup' as root (or apt-get install systemtap-sdt-dev)" ;;
esac
command -v cc >/dev/null || die "no C compiler: run 'make setup' as root (or apt-get install build-essential)"

rm -rf "$obj"
mkdir -p "$obj"
cd "$obj"
log=$PWD/build.log
printf 'configuring %s in %s: %s\n' "${src##*/}" "$obj" "$*"
if ! "$src/configure" "$@" > "$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "configure failed; full log in $log"
fi
printf 'building %s (log: %s)\n' "${src##*/}" "$log"
# Its own jobs, not a share of a parallel make's that runs this script.
if ! env -u MAKEFLAGS -u MFLAGS make -j"${JOBS:-$(nproc)}" >> "$log" 2>&1; then
    grep -E 'error|Error' "$log" | tail -n 30 >&2
    die "make failed; full log in $log"
fi
[ -x python ] || die "make succeeded but left no python binary in $obj"
