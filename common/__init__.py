"""The ground floor: what every Flock program shares (logs, metrics, durations, signals,
the version line, tables, the systemd units). It imports nothing of Flock's above it,
so the manager, the agent, the provisioner and discovery can all stand on it."""
