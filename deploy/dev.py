"""Workstation deploy: `pyinfra inventories/local.py deploy/dev.py` (add --dry for the plan).

Checks the toolkit, installs what is missing (sudo only for that), renders the env files and
docker-compose.override.yaml for this host's user, and builds the extension images.
"""

from pathlib import Path

from isaac_deploy.deploys import workstation

workstation.setup(project_root=Path(__file__).resolve().parent.parent)
