"""Pulls: the operation's commands (logins never on a command line), and the probe against a
fake engine on a unix socket that answers as Docker's API does (``POST /images/create`` streams
JSON lines; ``GET /distribution/<ref>/json``)."""

from __future__ import annotations

import base64
import json
import shlex
import socket
import threading

import pytest
from pyinfra.api.hiddenvalue import HiddenValue

from isaac_deploy.facts.toolkit import Toolkit
from isaac_deploy.model.registries import parse_registries
from isaac_deploy.operations import pull
from isaac_deploy.operations.util import ShownCommand
from isaac_deploy.probes import image_pull
from tests.helpers import run_op

REGISTRY = "registry.lab.example.org:5000"
BASE = f"{REGISTRY}/isaac/isaac-lab:2.1.0"
LAB = parse_registries(
    {"lab": {"address": REGISTRY, "ca_file": "/ca.crt", "username": "robot", "password_env": "T"}}
)[0]
PASSWORD = "s3cret-token-42"


def toolkit(images: dict[str, str]) -> Toolkit:
    return Toolkit(docker_server="20.10.24", images=images)


def probe_spec(command: str) -> dict:
    """The JSON argument of the ``image_pull`` probe in ``command``."""
    words = shlex.split(command)
    return json.loads(words[words.index("-c") + 2])


class TestImagesPulled:
    def test_present_images_are_a_noop(self):
        commands, host = run_op(
            pull.images_pulled,
            {},
            images=[BASE],
            toolkit=toolkit({BASE: "sha256:1"}),
            registries=[LAB],
        )
        assert commands == [] and host.noops == [f"{BASE} present"]

    def test_missing_images_of_a_registry_without_login_are_pulled_anonymously(self):
        other = "nvcr.io/nvidia/isaac-lab:2.1.0"
        commands, _ = run_op(
            pull.images_pulled,
            {},
            images=[BASE, other],
            toolkit=toolkit({BASE: "sha256:1"}),
            registries=[LAB],
        )
        assert len(commands) == 1
        assert probe_spec(commands[0]) == {"images": [other], "interval": 5}

    def test_a_local_login_is_named_never_given(self):
        ngc = parse_registries(
            {
                "ngc": {
                    "address": "nvcr.io",
                    "username": "$oauthtoken",
                    "password_env": "NGC_API_KEY",
                    "password_file": "~/.config/isaac-deploy/ngc_api_key",
                }
            }
        )[0]
        ref = "nvcr.io/nvidia/isaac-lab:2.1.0"
        commands, _ = run_op(
            pull.images_pulled,
            {},
            images=[ref],
            toolkit=toolkit({}),
            registries=[ngc],
            local_logins=True,
        )
        assert probe_spec(commands[0])["logins"] == {
            "nvcr.io": {
                "username": "$oauthtoken",
                "env": "NGC_API_KEY",
                "file": "~/.config/isaac-deploy/ngc_api_key",
            }
        }

    def test_the_pull_shows_its_output_as_it_runs(self):
        (command,) = pull.images_pulled._inner(images=[BASE], toolkit=toolkit({}))
        assert isinstance(command, ShownCommand)

    def test_login_goes_to_a_private_config_of_these_pulls_only(self):
        commands, _ = run_op(
            pull.images_pulled,
            {},
            images=[BASE],
            toolkit=toolkit({}),
            registries=[LAB],
            passwords={"lab": HiddenValue(PASSWORD)},
        )
        tmp = "/run/isaac-deploy/pull/.config.json.isaac-deploy.tmp"
        config = "/run/isaac-deploy/pull/config.json"
        assert commands[:2] == [
            "mkdir -p -m 700 /run/isaac-deploy/pull",
            f"rm -f {tmp} && ( umask 077 && : > {tmp} )",
        ]
        upload = commands[2]
        auth = json.loads(upload[2])["auths"][REGISTRY]["auth"]
        assert upload[:2] == ("upload", tmp) and auth == "cm9ib3Q6czNjcmV0LXRva2VuLTQy"  # robot:...
        assert commands[3] == f"chmod 600 {tmp} && mv -f {tmp} {config}"
        assert commands[4].startswith("( py=") and commands[4].endswith(
            " ); code=$?; rm -rf /run/isaac-deploy/pull ; exit $code"
        )
        inner = commands[4][2 : commands[4].index(" ); code=$?")]
        assert probe_spec(inner)["logins"] == {REGISTRY: {"config": config}}
        assert not any(PASSWORD in str(c) for c in commands)  # the upload is base64 only


# ------------------------------------------------------------------------ the probe, fake engine
LAYERS = [("a1", 4_000_000), ("b2", 2_000_000), ("c3", 1_000)]


def pull_events(layers=LAYERS) -> list[dict]:
    """What Docker 20.10's engine streams for a pull (one layer there already)."""
    events = [{"status": "Pulling from nvidia/isaac-lab", "id": "2.1.0"}]
    events.append({"status": "Already exists", "id": layers[0][0]})
    for layer, _ in layers[1:]:
        events.append({"status": "Pulling fs layer", "id": layer})
    for layer, total in layers[1:]:
        for current in (total // 2, total):
            events.append(
                {
                    "status": "Downloading",
                    "id": layer,
                    "progressDetail": {"current": current, "total": total},
                }
            )
        events += [
            {"status": "Download complete", "id": layer},
            {"status": "Extracting", "id": layer, "progressDetail": {"current": 1, "total": 2}},
            {"status": "Pull complete", "id": layer},
        ]
    events += [{"status": "Digest: sha256:" + "d" * 64}, {"status": "Status: Downloaded newer"}]
    return events


class FakeEngine:
    """A unix socket answering each request with ``answer(method, url, headers)``."""

    def __init__(self, path, answer):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.answer = answer
        self.requests: list[tuple[str, str, dict]] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                lines = data.split(b"\r\n\r\n")[0].decode().split("\r\n")
                method, url, _ = lines[0].split(" ")
                headers = dict(line.split(": ", 1) for line in lines[1:])
                self.requests.append((method, url, headers))
                status, body = self.answer(method, url, headers)
                conn.sendall(f"HTTP/1.0 {status} X\r\nContent-Type: x\r\n\r\n".encode() + body)


@pytest.fixture
def engine(tmp_path, monkeypatch):
    def start(answer):
        path = tmp_path / "docker.sock"
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        return FakeEngine(path, answer)

    return start


def stream(events: list[dict]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\r\n" for e in events)


def test_a_pull_says_how_far_it_is_in_plain_lines(engine, capsys, monkeypatch):
    fake = engine(lambda *_: (200, stream(pull_events())))
    monkeypatch.setenv("LAB_TOKEN", PASSWORD)
    login = {"username": "robot", "env": "LAB_TOKEN"}
    spec = {"images": [BASE], "logins": {REGISTRY: login}, "interval": 0}
    assert image_pull.main(spec) == 0
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out  # a log stays readable
    lines = out.splitlines()
    assert lines[0] == f"pulling {BASE} from {REGISTRY}"
    assert f"pulling {BASE}: 2/3 layers, 2.0 MB of 2.0 MB downloaded" in lines
    assert lines[-1].startswith(f"pulled {BASE} in ") and lines[-1].endswith(
        ": 3/3 layers, 2.0 MB of 2.0 MB downloaded"
    )
    method, url, headers = fake.requests[0]
    assert (method, url) == (
        "POST",
        "/images/create?fromImage="
        + "registry.lab.example.org%3A5000%2Fisaac%2Fisaac-lab&tag=2.1.0",
    )
    auth = json.loads(base64.urlsafe_b64decode(headers["X-Registry-Auth"]))
    assert auth == {"username": "robot", "password": PASSWORD, "serveraddress": REGISTRY}
    assert PASSWORD not in out


def test_a_refused_pull_is_one_error_line(engine, capsys):
    error = "unauthorized: authentication required"
    events = [{"errorDetail": {"message": error}, "error": error}]
    engine(lambda *_: (200, stream(events)))
    assert image_pull.main({"images": [BASE], "interval": 5}) == 1
    err = capsys.readouterr().err
    assert err == f"error: pulling {BASE}: {error}\n"


def test_the_check_asks_the_registry_through_the_engine_and_pulls_nothing(engine, capsys, tmp_path):
    config = tmp_path / "config.json"
    token = base64.b64encode(b"robot:" + PASSWORD.encode()).decode()
    config.write_text(json.dumps({"auths": {REGISTRY: {"auth": token}}}))
    missing = f"{REGISTRY}/isaac/isaac-lab:nope"

    def answer(method, url, headers):
        if "nope" in url:
            return 404, b'{"message":"manifest unknown: manifest unknown"}'
        return 200, b'{"Descriptor":{}}'

    fake = engine(answer)
    spec = {"images": [BASE, missing], "logins": {REGISTRY: {"config": str(config)}}, "check": True}
    assert image_pull.main(spec) == 0
    answers = json.loads(capsys.readouterr().out)
    assert answers == {BASE: None, missing: "manifest unknown: manifest unknown"}
    assert all(
        method == "GET" and url.startswith("/distribution/") for method, url, _ in fake.requests
    )
    auth = json.loads(base64.urlsafe_b64decode(fake.requests[0][2]["X-Registry-Auth"]))
    assert auth["password"] == PASSWORD


def test_a_login_file_is_read_where_the_probe_runs(tmp_path, monkeypatch):
    secret = tmp_path / "key"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.delenv("NGC_API_KEY", raising=False)
    login = {"username": "$oauthtoken", "env": "NGC_API_KEY", "file": str(secret)}
    auth = json.loads(base64.urlsafe_b64decode(image_pull.registry_auth("nvcr.io", login)))
    assert auth == {"username": "$oauthtoken", "password": PASSWORD, "serveraddress": "nvcr.io"}
    assert image_pull.registry_auth("nvcr.io", None) is None


@pytest.mark.parametrize(
    ("ref", "split", "registry"),
    [
        ("nvcr.io/nvidia/isaac-lab:2.1.0", ("nvcr.io/nvidia/isaac-lab", "2.1.0"), "nvcr.io"),
        (
            "127.0.0.1:5443/nvidia/isaac-lab",
            ("127.0.0.1:5443/nvidia/isaac-lab", "latest"),
            "127.0.0.1:5443",
        ),
        ("isaac-lab-base:latest", ("isaac-lab-base", "latest"), "docker.io"),
        ("r.io/a@sha256:" + "e" * 64, ("r.io/a", "sha256:" + "e" * 64), "r.io"),
    ],
)
def test_references(ref, split, registry):
    assert tuple(image_pull.split_ref(ref)) == split and image_pull.registry_of(ref) == registry


def test_a_login_named_but_found_nowhere_pulls_anonymously(monkeypatch, tmp_path):
    monkeypatch.delenv("NGC_API_KEY", raising=False)
    login = {"username": "$oauthtoken", "env": "NGC_API_KEY", "file": str(tmp_path / "none")}
    assert image_pull.registry_auth("nvcr.io", login) is None
