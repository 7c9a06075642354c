"""The lab's cluster: a login node (``sshd`` on a loopback port, a non-root cluster user reached
with a key, host keys checked) and a single-node Slurm (private ``munged``, ``slurmctld`` and
``slurmd`` on their own ports, two fake GPUs of the type ``labgpu``, node features and local
disk for ``--constraint`` and ``--tmp``, accounting through ``slurmdbd`` and a private MariaDB
so that ``sacct`` works). Started and stopped by ``lab.up/down``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .processes import alive, stop_process

USER = os.environ.get("ISAAC_LAB_CLUSTER_USER", "labuser")
# the lab's Apptainer module (the login profile's `module` stand-in puts it on PATH)
APPTAINER_MODULE = "apptainer/1.3.6-lab"
SSH_ADDR = "127.0.0.1"
SSH_PORT = int(os.environ.get("ISAAC_LAB_SSH_PORT", "2222"))
CTLD_PORT, SLURMD_PORT, DBD_PORT, DB_PORT = 16817, 16818, 16819, 13306
FAKE_GPUS = 2
GPU_TYPE = "labgpu"  # --gpus=labgpu:1, --gres=gpu:labgpu:1
FEATURES = ("lab", "x86")  # --constraint
TMP_DISK_MB = 1024  # --tmp (the node's /tmp has more)


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=kwargs.pop("check", True), text=True, **kwargs)


def _wait(what: str, test, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not test():
        if time.monotonic() > deadline:
            raise RuntimeError(f"lab cluster: {what} did not come up in {seconds:.0f}s")
        time.sleep(0.1)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((SSH_ADDR, port)) != 0


# ------------------------------------------------------------------ munge + slurm
def start_slurm(lab_dir: Path, started: dict, save) -> dict:
    munge, slurm = lab_dir / "munge", lab_dir / "slurm"
    socket_path = munge / "munge.socket"
    conf = slurm / "slurm.conf"
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for folder in (slurm, slurm / "state", slurm / "spool", slurm / "log", slurm / "dev"):
        folder.mkdir(parents=True, exist_ok=True)
    munge.mkdir(parents=True, exist_ok=True)
    shutil.chown(munge, "munge", "munge")
    key = munge / "munge.key"
    if not key.exists():
        _run("mungekey", "-c", "-k", str(key))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    munged = started.get("munged")
    if not (munged and alive(munged, "munged")):
        _run(
            "runuser",
            "-u",
            "munge",
            "--",
            "munged",
            f"--socket={socket_path}",
            f"--key-file={key}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--log-file={munge / 'munged.log'}",
            f"--seed-file={munge / 'munged.seed'}",
        )
        _wait("munged", lambda: _pid(munge / "munged.pid") is not None)
        started["munged"] = _pid(munge / "munged.pid")
        save(started)
    node = socket.gethostname().split(".")[0]
    hardware = _run("slurmd", "-C", capture_output=True).stdout.splitlines()[0].split(" ", 1)[1]
    for index in range(FAKE_GPUS):  # gres/gpu wants device files: copies of /dev/null
        device = slurm / "dev" / f"gpu{index}"
        if not device.exists():
            os.mknod(device, 0o20666, os.makedev(1, 3))
    (slurm / "gres.conf").write_text(
        f"NodeName={node} Name=gpu Type={GPU_TYPE} File={slurm}/dev/gpu[0-{FAKE_GPUS - 1}]\n"
    )
    conf.write_text(f"""ClusterName=lab
SlurmctldHost={node}({SSH_ADDR})
SlurmctldPort={CTLD_PORT}
SlurmdPort={SLURMD_PORT}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
StateSaveLocation={slurm}/state
SlurmdSpoolDir={slurm}/spool
SlurmctldPidFile={slurm}/slurmctld.pid
SlurmdPidFile={slurm}/slurmd.pid
SlurmctldLogFile={slurm}/log/slurmctld.log
SlurmdLogFile={slurm}/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost={SSH_ADDR}
AccountingStoragePort={DBD_PORT}
AccountingStoragePass={socket_path}
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/filetxt
JobCompLoc={slurm}/log/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
GresTypes=gpu
NodeName={node} NodeAddr={SSH_ADDR} {hardware} Gres=gpu:{GPU_TYPE}:{FAKE_GPUS} \
Features={",".join(FEATURES)} TmpDisk={TMP_DISK_MB} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    start_accounting(lab_dir, slurm, socket_path, node, env, started, save)
    for daemon, argv, pidfile in (
        ("slurmctld", ["slurmctld", "-c"], slurm / "slurmctld.pid"),
        ("slurmd", ["slurmd", "-N", node], slurm / "slurmd.pid"),
    ):
        pid = started.get(daemon)
        if pid and alive(pid, daemon):
            continue
        port = CTLD_PORT if daemon == "slurmctld" else SLURMD_PORT
        if not _port_free(port):
            raise RuntimeError(f"lab cluster: port {port} for {daemon} is in use")
        pidfile.unlink(missing_ok=True)
        _run(*argv, env=env)
        _wait(f"{daemon} pid file", lambda p=pidfile: _pid(p) is not None)
        started[daemon] = _pid(pidfile)
        save(started)
    _wait(
        "node idle",
        lambda: (
            _run(
                "sinfo", "-h", "-n", node, "-o", "%T", env=env, capture_output=True, check=False
            ).stdout.strip()
            == "idle"
        ),
    )
    return {"slurm_conf": str(conf), "node": node, "gpus": FAKE_GPUS}


def start_accounting(
    lab_dir: Path, slurm: Path, munge_socket: Path, node: str, env: dict, started: dict, save
) -> None:
    """MariaDB (private datadir, 127.0.0.1 only) and slurmdbd, so that ``sacct`` answers.
    Pitfalls (lab notes): slurmctld and clients reach slurmdbd through the munge socket named
    in ``AccountingStoragePass`` (not ``AuthInfo``); slurmdbd refuses a readable config."""
    db = lab_dir / "mysql"
    db.mkdir(parents=True, exist_ok=True)
    client = ["mariadb", "--no-defaults", "-S", str(db / "mysqld.sock")]
    pid = started.get("mariadbd")
    if not (pid and alive(pid, "mariadbd")):
        if not (db / "data" / "mysql").is_dir():
            _run(
                "mariadb-install-db",
                "--no-defaults",
                "--user=root",
                f"--datadir={db / 'data'}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                capture_output=True,
            )
        if not _port_free(DB_PORT):
            raise RuntimeError(f"lab cluster: port {DB_PORT} for MariaDB is in use")
        (db / "mariadbd.pid").unlink(missing_ok=True)
        subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                "--user=root",
                f"--datadir={db / 'data'}",
                f"--socket={db / 'mysqld.sock'}",
                f"--port={DB_PORT}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                f"--pid-file={db / 'mariadbd.pid'}",
                f"--log-error={db / 'mariadbd.log'}",
                "--innodb-buffer-pool-size=64M",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait(
            "mariadbd",
            lambda: (
                _run(*client, "-e", "select 1", check=False, capture_output=True).returncode == 0
            ),
        )
        started["mariadbd"] = _pid(db / "mariadbd.pid")
        save(started)
        _run(
            *client,
            "-e",
            "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm'; "
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;",
            capture_output=True,
        )
    conf = slurm / "slurmdbd.conf"  # slurmdbd finds it next to $SLURM_CONF
    conf.write_text(f"""AuthType=auth/munge
AuthInfo=socket={munge_socket}
DbdHost={node}
DbdAddr={SSH_ADDR}
DbdPort={DBD_PORT}
SlurmUser=root
PidFile={slurm}/slurmdbd.pid
LogFile={slurm}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={DB_PORT}
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
""")
    conf.chmod(0o600)
    pid = started.get("slurmdbd")
    if not (pid and alive(pid, "slurmdbd")):
        if not _port_free(DBD_PORT):
            raise RuntimeError(f"lab cluster: port {DBD_PORT} for slurmdbd is in use")
        (slurm / "slurmdbd.pid").unlink(missing_ok=True)
        _run("slurmdbd", env=env)
        _wait("slurmdbd pid file", lambda: _pid(slurm / "slurmdbd.pid") is not None)
        started["slurmdbd"] = _pid(slurm / "slurmdbd.pid")  # recorded first: stopped by down()
        save(started)
        _wait(
            "slurmdbd",
            lambda: (
                _run(
                    "sacctmgr",
                    "-n",
                    "-P",
                    "list",
                    "cluster",
                    env=env,
                    check=False,
                    capture_output=True,
                ).returncode
                == 0
            ),
        )
    clusters = _run(
        "sacctmgr", "-n", "-P", "list", "cluster", "format=cluster", env=env, capture_output=True
    ).stdout.split()
    if "lab" not in clusters:
        _run("sacctmgr", "-i", "add", "cluster", "lab", env=env, capture_output=True)


# ------------------------------------------------------------------ login node
def start_login(lab_dir: Path, started: dict, save, slurm_conf: str) -> dict:
    """sshd for the cluster user; its sessions (and so the jobs they submit) see SLURM_CONF and
    the lab's bin folder (the Apptainer stand-in) on PATH."""
    keys = lab_dir / "ssh"
    keys.mkdir(parents=True, exist_ok=True)
    if _run("getent", "passwd", USER, check=False, capture_output=True).returncode != 0:
        _run("useradd", "-m", "-s", "/bin/bash", USER)
        started["cluster_user"] = USER
        save(started)
    _run("usermod", "-p", "*", USER)  # useradd leaves it locked; sshd (UsePAM no) refuses locked
    home = Path(_run("getent", "passwd", USER, capture_output=True).stdout.split(":")[5])
    for name, comment in (("id_ed25519", f"{USER}@lab"), ("ssh_host_ed25519_key", "lab-host")):
        if not (keys / name).exists():
            _run(
                "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(keys / name)
            )
    home = Path(_run("getent", "passwd", USER, capture_output=True).stdout.split(":")[5])
    site_profile(lab_dir, home)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text((keys / "id_ed25519.pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    _run("chown", "-R", f"{USER}:{USER}", str(ssh_dir))
    (keys / "id_ed25519").chmod(0o600)
    (keys / "sshd_config").write_text(f"""Port {SSH_PORT}
ListenAddress {SSH_ADDR}
HostKey {keys}/ssh_host_ed25519_key
PidFile {keys}/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
AllowUsers {USER}
SetEnv SLURM_CONF={slurm_conf} PATH={lab_dir}/bin:/usr/local/bin:/usr/bin:/bin
Subsystem sftp /usr/lib/openssh/sftp-server
""")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    pid = started.get("sshd")
    if not (pid and alive(pid, "sshd")):
        if not _port_free(SSH_PORT):
            raise RuntimeError(f"lab cluster: {SSH_ADDR}:{SSH_PORT} is in use")
        _run("/usr/sbin/sshd", "-f", str(keys / "sshd_config"), "-E", str(keys / "sshd.log"))
        _wait("sshd", lambda: _pid(keys / "sshd.pid") is not None)
        started["sshd"] = _pid(keys / "sshd.pid")
        save(started)
    host_key = " ".join((keys / "ssh_host_ed25519_key.pub").read_text().split()[:2])
    (keys / "known_hosts").write_text(f"[{SSH_ADDR}]:{SSH_PORT} {host_key}\n")
    (keys / "ssh_config").write_text(f"""Host lab-login
  HostName {SSH_ADDR}
  Port {SSH_PORT}
  User {USER}
  IdentityFile {keys}/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile {keys}/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
""")
    ssh = ["ssh", "-F", str(keys / "ssh_config"), "lab-login", "true"]
    _wait(
        "ssh to the login node",
        lambda: _run(*ssh, check=False, capture_output=True).returncode == 0,
    )
    return {
        "host": SSH_ADDR,
        "port": SSH_PORT,
        "user": USER,
        "apptainer_module": APPTAINER_MODULE,
        "home": str(home),
        "key": str(keys / "id_ed25519"),
        "known_hosts": str(keys / "known_hosts"),
        "ssh_config": str(keys / "ssh_config"),
        "sshd_log": str(keys / "sshd.log"),
    }


def site_profile(lab_dir: Path, home: Path) -> None:
    """What the login node's login shells get, as a site's profile gives it: ``$SCRATCH`` and
    ``module`` (a stand-in of Environment Modules/Lmod: ``module load apptainer/1.3.6-lab``
    puts the lab's Apptainer on PATH; other modules are unknown). Debian's /etc/profile sets
    PATH for login shells without the lab's bin folder, so Apptainer is in a login shell only
    through the module (commands over SSH and the jobs they submit keep sshd's PATH)."""
    module_bin = lab_dir / "modules" / "apptainer-1.3.6-lab" / "bin"
    module_bin.mkdir(parents=True, exist_ok=True)
    link = module_bin / "apptainer"
    if not link.is_symlink():
        link.symlink_to(lab_dir / "bin" / "apptainer")
    profile = home / ".bash_profile"
    profile.write_text(f"""# the lab login node's site profile (tests/lab/cluster.py), read by login shells
export SCRATCH="$HOME/scratch"
module() {{
  if [ "$1" != load ] || [ $# -ne 2 ]; then
    echo "module (lab stand-in): only 'module load NAME' is known" >&2; return 2
  fi
  case $2 in
    {APPTAINER_MODULE}) PATH={module_bin}:$PATH; export PATH ;;
    *) echo "Lmod has detected the following error: The following module(s) are unknown: \"$2\"" >&2
       return 1 ;;
  esac
}}
""")
    shutil.chown(profile, USER, USER)


def start(lab_dir: Path, started: dict, save) -> dict:
    slurm = start_slurm(lab_dir, started, save)
    return {**slurm, "login": start_login(lab_dir, started, save, slurm["slurm_conf"])}


def stop(started: dict, save) -> None:
    for daemon in ("sshd", "slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
        pid = started.pop(daemon, None)
        if pid:
            stop_process(pid, daemon, timeout=15)
        save(started)
    name = started.pop("cluster_user", None)
    if name:
        _run("pkill", "-u", name, check=False, capture_output=True)
        _run("userdel", "-r", name, check=False, capture_output=True)
        save(started)
