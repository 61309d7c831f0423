#!/usr/bin/env bash
# The main job's last step: trace the bundled workload with bpftrace, once
# per interpreter given, and print what it did: the call tree of the
# workload's own code (from its first frame; the interpreter's start-up and
# shutdown folded into a line each), then its hottest functions.
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

# Run from the top directory: the workload's frames then show a short
# relative path, and its first frame is the one whose filename is that.
workload=examples/workload.py
pythons=()
for arg in "$@"; do
    [ -x "$arg" ] || die "no interpreter $arg (run 'make build')"
    pythons+=("$(cd "$(dirname "$arg")" && pwd)/$(basename "$arg")")
done
cd "$top"
events=$(mktemp /tmp/demo-events.XXXXXX)
trap 'rm -f "$events"' EXIT

for python in "${pythons[@]}"; do
    # The interpreter, or the libpython of an --enable-shared build.
    elf=$(python3 "$top/scripts/usdt.py" elf "$python" function__entry function__return) ||
        die "cannot trace $python"
    # Standard library paths whole (bpftrace's default is 64 bytes; 160 no
    # longer fits BPF's stack).
    if [ "$elf" = "$(readlink -f "$python")" ]; then
        BPFTRACE_STRLEN=128 bpftrace "$top/scripts/demo.bt" "$elf" -c "$python $workload" \
            > "$events" 2> >(grep -v RLIMIT_MEMLOCK >&2) ||
            die "bpftrace failed on $python"
    else
        # An --enable-shared build: bpftrace 0.17 cannot find the markers
        # of a library that the program it starts with -c has not loaded
        # yet.  So trace the library system-wide, for the PID of a program
        # held before its exec until bpftrace has attached.
        hold=$(mktemp -u /tmp/demo-hold.XXXXXX)
        mkfifo "$hold"
        sh -c 'read -r _ < "$1" && exec "$2" "$3"' sh "$hold" "$python" "$workload" &
        program=$!
        BPFTRACE_STRLEN=128 bpftrace "$top/scripts/demo.bt" "$elf" "$program" \
            > "$events" 2> >(grep -v RLIMIT_MEMLOCK >&2) &
        tracer=$!
        until grep -q '^tracing' "$events"; do
            kill -0 "$tracer" 2>/dev/null || {
                kill "$program"; rm -f "$hold"; die "bpftrace failed on $python"; }
            sleep 0.2
        done
        echo go > "$hold"
        rm -f "$hold"
        wait "$program" || die "$python $workload failed"
        # bpftrace prints what its buffers hold, then stops on SIGINT.
        size=-1
        while [ "$size" != "$(stat -c %s "$events")" ]; do
            size=$(stat -c %s "$events")
            sleep 0.5
        done
        kill -INT "$tracer"
        wait "$tracer" || die "bpftrace failed on $python"
    fi
    awk -F '\t' -v python="${python#"$top"/}" -v workload="$workload" -v top="$top/" '
        function show(file) { return index(file, top) == 1 ? substr(file, length(top) + 1) : file }
        function pad(n,   s) { s = ""; while (n-- > 0) s = s "  "; return s }
        $3 != "E" && $3 != "R" { next }
        # Before the workload frame: start-up.  From it to its return: the tree.
        state == 0 && $3 == "E" && $4 == "<module>" && show($5) == workload {
            state = 1; tid = $2; depth = 0
            printf "== %s: %s, traced by bpftrace (scripts/demo.bt)\n\n", python, workload
            printf "   (start-up: %d calls in the interpreter'"'"'s own code, hidden)\n", before
        }
        state == 0 { if ($3 == "E") before++; next }
        state == 2 || $2 != tid { if ($3 == "E") after++; next }
        $3 == "E" {
            key = $4 " (" show($5) ")"
            printf "%s=> %s in %s:%d\n", pad(depth), $4, show($5), $6
            start[depth] = $1; child[depth] = 0; fn[depth] = key
            calls[key]++; depth++
            next
        }
        {
            if (depth == 0) next
            depth--
            t = $1 - start[depth]
            total[fn[depth]] += t; own[fn[depth]] += t - child[depth]
            if (depth > 0) child[depth - 1] += t
            printf "%s<= %s  %.1f us\n", pad(depth), $4, t / 1000
            if (depth == 0) state = 2
        }
        END {
            if (state == 0) { print "demo: no frame of " workload " seen" > "/dev/stderr"; exit 1 }
            printf "   (shutdown: %d calls, hidden)\n\n", after
            print "Hottest functions (time includes the tracer'"'"'s own cost per event):"
            printf "  %6s %10s %10s  %s\n", "calls", "own us", "total us", "function"
            n = 0
            for (k in own) keys[++n] = k
            for (i = 2; i <= n; i++) {          # by own time, descending
                k = keys[i]
                for (j = i - 1; j > 0 && own[keys[j]] < own[k]; j--) keys[j + 1] = keys[j]
                keys[j + 1] = k
            }
            for (i = 1; i <= n && i <= 8; i++)
                printf "  %6d %10.1f %10.1f  %s\n", calls[keys[i]], own[keys[i]] / 1000,
                       total[keys[i]] / 1000, keys[i]
        }' "$events" || die "no call tree for $python"
done

cat <<NEXT

Next:
  examples/*.stp          SystemTap scripts (call tree, top, latency, slow
                          calls, GC, imports, lines, stacks, C calls); in
                          docs/consumers.md, "SystemTap"
  examples/bpftrace/*.bt  their bpftrace twins, e.g.
      bpftrace examples/bpftrace/top.bt build/bin/python3.13 -c 'build/bin/python3.13 YOUR.py'
  make install            the Pythons (python2.7, python3.13, python3.14 in
                          /usr/local/bin), their tapsets and the examples; then
      stap -e 'probe python.function.entry { println(funcname) }' -c 'python3.13 YOUR.py'
  make check              every test (docs/testing.md)
NEXT
