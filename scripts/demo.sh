#!/usr/bin/env bash
# The main job's last step: trace the bundled workload with bpftrace and
# print its live call tree, once per interpreter given.
#
# usage: demo.sh PYTHON...
set -euo pipefail

die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || die "usage: demo.sh PYTHON..."
command -v bpftrace >/dev/null || die "bpftrace is not installed (apt-get install bpftrace)"
[ "$(id -u)" -eq 0 ] || die "bpftrace needs root: run 'make demo' as root"
[ -e /sys/kernel/tracing/uprobe_events ] || [ -e /sys/kernel/debug/tracing/uprobe_events ] ||
    die "tracefs is not mounted: mount -t tracefs nodev /sys/kernel/tracing"

for python in "$@"; do
    [ -x "$python" ] || die "no interpreter $python (run 'make build')"
    real=$(readlink -f "$python")
    # The markers live in libpython for --enable-shared builds.
    elf=$(ldd "$real" | sed -n 's/^[[:space:]]*libpython[^ ]* => \([^ ]*\).*/\1/p')
    elf=${elf:-$real}
    readelf -n "$elf" | grep -q 'Name: function__entry' ||
        die "$elf has no function__entry marker: not a patched interpreter"
    printf '\n== %s: call tree of examples/workload.py (bpftrace, examples/bpftrace/calltree.bt)\n' "$python"
    # -S: no site module, so the tree shows the workload rather than start-up.
    bpftrace "$top/examples/bpftrace/calltree.bt" "$elf" \
        -c "$python -S $top/examples/workload.py" 2> >(grep -v RLIMIT_MEMLOCK >&2)
done
