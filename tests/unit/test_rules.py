"""The rule language: parsing, matching, and every bad input."""

from __future__ import annotations

import pytest

from flock.manager.api.docker.pins import node_rule
from flock.manager.scheduler.rules import EQ, NE, Rule, RuleError, parse_rule, parse_rules


@pytest.mark.parametrize(
    ("text", "key", "operator", "value", "soft"),
    [
        ("node==node1", "node", EQ, "node1", False),
        ("region!=eu", "region", NE, "eu", False),
        ("region==~eu", "region", EQ, "eu", True),
        ("region!=~eu", "region", NE, "eu", True),
        ("com.example.zone==a-1", "com.example.zone", EQ, "a-1", False),
        ("_x==y", "_x", EQ, "y", False),
        ("k==a==b", "k", EQ, "a==b", False),
        ("k!==b", "k", NE, "=b", False),
        ("image==redis:7", "image", EQ, "redis:7", False),
    ],
)
def test_parse(text, key, operator, value, soft):
    rule = parse_rule(text)
    assert (rule.key, rule.operator, rule.value, rule.soft) == (key, operator, value, soft)
    assert str(rule) == text


def test_text_forms():
    rule = parse_rule("region==~eu-*", "affinity")
    assert str(rule) == "region==~eu-*"
    assert rule.condition == "region==eu-*"
    assert rule.source == "affinity:region==~eu-*"
    assert parse_rule("a!=b").source == "constraint:a!=b"


def test_plain_value_is_exact_and_a_literal():
    rule = parse_rule("node==web-1")
    assert rule.literal == "web-1"
    assert rule.matches("web-1")
    assert not rule.matches("web-10")
    assert not rule.matches("WEB-1")  # case-sensitive, like Go


def test_plain_value_with_regex_characters_is_not_a_regex():
    rule = parse_rule("version==1.2")
    assert rule.matches("1.2")
    assert not rule.matches("1x2")


@pytest.mark.parametrize(
    ("value", "yes", "no"),
    [
        ("web-*", ["web-", "web-1", "web-a-b"], ["web", "aweb-1", "Web-1"]),
        ("node?", ["node1", "nodeX"], ["node", "node12"]),
        ("*.example.com", ["a.example.com"], ["a.exampleXcom", "example.com"]),
        ("a*b?c", ["abxc", "a123bzc"], ["abc", "a1b22c"]),
    ],
)
def test_glob(value, yes, no):
    rule = parse_rule(f"k=={value}")
    assert rule.literal is None
    assert all(rule.matches(t) for t in yes)
    assert not any(rule.matches(t) for t in no)


def test_regex_is_a_full_match_and_case_sensitive():
    rule = parse_rule(r"node==/node-[12]/")
    assert rule.literal is None
    assert rule.matches("node-1") and rule.matches("node-2")
    assert not rule.matches("node-3")
    assert not rule.matches("xnode-1")  # full match, not search
    assert not rule.matches("node-12")
    assert not rule.matches("NODE-1")
    assert parse_rule("node==/(?i)node-1/").matches("NODE-1")


def test_matches_any():
    rule = parse_rule("image==redis*")
    assert rule.matches_any(["busybox", "redis:7"])
    assert not rule.matches_any([])


def test_parse_rules_keeps_order_and_kind():
    rules = parse_rules(["a==1", "b!=~2"], "affinity")
    assert [r.key for r in rules] == ["a", "b"]
    assert all(r.kind == "affinity" for r in rules)
    assert isinstance(rules[0], Rule)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("size=xl", "expected an operator"),
        ("size", "expected an operator"),
        ("", "expected an operator"),
        ("size~=xl", "expected an operator"),
        ("==xl", "the key before == is missing"),
        ("!=xl", "the key before != is missing"),
        ("size==", "the value after == is missing"),
        ("size!=~", "the value after != is missing"),
        ("size==~", "the value after == is missing"),
        ("1size==xl", 'key "1size" is invalid'),
        ("si ze==xl", 'key "si ze" is invalid'),
        ("a=b==c", 'key "a=b" is invalid'),
        ("node==/[/", "bad regular expression /[/"),
        ("node==/(?P<x/", "bad regular expression"),
        ("node==//", "the regular expression // is empty"),
        ("node==/web-[0-9]+", "the regular expression /web-[0-9]+ is not closed"),
        ("node==~/", "the regular expression / is not closed"),
    ],
)
def test_bad_rules_name_the_rule_and_the_problem(text, fragment):
    with pytest.raises(RuleError) as err:
        parse_rule(text, "constraint")
    message = str(err.value)
    assert f'invalid constraint "{text}"' in message
    assert fragment in message


def test_bad_affinity_says_affinity():
    with pytest.raises(RuleError, match='invalid affinity "container"'):
        parse_rule("container", "affinity")


def test_non_string_rule():
    with pytest.raises(RuleError, match="a rule is a string"):
        parse_rule(42)  # type: ignore[arg-type]


def test_rule_error_is_a_value_error():
    assert issubclass(RuleError, ValueError)


@pytest.mark.parametrize(("text", "reason"), [
    # Python's `re` took these; RE2 (Go's regexp, classic Swarm's engine) does not.
    ("node==/a{99999999999}/", "invalid repetition size: {99999999999}"),  # was OverflowError
    ("node==/a{1001}/", "invalid repetition size: {1001}"),
    (r"node==/(a)\1/", r"invalid escape sequence: \1"),
    ("node==/web(?=-1)/", "invalid perl operator: (?="),
    ("node==/(?<!x)web/", "invalid perl operator: (?<!"),
    (r"node==/web\Z/", r"invalid escape sequence: \Z"),
])
def test_patterns_re2_refuses_name_the_rule(text, reason):
    with pytest.raises(RuleError) as err:
        parse_rule(text, "affinity")
    body = text.partition("==")[2]
    assert str(err.value) == f'invalid affinity "{text}": bad regular expression {body}: {reason}'


def test_refused_pattern_in_a_soft_rule_is_refused_too():
    with pytest.raises(RuleError, match=r'invalid constraint "node==~/a\{99999999999\}/"'):
        parse_rule("node==~/a{99999999999}/")


def test_nested_quantifiers_match_long_names_in_linear_time():
    # issue 16: `.*(a+)+b` against 26 `a`s froze the manager for 10 s on Python's re.
    rule = parse_rule("container==/.*(a+)+b/", "affinity")
    assert not rule.matches("a" * 100_000)
    assert rule.matches("a" * 100_000 + "b")


def test_globs_with_many_stars_match_long_names():
    # `a*a*a*a*a*b` compiles to `a.*a.*a.*a.*a.*b`: polynomial (n^5) on a backtracking
    # engine against a run of `a`s, linear on RE2.
    rule = parse_rule("node==a*a*a*a*a*b")
    assert not rule.matches("a" * 20_000)
    assert rule.matches("a" * 20_000 + "b")


def test_go_syntax_is_understood():
    assert parse_rule(r"node==/node-\d+\z/").matches("node-12")
    assert parse_rule(r"node==/\p{Greek}+/").matches("αβ")


def test_node_names_as_an_alternation_match_exactly_them():
    rule = node_rule(["web.1", "db (2)", "x+y"])
    assert all(rule.matches(name) for name in ["web.1", "db (2)", "x+y"])
    assert not any(rule.matches(name) for name in ["webx1", "db 2", "xxy", "web.1 "])
