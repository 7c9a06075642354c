"""VS Code's dev container: configuration -> devcontainer.json and its compose file, checked
against the Dev Container specification's schema; hand edits kept like the env files'."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from isaac_deploy.model import paths
from isaac_deploy.operations import files as file_ops
from isaac_deploy.probes.context_digest import DENY
from isaac_deploy.render import devcontainer
from isaac_deploy.render.managed import CHECKSUM_MARK, decide, file_state
from tests.helpers import run_op
from tests.unit.test_config import make
from tests.unit.test_operations import snapshot

SCHEMA = json.loads(
    (
        Path(__file__).parents[1] / "fixtures" / "devcontainer" / "devContainer.base.schema.json"
    ).read_text()
)
FOLDER = "/home/alice/ext"
CLI = "/home/alice/ext/.venv/bin/isaac-deploy"


def jsonc(text: str) -> dict:
    """devcontainer.json as the tools read it: JSON with comments (ours are whole lines)."""
    return json.loads(
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    )


def rendered(**data) -> dict:
    config = make(**data)
    return jsonc(devcontainer.devcontainer_json(config, devcontainer.relative_compose(FOLDER), CLI))


def validate(document: dict) -> None:
    jsonschema.Draft201909Validator(SCHEMA).validate(document)


@pytest.mark.parametrize(
    "data",
    [{}, {"isaac_user_mode": "rootless"}, {"isaac_uid": 2000, "isaac_gid": 2000}],
    ids=["user", "rootless", "uid-2000"],
)
def test_devcontainer_json_is_valid_by_the_specifications_schema(data):
    validate(rendered(**data))


def test_the_schema_catches_what_the_spec_does_not_define():
    """The vendored schema is not a pass-all: a wrong enum, a missing service, an unknown
    property are each refused."""
    document = rendered()
    for broken in (
        {**document, "shutdownAction": "stopContainer"},  # the single-container value
        {k: v for k, v in document.items() if k != "service"},
        {**document, "dockerComposeFiles": ["x.yaml"]},
        {**document, "initializeCommand": {"a": 1}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_it_opens_the_container_isaac_deploy_run_uses():
    document = rendered()
    assert document["service"] == "ext-dev" and document["runServices"] == ["ext-dev"]
    assert document["remoteUser"] == "1000"  # the compose service's user: HOST_UID
    assert document["workspaceFolder"] == "/workspace/ext_template"
    assert document["dockerComposeFile"] == ["../../.isaac-deploy/state/devcontainer-compose.yaml"]
    here = Path(FOLDER) / paths.DEVCONTAINER_DIR
    assert (here / document["dockerComposeFile"][0]).resolve() == Path(
        paths.devcontainer_compose(FOLDER)
    )
    # started by isaac-deploy first, so the tools attach instead of recreating it
    assert document["initializeCommand"] == [CLI, "-p", "ext-dev", "run", "true"]
    assert document["shutdownAction"] == "none"  # closing the editor keeps it running
    assert document["overrideCommand"] is False and document["updateRemoteUserUID"] is False
    rootless = rendered(isaac_user_mode="rootless")
    assert rootless["service"] == "ext-dev-rootless" and rootless["remoteUser"] == "root"
    assert rootless["initializeCommand"] == [CLI, "-p", "ext-dev", "run", "--rootless", "true"]
    assert rendered(isaac_uid=2000, isaac_gid=2000)["remoteUser"] == "2000"
    config = make()
    unknown = jsonc(devcontainer.devcontainer_json(config, "c.yaml", None))
    assert "initializeCommand" not in unknown
    validate(unknown)


def test_python_analysis_sees_the_extension_and_isaac_lab():
    settings = rendered(isaac_isaaclab_path="/opt/IsaacLab")["customizations"]["vscode"]
    extra = settings["settings"]["python.analysis.extraPaths"]
    assert extra[0] == "/workspace/ext_template/source/ext_template"
    assert "/opt/IsaacLab/source/isaaclab" in extra
    assert "/opt/IsaacLab/source/isaaclab_tasks" in extra
    assert settings["settings"]["python.defaultInterpreterPath"] == "/isaac-sim/python.sh"
    assert "ms-python.python" in settings["extensions"]


def test_its_compose_file_names_the_project_files_and_env_file():
    config = make()
    text = devcontainer.compose_yaml(config, "/pkg/docker-compose.yaml", "/s/o.yaml", "/s/e.env")
    body = yaml.safe_load(text)
    assert body == {
        "name": "ext-template-alice",
        "include": [{"path": ["/pkg/docker-compose.yaml", "/s/o.yaml"], "env_file": "/s/e.env"}],
    }
    without = yaml.safe_load(devcontainer.compose_yaml(config, "/p.yaml", None, "/e.env"))
    assert without["include"][0]["path"] == ["/p.yaml"]


def test_a_json_file_takes_its_checksum_line_as_a_comment():
    content = devcontainer.devcontainer_json(make(), "c.yaml", CLI)
    desired = decide(None, content, comment="//").desired
    assert desired.splitlines()[-1].startswith(f"// {CHECKSUM_MARK}")
    assert file_state(desired.splitlines()) == "pristine"
    jsonc(desired)  # still JSON with comments
    edited = desired.replace('"shutdownAction": "none"', '"shutdownAction": "stopCompose"')
    assert file_state(edited.splitlines()) == "edited"


def test_a_hand_edited_devcontainer_json_is_kept():
    path = str(paths.devcontainer_file(FOLDER))
    content = devcontainer.devcontainer_json(make(), "c.yaml", CLI)
    theirs = '{"name": "mine", "image": "x"}'  # a file of the user's, no checksum line
    facts = {"FileWithMode": {f"path={path}": snapshot(theirs, mode=0o644)}}
    commands, _ = run_op(
        file_ops.managed_file, facts, path=path, content=content, mode=0o644, comment="//"
    )
    assert commands == []
    facts = {"FileWithMode": {f"path={path}": None}}
    commands, _ = run_op(
        file_ops.managed_file, facts, path=path, content=content, mode=0o644, comment="//"
    )
    uploads = [c for c in commands if isinstance(c, tuple) and c[0] == "upload"]
    assert uploads and uploads[0][2].rstrip("\n").splitlines()[-1].startswith("// ")


def test_the_editor_folder_never_enters_an_image_or_a_snapshot():
    assert "**/.devcontainer/isaac-deploy" in DENY
    assert paths.DEVCONTAINER_DIR == ".devcontainer/isaac-deploy"


def editor_plan(facts: dict | None = None, **data) -> list:
    from isaac_deploy.deploys import workstation
    from tests.unit.plan import make_workstation, plan

    return plan(
        workstation.editor_files, make_workstation("debian12-root-docker20.json", **data), facts
    )


EDITOR = f"{FOLDER}/.devcontainer/isaac-deploy"
NOTHING_YET = {
    "FileWithMode": {
        f"path={FOLDER}/.isaac-deploy/state/devcontainer-compose.yaml": None,
        f"path={EDITOR}/devcontainer.json": None,
    },
    "Directory": {f"path={EDITOR}": None, f"path={EDITOR}/.gitignore": None},
    "File": {f"path={EDITOR}/.gitignore": None},
    "TmpDir": {"": None},
}


def test_the_deploy_writes_both_files_beside_the_projects_own():
    ops = editor_plan(NOTHING_YET)
    assert [op.name for op in ops] == [
        "Dev container's compose file (devcontainer-compose.yaml)",
        "Its folder",
        "Its .gitignore (per user and host: never committed)",
        "devcontainer.json",
    ]
    written = {c[1]: c[2] for op in ops for c in op.commands if isinstance(c, tuple)}
    assert written[f"{EDITOR}/.gitignore"].endswith("\n*\n")
    document = jsonc(written[f"{EDITOR}/.devcontainer.json.isaac-deploy.tmp"])
    validate(document)
    assert document["initializeCommand"][1:] == ["-p", "ext-dev", "run", "true"]
    assert document["initializeCommand"][0].endswith("/isaac-deploy")
    compose = yaml.safe_load(
        written[f"{FOLDER}/.isaac-deploy/state/.devcontainer-compose.yaml.isaac-deploy.tmp"]
    )
    assert compose["include"][0]["path"] == [
        str(paths.COMPOSE_FILE),
        f"{FOLDER}/.isaac-deploy/state/docker-compose.override.yaml",
    ]
    assert compose["include"][0]["env_file"] == f"{FOLDER}/.isaac-deploy/state/ext_template-dev.env"
    # nothing outside .devcontainer/isaac-deploy/ and the state folder
    words = {w for op in ops for c in op.commands if isinstance(c, str) for w in c.split()}
    touched = {w for w in words if w.startswith("/")}
    assert touched and all(
        p.startswith((EDITOR, f"{FOLDER}/.isaac-deploy/state/")) for p in touched
    ), touched


@pytest.mark.parametrize(
    "data", [{"isaac_devcontainer": False}, {"isaac_profiles": ("ext",)}], ids=["off", "no-ext-dev"]
)
def test_no_devcontainer_when_turned_off_or_without_the_dev_profile(data):
    assert editor_plan({}, **data) == []


def test_a_bad_devcontainer_setting_is_one_line_naming_it():
    from isaac_deploy.model.errors import ConfigError

    with pytest.raises(ConfigError, match="isaac_devcontainer: must be true or false, got 'maybe'"):
        make(isaac_devcontainer="maybe")
