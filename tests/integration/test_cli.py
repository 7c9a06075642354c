"""The everyday CLI against the real Docker engine, as the non-root lab member: the console
script and the seed's two shell wrappers, which forward to it."""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import testinfra

from tests.conftest import build_leftovers, failing_dockerfile, package_with
from tests.helpers import ROOT
from tests.lab import engine

pytestmark = pytest.mark.lab
LOCAL = testinfra.get_host("local://")
HOSTILE = [
    "spaces in arg",
    "$(touch /tmp/pwned-cli)",
    "semi;colon",
    "*",
    "'quoted' \"twice\"",
    "ünï",
    "",
]


@pytest.fixture(scope="module")
def project(user_project):
    result = user_project.deploy()
    assert result.rc == 0, result.out
    return user_project


def cli(project, *args: str, cwd: str = "", env: dict | None = None):
    where = f"cd {shlex.quote(cwd)} && " if cwd else ""
    command = [str(project.venv_bin / "isaac-deploy"), *(shlex.quote(a) for a in args)]
    return project.shell(where + " ".join(command), env=env)


def wrap(project) -> str:
    """PATH for the shell wrappers, which find isaac-deploy there (no .venv in the copy)."""
    return f"PATH={project.venv_bin}:$PATH"


def argv_script(*args: str) -> list[str]:
    """A command that prints each argument it got as JSON, then exits 3."""
    return ["python", "-c", "import json,sys; print(json.dumps(sys.argv[1:])); sys.exit(3)", *args]


def test_run_keeps_every_argument_and_the_exit_code(project):
    result = cli(project, "run", *argv_script(*HOSTILE))
    assert result.rc == 3, result.out
    assert json.loads(result.out.strip().splitlines()[-1]) == HOSTILE
    assert not os.path.exists("/tmp/pwned-cli")


def test_run_dev_wrapper_forwards_exactly(project):
    args = " ".join(shlex.quote(a) for a in argv_script(*HOSTILE))
    result = project.shell(f"{wrap(project)} docker/run_dev.sh {args}")
    assert result.rc == 3, result.out
    assert json.loads(result.out.strip().splitlines()[-1]) == HOSTILE


def test_container_sh_wrapper_forwards_profile_and_command(project):
    result = project.shell(f"{wrap(project)} docker/container.sh -p ext-dev run id -u")
    assert result.rc == 0 and result.out.strip().splitlines()[-1] == str(project.user["uid"])


def test_training_entry_point_through_the_cli(project):
    result = cli(
        project,
        "run",
        "python",
        "scripts/rsl_rl/train.py",
        "--task",
        "Template-Reach-v0",
        "--max_iterations",
        "3",
        "--run_name",
        "cli",
    )
    assert result.rc == 0, result.out
    runs = sorted((project.path / "logs" / "rsl_rl" / "ext_template").glob("*_cli"))
    assert runs and LOCAL.file(str(runs[-1] / "model_3.pt")).uid == project.user["uid"]
    failed = cli(
        project, "run", "python", "scripts/rsl_rl/train.py", "--task", "Template-Reach-v0", "--fail"
    )
    assert failed.rc == 1, failed.out


def test_files_made_in_the_container_are_the_users(project):
    assert cli(project, "run", "touch", "made-by-cli").rc == 0
    made = LOCAL.file(str(project.path / "made-by-cli"))
    assert (made.uid, made.gid) == (project.user["uid"], project.user["gid"])


def test_custom_uid_gid_on_a_shared_server(project):
    shared = project.path / "shared"  # a folder the shared server's uid 2000 may write to
    shared.mkdir(exist_ok=True)
    shared.chmod(0o777)
    result = project.shell(
        f"{wrap(project)} docker/run_dev.sh -u 2000 -g 2000 sh -c 'id -u; id -g; echo home=$HOME; touch shared/made-by-2000'"
    )
    assert result.rc == 0, result.out
    assert result.out.splitlines()[-3:-1] == ["2000", "2000"]
    assert "home=/tmp/home-2000" in result.out  # the entrypoint gives a foreign uid a home
    made = LOCAL.file(str(shared / "made-by-2000"))
    assert (made.uid, made.gid) == (2000, 2000)


def test_a_gid_alone_or_an_id_docker_refuses_is_one_line_and_nothing_runs(project):
    """The deploy's rule for isaac_uid/isaac_gid: a gid alone would silently pair with the
    image's uid; ids beyond 2**31-1 are not Docker's."""
    for flags, error in (
        ("-g 2000", "--gid: set --uid too: a gid alone would run the container as uid "),
        ("-u 99999999999", "--uid: must be at most 2147483647, got 99999999999"),
    ):
        result = project.shell(f"{wrap(project)} docker/run_dev.sh {flags} touch refused-run")
        assert result.rc == 1 and len(result.out.splitlines()) == 1, result.out
        assert result.out.startswith(f"isaac-deploy: error: {error}"), result.out
        assert not (project.path / "refused-run").exists()


def test_a_failed_build_leaves_no_container_and_no_dangling_image(project):
    """With an isaac-deploy whose Dockerfile.ext-dev commits a layer, then fails."""
    original = (ROOT / "docker" / "Dockerfile.ext-dev").read_text()
    site = project.path.parent / "failing-isaac-deploy"
    failing = package_with(site, "Dockerfile.ext-dev", failing_dockerfile(original))
    containers, dangling = build_leftovers()
    try:
        result = cli(project, "build", env=failing)
    finally:
        shutil.rmtree(site)
    assert result.rc != 0 and "build-step-failed" in result.out, result.out
    containers_after, dangling_after = build_leftovers()
    assert containers_after == containers and dangling_after <= dangling


def test_rootless_runs_as_root_and_fix_perms_hands_files_back(project):
    result = cli(
        project,
        "run",
        "--rootless",
        "sh",
        "-c",
        "id -u; mkdir -p rootdir; touch rootdir/file rootfile",
    )
    assert result.rc == 0 and "0" in result.out.splitlines(), result.out
    assert LOCAL.file(str(project.path / "rootfile")).uid == 0
    result = cli(project, "run-dev", "--rootless", "--fix-perms", "touch", "rootfile2")
    assert result.rc == 0, result.out
    for name in ("rootfile", "rootdir", "rootdir/file", "rootfile2"):
        owned = LOCAL.file(str(project.path / name))
        assert (owned.uid, owned.gid) == (project.user["uid"], project.user["gid"]), name


def test_fix_perms_also_runs_when_the_command_fails(project):
    result = cli(
        project, "run", "--rootless", "--fix-perms", "sh", "-c", "touch failed-root; exit 9"
    )
    assert result.rc == 9
    assert LOCAL.file(str(project.path / "failed-root")).uid == project.user["uid"]


def test_exec_logs_and_ps_reach_the_named_container(project):
    assert cli(project, "run", "true").rc == 0
    name = f"lab-ext-{project.user['name']}-ext-dev"
    ps = cli(project, "ps")
    assert name in ps.out and "Up" in ps.out
    result = cli(project, "exec", "sh", "-c", "echo from-exec; exit 4")
    assert result.rc == 4 and "from-exec" in result.out
    subprocess.run(
        ["docker", "exec", name, "sh", "-c", "echo to-the-log > /proc/1/fd/1"], check=True
    )
    logs = cli(project, "logs", "--tail", "5")
    assert logs.rc == 0 and "to-the-log" in logs.out


def test_stop_keeps_volumes_and_exec_then_says_so(project):
    volumes_before = set(
        subprocess.run(
            ["docker", "volume", "ls", "-q"], capture_output=True, text=True
        ).stdout.split()
    )
    assert cli(project, "stop").rc == 0
    result = cli(project, "exec", "true")
    assert result.rc == 1 and "no ext-dev container is running" in result.out
    assert "isaac-deploy -p ext-dev run" in result.out
    volumes_after = set(
        subprocess.run(
            ["docker", "volume", "ls", "-q"], capture_output=True, text=True
        ).stdout.split()
    )
    mine = {v for v in volumes_before if v.startswith(f"lab-ext-{project.user['name']}_user-")}
    assert len(mine) == 9 and mine <= volumes_after  # eight caches and the shell history


def test_remove_volumes_needs_yes(project):
    refused = cli(project, "remove-volumes")
    assert refused.rc == 1 and "nothing removed" in refused.out
    assert cli(project, "remove-volumes", "--yes").rc == 0
    left = subprocess.run(
        ["docker", "volume", "ls", "-q"], capture_output=True, text=True
    ).stdout.split()
    assert not [v for v in left if v.startswith(f"lab-ext-{project.user['name']}_user-")]


def test_build_passes_flags_through(project):
    result = cli(project, "-p", "ext", "build", "--no-cache")
    assert result.rc == 0, result.out
    assert "Using cache" not in result.out and "building isaac-lab-lab-ext:" in result.out
    assert project.deploy().totals()["success"] == 0  # same inputs label as the deploy's


def test_run_without_the_image_names_the_command_that_builds_it(project):
    """Compose builds nothing (no build: sections) and pulls nothing: a missing image is one
    line naming the build command, and no container is made."""
    image = f"isaac-lab-lab-ext:{project.user['name']}"
    kept = f"isaac-lab-lab-ext:kept-{project.user['name']}"
    subprocess.run(["docker", "tag", image, kept], check=True, capture_output=True)
    subprocess.run(["docker", "image", "rm", image], check=True, capture_output=True)
    try:
        result = cli(project, "-p", "ext", "run", "true")
    finally:
        subprocess.run(["docker", "tag", kept, image], check=True, capture_output=True)
        subprocess.run(["docker", "image", "rm", kept], check=True, capture_output=True)
    assert result.rc == 1 and result.out == (
        f"isaac-deploy: error: image {image} is not built: build it with "
        "`isaac-deploy -p ext build` (or run the workstation deploy, `isaac-deploy setup`)\n"
    )
    name = f"lab-ext-{project.user['name']}-ext"
    listed = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"name=^{name}$"],
        capture_output=True,
        text=True,
    )
    assert listed.stdout == ""


def test_mount_commands_from_a_subdirectory(project, tmp_path_factory):
    isaaclab = project.path.parent / "IsaacLab"
    (isaaclab / "source").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["chown", "-R", f"{project.user['uid']}:{project.user['gid']}", str(isaaclab)], check=True
    )
    sub = str(project.path / "source" / "lab_ext")
    bad = cli(project, "mount-set", "isaaclab", str(project.path / "nope"), cwd=sub)
    assert bad.rc == 1 and "is not a directory" in bad.out
    assert not (project.path / ".mount.config").exists()
    ok = cli(project, "mount-set", "isaaclab", str(isaaclab), cwd=sub)
    assert ok.rc == 0, ok.out
    assert not (project.path / "source" / "lab_ext" / ".mount.config").exists()
    config = json.loads((project.path / ".mount.config").read_text())
    assert config["mounts"]["isaaclab"]["enabled"] is True
    override = project.override_file.read_text()
    assert f"{isaaclab}/source" in override
    assert cli(project, "mount-set-cluster", "isaaclab", "$SCRATCH/IsaacLab").rc == 0
    assert cli(project, "mount-set-sync", "isaaclab", "on").rc == 0
    assert cli(project, "mount-set-cluster", "isaaclab", "relative/path").rc == 1
    shown = json.loads(cli(project, "mount-show", "--format", "json").out)
    assert shown["mounts"]["isaaclab"]["cluster_path"] == "$SCRATCH/IsaacLab"
    assert shown["mounts"]["isaaclab"]["sync_to_cluster"] is True
    assert cli(project, "mount-show", "--format", "docker").out.strip() == (
        f"-v {isaaclab}/source:/workspace/isaaclab/source"
    )
    assert "--bind" in cli(project, "mount-show", "--format", "singularity").out
    assert "isaaclab:" in cli(project, "mount-show", "--format", "yaml").out
    inside = cli(project, "run", "ls", "/workspace/isaaclab/source")
    assert inside.rc == 0, inside.out  # the running container was recreated with the mount
    assert cli(project, "mount-validate").rc == 0
    assert cli(project, "mount-disable", "isaaclab").rc == 0
    assert f"{isaaclab}/source" not in project.override_file.read_text()
    assert project.deploy().totals()["success"] == 0  # the CLI wrote what the deploy would


def test_mount_setup_wizard_through_a_pseudo_terminal(project):
    isaaclab = project.path.parent / "IsaacLab"
    (isaaclab / "source").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["chown", "-R", f"{project.user['uid']}:{project.user['gid']}", str(isaaclab)], check=True
    )
    answers = [
        ("Enable the isaaclab mount?", "y"),
        ("local path of isaaclab", str(project.path / "missing")),
        ("local path of isaaclab", str(isaaclab)),
        ("sync isaaclab", "n"),
        ("path of isaaclab on the cluster", "/cluster/IsaacLab"),
        ("Enable the rsl_rl mount?", "n"),
    ]
    pid, fd = in_terminal(project, "mount-setup")
    screen = ""
    for prompt, answer in answers:
        screen += read_until(fd, prompt)
        os.write(fd, answer.encode() + b"\n")
    screen += read_until(fd, "written: .mount.config")
    os.waitpid(pid, 0)
    assert "is not a directory" in screen  # the bad answer was refused and asked again
    config = json.loads((project.path / ".mount.config").read_text())
    assert config["mounts"]["isaaclab"]["local_path"] == str(isaaclab)
    assert config["mounts"]["isaaclab"]["cluster_path"] == "/cluster/IsaacLab"
    assert config["mounts"]["rsl_rl"]["enabled"] is False


def in_terminal(project, command: str) -> tuple[int, int]:
    """``isaac-deploy COMMAND`` as the test user in a real pseudo-terminal: (pid, its fd)."""
    pid, fd = pty.fork()
    if pid == 0:
        shell = f"cd {shlex.quote(str(project.path))} && {project.venv_bin}/isaac-deploy {command}"
        os.execvp("su", ["su", "-", project.user["name"], "-c", shell])
    return pid, fd


def read_until(fd: int, text: str, timeout: float = 20) -> str:
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"waited for {text!r}, the terminal shows:\n{seen}")
        try:
            seen += os.read(fd, 4096).decode(errors="replace")
        except OSError:
            raise AssertionError(f"terminal closed before {text!r}:\n{seen}") from None
    return seen


def test_ssh_agent_forwarded_only_when_set(project):
    agent = project.shell(
        "eval $(ssh-agent -s) >/dev/null; echo $SSH_AUTH_SOCK; echo $SSH_AGENT_PID"
    )
    sock, agent_pid = agent.out.split()[-2:]
    try:
        result = cli(
            project,
            "run",
            "sh",
            "-c",
            'echo "sock=$SSH_AUTH_SOCK"; test -S "$SSH_AUTH_SOCK"',
            env={"SSH_AUTH_SOCK": sock},
        )
        assert result.rc == 0 and "sock=/run/isaac-deploy/ssh-agent" in result.out, result.out
    finally:
        subprocess.run(["kill", agent_pid], check=False)
    unset = cli(project, "run", "sh", "-c", 'echo "sock=${SSH_AUTH_SOCK-unset}"')
    assert unset.rc == 0 and "sock=unset" in unset.out, unset.out


def test_the_agents_compose_file_never_lands_in_a_folder_of_someone_else(project):
    """Another lab member's pre-made runtime folder (mode 777, owned by them) is refused before
    any container starts; our own runtime folder is 0700 and the file in it 0600."""
    agent = project.shell(
        "eval $(ssh-agent -s) >/dev/null; echo $SSH_AUTH_SOCK; echo $SSH_AGENT_PID"
    )
    sock, agent_pid = agent.out.split()[-2:]
    trap = Path(tempfile.mkdtemp(prefix="isaac-deploy-shared-"))
    trap.chmod(0o777)  # owned by root, open to all: what another lab member would prepare
    try:
        refused = cli(
            project, "run", "true", env={"SSH_AUTH_SOCK": sock, "XDG_RUNTIME_DIR": str(trap)}
        )
        assert refused.rc == 1, refused.out
        assert "belongs to uid 0, not to you" in refused.out and "Traceback" not in refused.out
        assert list(trap.iterdir()) == []
        ok = cli(project, "run", "true", env={"SSH_AUTH_SOCK": sock})
        assert ok.rc == 0, ok.out
        folder = project.shell("stat -c '%a %U' ~/.cache/isaac-deploy/run")
        assert folder.out.split() == ["700", project.user["name"]], folder.out
        files = project.shell("stat -c '%a %n' ~/.cache/isaac-deploy/run/*-runtime.yaml")
        assert files.out.split()[0] == "600", files.out
    finally:
        subprocess.run(["kill", agent_pid], check=False)
        shutil.rmtree(trap)


def test_doctor_on_a_healthy_lab(project):
    result = cli(project, "doctor")
    assert result.rc == 0, result.out
    assert "[FAIL]" not in result.out
    assert "[SKIPPED] NVIDIA driver" in result.out and "[OK] Docker:" in result.out
    assert "[OK] Env file lab_ext-dev.env" in result.out and "[OK] Override" in result.out


def test_doctor_names_what_is_broken_with_the_fix(project):
    env_file = project.env_file("ext")
    saved = env_file.read_text()
    env_file.unlink()
    try:
        result = cli(project, "doctor")
        assert result.rc == 1
        assert (
            f"[FAIL] Env file lab_ext.env: {env_file} is missing -> run the workstation deploy"
            in result.out
        )
    finally:
        env_file.write_text(saved)
        os.chown(env_file, project.user["uid"], project.user["gid"])
        env_file.chmod(0o600)
    dead = "unix:///nonexistent/docker.sock"
    down = cli(project, "doctor", env={"DOCKER_HOST": dead})
    assert down.rc == 1
    assert (
        f"[FAIL] Docker: DOCKER_HOST points to {dead}, where no Docker engine answers (Cannot "
        f"connect to the Docker daemon at {dead} (No such file or directory)) -> unset "
        f"DOCKER_HOST to use this machine's engine, or start the Docker daemon at {dead}\n"
    ) in down.out
    assert "systemctl start docker" not in down.out
    inventory = project.path / "inventories" / "local.py"
    original = inventory.read_text()
    inventory.write_text(
        original.replace("isaac-deploy-lab/isaac-lab-base:standin", "isaac-lab-missing:1.0")
    )
    try:
        missing = cli(project, "doctor")
        assert missing.rc == 1
        assert (
            "[FAIL] Base image (ext): isaac-lab-missing:1.0 is missing -> build it from your Isaac Lab checkout"
            in missing.out
        )
    finally:
        inventory.write_text(original)


def test_help_shows_examples_for_every_command(project):
    for command in (
        "build",
        "run",
        "run-dev",
        "exec",
        "attach",
        "logs",
        "ps",
        "stop",
        "remove-volumes",
        "mount-setup",
        "mount-show",
        "mount-enable",
        "mount-disable",
        "mount-set",
        "mount-set-cluster",
        "mount-set-sync",
        "mount-validate",
        "doctor",
    ):
        result = cli(project, command, "--help")
        assert result.rc == 0 and "example:" in result.out and "isaac-deploy" in result.out, command


def test_attach_reaches_the_shell_and_detaches(project):
    assert cli(project, "run", "true").rc == 0  # the long-lived container is up
    pid, fd = in_terminal(project, "attach")
    screen = read_until(fd, "detach with Ctrl-p Ctrl-q")
    time.sleep(0.5)
    os.write(fd, b"echo attached-$((6*7))\n")
    screen += read_until(fd, "attached-42")
    os.write(fd, b"\x10\x11")  # Ctrl-p Ctrl-q: detach, the container keeps running
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) in (0, 1), screen  # docker attach exits 0 (1 on old clients)
    assert "Up" in cli(project, "ps").out


def test_seed_commands_through_container_sh(project):
    assert cli(project, "run", "true").rc == 0  # the long-lived container is up
    assert project.shell(f"{wrap(project)} docker/container.sh -p ext-dev exec true").rc == 0
    logs = project.shell(f"{wrap(project)} docker/container.sh -p ext-dev logs --tail 1")
    assert logs.rc == 0
    shown = project.shell(f"{wrap(project)} docker/container.sh mount-show")
    assert shown.rc == 0 and "isaaclab" in shown.out and "rsl_rl" in shown.out
    built = project.shell(f"{wrap(project)} docker/container.sh -p ext-dev build")
    assert built.rc == 0 and "building isaac-lab-lab-ext-dev:" in built.out, built.out
    help_text = project.shell(f"{wrap(project)} docker/run_dev.sh --help")
    assert help_text.rc == 0 and "--rootless" in help_text.out and "--fix-perms" in help_text.out


def test_x11_socket_and_display_reach_the_dev_container(project):
    """Plumbing only (no X server here): a unix socket where an X server keeps its own."""
    import socket

    made_folder = not os.path.exists("/tmp/.X11-unix")
    os.makedirs("/tmp/.X11-unix", mode=0o1777, exist_ok=True)
    server = socket.socket(socket.AF_UNIX)
    server.bind("/tmp/.X11-unix/X77")
    os.chmod("/tmp/.X11-unix/X77", 0o777)
    try:
        assert project.deploy().rc == 0  # the host now has an X socket folder: override mounts it
        assert "/tmp/.X11-unix" in project.override_file.read_text()
        result = cli(
            project,
            "run",
            "sh",
            "-c",
            'echo "display=$DISPLAY"; test -S /tmp/.X11-unix/X77',
            env={"DISPLAY": ":77"},
        )
        assert result.rc == 0 and "display=:77" in result.out, result.out
    finally:
        server.close()
        os.unlink("/tmp/.X11-unix/X77")
        if made_folder:
            os.rmdir("/tmp/.X11-unix")
        project.deploy()


def test_seed_mount_commands_and_run_dev_flags_through_the_wrappers(project):
    rsl_rl = project.path.parent / "rsl_rl_checkout" / "rsl_rl"
    rsl_rl.mkdir(parents=True, exist_ok=True)
    (rsl_rl / "__init__.py").write_text("")
    subprocess.run(
        ["chown", "-R", f"{project.user['uid']}:{project.user['gid']}", str(rsl_rl.parent)],
        check=True,
    )
    sh = f"{wrap(project)} docker/container.sh"
    assert project.shell(f"{sh} mount-set rsl_rl {shlex.quote(str(rsl_rl))}").rc == 0
    assert project.shell(f"{sh} mount-disable rsl_rl").rc == 0
    assert (
        json.loads((project.path / ".mount.config").read_text())["mounts"]["rsl_rl"]["enabled"]
        is False
    )
    enabled = project.shell(f"{sh} mount-enable rsl_rl")
    assert enabled.rc == 0 and "rsl_rl       enabled" in enabled.out, enabled.out
    assert project.shell(f"{sh} mount-validate").rc == 0
    result = project.shell(
        f"{wrap(project)} docker/run_dev.sh --rootless --fix-perms sh -c 'id -u; touch by-wrapper'"
    )
    assert result.rc == 0 and "0" in result.out.splitlines(), result.out
    assert LOCAL.file(str(project.path / "by-wrapper")).uid == project.user["uid"]
    assert project.shell(f"{sh} mount-disable rsl_rl").rc == 0


def test_attach_through_container_sh(project):
    assert cli(project, "run", "true").rc == 0
    pid, fd = pty.fork()
    if pid == 0:
        shell = f"cd {shlex.quote(str(project.path))} && {wrap(project)} docker/container.sh -p ext-dev attach"
        os.execvp("su", ["su", "-", project.user["name"], "-c", shell])
    read_until(fd, "detach with Ctrl-p Ctrl-q")
    time.sleep(0.5)
    os.write(fd, b"echo via-wrapper-$((2*21))\n")
    read_until(fd, "via-wrapper-42")
    os.write(fd, b"\x10\x11")
    os.waitpid(pid, 0)


def stack_volumes(project: str) -> set[str]:
    import docker

    label = f"com.docker.compose.project={project}"
    return {v.name for v in docker.from_env().volumes.list(filters={"label": label})}


def test_two_stacks_run_at_once_without_sharing_a_container_or_a_cache(project):
    """``--suffix``: each stack its own container and cache volumes (the engine's answers), all
    reachable by run/exec/logs/ps/stop/remove-volumes; stopping one leaves the other."""
    import docker

    client = docker.from_env()
    base = project.config.compose_project
    pip_cache = f"{project.user['home']}/.cache/pip"
    try:
        for stack in ("alpha", "beta"):
            made = cli(
                project, "run", "--suffix", stack, "sh", "-c", f"echo {stack} > {pip_cache}/mark"
            )
            assert made.rc == 0, made.out
        assert cli(project, "run", "true").rc == 0  # the default stack, unchanged, beside them
        mounts = {}
        for stack in ("alpha", "beta", None):
            name = f"{base}-{stack}-ext-dev" if stack else f"{base}-ext-dev"
            container = client.containers.get(name)
            assert container.status == "running"
            assert container.labels["com.docker.compose.project"] == name.removesuffix("-ext-dev")
            mounts[stack] = {m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"}
            own = f"{name.removesuffix('-ext-dev')}_"  # every cache volume is the stack's own
            assert mounts[stack] and all(v.startswith(own) for v in mounts[stack]), mounts[stack]
        assert not mounts["alpha"] & mounts["beta"] and not mounts["alpha"] & mounts[None]
        assert f"{base}-alpha_user-cache-pip" in mounts["alpha"]
        for stack in ("alpha", "beta"):  # each cache holds its own stack's file
            seen = cli(project, "exec", "--suffix", stack, "cat", f"{pip_cache}/mark")
            assert seen.rc == 0 and seen.out.strip() == stack, seen.out
        ps = cli(project, "--suffix", "beta", "ps")
        assert f"{base}-beta-ext-dev" in ps.out and f"{base}-alpha-" not in ps.out, ps.out
        assert cli(project, "logs", "--suffix", "beta", "--tail", "1").rc == 0
        assert cli(project, "stop", "--suffix", "alpha").rc == 0
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(f"{base}-alpha-ext-dev")
        assert client.containers.get(f"{base}-beta-ext-dev").status == "running"
        assert client.containers.get(f"{base}-ext-dev").status == "running"
        gone = cli(project, "exec", "--suffix", "alpha", "true")
        assert gone.rc == 1 and "`isaac-deploy -p ext-dev --suffix alpha run`" in gone.out
        assert stack_volumes(f"{base}-alpha") == mounts["alpha"]  # stop keeps the caches
        assert cli(project, "remove-volumes", "--suffix", "alpha", "--yes").rc == 0
        assert stack_volumes(f"{base}-alpha") == set()
        assert (
            stack_volumes(f"{base}-beta") == mounts["beta"] and stack_volumes(base) >= mounts[None]
        )
        bad = cli(project, "run", "--suffix", "Bad/Name", "true")
        assert bad.rc == 1 and bad.out.count("\n") == 1 and "--suffix: 'Bad/Name'" in bad.out
    finally:
        for stack in ("alpha", "beta"):
            engine.remove_compose_project(f"{base}-{stack}")


def devcontainer_config(project, *compose_args: str) -> dict:
    """``docker compose ... config`` as JSON, as the project's owner."""
    result = project.shell(
        "docker compose " + " ".join(shlex.quote(a) for a in compose_args) + " config --format json"
    )
    assert result.rc == 0, result.out
    return json.JSONDecoder().raw_decode(result.out, result.out.index("{"))[0]


def test_devcontainer_json_opens_the_container_isaac_deploy_run_uses(project):
    """The rendered devcontainer.json is valid by the Dev Container spec's schema; the Compose
    configuration it names (read as the Dev Container tools read it) is the CLI's own: same
    project, service, user, mounts; and ``up`` through it keeps the container ``run`` made."""
    import jsonschema

    import docker
    from isaac_deploy.model import paths
    from isaac_deploy.model.paths import COMPOSE_FILE

    schema = json.loads(
        (ROOT / "tests/fixtures/devcontainer/devContainer.base.schema.json").read_text()
    )
    path = project.path / paths.DEVCONTAINER_DIR / "devcontainer.json"
    text = path.read_text()
    document = json.loads("\n".join(x for x in text.splitlines() if not x.startswith("//")))
    jsonschema.Draft201909Validator(schema).validate(document)
    assert LOCAL.file(str(path)).mode == 0o644 and LOCAL.file(str(path)).uid == project.user["uid"]
    assert (path.parent / ".gitignore").read_text().endswith("*\n")
    wrapper = (path.parent / document["dockerComposeFile"][0]).resolve()
    theirs = devcontainer_config(project, "-f", str(wrapper), "--profile", "*")
    env_file = project.env_file("ext-dev")
    ours = devcontainer_config(
        project,
        "-f",
        str(COMPOSE_FILE),
        "-f",
        str(project.override_file),
        "--env-file",
        str(env_file),
        "--profile",
        "ext-dev",
    )
    service = document["service"]
    assert service == "ext-dev" and theirs["name"] == ours["name"] == project.config.compose_project
    assert theirs["services"][service] == ours["services"][service]
    assert theirs["services"][service]["user"] == f"{document['remoteUser']}:{project.user['gid']}"
    binds = {
        (m["source"], m["target"])
        for m in theirs["services"][service]["volumes"]
        if m["type"] == "bind"
    }
    assert (str(project.path), document["workspaceFolder"]) in binds
    # VS Code runs initializeCommand, then finds the running container by the project's and the
    # service's labels; `up` through its compose file leaves that very container as it is
    first = project.shell(" ".join(shlex.quote(a) for a in document["initializeCommand"]))
    assert first.rc == 0, first.out
    client = docker.from_env()
    labels = [
        f"com.docker.compose.project={theirs['name']}",
        f"com.docker.compose.service={service}",
    ]
    [found] = client.containers.list(filters={"label": labels})
    assert found.name == f"{project.config.compose_project}-ext-dev"
    up = project.shell(f"docker compose -f {shlex.quote(str(wrapper))} up -d {service}")
    assert up.rc == 0, up.out
    assert client.containers.get(found.name).id == found.id
    assert cli(project, "run", "true").rc == 0
    assert client.containers.get(found.name).id == found.id


def test_devcontainer_json_follows_the_configuration_and_keeps_hand_edits(project):
    from isaac_deploy.model import paths

    path = project.path / paths.DEVCONTAINER_DIR / "devcontainer.json"
    own = project.path / ".devcontainer" / "devcontainer.json"  # the project's own, untouched
    own.write_text('{"name": "theirs", "image": "debian"}\n')
    try:
        rootless = project.deploy(data={"isaac_user_mode": "rootless"})
        assert rootless.rc == 0, rootless.out
        assert '"service": "ext-dev-rootless"' in path.read_text()
        assert project.deploy().rc == 0 and '"service": "ext-dev"' in path.read_text()
        edited = path.read_text().replace(
            '"shutdownAction": "none"', '"shutdownAction": "stopCompose"'
        )
        path.write_text(edited)
        kept = project.deploy(data={"isaac_user_mode": "rootless"})
        assert kept.rc == 0 and "it was edited by hand" in kept.out, kept.out
        assert path.read_text() == edited
        assert own.read_text() == '{"name": "theirs", "image": "debian"}\n'
    finally:
        path.unlink()
        own.unlink()
        assert project.deploy().rc == 0 and path.is_file()


def test_a_container_another_members_project_made_under_this_stacks_names_is_left_alone(project):
    """Names made of extension, user and suffix can meet (``alice`` with ``--suffix doe``, the
    user ``alice-doe``): a container that real Compose made from another member's project (its
    env file in a state folder that is not the user's) is refused by every command, untouched."""
    import docker
    from isaac_deploy.model.paths import COMPOSE_FILE

    client = docker.from_env()
    base = project.config.compose_project
    other = Path(tempfile.mkdtemp(prefix="isaac-deploy-other-"))  # root's: another member's
    state = other / ".isaac-deploy" / "state"
    state.mkdir(parents=True)
    env_file = state / "lab_ext-dev.env"
    env_file.write_text(project.env_file("ext-dev").read_text())
    override = state / "docker-compose.override.yaml"  # CPU-only here: the GPU reset
    override.write_text(project.override_file.read_text())
    name = f"{base}-gamma-ext-dev"
    try:
        made = subprocess.run(
            ["docker", "compose", "--project-name", f"{base}-gamma", "-f", str(COMPOSE_FILE)]
            + ["-f", str(override), "--env-file", str(env_file), "--profile", "ext-dev"]
            + ["up", "--detach"]
            + ["--no-build", "--pull", "never", "ext-dev"],
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        before = client.containers.get(name).id
        for args in (
            ("run", "--suffix", "gamma", "touch", "made-in-theirs"),
            ("exec", "--suffix", "gamma", "true"),
            ("logs", "--suffix", "gamma"),
            ("stop", "--suffix", "gamma"),
            ("remove-volumes", "--suffix", "gamma", "--yes"),
        ):
            refused = cli(project, *args)
            assert refused.rc == 1 and refused.out.count("\n") == 1, refused.out
            assert refused.out.startswith(
                f"isaac-deploy: error: {name} is a container of another lab member's project "
                f"({other}), whose names happen to be this stack's: isaac-deploy leaves it alone"
            ), refused.out
        kept = client.containers.get(name)
        assert kept.id == before and kept.status == "running"
        assert not (project.path / "made-in-theirs").exists()
    finally:
        engine.remove_compose_project(f"{base}-gamma")
        shutil.rmtree(other)
