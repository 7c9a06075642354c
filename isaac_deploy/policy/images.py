"""Whether an image matches its source: the inputs digest it gets when built now (from what the
``ImageBuildInputs`` fact saw on a target, or the same probe on this workstation) against the
digest its label says it was built from."""

from __future__ import annotations

from dataclasses import dataclass

from isaac_deploy.facts.images import BuildInputs, LocalImage
from isaac_deploy.model.images import ImageBuild, inputs_digest


@dataclass(frozen=True)
class ImageInputs:
    """One image against its inputs now: ``inputs``, the digest it is labelled with when built
    now, or ``problem``, why it cannot be built now (one line); ``image``, the one there is."""

    image: LocalImage | None
    inputs: str | None = None
    problem: str | None = None

    @property
    def current(self) -> bool:
        """The image exists and was built from exactly these inputs."""
        labelled = self.image.inputs if self.image is not None else None
        return self.inputs is not None and labelled == self.inputs


def image_inputs(found: BuildInputs, build: ImageBuild, base_hint: str = "") -> ImageInputs:
    """``build`` against ``found``: its inputs digest (the context's, its Dockerfile text's, its
    base image's ID and its build arguments), or why it cannot be built: no context digest,
    Docker unusable, its Dockerfile unreadable or its base image missing (``base_hint``: how to
    get one)."""
    image = found.image(build.image)
    if found.error:
        return ImageInputs(image, problem=found.error)
    dockerfile_error = found.dockerfile_error(build.dockerfile)
    if dockerfile_error:
        return ImageInputs(image, problem=f"{build.image} is not built: {dockerfile_error}")
    base = found.image(build.base_image)
    if base is None:
        hint = f": {base_hint}" if base_hint else ""
        missing = f"base image {build.base_image} is missing, so {build.image} is not built"
        return ImageInputs(image, problem=missing + hint)
    dockerfile = found.dockerfiles[build.dockerfile]
    return ImageInputs(image, inputs_digest(found.context_digest, dockerfile, build, base.id))
