"""The parts of provisioning a machine over SSH (provisioner.provision runs them in order).

- layout: where everything lives on the machine (all under the machine's install_dir);
- target: the machine as provisioning sees it (root or sudo, its OS, Python, packages,
  file uploads);
- services: the engine, the agent and the manager as commands, and how they are kept
  running (systemd units, or a supervised restart loop where there is no systemd);
- checks: waiting, from this side, until each service answers.
"""
