"""Image references as Docker reads them (distribution/reference): what an answer about
one must say to read like the Engine's, or classic Swarm's."""

from __future__ import annotations

import re

# reference.anchoredIdentifierRegexp, with the `sha256:` form the CLI also sends.
_IDENTIFIER = re.compile(r"(?:sha256:)?([a-f0-9]{64})")


def image_identifier(ref: str) -> str:
    """The 64-hex image ID that `ref` is (bare or `sha256:…`), or "" for a name."""
    found = _IDENTIFIER.fullmatch(ref)
    return found.group(1) if found else ""


def hex_name_error(hex_id: str) -> str:
    """reference.ParseNormalizedNamed's refusal of an ID where a repository name must
    be, as in a pull: the words classic Swarm users saw for `docker run <ID>` of an
    image no node had."""
    return f"invalid repository name ({hex_id}), cannot specify 64-byte hexadecimal strings"
