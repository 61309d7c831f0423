"""The patch series as a CPython reviewer reads them: each patch a commit
with a subject of at most 72 characters and a body that says why, and the
marker C in one copy (markers/): no function that two series' patches both
add.  What the series share is a hook's call site, never a definition.

They need no build (make check-quick)."""

import glob
import os
import re

import pytest

import harness

pytestmark = pytest.mark.quick


def patches(series):
    return sorted(glob.glob(os.path.join(harness.REPO, "patches", series, "*.patch")))


ALL = [p for s in harness.series() for p in patches(s)]


def message(path):
    """The commit message: everything before the first diff."""
    with open(path, errors="replace") as f:
        text = f.read()
    head = text.split("\ndiff --git ", 1)[0]
    return head.split("\n")


@pytest.mark.parametrize("path", ALL, ids=lambda p: os.path.relpath(p, harness.REPO))
def test_each_patch_is_a_commit_with_a_why(path):
    lines = message(path)
    subject = lines[0]
    assert subject.strip() and len(subject) <= 72, subject
    assert len(lines) > 2 and lines[1] == "", "no blank line after the subject"
    body = [line for line in lines[2:] if line.strip()]
    assert len(body) >= 2, "a body of %d lines: say why" % len(body)


# A function definition among a patch's added lines: a line at column 0
# that names a function and opens its parameter list, up to the line where
# its body's braces balance.
DEFINITION = re.compile(r"^(?:[A-Za-z_][\w \t*]*?[ \t*])?([A-Za-z_]\w*)\s*\(")


def added_blocks(text):
    """The runs of consecutive added lines of a unified diff."""
    blocks, run = [], []
    for line in text.split("\n"):
        if line.startswith("+") and not line.startswith("+++ "):
            run.append(line[1:])
        elif run:
            blocks.append(run)
            run = []
    if run:
        blocks.append(run)
    return blocks


def definitions(text):
    """{name: body}, the functions a diff adds whole (signature and body,
    whitespace folded)."""
    found = {}
    for block in added_blocks(text):
        i = 0
        while i < len(block):
            m = DEFINITION.match(block[i])
            if not m or block[i].rstrip().endswith(";"):
                i += 1
                continue
            depth, opened, j = 0, False, i
            while j < len(block):
                depth += block[j].count("{") - block[j].count("}")
                opened = opened or "{" in block[j]
                if block[j].rstrip().endswith(";") and not opened:
                    break            # a declaration over several lines
                if opened and depth <= 0:
                    found[m.group(1)] = " ".join(" ".join(block[i:j + 1]).split())
                    break
                j += 1
            i = j + 1
    return found


def series_definitions(series):
    found = {}
    for path in patches(series):
        with open(path, errors="replace") as f:
            for name, body in definitions(f.read()).items():
                found[name] = (os.path.basename(path), body)
    return found


def test_definitions_sees_what_a_patch_adds():
    diff = "\n".join([
        "--- a/x.c", "+++ b/x.c", "@@ -1,1 +1,12 @@",
        " int upstream(void) { return 0; }",
        "+static inline void",
        "+dtrace_thing(int a,",
        "+             int b)",
        "+{",
        "+    if (a) {",
        "+        b++;",
        "+    }",
        "+}",
        "+static inline void PyDTrace_X(const char *arg0) {}",
        "+extern int declared(int a,",
        "+                    int b);",
        "+    call_site(a);",
    ])
    found = definitions(diff)
    assert set(found) == {"dtrace_thing", "PyDTrace_X"}, found
    assert found["dtrace_thing"].endswith("b++; } }"), found


def test_no_function_is_in_two_series():
    """Marker C shared by 3.13 and 3.14 lives in markers/; a function both
    series' patches define is a copy to move there."""
    three = [s for s in harness.series() if s.startswith("python3.")]
    assert len(three) >= 2, three
    seen = {}
    for s in three:
        for name, (patch, body) in series_definitions(s).items():
            seen.setdefault(body, []).append("%s/%s: %s" % (s, patch, name))
    twice = [where for where in seen.values() if len(where) > 1]
    assert not twice, twice
