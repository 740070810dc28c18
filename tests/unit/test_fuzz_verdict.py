"""The API fuzz's judge (tests/support/fuzz_verdict.py): what makes a manager answer a
finding, and the allowances that keep intended Flock behaviour from being one."""

from __future__ import annotations

from tests.support.fuzz_verdict import (
    HANG,
    HANG_SHARED,
    NO_NODE_FITS,
    NOT_IMPLEMENTED,
    OK,
    OWN_5XX,
    RELAYED_5XX,
    UNKNOWN_501,
    VIOLATION,
    VIOLATION_SHARED,
    Answer,
    Figures,
    Finding,
    needs_engines,
    verdict,
)

NODES = ("node-a", "node-b")
ID = "0123456789ab" * 5 + "cdef"


def test_a_5xx_is_relayed_only_when_an_engine_says_the_same():
    engine = Answer(500, f"Cannot kill container: {ID}: not running")
    same = Answer(500, f"Cannot kill container: {ID[:12]}: not running")
    assert verdict(same, [Answer(404, "No such container: x"), engine], NODES) == RELAYED_5XX
    assert verdict(Answer(500, "flock: KeyError: 'Id'"), [engine], NODES) == OWN_5XX
    assert verdict(Answer(502, engine.message), [engine], NODES) == OWN_5XX
    refused = Answer(500, "Unable to find a node that satisfies the following conditions \n"
                          "[port 80 (Bridge mode)]")
    assert verdict(refused, [Answer(201), Answer(201)], NODES) == NO_NODE_FITS


def test_node_names_in_a_fan_out_error_are_allowed():
    engine = Answer(500, "invalid reference format")
    both = Answer(500, "node-a: invalid reference format; node-b: invalid reference format")
    assert verdict(both, [engine, engine], NODES) == RELAYED_5XX
    mixed = Answer(500, "node-a: invalid reference format; node-b: agent gone")
    assert verdict(mixed, [engine, engine], NODES) == OWN_5XX
    named = Answer(500, "Cannot restart container node-a/web: boom")
    assert verdict(named, [Answer(500, "Cannot restart container web: boom")], NODES) \
        == RELAYED_5XX


def test_a_501_is_a_finding_only_for_what_an_engine_does():
    mine = Answer(501, "flock: GET /system/df is not supported by the manager")
    assert verdict(mine, [Answer(200), Answer(200)], NODES) == NOT_IMPLEMENTED
    assert verdict(mine, [Answer(404, "page not found")], NODES) == UNKNOWN_501


def test_a_spec_violation_counts_when_no_engine_with_that_status_shares_it():
    bad = Answer(200, violations=("Response violates schema at properties/Id/type",))
    assert verdict(bad, [Answer(200), Answer(404, "No such container: x")], NODES) == VIOLATION
    shared = Answer(200, violations=bad.violations)
    assert verdict(bad, [shared, Answer(404)], NODES) == VIOLATION_SHARED
    assert verdict(bad, [Answer(404), Answer(404)], NODES) == VIOLATION_SHARED
    streamed = Answer(200, violations=("Undocumented Content-Type",),
                      content_type="application/octet-stream")
    assert verdict(streamed, [Answer(200, content_type="")], NODES) == VIOLATION_SHARED
    assert verdict(streamed, [Answer(200, content_type="text/plain")], NODES) == VIOLATION


def test_a_hang_is_the_managers_only_when_an_engine_answers_in_time():
    assert verdict(Answer(None), [Answer(None), Answer(200)], NODES) == HANG
    assert verdict(Answer(None), [Answer(None), Answer(None)], NODES) == HANG_SHARED


def test_only_suspicious_answers_ask_the_engines_and_figures_count_them():
    assert not needs_engines(Answer(404, "No such container: x"))
    assert needs_engines(Answer(500)) and needs_engines(Answer(None))
    figures = Figures()
    figures.add("GET /x", Answer(200), OK)
    bad = Answer(500, f"flock: boom {ID}")
    for _ in range(3):
        figures.add("GET /x", bad, OWN_5XX, Finding("GET /x", OWN_5XX, "GET /x", bad, ()))
    assert figures.requests == 4 and figures.classes == {"2xx": 1, "5xx": 3}
    assert len(figures.distinct_findings()) == 1
    assert "findings: 3 (1 distinct)" in figures.summary()
