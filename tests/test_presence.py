"""Every build carries exactly the markers it claims, as probes.d declares
them: each claimed marker has sites with the right argument count and a
semaphore; no unclaimed marker has a site."""

import pytest

import harness
import usdt


@pytest.mark.parametrize("build", harness.builds())
def test_markers_present(build):
    probes = usdt.parse_probes(harness.PROBES_D)
    claims = usdt.parse_claims(harness.claims(build))
    sites = usdt.read_sites(harness.marker_object(build))
    failures = [(m, msg) for m, ok, msg in usdt.check(probes, claims, sites) if not ok]
    assert not failures, failures


@pytest.mark.parametrize("build", [b for b in harness.builds()
                                   if harness.series_of(b).startswith("python3.")])
def test_resume_check_reads_one_semaphore_word(build):
    """The 3.x interpreters' RESUME_CHECK tests the semaphores of the
    function__entry, cfunction__entry, line and function__return markers
    with one 8-byte load: they must be adjacent, in that order."""
    assert usdt.semaphore_word_problem(usdt.read_sites(harness.marker_object(build))) is None


@pytest.mark.quick
def test_semaphore_word_check():
    def site(name, semaphore):
        return usdt.Site(usdt.PROVIDER, name, 0x100, semaphore, [])
    good = [site(m, 0x4000 + 2 * i) for i, m in enumerate(usdt.SEMAPHORE_WORD)]
    assert usdt.semaphore_word_problem(good) is None
    assert usdt.semaphore_word_problem(good[::-1]) is None
    swapped = [site(m, 0x4000 + 2 * i) for i, m in enumerate(
        ("cfunction__entry", "function__entry", "line", "function__return"))]
    assert "not 0, 2, 4, 6" in usdt.semaphore_word_problem(swapped)
    assert "no single semaphore for line" in usdt.semaphore_word_problem(
        [s for s in good if s.name != "line"])


@pytest.mark.quick
def test_checker_sees_a_missing_marker():
    """The checker itself: a claimed marker without a site fails."""
    probes = {"gc__start": 1, "gc__done": 1}
    sites = [usdt.Site("python", "gc__start", 0x400, 0x10, ["-4@%eax"])]
    results = dict((m, ok) for m, ok, _ in usdt.check(probes, ["gc__start", "gc__done"], sites))
    assert results == {"gc__start": True, "gc__done": False}


@pytest.mark.quick
def test_checker_sees_wrong_arguments_and_semaphores():
    probes = {"line": 3}
    two_args = [usdt.Site("python", "line", 0x400, 0x10, ["8@%rax", "8@%rdx"])]
    no_semaphore = [usdt.Site("python", "line", 0x400, 0, ["8@%rax", "8@%rdx", "-4@%ecx"])]
    assert not usdt.check(probes, ["line"], two_args)[0][1]
    assert not usdt.check(probes, ["line"], no_semaphore)[0][1]
    assert not usdt.check(probes, [], no_semaphore)[0][1]
