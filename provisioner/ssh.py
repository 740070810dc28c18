"""SSH to a machine with paramiko: its key pair, a connection that waits while the host
boots, commands with streamed output and exit codes, and SFTP both ways.

Host keys are trusted on first use and remembered in the machine folder's own
`known_hosts` (not the user's ~/.ssh/known_hosts: a machine is a store entry, and a
store can be moved or handed over). A host whose key later changes is refused, with the
command that forgets the old key when the change is expected (a rebuilt host).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import select
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flock.certs.files import PUBLIC_MODE, SECRET_MODE, write_file
from flock.provisioner.drivers.base import SSHDetails
from flock.provisioner.errors import MachineError

KEY_FILE = "id_rsa"
PUB_FILE = "id_rsa.pub"
KNOWN_HOSTS = "known_hosts"
WAIT_STEP = "Waiting for SSH"
ATTEMPT_TIMEOUT = 10.0     # one TCP connect + banner + auth, at most
AUTH_ATTEMPTS = 3          # a key refused this often in a row is the wrong key
RETRY_PAUSE = 1.0
CHUNK = 32768

Sink = Callable[[bytes], object]

# paramiko logs every connection at INFO, and each failed attempt while a host boots
# ("Error reading SSH protocol banner") at ERROR with a traceback, before the retry that
# usually succeeds. The errors reach the caller as exceptions, and flock's own messages
# name the step and the host, so paramiko's own lines are only noise.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)
log = logging.getLogger(__name__)   # `flock machine -D`: each command run over SSH


# --- the machine's key pair ------------------------------------------------------------
def ensure_key_pair(machine_dir: Path) -> str:
    """`id_rsa` (RSA 2048, 0600) and `id_rsa.pub` in `machine_dir`, made once; returns the
    public key line (what goes into the host's authorized_keys). An existing id_rsa (for
    instance one copied there from --generic-ssh-key) is kept and its .pub rewritten."""
    folder = Path(machine_dir)
    key_path, pub_path = folder / KEY_FILE, folder / PUB_FILE
    if key_path.exists():
        line = public_line(key_path, comment=folder.name)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        write_file(key_path, pem, SECRET_MODE)
        blob = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH)
        line = f"{blob.decode()} {folder.name}"
    if not pub_path.exists() or pub_path.read_text().strip() != line:
        write_file(pub_path, (line + "\n").encode(), PUBLIC_MODE)
    return line


def load_key(path: str | os.PathLike) -> paramiko.PKey:
    """A private key of any type paramiko knows; MachineError says what is wrong with it."""
    try:
        return paramiko.PKey.from_path(str(path))
    except FileNotFoundError:
        raise MachineError(f"SSH key {path} not found: give an existing private key "
                           "file") from None
    except paramiko.PasswordRequiredException:
        raise MachineError(f"SSH key {path} is protected by a passphrase: use a key without "
                           "one (ssh-keygen -p -N '' -f KEY removes it from a copy)") from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise MachineError(f"SSH key {path} cannot be read as a private key ({exc}): give "
                           "an OpenSSH or PEM private key file") from None


def public_line(path: str | os.PathLike, comment: str = "") -> str:
    key = load_key(path)
    return f"{key.get_name()} {key.get_base64()}" + (f" {comment}" if comment else "")


# --- connecting --------------------------------------------------------------------------
def host_label(host: str, port: int) -> str:
    """How known_hosts (and ssh-keygen -R) name a host: `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    import base64
    import hashlib

    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _RememberNewKey(paramiko.MissingHostKeyPolicy):
    """Trust on first use: accept a host never seen, and record its key."""

    def __init__(self) -> None:
        self.seen: tuple[str, paramiko.PKey] | None = None

    def missing_host_key(self, client, hostname, key) -> None:
        self.seen = (hostname, key)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        inner = next(iter(exc.errors.values()), None)
        return _describe(inner) if inner else str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port yet)"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "connection timed out (no answer from the host)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, EOFError):
        return "the server closed the connection during the handshake"
    return str(exc) or type(exc).__name__


def connect(details: SSHDetails, known_hosts: str | os.PathLike, *, timeout: float = 0.0,
            step: str = WAIT_STEP, progress: Callable[[str], None] | None = None) -> Connection:
    """A connection to `details`, retried while the host boots until `timeout` seconds have
    passed. MachineError (with `step`) names what it waited for and the last error; a
    refused key or a changed host key fail at once with what to do about them."""
    key = load_key(details.key_path)
    target = f"{details.user}@{details.host}:{details.port}"
    deadline = time.monotonic() + max(0.0, timeout)
    last: BaseException | None = None
    refused = 0
    if progress:
        progress(f"{step} ({target})")
    while True:
        remaining = deadline - time.monotonic()
        try:
            return _connect_once(details, key, Path(known_hosts),
                                 max(1.0, min(ATTEMPT_TIMEOUT, remaining)))
        except paramiko.BadHostKeyException as exc:
            raise _changed_key(details, Path(known_hosts), exc, step) from None
        except paramiko.AuthenticationException as exc:
            refused += 1
            last = exc
            if refused >= AUTH_ATTEMPTS or remaining <= RETRY_PAUSE:
                pub = _pub_of(details.key_path)
                raise MachineError(
                    f"{target} refused the SSH key {details.key_path} ({exc}). Authorize its "
                    f"public key on the host (`ssh-copy-id -i {pub} -p {details.port} "
                    f"{details.user}@{details.host}`, or add {pub} to "
                    f"~{details.user}/.ssh/authorized_keys), or use a key the host already "
                    "accepts", step=step) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            last = exc
        if time.monotonic() + RETRY_PAUSE >= deadline:
            waited = f"{timeout:g}s" if timeout else "one attempt"
            raise MachineError(
                f"waited {waited} for SSH at {target}; last error: "
                f"{_describe(last) if last else 'none'}. Check that the host is up and its "
                "SSH port is reachable from here, or allow more time with --ssh-timeout",
                step=step)
        time.sleep(RETRY_PAUSE)


def _pub_of(key_path: str) -> str:
    pub = Path(str(key_path) + ".pub")
    return str(pub) if pub.exists() else f"the public half of {key_path}"


def _connect_once(details: SSHDetails, key: paramiko.PKey, known_hosts: Path,
                  timeout: float) -> Connection:
    client = paramiko.SSHClient()
    if known_hosts.exists():
        try:
            client.load_host_keys(str(known_hosts))
        except (OSError, paramiko.SSHException) as exc:
            raise MachineError(f"{known_hosts}: cannot read ({exc}); delete it to trust the "
                               "host's current key again") from None
    policy = _RememberNewKey()
    client.set_missing_host_key_policy(policy)
    try:
        client.connect(details.host, port=details.port, username=details.user, pkey=key,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       allow_agent=False, look_for_keys=False)
    except BaseException:
        client.close()
        raise
    if policy.seen is not None:
        _remember(known_hosts, *policy.seen)
    transport = client.get_transport()
    assert transport is not None
    transport.set_keepalive(15)
    return Connection(details, client)


_known_lock = threading.Lock()


def _remember(known_hosts: Path, hostname: str, key: paramiko.PKey) -> None:
    with _known_lock:
        keys = paramiko.HostKeys()
        if known_hosts.exists():
            keys.load(str(known_hosts))
        keys.add(hostname, key.get_name(), key)
        lines = []
        for entry in keys._entries:   # HostKeys.save() writes in place, not atomically
            line = entry.to_line()
            if line:
                lines.append(line)
        write_file(known_hosts, "".join(lines).encode(), PUBLIC_MODE)


def _changed_key(details: SSHDetails, known_hosts: Path, exc: paramiko.BadHostKeyException,
                 step: str) -> MachineError:
    label = host_label(details.host, details.port)
    return MachineError(
        f"the SSH host key of {details.host}:{details.port} has CHANGED since it was first "
        f"seen (remembered {fingerprint(exc.expected_key)}, now "
        f"{fingerprint(exc.key)}): refusing to connect, someone may be intercepting the "
        "connection. If the host was rebuilt or reinstalled, forget the old key with "
        f"`ssh-keygen -f {known_hosts} -R '{label}'` and try again", step=step)


# --- a connection -------------------------------------------------------------------------
@dataclass
class Result:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    def tail(self, lines: int = 15) -> str:
        """The last lines of stderr and stdout, for an error message."""
        both = (self.stderr + b"\n" + self.stdout).decode(errors="replace").strip()
        return "\n".join(both.splitlines()[-lines:])


class Connection:
    """One SSH connection: run commands, copy files. Close it (or use `with`)."""

    def __init__(self, details: SSHDetails, client: paramiko.SSHClient) -> None:
        self.details = details
        self.client = client
        self._sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
            self._sftp = None
        self.client.close()

    def _session(self) -> paramiko.Channel:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise MachineError(f"the SSH connection to {self.details.host} was lost")
        return transport.open_session(timeout=ATTEMPT_TIMEOUT)

    # --- commands ------------------------------------------------------------------------
    def run(self, command: str, *, stdout: Sink | None = None, stderr: Sink | None = None,
            input: bytes | None = None, stdin: BinaryIO | None = None,
            timeout: float | None = None, keep: int = 1 << 20) -> Result:
        """Run `command` through the user's shell. Output goes to the sinks as it arrives
        and the last `keep` bytes of each stream are kept in the Result. `input` is sent
        as stdin; `stdin` (a file) is copied from a thread until EOF; otherwise stdin is
        empty. MachineError when `timeout` passes first."""
        log.debug("SSH cmd on %s: %s", self.details.host, _short(command))
        try:
            return self._run(command, stdout, stderr, input, stdin, timeout, keep)
        except BrokenPipeError:   # our own reader went away (`| head`): not SSH's fault
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise MachineError(f"SSH to {self.details.host} failed while running "
                               f"`{_short(command)}`: {_describe(exc)}") from None

    def _run(self, command: str, stdout: Sink | None, stderr: Sink | None,
             input: bytes | None, stdin: BinaryIO | None, timeout: float | None,
             keep: int) -> Result:
        chan = self._session()
        chan.exec_command(command)
        if input is not None:
            chan.sendall(input)
            chan.shutdown_write()
        elif stdin is not None:
            threading.Thread(target=_pump, args=(stdin, chan), daemon=True).start()
        else:
            chan.shutdown_write()
        out, err = bytearray(), bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                busy = False
                while chan.recv_ready():
                    _take(chan.recv(CHUNK), out, stdout, keep)
                    busy = True
                while chan.recv_stderr_ready():
                    _take(chan.recv_stderr(CHUNK), err, stderr, keep)
                    busy = True
                if chan.exit_status_ready() and not chan.recv_ready() \
                        and not chan.recv_stderr_ready():
                    break
                if chan.closed and not busy:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise MachineError(f"`{_short(command)}` did not finish within "
                                       f"{timeout:g}s on {self.details.host}")
                if not busy:
                    select.select([chan], [], [], 0.2)
            code = chan.recv_exit_status()
        finally:
            chan.close()
        return Result(code if code >= 0 else 255, bytes(out), bytes(err))

    def check(self, command: str, *, step: str, what: str = "", **kwargs) -> Result:
        """`run`, and MachineError naming `step` (with the command's output) when it fails."""
        result = self.run(command, **kwargs)
        if result.exit_code != 0:
            raise MachineError(f"{what or '`' + _short(command) + '`'} failed on "
                               f"{self.details.host} (exit code {result.exit_code}):\n"
                               f"{result.tail()}", step=step)
        return result

    # --- files ---------------------------------------------------------------------------
    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self.client.open_sftp()
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise MachineError(f"cannot open SFTP to {self.details.host} ({_describe(exc)}):"
                                   " its sshd needs the sftp subsystem (Subsystem sftp ...)") \
                    from None
        return self._sftp

    def is_dir(self, remote: str) -> bool:
        try:
            return stat.S_ISDIR(self.sftp.stat(remote).st_mode or 0)
        except OSError:
            return False

    def exists(self, remote: str) -> bool:
        try:
            self.sftp.stat(remote)
            return True
        except OSError:
            return False

    def makedirs(self, remote: str, mode: int = 0o755) -> None:
        parts = remote.rstrip("/").split("/")
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            if not path or self.is_dir(path):
                continue
            try:
                self.sftp.mkdir(path, mode)
            except OSError:
                if not self.is_dir(path):
                    raise

    def put_bytes(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        """Write `remote` atomically with `mode` set before the content arrives."""
        tmp = f"{remote}.flock-tmp"
        with self.sftp.open(tmp, "wb") as out:
            out.chmod(mode)
            out.write(data)
        self.sftp.posix_rename(tmp, remote)

    def put(self, local: str | os.PathLike, remote: str, *, recursive: bool = False) -> None:
        """Copy a local file (or, with `recursive`, a folder) to `remote`, keeping modes."""
        source = Path(local)
        if source.is_dir():
            if not recursive:
                raise MachineError(f"{source} is a directory (use -r to copy it)")
            self.makedirs(remote, source.stat().st_mode & 0o7777)
            for child in sorted(source.iterdir()):
                self.put(child, posixpath.join(remote, child.name), recursive=True)
            return
        if not source.exists():
            raise MachineError(f"{source}: no such file or directory")
        self.sftp.put(str(source), remote)
        self.sftp.chmod(remote, source.stat().st_mode & 0o7777)

    def get(self, remote: str, local: str | os.PathLike, *, recursive: bool = False) -> None:
        """Copy a remote file (or, with `recursive`, a folder) to `local`, keeping modes."""
        target = Path(local)
        try:
            info = self.sftp.stat(remote)
        except OSError as exc:
            raise MachineError(f"{self.details.host}:{remote}: {_sftp_error(exc)}") from None
        if stat.S_ISDIR(info.st_mode or 0):
            if not recursive:
                raise MachineError(f"{self.details.host}:{remote} is a directory (use -r to "
                                   "copy it)")
            target.mkdir(parents=True, exist_ok=True)
            os.chmod(target, (info.st_mode or 0o755) & 0o7777)
            for entry in sorted(self.sftp.listdir_attr(remote), key=lambda e: e.filename):
                self.get(posixpath.join(remote, entry.filename), target / entry.filename,
                         recursive=True)
            return
        self.sftp.get(remote, str(target))
        os.chmod(target, (info.st_mode or 0o644) & 0o7777)


def _sftp_error(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) or exc.errno == 2:
        return "no such file or directory"
    if isinstance(exc, PermissionError) or exc.errno == 13:
        return "permission denied"
    return str(exc)


def _take(data: bytes, buf: bytearray, sink: Sink | None, keep: int) -> None:
    if sink is not None:
        sink(data)
    buf += data
    if len(buf) > keep:
        del buf[:len(buf) - keep]


def _pump(source: BinaryIO, chan: paramiko.Channel) -> None:
    """Copy a local stream to the remote command's stdin, then send EOF."""
    try:
        read = getattr(source, "read1", source.read)
        while True:
            data = read(CHUNK)
            if not data:
                break
            chan.sendall(data)
    except (OSError, ValueError, EOFError):
        pass
    finally:
        with contextlib.suppress(Exception):
            chan.shutdown_write()


def _short(command: str, limit: int = 120) -> str:
    line = " ".join(command.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


# --- an interactive session ------------------------------------------------------------------
def interactive(conn: Connection, command: str | None = None) -> int:
    """A terminal session on the machine (a login shell, or `command` with a pty): the local
    terminal in raw mode, its size followed; returns the remote exit code."""
    import shutil
    import signal
    import sys
    import termios
    import tty

    cols, rows = shutil.get_terminal_size()
    chan = conn._session()
    chan.get_pty(term=os.environ.get("TERM", "xterm"), width=cols, height=rows)
    if command:
        chan.exec_command(command)
    else:
        chan.invoke_shell()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def resize(*_: object) -> None:
        with contextlib.suppress(Exception):
            size = shutil.get_terminal_size()
            chan.resize_pty(width=size.columns, height=size.lines)

    old_handler = signal.signal(signal.SIGWINCH, resize)
    out = sys.stdout.buffer
    inputs: list = [chan, fd]
    try:
        tty.setraw(fd, termios.TCSADRAIN)   # keep what was typed ahead
        while True:
            ready, _, _ = select.select(inputs, [], [], 1.0)
            if chan.recv_ready():
                out.write(chan.recv(CHUNK))
                out.flush()
            elif chan.exit_status_ready() or chan.closed or chan.eof_received:
                break
            if fd in ready:
                data = os.read(fd, CHUNK)
                if data:
                    chan.sendall(data)
                else:   # local EOF: the remote side gets it too, and we stop reading
                    chan.shutdown_write()
                    inputs.remove(fd)
        code = chan.recv_exit_status()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old_handler)
        chan.close()
    return code if code >= 0 else 255
