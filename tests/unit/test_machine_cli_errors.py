"""Bad input to `flock machine` (run in-process through flock's own entry point, on a
real store in a temporary folder): a clear message on stderr, exit code 1 (usage errors
too, as Docker Machine: see tests/unit/test_machine_cli_args.py), and a store that still
lists what exists."""

from __future__ import annotations

import pytest

from flock.cli import main
from flock.provisioner.store import Store
from tests.support.tls_endpoint import TLSEndpoint

URL = "tcp://127.0.0.1:1"   # nothing listens: the none driver never dials at create


def run(store, *args: str) -> int:
    try:
        return main(["machine", "-s", str(store), *args])
    except SystemExit as exc:   # argparse
        return int(exc.code or 0)


@pytest.fixture
def store(tmp_path, monkeypatch):
    # CI runs without a login shell: $SHELL unset must not hide the error a test expects.
    monkeypatch.delenv("SHELL", raising=False)
    assert run(tmp_path, "create", "-d", "none", "--url", URL, "m1") == 0
    return tmp_path


def check(capsys, code: int, expected_code: int, *fragments: str) -> None:
    captured = capsys.readouterr()
    assert code == expected_code, captured
    for fragment in fragments:
        assert fragment in captured.err, captured.err


def test_unknown_driver(store, capsys):
    check(capsys, run(store, "create", "-d", "virtualbox", "x"), 1,
          'Driver "virtualbox" not found. Flock has no driver plugins: use one of none, '
          "generic")


def test_existing_name(store, capsys):
    check(capsys, run(store, "create", "-d", "none", "--url", URL, "m1"), 1,
          'Docker machine "m1" already exists')


@pytest.mark.parametrize("name", ["a/b", "-x", ".x", "a b", "../x"])
def test_bad_name(store, capsys, name):
    # Docker Machine's words: commands/create.go wraps libmachine/mcnerror's
    # ErrInvalidHostname (its test/integration/cli/create-rm.bats checks the same line)
    check(capsys, run(store, "create", "-d", "none", "--url", URL, "--", name), 1,
          "Error creating machine: Invalid hostname specified. Allowed hostname chars are: "
          "0-9a-zA-Z . -")
    assert not (store / "machines" / "x").exists()


def test_none_needs_a_url_and_stores_any_as_given(store, capsys):
    # drivers/none/driver.go: "--url option is required when no driver is selected"; any
    # other string is stored as it is and nothing is dialled at create
    check(capsys, run(store, "create", "-d", "none", "x"), 1,
          "--url option is required when no driver is selected")
    for name, url in (("h1", "http://h:1"), ("h2", "tcp://h"), ("h3", "none")):
        assert run(store, "create", "-d", "none", "--url", url, name) == 0
        assert Store(store).load(name).driver["URL"] == url


def test_bad_common_flags(store, capsys):
    base = ["create", "-d", "none", "--url", URL]
    check(capsys, run(store, *base, "--engine-label", "novalue", "x"), 1,
          "--engine-label 'novalue': give KEY=VALUE")
    check(capsys, run(store, *base, "--swarm", "x"), 1, "need --swarm-discovery")
    check(capsys, run(store, *base, "--swarm", "--swarm-discovery", "zk://h/p", "x"), 1,
          "unknown scheme 'zk'")
    check(capsys, run(store, *base, "--tls-san", "a b", "x"), 1, "--tls-san 'a b'")
    check(capsys, run(store, *base, "--ssh-timeout", "0", "x"), 1, "--ssh-timeout 0")
    check(capsys, run(store, *base, "--install-dir", "opt", "x"), 1, "absolute path")
    check(capsys, run(store, *base, "--engine-runtime", "lxc", "x"), 1, "invalid choice")


def test_count_and_prefix(store, capsys):
    base = ["create", "-d", "none", "--url", URL]
    check(capsys, run(store, *base, "--count", "2"), 1, "--count needs --prefix")
    check(capsys, run(store, *base, "--count", "2", "--prefix", "w-", "x"), 1, "not both")
    check(capsys, run(store, *base, "--prefix", "w-"), 1, "--prefix goes with --count")
    check(capsys, run(store, *base, "--name", "dup", "--name", "dup"), 1,
          'machine name "dup" is given twice')
    check(capsys, run(store, *base), 1, "No machine name specified")
    assert run(store, *base, "--count", "3", "--prefix", "w-") == 0
    captured = capsys.readouterr()
    assert "Created 3 machines: w-1, w-2, w-3" in captured.out
    for name in ("w-1", "w-2", "w-3"):   # plain output, one line per step, named
        assert f"({name}) Docker is up and running!" in captured.out
    run(store, "ls", "-q")
    assert capsys.readouterr().out.split() == ["m1", "w-1", "w-2", "w-3"]


def test_another_drivers_flag_is_refused(store, capsys):
    code = run(store, "create", "-d", "none", "--url", URL, "--amazonec2-ami", "ami-1", "x")
    check(capsys, code, 1, "--amazonec2-ami is a flag of the amazonec2 driver, not of none")


def test_unknown_flag_or_command_is_a_usage_error_exit_1(store, capsys):
    check(capsys, run(store, "ls", "--bogus"), 1, "Incorrect Usage.",
          "flag provided but not defined: -bogus")
    check(capsys, run(store, "frobnicate"), 1,
          "flock machine: 'frobnicate' is not a flock machine command.")


def test_unknown_machine(store, capsys):
    for command in (["inspect", "nope"], ["ip", "nope"], ["url", "nope"], ["status", "nope"],
                    ["env", "nope"], ["config", "nope"], ["stop", "nope"]):
        check(capsys, run(store, *command), 1, 'Docker machine "nope" does not exist')


def test_no_name_and_no_default_machine(store, capsys):
    check(capsys, run(store, "ip"), 1, 'no "default" machine exists')


def test_bad_filters_and_templates(store, capsys):
    check(capsys, run(store, "ls", "--filter", "colour=red"), 1,
          "Unsupported filter key 'colour'")
    check(capsys, run(store, "ls", "--filter", "driver"), 1, "Unsupported filter syntax")
    check(capsys, run(store, "ls", "--filter", "name=(("), 1, "not a valid regular expression")
    assert run(store, "ls", "--filter", "state=asleep") == 0   # matches nothing (ls.go)
    assert capsys.readouterr().out.splitlines()[1:] == []
    check(capsys, run(store, "ls", "--format", "{{.Name"), 1, "unclosed action")
    check(capsys, run(store, "ls", "--format", "{{.Colour}}"), 1,
          "can't evaluate field Colour")
    check(capsys, run(store, "ls", "--timeout", "0"), 1, "--timeout 0")
    # inspect executes its template on a map (commands/inspect.go): a missing key is
    # text/template's <no value>, exit 0
    assert run(store, "inspect", "-f", "{{.Driver.Nope}}", "m1") == 0
    assert capsys.readouterr().out == "<no value>\n"
    check(capsys, run(store, "inspect", "-f", "{{range .X}}", "m1"), 1, "not supported")


def test_env_errors(store, capsys):
    check(capsys, run(store, "env", "-u", "m1"), 1, "Expected no machine name")
    check(capsys, run(store, "env", "--swarm", "m1"), 1, '"m1" is not a swarm master')
    check(capsys, run(store, "env", "--shell", "zork", "m1"), 1, "invalid choice")


def test_env_without_shell_names_the_fix_only_for_a_good_machine(store, capsys, monkeypatch):
    with TLSEndpoint() as engine:   # env dials the engine first (commands/env.go)
        assert run(store, "create", "-d", "none", "--url", engine.url, "live") == 0
        folder = store / "machines" / "live"
        engine.serve(folder / "server.pem", folder / "server-key.pem",
                     store / "certs" / "ca.pem")
        capsys.readouterr()
        check(capsys, run(store, "env", "live"), 1, "$SHELL is not set; pass --shell")
        assert run(store, "env", "--shell", "bash", "live") == 0
        assert 'export DOCKER_MACHINE_NAME="live"' in capsys.readouterr().out
        monkeypatch.setenv("SHELL", "/usr/bin/fish")
        assert run(store, "env", "live") == 0
        assert 'set -gx DOCKER_MACHINE_NAME "live";' in capsys.readouterr().out


def test_exec_runtime_machine_has_no_docker_endpoint(store, capsys):
    assert run(store, "create", "-d", "none", "--url", URL, "--engine-runtime", "exec",
               "e1") == 0
    capsys.readouterr()
    for command in ("env", "config", "url"):
        check(capsys, run(store, command, "e1"), 1, "runs the exec runtime",
              "flock machine env --swarm")


def test_none_cannot_be_stopped_killed_or_restarted_and_is_always_running(store, capsys):
    # drivers/none/driver.go: "hosts without a driver cannot be stopped/killed/restarted"
    check(capsys, run(store, "stop", "m1"), 1, "hosts without a driver cannot be stopped")
    check(capsys, run(store, "kill", "m1"), 1, "hosts without a driver cannot be killed")
    check(capsys, run(store, "restart", "m1"), 1,
          "hosts without a driver cannot be restarted")
    check(capsys, run(store, "start", "m1"), 1, 'Machine "m1" is already running.')
    check(capsys, run(store, "upgrade", "m1"), 1, "uses the none driver")


def test_regenerate_certs_on_none_fails_and_keeps_the_cert(store, capsys):
    # Docker Machine fails too: ConfigureAuth finds no SSH on a none machine
    cert = (store / "machines" / "m1" / "server.pem").read_bytes()
    check(capsys, run(store, "regenerate-certs", "-f", "m1"), 1, "uses the none driver",
          "cannot reach it over SSH")
    assert (store / "machines" / "m1" / "server.pem").read_bytes() == cert


def test_failed_create_keeps_the_record_with_its_error_and_rm_cleans_up(store, capsys):
    (store / "certs" / "ca.pem").write_text("not a certificate\n")   # a broken CA
    code = run(store, "create", "-d", "none", "--url", URL, "broken")
    check(capsys, code, 1, "Error creating machine:", "flock machine rm -y broken")
    assert run(store, "ls", "--format", "{{.Name}}|{{.Error}}") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "broken|" + Store(store).load("broken").error
    assert "the store's CA cannot be used" in lines[0] and lines[1].startswith("m1|")
    assert run(store, "rm", "-y", "broken") == 0
    assert "Successfully removed broken" in capsys.readouterr().out


def test_broken_config_is_listed_and_rm_f_removes_it(store, capsys):
    (store / "machines" / "bad").mkdir()
    (store / "machines" / "bad" / "config.json").write_text("{not json")
    assert run(store, "ls") == 0
    out = capsys.readouterr().out
    assert any(line.startswith("bad") and "not found" in line and "Error" in line
               for line in out.splitlines())
    check(capsys, run(store, "rm", "-y", "bad"), 1, 'Error removing host "bad"',
          "flock machine rm -f bad")
    assert run(store, "rm", "-f", "bad") == 0
    assert "Successfully removed bad" in capsys.readouterr().out
    assert not (store / "machines" / "bad").exists()


def test_import_refuses_bad_archives(store, tmp_path, capsys):
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not an archive")
    check(capsys, run(store, "import", str(junk)), 1, "not a flock machine export")
    check(capsys, run(store, "import", str(tmp_path / "none.tgz")), 1, "cannot read")
    archive = tmp_path / "m1.tgz"
    assert run(store, "export", "m1", "-o", str(archive)) == 0
    check(capsys, run(store, "import", str(archive)), 1, 'Docker machine "m1" already exists')
    check(capsys, run(store, "import", str(archive), "a/b"), 1,
          "Error importing machine: Invalid hostname specified.")


def test_rm_of_a_name_no_machine_can_have_is_a_machine_that_does_not_exist(store, capsys):
    # looked up before it is validated, as Docker Machine's api.Load does (commands/rm.go)
    check(capsys, run(store, "rm", "-y", "a/b"), 1,
          'Error removing host "a/b": Docker machine "a/b" does not exist.')
    assert run(store, "rm", "-f", "a/b") == 0   # -f: reported, not a failure (rm.go)
    assert 'Docker machine "a/b" does not exist' in capsys.readouterr().err
