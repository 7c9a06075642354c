"""A room of lab PCs, set up from the admin's machine in one command:

    pyinfra -y inventories/lab_pcs.py deploy/lab_pcs.py            # every PC at once
    pyinfra -y inventories/lab_pcs.py deploy/lab_pcs.py --limit @openssh/pc03.lab.example.org
    isaac-deploy doctor --fleet                                    # one table: PC x check

PCs are `@openssh/NAME`: the system's OpenSSH client, one connection per PC, `~/.ssh/config`
applies, host keys are checked against your known_hosts (never accepted blindly), your key or
ssh-agent logs in (no password prompts). The SSH user needs sudo without a password there (or
is root). The group's data below applies to every PC, a PC's own data overrides it, and a
`group_data/lab_pcs.py` next to this file overrides both (pyinfra's conventions): keep site
specifics such as your registry there.

Settings, besides the workstation's `isaac_*` keys (inventories/local.py), which apply to every
member's project:
  isaac_members           the lab members who use the PCs: accounts that exist there (from
                          your directory service, or made by you); never made by the deploy
  isaac_project           each member's checkout: {"git": URL the PCs clone without a prompt,
                          "branch": NAME, "folder": PATH in the member's home}
  isaac_pull_base_images  pull the base images of isaac_profiles once per PC, for all members
  isaac_registries        where they come from (as inventories/registries.py): the CA is
                          installed for Docker on each PC; the password comes from the
                          variable password_env of your shell, never from this file
"""

import runpy
from pathlib import Path

REGISTRIES = runpy.run_path(str(Path(__file__).with_name("registries.py")))["REGISTRIES"]
REGISTRY = REGISTRIES["lab"]["address"]

lab_pcs = (
    [
        "@openssh/pc01.lab.example.org",
        "@openssh/pc02.lab.example.org",
        # the perception group's PC: carol works on it instead of bob
        ("@openssh/pc03.lab.example.org", {"isaac_members": ["alice", "carol"]}),
    ],
    {
        "ssh_user": "labadmin",
        "isaac_members": ["alice", "bob"],
        "isaac_project": {
            "git": "https://git.lab.example.org/robotics/ext_template.git",
            "branch": "main",
            "folder": "ext_template",
        },
        "isaac_extension_name": "ext_template",
        "isaac_profiles": ("ext-dev",),
        "isaac_base_images": {
            "ext": f"{REGISTRY}/robotics/isaac/isaac-lab-base:2.1.0",
            "ext-dev": f"{REGISTRY}/robotics/isaac/isaac-lab-ros2:2.1.0",
        },
        "isaac_pull_base_images": True,
        "isaac_registries": REGISTRIES,
    },
)
