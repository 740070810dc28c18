"""What the manager and the agents' runtimes both need to word things exactly as the
Docker Engine does, so that clients which parse or show them see no difference."""
