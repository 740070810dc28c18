"""The drivers, by name.

Driver modules import their provider's library (libvirt-python, boto3) inside the methods
that need it, through `require`, so that every driver's flags are known to `create --help`
even where the library is not installed, and using it says which extra to install.
"""

from __future__ import annotations

import importlib

from flock.provisioner.drivers.base import Driver, SSHDetails
from flock.provisioner.errors import MachineError

# name -> (module, class, pip extra that provides its library)
DRIVERS: dict[str, tuple[str, str, str]] = {
    "none": ("flock.provisioner.drivers.none", "NoneDriver", ""),
    "generic": ("flock.provisioner.drivers.generic", "GenericDriver", ""),
    "libvirt": ("flock.provisioner.drivers.libvirt", "LibvirtDriver", "libvirt"),
    "amazonec2": ("flock.provisioner.drivers.amazonec2", "AmazonEC2Driver", "aws"),
}


def driver_class(name: str) -> type[Driver]:
    try:
        module, cls, extra = DRIVERS[name]
    except KeyError:
        # Docker Machine: 'Driver "x" not found. Do you have the plugin binary ...'
        # (libmachine/drivers/plugin/localbinary); Flock has no plugins: it names its own
        raise MachineError(f'Driver "{name}" not found. Flock has no driver plugins: use one '
                           f"of {', '.join(DRIVERS)}") from None
    return getattr(importlib.import_module(module), cls)


def require(module: str, driver: str):
    """Import a provider library, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = DRIVERS[driver][2]
        raise MachineError(f"the {driver} driver needs the Python module {module}: "
                           f"pip install 'flock[{extra}]'") from None


__all__ = ["DRIVERS", "Driver", "SSHDetails", "driver_class", "require"]
