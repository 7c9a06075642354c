"""Pushes to the lab registry (TLS + auth), side by side with bare skopeo, in one run:

    .venv/bin/python -m benchmarks.push [--runs 5]

- unchanged: `deploy/push.py` with nothing new vs a bare `skopeo copy` of the same image;
- one layer changed: both after a change to the last layers of the production image.
Bytes sent = growth of the registry's blob storage. Results: printed, saved under results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.lab import lab
from tests.lab.project import make_project, remove_test_objects


def blob_bytes() -> int:
    root = lab.LAB_DIR / "registry" / "data" / "docker" / "registry" / "v2" / "blobs"
    return sum(p.stat().st_size for p in root.rglob("data")) if root.exists() else 0


def timed(argv: list[str], cwd: Path, env: dict | None = None) -> tuple[float, int]:
    before = blob_bytes()
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed, blob_bytes() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    info = lab.up()
    reg = info["registry"]
    rows = {}
    try:
        with tempfile.TemporaryDirectory(prefix="isaac-bench-push-") as tmp:
            project = make_project(Path(tmp) / "ext", None, info)
            project.data = {
                **project.data,
                "isaac_profiles": ("ext",),
                "isaac_registries": {
                    "lab": {
                        "address": reg["address"],
                        "prefix": "bench",
                        "ca_file": reg["ca"],
                        "username": reg["user"],
                        "password_env": "BENCH_REG_PASS",
                    }
                },
            }
            assert project.deploy().rc == 0
            inventory = project.path.parent / "push_inventory.py"
            inventory.write_text(f"local = [('@local', {project.data!r})]\n")
            env = {**__import__("os").environ, "BENCH_REG_PASS": reg["password"]}
            deploy = [str(project.venv_bin / "pyinfra"), "-y", str(inventory), "deploy/push.py"]
            auth = Path(tmp) / "auth.json"
            auth.write_text(
                json.dumps(
                    {
                        "auths": {
                            reg["address"]: {
                                "auth": __import__("base64")
                                .b64encode(f"{reg['user']}:{reg['password']}".encode())
                                .decode()
                            }
                        }
                    }
                )
            )
            bare = [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-authfile",
                str(auth),
                "--dest-cert-dir",
                reg["cert_dir"],
                f"docker-daemon:{project.data and 'isaac-lab-lab-ext:root'}",
                f"docker://{reg['address']}/bench-bare/isaac-lab-lab-ext:latest",
            ]
            timed(deploy, project.path, env)  # first push of both: not measured
            timed(bare, project.path)
            unchanged: dict[str, list[tuple[float, int]]] = {
                "deploy/push.py": [],
                "bare skopeo copy": [],
            }
            for _ in range(args.runs):
                unchanged["deploy/push.py"].append(timed(deploy, project.path, env))
                unchanged["bare skopeo copy"].append(timed(bare, project.path))
            # blobs are shared inside a registry: each tool gets its own fresh change, first
            changed: dict[str, list[tuple[float, int]]] = {
                "deploy/push.py": [],
                "bare skopeo copy": [],
            }
            for run, (first, argv, first_env, other) in enumerate(
                (
                    ("deploy/push.py", deploy, env, bare),
                    ("bare skopeo copy", bare, None, deploy),
                )
            ):
                script = project.path / "scripts" / "rsl_rl" / "train.py"
                script.write_text(script.read_text() + f"\n# change {run}\n")
                assert project.deploy().rc == 0
                changed[first].append(timed(argv, project.path, first_env))
                timed(other, project.path, env if other is deploy else None)
            rows = {"unchanged": unchanged, "one layer changed": changed}
    finally:
        remove_test_objects()
        lab.down()
    report(rows)


def report(rows) -> None:
    print("| push | tool | median s | bytes sent |\n|---|---|---|---|")
    record = {}
    for name, samples in rows.items():
        for tool, values in samples.items():
            seconds = statistics.median(v[0] for v in values)
            sent = statistics.median(v[1] for v in values)
            print(f"| {name} | {tool} | {seconds:.2f} | {sent:,.0f} |")
            record[f"{name} / {tool}"] = {"seconds": seconds, "bytes": sent, "samples": values}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "push.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
