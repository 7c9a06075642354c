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
