"""`pyinfra <inventory> deploy/cluster.py` end to end: the workstation builds the Apptainer image
(lab stand-in), the lab login node receives image, code snapshot and secret over real SSH, and the
job really runs under the lab's Slurm; a second roll-out sends nothing and submits nothing."""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import testinfra

import docker
from tests.lab.project import Result
from tests.unit.test_envfiles import HOSTILE

pytestmark = pytest.mark.lab
ARGS = [
    "--task",
    "Template-Reach-v0",
    "--max_iterations",
    "4",
    *[a for a in HOSTILE if a],
    "$(touch /tmp/pwned-e2e)",
    "*",
]

# the entry scripts of the mounts and runtime tests: in the project (so in the image and the
# code snapshots) before the image is built, so that the roll-outs find the image up to date;
# they write, as training scripts do, below the working directory
PROBE = """import json, os, sys
out = {p: sorted(os.listdir(p)) for p in ("/opt/tools", "/srv/data")}
with open("logs/mounts-probe.json", "w") as f:
    json.dump(out, f)
"""
# every place Isaac Sim and its libraries write to (the seed's and Isaac Lab's cluster binds)
WRITE_PATHS = (
    "/isaac-sim/kit/data",
    "/isaac-sim/kit/logs",
    "/isaac-sim/kit/cache",
    "~/.cache/ov",
    "~/.nvidia-omniverse/logs",
    "~/.local/share/ov/data",
    "~/.cache/pip",
    "~/.cache/nvidia/GLCache",
    "~/.nv/ComputeCache",
    "~/Documents",
)
RUNTIME_PROBE = """import json, os, sys
paths = json.loads(sys.argv[1])
out = {"cwd": os.getcwd(), "home": os.environ.get("HOME"),
       "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"), "writes": {}}
for path in paths + ["/isaac-sim/not-bound"]:
    folder = os.path.expanduser(path)
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "runtime-probe.txt"), "w") as f:
            f.write(path)
        out["writes"][path] = "ok"
    except OSError as exc:
        out["writes"][path] = exc.strerror
with open("logs/runtime-probe.json", "w") as f:
    json.dump(out, f)
"""
TREE = "isaac/logs/lab_ext"  # the extension's persistent logs tree, in the login user's home


def recorded_runs(node, run_key: str, job: str, tree: str = TREE) -> list[str]:
    """The run folders job ``job`` recorded it made (relative to the tree ``tree``, relative to
    the login user's home)."""
    return node.run(f"cat ~/{tree}/isaac-deploy/{run_key}/runs-{job}.txt").stdout.splitlines()


def job_output(node, run_key: str, job: str) -> str:
    return node.run(f"cat ~/{TREE}/isaac-deploy/{run_key}/job-{job}.out").stdout


@pytest.fixture(scope="module")
def rollout(root_project, lab):
    project = root_project
    (project.path / "scripts" / "lab_probe.py").write_text(PROBE)
    (project.path / "scripts" / "lab_runtime_probe.py").write_text(RUNTIME_PROBE)
    assert project.deploy(data={"isaac_profiles": ("ext",)}).rc == 0
    git = ["git", "-C", str(project.path), "-c", "user.name=lab", "-c", "user.email=l@e.org"]
    subprocess.run(["git", "init", "-q", str(project.path)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "lab"], check=True)
    login = lab["cluster"]["login"]
    node = testinfra.get_host("ssh://lab-login", ssh_config=login["ssh_config"])
    # unpacked SIFs of the Apptainer stand-in are not writable by their owner (as root's files)
    node.run("chmod -R u+w ~/isaac ~/.apptainer ~/scratch 2>/dev/null; rm -rf ~/isaac ~/scratch")
    node.run("rm -rf ~/.isaac-deploy ~/.config/isaac-deploy ~/.apptainer ~/.cache/fake-apptainer")

    def run(
        run_key: str,
        args: list[str],
        *flags: str,
        deploy: str = "deploy/cluster.py",
        settings: dict | None = None,
        env: dict | None = None,
        hosts: tuple[str, ...] = ("lab-login",),
        background: bool = False,
    ) -> Result | subprocess.Popen:
        """The deploy against the lab cluster; ``settings`` are added to its ``cluster(...)``;
        ``background``: started, not waited for (its output as text on ``stdout``)."""
        data = {k: v for k, v in project.data.items() if k != "isaac_profiles"}
        data.update(
            isaac_run_key=run_key,
            isaac_job_args=list(args),
            isaac_sif_cache=str(project.path.parent / "sif-cache"),
        )
        inventory = project.path.parent / "cluster_inventory.py"
        group = {
            "user": login["user"],
            "scheduler": "slurm",
            "ssh": {
                "port": login["port"],
                "key": login["key"],
                "known_hosts": login["known_hosts"],
            },
            "image_dir": "~/isaac/images",
            "code_dir": "~/isaac/code",
            "cache_dir": "~/isaac/cache",
            "logs_dir": "~/isaac/logs",
            "resources": {"gpus": 1, "cpus": 1, "memory": "500M", "walltime": "00:10:00"},
            # Apptainer as the lab's login profile provides it to login shells: a module
            "modules": [login["apptainer_module"]],
            "snapshot_retention": 2,
            "wandb_api_key_env": "ROLLOUT_WANDB_KEY",
            **(settings or {}),
        }
        inventory.write_text(
            "from isaac_deploy.model.cluster import cluster\n"
            f"DATA = {data!r}\n"
            "workstation = [('@local', DATA)]\n"
            f"hosts, group = cluster('lab', hosts={list(hosts)!r}, **{group!r})\n"
            f"lab = (hosts, {{**group, **DATA, 'ssh_hostname': {login['host']!r}}})\n"
        )
        env = {
            **os.environ,
            "PATH": f"{lab['apptainer_bin']}:{os.environ['PATH']}",
            "ROLLOUT_WANDB_KEY": "e2e-wandb-secret-1",
            **(env or {}),
        }
        yes = [] if "--dry" in flags else ["-y"]  # without -y pyinfra shows the plan
        argv = [str(project.venv_bin / "pyinfra"), *yes, *flags, str(inventory), deploy]
        if background:
            return subprocess.Popen(
                argv,
                cwd=project.path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        proc = subprocess.run(argv, cwd=project.path, capture_output=True, text=True, env=env)
        return Result(proc.returncode, proc.stdout + proc.stderr)

    return project, login, node, run


def ledger(node) -> list[dict]:
    """The ledger's records of submitted jobs (a submission writes a pending record first)."""
    text = node.run("cat ~/.isaac-deploy/lab_ext-ledger.jsonl 2>/dev/null").stdout
    return [record for record in map(json.loads, text.splitlines()) if record["job_id"]]


def slurm_jobs(login, prefix: str) -> set[str]:
    """The ids of the lab user's Slurm jobs whose names start with ``prefix``, queued, running or
    ended (Slurm's own answer: ``squeue`` and the accounting database, which outlives a lab)."""
    ssh = ["ssh", "-F", login["ssh_config"], "lab-login"]
    asked = "squeue -h -t all -o '%i|%j'; sacct -n -X -P -S 2000-01-01 -o JobID,JobName"
    out = subprocess.run([*ssh, asked], capture_output=True, text=True, check=True).stdout
    jobs = (line.partition("|") for line in out.splitlines())
    return {job for job, _, name in jobs if name.startswith(prefix)}


def accepted(login) -> int:
    """SSH logins the lab's login node has accepted so far."""
    return Path(login["sshd_log"]).read_text().count("Accepted publickey")


def hold_both_gpus(ssh: list[str]) -> str:
    """A job holding both of the lab's GPUs for two minutes (later jobs stay PENDING): its id."""
    return subprocess.run(
        [*ssh, "cd /tmp && sbatch --parsable --gpus=2 -o /dev/null --wrap 'sleep 120'"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def wait(login, job: str) -> str:
    """``scontrol show job`` once the job has ended (COMPLETING is not ended yet)."""
    deadline = time.monotonic() + 120
    while True:
        info = subprocess.run(
            ["ssh", "-F", login["ssh_config"], "lab-login", f"scontrol show job -o {job}"],
            capture_output=True,
            text=True,
        ).stdout
        state = re.search(r"JobState=(\w+)", info)
        if state and state.group(1) in (
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "OUT_OF_MEMORY",
            "NODE_FAIL",
        ):
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.3)


def test_full_rollout_runs_the_entry_script_with_every_argument(rollout):
    project, login, node, run = rollout
    result = run("e2e-1", ARGS, "-v")
    assert result.rc == 0, result.out
    assert "e2e-wandb-secret-1" not in result.out
    # the SIF was built here: the stand-in's version with the lab's Docker 20.10 is untested
    assert "[WARN] Docker/Apptainer: Docker 20.10" in result.out
    [entry] = ledger(node)
    assert (
        entry["run_key"] == "e2e-1"
        and entry["args"] == ARGS
        and entry["image"].startswith("sha256:")
    )
    summary = result.out[result.out.index("Summary (") :]
    assert f"  job:       {entry['job_id']} (run e2e-1) submitted" in summary, summary
    assert ": sent from this workstation" in summary
    assert "  follow:    `isaac-deploy cluster jobs`" in summary
    info = wait(login, entry["job_id"])
    job_log = job_output(node, "e2e-1", entry["job_id"])
    assert "JobState=COMPLETED" in info and "ExitCode=0:0" in info, job_log
    [run] = recorded_runs(node, "e2e-1", entry["job_id"])
    assert run.startswith("rsl_rl/ext_template/")
    tree = f"{login['home']}/{TREE}"
    assert json.loads(node.file(f"{tree}/{run}/args.json").content_string)["argv"] == ARGS
    assert node.file(f"{tree}/{run}/model_4.pt").exists  # the checkpoint is in the persistent logs
    assert node.run(f"ls -A {entry['snapshot']}/logs").stdout == ""  # nothing in the snapshot
    key = node.file(f"{login['home']}/.config/isaac-deploy/lab_ext/wandb_api_key")
    assert key.mode == 0o600 and key.content_string == "e2e-wandb-secret-1\n"
    assert "e2e-wandb-secret-1" not in job_log
    sif = node.run("ls ~/isaac/images").stdout.split()
    assert len([s for s in sif if s.endswith(".sif")]) == 1 and not os.path.exists("/tmp/pwned-e2e")


def test_second_rollout_sends_no_image_and_submits_nothing(rollout):
    project, login, node, run = rollout
    before = node.run("stat -c %Y ~/isaac/images/*.sif").stdout
    logins = accepted(login)
    result = run("e2e-1", ARGS)
    assert result.rc == 0 and result.totals()["success"] == 0, result.out
    assert accepted(login) == logins + 1  # one SSH connection for the whole roll-out
    assert node.run("stat -c %Y ~/isaac/images/*.sif").stdout == before
    assert len(ledger(node)) == 1
    [entry] = ledger(node)
    assert ".sif: current (nothing sent)" in result.out
    assert f"  job:       run e2e-1 was submitted before (job {entry['job_id']})" in result.out


def test_a_failing_training_fails_the_job_with_its_exit_code(rollout):
    project, login, node, run = rollout
    result = run("e2e-fail", ["--task", "Template-Reach-v0", "--fail"])
    assert result.rc == 0, result.out
    entry = [e for e in ledger(node) if e["run_key"] == "e2e-fail"][0]
    info = wait(login, entry["job_id"])
    assert "JobState=FAILED" in info and "ExitCode=1:0" in info, info


def test_sync_brings_the_runs_to_logs_and_remove_waits_for_the_extensions_jobs(rollout):
    """#12.5: `cluster sync` puts the cluster's runs where local ones are (logs/rsl_rl/...), the
    bookkeeping in logs/isaac-deploy/<cluster>/, keeps (and names) a local file that differs;
    --remove takes nothing while a job of the extension runs, then the runs of finished run
    keys that came back whole, never a folder no job recorded."""
    project, login, node, run = rollout
    tree = f"{login['home']}/{TREE}"
    logs = project.path / "logs"
    [done] = [e for e in ledger(node) if e["run_key"] == "e2e-1"]
    [failed] = [e for e in ledger(node) if e["run_key"] == "e2e-fail"]
    [done_run] = recorded_runs(node, "e2e-1", done["job_id"])
    [failed_run] = recorded_runs(node, "e2e-fail", failed["job_id"])
    mine = logs / failed_run / "params" / "agent.yaml"  # a local file where the cluster has one
    mine.parent.mkdir(parents=True)
    mine.write_text("edited on the workstation\n")
    node.run(f"mkdir -p ~/{TREE}/rsl_rl/ext_template/by-hand")  # no job recorded it
    result = run("e2e-1", ARGS, deploy="deploy/cluster_sync.py")
    assert result.rc == 0, result.out
    assert json.loads((logs / done_run / "args.json").read_text())["argv"] == ARGS
    assert (logs / done_run / "model_4.pt").is_file()
    assert (logs / failed_run / "params" / "env.yaml").is_file()
    book = logs / "isaac-deploy" / "lab"
    assert (book / "e2e-1" / f"job-{done['job_id']}.out").is_file()
    assert (book / "e2e-1" / f"runs-{done['job_id']}.txt").read_text() == f"{done_run}\n"
    assert mine.read_text() == "edited on the workstation\n"
    assert f"kept {mine}: it differs from the cluster's" in result.out, result.out
    ssh = ["ssh", "-F", login["ssh_config"], "lab-login"]
    busy = subprocess.run(
        [
            *ssh,
            "cd /tmp && sbatch --parsable --job-name=lab_ext.e2e-busy.x -o /dev/null "
            "--wrap 'sleep 60'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        held = run("e2e-1", ARGS, "-v", "--data", "isaac_remove=1", deploy="deploy/cluster_sync.py")
        assert held.rc == 0, held.out
        assert f"kept every run on the cluster: job {busy} of lab_ext is queued or running" in (
            held.out
        )
        assert node.file(f"{tree}/{done_run}").is_directory
    finally:
        subprocess.run([*ssh, f"scancel {busy}"], check=False)
    wait(login, busy)
    result = run("e2e-1", ARGS, "--data", "isaac_remove=1", deploy="deploy/cluster_sync.py")
    assert result.rc == 0, result.out
    assert not node.file(f"{tree}/{done_run}").exists  # finished, pulled whole: removed
    assert not node.file(f"{tree}/isaac-deploy/e2e-1").exists
    assert node.file(f"{tree}/{failed_run}").is_directory  # did not come back whole: kept
    assert node.file(f"{tree}/isaac-deploy/e2e-fail").is_directory  # with its record
    assert "kept the runs of e2e-fail on the cluster: not all came back whole" in result.out
    assert node.file(f"{tree}/rsl_rl/ext_template/by-hand").is_directory  # nobody's: kept
    assert (logs / done_run / "model_4.pt").is_file()  # nothing local goes


def test_old_snapshots_are_pruned_but_never_one_of_a_queued_job(rollout):
    project, login, node, run = rollout
    code = f"{login['home']}/isaac/code/lab_ext"
    node.run(f"mkdir -p {code}/old-idle {code}/old-busy && touch -d '2 days ago' {code}/old-*")
    busy = subprocess.run(
        [
            "ssh",
            "-F",
            login["ssh_config"],
            "lab-login",
            f"cd {code}/old-busy && sbatch --parsable -o /dev/null --wrap 'sleep 60'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    line = {
        "run_key": "old-busy",
        "job_id": busy,
        "scheduler": "slurm",
        "snapshot": f"{code}/old-busy",
    }
    node.run(
        f"printf '%s\\n' {shlex.quote(json.dumps(line))} >> ~/.isaac-deploy/lab_ext-ledger.jsonl"
    )
    try:
        result = run("e2e-1", ARGS, "-v")  # retention 2: e2e-1 (this run) and the newest other one
        assert result.rc == 0, result.out
        left = set(node.run(f"ls {code}").stdout.split())
        assert left == {"e2e-1", "e2e-fail", "old-busy"}, result.out
        assert f"kept snapshot old-busy: job {busy} is" in result.out
    finally:
        subprocess.run(
            ["ssh", "-F", login["ssh_config"], "lab-login", f"scancel {busy}"], check=False
        )


def test_jobs_lists_the_ledger_with_states_and_cancels_a_run(rollout):
    project, login, node, run = rollout
    ssh = ["ssh", "-F", login["ssh_config"], "lab-login"]
    blocker = hold_both_gpus(ssh)
    try:
        assert run("e2e-queued", ["--task", "Template-Reach-v0"]).rc == 0
        job = [e for e in ledger(node) if e["run_key"] == "e2e-queued"][0]["job_id"]
        forgotten = {"run_key": "e2e-forgotten", "job_id": "999999", "scheduler": "slurm"}
        node.run(
            f"printf '%s\\n' {shlex.quote(json.dumps(forgotten))} >> ~/.isaac-deploy/lab_ext-ledger.jsonl"
        )
        listing = run("e2e-queued", [], deploy="deploy/cluster_jobs.py")
        assert listing.rc == 0 and listing.totals()["success"] == 0, listing.out
        rows = {
            line.split()[1]: line.split()[2:]
            for line in listing.out.splitlines()
            if line.strip().startswith("[@openssh/lab-login]") and len(line.split()) > 4
        }
        assert rows["e2e-queued"][:2] == [job, "PENDING"], listing.out
        assert rows["e2e-forgotten"][:2] == ["999999", "ENDED"], listing.out  # unknown to Slurm
        assert rows["e2e-1"][1] in ("COMPLETED", "ENDED") and rows["e2e-fail"][1:3] in (
            ["FAILED", "(1)"],
            ["ENDED", rows["e2e-fail"][2]],
        ), listing.out
        assert "'$(touch /tmp/pwned-e2e)'" in listing.out  # arguments shown as typed, quoted
        cancel = run(
            "e2e-queued", [], "--data", "isaac_cancel=e2e-queued", deploy="deploy/cluster_jobs.py"
        )
        assert cancel.rc == 0 and cancel.totals()["success"] == 1, cancel.out
        assert "JobState=CANCELLED" in wait(login, job)
        again = run(
            "e2e-queued", [], "--data", "isaac_cancel=e2e-queued", deploy="deploy/cluster_jobs.py"
        )
        assert again.rc == 0 and again.totals()["success"] == 0, again.out
        unknown = run(
            "e2e-queued", [], "--data", "isaac_cancel=nope", deploy="deploy/cluster_jobs.py"
        )
        assert unknown.rc != 0 and "no run nope in the ledger" in unknown.out
    finally:
        subprocess.run([*ssh, f"scancel {blocker}"], check=False)


def registry_source(registry: dict, username: str) -> dict:
    """Cluster settings: the image built on the login node from the lab's registry."""
    registries = {
        "lab": {
            "address": registry["address"],
            "prefix": "team/isaac",
            "ca_file": registry["ca"],
            "username": username,
            "password_env": "ROLLOUT_REGISTRY_PASSWORD",
        }
    }
    return {
        "image_registry": "lab",
        "registries": registries,
        "image_dir": "~/isaac/registry-images",
    }


def test_a_cluster_can_build_its_image_from_the_registry(rollout, lab):
    """#6: the workstation pushes (content tag), the login node builds the SIF from the registry
    with credentials from a 0600 file, and the job runs in that image."""
    project, login, node, run = rollout
    registry = lab["registry"]
    settings = registry_source(registry, registry["user"])
    env = {"ROLLOUT_REGISTRY_PASSWORD": registry["password"]}
    node.run("rm -f ~/.fake-apptainer.log")
    result = run("e2e-registry", ["--task", "Template-Reach-v0"], settings=settings, env=env)
    assert result.rc == 0, result.out
    assert registry["password"] not in result.out
    image_id = docker.from_env().images.get("isaac-lab-lab-ext:root").id
    tag = image_id.replace(":", "-")
    calls = [json.loads(line) for line in node.run("cat ~/.fake-apptainer.log").stdout.splitlines()]
    reference = f"docker://{registry['address']}/team/isaac/isaac-lab-lab-ext:{tag}"
    [build] = [call for call in calls if call["argv"][0] == "build"]
    assert build["argv"] == ["build", "--force", f".incoming/{tag}.sif", reference]
    # in the login environment, Apptainer from the cluster's module, its folders in the cache dir
    module = Path(lab["apptainer_bin"]).parent / "modules" / "apptainer-1.3.6-lab" / "bin"
    assert build["exe"] == str(module / "apptainer")
    assert (build["cachedir"], build["tmpdir"]) == (
        f"{login['home']}/isaac/cache/apptainer",
        f"{login['home']}/isaac/cache/apptainer/tmp",
    )
    sif = node.file(f"{login['home']}/isaac/registry-images/{tag}.sif")
    assert sif.exists and node.file(f"{login['home']}/isaac/registry-images/.incoming").exists
    sidecar = node.file(f"{login['home']}/isaac/registry-images/{tag}.sif.sha256").content_string
    assert sidecar.split()[0] == node.run(f"sha256sum < {sif.path}").stdout.split()[0]
    credentials = node.file(f"{login['home']}/.config/isaac-deploy/registries/lab.env")
    assert credentials.mode == 0o600 and registry["password"] in credentials.content_string
    entry = [e for e in ledger(node) if e["run_key"] == "e2e-registry"][0]
    info = wait(login, entry["job_id"])
    assert "JobState=COMPLETED" in info and "ExitCode=0:0" in info, info
    assert (
        f"{tag}.sif"
        in node.file(
            f"{login['home']}/isaac/code/lab_ext/e2e-registry/job-e2e-registry.sh"
        ).content_string
    )
    again = run("e2e-registry", ["--task", "Template-Reach-v0"], settings=settings, env=env)
    assert again.rc == 0 and again.totals()["success"] == 0, again.out
    missing = run(
        "e2e-registry",
        ["--task", "Template-Reach-v0"],
        settings=settings,
        env={"ROLLOUT_REGISTRY_PASSWORD": ""},
    )
    assert missing.rc != 0 and "$ROLLOUT_REGISTRY_PASSWORD" in missing.out, missing.out
    assert "is not set in this shell" in missing.out.splitlines()[-1]


def test_a_failed_build_keeps_the_login_nodes_saved_registry_credentials(rollout, lab):
    """#13.10: new registry credentials replace those saved on the login node only once a build
    with them worked."""
    project, login, node, run = rollout
    registry = lab["registry"]
    saved = node.file(f"{login['home']}/.config/isaac-deploy/registries/lab.env")
    images = f"{login['home']}/isaac/registry-images"
    args = ["--task", "Template-Reach-v0"]
    first = run(
        "e2e-registry",
        args,
        settings=registry_source(registry, registry["user"]),
        env={"ROLLOUT_REGISTRY_PASSWORD": registry["password"]},
    )
    assert first.rc == 0, first.out
    before = saved.content, saved.mode
    assert f"APPTAINER_DOCKER_USERNAME='{registry['user']}'" in saved.content_string
    tag = docker.from_env().images.get("isaac-lab-lab-ext:root").id.replace(":", "-")
    node.run(f"rm -f {images}/{tag}.sif {images}/{tag}.sif.sha256 ~/.fake-apptainer.log")
    robot = registry_source(registry, registry["robot_user"])
    wrong = run(
        "e2e-registry",
        args,
        "--data",
        "isaac_submit=0",
        settings=robot,
        env={"ROLLOUT_REGISTRY_PASSWORD": "wrong-robot-pass"},
    )
    assert wrong.rc != 0 and "wrong-robot-pass" not in wrong.out, wrong.out
    tried = node.run("cat ~/.fake-apptainer.log").stdout
    assert f".incoming/{tag}.sif" in tried  # the login node did try to build with them
    assert (saved.content, saved.mode) == before
    assert not node.file(f"{images}/{tag}.sif").exists
    leftovers = node.run("ls -A ~/.config/isaac-deploy/registries").stdout.split()
    assert leftovers == ["lab.env"]
    right = run(
        "e2e-registry",
        args,
        "--data",
        "isaac_submit=0",
        settings=robot,
        env={"ROLLOUT_REGISTRY_PASSWORD": registry["robot_password"]},
    )
    assert right.rc == 0 and registry["robot_password"] not in right.out, right.out
    assert node.file(f"{images}/{tag}.sif").exists and saved.mode == 0o600
    assert f"APPTAINER_DOCKER_USERNAME='{registry['robot_user']}'" in saved.content_string
    assert registry["robot_password"] in saved.content_string


def test_external_mounts_are_synced_or_checked_and_bound_in_the_job(rollout, tmp_path):
    project, login, node, run = rollout
    tools = tmp_path / "tools"
    (tools / ".git").mkdir(parents=True)
    (tools / "tool.py").write_text("print('tool')\n")
    (tools / ".git" / "HEAD").write_text("ref\n")
    mounts = {
        "mounts": {
            "tools": {
                "container_path": "/opt/tools",
                "enabled": True,
                "sync_to_cluster": True,
                "local_path": str(tools),
                "cluster_path": "~/isaac/mounts/tools",
            },
            "data": {
                "container_path": "/srv/data",
                "enabled": True,
                "read_only": True,
                "cluster_path": "~/isaac/data",
            },
        }
    }
    (project.path / ".mount.config").write_text(json.dumps(mounts))
    settings = {"entry_script": "scripts/lab_probe.py"}
    node.run("rm -rf ~/isaac/data ~/isaac/mounts")
    try:
        missing = run("e2e-mounts", [], settings=settings)
        assert missing.rc != 0, missing.out
        assert "mount data: " in missing.out and "is not a folder on the login node" in missing.out
        assert not [e for e in ledger(node) if e["run_key"] == "e2e-mounts"]  # nothing submitted
        node.run("mkdir -p ~/isaac/data && echo d > ~/isaac/data/data.txt")
        result = run("e2e-mounts", [], settings=settings)
        assert result.rc == 0, result.out
        entry = [e for e in ledger(node) if e["run_key"] == "e2e-mounts"][0]
        info = wait(login, entry["job_id"])
        assert "JobState=COMPLETED" in info, info
        probe = json.loads(node.run(f"cat ~/{TREE}/mounts-probe.json").stdout)
        assert probe == {
            "/opt/tools": [".isaac-deploy-mirror", "tool.py"],
            "/srv/data": ["data.txt"],
        }
        again = run("e2e-mounts", [], settings=settings)  # nothing changed: nothing sent
        assert again.rc == 0 and again.totals()["success"] == 0, again.out
        (tools / "tool.py").write_text("print('tool v2')\n")
        logins = accepted(login)
        changed = run("e2e-mounts", [], settings=settings)
        assert changed.rc == 0 and changed.totals()["success"] == 1, changed.out
        assert accepted(login) == logins + 1  # facts, commands and the rsync: one SSH connection
        assert "v2" in node.file(f"{login['home']}/isaac/mounts/tools/tool.py").content_string
    finally:
        (project.path / ".mount.config").unlink()


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("unreachable", "Connection refused"),
        ("unknown host key", "Host key verification failed"),
    ],
)
def test_a_login_node_that_cannot_be_reached_safely_fails_the_rollout(
    rollout, tmp_path, case, words
):
    project, login, node, run = rollout
    ssh = {"port": login["port"], "key": login["key"], "known_hosts": login["known_hosts"]}
    if case == "unreachable":
        ssh["port"] = 2999  # nothing listens there
    else:
        (tmp_path / "known_hosts").write_text("")
        ssh["known_hosts"] = str(tmp_path / "known_hosts")
    before = ledger(node)
    result = run("e2e-unreachable", [], settings={"ssh": ssh})
    assert result.rc != 0, result.out
    assert words in result.out, result.out
    assert ledger(node) == before
    assert "Apptainer image of" not in result.out  # no cluster left: the workstation builds nothing


def test_no_space_for_the_image_is_one_line_and_nothing_is_sent(rollout):
    project, login, node, run = rollout
    full = Path(login["home"]) / "isaac" / "full"
    full.mkdir(parents=True, exist_ok=True)
    uid = pwd.getpwnam(login["user"]).pw_uid
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size=1m,uid={uid},mode=0700", "tmpfs", str(full)],
        check=True,
    )
    try:
        before = ledger(node)
        result = run("e2e-full", [], settings={"image_dir": str(full / "images")})
        assert result.rc != 0, result.out
        [line] = [line for line in result.out.splitlines() if "error: not enough space" in line]
        assert f"in {full}/images for sha256-" in line and "KiB free" in line, line
        assert list(full.iterdir()) == [] and ledger(node) == before
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_a_pbs_cluster_gets_qsub_and_its_states_from_qstat(rollout):
    """PBS through the lab's stand-in (qsub/qstat/qdel over the lab's Slurm): the rendered PBS
    script is submitted with qsub, its directives honoured, states read from qstat's JSON."""
    project, login, node, run = rollout
    settings = {"scheduler": "pbs"}
    node.run("rm -f ~/.fake-pbs.log")
    ok = run(
        "e2e-pbs", ["--task", "Template-Reach-v0", "--run_name", "it's pbs"], settings=settings
    )
    bad = run("e2e-pbs-fail", ["--task", "Template-Reach-v0", "--fail"], settings=settings)
    assert ok.rc == 0 and bad.rc == 0, ok.out + bad.out
    entries = {e["run_key"]: e for e in ledger(node) if e["scheduler"] == "pbs"}
    assert entries["e2e-pbs"]["job_id"].endswith(".labpbs")
    calls = [json.loads(line) for line in node.run("cat ~/.fake-pbs.log").stdout.splitlines()]
    assert [c["argv"] for c in calls if c["cmd"] == "qsub"] == [
        [f"{login['home']}/isaac/code/lab_ext/e2e-pbs/job-e2e-pbs.sh"],
        [f"{login['home']}/isaac/code/lab_ext/e2e-pbs-fail/job-e2e-pbs-fail.sh"],
    ]
    for run_key, state in (("e2e-pbs", "COMPLETED"), ("e2e-pbs-fail", "FAILED")):
        info = wait(login, entries[run_key]["job_id"].split(".")[0])
        out = node.run(f"cat ~/{TREE}/isaac-deploy/{run_key}/job.out").stdout
        assert f"JobState={state}" in info, info + out
    log = node.run(f"cat ~/{TREE}/isaac-deploy/e2e-pbs/job.out").stdout
    assert "isaac-deploy job e2e-pbs" in log and "done: loss" in log, log
    listing = run("e2e-pbs", [], settings=settings, deploy="deploy/cluster_jobs.py")
    rows = {
        line.split()[1]: line.split()[2:]
        for line in listing.out.splitlines()
        if line.strip().startswith("[@openssh/lab-login]") and len(line.split()) > 4
    }
    assert rows["e2e-pbs"][1] == "COMPLETED" and rows["e2e-pbs-fail"][1:3] == ["FAILED", "(1)"]
    assert any(
        c["cmd"] == "qstat" and "-x" in c["argv"]
        for c in map(json.loads, node.run("cat ~/.fake-pbs.log").stdout.splitlines())
    )


def listing_rows(listing: Result) -> dict[str, list[str]]:
    """``deploy/cluster_jobs.py``'s table: run key -> job, state, ... (split at spaces)."""
    return {
        line.split()[1]: line.split()[2:]
        for line in listing.out.splitlines()
        if line.strip().startswith("[@openssh/lab-login]") and len(line.split()) > 4
    }


def test_a_pbs_server_without_ngpus_takes_a_job_that_asks_for_no_gpu(rollout):
    """A PBS site that defines no ngpus (the lab's server config): a job without GPUs has no GPU
    resource in its select and runs; one that asks for GPUs with the resource the server lacks
    is refused by qsub, in one line, and recorded as refused (nothing half-submitted)."""
    from tests.lab import pbs_server
    from tests.lab.lab import LAB_DIR

    project, login, node, run = rollout
    settings = {"scheduler": "pbs"}
    with pbs_server.configured(LAB_DIR, custom_resources=[]):
        ok = run(
            "e2e-pbs-nogpu",
            ["--task", "Template-Reach-v0", "--max_iterations", "2"],
            settings={**settings, "resources": {"gpus": 0, "cpus": 1, "memory": "500M"}},
        )
        assert ok.rc == 0, ok.out
        [entry] = [e for e in ledger(node) if e["run_key"] == "e2e-pbs-nogpu"]
        script = node.file(f"{entry['snapshot']}/job-e2e-pbs-nogpu.sh").content_string
        assert "#PBS -l select=1:ncpus=1:mem=500mb" in script.splitlines() and "ngpus" not in script
        assert "JobState=COMPLETED" in wait(login, entry["job_id"].split(".")[0])
        refused = run("e2e-pbs-ngpus", ["--task", "Template-Reach-v0"], settings=settings)
    assert refused.rc != 0
    assert "error: qsub answered no job id" in refused.out, refused.out
    assert "qsub: Unknown resource: ngpus" in refused.out
    lines = node.run("cat ~/.isaac-deploy/lab_ext-ledger.jsonl").stdout.splitlines()
    records = [e for e in map(json.loads, lines) if e["run_key"] == "e2e-pbs-ngpus"]
    assert [(e["status"], e["job_id"]) for e in records] == [("pending", ""), ("refused", "")]


SLEEPER = """import sys, time
time.sleep(float(sys.argv[sys.argv.index("--sleep") + 1]))
"""


def test_a_wall_time_kill_shows_timeout_on_slurm_and_pbs(rollout):
    """A job that outlives its wall time (1 minute, Slurm's smallest) is killed by the
    scheduler; the ledger listing says TIMEOUT for both (PBS: Exit_status -29). Both run at
    once, so the suite waits for one kill."""
    project, login, node, run = rollout
    sleeper = project.path / "scripts" / "lab_sleep.py"  # reaches the job in the snapshot
    sleeper.write_text(SLEEPER)
    settings = {
        "entry_script": "scripts/lab_sleep.py",
        "resources": {"gpus": 0, "cpus": 1, "memory": "500M", "walltime": "00:01:00"},
    }
    keys = {
        scheduler: f"e2e-timeout-{scheduler}-{time.time_ns()}" for scheduler in ("slurm", "pbs")
    }
    try:
        for scheduler, run_key in keys.items():
            result = run(run_key, ["--sleep", "600"], settings={**settings, "scheduler": scheduler})
            assert result.rc == 0, result.out
    finally:
        sleeper.unlink()
    entries = {e["run_key"]: e for e in ledger(node) if e["run_key"] in keys.values()}
    for scheduler, run_key in keys.items():
        info = wait(login, entries[run_key]["job_id"].split(".")[0])
        assert "JobState=TIMEOUT" in info, info
        listing = run(
            run_key, [], settings={"scheduler": scheduler}, deploy="deploy/cluster_jobs.py"
        )
        assert listing.rc == 0, listing.out
        assert listing_rows(listing)[run_key][1] == "TIMEOUT", listing.out
    job = entries[keys["pbs"]]["job_id"]
    answer = json.loads(node.run(f"qstat -x -f -F json {job}").stdout)["Jobs"][job]
    assert answer["Exit_status"] == -29 and answer["job_state"] == "F"


def test_one_submissions_time_gpus_and_partition_reach_the_plan_and_slurm(rollout, lab):
    """isaac-deploy cluster submit --time --gpus --partition: the plan shows them (--dry submits
    nothing), the job script has them and Slurm's own answer for the job has them."""
    project, login, node, run = rollout
    run_key = f"e2e-override-{time.time_ns()}"
    inventory = project.path.parent / "cluster_inventory.py"
    flags = ["--time", "00:07:00", "--gpus", "labgpu:1", "--partition", "debug"]
    cli = [str(project.venv_bin / "isaac-deploy"), "cluster", "submit", "-i", str(inventory)]
    env = {**os.environ, "PATH": f"{lab['apptainer_bin']}:{os.environ['PATH']}"}
    env["ROLLOUT_WANDB_KEY"] = "e2e-wandb-secret-1"

    args = ["--", "--task", "Template-Reach-v0", "--max_iterations", "1"]

    def submit(*extra: str) -> subprocess.CompletedProcess:
        argv = [*cli, *extra, "--run-key", run_key, *flags, *args]
        return subprocess.run(argv, cwd=project.path, env=env, capture_output=True, text=True)

    assert run(run_key, [], "--dry").rc == 0  # writes the inventory (the CLI reads it)
    dry = submit("--dry")
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out
    assert f"job {run_key} (gpus=labgpu:1, cpus=1, mem=500M, time=00:07:00, partition=debug)" in out
    assert not [e for e in ledger(node) if e["run_key"] == run_key]
    real = submit()
    assert real.returncode == 0, real.stdout + real.stderr
    [entry] = [e for e in ledger(node) if e["run_key"] == run_key]
    script = node.file(f"{entry['snapshot']}/job-{run_key}.sh").content_string.splitlines()
    for line in ("#SBATCH --time=00:07:00", "#SBATCH --gpus=labgpu:1", "#SBATCH --partition=debug"):
        assert line in script, script
    info = wait(login, entry["job_id"])
    assert "TimeLimit=00:07:00" in info and "Partition=debug" in info, info
    assert "gpu:labgpu:1" in info and "JobState=COMPLETED" in info, info


def test_submit_off_puts_only_the_image_there(rollout):
    project, login, node, run = rollout
    result = run(
        "e2e-image-only",
        [],
        "--data",
        "isaac_submit=0",
        settings={"image_dir": "~/isaac/image-only"},
    )
    assert result.rc == 0, result.out
    assert [f for f in node.run("ls ~/isaac/image-only").stdout.split() if f.endswith(".sif")]
    assert not node.file(f"{login['home']}/isaac/code/lab_ext/e2e-image-only").exists
    assert not [e for e in ledger(node) if e["run_key"] == "e2e-image-only"]


def test_a_yes_no_setting_that_is_neither_stops_the_rollout(rollout):
    project, login, node, run = rollout
    result = run("e2e-maybe", [], "--data", "isaac_submit=maybe")
    assert result.rc != 0, result.out
    assert "isaac_submit: must be true or false, got 'maybe'" in result.out, result.out
    assert "Traceback" not in result.out
    assert not node.file(f"{login['home']}/isaac/code/lab_ext/e2e-maybe").exists
    assert not [e for e in ledger(node) if e["run_key"] == "e2e-maybe"]


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"scheduler": "sge"}, "lab: isaac_cluster[scheduler]: must be one of 'slurm', 'pbs'"),
        ({"user": ""}, "lab: isaac_cluster[user]: is required"),
        ({"logs_dir": "isaac/logs"}, "lab: isaac_cluster[logs_dir]"),
    ],
)
def test_bad_cluster_settings_stop_before_any_connection(rollout, settings, words):
    project, login, node, run = rollout
    logins = accepted(login)
    result = run("e2e-bad", [], settings=settings)
    assert result.rc != 0 and words in result.out, result.out
    assert "Traceback" not in result.out and accepted(login) == logins  # never connected


def test_results_into_a_chosen_folder_and_no_apptainer_is_one_line(rollout, tmp_path):
    project, login, node, run = rollout
    result = run(
        "e2e-1",
        [],
        "--data",
        f"isaac_results_dir={tmp_path}/results",
        deploy="deploy/cluster_sync.py",
    )
    assert result.rc == 0, result.out
    assert list((tmp_path / "results" / "rsl_rl").rglob("args.json")), result.out
    assert list((tmp_path / "results" / "isaac-deploy" / "lab").rglob("runs-*.txt")), result.out
    before = ledger(node)
    fresh = tmp_path / "sif-cache"
    missing = run(
        "e2e-no-apptainer",
        [],
        "--data",
        f"isaac_sif_cache={fresh}",
        env={"PATH": os.environ["PATH"]},
    )  # the lab's bin (the stand-in) left out
    assert missing.rc != 0 and "apptainer is not installed on this workstation" in missing.out
    assert not fresh.exists() and ledger(node) == before


def test_dry_run_shows_the_plan_and_changes_nothing(rollout, tmp_path):
    project, login, node, run = rollout
    before = (ledger(node), node.run("ls -R ~/isaac | md5sum").stdout)
    fresh = tmp_path / "sif-cache"
    result = run(
        "e2e-dry",
        ["--task", "Template-Reach-v0"],
        "--dry",
        "--data",
        f"isaac_sif_cache={fresh}",
        settings={"image_dir": "~/isaac/dry"},
    )
    assert result.rc == 0, result.out
    assert "Apptainer image of" in result.out and "job e2e-dry" in result.out
    assert (ledger(node), node.run("ls -R ~/isaac | md5sum").stdout) == before
    assert not fresh.exists()


def test_one_login_node_acts_for_its_cluster(rollout):
    """Two login nodes of one cluster (same file systems, same scheduler): the first that
    answers does the work, the other stands by; the job is submitted once."""
    project, login, node, run = rollout
    two = ("lab-login", "lab-login-b")
    result = run("e2e-two-logins", ["--task", "Template-Reach-v0"], "-v", hosts=two)
    assert result.rc == 0, result.out
    assert "cluster lab is handled through @openssh/lab-login" in result.out
    assert len([e for e in ledger(node) if e["run_key"] == "e2e-two-logins"]) == 1
    listing = run("e2e-two-logins", [], deploy="deploy/cluster_jobs.py", hosts=two)
    assert listing.rc == 0 and listing.out.count("e2e-two-logins") == 1, listing.out


def test_the_cluster_commands_of_the_cli(rollout, lab):
    """`isaac-deploy cluster submit -- ARGS` (arguments as typed, no second quoting), `jobs`."""
    project, login, node, run = rollout
    assert run("e2e-cli-setup", [], "--dry").rc == 0  # writes the inventory
    inventory = str(project.path.parent / "cluster_inventory.py")
    cli = [str(project.venv_bin / "isaac-deploy"), "cluster"]
    env = {**os.environ, "PATH": f"{lab['apptainer_bin']}:{os.environ['PATH']}"}
    args = ["--task", "Template-Reach-v0", "--run_name", "cli", "it's $(x) * ü", "true", "12"]
    submit = subprocess.run(
        [*cli, "submit", "-i", inventory, "--run-key", "e2e-cli", "--", *args],
        cwd=project.path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert submit.returncode == 0, submit.stdout + submit.stderr
    [entry] = [e for e in ledger(node) if e["run_key"] == "e2e-cli"]
    assert entry["args"] == args
    assert "JobState=COMPLETED" in wait(login, entry["job_id"])
    [run] = recorded_runs(node, "e2e-cli", entry["job_id"])
    args_file = f"{login['home']}/{TREE}/{run}/args.json"
    assert json.loads(node.file(args_file).content_string)["argv"] == args
    jobs = subprocess.run(
        [*cli, "jobs", "-i", inventory], cwd=project.path, capture_output=True, text=True, env=env
    )
    assert jobs.returncode == 0 and "e2e-cli" in jobs.stdout + jobs.stderr


def test_old_images_are_pruned_but_not_a_running_jobs_nor_another_projects(rollout):
    project, login, node, run = rollout
    images = f"{login['home']}/isaac/images"
    busy = subprocess.run(
        [
            "ssh",
            "-F",
            login["ssh_config"],
            "lab-login",
            "cd /tmp && sbatch --parsable -o /dev/null --wrap 'sleep 60'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = [
        {"run_key": "img-a", "job_id": "999998", "scheduler": "slurm", "image": "sha256:aaa"},
        {"run_key": "img-b", "job_id": busy, "scheduler": "slurm", "image": "sha256:bbb"},
        {"run_key": "img-c", "job_id": "999997", "scheduler": "slurm", "image": "sha256:ccc"},
    ]
    node.run(
        f"cd {images} && mkdir -p .incoming && "
        "for n in foreign sha256-aaa sha256-bbb sha256-ccc; do echo x > $n.sif; echo s > $n.sif.sha256; done && "
        "echo p > .incoming/sha256-ddd.sif && touch -d '2 days ago' .incoming/sha256-ddd.sif && "
        "touch -d '4 days ago' foreign.sif && touch -d '3 days ago' sha256-aaa.sif && "
        "touch -d '2 days ago' sha256-bbb.sif && touch -d '1 day ago' sha256-ccc.sif && "
        + " && ".join(
            f"printf '%s\\n' {shlex.quote(json.dumps(line))} >> ~/.isaac-deploy/lab_ext-ledger.jsonl"
            for line in lines
        )
    )
    try:
        result = run("e2e-1", ARGS, "-v")  # image retention 2: this run's image and sha256-ccc
        assert result.rc == 0, result.out
        left = set(node.run(f"cd {images} && ls -A . .incoming").stdout.split())
        assert {"foreign.sif", "sha256-bbb.sif", "sha256-ccc.sif", "sha256-ccc.sif.sha256"} <= left
        assert not {"sha256-aaa.sif", "sha256-aaa.sif.sha256", "sha256-ddd.sif"} & left, left
        assert f"kept image sha256-bbb.sif: job {busy} is" in result.out
    finally:
        subprocess.run(
            ["ssh", "-F", login["ssh_config"], "lab-login", f"scancel {busy}"], check=False
        )


def test_limit_to_one_cluster_keeps_the_workstation_in(rollout, lab):
    project, login, node, run = rollout
    alone = run("e2e-1", ARGS, "--limit", "lab")  # pyinfra's own --limit: the workstation is out
    assert alone.rc != 0 and "add --limit @local" in alone.out, alone.out
    inventory = str(project.path.parent / "cluster_inventory.py")
    env = {**os.environ, "PATH": f"{lab['apptainer_bin']}:{os.environ['PATH']}"}
    cli = subprocess.run(
        [
            str(project.venv_bin / "isaac-deploy"),
            "cluster",
            "submit",
            "-i",
            inventory,
            "--limit",
            "lab",
            "--run-key",
            "e2e-1",
            "--",
            *ARGS,
        ],
        cwd=project.path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr  # the CLI adds --limit @local itself


def test_a_sandbox_cluster_runs_the_unpacked_image(rollout):
    project, login, node, run = rollout
    settings = {"image_format": "sandbox", "image_dir": "~/isaac/sandbox-images"}
    result = run("e2e-sandbox", ["--task", "Template-Reach-v0"], settings=settings)
    assert result.rc == 0, result.out
    folder = f"{login['home']}/isaac/sandbox-images"
    [sandbox] = [n for n in node.run(f"ls {folder}").stdout.split() if n.endswith(".sandbox")]
    assert node.file(f"{folder}/{sandbox}/.singularity.d/runscript").exists
    assert not node.run(f"ls -A {folder}/.incoming").stdout.strip()  # nothing half-built left
    script = node.file(f"{login['home']}/isaac/code/lab_ext/e2e-sandbox/job-e2e-sandbox.sh")
    assert f"{folder}/{sandbox}" in script.content_string
    entry = [e for e in ledger(node) if e["run_key"] == "e2e-sandbox"][0]
    assert "JobState=COMPLETED" in wait(login, entry["job_id"])
    again = run("e2e-sandbox", ["--task", "Template-Reach-v0"], settings=settings)
    assert again.rc == 0 and again.totals()["success"] == 0, again.out


def test_an_image_edit_after_the_build_is_refused_until_the_image_is_rebuilt(rollout):
    """#13.11: the production image is rolled out only when what a job sees of it matches the
    tree: a code edit alone needs no new image (the code snapshot carries it); after an edit of
    the extension's packaging metadata the roll-out stops in one line naming the build command,
    before anything is built, sent or submitted; after that command it proceeds with the new
    image."""
    project, login, node, run = rollout
    engine = docker.from_env()
    built = engine.images.get("isaac-lab-lab-ext:root").id
    tasks = project.path / "source" / "lab_ext" / "ext_template" / "tasks.py"
    code = tasks.read_text()
    tasks.write_text(code + "\n# edited after the image was built\n")
    try:
        planned = run("e2e-code-edit", ["--task", "Template-Reach-v0"], "--dry")
        assert planned.rc == 0 and "out of date" not in planned.out, planned.out
    finally:
        tasks.write_text(code)
    metadata = project.path / "source" / "lab_ext" / "pyproject.toml"
    original = metadata.read_text()
    settings = {"image_dir": "~/isaac/stale-images"}
    cache = project.path.parent / "sif-cache"
    build = f"{project.venv_bin / 'isaac-deploy'} -p ext build"
    rebuilt = None
    metadata.write_text(original + "\n# edited after the image was built\n")
    try:
        before = (ledger(node), node.run("ls -R ~/isaac | md5sum").stdout, sorted(cache.glob("*")))
        refused = run("e2e-stale", ["--task", "Template-Reach-v0"], settings=settings)
        assert refused.rc != 0 and "Traceback" not in refused.out, refused.out
        [line] = [line for line in refused.out.splitlines() if "isaac-deploy -p ext build" in line]
        assert "image isaac-lab-lab-ext:root is out of date: its Dockerfile" in line, line
        after = (ledger(node), node.run("ls -R ~/isaac | md5sum").stdout, sorted(cache.glob("*")))
        assert after == before  # no SIF built here, nothing on the login node, no job
        assert not node.file(f"{login['home']}/isaac/stale-images").exists
        project.shell(build, check=True)
        rebuilt = engine.images.get("isaac-lab-lab-ext:root").id
        assert rebuilt != built
        result = run("e2e-stale", ["--task", "Template-Reach-v0"], settings=settings)
        assert result.rc == 0, result.out
        [entry] = [e for e in ledger(node) if e["run_key"] == "e2e-stale"]
        assert entry["image"] == rebuilt
        sif = rebuilt.replace(":", "-") + ".sif"
        assert node.file(f"{login['home']}/isaac/stale-images/{sif}").exists
    finally:  # the tree and the image as the other tests know them, the edited one removed
        metadata.write_text(original)
        project.shell(build, check=True)
        if rebuilt is not None:
            engine.images.remove(rebuilt)
    assert engine.images.get("isaac-lab-lab-ext:root").id == built  # from Docker's cache
    assert rebuilt not in {image.id for image in engine.images.list(all=True)}


EDIT = "print('uncommitted edit 7f3a', flush=True)\n"


def test_an_uncommitted_edit_is_a_new_run_that_runs_the_edit(rollout):
    """#13.2: the default run key follows the code, so an edit not committed yet makes a new
    snapshot and a job that runs it; the old run's key, named explicitly, is refused in one line
    (its snapshot holds the old code), also with isaac_resubmit=1."""
    project, login, node, run = rollout
    code = f"{login['home']}/isaac/code/lab_ext"
    args = ["--task", "Template-Reach-v0", "--max_iterations", "2", "--run_name", "edit"]
    train = project.path / "scripts" / "rsl_rl" / "train.py"
    text = train.read_text()
    first = run("", args)  # no isaac_run_key: the default one
    assert first.rc == 0, first.out
    [clean] = [e for e in ledger(node) if e.get("args") == args]
    # one job at a time: the Apptainer stand-in's first unpacking of an image is not safe for two
    assert "JobState=COMPLETED" in wait(login, clean["job_id"])
    train.write_text(text.replace("def main(", EDIT + "\n\ndef main(", 1))
    try:
        edited = run("", args)
        assert edited.rc == 0, edited.out
        [entry] = [e for e in ledger(node) if e.get("args") == args and e != clean]
        assert entry["commit"] == clean["commit"] and entry["run_key"] != clean["run_key"]
        assert EDIT in node.file(f"{entry['snapshot']}/scripts/rsl_rl/train.py").content_string
        assert EDIT not in node.file(f"{clean['snapshot']}/scripts/rsl_rl/train.py").content_string
        info = wait(login, entry["job_id"])
        assert "JobState=COMPLETED" in info, info
        assert "uncommitted edit 7f3a" in job_output(node, entry["run_key"], entry["job_id"])
        before = (ledger(node), node.run(f"ls -AR {code} | md5sum").stdout)
        refused = run(clean["run_key"], args, "--data", "isaac_resubmit=1")
        assert refused.rc != 0, refused.out
        [line] = [line for line in refused.out.splitlines() if "holds other code" in line]
        assert (
            f"lab: run key {clean['run_key']}: its code snapshot on the login node holds other "
            "code (sha256:" in line
        ), line
        assert line.endswith(
            "choose a new run key, or commit and leave the run key unset "
            "(the default run key follows the code)"
        ), line
        assert "Traceback" not in refused.out
        assert (ledger(node), node.run(f"ls -AR {code} | md5sum").stdout) == before
    finally:
        train.write_text(text)


HALF_RSYNC = """#!/usr/bin/python3
# rsync killed mid-way, for the lab: a copy with a --files-from list sends the first half of
# the list, then exits as rsync does when a signal stops it; any other copy runs as it is
import os, sys, subprocess
args = sys.argv[1:]
lists = [a for a in args if a.startswith("--files-from=")]
if not lists:
    os.execv("/usr/bin/rsync", ["rsync", *args])
names = open(lists[0].split("=", 1)[1]).read().splitlines()
with open({half!r}, "w") as half:
    half.write("".join(name + "\\n" for name in names[: len(names) // 2]))
args = ["--files-from=" + {half!r} if a in lists else a for a in args]
subprocess.run(["/usr/bin/rsync", *args])
sys.exit(20)
"""


def test_an_interrupted_copy_is_never_used_and_the_next_rollout_completes_it(
    rollout, lab, tmp_path
):
    """#13.3: a copy cut half-way stays in .incoming/ (no snapshot, no job); the next roll-out
    makes the whole, checked snapshot in a copy of its own and submits; the cut copy is never
    used; partial copies older than a day are pruned, younger ones (maybe still being sent) are
    not."""
    from isaac_deploy.probes.context_digest import context_digest
    from isaac_deploy.probes.local import context_file_list

    project, login, node, run = rollout
    code = f"{login['home']}/isaac/code/lab_ext"
    (tmp_path / "bin").mkdir()
    wrapper = tmp_path / "bin" / "rsync"
    wrapper.write_text(HALF_RSYNC.format(half=str(tmp_path / "half.txt")))
    wrapper.chmod(0o755)
    path = f"{tmp_path / 'bin'}:{lab['apptainer_bin']}:{os.environ['PATH']}"
    args = ["--task", "Template-Reach-v0", "--max_iterations", "2", "--run_name", "cut"]
    listed = Path(context_file_list(str(project.path))).read_text().splitlines()
    every = sorted(f"./{name}" for name in listed)
    cut = run("e2e-cut", args, env={"PATH": path})
    assert cut.rc != 0, cut.out
    [cut_copy] = [n for n in node.run(f"ls -A {code}/.incoming").stdout.split() if "e2e-cut" in n]
    assert cut_copy.startswith("e2e-cut."), cut_copy
    arrived = node.run(f"cd {code}/.incoming/{cut_copy} && find . ! -type d").stdout.splitlines()
    assert 0 < len(arrived) < len(every), arrived
    assert not node.file(f"{code}/e2e-cut").exists
    assert not [e for e in ledger(node) if e["run_key"] == "e2e-cut"]  # no job ran it
    node.run(
        f"mkdir -p {code}/.incoming/old-cut {code}/.incoming/young-cut && "
        f"touch -d '2 days ago' {code}/.incoming/old-cut"
    )
    try:
        done = run("e2e-cut", args)
        assert done.rc == 0, done.out
        snapshot = f"{code}/e2e-cut"
        own = "! -name '.isaac-deploy-*' ! -name job-e2e-cut.sh ! -name '*.pyc'"  # not the tree's
        found = node.run(f"cd {snapshot} && find . ! -type d {own}").stdout.splitlines()
        assert sorted(found) == every
        recorded = node.file(f"{snapshot}/.isaac-deploy-snapshot").content_string
        assert recorded == context_digest(str(project.path))["digest"] + "\n"
        assert sorted(node.run(f"ls -A {code}/.incoming").stdout.split()) == [cut_copy, "young-cut"]
        [entry] = [e for e in ledger(node) if e["run_key"] == "e2e-cut"]
        assert entry["snapshot"] == snapshot
        assert "JobState=COMPLETED" in wait(login, entry["job_id"])
    finally:
        node.run(f"cd {code}/.incoming && rm -rf young-cut old-cut {cut_copy}")


def test_two_concurrent_rollouts_of_one_run_key_submit_one_job(rollout):
    """Two terminals at once: the check-submit-record under the ledger's lock lets one submit;
    the other finds the job in the ledger. Slurm, asked by the run's job names, has one job."""
    project, login, node, run = rollout
    run_key = f"e2e-twice-{time.time_ns()}"  # Slurm's accounting outlives the lab's ledger
    args = ["--task", "Template-Reach-v0", "--max_iterations", "1"]
    # the inventory and the image first: the two runs race for the submission only
    assert run(run_key, args, "--data", "isaac_submit=0").rc == 0
    # -vvv: the commands' output (which one submitted)
    both = [run(run_key, args, "-vvv", background=True) for _ in range(2)]
    outs = [proc.communicate(timeout=300)[0] for proc in both]
    assert [proc.returncode for proc in both] == [0, 0], outs
    [entry] = [e for e in ledger(node) if e["run_key"] == run_key]
    assert slurm_jobs(login, f"lab_ext.{run_key}.") == {entry["job_id"]}, outs
    assert "".join(outs).count(f"submitted job {entry['job_id']}") == 1, outs
    assert "JobState=COMPLETED" in wait(login, entry["job_id"])


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_a_job_the_ledger_lost_is_recorded_by_its_name_and_not_submitted_again(
    rollout, lab, scheduler
):
    """The ledger cannot be written once sbatch has answered (an sbatch wrapper on the login
    node's PATH makes it read-only): the roll-out fails saying so; the next one submits
    nothing and records the job the scheduler knows by the submission's job name."""
    project, login, node, run = rollout
    run_key = f"e2e-lost-{scheduler}-{time.time_ns()}"
    wrapper = Path(lab["apptainer_bin"]) / "sbatch"  # the lab's bin folder: the login's PATH
    wrapper.write_text(
        '#!/bin/sh\n/usr/bin/sbatch "$@"; rc=$?\n'
        'chmod a-w "$HOME/.isaac-deploy/lab_ext-ledger.jsonl"\nexit $rc\n'
    )
    wrapper.chmod(0o755)
    settings = {"scheduler": scheduler}
    try:
        lost = run(run_key, ["--task", "Template-Reach-v0"], settings=settings)
    finally:
        wrapper.unlink()
        node.run("chmod u+w ~/.isaac-deploy/lab_ext-ledger.jsonl")
    assert lost.rc != 0 and "was submitted but the ledger" in lost.out, lost.out
    assert "the next roll-out records it (it finds the job by its name" in lost.out
    assert not [e for e in ledger(node) if e["run_key"] == run_key]
    [job] = slurm_jobs(login, f"lab_ext.{run_key}.")
    again = run(run_key, ["--task", "Template-Reach-v0"], "-vvv", settings=settings)
    assert again.rc == 0, again.out
    assert f"run {run_key} has a submission without a job id: the job named" in again.out
    [entry] = [e for e in ledger(node) if e["run_key"] == run_key]
    assert entry["job_id"].split(".")[0] == job and entry["status"] == "submitted"
    if scheduler == "pbs":
        assert entry["job_id"] == f"{job}.labpbs"
    assert f"recorded job {entry['job_id']} of run {run_key}, found by its name" in again.out
    assert slurm_jobs(login, f"lab_ext.{run_key}.") == {job}  # nothing submitted again
    third = run(run_key, ["--task", "Template-Reach-v0"], settings=settings)
    assert third.rc == 0 and third.totals()["success"] == 0, third.out
    assert "JobState=COMPLETED" in wait(login, job)


def test_a_garbage_line_in_the_ledger_is_reported_by_the_listing(rollout):
    project, login, node, run = rollout
    path = "~/.isaac-deploy/lab_ext-ledger.jsonl"
    before = node.run(f"cat {path} 2>/dev/null").stdout
    neighbour = {"run_key": "e2e-neighbour", "job_id": "999998", "scheduler": "slurm"}
    node.run(
        f"mkdir -p ~/.isaac-deploy && printf '%s\\n' {shlex.quote(json.dumps(neighbour))}"
        f' \'garbage {{"run_key": "e2e-torn\' >> {path}'
    )
    try:
        listing = run("e2e-neighbour", [], deploy="deploy/cluster_jobs.py")
    finally:
        node.run(f"printf '%s' {shlex.quote(before)} > {path}")
    assert listing.rc == 0, listing.out
    number = len(before.splitlines()) + 2
    assert (
        f"lab_ext-ledger.jsonl line {number} is not a ledger entry (left out): "
        'garbage {"run_key": "e2e-torn'
    ) in listing.out
    rows = [line.split()[1:4] for line in listing.out.splitlines()]
    assert ["e2e-neighbour", "999998", "ENDED"] in rows, listing.out


def test_the_snapshot_of_a_queued_job_the_ledger_does_not_know_is_kept(rollout):
    """A job stays queued behind one holding both GPUs; its ledger lines are lost. Pruning
    asks the scheduler for its run's job names: its snapshot, the oldest, stays, ledger or
    not."""
    project, login, node, run = rollout
    ssh = ["ssh", "-F", login["ssh_config"], "lab-login"]
    code = f"{login['home']}/isaac/code/lab_ext"
    run_key = f"e2e-unknown-{time.time_ns()}"
    blocker = hold_both_gpus(ssh)
    try:
        deadline = time.monotonic() + 60
        while (
            "JobState=RUNNING"
            not in subprocess.run(
                [*ssh, f"scontrol show job -o {blocker}"], capture_output=True, text=True
            ).stdout
        ):  # both GPUs held: the next job stays queued
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert run(run_key, ["--task", "Template-Reach-v0"]).rc == 0
        [queued] = slurm_jobs(login, f"lab_ext.{run_key}.")
        node.run(
            f'cd ~/.isaac-deploy && grep -v \'"run_key": "{run_key}"\' lab_ext-ledger.jsonl'
            " > lost.jsonl && mv lost.jsonl lab_ext-ledger.jsonl"
        )
        assert not [e for e in ledger(node) if e["run_key"] == run_key]
        node.run(f"touch -d '3 days ago' {code}/{run_key}")  # the oldest: pruned first
        result = run("e2e-after-unknown", ["--task", "Template-Reach-v0"], "-v")
        assert result.rc == 0, result.out
        assert node.file(f"{code}/{run_key}").is_directory
        assert f"kept snapshot {run_key}: job {queued} (lab_ext.{run_key}." in result.out
    finally:
        subprocess.run([*ssh, f"scancel {blocker} $(squeue -h -u $(id -un) -o %i)"], check=False)


def test_a_second_job_resumes_from_the_run_of_the_first_in_the_persistent_tree(rollout):
    """#12.2: jobs start in the extension's folder, so the template-like train.py writes each
    run into the extension's one logs tree (here under $SCRATCH, which only the login profile
    sets); a second job with --resume --load_run finds the first job's run; nothing lands in a
    snapshot or the home; `cluster jobs` names each job's run folder; `cluster sync` brings
    both back to logs/."""
    project, login, node, run = rollout
    settings = {"logs_dir": "$SCRATCH/isaac-logs"}
    tree = "scratch/isaac-logs/lab_ext"
    train = ["--task", "Template-Reach-v0", "--max_iterations"]
    first = run("e2e-tree-1", [*train, "4", "--run_name", "first"], settings=settings)
    assert first.rc == 0, first.out
    [one] = [e for e in ledger(node) if e["run_key"] == "e2e-tree-1"]
    assert "JobState=COMPLETED" in wait(login, one["job_id"])
    [first_run] = recorded_runs(node, "e2e-tree-1", one["job_id"], tree=tree)
    resume = ["--resume", "--load_run", ".*_first", "--run_name", "second"]
    second = run("e2e-tree-2", [*train, "2", *resume], settings=settings)
    assert second.rc == 0, second.out
    [two] = [e for e in ledger(node) if e["run_key"] == "e2e-tree-2"]
    info = wait(login, two["job_id"])
    assert "JobState=COMPLETED" in info, node.run(f"cat ~/{tree}/isaac-deploy/*/*.out").stdout
    [second_run] = recorded_runs(node, "e2e-tree-2", two["job_id"], tree=tree)
    home = login["home"]
    checkpoint = json.loads(node.file(f"{home}/{tree}/{second_run}/model_6.pt").content_string)
    assert checkpoint["resumed_from"] == f"/workspace/lab_ext/logs/{first_run}/model_4.pt"
    for entry in (one, two):
        assert node.run(f"find {entry['snapshot']} -name 'model_*'").stdout == ""
    assert not node.file(f"{home}/logs").exists
    listing = run("e2e-tree-2", [], settings=settings, deploy="deploy/cluster_jobs.py")
    assert listing.rc == 0, listing.out
    assert f"-> logs/{first_run}" in listing.out and f"-> logs/{second_run}" in listing.out
    synced = run("e2e-tree-2", [], settings=settings, deploy="deploy/cluster_sync.py")
    assert synced.rc == 0, synced.out
    logs = project.path / "logs"
    assert (logs / first_run / "model_4.pt").is_file()
    assert (logs / second_run / "model_6.pt").is_file()


def test_isaac_sims_write_paths_and_caches_land_under_the_cache_dir(rollout):
    """#12.3: a probe in the image writes where Isaac Sim and its libraries write; each write
    lands under the cluster's cache dir (kit/ binds, the job's own home), the cluster user's
    home gets nothing, the image stays unwritable elsewhere, the job's GPUs reach it."""
    project, login, node, run = rollout
    home = login["home"]
    node.run("touch ~/.e2e-probe-start && sleep 1")
    settings = {"entry_script": "scripts/lab_runtime_probe.py"}
    result = run("e2e-runtime", [json.dumps(WRITE_PATHS)], settings=settings)
    assert result.rc == 0, result.out
    [entry] = [e for e in ledger(node) if e["run_key"] == "e2e-runtime"]
    info = wait(login, entry["job_id"])
    assert "JobState=COMPLETED" in info, job_output(node, "e2e-runtime", entry["job_id"])
    probe = json.loads(node.run(f"cat ~/{TREE}/runtime-probe.json").stdout)
    assert probe["cwd"] == "/workspace/lab_ext" and probe["home"] == "/root"
    assert probe["gpus"] in ("0", "1")
    assert probe["writes"] == {
        **dict.fromkeys(WRITE_PATHS, "ok"),
        "/isaac-sim/not-bound": "Permission denied",  # the image's own folders stay root's
    }
    cache = f"{home}/isaac/cache"
    for path in WRITE_PATHS:
        landed = (
            f"{cache}/home/{path[2:]}"
            if path.startswith("~/")
            else f"{cache}/kit/{path.split('/kit/')[1]}"
        )
        assert node.file(f"{landed}/runtime-probe.txt").content_string == path, path
    own = ("isaac/", ".isaac-deploy/", ".config/isaac-deploy/", ".fake-apptainer.log")
    changed = node.run("cd ~ && find . -type f -newer .e2e-probe-start").stdout.split("\n")
    node.run("rm -f ~/.e2e-probe-start")
    assert [f for f in changed if f and not f[2:].startswith(own)] == []


def test_the_stand_in_loses_a_relative_run_as_apptainer_did_with_the_old_job_flags(rollout):
    """The lab's Apptainer reproduces what real Apptainer did to the jobs before #12: with the
    old flags (no --pwd, the host's current folder bound and started in) a relative-logging
    train.py writes its run into the code snapshot it was submitted from, Isaac Sim's own
    folders cannot be written and the caches go to the user's home; --containall alone loses
    the run in a throw-away home; --pwd puts it in the logs tree."""
    project, login, node, run = rollout
    entry = ledger(node)[-1]  # the newest job: its snapshot is not pruned yet
    image = f"~/isaac/images/{entry['image'].replace(':', '-')}.sif"
    code, logs = "~/isaac/old-job-code", "~/isaac/old-job-logs"
    node.run(f"rm -rf {code} {logs} && cp -a {entry['snapshot']} {code} && mkdir -p {logs}")
    old = (
        f"cd {code} && APPTAINER_CACHEDIR=~/isaac/cache/apptainer apptainer exec --nv --cleanenv "
        f'--bind "$PWD:/workspace/lab_ext" --bind {logs}:/workspace/lab_ext/logs'
    )
    train = (
        "/opt/isaac-deploy/entrypoint.sh python /workspace/lab_ext/scripts/rsl_rl/train.py "
        "--task Template-Reach-v0 --max_iterations 1 --run_name"
    )
    runs = f"find {code}/logs {logs} -path '*rsl_rl*' -name '*_%s' | sed 's|^{login['home']}/||'"

    def where(flags: str, name: str) -> list[str]:
        done = node.run(f"{old} {flags} {image} {train} {name}")
        assert done.rc == 0, done.stdout + done.stderr
        return node.run(runs % name).stdout.split()

    [lost] = where("", "old-flags")
    assert lost.startswith("isaac/old-job-code/logs/rsl_rl/ext_template/")  # in the snapshot
    assert where("--containall", "contained") == []  # lost with the throw-away home
    [fixed] = where("--pwd /workspace/lab_ext", "fixed")
    assert fixed.startswith("isaac/old-job-logs/rsl_rl/ext_template/")
    probe = (
        f"/workspace/lab_ext/scripts/lab_runtime_probe.py {shlex.quote(json.dumps(WRITE_PATHS))}"
    )
    try:
        done = node.run(f"{old} {image} /opt/isaac-deploy/entrypoint.sh python {probe}")
        assert done.rc == 0, done.stderr
        writes = json.loads(node.run(f"cat {code}/logs/runtime-probe.json").stdout)["writes"]
        assert writes["/isaac-sim/kit/data"] == "Read-only file system"
        assert node.file(f"{login['home']}/.cache/ov/runtime-probe.txt").exists  # the home quota
    finally:
        node.run(
            "rm -rf ~/.cache/ov ~/.cache/pip ~/.cache/nvidia ~/.nv ~/.nvidia-omniverse "
            f"~/.local/share/ov ~/Documents {code} {logs}"
        )


# ------------------------------------------- issue #16: sweeps, cluster logs -f, cluster shell
SWEEP_RUNS = [  # hostile arguments, each element's own; train.py records them in args.json
    ['it\'s "quoted" $(touch /tmp/pwned-sweep)'],
    # --fail explodes the loss in about 20 iterations (the later --max_iterations wins)
    ["semi;colon && two  spaces *", "--fail", "--max_iterations", "30"],
]


def cli_env(lab) -> dict:
    path = f"{lab['apptainer_bin']}:{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "ROLLOUT_WANDB_KEY": "e2e-wandb-secret-1"}


def isaac(project, lab, *argv: str, inventory: str) -> subprocess.CompletedProcess:
    command = [str(project.venv_bin / "isaac-deploy"), "cluster", argv[0], "-i", inventory]
    return subprocess.run(
        [*command, *argv[1:]], cwd=project.path, capture_output=True, text=True, env=cli_env(lab)
    )


def follow(project, lab, run_key: str, inventory: str) -> subprocess.Popen:
    """`isaac-deploy cluster logs RUN_KEY -f`, started (not waited for)."""
    command = [str(project.venv_bin / "isaac-deploy"), "cluster", "logs", "-i", inventory]
    return subprocess.Popen(
        [*command, run_key, "-f"],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(lab),
    )


def slurm(login, command: str) -> str:
    ssh = ["ssh", "-F", login["ssh_config"], "lab-login", command]
    return subprocess.run(ssh, capture_output=True, text=True, check=True).stdout


def element_ended(login, array: str, index: int) -> str:
    """The state of element ``index`` of array job ``array`` once it ended, by Slurm's
    accounting (a pending element cancelled has no job record of its own for scontrol)."""
    from isaac_deploy.facts.scheduler import slurm_ids

    deadline = time.monotonic() + 120
    while True:
        out = slurm(login, f"sacct -n -X -P -j {array} -o JobID,State")
        states = {
            job: state.split()[0]
            for line in out.splitlines()
            for job in slurm_ids(line.split("|")[0])
            for state in [line.split("|")[1]]
        }
        state = states.get(f"{array}_{index}", "")
        if state and state not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING"):
            return state
        assert time.monotonic() < deadline, out
        time.sleep(0.5)


def test_a_sweep_is_one_job_array_each_element_with_its_arguments_line_and_run(rollout, lab):
    """`cluster sweep`: 4 elements (a grid of 2 seeds times 2 hostile runs) with a throttle of 2
    as one Slurm array; a ledger line per element with its exact arguments; a second roll-out
    submits nothing; one element and a whole sweep cancelled; `cluster logs -f` follows a
    running element to its end with its exit code (a failing one too); `cluster jobs` shows
    each element's state and the sweep's counts."""
    project, login, node, run = rollout
    assert run("e2e-sweep-setup", [], "--dry").rc == 0  # writes the inventory
    inventory = str(project.path.parent / "cluster_inventory.py")
    spec = project.path.parent / "sweep.json"
    spec.write_text(json.dumps({"runs": SWEEP_RUNS, "throttle": 2}))
    common = ["--task", "Template-Reach-v0", "--max_iterations", "2"]
    sweep = ["--file", str(spec), "--grid", "seed=1,2", "--run-key", "e2e-sweep", "--", *common]
    # both GPUs held until the sweeps were checked and cancelled (then released: not a sleep)
    blocker = slurm(login, "cd /tmp && sbatch --parsable --gpus=2 -o /dev/null --wrap 'sleep 600'")
    try:
        first = isaac(project, lab, "sweep", *sweep, inventory=inventory)
        assert first.returncode == 0, first.stdout + first.stderr
        records = [e for e in ledger(node) if e["run_key"].startswith("e2e-sweep")]
        [array] = [e for e in records if e["run_key"] == "e2e-sweep"]
        job = array["job_id"]
        elements = {e["run_key"]: e for e in records if e is not array}
        expected = {
            f"e2e-sweep.{2 * s + r}": [*common, "--seed", str(s + 1), *SWEEP_RUNS[r]]
            + ["--run_name", f"e2e-sweep.{2 * s + r}"]
            for s in range(2)
            for r in range(2)
        }
        assert {k: e["args"] for k, e in elements.items()} == expected
        assert {e["job_id"] for e in elements.values()} == {f"{job}_{i}" for i in range(4)}
        # Slurm's own answer: one array of 4 with the throttle, pending behind the blocker
        info = slurm(login, f"scontrol show job -o {job}")
        assert "ArrayTaskThrottle=2" in info and "JobState=PENDING" in info, info
        # a second roll-out of the same sweep submits nothing and writes no line
        again = isaac(project, lab, "sweep", *sweep, inventory=inventory)
        assert again.returncode == 0, again.stdout + again.stderr
        assert [e for e in ledger(node) if e["run_key"].startswith("e2e-sweep")] == records
        assert {j.split("_")[0] for j in slurm_jobs(login, array["job_name"])} == {job}
        # cancel one (pending) element
        cancel = isaac(project, lab, "jobs", "--cancel", "e2e-sweep.3", inventory=inventory)
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr
        # Slurm keeps no record of a pending element cancelled alone (neither scontrol nor
        # sacct): it is gone from the array's pending tasks and never runs
        from isaac_deploy.facts.scheduler import task_ids

        meta = slurm(login, f"scontrol show job -o {job}").split()
        tasks = [w.split("=", 1)[1] for w in meta if w.startswith("ArrayTaskId=")]
        assert tasks and 3 not in task_ids(tasks[0]) and 2 in task_ids(tasks[0]), meta
        # a second sweep, cancelled as a whole while pending
        other = ["--grid", "seed=5,6", "--run-key", "e2e-sweep-b", "--", *common]
        assert isaac(project, lab, "sweep", *other, inventory=inventory).returncode == 0
        [b] = [e["job_id"] for e in ledger(node) if e["run_key"] == "e2e-sweep-b"]
        cancel = isaac(project, lab, "jobs", "--cancel", "e2e-sweep-b", inventory=inventory)
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr
        assert [element_ended(login, b, index) for index in range(2)] == ["CANCELLED"] * 2
        # follow two elements from before they start to their end
        failing, passing = (follow(project, lab, f"e2e-sweep.{i}", inventory) for i in (1, 2))
    finally:
        slurm(login, f"scancel {blocker.strip()}")
    out, err = passing.communicate(timeout=180)
    assert passing.returncode == 0, out + err
    assert "isaac-deploy sweep e2e-sweep: element 2 (run e2e-sweep.2)" in out
    assert f"job {job}_2 ended COMPLETED, exit code 0" in err
    out, err = failing.communicate(timeout=180)
    assert failing.returncode == 1, out + err
    assert "element 1 (run e2e-sweep.1)" in out and "ended FAILED, exit code 1" in err
    assert element_ended(login, job, 0) == "COMPLETED"
    # each element made its own run folder, named by its run key, with its exact arguments (an
    # element's record may also name the folder of one that ran beside it, as for any two jobs)
    for index in (0, 2):
        recorded = recorded_runs(node, "e2e-sweep", f"{job}_{index}")
        [folder] = [f for f in recorded if f.endswith(f"_e2e-sweep.{index}")]
        recorded = node.file(f"{login['home']}/{TREE}/{folder}/args.json").content_string
        assert json.loads(recorded)["argv"] == expected[f"e2e-sweep.{index}"]
    assert not os.path.exists("/tmp/pwned-sweep")
    # the element's log without -f, and the sweep's key names its elements
    done = isaac(project, lab, "logs", "e2e-sweep.0", inventory=inventory)
    assert done.returncode == 0 and "element 0 (run e2e-sweep.0)" in done.stdout, done.stderr
    whole = isaac(project, lab, "logs", "e2e-sweep", inventory=inventory)
    assert whole.returncode != 0 and "e2e-sweep.0" in whole.stderr
    jobs = isaac(project, lab, "jobs", inventory=inventory)
    listing = jobs.stdout + jobs.stderr
    rows = {}
    for line in listing.splitlines():
        words = line.split()
        for key in ("e2e-sweep", *expected, "e2e-sweep-b"):
            if key in words:
                rows[key] = line
    assert "2 COMPLETED, 1 FAILED, 1 ENDED" in rows["e2e-sweep"], listing
    assert "FAILED (1)" in rows["e2e-sweep.1"] and "ENDED" in rows["e2e-sweep.3"], listing
    assert node.run(f"ls ~/{TREE}/isaac-deploy/e2e-sweep/").stdout.split() == [
        f"{name}-{job}_{i}.{ext}"
        for name, ext in (("job", "out"), ("runs", "txt"))
        for i in range(3)
    ]  # element 3 never ran
    assert "COMPLETED" in rows["e2e-sweep.0"] and "2 CANCELLED" in rows["e2e-sweep-b"], listing


def shell_session(project, lab, inventory: str, run_key: str, gpus: str, during=None):
    """`cluster shell RUN_KEY` driven through a pseudo-terminal: a command that shows where it
    runs, one that reads the code and the W&B key, ``during()`` while the session is open, then
    `exit 3`. Returns the line the first command printed and the command's exit code."""
    import pty
    import select

    argv = [str(project.venv_bin / "isaac-deploy"), "cluster", "shell", "-i", inventory]
    argv += [run_key, "--gpus", gpus, "--time", "00:05:00"]
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(project.path)
        os.execve(argv[0], argv, cli_env(lab))
    seen = ""

    def until(text: str, seconds: float = 90) -> None:
        nonlocal seen
        deadline = time.monotonic() + seconds
        while text not in seen:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"waited for {text!r}; the terminal shows:\n{seen}"
            try:
                seen += os.read(fd, 4096).decode(errors="replace")
            except OSError:
                raise AssertionError(f"the terminal closed before {text!r}:\n{seen}") from None

    try:
        until("exit the shell to end it")
        os.write(fd, b'echo "in:$((6*7)):$PWD:$APPTAINER_CONTAINER:$CUDA_VISIBLE_DEVICES"\n')
        until("in:42:")
        line = seen[seen.index("in:42:") :].splitlines()[0]
        code = b'test -f scripts/rsl_rl/train.py && echo "code:$(cat /run/secrets/wandb_api_key)"\n'
        os.write(fd, code)
        until("code:e2e-wandb-secret-1")
        if during is not None:
            during()
        os.write(fd, b"exit 3\n")
        _, status = os.waitpid(pid, 0)
        pid = 0
        return line, os.waitstatus_to_exitcode(status)
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def test_cluster_shell_opens_an_allocation_in_the_runs_image_and_code(rollout, lab):
    """`cluster shell` through a pseudo-terminal: bash in the run's image and code snapshot on
    an allocation of its own (Slurm lists it while the shell runs), with the job's binds and
    the W&B key; the shell's exit code is the command's."""
    project, login, node, run = rollout
    assert run("e2e-shell-setup", [], "--dry").rc == 0
    inventory = str(project.path.parent / "cluster_inventory.py")
    [entry] = [e for e in ledger(node) if e["run_key"] == "e2e-sweep.0"]

    def allocated() -> None:
        active = slurm(login, "squeue -h -u $(id -un) -o '%j|%T'").split()
        names = [line.split("|") for line in active]
        assert any(n.startswith("lab_ext.e2e-sweep.") and t == "RUNNING" for n, t in names), active

    line, code = shell_session(project, lab, inventory, "e2e-sweep.0", "1", allocated)
    image = entry["image"].replace(":", "-")
    assert line.startswith("in:42:/workspace/lab_ext:"), line
    assert line.endswith(f"/isaac/images/{image}.sif:0"), line  # the allocation's GPU
    assert code == 3
    assert slurm(login, "ls -A ~/.isaac-deploy | grep '^shell' || true") == ""


def test_pbs_sweeps_logs_and_shell_through_the_stand_in(rollout, lab):
    """The PBS forms through the lab's PBS stand-in (qsub -J, subjob ids, qstat -t, qsub -I):
    a sweep of 2 with a throttle of 1, a line per subjob, nothing submitted again, `cluster logs
    -f` of a subjob, `cluster jobs`, and `cluster shell` as an interactive PBS job."""
    project, login, node, run = rollout
    settings = {"scheduler": "pbs"}
    assert run("e2e-pbs-sweep-setup", [], "--dry", settings=settings).rc == 0
    inventory = str(project.path.parent / "cluster_inventory.py")
    node.run("rm -f ~/.fake-pbs.log")
    common = ["--task", "Template-Reach-v0", "--max_iterations", "2", SWEEP_RUNS[0][0]]
    sweep = ["--grid", "seed=1,2", "--throttle", "1", "--run-key", "e2e-pbs-sweep", "--", *common]
    for _ in range(2):  # the second roll-out submits nothing
        done = isaac(project, lab, "sweep", *sweep, inventory=inventory)
        assert done.returncode == 0, done.stdout + done.stderr
    records = {e["run_key"]: e for e in ledger(node) if e["run_key"].startswith("e2e-pbs-sweep")}
    job = records["e2e-pbs-sweep"]["job_id"]
    assert re.fullmatch(r"\d+\[\]\.labpbs", job), job
    head = job.split("[")[0]
    for index in range(2):
        element = records[f"e2e-pbs-sweep.{index}"]
        assert element["job_id"] == f"{head}[{index}].labpbs"
        expected = [*common, "--seed", str(index + 1), "--run_name", f"e2e-pbs-sweep.{index}"]
        assert element["args"] == expected
    calls = [json.loads(line) for line in node.run("cat ~/.fake-pbs.log").stdout.splitlines()]
    assert len([c for c in calls if c["cmd"] == "qsub"]) == 1
    follow_one = follow(project, lab, "e2e-pbs-sweep.1", inventory)
    out, err = follow_one.communicate(timeout=180)
    assert follow_one.returncode == 0, out + err
    assert "isaac-deploy sweep e2e-pbs-sweep: element 1 (run e2e-pbs-sweep.1)" in out, out
    assert element_ended(login, head, 0) == element_ended(login, head, 1) == "COMPLETED"
    answer = json.loads(slurm(login, f"qstat -x -t -f -F json '{job}'"))["Jobs"]
    parent = answer[job]
    assert parent["job_state"] == "F" and parent["Exit_status"] == 0, parent
    assert parent["array_indices_submitted"] == "0-1" and parent["max_run_subjobs"] == 1
    assert [answer[f"{head}[{i}].labpbs"]["job_state"] for i in range(2)] == ["X", "X"]
    listing = isaac(project, lab, "jobs", inventory=inventory)
    rows = {}
    for line in (listing.stdout + listing.stderr).splitlines():
        for key in ("e2e-pbs-sweep", "e2e-pbs-sweep.0", "e2e-pbs-sweep.1"):
            if key in line.split():
                rows[key] = line
    assert "2 COMPLETED" in rows["e2e-pbs-sweep"] and "COMPLETED" in rows["e2e-pbs-sweep.1"]
    line, code = shell_session(project, lab, inventory, "e2e-pbs-sweep.0", "0")
    assert line.startswith("in:42:/workspace/lab_ext:") and code == 3, line
    qsub_calls = [json.loads(c) for c in node.run("cat ~/.fake-pbs.log").stdout.splitlines()]
    [interactive] = [
        c["argv"] for c in qsub_calls if c["cmd"] == "qsub" and c["argv"][:1] == ["-I"]
    ]
    assert "-l" in interactive and interactive[-2] == "/bin/bash", interactive
