"""Hand-edit detection for rendered files, and the .mount.config model + override."""

from __future__ import annotations

import json

import pytest
import yaml

from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.mounts import MountConfig, required_paths, validate, volumes
from isaac_deploy.render.compose_override import override_yaml
from isaac_deploy.render.managed import Decision, decide, file_state, stamp


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_stamped_file_is_pristine_until_edited():
    text = stamp("A='1'\n# comment\nB='2'\n")
    assert text.endswith("\n") and "isaac-deploy-checksum: sha256:" in text.splitlines()[-1]
    assert file_state(lines(text)) == "pristine"
    assert file_state(lines(text.replace("B='2'", "B='3'"))) == "edited"
    assert file_state(lines(text) + ["C='added'"]) == "edited"
    assert file_state(["A='1'"]) == "edited"  # no checksum: written by hand or by the seed
    assert file_state(None) == "absent"


def test_trailing_blank_lines_do_not_count_as_edits():
    assert file_state(lines(stamp("A='1'")) + [""]) == "pristine"


@pytest.mark.parametrize("overwrite", [False, True])
def test_decision_for_absent_pristine_and_identical_files(overwrite):
    new = stamp("A='2'\n")
    assert decide(None, "A='2'\n", overwrite) == Decision("write", new, "absent")
    assert decide(lines(stamp("A='1'\n")), "A='2'\n", overwrite) == Decision(
        "write", new, "pristine"
    )
    assert decide(lines(new), "A='2'\n", overwrite) == Decision("up-to-date", new, "pristine")
    # a trailing blank line is no edit, but the file is not exactly what the deploy writes
    assert decide(lines(new) + [""], "A='2'\n", overwrite).action == "write"


def test_decision_for_an_edited_file_keeps_it_unless_told():
    new = stamp("A='2'\n")
    for edited in (lines(stamp("A='1'\n").replace("A='1'", "A='mine'")), ["MY='own'"], []):
        assert decide(edited, "A='2'\n") == Decision("keep-edited", new, "edited")
        assert decide(edited, "A='2'\n", overwrite_edited=True) == Decision(
            "replace-edited", new, "edited"
        )


ISAACLAB = {
    "enabled": True,
    "local_path": "~/IsaacLab",
    "container_path": "/workspace/isaaclab",
    "mount_type": "source",
}


def config(**mounts) -> MountConfig:
    return MountConfig.loads(json.dumps({"mounts": mounts}))


def test_no_mount_config_means_no_external_mounts():
    for text in (None, "", "  \n"):
        mounts = MountConfig.loads(text)
        assert set(mounts.mounts) == {"isaaclab", "rsl_rl"}
        assert mounts.enabled() == {} and volumes(mounts, "/home/a") == []


def test_round_trip_and_user_named_mounts():
    mounts = config(
        isaaclab=ISAACLAB,
        assets={
            "enabled": True,
            "local_path": "/data/assets",
            "container_path": "/assets",
            "read_only": True,
            "sync_to_cluster": True,
            "cluster_path": "$SCRATCH/assets",
        },
    )
    again = MountConfig.loads(mounts.dumps())
    assert again == mounts
    assert volumes(mounts, "/home/a") == [
        {"type": "bind", "source": "/data/assets", "target": "/assets", "read_only": True},
        {
            "type": "bind",
            "source": "/home/a/IsaacLab/source",
            "target": "/workspace/isaaclab/source",
            "read_only": False,
        },
    ]


def test_validation_like_the_seed():
    kinds = {"/home/a/IsaacLab": "dir", "/home/a/IsaacLab/source": "dir"}
    good = config(isaaclab=ISAACLAB)
    assert required_paths(good, "/home/a") == ["/home/a/IsaacLab", "/home/a/IsaacLab/source"]
    validate(good, lambda p: kinds.get(p, "missing"), "/home/a")

    with pytest.raises(ConfigError, match="has no source/ folder"):
        validate(good, lambda p: "dir" if p == "/home/a/IsaacLab" else "missing", "/home/a")
    with pytest.raises(ConfigError, match="is not a directory"):
        validate(good, lambda p: "missing", "/home/a")
    rsl = config(
        rsl_rl={"enabled": True, "local_path": "/src/rsl_rl", "container_path": "/opt/rsl_rl"}
    )
    with pytest.raises(ConfigError, match="no __init__.py") as error:
        validate(rsl, lambda p: "dir", "/home/a")
    assert "mounts.rsl_rl" in str(error.value)
    validate(rsl, lambda p: "file" if p.endswith("__init__.py") else "dir", "/home/a")
    with pytest.raises(ConfigError, match="no local_path"):
        validate(config(isaaclab={**ISAACLAB, "local_path": ""}), lambda p: "dir", "/home/a")
    with pytest.raises(ConfigError, match="must be absolute"):
        validate(config(isaaclab={**ISAACLAB, "local_path": "rel"}), lambda p: "dir", "/home/a")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"mounts": {"bad name": {"container_path": "/x"}}}', "not a valid mount name"),
        ('{"mounts": {"x": {"container_path": "relative"}}}', "must be an absolute path"),
        (
            '{"mounts": {"x": {"container_path": "/x", "mount_type": "weird"}}}',
            "one of 'full', 'source'",
        ),
        ('{"mounts": {"x": {"container_path": "/x", "typo": 1}}}', "unknown setting"),
    ],
)
def test_bad_mount_config_is_one_clear_error(text, words):
    with pytest.raises(ConfigError) as error:
        MountConfig.loads(text)
    assert str(error.value).startswith(".mount.config") and words in str(error.value)


def test_override_for_cpu_only_host_resets_gpu_reservations():
    text = override_yaml(
        config(isaaclab=ISAACLAB),
        "/home/a",
        gpu=False,
        secret_files={"wandb_api_key": "/home/a/.config/k"},
    )
    assert "!reset" in text and "&id" not in text
    data = yaml.load(text, Loader=_ResetLoader)
    assert set(data["services"]) == {"ext", "ext-dev", "ext-dev-rootless"}
    for service in data["services"].values():
        assert service["deploy"] == "RESET"
        assert service["volumes"][0]["target"] == "/workspace/isaaclab/source"
        assert service["secrets"] == ["wandb_api_key"]
    assert data["secrets"] == {"wandb_api_key": {"file": "/home/a/.config/k"}}


def test_override_for_gpu_host_without_mounts_is_minimal():
    data = yaml.safe_load(override_yaml(MountConfig.loads(None), "/home/a", gpu=True))
    assert data == {"services": {"ext": {}, "ext-dev": {}, "ext-dev-rootless": {}}}


class _ResetLoader(yaml.SafeLoader):
    pass


_ResetLoader.add_constructor("!reset", lambda loader, node: "RESET")


def test_x11_socket_folder_goes_to_the_dev_containers_only():
    data = yaml.safe_load(override_yaml(MountConfig.loads(None), "/home/a", gpu=True, x11=True))
    x11 = {
        "type": "bind",
        "source": "/tmp/.X11-unix",
        "target": "/tmp/.X11-unix",
        "read_only": False,
    }
    assert data["services"]["ext-dev"]["volumes"] == [x11]
    assert data["services"]["ext-dev-rootless"]["volumes"] == [x11]
    assert "volumes" not in data["services"]["ext"]
