"""One fact for the whole workstation toolkit, gathered by a single command.

The command runs :mod:`isaac_deploy.probes.toolkit_probe` with the target's python3: it
prints one JSON object with the raw outputs (user, OS, ``nvidia-smi``, ``nvidia-ctk``, Docker
engine and CLI, Compose, Apptainer/Singularity, ``daemon.json``, disk, images, and the paths,
files and digests asked for). :func:`parse_toolkit` turns that into a :class:`Toolkit`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pyinfra.api import FactBase, QuoteString, StringCommand

from isaac_deploy.facts.files import FileDigest
from isaac_deploy.model.workstation import HostUser
from isaac_deploy.probes import PYTHON, program, toolkit_probe
from isaac_deploy.probes.dockerapi import DEFAULT_HOST

VERSION_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?)")
EndpointSource = Literal["DOCKER_HOST", "DOCKER_CONTEXT", "context", "default"]


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    driver: str
    memory: str


@dataclass(frozen=True)
class DockerEndpoint:
    """The engine the probe asked, chosen as the docker CLI chooses it, and what chose it:
    ``DOCKER_HOST``, the context named by ``DOCKER_CONTEXT``, the config's current ``context``
    (``docker context use``), else the ``default`` socket."""

    host: str | None = DEFAULT_HOST  # None: a context without a Docker endpoint
    source: EndpointSource = "default"
    context: str | None = None
    local_default: bool = True  # this machine's default socket, where a started dockerd listens


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
    docker_endpoint: DockerEndpoint = DockerEndpoint()
    dockerd: str | None = None
    sudo: str | None = None
    docker_root: str | None = None
    runtimes: tuple[str, ...] = ()
    default_runtime: str | None = None
    compose: str | None = None
    compose_standalone: str | None = None
    nvidia_ctk: str | None = None
    daemon_json: dict | None = None
    daemon_json_error: str | None = None
    apptainer: str | None = None
    singularity: str | None = None
    free_kib: int | None = None
    images: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    files: dict[str, str | None] = field(default_factory=dict)
    digests: dict[str, FileDigest | None] = field(default_factory=dict)
    extensions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Project folder -> the extension packages in its ``source/`` (``probes.extensions``)."""

    @property
    def nvidia_runtime_configured(self) -> bool:
        in_daemon_json = "nvidia" in ((self.daemon_json or {}).get("runtimes") or {})
        return "nvidia" in self.runtimes or in_daemon_json

    @property
    def docker_engine_missing(self) -> bool:
        """No local engine to start: no ``dockerd`` and none answering (a client may exist)."""
        return not self.dockerd and not self.docker_server and not self.docker_permission_denied

    @property
    def docker_permission_denied(self) -> bool:
        return bool(self.docker_server_error and "permission denied" in self.docker_server_error)

    def has_image(self, ref: str) -> bool:
        return image_key(ref) in self.images

    def path_kind(self, path: str) -> str:
        return self.paths.get(path, "missing")


def image_key(ref: str) -> str:
    """Normalise an image reference the way Docker lists it (implicit ``:latest``)."""
    last = ref.rsplit("/", 1)[-1]
    return ref if (":" in last or "@" in last) else f"{ref}:latest"


def _version(text: Any) -> str | None:
    match = VERSION_RE.search(text) if isinstance(text, str) else None
    return match.group(1) if match else None


def _command(data: dict, name: str) -> tuple[int | None, str]:
    result = (data.get("commands") or {}).get(name)
    if not isinstance(result, dict):
        return None, ""
    return result.get("rc"), str(result.get("out") or "")


def _tool_version(data: dict, name: str) -> str | None:
    rc, out = _command(data, name)
    return _version(out) if rc == 0 else None


def _parse_user(raw: Any) -> HostUser | None:
    if not isinstance(raw, dict):
        return None
    try:
        return HostUser(
            name=raw["name"],
            uid=raw["uid"],
            gid=raw["gid"],
            home=raw.get("home") or "/",
            shell=raw.get("shell") or "/bin/sh",
            groups=tuple(raw.get("groups") or ()),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _parse_gpus(data: dict) -> tuple[tuple[Gpu, ...], str | None, str | None]:
    rc, out = _command(data, "nvidia-smi")
    if rc is None:
        return (), None, None
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if rc != 0:
        return (), None, " ".join(lines) or f"nvidia-smi failed (exit {rc})"
    gpus = []
    for line in lines:
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            return (), None, f"unexpected nvidia-smi output: {line}"
        gpus.append(Gpu(int(parts[0]), parts[1], parts[2], parts[3]))
    if not gpus:
        return (), None, "nvidia-smi found no GPU"
    return tuple(gpus), gpus[0].driver, None


def _parse_daemon_json(text: Any) -> tuple[dict | None, str | None]:
    if not isinstance(text, str) or not text.strip():
        return None, None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, f"/etc/docker/daemon.json is not valid JSON: {exc}"
    if not isinstance(value, dict):
        return None, "/etc/docker/daemon.json is not a JSON object"
    return value, None


def _parse_endpoint(raw: Any) -> DockerEndpoint:
    """The endpoint the probe asked; the default, none (an older probe) or a garbled one: the
    default socket."""
    source = raw.get("source") if isinstance(raw, dict) else None
    if source not in ("DOCKER_HOST", "DOCKER_CONTEXT", "context"):
        return DockerEndpoint()
    host, context = raw.get("host"), raw.get("context")
    return DockerEndpoint(
        host=host if isinstance(host, str) else None,
        source=source,
        context=context if isinstance(context, str) else None,
        local_default=raw.get("local_default") is True,
    )


def _parse_images(raw: Any) -> dict[str, str]:
    images = {}
    for image in raw if isinstance(raw, list) else []:
        for tag in (image.get("RepoTags") or []) if isinstance(image, dict) else []:
            if not tag.startswith("<none>"):
                images[tag] = image.get("Id", "")
    return images


def _parse_digests(raw: Any) -> dict[str, FileDigest | None]:
    digests: dict[str, FileDigest | None] = {}
    for path, value in (raw or {}).items() if isinstance(raw, dict) else []:
        ok = isinstance(value, dict) and {"mode", "uid", "sha256"} <= set(value)
        digests[path] = FileDigest(value["mode"], value["uid"], value["sha256"]) if ok else None
    return digests


def parse_toolkit(output: str) -> Toolkit:
    """Parse the probe's JSON; garbage or nothing gives an empty Toolkit."""
    try:
        data = json.loads(output)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Toolkit()
    osr = data.get("os") or {}
    which = data.get("which") or {}
    engine = data.get("engine") or {}
    info = engine.get("info") if isinstance(engine.get("info"), dict) else {}
    version = engine.get("version") if isinstance(engine.get("version"), dict) else {}
    gpus, driver, smi_error = _parse_gpus(data)
    daemon_json, daemon_json_error = _parse_daemon_json(data.get("daemon_json"))
    server = _version(version.get("Version"))
    runtimes = info.get("Runtimes")
    return Toolkit(
        user=_parse_user(data.get("user")),
        os_id=str(osr.get("id") or "unknown"),
        os_version=str(osr.get("version") or ""),
        os_codename=str(osr.get("codename") or ""),
        arch=str(osr.get("arch") or ""),
        init=str(osr.get("init") or ""),
        gpus=gpus,
        nvidia_driver=driver,
        nvidia_smi_error=smi_error,
        docker_client=_tool_version(data, "docker-client"),
        docker_server=server,
        docker_server_error=None
        if server or not which.get("docker")
        else str(engine.get("error") or "Docker daemon not reachable"),
        docker_endpoint=_parse_endpoint(engine.get("endpoint")),
        dockerd=which.get("dockerd"),
        sudo=which.get("sudo"),
        docker_root=info.get("DockerRootDir") or None,
        runtimes=tuple(sorted(runtimes)) if isinstance(runtimes, dict) else (),
        default_runtime=info.get("DefaultRuntime") or None,
        compose=_tool_version(data, "compose"),
        compose_standalone=_tool_version(data, "compose-standalone"),
        nvidia_ctk=_tool_version(data, "nvidia-ctk"),
        daemon_json=daemon_json,
        daemon_json_error=daemon_json_error,
        apptainer=_tool_version(data, "apptainer"),
        singularity=_tool_version(data, "singularity"),
        free_kib=data.get("free_kib") if isinstance(data.get("free_kib"), int) else None,
        images=_parse_images(engine.get("images")),
        paths={k: v for k, v in (data.get("paths") or {}).items() if isinstance(v, str)},
        files={
            k: v for k, v in (data.get("read") or {}).items() if isinstance(v, (str, type(None)))
        },
        digests=_parse_digests(data.get("digest")),
        extensions={
            folder: tuple(n for n in names if isinstance(n, str))
            for folder, names in (data.get("extensions") or {}).items()
            if isinstance(names, list)
        },
    )


class WorkstationToolkit(FactBase[Toolkit]):
    """Driver, GPUs, Docker, Compose, NVIDIA Container Toolkit, Apptainer, disk, images and the
    user, plus the kinds of ``paths``, the contents of ``read``, the digests of ``digest`` and
    the extension packages of the project folders in ``extensions`` (``~`` is the target user's
    home), in one command.

    .. code:: python

        toolkit = host.get_fact(WorkstationToolkit, paths=["/srv/ext"])
        toolkit.docker_server, toolkit.gpus, toolkit.user.uid, toolkit.path_kind("/srv/ext")
    """

    def command(
        self,
        paths: tuple[str, ...] = (),
        read: tuple[str, ...] = (),
        digest: tuple[str, ...] = (),
        extensions: tuple[str, ...] = (),
    ) -> StringCommand:
        args = json.dumps(
            {
                "paths": list(paths),
                "read": list(read),
                "digest": list(digest),
                "extensions": list(extensions),
            }
        )
        source = program("dockerapi", "extensions", "toolkit_probe")
        return StringCommand(PYTHON, "$py", "-c", QuoteString(source), QuoteString(args))

    @staticmethod
    def default() -> Toolkit:
        return Toolkit()

    def process(self, output: list[str]) -> Toolkit:
        return parse_toolkit("\n".join(output))


def local_toolkit(paths_to_probe: tuple[str, ...] = ()) -> Toolkit:
    """This machine's toolkit, by the very probe the deploy's fact runs on its target."""
    return parse_toolkit(json.dumps(toolkit_probe.probe({"paths": list(paths_to_probe)})))


def local_user() -> HostUser:
    raw = toolkit_probe.user_info()
    return HostUser(**{**raw, "groups": tuple(raw["groups"])})
