"""Fact: what an image build would start from and what the current image was built from."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources

from pyinfra.api import FactBase, QuoteString, StringCommand

from .toolkit import split_sections

INPUTS_LABEL = "org.isaac-deploy.inputs"


def _digest_script() -> str:
    return resources.files("isaac_deploy.remote").joinpath("context_digest.py").read_text()


@dataclass(frozen=True)
class ImageBuildState:
    context_digest: str | None
    context_error: str | None
    image_id: str | None
    image_inputs: str | None
    base_id: str | None
    docker_error: str | None = None


class ImageBuild(FactBase[ImageBuildState]):
    """Digest of the build context (honouring ``.dockerignore``), the image's recorded inputs
    (label ``org.isaac-deploy.inputs``) and the base image's ID, in one command."""

    def command(self, context: str, image: str, base_image: str) -> StringCommand:
        return StringCommand(
            "echo @@isaac:context;",
            "python3", "-c", QuoteString(_digest_script()), QuoteString(context), ";",
            "echo @@isaac:image;",
            "docker", "image", "inspect", "--format",
            QuoteString("{{.Id}} {{json .Config.Labels}}"), QuoteString(image), "2>/dev/null;",
            "echo @@isaac:base;",
            "docker", "image", "inspect", "--format", "'{{.Id}}'", QuoteString(base_image),
            "2>&1;", "true",
        )  # fmt: skip

    @staticmethod
    def default() -> ImageBuildState:
        return ImageBuildState(None, "fact not gathered", None, None, None)

    def process(self, output: list[str]) -> ImageBuildState:
        return parse_image_build(list(output))


def parse_image_build(lines: list[str]) -> ImageBuildState:
    sec = split_sections(lines)
    digest = error = None
    try:
        data = json.loads(" ".join(sec.get("context", [])) or "{}")
        digest, error = data.get("digest"), data.get("error")
    except ValueError:
        error = "could not digest the build context: " + " ".join(sec.get("context", []))[:200]
    if digest is None and error is None:
        error = "could not digest the build context (is python3 installed?)"
    image_id = inputs = None
    image_line = " ".join(sec.get("image", [])).strip()
    if image_line.startswith("sha256:"):
        image_id, _, labels = image_line.partition(" ")
        try:
            inputs = (json.loads(labels or "null") or {}).get(INPUTS_LABEL)
        except (ValueError, AttributeError):
            inputs = None
    base_line = " ".join(sec.get("base", [])).strip()
    base_id = base_line if base_line.startswith("sha256:") else None
    docker_error = None
    if base_id is None and base_line and not re.search(r"no such (image|object)", base_line, re.I):
        docker_error = base_line
    return ImageBuildState(digest, error, image_id, inputs, base_id, docker_error)
