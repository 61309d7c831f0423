#!/usr/bin/python3
"""make bench: what the markers cost, idle and live (docs/performance.md).

Builds, out of tree under build/bench/ and in one run, with the same
compiler and flags, for each of our series (OURS):

  (a)  upstream, without our patches            py27-a   py313-a   py314-a
  (b)  patched, configured without markers      py27-b   py313-b   py314-b
  (c)  patched, with markers (--with-dtrace)    py27-c   py313-c   py314-c
  anchors: upstream --with-dtrace, against (a)           py313-d   py314-d
           and upstream 3.11.2 (ANCHORS), with and
           without --with-dtrace                py311-a py311-d

then measures:

  text      (b) against (a): the .text* sections of every object file
  callgrind instructions per workload (bench/workloads), as ratios to (a)
  layout    the same for (b)'s binary run from (a)'s build directory
  wall      wall-clock medians per workload, as ratios to (a)
  live      (d): per-event cost of count-only bpftrace consumers on each (c),
            whose every site must be the shipped nop; nop10, against the
            floor of a C loop with the same site (bench/floor.c)
  work      (d): the interpreter's own work per event while a consumer is
            attached, in instructions (callgrind; the uprobe excluded)
  module    usdtmon on each 3.x (a) build: idle (start-up, each workload's
            main(), the watcher's wake-ups) and its work per event, beside
            a naive sys.monitoring tool in Python (bench/naive_tool.py)

and writes build/bench/results.json; bench/report.py turns that into
docs/performance.md and docs/performance.svg.  The benchmark asserts
nothing: it exits non-zero only when something could not be measured.
A run of every phase starts results.json anew; a run of some phases
(--phases) replaces only theirs, keeping the others' results, as --keep
does for a full run.

usage: bench.py [--phases build,text,callgrind,layout,wall,live,work,module] [--repeats N]
                [--live-repeats N] [--keep]
"""

import argparse
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import usdt  # noqa: E402  (scripts/usdt.py: the markers' notes and sites)
import pythons  # noqa: E402  (scripts/pythons.py: the table of Pythons)

SHIPPED = usdt.SHIPPED

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
BUILD = os.environ.get("BENCH_BUILD", os.path.join(REPO, "build", "bench"))
SOURCES = os.environ.get("SOURCES", os.path.join(REPO, "sources"))
WORKLOADS = os.path.join(BENCH, "workloads")
RESULTS = os.path.join(BUILD, "results.json")

# Our series (patches/python<version>) and the upstream releases built only
# as anchors (upstream, with and without --with-dtrace; 3.11 is the last
# whose eval loop fires function and line markers), oldest first, from the
# table of Pythons (pythons): each series gets the builds (a), (b) and
# (c), and a row or column in every phase and table (and its line in
# report.py).
_TABLE = pythons.read()
OURS = sorted((p.name[len("python"):] for p in _TABLE if p.role == "patched"),
              key=lambda v: tuple(map(int, v.split("."))))
ANCHORS = sorted(p.name[len("python"):] for p in _TABLE if p.role == "anchor")
TARBALLS = dict((p.name[len("python"):], p.tarball) for p in _TABLE
                if p.role in ("patched", "anchor"))
# ac_cv_broken_nice: configure's test of nice() runs nice(1) in the build's
# own process, so its answer depends on the niceness make runs at; a build
# configured under nice would differ from the others in os.nice's code.
BASE_FLAGS = ["--without-ensurepip", "ac_cv_broken_nice=no"]
DTRACE = ["--with-dtrace"]


def build_name(py, case):
    """py313-a: Python py's build of case a, b, c or d (upstream
    --with-dtrace)."""
    return "py%s-%s" % (py.replace(".", ""), case)


def upstream_markers(py):
    """Whether upstream py has markers of its own (--with-dtrace, from 3.6
    on): then its d build is an anchor too."""
    return not py.startswith("2.")


def all_builds():
    """{name: (python, source tree, extra configure flags, what it is)},
    the (c) builds first."""
    builds = {}
    for py in OURS:
        builds[build_name(py, "c")] = (py, "patched", DTRACE, "(c) patched, with markers")
    for py in OURS:
        builds[build_name(py, "a")] = (py, "pristine", [], "(a) upstream")
        builds[build_name(py, "b")] = (py, "patched", [], "(b) patched, without markers")
        if upstream_markers(py):
            builds[build_name(py, "d")] = (py, "pristine", DTRACE, "upstream --with-dtrace")
    for py in ANCHORS:
        builds[build_name(py, "a")] = (py, "pristine", [], "upstream")
        builds[build_name(py, "d")] = (py, "pristine", DTRACE, "upstream --with-dtrace")
    return builds


BUILDS = all_builds()


def log(*args):
    print("bench:", *args, flush=True)


class Unmeasured(Exception):
    """Something the report needs could not be measured."""


def run(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def output(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True,
                          check=True, **kw).stdout


# --- builds ------------------------------------------------------------------

def patches(py):
    d = os.path.join(REPO, "patches", "python" + py)
    return sorted(os.path.join(d, p) for p in os.listdir(d) if p.endswith(".patch"))


def digest(paths, extra):
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode() + b"\0")
        with open(p, "rb") as f:
            h.update(f.read())
    h.update(json.dumps(extra).encode())
    return h.hexdigest()


def compiler():
    return output(["gcc", "--version"]).splitlines()[0]


def source_tree(py, kind):
    """build/bench/src/<py>-<kind>: pristine, or with our patch series."""
    tarball = os.path.join(SOURCES, TARBALLS[py])
    if not os.path.exists(tarball):
        raise Unmeasured("%s is missing (make sources)" % tarball)
    # The marker C of markers/ that the patches include
    markers = [os.path.join(REPO, f) for f in pythons.marker_c(
        next(p for p in _TABLE if p.name == "python" + py))]
    inputs = [tarball] + (patches(py) + [os.path.join(REPO, "probes.d"),
                                         os.path.join(REPO, "scripts", "prepare-source.sh")] +
                          markers if kind == "patched" else [])
    key = digest(inputs, [])
    # "pristine" and "patchset": names of equal length, so that the paths
    # the interpreters see (sys.path, __file__, co_filename) have the same
    # lengths and glibc malloc does the same work for (a), (b) and (c).
    dest = os.path.join(BUILD, "src", "%s-%s" % (py.replace(".", ""),
                                                 "patchset" if kind == "patched" else kind))
    stamp = os.path.join(dest, ".bench-key")
    if os.path.exists(stamp) and open(stamp).read() == key:
        return dest, key
    log("preparing", dest)
    if kind == "patched":
        run([os.path.join(REPO, "scripts", "prepare-source.sh"), tarball,
             os.path.join(REPO, "patches", "python" + py),
             os.path.join(REPO, "probes.d"), dest] + markers)
    else:
        shutil.rmtree(dest, ignore_errors=True)
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        run(["tar", "-xf", tarball, "-C", tmp, "--strip-components=1"])
        os.rename(tmp, dest)
    with open(stamp, "w") as f:
        f.write(key)
    return dest, key


def build(name):
    """Configure and build one interpreter, unless an identical build (same
    sources, patches, flags and compiler) is there already."""
    py, kind, extra, _ = BUILDS[name]
    src, srckey = source_tree(py, kind)
    flags = BASE_FLAGS + extra
    script = os.path.join(REPO, "scripts", "build-python.sh")
    key = digest([script], [srckey, src, flags, compiler()])
    obj = os.path.join(BUILD, "obj", name)
    stamp = os.path.join(obj, ".bench-key")
    if os.path.exists(stamp) and open(stamp).read() == key:
        log("up to date:", name)
        return obj
    t0 = time.time()
    env = dict(os.environ, JOBS=os.environ.get("JOBS", "2"))
    run([script, src, obj] + flags, env=env)
    with open(stamp, "w") as f:
        f.write(key)
    log("built %s in %.0f s" % (name, time.time() - t0))
    return obj


def python_of(name):
    return os.path.join(BUILD, "obj", name, "python")


def write_executable(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.chmod(path + ".tmp", 0o755)
    os.rename(path + ".tmp", path)


# --- ELF ---------------------------------------------------------------------

def check_sites(path, kind):
    """The number of marker sites in path, each of which must be a site of
    that kind (usdt.SHAPES); Unmeasured otherwise."""
    try:
        wrong = usdt.site_problems(path, kind)
    except usdt.Error as e:
        raise Unmeasured(str(e))
    sites = len(usdt.read_sites(path, provider=None))
    if wrong:
        raise Unmeasured("%s: %d of %d marker sites are not %s sites, e.g. %s" % (
            path, len(wrong), sites, kind, wrong[0]))
    return sites


def forced_copy(name, markers):
    """A copy of (c)'s interpreter in which the semaphores of markers start
    at 1, as if a consumer were attached: the interpreter does all its work
    for those markers while the sites stay nops, so callgrind can count
    that work (no uprobe runs under valgrind anyway).  It lives next to the
    original, so it finds the same standard library."""
    src = python_of(name)
    dst = "%s-forced-%s" % (src, "-".join(sorted(markers)))
    return forced_elf(src, dst, markers)


def forced_elf(src, dst, markers):
    """dst: a copy of the ELF file src with the semaphores of markers set."""
    data = bytearray(open(src, "rb").read())
    done = set()
    segments = usdt.load_segments(src)
    for site in usdt.read_sites(src):
        if site.name in markers and site.semaphore:
            data[usdt.file_offset(src, site.semaphore, segments)] = 1
            done.add(site.name)
    if done != set(markers):
        raise Unmeasured("%s: no semaphore for %s" % (src, sorted(set(markers) - done)))
    write_executable(dst, data)
    return dst


def elf_sections(path, prefix=".text"):
    """{name: bytes} of the sections of an ELF64 file whose names start
    with prefix (their contents; relocations are not applied in an object
    file, so absolute paths, __FILE__ strings and data layout do not show)."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return {}
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    heads = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
             for i in range(shnum)]
    strtab = heads[shstrndx]
    names = data[strtab[4]:strtab[4] + strtab[5]]
    out = {}
    for h in heads:
        name = names[h[0]:names.index(b"\0", h[0])].decode()
        if name.startswith(prefix) and h[1] != 8:  # SHT_NOBITS
            out[name] = data[h[4]:h[4] + h[5]]
    return out


# --- (b) against (a): machine code -----------------------------------------

def objects(obj, src):
    """{normalised path: absolute path} of a build's object files; 2.7's
    setup.py puts extension objects under a path containing the source
    tree's, which differs between builds."""
    found = {}
    key = src.strip("/")
    for root, _, files in os.walk(obj):
        for f in files:
            if f.endswith(".o"):
                p = os.path.join(root, f)
                rel = os.path.relpath(p, obj).replace(key, "SRC")
                found[rel] = p
    return found


def disassembly(path, section):
    """{function: [normalised instructions]} of one section."""
    text = output(["objdump", "-d", "-w", "--no-show-raw-insn", "-j", section, path])
    funcs = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = re.match(r"^\s+[0-9a-f]+:\s+(.*)$", line)
        if m and cur is not None:
            insn = re.sub(r"\b[0-9a-f]+ <", "<", m.group(1)).strip()
            cur.append(re.sub(r"\s+", " ", insn))
    return funcs


def immediates_only(xs, ys):
    """[(old, new)] if two instruction lists differ only in immediate
    operands ($0x...), else None."""
    if len(xs) != len(ys):
        return None
    pairs = []
    for x, y in zip(xs, ys):
        if x == y:
            continue
        if re.sub(r"\$0x[0-9a-f]+", "$IMM", x) != re.sub(r"\$0x[0-9a-f]+", "$IMM", y):
            return None
        for a, b in zip(re.findall(r"\$(0x[0-9a-f]+)", x), re.findall(r"\$(0x[0-9a-f]+)", y)):
            if a != b:
                pairs.append((int(a, 16), int(b, 16)))
    return pairs


def compare_text(a, b):
    pa, _, _, _ = BUILDS[a]
    obja, objb = os.path.join(BUILD, "obj", a), os.path.join(BUILD, "obj", b)
    srca = source_tree(pa, BUILDS[a][1])[0]
    srcb = source_tree(pa, BUILDS[b][1])[0]
    oa, ob = objects(obja, srca), objects(objb, srcb)
    result = {"pair": [a, b], "objects": len(set(oa) & set(ob)),
              "only_a": sorted(set(oa) - set(ob)), "only_b": sorted(set(ob) - set(oa)),
              "bytes": 0, "differing": []}
    for rel in sorted(set(oa) & set(ob)):
        sa, sb = elf_sections(oa[rel]), elf_sections(ob[rel])
        result["bytes"] += sum(len(v) for v in sa.values())
        if sa == sb:
            continue
        entry = {"object": rel, "sections": {}, "functions": []}
        for sec in sorted(set(sa) | set(sb)):
            if sa.get(sec) == sb.get(sec):
                continue
            entry["sections"][sec] = [len(sa.get(sec, b"")), len(sb.get(sec, b""))]
            if sec not in sa or sec not in sb:
                continue
            da, db = disassembly(oa[rel], sec), disassembly(ob[rel], sec)
            for fn in sorted(set(da) | set(db)):
                if da.get(fn) == db.get(fn):
                    continue
                imm = immediates_only(da.get(fn, []), db.get(fn, []))
                diff = []
                if imm is None:
                    import difflib
                    diff = list(difflib.unified_diff(da.get(fn, []), db.get(fn, []),
                                                     "a", "b", n=1, lineterm=""))[2:42]
                entry["functions"].append({
                    "section": sec, "function": fn,
                    "immediates_only": imm is not None,
                    "immediates": sorted(set(imm or [])), "diff": diff})
        result["differing"].append(entry)
    return result


# --- measurements --------------------------------------------------------------

def workloads(py):
    names = []
    for f in sorted(os.listdir(WORKLOADS)):
        if not f.endswith(".py") or f.startswith("_"):
            continue
        with open(os.path.join(WORKLOADS, f)) as fh:
            head = fh.read(400)
        if py == "2.7" and "# requires: 3" in head:
            continue
        names.append(f[:-3])
    return names


def py_env():
    return {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0",
            "HOME": os.environ.get("HOME", "/root")}


def workload_cmd(python, name, n=None, timed=False):
    cmd = [python, "-s", os.path.join(WORKLOADS, "_run.py"), name]
    if n is not None:
        cmd.append(str(n))
    if timed:
        cmd.append("--time")
    return cmd


def callgrind_file(build, name):
    return os.path.join(BUILD, "callgrind", "%s.%s.out" % (build, name))


def callgrind(build, name):
    return callgrind_run(workload_cmd(python_of(build), name), callgrind_file(build, name))


def callgrind_run(cmd, out, env=None):
    """Instructions cmd executes, whole process; callgrind's data in out."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    # Without address-space randomisation the counts repeat exactly.
    run(["setarch", "-R", "valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
        + cmd, env=env or py_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for line in open(out):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise Unmeasured("callgrind gave no total for %s" % " ".join(cmd))


def functions(cgfile):
    """{function: self instructions} from a callgrind output file, with
    the source tree's path removed."""
    text = output(["callgrind_annotate", "--threshold=100", "--tree=none", "--auto=no",
                   cgfile])
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([0-9,]+) \([^)]*\)\s+(.*)$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        fn = re.sub(r"^.*/src/[^/]+/", "", m.group(2))
        fn = re.sub(r"\s*\[.*\]$", "", fn)
        out[fn] = out.get(fn, 0) + int(m.group(1).replace(",", ""))
    return out


def hotspots(res):
    """Where (c) spends more instructions than (a): the functions of the
    workload with the highest ratio, per Python."""
    out = res["callgrind_hotspots"] = {}
    for py in OURS:
        a, c = build_name(py, "a"), build_name(py, "c")
        rows = res.get("callgrind", {}).get(py, {})
        if not rows:
            continue
        w = max(rows, key=lambda w: rows[w][c] / rows[w][a])
        fa, fc = functions(callgrind_file(a, w)), functions(callgrind_file(c, w))
        diff = sorted(((fc.get(f, 0) - fa.get(f, 0), f) for f in set(fa) | set(fc)),
                      key=lambda x: -abs(x[0]))
        out[py] = {"workload": w, "a": rows[w][a], "c": rows[w][c],
                   "functions": [[f, fa.get(f, 0), fc.get(f, 0), d] for d, f in diff[:8] if d]}


def phase_layout(res, jobs):
    """(b)'s binary run from (a)'s build directory, so that both read the
    same standard library, bytecode caches and build data: what is left of
    (b)/(a) is the machine code's doing.  (b) is built without markers, so
    its binary and (a)'s extension modules share one ABI."""
    from concurrent.futures import ThreadPoolExecutor
    out = res.setdefault("callgrind_b_in_a", {})
    for py in OURS:
        a, b = build_name(py, "a"), build_name(py, "b")
        # Same length as "python": the paths the interpreter sees keep theirs.
        guest = os.path.join(BUILD, "obj", a, "pythob")
        shutil.copy2(python_of(b), guest)

        def one(w):
            run(workload_cmd(guest, w), env=py_env(), stdout=subprocess.DEVNULL)
            cg = os.path.join(BUILD, "callgrind", "%s-in-%s.%s.out" % (b, a, w))
            run(["setarch", "-R", "valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg]
                + workload_cmd(guest, w), env=py_env(), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            for line in open(cg):
                if line.startswith(("summary:", "totals:")):
                    return w, int(line.split()[1])
            raise Unmeasured("callgrind gave no total for %s %s" % (guest, w))

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for w, ir in pool.map(one, workloads(py)):
                out.setdefault(py, {})[w] = ir
                base = res.get("callgrind", {}).get(py, {}).get(w, {}).get(a)
                log("layout    %-5s %-15s (b) in (a)'s tree: %s" % (
                    py, w, "%.4f" % (ir / base) if base else ir))
        os.unlink(guest)


def wall(python, name, n=None):
    t0 = time.perf_counter()
    run(workload_cmd(python, name, n), env=py_env(), stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def geomean(xs):
    import math
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


# Which builds each Python's tables compare, (a) first.
GROUPS = {py: sorted(name for name, b in BUILDS.items() if b[0] == py) for py in OURS + ANCHORS}


def phase_callgrind(res, jobs):
    """Instruction counts are independent of the machine's load, so the
    runs go JOBS at a time."""
    from concurrent.futures import ThreadPoolExecutor
    out = res.setdefault("callgrind", {})

    def one(job):
        py, w, name = job
        # Compile the bytecode of what the workload imports first.
        run(workload_cmd(python_of(name), w), env=py_env(), stdout=subprocess.DEVNULL)
        return job, callgrind(name, w)

    for py, names in GROUPS.items():
        jobs_ = [(py, w, n) for w in workloads(py) for n in names]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for (py_, w, name), ir in pool.map(one, jobs_):
                row = out.setdefault(py_, {}).setdefault(w, {})
                row[name] = ir
                if len(row) == len(names):
                    log("callgrind %-5s %-15s %.0fM %s" % (py_, w, row[names[0]] / 1e6, " ".join(
                        "%s=%.4f" % (n, row[n] / row[names[0]]) for n in names[1:])))
    hotspots(res)


def phase_wall(res, repeats):
    out = res.setdefault("wall", {})
    for py, names in GROUPS.items():
        for w in workloads(py):
            times = {n: [] for n in names}
            for n in names:
                wall(python_of(n), w)
            for _ in range(repeats):
                for n in names:  # interleaved, so that load drifts hit all alike
                    times[n].append(wall(python_of(n), w))
            out.setdefault(py, {})[w] = {n: statistics.median(t) for n, t in times.items()}
            row = out[py][w]
            log("wall      %-5s %-15s %s" % (py, w, " ".join(
                "%s=%.3f" % (n, row[n] / row[names[0]]) for n in names[1:])))


# --- (d): live consumers ---------------------------------------------------------

# Count-only bpftrace programs: the markers each one enables.
CONSUMERS = {
    "function": ["function__entry", "function__return"],
    "line": ["line"],
    "cfunction": ["cfunction__entry", "cfunction__return"],
    "gc": ["gc__start", "gc__done"],
    "import": ["import__find__load__start", "import__find__load__done"],
}
# The workload each consumer runs, and its size there.
LIVE_WORKLOAD = {"function": "calls", "line": "calls", "cfunction": "builtins_c",
                 "gc": "calls", "import": "calls"}
# Runs of a second or more: this VM's speed swings within a second, and
# longer runs average that out (the floor's spread over repeats falls from
# about 30% to 15% going from 2M to 8M hits).
LIVE_N = {"calls": 600000, "builtins_c": 80000}
LIVE_BUILDS = [build_name(py, "c") for py in OURS]
# phase_work: the consumers whose interpreter work it counts, on workloads
# this many times smaller than the live phase's (instruction counts need
# no long runs).
WORK_CONSUMERS = ["function", "cfunction", "line"]
# ... and the consumers that fire nothing in call-heavy code, whose
# semaphores must not add work there.
QUIET_CONSUMERS = ["gc", "import"]
WORK_SCALE = 20


def bpftrace_program(elf, markers):
    return 'BEGIN { printf("tracing\\n"); } ' + " ".join(
        "usdt:%s:python:%s { @e = count(); }" % (elf, m) for m in markers)


class BpftraceHung(Unmeasured):
    pass


def traced(elf, markers, cmd, env=None):
    """Run cmd under a count-only bpftrace consumer of markers in elf:
    (what cmd printed last, events counted).  The consumer is system-wide
    (no -p, no -c), started before cmd: a uprobe on a file holds in every
    process that maps it, whenever it does, and the kernel counts up the
    semaphores at the mapping.  With -c, bpftrace 0.17 looks the markers
    up in the child's maps at its start, where a module that is imported
    later (usdtmon) is not yet: "Error finding location for probe".
    Now and then bpftrace does not stop at SIGINT (seen on this kernel
    with quiet markers, after a run that fired none): it is killed and the
    run made once more, with a warning."""
    try:
        return traced_once(elf, markers, cmd, env)
    except BpftraceHung as e:
        log("warning: %s; killed, running again" % e)
        return traced_once(elf, markers, cmd, env)


def traced_once(elf, markers, cmd, env=None):
    import signal
    tracer = subprocess.Popen(
        ["bpftrace", "-q", "-e", bpftrace_program(elf, markers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
        env=dict(py_env(), BPFTRACE_MAP_KEYS_MAX="4096"))
    p = None
    try:
        if tracer.stdout.readline() == "tracing\n":
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, env=env or py_env())
    finally:
        if tracer.poll() is None:
            tracer.send_signal(signal.SIGINT)
        try:
            counted, err = tracer.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.communicate()
            raise BpftraceHung("bpftrace %s on %s did not stop within 300 s of SIGINT"
                               % (markers, elf))
    if p is None:
        raise Unmeasured("bpftrace %s on %s did not start: %s" % (markers, elf, err[-500:]))
    events = 0
    for line in counted.splitlines():
        m = re.match(r"@e: (\d+)", line)
        if m:
            events = int(m.group(1))
    printed = [line.strip() for line in p.stdout.splitlines() if line.strip()]
    if p.returncode != 0 or tracer.returncode != 0 or not printed:
        raise Unmeasured("bpftrace %s on %s failed: %s%s" % (
            markers, elf, err[-500:], p.stderr[-500:]))
    return printed[-1], events


def main_events(elf, markers, cmd_of, n, env=None):
    """The events of markers that main(n) fires: a count-only consumer's
    count for cmd_of(n) less that for cmd_of(0), taken until two agree
    (at most three times; else the largest, with a warning).  A consumer
    that attached late, or missed hits, must not make the work per event
    look larger than it is."""
    counts = []
    for _ in range(3):
        _, e0 = traced(elf, markers, cmd_of(0), env)
        _, en = traced(elf, markers, cmd_of(n), env)
        if en - e0 in counts:
            return en - e0
        counts.append(en - e0)
    log("warning: %s on %s: the counts of main() differ: %s; taking the largest"
        % (markers, elf, counts))
    return max(counts)


# bench/floor.c's builds: the kind of their site and gcc's flags for it,
# the shipped site first.
FLOORS = [("nop;nop10", ["-DNOP10", "-I" + os.path.join(REPO, "markers")]), ("nop", [])]


def floor_binaries():
    out = {}
    for kind, flags in FLOORS:
        exe = os.path.join(BUILD, "floor-%s" % kind.replace(";", "-"))
        run(["gcc", "-O2"] + flags + ["-o", exe, os.path.join(BENCH, "floor.c")])
        check_sites(exe, kind)
        out[kind] = exe
    return out


FLOOR_HITS = 8000000


def floor_once(exe):
    """One run of the C loop without and one with a count-only consumer:
    (ns without, ns with, hits counted)."""
    plain = int(output([exe, str(FLOOR_HITS)]))
    prog = "usdt:%s:bench:hit { @e = count(); }" % exe
    p = subprocess.run(["bpftrace", "-q", "-e", prog, "-c", "%s %d" % (exe, FLOOR_HITS)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    lines = [x for x in p.stdout.split() if x.isdigit()]
    m = re.search(r"@e: (\d+)", p.stdout)
    if p.returncode != 0 or not m or not lines:
        raise Unmeasured("bpftrace on %s failed: %s" % (exe, p.stderr[-300:]))
    return plain, int(lines[0]), int(m.group(1))


def floor_ns(runs):
    """ns per hit over floor_once() runs (medians)."""
    plain, probed, events = zip(*runs)
    return (statistics.median(probed) - statistics.median(plain)) / statistics.median(events)


def phase_live(res, repeats):
    res.pop("live", None)
    sites = {name: shipped_sites(name) for name in LIVE_BUILDS}
    floors = floor_binaries()
    # The two sites interleaved, so that their ratio is taken repeat by repeat.
    runs = {kind: [] for kind in floors}
    for _ in range(repeats):
        for kind, _ in FLOORS:
            runs[kind].append(floor_once(floors[kind]))
    floor = {}
    for kind, _ in FLOORS:
        plain, probed, events = zip(*runs[kind])
        ns = floor_ns(runs[kind])
        floor[kind] = {"ns_per_hit": ns, "hits": statistics.median(events),
                       "plain_ns": statistics.median(plain),
                       "traced_ns": statistics.median(probed)}
        log("floor: %-9s site %.0f ns per hit" % (kind, ns))
    live = res["live"] = {"floor": floor, "python": {},
                          # The shipped site's cost per hit against sys/sdt.h's,
                          # repeat by repeat.
                          "floor_ratio": statistics.median(
                              floor_ns([a]) / floor_ns([b])
                              for a, b in zip(runs[SHIPPED], runs["nop"]))}
    log("floor: %s site %.2fx the nop site per hit" % (SHIPPED, live["floor_ratio"]))
    for name in LIVE_BUILDS:
        entry = live["python"][BUILDS[name][0]] = {
            "sites": sites[name], "site_bytes": usdt.SHAPES[SHIPPED].hex(" "), "cases": {}}
        for consumer, markers in CONSUMERS.items():
            live_consumer(entry, consumer, markers, name, floors[SHIPPED], repeats)


def shipped_sites(name):
    """The number of marker sites of (c)'s interpreter, once each is
    checked to be the shipped nop; nop10."""
    try:
        return check_sites(python_of(name), SHIPPED)
    except Unmeasured as e:
        raise Unmeasured("%s; build %s from the current patches" % (e, name))


def live_consumer(entry, consumer, markers, name, floor, repeats):
    """The live case of one consumer.  Each repeat runs: the workload
    without a consumer, on the copy with the consumer's semaphores set
    (forced_copy(): the interpreter's work for the markers without the
    uprobes; sites stay nops), under the consumer, and for the function
    consumer the C floor with the same site.  This VM's speed drifts by
    tens of percent within a minute, so the ratios the bars use are taken
    within each repeat (runs seconds apart) and their median kept, besides
    the medians of each measurement."""
    py = BUILDS[name][0]
    python = python_of(name)
    w = LIVE_WORKLOAD[consumer]
    n = LIVE_N[w]
    forced = forced_copy(name, markers) if consumer in WORK_CONSUMERS else None
    # Events outside main(n) (startup, exit) are counted apart.
    base = traced(python, markers, workload_cmd(python, w, 0, timed=True))[1]
    ss = []
    for _ in range(repeats):
        s = {"plain": float(output(workload_cmd(python, w, n, timed=True), env=py_env()))}
        if forced:
            s["forced"] = float(output(workload_cmd(forced, w, n, timed=True), env=py_env()))
        t, e = traced(python, markers, workload_cmd(python, w, n, timed=True))
        s["traced"], s["events"] = float(t), e - base
        if s["events"] > 0:
            s["ns_per_event"] = (s["traced"] - s["plain"]) * 1e9 / s["events"]
            if forced:
                s["uprobe_ns_per_hit"] = (s["traced"] - s["forced"]) * 1e9 / s["events"]
        if consumer == "function":
            s["floor_ns_per_hit"] = floor_ns([floor_once(floor)])
        ss.append(s)
    med = {k: statistics.median(x[k] for x in ss) for k in ss[0]}
    ev = med["events"]
    tp, tt = med["plain"], med["traced"]
    case = {"workload": w, "n": n, "events": ev, "plain_s": tp, "traced_s": tt,
            "slowdown": tt / tp, "samples": ss,
            "ns_per_event": (tt - tp) * 1e9 / ev if ev > 0 else None}
    if "floor_ns_per_hit" in med:
        case["floor_ns_per_hit"] = med["floor_ns_per_hit"]
        if ev > 0:
            # A call is two events; in floors, repeat by repeat.
            case["per_call_in_floors"] = statistics.median(
                2 * x["ns_per_event"] / x["floor_ns_per_hit"] for x in ss)
            if forced:
                case["uprobe_in_floors"] = statistics.median(
                    x["uprobe_ns_per_hit"] / x["floor_ns_per_hit"] for x in ss)
    if forced and ev > 0:
        # ns per event = the interpreter's work + one uprobe hit.
        case["forced_s"] = med["forced"]
        case["work_ns_per_event"] = (med["forced"] - tp) * 1e9 / ev
        case["uprobe_ns_per_hit"] = (tt - med["forced"]) * 1e9 / ev
    entry["cases"][consumer] = case
    log("live %-4s %-9s %d events, x%.3f, %s ns/event%s%s" % (
        py, consumer, ev, case["slowdown"],
        "%.0f" % case["ns_per_event"] if case["ns_per_event"] else "-",
        " (work %.0f + uprobe %.0f)" % (case["work_ns_per_event"], case["uprobe_ns_per_hit"])
        if "work_ns_per_event" in case else "",
        ", per call %.2f floors" % case["per_call_in_floors"]
        if "per_call_in_floors" in case else ""))


def phase_work(res, jobs):
    """The interpreter's own work per event while a consumer is attached,
    in instructions: callgrind runs the workload on (c) and on a copy with
    the consumer's semaphores set (forced_copy()), at size n and 0, and the
    difference of the differences is divided by the events bpftrace counts
    in main(n).  Deterministic, unlike the wall clock of the live phase; the
    uprobe itself is not included (valgrind runs no uprobe).  For the quiet
    consumers (gc, import: no event in call-heavy code) it gives the extra
    instructions their semaphores cost there, which should be none."""
    from concurrent.futures import ThreadPoolExecutor
    work = res["work"] = {}
    runs = []
    for name in LIVE_BUILDS:
        python = python_of(name)
        shipped_sites(name)
        for consumer in WORK_CONSUMERS + QUIET_CONSUMERS:
            markers = CONSUMERS[consumer]
            w = LIVE_WORKLOAD[consumer]
            n = LIVE_N[w] // WORK_SCALE
            forced = forced_copy(name, markers)
            events = main_events(python, markers, lambda size: workload_cmd(
                python, w, size, timed=True), n)
            work.setdefault(BUILDS[name][0], {})[consumer] = {
                "workload": w, "n": n, "events": events}
            for label, exe in (("plain", python), ("forced", forced)):
                for size in (0, n):
                    runs.append((name, consumer, label, size, exe, w))

    def one(r):
        name, consumer, label, size, exe, w = r
        out = os.path.join(BUILD, "callgrind", "work.%s.%s.%s.%d.out" % (
            name, consumer, label, size))
        return r, callgrind_run(workload_cmd(exe, w, size), out)

    counts = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for (name, consumer, label, size, _, _), ir in pool.map(one, runs):
            counts[name, consumer, label, size] = ir
    for name in LIVE_BUILDS:
        py = BUILDS[name][0]
        for consumer in WORK_CONSUMERS + QUIET_CONSUMERS:
            c = work[py][consumer]
            n = c["n"]
            extra = ((counts[name, consumer, "forced", n] - counts[name, consumer, "forced", 0])
                     - (counts[name, consumer, "plain", n] - counts[name, consumer, "plain", 0]))
            c["instructions"] = extra
            # main() alone: with the import or gc semaphore set, startup's
            # own imports and collections do the markers' work.
            c["ratio"] = ((counts[name, consumer, "forced", n] - counts[name, consumer, "forced", 0])
                          / (counts[name, consumer, "plain", n] - counts[name, consumer, "plain", 0]))
            if consumer in QUIET_CONSUMERS:
                log("work %-4s %-9s %d events, %+d instructions in main() (x%.6f)" % (
                    py, consumer, c["events"], extra, c["ratio"]))
                continue
            if c["events"] <= 0:
                raise Unmeasured("%s: no %s events in %s" % (name, consumer, c["workload"]))
            c["per_event"] = extra / c["events"]
            log("work %-4s %-9s %d events, %.0f instructions per event" % (
                py, consumer, c["events"], c["per_event"]))


# --- usdtmon: the markers from sys.monitoring ------------------------------------
#
# usdtmon (module/usdtmon) on upstream's own 3.x without markers, the (a)
# builds: there it fires every family, as on a distribution's Python
# built without --with-dtrace.  Measured: what it costs loaded and idle
# (start-up, each workload's main(), the watcher's wake-ups), and its work
# per event with a consumer attached, as phase work measures ours (a copy
# of its shared object with the family's semaphores set), beside a naive
# sys.monitoring tool written in Python (bench/naive_tool.py) that computes
# the same arguments.

MODULE_BUILDS = [build_name(py, "a") for py in OURS if not py.startswith("2.")]
MODULE_INPUTS = (["scripts/build-module.sh", "probes.d"]
                 + ["module/usdtmon/" + f for f in sorted(os.listdir(os.path.join(REPO, "module", "usdtmon")))
                    if not f.startswith((".", "__pycache__"))]
                 + ["markers/" + f for f in sorted(os.listdir(os.path.join(REPO, "markers")))])
STARTUP_REPEATS = 21
WAKEUP_SECONDS = 2
# The idle runs keep usdtmon's watcher asleep (a day between looks): its
# wake-ups come with the wall clock, which valgrind slows 50 times, and more
# on a loaded machine, so callgrind would count a varying number of them in
# each workload.  The watcher is measured apart instead: its wake-ups a
# second (WAKEUPS_PROGRAM) times the instructions of one (watcher_cost()).
WATCHER_ASLEEP = {"USDTMON_INTERVAL_MS": str(24 * 3600 * 1000)}
# watcher_cost(): how often the watcher looks while callgrind counts it
WATCHER_INTERVAL_MS = 10
# The workloads whose main() does nothing (start-up alone): their idle ratio
# would be one of two empty differences; usdtmon's start-up is measured apart.
EMPTY_MAIN = {"startup"}
# A program that sleeps and reports the context switches of every thread but
# the main one (usdtmon's watcher is the only other) per second.
WAKEUPS_PROGRAM = """
import os, re, time
import usdtmon
def switches():
    out = {}
    for t in os.listdir("/proc/self/task"):
        with open("/proc/self/task/%%s/status" %% t) as f:
            out[t] = sum(int(n) for n in re.findall(r"_ctxt_switches:\\s+(\\d+)", f.read()))
    return out
time.sleep(0.3)
a = switches()
time.sleep(%d)
b = switches()
main = str(os.getpid())
print(sum(b[t] - a.get(t, 0) for t in b if t != main) / %d.0)
""" % (WAKEUP_SECONDS, WAKEUP_SECONDS)


def watcher_cost(python, dest):
    """Instructions of one look of usdtmon's watcher thread (callgrind, each
    thread apart: the watcher is the second) while the program sleeps."""
    out = os.path.join(BUILD, "callgrind", "module.watcher.%s.out" % os.path.basename(dest))
    for old in glob.glob(out + "*"):
        os.remove(old)
    env = dict(module_env(dest), USDTMON_INTERVAL_MS=str(WATCHER_INTERVAL_MS))
    run(["setarch", "-R", "valgrind", "--tool=callgrind", "--separate-threads=yes",
         "--callgrind-out-file=" + out, python, "-s", "-c",
         "import usdtmon, time; time.sleep(%d)" % WAKEUP_SECONDS],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    thread = out + "-02"
    total = None
    for line in open(thread):
        if line.startswith("totals:"):
            total = int(line.split()[1])
    # Its looks: the calls of pthread_cond_timedwait() from watch()
    text = output(["callgrind_annotate", "--tree=caller", "--threshold=100", "--auto=no",
                   thread])
    looks = None
    for m in re.finditer(r"<\s+\S*:watch \((\d+)x\).*\n\s*[0-9,]+ \([^)]*\)\s+\*\s+\S*"
                         r"pthread_cond_timedwait", text):
        looks = int(m.group(1))
    if not total or not looks:
        raise Unmeasured("%s: no watcher thread in callgrind's %s" % (python, thread))
    return total / looks


def module_build(name):
    """usdtmon built for build name's interpreter: build/bench/module/NAME,
    the directory to put on sys.path."""
    dest = os.path.join(BUILD, "module", name)
    stamp = os.path.join(dest, ".bench-key")
    with open(os.path.join(BUILD, "obj", name, ".bench-key")) as f:
        built = f.read()
    key = digest([os.path.join(REPO, p) for p in MODULE_INPUTS], [built])
    if os.path.exists(stamp) and open(stamp).read() == key:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    run([os.path.join(REPO, "scripts", "build-module.sh"), python_of(name), dest])
    with open(stamp, "w") as f:
        f.write(key)
    return dest


def module_so(dest):
    core = [f for f in os.listdir(os.path.join(dest, "usdtmon")) if f.startswith("_core")]
    if len(core) != 1:
        raise Unmeasured("%s/usdtmon: %d shared objects" % (dest, len(core)))
    return os.path.join(dest, "usdtmon", core[0])


def forced_module(dest, markers):
    """A copy of the package at dest whose shared object has the semaphores
    of markers set: usdtmon sees a consumer at import and fires them."""
    out = "%s-forced-%s" % (dest, "-".join(sorted(markers)))
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(dest, out, ignore=shutil.ignore_patterns("__pycache__"))
    so = module_so(out)
    forced_elf(module_so(dest), so + ".tmp", markers)
    os.rename(so + ".tmp", so)
    return out


def module_env(dest):
    return dict(py_env(), PYTHONPATH=dest)


def site_env(dest, load=True):
    """module_env() with a sitecustomize that imports usdtmon (load), or an
    empty directory in its place (not load: the baseline, whose imports
    search the same number of path entries).  Every run loads usdtmon at
    start-up, as make install-module SITE_WIDE=1's .pth does, and runs the
    workload exactly as without it (python -m usdtmon adds runpy's
    imports, whose heap alone moves a workload's main() by 5%)."""
    site = dest + ("-site" if load else "-nosite")
    os.makedirs(site, exist_ok=True)
    if load:
        with open(os.path.join(site, "sitecustomize.py"), "w") as f:
            f.write("import usdtmon\n")
    return dict(py_env(), PYTHONPATH=dest + os.pathsep + site)


def module_cmd(python, name, n=None, timed=False):
    """workload_cmd() under python -m usdtmon."""
    cmd = workload_cmd(python, name, n, timed)
    return cmd[:2] + ["-m", "usdtmon"] + cmd[2:]


def naive_cmd(python, family, name, n=None):
    cmd = workload_cmd(python, name, n)
    return cmd[:2] + [os.path.join(BENCH, "naive_tool.py"), family] + cmd[2:]


def module_cgfile(key):
    return os.path.join(BUILD, "callgrind", "module.%s.out" % ".".join(str(k) for k in key))


def main_instructions(cg, key):
    """Instructions of main() alone: the run at n less the run at 0."""
    return cg[key + (True,)] - cg[key + (False,)]


def object_instructions(cgfile, path):
    """Instructions callgrind attributes to the ELF file path (its
    functions' self cost) in cgfile."""
    text = output(["callgrind_annotate", "--threshold=100", "--tree=none", "--auto=no",
                   cgfile])
    total = 0
    for line in text.splitlines():
        m = re.match(r"^\s*([0-9,]+) \([^)]*\)\s+.*\[(.*)\]$", line)
        if m and m.group(2) == path:
            total += int(m.group(1).replace(",", ""))
    return total


def idle_workloads(py):
    return [w for w in workloads(py) if w not in EMPTY_MAIN]


def phase_module(res, jobs):
    from concurrent.futures import ThreadPoolExecutor
    out = res["module"] = {}
    runs = []   # (key..., with main: bool), cmd, env
    events = {}
    for name in MODULE_BUILDS:
        py = BUILDS[name][0]
        python = python_of(name)
        dest = module_build(name)
        so = module_so(dest)
        entry = out[py] = {"build": name, "workloads": {}, "families": {}}
        # Idle: each workload's main() with usdtmon loaded and no consumer.
        for w in idle_workloads(py):
            run(workload_cmd(python, w), env=py_env(), stdout=subprocess.DEVNULL)
            for full in (True, False):
                n = None if full else 0
                runs.append(((py, "idle", w, "plain", full), workload_cmd(python, w, n),
                             site_env(dest, load=False)))
                runs.append(((py, "idle", w, "module", full), workload_cmd(python, w, n),
                             dict(site_env(dest), **WATCHER_ASLEEP)))
        # Start-up: python -c pass, without and with `import usdtmon`.
        for label, code in (("plain", "pass"), ("module", "import usdtmon")):
            runs.append(((py, "startup", label), [python, "-s", "-c", code], module_env(dest)))
        # Live: each family's work per event, usdtmon's and a naive tool's.
        for family in WORK_CONSUMERS:
            markers = CONSUMERS[family]
            w = LIVE_WORKLOAD[family]
            n = LIVE_N[w] // WORK_SCALE
            forced = forced_module(dest, markers)
            # The copy's first run compiles its package's modules (11M
            # instructions), in whichever of the measured runs came first.
            run(module_cmd(python, w, 0), env=module_env(forced), stdout=subprocess.DEVNULL)
            ev = main_events(so, markers, lambda size: module_cmd(
                python, w, size, timed=True), n, module_env(dest))
            if ev <= 0:
                raise Unmeasured("%s: usdtmon fired no %s event in %s" % (name, family, w))
            events[py, family] = (w, n, ev)
            for full in (True, False):
                size = n if full else 0
                runs.append(((py, family, "idle", full), module_cmd(python, w, size),
                             module_env(dest)))
                runs.append(((py, family, "forced", full), module_cmd(python, w, size),
                             module_env(forced)))
                runs.append(((py, family, "naive", full), naive_cmd(python, family, w, size),
                             py_env()))

    def one(job):
        key, cmd, env = job
        return key, callgrind_run(cmd, module_cgfile(key), env)

    cg = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for key, ir in pool.map(one, runs):
            cg[key] = ir
    for name in MODULE_BUILDS:
        py = BUILDS[name][0]
        python = python_of(name)
        dest = module_build(name)
        entry = out[py]
        so = module_so(dest)
        for w in idle_workloads(py):
            plain = main_instructions(cg, (py, "idle", w, "plain"))
            loaded = main_instructions(cg, (py, "idle", w, "module"))
            # usdtmon's own instructions in main(): what it runs there, idle
            own = [object_instructions(module_cgfile((py, "idle", w, "module", full)), so)
                   for full in (True, False)]
            entry["workloads"][w] = {"plain": plain, "module": loaded, "ratio": loaded / plain,
                                     "own": own[0] - own[1]}
            log("module %-5s idle %-15s main() x%.5f, %d of usdtmon's instructions" % (
                py, w, loaded / plain, own[0] - own[1]))
        entry["startup_instructions"] = {
            "plain": cg[py, "startup", "plain"], "module": cg[py, "startup", "module"]}
        times = {"plain": [], "module": []}
        for _ in range(STARTUP_REPEATS):
            for label, code in (("plain", "pass"), ("module", "import usdtmon")):
                t = time.perf_counter()
                run([python, "-s", "-c", code], env=module_env(dest))
                times[label].append(time.perf_counter() - t)
        entry["startup_ms"] = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        entry["wakeups_per_s"] = float(output([python, "-s", "-c", WAKEUPS_PROGRAM],
                                              env=module_env(dest)).split()[-1])
        entry["wakeup_instructions"] = watcher_cost(python, dest)
        log("module %-5s start-up %.1f -> %.1f ms, x%.4f instructions; watcher %.1f wake-ups/s"
            ", %.0f instructions each" % (
                py, entry["startup_ms"]["plain"], entry["startup_ms"]["module"],
                cg[py, "startup", "module"] / cg[py, "startup", "plain"], entry["wakeups_per_s"],
                entry["wakeup_instructions"]))
        for family in WORK_CONSUMERS:
            w, n, ev = events[py, family]
            idle = main_instructions(cg, (py, family, "idle"))
            forced = main_instructions(cg, (py, family, "forced"))
            naive = main_instructions(cg, (py, family, "naive"))
            entry["families"][family] = {
                "workload": w, "n": n, "events": ev,
                "per_event": (forced - idle) / ev, "naive_per_event": (naive - idle) / ev}
            log("module %-5s %-9s %d events, %.0f instructions per event (naive Python tool %.0f)" % (
                py, family, ev, (forced - idle) / ev, (naive - idle) / ev))


# --- main ------------------------------------------------------------------------

def machine():
    def first(cmd):
        try:
            return output(cmd, stderr=subprocess.STDOUT).strip().splitlines()[0]
        except (OSError, subprocess.CalledProcessError):
            return "unavailable"
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = "Linux"
    if os.path.exists("/etc/os-release"):
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    return {
        "os": os_name, "kernel": platform.release(), "cpu": cpu,
        "cores": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE") *
                                                      os.sysconf("SC_PHYS_PAGES") / 2 ** 30),
        "gcc": compiler(), "valgrind": first(["valgrind", "--version"]),
        "bpftrace": first(["bpftrace", "--version"]), "binutils": first(["objdump", "--version"]),
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    all_phases = "build,text,callgrind,layout,wall,live,work,module"
    ap.add_argument("--phases", default=all_phases)
    ap.add_argument("--repeats", type=int, default=7, help="wall-clock repeats")
    ap.add_argument("--live-repeats", type=int, default=9)
    ap.add_argument("--keep", action="store_true",
                    help="merge into the existing results.json instead of starting anew")
    args = ap.parse_args()
    phases = args.phases.split(",")
    os.makedirs(BUILD, exist_ok=True)
    res = {}
    if (args.keep or set(phases) != set(all_phases.split(","))) and os.path.exists(RESULTS):
        res = json.load(open(RESULTS))
    res["machine"] = machine()
    res["wall_repeats"] = args.repeats
    res["live_repeats"] = args.live_repeats
    res["builds"] = {n: {"python": b[0], "tree": b[1], "flags": BASE_FLAGS + b[2], "what": b[3]}
                     for n, b in BUILDS.items()}
    # A kept phase's failure ("phase: why") stays on record until the phase
    # runs again; any other failure was this run's alone
    kept = set(all_phases.split(",")) - set(phases)
    failed = [f for f in res.get("failed", []) if f.split(":")[0] in kept]

    def save():
        with open(RESULTS + ".tmp", "w") as f:
            json.dump(res, f, indent=1, sort_keys=True)
        os.rename(RESULTS + ".tmp", RESULTS)

    t0 = time.time()
    try:
        if "build" in phases:
            for name in BUILDS:
                build(name)
        for name in BUILDS:
            if not os.access(python_of(name), os.X_OK):
                raise Unmeasured("%s is not built" % python_of(name))
        steps = [
            ("text", lambda: res.__setitem__("text", [
                compare_text(build_name(py, "a"), build_name(py, "b")) for py in OURS])),
            ("callgrind", lambda: phase_callgrind(res, int(os.environ.get("JOBS", "2")))),
            ("layout", lambda: phase_layout(res, int(os.environ.get("JOBS", "2")))),
            ("wall", lambda: phase_wall(res, args.repeats)),
            ("live", lambda: phase_live(res, args.live_repeats)),
            ("work", lambda: phase_work(res, int(os.environ.get("JOBS", "2")))),
            ("module", lambda: phase_module(res, int(os.environ.get("JOBS", "2")))),
        ]
        for phase, fn in steps:
            if phase not in phases:
                continue
            t = time.time()
            try:
                fn()
            except (Unmeasured, subprocess.CalledProcessError, OSError, ValueError) as e:
                failed.append("%s: %s" % (phase, e))
                log("could not measure", phase, ":", e)
            res.setdefault("durations", {})[phase] = round(time.time() - t)
            save()
    except (Unmeasured, subprocess.CalledProcessError) as e:
        failed.append(str(e))
    res["failed"] = failed
    res.setdefault("durations", {})["total"] = round(time.time() - t0)
    save()
    log("results in", RESULTS)
    if failed:
        for f in failed:
            log("NOT MEASURED:", f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
