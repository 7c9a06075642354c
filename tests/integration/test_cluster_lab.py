"""The lab's login node and Slurm, as the cluster roll-out will use them: pyinfra over real SSH
with host keys checked, end state seen by testinfra over SSH, and Slurm jobs really run."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import testinfra

from tests.lab.project import VENV_BIN, Result

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def login(lab):
    if lab["cluster"] is None:
        pytest.fail("the cluster part of the lab needs root")
    return lab["cluster"]["login"]


def inventory(tmp_path, login, known_hosts: str) -> str:
    path = tmp_path / "cluster_inventory.py"
    data = {
        "ssh_hostname": login["host"],
        "ssh_port": login["port"],
        "ssh_user": login["user"],
        "ssh_key": login["key"],
        "ssh_known_hosts_file": known_hosts,
        "ssh_strict_host_key_checking": "yes",
    }
    path.write_text(f"login = [('lab-login', {data!r})]\n")
    return str(path)


def test_pyinfra_reaches_the_login_node_over_ssh_as_the_cluster_user(tmp_path, login):
    deploy = tmp_path / "probe.py"
    deploy.write_text(
        "from pyinfra.operations import files\n"
        "files.directory(name='probe dir', path='isaac-probe', mode='750')\n"
    )
    result = subprocess.run(
        [
            str(VENV_BIN / "pyinfra"),
            "-y",
            inventory(tmp_path, login, login["known_hosts"]),
            str(deploy),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    node = testinfra.get_host("ssh://lab-login", ssh_config=login["ssh_config"])
    probe = node.file(f"{login['home']}/isaac-probe")
    assert probe.is_directory and probe.user == login["user"] and probe.mode == 0o750
    assert node.user().name == login["user"] and node.user().uid != 0


def test_unknown_host_key_is_refused(tmp_path, login):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    deploy = tmp_path / "noop.py"
    deploy.write_text("from pyinfra.operations import server\nserver.shell(commands=['true'])\n")
    result = subprocess.run(
        [str(VENV_BIN / "pyinfra"), "-y", inventory(tmp_path, login, str(empty)), str(deploy)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "No hosts remaining" in result.stdout + result.stderr


def sbatch(login, script: str) -> str:
    ssh = ["ssh", "-F", login["ssh_config"], "lab-login"]
    job = subprocess.run(
        [*ssh, f"mkdir -p jobs && cd jobs && sbatch --parsable {script}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deadline = time.monotonic() + 60
    while subprocess.run(
        [*ssh, f"squeue -h -j {job}"], capture_output=True, text=True
    ).stdout.strip():
        assert time.monotonic() < deadline, f"job {job} did not finish"
        time.sleep(0.2)
    return job


def job_info(login, job: str) -> str:
    return subprocess.run(
        ["ssh", "-F", login["ssh_config"], "lab-login", f"scontrol show job {job}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_slurm_runs_jobs_and_reports_failures(login):
    ok = sbatch(
        login,
        "--gres=gpu:1 -o out-%j.log --wrap 'echo ran-on-$(hostname) gpu=$CUDA_VISIBLE_DEVICES'",
    )
    assert "JobState=COMPLETED" in job_info(login, ok) and "ExitCode=0:0" in job_info(login, ok)
    node = testinfra.get_host("ssh://lab-login", ssh_config=login["ssh_config"])
    assert "gpu=0" in node.file(f"{login['home']}/jobs/out-{ok}.log").content_string
    bad = sbatch(login, "-o out-%j.log --wrap 'echo failing; exit 3'")
    info = job_info(login, bad)
    assert "JobState=FAILED" in info and "ExitCode=3:0" in info


def test_job_states_fact_on_the_login_node(login):
    from isaac_deploy.facts.scheduler import JobStates, parse_slurm, split_sections

    ok = sbatch(login, "-o out-%j.log --wrap 'true'")
    bad = sbatch(login, "-o out-%j.log --wrap 'exit 4'")
    command = JobStates().command("slurm", (ok, bad)).get_raw_value()
    out = subprocess.run(
        ["ssh", "-F", login["ssh_config"], "lab-login", command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    states = JobStates().process(out.splitlines())
    assert (states[ok].state, states[ok].exit_code) == ("COMPLETED", 0)
    assert (states[bad].state, states[bad].exit_code, states[bad].active) == ("FAILED", 4, False)
    # accounting answers too (slurmdbd + MariaDB): what states jobs scontrol has forgotten;
    # slurmctld reports a job's end to slurmdbd asynchronously
    deadline = time.monotonic() + 20
    while True:
        sections = split_sections(out.splitlines())
        accounted = parse_slurm(sections["sacct"], [])
        if (
            {ok, bad} <= accounted.keys()
            and accounted[ok].state == "COMPLETED"
            or (time.monotonic() > deadline)
        ):
            break
        time.sleep(0.5)
        out = subprocess.run(
            ["ssh", "-F", login["ssh_config"], "lab-login", command],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert (accounted[ok].state, accounted[bad].state, accounted[bad].exit_code) == (
        "COMPLETED",
        "FAILED",
        4,
    ), sections["sacct"]


def test_a_run_key_is_submitted_once_and_recorded(tmp_path, login):
    """The submission operation over real SSH against the lab's Slurm (a plain job script here;
    the container job scripts are tested in tests/unit/test_job_scripts.py)."""
    home = login["home"]
    deploy = tmp_path / "submit.py"
    deploy.write_text(f'''
import os
from isaac_deploy.model.ledger import Entry
from isaac_deploy.operations.scheduler import job_submitted

run_key = os.environ["RUN_KEY"]
script = "#!/bin/bash\\n#SBATCH -o {home}/runs/out-%j.log\\n#SBATCH --job-name=lab." + run_key + "\\nprintf '[%s]' \\"$@\\" args: \\"$1\\" ; echo done-$SLURM_JOB_ID\\n"
job_submitted(
    name="submit " + run_key,
    entry=Entry(run_key=run_key, job_id="", scheduler="slurm", commit="abc123",
                snapshot="{home}/runs/" + run_key, args=("a b", "$(x)"),
                job_name="lab." + run_key),
    script=script,
    ledger="{home}/.isaac-deploy/ledger.jsonl",
    resubmit=os.environ.get("RESUBMIT") == "1",
)
''')
    inv = inventory(tmp_path, login, login["known_hosts"])

    def run(run_key: str, resubmit: str = "0") -> str:
        result = subprocess.run(
            [str(VENV_BIN / "pyinfra"), "-y", inv, str(deploy)],
            capture_output=True,
            text=True,
            env={**os.environ, "RUN_KEY": run_key, "RESUBMIT": resubmit},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    node = testinfra.get_host("ssh://lab-login", ssh_config=login["ssh_config"])
    ledger = f"{home}/.isaac-deploy/ledger.jsonl"
    node.run(f"rm -f {ledger}")
    first = run("run-one")
    assert Result(0, first).totals()["success"] == 1
    lines = [json.loads(line) for line in node.file(ledger).content_string.splitlines()]
    # the pending record, written before sbatch, then the job's
    assert [(line["status"], line["job_id"] != "") for line in lines] == [
        ("pending", False),
        ("submitted", True),
    ]
    lines = lines[1:]
    assert lines[0]["run_key"] == "run-one" and lines[0]["job_id"].isdigit()
    assert lines[0]["args"] == ["a b", "$(x)"] and lines[0]["commit"] == "abc123"
    again = run("run-one")
    assert Result(0, again).totals()["success"] == 0  # the same run key: nothing submitted
    assert len(node.file(ledger).content_string.splitlines()) == 2  # nothing new
    run("run-two")
    run("run-two", resubmit="1")
    records = [json.loads(line) for line in node.file(ledger).content_string.splitlines()]
    keys = [record["run_key"] for record in records if record["job_id"]]
    assert keys == ["run-one", "run-two", "run-two"]
    job = lines[0]["job_id"]
    deadline = time.monotonic() + 60
    while "COMPLETED" not in job_info(login, job):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert f"done-{job}" in node.file(f"{home}/runs/out-{job}.log").content_string
    assert oct(node.file(f"{home}/runs/run-one/job-run-one.sh").mode) == "0o700"


def test_code_snapshots_send_only_the_build_context_and_link_unchanged_files(tmp_path, login, lab):
    from tests.lab.project import make_project

    project = make_project(tmp_path / "ext", None, lab)
    (project.path / "docker" / ".env.lab_ext").write_text("SECRET='no'\n")
    snapshots = f"{login['home']}/code/lab_ext"
    deploy = tmp_path / "sync.py"
    deploy.write_text(
        "import os\nfrom isaac_deploy.operations.code import snapshot_synced\n"
        f"snapshot_synced(name='sync', folder={str(project.path)!r}, snapshots={snapshots!r},\n"
        "                snapshot=os.environ['SNAPSHOT'])\n"
    )
    inv = inventory(tmp_path, login, login["known_hosts"])
    node = testinfra.get_host("ssh://lab-login", ssh_config=login["ssh_config"])
    node.run(f"rm -rf {snapshots}")

    def sync(name: str) -> Result:
        proc = subprocess.run(
            [str(VENV_BIN / "pyinfra"), "-y", inv, str(deploy)],
            capture_output=True,
            text=True,
            env={**os.environ, "SNAPSHOT": name},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return Result(0, proc.stdout + proc.stderr)

    assert sync("run-a").totals()["success"] == 1
    files = set(node.run(f"cd {snapshots}/run-a && find . -type f").stdout.split())
    assert (
        "./scripts/rsl_rl/train.py" in files and "./source/lab_ext/ext_template/tasks.py" in files
    )
    assert not [
        f for f in files if f.startswith(("./tests", "./deploy", "./docker/.env", "./isaac_deploy"))
    ]
    assert sync("run-a").totals()["success"] == 0  # a snapshot is never changed
    tasks = project.path / "source" / "lab_ext" / "ext_template" / "tasks.py"
    tasks.write_text(tasks.read_text() + "\n# changed\n")
    time.sleep(1)  # distinct snapshot mtimes
    assert sync("run-b").totals()["success"] == 1

    def inode(snapshot: str, rel: str) -> str:
        return node.run(f"stat -c %i {snapshots}/{snapshot}/{rel}").stdout.strip()

    assert inode("run-a", "scripts/rsl_rl/train.py") == inode("run-b", "scripts/rsl_rl/train.py")
    assert inode("run-a", "source/lab_ext/ext_template/tasks.py") != inode(
        "run-b", "source/lab_ext/ext_template/tasks.py"
    )
    assert (
        "# changed"
        in node.file(f"{snapshots}/run-b/source/lab_ext/ext_template/tasks.py").content_string
    )
    assert (
        "# changed"
        not in node.file(f"{snapshots}/run-a/source/lab_ext/ext_template/tasks.py").content_string
    )


def test_image_delivery_resumes_verifies_and_renames_atomically(tmp_path, login):
    import hashlib

    image = tmp_path / "sha256-0123.sif"
    with open(image, "wb") as handle:
        handle.write(os.urandom(6 * 1024 * 1024))
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    folder = f"{login['home']}/images"
    deploy = tmp_path / "deliver.py"
    deploy.write_text(
        "import os\nfrom isaac_deploy.operations.delivery import file_delivered\n"
        f"file_delivered(name='image', local_path={str(image)!r}, sha256=os.environ['SHA'],\n"
        f"               folder={folder!r}, filename='sha256-0123.sif',\n"
        "               reserve_kib=int(os.environ.get('RESERVE', '1024')))\n"
    )
    inv = inventory(tmp_path, login, login["known_hosts"])
    node = testinfra.get_host("ssh://lab-login", ssh_config=login["ssh_config"])
    node.run(f"rm -rf {folder}")

    def deliver(sha: str = digest, reserve: str = "1024") -> tuple[int, str]:
        proc = subprocess.run(
            [str(VENV_BIN / "pyinfra"), "-y", inv, str(deploy)],
            capture_output=True,
            text=True,
            env={**os.environ, "SHA": sha, "RESERVE": reserve},
        )
        return proc.returncode, proc.stdout + proc.stderr

    # an interrupted earlier upload: half the file sits in .incoming, never under the final name
    node.run(f"mkdir -p {folder}/.incoming")
    subprocess.run(
        [
            "scp",
            "-q",
            "-F",
            login["ssh_config"],
            str(image),
            f"lab-login:{folder}/.incoming/sha256-0123.sif",
        ],
        check=True,
    )
    node.run(f"truncate -s 3M {folder}/.incoming/sha256-0123.sif")
    assert not node.file(f"{folder}/sha256-0123.sif").exists
    code, out = deliver()
    assert code == 0, out
    final = node.file(f"{folder}/sha256-0123.sif")
    assert final.exists and final.sha256sum == digest
    assert node.file(f"{folder}/sha256-0123.sif.sha256").content_string.strip() == digest
    assert not node.file(f"{folder}/.incoming/sha256-0123.sif").exists
    code, out = deliver()
    assert (
        code == 0 and Result(0, out).totals()["success"] == 0
    )  # present and verified: nothing sent
    node.run(f"rm {folder}/sha256-0123.sif*")
    code, out = deliver(sha="0" * 64)  # a damaged arrival is never renamed into place
    assert code != 0 and "arrived damaged" in out
    assert not node.file(f"{folder}/sha256-0123.sif").exists
    code, out = deliver(reserve=str(10**12))  # no space: refused before sending
    assert code != 0 and "not enough space" in out


def test_results_come_back_into_logs_and_remove_waits_for_the_extensions_jobs(tmp_path, login):
    """The sync operation over real SSH: the tree's runs into the local logs/, its bookkeeping
    beside them; nothing is removed while a job of the extension runs; then what the ledger's
    run key recorded goes, a folder no job recorded stays."""
    from isaac_deploy.model.ledger import Entry

    home = login["home"]
    tree, ledger = f"{home}/results-logs/lab_ext", f"{home}/.isaac-deploy/results-ledger.jsonl"
    node = testinfra.get_host("ssh://lab-login", ssh_config=login["ssh_config"])
    node.run(
        f"rm -rf {home}/results-logs {ledger}; mkdir -p {tree}/rsl_rl/e/run-a "
        f"{tree}/rsl_rl/e/by-hand {tree}/isaac-deploy/done {home}/.isaac-deploy && "
        f"echo checkpoint > {tree}/rsl_rl/e/run-a/model_1.pt && "
        f"echo rsl_rl/e/run-a > {tree}/isaac-deploy/done/runs-7.txt"
    )
    line = Entry(run_key="done", job_id="7", scheduler="slurm").to_json()
    node.run(f"printf '%s\\n' {shlex.quote(line)} > {ledger}")
    ssh = ["ssh", "-F", login["ssh_config"], "lab-login"]
    busy = subprocess.run(
        [
            *ssh,
            "cd /tmp && sbatch --parsable --job-name=lab_ext.busy.x -o /dev/null --wrap 'sleep 60'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    local = tmp_path / "logs"
    deploy = tmp_path / "pull.py"
    deploy.write_text(
        "from isaac_deploy.operations.results import results_pulled\n"
        f"results_pulled(name='results', tree={tree!r}, local_dir={str(local)!r},\n"
        f"    book_dir={str(local / 'isaac-deploy' / 'lab')!r}, ledger={ledger!r},\n"
        "    scheduler='slurm', extension='lab_ext', remove=True)\n"
    )
    argv = [  # -v: what is kept, and why
        str(VENV_BIN / "pyinfra"),
        "-y",
        "-v",
        inventory(tmp_path, login, login["known_hosts"]),
        str(deploy),
    ]
    try:
        held = subprocess.run(argv, capture_output=True, text=True)
        assert held.returncode == 0, held.stdout + held.stderr
        assert (local / "rsl_rl" / "e" / "run-a" / "model_1.pt").read_text() == "checkpoint\n"
        assert (local / "isaac-deploy" / "lab" / "done" / "runs-7.txt").is_file()
        assert f"job {busy} of lab_ext is queued or running" in held.stdout + held.stderr
        assert node.file(f"{tree}/rsl_rl/e/run-a").exists  # a job of the extension runs: kept
    finally:
        subprocess.run([*ssh, f"scancel {busy}"], check=False)
    deadline = time.monotonic() + 60
    while subprocess.run(
        [*ssh, f"squeue -h -j {busy}"], capture_output=True, text=True
    ).stdout.strip():
        assert time.monotonic() < deadline
        time.sleep(0.3)
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not node.file(f"{tree}/rsl_rl/e/run-a").exists  # finished, pulled: removed
    assert not node.file(f"{tree}/isaac-deploy/done").exists
    assert node.file(f"{tree}/rsl_rl/e/by-hand").exists  # no job recorded it: kept
    assert (local / "rsl_rl" / "e" / "run-a" / "model_1.pt").is_file()


def test_openssh_connector_runs_commands_and_moves_files_over_one_connection(tmp_path, login):
    """@openssh/HOST (isaac_deploy.connectors.openssh): facts, commands, uploads and downloads,
    all through one OpenSSH master connection; the master is closed at the end."""
    data = {
        "ssh_hostname": login["host"],
        "ssh_port": login["port"],
        "ssh_user": login["user"],
        "ssh_key": login["key"],
        "ssh_known_hosts_file": login["known_hosts"],
    }
    (tmp_path / "inv.py").write_text(f"login = [('@openssh/lab-login', {data!r})]\n")
    (tmp_path / "up.txt").write_text("über 'quoted' $(not run)\n")
    deploy = tmp_path / "files_deploy.py"
    deploy.write_text(
        "from pyinfra.operations import files, server\n"
        f"files.put(name='put', src={str(tmp_path / 'up.txt')!r}, dest='isaac-openssh/up.txt', mode='640')\n"
        f"files.get(name='get', src='isaac-openssh/up.txt', dest={str(tmp_path / 'back.txt')!r})\n"
        "server.shell(name='shell', commands=['test \"$(id -un)\" = " + login["user"] + "'])\n"
    )
    before = Path(login["sshd_log"]).read_text().count("Accepted publickey")
    result = subprocess.run(
        [str(VENV_BIN / "pyinfra"), "-y", str(tmp_path / "inv.py"), str(deploy)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert Path(login["sshd_log"]).read_text().count("Accepted publickey") == before + 1
    assert (tmp_path / "back.txt").read_text() == (tmp_path / "up.txt").read_text()
    node = testinfra.get_host("ssh://lab-login", ssh_config=login["ssh_config"])
    assert node.file(f"{login['home']}/isaac-openssh/up.txt").mode == 0o640
    assert not list(Path("/tmp").glob("isd-ssh-*"))  # the master and its socket are gone


def test_doctor_checks_each_login_node_with_the_rollouts_ssh_options(tmp_path, login, lab):
    from isaac_deploy.cli.cluster_doctor import cluster_checks
    from isaac_deploy.cli.project import Layout

    (tmp_path / "inventories").mkdir()
    inventory = tmp_path / "inventories" / "cluster.py"

    def write(known_hosts: str, scheduler: str = "slurm", extra: str = "") -> None:
        inventory.write_text(
            "from isaac_deploy.model.cluster import cluster\n"
            f"lab = cluster('lab', hosts=[{login['host']!r}, 'login.hpc.example.org'], "
            f"user={login['user']!r}, scheduler={scheduler!r},\n"
            f"    ssh={{'port': {login['port']}, 'key': {login['key']!r}, 'known_hosts': {known_hosts!r}}},\n"
            f"    image_dir='~/i', code_dir='~/c', cache_dir='~/k', logs_dir='~/l'{extra})\n"
        )

    # Apptainer as login shells get it there: from the lab's module, or at a path of the site's
    write(login["known_hosts"], extra=f", modules=[{login['apptainer_module']!r}]")
    ok, example = cluster_checks(Layout(tmp_path, tmp_path))
    assert ok.status == "OK" and "sbatch, apptainer, rsync, flock found" in ok.message, ok.line()
    assert example.status == "SKIPPED" and "example host" in example.message
    write(login["known_hosts"])
    [missing, _] = cluster_checks(Layout(tmp_path, tmp_path))
    assert missing.status == "WARN" and "but apptainer not found" in missing.message
    assert "add the module that provides it to modules" in missing.fix
    module_bin = Path(lab["apptainer_bin"]).parent / "modules" / "apptainer-1.3.6-lab" / "bin"
    write(login["known_hosts"], extra=f", apptainer={str(module_bin / 'apptainer')!r}")
    [explicit, _] = cluster_checks(Layout(tmp_path, tmp_path))
    assert explicit.status == "OK", explicit.line()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    write(str(empty))
    [unknown, _] = cluster_checks(Layout(tmp_path, tmp_path))
    assert unknown.status == "FAIL" and "Host key verification failed" in unknown.message
    assert "compare the fingerprint" in unknown.fix
    write(login["known_hosts"], scheduler="sge")
    [bad] = cluster_checks(Layout(tmp_path, tmp_path))
    assert bad.status == "FAIL" and "lab: isaac_cluster[scheduler]" in bad.message
