"""The amazonec2 driver: a machine is one EC2 instance, reached over SSH with the machine's
own key pair (imported at create), in a security group open only to the allowed ranges.

What a create makes at the provider (key pair, security group, instance) is recorded the
moment it exists — in the driver's record and in a small journal next to config.json, so
even a create killed half-way leaves `rm` able to find it. A create that fails undoes what
it made before raising; what could not be undone stays recorded for `rm`. Credentials live
in secrets() only, never in to_dict().
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import Any

from flock.certs.files import PUBLIC_MODE, SECRET_MODE, write_file
from flock.provisioner.drivers import amazonec2_options as opt
from flock.provisioner.drivers import require
from flock.provisioner.drivers.amazonec2_api import EC2, EC2Error
from flock.provisioner.drivers.amazonec2_cleanup import delete_made
from flock.provisioner.drivers.amazonec2_network import find_group, open_group, resolve_subnet
from flock.provisioner.drivers.base import Driver, Progress, SSHDetails
from flock.provisioner.errors import DriverError, MachineError
from flock.provisioner.states import State

RESOURCES = "amazonec2-resources.json"   # the journal of what a create made
RUN_TIMEOUT = 600.0
STOP_TIMEOUT = 600.0

# EC2 instance states -> machine states, as Docker Machine maps them: shutting-down is on
# its way down (Stopping); terminated can never run again (Error).
STATES = {
    "pending": State.STARTING,
    "running": State.RUNNING,
    "stopping": State.STOPPING,
    "stopped": State.STOPPED,
    "shutting-down": State.STOPPING,
    "terminated": State.ERROR,
}

_CONFIG = ("region", "zone", "availability_zone", "ami", "instance_type", "vpc_id",
           "subnet_id", "security_group", "keypair_name", "root_size", "volume_type",
           "root_device", "tags", "ssh_user", "use_private_address", "private_address_only",
           "endpoint", "allow_cidrs", "open_ports", "explicit_credentials")
_RESOURCES = ("create_id", "key_name", "group_id", "group_used", "instance_id")


class AmazonEC2Driver(Driver):
    name = "amazonec2"

    def __init__(self, machine_name: str, machine_dir: Path) -> None:
        super().__init__(machine_name, machine_dir)
        self.region = opt.DEFAULT_REGION
        self.zone = opt.DEFAULT_ZONE
        self.availability_zone = ""
        self.ami = ""
        self.instance_type = opt.DEFAULT_INSTANCE_TYPE
        self.vpc_id = ""
        self.subnet_id = ""
        self.security_group = opt.DEFAULT_SECURITY_GROUP
        self.keypair_name = ""          # an existing key pair the user named
        self.ssh_keypath = ""           # its private key (only needed during create)
        self.root_size = opt.DEFAULT_ROOT_SIZE
        self.volume_type = opt.DEFAULT_VOLUME_TYPE
        self.root_device = ""
        self.tags: dict[str, str] = {}
        self.ssh_user = ""
        self.use_private_address = False
        self.private_address_only = False
        self.endpoint = ""
        self.allow_cidrs: list[str] = []
        self.open_ports: list[str] = []
        self.explicit_credentials = False
        self.credentials: dict[str, str] = {}
        # made at the provider by this machine's create (key_name, group_id: deleted by rm)
        self.resources: dict[str, str] = dict.fromkeys(_RESOURCES, "")
        self._checked = False
        self._notes: list[str] = []
        self._client: EC2 | None = None

    # --- flags and records -------------------------------------------------------------
    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        opt.add_flags(parser)

    @classmethod
    def from_flags(cls, machine_name: str, machine_dir: Path,
                   args: argparse.Namespace) -> AmazonEC2Driver:
        d = cls(machine_name, machine_dir)

        def get(name: str, default: str = "") -> str:
            return opt.flag(args, name, opt.env_of(name), default)

        d.region = get("region", opt.DEFAULT_REGION)
        d.zone = opt.parse_zone(get("zone", opt.DEFAULT_ZONE))
        d.ami = get("ami")
        if not d.ami:
            raise MachineError(
                "--amazonec2-ami is required: Flock knows no default AMI (it would need the "
                f"internet to look one up); pass the ID of a Debian or Ubuntu AMI in region "
                f"{d.region}, e.g. --amazonec2-ami ami-0123456789abcdef0 (or set AWS_AMI)")
        d.instance_type = get("instance-type", opt.DEFAULT_INSTANCE_TYPE)
        d.vpc_id = get("vpc-id")
        d.subnet_id = get("subnet-id")
        d.security_group = get("security-group", opt.DEFAULT_SECURITY_GROUP)
        d.keypair_name = get("keypair-name")
        d.ssh_keypath = get("ssh-keypath")
        if d.keypair_name and not d.ssh_keypath:
            raise MachineError("--amazonec2-keypair-name needs --amazonec2-ssh-keypath, the "
                               "private key of that key pair (or omit both: Flock imports "
                               "the machine's own key)")
        if d.ssh_keypath:
            d.ssh_keypath = str(Path(d.ssh_keypath).expanduser().resolve())
            if not Path(d.ssh_keypath).is_file():
                raise MachineError(f"--amazonec2-ssh-keypath {d.ssh_keypath}: no such file; "
                                   "give the private key's path")
        d.root_size = opt.parse_root_size(get("root-size", str(opt.DEFAULT_ROOT_SIZE)))
        d.volume_type = get("volume-type", opt.DEFAULT_VOLUME_TYPE)
        d.tags = opt.parse_tags(get("tags"))
        d.ssh_user = get("ssh-user")
        d.private_address_only = bool(args.amazonec2_private_address_only)
        d.use_private_address = bool(args.amazonec2_use_private_address
                                     or d.private_address_only)
        d.endpoint = opt.parse_endpoint(get("endpoint"))
        d.allow_cidrs = list(dict.fromkeys(opt.parse_cidr(c)
                                           for c in args.amazonec2_allow_cidr or []))
        d.open_ports = opt.parse_ports(args.amazonec2_open_port)
        if not d.allow_cidrs and d.endpoint:
            opt.default_allow_cidrs(d.endpoint)   # refuses: nothing to learn it from
        d.credentials = opt.parse_credentials(get("access-key"), get("secret-key"),
                                              get("session-token"))
        d.explicit_credentials = bool(d.credentials)
        if not d.credentials:
            boto3 = require("boto3", "amazonec2")
            if boto3.session.Session().get_credentials() is None:
                raise opt.no_credentials_error()
        return d

    def to_dict(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in _CONFIG}
        data["resources"] = dict(self.resources)
        return data

    def secrets(self) -> dict[str, Any]:
        return dict(self.credentials)

    @classmethod
    def load(cls, machine_name: str, machine_dir: Path, data: dict[str, Any],
             secrets: dict[str, Any]) -> AmazonEC2Driver:
        d = cls(machine_name, machine_dir)
        data = {**_from_docker_machine(data), **data}
        for key in _CONFIG:
            if key in data:
                setattr(d, key, data[key])
        d.resources.update(data.get("resources") or {})
        # The journal knows what a create made even if config.json was never updated.
        try:
            journal = json.loads((d.machine_dir / RESOURCES).read_text())
        except (OSError, ValueError):
            journal = {}
        d.resources.update({k: v for k, v in journal.items() if k in _RESOURCES})
        d.credentials = {k: str(v) for k, v in (secrets or data.get("credentials") or {}).items()
                         if k in ("access_key", "secret_key", "session_token") and v}
        d._checked = True
        return d

    def _record(self, **changes: str) -> None:
        """Note what exists at the provider, on disk at once."""
        self.resources.update(changes)
        if self.machine_dir.is_dir():
            write_file(self.machine_dir / RESOURCES,
                       json.dumps(self.resources, indent=2).encode() + b"\n", PUBLIC_MODE)

    def _ec2(self) -> EC2:
        if self._client is None:
            self._client = EC2(self.region, self.endpoint, self.credentials)
        return self._client

    # --- create ------------------------------------------------------------------------
    def pre_create_check(self, progress: Progress | None = None) -> None:
        """Everything that can be refused before anything is made: the allowed ranges,
        the credentials, the AMI, the network and a named key pair."""
        # Without a progress line (create's pre-check) the notes are told at create.
        say = progress or self._notes.append
        if not self.allow_cidrs:
            self.allow_cidrs = opt.default_allow_cidrs(self.endpoint)
        ec2 = self._ec2()
        step = "Checking the AMI"
        say(f"{step} {self.ami}")
        images = ec2.call(step, "describe_images", ImageIds=[self.ami])["Images"]
        if not images:
            raise DriverError(f"AMI {self.ami} not found in region {self.region}: check "
                              "--amazonec2-ami", step=step)
        image = images[0]
        self.root_device = image.get("RootDeviceName") or "/dev/sda1"
        if not self.ssh_user:
            self.ssh_user, why = opt.ssh_user_for_image(image.get("Name", ""),
                                                        image.get("Description", ""))
            say(f"SSH user {self.ssh_user} ({why})")
        say("Finding the VPC and subnet")
        self.vpc_id, self.subnet_id, self.availability_zone = resolve_subnet(
            ec2, self.vpc_id, self.subnet_id, self.zone)
        if self.keypair_name:
            step = "Checking the key pair"
            try:
                ec2.call(step, "describe_key_pairs", KeyNames=[self.keypair_name])
            except EC2Error as exc:
                if exc.not_found:
                    raise DriverError(f"key pair {self.keypair_name!r} does not exist in "
                                      f"region {self.region}: check --amazonec2-keypair-name, "
                                      "or omit it to import the machine's own key",
                                      step=step) from None
                raise
        self._checked = True

    def create(self, progress: Progress) -> None:
        if not self._checked:
            self.pre_create_check(progress)
        for note in self._notes:
            progress(note)
        ec2 = self._ec2()
        self._record(create_id=uuid.uuid4().hex)
        step = "Importing the key pair"
        try:
            progress(step)
            key_name = self._key_pair(ec2, step)
            step = "Setting up the security group"
            progress(step)
            group_id = self._security_group(ec2, step)
            step = "Launching the instance"
            progress(f"{step} ({self.instance_type}, {self.ami})")
            instance_id = self._run_instance(ec2, step, key_name, group_id)
            step = "Waiting for the instance to run"
            progress(f"{step} ({instance_id})")
            found = ec2.wait_state(step, instance_id, "running", RUN_TIMEOUT,
                                   fail_on=("shutting-down", "terminated", "stopping",
                                            "stopped"))
            self._address(found, step)
        except BaseException as exc:   # noqa: BLE001 - undo, then re-raise it
            progress("Cleaning up what this create made")
            done, left = delete_made(ec2, self)
            if not isinstance(exc, Exception):
                raise
            text = exc.args[0] if isinstance(exc, MachineError) and exc.args else str(exc)
            text = f"{text}; cleaned up at the provider: {', '.join(done) or 'nothing made'}"
            if left:
                text += (f"; could not delete {'; '.join(left)}: "
                         f'"flock machine rm {self.machine_name}" retries')
            raise DriverError(text, step=getattr(exc, "step", "") or step) from None

    def _key_pair(self, ec2: EC2, step: str) -> str:
        """The key pair the instance boots with: the named one, or the machine's own
        id_rsa.pub imported under a name of its own."""
        if self.ssh_keypath:
            _adopt_key(Path(self.ssh_keypath), self.machine_dir)
        if self.keypair_name:
            return self.keypair_name
        pub = self.machine_dir / "id_rsa.pub"
        try:
            material = pub.read_bytes()
        except OSError as exc:
            raise DriverError(f"cannot read the machine's public key {pub}: {exc}",
                              step=step) from None
        name = f"flock-{self.machine_name}-{self.resources['create_id'][:8]}"
        self._record(key_name=name)   # before the call: its answer could be lost
        try:
            ec2.call(step, "import_key_pair", KeyName=name, PublicKeyMaterial=material,
                     TagSpecifications=[self._tag_spec("key-pair", name=False)])
        except EC2Error:
            self._record(key_name="")   # refused: nothing was made
            raise
        return name

    def _security_group(self, ec2: EC2, step: str) -> str:
        group = find_group(ec2, self.security_group, self.vpc_id)
        created = group is None
        if created:
            answer = ec2.call(step, "create_security_group", GroupName=self.security_group,
                              VpcId=self.vpc_id, Description="Flock machines: SSH, engine, "
                              "agent and manager ports from the allowed ranges only",
                              TagSpecifications=[self._tag_spec("security-group",
                                                                name=False)])
            self._record(group_id=answer["GroupId"])
            group = find_group(ec2, self.security_group, self.vpc_id) or {
                "GroupId": answer["GroupId"]}
        self._record(group_used=group["GroupId"])
        open_group(ec2, group, self.allow_cidrs, self.open_ports, created)
        return group["GroupId"]

    def _run_instance(self, ec2: EC2, step: str, key_name: str, group_id: str) -> str:
        answer = ec2.call(
            step, "run_instances", ImageId=self.ami, MinCount=1, MaxCount=1,
            InstanceType=self.instance_type, KeyName=key_name,
            ClientToken=self.resources["create_id"],   # a retried call makes no second one
            Placement={"AvailabilityZone": self.availability_zone},
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": self.subnet_id,
                                "Groups": [group_id], "DeleteOnTermination": True,
                                "AssociatePublicIpAddress": not self.private_address_only}],
            BlockDeviceMappings=[{"DeviceName": self.root_device, "Ebs": {
                "VolumeSize": self.root_size, "VolumeType": self.volume_type,
                "DeleteOnTermination": True}}],
            TagSpecifications=[self._tag_spec("instance"), self._tag_spec("volume")])
        instance_id = answer["Instances"][0]["InstanceId"]
        self._record(instance_id=instance_id)
        return instance_id

    def _tag_spec(self, kind: str, name: bool = True) -> dict[str, Any]:
        tags = {"Name": self.machine_name} if name else {}
        tags.update(self.tags)
        tags[opt.MACHINE_TAG] = self.machine_name
        tags[opt.CREATE_TAG] = self.resources["create_id"]
        return {"ResourceType": kind,
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}

    # --- lifecycle ---------------------------------------------------------------------
    def remove(self) -> None:
        done, left = delete_made(self._ec2(), self)
        if left:
            raise DriverError(f"could not delete {'; '.join(left)} (deleted: "
                              f"{', '.join(done) or 'nothing'}): run "
                              f'"flock machine rm {self.machine_name}" again, or -f to forget '
                              "the machine and delete them yourself", step="Removing")
        (self.machine_dir / RESOURCES).unlink(missing_ok=True)

    def _instance_id(self, step: str) -> str:
        if not self.resources.get("instance_id"):
            raise DriverError(f'machine "{self.machine_name}" has no instance at the provider '
                              f"(its create failed): remove it with "
                              f'"flock machine rm {self.machine_name}"', step=step)
        return self.resources["instance_id"]

    def _act(self, step: str, operation: str, wanted: str, **params: Any) -> None:
        ec2 = self._ec2()
        instance_id = self._instance_id(step)
        try:
            ec2.call(step, operation, InstanceIds=[instance_id], **params)
        except EC2Error as exc:
            if exc.not_found:
                raise DriverError(f"instance {instance_id} no longer exists at the provider: "
                                  f'remove the machine with "flock machine rm '
                                  f'{self.machine_name}"', step=step) from None
            raise
        ec2.wait_state(step, instance_id, wanted,
                       RUN_TIMEOUT if wanted == "running" else STOP_TIMEOUT,
                       fail_on=("shutting-down", "terminated"))

    def start(self) -> None:
        self._act("Starting the instance", "start_instances", "running")

    def stop(self) -> None:
        self._act("Stopping the instance", "stop_instances", "stopped")

    def restart(self) -> None:
        self._act("Rebooting the instance", "reboot_instances", "running")

    def kill(self) -> None:
        self._act("Killing the instance", "stop_instances", "stopped", Force=True)

    # --- questions ---------------------------------------------------------------------
    def state(self) -> State:
        if not self.resources.get("instance_id"):
            return State.ERROR
        found = self._ec2().instance("Asking the instance's state",
                                     self.resources["instance_id"])
        if found is None:
            return State.ERROR
        return STATES.get(found.get("State", {}).get("Name", ""), State.ERROR)

    def ip(self) -> str:
        step = "Asking the instance's IP"
        found = self._ec2().instance(step, self._instance_id(step))
        if found is None:
            raise DriverError(f"instance {self.resources['instance_id']} no longer exists at "
                              "the provider", step=step)
        return self._address(found, step)

    def _address(self, found: dict[str, Any], step: str) -> str:
        private = self.use_private_address
        address = found.get("PrivateIpAddress" if private else "PublicIpAddress") or ""
        if not address:
            state = found.get("State", {}).get("Name", "unknown")
            hint = ("" if private or state != "running" else
                    ": the subnet gives it no public IP; pass --amazonec2-use-private-address "
                    "if this computer is inside the VPC")
            raise MachineError(f"instance {found.get('InstanceId', '')} has no "
                               f"{'private' if private else 'public'} IP address (state "
                               f"{state}){hint}", step=step)
        return address

    def ssh_details(self) -> SSHDetails:
        return SSHDetails(self.ip(), opt.SSH_PORT, self.ssh_user or opt.FALLBACK_SSH_USER,
                          str(self.machine_dir / "id_rsa"))


def _from_docker_machine(data: dict[str, Any]) -> dict[str, Any]:
    """The record of a machine Docker Machine made (drivers/amazonec2's Driver struct) in
    this driver's names. Docker Machine keeps the credentials in config.json; its key pair
    is deleted with the machine unless it was an existing one (ExistingKey), and its
    security group is shared by its machines, so never deleted."""
    if "InstanceId" not in data:
        return {}
    names = {"Region": "region", "Zone": "zone", "AMI": "ami", "InstanceType": "instance_type",
             "VpcId": "vpc_id", "SubnetId": "subnet_id", "RootSize": "root_size",
             "VolumeType": "volume_type", "DeviceName": "root_device", "SSHUser": "ssh_user",
             "UsePrivateIP": "use_private_address", "PrivateIPOnly": "private_address_only",
             "Endpoint": "endpoint", "OpenPorts": "open_ports"}
    out: dict[str, Any] = {ours: data[theirs] for theirs, ours in names.items()
                           if data.get(theirs) not in (None, "")}
    out["open_ports"] = list(out.get("open_ports") or [])
    groups = data.get("SecurityGroupNames") or [data.get("SecurityGroupName") or ""]
    out["security_group"] = groups[0] if groups and groups[0] else opt.DEFAULT_SECURITY_GROUP
    key = str(data.get("KeyName") or "")
    out["keypair_name"] = key if data.get("ExistingKey") else ""
    out["resources"] = {"instance_id": str(data.get("InstanceId") or ""),
                        "key_name": "" if data.get("ExistingKey") else key,
                        "group_used": str(data.get("SecurityGroupId") or "")}
    out["credentials"] = {"access_key": data.get("AccessKey") or "",
                          "secret_key": data.get("SecretKey") or "",
                          "session_token": data.get("SessionToken") or ""}
    out["explicit_credentials"] = bool(data.get("AccessKey"))
    return out


def _adopt_key(private: Path, machine_dir: Path) -> None:
    """Copy the user's key into the machine's folder as id_rsa (0600) and id_rsa.pub, so
    the store stays self-contained and relocatable."""
    serialization = require("cryptography.hazmat.primitives.serialization", "amazonec2")
    data = private.read_bytes()
    try:
        key = (serialization.load_ssh_private_key(data, None)
               if b"OPENSSH PRIVATE KEY" in data
               else serialization.load_pem_private_key(data, None))
    except (ValueError, TypeError) as exc:
        raise MachineError(f"--amazonec2-ssh-keypath {private}: not an unencrypted private "
                           f"key ({exc})", step="Importing the key pair") from None
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH)
    write_file(machine_dir / "id_rsa", data, SECRET_MODE)
    write_file(machine_dir / "id_rsa.pub", pub + b"\n", PUBLIC_MODE)
