#!/usr/bin/env bash
# The guest's initramfs: busybox-static, the kernel modules a 9p root over
# virtio needs (with their dependencies, in load order), and tests/guest/init.
#
#   make-initramfs.sh KERNEL_ROOT RELEASE INIT OUT
#
# KERNEL_ROOT is an unpacked linux-image package (fetch-kernel.sh): its
# lib/modules/RELEASE holds plain .ko files and no modules.dep, so the
# dependencies come from `modinfo -F depends`.  A module built into the
# kernel (modules.builtin) needs nothing.  OUT is a gzipped newc cpio.
set -euo pipefail

die() { echo "make-initramfs.sh: $*" >&2; exit 1; }

[ $# -eq 4 ] || die "usage: make-initramfs.sh KERNEL_ROOT RELEASE INIT OUT"
kroot=$1 release=$2 init=$3 out=$4
moddir=$kroot/lib/modules/$release
[ -d "$moddir" ] || die "$moddir is missing"
busybox=$(command -v busybox) || die "busybox is missing (apt-get install busybox-static)"
# The initramfs has no libc: busybox must be the static one.
if ldd "$busybox" >/dev/null 2>&1; then
    die "$busybox is not static (apt-get install busybox-static)"
fi
command -v cpio >/dev/null || die "cpio is missing (apt-get install cpio)"
command -v modinfo >/dev/null || die "modinfo is missing (apt-get install kmod)"

# What the guest needs: virtio over PCI, and the 9p file system over virtio.
WANTED="virtio_pci 9pnet_virtio 9p"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/lib/modules" "$work/proc" "$work/sys" "$work/dev" "$work/newroot"
cp "$busybox" "$work/bin/busybox"
ln -s busybox "$work/bin/sh"
install -m 0755 "$init" "$work/init"

# name -> .ko path (module names treat - and _ alike)
ko_of() {
    local pattern
    pattern=$(printf '%s' "$1" | sed 's/[-_]/[-_]/g')
    find "$moddir/kernel" -regex ".*/${pattern}\.ko\(\.[gx]z\|\.zst\)?" -print -quit
}

builtin() {
    local pattern
    pattern=$(printf '%s' "$1" | sed 's/[-_]/[-_]/g')
    [ -f "$moddir/modules.builtin" ] && grep -q "/${pattern}\.ko$" "$moddir/modules.builtin"
}

declare -A seen=()
order=()
add() {
    local name=$1 ko dep
    [ -z "${seen[$name]:-}" ] || return 0
    seen[$name]=1
    ko=$(ko_of "$name")
    if [ -z "$ko" ]; then
        builtin "$name" && return 0
        die "module $name is neither in $moddir nor built in"
    fi
    for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
        add "$dep"
    done
    order+=("$ko")
}
for name in $WANTED; do
    add "$name"
done

: > "$work/lib/modules/load"
for ko in "${order[@]}"; do
    base=$(basename "$ko")
    case $base in
        *.ko.xz) xz -dc "$ko" > "$work/lib/modules/${base%.xz}"; base=${base%.xz} ;;
        *.ko.gz) gzip -dc "$ko" > "$work/lib/modules/${base%.gz}"; base=${base%.gz} ;;
        *.ko.zst) zstd -qdc "$ko" > "$work/lib/modules/${base%.zst}"; base=${base%.zst} ;;
        *) cp "$ko" "$work/lib/modules/$base" ;;
    esac
    echo "$base" >> "$work/lib/modules/load"
done

(cd "$work" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -9 > "$out.tmp"
mv "$out.tmp" "$out"
