"""The schedulers as sites run them (issue #12): the PBS stand-in's PBS semantics over the lab's
real Slurm (jobs start in $HOME with the login environment, undefined resources refused, qstat's
answers, job history off), the facts against it, and the Slurm directives of every resource
setting accepted by the lab's real sbatch."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator

import pytest

from isaac_deploy.facts.scheduler import ActiveJobs, JobStates
from isaac_deploy.model.cluster import ClusterConfig
from isaac_deploy.render.job_script import JobSpec, render_job
from tests.helpers import ROOT
from tests.lab import pbs_server
from tests.lab.cluster import FEATURES, GPU_TYPE
from tests.lab.lab import LAB_DIR

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def login(lab):
    if lab["cluster"] is None:
        pytest.fail("the cluster part of the lab needs root")
    return lab["cluster"]["login"]


def ssh(login, command: str, check: bool = True) -> subprocess.CompletedProcess:
    """``command`` in an SSH session on the login node, as the cluster user."""
    argv = ["ssh", "-F", login["ssh_config"], "lab-login", command]
    result = subprocess.run(argv, capture_output=True, text=True)
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


def put(login, path: str, text: str) -> None:
    ssh(login, f"mkdir -p $(dirname {shlex.quote(path)})")
    subprocess.run(
        ["ssh", "-F", login["ssh_config"], "lab-login", f"cat > {shlex.quote(path)}"],
        input=text,
        text=True,
        check=True,
    )


def qsub(login, script: str, where: str = "~/pbs-tests", env: str = "") -> str:
    """Submit ``script`` with qsub from ``where`` (an SSH session, ``env`` set there): the id."""
    name = f"{where}/job-{time.time_ns()}.sh"
    put(login, name.replace("~", login["home"], 1), script)
    return ssh(login, f"cd {where} && {env} qsub {name}").stdout.strip()


def slurm_state(login, job: str) -> str:
    info = ssh(login, f"scontrol show job -o {job.split('.')[0]}").stdout
    return info.split("JobState=", 1)[1].split()[0]


def wait_ended(login, *jobs: str, seconds: float = 150) -> None:
    deadline = time.monotonic() + seconds
    while any(slurm_state(login, job) in ("PENDING", "RUNNING", "COMPLETING") for job in jobs):
        assert time.monotonic() < deadline, [slurm_state(login, job) for job in jobs]
        time.sleep(0.5)


def fact(login, fact_class, **kwargs):
    """A fact's command run on the login node, its output processed as pyinfra would."""
    out = ssh(login, fact_class().command(**kwargs).get_raw_value()).stdout
    return fact_class().process(out.splitlines())


PROBE = """#!/usr/bin/env bash
#PBS -N env-probe
#PBS -S /bin/bash
#PBS -o {out}
#PBS -j oe
#PBS -l select=1:ncpus=1:mem=100mb
#PBS -l walltime=00:02:00
echo "pwd=$(pwd)"
echo "PATH=$PATH"
echo "PBS_O_WORKDIR=$PBS_O_WORKDIR"
echo "PBS_O_PATH=$PBS_O_PATH"
echo "PBS_JOBID=$PBS_JOBID"
echo "MARKER=${{SUBMITTER_MARKER:-unset}}"
echo "apptainer=$(command -v apptainer || echo missing)"
module load {module}
echo "module_apptainer=$(command -v apptainer || echo missing)"
"""


def test_pbs_jobs_start_in_home_with_the_login_environment(login):
    """As PBS MoM starts a job without -V: in $HOME, the login shell's profile read (the site's
    `module`, which provides apptainer), not the submitter's PATH, folder or variables; PBS_O_*
    say what they were. Apptainer found by the submitter is not found in the job until its
    module is loaded (the issue's exit 127)."""
    out = f"{login['home']}/pbs-tests/env-probe.out"
    env = "PATH=/opt/submitter-only:$PATH SUBMITTER_MARKER=leaked"
    ssh(login, "mkdir -p ~/pbs-tests/deep/folder")
    probe = PROBE.format(out=out, module=login["apptainer_module"])
    job = qsub(login, probe, where="~/pbs-tests/deep/folder", env=env)
    assert job.endswith(".labpbs"), job
    wait_ended(login, job)
    lines = dict(
        line.split("=", 1) for line in ssh(login, f"cat {out}").stdout.splitlines() if "=" in line
    )
    assert lines["pwd"] == login["home"]
    assert (
        "/opt/submitter-only" not in lines["PATH"] and "/opt/submitter-only" in lines["PBS_O_PATH"]
    )
    assert lines["PBS_O_WORKDIR"] == f"{login['home']}/pbs-tests/deep/folder"
    assert lines["PBS_JOBID"] == job and lines["MARKER"] == "unset"
    assert lines["apptainer"] == "missing"  # the submitter's PATH had it
    module_bin = f"{LAB_DIR}/modules/apptainer-1.3.6-lab/bin"
    assert lines["module_apptainer"] == f"{module_bin}/apptainer"


OLD_SELECT = "#PBS -l select=1:ncpus=1:ngpus=0:mem=100mb"  # what the template rendered before


def script_with(select: str, out: str) -> str:
    return (
        f"#!/usr/bin/env bash\n#PBS -N res-probe\n#PBS -S /bin/bash\n#PBS -o {out}\n#PBS -j oe\n"
        f"{select}\n#PBS -l walltime=00:01:00\necho ran\n"
    )


def test_a_server_without_ngpus_refuses_it_even_at_zero(login):
    """The issue's qsub failure, caught by the stand-in: a server that defines no ngpus refuses
    the old template's ngpus=0; the select without a GPU resource is taken and runs."""
    out = f"{login['home']}/pbs-tests/res-probe.out"
    with pbs_server.configured(LAB_DIR, custom_resources=[]):
        put(login, f"{out}.sh", script_with(OLD_SELECT, out))
        refused = ssh(login, f"cd ~ && qsub {shlex.quote(out)}.sh", check=False)
        assert refused.returncode != 0 and refused.stdout == ""
        assert refused.stderr.strip() == "qsub: Unknown resource: ngpus"
        put(login, f"{out}.sh", script_with("#PBS -l select=1:ncpus=1:mem=100mb", out))
        job = ssh(login, f"cd ~ && qsub {shlex.quote(out)}.sh").stdout.strip()
        wait_ended(login, job)
        states = fact(login, JobStates, scheduler="pbs", job_ids=(job,))
        assert states[job].state == "COMPLETED" and ssh(login, f"cat {out}").stdout == "ran\n"
    # the default lab server is a GPU site's: ngpus defined
    put(login, f"{out}.sh", script_with(OLD_SELECT, out))
    job = ssh(login, f"cd ~ && qsub {shlex.quote(out)}.sh").stdout.strip()
    wait_ended(login, job)


SLEEP = """#!/usr/bin/env bash
#PBS -N {name}
#PBS -S /bin/bash
#PBS -o /dev/null
#PBS -j oe
#PBS -l select=1:ncpus=1:mem=100mb
#PBS -l walltime={walltime}
{command}
"""


def test_qstat_answers_as_openpbs_and_the_facts_ask_one_job_at_a_time(login):
    """Six jobs in six states; qstat -f -F json with all six ids answers the first one only
    (openpbs/openpbs#2672), yet JobStates shows each one's real state; ActiveJobs names the
    queued and running ones; a running job has no Exit_status."""
    # both GPUs and one of the two cores taken (a plain Slurm job, unknown to PBS)
    hold = ssh(
        login, "cd /tmp && sbatch --parsable --gpus=2 -o /dev/null --wrap 'sleep 120'"
    ).stdout.strip()
    jobs: dict[str, str] = {}

    def submit(name: str, command: str, *directives: str) -> str:
        text = SLEEP.format(name=name, command=command, walltime="00:05:00")
        jobs[name] = qsub(login, text.replace("#PBS -j oe", "\n".join(("#PBS -j oe", *directives))))
        return jobs[name]

    try:
        wait_ended(login, submit("six-ok", "true"), submit("six-fail", "exit 3"))
        ssh(login, f"qdel {submit('six-del', 'sleep 300')}")
        wait_ended(login, jobs["six-del"], seconds=30)
        submit("six-run", "sleep 300")
        deadline = time.monotonic() + 30
        while slurm_state(login, jobs["six-run"]) != "RUNNING":
            assert time.monotonic() < deadline, slurm_state(login, jobs["six-run"])
            time.sleep(0.3)
        submit("six-queued", "true", "#PBS -l select=1:ncpus=1:mem=100mb:ngpus=1")
        submit("six-held", "true", "#PBS -h")
        every = tuple(jobs.values())
        raw = ssh(login, f"qstat -x -f -F json {' '.join(every)}").stdout
        assert list(json.loads(raw)["Jobs"]) == [every[0]]  # the affected builds' answer
        running = json.loads(ssh(login, f"qstat -x -f -F json {jobs['six-run']}").stdout)
        assert "Exit_status" not in running["Jobs"][jobs["six-run"]]
        states = fact(login, JobStates, scheduler="pbs", job_ids=every)
        assert {name: states[job].state for name, job in jobs.items()} == {
            "six-ok": "COMPLETED",
            "six-fail": "FAILED",
            "six-del": "CANCELLED",
            "six-run": "RUNNING",
            "six-queued": "PENDING",
            "six-held": "PENDING",
        }
        assert states[jobs["six-fail"]].exit_code == 3
        active = fact(login, ActiveJobs, scheduler="pbs")
        assert {name: active.get(job.split(".")[0]) for name, job in jobs.items()} == {
            "six-ok": None,
            "six-fail": None,
            "six-del": None,
            "six-run": "six-run",
            "six-queued": "six-queued",
            "six-held": "six-held",
        }
    finally:
        ids = " ".join(job.split(".")[0] for job in (hold, *jobs.values()))
        ssh(login, f"scancel {ids}", check=False)


def test_without_job_history_x_is_refused_and_finished_jobs_are_unknown(login):
    done = qsub(login, SLEEP.format(name="nohist-ok", command="true", walltime="00:01:00"))
    wait_ended(login, done)
    with pbs_server.configured(LAB_DIR, job_history=False):
        for tool in (f"qstat -x -f -F json {done}", "qselect -x -u $(id -un)"):
            refused = ssh(login, tool, check=False)
            assert refused.returncode != 0
            assert "PBS is not configured to maintain job history" in refused.stderr
        gone = ssh(login, f"qstat -f -F json {done}", check=False)
        assert gone.stderr.strip() == f"qstat: Unknown Job Id {done}"
        assert fact(login, JobStates, scheduler="pbs", job_ids=(done,)) == {}  # ledger: ENDED
        assert fact(login, ActiveJobs, scheduler="pbs") == {}
    assert fact(login, JobStates, scheduler="pbs", job_ids=(done,))[done].state == "COMPLETED"


def rendered(scheduler: str, resources: dict) -> str:
    config = ClusterConfig.parse(
        "lab",
        {
            "user": "labuser",
            "scheduler": scheduler,
            "image_dir": "~/i",
            "code_dir": "~/c",
            "cache_dir": "~/k",
            "logs_dir": "~/l",
            "resources": resources,
        },
    )
    job = JobSpec(
        run_key="directives",
        image="~/i/none.sif",
        code_dir="~/c/directives",
        logs_tree="~/l/lab_ext",
        bookkeeping="~/l/lab_ext/isaac-deploy/directives",
        cache_dir="~/k",
        output="/dev/null",
        extension="lab_ext",
        planned="2026-11-30T00:00:00Z",
    )
    return render_job(ROOT / "templates", config, job)


@contextlib.contextmanager
def reservation(login, name: str) -> Iterator[str]:
    """A Slurm reservation for the cluster user (made as root, removed after)."""
    env = {**os.environ, "SLURM_CONF": str(LAB_DIR / "slurm" / "slurm.conf")}
    node = subprocess.run(
        ["sinfo", "-h", "-o", "%n"], env=env, capture_output=True, text=True, check=True
    ).stdout.split()[0]
    create = [f"ReservationName={name}", "StartTime=now", "Duration=10", f"Nodes={node}"]
    create += [f"Users={login['user']}", "Flags=IGNORE_JOBS"]
    subprocess.run(
        ["scontrol", "create", "reservation", *create],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["scontrol", "delete", f"ReservationName={name}"], env=env, check=False)


@pytest.mark.parametrize(
    "resources",
    [
        {"gpus": f"{GPU_TYPE}:1"},
        {"gpus": f"{GPU_TYPE}:2", "gpu_option": "gres"},
        {"gpus": 1, "gpu_option": "gres"},
        {"gpus": 0, "constraint": f"{FEATURES[0]}&{FEATURES[1]}"},
        {"gpus": 1, "mem_per_cpu": "200M", "tmp": "100M"},
        {"gpus": 1, "extra": ["--exclusive", "--begin=now", "--comment=isaac-deploy-lab"]},
        {"gpus": 1, "reservation": "isaac_lab"},
    ],
    ids=["gpu-type", "gres-type", "gres", "constraint", "mem-per-cpu-tmp", "extra", "reservation"],
)
def test_slurm_takes_the_directives_of_each_resource_setting(login, resources):
    """The rendered script, as it is, to the lab's sbatch --test-only (validated, scheduled,
    never run); a request the node cannot meet is refused, so the check can fail."""
    memory = {} if "mem_per_cpu" in resources else {"memory": "100M"}
    text = rendered("slurm", {"cpus": 1, "walltime": "00:05:00", **memory, **resources})
    path = f"{login['home']}/slurm-tests/directives.sh"
    put(login, path, text)
    with (
        reservation(login, "isaac_lab") if "reservation" in resources else contextlib.nullcontext()
    ):
        result = ssh(login, f"cd ~ && sbatch --test-only {path}", check=False)
    assert result.returncode == 0 and "to start at" in result.stderr, result.stderr
    impossible = text.replace("--cpus-per-task=1", "--cpus-per-task=64")
    put(login, path, impossible)
    assert ssh(login, f"cd ~ && sbatch --test-only {path}", check=False).returncode != 0


def test_pbs_takes_the_directives_of_each_resource_setting(login):
    """The rendered PBS scripts (GPU resource named or left out, extra directives) to the
    stand-in's qsub, which checks them as a PBS server: each is taken."""
    path = f"{login['home']}/pbs-tests/directives.sh"
    jobs = []
    try:
        for resources in (
            {"gpus": 1},
            {"gpus": 0},
            {"gpus": 1, "pbs_gpu_resource": "none"},
            {"gpus": 1, "mem_per_cpu": "100M", "extra": ["-l place=excl", "-r n"]},
        ):
            memory = {} if "mem_per_cpu" in resources else {"memory": "100M"}
            put(login, path, rendered("pbs", {"cpus": 1, **memory, **resources}))
            result = ssh(login, f"cd ~ && qsub {path}", check=False)
            assert result.returncode == 0 and result.stdout.endswith(".labpbs\n"), result.stderr
            jobs.append(result.stdout.strip())
    finally:
        if jobs:
            ssh(login, "scancel " + " ".join(j.split(".")[0] for j in jobs), check=False)
