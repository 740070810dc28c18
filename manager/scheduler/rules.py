"""The rule language of constraints and affinities: `KEY==VALUE`, `KEY!=VALUE`, and the
soft forms `KEY==~VALUE` / `KEY!=~VALUE`.

VALUE is plain text (exact match), a glob (`*` any run, `?` one character), or a
`/regex/` (RE2 syntax, whole-string match). Matching is case-sensitive, as in classic
Swarm (Go's regexp). Globs and regexes both run on RE2 (docker_compat.regexp), so a
client's pattern costs time linear in the text it is matched against, never the
exponential backtracking of Python's `re`. A rule that does not parse, or whose pattern
RE2 refuses, raises `RuleError` naming the rule and what is wrong, so that the user sees
it (a 400) before anything is created.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from flock.docker_compat import regexp

EQ = "=="
NE = "!="

# Classic Swarm's key syntax (`^[a-z_][a-z0-9\-_.]+$`, case-insensitive), but a
# one-character key is allowed too.
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9\-_.]*")
_OPERATOR = re.compile(r"==|!=")


class RuleError(ValueError):
    """A constraint, affinity or reschedule policy that cannot be understood."""


@dataclass(frozen=True)
class Rule:
    """One parsed rule. `kind` is "constraint" or "affinity" (for messages)."""

    key: str
    operator: str  # EQ | NE
    value: str  # without the soft marker `~`
    soft: bool = False
    kind: str = "constraint"
    pattern: regexp.Pattern | None = field(default=None, compare=False, repr=False)

    @property
    def literal(self) -> str | None:
        """The exact text to look up in an index, or None for a glob or regex."""
        return self.value if self.pattern is None else None

    @property
    def positive(self) -> bool:
        return self.operator == EQ

    def matches(self, text: str) -> bool:
        """Whether VALUE matches `text` (the operator is not applied)."""
        if self.pattern is None:
            return text == self.value
        # Whole-string, unlike classic Swarm's unanchored regexp.MatchString for /regex/
        # (scheduler/filter/expr.go): Flock's documented meaning, kept as it was.
        return regexp.fullmatch(self.pattern, text)

    def matches_any(self, texts: Iterable[str]) -> bool:
        return any(self.matches(text) for text in texts)

    def __str__(self) -> str:
        """The rule as written in labels: `key==value`, `key==~value` when soft."""
        return f"{self.key}{self.operator}{'~' if self.soft else ''}{self.value}"

    @property
    def condition(self) -> str:
        """The rule as classic Swarm prints it in errors: `key==value`."""
        return f"{self.key}{self.operator}{self.value}"

    @property
    def source(self) -> str:
        """The rule as given on the command line: `constraint:key==~value`."""
        return f"{self.kind}:{self}"


def parse_rule(text: str, kind: str = "constraint") -> Rule:
    """Parse one rule; RuleError says which rule and what is wrong with it."""
    if not isinstance(text, str):
        raise RuleError(f"invalid {kind} {text!r}: a rule is a string like key==value")
    found = _OPERATOR.search(text)
    if found is None:
        raise RuleError(
            f'invalid {kind} "{text}": expected an operator ==, !=, ==~ or !=~ (e.g. node==node1)'
        )
    key, operator, value = text[: found.start()], found.group(), text[found.end() :]
    if not key:
        raise RuleError(f'invalid {kind} "{text}": the key before {operator} is missing')
    if not _KEY.fullmatch(key):
        raise RuleError(
            f'invalid {kind} "{text}": key "{key}" is invalid (letters, digits, '
            "'-', '_' and '.', not starting with a digit)"
        )
    soft = value.startswith("~")
    if soft:
        value = value[1:]
    if not value:
        raise RuleError(f'invalid {kind} "{text}": the value after {operator} is missing')
    return Rule(key, operator, value, soft, kind, _compile(value, kind, text))


def parse_rules(texts: Iterable[str], kind: str = "constraint") -> list[Rule]:
    return [parse_rule(text, kind) for text in texts]


def _compile(value: str, kind: str, text: str) -> regexp.Pattern | None:
    """None for plain text; a compiled RE2 pattern for a glob or a /regex/."""
    if len(value) >= 2 and value[0] == "/" and value[-1] == "/":
        body = value[1:-1]
        if not body:
            raise RuleError(f'invalid {kind} "{text}": the regular expression // is empty')
        try:
            return regexp.compile_pattern(body)
        except regexp.RegexpError as exc:
            raise RuleError(
                f'invalid {kind} "{text}": bad regular expression /{body}/: {exc}'
            ) from None
    if value[0] == "/":
        # Classic Swarm took "/abc" as plain text; a value that opens a regular
        # expression and never closes it is far more often a typo than a label value.
        raise RuleError(
            f'invalid {kind} "{text}": the regular expression {value} is not closed '
            "(write /regex/)"
        )
    if "*" in value or "?" in value:
        return regexp.compile_pattern(_glob_to_regex(value), dot_nl=True)
    return None


def _glob_to_regex(glob: str) -> str:
    parts = []
    for char in glob:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(regexp.escape(char))
    return "".join(parts)
