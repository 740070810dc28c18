"""The amazonec2 driver against a real local EC2 API (moto_server over HTTP, through
boto3): what each step makes at the provider, seen through a boto3 client of the test's
own, and that nothing is left behind when a create fails or a machine is removed."""

from __future__ import annotations

import argparse
import json
import os
import stat

import pytest

from flock.provisioner.drivers.amazonec2 import RESOURCES, AmazonEC2Driver
from flock.provisioner.errors import DriverError, MachineError
from flock.provisioner.host import Host
from flock.provisioner.states import State
from flock.provisioner.store import Store
from tests.support.moto import (
    ACCESS_KEY,
    NOTHING,
    SECRET_KEY,
    leftovers,
    live_instances,
)

CALLER = "198.51.100.7/32"


# `moto`, `ec2` and `debian_ami`: tests/integration/conftest.py.


def write_key(folder) -> None:
    """The machine's own key pair, as `flock machine create` makes it before the driver."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "id_rsa").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()))
    os.chmod(folder / "id_rsa", 0o600)
    (folder / "id_rsa.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b" m@flock\n")


def driver(moto, folder, ami: str, *flags: str, name: str = "m1") -> AmazonEC2Driver:
    parser = argparse.ArgumentParser()
    AmazonEC2Driver.add_flags(parser)
    args = parser.parse_args([
        "--amazonec2-access-key", ACCESS_KEY, "--amazonec2-secret-key", SECRET_KEY,
        "--amazonec2-endpoint", moto.endpoint, "--amazonec2-ami", ami, *flags])
    write_key(folder)
    return AmazonEC2Driver.from_flags(name, folder, args)


def machine_groups(ec2, name: str = "docker-machine") -> list[dict]:
    return ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]


def assert_nothing_left(ec2) -> None:
    assert leftovers(ec2) == NOTHING


def test_create_makes_exactly_what_the_flags_say(moto, ec2, debian_ami, tmp_path):
    d = driver(moto, tmp_path / "m1", debian_ami, "--amazonec2-allow-cidr", "198.51.100.7",
               "--amazonec2-instance-type", "t3.micro", "--amazonec2-root-size", "20",
               "--amazonec2-tags", "team,infra,env,test")
    steps: list[str] = []
    d.pre_create_check(steps.append)
    d.create(steps.append)
    assert "SSH user admin (Debian AMI)" in steps
    res = d.resources

    # the machine's own public key, imported under a name of its own
    pairs = ec2.describe_key_pairs(IncludePublicKey=True)["KeyPairs"]
    assert [p["KeyName"] for p in pairs] == [res["key_name"]]
    assert res["key_name"].startswith("flock-m1-")
    own = (tmp_path / "m1" / "id_rsa.pub").read_text().split()[:2]
    assert pairs[0]["PublicKey"].split()[:2] == own

    # a security group open to the caller's range only, on the machine's ports
    [group] = machine_groups(ec2)
    assert group["GroupId"] == res["group_id"] == res["group_used"]
    from_cidrs = {(p["FromPort"], r["CidrIp"]) for p in group["IpPermissions"]
                  for r in p["IpRanges"]}
    assert from_cidrs == {(port, CALLER) for port in (22, 2376, 4000, 4001, 3376)}
    from_group = {(p["FromPort"], g["GroupId"]) for p in group["IpPermissions"]
                  for g in p["UserIdGroupPairs"]}
    assert from_group == {(port, group["GroupId"]) for port in (2376, 4000, 4001, 3376)}
    assert all(not p["Ipv6Ranges"] for p in group["IpPermissions"])
    assert group["IpPermissionsEgress"], "the machine must reach package mirrors and peers"

    # one running instance: type, tags, network, root disk
    [inst] = live_instances(ec2)
    assert inst["InstanceId"] == res["instance_id"]
    assert inst["State"]["Name"] == "running"
    assert inst["InstanceType"] == "t3.micro"
    assert inst["ImageId"] == debian_ami
    assert inst["KeyName"] == res["key_name"]
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags == {"Name": "m1", "team": "infra", "env": "test", "flock-machine": "m1",
                    "flock-create": res["create_id"]}
    assert [g["GroupId"] for g in inst["NetworkInterfaces"][0]["Groups"]] == [res["group_id"]]
    assert inst["Placement"]["AvailabilityZone"] == "us-east-1a"
    [volume] = ec2.describe_volumes(Filters=[
        {"Name": "attachment.instance-id", "Values": [inst["InstanceId"]]}])["Volumes"]
    assert volume["Size"] == 20
    assert {"Key": "flock-machine", "Value": "m1"} in volume["Tags"]

    assert d.state() is State.RUNNING
    assert d.ip() == inst["PublicIpAddress"]
    ssh = d.ssh_details()
    assert (ssh.host, ssh.port, ssh.user) == (inst["PublicIpAddress"], 22, "admin")
    assert ssh.key_path == str(tmp_path / "m1" / "id_rsa")

    # recorded on disk the moment it existed
    journal = json.loads((tmp_path / "m1" / RESOURCES).read_text())
    assert journal["instance_id"] == res["instance_id"]
    d.remove()
    assert_nothing_left(ec2)


def test_stop_start_restart_kill_rm(moto, ec2, debian_ami, tmp_path):
    d = driver(moto, tmp_path / "m2", debian_ami, "--amazonec2-allow-cidr", "203.0.113.0/24",
               name="m2")
    d.create(lambda _s: None)
    instance_id = d.resources["instance_id"]

    def ec2_state() -> str:
        found = ec2.describe_instances(InstanceIds=[instance_id])
        return found["Reservations"][0]["Instances"][0]["State"]["Name"]

    d.stop()
    assert (d.state(), ec2_state()) == (State.STOPPED, "stopped")
    with pytest.raises(MachineError, match="no public IP address"):
        d.ip()
    d.start()
    assert (d.state(), ec2_state()) == (State.RUNNING, "running")
    d.restart()
    assert d.state() is State.RUNNING
    d.kill()
    assert (d.state(), ec2_state()) == (State.STOPPED, "stopped")
    d.start()
    d.remove()
    assert ec2_state() == "terminated"
    assert d.state() is State.ERROR     # a terminated instance can never run again
    assert_nothing_left(ec2)
    d.remove()                           # already gone is fine
    with pytest.raises(MachineError, match="has no instance"):
        d.start()


def test_bad_instance_type_undoes_everything(moto, ec2, debian_ami, tmp_path):
    d = driver(moto, tmp_path / "m3", debian_ami, "--amazonec2-allow-cidr", "198.51.100.7",
               "--amazonec2-instance-type", "t3.bogus", name="m3")
    d.pre_create_check()
    with pytest.raises(DriverError) as caught:
        d.create(lambda _s: None)
    text = str(caught.value)
    assert caught.value.step == "Launching the instance"
    assert text.startswith("Launching the instance: EC2 refused RunInstances:")
    assert "t3.bogus" in text and "--amazonec2-instance-type" in text
    assert "cleaned up at the provider: key pair flock-m3-" in text
    assert "security group sg-" in text
    assert_nothing_left(ec2)
    assert {k: v for k, v in d.resources.items() if k not in ("create_id", "group_used")} == {
        "key_name": "", "group_id": "", "instance_id": ""}


def test_bad_ami_is_refused_before_anything_is_made(moto, ec2, tmp_path):
    d = driver(moto, tmp_path / "m4", "ami-0000000000bad0000", "--amazonec2-allow-cidr",
               "198.51.100.7", name="m4")
    with pytest.raises(DriverError) as caught:
        d.pre_create_check()
    assert caught.value.step == "Checking the AMI"
    assert "InvalidAMIID.NotFound" in str(caught.value)
    assert "--amazonec2-ami" in str(caught.value)
    # and create() checks too when the caller skipped pre_create_check
    with pytest.raises(DriverError, match="InvalidAMIID"):
        d.create(lambda _s: None)
    assert_nothing_left(ec2)


def test_reused_group_is_kept_with_its_rules(moto, ec2, debian_ami, tmp_path):
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    group_id = ec2.create_security_group(GroupName="web", Description="theirs",
                                         VpcId=vpc["VpcId"])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    d = driver(moto, tmp_path / "m5", debian_ami, "--amazonec2-security-group", "web",
               "--amazonec2-allow-cidr", "0.0.0.0/0", "--amazonec2-open-port", "53/udp",
               "--amazonec2-allow-cidr", "2001:db8::/64", name="m5")
    d.create(lambda _s: None)
    assert (d.resources["group_id"], d.resources["group_used"]) == ("", group_id)
    [group] = machine_groups(ec2, "web")
    rules = {(p["IpProtocol"], p["FromPort"], r["CidrIp"]) for p in group["IpPermissions"]
             for r in p["IpRanges"]}
    assert rules == {("tcp", 443, "0.0.0.0/0"), ("udp", 53, "0.0.0.0/0"),
                     *{("tcp", port, "0.0.0.0/0") for port in (22, 2376, 4000, 4001, 3376)}}
    six = {(p["IpProtocol"], p["FromPort"], r["CidrIpv6"]) for p in group["IpPermissions"]
           for r in p["Ipv6Ranges"]}
    assert six == {("udp", 53, "2001:db8::/64"),
                   *{("tcp", port, "2001:db8::/64") for port in (22, 2376, 4000, 4001, 3376)}}
    d.remove()
    assert [g["GroupId"] for g in machine_groups(ec2, "web")] == [group_id]
    assert live_instances(ec2) == [] and ec2.describe_key_pairs()["KeyPairs"] == []


def test_named_key_pair_is_used_and_kept(moto, ec2, debian_ami, tmp_path):
    theirs = tmp_path / "theirs"
    write_key(theirs)
    ec2.import_key_pair(KeyName="ops", PublicKeyMaterial=(theirs / "id_rsa.pub").read_bytes())
    d = driver(moto, tmp_path / "m6", debian_ami, "--amazonec2-keypair-name", "ops",
               "--amazonec2-ssh-keypath", str(theirs / "id_rsa"), "--amazonec2-allow-cidr",
               "198.51.100.7", "--amazonec2-ssh-user", "root", name="m6")
    d.create(lambda _s: None)
    [inst] = live_instances(ec2)
    assert inst["KeyName"] == "ops" and d.resources["key_name"] == ""
    machine = tmp_path / "m6"
    assert (machine / "id_rsa").read_bytes() == (theirs / "id_rsa").read_bytes()
    assert stat.S_IMODE((machine / "id_rsa").stat().st_mode) == 0o600
    assert (machine / "id_rsa.pub").read_text().split()[:2] == \
        (theirs / "id_rsa.pub").read_text().split()[:2]
    assert d.ssh_details().user == "root"
    d.remove()
    assert [p["KeyName"] for p in ec2.describe_key_pairs()["KeyPairs"]] == ["ops"]

    missing = driver(moto, tmp_path / "m7", debian_ami, "--amazonec2-keypair-name", "nope",
                     "--amazonec2-ssh-keypath", str(theirs / "id_rsa"),
                     "--amazonec2-allow-cidr", "198.51.100.7", name="m7")
    with pytest.raises(DriverError, match="key pair 'nope' does not exist"):
        missing.pre_create_check()


def test_rm_finds_what_a_lost_record_made(moto, ec2, debian_ami, tmp_path):
    """config.json never heard of the resources (a create killed half-way): the journal
    next to it, and the flock-create tag, still lead `rm` to them."""
    d = driver(moto, tmp_path / "m8", debian_ami, "--amazonec2-allow-cidr", "198.51.100.7",
               name="m8")
    d.create(lambda _s: None)
    assert len(live_instances(ec2)) == 1
    stale = {k: v for k, v in d.to_dict().items() if k != "resources"}
    again = AmazonEC2Driver.load("m8", tmp_path / "m8", stale, d.secrets())
    assert again.state() is State.RUNNING
    again.remove()
    assert_nothing_left(ec2)
    assert not (tmp_path / "m8" / RESOURCES).exists()

    # only the create id survived (the RunInstances answer was lost): found by its tag
    d = driver(moto, tmp_path / "m9", debian_ami, "--amazonec2-allow-cidr", "198.51.100.7",
               name="m9")
    d.create(lambda _s: None)
    (tmp_path / "m9" / RESOURCES).unlink()
    lost = {**d.to_dict(), "resources": {"create_id": d.resources["create_id"]}}
    AmazonEC2Driver.load("m9", tmp_path / "m9", lost, d.secrets()).remove()
    assert live_instances(ec2) == [] and machine_groups(ec2) == []


def test_private_address_in_a_small_subnet(moto, ec2, debian_ami, tmp_path):
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/28")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.0.0/28",
                               AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    d = driver(moto, tmp_path / "p1", debian_ami, "--amazonec2-subnet-id", subnet,
               "--amazonec2-use-private-address", "--amazonec2-allow-cidr", "10.77.0.0/28",
               name="p1")
    d.create(lambda _s: None)
    assert (d.vpc_id, d.availability_zone) == (vpc, "us-east-1b")
    [inst] = live_instances(ec2)
    assert inst["SubnetId"] == subnet
    assert d.ip() == inst["PrivateIpAddress"] and d.ip().startswith("10.77.0.")
    assert inst.get("PublicIpAddress")      # it still has one, it is just not used
    d2 = driver(moto, tmp_path / "p2", debian_ami, "--amazonec2-subnet-id", subnet,
                "--amazonec2-private-address-only", "--amazonec2-allow-cidr", "10.77.0.0/28",
                name="p2")
    d2.create(lambda _s: None)
    found = ec2.describe_instances(InstanceIds=[d2.resources["instance_id"]])
    assert not found["Reservations"][0]["Instances"][0].get("PublicIpAddress")
    assert d2.ip().startswith("10.77.0.")
    with pytest.raises(DriverError, match="is in VPC"):
        driver(moto, tmp_path / "p3", debian_ami, "--amazonec2-subnet-id", subnet,
               "--amazonec2-vpc-id", "vpc-0123456789abcdef0", "--amazonec2-allow-cidr",
               "10.77.0.0/28", name="p3").pre_create_check()
    d.remove()
    d2.remove()
    assert live_instances(ec2) == []


def test_secrets_stay_out_of_config_json(moto, ec2, debian_ami, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    store = Store(tmp_path / "store")
    folder = store.machine_dir("s1")
    d = driver(moto, folder, debian_ami, "--amazonec2-allow-cidr", "198.51.100.7",
               "--amazonec2-session-token", "tok-123", name="s1")
    host = Host(name="s1", driver_name="amazonec2", driver=d.to_dict())
    store.create(host)
    d.create(lambda _s: None)
    host.driver = d.to_dict()
    store.save(host)
    store.save_secrets("s1", d.secrets())
    config = (folder / "config.json").read_text()
    for secret in (ACCESS_KEY, SECRET_KEY, "tok-123"):
        assert secret not in config
    assert stat.S_IMODE((folder / "secrets.json").stat().st_mode) == 0o600
    # a later command rebuilds the driver from the two files alone
    again = AmazonEC2Driver.load("s1", folder, store.load("s1").driver,
                                 store.load_secrets("s1"))
    assert again.state() is State.RUNNING
    again.remove()
    assert_nothing_left(ec2)


def test_unreachable_endpoint_says_so(tmp_path):
    from tests.support.procs import free_port

    class Nowhere:
        endpoint = f"http://127.0.0.1:{free_port()}"

    d = driver(Nowhere, tmp_path / "u1", "ami-12c6146b", "--amazonec2-allow-cidr", "1.2.3.4",
               name="u1")
    with pytest.raises(DriverError) as caught:
        d.pre_create_check()
    assert "cannot reach the EC2 API" in str(caught.value)
    assert Nowhere.endpoint in str(caught.value)


def test_refused_key_import_makes_nothing(moto, ec2, debian_ami, tmp_path):
    d = driver(moto, tmp_path / "k1", debian_ami, "--amazonec2-allow-cidr", "198.51.100.7",
               name="k1")
    (tmp_path / "k1" / "id_rsa.pub").write_text("ssh-rsa not-a-key\n")
    with pytest.raises(DriverError) as caught:
        d.create(lambda _s: None)
    assert caught.value.step == "Importing the key pair"
    assert "ImportKeyPair" in str(caught.value)
    assert "cleaned up at the provider: nothing made" in str(caught.value)
    assert_nothing_left(ec2)
