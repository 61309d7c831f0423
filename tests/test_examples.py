"""The SystemTap example scripts (examples/*.stp): they elaborate against
every build whose markers they use, with our tapsets installed next to
SystemTap's own python.stp; and they run, compiled for Debian's 6.1 kernel,
in the qemu guest (tests/guest), on Python 2.7, 3.13 and 3.14 and a fixture
each (GUEST_CASES): the deterministic ones print exactly what the fixture's
expected events imply, the periodic and timing ones plausible, checked
figures (CHECKS).
"""

import os
import re

import pytest

import cases
import harness
import usdt
import staptools
from guest import jobs, session

GUEST_CASES = cases.GUEST_EXAMPLES

BUILDS = harness.builds()


def build_markers(build):
    return set(s.name for s in usdt.read_sites(harness.marker_object(build))
               if s.provider == "python")


def build_cases():
    """(build, example) where the build has every marker the example uses
    (every example on a build not made yet: its tests then say so), on the
    builds cases.consumer_builds gives the examples."""
    for build in cases.consumer_builds("examples", BUILDS):
        try:
            have = build_markers(build)
        except AssertionError:
            have = set(usdt.parse_probes(harness.PROBES_D))
        for example in staptools.examples():
            used = staptools.aliases_used(os.path.join(staptools.EXAMPLES, example))
            if set(staptools.alias_marker(a) for a in used) <= have:
                yield build, example


CASES = list(build_cases())


@pytest.mark.quick
def test_every_example_is_checked():
    """Each example elaborates somewhere, and the guest runs them all."""
    examples = staptools.examples()
    assert len(examples) >= 9
    assert set(examples) == set(e for _, e in CASES)
    assert set(examples) == set(c[0] for c in GUEST_CASES)
    for example in examples:
        with open(os.path.join(staptools.EXAMPLES, example)) as f:
            head = f.read().split("*/", 1)[0]
        for needed in (" - ", "-c '", "-x PID", "Sample output"):
            assert needed in head, "%s: its header lacks %r" % (example, needed)
        assert "%{" not in open(os.path.join(staptools.EXAMPLES, example)).read()


@pytest.fixture(scope="module")
def trees():
    """A tapset tree per linkage, with every build of it installed."""
    made = {}
    yield made
    for tree in made.values():
        tree.__exit__(None, None, None)


def tree_for(trees, build):
    key = staptools.variant(build)
    if key not in trees:
        installed = [b for b in BUILDS if staptools.variant(b) == key]
        trees[key] = staptools.TapsetTree([harness.interpreter(b) for b in installed]).__enter__()
    return trees[key]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "%s-%s" % c)
def test_example_elaborates(trees, case):
    build, example = case
    staptools.need_stap()
    tree = tree_for(trees, build)
    args = [a for e, a, _ in GUEST_CASES if e == example][0]
    proc = tree.stap("-p2", os.path.join(staptools.EXAMPLES, example), *args)
    assert proc.returncode == 0, proc.stderr
    probed = set(p for p, _ in staptools.derived_probes(proc.stdout))
    assert harness.marker_object(build) in probed


# --- in the guest ------------------------------------------------------------

def guest_jobs_of(item):
    """The guest jobs a test of this file reads (tests/guest/jobs.py)."""
    if item.originalname == "test_example_runs":
        return [jobs.example_name(*item.callspec.params["case"])]
    return []


def fixture_source(fixture):
    with open(os.path.join(harness.DATA, fixture + ".py")) as f:
        return f.read().splitlines()


def line_of(fixture, text):
    """The number of the fixture's line that is text (stripped)."""
    numbers = [i + 1 for i, line in enumerate(fixture_source(fixture)) if line.strip() == text]
    assert len(numbers) == 1, (fixture, text, numbers)
    return numbers[0]


def fixture_frames(build, fixture):
    """The fixture's function events (expected/<series>/FIXTURE.txt) as
    ("entry" | "return", funcname, lineno, file)."""
    events = []
    for line in harness.read_expected(build, fixture):
        words = line.split(" ")
        if words[0] in ("function__entry", "function__return"):
            events.append((words[0][len("function__"):], words[2], int(words[3]), words[1]))
    return events


def stacks_of(build, fixture):
    """Each call's stack of the fixture's frames, outermost first: [(funcname,
    entry line, file)]; in call order, one per function__entry."""
    stack, stacks = [], []
    for kind, name, lineno, file in fixture_frames(build, fixture):
        if kind == "entry":
            stack.append((name, lineno, file))
            stacks.append(list(stack))
        else:
            assert stack and stack[-1][0] == name, (build, fixture, name, stack)
            stack.pop()
    return stacks


def check_calltree(out, build, fixtures):
    # README's one-line call tree (test_guest.py), printed by the example.
    assert (staptools.calltree_lines(out, fixtures)
            == staptools.expected_calltree(harness.series_of(build)))


def ours(out, fixtures):
    """out with the fixture's directory taken out of file names: the
    fixture's files read call_stack.py, spin.py ... (Python 2 names the
    script as given, relative), the standard library's stay absolute."""
    return out.replace(fixtures, "")


def check_slowcalls(out, build, fixtures):
    # Threshold 0: every return, with its stack, innermost first.
    blocks = []
    for line in ours(out, fixtures).splitlines():
        m = re.match(r"^\S+\(\d+\) (\S+) took (\d+) ms$", line)
        if m:
            blocks.append((m.group(1), []))
        else:
            assert line.startswith("    ") and blocks, "not slowcalls output: %r" % line
            blocks[-1][1].append(line[4:])
    mine = [(name, frames) for name, frames in blocks
            if frames and not frames[0].split("(", 1)[1].startswith(("/", "<"))]
    expected = []
    stack = []
    for kind, name, lineno, file in fixture_frames(build, "call_stack"):
        if kind == "entry":
            stack.append("%s (%s:%d)" % (name, file, lineno))
        else:
            expected.append((name, list(reversed(stack))))
            stack.pop()
    assert mine == expected


def check_stacks(out, build, fixtures):
    # Folded stacks, "execname;outermost;...;innermost NANOSECONDS".
    folded = {}
    for line in out.splitlines():
        stack, ns = line.rsplit(" ", 1)
        folded[stack] = int(ns)
    execname = os.path.basename(harness.interpreter(build))[:15]
    for stack in stacks_of(build, "call_stack"):
        key = ";".join([execname] + [name for name, _, _ in stack])
        assert key in folded, "no folded stack %s in:\n%s" % (key, out)
        assert folded[key] >= 0


def check_cfunctions(out, build, fixtures):
    # spin.py calls sum() once per spin(), and time.time() once per loop
    # test and once before the loop: the busiest C functions, two calls
    # apart.  Each module's total covers
    # its functions' counts.
    modules, functions = {}, {}
    section = None
    for line in out.splitlines():
        if not line.strip():
            continue
        count, what = line.split(None, 1)
        if count == "CALLS":
            section = modules if what == "MODULE" else functions
            continue
        section[what] = int(count)
    assert modules and functions, out
    # (Python 2's range() is a C function too, called as often as sum().)
    builtins = "__builtin__" if build.startswith("python2") else "builtins"
    busiest = ["time.time", builtins + ".sum"]
    if build.startswith("python2"):
        busiest.append("__builtin__.range")
        assert functions["__builtin__.range"] == functions["__builtin__.sum"], out
    top = sorted(functions, key=functions.get, reverse=True)[:len(busiest)]
    assert sorted(top) == sorted(busiest), out
    assert functions["time.time"] == functions[builtins + ".sum"] + 2 >= 12, out
    for module in modules:
        mine = sum(n for f, n in functions.items() if f.split(".")[0] == module)
        assert mine <= modules[module], (module, out)


def check_gc(out, build, fixtures):
    # gc_import.py collects twice by hand (generation 2), finding its 3 cycles.
    lines = out.splitlines()
    summary = [re.match(r"^generation (\d+): (\d+) collections, (\d+) us in all, "
                        r"longest (\d+) us, (\d+) found$", line) for line in lines]
    gens = [tuple(int(g) for g in m.groups()) for m in summary if m]
    assert gens, out
    assert [g[0] for g in gens] == sorted(set(g[0] for g in gens))
    second = [g for g in gens if g[0] == 2]
    assert second and second[0][1] >= 2 and second[0][4] >= 3, out
    for generation, count, total, longest, _ in gens:
        assert count >= 1 and longest <= total
    assert "value |" in out     # the histograms


def check_imports(out, build, fixtures):
    # The fixture's own imports, at the top level, found or not.
    for line in harness.read_expected(build, "gc_import"):
        words = line.split(" ")
        if words[0] == "import__find__load__done":
            tail = words[1] + ("" if words[2] == "1" else " (not found)")
            assert re.search(r"^ +\d+ us  %s$" % re.escape(tail), out, re.M), \
                "no line for %s in:\n%s" % (tail, out)
    assert re.search(r"^\S+\(\d+\):$", out, re.M)


def table(out, header):
    """The rows after the last header line: [(numbers..., name)]."""
    rows = []
    for line in out.splitlines():
        if line.strip().startswith(header):
            rows = []
            continue
        m = re.match(r"^((?: *-?\d+)+)  (.*)$", line)
        if m:
            rows.append(tuple(int(n) for n in m.group(1).split()) + (m.group(2),))
        elif not line.strip():
            break
    return rows


def check_latency(out, build, fixtures):
    # spin.py's main() runs 2.5 s, calling spin() again and again.
    rows = dict((r[-1], r[:-1]) for r in table(ours(out, fixtures), "CALLS"))
    main = rows.get("main (spin.py)")
    spin = rows.get("spin (spin.py)")
    assert main and spin, out
    assert main[0] == 1 and main[1] >= 2400000, main
    assert spin[0] >= 10 and spin[1] <= main[1] and spin[3] <= spin[1], spin


def check_lines(out, build, fixtures):
    # spin() runs its one line once per call in main()'s loop, the busiest
    # lines of all.
    rows = table(ours(out, fixtures), "COUNT")
    counts = dict((r[-1], r[0]) for r in rows)
    body = "spin.py:%d (spin)" % line_of("spin", "return sum(range(100))")
    call = "spin.py:%d (main)" % line_of("spin", "spin()")
    loop = "spin.py:%d (main)" % line_of("spin", "while time.time() < end:")
    assert body in counts and call in counts and loop in counts, out
    assert counts[body] == counts[call] >= 10, (counts[body], counts[call])
    assert counts[loop] in (counts[call], counts[call] + 1), (counts[loop], counts[call])
    assert set(r[-1] for r in rows[:3]) == set([body, call, loop]), out


def check_top(out, build, fixtures):
    # Redrawn every second while spin.py runs 2.5 s: spin() tops a table.
    # (How many redraws fall in the run depends on the timer's phase.)
    screens = [s for s in ours(out, fixtures).split("\x1b[1;1H\x1b[J") if s.strip()]
    assert screens, out
    busy = 0
    for screen in screens:
        rows = table(screen, "PID")
        assert len(set(r[0] for r in rows)) <= 1, "-c: only the target's pid\n" + screen
        if rows and rows[0][-1] == "spin (spin.py)" and rows[0][1] >= 10:
            busy += 1
    assert busy >= 1, out


CHECKS = {
    "calltree.stp": check_calltree,
    "slowcalls.stp": check_slowcalls,
    "stacks.stp": check_stacks,
    "cfunctions.stp": check_cfunctions,
    "gc.stp": check_gc,
    "imports.stp": check_imports,
    "latency.stp": check_latency,
    "lines.stp": check_lines,
    "top.stp": check_top,
}

RUNS = [(example, build) for example, _, _ in GUEST_CASES for build in jobs.EXAMPLE_BUILDS]


@pytest.mark.quick
def test_every_example_has_a_check():
    assert set(CHECKS) == set(staptools.examples()) == set(e for e, _, _ in GUEST_CASES)


@pytest.mark.parametrize("case", RUNS, ids=lambda c: "%s-%s" % c)
def test_example_runs(case):
    """The example, compiled for the guest's kernel with the tapsets `make
    install` leaves, run with -c on a fixture: what CHECKS says it must
    print."""
    example, build = case
    result = session.required().result(jobs.example_name(example, build))
    out = result.trace()
    CHECKS[example](out, build, result.job.data["fixtures"])
