"""Gather the workstation toolkit in one process and print it as one JSON object (stdlib only).

Run on the target by the ``WorkstationToolkit`` fact as ``python3 -c <this file> [ARGS JSON]``.
It only collects raw material: the user, OS, which tools exist, the raw output of
``nvidia-smi``, ``nvidia-ctk``, ``apptainer``/``singularity``, the Docker and Compose CLIs (run
in parallel), the engine's endpoint (which one the CLI would ask, and why) and its
``/version``, ``/info`` and ``/images/json`` (over its socket),
``daemon.json``, free space under Docker's root, and, from ARGS, the kinds of some paths
(``"paths"``), the contents of some files (``"read"``) and the mode/digest of others
(``"digest"``). Parsing is the fact's job.
"""

import grp
import hashlib
import json
import os
import platform
import pwd
import shutil
import subprocess
import sys

if "docker_client" not in globals():  # imported as a module, not joined into one program
    from isaac_deploy.probes.dockerapi import docker_client, docker_endpoint
if "extension_names" not in globals():
    from isaac_deploy.probes.extensions import extension_names

PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)
TOOLS = (
    "docker",
    "dockerd",
    "sudo",
    "nvidia-smi",
    "nvidia-ctk",
    "apptainer",
    "singularity",
    "docker-compose",
)
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def which(name):
    path = os.environ.get("PATH", "") + ":" + ":".join(SBIN)
    return shutil.which(name, path=path)


def compose_plugin():
    config = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    for folder in (os.path.join(config, "cli-plugins"),) + PLUGIN_DIRS:
        candidate = os.path.join(folder, "docker-compose")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def start(argv):
    try:
        return subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        return str(exc)


def finish(proc):
    if isinstance(proc, str):
        return {"rc": 127, "out": proc}
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return {"rc": 124, "out": out.decode("utf-8", "replace") + "\n(timed out)"}
    return {"rc": proc.returncode, "out": out.decode("utf-8", "replace")}


def user_info():
    uid, gid = os.getuid(), os.getgid()
    try:
        entry = pwd.getpwuid(uid)
        name, home, shell = entry.pw_name, entry.pw_dir, entry.pw_shell
        gids = os.getgrouplist(name, gid)
    except KeyError:
        name, home, shell, gids = str(uid), os.environ.get("HOME", "/"), "/bin/sh", [gid]
    groups = []
    for group_id in gids:
        try:
            groups.append(grp.getgrgid(group_id).gr_name)
        except KeyError:
            groups.append(str(group_id))
    return {"name": name, "uid": uid, "gid": gid, "home": home, "shell": shell, "groups": groups}


def read_text(path, limit=1 << 20):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(limit)
    except OSError:
        return None


def os_release():
    values = {}
    for line in (read_text("/etc/os-release") or "").splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"')
    return {
        "id": values.get("ID", "unknown"),
        "version": values.get("VERSION_ID", ""),
        "codename": values.get("VERSION_CODENAME", ""),
        "arch": platform.machine(),
        "init": (read_text("/proc/1/comm") or "").strip(),
    }


def path_kind(path):
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        return "dir"
    return "file" if os.path.lexists(path) else "missing"


def file_digest(path):
    path = os.path.expanduser(path)
    try:
        st = os.stat(path)
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None
    return {"mode": st.st_mode & 0o7777, "uid": st.st_uid, "sha256": digest}


def free_kib(root):
    path = root or "/var/lib/docker"
    while not os.path.exists(path) and path not in ("/", ""):
        path = os.path.dirname(path)
    try:
        st = os.statvfs(path or "/")
    except OSError:
        return None
    return st.f_bavail * st.f_frsize // 1024


def probe(args):
    found = {name: which(name) for name in TOOLS}
    plugin = compose_plugin()
    procs = {}
    if found["docker"]:
        procs["docker-client"] = start([found["docker"], "--version"])
    if plugin:
        procs["compose"] = start([plugin, "version", "--short"])
    if found["docker-compose"]:
        procs["compose-standalone"] = start([found["docker-compose"], "version", "--short"])
    if found["nvidia-smi"]:
        procs["nvidia-smi"] = start(
            [
                found["nvidia-smi"],
                "--query-gpu=index,name,driver_version,memory.total",
                "--format=csv,noheader",
            ]
        )
    for tool in ("nvidia-ctk", "apptainer", "singularity"):
        if found[tool]:
            procs[tool] = start([found[tool], "--version"])

    endpoint = docker_endpoint()
    api = docker_client(endpoint)
    engine = {"endpoint": endpoint}
    answers = api.get_many(["/version", "/info", "/images/json"])
    status, version = answers["/version"]
    if status == 200:
        engine["version"] = version
        engine["info"] = answers["/info"][1]
        engine["images"] = answers["/images/json"][1]
    else:
        engine["error"] = version if status == 0 else f"HTTP {status}: {version}"
    info = engine.get("info") if isinstance(engine.get("info"), dict) else {}
    result = {
        "user": user_info(),
        "os": os_release(),
        "which": found,
        "compose_plugin": plugin,
        "engine": engine,
        "daemon_json": read_text("/etc/docker/daemon.json"),
        "free_kib": free_kib(info.get("DockerRootDir")),
        "paths": {p: path_kind(p) for p in args.get("paths", [])},
        "read": {p: read_text(os.path.expanduser(p)) for p in args.get("read", [])},
        "digest": {p: file_digest(p) for p in args.get("digest", [])},
        "extensions": {p: extension_names(p) for p in args.get("extensions", [])},
    }
    result["commands"] = {name: finish(proc) for name, proc in procs.items()}
    return result


if __name__ == "__main__":
    print(json.dumps(probe(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})))
