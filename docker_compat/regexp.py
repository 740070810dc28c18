"""Go's `regexp` for the patterns clients send: RE2, through the `google-re2` binding.

The Engine and classic Swarm match filters and rules with Go's regexp, which is RE2:
linear in the text, no backreferences or lookarounds. Python's backtracking `re` is
neither: `.*(a+)+b` against 26 `a`s took seconds, and `a{99999999999}` raised
OverflowError. Every pattern a client supplies is compiled here instead, so that matching
costs time proportional to the text and a pattern Go would refuse is refused.
"""

from __future__ import annotations

import functools
from typing import TypeAlias

import re2

# The binding's compiled pattern (it exports no public name for the class).
Pattern: TypeAlias = re2._Regexp


def _options(*, dot_nl: bool = False, capture: bool = False) -> re2.Options:
    """No RE2 log line on stderr for each bad pattern a client sends (the error is the
    answer), and no capture groups where only a yes or no is wanted: without them RE2
    need not run its submatch engines (1,000 `a`s against `(.*a){12}b`: 1.3 ms -> 3 µs)."""
    options = re2.Options()
    options.log_errors = False
    options.never_capture = not capture
    options.dot_nl = dot_nl
    return options


_PLAIN, _DOT_NL = _options(), _options(dot_nl=True)
# `{n}`, `{n,}`, `{n,m}`: where a count of ten digits or more may hide (see _refuse_huge_counts).
_REPEAT = re2.compile(r"\{([0-9]+)(?:,([0-9]*))?\}", _options(capture=True))
_GO_MAX_DIGITS = 9  # Go's parseInt gives up (n >= 1e8) at the tenth digit
_META = frozenset("\\.+*?()|[]{}^$")  # what makes a filter value more than literal text


class RegexpError(ValueError):
    """A pattern RE2 (Go's regexp) refuses; the message is RE2's reason."""


def compile_pattern(pattern: str, *, dot_nl: bool = False) -> Pattern:
    """Compile as Go's regexp.Compile would: RegexpError for what Go refuses."""
    options = _DOT_NL if dot_nl else _PLAIN
    pattern = _encodable(pattern)
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        raise RegexpError(_reason(exc)) from None
    _refuse_huge_counts(pattern, options)
    return compiled


def _reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else str(exc)
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def _refuse_huge_counts(pattern: str, options: re2.Options) -> None:
    """C++ RE2 reads `a{99999999999}` as the literal text `a{99999999999}`, where Go's
    parser (regexp/syntax parseInt) turns the overflowing count into "invalid repeat
    count". A user who wrote it meant a repetition, so refuse it as Go does: put an
    over-limit count that C++ does parse (1001...) in place of each overlong one and let
    RE2 say whether it stood in a repetition (error) or in a literal or class (no error)."""
    originals: dict[str, str] = {}
    parts: list[str] = []
    end = 0
    for found in _REPEAT.finditer(pattern):
        numbers = [n for n in found.groups() if n]
        if not any(len(n) > _GO_MAX_DIGITS and n[0] != "0" for n in numbers):
            continue
        stand_in = _stand_in(found, 1001 + len(originals))
        originals[stand_in] = found.group(0)
        parts += [pattern[end:found.start()], stand_in]
        end = found.end()
    if not originals:
        return
    try:
        re2.compile("".join(parts) + pattern[end:], options)
    except re2.error as exc:
        reason = _reason(exc)
        fragment = reason.rpartition(": ")[2]
        raise RegexpError(f"invalid repetition size: {originals.get(fragment, fragment)}"
                          ) from None


def _stand_in(found: re2._Match, count: int) -> str:
    def one(number: str | None) -> str:
        if number is None:
            return ""
        return str(count) if len(number) > _GO_MAX_DIGITS and number[0] != "0" else number

    low, high = found.group(1), found.group(2)
    return "{" + one(low) + ("" if high is None else "," + one(high)) + "}"


def escape(text: str) -> str:
    """`text` as a pattern that matches exactly it."""
    return re2.escape(_encodable(text))


def search(pattern: Pattern, text: str) -> bool:
    """Go's MatchString: whether `pattern` occurs anywhere in `text`."""
    return pattern.search(_encodable(text)) is not None


def fullmatch(pattern: Pattern, text: str) -> bool:
    """Whether `pattern` matches the whole of `text`."""
    return pattern.fullmatch(_encodable(text)) is not None


def _encodable(text: str) -> str:
    """RE2 works on UTF-8; a lone surrogate (which a JSON body can carry) becomes U+FFFD,
    as Go's JSON decoder makes it, instead of a UnicodeEncodeError."""
    if text.isascii():  # a flag CPython keeps: no scan for the common case
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def filter_matches(value: str, source: str) -> bool:
    """One value of an Engine list filter (`name=`, `id=`...) against `source`, as the
    Engine's filters.Args.Match does it: an exact match, else an unanchored RE2 search;
    a value that is not a valid pattern matches only exactly (the Engine skips it, no
    error). See moby api/types/filters/parse.go, Args.Match."""
    if value == source:
        return True
    if _META.isdisjoint(value):  # a literal: RE2's search is a substring test, 10x cheaper
        return value in source
    compiled = _filter_pattern(value)
    return compiled is not None and search(compiled, source)


@functools.lru_cache(maxsize=256)
def _filter_pattern(value: str) -> Pattern | None:
    """Cached, the refusals too: `docker ps` tries one value on every container."""
    try:
        return compile_pattern(value)
    except RegexpError:
        return None
