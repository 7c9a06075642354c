"""Operation: the workstation holds an Apptainer image (SIF) of the production image, named
after its content digest and built only when that digest has none yet."""

from __future__ import annotations

import posixpath

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from ..facts.sif import CachedSif, sif_name
from .util import fail


def build_command(image: str, destination: str, sandbox: bool = False) -> StringCommand:
    """``apptainer build`` from the local Docker engine (a SIF, or a sandbox folder)."""
    flags = ["--force", *(["--sandbox"] if sandbox else [])]
    return StringCommand("apptainer build", *flags, QuoteString(destination),
                         QuoteString(f"docker-daemon://{image}"))  # fmt: skip


@operation()
def sif_built(image: str, cache_dir: str):
    """``cache_dir/sha256-<digest>.sif`` of ``image``, with a ``.sha256`` sidecar; written to a
    temporary name first, so a half-built image never carries the final name.

    + image: the local Docker image, e.g. ``isaac-lab-ext-template:alice``
    + cache_dir: the workstation's SIF cache
    """
    state = host.get_fact(CachedSif, image=image, cache_dir=cache_dir)
    if state.image_error:
        what = "is not built: run deploy/dev.py with it in isaac_profiles" if (
            state.image_error == "missing") else f"cannot be read: {state.image_error}"  # fmt: skip
        yield fail(f"image {image} {what}")
        return
    if state.sif:
        host.noop(f"{state.sif} is built")
        return
    name = sif_name(state.image_id)
    final, partial = posixpath.join(cache_dir, name), posixpath.join(cache_dir, f".{name}.partial")
    yield StringCommand("mkdir -p", QuoteString(cache_dir))
    yield build_command(image, partial)
    yield StringCommand(
        "sha256sum <", QuoteString(partial), "| cut -d' ' -f1 >", QuoteString(f"{partial}.sha256"),
        "&& mv -f", QuoteString(partial), QuoteString(final),
        "&& mv -f", QuoteString(f"{partial}.sha256"), QuoteString(f"{final}.sha256"),
    )  # fmt: skip
