"""Base images: the settings (``isaac_base_source``, ``isaac_isaaclab_checkout``, logins from a
variable or a 0600 file), the plan made before anything changes (one line for each way it
cannot work), the operations that pull or build them, and the summary the deploy ends with."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from types import SimpleNamespace

import pytest
from pyinfra.context import ctx_host, ctx_state

from isaac_deploy.deploys import workstation
from isaac_deploy.model.base_images import NVIDIA_IMAGE, BaseSource
from isaac_deploy.model.errors import ConfigError, ToolkitError
from isaac_deploy.model.registries import parse_registries, password_of
from isaac_deploy.model.seed import workstation_settings
from isaac_deploy.model.workstation import HostUser, WorkstationConfig
from isaac_deploy.operations import packages
from isaac_deploy.operations.util import ShownCommand
from isaac_deploy.render.summary import (
    ClusterOutcome,
    Image,
    Outcome,
    cluster_lines,
    summary_lines,
)
from tests.helpers import FakeHost
from tests.unit.plan import make_workstation, plan

ALICE = HostUser("alice", 1000, 1000, "/home/alice", groups=("alice", "docker"))
LAB = "127.0.0.1:5443"
MIRROR = f"{LAB}/nvidia/isaac-lab:2.1.0"


def config(**data) -> WorkstationConfig:
    return WorkstationConfig.from_host_data(data, ALICE, "/home/alice/ext", ("ext_template",))


# ------------------------------------------------------------------------------------ settings
def test_each_source_has_its_defaults_and_nvidia_s_image_serves_both_profiles():
    assert config().base_images == {"ext": NVIDIA_IMAGE, "ext-dev": NVIDIA_IMAGE}
    assert config(isaac_base_source="given").base_images == {
        "ext": "isaac-lab-base:latest",
        "ext-dev": "isaac-lab-ros2:latest",
    }
    built = config(isaac_base_source="build", isaac_isaaclab_checkout="~/IsaacLab/")
    assert built.base_source == BaseSource("build", "~/IsaacLab")
    assert built.base_images["ext"] == "isaac-lab-base:latest"
    mirror = config(isaac_base_images={"ext": MIRROR, "ext-dev": MIRROR})
    assert set(mirror.base_images.values()) == {MIRROR}


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"isaac_base_source": "download"}, "isaac_base_source", "must be one of 'pull'"),
        ({"isaac_base_source": "build"}, "isaac_isaaclab_checkout", "needs your Isaac Lab"),
        (
            {"isaac_isaaclab_checkout": "/src/IsaacLab"},
            "isaac_isaaclab_checkout",
            "only used with isaac_base_source='build'",
        ),
        (
            {"isaac_base_source": "build", "isaac_isaaclab_checkout": "IsaacLab"},
            "isaac_isaaclab_checkout",
            "must be an absolute path",
        ),
        (
            {
                "isaac_base_source": "build",
                "isaac_isaaclab_checkout": "/src/IsaacLab",
                "isaac_base_images": {"ext": "my-lab/isaac:1"},
            },
            "isaac_base_images[ext]",
            "not an image Isaac Lab's docker/container.py builds",
        ),
        (
            {"isaac_registries": {"lab": {"address": LAB, "password_file": "/k"}}},
            "isaac_registries[lab][username]",
            "give username and password_env or password_file together",
        ),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(data, field, words):
    with pytest.raises(ConfigError) as error:
        config(**data)
    assert error.value.field == field and words in str(error.value)
    assert "\n" not in str(error.value)


def test_a_build_names_isaac_lab_s_own_command_or_its_compose_service():
    source = BaseSource("build", "/src/IsaacLab")
    assert source.build_argv("isaac-lab-ros2:latest", True) == [
        "python3",
        "docker/container.py",
        "build",
        "ros2",
    ]
    assert source.build_argv("isaac-lab-base:latest", False)[-2:] == ["build", "isaac-lab-base"]


def registry(**settings):
    return parse_registries({"lab": {"address": LAB, "username": "labreg", **settings}})[0]


def test_a_password_comes_from_the_variable_else_a_private_file(tmp_path):
    key = tmp_path / "lab_password"
    key.write_text("from-file\n")
    key.chmod(0o600)
    lab = registry(password_env="LAB_PASSWORD", password_file=str(key))
    assert password_of(lab, {"LAB_PASSWORD": "from-env"}) == "from-env"
    assert password_of(lab, {}) == "from-file"
    key.chmod(0o644)
    with pytest.raises(ConfigError) as open_file:
        password_of(lab, {})
    assert str(open_file.value).endswith(f"may be read by others (mode 644): run `chmod 600 {key}`")
    key.unlink()
    with pytest.raises(ConfigError) as nowhere:
        password_of(lab, {})
    assert "$LAB_PASSWORD is not set in this shell and" in str(nowhere.value)
    assert password_of(lab, {}, required=False) is None


def test_the_seed_s_base_images_were_built_by_the_user_so_they_are_given():
    env = {"docker/.env.ext_template-dev": {"ISAACLAB_BASE_IMAGE": "isaac-lab-ros2:latest"}}
    data, _ = workstation_settings(env, "ext_template", ALICE)
    assert data["isaac_base_source"] == "given" and "isaac_base_images" not in data
    env = {"docker/.env.ext_template-dev": {"ISAACLAB_BASE_IMAGE": MIRROR}}
    data, _ = workstation_settings(env, "ext_template", ALICE)
    assert "isaac_base_source" not in data and data["isaac_base_images"] == {"ext-dev": MIRROR}


# -------------------------------------------------------------------- the plan, before changes
def ws_with(fixture="ubuntu22-gpu-docker27-apptainer134.json", **data):
    """A workstation whose engine (the fixture's) has no image."""
    ws = make_workstation(fixture, **data)
    return replace(ws, toolkit=replace(ws.toolkit, images={}))


def load_base(ws, facts=None):
    found = []
    plan(lambda w: found.append(workstation.load_base(w)), ws, facts)
    return found[0]


def test_present_base_images_need_nothing(monkeypatch):
    ws = ws_with(isaac_base_source="given")
    images = {"isaac-lab-ros2:latest": "sha256:1"}
    ws = replace(ws, toolkit=replace(ws.toolkit, images=images))
    assert load_base(ws).missing == ()
    ws = ws_with(isaac_base_images={"ext-dev": MIRROR})
    ws = replace(ws, toolkit=replace(ws.toolkit, images={MIRROR: "sha256:1"}))
    assert load_base(ws).missing == ()  # a pull source asks nothing when the image is here


def test_a_missing_image_without_a_registry_cannot_be_pulled():
    ws = ws_with(isaac_base_images={"ext-dev": "isaac-lab-ros2:latest"})
    with pytest.raises(ConfigError) as error:
        load_base(ws)
    assert error.value.field == "isaac_base_images[ext-dev]"
    assert "names no registry to pull it from" in str(error.value)


LAB_DATA = {
    "isaac_base_images": {"ext-dev": MIRROR},
    "isaac_registries": {"lab": {"address": LAB, "username": "labreg", "password_file": "KEY"}},
}
LOGINS = {LAB: {"username": "labreg", "file": "KEY"}}


def lab_ws(tmp_path):
    key = tmp_path / "key"
    key.write_text("lab-registry-pass-7\n")
    key.chmod(0o600)
    data = json.loads(json.dumps(LAB_DATA).replace('"KEY"', json.dumps(str(key))))
    return ws_with(**data), {LAB: {"username": "labreg", "file": str(key)}}


@pytest.mark.parametrize(
    ("answer", "line"),
    [
        (
            "unauthorized: authentication required",
            f"registry lab ({LAB}) refused the credentials",
        ),
        (
            f"Get https://{LAB}/v2/: dial tcp {LAB}: connect: connection refused",
            f"registry lab ({LAB}) is not reachable",
        ),
        ("manifest unknown: manifest unknown", f"registry lab ({LAB}) has no such image or tag"),
    ],
)
def test_the_registry_is_asked_first_and_a_refusal_is_one_line(tmp_path, answer, line):
    ws, logins = lab_ws(tmp_path)
    facts = {"PullableImages": {f"images=('{MIRROR}',), logins={logins}": {MIRROR: answer}}}
    with pytest.raises(ToolkitError) as error:
        load_base(ws, facts)
    assert str(error.value).startswith(f"base image {MIRROR}: {line}")
    assert "\n" not in str(error.value) and "lab-registry-pass-7" not in str(error.value)


def test_an_accepted_pull_runs_here_with_the_login_named_not_given(tmp_path):
    ws, logins = lab_ws(tmp_path)
    facts = {"PullableImages": {f"images=('{MIRROR}',), logins={logins}": {MIRROR: None}}}
    base = load_base(ws, facts)
    assert base.missing == (MIRROR,) and base.local_logins and base.passwords is None
    (op,) = plan(lambda w: workstation.base_images(w, base), ws)
    assert op.name == f"Base images {MIRROR}" and not op.sudo
    (command,) = op.commands
    words = shlex.split(command)
    spec = json.loads(words[words.index("-c") + 2])
    assert spec == {"images": [MIRROR], "interval": 5, "logins": logins}
    assert "lab-registry-pass-7" not in command


def test_without_the_docker_group_yet_the_pull_runs_with_sudo_and_a_staged_login(tmp_path):
    ws, _ = lab_ws(tmp_path)
    user = replace(ws.config.user, groups=("alice",))
    ws = replace(ws, config=replace(ws.config, user=user))
    base = load_base(ws)  # no engine to ask as alice: asked when it pulls
    assert base.passwords is not None and not base.local_logins
    (op,) = plan(lambda w: workstation.base_images(w, base), ws)
    assert op.sudo and op.commands[0] == "mkdir -p -m 700 /run/isaac-deploy/pull"
    assert op.commands[-1].endswith("; rm -rf /run/isaac-deploy/pull ; exit $code")


def test_nvidia_s_image_is_pulled_anonymously_without_an_ngc_key(monkeypatch):
    monkeypatch.delenv("NGC_API_KEY", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")
    ws = ws_with()
    facts = {"PullableImages": {f"images=('{NVIDIA_IMAGE}',), logins={{}}": {NVIDIA_IMAGE: None}}}
    base = load_base(ws, facts)
    assert base.missing == (NVIDIA_IMAGE,) and base.registries == ()


def test_with_an_ngc_key_its_login_is_used(monkeypatch):
    monkeypatch.setenv("NGC_API_KEY", "nvapi-123")
    ws = ws_with()
    logins = {"nvcr.io": {"username": "$oauthtoken", "env": "NGC_API_KEY"}}
    logins["nvcr.io"]["file"] = "~/.config/isaac-deploy/ngc_api_key"
    facts = {
        "PullableImages": {f"images=('{NVIDIA_IMAGE}',), logins={logins}": {NVIDIA_IMAGE: None}}
    }
    base = load_base(ws, facts)
    assert [r.name for r in base.registries] == ["ngc"]


def test_a_build_needs_an_isaac_lab_checkout_and_runs_its_container_py():
    data = {"isaac_base_source": "build", "isaac_isaaclab_checkout": "~/IsaacLab"}
    ws = ws_with(**data)
    paths = "paths=['/home/alice/IsaacLab/docker/container.py', "
    paths += "'/home/alice/IsaacLab/docker/docker-compose.yaml']"
    none = {"PathKinds": {paths: {}}}
    with pytest.raises(ConfigError) as error:
        load_base(ws, none)
    assert "/home/alice/IsaacLab is no Isaac Lab checkout" in str(error.value)
    found = {"PathKinds": {paths: {"/home/alice/IsaacLab/docker/container.py": "file"}}}
    base = load_base(ws, found)
    assert base.missing == ("isaac-lab-ros2:latest",) and base.container_py
    (op,) = plan(lambda w: workstation.base_images(w, base), ws)
    assert op.name == "Base image isaac-lab-ros2:latest (built with /home/alice/IsaacLab)"
    assert op.commands == [
        "cd /home/alice/IsaacLab && python3 docker/container.py build ros2 </dev/null && "
        "{ docker image inspect isaac-lab-ros2:latest >/dev/null 2>&1 || { echo 'error: "
        "`python3 docker/container.py build ros2` in /home/alice/IsaacLab did not make "
        "isaac-lab-ros2:latest' >&2; exit 1; }; }"
    ]


def test_apt_s_output_is_shown_as_it_runs():
    facts = {
        "DebPackages": {"": {}},
        "File": {"path=/var/lib/apt/periodic/update-success-stamp": None},
    }
    state = SimpleNamespace(config=SimpleNamespace(DIFF=False), is_executing=False)
    with ctx_host.use(FakeHost(facts)), ctx_state.use(state):
        commands = list(packages.apt_installed._inner(packages=["docker.io"]))
    assert all(type(c) is ShownCommand for c in commands)
    assert "-o Dpkg::Use-Pty=0" in str(commands[-1])  # no carriage returns of dpkg's
    assert [str(c).split()[-1] for c in commands] == [
        "update",
        "/var/lib/apt/periodic/update-success-stamp",
        "docker.io",
    ]


# ------------------------------------------------------------------------------------ summary
IMAGES = (
    Image(MIRROR, "base image", "pulled", "run the workstation deploy: it pulls it"),
    Image("isaac-lab-ext-template-dev:alice", "image", "up to date", "build it"),
)


def test_the_summary_of_a_fresh_machine_says_what_is_ready_and_what_to_type_next():
    outcome = Outcome(
        installed=("docker.io", "docker-compose"),
        started="dockerd, log: /var/log/isaac-deploy-dockerd.log",
        images=IMAGES,
    )
    present = {image.ref: True for image in IMAGES}
    assert summary_lines(outcome, present) == [
        "Summary:",
        "  installed: docker.io, docker-compose",
        "  started:   dockerd, log: /var/log/isaac-deploy-dockerd.log",
        f"  ready:     base image {MIRROR} (pulled), image isaac-lab-ext-template-dev:alice "
        "(up to date)",
        "  next:      `isaac-deploy run`",
    ]


def test_the_summary_names_what_is_missing_with_its_fix_and_a_new_group_s_login():
    outcome = Outcome(images=IMAGES, group_added="alice")
    lines = summary_lines(outcome, {MIRROR: True})
    assert lines[-2:] == [
        "  missing:   image isaac-lab-ext-template-dev:alice: build it",
        "  next:      log in again (you are in the docker group from your next login), then "
        "what the missing line says, then `isaac-deploy run`",
    ]
    assert summary_lines(replace(outcome, group_added=None), {MIRROR: True})[-1] == (
        "  next:      what the missing line says, then `isaac-deploy run`"
    )
    lines = summary_lines(outcome, {image.ref: True for image in IMAGES})
    assert lines[-1].startswith("  next:      log in again (you are in the docker group")


def test_the_roll_out_s_summary_says_image_job_and_how_to_follow_it():
    sent = ClusterOutcome(
        "euler", "sha256-ab12.sif", True, "sent from this workstation", "run-1", "4711"
    )
    assert cluster_lines(sent) == [
        "Summary (euler):",
        "  image:     sha256-ab12.sif: sent from this workstation",
        "  job:       4711 (run run-1) submitted",
        "  follow:    `isaac-deploy cluster jobs`",
    ]
    again = replace(sent, sent=False, job_id=None, earlier_jobs=("4711",))
    assert cluster_lines(again)[1:3] == [
        "  image:     sha256-ab12.sif: current (nothing sent)",
        "  job:       run run-1 was submitted before (job 4711)",
    ]
    assert cluster_lines(replace(sent, run_key=None))[-1] == (
        "  job:       none submitted (isaac_submit=0)"
    )


def test_a_fresh_machine_s_outcome_lists_installs_the_daemon_images_and_the_new_group(
    monkeypatch,
):
    monkeypatch.setattr(workstation.shutil, "which", lambda name: None)
    ws = make_workstation("no-docker.json")  # Ubuntu 22.04 with systemd, a GPU, no Docker
    ws = replace(ws, toolkit=replace(ws.toolkit, init="sysvinit"))
    base = workstation.BasePlan(missing=(NVIDIA_IMAGE,))
    outcome = workstation.outcome(ws, base)
    assert outcome.installed == ("docker.io", "docker-compose-v2", "nvidia-container-toolkit")
    assert outcome.started == "dockerd, log: /var/log/isaac-deploy-dockerd.log"
    assert outcome.group_added == "alice"
    assert [(i.what, i.ref, i.how) for i in outcome.images] == [
        ("base image", NVIDIA_IMAGE, "pulled"),
        ("image", "isaac-lab-ext-template-dev:alice", "up to date"),
    ]
    # the image is built once the new group applies (its base image is pulled in this run)
    assert outcome.images[1].fix.startswith("Docker is yours from your next login: `")
    assert outcome.images[1].fix.endswith("` builds it")
    given = replace(
        ws, config=replace(ws.config, base_source=replace(ws.config.base_source, kind="given"))
    )
    given = replace(
        given, config=replace(given.config, user=replace(given.config.user, groups=("docker",)))
    )
    assert workstation.outcome(given, base).images[1].fix == (
        f"its base image {NVIDIA_IMAGE} is missing (see its line)"
    )
    assert outcome.next_command.endswith("isaac-deploy run")


def test_a_mirror_with_its_own_ca_gets_it_in_docker_first_and_is_asked_when_it_pulls(tmp_path):
    key, ca = tmp_path / "key", tmp_path / "ca.crt"
    key.write_text("lab-registry-pass-7\n")
    key.chmod(0o600)
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    lab = {"address": LAB, "username": "labreg", "password_file": str(key), "ca_file": str(ca)}
    ws = ws_with(isaac_base_images={"ext-dev": MIRROR}, isaac_registries={"lab": lab})
    base = load_base(ws)  # no PullableImages fact: the engine would not trust the registry yet
    assert base.missing == (MIRROR,) and base.local_logins
    dest = f"/etc/docker/certs.d/{LAB}/ca.crt"
    facts = {
        "File": {f"path={dest}": None},
        "Directory": {f"path=/etc/docker/certs.d/{LAB}": None, f"path={dest}": None},
        "TmpDir": {"": None},
    }
    ops = plan(lambda w: workstation.base_images(w, base), ws, facts)
    assert [op.name for op in ops] == ["lab: CA for Docker", f"Base images {MIRROR}"]
    assert ops[0].sudo and not ops[1].sudo
