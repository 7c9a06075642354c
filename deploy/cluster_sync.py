"""Results back: `pyinfra inventories/cluster.py deploy/cluster_sync.py` pulls each cluster's logs
tree of the extension into the project's logs/ incrementally, where local runs are
(logs/rsl_rl/<experiment>/<run>; `--data isaac_results_dir=DIR`: into DIR), and isaac-deploy's
bookkeeping into logs/isaac-deploy/<cluster>/; no local file is deleted, nor overwritten unless
an earlier sync wrote it. `--data isaac_remove=1` then deletes on the cluster the pulled runs of
the run keys the ledger knows, only while no job of the extension is queued or running."""

from pathlib import Path

from isaac_deploy.deploys.cluster import results

results.results(project_root=Path(__file__).resolve().parent.parent)
