"""Results back: `pyinfra inventories/cluster.py deploy/cluster_sync.py` pulls each cluster's
experiment logs into logs/cluster/<cluster>/ incrementally (`--data isaac_results_dir=DIR`:
DIR/<cluster>/); `--data isaac_remove=1` then deletes pulled runs on the cluster whose jobs have
ended (never a queued or running one, never one the ledger does not know)."""

from pathlib import Path

from isaac_deploy.deploys.cluster import results

results.results(project_root=Path(__file__).resolve().parent.parent)
