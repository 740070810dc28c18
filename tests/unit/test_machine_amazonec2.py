"""The amazonec2 driver's flags and records, without a provider: Docker Machine's flag
names and defaults, every bad value refused with what to pass instead, credentials kept
out of the config record, and the state mapping."""

from __future__ import annotations

import argparse

import pytest

from flock.provisioner.drivers import amazonec2_options as opt
from flock.provisioner.drivers import driver_class
from flock.provisioner.drivers.amazonec2 import STATES, AmazonEC2Driver
from flock.provisioner.errors import MachineError
from flock.provisioner.states import State

AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
           "AWS_DEFAULT_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ZONE", "AWS_AMI",
           "AWS_INSTANCE_TYPE", "AWS_VPC_ID", "AWS_SUBNET_ID", "AWS_SECURITY_GROUP",
           "AWS_KEYPAIR_NAME", "AWS_SSH_KEYPATH", "AWS_ROOT_SIZE", "AWS_VOLUME_TYPE",
           "AWS_TAGS", "AWS_SSH_USER", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL",
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
           "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")
ENDPOINT = "http://127.0.0.1:9"
KEYS = ["--amazonec2-access-key", "AKIAUNITTEST", "--amazonec2-secret-key", "s3cr3t-unit"]


@pytest.fixture(autouse=True)
def clean_aws_env(monkeypatch, tmp_path):
    """No AWS settings from the outside world: no credentials, files or instance role."""
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    AmazonEC2Driver.add_flags(parser)
    return parser.parse_args(list(argv))


def make(tmp_path, *argv: str) -> AmazonEC2Driver:
    return AmazonEC2Driver.from_flags("m1", tmp_path, parse(*argv))


def full(*extra: str) -> list[str]:
    return [*KEYS, "--amazonec2-ami", "ami-12c6146b", "--amazonec2-endpoint", ENDPOINT,
            "--amazonec2-allow-cidr", "198.51.100.7", *extra]


def test_registered_under_its_docker_machine_name():
    assert driver_class("amazonec2") is AmazonEC2Driver


def test_defaults_are_docker_machines(tmp_path):
    d = make(tmp_path, *full())
    assert (d.region, d.zone, d.instance_type, d.security_group, d.root_size) == (
        "us-east-1", "a", "t3.small", "docker-machine", 16)
    assert d.allow_cidrs == ["198.51.100.7/32"]
    assert d.ssh_user == ""          # chosen from the AMI's name at create
    assert d.endpoint == ENDPOINT


def test_flags_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:5000/")
    d = make(tmp_path, *KEYS, "--amazonec2-ami", "ami-1", "--amazonec2-zone", "c",
             "--amazonec2-instance-type", "t3.micro", "--amazonec2-root-size", "30",
             "--amazonec2-tags", "team,infra,env,prod", "--amazonec2-ssh-user", "root",
             "--amazonec2-allow-cidr", "10.0.0.5/24", "--amazonec2-allow-cidr", "2001:db8::1",
             "--amazonec2-allow-cidr", "10.0.0.0/24", "--amazonec2-open-port", "8080",
             "--amazonec2-open-port", "53/udp", "--amazonec2-private-address-only")
    assert d.region == "eu-west-3"
    assert d.endpoint == "http://127.0.0.1:5000"
    assert (d.zone, d.instance_type, d.root_size, d.ssh_user) == ("c", "t3.micro", 30, "root")
    assert d.tags == {"team": "infra", "env": "prod"}
    assert d.allow_cidrs == ["10.0.0.0/24", "2001:db8::1/128"]
    assert d.open_ports == ["8080/tcp", "53/udp"]
    assert d.use_private_address and d.private_address_only


def test_credentials_from_environment_go_to_secrets_only(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token-value")
    d = make(tmp_path, "--amazonec2-ami", "ami-1", "--amazonec2-endpoint", ENDPOINT,
             "--amazonec2-allow-cidr", "0.0.0.0/0")
    assert d.secrets() == {"access_key": "AKIAFROMENV", "secret_key": "env-secret-value",
                           "session_token": "env-token-value"}
    record = repr(d.to_dict())
    for secret in ("AKIAFROMENV", "env-secret-value", "env-token-value"):
        assert secret not in record
    assert d.to_dict()["allow_cidrs"] == ["0.0.0.0/0"]   # only because it was asked for


def test_load_round_trip(tmp_path):
    d = make(tmp_path, *full("--amazonec2-tags", "a,b"))
    d.resources.update(instance_id="i-1", key_name="k", group_id="sg-1")
    again = AmazonEC2Driver.load("m1", tmp_path, d.to_dict(), d.secrets())
    assert again.to_dict() == d.to_dict()
    assert again.secrets() == {"access_key": "AKIAUNITTEST", "secret_key": "s3cr3t-unit"}


def test_journal_wins_over_a_stale_record(tmp_path):
    """A create killed before config.json was updated still left the journal."""
    d = make(tmp_path, *full())
    d.resources["create_id"] = "c0ffee"
    d._record(instance_id="i-0abc", key_name="flock-m1-c0ffee")
    again = AmazonEC2Driver.load("m1", tmp_path, {"region": "us-east-1"}, {})
    assert again.resources["instance_id"] == "i-0abc"
    assert again.resources["key_name"] == "flock-m1-c0ffee"


@pytest.mark.parametrize("argv, words", [
    ([*KEYS, "--amazonec2-endpoint", ENDPOINT, "--amazonec2-allow-cidr", "1.2.3.4"],
     ["--amazonec2-ami is required", "AMI"]),
    (full("--amazonec2-tags", "a,b,c"), ["odd number", "k1,v1,k2,v2"]),
    (full("--amazonec2-tags", ",v"), ["empty key"]),
    (full("--amazonec2-tags", "flock-machine,x"), ["Flock's own"]),
    (full("--amazonec2-root-size", "0"), ["--amazonec2-root-size", "GB"]),
    (full("--amazonec2-root-size", "big"), ["--amazonec2-root-size"]),
    (full("--amazonec2-zone", "us-east-1a"), ["zone's letter"]),
    (full("--amazonec2-allow-cidr", "10.0.0.0/33"), ["not an address range"]),
    (full("--amazonec2-allow-cidr", "everyone"), ["not an address range"]),
    (full("--amazonec2-open-port", "70000"), ["1 to 65535"]),
    (full("--amazonec2-open-port", "80/sctp"), ["/tcp or /udp"]),
    (full("--amazonec2-endpoint", "localhost:5000"), ["http:// or https://"]),
    (full("--amazonec2-keypair-name", "mine"), ["--amazonec2-ssh-keypath"]),
    (full("--amazonec2-keypair-name", "mine", "--amazonec2-ssh-keypath", "/nonexistent/key"),
     ["no such file"]),
    (["--amazonec2-access-key", "AKIA", "--amazonec2-ami", "ami-1", "--amazonec2-endpoint",
      ENDPOINT, "--amazonec2-allow-cidr", "1.2.3.4"], ["without --amazonec2-secret-key"]),
    (["--amazonec2-ami", "ami-1", "--amazonec2-endpoint", ENDPOINT,
      "--amazonec2-allow-cidr", "1.2.3.4"], ["no AWS credentials", "--amazonec2-access-key"]),
    ([*KEYS, "--amazonec2-ami", "ami-1", "--amazonec2-endpoint", ENDPOINT],
     ["--amazonec2-allow-cidr", "0.0.0.0/0", "caller's address is unknown"]),
])
def test_bad_flags_are_refused_with_what_to_do(tmp_path, argv, words):
    with pytest.raises(MachineError) as caught:
        make(tmp_path, *argv)
    for word in words:
        assert word in str(caught.value)


def test_no_allow_cidr_never_means_the_whole_internet():
    """Without an endpoint the caller's address is asked of AWS's checkip service; offline
    (as here) that fails and the create is refused rather than opened to 0.0.0.0/0."""
    try:
        cidrs = opt.default_allow_cidrs("")
    except MachineError as exc:
        assert "--amazonec2-allow-cidr" in str(exc)
        assert "checkip.amazonaws.com" in str(exc)
    else:
        assert len(cidrs) == 1 and cidrs[0].endswith(("/32", "/128"))


@pytest.mark.parametrize("name, user", [
    ("debian-12-amd64-20240717-1811", "admin"),
    ("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240701", "ubuntu"),
    ("al2023-ami-2023.5.20240701.0-kernel-6.1-x86_64", "ec2-user"),
    ("amzn2-ami-hvm-2.0.20240620.0-x86_64-gp2", "ec2-user"),
    ("my-golden-image", "admin"),
])
def test_ssh_user_follows_the_ami(name, user):
    assert opt.ssh_user_for_image(name)[0] == user


def test_state_mapping():
    assert STATES == {"pending": State.STARTING, "running": State.RUNNING,
                      "stopping": State.STOPPING, "stopped": State.STOPPED,
                      "shutting-down": State.STOPPING, "terminated": State.ERROR}


def test_a_machine_without_an_instance(tmp_path):
    d = make(tmp_path, *full())
    assert d.state() is State.ERROR
    with pytest.raises(MachineError, match="has no instance at the provider"):
        d.start()


def test_a_machine_docker_machine_made_loads_with_its_instance_key_and_credentials(tmp_path):
    # drivers/amazonec2/amazonec2.go's Driver as Docker Machine 0.16 saves it in config.json
    # (credentials included, BaseDriver fields flat beside its own)
    record = {"IPAddress": "54.1.2.3", "SSHUser": "ubuntu", "SSHPort": 22,
              "Id": "abc", "AccessKey": "AKIA", "SecretKey": "s3cr3t", "SessionToken": "",
              "Region": "eu-west-1", "AMI": "ami-1234", "SSHKeyID": 0, "ExistingKey": False,
              "KeyName": "dm1", "InstanceId": "i-0abc", "InstanceType": "t2.small",
              "PrivateIPAddress": "172.31.0.5", "SecurityGroupId": "sg-1",
              "SecurityGroupIds": ["sg-1"], "SecurityGroupName": "docker-machine",
              "SecurityGroupNames": ["docker-machine"], "OpenPorts": ["80"],
              "Tags": "", "DeviceName": "/dev/sda1", "RootSize": 16, "VolumeType": "gp2",
              "VpcId": "vpc-1", "SubnetId": "subnet-1", "Zone": "b", "PrivateIPOnly": False,
              "UsePrivateIP": True, "Endpoint": "http://127.0.0.1:5000"}
    d = AmazonEC2Driver.load("dm1", tmp_path, record, {})
    assert (d.region, d.zone, d.ami, d.instance_type) == ("eu-west-1", "b", "ami-1234",
                                                          "t2.small")
    assert (d.vpc_id, d.subnet_id, d.root_size, d.ssh_user) == ("vpc-1", "subnet-1", 16,
                                                               "ubuntu")
    assert d.use_private_address and d.endpoint == "http://127.0.0.1:5000"
    assert d.resources["instance_id"] == "i-0abc"
    assert d.resources["key_name"] == "dm1"          # made by its create: rm deletes it
    assert d.resources["group_id"] == ""             # shared by Docker Machine's machines
    assert d.credentials == {"access_key": "AKIA", "secret_key": "s3cr3t"}
    existing = AmazonEC2Driver.load("dm1", tmp_path, {**record, "ExistingKey": True}, {})
    assert (existing.keypair_name, existing.resources["key_name"]) == ("dm1", "")
