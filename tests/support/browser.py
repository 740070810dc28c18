"""Headless Chromium for page tests: Debian's `chromium` and `chromium-driver` driven by
Selenium, with a profile of its own and no network of its own (no sync, no component
updates, no QUIC), stopped by PID with every process it started.

Selenium is given both binaries' paths, so it never looks for (or downloads) drivers.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import shutil
import signal
import time
from collections import defaultdict
from dataclasses import dataclass

from tests.support.procs import alive

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)
WINDOW = (1280, 900)


def missing() -> str:
    """Why a browser cannot start here ("" when it can)."""
    for program, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(program) is None:
            return (f"{program} is not installed: apt-get install chromium chromium-driver "
                    f"(scripts/test.sh installs {package})")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return ""


@dataclass
class Browser:
    """A running chromedriver + Chromium and the Selenium session on it."""

    driver: object  # selenium.webdriver.Chrome
    driver_pid: int
    profile: pathlib.Path

    def close(self) -> None:
        """Quit the session, then kill by PID whatever chromedriver started that is left."""
        family = [self.driver_pid, *descendants(self.driver_pid)]
        with contextlib.suppress(Exception):
            self.driver.quit()  # type: ignore[attr-defined]
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in family) and time.monotonic() < deadline:
            time.sleep(0.05)


def start(profile: pathlib.Path, log: pathlib.Path, insecure_certs: bool = False) -> Browser:
    """Chromium with a fresh profile in `profile`; chromedriver's log goes to `log`.
    `insecure_certs`: accept a server cert no system CA signed (a test's own CA)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile.mkdir(parents=True, exist_ok=True)
    options = Options()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.accept_insecure_certs = insecure_certs
    service = Service(executable_path=shutil.which("chromedriver"), log_output=str(log))
    driver = webdriver.Chrome(service=service, options=options)
    return Browser(driver=driver, driver_pid=service.process.pid, profile=profile)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children[parent].append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def png_colours(png: bytes) -> tuple[tuple[int, int], set[tuple[int, int, int]]]:
    """(width, height) and the distinct RGB colours of a PNG; ValueError if it is not one."""
    from PIL import Image

    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("not a PNG")
    image = Image.open(io.BytesIO(png))
    image.load()
    rgb = image.convert("RGB")
    colours = rgb.getcolors(maxcolors=1 << 24) or []
    return rgb.size, {colour for _count, colour in colours}
