"""Deleting what one machine's create made at EC2: its instance (terminated, waited for),
the key pair it imported and the security group it created — also what a create made
but never heard back about (found by its flock-create tag). Used by a failed create to
undo itself and by `rm`.

Something already gone counts as deleted. Each deletion is recorded at once, so what
could not be deleted stays recorded and a later `rm` retries only that.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flock.provisioner.drivers.amazonec2_api import EC2, EC2Error
from flock.provisioner.drivers.amazonec2_options import CREATE_TAG
from flock.provisioner.errors import DriverError

if TYPE_CHECKING:
    from flock.provisioner.drivers.amazonec2 import AmazonEC2Driver

TERMINATE_TIMEOUT = 600.0
GROUP_TIMEOUT = 120.0    # a terminated instance's network interface lingers for a while
LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]


def delete_made(ec2: EC2, driver: AmazonEC2Driver) -> tuple[list[str], list[str]]:
    """(what was deleted, what could not be and why)."""
    done: list[str] = []
    left: list[str] = []
    res = driver.resources
    instances = _instances(ec2, res, left)
    for instance_id in instances:
        try:
            ec2.call("Terminating the instance", "terminate_instances",
                     InstanceIds=[instance_id])
        except EC2Error as exc:
            if not exc.not_found:
                left.append(f"instance {instance_id} ({exc})")
                continue
        except DriverError as exc:
            left.append(f"instance {instance_id} ({exc})")
            continue
        try:
            ec2.wait_state("Waiting for the instance to terminate", instance_id,
                           "terminated", TERMINATE_TIMEOUT)
        except DriverError as exc:
            left.append(f"instance {instance_id} ({exc})")
            continue
        done.append(f"instance {instance_id}")
        if instance_id == res.get("instance_id"):
            driver._record(instance_id="")
    if res.get("key_name"):
        try:
            # EC2 answers success for a key pair that does not exist.
            ec2.call("Deleting the key pair", "delete_key_pair", KeyName=res["key_name"])
            done.append(f"key pair {res['key_name']}")
            driver._record(key_name="")
        except DriverError as exc:
            left.append(f"key pair {res['key_name']} ({exc})")
    groups = [res["group_id"]] if res.get("group_id") else []
    groups += [g for g in _tagged_groups(ec2, res, left) if g not in groups]
    if any(text.startswith("instance ") for text in left):
        # A group cannot go while an instance in it lives; rm retries.
        left += [f"security group {g} (its instance is still there)" for g in groups]
        return done, left
    for group_id in groups:
        outcome = _delete_group(ec2, group_id, instances)
        if outcome.startswith("left:"):
            left.append(f"security group {group_id} ({outcome[5:]})")
            continue
        done.append(f"security group {group_id}{outcome}")
        if group_id == res.get("group_id"):
            driver._record(group_id="")
    return done, left


def _instances(ec2: EC2, res: dict[str, str], left: list[str]) -> list[str]:
    """The recorded instance and any other one this create launched (by its tag)."""
    out = [res["instance_id"]] if res.get("instance_id") else []
    if not res.get("create_id"):
        return out
    try:
        answer = ec2.call("Finding the machine's instances", "describe_instances", Filters=[
            {"Name": f"tag:{CREATE_TAG}", "Values": [res["create_id"]]},
            {"Name": "instance-state-name", "Values": LIVE}])
    except DriverError as exc:
        if not out:
            left.append(f"instances tagged {CREATE_TAG}={res['create_id']} ({exc})")
        return out
    for reservation in answer.get("Reservations", []):
        for found in reservation.get("Instances", []):
            if found["InstanceId"] not in out:
                out.append(found["InstanceId"])
    return out


def _tagged_groups(ec2: EC2, res: dict[str, str], left: list[str]) -> list[str]:
    if not res.get("create_id"):
        return []
    try:
        answer = ec2.call("Finding the machine's security group", "describe_security_groups",
                          Filters=[{"Name": f"tag:{CREATE_TAG}",
                                    "Values": [res["create_id"]]}])
    except DriverError as exc:
        if not res.get("group_id"):
            left.append(f"security groups tagged {CREATE_TAG}={res['create_id']} ({exc})")
        return []
    return [g["GroupId"] for g in answer.get("SecurityGroups", [])]


def _delete_group(ec2: EC2, group_id: str, ours: list[str]) -> str:
    """'' when deleted (or gone), ' (kept: ...)' when other machines still use it,
    'left: why' when it could not be deleted."""
    deadline = time.monotonic() + GROUP_TIMEOUT
    while True:
        try:
            ec2.call("Deleting the security group", "delete_security_group", GroupId=group_id)
            return ""
        except EC2Error as exc:
            if exc.not_found:
                return ""
            if exc.code != "DependencyViolation":
                return f"left:{exc}"
            users = _group_users(ec2, group_id, ours)
            if users:
                # Another machine reused the group: it is in use, not leaked.
                return f" (kept: still used by {', '.join(users)})"
            if time.monotonic() >= deadline:
                return f"left:{exc}"
        except DriverError as exc:
            return f"left:{exc}"
        time.sleep(ec2.poll)


def _group_users(ec2: EC2, group_id: str, ours: list[str]) -> list[str]:
    """Live instances other than ours whose network interfaces are in the group."""
    try:
        answer = ec2.call("Deleting the security group", "describe_network_interfaces",
                          Filters=[{"Name": "group-id", "Values": [group_id]}])
    except DriverError:
        return []
    return sorted({iface.get("Attachment", {}).get("InstanceId", "")
                   for iface in answer.get("NetworkInterfaces", [])} - set(ours) - {""})
