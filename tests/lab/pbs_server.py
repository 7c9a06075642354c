"""The lab's PBS server settings, read by the PBS stand-in (``tests/lab/bin/pbs``) from
``<lab>/pbs/server.json``, next to the bin folder it is installed in: which custom resources the
server defines, whether it keeps job history, whether ``qstat -f -F json`` answers the first of
several ids only (the OpenPBS builds of openpbs/openpbs#2672). A test changes them for its own
run with :func:`configured`; they are set back after it, also when it fails."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

# a GPU site as PBS Pro's Administrator's Guide sets one up: the custom resource ngpus,
# job history kept
DEFAULT = {
    "server": "labpbs",
    "queues": ["workq"],
    "custom_resources": ["ngpus"],
    "gpu_resources": ["ngpus", "gpus"],
    "job_history": True,
    "json_first_id_only": True,
}


def path(lab_dir: Path) -> Path:
    return lab_dir / "pbs" / "server.json"


def write(lab_dir: Path, settings: dict) -> None:
    """The settings, readable by the cluster user (the stand-in runs as that user)."""
    target = path(lab_dir)
    target.parent.mkdir(mode=0o755, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings, indent=2) + "\n")
    tmp.chmod(0o644)
    tmp.replace(target)


@contextlib.contextmanager
def configured(lab_dir: Path, **changes) -> Iterator[dict]:
    """The server with these settings changed (``custom_resources=[]``,
    ``job_history=False``) while the block runs; the defaults again after it."""
    settings = {**DEFAULT, **changes}
    write(lab_dir, settings)
    try:
        yield settings
    finally:
        write(lab_dir, DEFAULT)
