"""Flock: a cluster scheduler and machine provisioner with one Docker API over many machines.

Every part is imported under this one name: `flock.manager`, `flock.agent`,
`flock.provisioner`, `flock.discovery`, the ground floor `flock.common`, ... (their folders
sit at the top of the repository; pyproject.toml maps them). The modules in this folder
are the `flock` commands, the top floor.
"""
