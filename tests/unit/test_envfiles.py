"""Env files: every value reads back identically through bash `source` and Compose --env-file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.workstation import HostUser, WorkstationConfig
from isaac_deploy.render.templates import env_quote, render
from tests.helpers import ROOT

COMPOSE_BIN = Path(__import__("compose").__file__).parent / "docker-compose"
HOSTILE = [
    "plain",
    "with spaces  and\ttab",
    "$HOME and ${HOME} and $(id) and `id`",
    'it\'s quoted "twice" $USER',
    "back\\slash\\n",
    "semi;colon && amp | pipe > redirect",
    "glob * ? [a-z]",
    "ünïcödé ✓",
    "#not-a-comment",
    "",
    "trailing space ",
    "=equals=",
]
SEED_VARIABLES = {
    "EXTENSION_NAME",
    "EXTENSION_FOLDER",
    "EXT_PATH",
    "DOCKER_EXT_PATH",
    "HOST_HOME",
    "DOCKER_USER_NAME",
    "DOCKER_USER_HOME",
}


def bash_values(env_file: Path, names: list[str]) -> dict[str, str]:
    script = 'set -a; source "$1"; shift; for n in "$@"; do printf "%s\\0" "${!n}"; done'
    out = subprocess.run(
        ["bash", "-c", script, "bash", str(env_file), *names],
        capture_output=True,
        check=True,
        env={"HOME": "/nowhere", "USER": "nobody"},
    ).stdout
    return dict(zip(names, out.decode().split("\0")[:-1], strict=True))


def compose_values(env_file: Path, names: list[str], tmp_path: Path) -> dict[str, str]:
    compose = tmp_path / "compose.yaml"
    environment = {name: "${" + name + "}" for name in names}
    compose.write_text(json.dumps({"services": {"s": {"image": "x", "environment": environment}}}))
    out = subprocess.run(
        [
            str(COMPOSE_BIN),
            "--env-file",
            str(env_file),
            "-f",
            str(compose),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"HOME": "/nowhere", "USER": "nobody"},
    ).stdout
    # `config` prints a literal `$` as `$$` (its own escape for re-interpolation)
    values = json.loads(out)["services"]["s"]["environment"]
    return {name: value.replace("$$", "$") for name, value in values.items()}


def test_hostile_values_read_back_identically_in_bash_and_compose(tmp_path):
    names = [f"V{i}" for i in range(len(HOSTILE))]
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{n}={env_quote(v)}\n" for n, v in zip(names, HOSTILE)))
    expected = dict(zip(names, HOSTILE))
    assert bash_values(env_file, names) == expected
    assert compose_values(env_file, names, tmp_path) == expected


@pytest.mark.parametrize("bad", ["two\nlines", "nul\x00byte", "it's `both`"])
def test_unrepresentable_values_are_refused(bad):
    with pytest.raises(ConfigError):
        env_quote(bad, "isaac_something")


def config_with(**data) -> WorkstationConfig:
    user = HostUser(name="alice", uid=1000, gid=1000, home="/home/alice smith/$x")
    return WorkstationConfig.from_host_data(
        data,
        user,
        "/home/alice smith/$x/my ext",
        (data.get("isaac_extension_name", "ext_template"),),
    )


@pytest.mark.parametrize("profile", ["ext", "ext-dev"])
def test_rendered_env_files_carry_the_seed_variables_and_parse_everywhere(profile, tmp_path):
    config = config_with(isaac_wandb={"username": "o'brien", "project": "a $b"})
    text = render(
        ROOT / "templates",
        f"env.{profile}.j2",
        config=config,
        profile=profile,
        wandb_key_file="/home/alice smith/.config/k",
    )
    env_file = tmp_path / f".env.{profile}"
    env_file.write_text(text)
    names = [line.split("=", 1)[0] for line in text.splitlines() if line and line[0] != "#"]
    assert SEED_VARIABLES <= set(names)
    assert len(names) == len(set(names))
    from_bash = bash_values(env_file, names)
    assert from_bash == compose_values(env_file, names, tmp_path)
    assert from_bash["EXTENSION_FOLDER"] == "/home/alice smith/$x/my ext"
    assert from_bash["EXT_PATH"] == from_bash["EXTENSION_FOLDER"]
    assert from_bash["WANDB_USERNAME"] == "o'brien" and from_bash["WANDB_PROJECT"] == "a $b"
    assert from_bash["WANDB_API_KEY_FILE"] == "/home/alice smith/.config/k"
    assert "WANDB_API_KEY" not in names
    if profile == "ext-dev":
        assert from_bash["DOCKER_USER_NAME"] == "alice"
        assert from_bash["DOCKER_USER_HOME"] == "/home/alice smith/$x"
        assert from_bash["ISAAC_IMAGE"] == "isaac-lab-ext-template-dev:alice"
    else:
        assert from_bash["DOCKER_USER_NAME"] == "root" and from_bash["DOCKER_USER_HOME"] == "/root"
        assert from_bash["ISAAC_IMAGE"] == "isaac-lab-ext-template:alice"
