"""Delta delivery of a changed image (#18) against the lab's login node, each path side by side
in one run:

    flock /run/isaac-deploy-lab.lock .venv/bin/python -m benchmarks.delta [--lib-mb 350]

The image has a realistic structure: the lab's base-image stand-in plus layers of shared
libraries (Isaac Sim's kit stand-in: a part of this machine's /usr/lib), Python packages (this
venv's site-packages) and the extension; it is at least 500 MB. The change is one layer of a few
MB: a Python package (gevent, about 10 MB of files) unpacked by a `RUN` of the production
Dockerfile from a packed copy in the base (as pip unpacks a wheel: new files to the image). Every step is the
real roll-out (`pyinfra ... deploy/cluster.py`, `isaac_submit=0`), its figures from the lines
it reports:

- (a) full copy: the changed image to an image folder without an earlier image;
- (b) file path: the changed image to the folder holding the previous one (rsync's basis);
- (c) registry path: the login node builds from the lab registry through its layer cache
  (layer bytes pulled, seconds, CPU seconds there; the push's new blob bytes beside them);
- the unchanged image again: 0 image bytes.

Targets (#18): a one-layer change sends at most 1.5x the changed layer's compressed size (plus
protocol overhead) and at least 20x fewer bytes than the full copy. Results: printed, and saved
under results/delta.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

import docker
from tests.lab import lab
from tests.lab.project import make_project, remove_test_objects
from tests.lab.registry import manifest_layers

BASE = "isaac-deploy-bench/isaac-lab-base:delta"
IMAGE = "isaac-lab-lab-ext:root"  # the lab project's production image, built as root
REPOSITORY = "bench/isaac/isaac-lab-lab-ext"
SENT = re.compile(r"(sha256-\w+\.sif): sent ([\d,]+) bytes in ([\d.]+) s")
PULLED = re.compile(
    r"(sha256-\w+\.sif) built from \S+: pulled ([\d,]+) bytes of layers .* in ([\d.]+) s, "
    r"CPU ([\d.]+) s"
)
PACKAGE = "gevent"  # the package the change adds (about 10 MB of files)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def base_image(folder: Path, lib_mb: int, site: Path) -> None:
    """The realistic base: the stand-in, Isaac Sim's libraries (the first ``lib_mb`` MB of this
    machine's /usr/lib/x86_64-linux-gnu, in name order), Python packages (this venv's, the
    changed package aside in /opt/staging for the change to install)."""
    context = folder / "base"
    libs, packages, staging = context / "libs", context / "site", context / "staging"
    total, seen = 0, set()
    for path in sorted(Path("/usr/lib/x86_64-linux-gnu").rglob("*")):
        if total > lib_mb * 1024 * 1024:
            break
        if path.is_file() and not path.is_symlink() and path.stat().st_ino not in seen:
            seen.add(path.stat().st_ino)  # each file once: a hard link is no new content
            target = libs / path.relative_to("/usr/lib/x86_64-linux-gnu")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            total += path.stat().st_size
    staging.mkdir(parents=True)
    # the package arrives packed (as a wheel does): its files are new to the image when the
    # change unpacks them
    with tarfile.open(staging / f"{PACKAGE}.tar.gz", "w:gz") as packed:
        for entry in sorted(site.iterdir()):
            if entry.name.startswith(PACKAGE):
                packed.add(entry, arcname=entry.name)
    for entry in site.iterdir():
        skip = ("__editable__", "isaac_deploy", PACKAGE)
        if entry.name.startswith(skip) or entry.suffix == ".pth":
            continue
        target = packages / entry.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.is_dir():
            shutil.copytree(entry, target, symlinks=True)
        else:
            shutil.copy2(entry, target, follow_symlinks=False)
    (context / "Dockerfile").write_text(
        f"FROM {lab.STANDIN_TAGS['ext']}\n"
        "COPY libs/ /isaac-sim/kit/libs/\n"
        "COPY site/ /usr/local/lib/python3.11/dist-packages/\n"
        "COPY staging/ /opt/staging/\n"
    )
    docker.from_env().images.build(path=str(context), tag=BASE, rm=True)


def rollout(project, info: dict, name: str, group: dict) -> tuple[float, str]:
    """One roll-out (image only) with ``group`` as the cluster's settings: seconds, output."""
    login = info["cluster"]["login"]
    data = {k: v for k, v in project.data.items() if k != "isaac_profiles"}
    data.update(isaac_run_key="bench-delta", isaac_submit=0)
    data["isaac_sif_cache"] = str(project.path.parent / "sif-cache")
    settings = {
        "user": login["user"],
        "scheduler": "slurm",
        "ssh": {"port": login["port"], "key": login["key"], "known_hosts": login["known_hosts"]},
        "code_dir": "~/bench-delta/code",
        "cache_dir": "~/bench-delta/cache",
        "logs_dir": "~/bench-delta/logs",
        **group,
    }
    inventory = project.path.parent / f"bench_{name}.py"
    inventory.write_text(
        "from isaac_deploy.model.cluster import cluster\n"
        f"DATA = {data!r}\nworkstation = [('@local', DATA)]\n"
        f"hosts, group = cluster('lab', hosts=['lab-login'], **{settings!r})\n"
        f"lab = (hosts, {{**group, **DATA, 'ssh_hostname': {login['host']!r}}})\n"
    )
    env = {
        **os.environ,
        "PATH": f"{info['apptainer_bin']}:{os.environ['PATH']}",
        "BENCH_REGISTRY_PASSWORD": info["registry"]["password"],
    }
    argv = [str(project.venv_bin / "pyinfra"), "-y", str(inventory), "deploy/cluster.py"]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=project.path, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"roll-out {name} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed, proc.stdout + proc.stderr


def registry_group(info: dict) -> dict:
    registry = info["registry"]
    return {
        "image_dir": "~/bench-delta/registry-images",
        "image_registry": "lab",
        "registries": {
            "lab": {
                "address": registry["address"],
                "prefix": "bench/isaac",
                "ca_file": registry["ca"],
                "username": registry["user"],
                "password_env": "BENCH_REGISTRY_PASSWORD",
            }
        },
    }


def blob_bytes() -> int:
    """All blob bytes the lab registry stores."""
    root = lab.LAB_DIR / "registry" / "data" / "docker" / "registry" / "v2" / "blobs"
    return sum(p.stat().st_size for p in root.rglob("data") if p.is_file())


def layer_sizes(info: dict, image_id: str) -> dict[str, int]:
    """The compressed layers of the image the lab registry holds under its content tag (the
    registry path pushed it): {digest: bytes}, from its manifest."""
    return manifest_layers(info["registry"], REPOSITORY, image_id.replace(":", "-"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib-mb", type=int, default=350, help="MB of libraries in the image")
    args = parser.parse_args()
    info = lab.up()
    ssh = ["ssh", "-F", info["cluster"]["login"]["ssh_config"], "lab-login"]
    rows: dict = {}
    try:
        with tempfile.TemporaryDirectory(prefix="isaac-bench-delta-") as tmp:
            folder = Path(tmp)
            base_image(folder, args.lib_mb, Path(sysconfig.get_paths()["purelib"]))
            project = make_project(folder / "ext", None, info)
            project.data = {
                **project.data,
                "isaac_profiles": ("ext",),
                "isaac_base_images": {"ext": BASE, "ext-dev": BASE},
            }
            assert project.deploy().rc == 0
            subprocess.run([*ssh, "rm -rf ~/bench-delta ~/.apptainer/cache"], check=True)
            engine = docker.from_env()
            previous = engine.images.get(IMAGE).id
            file_path = {"image_dir": "~/bench-delta/images"}
            rollout(project, info, "first", file_path)  # the previous image, sent whole
            rollout(project, info, "first-registry", registry_group(info))
            dockerfile = project.path / "docker" / "Dockerfile.ext"
            change = (
                f"RUN tar -xzf /opt/staging/{PACKAGE}.tar.gz"
                " -C /usr/local/lib/python3.11/dist-packages/\n\n"
            )
            dockerfile.write_text(
                dockerfile.read_text().replace("WORKDIR ", change + "WORKDIR ", 1)
            )
            assert project.deploy().rc == 0
            changed_id, size = engine.images.get(IMAGE).id, engine.images.get(IMAGE).attrs["Size"]
            seconds, out = rollout(project, info, "full", {"image_dir": "~/bench-delta/empty"})
            rows["full copy"] = sent_row(out, seconds)
            seconds, out = rollout(project, info, "delta", file_path)
            rows["file path (rsync basis)"] = sent_row(out, seconds)
            stored = blob_bytes()
            seconds, out = rollout(project, info, "registry", registry_group(info))
            [(_, pulled, build_s, cpu_s)] = PULLED.findall(out)
            rows["registry path (layer cache)"] = {
                "bytes": number(pulled),
                "pushed_bytes": blob_bytes() - stored,
                "step_s": float(build_s),
                "cpu_s": float(cpu_s),
                "rollout_s": round(seconds, 2),
            }
            before, after = layer_sizes(info, previous), layer_sizes(info, changed_id)
            changed = {d: s for d, s in after.items() if d not in before}
            rows["image"] = {
                "uncompressed_bytes": size,
                "layers": len(after),
                "compressed_layer_bytes": sum(after.values()),
                "changed_layers": len(changed),
                "changed_layer_bytes": sum(changed.values()),
            }
            seconds, out = rollout(project, info, "unchanged", file_path)
            rows["unchanged image"] = {"bytes": sum(number(m[1]) for m in SENT.findall(out))}
            rows["unchanged image"].update(rollout_s=round(seconds, 2), step_s=0.0)
            subprocess.run([*ssh, "rm -rf ~/bench-delta ~/.apptainer/cache"], check=True)
    finally:
        remove_test_objects()
        subprocess.run(["docker", "rmi", "-f", BASE], capture_output=True)
        lab.down()
    report(rows)


def sent_row(out: str, seconds: float) -> dict:
    [(_, sent, step)] = SENT.findall(out)
    return {"bytes": number(sent), "step_s": float(step), "rollout_s": round(seconds, 2)}


def report(rows: dict) -> None:
    image = rows.pop("image")
    layer, full = image["changed_layer_bytes"], rows["full copy"]["bytes"]
    print(
        f"image: {image['uncompressed_bytes'] / 1e6:.0f} MB, {image['layers']} layers "
        f"({image['compressed_layer_bytes'] / 1e6:.0f} MB compressed); changed: "
        f"{image['changed_layers']} layer of {layer / 1e6:.2f} MB compressed"
    )
    print(f"{'path':32} {'bytes sent':>14} {'x layer':>8} {'full/x':>8} {'step s':>7} {'run s':>7}")
    for name, row in rows.items():
        sent = row["bytes"]
        print(
            f"{name:32} {sent:>14,} {sent / layer:>8.2f} "
            f"{(full / sent if sent else float('inf')):>8.1f} {row['step_s']:>7.1f} "
            f"{row['rollout_s']:>7.1f}"
            + (
                f"  (CPU {row['cpu_s']:.1f} s; pushed {row['pushed_bytes']:,})"
                if "cpu_s" in row
                else ""
            )
        )
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "delta.json").write_text(
        json.dumps({"image": image, "paths": rows, "when": time.strftime("%Y-%m-%d")}, indent=2)
    )


if __name__ == "__main__":
    main()
