"""Job scripts: Slurm and PBS directives, and the body run for real by bash with a stand-in
`apptainer` that records its argv: every argument arrives exactly as given, the container starts
in the extension's folder with the logs tree, caches and home of its own bound, the run folders
a job made are recorded, exit codes pass."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from isaac_deploy.model.cluster import ClusterConfig
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.render.job_script import JobSpec, job_name, render_job, run_prefix
from isaac_deploy.render.templates import shell_path
from tests.helpers import ROOT
from tests.unit.test_envfiles import HOSTILE

CLUSTER = dict(
    user="jdoe",
    image_dir="$SCRATCH/img",
    code_dir="$SCRATCH/code",
    cache_dir="$SCRATCH/cache",
    logs_dir="~/logs",
    modules=["cuda/12.1", "eth_proxy"],
    resources={
        "account": "es_rob",
        "partition": "gpu",
        "gpus": 2,
        "cpus": 16,
        "memory": "64G",
        "walltime": "1-12:00:00",
        "mail": "jdoe@example.org",
    },
)
ARGS = ("--task", "Template-Reach-v0", *HOSTILE, "$(touch /tmp/pwned-job)", "*.py", "a\tb")


def job(**changes) -> JobSpec:
    values = dict(
        run_key="2026-11-24_run-1",
        image="$SCRATCH/img/sha256-abc.sif",
        code_dir="$SCRATCH/code/run 1",
        logs_tree="~/logs/ext_template",
        bookkeeping="~/logs/ext_template/isaac-deploy/2026-11-24_run-1",
        cache_dir="$SCRATCH/cache",
        output="/scratch/jdoe/logs/job-%j.out",
        extension="ext_template",
        planned="2026-11-24T06:00:00Z",
        args=ARGS,
        secret_file="~/.config/isaac-deploy/wandb_api_key",
        ext_path="/workspace/ext_template",
    )
    return JobSpec(**{**values, **changes})


def script(scheduler: str, **changes) -> str:
    return render_job(
        ROOT / "templates",
        ClusterConfig.parse("c", {**CLUSTER, "scheduler": scheduler}),
        job(**changes),
    )


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("/abs/a b", "'/abs/a b'"),
        ("~/logs", '"$HOME"/logs'),
        ("~", '"$HOME"'),
        ("$SCRATCH/x y", "\"${SCRATCH}\"'/x y'"),
        ("${WORK}/z", '"${WORK}"/z'),
        ("$(rm -rf)/x", "'$(rm -rf)/x'"),
    ],
)
def test_shell_paths_expand_only_a_leading_home_or_variable(value, quoted):
    assert shell_path(value) == quoted


def test_slurm_directives():
    text = script("slurm")
    for line in (
        "#SBATCH --job-name=ext_template.2026-11-24_run-1.20261124T060000Z",
        "#SBATCH --gpus=2",
        "#SBATCH --cpus-per-task=16",
        "#SBATCH --mem=64G",
        "#SBATCH --time=1-12:00:00",
        "#SBATCH --account=es_rob",
        "#SBATCH --partition=gpu",
        "#SBATCH --mail-user=jdoe@example.org",
        "#SBATCH --output=/scratch/jdoe/logs/job-%j.out",
        "set -euo pipefail",
        "module load cuda/12.1",
    ):
        assert line in text.splitlines(), line
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_pbs_directives():
    text = script("pbs")
    for line in (
        "#PBS -N ext_template.2026-11-24_run-1.20261124T060000Z",
        "#PBS -S /bin/bash",
        "#PBS -o /scratch/jdoe/logs/job-%j.out",
        "#PBS -j oe",
        "#PBS -l select=1:ncpus=16:ngpus=2:mem=64gb",
        "#PBS -l walltime=36:00:00",
        "#PBS -A es_rob",
        "#PBS -q gpu",
        "#PBS -M jdoe@example.org",
        "#PBS -m ae",
    ):
        assert line in text.splitlines(), line
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def directives(scheduler: str, **resources) -> list[str]:
    """The directive lines of a job script for a cluster with these resources."""
    prefix = "#SBATCH " if scheduler == "slurm" else "#PBS "
    config = ClusterConfig.parse("c", {**CLUSTER, "scheduler": scheduler, "resources": resources})
    text = render_job(ROOT / "templates", config, job())
    return [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize(
    ("resources", "expected", "absent"),
    [
        ({"gpus": "rtx_4090:1"}, ["--gpus=rtx_4090:1"], ["--gres"]),
        ({"gpus": 2, "gpu_option": "gres"}, ["--gres=gpu:2"], ["--gpus"]),
        ({"gpus": "a100:4", "gpu_option": "gres"}, ["--gres=gpu:a100:4"], ["--gpus"]),
        ({"gpus": 0}, [], ["--gpus", "--gres"]),  # no GPU: no GPU directive at all
        ({"constraint": "a100&ib"}, ["--constraint=a100&ib"], []),
        ({"mem_per_cpu": "4G"}, ["--mem-per-cpu=4G"], ["--mem="]),
        ({"tmp": "100G"}, ["--tmp=100G"], []),
        ({"reservation": "isaac_lab"}, ["--reservation=isaac_lab"], []),
        ({"qos": "normal"}, ["--qos=normal"], []),
        (
            {"extra": ["--exclusive=user", "--hint=nomultithread"]},
            ["--exclusive=user", "--hint=nomultithread"],
            [],
        ),
    ],
)
def test_slurm_resources_each_become_their_directive(resources, expected, absent):
    lines = directives("slurm", **{"cpus": 4, "walltime": "02:00:00", **resources})
    for line in expected:
        assert line in lines, lines
    for start in absent:
        assert not [line for line in lines if line.startswith(start)], lines
    assert "--cpus-per-task=4" in lines and "--time=02:00:00" in lines


@pytest.mark.parametrize(
    ("resources", "select"),
    [
        ({"gpus": 2}, "select=1:ncpus=4:ngpus=2:mem=32gb"),
        ({"gpus": 2, "pbs_gpu_resource": "gpus"}, "select=1:ncpus=4:gpus=2:mem=32gb"),
        ({"gpus": 2, "pbs_gpu_resource": None}, "select=1:ncpus=4:mem=32gb"),  # the queue's
        ({"gpus": 2, "pbs_gpu_resource": "none"}, "select=1:ncpus=4:mem=32gb"),
        ({"gpus": 0}, "select=1:ncpus=4:mem=32gb"),  # never ngpus=0: a server without it refuses
        ({"gpus": 1, "mem_per_cpu": "4G"}, "select=1:ncpus=4:ngpus=1:mem=16gb"),
    ],
)
def test_pbs_select_names_the_gpu_resource_only_when_gpus_are_asked_for(resources, select):
    lines = directives("pbs", cpus=4, **resources)
    assert f"-l {select}" in lines, lines


def test_pbs_extra_directives():
    lines = directives("pbs", extra=["-l place=excl", "-W group_list=robotics", "-r n"])
    assert lines[-3:] == ["-l place=excl", "-W group_list=robotics", "-r n"]


@pytest.mark.parametrize(
    ("scheduler", "resources", "field", "words"),
    [
        # one option per directive: no second directive, no newline, no quotes
        ("slurm", {"extra": ["--exclusive --account=other"]}, "[extra][0]", "one sbatch option"),
        ("slurm", {"extra": ["--exclusive\n#SBATCH --account=x"]}, "[extra][0]", "newlines"),
        ("slurm", {"extra": ["--comment='a b'"]}, "[extra][0]", "one sbatch option"),
        ("slurm", {"extra": ["--comment=a#b"]}, "[extra][0]", "one sbatch option"),
        ("slurm", {"extra": ["-N 1"]}, "[extra][0]", "--name or --name=value"),
        ("slurm", {"extra": "--exclusive"}, "[extra]", "a list of directives"),
        ("slurm", {"extra": ["--job-name=x"]}, "[extra][0]", "isaac-deploy names the job"),
        ("slurm", {"extra": ["--output=/tmp/x"]}, "[extra][0]", "job log"),
        ("slurm", {"extra": ["--time=1:00:00"]}, "[extra][0]", "resources[walltime]"),
        ("slurm", {"extra": ["--gres=gpu:1"]}, "[extra][0]", "gpu_option='gres'"),
        ("pbs", {"extra": ["-l place=excl -N x"]}, "[extra][0]", "one qsub option"),
        ("pbs", {"extra": ["-N other"]}, "[extra][0]", "isaac-deploy names the job"),
        ("pbs", {"extra": ["-l walltime=1:00:00"]}, "[extra][0]", "resources[walltime]"),
        ("pbs", {"extra": ["-l place=excl,select=2"]}, "[extra][0]", "resources[cpus]"),
        ("pbs", {"extra": ["-S /bin/sh"]}, "[extra][0]", "with bash"),
        # values a directive could not hold
        ("slurm", {"constraint": "a100 ib"}, "[constraint]", "node features"),
        ("slurm", {"constraint": "a100'"}, "[constraint]", "node features"),
        ("slurm", {"tmp": "lots"}, "[tmp]", "a size"),
        ("slurm", {"reservation": "r;rm"}, "[reservation]", "a reservation name"),
        ("slurm", {"gpus": "rtx 4090:1"}, "[gpus]", "TYPE:COUNT"),
        ("slurm", {"gpus": "rtx_4090:0"}, "[gpus]", "asks for no GPU"),
        ("slurm", {"gpu_option": "gpu"}, "[gpu_option]", "one of 'gpus', 'gres'"),
        ("slurm", {"memory": "8G", "mem_per_cpu": "2G"}, "[mem_per_cpu]", "not both"),
        ("slurm", {"mail": "a b@example.org"}, "[mail]", "an e-mail address"),
        ("slurm", {"pbs_gpu_resource": "ngpus"}, "[pbs_gpu_resource]", "not a setting for slurm"),
        # what PBS does not read is refused, not left out
        ("pbs", {"gpus": "a100:1"}, "[gpus]", "for Slurm clusters"),
        ("pbs", {"constraint": "a100"}, "[constraint]", "not a setting for pbs"),
        ("pbs", {"reservation": "r1"}, "[reservation]", "not a setting for pbs"),
        ("pbs", {"gpu_option": "gres"}, "[gpu_option]", "not a setting for pbs"),
        ("pbs", {"pbs_gpu_resource": "accelerators"}, "[pbs_gpu_resource]", "'ngpus', 'gpus'"),
        ("pbs", {"partition": "gpu.q"}, "[partition]", "a PBS queue"),
        ("pbs", {"partition": "a_queue_name_too_long"}, "[partition]", "a PBS queue"),
    ],
)
def test_resources_a_directive_could_not_hold_are_refused_naming_the_key(
    scheduler, resources, field, words
):
    with pytest.raises(ConfigError) as error:
        ClusterConfig.parse("c", {**CLUSTER, "scheduler": scheduler, "resources": resources})
    assert error.value.field == f"c: isaac_cluster[resources]{field}", error.value
    assert words in str(error.value)


def test_pbs_memory_units():
    from isaac_deploy.model.cluster import Resources

    assert Resources(memory="500M").memory_pbs == "500mb"
    assert Resources(memory="64000").memory_pbs == "64000mb"  # Slurm's unit, not bytes
    assert Resources(memory="2T").memory_pbs == "2tb"
    assert Resources(memory=None, mem_per_cpu="3G", cpus=4).memory_pbs == "12gb"


def test_one_submission_overrides_time_gpus_and_partition():
    """isaac-deploy cluster submit --time/--gpus/--partition: checked as the cluster's own; a
    bare GPU count keeps the cluster's GPU type."""
    from isaac_deploy.model.cluster import parse_overrides

    config = ClusterConfig.parse(
        "c", {**CLUSTER, "scheduler": "slurm", "resources": {"gpus": "a100:1"}}
    )
    key = "c: isaac_job_resources"
    changed = config.resources.override(key, {"gpus": "2", "walltime": "00:30:00"}, "slurm")
    assert (changed.gpu_request, changed.walltime, changed.partition) == (
        "a100:2",
        "00:30:00",
        None,
    )
    changed = config.resources.override(key, {"gpus": "h100:1", "partition": "debug"}, "slurm")
    assert (changed.gpu_request, changed.partition, changed.cpus) == ("h100:1", "debug", 8)
    assert parse_overrides("isaac_job_resources", '{"walltime": "01:00:00", "gpus": 2}') == {
        "walltime": "01:00:00",
        "gpus": "2",
    }
    assert parse_overrides("isaac_job_resources", None) == {}
    for raw, words in (
        ({"walltime": "1h"}, "HH:MM:SS"),
        ({"gpus": "many"}, "TYPE:COUNT"),
        ({"partition": "a b"}, "letters"),
        ({"cpus": 4}, "unknown setting"),
    ):
        with pytest.raises(ConfigError, match=words):
            config.resources.override(key, raw, "slurm")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        parse_overrides("isaac_job_resources", "walltime=1:00:00")
    with pytest.raises(ConfigError, match="for Slurm clusters"):
        config.resources.override(key, {"gpus": "a100:1"}, "pbs")


STANDIN = """#!/usr/bin/env python3
import json, os, sys, time
json.dump(sys.argv[1:], open({record!r}, 'w'))
tree = os.environ.get("FAKE_NEW_RUN")
if tree:  # the training script's run folder, in the tree bound at <ext>/logs
    os.makedirs(tree)
if os.environ.get("FAKE_SLEEP"):
    open({record!r} + ".started", "w").close()
    time.sleep(30)
sys.exit({code})
"""


def run_with_standin(
    tmp_path, text: str, exit_code: int = 0, env: dict | None = None, module: bool = True
) -> tuple[int, list[str], str]:
    """Run the job body with stand-ins for `apptainer` (records argv) and `module` (none with
    ``module=False``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "argv.json"
    (bin_dir / "apptainer").write_text(STANDIN.format(record=str(record), code=exit_code))
    (bin_dir / "module").write_text(f'#!/bin/sh\necho "module $*" >> {tmp_path}/modules.log\n')
    for tool in ("apptainer", "module"):
        (bin_dir / tool).chmod(0o755)
    if not module:
        (bin_dir / "module").unlink()
    (tmp_path / "node-tmp").mkdir(exist_ok=True)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SCRATCH": str(tmp_path / "scratch"),
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "node-tmp"),
        **(env or {}),
    }
    proc = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True)
    argv = json.loads(record.read_text()) if record.exists() else []
    return proc.returncode, argv, proc.stdout + proc.stderr


def flags(argv: list[str]) -> list[str]:
    """The apptainer flags before the image (after ``exec``)."""
    return argv[1 : argv.index(next(a for a in argv if a.endswith(".sif")))]


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_every_argument_arrives_exactly_as_given(tmp_path, scheduler):
    code, argv, out = run_with_standin(tmp_path, script(scheduler))
    assert code == 0, out
    assert argv[-len(ARGS) :] == list(ARGS)
    assert argv[-len(ARGS) - 3 : -len(ARGS)] == [
        "/opt/isaac-deploy/entrypoint.sh",
        "python",
        "/workspace/ext_template/scripts/rsl_rl/train.py",
    ]
    assert argv[0] == "exec"
    assert f"{tmp_path}/scratch/img/sha256-abc.sif" in argv  # $SCRATCH expanded on the cluster
    assert not os.path.exists("/tmp/pwned-job")
    assert "module load cuda/12.1" in (tmp_path / "modules.log").read_text()


def test_the_container_starts_in_the_extension_with_the_logs_tree_caches_and_home_bound(tmp_path):
    """The runtime flags and binds: the extension's folder is the working directory and its
    logs/ is the persistent tree; Isaac Sim's write paths and the home are under the cache dir;
    --containall with a node-local work folder and a writable layer by default; the scheduler's
    GPUs reach the clean environment."""
    code, argv, out = run_with_standin(tmp_path, script("slurm"), env={"CUDA_VISIBLE_DEVICES": "1"})
    assert code == 0, out
    cache, home = f"{tmp_path}/scratch/cache", f"{tmp_path}/home"
    given = flags(argv)
    binds = [given[i + 1] for i, a in enumerate(given) if a == "--bind"]
    options = [a for i, a in enumerate(given) if a != "--bind" and given[i - 1] != "--bind"]
    work = options[options.index("--workdir") + 1]
    assert options == [
        "--nv",
        "--pwd",
        "/workspace/ext_template",
        "--home",
        f"{cache}/home:/root",
        "--containall",
        "--workdir",
        work,
        "--writable-tmpfs",
    ]
    assert work.startswith(f"{tmp_path}/node-tmp/isaac-deploy-job.")  # the node's $TMPDIR
    assert not os.path.exists(work)  # removed when the job ended
    assert binds == [
        f"{tmp_path}/scratch/code/run 1:/workspace/ext_template",
        f"{home}/logs/ext_template:/workspace/ext_template/logs",
        f"{cache}/kit/cache:/isaac-sim/kit/cache",
        f"{cache}/kit/data:/isaac-sim/kit/data",
        f"{cache}/kit/logs:/isaac-sim/kit/logs",
        f"{home}/.config/isaac-deploy/wandb_api_key:/run/secrets/wandb_api_key:ro",
    ]
    for folder in ("home", "kit/cache", "kit/data", "kit/logs", "apptainer"):
        assert (tmp_path / "scratch" / "cache" / folder).is_dir(), folder
    assert (
        tmp_path / "home" / "logs" / "ext_template" / "isaac-deploy" / "2026-11-24_run-1"
    ).is_dir()
    plain = ClusterConfig.parse(
        "c",
        {
            **CLUSTER,
            "scheduler": "slurm",
            "containall": False,
            "writable_tmpfs": False,
            "apptainer": "~/apps/apptainer",
            "modules": [],
        },
    )
    text = render_job(ROOT / "templates", plain, job())
    assert 'APPTAINER="$HOME"/apps/apptainer' in text.splitlines()
    [line] = [line for line in text.splitlines() if line.startswith("FLAGS=")]
    assert line == 'FLAGS=(--nv --pwd /workspace/ext_template --home "$CACHE/home:/root")'
    assert "module" not in text.split("APPTAINER=")[0].split("set -euo pipefail")[1]


def test_the_job_records_the_run_folders_it_made(tmp_path):
    """In the tree's bookkeeping, runs-<job id>.txt lists the run folders that appeared while
    the job ran (an earlier run of the tree is not the job's); written also when it failed."""
    tree = tmp_path / "home" / "logs" / "ext_template"
    (tree / "rsl_rl" / "ext_template" / "2026-01-01_00-00-00_old").mkdir(parents=True)
    new = tree / "rsl_rl" / "ext_template" / "2026-11-24_06-00-00_it's new"
    env = {"SLURM_JOB_ID": "4242", "FAKE_NEW_RUN": str(new)}
    code, _, out = run_with_standin(tmp_path, script("slurm"), exit_code=3, env=env)
    assert code == 3, out
    book = tree / "isaac-deploy" / "2026-11-24_run-1"
    assert (
        book / "runs-4242.txt"
    ).read_text() == "rsl_rl/ext_template/2026-11-24_06-00-00_it's new\n"
    assert sorted(p.name for p in book.iterdir()) == ["runs-4242.txt"]
    pbs = run_with_standin(tmp_path, script("pbs"), env={"PBS_JOBID": "77.server"})
    assert pbs[0] == 0 and (book / "runs-77.server.txt").read_text() == ""


def test_a_cancelled_job_still_records_its_runs_and_cleans_up(tmp_path):
    """SIGTERM (scancel, the wall-time): the job waits for the container, which gets it too,
    records what it made and removes its node-local folder."""
    text = script("slurm")
    bin_dir = tmp_path / "bin"
    run_with_standin(tmp_path, "true")  # makes the stand-ins only
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SCRATCH": str(tmp_path / "scratch"),
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "node-tmp"),
        "SLURM_JOB_ID": "9",
        "FAKE_SLEEP": "1",
    }
    proc = subprocess.Popen(["bash", "-c", text], env=env, start_new_session=True)
    started = tmp_path / "argv.json.started"
    deadline = time.monotonic() + 20
    while not started.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # as Slurm signals every process of the job
    assert proc.wait(timeout=20) == 143
    book = tmp_path / "home" / "logs" / "ext_template" / "isaac-deploy" / "2026-11-24_run-1"
    assert (book / "runs-9.txt").exists()
    assert not list((tmp_path / "node-tmp").iterdir())


def test_the_containers_exit_code_is_the_jobs(tmp_path):
    code, _, _ = run_with_standin(tmp_path, script("slurm"), exit_code=7)
    assert code == 7


def test_paths_apptainer_cannot_bind_are_refused():
    with pytest.raises(ConfigError, match=r"cache dir: /a:b holds ':' or ','"):
        script("slurm", cache_dir="/a:b")


def test_the_secret_is_only_a_bind_never_a_value():
    text = script("slurm")
    assert "WANDB_API_KEY=" not in text and "/run/secrets/wandb_api_key:ro" in text
    assert "--bind" not in script("slurm", secret_file=None).split("/run/secrets")[0][-40:]


def test_a_failing_module_load_fails_the_job_before_the_container(tmp_path):
    text = script("slurm").replace("module load eth_proxy", "module load eth_proxy && false")
    code, argv, _ = run_with_standin(tmp_path, text)
    assert code != 0 and argv == []  # set -euo pipefail: nothing runs after a failed step


def test_the_job_name_is_one_submissions_and_is_never_cut():
    """Jobs are found by their name when their id was not recorded: the name says which
    extension, which run and which roll-out (its plan time), whole (a cut name could be
    another's)."""
    planned = "2026-11-24T06:00:00Z"
    name = job_name("ext_template", "3f2a9c1-5d41402a", planned)
    assert name == "ext_template.3f2a9c1-5d41402a.20261124T060000Z"
    assert name.startswith(run_prefix("ext_template", "3f2a9c1-5d41402a"))
    assert not name.startswith(run_prefix("ext_template", "3f2a9c1-5d4"))
    assert job(extension="other").job_name == "other.2026-11-24_run-1.20261124T060000Z"
    assert job(planned="2026-11-24T06:00:01Z").job_name != job().job_name
    with pytest.raises(ConfigError, match=r"job name: 'e{160}\.r{60}\.20261124T060000Z' .* 236"):
        script("slurm", extension="e" * 160, run_key="r" * 60)


def test_a_job_without_module_reads_the_login_profile_for_it(tmp_path):
    """Slurm passes the submitting shell's environment, which may lack the `module` function:
    the job reads the login profile as `bash -l` would (here the home's .bash_profile), then
    loads the modules; without any, the job fails before the container."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".bash_profile").write_text(
        f'module() {{ echo "profile module $*" >> {tmp_path}/modules.log; }}\n'
    )
    code, argv, out = run_with_standin(tmp_path, script("slurm"), module=False)
    assert code == 0 and argv, out
    assert "profile module load cuda/12.1" in (tmp_path / "modules.log").read_text()
    (home / ".bash_profile").unlink()
    (tmp_path / "argv.json").unlink()
    code, argv, _ = run_with_standin(tmp_path, script("slurm"), module=False)
    assert code != 0 and argv == []


def test_a_staged_image_is_a_copy_in_the_jobs_node_local_folder(tmp_path):
    """stage_image: the job copies the image into its folder under the node's $TMPDIR and runs
    the copy; the copy goes with the folder when the job ends."""
    staged = ClusterConfig.parse("c", {**CLUSTER, "scheduler": "slurm", "stage_image": True})
    image = tmp_path / "scratch" / "img" / "sha256-abc.sif"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"SIF")
    seen = tmp_path / "seen"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apptainer").write_text(
        "#!/usr/bin/env python3\nimport sys\n"
        "image = next(a for a in sys.argv if a.endswith('/image'))\n"
        f"open({str(seen)!r}, 'w').write(image + ' ' + open(image).read())\n"
    )
    (bin_dir / "apptainer").chmod(0o755)
    (bin_dir / "module").write_text("#!/bin/sh\n")
    (bin_dir / "module").chmod(0o755)
    (tmp_path / "node-tmp").mkdir()
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SCRATCH": str(tmp_path / "scratch"),
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "node-tmp"),
    }
    text = render_job(ROOT / "templates", staged, job())
    done = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    path, content = seen.read_text().split()
    assert path.startswith(f"{tmp_path}/node-tmp/isaac-deploy-job.") and content == "SIF"
    assert not list((tmp_path / "node-tmp").iterdir())


def test_a_job_in_a_login_shell_keeps_its_status_though_bash_logout_fails(tmp_path):
    """PBS starts a job as a login shell: the rendered script, run so with Apptainer exiting 0
    or 3, ends with that status although ~/.bash_logout fails (the exit builtin would run it,
    and Debian's clear_console fails there without a console)."""
    import subprocess

    home, tools = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    tools.mkdir()
    (home / ".bash_logout").write_text("false\n")
    (home / ".bash_profile").write_text(
        f'export SCRATCH="$HOME/scratch" PATH="{tools}:$PATH"\nmodule() {{ :; }}\n'
    )
    job_file = tmp_path / "job.sh"
    job_file.write_text(script("pbs", secret_file=None))
    for code in (0, 3):
        (tools / "apptainer").write_text(f"#!/bin/sh\nexit {code}\n")
        (tools / "apptainer").chmod(0o755)
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
        done = subprocess.run(["bash", "-l", str(job_file)], env=env, capture_output=True)
        assert done.returncode == code, done.stderr
