"""One EC2 client for one machine, with every failure turned into a DriverError that names
the step, the EC2 call and the provider's own words (plus what to check, where it is
clear), so no botocore traceback ever reaches the user.

boto3 is imported here, lazily, through drivers.require: the driver's flags and `--help`
work without it.
"""

from __future__ import annotations

import time
from typing import Any

from flock.provisioner.drivers import require
from flock.provisioner.drivers.amazonec2_options import no_credentials_error
from flock.provisioner.errors import DriverError

# Provider error codes (or their prefixes) -> the flag to look at.
_HINTS = [
    ("InvalidInstanceType", "check --amazonec2-instance-type"),
    ("InvalidAMIID", "check --amazonec2-ami: AMI IDs differ from region to region"),
    ("InvalidSubnetID", "check --amazonec2-subnet-id"),
    ("InvalidVpcID", "check --amazonec2-vpc-id"),
    ("InvalidKeyPair", "check --amazonec2-keypair-name"),
    ("AuthFailure", "check the AWS credentials (--amazonec2-access-key/--amazonec2-secret-key)"),
    ("UnauthorizedOperation", "the credentials lack the EC2 permission for this call"),
    ("InvalidClientTokenId", "check --amazonec2-access-key"),
    ("SignatureDoesNotMatch", "check --amazonec2-secret-key"),
    ("RequestExpired", "check the clock and --amazonec2-session-token"),
    ("InstanceLimitExceeded", "raise the account's instance limit or pick another type"),
    ("InsufficientInstanceCapacity", "try another --amazonec2-zone or instance type"),
]

NOT_FOUND = ("InvalidInstanceID.NotFound", "InvalidKeyPair.NotFound", "InvalidGroup.NotFound",
             "InvalidGroupId.NotFound", "InvalidInstanceID.Malformed")


class EC2Error(DriverError):
    """An EC2 call the provider refused; `code` is the provider's error code."""

    def __init__(self, message: str, *, step: str = "", code: str = "") -> None:
        super().__init__(message, step=step)
        self.code = code

    @property
    def not_found(self) -> bool:
        return self.code in NOT_FOUND


class EC2:
    """The EC2 API of one region (or a local endpoint)."""

    def __init__(self, region: str, endpoint: str, credentials: dict[str, str]) -> None:
        boto3 = require("boto3", "amazonec2")
        config = require("botocore.config", "amazonec2").Config(
            retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
            read_timeout=60)
        session = boto3.session.Session(
            aws_access_key_id=credentials.get("access_key") or None,
            aws_secret_access_key=credentials.get("secret_key") or None,
            aws_session_token=credentials.get("session_token") or None, region_name=region)
        self.endpoint = endpoint
        self.region = region
        self.client = session.client("ec2", endpoint_url=endpoint or None, config=config)
        # A local EC2 API answers at once; the real one takes tens of seconds to start or
        # stop an instance.
        self.poll = 1.0 if endpoint else 5.0

    def call(self, step: str, operation: str, **params: Any) -> dict[str, Any]:
        """`client.<operation>(**params)`; EC2Error/DriverError naming `step` on failure."""
        exceptions = require("botocore.exceptions", "amazonec2")
        try:
            return getattr(self.client, operation)(**params)
        except exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "")) or "Unknown"
            text = str(error.get("Message", "")) or str(exc)
            hint = next((h for prefix, h in _HINTS if code.startswith(prefix)), "")
            raise EC2Error(f"EC2 refused {_call_name(operation)}: {text} ({code})"
                           + (f"; {hint}" if hint else ""), step=step, code=code) from None
        except exceptions.NoCredentialsError:
            raise DriverError(str(no_credentials_error()), step=step) from None
        except exceptions.EndpointConnectionError as exc:
            where = self.endpoint or f"region {self.region}"
            raise DriverError(f"cannot reach the EC2 API ({where}): {exc}; check "
                              "--amazonec2-endpoint/--amazonec2-region and the network",
                              step=step) from None
        except exceptions.BotoCoreError as exc:
            raise DriverError(f"EC2 {_call_name(operation)} failed: {exc}",
                              step=step) from None

    def instance(self, step: str, instance_id: str) -> dict[str, Any] | None:
        """The instance's description, or None when the provider no longer knows it."""
        try:
            answer = self.call(step, "describe_instances", InstanceIds=[instance_id])
        except EC2Error as exc:
            if exc.not_found:
                return None
            raise
        for reservation in answer.get("Reservations", []):
            for found in reservation.get("Instances", []):
                return found
        return None

    def wait_state(self, step: str, instance_id: str, wanted: str, timeout: float,
                   fail_on: tuple[str, ...] = ()) -> dict[str, Any]:
        """Poll until the instance is in state `wanted`; DriverError naming the step, the
        state it stayed in and the provider's reason when it ends up elsewhere or time
        runs out. (Our own loop rather than a botocore waiter: the error can then say
        where the instance got stuck and the timeout is ours.)"""
        deadline = time.monotonic() + timeout
        state = "unknown"
        while True:
            found = self.instance(step, instance_id)
            if found is None:
                if wanted == "terminated":
                    return {}
                raise DriverError(f"instance {instance_id} disappeared at the provider while "
                                  f"waiting for it to be {wanted}", step=step)
            state = found.get("State", {}).get("Name", "unknown")
            if state == wanted:
                return found
            if state in fail_on:
                reason = found.get("StateReason", {}).get("Message", "")
                raise DriverError(f"instance {instance_id} went {state} instead of {wanted}"
                                  + (f": {reason}" if reason else ""), step=step)
            if time.monotonic() >= deadline:
                raise DriverError(f"instance {instance_id} still {state} after {timeout:.0f}s "
                                  f"waiting for it to be {wanted}", step=step)
            time.sleep(self.poll)


def _call_name(operation: str) -> str:
    """run_instances -> RunInstances: the name AWS documents."""
    return "".join(part.capitalize() for part in operation.split("_"))
