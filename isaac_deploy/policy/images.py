"""Whether an image matches its source: the inputs digest it gets when built now (from what the
``ImageBuildInputs`` fact saw on a target, or the same probe on this workstation) against the
digest its label says it was built from."""

from __future__ import annotations

from dataclasses import dataclass

from isaac_deploy.facts.images import BuildInputs, LocalImage
from isaac_deploy.model.images import (
    INPUTS_LABEL,
    JOBS_INPUTS_LABEL,
    ImageBuild,
    inputs_digest,
)


@dataclass(frozen=True)
class ImageInputs:
    """One image against its inputs now: ``inputs``, the digest it is labelled with when built
    now, or ``problem``, why it cannot be built now (one line); ``image``, the one there is."""

    image: LocalImage | None
    inputs: str | None = None
    problem: str | None = None
    jobs_inputs: str | None = None  # the inputs of what a cluster job sees of it

    @property
    def current(self) -> bool:
        """The image exists and was built from exactly these inputs."""
        labelled = self.image.inputs if self.image is not None else None
        return self.inputs is not None and labelled == self.inputs

    @property
    def current_for_jobs(self) -> bool:
        """What a cluster job sees of the image is as the tree makes it now: only code that the
        job's snapshot binds over may have changed since it was built."""
        labelled = self.image.jobs_inputs if self.image is not None else None
        return self.current or (self.jobs_inputs is not None and labelled == self.jobs_inputs)

    @property
    def labels(self) -> dict[str, str]:
        """The labels an image built now carries."""
        labels = {INPUTS_LABEL: self.inputs} if self.inputs else {}
        return labels | ({JOBS_INPUTS_LABEL: self.jobs_inputs} if self.jobs_inputs else {})


def image_inputs(found: BuildInputs, build: ImageBuild, base_hint: str = "") -> ImageInputs:
    """``build`` against ``found``: its inputs digest (the project's selected files', the text
    of isaac-deploy's files in its context, its base image's ID and its build arguments), or why
    it cannot be built: no context digest, Docker unusable or its base image missing
    (``base_hint``: how to get one)."""
    image = found.image(build.image)
    if found.error:
        return ImageInputs(image, problem=found.error)
    base = found.image(build.base_image)
    if base is None:
        hint = f": {base_hint}" if base_hint else ""
        missing = f"base image {build.base_image} is missing, so {build.image} is not built"
        return ImageInputs(image, problem=missing + hint)
    inputs = inputs_digest(found.context_digest, build, base.id)
    jobs = found.jobs_context_digest
    jobs_inputs = inputs_digest(jobs, build, base.id) if jobs else None
    return ImageInputs(image, inputs, jobs_inputs=jobs_inputs)
