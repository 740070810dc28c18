"""`flock machine`'s arguments, help, version and exit codes, as Docker Machine 0.16.2's
(cmd/docker-machine/machine.go, commands/commands.go, commands/*.go and the vendored
codegangsta/cli): run in-process through flock's entry point on a real store (none
driver: nothing is dialled at create), and once as a real process for the exit codes a
shell sees. No real target is touched: argument handling happens before any."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from flock.cli import main
from flock.common.version import __version__, revision
from flock.provisioner.store import Store
from tests.support.procs import REPO

URL = "tcp://127.0.0.1:1"
VERSION = f"flock machine version {__version__}, build {revision()}"


def run(store, *args: str) -> int:
    try:
        return main(["machine", "-s", str(store), *args])
    except SystemExit as exc:   # help, version and usage errors exit from the parser
        return int(exc.code or 0)


@pytest.fixture
def store(tmp_path, capsys):
    assert run(tmp_path, "create", "-d", "none", "--url", URL, "m1") == 0
    capsys.readouterr()
    return tmp_path


def outcome(capsys, code: int) -> tuple[int, str, str]:
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- help and version --------------------------------------------------------------------
def test_no_arguments_print_the_app_help_and_exit_0(capsys):
    # codegangsta/cli runs the help command when no command is given; AppHelpTemplate
    # (machine.go) starts with "Usage:" and ends with the hint about COMMAND --help
    code, out, err = outcome(capsys, main(["machine"]))
    assert code == 0 and err == ""
    assert out.startswith("Usage: flock machine [OPTIONS] COMMAND [arg...]\n")
    for command in ("create", "ls", "env", "rm", "mount", "version", "help"):
        assert f"\n    {command} " in out
    assert out.rstrip().endswith("Run 'flock machine COMMAND --help' for more information "
                                 "on a command.")


def test_help_and_help_command(store, capsys):
    code, app_help, _ = outcome(capsys, run(store, "help"))
    assert code == 0 and app_help.startswith("Usage: flock machine [OPTIONS]")
    code, out, _ = outcome(capsys, run(store, "help", "ls"))
    assert code == 0 and out.startswith("Usage: flock machine ls ")
    assert "--filter" in out and out == outcome(capsys, run(store, "ls", "--help"))[1]
    code, out, err = outcome(capsys, run(store, "help", "nope"))
    assert (code, out, err) == (1, "", "No help topic for 'nope'\n")


@pytest.mark.parametrize("argv", [["-v"], ["--version"], ["version"]])
def test_version_line(store, capsys, argv):
    # cli.ShowVersion: "%v version %v" with version.FullVersion() "X, build REV"
    assert outcome(capsys, run(store, *argv)) == (0, VERSION + "\n", "")


def test_create_help_shows_the_flags_of_the_driver_asked_for(store, capsys):
    # commands/create.go: "Run 'docker-machine create --driver name' to include the create
    # flags for that driver in the help text" (flagHackLookup finds -d anywhere)
    for argv in (["-d", "none", "-h"], ["-h", "--driver", "none"]):
        code, out, _ = outcome(capsys, run(store, "create", *argv))
        assert code == 0 and out.startswith("Usage: flock machine create ")
        assert "--url" in out and "--generic-ip-address" not in out
        assert "--engine-storage-driver" in out and "--swarm-join-opt" in out
    code, out, _ = outcome(capsys, run(store, "create", "-d", "generic", "--help"))
    assert "--generic-ip-address" in out and "--generic-engine-port" in out
    assert "--url" not in out and "--amazonec2-ami" not in out
    code, out, _ = outcome(capsys, run(store, "create", "--help"))   # no -d: every driver's
    assert all(f in out for f in ("--url", "--generic-ip-address", "--amazonec2-ami"))


# --- usage errors: the command's own, exit 1 ---------------------------------------------
def test_an_unknown_flag_is_incorrect_usage_with_the_commands_help(store, capsys):
    # command.go: "Incorrect Usage." then the command's help; Go's flag package names the
    # flag ("flag provided but not defined: -bogus"). Docker Machine then exits 0 (its
    # main() only logs app.Run's error): Flock exits 1 (docs/machine-compat.md)
    code, out, err = outcome(capsys, run(store, "ls", "--bogus"))
    assert code == 1 and out == ""
    assert err.startswith("Incorrect Usage.\n\nUsage: flock machine ls ")
    assert err.rstrip().endswith("flag provided but not defined: -bogus")
    assert "usage: flock [-h]" not in err   # not the top-level flock usage
    code, _, err = outcome(capsys, run(store, "env", "--shell"))
    assert code == 1 and "Usage: flock machine env" in err and "expected one argument" in err


def test_an_unknown_command(store, capsys):
    # machine.go cmdNotFound: "%s: '%s' is not a %s command. See '%s --help'.", exit 1
    assert outcome(capsys, run(store, "frobnicate")) == (
        1, "", "flock machine: 'frobnicate' is not a flock machine command. See 'flock "
               "machine --help'.\n")


def test_create_with_an_extra_argument_creates_nothing(store, capsys):
    # commands/create.go; test/integration/cli/create-rm.bats: "fail with extra argument"
    code, _, err = outcome(capsys, run(store, "create", "-d", "none", "--url", URL, "a",
                                       "extra"))
    assert (code, err) == (1, "Invalid command line. Found extra arguments [extra]\n")
    code, _, err = outcome(capsys, run(store, "create", "-d", "none", "--url", URL, "a",
                                       "b", "c"))
    assert (code, err) == (1, "Invalid command line. Found extra arguments [b c]\n")
    assert Store(store).names() == ["m1"]


@pytest.mark.parametrize("command", [["inspect"], ["url"], ["status"], ["config"], ["env"],
                                     ["version"]])
def test_commands_of_one_machine_refuse_two(store, capsys, command):
    # commands/commands.go ErrExpectedOneMachine (inspect.go, url.go, status.go, config.go,
    # env.go, version.go)
    assert outcome(capsys, run(store, *command, "m1", "m2")) == (
        1, "", "Error: Expected one machine name as an argument\n")


def test_commands_without_arguments_refuse_one(store, capsys):
    # commands/commands.go ErrTooManyArguments (active.go)
    assert outcome(capsys, run(store, "active", "m1")) == (
        1, "", "Error: Too many arguments given\n")


def test_a_name_no_machine_can_have_does_not_exist(store, capsys):
    # libmachine's api.Load looks the machine up before any name check: "does not exist"
    # (mcnerror.ErrHostDoesNotExist); only create and import say the name is invalid
    for command in (["inspect"], ["ip"], ["status"], ["env", "--shell", "bash"], ["stop"]):
        code, _, err = outcome(capsys, run(store, *command, "a/b"))
        assert code == 1 and 'Docker machine "a/b" does not exist.' in err, (command, err)


def test_ls_errors_column_and_an_unknown_state(store, capsys):
    # commands/ls.go: DOCKER "Unknown" and the version query's error under ERRORS; a
    # state filter no machine matches is an empty table, exit 0
    code, out, _ = outcome(capsys, run(store, "ls", "--format",
                                       "{{.DockerVersion}}|{{.Error}}"))
    assert code == 0 and out.startswith("Unknown|Unable to query docker version: ")
    code, out, _ = outcome(capsys, run(store, "ls", "--filter", "state=Asleep"))
    assert code == 0 and out.split() == ["NAME", "ACTIVE", "DRIVER", "STATE", "URL", "SWARM",
                                         "DOCKER", "ERRORS"]


def test_rm_needs_a_name(store, capsys):
    # commands/rm.go ErrNoMachineSpecified (create-rm.bats: "rm with no name fails")
    assert outcome(capsys, run(store, "rm", "-y")) == (
        1, "", "Error: Expected to get one or more machine names as arguments\n")


def test_a_refused_pre_create_check_exits_3(store, tmp_path, capsys):
    # commands/commands.go: osExit(3) for libmachine's ErrDuringPreCreate ("Error with
    # pre-create check: ..."); the generic driver checks its key file before dialling
    code, _, err = outcome(capsys, run(store, "create", "-d", "generic",
                                       "--generic-ip-address", "192.0.2.10",
                                       "--generic-ssh-key", str(tmp_path / "missing"), "g1"))
    assert code == 3
    assert "Error creating machine: Error with pre-create check: " in err
    assert Store(store).names() == ["m1"]


# --- rm's question -----------------------------------------------------------------------
@pytest.mark.parametrize("answer, removed", [("", False), ("n\n", False), ("nope\n", False),
                                             ("y\n", True), ("Yes\n", True)])
def test_rm_asks_and_eof_removes_nothing_with_exit_0(store, capsys, monkeypatch, answer,
                                                     removed):
    # commands/rm.go: confirmInput's error (EOF) makes userConfirm false: nothing is
    # removed and cmdRm returns nil; an answer starting with y/Y is yes (commands.go)
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
    code, out, err = outcome(capsys, run(store, "rm", "m1"))
    assert code == 0
    assert out.startswith("About to remove m1\nWARNING: This action will delete both local "
                          "reference and remote instance.\nAre you sure? (y/n): ")
    assert Store(store).exists("m1") is not removed
    assert ("Successfully removed m1" in out) is removed
    assert ("Nothing removed." in err) is not removed


# --- global flags ------------------------------------------------------------------------
def test_docker_machines_global_flags_are_accepted(store, capsys):
    code, out, _ = outcome(capsys, run(store, "--native-ssh", "--github-api-token", "t1",
                                       "--bugsnag-api-token", "t2", "ls", "-q"))
    assert (code, out) == (0, "m1\n")


def test_debug_flag_logs_on_stderr(store, capsys):
    code, out, err = outcome(capsys, run(store, "-D", "ls", "-q"))
    assert (code, out) == (0, "m1\n")
    assert VERSION in err and f"store {store}" in err
    assert "DEBUG" not in outcome(capsys, run(store, "ls", "-q"))[2]


def test_tls_flags_choose_the_ca_and_client_cert(store, tmp_path, capsys):
    # machine.go --tls-ca-cert/--tls-ca-key/--tls-client-cert/--tls-client-key: the CA
    # that signs the machine's server cert and the client cert env/config hand out
    other = tmp_path / "other"
    assert run(other, "create", "-d", "none", "--url", URL, "seed") == 0   # makes a CA
    certs = other / "certs"
    assert run(store, "--tls-ca-cert", str(certs / "ca.pem"), "--tls-ca-key",
               str(certs / "ca-key.pem"), "--tls-client-cert", str(certs / "cert.pem"),
               "--tls-client-key", str(certs / "key.pem"), "create", "-d", "none", "--url",
               URL, "m2") == 0
    folder = store / "machines" / "m2"
    assert (folder / "ca.pem").read_bytes() == (certs / "ca.pem").read_bytes()
    assert (folder / "cert.pem").read_bytes() == (certs / "cert.pem").read_bytes()
    assert (folder / "ca.pem").read_bytes() != (store / "certs" / "ca.pem").read_bytes()


# --- as a shell sees it ------------------------------------------------------------------
def test_exit_codes_of_the_real_command(tmp_path):
    def flock(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flock", "machine", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    done = flock()
    assert done.returncode == 0 and done.stdout.startswith("Usage: flock machine")
    done = flock("-s", str(tmp_path), "ls", "--bogus")
    assert done.returncode == 1 and "flag provided but not defined: -bogus" in done.stderr
    done = flock("-s", str(tmp_path), "inspect", "a", "b")
    assert done.returncode == 1
    assert done.stderr == "Error: Expected one machine name as an argument\n"


def test_recorded_only_flags_are_kept_in_the_record(store, capsys):
    # --engine-install-url, --swarm-image, --swarm-experimental change nothing in Flock
    # (docs/machine-compat.md) but are kept where Docker Machine keeps them
    assert run(store, "create", "-d", "none", "--url", URL, "--engine-install-url",
               "https://get.example.com", "--swarm", "--swarm-discovery",
               "nodes://192.0.2.1:4000", "--swarm-image", "swarm:1.2.9",
               "--swarm-experimental", "m2") == 0
    capsys.readouterr()
    assert run(store, "inspect", "-f", "{{.HostOptions.EngineOptions.InstallURL}} "
               "{{.HostOptions.SwarmOptions.Image}} {{.HostOptions.SwarmOptions.IsExperimental}}",
               "m2") == 0
    assert capsys.readouterr().out == "https://get.example.com swarm:1.2.9 true\n"
