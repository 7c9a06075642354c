"""Several stacks of one project side by side (``--suffix NAME``): names, validation, and the
commands that reach one stack."""

from __future__ import annotations

import pytest

from isaac_deploy.cli import containers
from isaac_deploy.cli.main import STACK_COMMANDS, main
from isaac_deploy.cli.project import load
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.workstation import PROJECT_NAME_MAX, stack_project
from tests.unit.test_cli_units import make_root, rendered_ids
from tests.unit.test_config import make


def test_the_default_stack_keeps_its_names():
    config = make()
    assert stack_project(config, None) == stack_project(config, "") == "ext-template-alice"


def test_a_suffix_names_a_project_of_its_own():
    config = make()
    assert stack_project(config, "exp2") == "ext-template-alice-exp2"
    assert stack_project(config, "a_b-3") == "ext-template-alice-a_b-3"


@pytest.mark.parametrize("suffix", ["Exp", "-a", "_a", "a b", "a/b", "a.b", "ü", "a;rm", "a\nb"])
def test_a_suffix_compose_would_refuse_is_one_line_naming_the_flag(suffix):
    with pytest.raises(ConfigError) as error:
        stack_project(make(), suffix)
    message = str(error.value)
    assert message.startswith(f"--suffix: {suffix!r} is not a valid stack name: use lowercase")
    assert "\n" not in message.replace(repr(suffix), "")


def test_the_longest_suffix_still_names_every_file_and_volume():
    config = make()
    room = PROJECT_NAME_MAX - len(config.compose_project) - 1
    assert len(stack_project(config, "x" * room)) == PROJECT_NAME_MAX
    with pytest.raises(
        ConfigError, match=f"--suffix: {room + 1} characters is too long: at most {room}"
    ):
        stack_project(config, "x" * (room + 1))


def test_containers_compose_and_runtime_file_follow_the_stack(tmp_path, monkeypatch):
    root = make_root(tmp_path, {})
    rendered_ids(root, 1000, 1000)
    default, stack = load(root), load(root, suffix="exp2")
    assert default.container("ext-dev") == f"{default.config.compose_project}-ext-dev"
    assert stack.container("ext-dev") == f"{default.config.compose_project}-exp2-ext-dev"
    assert "--project-name" not in default.compose("ext-dev", "down")  # unchanged argv
    argv = stack.compose("ext-dev", "down", "--volumes")
    assert argv[argv.index("--project-name") + 1] == stack.compose_project
    assert argv[-2:] == ["down", "--volumes"]
    (tmp_path / "agent").write_text("")
    (tmp_path / "session").mkdir()
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "session"))
    assert containers.runtime_override(stack).name == f"{stack.compose_project}-runtime.yaml"
    assert containers.start_command(stack, "ext-dev-rootless") == (
        "isaac-deploy -p ext-dev --suffix exp2 run --rootless"
    )
    assert containers.start_command(default, "ext-dev") == "isaac-deploy -p ext-dev run"


@pytest.mark.parametrize("where", ["before", "after"])
def test_every_stack_command_takes_the_suffix_before_or_after_it(tmp_path, monkeypatch, where):
    root = make_root(tmp_path, {})
    rendered_ids(root, 1000, 1000)
    monkeypatch.chdir(root)
    seen = []

    def record(project, *_args, **_kwargs):
        seen.append(project.suffix)
        return 0

    for name in ("run", "exec_in", "attach", "logs", "ps", "stop", "remove_volumes"):
        monkeypatch.setattr(containers, name, record)
    for command in STACK_COMMANDS:
        extra = ["--yes"] if command == "remove-volumes" else []
        argv = (
            ["--suffix", "exp2", command, *extra]
            if where == "before"
            else [command, "--suffix", "exp2", *extra]
        )
        assert main(argv) == 0, command
    assert seen == ["exp2"] * len(STACK_COMMANDS)
    assert main(["run", "echo", "--suffix", "x"]) == 0  # after the command: its own argument
    assert seen[-1] == ""


def test_a_bad_suffix_stops_before_anything_runs(tmp_path, monkeypatch, capsys):
    root = make_root(tmp_path, {})
    rendered_ids(root, 1000, 1000)
    monkeypatch.chdir(root)
    ran = []
    monkeypatch.setattr(containers, "run", lambda *args: ran.append(args) or 0)
    assert main(["run", "--suffix", "My Stack", "true"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("isaac-deploy: error: --suffix: 'My Stack' is not a valid stack name")
    assert err.count("\n") == 1 and ran == []
    assert main(["--suffix", "a", "doctor"]) == 1
    assert "--suffix applies to run, run-dev, exec" in capsys.readouterr().err


class Containers:
    """The engine's answer for containers: ``labels`` by name, every other one missing."""

    def __init__(self, labels: dict[str, dict[str, str]]) -> None:
        self.labels = labels

    def get(self, url: str):
        if url.startswith("/images/"):  # every image is built
            return 200, {"Id": "sha256:" + "a" * 64}
        name = url.removeprefix("/containers/").removesuffix("/json")
        if name in self.labels:
            return 200, {"State": {"Status": "running"}, "Config": {"Labels": self.labels[name]}}
        return 404, {"message": f"No such container: {name}"}

    def get_many(self, urls):
        return {url: self.get(url) for url in urls}


class FakeRun:
    returncode = 0
    stderr = ""


def made_from(*files: str) -> dict[str, str]:
    return {
        "com.docker.compose.project.config_files": ",".join(files[:-1]),
        "com.docker.compose.project.environment_file": files[-1],
    }


def test_a_container_of_another_members_project_with_this_stacks_name_is_left_alone(
    tmp_path, monkeypatch
):
    """The user ``alice`` with ``--suffix doe`` and the user ``alice-doe`` name the same
    containers: the one made from the other member's project is refused before anything runs;
    ours, one of a moved project of ours, or one whose files say nothing, are ours as before."""
    import os

    root = make_root(tmp_path / "mine", {})
    rendered_ids(root, 1000, 1000)
    stack = load(root, suffix="doe")
    theirs = tmp_path / "theirs" / ".isaac-deploy" / "state"
    theirs.mkdir(parents=True)
    os.chown(theirs, os.geteuid() + 4242, 0)  # another member's state folder
    name = stack.container("ext-dev")
    package = "/usr/lib/isaac-deploy/docker/docker-compose.yaml"
    ours = root / ".isaac-deploy" / "state"
    calls = []
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setattr(containers, "call", lambda argv, **_: calls.append(argv) or 0)
    monkeypatch.setattr(
        containers.subprocess, "run", lambda argv, **_: calls.append(argv) or FakeRun()
    )
    for labels, refused in (
        (made_from(package, f"{theirs}/docker-compose.override.yaml", f"{theirs}/x-dev.env"), True),
        (made_from(package, f"{ours}/docker-compose.override.yaml", f"{ours}/x-dev.env"), False),
        (made_from(f"{ours}/devcontainer-compose.yaml", ""), False),  # VS Code made it
        (made_from(package, "/gone/.isaac-deploy/state/x-dev.env"), False),  # moved
        (made_from(package, ""), False),
    ):
        monkeypatch.setattr(
            containers, "docker_client", lambda labels=labels: Containers({name: labels})
        )
        for action in (
            lambda: containers.ensure_running(stack, "ext-dev"),
            lambda: containers.stop(stack, "ext-dev"),
            lambda: containers.remove_volumes(stack, "ext-dev"),
            lambda: containers.running(stack, "ext-dev"),
            lambda: containers.logs(stack, "ext-dev", False, None),
        ):
            if refused:
                with pytest.raises(containers.ProjectError) as error:
                    action()
                assert str(error.value) == (
                    f"{name} is a container of another lab member's project ({theirs.parent.parent}), "
                    "whose names happen to be this stack's: isaac-deploy leaves it alone; choose "
                    "another --suffix"
                )
            else:
                action()
    assert len(calls) == 4 * 4  # up, stop, remove-volumes, logs of the four that are ours
    assert not [argv for argv in calls if str(theirs) in " ".join(argv)]
