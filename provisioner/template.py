"""The Go-template subset `flock machine ls --format` and `inspect --format` take.

Scripts written for Docker Machine pass Go templates: `{{.Name}}`, `{{.Driver.IPAddress}}`,
`{{json .Driver}}`, `table {{.Name}}\\t{{.URL}}`. This understands fields (dotted paths,
`.` for the whole value), string and number literals, pipes (`{{.Name | upper}}`) and the
functions json, prettyjson (Docker Machine's inspect adds these two), upper, lower, title,
join and len; `{{-`/`-}}` trim spaces as in Go.
Anything else (range, if, variables) is refused at parse time with a message that says
what is supported, instead of printing something half-right.

Values print as Go prints them: lists `[a b]`, maps `map[k:v]`, booleans `true`. Data
that Go would hold as a map (`inspect`: Docker Machine executes its template on the
record decoded into map[string]interface{}) prints `<no value>` for a key it lacks or a
null, as Go does; data Go would hold as a struct (`ls`'s rows) refuses an unknown field,
as Go does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SUPPORTED = ("fields like {{.Name}} or {{.Driver.IPAddress}}, {{json .Driver}}, "
             "{{.Name | upper}}, functions json, prettyjson, upper, lower, title, join, len")
NO_VALUE = "<no value>"   # what Go's text/template prints for a missing map key


class TemplateError(ValueError):
    """A template that cannot be parsed or executed; the message says where and why."""


def go_string(value: Any) -> str:
    """A value as Go's text/template prints it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_string(k)}:{go_string(v)}"
                                 for k, v in sorted(value.items(), key=lambda kv: str(kv[0])))\
            + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_string(v) for v in value) + "]"
    return str(value)


def _go_numbers(value: Any) -> Any:
    """Whole floats as Go's encoding/json writes a float64 (120, not 120.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_go_numbers(v) for v in value]
    return value


def _go_json(text: str) -> str:
    """encoding/json escapes <, > and & (inside strings: nowhere else can they be)."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _json(value: Any) -> str:
    return _go_json(json.dumps(_go_numbers(value), separators=(",", ":"), sort_keys=True,
                               default=str))


def _prettyjson(value: Any) -> str:
    """commands/inspect.go: json.MarshalIndent(v, "", "    ")."""
    return _go_json(json.dumps(_go_numbers(value), indent=4, sort_keys=True, default=str))


def _join(items: Any, sep: Any) -> str:
    if not isinstance(items, list | tuple):
        raise TemplateError("join needs a list and a separator, e.g. {{join .Labels \",\"}}")
    return str(sep).join(go_string(i) for i in items)


# name -> (function, number of arguments)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "json": (_json, 1),
    "prettyjson": (_prettyjson, 1),
    "upper": (lambda v: go_string(v).upper(), 1),
    "lower": (lambda v: go_string(v).lower(), 1),
    "title": (lambda v: go_string(v).title(), 1),
    "join": (_join, 2),
    "len": (lambda v: len(v) if hasattr(v, "__len__") else 0, 1),
}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<field>\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|)
""", re.VERBOSE)
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "nil"}


@dataclass(frozen=True)
class _Operand:
    kind: str          # field | literal | func
    value: Any         # path (tuple of names) | the literal | function name


@dataclass(frozen=True)
class _Action:
    commands: tuple[tuple[_Operand, ...], ...]
    source: str


def _where(source: str, pos: int) -> str:
    return f"at column {pos + 1} of {source!r}"


def _parse_action(body: str, source: str, pos: int) -> _Action:
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(body):
        m = _TOKEN.match(body, i)
        if not m:
            what = body[i:].split()[0] if body[i:].split() else body[i:]
            raise TemplateError(f"cannot read {what!r} in {{{{{body}}}}} {_where(source, pos)}"
                                f": Flock's templates support {SUPPORTED}")
        if m.lastgroup != "space":
            tokens.append((m.lastgroup or "", m.group()))
        i = m.end()
    if not tokens:
        raise TemplateError(f"empty action {{{{}}}} {_where(source, pos)}: put a field in it, "
                            "like {{.Name}}")
    commands: list[tuple[_Operand, ...]] = []
    current: list[_Operand] = []
    for kind, text in [*tokens, ("pipe", "|")]:
        if kind == "pipe":
            if not current:
                raise TemplateError(f"missing value around '|' in {{{{{body}}}}} "
                                    f"{_where(source, pos)}")
            commands.append(_check_command(tuple(current), body, source, pos))
            current = []
        elif kind == "ident":
            if text in _KEYWORDS:
                raise TemplateError(f"{text!r} is not supported {_where(source, pos)}: Flock's "
                                    f"templates support {SUPPORTED}")
            if text not in FUNCTIONS:
                raise TemplateError(f"function {text!r} not defined {_where(source, pos)}: "
                                    f"use one of {', '.join(FUNCTIONS)}")
            current.append(_Operand("func", text))
        elif kind == "field":
            path = tuple(p for p in text.split(".") if p)
            current.append(_Operand("field", path))
        elif kind == "string":
            value = text[1:-1] if text.startswith("`") else json.loads(text)
            current.append(_Operand("literal", value))
        else:
            current.append(_Operand("literal", float(text) if "." in text else int(text)))
    return _Action(tuple(commands), body)


def _check_command(command: tuple[_Operand, ...], body: str, source: str,
                   pos: int) -> tuple[_Operand, ...]:
    head = command[0]
    if head.kind != "func" and len(command) > 1:
        raise TemplateError(f"{{{{{body}}}}} {_where(source, pos)}: a value cannot take "
                            "arguments; put a function first, like {{json .Driver}}")
    if any(op.kind == "func" for op in command[1:]):
        raise TemplateError(f"{{{{{body}}}}} {_where(source, pos)}: a function can only come "
                            "first or after '|'")
    return command


class Template:
    """A parsed template: `render(data)` fills it from nested dicts/lists."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[str | _Action] = []
        self._parse()

    def _parse(self) -> None:
        text, pos, trim_next = self.source, 0, False
        while True:
            start = text.find("{{", pos)
            literal = text[pos:] if start < 0 else text[pos:start]
            if trim_next:
                literal = literal.lstrip()
            if start < 0:
                self.parts.append(literal)
                return
            end = _find_close(text, start + 2)
            if end < 0:
                raise TemplateError(f"unclosed action {_where(text, start)}: close it with "
                                    "'}}'")
            body = text[start + 2:end]
            if body.startswith("- ") or body == "-":
                literal, body = literal.rstrip(), body[1:]
            trim_next = body.endswith(" -")
            if trim_next:
                body = body[:-1]
            self.parts.append(literal)
            self.parts.append(_parse_action(body.strip(), text, start))
            pos = end + 2

    def render(self, data: Any, *, missing_keys: bool = False) -> str:
        """`missing_keys`: `data` is a map as Go sees one, where a key it lacks (or a null)
        prints `<no value>`; otherwise an unknown field is an error, as in a Go struct."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = self._run(part, data, missing_keys)
            out.append(NO_VALUE if value is _MISSING or (missing_keys and value is None)
                       else go_string(value))
        return "".join(out)

    def _run(self, action: _Action, data: Any, missing_keys: bool = False) -> Any:
        piped: Any = _NOTHING
        for command in action.commands:
            head = command[0]
            if head.kind == "func":
                func, arity = FUNCTIONS[head.value]
                args = [self._value(op, data, missing_keys) for op in command[1:]]
                if piped is not _NOTHING:
                    args.append(piped)
                args = [None if a is _MISSING else a for a in args]   # Go passes nil
                if len(args) != arity:
                    raise TemplateError(f"{{{{{action.source}}}}}: {head.value} takes {arity} "
                                        f"argument{'s' if arity > 1 else ''}, not {len(args)}")
                piped = func(*args)
            else:
                if piped is not _NOTHING:
                    raise TemplateError(f"{{{{{action.source}}}}}: only a function can follow "
                                        "'|'")
                piped = self._value(head, data, missing_keys)
        return piped

    @staticmethod
    def _value(op: _Operand, data: Any, missing_keys: bool) -> Any:
        if op.kind == "literal":
            return op.value
        return lookup(data, op.value, missing_keys)


_NOTHING = object()
_MISSING = object()   # a key the map lacks: Go's invalid reflect.Value


def _find_close(text: str, pos: int) -> int:
    """The index of the `}}` closing an action, skipping quoted strings."""
    quote = ""
    i = pos
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"`":
            quote = c
        elif text.startswith("}}", i):
            return i
        i += 1
    return -1


def _norm(key: str) -> str:
    return key.replace("_", "").lower()


def lookup(data: Any, path: tuple[str, ...], missing_keys: bool = False) -> Any:
    """Follow `path` through nested dicts: exact key first, then ignoring case and
    underscores (so `.Driver.IPAddress` finds a driver's `ip_address` too). With
    `missing_keys`, a key that is not there (or a field of a null) is _MISSING, as Go's
    text/template finds in a map; otherwise an error."""
    value = data
    walked = ""
    for name in path:
        if missing_keys and (value is _MISSING or value is None):
            return _MISSING
        if not isinstance(value, dict):
            raise TemplateError(f"can't evaluate field {name} in {walked or '.'}: it is "
                                f"{type(value).__name__}, not a record")
        if name in value:
            value = value[name]
        else:
            matches = [k for k in value if isinstance(k, str) and _norm(k) == _norm(name)]
            if len(matches) != 1 and missing_keys:
                return _MISSING
            if len(matches) != 1:
                fields = ", ".join(sorted(str(k) for k in value)) or "none"
                raise TemplateError(f"can't evaluate field {name} in {walked or '.'}: its "
                                    f"fields are {fields}")
            value = value[matches[0]]
        walked += "." + name
    return value


def parse(source: str) -> Template:
    return Template(source)


def split_table(fmt: str) -> tuple[str, bool]:
    """Docker's `--format` handling: a leading `table` asks for headers and aligned
    columns; `\\t` and `\\n` as typed in a shell become a tab and a newline."""
    table = fmt.startswith("table")
    if table:
        fmt = fmt[len("table"):]
    fmt = fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return fmt, table


def tabulate(lines: list[str], min_width: int = 5, padding: int = 3) -> str:
    """Align tab-separated cells as Go's tabwriter(minwidth 5, padding 3) does for
    `docker-machine ls`: every cell but a line's last is padded to its column's width
    (trailing spaces dropped)."""
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + padding, min_width)
    out = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.append(("".join(cells) + row[-1]).rstrip())
    return "\n".join(out)
