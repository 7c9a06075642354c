"""One fact for the whole workstation toolkit, gathered by a single shell command.

The command prints sections (``@@isaac:<name>``) with the raw output of ``id``, ``nvidia-smi``,
``docker version``/``info``, ``docker compose``, ``nvidia-ctk``, ``apptainer``/``singularity``,
``df`` and ``docker images``; :func:`parse_toolkit` turns them into a :class:`Toolkit`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pyinfra.api import FactBase

from ..config import HostUser

MARK = "@@isaac:"

# Each section prints raw output only; "rc=N" lines carry exit codes where they matter.
TOOLKIT_SCRIPT = r"""
t=$(mktemp -d) || exit 1
if command -v docker >/dev/null 2>&1; then
  { docker version --format '{{json .}}' 2>"$t/version.err"; cat "$t/version.err"; } >"$t/version" &
  docker info --format '{{json .DockerRootDir}} {{json .Runtimes}} {{json .DefaultRuntime}}' \
    >"$t/info" 2>/dev/null &
  docker compose version --short >"$t/compose" 2>/dev/null &
  docker images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}' >"$t/images" 2>/dev/null &
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  { nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader 2>&1
    echo "rc=$?"; } >"$t/smi" &
fi
s() { echo "@@isaac:$1"; [ -z "${2:-}" ] || cat "$t/$2" 2>/dev/null; }
s user; id -un; id -u; id -g; id -Gn; getent passwd "$(id -u)" | cut -d: -f6,7
s os
( . /etc/os-release 2>/dev/null; echo "${ID:-unknown} ${VERSION_ID:-} ${VERSION_CODENAME:-}" )
uname -m
s pid1; cat /proc/1/comm 2>/dev/null
s dockerd; command -v dockerd 2>/dev/null
s sudo; command -v sudo 2>/dev/null
s compose-v1
command -v docker-compose >/dev/null 2>&1 && docker-compose version --short 2>/dev/null
s nvidia-ctk; command -v nvidia-ctk >/dev/null 2>&1 && nvidia-ctk --version 2>/dev/null | head -n 1
s daemon-json; cat /etc/docker/daemon.json 2>/dev/null
s apptainer; command -v apptainer >/dev/null 2>&1 && apptainer --version 2>/dev/null
s singularity; command -v singularity >/dev/null 2>&1 && singularity --version 2>/dev/null
wait
s nvidia-smi smi
s docker-version version
s docker-info info
s compose compose
s images images
s df
root=$(sed -n 's/^"\([^"]*\)".*/\1/p' "$t/info" 2>/dev/null)
[ -n "$root" ] || root=/var/lib/docker
while [ ! -e "$root" ] && [ "$root" != / ]; do root=$(dirname "$root"); done
df -Pk "$root" 2>/dev/null | tail -n 1
s end
rm -rf "$t"
"""


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    driver: str
    memory: str


@dataclass(frozen=True)
class Toolkit:
    """What the workstation has; ``None`` means not installed / not found."""

    user: HostUser | None = None
    os_id: str = "unknown"
    os_version: str = ""
    os_codename: str = ""
    arch: str = ""
    init: str = ""
    gpus: tuple[Gpu, ...] = ()
    nvidia_driver: str | None = None
    nvidia_smi_error: str | None = None
    docker_client: str | None = None
    docker_server: str | None = None
    docker_server_error: str | None = None
    dockerd: str | None = None
    sudo: str | None = None
    docker_root: str | None = None
    runtimes: tuple[str, ...] = ()
    default_runtime: str | None = None
    compose: str | None = None
    compose_v1: str | None = None
    nvidia_ctk: str | None = None
    daemon_json: dict | None = None
    daemon_json_error: str | None = None
    apptainer: str | None = None
    singularity: str | None = None
    free_kib: int | None = None
    images: dict[str, str] = field(default_factory=dict)

    @property
    def nvidia_runtime_configured(self) -> bool:
        in_daemon_json = "nvidia" in ((self.daemon_json or {}).get("runtimes") or {})
        return "nvidia" in self.runtimes or in_daemon_json

    @property
    def docker_permission_denied(self) -> bool:
        return bool(self.docker_server_error and "permission denied" in self.docker_server_error)

    def has_image(self, ref: str) -> bool:
        return image_key(ref) in self.images


def image_key(ref: str) -> str:
    """Normalise an image reference the way ``docker images`` lists it (implicit ``:latest``)."""
    last = ref.rsplit("/", 1)[-1]
    return ref if (":" in last or "@" in last) else f"{ref}:latest"


def split_sections(lines: list[str]) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(MARK):
            current = sections.setdefault(line[len(MARK) :].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


VERSION_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?)")


def _version(lines: list[str]) -> str | None:
    for line in lines:
        match = VERSION_RE.search(line)
        if match:
            return match.group(1)
    return None


def _parse_user(lines: list[str]) -> HostUser | None:
    if len(lines) < 3 or not lines[1].strip().isdigit() or not lines[2].strip().isdigit():
        return None
    home, shell = "", "/bin/sh"
    if len(lines) > 4 and ":" in lines[4]:
        home, shell = lines[4].split(":", 1)
    return HostUser(
        name=lines[0].strip(),
        uid=int(lines[1]),
        gid=int(lines[2]),
        home=home.strip() or "/",
        shell=shell.strip() or "/bin/sh",
        groups=tuple(lines[3].split()) if len(lines) > 3 else (),
    )


def _parse_gpus(lines: list[str]) -> tuple[tuple[Gpu, ...], str | None, str | None]:
    if not lines:
        return (), None, None
    rc_line = next((line for line in reversed(lines) if line.startswith("rc=")), "rc=1")
    body = [line for line in lines if not line.startswith("rc=") and line.strip()]
    if rc_line != "rc=0":
        return (), None, " ".join(body).strip() or "nvidia-smi failed"
    gpus = []
    for line in body:
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            return (), None, f"unexpected nvidia-smi output: {line.strip()}"
        gpus.append(Gpu(int(parts[0]), parts[1], parts[2], parts[3]))
    driver = gpus[0].driver if gpus else None
    return tuple(gpus), driver, None if gpus else "nvidia-smi found no GPU"


def _parse_docker_version(lines: list[str]) -> tuple[str | None, str | None, str | None]:
    """``docker version --format '{{json .}}'`` then its stderr: client, server, error."""
    if not lines:
        return None, None, None
    client = server = None
    try:
        data = json.loads(lines[0])
        client = (data.get("Client") or {}).get("Version")
        server = (data.get("Server") or {}).get("Version")
        errors = lines[1:]
    except (ValueError, AttributeError):
        errors = lines
    error = " ".join(line.strip() for line in errors if line.strip())
    server_version = _version([server]) if server else None
    return (
        _version([client]) if client else None,
        server_version,
        None if server_version else (error or "Docker daemon not reachable"),
    )


def _parse_info(lines: list[str]) -> tuple[str | None, tuple[str, ...], str | None]:
    text = " ".join(lines).strip()
    if not text:
        return None, (), None
    try:
        decoder = json.JSONDecoder()
        values, pos = [], 0
        while pos < len(text):
            value, end = decoder.raw_decode(text, pos)
            values.append(value)
            pos = end
            while pos < len(text) and text[pos] == " ":
                pos += 1
        root, runtimes, default = (values + [None, None, None])[:3]
    except ValueError:
        return None, (), None
    names = tuple(sorted(runtimes)) if isinstance(runtimes, dict) else ()
    return (
        root if isinstance(root, str) and root else None,
        names,
        default if isinstance(default, str) and default else None,
    )


def _parse_daemon_json(lines: list[str]) -> tuple[dict | None, str | None]:
    text = "\n".join(lines).strip()
    if not text:
        return None, None
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f"/etc/docker/daemon.json is not valid JSON: {exc}"
    return (
        (data, None)
        if isinstance(data, dict)
        else (None, "/etc/docker/daemon.json is not an object")
    )


def _parse_df(lines: list[str]) -> int | None:
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[3].isdigit():
            return int(parts[3])
    return None


def _parse_images(lines: list[str]) -> dict[str, str]:
    images = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and not parts[0].startswith("<none>"):
            images[parts[0]] = parts[1]
    return images


def parse_toolkit(lines: list[str]) -> Toolkit:
    """Parse the sectioned output of :data:`TOOLKIT_SCRIPT`; garbage gives an empty Toolkit."""
    sec = split_sections(lines)
    os_line = (sec.get("os") or [""])[0].split()
    gpus, driver, smi_error = _parse_gpus(sec.get("nvidia-smi", []))
    client, server, server_error = _parse_docker_version(sec.get("docker-version", []))
    root, runtimes, default_runtime = _parse_info(sec.get("docker-info", []))
    daemon_json, daemon_json_error = _parse_daemon_json(sec.get("daemon-json", []))
    return Toolkit(
        user=_parse_user(sec.get("user", [])),
        os_id=os_line[0] if os_line else "unknown",
        os_version=os_line[1] if len(os_line) > 1 else "",
        os_codename=os_line[2] if len(os_line) > 2 else "",
        arch=(sec.get("os") or ["", ""])[1].strip() if len(sec.get("os") or []) > 1 else "",
        init=" ".join(sec.get("pid1", [])).strip(),
        gpus=gpus,
        nvidia_driver=driver,
        nvidia_smi_error=smi_error,
        docker_client=client,
        docker_server=server,
        docker_server_error=server_error,
        dockerd=(sec.get("dockerd") or [None])[0],
        sudo=(sec.get("sudo") or [None])[0],
        docker_root=root,
        runtimes=runtimes,
        default_runtime=default_runtime,
        compose=_version(sec.get("compose", [])),
        compose_v1=_version(sec.get("compose-v1", [])),
        nvidia_ctk=_version(sec.get("nvidia-ctk", [])),
        daemon_json=daemon_json,
        daemon_json_error=daemon_json_error,
        apptainer=_version(sec.get("apptainer", [])),
        singularity=_version(sec.get("singularity", [])),
        free_kib=_parse_df(sec.get("df", [])),
        images=_parse_images(sec.get("images", [])),
    )


class WorkstationToolkit(FactBase[Toolkit]):
    """Driver, GPUs, Docker, Compose, NVIDIA Container Toolkit, Apptainer, disk, images, user.

    .. code:: python

        toolkit = host.get_fact(WorkstationToolkit)
        toolkit.docker_server, toolkit.gpus, toolkit.user.uid
    """

    def command(self) -> str:
        return TOOLKIT_SCRIPT.strip()

    @staticmethod
    def default() -> Toolkit:
        return Toolkit()

    def process(self, output: list[str]) -> Toolkit:
        return parse_toolkit(list(output))
