"""A real local EC2 API for tests: moto's standalone server (`moto_server`) as its own
process on a free loopback port, stopped by PID.

It runs with moto's AMI, instance type and key pair validation on, so it refuses what EC2
refuses (an unknown AMI or instance type). `client()` is a plain boto3 client for the
tests' own look at what exists, independent of the code under test; `reset()` forgets
everything between tests that share one server.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from tests.support.ports import free_port

ACCESS_KEY = "AKIAFLOCKTESTKEY0001"
SECRET_KEY = "flock-test-secret-key-0123456789abcdefgh"
REGION = "us-east-1"
VALIDATION = {"MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "1",
              "MOTO_ENABLE_AMI_VALIDATION": "1",
              "MOTO_ENABLE_KEYPAIR_VALIDATION": "1"}


_free_port = free_port


def moto_server_path() -> str:
    """The moto_server next to this interpreter (the venv's), else one on PATH."""
    here = pathlib.Path(sys.executable).parent / "moto_server"
    return str(here) if here.exists() else (shutil.which("moto_server") or "")


@dataclass
class MotoServer:
    root: pathlib.Path
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> MotoServer:
        binary = moto_server_path()
        if not binary:
            raise RuntimeError("moto_server is not installed: pip install 'moto[server,ec2]'")
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "moto.log", "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, **VALIDATION})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("moto_server exited:\n" + self.log_tail())
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not answer:\n" + self.log_tail())

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True   # it answered
        except OSError:
            return False

    def reset(self) -> None:
        """Forget every resource (moto's own reset API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"",
                                         method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "moto.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def env(self) -> dict[str, str]:
        """Credentials and region for a `flock machine` child aimed at this server."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": REGION}

    def client(self, region: str = REGION):
        import boto3

        return boto3.client("ec2", region_name=region, endpoint_url=self.endpoint,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


# --- looking at what exists, with the test's own client ----------------------------------
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


def register_debian_ami(client) -> str:
    """An AMI named like Debian's cloud images (moto ships none)."""
    return client.register_image(Name="debian-12-amd64-20240717-1811", Architecture="x86_64",
                                 RootDeviceName="/dev/xvda")["ImageId"]


def live_instances(client) -> list[dict]:
    answer = client.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": LIVE_STATES}])
    return [i for r in answer["Reservations"] for i in r["Instances"]]


def leftovers(client) -> dict[str, list[str]]:
    """What is billed or clutters the account: live instances, key pairs, and security
    groups other than the VPCs' own `default`. Empty lists when nothing is left."""
    groups = client.describe_security_groups()["SecurityGroups"]
    return {"instances": [i["InstanceId"] for i in live_instances(client)],
            "key pairs": [k["KeyName"] for k in client.describe_key_pairs()["KeyPairs"]],
            "security groups": [g["GroupName"] for g in groups if g["GroupName"] != "default"]}


NOTHING = {"instances": [], "key pairs": [], "security groups": []}
