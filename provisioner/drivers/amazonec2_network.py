"""Where an amazonec2 machine lives on the network: its VPC and subnet (the region's
default VPC and the zone's subnet unless told), and its security group, open only to the
allowed ranges on the ports a Flock machine needs.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from flock.provisioner.drivers.amazonec2_api import EC2
from flock.provisioner.drivers.amazonec2_options import MACHINE_PORTS
from flock.provisioner.errors import DriverError
from flock.provisioner.host import AGENT_PORT, CALLS_PORT, ENGINE_PORT, MANAGER_PORT

# Machines sharing a group reach each other's cluster ports (a manager dials its agents).
CLUSTER_PORTS = (ENGINE_PORT, AGENT_PORT, CALLS_PORT, MANAGER_PORT)


def resolve_subnet(ec2: EC2, vpc_id: str, subnet_id: str, zone: str) -> tuple[str, str, str]:
    """(vpc_id, subnet_id, availability zone) for the flags given."""
    step = "Finding the subnet"
    if subnet_id:
        subnets = ec2.call(step, "describe_subnets", SubnetIds=[subnet_id])["Subnets"]
        subnet = subnets[0]
        if vpc_id and subnet["VpcId"] != vpc_id:
            raise DriverError(f"subnet {subnet_id} is in VPC {subnet['VpcId']}, not in "
                              f"--amazonec2-vpc-id {vpc_id}: pass matching IDs", step=step)
        return subnet["VpcId"], subnet_id, subnet["AvailabilityZone"]
    if not vpc_id:
        vpcs = ec2.call(step, "describe_vpcs",
                        Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise DriverError(f"region {ec2.region} has no default VPC: pass "
                              "--amazonec2-vpc-id and --amazonec2-subnet-id", step=step)
        vpc_id = vpcs[0]["VpcId"]
    zone_name = ec2.region + zone
    subnets = ec2.call(step, "describe_subnets", Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "availability-zone", "Values": [zone_name]}])["Subnets"]
    if not subnets:
        raise DriverError(f"VPC {vpc_id} has no subnet in zone {zone_name}: pass "
                          "--amazonec2-subnet-id, or another --amazonec2-zone", step=step)
    subnets.sort(key=lambda s: (not s.get("DefaultForAz", False), s["SubnetId"]))
    return vpc_id, subnets[0]["SubnetId"], zone_name


def find_group(ec2: EC2, name: str, vpc_id: str) -> dict[str, Any] | None:
    groups = ec2.call("Finding the security group", "describe_security_groups", Filters=[
        {"Name": "group-name", "Values": [name]},
        {"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    return groups[0] if groups else None


def wanted_rules(group_id: str, cidrs: list[str], open_ports: list[str]) -> list[dict]:
    """Ingress: each machine port (and --amazonec2-open-port) from each allowed range, and
    the cluster ports from the group's own members."""
    ports = [(port, "tcp") for port in MACHINE_PORTS]
    ports += [(int(p.split("/")[0]), p.split("/")[1]) for p in open_ports]
    rules = []
    for port, proto in ports:
        for cidr in cidrs:
            six = ipaddress.ip_network(cidr).version == 6
            rules.append({"IpProtocol": proto, "FromPort": port, "ToPort": port,
                          "Ipv6Ranges" if six else "IpRanges":
                          [{"CidrIpv6" if six else "CidrIp": cidr,
                            "Description": "flock machine"}]})
    for port in CLUSTER_PORTS:
        rules.append({"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                      "UserIdGroupPairs": [{"GroupId": group_id,
                                            "Description": "flock cluster"}]})
    return rules


def _present(group: dict[str, Any]) -> set[tuple]:
    """The group's ingress as (proto, from, to, source) tuples."""
    out = set()
    for perm in group.get("IpPermissions", []):
        key = (perm.get("IpProtocol"), perm.get("FromPort"), perm.get("ToPort"))
        out.update((*key, r.get("CidrIp")) for r in perm.get("IpRanges", []))
        out.update((*key, r.get("CidrIpv6")) for r in perm.get("Ipv6Ranges", []))
        out.update((*key, r.get("GroupId")) for r in perm.get("UserIdGroupPairs", []))
    return out


def _source(rule: dict) -> str:
    for field, key in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6"),
                       ("UserIdGroupPairs", "GroupId")):
        if rule.get(field):
            return rule[field][0][key]
    return ""


def open_group(ec2: EC2, group: dict[str, Any], cidrs: list[str], open_ports: list[str],
               created: bool) -> None:
    """Add the ingress rules the group lacks (a reused group keeps the rules it had) and,
    on a group made here, outbound traffic if the provider gave it none."""
    step = "Opening the security group's ports"
    have = _present(group)
    missing = [rule for rule in wanted_rules(group["GroupId"], cidrs, open_ports)
               if (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], _source(rule))
               not in have]
    if missing:
        try:
            ec2.call(step, "authorize_security_group_ingress", GroupId=group["GroupId"],
                     IpPermissions=missing)
        except DriverError as exc:
            if getattr(exc, "code", "") != "InvalidPermission.Duplicate":
                raise
            for rule in missing:   # someone added some meanwhile: add the rest one by one
                try:
                    ec2.call(step, "authorize_security_group_ingress",
                             GroupId=group["GroupId"], IpPermissions=[rule])
                except DriverError as again:
                    if getattr(again, "code", "") != "InvalidPermission.Duplicate":
                        raise
    if created and not group.get("IpPermissionsEgress"):
        # The machine installs packages and reaches discovery and its peers.
        ec2.call(step, "authorize_security_group_egress", GroupId=group["GroupId"],
                 IpPermissions=[{"IpProtocol": "-1",
                                 "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
