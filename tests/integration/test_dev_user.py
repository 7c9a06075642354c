"""The non-root lab member: the deploy runs as the test user, the dev container runs as them.

The lab's test user is in the docker group (as provisioning would have made them) and has no
sudo: install mode then needs no admin step at all, and installs Compose v2 for them only.
"""

from __future__ import annotations

import json
import os

import pytest
import testinfra

pytestmark = pytest.mark.lab
LOCAL = testinfra.get_host("local://")


@pytest.fixture(scope="module")
def project(user_project):
    result = user_project.deploy()
    assert result.rc == 0, result.out
    return user_project


def test_files_belong_to_the_user_and_env_files_are_private(project):
    name = project.user["name"]
    for profile in ("ext", "ext-dev"):
        env_file = LOCAL.file(str(project.env_file(profile)))
        assert env_file.user == name and env_file.group == name and env_file.mode == 0o600
        assert f"HOST_UID='{project.user['uid']}'" in env_file.content_string
        assert f"HOST_HOME='{project.user['home']}'" in env_file.content_string
    assert f"DOCKER_USER_HOME='{project.user['home']}'" in project.env_file("ext-dev").read_text()
    assert LOCAL.file(str(project.override_file)).user == name
    assert LOCAL.file(str(project.path / "logs")).user == name


def test_compose_v2_plugin_installed_for_the_user_only(project):
    plugin = LOCAL.file(f"{project.user['home']}/.docker/cli-plugins/docker-compose")
    assert plugin.exists and plugin.user == project.user["name"] and plugin.mode == 0o755
    assert project.shell("docker compose version --short").rc == 0


def test_second_run_as_the_user_reports_zero_changes(project):
    totals = project.deploy().totals()
    assert totals["success"] == 0 and totals["error"] == 0


def test_dev_container_runs_as_the_host_user_and_writes_files_they_own(project):
    result = project.compose(
        "ext-dev",
        "run",
        "--rm",
        "ext-dev",
        "sh",
        "-c",
        'id -u; id -g; echo "home=$HOME"; touch "$DOCKER_EXT_PATH/made in container"',
    )
    assert result.rc == 0, result.out
    lines = result.out.splitlines()
    assert str(project.user["uid"]) in lines and str(project.user["gid"]) in lines
    assert f"home={project.user['home']}" in lines
    made = LOCAL.file(str(project.path / "made in container"))
    assert made.exists and made.uid == project.user["uid"] and made.gid == project.user["gid"]


def test_given_command_runs_with_its_arguments_and_exit_code(project):
    args = [
        "--task",
        "Template-Reach-v0",
        "--max_iterations",
        "5",
        "--run_name",
        "ci",
        "spaces in arg",
        "$(touch /tmp/pwned)",
        "semi;colon",
        "*",
        "ünï",
    ]
    result = project.compose(
        "ext-dev", "run", "--rm", "ext-dev", "python", "scripts/rsl_rl/train.py", *args
    )
    assert result.rc == 0, result.out
    runs = sorted((project.path / "logs" / "rsl_rl" / "ext_template").glob("*_ci"))
    assert runs, result.out
    recorded = json.loads((runs[-1] / "args.json").read_text())["argv"]
    assert recorded == args
    assert (runs[-1] / "model_5.pt").exists()
    assert LOCAL.file(str(runs[-1] / "model_5.pt")).uid == project.user["uid"]
    failed = project.compose(
        "ext-dev",
        "run",
        "--rm",
        "ext-dev",
        "python",
        "scripts/rsl_rl/train.py",
        "--task",
        "Template-Reach-v0",
        "--fail",
    )
    assert failed.rc == 1, failed.out
    usage = project.compose(
        "ext-dev", "run", "--rm", "ext-dev", "python", "scripts/rsl_rl/train.py", "--task", "Nope"
    )
    assert usage.rc == 2 and "unknown task" in usage.out


def test_production_container_runs_the_entry_point_with_logs_persisted(project):
    result = project.compose(
        "ext",
        "run",
        "--rm",
        "ext",
        "python",
        "scripts/rsl_rl/train.py",
        "--task",
        "Template-Balance-v0",
        "--run_name",
        "prod",
    )
    assert result.rc == 0, result.out
    assert sorted((project.path / "logs" / "rsl_rl" / "ext_template").glob("*_prod"))


def test_display_is_passed_on_only_when_set(project):
    unset = project.compose(
        "ext-dev", "run", "--rm", "ext-dev", "sh", "-c", 'echo "display=${DISPLAY-unset}"'
    )
    assert "display=unset" in unset.out, unset.out
    result = project.shell(
        "DISPLAY=:7 docker compose -f docker/docker-compose.yaml "
        f"-f '{project.override_file}' --env-file '{project.env_file('ext-dev')}' "
        "--profile ext-dev run --rm ext-dev "
        "sh -c 'echo display=$DISPLAY'"
    )
    assert "display=:7" in result.out, result.out


def test_rootless_service_runs_as_root(project):
    result = project.compose(
        "ext-dev-rootless", "run", "--rm", "ext-dev-rootless", "sh", "-c", "echo uid=$(id -u)"
    )  # (Compose's progress lines, e.g. a volume it made, come in any order)
    assert result.rc == 0 and "uid=0" in result.out.splitlines(), result.out


def test_uid_2000_on_a_shared_server(project):
    result = project.deploy(
        data={"isaac_uid": 2000, "isaac_gid": 2000, "isaac_profiles": ("ext-dev",)}
    )
    assert result.rc == 0, result.out
    env_file = project.env_file("ext-dev").read_text()
    assert "HOST_UID='2000'" in env_file and "HOST_GID='2000'" in env_file
    run = project.compose(
        "ext-dev", "run", "--rm", "ext-dev", "sh", "-c", "id -u; id -g; touch /tmp/ok"
    )
    assert run.rc == 0 and run.out.splitlines()[-2:] == ["2000", "2000"], run.out


def test_wandb_key_reaches_the_container_as_a_secret_file_only(project):
    result = project.deploy(env={"WANDB_API_KEY": "user-wandb-key-42"})
    assert result.rc == 0 and "user-wandb-key-42" not in result.out, result.out
    run = project.compose(
        "ext-dev",
        "run",
        "--rm",
        "ext-dev",
        "sh",
        "-c",
        'echo "key=$WANDB_API_KEY"; ls -ln /run/secrets/wandb_api_key',
    )
    assert run.rc == 0 and "key=user-wandb-key-42" in run.out, run.out
    assert f" {project.user['uid']} " in run.out.splitlines()[-1]  # bind-mounted, still the user's
    for profile in ("ext", "ext-dev"):
        assert "user-wandb-key-42" not in project.env_file(profile).read_text()
    inspect = project.shell(
        "docker inspect $(docker ps -aq) 2>/dev/null; docker history --no-trunc "
        f"isaac-lab-lab-ext-dev:{project.user['name']}"
    )
    assert "user-wandb-key-42" not in inspect.out


def test_key_file_must_be_private(project):
    key = project.path.parent / "wandb-key"
    key.write_text("from-a-file\n")
    os.chown(key, project.user["uid"], project.user["gid"])
    key.chmod(0o644)
    result = project.deploy(data={"isaac_wandb": {"api_key_file": str(key)}})
    assert result.rc != 0
    assert (
        f"isaac_wandb[api_key_file]: {key} is readable by others (mode 644): run `chmod 600 {key}`"
        in result.out
    )
    key.chmod(0o600)
    result = project.deploy(data={"isaac_wandb": {"api_key_file": str(key)}})
    assert result.rc == 0, result.out
    assert f"WANDB_API_KEY_FILE='{key}'" in project.env_file("ext-dev").read_text()
    assert str(key) in project.override_file.read_text()


def test_check_only_mode_installs_nothing_and_still_renders(project):
    project.env_file("ext").unlink()
    result = project.deploy(data={"isaac_provision": "check"})
    assert result.rc == 0, result.out
    assert "isaac_provision='check': nothing is installed" in result.out
    assert "Install Docker" not in result.out  # no provisioning operation at all
    assert "[SKIPPED] NVIDIA driver" in result.out and "[OK] Docker" in result.out
    assert project.env_file("ext").exists()


def test_a_lab_member_rolls_out_to_the_cluster(project, lab):
    """The cluster roll-out as the non-root lab member: their image, their SIF cache, their
    SSH key; the job runs on the lab's Slurm."""
    import shutil
    import time
    from pathlib import Path

    login, user = lab["cluster"]["login"], project.user
    keys = Path(user["home"]) / ".lab-ssh"
    keys.mkdir(mode=0o700, exist_ok=True)
    for name in ("key", "known_hosts"):
        shutil.copyfile(login[name], keys / name)
        (keys / name).chmod(0o600)
    for path in (keys, keys / "key", keys / "known_hosts"):
        os.chown(path, user["uid"], user["gid"])
    node = testinfra.get_host("ssh://lab-login", ssh_config=login["ssh_config"])
    node.run("chmod -R u+w ~/member 2>/dev/null; rm -rf ~/member")  # unpacked SIFs: root-like
    run_key = f"member-{time.time_ns()}"  # the login node's ledger outlives a lab
    data = {
        **project.data,
        "isaac_profiles": ("ext",),
        "isaac_run_key": run_key,
        "isaac_job_args": ["--task", "Template-Reach-v0", "--run_name", "member's run"],
    }
    inventory = project.path.parent / "cluster_inventory.py"
    inventory.write_text(
        "from isaac_deploy.model.cluster import cluster\n"
        f"DATA = {data!r}\nworkstation = [('@local', DATA)]\n"
        f"hosts, group = cluster('lab', hosts=['lab-login'], user={login['user']!r}, scheduler='slurm',\n"
        f"    ssh={{'port': {login['port']}, 'key': {str(keys / 'key')!r}, 'known_hosts': {str(keys / 'known_hosts')!r}}},\n"
        "    image_dir='~/member/images', code_dir='~/member/code', cache_dir='~/member/cache',\n"
        "    logs_dir='~/member/logs', resources={'gpus': 1, 'cpus': 1, 'memory': '500M', 'walltime': '00:10:00'})\n"
        f"lab = (hosts, {{**group, **DATA, 'ssh_hostname': {login['host']!r}}})\n"
    )
    os.chown(inventory, user["uid"], user["gid"])
    result = project.shell(
        f"export PATH={lab['apptainer_bin']}:$PATH; "
        f"{project.venv_bin}/pyinfra -y {inventory} deploy/cluster.py"
    )
    assert result.rc == 0, result.out
    cache = Path(user["home"]) / ".cache" / "isaac-deploy" / "sif"
    sifs = list(cache.glob("sha256-*.sif"))
    assert len(sifs) == 1 and sifs[0].stat().st_uid == user["uid"]  # built as the member
    ledger = node.run("cat ~/.isaac-deploy/lab_ext-ledger.jsonl").stdout.splitlines()
    records = [json.loads(line) for line in ledger if f'"{run_key}"' in line]
    [entry] = [record for record in records if record["job_id"]]  # not the pending record
    deadline = time.monotonic() + 120
    while True:
        probe = node.run(f"scontrol show job -o {entry['job_id']}")
        info = probe.stdout + probe.stderr
        if "JobState=COMPLETED" in info or "JobState=FAILED" in info:
            break
        if time.monotonic() > deadline:
            debug = node.run(f"squeue; cat ~/member/logs/lab_ext/isaac-deploy/{run_key}/*").stdout
            raise AssertionError(f"job {entry['job_id']} did not end: {info}\n{debug}")
        time.sleep(0.5)
    assert "JobState=COMPLETED" in info, info
    book = f"~/member/logs/lab_ext/isaac-deploy/{run_key}"
    [run] = node.run(f"cat {book}/runs-{entry['job_id']}.txt").stdout.splitlines()
    assert run.endswith("_member's run")  # the run folder holds the argument as given
    args_file = f"{login['home']}/member/logs/lab_ext/{run}/args.json"
    assert json.loads(node.file(args_file).content_string)["argv"] == data["isaac_job_args"]
