"""External mounts on a cluster: which are synced or mount-only, their binds, the tree digest
that decides whether to sync, and the operations' commands."""

from __future__ import annotations

import os

import pytest

from isaac_deploy.facts.cluster import Mirror, MirrorState
from isaac_deploy.model.cluster import ClusterConfig
from isaac_deploy.model.cluster_mounts import ClusterMount, cluster_mounts
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.mounts import MountConfig
from isaac_deploy.operations.mounts import mount_present, mount_synced
from isaac_deploy.probes.mirror import tree_digest
from tests.helpers import run_op

CLUSTER = dict(
    user="u", scheduler="slurm", image_dir="/i", code_dir="/c", cache_dir="/k", logs_dir="/l"
)


def config(**mounts) -> MountConfig:
    import json

    return MountConfig.loads(json.dumps({"mounts": mounts}))


def test_synced_and_mount_only_mounts_with_per_cluster_paths(tmp_path):
    (tmp_path / "lab" / "source").mkdir(parents=True)
    mounts = config(
        isaaclab={
            "container_path": "/workspace/isaaclab",
            "enabled": True,
            "mount_type": "source",
            "local_path": str(tmp_path / "lab"),
            "sync_to_cluster": True,
            "cluster_path": "$SCRATCH/isaaclab",
        },
        rsl_rl={
            "container_path": "/opt/rsl_rl",
            "enabled": True,
            "read_only": True,
            "cluster_path": "~/rsl_rl",
        },
        off={"container_path": "/x", "enabled": False},
    )
    cluster = ClusterConfig.parse("c", {**CLUSTER, "mount_paths": {"rsl_rl": "/shared/rsl_rl"}})
    isaaclab, rsl_rl = cluster_mounts(mounts, cluster, "/home/me")
    assert isaaclab == ClusterMount(
        "isaaclab", "$SCRATCH/isaaclab", "/workspace/isaaclab", "source", str(tmp_path / "lab")
    )
    assert isaaclab.bind("/scratch/me/isaaclab") == (
        "/scratch/me/isaaclab/source:/workspace/isaaclab/source"
    )
    assert rsl_rl.local_path is None and rsl_rl.cluster_path == "/shared/rsl_rl"  # per cluster
    assert rsl_rl.bind("/shared/rsl_rl") == "/shared/rsl_rl:/opt/rsl_rl:ro"


def test_bad_mounts_are_refused_naming_the_mount(tmp_path):
    cluster = ClusterConfig.parse("c", CLUSTER)
    no_path = config(tools={"container_path": "/t", "enabled": True})
    with pytest.raises(ConfigError, match=r"mounts.tools.*no path on cluster c.*mount_paths"):
        cluster_mounts(no_path, cluster, "/home/me")
    gone = config(
        tools={
            "container_path": "/t",
            "enabled": True,
            "sync_to_cluster": True,
            "local_path": str(tmp_path / "gone"),
            "cluster_path": "/c/t",
        }
    )
    with pytest.raises(ConfigError, match=r"mounts.tools.*not a folder on this workstation"):
        cluster_mounts(gone, cluster, "/home/me")
    with pytest.raises(ConfigError, match="apptainer --bind"):
        ClusterMount("t", "/a:b", "/t").bind("/a:b")
    with pytest.raises(ConfigError, match=r"mount_paths\]\[x\]"):
        ClusterConfig.parse("c", {**CLUSTER, "mount_paths": {"x": "relative"}})


def test_tree_digest_sees_changes_but_not_excluded_files(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("a")
    first = tree_digest(str(tmp_path))
    for junk in (".git/HEAD", "pkg/__pycache__/a.pyc", "b.pyc", "logs/x.log"):
        os.makedirs(os.path.dirname(tmp_path / junk), exist_ok=True)
        (tmp_path / junk).write_text("junk")
    assert tree_digest(str(tmp_path)) == first
    (tmp_path / "pkg" / "a.py").write_text("changed")
    assert tree_digest(str(tmp_path)) != first


def test_mirror_fact_runs_here(tmp_path):
    import subprocess

    def state(path):
        command = Mirror().command(str(path), ".isaac-deploy-mirror").get_raw_value()
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
        return Mirror().process(out.stdout.splitlines())

    assert state(tmp_path / "none") == MirrorState("missing")
    assert state(tmp_path) == MirrorState("dir", empty=True)
    (tmp_path / ".isaac-deploy-mirror").write_text("sha256:ab\n")
    assert state(tmp_path) == MirrorState("dir", marker="sha256:ab")
    assert state(tmp_path / ".isaac-deploy-mirror").kind == "file"


def test_sync_only_when_changed_and_never_over_a_foreign_folder():
    args = dict(local="/w/lab/source", remote="/s/lab dir/source", digest="sha256:new")
    key = "marker=.isaac-deploy-mirror, path=/s/lab dir/source"
    commands, _ = run_op(
        mount_synced, {"Mirror": {key: MirrorState("dir", marker="sha256:old")}}, **args
    )
    assert commands[0] == "mkdir -p '/s/lab dir/source'"
    assert "--delete" in commands[1] and "--filter='P /.isaac-deploy-mirror'" in commands[1]
    assert "--exclude=.git/" in commands[1] and "'/s/lab dir/source/'" in commands[1]
    assert commands[2] == "printf '%s\\n' sha256:new > '/s/lab dir/source/.isaac-deploy-mirror'"
    commands, host = run_op(
        mount_synced, {"Mirror": {key: MirrorState("dir", marker="sha256:new")}}, **args
    )
    assert commands == [] and host.noops == ["/s/lab dir/source is up to date"]
    commands, _ = run_op(mount_synced, {"Mirror": {key: MirrorState("dir")}}, **args)  # not ours
    assert len(commands) == 1 and "was not synced by isaac-deploy" in commands[0]
    commands, _ = run_op(mount_synced, {"Mirror": {key: MirrorState("missing")}}, **args)
    assert len(commands) == 3


def test_mount_only_must_exist():
    commands, _ = run_op(
        mount_present,
        {"Mirror": {"marker=.isaac-deploy-mirror, path=/s/x": MirrorState("missing")}},
        path="/s/x",
        mount="x",
    )
    assert "mount x: /s/x is not a folder on the login node" in commands[0]
    commands, host = run_op(
        mount_present,
        {"Mirror": {"marker=.isaac-deploy-mirror, path=/s/x": MirrorState("dir")}},
        path="/s/x",
        mount="x",
    )
    assert commands == [] and host.noops == ["mount x: /s/x is there"]
