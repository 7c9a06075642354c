"""#18 against the lab's login node over real SSH: a changed image goes by its changes. The file
path sends the new SIF with the previous one there as rsync's basis (byte-identical result, the
job runs in it, an interrupted transfer resumes and never leaves a usable image, retention keeps
the basis until the new image is in place); the registry path pulls only the changed layer
into the login node's Apptainer cache (the registry's own access log shows it)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

import docker

# the roll-out fixture of test_rollout, for a project of this module's own
from tests.integration.test_rollout import ledger, registry_source, wait
from tests.integration.test_rollout import rollout as rollout  # noqa: PLC0414
from tests.lab.lab import LAB_DIR
from tests.lab.registry import manifest_layers

pytestmark = pytest.mark.lab
IMAGES = "isaac/delta-images"  # below the lab user's home
SETTINGS = {"image_dir": f"~/{IMAGES}", "image_retention": 1}
ARGS = ["--task", "Template-Reach-v0", "--max_iterations", "2"]
SENT = re.compile(
    r"(sha256-\w+\.sif): sent ([\d,]+) bytes in [\d.]+ s, [\d.]+% of its ([\d,]+) bytes "
    r"\((delta against (sha256-\w+\.sif)|full copy)\)"
)
PULLED = re.compile(r"(sha256-\w+\.sif) built from \S+: pulled ([\d,]+) bytes of layers")
# rsync cut while the changed part of a delta transfer travels: the copy is slowed down, and
# stopped (as a dropped connection stops it) two seconds after rsync's temporary file appeared
CUT_RSYNC = """#!/usr/bin/python3
import glob, os, subprocess, sys, time
args = sys.argv[1:]
if not any(a.startswith("--partial-dir=") for a in args):
    os.execv("/usr/bin/rsync", ["rsync", *args])
process = subprocess.Popen(["/usr/bin/rsync", "--bwlimit=200", *args])
deadline = time.monotonic() + 60
while not glob.glob({watch!r} + "/.sha256-*.sif.*") and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(2)
process.terminate()
process.wait()
sys.exit(20)
"""


def changed_image(project, n: int) -> str:
    """The production image with one more layer of 3 MB (a package's worth of bytes), rebuilt
    as the tree says: its SIF's name."""
    dockerfile = project.path / "docker" / "Dockerfile.ext"
    layer = f"RUN head -c 3000000 /dev/urandom > /opt/isaac-deploy/package-{n}.bin\n\n"
    dockerfile.write_text(dockerfile.read_text().replace("WORKDIR ", layer + "WORKDIR ", 1))
    assert project.deploy(data={"isaac_profiles": ("ext",)}).rc == 0
    return docker.from_env().images.get("isaac-lab-lab-ext:root").id.replace(":", "-") + ".sif"


def sent(out: str) -> dict[str, tuple[int, int, str | None]]:
    """What each roll-out reported it sent: {image: (bytes, size, basis or None)}."""
    return {
        m[1]: (int(m[2].replace(",", "")), int(m[3].replace(",", "")), m[5])
        for m in SENT.finditer(out)
    }


def local_sha(project, sif: str) -> str:
    return hashlib.sha256((project.path.parent / "sif-cache" / sif).read_bytes()).hexdigest()


def files(node, folder: str) -> set[str]:
    return set(node.run(f"cd ~/{folder} && find . -type f | cut -c3-").stdout.split())


def test_a_changed_image_is_sent_by_its_changes_and_the_job_runs_in_it(rollout):
    project, login, node, run = rollout
    first = run("d-1", ARGS, "--data", "isaac_submit=0", settings=SETTINGS)
    assert first.rc == 0, first.out
    [(sif1, (_, size1, basis))] = sent(first.out).items()
    assert basis is None and "(full copy)" in first.out  # nothing there yet: the whole file
    sif2 = changed_image(project, 1)
    second = run("d-2", ARGS, settings=SETTINGS)
    assert second.rc == 0, second.out
    bytes_sent, size2, basis = sent(second.out)[sif2]
    assert basis == sif1 and 3_000_000 < bytes_sent < 1.5 * 3_000_000 + 200_000, second.out
    assert bytes_sent * 10 < size2
    home = login["home"]
    assert node.file(f"{home}/{IMAGES}/{sif2}").sha256sum == local_sha(project, sif2)
    assert node.file(f"{home}/{IMAGES}/{sif2}.sha256").content_string.split()[0] == local_sha(
        project, sif2
    )
    assert node.file(f"{home}/{IMAGES}/{sif1}").sha256sum == local_sha(project, sif1)  # basis
    [entry] = [e for e in ledger(node) if e["run_key"] == "d-2"]
    assert entry["image"].replace(":", "-") + ".sif" == sif2
    info = wait(login, entry["job_id"])
    assert "JobState=COMPLETED" in info and "ExitCode=0:0" in info, info
    script = node.file(f"{home}/isaac/code/lab_ext/d-2/job-d-2.sh").content_string
    assert f"{IMAGES}/{sif2}" in script
    again = run("d-2", ARGS, settings=SETTINGS)  # unchanged: no image bytes
    assert again.rc == 0 and again.totals()["success"] == 0 and not sent(again.out), again.out


def test_an_interrupted_delta_resumes_and_retention_keeps_the_basis(rollout, lab, tmp_path):
    project, login, node, run = rollout
    home = login["home"]
    before = files(node, IMAGES)
    sif2 = max(
        (n for n in before if n.endswith(".sif")),
        key=lambda n: node.file(f"{home}/{IMAGES}/{n}").mtime,
    )
    sif3 = changed_image(project, 2)
    wrapper = tmp_path / "bin" / "rsync"
    wrapper.parent.mkdir()
    wrapper.write_text(CUT_RSYNC.format(watch=f"{home}/{IMAGES}/.incoming"))
    wrapper.chmod(0o755)
    path = f"{wrapper.parent}:{lab['apptainer_bin']}:{os.environ['PATH']}"
    cut = run("d-3", ARGS, settings=SETTINGS, env={"PATH": path})
    assert cut.rc != 0 and f"sending {project.path.parent}/sif-cache/{sif3} failed" in cut.out
    # nothing usable under the image's name; what arrived is kept for the resume; the basis
    # (and its link) stayed: the failed roll-out pruned nothing
    after = files(node, IMAGES)
    assert sif3 not in after and sif2 in after, after
    kept = node.file(f"{home}/{IMAGES}/.incoming/.partial/{sif3}")
    full = (project.path.parent / "sif-cache" / sif3).stat().st_size
    assert kept.exists and 0 < kept.size < full, after
    done = run("d-3", ARGS, settings=SETTINGS)
    assert done.rc == 0, done.out
    bytes_sent, _, basis = sent(done.out)[sif3]
    assert basis == sif2 and bytes_sent < 1.5 * 3_000_000 + 200_000, done.out
    assert node.file(f"{home}/{IMAGES}/{sif3}").sha256sum == local_sha(project, sif3)
    # retention 1: the basis went once the new image was in place (its job had ended); the
    # first image no job used stays (the folder may be shared); nothing left in .incoming
    left = files(node, IMAGES)
    assert sif2 not in left and sif3 in left, left
    assert not [n for n in left if n.startswith(".incoming/")], left
    entry = [e for e in ledger(node) if e["run_key"] == "d-3"][0]
    info = wait(login, entry["job_id"])
    assert "JobState=COMPLETED" in info, info


def blob_gets(log: str, repository: str) -> dict[str, int]:
    """The blobs of ``repository`` the registry served (GET, 200) in ``log``: {digest: bytes}."""
    pattern = rf'"GET /v2/{re.escape(repository)}/blobs/(sha256:\w+) HTTP/[\d.]+" 200 (\d+)'
    return {m[1]: int(m[2]) for m in re.finditer(pattern, log)}


def layers(registry: dict, repository: str, sif: str) -> dict[str, int]:
    """The layers of the image the registry holds under the SIF's content tag: {digest: bytes}."""
    return manifest_layers(registry, repository, sif.removesuffix(".sif"))


def test_the_registry_path_pulls_only_the_changed_layer(rollout, lab):
    """The login node builds from the registry through Apptainer's layer cache: a one-layer
    change fetches that layer only (the registry's access log), and the roll-out reports the
    layer bytes it pulled."""
    project, login, node, run = rollout
    registry = lab["registry"]
    settings = {**registry_source(registry, registry["user"]), "image_dir": "~/isaac/delta-reg"}
    env = {"ROLLOUT_REGISTRY_PASSWORD": registry["password"]}
    node.run("rm -rf ~/.apptainer/cache")
    log = Path(LAB_DIR) / "registry" / "registry.log"
    repository = "team/isaac/isaac-lab-lab-ext"
    start = log.stat().st_size
    first = run("dr-1", ARGS, "--data", "isaac_submit=0", settings=settings, env=env)
    assert first.rc == 0, first.out
    middle = log.stat().st_size
    [old_sif] = [m[1] for m in PULLED.finditer(first.out)]
    old = layers(registry, repository, old_sif)
    assert set(old) <= set(blob_gets(log.read_text(errors="replace")[start:], repository))
    sif = changed_image(project, 3)
    second = run("dr-2", ARGS, "--data", "isaac_submit=0", settings=settings, env=env)
    assert second.rc == 0, second.out
    new = layers(registry, repository, sif)
    fetched = blob_gets(log.read_text(errors="replace")[middle:], repository)
    [changed] = set(new) - set(old)  # one layer changed: the 3 MB one
    assert new[changed] > 3_000_000
    assert set(fetched) & set(new) == {changed}, (fetched, new)  # only it came again
    reported = {m[1]: int(m[2].replace(",", "")) for m in PULLED.finditer(second.out)}
    assert new[changed] <= reported[sif] < new[changed] + 100_000, second.out
    assert node.file(f"{login['home']}/isaac/delta-reg/{sif}").exists
