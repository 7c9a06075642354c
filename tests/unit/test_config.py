"""The configuration model: defaults from the detected user, errors that name the field."""

from __future__ import annotations

import dataclasses

import pytest

from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.workstation import HostUser, WorkstationConfig


def named(data: dict) -> tuple[str, ...]:
    """The project holds the extension the data names (``ext_template`` by default)."""
    return (str(data.get("isaac_extension_name", "ext_template")),)


USER = HostUser(name="alice", uid=1000, gid=1001, home="/home/alice", groups=("alice", "docker"))


def make(**data) -> WorkstationConfig:
    return WorkstationConfig.from_host_data(data, USER, "/home/alice/ext", named(data))


def test_defaults_come_from_the_detected_user_and_the_project():
    config = make()
    assert (config.uid, config.gid) == (1000, 1001)
    assert config.extension_folder == "/home/alice/ext"
    assert config.extension_name == "ext_template" and config.profiles == ("ext-dev",)
    assert config.docker_ext_path == "/workspace/ext_template"
    assert config.provision == "install" and config.user_mode == "user"
    assert config.base_images == {  # NVIDIA's published image, no ROS 2, for both
        "ext": "nvcr.io/nvidia/isaac-lab:2.1.0",
        "ext-dev": "nvcr.io/nvidia/isaac-lab:2.1.0",
    }
    assert config.base_source.kind == "pull"


def test_names_are_per_user_so_a_shared_machine_never_mixes_them():
    config = make(isaac_extension_name="my_robot")
    assert config.compose_project == "my-robot-alice"
    assert config.image_name("ext") == "isaac-lab-my-robot:alice"
    assert config.image_name("ext-dev") == "isaac-lab-my-robot-dev:alice"
    odd = WorkstationConfig.from_host_data(
        {}, dataclasses.replace(USER, name="A.Bc@x"), "/x", ("ext_template",)
    )
    assert odd.user_slug == "a.bc-x"


def test_inventory_values_override_detection():
    config = make(isaac_uid="2000", isaac_gid=2000, isaac_profiles="ext, ext-dev")
    assert (config.uid, config.gid) == (2000, 2000)
    assert config.profiles == ("ext", "ext-dev")


def test_non_isaac_keys_are_ignored():
    assert make(ssh_user="x", some_other=1).uid == 1000


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"isaac_uid": "abc"}, "isaac_uid", "integer, got 'abc'"),
        ({"isaac_uid": 1000, "isaac_gid": -1}, "isaac_gid", "must be at least 0"),
        ({"isaac_extension_name": "my ext"}, "isaac_extension_name", "no '/', '-' or spaces"),
        ({"isaac_extension_name": "a/b"}, "isaac_extension_name", "not a valid extension name"),
        ({"isaac_extension_folder": "relative/path"}, "isaac_extension_folder", "absolute"),
        (
            {"isaac_profiles": ["ext", "prod"]},
            "isaac_profiles[1]",
            "one of 'ext', 'ext-dev', got 'prod'",
        ),
        ({"isaac_profiles": []}, "isaac_profiles", "at least one profile"),
        ({"isaac_user_mode": "admin"}, "isaac_user_mode", "one of 'user', 'rootless'"),
        ({"isaac_provision": "yes"}, "isaac_provision", "one of 'install', 'check'"),
        (
            {"isaac_base_images": {"ext": "Not An Image"}},
            "isaac_base_images[ext]",
            "image reference",
        ),
        ({"isaac_base_images": {"prod": "x"}}, "isaac_base_images[prod]", "unknown setting"),
        ({"isaac_env_overwrite_edited": "maybe"}, "isaac_env_overwrite_edited", "true or false"),
        ({"isaac_uid": True}, "isaac_uid", "must be an integer"),
        ({"isaac_wandb": {"mode": "sometimes"}}, "isaac_wandb[mode]", "online"),
        ({"isaac_wandb": {"api_key": "x"}}, "isaac_wandb[api_key]", "unknown setting"),
        ({"isaac_wandb": {"api_key_file": "key.txt"}}, "isaac_wandb[api_key_file]", "absolute"),
        ({"isaac_dev_pip_packages": "x; rm -rf /"}, "isaac_dev_pip_packages", "pip requirement"),
        ({"isaac_extenion_name": "typo"}, "isaac_extenion_name", "unknown setting"),
        ({"isaac_uid": 99999999999}, "isaac_uid", "at most 2147483647, got 99999999999"),
        ({"isaac_uid": "2147483648"}, "isaac_uid", "at most 2147483647"),
        ({"isaac_uid": 2000, "isaac_gid": 2**31}, "isaac_gid", "at most 2147483647"),
        ({"isaac_gid": 2000}, "isaac_gid", "set isaac_uid too"),
        ({"isaac_extension_name": "x" * 240}, "isaac_extension_name", "240 characters"),
        ({"isaac_image_paths": ["config", "/etc"]}, "isaac_image_paths[1]", "inside the"),
        ({"isaac_image_paths": ["../other"]}, "isaac_image_paths[0]", "no leading / or ~, no .."),
        ({"isaac_image_paths": "a/../../b"}, "isaac_image_paths[0]", "relative to it"),
        ({"isaac_image_paths": ["~/assets"]}, "isaac_image_paths[0]", "no leading / or ~"),
        ({"isaac_image_paths": [" "]}, "isaac_image_paths[0]", "inside the extension project"),
        ({"isaac_image_paths": ["a\nb"]}, "isaac_image_paths[0]", "newlines"),
        ({"isaac_image_paths": {"a": 1}}, "isaac_image_paths", "list of paths"),
        ({"isaac_image_paths": [3]}, "isaac_image_paths[0]", "must be a string"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(data, field, words):
    with pytest.raises(ConfigError) as error:
        make(**data)
    assert error.value.field == field
    assert str(error.value).startswith(f"{field}: ")
    assert words in str(error.value)
    assert "\n" not in str(error.value)


def test_image_paths_are_normalized_project_relative_paths():
    assert make().image_paths == ()
    config = make(isaac_image_paths=["config/", "./assets/robot.usd", "config", "a/./b"])
    assert config.image_paths == ("config", "assets/robot.usd", "a/b")
    assert make(isaac_image_paths="config, assets").image_paths == ("config", "assets")
    assert make(isaac_image_paths=["."]).image_paths == (".",)  # the whole project


def test_ids_are_those_docker_runs_containers_as():
    """0 (root's, as when the deploy runs as root) up to 2**31-1, the largest uid/gid the Docker
    engine takes; useradd takes more, /etc/login.defs' UID_MAX only bounds ids it picks."""
    assert (make(isaac_uid=0, isaac_gid=0).uid, make(isaac_uid=0, isaac_gid=0).gid) == (0, 0)
    top = make(isaac_uid=2**31 - 1, isaac_gid=str(2**31 - 1))
    assert (top.uid, top.gid) == (2**31 - 1, 2**31 - 1)
    for data in ({"isaac_uid": 2**31}, {"isaac_uid": 0, "isaac_gid": 2**31}):
        with pytest.raises(ConfigError, match="at most 2147483647"):
            make(**data)


def test_a_uid_alone_keeps_the_detected_gid_a_gid_alone_is_refused_with_the_fix():
    assert (make(isaac_uid=2000).uid, make(isaac_uid=2000).gid) == (2000, 1001)
    root = dataclasses.replace(USER, name="root", uid=0, gid=0, home="/root")
    with pytest.raises(ConfigError) as error:
        WorkstationConfig.from_host_data({"isaac_gid": 2000}, root, "/root/ext", named({}))
    assert str(error.value) == (
        "isaac_gid: set isaac_uid too: a gid alone would run the container as uid 0 "
        "without saying so; e.g. isaac_uid=0 isaac_gid=2000"
    )


def test_the_longest_extension_name_still_names_every_file_and_volume():
    """The Compose project ``<extension>-<user>`` prefixes the containers, the volumes
    (folders) and the CLI's files; the longest of these, the SSH agent's compose file while it
    is written, must fit in a file name of 255 bytes."""
    longest = "x" * (255 - 40 - len("-alice"))
    config = make(isaac_extension_name=longest)
    assert len(config.compose_project) == 215
    with pytest.raises(ConfigError) as error:
        make(isaac_extension_name=longest + "x")
    assert str(error.value) == (
        "isaac_extension_name: 210 characters is too long for the user alice: at most 209 "
        "(with the user name it names the Compose project, its containers and volumes, and "
        "files, each at most 255 bytes)"
    )
