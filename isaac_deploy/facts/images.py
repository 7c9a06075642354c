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
    """The digest of the project's selected files (what enters an image), the images that exist
    and the include paths the project lacks."""

    context_digest: str | None
    context_error: str | None
    images: dict[str, LocalImage]
    docker_error: str | None = None
    jobs_context_digest: str | None = None  # of the files a cluster job does not bind over
    missing: tuple[str, ...] = ()  # include paths (isaac_image_paths) the project does not have

    @property
    def error(self) -> str | None:
        """Why no image can be built from this answer (one line), or ``None``."""
        if self.context_error:
            return self.context_error
        return f"Docker is not usable: {self.docker_error}" if self.docker_error else None

    def image(self, ref: str) -> LocalImage | None:
        return self.images.get(ref) or self.images.get(image_key(ref))


class ImageBuildInputs(FactBase[BuildInputs]):
    """Digest of the project's selected files (``source/``, ``scripts/`` and the ``include``
    paths, see ``probes.context_digest``) and the engine's view of the given images, in one
    command: the project is hashed once however many images are built from it."""

    def command(self, context: str, include: list[str], images: list[str]) -> StringCommand:
        source = program("dockerapi", "context_digest", "build_inputs")
        paths = [part for path in include for part in ("-i", QuoteString(path))]
        refs = [QuoteString(ref) for ref in images]
        return StringCommand(
            PYTHON, "$py", "-c", QuoteString(source), QuoteString(context), *paths, *refs
        )

    @staticmethod
    def default() -> BuildInputs:
        return BuildInputs(None, "could not digest the build context (is python3 installed?)", {})

    def process(self, output: list[str]) -> BuildInputs:
        return parse_build_inputs("\n".join(output))


def local_build_inputs(context: str, include: tuple[str, ...], images: list[str]) -> BuildInputs:
    """This workstation's answer, by the very probe the fact runs on its target."""
    return parse_build_inputs(json.dumps(build_inputs.build_inputs(context, images, include)))


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
    return BuildInputs(
        context.get("digest"),
        None if context.get("digest") else str(context.get("error") or "no context digest"),
        images,
        data.get("error") or None,
        context.get("jobs_digest"),
        tuple(str(path) for path in context.get("missing") or ()),
    )
