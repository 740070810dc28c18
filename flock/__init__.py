"""Flock: a cluster scheduler and machine provisioner with one Docker API over many machines."""

__version__ = "0.1.0"
