"""What a push would change: the local image's ID, the git commit of the project and, for each
tag, the config digest the registry holds (``skopeo inspect --raw``), asked in parallel; or,
with ``{"login": REFERENCE, "flags": [...]}``, whether the registry accepts the credentials.

Run by the ``RegistryImage`` and ``RegistryLogin`` facts as ``python3 -c <program> ARGS_JSON``
(joined after ``dockerapi``); prints one JSON object.
"""

import json
import subprocess
import sys
import threading
from urllib.parse import quote

if "docker_client" not in globals():  # imported as a module, not joined into one program
    from isaac_deploy.probes.dockerapi import docker_client


def remote_digest(reference, flags):
    try:
        proc = subprocess.run(
            ["skopeo", "inspect", "--raw", *flags, "docker://" + reference],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    if proc.returncode == 0:
        try:
            manifest = json.loads(proc.stdout)
            return {"digest": (manifest.get("config") or {}).get("digest")}
        except ValueError:
            return {"error": "unexpected manifest: " + proc.stdout[:200]}
    if "manifest unknown" in proc.stderr or "name unknown" in proc.stderr:
        return {"missing": True}
    return {"error": proc.stderr.strip()}


def registry_login(args):
    """``{}`` when the registry lets the credentials in ``flags`` read ``args["login"]`` (the
    image itself may be missing), else ``{"error": ...}``."""
    state = remote_digest(args["login"], args.get("flags", []))
    return {"error": state["error"]} if "error" in state else {}


def git_commit(folder):
    try:
        git = ["git", "-C", folder]
        head = subprocess.run(
            [*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=30
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, False
    if head.returncode != 0:
        return None, False
    return head.stdout.strip(), bool(dirty.stdout.strip())


def content_tag(image_id):
    """``sha256:ab..`` -> ``sha256-ab..``: a tag that only ever names this content (what a
    cluster builds its Apptainer image from)."""
    return image_id.replace(":", "-") if image_id else None


def tags_for(commit, dirty, version, image_id=None):
    """Tags in push order: the content tag and the commit first, ``latest`` last, so an
    interrupted push never leaves ``latest`` on a half-pushed image. A dirty tree's image is
    not the commit's."""
    tags = [content_tag(image_id)] if image_id else []
    if commit:
        tags.append(commit + ("-dirty" if dirty else ""))
    if version:
        tags.append(version)
    return [*tags, "latest"]


def registry_state(args):
    commit, dirty = git_commit(args.get("folder") or ".")
    status, data = docker_client().get("/images/{}/json".format(quote(args["local"], safe="")))
    local = (
        {"id": data.get("Id")}
        if status == 200 and isinstance(data, dict)
        else ({"missing": True} if status == 404 else {"error": str(data)})
    )
    if args.get("no_remote") or not local.get("id"):
        tags = []
    else:
        tags = tags_for(commit, dirty, args.get("version"), local["id"])
    results = {}

    def ask(tag):
        results[tag] = remote_digest(args["repository"] + ":" + tag, args.get("flags", []))

    threads = [threading.Thread(target=ask, args=(tag,)) for tag in tags]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"local": local, "tags": [[tag, results[tag]] for tag in tags], "commit": commit}


if __name__ == "__main__":
    ARGS = json.loads(sys.argv[1])
    print(json.dumps(registry_login(ARGS) if "login" in ARGS else registry_state(ARGS)))
