#!/usr/bin/env bash
# Install python-systemtap under a prefix, or undo it: run by make install,
# make install-tapsets and make uninstall (see the Makefile's "tapsets").
#
# usage: install.sh [OPTION...] install SERIES...
#        install.sh [OPTION...] install-tapsets SERIES...
#        install.sh [OPTION...] uninstall
#        install.sh [OPTION...] python-stp
# options: --destdir=DIR    stage under DIR (default: none, the real system)
#          --prefix=DIR     where the Pythons go (default /usr/local)
#          --tapsetdir=DIR  SystemTap's tapset directory
#          --build=DIR      the builds (default: build/ of this checkout)
#          --linkage=static|shared   install-tapsets: which builds' tapsets
#
# install: for each SERIES (python2.7, python3.13 ...), CPython's own
# `make altinstall` run in BUILD/obj/SERIES with prefix=PREFIX (so only
# versioned names: PREFIX/bin/pythonX.Y, never python or python3), without
# the regression test suite; the tapset probing PREFIX/bin/pythonX.Y, read
# from the installed interpreter's ELF notes; tapset/python.stp in place of
# SystemTap's (see python-stp); examples/ as PREFIX/share/python-systemtap/
# examples.  Everything is staged in a scratch directory first, so that a
# failed step installs nothing and the manifest is exact:
#   PREFIX/share/python-systemtap/installed-files   every file installed
#                                                    (itself included)
#   PREFIX/share/python-systemtap/installed-dirs     the directories the
#                                                    install created
# as paths without DESTDIR, one a line, merged with those of earlier installs.
# install-tapsets: the tapsets of the BUILD/bin/SERIES[-shared] builds
# (probing PREFIX/bin/pythonX.Y, or PREFIX/lib/libpythonX.Y.so.1.0 for the
# -shared ones) and python.stp alone, recorded in the same manifest.
# uninstall: removes every file the manifest lists, then the directories
# the installs created that are now empty, under PREFIX/lib/pythonX.Y,
# PREFIX/include/pythonX.Y and PREFIX/share/python-systemtap only; and, on
# the real system, gives SystemTap its python.stp back.
# python-stp: tapset/python.stp alone, unrecorded (make install PYTHON=P).
set -euo pipefail

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
say() { printf 'install.sh: %s\n' "$*"; }

repo=$(cd "$(dirname "$0")/.." && pwd)
destdir='' prefix=/usr/local tapsetdir=/usr/share/systemtap/tapset
build=$repo/build linkage=static
while [ $# -gt 0 ]; do
    case $1 in
        --destdir=*) destdir=${1#*=} ;;
        --prefix=*) prefix=${1#*=} ;;
        --tapsetdir=*) tapsetdir=${1#*=} ;;
        --build=*) build=${1#*=} ;;
        --linkage=*) linkage=${1#*=} ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
    shift
done
[ $# -ge 1 ] || die "usage: install.sh [OPTION...] install|install-tapsets|uninstall|python-stp [SERIES...]"
command=$1
shift

# An absolute, lexically normal path (no symbolic link resolved).
normal() {
    case $2 in
        /*) realpath -m -s -- "$2" ;;
        *) die "$1 must be an absolute path: '$2'" ;;
    esac
}
prefix=$(normal PREFIX "$prefix")
tapsetdir=$(normal tapsetdir "$tapsetdir")
# CPython's Makefile takes the prefix unquoted, and sed below too.
case $prefix in
    /) die "PREFIX=/ is not supported (PREFIX/bin, PREFIX/lib)" ;;
    *[!A-Za-z0-9._/+-]*) die "PREFIX may only hold letters, digits and ._/+-: '$prefix'" ;;
esac
[ -z "$destdir" ] || destdir=$(realpath -m -s -- "$destdir")
[ "$destdir" != / ] || destdir=
case $linkage in
    static) suffix= ;;
    shared) suffix=-shared ;;
    *) die "LINKAGE must be static or shared, not '$linkage'" ;;
esac

share=$prefix/share/python-systemtap
manifest=$share/installed-files
dirs_file=$share/installed-dirs

# Our python.stp replaces SystemTap's (tapset/python.stp says why).  On a
# dpkg system, installing for real (no DESTDIR), dpkg-divert first moves
# SystemTap's file to python.stp.systemtap (kept, and no longer read: not
# *.stp), so that SystemTap's upgrades do not bring it back over ours.
divert_systemtaps_python_stp() {
    local stp=$tapsetdir/python.stp
    if [ -z "$destdir" ] && command -v dpkg-divert >/dev/null 2>&1 &&
        dpkg-query -S "$stp" >/dev/null 2>&1; then
        echo "dpkg-divert --local --rename --divert $stp.systemtap --add $stp"
        dpkg-divert --local --rename --divert "$stp.systemtap" --add "$stp"
    elif [ -z "$destdir" ] && [ -f "$stp" ] && [ ! -e "$stp.systemtap" ] &&
        ! cmp -s "$stp" "$repo/tapset/python.stp"; then
        # No package manager to ask: keep SystemTap's file aside by hand,
        # for make uninstall to put back.
        echo "mv $stp $stp.systemtap"
        mv "$stp" "$stp.systemtap"
    fi
}

# The reverse, once our python.stp is gone: only a local diversion of STP
# to STP.systemtap, which is what divert_systemtaps_python_stp makes.
undivert_systemtaps_python_stp() {
    local stp=$1
    [ -z "$destdir" ] || return 0
    if ! command -v dpkg-divert >/dev/null 2>&1 || [ -z "$(dpkg-divert --listpackage "$stp")" ]; then
        # Kept aside by hand (see above): put it back.
        if [ -f "$stp.systemtap" ] && [ ! -e "$stp" ]; then
            echo "mv $stp.systemtap $stp"
            mv "$stp.systemtap" "$stp"
        fi
        return 0
    fi
    [ "$(dpkg-divert --listpackage "$stp")" = LOCAL ] || return 0
    [ "$(dpkg-divert --truename "$stp")" = "$stp.systemtap" ] || return 0
    echo "dpkg-divert --local --rename --remove $stp"
    dpkg-divert --local --rename --remove "$stp"
}

if [ "$command" = python-stp ]; then
    [ $# -eq 0 ] || die "python-stp takes no SERIES"
    divert_systemtaps_python_stp
    install -D -m 644 "$repo/tapset/python.stp" "$destdir$tapsetdir/python.stp"
    exit 0
fi

# --- uninstall ---------------------------------------------------------------

if [ "$command" = uninstall ]; then
    [ $# -eq 0 ] || die "uninstall takes no SERIES: it removes what the manifest lists"
    [ -f "$destdir$manifest" ] ||
        die "no manifest $destdir$manifest: nothing was installed with PREFIX=$prefix${destdir:+ DESTDIR=$destdir} (give make uninstall the PREFIX and DESTDIR make install had)"
    mapfile -t files < "$destdir$manifest"
    created=()
    [ ! -f "$destdir$dirs_file" ] || mapfile -t created < "$destdir$dirs_file"
    for f in "${files[@]}" "${created[@]}"; do
        case $f in
            *//*|*/./*|*/../*|*/.|*/..|*/) die "$destdir$manifest: not a normal path: '$f'" ;;
            /?*) ;;
            *) die "$destdir$manifest: not an absolute path: '$f'" ;;
        esac
    done
    gone=0 doomed=() stps=()
    for f in "${files[@]}"; do
        p=$destdir$f
        if [ -L "$p" ] || { [ -e "$p" ] && [ ! -d "$p" ]; }; then
            doomed+=("$p")
        elif [ -d "$p" ]; then
            say "not removing $p: a directory now" >&2
        else
            gone=$((gone + 1))
        fi
        [ "${f##*/}" != python.stp ] || stps+=("$f")
    done
    [ ${#doomed[@]} -eq 0 ] || printf '%s\0' "${doomed[@]}" | xargs -0 rm -f --
    for stp in "${stps[@]}"; do
        undivert_systemtaps_python_stp "$stp"
    done
    # The directories the installs created, deepest first, if now empty.
    # A directory that still holds someone's file stays (and is named).
    kept=()
    while IFS= read -r d; do
        case $d in
            "$prefix"/lib/python[0-9]*|"$prefix"/include/python[0-9]*|"$share"|"$share"/*) ;;
            *) continue ;;
        esac
        p=$destdir$d
        if [ ! -d "$p" ] || [ -L "$p" ]; then continue; fi
        rmdir -- "$p" 2>/dev/null || kept+=("$p")
    done < <(printf '%s\n' "${created[@]}" | LC_ALL=C sort -r -u)
    say "removed ${#doomed[@]} files${destdir:+ from $destdir}$([ $gone -eq 0 ] || echo " ($gone listed were already gone)")"
    for p in "${kept[@]}"; do
        case $p in
            "$destdir$prefix"/lib/python[0-9]*/*|"$destdir$prefix"/include/python[0-9]*/*) ;;
            *) say "kept $p: it holds files make install did not install" ;;
        esac
    done
    exit 0
fi

# --- install, install-tapsets ------------------------------------------------

case $command in
    install) full=yes ;;
    install-tapsets) full= ;;
    *) die "unknown command '$command' (install, install-tapsets, uninstall, python-stp)" ;;
esac
[ $# -ge 1 ] || die "$command: which series? (python2.7 python3.13 ...)"
# The -shared builds find libpython through an rpath into build/obj: their
# interpreters cannot be installed without relinking (a rebuild).
[ -z "$full" ] || [ "$linkage" = static ] ||
    die "install: LINKAGE=shared: the -shared builds are linked with -rpath $build/obj/...: installed, they would run this checkout's libpython; install the static builds (make install), or only the -shared builds' tapsets (make install-tapsets LINKAGE=shared)"

started=$SECONDS
stage=$(mktemp -d "${TMPDIR:-/tmp}/pst-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -m 755 "$root"
# sed takes it as a pattern below.
case $root in *[!A-Za-z0-9._/+-]*) die "TMPDIR may only hold letters, digits and ._/+-: '$stage'" ;; esac
gen_tapset() {   # PYTHON OUTDIR: the tapset's path
    "$repo/scripts/gen-tapset" --prefix "$prefix" "$repo/tapset/libpython.stp.in" "$1" "$2"
}

for series in "$@"; do
    case $series in
        python[0-9]*.[0-9]*) version=${series#python} ;;
        *) die "not a series: '$series' (python2.7, python3.13 ...)" ;;
    esac
    if [ -z "$full" ]; then
        [ -e "$build/bin/$series$suffix" ] || die "$build/bin/$series$suffix is missing: run make build${suffix}"
        gen_tapset "$build/bin/$series$suffix" "$root$tapsetdir" >/dev/null
        continue
    fi
    obj=$build/obj/$series
    if [ ! -f "$obj/.built" ] || [ ! -f "$obj/Makefile" ]; then die "$obj is not built: run make build"; fi
    build_prefix=$(sed -n 's/^prefix=[[:space:]]*//p' "$obj/Makefile")
    case $build_prefix in
        *[!A-Za-z0-9._/+-]*) die "$obj/Makefile: an unexpected prefix: '$build_prefix'" ;;
        /*) ;;
        *) die "$obj/Makefile: no prefix= line" ;;
    esac
    python_for_build=$(sed -n 's/^PYTHON_FOR_BUILD=[[:space:]]*//p' "$obj/Makefile")
    [ -n "$python_for_build" ] || die "$obj/Makefile: no PYTHON_FOR_BUILD= line"
    bindir=$root$prefix/bin
    log=$stage/$series.log
    say "$series: make altinstall prefix=$prefix"
    t0=$SECONDS
    # Only what the command line says reaches CPython's make (not our make's
    # MAKEFLAGS: its DESTDIR, its -j).  TEST_MODULES=no (3.x): no regression
    # test suite, as in the RPM packages.  The altinstall byte-compiles
    # what it installs (every optimization level, COMPILEALL_OPTS=-j0: all
    # cores), and the build's python -B writes no other byte code (2.7's
    # -O pass would leave a .pyo in the build tree).  The build is up to
    # date: altinstall's dependency on `all` rebuilds nothing.
    if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u PYTHONHOME -u PYTHONPATH \
            make -C "$obj" altinstall DESTDIR="$root" prefix="$prefix" TEST_MODULES=no \
            PYTHON_FOR_BUILD="$python_for_build -B" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "$series: make altinstall failed (in $obj)"
    fi
    [ -x "$bindir/$series" ] || die "$series: make altinstall installed no $prefix/bin/$series"
    if [ "$version" = 2.7 ]; then
        # 2.7's setup.py installs its scripts unversioned, where they would
        # shadow the system's (/usr/local/bin comes first in PATH: Debian's
        # 2to3 is python3's): versioned as in the RPM package; smtpd.py is
        # `python2.7 -m smtpd`.  Its test suite has no TEST_MODULES: dropped.
        for name in idle pydoc; do
            [ ! -e "$bindir/$name" ] || mv "$bindir/$name" "$bindir/$name$version"
        done
        [ ! -e "$bindir/2to3" ] || mv "$bindir/2to3" "$bindir/2to3-$version"
        rm -f "$bindir/smtpd.py"
        rm -rf "$root$prefix/lib/python$version/test"
    fi
    # Built for another prefix: the scripts (idle, pydoc, python-config)
    # were made for that one's interpreter.  The interpreter itself finds
    # its standard library relative to its own path, wherever installed.
    if [ "$build_prefix" != "$prefix" ]; then
        for f in "$bindir"/*; do
            if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
            IFS= read -r first < "$f" || :
            case $first in
                "#!$build_prefix/bin/python"*)
                    sed -i "1s|^#!$build_prefix/bin/|#!$prefix/bin/|" "$f" ;;
            esac
        done
    fi
    say "$series: $((SECONDS - t0)) s"
    # Its tapset, from the ELF notes of the interpreter installed; the
    # header names that file where it will be, not in the stage.
    tapset=$(gen_tapset "$bindir/$series" "$stage/tapsets")
    install -d -m 755 "$root$tapsetdir"
    sed "s|$root||g" "$tapset" > "$root$tapsetdir/${tapset##*/}"
    chmod 644 "$root$tapsetdir/${tapset##*/}"
done

# Nothing unversioned, whatever a CPython's altinstall does: a name without
# X.Y (python, python3, pydoc, idle, 2to3, python3.pc, python.1) could
# replace or shadow the system's.
for dir in "$root$prefix/bin" "$root$prefix/lib/pkgconfig" "$root$prefix/share/man/man1"; do
    [ -d "$dir" ] || continue
    for f in "$dir"/*; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        case ${f##*/} in
            *[0-9].[0-9]*) ;;
            *) say "not installing ${f#"$root"}: no version in its name"; rm -f "$f" ;;
        esac
    done
done

install -D -m 644 "$repo/tapset/python.stp" "$root$tapsetdir/python.stp"
if [ -n "$full" ]; then
    examples=$root$share/examples
    install -d -m 755 "$examples/bpftrace"
    install -m 644 "$repo"/examples/*.stp "$repo/examples/workload.py" "$examples/"
    install -m 644 "$repo"/examples/bpftrace/*.bt "$examples/bpftrace/"
fi

# The manifest: what this install brings, and what earlier ones brought.
install -d -m 755 "$root$share"
: > "$root$manifest"
: > "$root$dirs_file"
old=$stage/old-files
if [ -f "$destdir$manifest" ]; then cp "$destdir$manifest" "$old"; else : > "$old"; fi
find "$root" ! -type d -printf '/%P\n' | LC_ALL=C sort > "$stage/files"
find "$root" -mindepth 1 -type d -printf '/%P\n' | LC_ALL=C sort |
    while IFS= read -r d; do [ -d "$destdir$d" ] || printf '%s\n' "$d"; done > "$stage/dirs"
# Replaced files that no install of ours brought: say so (make uninstall
# will remove them too).  SystemTap's python.stp is meant to be.
LC_ALL=C sort -u "$old" | LC_ALL=C comm -23 "$stage/files" - |
    while IFS= read -r f; do
        [ "$f" = "$tapsetdir/python.stp" ] && continue
        if [ -e "$destdir$f" ] || [ -L "$destdir$f" ]; then printf '%s\n' "$f"; fi
    done > "$stage/replaced"
if [ -s "$stage/replaced" ]; then
    say "replacing $(wc -l < "$stage/replaced") files that make install did not install, e.g.:" >&2
    head -n 5 "$stage/replaced" | sed 's/^/    /' >&2
fi
LC_ALL=C sort -u "$old" "$stage/files" > "$root$manifest"
if [ -f "$destdir$dirs_file" ]; then
    LC_ALL=C sort -u "$destdir$dirs_file" "$stage/dirs" > "$root$dirs_file"
else
    cp "$stage/dirs" "$root$dirs_file"
fi
chmod 644 "$root$manifest" "$root$dirs_file"

divert_systemtaps_python_stp
# Into place: existing directories keep their owner and mode, and a
# symbolic link to a directory stays one; files are replaced (unlinked
# first: an interpreter running meanwhile keeps its old file).
if [ -n "$destdir" ]; then mkdir -p "$destdir"; fi
tar -C "$root" -cf - . | tar -C "${destdir:-/}" -xf - --no-overwrite-dir --keep-directory-symlink
say "installed $(wc -l < "$stage/files") files${destdir:+ under $destdir} in $((SECONDS - started)) s; their list: $manifest (make uninstall PREFIX=$prefix${destdir:+ DESTDIR=$destdir} removes them)"
