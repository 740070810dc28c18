"""`python -m flock.systemd`: print or install the manager and agent units.

    python -m flock.systemd render flock-agent [--install-dir D] [--etc-dir E]
    python -m flock.systemd install [--install-dir D] [--etc-dir E] [--unit-dir DIR]

`install` writes both units (default /etc/systemd/system) and prints what to run next;
it does not touch the environment files, which hold the operator's settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flock.common.systemd import DEFAULT_ETC_DIR, DEFAULT_INSTALL_DIR, UNITS, render


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flock.systemd",
                                     description="Print or install Flock's systemd units.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    show = commands.add_parser("render", help="print one unit for a layout")
    show.add_argument("unit", help=f"one of {', '.join(UNITS)}")
    put = commands.add_parser("install", help="write both units into --unit-dir")
    put.add_argument("--unit-dir", default="/etc/systemd/system",
                     help="where systemd reads units (default /etc/systemd/system)")
    for sub in (show, put):
        sub.add_argument("--install-dir", default=DEFAULT_INSTALL_DIR,
                         help=f"where Flock's venv is (default {DEFAULT_INSTALL_DIR})")
        sub.add_argument("--etc-dir", default=DEFAULT_ETC_DIR,
                         help=f"where manager.env, agent.env and certs/ are "
                              f"(default {DEFAULT_ETC_DIR})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "render":
            sys.stdout.write(render(args.unit, args.install_dir, args.etc_dir))
            return 0
        texts = {unit: render(unit, args.install_dir, args.etc_dir) for unit in UNITS}
    except ValueError as exc:
        print(f"flock.systemd: error: {exc}", file=sys.stderr)
        return 2
    unit_dir = Path(args.unit_dir)
    if not unit_dir.is_dir():
        print(f"flock.systemd: error: {unit_dir} is not a folder: is systemd installed? "
              "(or pass --unit-dir)", file=sys.stderr)
        return 1
    for unit, text in texts.items():
        (unit_dir / unit).write_text(text)
        print(f"wrote {unit_dir / unit}")
    print(f"next: write {args.etc_dir}/manager.env and/or agent.env (examples in "
          "deploy/systemd/), then: systemctl daemon-reload && "
          "systemctl enable --now flock-agent (or flock-manager)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
