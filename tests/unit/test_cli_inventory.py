"""The CLI reads inventories with pyinfra's own loader, in a child process: group data, the
``group_data/`` folders and ``--data`` overrides merge as for a deploy run, and pyinfra_cli's
gevent monkey-patching never reaches this process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from isaac_deploy.cli.cluster_commands import pyinfra_argv
from isaac_deploy.cli.cluster_doctor import cluster_checks, clusters
from isaac_deploy.cli.inventory import InventoryError, hosts_data
from isaac_deploy.cli.main import main, parser
from isaac_deploy.cli.project import Layout, find_layout, inventory_data, load
from isaac_deploy.model.cluster import ClusterConfig
from isaac_deploy.model.ssh import ssh_options
from tests.unit.test_cli_units import inventories, make_root, rendered_ids

LOCAL = """
workstations = (
    [("@local", {"isaac_uid": 2000, "who": "host"})],
    {"who": "group", "inline": "group", "group_only": "group", "shared": "group"},
)
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_host_data_is_merged_by_pyinfra_with_group_data_and_overrides(tmp_path):
    root = make_root(tmp_path, {})
    write(inventories(root) / "local.py", LOCAL)
    # group_data/ next to the inventory and in the folder the deploy runs in (the project)
    write(inventories(root) / "group_data" / "workstations.py", 'inline = "file"\n')
    write(inventories(root) / "group_data" / "local.py", 'by_file_name = "local"\n')
    write(root / "group_data" / "all.py", 'all_only = "all"\nshared = "all"\n')
    overrides = ["who=override", "n=12", "flag=true", 'items=["a", 1]', "text=a=b"]

    data = inventory_data(find_layout(root), overrides)

    assert data == {
        "who": "override",  # --data beats the host's data, which beats its groups'
        "isaac_uid": 2000,
        "inline": "file",  # a group's data file extends and overrides its inline data
        "group_only": "group",
        "shared": "group",  # a group beats the all group
        "by_file_name": "local",  # every host is in the group named after the file
        "all_only": "all",
        "n": 12,  # --data values are read by pyinfra's rules
        "flag": True,
        "items": ["a", 1],
        "text": "a=b",
    }
    assert "pyinfra_cli" not in sys.modules  # the loader ran in a child process


def test_no_inventory_file_is_pyinfra_at_local(tmp_path):
    root = make_root(tmp_path)
    assert inventory_data(find_layout(root)) == {}
    write(root / "group_data" / "all.py", "isaac_uid = 2000\n")
    assert inventory_data(find_layout(root), ["isaac_gid=2001"]) == {
        "isaac_uid": 2000,
        "isaac_gid": 2001,
    }


def test_overrides_reach_the_config_but_the_rendered_uid_gid_win(tmp_path):
    root = make_root(tmp_path, {"isaac_uid": 2000})
    config = load(root, ["isaac_uid=3000", 'isaac_profiles=["ext"]']).config
    assert config.uid == 3000 and config.profiles == ("ext",)
    rendered_ids(root, 2000, 2001)
    config = load(root, ["isaac_uid=3000"]).config
    assert (config.uid, config.gid) == (2000, 2001)


def test_a_broken_inventory_is_one_error_naming_the_line(tmp_path):
    inventory = write(tmp_path / "local.py", "x = 1\nlocal = [('@local', {'a': y})]\n")
    with pytest.raises(InventoryError) as error:
        hosts_data(str(inventory), tmp_path)
    assert str(error.value) == f"{inventory}, line 2: NameError: name 'y' is not defined"
    write(tmp_path / "printing.py", "print('noise')\nlocal = ['@local']\n")
    assert hosts_data(str(tmp_path / "printing.py"), tmp_path) == {"@local": {}}


CLUSTER = """
from isaac_deploy.model.cluster import cluster

workstation = [("@local", {})]
euler = cluster(
    "euler", hosts=["login.euler.example.org"], user="jdoe", scheduler="slurm",
    image_dir="/i", code_dir="/c", cache_dir="/k", logs_dir="/l",
)
"""


def test_cluster_doctor_sees_each_login_node_with_its_merged_data(tmp_path):
    inventory = write(tmp_path / "inventories" / "cluster.py", CLUSTER)
    write(tmp_path / "group_data" / "euler.py", "ssh_port = 2222\n")
    found = clusters(inventory, tmp_path, ["ssh_user=other"])
    assert [(name, host) for name, host, _ in found] == [
        ("euler", "@openssh/login.euler.example.org")
    ]
    data = found[0][2]
    assert isinstance(data["isaac_cluster"], ClusterConfig) and data["isaac_cluster"].user == "jdoe"
    options = ssh_options(data)
    assert (
        options[options.index("-p") + 1] == "2222" and options[options.index("-l") + 1] == "other"
    )
    [check] = cluster_checks(Layout(tmp_path, tmp_path))
    assert check.status == "SKIPPED" and "login.euler.example.org" in check.name


def test_cluster_doctor_reports_a_broken_cluster_inventory(tmp_path):
    write(tmp_path / "inventories" / "cluster.py", CLUSTER.replace('"slurm"', '"lsf"'))
    [check] = cluster_checks(Layout(tmp_path, tmp_path))
    assert check.status == "FAIL" and check.name == "Cluster inventory"
    assert check.message.startswith("euler: isaac_cluster[scheduler]: must be one of")
    write(tmp_path / "inventories" / "cluster.py", CLUSTER.replace("hosts=", "hostz="))
    [check] = cluster_checks(Layout(tmp_path, tmp_path))
    assert check.status == "FAIL" and check.message == (
        f"{tmp_path / 'inventories' / 'cluster.py'}, line 5: TypeError: "
        "cluster() missing 1 required positional argument: 'hosts'"
    )


def test_global_data_option_is_pyinfras_and_reaches_the_cluster_runs(tmp_path, capsys):
    args = parser().parse_args(
        ["--data", "isaac_run_key=mine", "--data", "x=1", "cluster", "submit", "--run-key", "r1"]
    )
    assert args.data == ["isaac_run_key=mine", "x=1"]
    write(tmp_path / "inventories" / "cluster.py", "")
    argv = pyinfra_argv(args, Layout(tmp_path, tmp_path))
    items = [argv[i + 1] for i, a in enumerate(argv) if a == "--data"]
    # the user's first: pyinfra keeps the last value of a key, the command's own
    assert items.index("isaac_run_key=mine") < items.index('isaac_run_key="r1"')
    assert "x=1" in items
    with pytest.raises(SystemExit):
        main(["--data", "novalue", "ps"])
    assert "'novalue' is not KEY=VALUE" in capsys.readouterr().err
