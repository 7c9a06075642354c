"""X11 for the dev containers: the X authority cookie of the host's display made usable by the
container's user, and what the containers get besides it (the socket folder for a local display,
``QT_X11_NO_MITSHM``). Containers share the host's network, so a TCP display such as an
``ssh -X`` session's ``localhost:10.0`` is reached as it is on the host.

The cookie is written by the CLI into a memory-only folder of the running container
(:data:`COOKIE_DIR`), one file per uid, mode 0600, owned by that uid: never on the host's disk,
never world-readable, gone with the container.
"""

from __future__ import annotations

import re

from isaac_deploy.model.paths import X11_SOCKETS

COOKIE_DIR = "/run/isaac-deploy/x11"
WILDCARD_FAMILY = "ffff"
"""FamilyWild: an entry that matches any host name, as the container's differs from the host's
(the same trick as osrf/rocker's and Isaac Lab's ``x11_utils``)."""
LOCAL_DISPLAY_RE = r"(?:unix)?:(\d+)(?:\.\d+)?"


def cookie_file(uid: int) -> str:
    """The ``XAUTHORITY`` of ``uid`` in the container."""
    return f"{COOKIE_DIR}/Xauthority.{uid}"


def wildcard_cookies(nlist: str) -> bytes:
    """``xauth nlist DISPLAY``'s entries (each the hex of one binary Xauthority record) as the
    bytes of an Xauthority file whose entries match any host name: the family (the record's
    first two bytes) becomes FamilyWild."""
    records = []
    for line in nlist.splitlines():
        hex_record = "".join(line.split())
        if not hex_record:
            continue
        if not re.fullmatch(r"(?:[0-9a-fA-F]{2}){4,}", hex_record):
            raise ValueError(f"not an xauth nlist entry: {line[:20]!r}...")
        records.append(bytes.fromhex(WILDCARD_FAMILY + hex_record[4:]))
    return b"".join(records)


def local_socket(display: str) -> str | None:
    """The socket of a local display (``:0``, ``unix:1.0``), None for a TCP one."""
    match = re.fullmatch(LOCAL_DISPLAY_RE, display)
    return f"{X11_SOCKETS}/X{match.group(1)}" if match else None


def service_x11(uid: int, display: str, socket_folder: bool) -> dict[str, object]:
    """What a dev service gets for ``display`` (compose override keys): the cookie's folder in
    memory (mode 0711: each uid reaches only its own 0600 file), its ``XAUTHORITY``,
    ``QT_X11_NO_MITSHM`` (no shared memory across the container's IPC namespace) and, for a
    local display, the X server's socket folder (when the host has it: ``socket_folder``)."""
    volumes: list[dict[str, object]] = [
        {"type": "tmpfs", "target": COOKIE_DIR, "tmpfs": {"mode": 0o711}}
    ]
    if socket_folder and local_socket(display):
        volumes.append({"type": "bind", "source": X11_SOCKETS, "target": X11_SOCKETS})
    return {
        "environment": {
            "DISPLAY": display,
            "XAUTHORITY": cookie_file(uid),
            "QT_X11_NO_MITSHM": "1",
        },
        "volumes": volumes,
    }
