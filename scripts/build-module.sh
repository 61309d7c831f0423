#!/usr/bin/env bash
# Build usdtmon (module/usdtmon) for one Python: its C core against that
# Python's headers, with the markers of probes.d and the marker C of
# markers/, and the package beside it.
#
# usage: build-module.sh PYTHON DESTDIR
#
# DESTDIR/usdtmon is the package, importable with DESTDIR on sys.path;
# DESTDIR/usdtmon/_core<EXT_SUFFIX> holds the markers.  PYTHON is a
# CPython 3.13+ with its headers (a build tree's interpreter, or one with
# its -dev package).
set -euo pipefail

die() { printf 'build-module: %s\n' "$*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: build-module.sh PYTHON DESTDIR"
python=$1 dest=$2
top=$(cd "$(dirname "$0")/.." && pwd)

command -v "$python" >/dev/null || [ -x "$python" ] || die "no Python $python"
command -v dtrace >/dev/null ||
    die "dtrace(1) is missing: run 'make setup' as root (or apt-get install systemtap-sdt-dev)"
command -v cc >/dev/null || die "no C compiler: apt-get install build-essential"

# include dir, platform include dir, extension suffix, version check
# (no process substitution: a chroot may have no /dev/fd)
config=$("$python" - <<'PY'
import sys, sysconfig
print(sysconfig.get_path("include"), sysconfig.get_path("platinclude"),
      sysconfig.get_config_var("EXT_SUFFIX"),
      int(sys.implementation.name == "cpython" and sys.version_info >= (3, 13)))
PY
) || die "$python cannot tell its configuration"
read -r include platinclude suffix ok <<< "$config"
[ "$ok" = 1 ] || die "$python is not CPython 3.13 or later"
[ -r "$include/Python.h" ] ||
    die "$python has no headers ($include/Python.h): install its -dev package"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The markers: the header with CPython's PyDTrace_ names, and the
# semaphores, hidden so that nothing outside the module binds to them.
dtrace -h -s "$top/probes.d" -o "$tmp/raw.h" >/dev/null
sed 's/PYTHON_/PyDTrace_/g' "$tmp/raw.h" > "$tmp/probes.h"
CFLAGS="-fPIC -fvisibility=hidden" dtrace -G -s "$top/probes.d" -o "$tmp/probes.o" >/dev/null

mkdir -p "$dest/usdtmon.tmp"
cc -shared -fPIC -O2 -g -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter \
    -Wno-missing-field-initializers -Werror=implicit-function-declaration \
    -I"$tmp" -I"$top/markers" -I"$include" -I"$platinclude" \
    -o "$dest/usdtmon.tmp/_core$suffix" "$top/module/usdtmon/_core.c" "$tmp/probes.o" \
    -Wl,-Bsymbolic -lpthread ||
    die "the C core did not build"
cp "$top"/module/usdtmon/*.py "$dest/usdtmon.tmp/"
rm -rf "$dest/usdtmon"
mv "$dest/usdtmon.tmp" "$dest/usdtmon"
printf 'build-module: %s\n' "$dest/usdtmon/_core$suffix"
