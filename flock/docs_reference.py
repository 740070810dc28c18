"""`python -m flock.docs_reference > docs/reference.md`: the command reference, made from
the argparse parsers of the `flock` command themselves so that it cannot drift from
the code; tests/unit/test_docs_reference.py fails when the checked-in file is stale.

Every command's `--help` is rendered in a fixed environment (help width 100, HOME=~,
no DOCKER_*, FLOCK_*, AWS_* or other variables) so that the page is the same on every
machine: defaults that come from the environment show as `~/.docker`, not /root/.docker.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

WIDTH = 100
KEPT = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV")
# HOME while rendering; shown as `~` (pathlib refuses a literal "~" as a home).
HOME = "/__home__"
COMMAND = "python -m flock.docs_reference > docs/reference.md"


@contextlib.contextmanager
def fixed_environment() -> Iterator[None]:
    """The environment the reference is rendered in, restored afterwards."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update({k: v for k, v in saved.items() if k in KEPT})
        os.environ.update({"HOME": HOME, "COLUMNS": str(WIDTH + 2), "LINES": "50"})
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and all its sub-command parsers, depth first, in the order they were
    registered (aliases once)."""
    yield parser
    seen: set[int] = set()
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from walk(sub)


def anchor(prog: str) -> str:
    """GitHub's heading anchor for `## prog`."""
    return "-".join(prog.lower().split())


def render() -> str:
    """The whole reference page as Markdown."""
    with fixed_environment():
        from flock.cli import build_parser

        parsers = list(walk(build_parser()))
        sections = [(p.prog, p.format_help().rstrip().replace(HOME, "~")) for p in parsers]
    lines = [
        "# Command reference",
        "",
        f"Generated from the `flock` command's own parsers by `{COMMAND}`;",
        "a test fails when this page is stale. Defaults that depend on the machine are shown",
        "for `HOME=~` and no `DOCKER_*`/`FLOCK_*` variables.",
        "",
    ]
    lines += [f"- [`{prog}`](#{anchor(prog)})" for prog, _ in sections]
    for prog, text in sections:
        lines += ["", f"## {prog}", "", "```text", text, "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
