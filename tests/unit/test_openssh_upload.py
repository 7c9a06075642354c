"""The ``@openssh`` connector's uploads: streamed into ``cat >`` on the host, as the user the
operation runs as (``_sudo``/``_sudo_user``), bytes unchanged; never a temporary file of the SSH
user that the target user would have to take over."""

from __future__ import annotations

import io
import shlex
import subprocess

from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_state

BINARY = bytes(range(256)) * 3  # no trailing newline, NUL bytes: a plugin binary's content


def connector(monkeypatch, run_locally: bool = False):
    """The connector of ``@openssh/pc01``; its stream to the host is recorded (and, with
    ``run_locally``, run here with ``sh -c`` as ssh would run it there)."""
    inventory = Inventory((["@openssh/pc01"], {}))
    state = State(inventory, Config())
    pc = inventory.get_host("@openssh/pc01")
    seen: dict = {}

    def stream(command, stdin=None, stdout=None):
        data = stdin.read()
        seen.update(command=command, data=data)
        if run_locally:
            subprocess.run(["sh", "-c", command], input=data, check=True)

    monkeypatch.setattr(pc.connector, "_stream", stream)
    return state, pc.connector, seen


def test_upload_as_the_sudo_user_runs_cat_as_that_user(monkeypatch):
    state, ssh, seen = connector(monkeypatch)
    with ctx_state.use(state):
        ssh.put_file(io.BytesIO(BINARY), "/home/alice/my file", _sudo=True, _sudo_user="alice")
    words = shlex.split(seen["command"])
    assert words[:7] == ["sudo", "-H", "-n", "-u", "alice", "sh", "-c"]
    assert shlex.split(words[7]) == ["cat", ">", "/home/alice/my file"]
    assert seen["data"] == BINARY


def test_upload_with_sudo_alone_writes_as_root(monkeypatch):
    state, ssh, seen = connector(monkeypatch)
    with ctx_state.use(state):
        ssh.put_file(io.StringIO("a\nb"), "/etc/docker/certs.d/r:5000/ca.crt", _sudo=True)
    words = shlex.split(seen["command"])
    assert words[:4] == ["sudo", "-H", "-n", "sh"] and "-u" not in words
    assert seen["data"] == b"a\nb"  # text unchanged too: no newline added


def test_plain_upload_writes_the_exact_bytes(monkeypatch, tmp_path):
    state, ssh, seen = connector(monkeypatch, run_locally=True)
    target = tmp_path / "dir with space" / "plugin"
    target.parent.mkdir()
    with ctx_state.use(state):
        assert ssh.put_file(io.BytesIO(BINARY), str(target)) is True
    assert shlex.split(seen["command"])[:2] == ["sh", "-c"]
    assert target.read_bytes() == BINARY
