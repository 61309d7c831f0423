#!/usr/bin/env bash
# A copy of SystemTap's runtime that compiles against the guest kernel's
# headers, for `stap -R`.
#
#   fix-runtime.sh HEADERS OUT
#
# Three fixes.
#
# 1. task_work_cancel, for these headers only.  Debian's systemtap 4.8 runtime resolves task_work_cancel(task, func)
# by name and takes its type from the kernel's declaration.  Linux 6.1.0-56
# (a stable backport, 6.1.192) renamed that function task_work_cancel_func
# and gave the name task_work_cancel to a function taking a callback_head,
# so stp_task_work.c no longer compiles.  When the headers declare
# task_work_cancel_func, the copy's stp_task_work.c takes both the type and
# the kallsyms name from task_work_cancel_func.
#
# 2. Output lost after a "transport failure", on any kernel.  The runtime
# writes each probe's output to a relay sub-buffer (4 KiB) behind an 8-byte
# header (struct _stp_trace); when 1 to 8 bytes are left in the sub-buffer,
# _stp_data_write_reserve() hands them out, __stp_print_flush() finds no
# room for the header, counts a transport failure and leaves those bytes as
# garbage in the stream, and staprun, reading headers, loses its framing:
# everything after that point is gone.  Whether it strikes depends on the
# lengths of the lines printed (a timestamp's width is enough), so a script
# printing more than a few kilobytes loses its tail now and then.  The copy's
# relay_v2.c starts a new sub-buffer when no header fits in the current one,
# marking the rest as padding, which the reader skips.
#
# The installed runtime is never modified.  A copy already in OUT with the
# same contents is left as it is.  Prints what it did, one line.
set -euo pipefail

die() { echo "fix-runtime.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: fix-runtime.sh HEADERS OUT"
headers=$1 out=$2
runtime=${SYSTEMTAP_RUNTIME:-/usr/share/systemtap/runtime}
[ -f "$runtime/stp_task_work.c" ] || die "$runtime/stp_task_work.c is missing (apt-get install systemtap)"

# Debian's arch headers include the common ones: include/linux lives there.
# No include line (headers that are not split): only $headers is searched,
# and the loop below dies if task_work.h is in neither.
[ -f "$headers/Makefile" ] || die "$headers/Makefile is missing: not a kernel build tree"
common=$(sed -n 's|^include \(.*\)/Makefile$|\1|p' "$headers/Makefile")
task_work_h=
for dir in "$headers" ${common:+"$common"}; do
    if [ -f "$dir/include/linux/task_work.h" ]; then
        task_work_h=$dir/include/linux/task_work.h
        break
    fi
done
[ -n "$task_work_h" ] || die "no include/linux/task_work.h under $headers"

rm -rf "$out.tmp"
mkdir -p "$(dirname "$out")"
cp -a "$runtime" "$out.tmp"
# sed -i, then the original's time stamp: the same contents at the same time
# stamps, so that stap's cache, which keys on the runtime's files, keeps
# hitting across runs.
patch_file() {
    local file=$1
    shift
    sed -i "$@" "$out.tmp/$file"
    touch -r "$runtime/$file" "$out.tmp/$file"
}

if grep -q '\btask_work_cancel_func\b' "$task_work_h"; then
    grep -q 'typeof(&task_work_cancel)' "$out.tmp/stp_task_work.c" \
        || die "$runtime/stp_task_work.c changed: the task_work_cancel_func fix no longer applies"
    patch_file stp_task_work.c \
        -e 's/typeof(&task_work_cancel)/typeof(\&task_work_cancel_func)/' \
        -e 's/kallsyms_lookup_name("task_work_cancel")/kallsyms_lookup_name("task_work_cancel_func")/'
    what="$runtime, stp_task_work.c calling task_work_cancel_func ($task_work_h declares it)"
else
    what="$runtime, stp_task_work.c unchanged ($task_work_h has the original task_work_cancel)"
fi

reserve='if (buf->offset >= buf->chan->subbuf_size) {'
if grep -qF "$reserve" "$out.tmp/transport/relay_v2.c"; then
    patch_file transport/relay_v2.c \
        -e 's/if (buf->offset >= buf->chan->subbuf_size) {/if (buf->offset + sizeof(struct _stp_trace) >= buf->chan->subbuf_size) {/'
    what="$what; relay_v2.c padding sub-buffers with no room for a header"
else
    what="$what; relay_v2.c unchanged (no longer reserves as 4.8 does)"
fi
# 3. Output lost at exit.  Debian's stapio 4.8 stops its relay readers as
# soon as the module acknowledges STP_EXIT, without a last read: whatever
# the readers had not fetched yet (the last lines a traced program caused,
# the end probes' output) may never reach the output file.  SystemTap 5.1
# (PR31597) makes stapio wait before stopping them.  The copy's relay_v2.c
# waits instead, before it stops the transport, until the readers have
# emptied every buffer (at most 5 s, in 10 ms steps).
if grep -qxF 'static void _stp_transport_data_fs_stop(void)' "$out.tmp/transport/relay_v2.c"; then
    cat > "$out.tmp/drain.c" <<'EOF'
		/* fix-runtime.sh: let stapio read what is left */
		int pst_cpu, pst_ms, pst_empty;
		for (pst_ms = 0; pst_ms < 5000 && _stp_relay_data.rchan; pst_ms += 10) {
			pst_empty = 1;
			for_each_online_cpu(pst_cpu) {
				struct rchan_buf *pst_buf = _stp_get_rchan_subbuf(
					_stp_relay_data.rchan->buf, pst_cpu);
				if (pst_buf && !__stp_relay_buf_empty(pst_buf))
					pst_empty = 0;
			}
			if (pst_empty)
				break;
			atomic_set(&_stp_relay_data.wakeup, 1);
			msleep(10);
		}
EOF
    patch_file transport/relay_v2.c -e "/^static void _stp_transport_data_fs_stop(void)/,/^}/{
/STP_TRANSPORT_RUNNING) {\$/r $out.tmp/drain.c
}"
    rm "$out.tmp/drain.c"
    grep -q 'pst_empty' "$out.tmp/transport/relay_v2.c" \
        || die "$runtime/transport/relay_v2.c changed: the drain at exit no longer applies"
    what="$what; relay_v2.c waiting for stapio to empty the buffers at exit"
else
    what="$what; relay_v2.c stops as 4.8 does (no _stp_transport_data_fs_stop)"
fi
if [ -d "$out" ] && diff -r -q "$out" "$out.tmp" >/dev/null; then
    rm -rf "$out.tmp"   # unchanged: keep the old copy and its time stamps
else
    rm -rf "$out"
    mv "$out.tmp" "$out"
fi
echo "$what"
