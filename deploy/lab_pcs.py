"""Lab PCs: `pyinfra -y inventories/lab_pcs.py deploy/lab_pcs.py` (--dry: the admin's plan).

Every PC of the inventory at once, over SSH: the admin's part once per PC (Docker and Compose
for every user, the NVIDIA checks and Container Toolkit where a GPU is present, the lab members
in the docker group, the base images pulled once), then each member's part as that member
(their checkout of the project, their env files, their images). It ends with one line per PC
and the `--limit` that re-runs only the PCs that are not ready.
"""

from isaac_deploy.deploys import fleet

fleet.setup()
