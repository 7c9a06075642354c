"""Job scripts: Slurm and PBS directives, and the body run for real by bash with a stand-in
`apptainer` that records its argv: every argument arrives exactly as given, exit codes pass."""

from __future__ import annotations

import json
import os
import subprocess

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
        logs_dir="~/logs/run-1",
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
            {"extra": ["--exclusive", "--signal=B:USR1@300", "--nodes=1"]},
            ["--exclusive", "--signal=B:USR1@300", "--nodes=1"],
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


def run_with_standin(tmp_path, text: str, exit_code: int = 0) -> tuple[int, list[str], str]:
    """Run the job body with stand-ins for `apptainer` (records argv) and `module`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "argv.json"
    (bin_dir / "apptainer").write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"json.dump(sys.argv[1:], open({str(record)!r}, 'w'))\nsys.exit({exit_code})\n"
    )
    (bin_dir / "module").write_text(f'#!/bin/sh\necho "module $*" >> {tmp_path}/modules.log\n')
    for tool in ("apptainer", "module"):
        (bin_dir / tool).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SCRATCH": str(tmp_path / "scratch"),
        "HOME": str(tmp_path / "home"),
    }
    proc = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True)
    argv = json.loads(record.read_text()) if record.exists() else []
    return proc.returncode, argv, proc.stdout + proc.stderr


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
    assert argv[:2] == ["exec", "--nv"]
    assert f"{tmp_path}/scratch/img/sha256-abc.sif" in argv  # $SCRATCH expanded on the cluster
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert f"{tmp_path}/scratch/code/run 1:/workspace/ext_template" in binds
    assert f"{tmp_path}/home/logs/run-1:/workspace/ext_template/logs" in binds
    assert (
        f"{tmp_path}/home/.config/isaac-deploy/wandb_api_key:/run/secrets/wandb_api_key:ro" in binds
    )
    assert (tmp_path / "home" / "logs" / "run-1").is_dir() and (
        tmp_path / "scratch" / "cache" / "kit"
    ).is_dir()
    assert not os.path.exists("/tmp/pwned-job")
    assert "module load cuda/12.1" in (tmp_path / "modules.log").read_text()


def test_the_containers_exit_code_is_the_jobs(tmp_path):
    code, _, _ = run_with_standin(tmp_path, script("slurm"), exit_code=7)
    assert code == 7


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
