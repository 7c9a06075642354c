"""Fact: what image builds would start from, and what the current images were built from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pyinfra.api import FactBase, QuoteString, StringCommand

from isaac_deploy.facts.toolkit import image_key
from isaac_deploy.model.images import INPUTS_LABEL, JOBS_INPUTS_LABEL
from isaac_deploy.probes import PYTHON, build_inputs, program


@dataclass(frozen=True)
class LocalImage:
    id: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def inputs(self) -> str | None:
        return self.labels.get(INPUTS_LABEL)

    @property
    def jobs_inputs(self) -> str | None:
        return self.labels.get(JOBS_INPUTS_LABEL)


@dataclass(frozen=True)
class BuildInputs:
    """The build context's digest (``.dockerignore`` honoured), the digest of each Dockerfile's
    text (``"sha256:..."`` by path; a Dockerfile that cannot be read has an error instead) and
    the images that exist."""

    context_digest: str | None
    context_error: str | None
    images: dict[str, LocalImage]
    docker_error: str | None = None
    dockerfiles: dict[str, str] = field(default_factory=dict)
    dockerfile_errors: dict[str, str] = field(default_factory=dict)
    jobs_context_digest: str | None = None  # of the files a cluster job does not bind over

    @property
    def error(self) -> str | None:
        """Why no image can be built from this answer (one line), or ``None``."""
        if self.context_error:
            return self.context_error
        return f"Docker is not usable: {self.docker_error}" if self.docker_error else None

    def image(self, ref: str) -> LocalImage | None:
        return self.images.get(ref) or self.images.get(image_key(ref))

    def dockerfile_error(self, path: str) -> str | None:
        """Why ``path`` has no digest, or ``None`` when it has one."""
        if path in self.dockerfiles:
            return None
        return self.dockerfile_errors.get(path) or f"no digest of Dockerfile {path}"


class ImageBuildInputs(FactBase[BuildInputs]):
    """Digest of a build context, of the given Dockerfiles' text and the engine's view of the
    given images, in one command: the context is hashed once however many images are built
    from it."""

    def command(self, context: str, dockerfiles: list[str], images: list[str]) -> StringCommand:
        source = program("dockerapi", "context_digest", "build_inputs")
        files = [part for path in dockerfiles for part in ("-f", QuoteString(path))]
        refs = [QuoteString(ref) for ref in images]
        return StringCommand(
            PYTHON, "$py", "-c", QuoteString(source), QuoteString(context), *files, *refs
        )

    @staticmethod
    def default() -> BuildInputs:
        return BuildInputs(None, "could not digest the build context (is python3 installed?)", {})

    def process(self, output: list[str]) -> BuildInputs:
        return parse_build_inputs("\n".join(output))


def local_build_inputs(context: str, dockerfiles: list[str], images: list[str]) -> BuildInputs:
    """This workstation's answer, by the very probe the fact runs on its target."""
    return parse_build_inputs(json.dumps(build_inputs.build_inputs(context, images, dockerfiles)))


def parse_build_inputs(output: str) -> BuildInputs:
    try:
        data = json.loads(output)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return BuildInputs(None, f"could not digest the build context: {output[:200]}", {})
    context = data.get("context") or {}
    images = {}
    for ref, value in (data.get("images") or {}).items():
        if isinstance(value, dict) and value.get("id"):
            labels = {str(k): str(v) for k, v in (value.get("labels") or {}).items()}
            images[ref] = LocalImage(value["id"], labels)
    dockerfiles, dockerfile_errors = {}, {}
    for path, value in (data.get("dockerfiles") or {}).items():
        entry = value if isinstance(value, dict) else {}
        if entry.get("digest"):
            dockerfiles[path] = str(entry["digest"])
        else:
            dockerfile_errors[path] = str(entry.get("error") or f"no digest of Dockerfile {path}")
    return BuildInputs(
        context.get("digest"),
        None if context.get("digest") else str(context.get("error") or "no context digest"),
        images,
        data.get("error") or None,
        dockerfiles,
        dockerfile_errors,
        context.get("jobs_digest"),
    )
