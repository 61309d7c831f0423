#!/usr/bin/env bash
# Boots the test guest once under qemu (TCG) and lets it run the jobs of a
# run directory (run-jobs.sh), within a hard time limit.
#
#   boot.sh KERNEL INITRD RUN UP_LIMIT LIMIT CONSOLE
#
# The guest sees the host's root read-only and RUN writable, both over 9p at
# their host paths; its serial console goes to the file CONSOLE.  qemu is
# killed if the guest's init has not said it is up within UP_LIMIT seconds,
# and in any case after LIMIT seconds.  Exit status 0 when the guest got
# through the job list and powered off; otherwise 1, with the reason and the
# console's tail on stderr.
set -euo pipefail

die() { echo "boot.sh: $*" >&2; exit 1; }

[ $# -eq 6 ] || die "usage: boot.sh KERNEL INITRD RUN UP_LIMIT LIMIT CONSOLE"
kernel=$1 initrd=$2 run=$3 up_limit=$4 limit=$5 console=$6
runner=$(cd "$(dirname "$0")" && pwd)/run-jobs.sh
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
case $run$runner in
    *[[:space:]]*) die "paths with white space cannot go on the kernel command line: $run $runner" ;;
esac

tail_console() {
    echo "--- last 40 lines of the guest console ($console) ---" >&2
    # Best effort: the caller exits 1 next, whatever tail says.
    tail -n 40 "$console" >&2 || true
    echo "---" >&2
}

rm -f "$run/finished" "$console"
touch "$console"
# KVM is present on this machine kind but does not run guests: TCG only.
# -smp 1: on two host cores a second vCPU only slows TCG down.
timeout -k 10 "$limit" qemu-system-x86_64 \
    -accel tcg -m 1024 -smp 1 -nodefaults -display none -no-reboot -monitor none \
    -serial "file:$console" \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 pst_run=$run pst_runner=$runner" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$run,mount_tag=results,security_model=none,multidevs=remap" \
    < /dev/null &
qemu=$!
# Killed ourselves (a test's time-out): no qemu left behind.  qemu has
# usually exited by then, so kill failing is the normal case; the script's
# own exit status stands.
trap 'kill "$qemu" 2>/dev/null || true' EXIT

# init prints "guest: ... up" once the host root is mounted (init).
up=
for _ in $(seq "$up_limit"); do
    if grep -q '^guest: .* up' "$console"; then
        up=yes
        break
    fi
    kill -0 "$qemu" 2>/dev/null || break
    sleep 1
done
if [ -z "$up" ] && grep -q '^guest: .* up' "$console"; then
    up=yes
fi
if [ -z "$up" ] && kill -0 "$qemu" 2>/dev/null; then
    kill "$qemu"    # timeout passes the signal on to qemu
    wait "$qemu" || true    # non-zero: we killed it; the failure is reported below
    echo "boot.sh: the guest did not come up within $up_limit s: killed" >&2
    tail_console
    exit 1
fi
status=0
wait "$qemu" || status=$?

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "boot.sh: the guest did not finish within its time limit of $limit s: killed" >&2
    tail_console
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "boot.sh: qemu failed (exit status $status)" >&2
    tail_console
    exit 1
fi
if [ ! -e "$run/finished" ]; then
    echo "boot.sh: the guest powered off without finishing its jobs" >&2
    tail_console
    exit 1
fi
