"""flock.docker_compat.regexp: client patterns compiled and matched as Go's regexp (RE2) does.

The pathological cases below took seconds to forever on Python's backtracking `re`; here
they must simply answer (the normal per-test timeout is the only guard: figures are in
bench/rule_regex.py, not asserted)."""

from __future__ import annotations

import pytest

from flock.docker_compat.regexp import (
    RegexpError,
    compile_pattern,
    escape,
    filter_matches,
    fullmatch,
    search,
)

LONG = "a" * 100_000


@pytest.mark.parametrize(("pattern", "reason"), [
    (r"(a)\1", r"invalid escape sequence: \1"),  # backreference
    ("(?P<x>a)(?P=x)", "invalid perl operator: (?P"),  # named backreference
    ("a(?=b)", "invalid perl operator: (?="),  # lookahead
    ("(?<=a)b", "invalid perl operator: (?<="),  # lookbehind
    ("a{1001}", "invalid repetition size: {1001}"),  # RE2's and Go's limit is 1000
    ("((a{100}){100}){100}", "invalid repetition size"),
    ("[", "missing ]: ["),
    ("x**", "bad repetition operator: **"),
    (r"a\Z", r"invalid escape sequence: \Z"),  # Python's end anchor; Go has \z
])
def test_what_go_refuses_is_refused_with_re2s_reason(pattern, reason):
    with pytest.raises(RegexpError) as err:
        compile_pattern(pattern)
    assert reason in str(err.value)


@pytest.mark.parametrize(("pattern", "count"), [
    ("a{99999999999}", "{99999999999}"),
    ("a{1,99999999999}", "{1,99999999999}"),
    ("a{99999999999,}", "{99999999999,}"),
    ("x{2}b{12345678901}", "{12345678901}"),
    ("[{99999999999}]a{99999999999}", "{99999999999}"),  # the second, not the literal
])
def test_overflowing_repeat_counts_are_refused_as_go_does(pattern, count):
    # C++ RE2 reads an overflowing count as literal text; Go's regexp/syntax parseInt
    # (`if n >= 1e8 { n = -1 }`) makes it "invalid repeat count". Clients wrote it
    # meaning a repetition (issue 16: it was an OverflowError, a 500, on Python's re).
    with pytest.raises(RegexpError) as err:
        compile_pattern(pattern)
    assert str(err.value) == f"invalid repetition size: {count}"


@pytest.mark.parametrize(("pattern", "text"), [
    (r"\{99999999999}", "{99999999999}"),  # escaped: a literal brace
    ("[{99999999999}]", "9"),  # inside a class
    (r"\Qa{99999999999}\E", "a{99999999999}"),  # quoted
    ("a{0999999999999}", "a{0999999999999}"),  # a leading zero is no count (Go alike)
])
def test_long_numbers_in_braces_that_are_no_repetition_stay_literal(pattern, text):
    assert search(compile_pattern(pattern), text)


@pytest.mark.parametrize("pattern", [".*(a+)+b", "(a+)+b", "(a|aa)+b", "(a|a?)+b",
                                     "(.*a){20}b", "(a*)*b"])
def test_nested_quantifiers_answer_on_long_text(pattern):
    compiled = compile_pattern(pattern)
    assert not search(compiled, LONG)
    assert not fullmatch(compiled, LONG)
    assert search(compiled, LONG + "b")


def test_search_is_unanchored_and_fullmatch_whole():
    compiled = compile_pattern("node-[12]")
    assert search(compiled, "xnode-12")
    assert not fullmatch(compiled, "xnode-1")
    assert fullmatch(compiled, "node-2")


def test_dot_nl_only_when_asked():
    assert not fullmatch(compile_pattern("a.b"), "a\nb")
    assert fullmatch(compile_pattern("a.b", dot_nl=True), "a\nb")


def test_go_syntax_that_python_lacked():
    assert search(compile_pattern(r"web\z"), "/web")  # Go's end of text
    assert search(compile_pattern(r"\p{Greek}+"), "αβγ")
    assert search(compile_pattern("(?i)WEB"), "web")


def test_lone_surrogates_are_replacement_characters_not_tracebacks():
    # A JSON body may carry "\ud800"; Go's decoder makes it U+FFFD.
    assert fullmatch(compile_pattern("a\ud800"), "a\ufffd")
    assert fullmatch(compile_pattern("a."), "a\ud800")
    assert fullmatch(compile_pattern(escape("x\udfff")), "x\ufffd")


def test_escape_matches_exactly_the_text():
    for text in ["node-1", "a b#c", "(x)*[y]?", "café", "a\x00b"]:
        compiled = compile_pattern(escape(text))
        assert fullmatch(compiled, text)
        assert not fullmatch(compiled, text + "x")


@pytest.mark.parametrize(("value", "source", "expected"), [
    ("/web1", "/web1", True),  # exact
    ("web", "/web1", True),  # unanchored regex
    ("eb-1", "/web-12", True),  # a literal value: a substring
    ("web-2", "/web-12", False),
    ("web.1", "/webx1", True),  # `.` makes it a regex
    ("^/web1$", "/web1", True),
    ("^web1$", "/web1", False),
    (r"web1\z", "/web1", True),
    ("web(?=1)", "/web1", False),  # Go refuses it: skipped, and it is not exact
    ("[", "/web[", False),  # invalid, not exact: no match (no substring fallback)
    ("[", "[", True),  # invalid but exact: the Engine's ExactMatch comes first
    ("(a+)+b", "/" + "a" * 10_000, False),
])
def test_filter_matches_is_the_engines_args_match(value, source, expected):
    # moby api/types/filters/parse.go, Args.Match: ExactMatch, then regexp.MatchString per
    # value, a value that does not compile skipped (`if err != nil { continue }`).
    assert filter_matches(value, source) is expected
