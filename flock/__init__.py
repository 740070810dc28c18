"""Flock: a cluster scheduler and machine provisioner with one Docker API over many machines.

Every part is imported under this one name: `flock.manager`, `flock.agent`,
`flock.provisioner`, `flock.discovery`, the ground floor `flock.common`, ... (their folders
sit at the top of the repository; pyproject.toml maps them). The modules in this folder
are the `flock` commands, the top floor.
"""

from pathlib import Path as _Path

# A source checkout run without installing it (`PYTHONPATH=<checkout> python3 -m flock`,
# deploy/local-cluster/_run.sh's fallback): the parts' folders sit beside this one, so
# `flock.manager` is looked for there too. Installed (a wheel, or `pip install -e .`), the
# folder above holds no pyproject.toml and nothing changes.
_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "common" / "__init__.py").is_file():
    __path__.append(str(_checkout))  # noqa: F821 - every package has __path__
