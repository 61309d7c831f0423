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
