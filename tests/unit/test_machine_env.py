"""`env` for every shell (set and unset forms, the hint) and `config`'s flags, in the
exact forms Docker Machine prints."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from flock.provisioner.commands.shellenv import (
    DOCKER_VARS,
    canonical_shell,
    config_lines,
    no_proxy,
    render,
    usage_hint,
)
from flock.provisioner.errors import MachineError

VARS = [("DOCKER_TLS_VERIFY", "1"), ("DOCKER_HOST", "tcp://10.0.0.5:2376"),
        ("DOCKER_CERT_PATH", "/s/machines/m1"), ("DOCKER_MACHINE_NAME", "m1")]
CMD = "flock machine env m1"

SET = {
    "bash": ['export DOCKER_TLS_VERIFY="1"', 'export DOCKER_HOST="tcp://10.0.0.5:2376"',
             'export DOCKER_CERT_PATH="/s/machines/m1"', 'export DOCKER_MACHINE_NAME="m1"',
             "# Run this command to configure your shell:",
             "# eval $(flock machine env m1)"],
    "fish": ['set -gx DOCKER_TLS_VERIFY "1";', 'set -gx DOCKER_HOST "tcp://10.0.0.5:2376";',
             'set -gx DOCKER_CERT_PATH "/s/machines/m1";', 'set -gx DOCKER_MACHINE_NAME "m1";',
             "# Run this command to configure your shell:",
             "# eval (flock machine env m1)"],
    "powershell": ['$Env:DOCKER_TLS_VERIFY = "1"', '$Env:DOCKER_HOST = "tcp://10.0.0.5:2376"',
                   '$Env:DOCKER_CERT_PATH = "/s/machines/m1"',
                   '$Env:DOCKER_MACHINE_NAME = "m1"',
                   "# Run this command to configure your shell:",
                   "# & flock machine env m1 | Invoke-Expression"],
    "cmd": ["SET DOCKER_TLS_VERIFY=1", "SET DOCKER_HOST=tcp://10.0.0.5:2376",
            "SET DOCKER_CERT_PATH=/s/machines/m1", "SET DOCKER_MACHINE_NAME=m1",
            "REM Run this command to configure your shell:",
            "REM \t@FOR /f \"tokens=*\" %i IN ('flock machine env m1') DO @%i"],
    "tcsh": ['setenv DOCKER_TLS_VERIFY "1";', 'setenv DOCKER_HOST "tcp://10.0.0.5:2376";',
             'setenv DOCKER_CERT_PATH "/s/machines/m1";', 'setenv DOCKER_MACHINE_NAME "m1";',
             ": Run this command to configure your shell:",
             ": eval `flock machine env m1`"],
    "emacs": ['(setenv "DOCKER_TLS_VERIFY" "1")', '(setenv "DOCKER_HOST" "tcp://10.0.0.5:2376")',
              '(setenv "DOCKER_CERT_PATH" "/s/machines/m1")',
              '(setenv "DOCKER_MACHINE_NAME" "m1")',
              ";; Run this command to configure your shell:",
              ';; (with-temp-buffer (shell-command "flock machine env m1" (current-buffer)) '
              "(eval-buffer))"],
}

UNSET = {
    "bash": [f"unset {v}" for v in DOCKER_VARS],
    "fish": [f"set -e {v};" for v in DOCKER_VARS],
    "powershell": [f"Remove-Item Env:\\\\{v}" for v in DOCKER_VARS],
    "cmd": [f"SET {v}=" for v in DOCKER_VARS],
    "tcsh": [f"unsetenv {v};" for v in DOCKER_VARS],
    "emacs": [f'(setenv "{v}" nil)' for v in DOCKER_VARS],
}


@pytest.mark.parametrize("shell", sorted(SET))
def test_set_forms(shell):
    assert render(shell, VARS, False, usage_hint(shell, CMD)).splitlines() == SET[shell]


@pytest.mark.parametrize("shell", sorted(UNSET))
def test_unset_forms(shell):
    lines = render(shell, [(v, "") for v in DOCKER_VARS], True,
                   usage_hint(shell, "flock machine env -u")).splitlines()
    assert lines[:4] == UNSET[shell]
    assert lines[4].endswith("Run this command to configure your shell:")
    assert "flock machine env -u" in lines[5]


def test_bash_output_really_sets_and_unsets_the_variables():
    text = render("bash", VARS, False, usage_hint("bash", CMD))
    done = subprocess.run(["bash", "-c", f'{text}\necho "$DOCKER_HOST|$DOCKER_TLS_VERIFY"'],
                          capture_output=True, text=True, timeout=30)
    assert done.stdout == "tcp://10.0.0.5:2376|1\n"
    unset = render("bash", [(v, "") for v in DOCKER_VARS], True, "")
    done = subprocess.run(["bash", "-c", f'{text}\n{unset}\necho "[${{DOCKER_HOST-gone}}]"'],
                          capture_output=True, text=True, timeout=30)
    assert done.stdout == "[gone]\n"


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_output_really_sets_the_variables():  # pragma: no cover - only where fish is
    text = render("fish", VARS, False, "")
    done = subprocess.run(["fish", "-c", f"{text}\necho $DOCKER_HOST"], capture_output=True,
                          text=True, timeout=30)
    assert done.stdout == "tcp://10.0.0.5:2376\n"


def test_shell_names():
    assert canonical_shell("zsh") == "bash" and canonical_shell("csh") == "tcsh"
    with pytest.raises(MachineError, match="unknown shell 'nu'"):
        canonical_shell("nu")


def test_no_proxy_adds_the_ip_once():
    assert no_proxy("10.0.0.5", {}) == ("NO_PROXY", "10.0.0.5")
    assert no_proxy("10.0.0.5", {"NO_PROXY": "a.com"}) == ("NO_PROXY", "a.com,10.0.0.5")
    assert no_proxy("10.0.0.5", {"no_proxy": "a,10.0.0.5"}) == ("no_proxy", "a,10.0.0.5")
    # a longer address that contains the IP is not the IP
    assert no_proxy("10.0.0.5", {"NO_PROXY": "10.0.0.50"}) == ("NO_PROXY", "10.0.0.50,10.0.0.5")


def test_config_lines():
    text = config_lines("/s/m1/ca.pem", "/s/m1/cert.pem", "/s/m1/key.pem",
                        "tcp://10.0.0.5:2376")
    assert text.splitlines() == ["--tlsverify", '--tlscacert="/s/m1/ca.pem"',
                                 '--tlscert="/s/m1/cert.pem"', '--tlskey="/s/m1/key.pem"',
                                 "-H=tcp://10.0.0.5:2376"]
    odd = config_lines('/a "b"/ca.pem', "c", "k", "tcp://h:1").splitlines()[1]
    assert odd == '--tlscacert="/a \\"b\\"/ca.pem"'    # quoted as Go's %q does
