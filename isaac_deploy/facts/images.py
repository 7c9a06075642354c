"""Fact: what image builds would start from, and what the current images were built from."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources

from pyinfra.api import FactBase, QuoteString, StringCommand

from .toolkit import image_key, split_sections

INPUTS_LABEL = "org.isaac-deploy.inputs"
INSPECT_FORMAT = "{{json .RepoTags}} {{json .RepoDigests}} {{.Id}} {{json .Config.Labels}}"


def _digest_script() -> str:
    return resources.files("isaac_deploy.remote").joinpath("context_digest.py").read_text()


@dataclass(frozen=True)
class LocalImage:
    id: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def inputs(self) -> str | None:
        return self.labels.get(INPUTS_LABEL)


@dataclass(frozen=True)
class BuildInputs:
    """The build context's digest (``.dockerignore`` honoured) and the images that exist."""

    context_digest: str | None
    context_error: str | None
    images: dict[str, LocalImage]
    docker_error: str | None = None

    def image(self, ref: str) -> LocalImage | None:
        return self.images.get(image_key(ref)) or self.images.get(ref)


class ImageBuildInputs(FactBase[BuildInputs]):
    """Digest of a build context plus ``docker image inspect`` of the given images, in one
    command: the context is hashed once however many images are built from it."""

    def command(self, context: str, images: list[str]) -> StringCommand:
        refs = [QuoteString(ref) for ref in images]
        return StringCommand(
            "echo @@isaac:context;",
            # the system interpreter: it starts fast (version-manager shims do not)
            "py=/usr/bin/python3; [ -x $py ] || py=python3;",
            "$py", "-c", QuoteString(_digest_script()), QuoteString(context), ";",
            "e=$(mktemp) || exit 1; echo @@isaac:inspect;",
            "docker image inspect --format", QuoteString(INSPECT_FORMAT), *refs, '2>"$e";',
            'echo @@isaac:errors; cat "$e"; rm -f "$e"',
        )  # fmt: skip

    @staticmethod
    def default() -> BuildInputs:
        return BuildInputs(None, "fact not gathered", {})

    def process(self, output: list[str]) -> BuildInputs:
        return parse_build_inputs(list(output))


def _parse_inspect(lines: list[str]) -> dict[str, LocalImage]:
    decoder = json.JSONDecoder()
    images: dict[str, LocalImage] = {}
    for line in lines:
        try:
            tags, pos = decoder.raw_decode(line)
            digests, pos = decoder.raw_decode(line, pos + 1)
            image_id, _, rest = line[pos + 1 :].partition(" ")
            labels = json.loads(rest or "null") or {}
        except ValueError:
            continue
        image = LocalImage(image_id, {str(k): str(v) for k, v in labels.items()})
        for ref in [*(tags or []), *(digests or []), image_id]:
            images[ref] = image
    return images


def parse_build_inputs(lines: list[str]) -> BuildInputs:
    sec = split_sections(lines)
    digest = error = None
    try:
        data = json.loads(" ".join(sec.get("context", [])) or "{}")
        digest, error = data.get("digest"), data.get("error")
    except ValueError:
        error = "could not digest the build context: " + " ".join(sec.get("context", []))[:200]
    if digest is None and error is None:
        error = "could not digest the build context (is python3 installed?)"
    errors = [
        line.strip()
        for line in sec.get("errors", [])
        if line.strip() and not re.search(r"no such (image|object)", line, re.I)
    ]
    return BuildInputs(
        digest, error, _parse_inspect(sec.get("inspect", [])), " ".join(errors) or None
    )
