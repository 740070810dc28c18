"""The generated modules in protos/ must match what the .proto sources produce."""

import pathlib
import tempfile

from flock.protos import regenerate


def test_generated_modules_are_fresh():
    with tempfile.TemporaryDirectory() as tmp:
        written = regenerate.generate(pathlib.Path(tmp))
        assert written, "no generated files"
        stale = [
            path.name
            for path in written
            if not (regenerate.HERE / path.name).exists()
            or (regenerate.HERE / path.name).read_text() != path.read_text()
        ]
    assert not stale, f"stale generated modules {stale}: run `python -m flock.protos.regenerate`"
