"""The cluster model: the example inventory loads; bad values are refused naming the field,
while the inventory loads (before any connection)."""

from __future__ import annotations

import runpy
import subprocess

import pytest

from isaac_deploy.model.cluster import KEY, ClusterConfig, cluster, image_registry
from isaac_deploy.model.errors import ConfigError
from tests.helpers import ROOT
from tests.lab.project import PYINFRA

GOOD = dict(
    user="jdoe",
    scheduler="slurm",
    image_dir="$SCRATCH/img",
    code_dir="/scratch/code",
    cache_dir="~/cache",
    logs_dir="$HOME/logs",
)


def test_example_inventory_has_a_slurm_and_a_pbs_cluster():
    groups = runpy.run_path(str(ROOT / "inventories" / "cluster.py"))
    schedulers = {name: groups[name][1][KEY].scheduler for name in ("euler", "pbs_cluster")}
    assert schedulers == {"euler": "slurm", "pbs_cluster": "pbs"}
    hosts, data = groups["pbs_cluster"]
    assert (
        len(hosts) == 2
        and data["ssh_strict_host_key_checking"] == "yes"
        and data["ssh_user"] == "jdoe"
    )


def test_defaults_and_types():
    config = ClusterConfig.parse(
        "c", {**GOOD, "resources": {"gpus": "2", "walltime": "1-12:00:00"}}
    )
    assert config.resources.gpus == 2 and config.resources.walltime == "1-12:00:00"
    assert config.entry_script == "scripts/rsl_rl/train.py" and config.modules == ()
    assert config.snapshot_retention == 5


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"scheduler": "sge"}, "c: isaac_cluster[scheduler]", "one of 'slurm', 'pbs'"),
        ({"user": None}, "c: isaac_cluster[user]", "is required"),
        ({"user": "Bad User"}, "c: isaac_cluster[user]", "a user name"),
        ({"image_dir": "relative/images"}, "c: isaac_cluster[image_dir]", "absolute"),
        ({"logs_dir": None}, "c: isaac_cluster[logs_dir]", "is required"),
        ({"entry_script": "/abs/train.py"}, "c: isaac_cluster[entry_script]", "relative, no .."),
        ({"entry_script": "../outside.py"}, "c: isaac_cluster[entry_script]", "relative, no .."),
        ({"modules": "cuda"}, "c: isaac_cluster[modules]", "a list"),
        ({"modules": ["cuda; rm -rf /"]}, "c: isaac_cluster[modules][0]", "a module name"),
        ({"resources": {"gpus": "two"}}, "c: isaac_cluster[resources][gpus]", "TYPE:COUNT"),
        ({"resources": {"memory": "lots"}}, "c: isaac_cluster[resources][memory]", "32G"),
        ({"resources": {"walltime": "4h"}}, "c: isaac_cluster[resources][walltime]", "HH:MM:SS"),
        (
            {"resources": {"partition": "gpu;x"}},
            "c: isaac_cluster[resources][partition]",
            "letters",
        ),
        ({"resources": {"mem": "1G"}}, "c: isaac_cluster[resources][mem]", "unknown setting"),
        ({"snapshot_retention": 0}, "c: isaac_cluster[snapshot_retention]", "at least 1"),
        ({"wandb_api_key": "s3cr3t"}, "c: isaac_cluster[wandb_api_key]", "unknown setting"),
        ({"wandb_api_key_file": "key.txt"}, "c: isaac_cluster[wandb_api_key_file]", "absolute"),
    ],
)
def test_bad_values_name_the_field(change, field, words):
    with pytest.raises(ConfigError) as error:
        ClusterConfig.parse("c", {**GOOD, **change})
    assert error.value.field == field and words in str(error.value)


def test_hosts_and_ssh_settings():
    with pytest.raises(ConfigError, match="at least one login node"):
        cluster("c", hosts=[], **GOOD)
    with pytest.raises(ConfigError, match=r"c: ssh\[password\]"):
        cluster("c", hosts=["h"], ssh={"password": "x"}, **GOOD)
    _, data = cluster("c", hosts=["h"], ssh={"port": "2222", "key": "~/.ssh/k"}, **GOOD)
    assert data["ssh_port"] == 2222 and data["ssh_key"] == "~/.ssh/k"


def test_bad_cluster_inventory_stops_pyinfra_before_connecting(tmp_path):
    inventory = tmp_path / "cluster.py"
    inventory.write_text(
        "from isaac_deploy.model.cluster import cluster\n"
        "c = cluster('c', hosts=['203.0.113.7'], user='jdoe', scheduler='sge',\n"
        "            image_dir='/i', code_dir='/c', cache_dir='/k', logs_dir='/l')\n"
    )
    deploy = tmp_path / "noop.py"
    deploy.write_text("")
    result = subprocess.run(
        [str(PYINFRA), "-y", str(inventory), str(deploy)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    out = result.stdout + result.stderr
    assert (
        result.returncode != 0
        and "c: isaac_cluster[scheduler]: must be one of 'slurm', 'pbs'" in out
    )
    assert "Connecting to hosts" not in out  # refused while the inventory loads


def test_cluster_paths_resolve_only_a_leading_home_or_variable():
    from isaac_deploy.model.cluster import path_variables, resolve

    env = {"HOME": "/home/jdoe", "SCRATCH": "/scratch/jdoe/"}
    assert resolve("$SCRATCH/isaac/$(x)", env) == "/scratch/jdoe/isaac/$(x)"
    assert (
        resolve("${SCRATCH}/a b", env) == "/scratch/jdoe/a b"
        and resolve("~/logs", env) == "/home/jdoe/logs"
    )
    assert resolve("/abs/p", env) == "/abs/p" and path_variables("$WORK/x") == ("WORK",)
    with pytest.raises(ConfigError, match=r"\$WORK is not set"):
        resolve("$WORK/x", env, "c: isaac_cluster[code_dir]")


def test_cluster_env_and_snapshot_facts_run_here(tmp_path):
    import os
    import time

    from isaac_deploy.facts.cluster import ClusterEnv, Snapshots

    command = ClusterEnv().command(("SCRATCH", "bad name", "X")).get_raw_value()
    out = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env={"HOME": "/h", "SCRATCH": "/s x"}
    ).stdout
    assert ClusterEnv().process(out.splitlines()) == {"HOME": "/h", "SCRATCH": "/s x", "X": ""}
    # asked in a login shell: what the site's profile sets counts, what it prints does not
    home = tmp_path / "profile" / "home"
    home.mkdir(parents=True)
    (home / ".bash_profile").write_text('echo "HOME=/motd"\nexport SCRATCH=/cluster/scratch/u\n')
    out = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env={"HOME": str(home)}
    )
    assert ClusterEnv().process(out.stdout.splitlines()) == {
        "HOME": str(home),
        "SCRATCH": "/cluster/scratch/u",
        "X": "",
    }
    snapshots = tmp_path / "snapshots"
    for index, name in enumerate(("run-b", "run-a")):
        (snapshots / name).mkdir(parents=True)
        os.utime(snapshots / name, (time.time() - 100 + index, time.time() - 100 + index))
    (snapshots / "file").write_text("")
    command = Snapshots().command(str(snapshots)).get_raw_value()
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout
    assert Snapshots().process(out.splitlines()) == ["run-b", "run-a"]  # oldest first
    empty = subprocess.run(
        ["sh", "-c", Snapshots().command(str(tmp_path / "none")).get_raw_value()],
        capture_output=True,
        text=True,
    )
    assert empty.returncode == 0 and Snapshots().process(empty.stdout.splitlines()) == []


def test_snapshot_digest_and_folder_facts_run_here(tmp_path):
    import os

    from isaac_deploy.facts.cluster import SNAPSHOT_DIGEST, Folders, SnapshotDigest, SnapshotState

    def ask(fact, **kwargs):
        command = fact.command(**kwargs).get_raw_value()
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return fact.process(done.stdout.splitlines())

    code = tmp_path / "code x"
    (code / "made").mkdir(parents=True)
    (code / "made" / SNAPSHOT_DIGEST).write_text("sha256:" + "a" * 64 + "\n")
    (code / "older").mkdir()  # made before snapshots recorded their digest
    for name, expected in (
        ("made", SnapshotState(True, "sha256:" + "a" * 64)),
        ("older", SnapshotState(True, None)),
        ("none", SnapshotState()),
    ):
        assert ask(SnapshotDigest(), folder=str(code), snapshot=name) == expected
    assert (
        ask(SnapshotDigest(), folder=str(tmp_path / "nowhere"), snapshot="made") == SnapshotState()
    )
    os.utime(code / "older", (1000, 1000))
    assert ask(Folders(), folder=str(code)) == [
        ("older", 1000),
        ("made", int((code / "made").stat().st_mtime)),
    ]
    assert ask(Folders(), folder=str(tmp_path / "nowhere")) == []


def test_image_registry_must_be_one_of_the_registries():
    registries = {"lab": {"address": "r.example.org:5000", "prefix": "team"}}
    hosts, data = cluster("c", ["login"], registries=registries, image_registry="lab", **GOOD)
    assert image_registry(data[KEY], data).repository("img") == "r.example.org:5000/team/img"
    with pytest.raises(ConfigError, match=r"c: isaac_cluster\[image_registry\].*known: lab"):
        cluster("c", ["login"], registries=registries, image_registry="other", **GOOD)
    with pytest.raises(ConfigError, match=r"isaac_registries\[lab\]\[password\]"):
        cluster(
            "c",
            ["login"],
            registries={"lab": {"address": "r:1", "password": "x"}},
            image_registry="lab",
            **GOOD,
        )
    hosts, data = cluster("c", ["login"], **GOOD)
    assert image_registry(data[KEY], data) is None and "isaac_registries" not in data


def test_example_inventory_pbs_cluster_builds_from_the_registry():
    groups = runpy.run_path(str(ROOT / "inventories" / "cluster.py"))
    hosts, data = groups["pbs_cluster"]
    assert image_registry(data[KEY], data).name == "lab"
    assert image_registry(groups["euler"][1][KEY], groups["euler"][1]) is None


def test_login_nodes_use_the_openssh_connector_with_host_keys_checked():
    from isaac_deploy.model.ssh import ssh_options

    hosts, data = cluster("c", ["login1.example.org", "@local"], ssh={"port": 2222}, **GOOD)
    assert hosts == ["@openssh/login1.example.org", "@local"]
    options = ssh_options({**data, "ssh_key": "~/k", "ssh_known_hosts_file": "/kh"})
    assert options[options.index("-p") + 1] == "2222" and "StrictHostKeyChecking=yes" in options
    assert "BatchMode=yes" in options and "UserKnownHostsFile=/kh" in options
    assert options[options.index("-l") + 1] == "jdoe" and options[-1].endswith("/k")


def test_example_inventories_share_one_registry_definition_and_debug_inventory_works():
    import json

    clusters = runpy.run_path(str(ROOT / "inventories" / "cluster.py"))
    registries = runpy.run_path(str(ROOT / "inventories" / "registries.py"))
    assert clusters["REGISTRIES"] == registries["local"][0][1]["isaac_registries"]
    hosts, data = clusters["pbs_cluster"]
    assert json.loads(json.dumps(data[KEY].to_json()))["image_registry"] == "lab"


def test_the_jobs_apptainer_runtime_settings():
    """Safe defaults (--containall, a writable layer, no staging, `apptainer` from PATH); a
    name or a cluster path for apptainer; yes/no values strictly; each refusal names the key."""
    config = ClusterConfig.parse("c", GOOD)
    assert (config.apptainer, config.containall, config.writable_tmpfs, config.stage_image) == (
        "apptainer",
        True,
        True,
        False,
    )
    chosen = ClusterConfig.parse(
        "c",
        {
            **GOOD,
            "apptainer": "$APPS/apptainer/1.3.4/bin/apptainer",
            "containall": "no",
            "writable_tmpfs": False,
            "stage_image": "yes",
        },
    )
    assert chosen.apptainer == "$APPS/apptainer/1.3.4/bin/apptainer"
    assert (chosen.containall, chosen.writable_tmpfs, chosen.stage_image) == (False, False, True)
    assert ClusterConfig.parse("c", {**GOOD, "apptainer": "singularity"}).apptainer == "singularity"
    for change, field, words in (
        ({"apptainer": "apptainer; rm -rf ~"}, "apptainer", "a command name or the path"),
        ({"apptainer": "bin/apptainer"}, "apptainer", "a command name or the path"),
        ({"apptainer": "/opt/a\nb"}, "apptainer", "newlines"),
        ({"containall": "maybe"}, "containall", "true or false"),
        ({"stage_image": 2}, "stage_image", "true or false"),
    ):
        with pytest.raises(ConfigError) as error:
            ClusterConfig.parse("c", {**GOOD, **change})
        assert error.value.field == f"c: isaac_cluster[{field}]" and words in str(error.value)


def test_logs_tree_fact_runs_here(tmp_path):
    """The run folders each job recorded in the tree's bookkeeping, by run key and job id;
    files that are not records are left out; no tree is no error."""
    from isaac_deploy.facts.cluster import LogsTree, TreeState

    book = tmp_path / "tree" / "isaac-deploy"
    (book / "k1").mkdir(parents=True)
    (book / "k2").mkdir()
    (book / "k1" / "runs-12.txt").write_text("rsl_rl/e/2026_a\nrsl_rl/e/it's b\n")
    (book / "k1" / "job-12.out").write_text("runs-99.txt\n")
    (book / "k2" / "runs-13.server.txt").write_text("")

    def fact(tree):
        command = LogsTree().command(str(tree)).get_raw_value()
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        assert done.returncode == 0
        return LogsTree().process(done.stdout.splitlines())

    assert fact(tmp_path / "tree") == TreeState(
        True, {"k1": {"12": ("rsl_rl/e/2026_a", "rsl_rl/e/it's b")}, "k2": {"13.server": ()}}
    )
    assert fact(tmp_path / "none") == TreeState(False, {})
