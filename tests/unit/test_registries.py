"""Registries: validation, skopeo flags, error lines, tags, and the push operation's commands."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from pyinfra.api.hiddenvalue import HiddenValue

from isaac_deploy.facts.files import FileDigest
from isaac_deploy.facts.registry import (
    RegistryImageState,
    RegistryLogin,
    TagState,
    parse_registry_state,
)
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.registries import (
    Registry,
    auth_file_content,
    explain,
    parse_registries,
    skopeo_flags,
)
from isaac_deploy.operations.registry import image_pushed, login_saved
from isaac_deploy.operations.util import fail
from isaac_deploy.probes.registry_state import registry_login, tags_for
from tests.helpers import run_op

GOOD = {
    "address": "reg.example.org:5000",
    "prefix": "robotics/isaac",
    "ca_file": "~/ca.crt",
    "username": "robot",
    "password_env": "TOKEN",
}


def test_parse_and_repository_names():
    [registry] = parse_registries({"lab": GOOD})
    assert (
        registry.repository("isaac-lab-ext") == "reg.example.org:5000/robotics/isaac/isaac-lab-ext"
    )
    assert not registry.loopback
    assert parse_registries({"l": {"address": "127.0.0.1:5000", "plain_http": True}})[0].loopback
    assert parse_registries({"l": {"address": "[::1]:5000", "plain_http": True}})[0].loopback
    assert parse_registries(None) == []


@pytest.mark.parametrize(
    ("settings", "field", "words"),
    [
        ({"prefix": "x"}, "isaac_registries[lab][address]", "is required"),
        ({"address": "https://reg.example.org"}, "isaac_registries[lab][address]", "no scheme"),
        (
            {"address": "reg:5000", "prefix": "Upper/Case"},
            "isaac_registries[lab][prefix]",
            "lower-case",
        ),
        (
            {"address": "10.0.0.5:5000", "plain_http": True},
            "isaac_registries[lab][plain_http]",
            "only allowed for a loopback",
        ),
        (
            {"address": "reg:5000", "password": "x"},
            "isaac_registries[lab][password]",
            "unknown setting",
        ),
        (
            {"address": "reg:5000", "username": "robot"},
            "isaac_registries[lab][username]",
            "together",
        ),
        (
            {"address": "reg:5000", "ca_file": "ca.crt"},
            "isaac_registries[lab][ca_file]",
            "absolute",
        ),
        (
            {"address": "reg:5000", "password_env": "not a name", "username": "u"},
            "isaac_registries[lab][password_env]",
            "environment variable",
        ),
    ],
)
def test_bad_registry_settings_name_the_field(settings, field, words):
    with pytest.raises(ConfigError) as error:
        parse_registries({"lab": settings})
    assert error.value.field == field and words in str(error.value)


def test_skopeo_flags_per_role():
    registry = parse_registries({"lab": GOOD})[0]
    assert skopeo_flags(registry, "/a.json", "/certs", "") == (
        "--authfile",
        "/a.json",
        "--cert-dir",
        "/certs",
    )
    assert skopeo_flags(registry, "/a.json", "/certs", "dest") == (
        "--dest-authfile",
        "/a.json",
        "--dest-cert-dir",
        "/certs",
    )
    plain = parse_registries({"l": {"address": "localhost:5000", "plain_http": True}})[0]
    assert skopeo_flags(plain, None, None, "src") == ("--src-tls-verify=false",)


def test_auth_file_is_what_docker_login_stores():
    registry = parse_registries({"lab": GOOD})[0]
    data = json.loads(auth_file_content(registry, "p@ss w"))
    assert base64.b64decode(data["auths"]["reg.example.org:5000"]["auth"]) == b"robot:p@ss w"


@pytest.mark.parametrize(
    ("stderr", "words"),
    [
        (
            'time="x" level=fatal msg="reading manifest 1 in r: unauthorized: authentication required"',
            "refused the credentials",
        ),
        (
            'msg="pinging container registry r: Get \\"https://r/v2/\\": x509: certificate signed by unknown authority"',
            "failed TLS verification",
        ),
        ("dial tcp 127.0.0.1:5444: connect: connection refused", "is not reachable"),
        ("something else entirely", "failed: something else entirely"),
    ],
)
def test_errors_are_one_line_naming_the_registry(stderr, words):
    registry = Registry(name="lab", address="r:5000")
    line = explain(registry, stderr)
    assert line.startswith("registry lab (r:5000) ") and words in line and "\n" not in line


def test_tags_in_push_order():
    assert tags_for("abc123", False, "1.2.0") == ["abc123", "1.2.0", "latest"]
    assert tags_for("abc123", True, "") == ["abc123-dirty", "latest"]
    assert tags_for(None, False, None) == ["latest"]
    assert tags_for("abc123", True, "1.2.0", "sha256:ff00") == [
        "sha256-ff00",
        "abc123-dirty",
        "1.2.0",
        "latest",
    ]


def test_state_parsing():
    state = parse_registry_state(
        json.dumps(
            {
                "local": {"id": "sha256:l"},
                "commit": "abc",
                "tags": [["abc", {"missing": True}], ["latest", {"digest": "sha256:l"}]],
            }
        )
    )
    assert (
        state.local_id == "sha256:l"
        and state.tags[0].missing
        and state.tags[1].digest == "sha256:l"
    )
    assert parse_registry_state("garbage").local_error.startswith("could not inspect")
    assert (
        parse_registry_state(json.dumps({"local": {"missing": True}, "tags": []})).local_error
        == "missing"
    )


REG = Registry(name="lab", address="r:5000")
ARGS = dict(
    registry=REG,
    local="img:alice",
    repository="r:5000/img",
    version="1.0",
    folder="/p",
    dest_flags=("--dest-authfile", "/a"),
    src_flags=("--src-authfile", "/a"),
)


# the image as ARGS ask it (no inspect_flags given: the fact is asked with none)
INSPECTED = "flags=(), folder=/p, local=img:alice, repository=r:5000/img, version=1.0"


def state(*tags, local="sha256:new", error=None) -> dict:
    return {"RegistryImage": {INSPECTED: RegistryImageState(local, error, tuple(tags), "abc")}}


def test_push_sends_once_then_retags_inside_the_registry_latest_last():
    facts = state(
        TagState("abc", missing=True),
        TagState("1.0", digest="sha256:old"),
        TagState("latest", digest="sha256:old"),
    )
    commands, _ = run_op(image_pushed, facts, **ARGS)
    assert commands == [
        "skopeo copy --quiet --dest-authfile /a docker-daemon:img:alice docker://r:5000/img:abc",
        "skopeo copy --quiet --src-authfile /a --dest-authfile /a docker://r:5000/img:abc docker://r:5000/img:1.0",
        "skopeo copy --quiet --src-authfile /a --dest-authfile /a docker://r:5000/img:abc docker://r:5000/img:latest",
    ]


def test_current_image_is_a_noop():
    facts = state(TagState("abc", digest="sha256:new"), TagState("latest", digest="sha256:new"))
    commands, host = run_op(image_pushed, facts, **ARGS)
    assert commands == [] and host.noops == ["lab: r:5000/img is current (abc, latest)"]


def test_failures_are_one_line_commands_that_fail():
    commands, _ = run_op(image_pushed, state(local=None, error="missing"), **ARGS)
    assert commands == [
        "echo 'error: image img:alice is not built: run deploy/dev.py with its profile in isaac_profiles' >&2; exit 1"
    ]
    commands, _ = run_op(
        image_pushed,
        state(TagState("latest", error="unauthorized: authentication required")),
        **ARGS,
    )
    assert (
        len(commands) == 1
        and "refused the credentials" in commands[0]
        and commands[0].endswith("exit 1")
    )


LAB = parse_registries({"lab": GOOD})[0]
FOLDER = "/home/a/.config/isaac-deploy/registries/lab"
AUTH = f"{FOLDER}/auth.json"
STAGED = f"{FOLDER}/.auth.json.isaac-deploy.tmp"
CERTS = f"{FOLDER}/certs"
REPOSITORY = "reg.example.org:5000/robotics/isaac/isaac-lab-ext"
LOGIN = dict(
    registry=LAB,
    auth_file=AUTH,
    password=HiddenValue("n3w-pass"),
    repository=REPOSITORY,
    cert_dir=CERTS,
)
# the registry asked with the new credentials, from the staged file
ASKED = f"flags=('--authfile', '{STAGED}', '--cert-dir', '{CERTS}'), reference={REPOSITORY}:latest"


def saved_login(password: str | None, mode: int = 0o600) -> dict:
    """The saved auth file holding ``password``'s login (``None``: no saved login)."""
    content = (auth_file_content(LAB, password) + "\n").encode() if password else None
    digest = FileDigest(mode, 0, hashlib.sha256(content).hexdigest()) if content else None
    return {"FileSha256WithMode": {f"path={AUTH}": digest}}


def secret_free(commands: list) -> bool:
    token = base64.b64encode(b"robot:n3w-pass").decode()
    return not any("n3w-pass" in c or token in c for c in commands if isinstance(c, str))


@pytest.mark.parametrize("old", ["old-pass", None])
def test_new_credentials_replace_the_saved_login_once_the_registry_accepted_them(old):
    facts = {**saved_login(old), "RegistryLogin": {ASKED: None}}
    commands, _ = run_op(login_saved, facts, **LOGIN)
    assert commands == [
        f"mkdir -p -m 700 {FOLDER}",
        f"rm -f {STAGED} && ( umask 077 && : > {STAGED} )",
        ("upload", STAGED, auth_file_content(LAB, "n3w-pass") + "\n"),
        f"chmod 600 {STAGED} && mv -f {STAGED} {AUTH}",
    ]
    assert secret_free(commands)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("reading manifest latest: unauthorized: authentication required", "refused"),
        ("dial tcp 127.0.0.1:5443: connect: connection refused", "is not reachable"),
    ],
)
def test_refused_or_unreachable_keeps_the_saved_login_and_drops_the_new_one(error, words):
    facts = {**saved_login("old-pass"), "RegistryLogin": {ASKED: error}}
    commands, _ = run_op(login_saved, facts, **LOGIN)
    assert commands[-2:] == [f"rm -f {STAGED}", fail_line(f"{explain(LAB, error)}")]
    assert words in commands[-1]
    assert not any(AUTH in c for c in commands if isinstance(c, str))  # the saved one untouched
    assert secret_free(commands)


def test_saved_login_unchanged_is_a_noop_without_asking_the_registry():
    commands, host = run_op(login_saved, saved_login("n3w-pass"), **LOGIN)
    assert commands == [] and host.noops == [f"{AUTH} is up to date (secret not shown)"]
    commands, _ = run_op(login_saved, saved_login("n3w-pass", mode=0o644), **LOGIN)
    assert commands == [f"chmod 600 {AUTH}"]


def test_registry_login_fact_parses_the_probe_answer():
    assert RegistryLogin().process(["{}"]) is None
    assert RegistryLogin().process(['{"error": "unauthorized"}']) == "unauthorized"
    assert RegistryLogin().process(["Traceback"]).startswith("could not ask the registry")


def fail_line(message: str) -> str:
    return fail(message).get_raw_value()


FAKE_SKOPEO = """#!/bin/sh
echo "$@" >> "$0.args"
case "$*" in
  *:empty) echo 'reading manifest empty in r/img: manifest unknown' >&2; exit 1 ;;
  *:denied) echo 'reading manifest denied in r/img: unauthorized: authentication required' >&2; exit 1 ;;
esac
echo '{"config": {"digest": "sha256:c"}}'
"""


def test_login_probe_asks_skopeo_with_the_flags_and_a_missing_image_is_accepted(
    tmp_path, monkeypatch
):
    skopeo = tmp_path / "skopeo"
    skopeo.write_text(FAKE_SKOPEO)
    skopeo.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    flags = ["--authfile", "/s/a b.json"]
    assert registry_login({"login": "r/img:latest", "flags": flags}) == {}
    assert registry_login({"login": "r/img:empty", "flags": flags}) == {}
    denied = registry_login({"login": "r/img:denied", "flags": flags})
    assert "unauthorized" in denied["error"]
    assert (tmp_path / "skopeo.args").read_text().splitlines()[0] == (
        "inspect --raw --authfile /s/a b.json docker://r/img:latest"
    )
