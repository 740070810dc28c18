"""Machine records as Docker Machine 0.16 writes them (config.json, ConfigVersion 3), for
the tests of Flock reading and writing its store.

The layout follows docker/machine's libmachine/host/host.go (Host, Options),
drivers/base.go (BaseDriver), engine/engine.go, swarm/swarm.go and auth/auth.go, with the
default values commands/create.go fills in (InstallURL https://get.docker.com, swarm Image
swarm:latest, Host tcp://0.0.0.0:3376, Strategy spread, TlsVerify true), as published
`docker-machine inspect` outputs show them.
"""

from __future__ import annotations

ROOT = "/home/alex/.docker/machine"


def dm_record(name: str, driver_name: str, driver: dict, root: str = ROOT) -> dict:
    folder = f"{root}/machines/{name}"
    return {
        "ConfigVersion": 3,
        "Driver": {"IPAddress": "", "MachineName": name, "SSHUser": "", "SSHPort": 0,
                   "SSHKeyPath": "", "StorePath": root, "SwarmMaster": False,
                   "SwarmHost": "", "SwarmDiscovery": "", **driver},
        "DriverName": driver_name,
        "HostOptions": {
            "Driver": "", "Memory": 0, "Disk": 0,
            "EngineOptions": {
                "ArbitraryFlags": [], "Dns": None, "GraphDir": "", "Env": [], "Ipv6": False,
                "InsecureRegistry": [], "Labels": [], "LogLevel": "", "StorageDriver": "",
                "SelinuxEnabled": False, "TlsVerify": True, "RegistryMirror": [],
                "InstallURL": "https://get.docker.com"},
            "SwarmOptions": {
                "IsSwarm": False, "Address": "", "Discovery": "", "Agent": False,
                "Master": False, "Host": "tcp://0.0.0.0:3376", "Image": "swarm:latest",
                "Strategy": "spread", "Heartbeat": 0, "Overcommit": 0, "ArbitraryFlags": [],
                "ArbitraryJoinFlags": [], "Env": None, "IsExperimental": False},
            "AuthOptions": {
                "CertDir": f"{root}/certs", "CaCertPath": f"{root}/certs/ca.pem",
                "CaPrivateKeyPath": f"{root}/certs/ca-key.pem", "CaCertRemotePath": "",
                "ServerCertPath": f"{folder}/server.pem",
                "ServerKeyPath": f"{folder}/server-key.pem",
                "ClientKeyPath": f"{root}/certs/key.pem", "ServerCertRemotePath": "",
                "ServerKeyRemotePath": "", "ClientCertPath": f"{root}/certs/cert.pem",
                "ServerCertSANs": [], "StorePath": folder}},
        "Name": name,
    }


def assert_holds(actual: dict, expected: dict, where: str = "") -> None:
    """Every key of `expected`, at every depth, is in `actual` with the same value."""
    for key, value in expected.items():
        assert key in actual, f"{where}.{key} is missing"
        if isinstance(value, dict):
            assert_holds(actual[key], value, f"{where}.{key}")
        else:
            assert actual[key] == value, f"{where}.{key}"
