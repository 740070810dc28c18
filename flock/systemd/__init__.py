"""`python -m flock.systemd`: the command that prints or installs the units; the units
themselves and their rendering live on the ground floor (flock.common.systemd), where
`flock machine` provisioning reads them too."""
