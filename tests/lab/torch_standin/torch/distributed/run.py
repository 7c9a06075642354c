"""``python -m torch.distributed.run`` (torchrun), the isaac-deploy test lab's stand-in.

What it does as PyTorch 2.x's torchrun does (torch/distributed/run.py, elastic agent):
  --nproc_per_node N  starts N workers: ``python -u SCRIPT ARGS...``, each with LOCAL_RANK,
                      RANK = GROUP_RANK * N + LOCAL_RANK, GROUP_RANK (the node's rank),
                      WORLD_SIZE = NNODES * N, LOCAL_WORLD_SIZE, ROLE_RANK, ROLE_WORLD_SIZE,
                      MASTER_ADDR / MASTER_PORT (the first node's host and a free port on it),
                      TORCHELASTIC_RUN_ID; OMP_NUM_THREADS=1 when unset and N > 1 (with
                      torchrun's warning); the rest of the environment as given.
  --standalone        one node, rendezvous on this host (a random run id).
  --nnodes K --rdzv_backend c10d --rdzv_endpoint HOST:PORT --rdzv_id ID
                      K agents meet at HOST:PORT: the agent that can listen on PORT there hosts
                      the store (as c10d's does when its host is the endpoint), the others
                      connect (retrying, 120 s); node ranks in order of arrival, the host's 0.
  signals             SIGTERM, SIGINT, SIGHUP, SIGQUIT are passed on to every worker, then it
                      waits for them and exits 1; SIGUSR1 is not handled (ends torchrun, as it
                      ends the real one); a worker that fails ends the others (SIGTERM), exit 1.
What it records (the lab's addition): each worker's rank variables, CUDA_VISIBLE_DEVICES,
OMP_NUM_THREADS, NCCL_* and argv as JSON in ``logs/torchrun-standin/<run id>-<group rank>-
<local rank>.json`` below the working directory.
What it does not: elastic membership changes, restarts (--max_restarts), torch itself.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

RECORDS = os.path.join("logs", "torchrun-standin")
SHUTDOWN = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def parse(argv):
    p = argparse.ArgumentParser(prog="torchrun")
    p.add_argument("--nproc_per_node", "--nproc-per-node", default="1")
    p.add_argument("--nnodes", default="1")
    p.add_argument("--standalone", action="store_true")
    p.add_argument("--rdzv_backend", "--rdzv-backend", default="static")
    p.add_argument("--rdzv_endpoint", "--rdzv-endpoint", default="")
    p.add_argument("--rdzv_id", "--rdzv-id", default="none")
    p.add_argument("--node_rank", "--node-rank", type=int, default=0)
    p.add_argument("--master_addr", "--master-addr", default="127.0.0.1")
    p.add_argument("--master_port", "--master-port", type=int, default=29500)
    p.add_argument("training_script")
    p.add_argument("training_script_args", nargs=argparse.REMAINDER)
    return p.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def rendezvous(nnodes: int, endpoint: str) -> tuple[int, str, int]:
    """(group rank, master address, master port) after all ``nnodes`` agents met."""
    host, _, port = endpoint.rpartition(":")
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind(("", int(port)))
        server.listen(nnodes)
    except OSError:
        server.close()
        server = None
    if server is not None:  # the store's host: rank 0
        master = (socket.gethostname(), free_port())
        peers = []
        while len(peers) < nnodes - 1:
            conn, _ = server.accept()
            peers.append(conn)
        for rank, conn in enumerate(peers, 1):
            conn.sendall(f"{rank} {master[0]} {master[1]}\n".encode())
            conn.close()
        server.close()
        return 0, master[0], master[1]
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=5) as conn:
                conn.settimeout(None)
                rank, addr, master_port = conn.makefile().readline().split()
                return int(rank), addr, int(master_port)
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"torchrun (lab stand-in): no rendezvous at {endpoint} in 120 s")
            time.sleep(0.2)


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    nproc, nnodes = int(args.nproc_per_node), int(str(args.nnodes).split(":")[-1])
    if args.standalone:
        nnodes, run_id = 1, str(uuid.uuid4())
        group, addr, port = 0, socket.gethostname(), free_port()
    elif args.rdzv_backend == "c10d":
        run_id = args.rdzv_id
        group, addr, port = rendezvous(nnodes, args.rdzv_endpoint)
    else:
        run_id = args.rdzv_id
        group, addr, port = args.node_rank, args.master_addr, args.master_port
    base = dict(os.environ)
    if "OMP_NUM_THREADS" not in base and nproc > 1:
        print(
            "Setting OMP_NUM_THREADS environment variable for each process to be 1 in "
            "default, to avoid your system being overloaded",
            file=sys.stderr,
            flush=True,
        )
        base["OMP_NUM_THREADS"] = "1"
    os.makedirs(RECORDS, exist_ok=True)
    workers = []
    for local in range(nproc):
        env = {
            **base,
            "LOCAL_RANK": str(local),
            "RANK": str(group * nproc + local),
            "GROUP_RANK": str(group),
            "ROLE_RANK": str(group * nproc + local),
            "WORLD_SIZE": str(nnodes * nproc),
            "ROLE_WORLD_SIZE": str(nnodes * nproc),
            "LOCAL_WORLD_SIZE": str(nproc),
            "MASTER_ADDR": addr,
            "MASTER_PORT": str(port),
            "TORCHELASTIC_RUN_ID": run_id,
        }
        cmd = [sys.executable, "-u", args.training_script, *args.training_script_args]
        seen = {
            k: env.get(k)
            for k in (
                "LOCAL_RANK",
                "RANK",
                "GROUP_RANK",
                "WORLD_SIZE",
                "LOCAL_WORLD_SIZE",
                "MASTER_ADDR",
                "MASTER_PORT",
                "TORCHELASTIC_RUN_ID",
                "CUDA_VISIBLE_DEVICES",
                "OMP_NUM_THREADS",
            )
        }
        seen.update({k: v for k, v in env.items() if k.startswith("NCCL_")})
        record = os.path.join(RECORDS, f"{run_id}-{group}-{local}.json")
        with open(record, "w") as handle:
            json.dump({"env": seen, "argv": cmd[2:], "host": socket.gethostname()}, handle)
        workers.append(subprocess.Popen(cmd, env=env))
    received = []

    def shutdown(number, _frame):
        received.append(number)
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(number)

    for number in SHUTDOWN:
        signal.signal(number, shutdown)
    failed = False
    while any(worker.poll() is None for worker in workers):
        if not failed and any(worker.poll() not in (None, 0) for worker in workers):
            failed = True
            for worker in workers:
                if worker.poll() is None:
                    worker.terminate()
        time.sleep(0.1)
    if received or any(worker.returncode for worker in workers):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
