"""The lab's PCs: a room of lab PCs for the fleet deploy (``deploy/lab_pcs.py``), made of
containers on the lab's engine with a privileged container's powers (:data:`MACHINE`), each an
honestly separate machine for what is deployed:

- its own SSH daemon on its own address (``172.30.77.11``... on the lab's PC network), reached
  from this host as the admin ``labadmin`` (key login, passwordless sudo) with host keys checked
  against a ``known_hosts`` file the lab writes from the keys each PC made when it first started;
- its own package database: Debian minbase + python3 (the base-image stand-in's root file
  system) with only ``openssh-server`` and ``sudo`` added; its apt source is a local repository
  the lab builds from the ``.deb`` files it already has (``/var/cache/apt/archives``, the rest
  downloaded once), mounted read-only at ``/srv/lab-apt``, as the Debian archive may not be
  reachable from inside. The deploy installs Docker and git from there;
- its own Docker engine state: nothing of Docker is installed; the deploy installs ``docker.io``
  and starts ``dockerd`` (PID 1 is not systemd), whose data root is a tmpfs of the PC's own, so
  that overlay2 works nested (overlay on the container's overlay root would not);
- the lab members ``alice``, ``bob`` and ``carol`` have accounts there, as a directory service
  would give them; nothing else of theirs.

What the PCs reach on this host is on the PC network's gateway: the lab's registry (TLS +
htpasswd, ``tests/lab/registry.py``) through a relay (``socat``), its certificate naming the
gateway's address; and a git daemon serving the lab's extension repositories (``git://``). The
PC image and the apt repository are made once and cached (like the base-image stand-in); the PCs,
their network and the two daemons go at ``stop`` (also from ``lab.down()``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

from . import lab, registry
from .engine import CACHE_LABEL
from .processes import alive, stop_process
from .pypi import WHEELS_MOUNT, wheelhouse

NETWORK = "isaac-deploy-lab-pcs"
SUBNET = "172.30.77.0/24"
GATEWAY = registry.PCS_GATEWAY
PCS = {"pc01": "172.30.77.11", "pc02": "172.30.77.12", "pc03": "172.30.77.13"}
NOWHERE = "172.30.77.14"  # on the PC network, where no PC answers: an unreachable PC
DOMAIN = "lab.example.org"  # the example inventory's PCs are pc01.lab.example.org, ...
CONTAINER_PREFIX = "isaac-deploy-lab-"
VERSION = "3"  # of the PC image
REPO_VERSION = "1"  # of its apt source
IMAGE = f"isaac-deploy-lab/lab-pc:v{VERSION}"
ADMIN = "labadmin"
MEMBERS = {"alice": 3101, "bob": 3102, "carol": 3103}
"""The lab's accounts (as a directory service would give them, on every PC); the example
inventory sets alice and bob up on pc01 and pc02, alice and carol on pc03."""
REPO_PACKAGES = ("docker.io", "git", "openssh-server", "sudo")
"""What the PCs' apt source offers: the PC image's packages, and what the deploy installs."""
FRESH_PACKAGES = ("python3-venv",)
"""What a fresh PC's apt source offers besides (``start(pypi=True)``): what ``./dev-setup.sh``
installs there (the venv module). Only there: the lab PCs' own tests run with the source they
were written for (with it, their first roll-out did not connect; not understood yet)."""
IMAGE_PACKAGES = ("openssh-server", "sudo")
APT_MOUNT = "/srv/lab-apt"
APT_LINE = f"deb [trusted=yes] file:{APT_MOUNT} ./\n"
GIT_PORT = 9418
RELAY = "socat"
GIT_DAEMON = "git-daemon"
MACHINE = (
    # what a privileged container has, short of CAP_SYS_RESOURCE, which this lab's own host
    # may lack (--privileged then fails): every other capability, no seccomp or AppArmor
    # profile, /proc and /sys unmasked, every device, a cgroup namespace of its own
    "--cgroupns=private",
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--security-opt=systempaths=unconfined",
    "--device-cgroup-rule=a *:* rwm",
)
INIT = f"""#!/bin/sh
# The lab PC's start: the admin's key (given by the lab), host keys of its own, then sshd.
set -e
if [ -n "${{LAB_ADMIN_KEY:-}}" ]; then
    install -d -m 700 -o {ADMIN} -g {ADMIN} /home/{ADMIN}/.ssh
    printf '%s\\n' "$LAB_ADMIN_KEY" > /home/{ADMIN}/.ssh/authorized_keys
    chown {ADMIN}:{ADMIN} /home/{ADMIN}/.ssh/authorized_keys
    chmod 600 /home/{ADMIN}/.ssh/authorized_keys
fi
# cgroups of its own (the container's cgroup namespace), writable for its Docker engine
for mount in $(awk '$3 == "cgroup" {{print $2}}' /proc/mounts); do umount "$mount"; done
umount /sys/fs/cgroup
mount -t tmpfs -o mode=755 cgroup_root /sys/fs/cgroup
for hierarchy in $(cut -d: -f2 /proc/self/cgroup); do
    case "$hierarchy" in
        "") continue ;;
        name=*) folder="${{hierarchy#name=}}"; options="none,$hierarchy" ;;
        *) folder="$hierarchy"; options="$hierarchy" ;;
    esac
    mkdir -p "/sys/fs/cgroup/$folder"
    mount -t cgroup -o "$options" cgroup "/sys/fs/cgroup/$folder"
done
ssh-keygen -A
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
"""
MEMBER_ACCOUNTS = "".join(
    f"useradd -m -u {uid} -s /bin/bash {name}\nusermod -p '*' {name}\n"
    for name, uid in MEMBERS.items()
)
SETUP = f"""set -eu
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
printf '%s' '{APT_LINE}' > /etc/apt/sources.list.d/lab.list
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
    {" ".join(IMAGE_PACKAGES)} >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*
printf 'UsePAM no\\nPasswordAuthentication no\\nKbdInteractiveAuthentication no\\n' \\
    > /etc/ssh/sshd_config.d/lab.conf
useradd -m -s /bin/bash {ADMIN}
usermod -p '*' {ADMIN}
printf '{ADMIN} ALL=(ALL) NOPASSWD: ALL\\n' > /etc/sudoers.d/{ADMIN}
chmod 440 /etc/sudoers.d/{ADMIN}
{MEMBER_ACCOUNTS}cat > /usr/local/sbin/lab-pc-init <<'INIT'
{INIT}INIT
chmod 755 /usr/local/sbin/lab-pc-init
"""


def log(message: str) -> None:
    lab.log(f"PCs: {message}")


def docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, text=True, capture_output=True, **kwargs)


# ---------------------------------------------------------------- the PCs' apt source
def _base_status(tmp: Path) -> Path:
    """The dpkg status file of the PCs' base system (the stand-in's root file system)."""
    with tarfile.open(lab._standin_rootfs_tar()) as tar:
        member = tar.getmember("./var/lib/dpkg/status")
        status = tmp / "status"
        handle = tar.extractfile(member)
        assert handle is not None
        status.write_bytes(handle.read())
    return status


def _apt_options(tmp: Path, status: Path) -> list[str]:
    """apt state of the lab's own (lists, cache; the PCs' dpkg status), never this host's."""
    return [
        "-o",
        f"Dir::State::Lists={tmp / 'lists'}",
        "-o",
        f"Dir::Cache={tmp / 'cache'}",
        "-o",
        f"Dir::State::status={status}",
    ]


def _needed(options: list[str], packages: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(file name, "TYPE:digest" or "")`` of every package the PCs may need beyond their base
    system, as this host's apt sources offer them (apt gives no digest for some archives)."""
    lab.run("apt-get", *options, "-qq", "update", capture_output=True)
    out = lab.run(
        "apt-get",
        *options,
        "-qq",
        "--print-uris",
        "--no-install-recommends",
        "install",
        *packages,
        capture_output=True,
    ).stdout
    needed = []
    for line in out.splitlines():
        words = line.split()
        needed.append((words[1], words[3] if len(words) > 3 else ""))
    return needed


def _matches(path: Path, digest: str) -> bool:
    """``path`` has apt's ``TYPE:digest`` (``MD5Sum:...``, ``SHA256:...``); no digest: True."""
    if not digest:
        return True
    kind, _, value = digest.partition(":")
    algorithm = {"md5sum": "md5"}.get(kind.lower(), kind.lower())
    return hashlib.new(algorithm, path.read_bytes()).hexdigest() == value


def apt_repository(extra: tuple[str, ...] = ()) -> Path:
    """A flat apt repository of what the PCs may install (made once, cached): each ``.deb``
    taken from this host's apt cache when it holds that very file (its digest checked where
    apt names one), else downloaded by ``apt-get download``, which checks it."""
    repo = lab.CACHE_DIR / f"lab-pc-apt-v{REPO_VERSION}{'-' + '-'.join(extra) if extra else ''}"
    if (repo / "Packages").is_file():
        return repo
    lab.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lab-pc-apt-", dir=lab.CACHE_DIR) as tmp_name:
        tmp = Path(tmp_name)
        for folder in ("lists/partial", "cache/archives/partial", "repo"):
            (tmp / folder).mkdir(parents=True)
        partial = tmp / "repo"
        options = _apt_options(tmp, _base_status(tmp))
        missing = []
        for name, digest in _needed(options, (*REPO_PACKAGES, *extra)):
            cached = Path("/var/cache/apt/archives") / name
            if cached.is_file() and _matches(cached, digest):
                shutil.copy2(cached, partial / name)
            else:
                package, version, _ = unquote(name).split("_")
                missing.append(f"{package}={version}")
        if missing:
            lab.run(
                "apt-get", *options, "-qq", "download", *missing, cwd=partial, capture_output=True
            )
        packages = lab.run(
            "dpkg-scanpackages", "--multiversion", ".", cwd=partial, capture_output=True
        ).stdout
        (partial / "Packages").write_text(packages)
        partial.chmod(0o755)
        partial.rename(repo)
    count = len(list(repo.glob("*.deb")))
    log(
        f"made the apt source ({count} packages, {count - len(missing)} from this host's apt "
        f"cache) in {time.monotonic() - started:.1f}s: {repo}"
    )
    return repo


# ---------------------------------------------------------------- the PC image
def ensure_image(repo: Path) -> str:
    """The PC image (made once, cached): minbase + python3 with sshd, sudo, the admin and the
    members, the lab's apt source as its only one; one layer, labelled as the lab's cache."""
    if lab.image_id(IMAGE):
        return IMAGE
    started = time.monotonic()
    base, builder = f"{IMAGE}-base", f"{CONTAINER_PREFIX}pc-build"
    docker("rm", "--force", builder, check=False)
    docker("import", str(lab._standin_rootfs_tar()), base)
    try:
        result = docker(
            "run",
            "--name",
            builder,
            "-v",
            f"{repo}:{APT_MOUNT}:ro",
            base,
            "sh",
            "-c",
            SETUP,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"lab PCs: the PC image did not build:\n{result.stderr[-2000:]}")
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"LABEL {CACHE_LABEL}=lab-pc-v{VERSION}",
            'CMD ["/usr/local/sbin/lab-pc-init"]',
        ]
        export = subprocess.Popen(["docker", "export", builder], stdout=subprocess.PIPE)
        args = [arg for change in changes for arg in ("-c", change)]
        subprocess.run(
            ["docker", "import", *args, "-", IMAGE],
            stdin=export.stdout,
            check=True,
            capture_output=True,
        )
        export.wait()
    finally:
        docker("rm", "--force", builder, check=False)
        docker("rmi", base, check=False)
    for old in lab.run(
        "docker",
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        IMAGE.split(":")[0],
        capture_output=True,
    ).stdout.split():
        if old != IMAGE:
            docker("rmi", old, check=False)  # an earlier version of the PC image
    log(f"made the PC image {IMAGE} in {time.monotonic() - started:.1f}s")
    return IMAGE


# ---------------------------------------------------------------- the room
def container(name: str) -> str:
    return f"{CONTAINER_PREFIX}{name}"


def address(name: str) -> str:
    """The example inventory's name of PC ``name``: ``pc01.lab.example.org``."""
    return f"{name}.{DOMAIN}"


def _keys(base: Path) -> Path:
    keys = base / "ssh"
    keys.mkdir(parents=True, exist_ok=True)
    if not (keys / "id_ed25519").exists():
        lab.run(
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"{ADMIN}@lab",
            "-f",
            str(keys / "id_ed25519"),
        )
    (keys / "id_ed25519").chmod(0o600)
    return keys


def _network(started: dict, save) -> None:
    if docker("network", "inspect", NETWORK, check=False).returncode == 0:
        return
    docker("network", "create", "--subnet", SUBNET, "--gateway", GATEWAY, NETWORK)
    started["pcs_network"] = NETWORK
    save(started)


def _daemon(started: dict, save, key: str, name: str, argv: list[str], logfile: Path) -> None:
    """The daemon ``name`` in the background (``argv``), recorded under ``key`` so that ``stop``
    ends it; one this lab started and that still runs is kept."""
    record = started.get(key)
    if record and alive(record["pid"], name):
        return
    with open(logfile, "ab") as log_handle:
        proc = subprocess.Popen(
            argv,
            stdout=log_handle,
            stderr=log_handle,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    started[key] = {"pid": proc.pid}
    save(started)


def _port_answers(host: str, port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def _wait(what: str, test, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not test():
        if time.monotonic() > deadline:
            raise RuntimeError(f"lab PCs: {what} did not come up in {seconds:.0f}s")
        time.sleep(0.2)


def git_exec_path() -> str:
    """Where git keeps its programs (``git-daemon`` among them)."""
    return subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()


def start(
    lab_dir: Path, started: dict, save, names: tuple[str, ...] = tuple(PCS), pypi: bool = False
) -> dict:
    """The PC network, the registry relay and git daemon on its gateway, and the PCs ``names``
    (fresh: any PC of an earlier run is replaced); with ``pypi``, the lab's PyPI stand-in on
    them (:func:`tests.lab.pypi.wheelhouse`). What was made is recorded in ``started``."""
    base = lab_dir / "fleet"
    base.mkdir(parents=True, exist_ok=True)
    keys = _keys(base)
    ensure_image(apt_repository())
    repo = apt_repository(FRESH_PACKAGES if pypi else ())
    _network(started, save)
    reg_port = int(registry.ADDRESS.rsplit(":", 1)[1])
    _daemon(
        started,
        save,
        "pcs_relay",
        RELAY,
        [RELAY, f"TCP-LISTEN:{reg_port},bind={GATEWAY},reuseaddr,fork", f"TCP:{registry.ADDRESS}"],
        base / "relay.log",
    )
    git_dir = base / "git"
    git_dir.mkdir(exist_ok=True)
    _daemon(
        started,
        save,
        "git_daemon",
        GIT_DAEMON,
        [  # the daemon itself: `git daemon` would start it as a child the lab does not know
            os.path.join(git_exec_path(), "git-daemon"),
            "--reuseaddr",
            "--export-all",
            f"--base-path={git_dir}",
            f"--listen={GATEWAY}",
            f"--port={GIT_PORT}",
            str(git_dir),
        ],
        base / "git-daemon.log",
    )
    public = (keys / "id_ed25519.pub").read_text().strip()
    chosen = {name: PCS[name] for name in names}
    extra = []
    if pypi:
        wheels, pip_conf = wheelhouse()
        extra = ["-v", f"{wheels}:{WHEELS_MOUNT}:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro"]
    for name, ip in chosen.items():
        docker("rm", "--force", container(name), check=False)
        started.setdefault("pcs", [])
        if container(name) not in started["pcs"]:
            started["pcs"].append(container(name))
            save(started)
        docker(
            "run",
            "--detach",
            "--name",
            container(name),
            "--hostname",
            name,
            *MACHINE,
            "--init",
            "--network",
            NETWORK,
            "--ip",
            ip,
            "--tmpfs",
            "/var/lib/docker:rw,exec,dev,suid,size=8g",
            "-v",
            f"{repo}:{APT_MOUNT}:ro",
            *extra,
            "-e",
            f"LAB_ADMIN_KEY={public}",
            "--label",
            f"{CACHE_LABEL}.pc={name}",
            IMAGE,
        )
    _wait("the registry relay", lambda: _port_answers(GATEWAY, reg_port))
    _wait("the git daemon", lambda: _port_answers(GATEWAY, GIT_PORT))
    known = []
    for name, ip in chosen.items():
        _wait(f"{name}'s sshd", lambda ip=ip: _port_answers(ip, 22))
        host_key = docker(
            "exec", container(name), "cat", "/etc/ssh/ssh_host_ed25519_key.pub"
        ).stdout.split()[:2]
        known.append(f"{address(name)},{ip} {' '.join(host_key)}\n")
    (keys / "known_hosts").write_text("".join(known))
    (keys / "ssh_config").write_text(
        "".join(
            f"Host {address(name)}\n  HostName {ip}\n"
            for name, ip in {**PCS, "pc04": NOWHERE}.items()
        )
        + f"Host *.{DOMAIN}\n  User {ADMIN}\n  IdentityFile {keys / 'id_ed25519'}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {keys / 'known_hosts'}\n"
        "  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n"
    )
    for name in chosen:
        _wait(
            f"ssh to {name}",
            lambda name=name: (
                lab.run(
                    "ssh",
                    "-F",
                    str(keys / "ssh_config"),
                    address(name),
                    "true",
                    check=False,
                    capture_output=True,
                ).returncode
                == 0
            ),
        )
    return {
        "pcs": {address(name): ip for name, ip in chosen.items()},
        "nowhere": address("pc04"),
        "admin": ADMIN,
        "members": dict(MEMBERS),
        "key": str(keys / "id_ed25519"),
        "known_hosts": str(keys / "known_hosts"),
        "ssh_config": str(keys / "ssh_config"),
        "registry": f"{GATEWAY}:{reg_port}",
        "git": f"git://{GATEWAY}:{GIT_PORT}",
        "git_dir": str(git_dir),
    }


def stop(started: dict, save) -> None:
    """Remove the PCs (their Docker engines' data with them), the network and the daemons."""
    for name in started.pop("pcs", []):
        docker("rm", "--force", "--volumes", name, check=False)
    save(started)
    for key, name in (("pcs_relay", RELAY), ("git_daemon", GIT_DAEMON)):
        record = started.pop(key, None)
        if record:
            stop_process(record["pid"], name, timeout=5)
        save(started)
    network = started.pop("pcs_network", None)
    if network:
        docker("network", "rm", network, check=False)
    save(started)


# ---------------------------------------------------------------- the admin's side
GIT = (
    "git",
    "-c",
    "user.name=Lab Admin",
    "-c",
    "user.email=admin@lab",
    "-c",
    "commit.gpgsign=false",
)
REPOSITORY = "lab-fleet"  # the base images' repository in the lab registry
PASSWORD_ENV = "LAB_REGISTRY_PASSWORD"


def admin_site(lab_info: dict, room: dict, folder: Path) -> dict:
    """The admin's checkout of the lab's extension in ``folder`` (a copy of this project,
    committed), which the lab's git remote serves too; the stand-in base images in the lab
    registry; and the site's specifics for the example inventory in the checkout's
    ``inventories/group_data/lab_pcs.py`` (pyinfra's group data): the lab's SSH settings,
    registry, git remote. Returns ``{"project", "site", "env"}`` (``env``: the admin's shell's
    variables the deploy reads, the registry password)."""
    from .project import make_project  # needs the venv (isaac_deploy's model)

    reg = lab_info["registry"]
    creds = f"{reg['user']}:{reg['password']}"
    base_images = {}
    for profile, image in lab_info["images"].items():
        name = image.rsplit("/", 1)[-1]
        lab.run(
            "skopeo",
            "copy",
            "--quiet",
            "--dest-cert-dir",
            reg["cert_dir"],
            "--dest-creds",
            creds,
            f"docker-daemon:{image}",
            f"docker://{reg['address']}/{REPOSITORY}/{name}",
            capture_output=True,
        )
        base_images[profile] = f"{room['registry']}/{REPOSITORY}/{name}"
    project = make_project(folder, None, lab_info)
    lab.run(*GIT, "init", "-q", "-b", "main", str(project.path))
    lab.run(*GIT, "-C", str(project.path), "add", "-A")
    lab.run(*GIT, "-C", str(project.path), "commit", "-qm", "The lab's extension")
    bare = Path(room["git_dir"]) / f"{project.name}.git"
    shutil.rmtree(bare, ignore_errors=True)
    lab.run("git", "clone", "-q", "--bare", str(project.path), str(bare))
    site = {
        "ssh_config_file": room["ssh_config"],
        "isaac_registries": {
            "lab": {
                "address": room["registry"],
                "ca_file": reg["ca"],
                "username": reg["user"],
                "password_env": PASSWORD_ENV,
            }
        },
        "isaac_base_images": base_images,
        "isaac_project": {
            "git": f"{room['git']}/{bare.name}",
            "branch": "main",
            "folder": project.name,
        },
        "isaac_extension_name": project.name,
        "isaac_dev_pip_packages": "",  # the stand-in has no network for pip
    }
    group_data = project.path / "inventories" / "group_data"
    group_data.mkdir(exist_ok=True)
    (group_data / "lab_pcs.py").write_text(
        "".join(f"{key} = {value!r}\n" for key, value in site.items())
    )
    return {"project": project, "site": site, "env": {PASSWORD_ENV: reg["password"]}}
