"""CLI pieces without Docker: project discovery, env-file reading, options -> docker argv."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from urllib.parse import unquote

import pytest

from isaac_deploy.cli import containers
from isaac_deploy.cli.main import main, parser, service_of
from isaac_deploy.cli.project import (
    Layout,
    ProjectError,
    find_layout,
    inventory_data,
    load,
    read_env_file,
)
from isaac_deploy.facts.images import parse_build_inputs
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.images import INPUTS_LABEL, image_build
from isaac_deploy.operations import docker as docker_ops
from isaac_deploy.probes import build_inputs as build_inputs_probe
from isaac_deploy.render.templates import env_quote
from tests.helpers import fact_args, run_op
from tests.unit.test_envfiles import HOSTILE
from tests.unit.test_operations import build_parts


def make_root(tmp_path: Path, data: dict | None = None, name: str = "ext_template") -> Path:
    """An extension project adopted by ``isaac-deploy init``, holding the extension ``name``
    (its ``local`` inventory holding ``data``, none when ``None``)."""
    (tmp_path / "source" / name / "pkg").mkdir(parents=True)
    (tmp_path / "source" / name / "config").mkdir()
    (tmp_path / "source" / name / "config" / "extension.toml").write_text(
        '[package]\nversion = "0.1.0"\n'
    )
    (tmp_path / "docker").mkdir()
    inventories(tmp_path).mkdir(parents=True)
    if data is not None:
        (inventories(tmp_path) / "local.py").write_text(f"local = [('@local', {data!r})]\n")
    return tmp_path


def inventories(root: Path) -> Path:
    return root / ".isaac-deploy" / "inventories"


def rendered_ids(root: Path, uid: int, gid: int) -> None:
    """The dev env file as the deploy renders it, with these ids."""
    (root / ".isaac-deploy" / "state").mkdir(parents=True)
    path = root / ".isaac-deploy" / "state" / "ext_template-dev.env"
    path.write_text(f"HOST_UID='{uid}'\nHOST_GID='{gid}'\n")


def test_env_file_reader_reads_what_the_deploy_writes(tmp_path):
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n" + "".join(f"V{i}={env_quote(v)}\n" for i, v in enumerate(HOSTILE))
    )
    assert read_env_file(path) == {f"V{i}": v for i, v in enumerate(HOSTILE)}
    assert read_env_file(tmp_path / "missing") == {}


def test_root_is_found_from_any_folder_inside(tmp_path):
    root = make_root(tmp_path, {"isaac_profiles": ("ext",), "isaac_uid": 2000})
    assert find_layout(root / "source" / "ext_template" / "pkg") == Layout(
        root, root / ".isaac-deploy"
    )
    with pytest.raises(ProjectError, match="no extension project here"):
        find_layout(Path("/"))
    assert inventory_data(find_layout(root)) == {"isaac_profiles": ("ext",), "isaac_uid": 2000}
    project = load(root / "source")
    assert project.config.uid == 2000 and project.config.gid == os.getgid()
    assert project.env_file("ext-dev-rootless").name == "ext_template-dev.env"
    assert project.container("ext-dev") == f"{project.config.compose_project}-ext-dev"


def test_compose_without_env_file_says_to_deploy(tmp_path):
    project = load(make_root(tmp_path))
    with pytest.raises(ProjectError, match="run the workstation deploy first"):
        project.compose("ext-dev", "up")


def test_services_from_profile_and_rootless(tmp_path):
    project = load(make_root(tmp_path, {"isaac_profiles": ("ext", "ext-dev")}))
    ns = argparse.Namespace
    assert service_of(ns(profile=None, cmd="run", rootless=False), project) == "ext-dev"
    assert service_of(ns(profile="ext", cmd="run", rootless=False), project) == "ext"
    assert service_of(ns(profile=None, cmd="run", rootless=True), project) == "ext-dev-rootless"
    assert service_of(ns(profile="ext", cmd="run-dev", rootless=False), project) == "ext-dev"


def test_exec_goes_through_the_entrypoint_with_arguments_untouched(tmp_path, monkeypatch):
    project = load(make_root(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("DISPLAY", ":3")
    options = containers.RunOptions(user="2000:2000")
    argv = containers.exec_argv(project, "c1", ["python", "-c", "x; y", "$(z)"], options)
    assert (
        argv[:3] == ["docker", "exec", "--interactive"] and "--tty" not in argv
    )  # no terminal here
    assert argv[argv.index("--user") + 1] == "2000:2000"
    assert "DISPLAY=:3" in argv and not [a for a in argv if a.startswith("SSH_AUTH_SOCK")]
    assert argv[-5:] == [containers.ENTRYPOINT, "python", "-c", "x; y", "$(z)"]
    assert containers.exec_argv(project, "c1", [], containers.RunOptions())[-1] == "bash"


def test_unknown_flags_only_for_build(capsys):
    with pytest.raises(SystemExit):
        main(["ps", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    args, unknown = parser().parse_known_args(["-p", "ext", "build", "--no-cache"])
    assert args.cmd == "build" and unknown == ["--no-cache"]


def test_errors_are_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir("/")
    assert main(["ps"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("isaac-deploy: error: no extension project here") and "\n" not in err


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (
            ["-g", "2000"],
            "--gid: set --uid too: a gid alone would run the container as uid 2000 "
            "without saying so; e.g. --uid=2000 --gid=2000",
        ),
        (["-u", "99999999999"], "--uid: must be at most 2147483647, got 99999999999"),
        (["--uid", "2000", "--gid", "-1"], "--gid: must be at least 0, got -1"),
    ],
)
def test_run_ids_are_checked_as_the_deploys_before_anything_runs(
    tmp_path, monkeypatch, capsys, flags, error
):
    root = make_root(tmp_path, {})
    rendered_ids(root, 2000, 2001)
    monkeypatch.chdir(root)
    ran = []
    monkeypatch.setattr(containers, "run", lambda *args: ran.append(args) or 0)
    monkeypatch.setattr(containers, "exec_in", lambda *args: ran.append(args) or 0)
    for command in ("run-dev", "run", "exec"):
        assert main([command, *flags, "id", "-u"]) == 1
        assert capsys.readouterr().err == f"isaac-deploy: error: {error}\n"
    assert ran == []
    assert main(["run-dev", "-u", "2000", "id"]) == 0 and main(["run", "-u", "0", "-g", "0"]) == 0
    assert [options.user for *_, options in ran] == ["2000:2001", "0:0"]


def test_rendered_uid_gid_win_so_the_cli_matches_the_image(tmp_path):
    root = make_root(tmp_path, {})
    rendered_ids(root, 2000, 2001)
    config = load(root).config
    assert (config.uid, config.gid) == (2000, 2001)


def test_cluster_commands_pass_arguments_as_one_json_list(tmp_path):
    import json

    from isaac_deploy.cli.cluster_commands import pyinfra_argv
    from isaac_deploy.cli.main import parser
    from isaac_deploy.model.errors import ConfigError, IsaacDeployError

    root = make_root(tmp_path)
    (inventories(root) / "cluster.py").write_text("")
    layout = find_layout(root)
    hostile = ["--task", "X", "a b", "it's", "$(touch /tmp/x)", ";", "*", "ü", "true", "12"]
    args = parser().parse_args(
        ["cluster", "submit", "--run-key", "123", "--limit", "euler", "--", *hostile]
    )
    argv = pyinfra_argv(args, layout)
    assert argv[1:8] == ["-m", "pyinfra", "-y", "--limit", "euler", "--limit", "@local"]
    assert argv[-2:] == [
        str(inventories(root) / "cluster.py"),
        str(root / ".isaac-deploy" / "deploy" / "cluster.py"),
    ]
    data = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--data")
    # pyinfra's --data reads a value as JSON (after true/false and integers, which a JSON list
    # or a JSON string never is): the exact list, and the run key as a string, not 123
    assert json.loads(data["isaac_job_args"]) == hostile
    assert data["isaac_run_key"] == '"123"' and json.loads(data["isaac_run_key"]) == "123"
    jobs = pyinfra_argv(
        parser().parse_args(["cluster", "jobs", "--cancel", "r-1", "--dry"]), layout
    )
    assert "--dry" in jobs and "-y" not in jobs and "isaac_cancel=" + json.dumps("r-1") in jobs
    sync = pyinfra_argv(parser().parse_args(["cluster", "sync", "--remove", "--to", "out"]), layout)
    assert "isaac_remove=true" in sync and any(a.startswith("isaac_results_dir=") for a in sync)
    with pytest.raises(ConfigError, match="run key"):
        pyinfra_argv(parser().parse_args(["cluster", "jobs", "--cancel", "../x"]), layout)
    with pytest.raises(IsaacDeployError, match="no cluster inventory"):
        pyinfra_argv(parser().parse_args(["cluster", "jobs", "-i", "nope.py"]), layout)


def test_cluster_submit_takes_this_submissions_time_gpus_and_partition(tmp_path):
    """--time/--gpus/--partition reach the roll-out as one JSON object (isaac_job_resources),
    checked before pyinfra starts; none given: nothing is passed."""
    from isaac_deploy.cli.cluster_commands import pyinfra_argv
    from isaac_deploy.cli.main import parser
    from isaac_deploy.model.errors import ConfigError

    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories" / "cluster.py").write_text("")
    layout = Layout(tmp_path, tmp_path)
    flags = ["--time", "00:30:00", "--gpus", "rtx_4090:2", "--partition", "debug", "--dry"]
    argv = pyinfra_argv(parser().parse_args(["cluster", "submit", *flags, "--", "-x"]), layout)
    data = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--data")
    assert json.loads(data["isaac_job_resources"]) == {
        "walltime": "00:30:00",
        "gpus": "rtx_4090:2",
        "partition": "debug",
    }
    assert "--dry" in argv and json.loads(data["isaac_job_args"]) == ["-x"]
    plain = pyinfra_argv(parser().parse_args(["cluster", "submit", "--gpus", "1"]), layout)
    assert "isaac_job_resources=" + json.dumps({"gpus": "1"}) in plain
    none = pyinfra_argv(parser().parse_args(["cluster", "submit"]), layout)
    assert not [a for a in none if a.startswith("isaac_job_resources=")]
    with pytest.raises(ConfigError, match=r"isaac_job_resources\[walltime\]: .*HH:MM:SS"):
        pyinfra_argv(parser().parse_args(["cluster", "submit", "--time", "2h"]), layout)


class FakeEngine:
    """The engine's answers: ``images`` exist (by ref, with their ``labels``), every other
    image is missing."""

    def __init__(self, images: dict[str, str], labels: dict[str, dict] | None = None) -> None:
        self.images = images
        self.labels = labels or {}

    def get(self, url: str):
        ref = unquote(url.removeprefix("/images/").removesuffix("/json"))
        if ref in self.images:
            return 200, {"Id": self.images[ref], "Config": {"Labels": self.labels.get(ref, {})}}
        return 404, {"message": f"No such image: {ref}"}

    def get_many(self, urls):
        return {url: self.get(url) for url in urls}


def test_build_streams_and_labels_the_image_as_the_deploy_does(tmp_path, monkeypatch):
    """``isaac-deploy build`` and the deploy's operation (fed by the real probe) stream the same
    context (the user's include paths too) into the same ``docker build`` argv with the same
    inputs label, which follows the selected files only."""
    data = {"isaac_profiles": ("ext", "ext-dev"), "isaac_image_paths": ["config"]}
    root = make_root(tmp_path, data)
    for rel in ("source/ext_template/pkg/tasks.py", "config/robot.yaml", "README.md"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("1\n")
    project = load(root)
    spec = image_build(project.config, "ext-dev")
    engine = FakeEngine({spec.base_image: "sha256:" + "b" * 64})
    monkeypatch.setattr(containers, "docker_client", lambda: engine)
    monkeypatch.setattr(build_inputs_probe, "docker_client", lambda: engine)
    builds = []
    monkeypatch.setattr(
        containers.build_context, "build", lambda context, argv: builds.append((context, argv)) or 0
    )

    def cli() -> tuple[dict, list[str]]:
        assert containers.build(project, "ext-dev", []) == 0
        return builds.pop()

    def deploy() -> tuple[dict, list[str]]:
        refs = [spec.image, spec.base_image]
        state = build_inputs_probe.build_inputs(str(root), refs, ["config"])
        fact = parse_build_inputs(json.dumps(state))
        key = fact_args({"context": str(root), "images": refs, "include": ["config"]})
        [command], _ = run_op(
            docker_ops.images,
            {"ImageBuildInputs": {key: fact}},
            context=str(root),
            builds=[spec],
            include=("config",),
        )
        _, context, argv, _ = build_parts(command)
        return context, argv

    def label(argv: list[str]) -> str:
        return argv[argv.index("--label") + 1]

    first = cli()
    assert first == deploy() and first[0]["include"] == ["config"]
    assert label(first[1]).startswith(f"{INPUTS_LABEL}=sha256:") and first[1][-1] == "-"
    (root / "README.md").write_text("2\n")  # not selected: the same inputs
    assert label(cli()[1]) == label(first[1])
    (root / "config" / "robot.yaml").write_text("2\n")
    second = cli()
    assert label(second[1]) != label(first[1]) and second == deploy()


def test_the_longest_extension_name_fits_the_ssh_agents_compose_file(tmp_path, monkeypatch):
    """The longest file the CLI names after the Compose project, while it is being written."""
    for name in ("ext", "long", "ext2"):
        (tmp_path / name).mkdir()
    slug = load(make_root(tmp_path / "ext")).config.user_slug
    longest = "x" * (255 - len(".-runtime.yaml.12345678.isaac-deploy.tmp") - len(f"-{slug}"))
    project = load(make_root(tmp_path / "long", {"isaac_extension_name": longest}, longest))
    (tmp_path / "agent").write_text("")
    (tmp_path / "session").mkdir()
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "session"))
    written = containers.runtime_override(project)
    assert written is not None and str(tmp_path / "agent") in written.read_text()
    with pytest.raises(ConfigError, match="isaac_extension_name: .* too long"):
        load(make_root(tmp_path / "ext2", {"isaac_extension_name": longest + "x"}, longest + "x"))


def test_a_failed_build_removes_its_dangling_layers_and_keeps_its_exit_code(tmp_path, monkeypatch):
    root = make_root(tmp_path, {})
    project = load(root)
    spec = image_build(project.config, "ext-dev")
    engine = FakeEngine({spec.base_image: "sha256:" + "b" * 64})
    monkeypatch.setattr(build_inputs_probe, "docker_client", lambda: engine)
    builds, calls = [], []
    monkeypatch.setattr(containers.build_context, "build", lambda _, argv: builds.append(argv) or 3)
    monkeypatch.setattr(containers, "call", lambda argv, **_: calls.append(argv) or 0)
    assert containers.build(project, "ext-dev", ["--no-cache"]) == 3
    [build] = builds
    assert build[:4] == ["docker", "build", "--pull=false", "--force-rm"] and "--no-cache" in build
    assert build[build.index("--build-arg") + 1] == f"ISAAC_IMAGE={spec.image}"
    assert calls == [
        [
            "docker",
            "image",
            "prune",
            "--force",
            "--filter",
            f"label=org.isaac-deploy.image={spec.image}",
        ]
    ]
