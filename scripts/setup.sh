#!/usr/bin/env bash
# Make this machine ready for a job: the Debian packages it needs
# (scripts/packages), and the kernel's tracing file system.
#
# usage: setup.sh JOB        JOB: build, demo, check or bench
#
# Packages: what is installed already is left alone; the rest is installed
# with apt-get when running as root on a dpkg system, else setup stops with
# the list to install.  SETUP=no in the environment skips this step (for a
# machine whose equivalents were installed by other means).
# tracefs (demo, check, bench): mounted on /sys/kernel/tracing when running
# as root and neither it nor debugfs's tracing directory is there.
set -euo pipefail

die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: setup.sh build|demo|check|bench"
job=$1
case $job in
    build) jobs="build" ;;
    demo) jobs="build demo" ;;
    check) jobs="build demo check" ;;
    bench) jobs="build demo bench" ;;
    *) die "unknown job '$job' (build, demo, check or bench)" ;;
esac
[ "${SETUP:-}" = no ] && { echo "setup: SETUP=no, not checking packages or tracefs"; exit 0; }

list=$(dirname "$0")/packages
wanted=()
while read -r pkg pkgjob _; do
    case $pkg in ''|'#'*) continue ;; esac
    for j in $jobs; do
        [ "$pkgjob" = "$j" ] && wanted+=("$pkg")
    done
done < "$list"
[ ${#wanted[@]} -gt 0 ] || die "$list names no package for $job"

if ! command -v dpkg-query >/dev/null; then
    die "not a dpkg system: install the equivalents of these Debian packages, then run again with SETUP=no:
    ${wanted[*]}"
fi
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q ' installed$' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        die "make $job needs these packages; as root: apt-get install ${missing[*]}"
    fi
    echo "setup: installing ${missing[*]}"
    log=$(mktemp /tmp/setup-apt.XXXXXX.log)
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -q --no-install-recommends "${missing[@]}"; } > "$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "apt-get failed; full log in $log"
    fi
    rm -f "$log"
fi

if [ "$job" != build ] && [ ! -e /sys/kernel/tracing/uprobe_events ] &&
   [ ! -e /sys/kernel/debug/tracing/uprobe_events ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "setup: mount -t tracefs nodev /sys/kernel/tracing"
        mount -t tracefs nodev /sys/kernel/tracing || die "cannot mount tracefs on /sys/kernel/tracing"
    else
        echo "setup: tracefs is not mounted and this is not root: tracing needs root" >&2
    fi
fi
