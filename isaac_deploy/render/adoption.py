"""The files ``isaac-deploy init`` adds to an extension project, as text: the inventories, the
deploy files and a README, all in isaac-deploy's own folder (``.isaac-deploy/``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isaac_deploy.model.paths import TOOL_DIR
from isaac_deploy.model.seed import CLUSTER_ENV, SeedCluster
from isaac_deploy.render.templates import render

DEPLOYS = {
    "dev": (
        "Workstation deploy: this machine becomes a dev box for the extension.",
        "from isaac_deploy.deploys import workstation",
        "workstation.setup(project_root=Path(__file__).resolve().parents[2])",
    ),
    "cluster": (
        "Cluster roll-out: image, code snapshot and the job on each cluster, once per run key.",
        "from isaac_deploy.deploys.cluster import plan, rollout",
        "rollout.rollout(plan.load(project_root=Path(__file__).resolve().parents[2]))",
    ),
    "cluster_jobs": (
        "The ledger of each cluster with the jobs' states (`--data isaac_cancel=RUN_KEY`).",
        "from isaac_deploy.deploys.cluster import jobs",
        "jobs.jobs(project_root=Path(__file__).resolve().parents[2])",
    ),
    "cluster_sync": (
        "Experiment logs back from each cluster (`--data isaac_remove=1` to delete finished runs).",
        "from isaac_deploy.deploys.cluster import results",
        "results.results(project_root=Path(__file__).resolve().parents[2])",
    ),
}


def adoption_files(
    templates: Path,
    local: Mapping[str, Any],
    sources: tuple[str, ...],
    cluster: SeedCluster | None,
    images: tuple[str, ...],
    key_file: str | None,
) -> dict[str, str]:
    """Project-relative path -> text of every file ``isaac-deploy init`` adds: ``local`` is the
    workstation's inventory data, ``sources`` the seed files it came from, ``cluster`` the one
    migrated from ``.env.cluster``, ``images`` the images the deploy will build, ``key_file``
    where the W&B key was saved (for the undo line)."""
    context = {"tools": TOOL_DIR}
    name_only = {"isaac_extension_name": local["isaac_extension_name"]}
    files = {
        f"{TOOL_DIR}/README.md": render(
            templates, "adopt/README.md.j2", images=images, key_file=key_file, **context
        ),
        f"{TOOL_DIR}/inventories/local.py": render(
            templates, "adopt/local.py.j2", data=dict(local), sources=sources, **context
        ),
        f"{TOOL_DIR}/inventories/cluster.py": render(
            templates,
            "adopt/cluster.py.j2",
            local=name_only,
            seed=cluster,
            seed_file=CLUSTER_ENV,
            **context,
        ),
    }
    for name, (doc, imports, call) in DEPLOYS.items():
        files[f"{TOOL_DIR}/deploy/{name}.py"] = render(
            templates, "adopt/deploy.py.j2", doc=doc, imports=imports, call=call
        )
    return files
