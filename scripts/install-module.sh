#!/usr/bin/env bash
# Install usdtmon (module/usdtmon) into a Python's site-packages, with a
# SystemTap tapset for that Python: run by make install-module.
#
# usage: install-module.sh [--destdir=DIR] [--tapsetdir=DIR] [--site-wide] PYTHON
#
# PYTHON is a CPython 3.13 or later with its headers (its -dev package).
# usdtmon is built for it (scripts/build-module.sh) and installed as
# PLATLIB/usdtmon, PLATLIB being PYTHON's sysconfig "platlib" path
# (/usr/local/lib/python3.13/dist-packages for Debian's python3.13).  The
# tapset, TAPSETDIR/usdtmon-pythonX.Y-BITS.stp (scripts/gen-tapset
# --module), probes the installed shared object for the markers usdtmon
# fires on PYTHON and PYTHON's own ELF for the others; beside it goes our
# python.stp in place of SystemTap's, whose python.function.* definitions
# break every script that names them where no libpython of its glob has
# markers (scripts/install.sh python-stp, as make install does).  --site-wide also
# installs PLATLIB/usdtmon-site.pth, which imports usdtmon in every process
# of PYTHON (USDTMON=0 in a process's environment turns it off there).
# Everything goes under DESTDIR if given.  Prints each file it installed.
set -euo pipefail

die() { printf 'install-module: %s\n' "$*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
destdir='' tapsetdir=/usr/share/systemtap/tapset site_wide=0
while [ $# -gt 0 ]; do
    case $1 in
        --destdir=*) destdir=${1#*=} ;;
        --tapsetdir=*) tapsetdir=${1#*=} ;;
        --site-wide) site_wide=1 ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
    shift
done
[ $# -eq 1 ] || die "usage: install-module.sh [--destdir=DIR] [--tapsetdir=DIR] [--site-wide] PYTHON"
python=$1
command -v "$python" >/dev/null || die "no Python $python"
python=$(command -v "$python")
case $python in
    /*) ;;
    *) python=$(cd "$(dirname "$python")" && pwd)/${python##*/} ;;
esac

platlib=$("$python" -c 'import sysconfig; print(sysconfig.get_path("platlib"))') ||
    die "$python cannot tell its site-packages directory"
case $platlib in /*) ;; *) die "$python names no absolute platlib: $platlib" ;; esac

scratch=$(mktemp -d "${TMPDIR:-/tmp}/install-module.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
"$repo/scripts/build-module.sh" "$python" "$scratch/lib" >/dev/null
so=$(cd "$scratch/lib/usdtmon" && ls _core*.so)

# The tapset names the paths the files will have once installed.
mkdir -p "$scratch/tapset"
"$python" -E -s "$repo/scripts/gen-tapset" --module "$scratch/lib/usdtmon/$so" \
    --module-path "$platlib/usdtmon/$so" "$repo/tapset/libpython.stp.in" "$python" \
    "$scratch/tapset" >/dev/null || die "gen-tapset failed for $python"

mkdir -p "$destdir$platlib" "$destdir$tapsetdir"
rm -rf "$destdir$platlib/usdtmon"
cp -R "$scratch/lib/usdtmon" "$destdir$platlib/usdtmon"
for f in "$destdir$platlib"/usdtmon/*; do
    printf 'installed %s\n' "$f"
done
for f in "$scratch"/tapset/*.stp; do
    install -m 644 "$f" "$destdir$tapsetdir/"
    printf 'installed %s\n' "$destdir$tapsetdir/${f##*/}"
done
"$repo/scripts/install.sh" ${destdir:+--destdir="$destdir"} --tapsetdir="$tapsetdir" python-stp
printf 'installed %s\n' "$destdir$tapsetdir/python.stp"
if [ "$site_wide" = 1 ]; then
    # A .pth line that starts with "import" runs at every start-up of
    # PYTHON; usdtmon reads USDTMON itself (USDTMON=0: it does nothing).
    printf 'import usdtmon\n' > "$destdir$platlib/usdtmon-site.pth"
    printf 'installed %s (every process of %s loads usdtmon; USDTMON=0 turns it off)\n' \
        "$destdir$platlib/usdtmon-site.pth" "$python"
fi
