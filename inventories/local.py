"""This workstation. Settings are `isaac_*` data keys; the host user (name, uid, gid, home) is
detected. Override per run with `--data`, e.g. `--data isaac_provision=check`.

Settings (defaults in brackets):
  isaac_extension_name   [ext_template]     package under source/, names images and env files
  isaac_extension_folder [this repository]  the extension project on the target
  isaac_profiles         [("ext-dev",)]     images to build: "ext" (production), "ext-dev"
  isaac_user_mode        [user]             dev container user: "user" (host uid) or "rootless"
  isaac_uid / isaac_gid  [detected]         container uid/gid, e.g. 2000 on a shared server
  isaac_base_source      [pull]             where missing base images come from: "pull" (from the
                                            registry each names; NGC by default), "build" (with
                                            isaac_isaaclab_checkout), "given" (you make them)
  isaac_base_images      [pull: nvcr.io/nvidia/isaac-lab:2.1.0 for both profiles]
  isaac_isaaclab_checkout [none]            your Isaac Lab checkout, e.g. "~/IsaacLab" (build)
  isaac_provision        [install]          "check": never install, only report (no sudo)
  isaac_docker_source    [distro]           "docker-repo": Docker's own apt repository
  isaac_env_overwrite_edited [False]        replace hand-edited env files (copy kept as .edited)
  isaac_wandb            [{}]               username, entity, project, mode, api_key_file; the
                                            key itself comes from $WANDB_API_KEY or that file
"""

local = [
    (
        "@local",
        {
            "isaac_extension_name": "ext_template",
            "isaac_profiles": ("ext-dev",),
        },
    )
]
