"""An extension's persistent logs tree on a cluster, and isaac-deploy's bookkeeping in it.

Jobs start in the extension's folder in the container, whose ``logs/`` is bound from
``<logs_dir>/<extension>/``: a training script that logs relative to its working directory (as
Isaac Lab's do: ``logs/rsl_rl/<experiment>/<run>/``) writes every run of every job of the
extension into that one tree, where ``--resume --load_run`` finds the runs of earlier jobs.
isaac-deploy keeps its own files under ``isaac-deploy/<run key>/`` in the tree: the scheduler's
output of each job, and ``runs-<job id>.txt``, the run folders the job made (paths relative to
the tree, one a line: new folders ``<framework>/<experiment>/<run>`` that appeared while it ran).
"""

from __future__ import annotations

import posixpath

BOOKKEEPING = "isaac-deploy"  # isaac-deploy's folder in the tree (and in the project's logs/)
RUN_DEPTH = 3  # a run folder: <framework>/<experiment>/<run>, e.g. rsl_rl/reach/2026-11-24_...
RECORD_PREFIX, RECORD_SUFFIX = "runs-", ".txt"


def logs_tree(logs_dir: str, extension: str) -> str:
    """The extension's persistent logs tree under the cluster's ``logs_dir``."""
    return posixpath.join(logs_dir, extension)


def bookkeeping(tree: str, run_key: str) -> str:
    """isaac-deploy's folder of one run key in the tree: job outputs and run records."""
    return posixpath.join(tree, BOOKKEEPING, run_key)


def record_name(job_id: str) -> str:
    """The record of the run folders job ``job_id`` made."""
    return f"{RECORD_PREFIX}{job_id}{RECORD_SUFFIX}"


def record_job(name: str) -> str | None:
    """The job id a record file is named after (``runs-123.txt`` -> ``123``), else ``None``."""
    if name.startswith(RECORD_PREFIX) and name.endswith(RECORD_SUFFIX):
        job = name[len(RECORD_PREFIX) : -len(RECORD_SUFFIX)]
        return job or None
    return None


def same_job(a: str, b: str) -> bool:
    """Whether two spellings of a job id are one job (PBS's ``123.server`` is ``123``)."""
    return a.split(".", 1)[0] == b.split(".", 1)[0]
