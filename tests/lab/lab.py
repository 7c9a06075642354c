"""The project's test lab: a real Docker engine, an Isaac Lab base-image stand-in, two test users
(one in the docker group, one with sudo outside it) and a registry with TLS and authentication.

Used by ``tests/conftest.py`` (session fixtures) and by hand::

    python -m tests.lab.lab install # apt packages the lab needs (root, only what is missing)
    python -m tests.lab.lab up      # install (root, when missing), start, print what it did
    python -m tests.lab.lab down    # stop exactly what ``up`` started

The lab stops only what it started: a Docker daemon or registry that already answered is reused
and left running; a test user that already existed is kept. What it started is recorded in
``$ISAAC_LAB_DIR/started.json`` so a later ``down`` (or a crashed run's next start) can undo it.
The engine's data root outlives the lab, so ``up`` also removes what earlier runs of the tests
left there (their containers, volumes and images, dangling images built on the stand-in) and the
test users' entries in /tmp, and logs what it removed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

from . import leftovers, pbs_server, ros2_standin
from .engine import STANDIN_LABEL
from .processes import stop_process

LAB_DIR = Path(os.environ.get("ISAAC_LAB_DIR", "/tmp/isaac-deploy-lab"))
CACHE_DIR = Path(
    os.environ.get(
        "ISAAC_LAB_CACHE",
        "/var/cache/isaac-deploy-lab"
        if os.geteuid() == 0
        else Path.home() / ".cache/isaac-deploy-lab",
    )
)
# ch-run for the Apptainer stand-in's exec; MariaDB + slurmdbd for Slurm accounting (sacct)
APT_NORECOMMENDS = ["charliecloud-runtime", "mariadb-server", "slurmdbd"]
APT_PACKAGES = [
    "docker.io",  # the engine
    "debootstrap",  # the base-image stand-in
    "python3-venv",
    "iproute2",
    "procps",
    "util-linux",
    "sudo",
    "git",
    "rsync",
    "openssh-server",  # the login node
    "openssh-client",
    "slurm-wlm",  # slurmctld, slurmd and the client commands
    "munge",
    "docker-registry",  # the registry
    "skopeo",
    "squashfs-tools",  # the Apptainer stand-in's SIF files
    "siftool",
    "socat",  # the lab PCs' relay to the registry
    "dpkg-dev",  # dpkg-scanpackages: the lab PCs' apt source, the ROS 2 stand-in's
    "xvfb",  # the X server of the dev container's GUI tests
    "xauth",
    "x11-apps",  # xwd: its screenshots
]
TEST_USER = os.environ.get("ISAAC_LAB_USER", "isaacdev")
TEST_UID = int(os.environ.get("ISAAC_LAB_UID", "2345"))
# The stand-in base images: Debian minbase + python3/pip, with the entry points the Dockerfiles
# call (`isaaclab.sh -p`, `/isaac-sim/python.sh`) and Isaac Sim's cache folders. Builds here have
# no network, so the stand-in carries a wheelhouse and a pip configuration that installs from it
# only: `pip install` with dependencies and build isolation works as it does online with a real
# base image, for the packages the tests' extensions need (the foreign fixture's build-system
# requirements and its INSTALL_REQUIRES, tomli-w); anything else is "not found", as a typo would
# be online. X clients (x11-utils' xdpyinfo, x11-apps' xlogo) for the GUI tests; the ROS 2
# stand-in's apt repository (tests/lab/ros2_standin.py) for the dev image's ROS 2 layer.
ROOTFS_VERSION = "2"  # 2: X clients
STANDIN_VERSION = "3"  # 2: the wheelhouse and /etc/pip.conf; 3: the ROS 2 stand-in's apt source
STANDIN_TAGS = {
    "ext": "isaac-deploy-lab/isaac-lab-base:standin",
    "ext-dev": "isaac-deploy-lab/isaac-lab-ros2:standin",
}
STANDIN_PACKAGES = "python3-minimal,python3-pip,python3-setuptools,x11-utils,x11-apps"
STANDIN_PYTHON = "3.11"  # Debian 12's python3, what the wheels are chosen for
WHEELS = ("setuptools==84.2.1", "wheel==0.48.0", "toml==0.10.2", "tomli-w==1.2.0")
WHEELHOUSE = "/opt/isaac-lab-standin/wheels"
PIP_CONF = f"""# Stand-in for a base image with network access: pip installs from the lab's wheelhouse only
[global]
no-index = true
find-links = {WHEELHOUSE}
"""
# A variant whose last USER is not root, as Isaac Lab's newer base images end (their user, its
# uid); the extension images must still build and run on it.
NONROOT_TAG = "isaac-deploy-lab/isaac-lab-base:standin-nonroot"
NONROOT_USER, NONROOT_UID = "isaac-sim", 1234
NONROOT_DOCKERFILE = f"""FROM {STANDIN_TAGS["ext"]}
RUN useradd --uid {NONROOT_UID} --create-home --shell /bin/bash {NONROOT_USER}
USER {NONROOT_USER}
WORKDIR /home/{NONROOT_USER}
"""
# A variant with a torchrun stand-in (torch.distributed.run) in Isaac Sim's Python, for the
# multi-GPU launch tests (tests/lab/torch_standin/)
TORCH_TAG = "isaac-deploy-lab/isaac-lab-base:standin-torch"
TORCH_CONTEXT = Path(__file__).resolve().parent / "torch_standin"
ISAACLAB_SH = """#!/bin/sh
# Stand-in for Isaac Lab's isaaclab.sh: -p runs Isaac Sim's python, -i installs nothing.
case "${1:-}" in
  -p|--python) shift; exec /isaac-sim/python.sh "$@" ;;
  -i|--install) echo "isaaclab.sh stand-in: nothing to install"; exit 0 ;;
  *) echo "isaaclab.sh stand-in: only -p and -i are supported" >&2; exit 2 ;;
esac
"""
PYTHON_SH = """#!/bin/sh
# Stand-in for Isaac Sim's python.sh
exec /usr/bin/python3 "$@"
"""


def log(message: str) -> None:
    print(f"[lab] {message}", file=sys.stderr, flush=True)


def run(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, text=True, **kwargs)


def is_root() -> bool:
    return os.geteuid() == 0


# ---------------------------------------------------------------- state of what we started
def _state_file() -> Path:
    return LAB_DIR / "started.json"


def load_started() -> dict:
    try:
        return json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return {}


def save_started(started: dict) -> None:
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    _state_file().write_text(json.dumps(started, indent=2))


# ---------------------------------------------------------------- packages
def missing_packages(packages: list[str]) -> list[str]:
    missing = []
    for package in packages:
        result = run("dpkg-query", "-W", "-f=${Status}", package, check=False, capture_output=True)
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def ensure_packages(packages: list[str] = APT_PACKAGES) -> list[str]:
    """apt-get install what is missing (root only); package scripts may not start services."""
    missing = missing_packages(packages)
    plain = missing_packages(APT_NORECOMMENDS)
    if not missing and not plain:
        return []
    if not is_root():
        raise RuntimeError(
            f"the test lab needs {' '.join(missing + plain)}: run the test command as root once "
            "(it installs them), or install them yourself"
        )
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(
        f"installing {len(missing + plain)} packages with apt (once, a minute or more): "
        + " ".join(missing + plain)
    )
    try:
        run("apt-get", "update", "-q", env=env, stdout=subprocess.DEVNULL)
        if missing:
            run("apt-get", "install", "-y", "-q", *missing, env=env, stdout=subprocess.DEVNULL)
        if plain:
            run(
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                *plain,
                env=env,
                stdout=subprocess.DEVNULL,
            )
    finally:
        if made_policy:
            policy.unlink()
    log(f"installed {' '.join(missing + plain)}")
    return missing + plain


# ---------------------------------------------------------------- docker daemon
def docker_answers() -> bool:
    return run("docker", "version", check=False, capture_output=True).returncode == 0


def start_dockerd(started: dict) -> None:
    if docker_answers():
        log("Docker engine answers already: reusing it (it will be left running)")
        return
    if not is_root():
        raise RuntimeError("no Docker engine answers and only root may start one")
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    log(f"starting dockerd (log: {LAB_DIR / 'dockerd.log'})")
    had_bridge = Path("/sys/class/net/docker0").exists()
    logfile = open(LAB_DIR / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
    proc = subprocess.Popen(
        ["dockerd", "--pidfile", str(LAB_DIR / "dockerd.pid"), "--group", "docker"],
        stdout=logfile,
        stderr=logfile,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    started["dockerd"] = {"pid": proc.pid, "made_bridge": not had_bridge}
    save_started(started)
    deadline = time.monotonic() + 30
    while not docker_answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (LAB_DIR / "dockerd.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"dockerd did not come up:\n{tail}")
        time.sleep(0.1)
    log(f"started dockerd (pid {proc.pid})")


def stop_dockerd(started: dict) -> None:
    info = started.pop("dockerd", None)
    if not info:
        return
    pid = info["pid"]
    stop_process(pid, "dockerd")
    if info.get("made_bridge") and Path("/sys/class/net/docker0").exists():
        run("ip", "link", "delete", "docker0", check=False, capture_output=True)
    save_started(started)
    log(f"stopped dockerd (pid {pid})")


# ---------------------------------------------------------------- base image stand-in
def _standin_rootfs_tar() -> Path:
    """Debian minbase + python, cached as a tarball (made once with debootstrap, ~45 s)."""
    tar = CACHE_DIR / f"standin-rootfs-v{ROOTFS_VERSION}.tar"
    if tar.exists():
        return tar
    if not is_root():
        raise RuntimeError("making the base-image stand-in needs root (debootstrap)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="standin-", dir=CACHE_DIR) as tmp:
        root = Path(tmp) / "rootfs"
        started = time.monotonic()
        log("making the base-image stand-in: Debian minbase with debootstrap (once, ~45 s)")
        run(
            "debootstrap",
            "--variant=minbase",
            f"--include={STANDIN_PACKAGES}",
            "bookworm",
            str(root),
            os.environ.get("ISAAC_LAB_MIRROR", "http://deb.debian.org/debian"),
            stdout=subprocess.DEVNULL,
        )
        for junk in (
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
            "var/cache/apt",
            "var/lib/apt/lists",
        ):
            shutil.rmtree(root / junk, ignore_errors=True)
        _write(root / "workspace/isaaclab/isaaclab.sh", ISAACLAB_SH, 0o755)
        _write(root / "isaac-sim/python.sh", PYTHON_SH, 0o755)
        for sub in ("kit/cache", "kit/logs", "kit/data"):
            (root / "isaac-sim" / sub).mkdir(parents=True, exist_ok=True)
        _write(root / "etc/isaac-deploy-stand-in", "Isaac Lab base image stand-in (test lab)\n")
        partial = tar.with_suffix(".partial")
        with tarfile.open(partial, "w") as out:
            out.add(root, arcname=".")
        partial.rename(tar)
        log(f"made base-image stand-in rootfs in {time.monotonic() - started:.1f}s: {tar}")
    return tar


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def image_id(ref: str) -> str | None:
    result = run(
        "docker", "image", "inspect", "--format", "{{.Id}}", ref, check=False, capture_output=True
    )
    return result.stdout.strip() or None


def image_label(ref: str, key: str) -> str | None:
    template = f'{{{{index .Config.Labels "{key}"}}}}'
    result = run(
        "docker", "image", "inspect", "--format", template, ref, check=False, capture_output=True
    )
    return result.stdout.strip() if result.returncode == 0 else None


def _wheelhouse() -> Path:
    """The wheels of :data:`WHEELS` and their dependencies for the stand-in's Python, downloaded
    once with pip (PyPI) and cached by the list they come from."""
    key = hashlib.sha256("\n".join((STANDIN_PYTHON, *WHEELS)).encode()).hexdigest()[:12]
    folder = CACHE_DIR / f"wheelhouse-{key}"
    if folder.is_dir():
        return folder
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = folder.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    run(
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        STANDIN_PYTHON,
        "--dest",
        str(partial),
        *WHEELS,
    )
    partial.rename(folder)
    log(
        f"downloaded the stand-in's wheelhouse: {', '.join(sorted(p.name for p in folder.iterdir()))}"
    )
    return folder


def _import_standin(tag: str, changes: list[str]) -> None:
    """``docker import`` the rootfs with the wheelhouse, the pip configuration and the ROS 2
    stand-in's apt source added, streamed (no second copy of the rootfs on disk)."""
    rootfs, wheels = _standin_rootfs_tar(), _wheelhouse()
    args = [arg for change in changes for arg in ("-c", change)]
    docker = subprocess.Popen(
        ["docker", "import", *args, "-", tag], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    now = time.time()

    def add(out: tarfile.TarFile, name: str, data: bytes | None) -> None:
        info = tarfile.TarInfo(name)
        info.mtime, info.mode = now, 0o755 if data is None else 0o644
        info.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
        info.size = 0 if data is None else len(data)
        out.addfile(info, None if data is None else io.BytesIO(data))

    try:
        with (
            tarfile.open(rootfs, "r|") as src,
            tarfile.open(fileobj=docker.stdin, mode="w|") as out,
        ):
            present = set()  # the rootfs' names, normalized: Docker refuses a path twice
            for member in src:
                present.add(member.name.removeprefix("./").rstrip("/"))
                out.addfile(member, src.extractfile(member) if member.isfile() else None)
            files = {f"{WHEELHOUSE}/{wheel.name}": wheel.read_bytes() for wheel in wheels.iterdir()}
            files["/etc/pip.conf"] = PIP_CONF.encode()
            files.update(ros2_standin.image_files())
            for path, data in sorted(files.items()):
                folder = ""
                for part in path.strip("/").split("/")[:-1]:
                    folder = f"{folder}/{part}" if folder else part
                    if folder not in present:
                        add(out, f"./{folder}", None)
                        present.add(folder)
                add(out, f".{path}", data)
    finally:
        try:
            docker.stdin.close()
        except BrokenPipeError:
            pass  # docker import stopped reading: its exit code says so
        if docker.wait() != 0:
            raise RuntimeError(f"docker import of the base-image stand-in {tag} failed")


def ensure_base_images() -> dict[str, str]:
    """``docker import`` the stand-in (once per :data:`STANDIN_VERSION`), tag it for both
    profiles, and build its variant whose last ``USER`` is not root (Docker's cache makes that
    a no-op while the stand-in is unchanged)."""
    first = STANDIN_TAGS["ext"]
    version = f"isaac-lab-base-v{STANDIN_VERSION}"
    if image_label(first, STANDIN_LABEL) != version:
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
            f"LABEL {STANDIN_LABEL}={version}",
            "WORKDIR /workspace",
            'CMD ["bash"]',
        ]
        _import_standin(first, changes)
        log(f"imported {first} ({version})")
    for tag in STANDIN_TAGS.values():
        if tag != first and image_id(tag) != image_id(first):
            run("docker", "tag", first, tag)
    built = run(
        "docker",
        "build",
        "--quiet",
        "--force-rm",
        "-t",
        NONROOT_TAG,
        "-",
        input=NONROOT_DOCKERFILE,
        check=False,
        capture_output=True,
    )
    if built.returncode != 0:
        raise RuntimeError(f"building the stand-in {NONROOT_TAG} failed:\n{built.stderr}")
    built = run(
        "docker",
        "build",
        "--quiet",
        "--force-rm",
        "--build-arg",
        f"BASE={first}",
        "-t",
        TORCH_TAG,
        str(TORCH_CONTEXT),
        check=False,
        capture_output=True,
    )
    if built.returncode != 0:
        raise RuntimeError(f"building the stand-in {TORCH_TAG} failed:\n{built.stderr}")
    return dict(STANDIN_TAGS)


# ---------------------------------------------------------------- test user
def ensure_test_user(started: dict) -> dict:
    """A non-root lab member: own home, in the docker group (as the deploy would make them)."""
    result = run("getent", "passwd", TEST_USER, check=False, capture_output=True)
    if result.returncode != 0:
        if not is_root():
            raise RuntimeError(f"test user {TEST_USER} is missing and only root may create it")
        run("useradd", "-m", "-u", str(TEST_UID), "-s", "/bin/bash", TEST_USER)
        started["user"] = TEST_USER
        save_started(started)
        log(f"created test user {TEST_USER}")
    if run("getent", "group", "docker", check=False, capture_output=True).returncode != 0:
        run("groupadd", "docker")
    groups = run("id", "-nG", TEST_USER, capture_output=True).stdout.split()
    if "docker" not in groups:
        run("usermod", "-aG", "docker", TEST_USER)
    entry = run("getent", "passwd", TEST_USER, capture_output=True).stdout.strip().split(":")
    return {"name": TEST_USER, "uid": int(entry[2]), "gid": int(entry[3]), "home": entry[5]}


SUDO_USER = os.environ.get("ISAAC_LAB_SUDO_USER", "isaacadm")
SUDOERS = Path("/etc/sudoers.d/isaac-deploy-lab")


def ensure_sudo_user(started: dict) -> dict:
    """A lab member with passwordless sudo who is not (yet) in the docker group."""
    if run("getent", "passwd", SUDO_USER, check=False, capture_output=True).returncode != 0:
        run("useradd", "-m", "-u", str(TEST_UID + 1), "-s", "/bin/bash", SUDO_USER)
        started["sudo_user"] = SUDO_USER
        save_started(started)
        log(f"created test user {SUDO_USER} (passwordless sudo)")
    if not SUDOERS.exists():
        tmp = SUDOERS.with_suffix(".tmp")
        tmp.write_text(f"{SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n")
        tmp.chmod(0o440)
        tmp.rename(SUDOERS)
        started["sudoers"] = str(SUDOERS)
        save_started(started)
    entry = run("getent", "passwd", SUDO_USER, capture_output=True).stdout.strip().split(":")
    return {"name": SUDO_USER, "uid": int(entry[2]), "gid": int(entry[3]), "home": entry[5]}


def remove_sudo_user(started: dict) -> None:
    if started.pop("sudoers", None):
        SUDOERS.unlink(missing_ok=True)
    name = started.pop("sudo_user", None)
    if name:
        run("pkill", "-u", name, check=False, capture_output=True)
        run("userdel", "-r", name, check=False, capture_output=True)
        log(f"removed test user {name}")
    save_started(started)


def remove_test_user(started: dict) -> None:
    name = started.pop("user", None)
    if name:
        run("pkill", "-u", name, check=False, capture_output=True)
        run("userdel", "-r", name, check=False, capture_output=True)
        save_started(started)
        log(f"removed test user {name}")


# ---------------------------------------------------------------- Apptainer stand-in
def install_standins() -> Path:
    """`apptainer` is neither in Debian 12 nor on PyPI, and no PBS server is packaged: the lab's
    stand-ins go into a bin folder the tests put on PATH (and the login node's); nothing outside
    the lab folder sees them. tests/lab/bin/apptainer makes real SIF files (skopeo, mksquashfs,
    siftool) and runs them with ch-run; tests/lab/bin/pbs is qsub/qstat/qselect/qdel over the lab's
    Slurm, so PBS jobs really run, with its server settings in <lab>/pbs/server.json."""
    bin_dir = LAB_DIR / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve().parent / "bin"
    for name, source in (
        ("apptainer", "apptainer"),
        ("qsub", "pbs"),
        ("qstat", "pbs"),
        ("qselect", "pbs"),
        ("qdel", "pbs"),
    ):
        target, content = bin_dir / name, (here / source).read_bytes()
        if not target.exists() or target.read_bytes() != content:
            tmp = bin_dir / f".{name}.tmp"
            tmp.write_bytes(content)
            tmp.chmod(0o755)
            tmp.replace(target)
    pbs_server.write(LAB_DIR, pbs_server.DEFAULT)
    return bin_dir


# ---------------------------------------------------------------- whole lab
def up() -> dict:
    t0 = time.monotonic()
    log(
        "starting the lab: packages, dockerd, base-image stand-in, test users, registry, login node"
    )
    started = load_started()
    ensure_packages()
    start_dockerd(started)
    images = ensure_base_images()
    user = ensure_test_user(started) if is_root() else None
    sudo_user = ensure_sudo_user(started) if is_root() else None
    from . import registry  # needs the venv (cryptography, bcrypt): only for `up`

    log(f"starting the registry on {registry.ADDRESS} (TLS, htpasswd)")
    reg = registry.start(LAB_DIR, started, save_started)
    apptainer_bin = install_standins()
    cluster_info = None
    if is_root():
        from . import cluster

        log("starting the login node: sshd, Slurm with its accounting database")
        cluster_info = cluster.start(LAB_DIR, started, save_started)
    info = {
        "images": images,
        "nonroot_image": NONROOT_TAG,
        "torch_image": TORCH_TAG,
        "user": user,
        "sudo_user": sudo_user,
        "registry": reg,
        "cluster": cluster_info,
        "apptainer_bin": str(apptainer_bin),
    }
    clean_earlier_runs(info)
    info["seconds"] = round(time.monotonic() - t0, 2)
    log(f"lab up in {info['seconds']}s")
    return info


def clean_earlier_runs(info: dict) -> None:
    """What earlier runs left behind (the engine's data root outlives the lab, /tmp the test
    users): removed once per start, and said so."""
    from .project import remove_test_objects  # needs the venv (isaac_deploy's model)

    kinds = Counter(item.rsplit(" ", 1)[0] for item in remove_test_objects())
    removed = [f"{count} {kind}(s)" for kind, count in sorted(kinds.items())]
    removed += leftovers.remove_tmp_entries(leftovers.lab_users(info))
    log(
        f"removed what earlier runs left behind: {', '.join(removed)}"
        if removed
        else "nothing left behind by earlier runs"
    )


def down() -> None:
    started = load_started()
    from . import fleet

    fleet.stop(started, save_started)  # a test module's PCs, when it could not remove them
    from . import registry

    registry.stop(started, save_started)
    from . import cluster

    cluster.stop(started, save_started)
    remove_sudo_user(started)
    remove_test_user(started)
    stop_dockerd(started)
    save_started(started)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "install":
        ensure_packages()
    elif command == "up":
        print(json.dumps(up(), indent=2))
    elif command == "down":
        down()
    else:
        sys.exit("usage: python -m tests.lab.lab install|up|down")
