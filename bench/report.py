#!/usr/bin/python3
"""Turn make bench's results (build/bench/results.json) into
docs/performance.md and its plot docs/performance.svg, and print the
tables.

usage: report.py RESULTS.json OUT.md
"""

import json
import math
from html import escape
import os
import sys

# The series, the anchors and the builds' names: bench.py's, which measured.
from bench import (ANCHORS, BUILDS, MODULE_BUILDS, OURS, STARTUP_REPEATS, TARBALLS,
                   WORK_CONSUMERS, build_name)

# The bars the markers' cost must meet (docs/performance.md states each).
CG_GEOMEAN_MAX = 1.005
CG_WORKLOAD_MAX = 1.01
QUIET_MAX = 1.001           # instructions with only a gc/import semaphore set
# Work per event with a consumer attached, in instructions (phase work):
# ours, and usdtmon's (phase module) within MODULE_FACTOR of that bar and
# of ours.  The uprobe trap itself is the kernel's cost: shown, not a bar.
WORK_MAX = 250
MODULE_FACTOR = 1.5
MODULE_IDLE_MAX = 1.001     # each workload's main() with usdtmon loaded, idle

# Those of our series whose markers come from PEP 669's hooks, which
# RESUME_CHECK lets notice a consumer (patches/python3.x/0002, 0003).
OURS_PEP669 = [py for py in OURS if not py.startswith("2.")]
# The upstream releases whose own markers are anchors: those with a d build
# (upstream --with-dtrace, against upstream).
UPSTREAM_DTRACE = [py for py in ANCHORS + OURS if build_name(py, "d") in BUILDS]
# The Pythons usdtmon is measured on (bench.py's MODULE_BUILDS).
MODULE_PYTHONS = [BUILDS[name][0] for name in MODULE_BUILDS]
# 3.14 -> 3.14.7, from the tarball bench.py built it from.
PY_LABEL = {py: t[len("Python-"):].split(".t")[0] for py, t in TARBALLS.items()}


def and_list(xs):
    """"a", "a and b", "a, b and c"."""
    xs = list(xs)
    return ", ".join(xs[:-1]) + " and " + xs[-1] if len(xs) > 1 else "".join(xs)


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def fmt(x, digits=4):
    return "-" if x is None else "%.*f" % (digits, x)


def table(head, rows):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def ratios(data, py, num, den="a"):
    """{workload: data[py][w][num]/data[py][w][den]} for builds named by
    suffix (py313-c -> 'c')."""
    n, d = build_name(py, num), build_name(py, den)
    out = {}
    for w, row in sorted(data.get(py, {}).items()):
        if n in row and d in row and row[d]:
            out[w] = row[n] / row[d]
    return out


# The floor's sites (bench.py's FLOORS), the shipped one first.
FLOOR_ROWS = [("nop;nop10", "`nop; nop10` (shipped)"), ("nop", "`nop` (sys/sdt.h)")]


def bpftrace_version(res):
    """"v0.17.0" from the machine's `bpftrace --version`."""
    return res["machine"]["bpftrace"].replace("bpftrace", "").strip()


class Report:
    def __init__(self, res):
        self.res = res
        self.lines = []
        self.bars = []   # (bar, measured, met)
        self.notes = []

    def add(self, *text):
        self.lines.extend(text)

    # --- sections ----------------------------------------------------------

    def text_section(self):
        self.add("## (b) against (a): machine code", "",
                 "Every object file of the two builds (same compiler, same flags; (b) is "
                 "our patched tree configured without `--with-dtrace`), compared by the "
                 "contents of its `.text*` sections (relocations unapplied, so paths, "
                 "`__FILE__` strings and data layout do not show).  Where they differ, "
                 "`objdump -d` of each function, with addresses normalised, tells "
                 "whether only immediate operands changed.", "")
        texts = self.res.get("text")
        if not texts:
            self.add("_Not measured._", "")
            for py in OURS:
                self.bars.append(("(b) vs (a): identical .text, %s" % py, "not measured", None))
            return
        for t in texts:
            py = {build_name(p, "a"): p for p in OURS}[t["pair"][0]]
            diff = t["differing"]
            funcs = [f for d in diff for f in d["functions"]]
            imm_only = funcs and all(f["immediates_only"] for f in funcs)
            size_changed = [d for d in diff for s, (x, y) in d["sections"].items() if x != y]
            self.add("### Python %s" % PY_LABEL[py], "",
                     "%d object files, %.1f MiB of `.text*` compared; objects only in (a): %s; "
                     "only in (b): %s." % (t["objects"], t["bytes"] / 2 ** 20,
                                            ", ".join(t["only_a"]) or "none",
                                            ", ".join(t["only_b"]) or "none"), "")
            if not diff and not t["only_a"] and not t["only_b"]:
                self.add("**Identical**: every object's `.text*` is byte for byte the same.", "")
                self.bars.append(("(b) vs (a): identical .text, %s" % py, "identical", True))
                continue
            rows = []
            for d in diff:
                for f in d["functions"]:
                    rows.append(["`%s`" % d["object"], "`%s`" % f["function"], f["section"],
                                 "immediates only: " + ", ".join(
                                     "%d&rarr;%d" % (x, y) for x, y in f["immediates"])
                                 if f["immediates_only"] else "code"])
                if not d["functions"]:
                    rows.append(["`%s`" % d["object"], "-", ", ".join(d["sections"]),
                                 "section added or removed"])
            self.add(table(["object", "function", "section", "difference"], rows), "")
            for d in diff:
                for f in d["functions"]:
                    if f["diff"]:
                        self.add("`%s` in `%s` (normalised disassembly, a &rarr; b):" % (
                            f["function"], d["object"]), "", "```diff", *f["diff"], "```", "")
            what = ("only immediates differ, in %d function(s) of %d object(s)%s" % (
                len(funcs), len(diff),
                "; the sections keep their sizes" if not size_changed else "")
                if imm_only else "%d function(s) of %d object(s) differ in code" % (
                    len(funcs), len(diff)))
            self.bars.append(("(b) vs (a): identical .text, %s" % py, what, False))
            if imm_only:
                self.notes.append(
                    "Python %s, (b) vs (a): the only differences are immediate operands "
                    "(%s): the values that `__LINE__` gives macros such as "
                    "`PyErr_BadInternalCall()` (`_PyErr_BadInternalCall(__FILE__, __LINE__)`) "
                    "and `PyErr_BadArgument`-style helpers below the lines the patch adds "
                    "to the same file.  The generated code is otherwise the same; the bar "
                    "(identical `.text`) is met only once the patch adds no lines above "
                    "such a macro in a file that uses it (e.g. by keeping its additions "
                    "below the last use, or on lines it replaces)." % (
                        PY_LABEL[py], "; ".join("`%s`: %s" % (f["function"], ", ".join(
                            "%d&rarr;%d" % (x, y) for x, y in f["immediates"])) for f in funcs)))

    def cg_section(self):
        cg = self.res.get("callgrind", {})
        self.add("## (b), (c) against (a): instructions (callgrind)", "",
                 "`valgrind --tool=callgrind`, whole process (startup included), "
                 "`PYTHONHASHSEED=0`, after a warm-up run that writes the bytecode "
                 "caches.  Ratios against (a), the unpatched build of the same run.  "
                 "(c) is configured `--with-dtrace` and nobody traces.", "")
        if not cg:
            self.add("_Not measured._", "")
            return
        self.add("Each build runs from its own build directory, with its own copy of the "
                 "standard library, bytecode caches and build data (source paths are "
                 "kept the same length).  Those alone move glibc's and obmalloc's "
                 "allocation work by up to about 1% in some workloads, although the "
                 "machine code is the same: the column \"(b) binary in (a)'s tree\" runs "
                 "(b)'s interpreter from (a)'s build directory (same ABI: neither has "
                 "markers), and what is left is the code's doing.", "")
        for py in OURS:
            b, c = ratios(cg, py, "b"), ratios(cg, py, "c")
            a = build_name(py, "a")
            bina = {w: ir / cg[py][w][a] for w, ir in
                    self.res.get("callgrind_b_in_a", {}).get(py, {}).items()
                    if w in cg.get(py, {})}
            rows = [[w, "%.1f" % (cg[py][w][a] / 1e6), fmt(b.get(w)), fmt(bina.get(w)),
                     fmt(c.get(w))] for w in sorted(c)]
            rows.append(["**geomean**", "", fmt(geomean(b.values())),
                         fmt(geomean(bina.values())) if bina else "-",
                         fmt(geomean(c.values()))])
            self.add("### Python %s" % PY_LABEL[py], "",
                     table(["workload", "(a) Minstr", "(b)/(a)", "(b) binary in (a)'s tree",
                            "(c)/(a)"], rows), "")
            hs = self.res.get("callgrind_hotspots", {}).get(py)
            if hs:
                self.add("Where (c) differs from (a) in `%s`, its highest ratio "
                         "(self instructions per function, callgrind_annotate):" % hs["workload"], "",
                         table(["function", "(a)", "(c)", "(c) - (a)"],
                               [["`%s`" % f, "{:,}".format(x), "{:,}".format(y),
                                 "{:+,}".format(d)] for f, x, y, d in hs["functions"]]) , "")
            gm = geomean(c.values())
            worst = max(c.items(), key=lambda kv: kv[1]) if c else ("-", float("nan"))
            self.bars.append(("(c) vs (a) callgrind geomean <= %.3f, %s" % (CG_GEOMEAN_MAX, py),
                              "%.4f" % gm, gm <= CG_GEOMEAN_MAX))
            self.bars.append(("(c) vs (a) callgrind every workload <= %.2f, %s" % (
                CG_WORKLOAD_MAX, py), "max %.4f (%s)" % (worst[1], worst[0]),
                worst[1] <= CG_WORKLOAD_MAX))

    def anchors_section(self):
        cg, wall = self.res.get("callgrind", {}), self.res.get("wall", {})
        gc_only = [py for py in UPSTREAM_DTRACE if py not in ANCHORS]
        self.add("## Anchors: what markers cost upstream, side by side", "",
                 "Upstream %s configured with `--with-dtrace` against the "
                 "same release without it, and our builds with markers (c) against (a); "
                 "all built and measured by this harness in this run.  Upstream 3.11 "
                 "tests its markers' semaphores in the eval loop on every call and line "
                 "(`PyDTrace_*_ENABLED()`); upstream %s %s only gc, import and audit "
                 "markers." % (and_list(PY_LABEL[py] for py in UPSTREAM_DTRACE),
                               and_list(gc_only), "fire" if len(gc_only) > 1 else "fires"), "")
        if not cg:
            self.add("_Not measured._", "")
            return
        cols = ([("ours %s (c)/(a)" % py, py, "c") for py in OURS]
                + [("upstream %s dtrace/plain" % py, py, "d") for py in UPSTREAM_DTRACE])
        for title, data in (("instructions (callgrind)", cg), ("wall clock (medians)", wall)):
            if not data:
                continue
            rs = [ratios(data, py, s) for _, py, s in cols]
            ws = sorted(set().union(*[set(r) for r in rs]))
            rows = [[w] + [fmt(r.get(w)) for r in rs] for w in ws]
            rows.append(["**geomean**"] + [fmt(geomean(r.values())) for r in rs])
            self.add("### " + title, "", table(["workload"] + [c[0] for c in cols], rows), "")
        self.anchor_ratios = [ratios(cg, py, s) for _, py, s in cols]
        self.anchor_cols = [c[0] for c in cols]

    def wall_section(self):
        wall = self.res.get("wall", {})
        self.add("## Wall clock", "",
                 "Median of %s runs per build and workload, the builds interleaved; whole "
                 "process.  This VM is shared and has no hardware counters: wall-clock "
                 "ratios carry a few percent of noise, and the callgrind counts are the "
                 "measure of the idle cost." % self.res.get("wall_repeats", "7"), "")
        if not wall:
            self.add("_Not measured._", "")
            return
        for py in OURS:
            b, c = ratios(wall, py, "b"), ratios(wall, py, "c")
            a = build_name(py, "a")
            rows = [[w, "%.1f" % (wall[py][w][a] * 1e3), fmt(b.get(w), 3),
                     fmt(c.get(w), 3)] for w in sorted(c)]
            rows.append(["**geomean**", "", fmt(geomean(b.values()), 3),
                         fmt(geomean(c.values()), 3)])
            self.add("### Python %s" % PY_LABEL[py], "",
                     table(["workload", "(a) ms", "(b)/(a)", "(c)/(a)"], rows), "")

    def live_section(self):
        live = self.res.get("live")
        self.add("## (d): live consumers", "",
                 "A count-only bpftrace consumer (`usdt:ELF:python:MARKER { @e = count(); }` "
                 "for each marker of the set) against no consumer: the workload times its "
                 "own `main()` (startup and bpftrace's attach excluded), medians over "
                 "repeats, and the extra time is divided by the events counted in "
                 "`main()` (the events of a run with N=0 subtracted).", "",
                 "The sites.  On x86-64 every marker site of (c) follows libbpf usdt.h's "
                 "convention: a 1-byte nop (`90`) where the marker's note points, then a "
                 "10-byte nop (`66 2e 0f 1f 84 00 00 00 00 00`); bench.py checks every "
                 "site's bytes before it measures.  bpftrace %s, gdb and SystemTap attach "
                 "at the note, so each hit is an int3 uprobe on the 1-byte nop, as on "
                 "sys/sdt.h's own site, on this machine's Linux %s as on earlier kernels, "
                 "and costs what a hit there costs (the two rows of the floor below).  "
                 "A kernel that optimizes 10-byte nops would run the "
                 "uprobe through a trampoline, without a trap, only for a consumer that "
                 "attaches at the byte after the note; none of these does.  The sites "
                 "used to be one 5-byte nop (`0f 1f 44 00 00`) at the note: Linux 6.18 "
                 "optimizes a probed 5-byte nop into a CALL to a uprobe trampoline, about "
                 "half a trap's cost per hit, but that CALL stores its return address in "
                 "the red zone below the stack pointer, and a child forked after its "
                 "parent hit the site inherits the CALL without the trampoline and dies "
                 "of SIGSEGV.  The sites give up that speed to be safe." % (
                     bpftrace_version(self.res), self.res["machine"]["kernel"]), "",
                 "The floor: bench/floor.c, one marker in a C loop, built with the shipped "
                 "site (`nop; nop10`, markers/pydtrace_sites.h, as the patches include it) and with "
                 "sys/sdt.h's own (`nop`), the two run in turn.  The shipped one runs "
                 "again between the runs of each function case, whose cost per call is shown in "
                 "floors against it.", "")
        if not live:
            self.add("_Not measured._", "")
            return
        fl = live["floor"]
        self.add("### Floor (C loop, one marker)", "", table(
            ["site", "hits", "ns per hit"],
            [[label, "%d" % fl[k]["hits"], "%.0f" % fl[k]["ns_per_hit"]]
             for k, label in FLOOR_ROWS]), "")
        ratio = live["floor_ratio"]
        self.add("Per hit, the shipped site costs %.2f times sys/sdt.h's (the median of the "
                 "ratios of runs side by side)%s" % (ratio, (
                     ": the same trap on the same byte, within this VM's noise."
                     if abs(ratio - 1) <= 0.1 else
                     ", more than this VM's noise of about 10%, although both are the "
                     "same trap on the same byte: a run to repeat.")), "")
        self.live_plot = {}
        for py in OURS:
            e = live["python"].get(py)
            if not e or not e["cases"]:
                # Not measured live in this run: its work per event still is
                self.add("### Python %s" % PY_LABEL[py], "",
                         "Not measured live in this run.", "")
                e = {"cases": {}}
            else:
                self.add("### Python %s" % PY_LABEL[py], "",
                         "%d marker sites, each `%s` (checked)." % (
                             e["sites"], e["site_bytes"]), "")
            rows = []
            for consumer, c in sorted(e["cases"].items()):
                per_call = c["ns_per_event"] * 2 if c["ns_per_event"] and consumer in (
                    "function", "cfunction") else None
                rows.append([consumer, c["workload"], "%d" % c["events"],
                             "%.1f" % (c["plain_s"] * 1e3), "%.3f" % c["slowdown"],
                             fmt(c["ns_per_event"], 0), fmt(c.get("work_ns_per_event"), 0),
                             fmt(c.get("uprobe_ns_per_hit"), 0), fmt(per_call, 0)])
            if rows:
                self.add(table(["consumer", "workload", "events", "no consumer ms",
                                "slowdown", "ns per event", "of which work", "of which uprobe",
                                "ns per call"], rows), "",
                         "An event's cost splits in two: the interpreter's work for the marker "
                         "(\"of which work\": the same workload on a copy of the binary with the "
                         "consumer's semaphores set and no consumer, so the markers do all their "
                         "work while their sites stay nops, against no consumer) and the uprobe "
                         "hit itself (\"of which uprobe\": the traced run against that copy).  "
                         "All three runs of a case are interleaved.", "")
            c = e["cases"].get("function")
            if c and "per_call_in_floors" in c:
                self.bars.append((
                    "(d) function tracing per call, in floors (the uprobe trap is the "
                    "kernel's: context), %s" % py,
                    "%.2f floors (%.0f ns per call, floor %.0f)" % (
                        c["per_call_in_floors"], 2 * c["ns_per_event"], c["floor_ns_per_hit"]),
                    None))
            work = (self.res.get("work") or {}).get(py) or {}
            for consumer in WORK_CONSUMERS:
                w = work.get(consumer)
                if w and "per_event" in w:
                    self.bars.append((
                        "(d) %s: work per event <= %d instructions, %s" % (consumer, WORK_MAX, py),
                        "%.0f instructions" % w["per_event"], w["per_event"] <= WORK_MAX))
            for consumer in ("gc", "import"):
                c, w = e["cases"].get(consumer), work.get(consumer)
                if w and "ratio" in w:
                    self.bars.append((
                        "(d) only a %s probe enabled: call-heavy code not slowed, %s" % (
                            consumer, py),
                        "x%.6f instructions (%+d in %s's main())" % (
                            w["ratio"], w["instructions"], w["workload"]),
                        w["ratio"] <= QUIET_MAX))
                if c:
                    self.bars.append(("(d) only a %s probe enabled, wall clock, %s"
                                      % (consumer, py), "x%.3f wall" % c["slowdown"], None))
            if e["cases"]:
                self.live_plot[py] = e["cases"]
            if work:
                self.add("The interpreter's own work per event with the consumer attached, "
                         "in instructions (callgrind, phase `work`: the same build with the "
                         "consumer's semaphores set in a copy of the binary, so that every "
                         "marker does its work while its site stays a nop; valgrind runs no "
                         "uprobe, so the uprobe is not in these counts).  Unlike the wall "
                         "clock above, these counts repeat exactly.  For gc and import, which "
                         "fire nothing in this workload, the extra instructions their "
                         "semaphores cost in its `main()` (startup excluded: there the "
                         "import and gc markers fire), and as a ratio.", "", table(
                             ["consumer", "workload", "events", "instructions per event",
                              "per call", "main() ratio", "extra in main()"],
                             [[k, c["workload"], "%d" % c["events"],
                               fmt(c.get("per_event"), 0),
                               "%.0f" % (2 * c["per_event"]) if k in ("function", "cfunction")
                               else "-",
                               "x%.6f" % c["ratio"] if c.get("events") == 0 else "-",
                               "%+d" % c["instructions"]]
                              for k, c in sorted(work.items())]), "")

    def module_section(self):
        mod = self.res.get("module")
        self.add("## usdtmon: the markers from sys.monitoring", "",
                 "usdtmon (module/usdtmon, docs/usdtmon.md) in "
                 "upstream's own %s without markers, the (a) builds, where it fires every "
                 "family, as on a distribution's Python built without --with-dtrace.  Idle: "
                 "no consumer, so no sys.monitoring tool and no event; what is left is its "
                 "import and its watcher thread, which reads the semaphores every 100 ms.  "
                 "The workloads' ratio is their `main()` alone (the run at N less the run "
                 "at 0, callgrind), with usdtmon imported at start-up (a sitecustomize, as "
                 "the site-wide load does) against without, its watcher asleep: the "
                 "watcher's wake-ups come with the wall clock, which valgrind slows, so "
                 "it is measured apart, as its wake-ups a second (the program asleep, "
                 "wall clock) times the instructions of one (callgrind, its thread "
                 "alone); the startup workload, whose `main()` is empty, has no ratio.  "
                 "Start-up is `python -s "
                 "-c 'import usdtmon'` against `-c pass` (instructions, and the median of "
                 "%d wall-clock runs each).  Live: the work per event, as phase `work` "
                 "measures ours: a copy of usdtmon's shared object with the family's "
                 "semaphores set, so that it turns its events on at import and does all "
                 "its work while its sites stay nops, against usdtmon idle (both under "
                 "`-m usdtmon`), per event "
                 "bpftrace counts on the real one; beside it, a naive sys.monitoring tool in "
                 "Python that computes the same arguments (bench/naive_tool.py), and ours, "
                 "the patched (c) build's markers." % (
                     and_list(MODULE_PYTHONS), STARTUP_REPEATS), "")
        if not mod:
            self.add("_Not measured._", "")
            return
        for py in MODULE_PYTHONS:
            e = mod.get(py)
            if not e:
                continue
            ratios_ = {w: x["ratio"] for w, x in e["workloads"].items()}
            worst = max(ratios_, key=ratios_.get)
            own = {w: x["own"] for w, x in e["workloads"].items() if "own" in x}
            st, sm = e["startup_instructions"], e["startup_ms"]
            self.add("### Python %s" % PY_LABEL[py], "",
                     "Idle: each workload's `main()` with usdtmon loaded, against without "
                     "(callgrind): %s; the largest %s x%.5f.  Start-up: %.1f ms against "
                     "%.1f ms (wall), %.2fM instructions against %.2fM (x%.3f).  The "
                     "watcher wakes %.1f times a second%s." % (
                         ", ".join("%s x%.5f" % (w, r) for w, r in sorted(ratios_.items())),
                         worst, ratios_[worst], sm["module"], sm["plain"],
                         st["module"] / 1e6, st["plain"] / 1e6, st["module"] / st["plain"],
                         e["wakeups_per_s"],
                         ", %.0f instructions each: %.0f instructions a second" % (
                             e["wakeup_instructions"],
                             e["wakeups_per_s"] * e["wakeup_instructions"])
                         if "wakeup_instructions" in e else ""), "")
            if own:
                busy = {w: n for w, n in own.items() if n}
                self.add("usdtmon's own instructions in `main()` (callgrind's count for its "
                         "shared object, the run at N less the run at 0): %s." % (
                             ", ".join("%s %+d" % (w, n) for w, n in sorted(busy.items()))
                             if busy else "none, on every workload"), "")
            self.bars.append(("usdtmon idle: every workload's main() <= %.3f, %s" % (
                MODULE_IDLE_MAX, py), "max %.5f (%s)" % (ratios_[worst], worst),
                ratios_[worst] <= MODULE_IDLE_MAX))
            ours = (self.res.get("work") or {}).get(py) or {}
            rows = []
            for family, f in sorted(e["families"].items()):
                mine = (ours.get(family) or {}).get("per_event")
                rows.append([family, f["workload"], "%d" % f["events"], "%.0f" % f["per_event"],
                             fmt(mine, 0), fmt(f["per_event"] / mine if mine else None, 2),
                             "%.0f" % f["naive_per_event"],
                             "%.1f" % (f["naive_per_event"] / f["per_event"])])
                self.bars.append((
                    "usdtmon %s: work per event <= %.1f x %d instructions, %s" % (
                        family, MODULE_FACTOR, WORK_MAX, py),
                    "%.0f instructions" % f["per_event"],
                    f["per_event"] <= MODULE_FACTOR * WORK_MAX))
                if mine:
                    self.bars.append((
                        "usdtmon %s: work per event <= %.1f x ours, %s" % (
                            family, MODULE_FACTOR, py),
                        "x%.2f (%.0f against %.0f)" % (f["per_event"] / mine, f["per_event"], mine),
                        f["per_event"] <= MODULE_FACTOR * mine))
            self.add(table(["family", "workload", "events", "usdtmon per event",
                            "ours (c) per event", "usdtmon / ours", "naive Python tool",
                            "naive / usdtmon"], rows), "")

    # --- plot ----------------------------------------------------------------

    def svg(self, path):
        """Left: (c)/(a) and the anchors' ratios per workload (callgrind).
        Right: ns per event of each live consumer, and the C floor's ns
        per hit on each site."""
        # The left panel's legend: a column of bars per anchor, and the bar.
        legend_rows = (len(getattr(self, "anchor_cols", [])) + 2) // 2
        W, H = 1100, max(580, 40 + 380 + 90 + 16 * legend_rows)
        out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
               'font-family="sans-serif" font-size="11">' % (W, H),
               '<rect width="100%" height="100%" fill="white"/>']
        colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        # Left panel.
        rs = getattr(self, "anchor_ratios", None)
        x0, y0, pw, ph = 60, 40, 560, 380
        out.append('<text x="%d" y="22" font-size="14">Idle cost: instructions relative to '
                   'the build without markers (callgrind)</text>' % x0)
        if rs:
            ws = sorted(set().union(*[set(r) for r in rs]))
            vals = [v for r in rs for v in r.values()]
            lo, hi = 0.98, max(1.02, max(vals) + 0.005)
            lo = min(lo, min(vals) - 0.005)

            def y(v):
                return y0 + ph - (v - lo) / (hi - lo) * ph
            step = 0.01 if hi - lo < 0.1 else 0.05
            v = math.ceil(lo / step) * step
            while v <= hi:
                out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (
                    x0, x0 + pw, y(v), y(v)))
                out.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>' % (
                    x0 - 4, y(v) + 4, v))
                v += step
            for lim, col in ((1.0, "#000"), (CG_WORKLOAD_MAX, "#c00")):
                out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" %s/>' % (
                    x0, x0 + pw, y(lim), y(lim), col,
                    'stroke-dasharray="4,3"' if lim != 1.0 else ""))
            gw = pw / max(1, len(ws))
            bw = gw * 0.8 / len(rs)
            for i, w in enumerate(ws):
                for j, r in enumerate(rs):
                    if w not in r:
                        continue
                    bx = x0 + i * gw + gw * 0.1 + j * bw
                    top, base = y(max(r[w], 1.0)), y(min(r[w], 1.0))
                    out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">'
                               '<title>%s %s: %.4f</title></rect>' % (
                                   bx, top, bw, max(base - top, 0.5), colors[j],
                                   self.anchor_cols[j], w, r[w]))
                out.append('<text transform="translate(%.1f,%d) rotate(45)">%s</text>' % (
                    x0 + i * gw + gw * 0.3, y0 + ph + 12, w))
            for j, name in enumerate(self.anchor_cols + ["bar: every workload <= %.2f"
                                                         % CG_WORKLOAD_MAX]):
                lx, ly = x0 + 280 * (j % 2), y0 + ph + 90 + 16 * (j // 2)
                if j < len(self.anchor_cols):
                    out.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' % (
                        lx, ly - 9, colors[j]))
                else:
                    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#c00" '
                               'stroke-dasharray="4,3"/>' % (lx, lx + 10, ly - 4, ly - 4))
                out.append('<text x="%d" y="%d">%s</text>' % (lx + 14, ly, escape(name)))
        # Right panel.
        lp = getattr(self, "live_plot", {})
        x1, pw2 = 720, 340
        out.append('<text x="%d" y="22" font-size="14">Live: ns per event, count-only '
                   'bpftrace</text>' % (x1 - 40))
        bars = []   # (label, ns, colour)
        for py in OURS:
            for consumer in ("function", "line", "cfunction"):
                c = lp.get(py, {}).get(consumer)
                if c and c["ns_per_event"]:
                    bars.append(("%s %s" % (py, consumer), c["ns_per_event"], colors[0]))
        fl = (self.res.get("live") or {}).get("floor", {})
        for kind, _ in FLOOR_ROWS:
            if kind in fl:
                bars.append(("C floor %s" % kind.replace(";", "; "), fl[kind]["ns_per_hit"],
                             colors[1]))
        if bars:
            mx = max(b[1] for b in bars) * 1.1
            bh = min(26, ph / len(bars))
            for i, (label, v, color) in enumerate(bars):
                by = y0 + i * bh
                out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (
                    x1 + 60, by + bh * 0.7, label))
                out.append('<rect x="%d" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                           '<text x="%.1f" y="%.1f">%.0f</text>' % (
                               x1 + 64, by + 2, (v / mx) * (pw2 - 60), bh - 4, color,
                               x1 + 68 + (v / mx) * (pw2 - 60), by + bh * 0.7, v))
        out.append("</svg>")
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")

    # --- whole ---------------------------------------------------------------

    def write(self, md_path):
        m = self.res.get("machine", {})
        svg_name = os.path.splitext(os.path.basename(md_path))[0] + ".svg"
        body_start = len(self.lines)
        self.text_section()
        self.cg_section()
        self.anchors_section()
        self.wall_section()
        self.live_section()
        self.module_section()
        body = self.lines[body_start:]
        self.lines = self.lines[:body_start]
        head = [
            "# Performance of the markers", "",
            "_Generated by `make bench` (bench/bench.py, bench/report.py) on %s; do not "
            "edit by hand._" % m.get("date", "?"), "",
            "The four cases of the 2010 work: (a) upstream without the patch, (b) patched "
            "but configured without markers, (c) with markers and nobody tracing, (d) "
            "with live probes.  The goals: (a) = (b), (b) ~ (c), a moderate cost for (d).  "
            "(a), (b) and (c) of each Python, and the upstream anchors, are built out of "
            "tree under build/bench/ in the same run, by the same compiler with the same "
            "flags (`--without-ensurepip`, plus `--with-dtrace` for markers).  The "
            "workloads are bench/workloads/*.py (async needs Python 3).", "",
            "## Machine", "",
            table(["", ""], [
                ["system", m.get("os", "?")], ["kernel", m.get("kernel", "?")],
                ["CPU", "%s, %s cores, %s GiB" % (m.get("cpu"), m.get("cores"),
                                                 m.get("memory_gib"))],
                ["compiler", m.get("gcc", "?")], ["valgrind", m.get("valgrind", "?")],
                ["bpftrace", m.get("bpftrace", "?")], ["binutils", m.get("binutils", "?")],
                ["load average at start", " ".join(m.get("loadavg", []))],
                ["phases (s)", ", ".join("%s %s" % kv for kv in sorted(
                    self.res.get("durations", {}).items()))]]), "",
            "![(c)/(a) per workload and live cost per event](%s)" % svg_name, "",
            "## The bars", "",
            table(["bar", "measured", "met"],
                  [[b, v, {True: "yes", False: "**no**", None: "(report)"}[ok]]
                   for b, v, ok in self.bars]), "",
        ]
        failed = self.res.get("failed") or []
        if failed:
            head += ["**Not measured in this run:** " + "; ".join(failed), ""]
        self.lines = head + body
        unmet = [b for b, v, ok in self.bars if ok is False]
        self.add("## Closing note", "")
        if not unmet and not failed:
            self.add("Every bar is met.", "")
        else:
            self.add("Bars not met in this run: " + "; ".join(unmet) + "." if unmet else
                     "Every measured bar is met.", "")
        for n in self.notes:
            self.add("- " + n)
        for n in closing_notes(self):
            self.add("- " + n)
        self.add("")
        os.makedirs(os.path.dirname(os.path.abspath(md_path)), exist_ok=True)
        with open(md_path, "w") as f:
            f.write("\n".join(self.lines))
        self.svg(os.path.join(os.path.dirname(os.path.abspath(md_path)), svg_name))


def closing_notes(rep):
    """Explanations that follow from the measurements."""
    notes = []
    cg = rep.res.get("callgrind", {})
    for py in OURS_PEP669:
        c = ratios(cg, py, "c")
        if not c or geomean(c.values()) <= CG_GEOMEAN_MAX:
            continue
        notes.append(
            "Python %s, (c): while nobody traces, the markers cost what "
            "patches/python%s/0003 adds to RESUME_CHECK (every call and every "
            "resumption): one load of the function__entry, cfunction__entry, line "
            "and function__return semaphores as one word, ORed into upstream's "
            "compare of the eval breaker (RESUME_CHECK_STALE); "
            "`_PyDTrace_Update()` on the generic RESUME path; and, in gc, import and "
            "sys.audit, the tests upstream already has.  The workloads with the most "
            "calls and resumptions per instruction show it most.  Less than that "
            "needs the test out of RESUME_CHECK altogether (a flag in the eval "
            "breaker, which RESUME_CHECK already compares, set by something that "
            "notices a consumer: nothing runs in the process when one attaches)." % (py, py))
    for py in OURS:
        c = ratios(cg, py, "c")
        hs = rep.res.get("callgrind_hotspots", {}).get(py)
        if c and hs and (geomean(c.values()) > CG_GEOMEAN_MAX or max(c.values()) > CG_WORKLOAD_MAX):
            notes.append(
                "Python %s, (c) against (a) in `%s` (%+.2f%%): the differences by function "
                "are %s.  A difference in glibc's or obmalloc's allocator with no change "
                "in the interpreter's own functions is heap layout (the builds' data "
                "differ), not work the markers do." % (
                    PY_LABEL[py], hs["workload"], (hs["c"] / hs["a"] - 1) * 100,
                    ", ".join("`%s` %+d" % (f, d) for f, _, _, d in hs["functions"][:5])))
    live = rep.res.get("live") or {}
    if live:
        spread = sorted(x["floor_ns_per_hit"] for e in live["python"].values()
                        for x in e["cases"].get("function", {}).get("samples", []))
        notes.append(
            "The live numbers are wall-clock measurements on a 2-core VM whose speed drifts "
            "from one run to the next%s.  The per-call figures therefore use ratios taken within each "
            "repeat, between runs seconds apart (each function case against the floor "
            "measured in the same repeat, as the two floors against each other), and keep "
            "their median; the tables show the medians of each measurement.  The (d) bars "
            "are instruction counts (phase work), which do not drift." % (
                " (the floor alone, measured between the function runs, went from "
                "%.0f to %.0f ns per hit)" % (spread[0], spread[-1]) if spread else ""))
        quiet = [(py, k, c) for py, w in sorted((rep.res.get("work") or {}).items())
                 for k, c in sorted(w.items()) if k in ("gc", "import") and "ratio" in c]
        notes.append(
            "With only a gc or an import probe enabled, call-heavy code does no extra work: "
            "on 2.7 the eval loop tests only the function, cfunction and line semaphores, "
            "and on %s RESUME_CHECK and _PyDTrace_Update() instrument code only for those "
            "three; the gc and import markers sit in gc and the import system.  %s  The "
            "wall-clock slowdowns shown for them are noise (no events fire in that "
            "workload)." % (
                and_list(OURS_PEP669),
                "Callgrind, with their semaphores set: %s." % "; ".join(
                    "%s %s %+d instructions in `main()` (x%.6f)" % (
                        PY_LABEL[py], k, c["instructions"], c["ratio"]) for py, k, c in quiet)
                if quiet else ""))
    notes.append("Wall-clock ratios on this 2-core VM carry noise of several percent; "
                 "instruction counts do not.")
    notes.append("SystemTap is checked for correctness only (tests/test_guest.py runs it "
                 "in a TCG guest, where timings mean nothing).")
    return notes


def print_summary(rep):
    print("\n".join(["", "== make bench: the bars =="] + [
        "%-75s %-32s %s" % (b, v, {True: "met", False: "NOT MET", None: ""}[ok])
        for b, v, ok in rep.bars]))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    res = json.load(open(sys.argv[1]))
    rep = Report(res)
    rep.write(sys.argv[2])
    # The tables, as the report has them.
    start = next((i for i, l in enumerate(rep.lines) if l.startswith("## (b) against")), 0)
    print("\n".join(rep.lines[start:]))
    print_summary(rep)
    print("\nwrote %s" % sys.argv[2])


if __name__ == "__main__":
    main()
