"""Push deploy: `pyinfra inventories/registries.py deploy/push.py` (add --dry for the plan).

Makes every registry in `isaac_registries` hold the current images of `isaac_push_profiles`
under the git commit, the extension's version and `latest`, sending only what changed.
"""

from pathlib import Path

from isaac_deploy.deploys import registry

plan = registry.load(project_root=Path(__file__).resolve().parent.parent)
registry.push(plan)
