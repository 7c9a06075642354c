"""Pull images into the Docker engine, or ask a registry whether it would serve them, through
the engine's API with a login that never reaches a command line (stdlib only; runs after
``dockerapi``).

Argument: JSON ``{"images": [REF, ...], "logins": {ADDRESS: LOGIN}, "check": bool,
"interval": SECONDS}``. A login is ``{"username": U, "env": NAME, "file": PATH}`` (the password
from this process's environment variable ``NAME``, else the file ``PATH``) or ``{"config":
PATH}`` (a Docker config file whose ``auths`` hold it, as ``docker login`` stores them).

``present``: one JSON line ``{REF: bool}``, which images the engine has. ``check``: one JSON
line ``{REF: null | ERROR}``: the registry's answer for each image (the engine's distribution
endpoint: login, TLS, tag), nothing is pulled. Else each image is pulled
with a progress line at most every ``interval`` seconds (layers and bytes, plain lines: readable
in a log) and one line when done; a failure is one ``error:`` line and exit code 1.
"""

import base64
import json
import os
import socket
import sys
import time
from urllib.parse import quote

if "docker_endpoint" not in globals():  # imported as a module, not joined into one program
    from isaac_deploy.probes.dockerapi import docker_endpoint


def _password(login):
    if "config" in login:
        return None
    value = os.environ.get(login.get("env") or "", "")
    path = os.path.expanduser(login.get("file") or "")
    if not value and login.get("file") and os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    return value


def registry_auth(address, login):
    """The ``X-Registry-Auth`` header value for ``address`` (``None``: anonymous)."""
    if not login:
        return None
    if "config" in login:
        with open(login["config"], encoding="utf-8") as handle:
            entry = json.load(handle).get("auths", {}).get(address) or {}
        if not entry.get("auth"):
            return None
        username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    else:
        username, password = login.get("username", ""), _password(login)
        if not password:
            return None
    auth = {"username": username, "password": password, "serveraddress": address}
    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()


def registry_of(ref):
    first, slash, _ = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def split_ref(ref):
    """``(repository, tag or digest)`` of an image reference."""
    if "@" in ref:
        return ref.split("@", 1)
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return ref, "latest"
    return name, tag


class Engine:
    """Requests to the engine's unix socket whose answer is read as it arrives."""

    def __init__(self, path, timeout=None):
        self.path = path
        self.timeout = timeout

    def request(self, method, url, auth=None):
        """``(status, lines)``: the HTTP status and an iterator over the body's lines."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        head = [f"{method} {url} HTTP/1.0", "Host: docker", "Content-Length: 0"]
        if auth:
            head.append(f"X-Registry-Auth: {auth}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        stream = sock.makefile("rb")
        status_line = stream.readline().decode("latin-1")
        while stream.readline() not in (b"\r\n", b"\n", b""):
            pass
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError):
            status = 0

        def lines():
            try:
                for raw in stream:
                    yield raw.decode("utf-8", "replace").strip()
            finally:
                stream.close()
                sock.close()

        return status, lines()


def message(status, lines):
    """The engine's error message of an answer that is not 2xx."""
    text = "\n".join(lines).strip()
    try:
        return json.loads(text).get("message") or text
    except (ValueError, AttributeError):
        return text or f"HTTP {status}"


def check(engine, images, logins):
    answers = {}
    for ref in images:
        address = registry_of(ref)
        auth = registry_auth(address, logins.get(address))
        try:
            status, lines = engine.request("GET", f"/distribution/{quote(ref, safe='')}/json", auth)
        except OSError as exc:
            answers[ref] = f"Docker is not usable: {exc}"
            continue
        answers[ref] = None if 200 <= status < 300 else message(status, lines)
        if answers[ref] is None:
            for _ in lines:  # read to the end, closing the connection
                pass
    return answers


def size(count):
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= factor:
            return f"{count / factor:.1f} {unit}"
    return f"{count} B"


LAYER_STATUSES = (
    "Pulling fs layer",
    "Waiting",
    "Already exists",
    "Downloading",
    "Verifying Checksum",
    "Download complete",
    "Extracting",
    "Pull complete",
)


class Progress:
    """What the engine said about each layer of one pull, as counts and bytes."""

    def __init__(self):
        self.layers = {}  # id -> [state, current, total]

    def update(self, event):
        layer, status = event.get("id"), event.get("status", "")
        if not layer or status not in LAYER_STATUSES:  # the tag's own lines, digests
            return
        entry = self.layers.setdefault(layer, ["waiting", 0, 0])
        detail = event.get("progressDetail") or {}
        if status == "Already exists":
            entry[0] = "present"
        elif status == "Downloading":
            entry[0] = "downloading"
            entry[1], entry[2] = detail.get("current", 0), detail.get("total", entry[2])
        elif status in ("Download complete", "Verifying Checksum", "Extracting"):
            entry[0] = "downloaded" if status != "Extracting" else "extracting"
            entry[1] = entry[2]
        elif status == "Pull complete":
            entry[0], entry[1] = "done", entry[2]

    def line(self):
        if not self.layers:
            return "nothing to download (the engine had its layers)"
        states = [entry[0] for entry in self.layers.values()]
        done = sum(state in ("present", "done") for state in states)
        got = sum(entry[1] for entry in self.layers.values())
        total = sum(entry[2] for entry in self.layers.values())
        of = f" of {size(total)}" if total else ""
        return f"{done}/{len(states)} layers, {size(got)}{of} downloaded"


def pull(engine, ref, auth, interval):
    repository, tag = split_ref(ref)
    url = f"/images/create?fromImage={quote(repository, safe='')}&tag={quote(tag, safe='')}"
    started = time.monotonic()
    status, lines = engine.request("POST", url, auth)
    if not 200 <= status < 300:
        return message(status, lines)
    progress = Progress()
    said = started
    for line in lines:
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("error"):
            return (event.get("errorDetail") or {}).get("message") or event["error"]
        progress.update(event)
        now = time.monotonic()
        if now - said >= interval:
            print(f"pulling {ref}: {progress.line()}", flush=True)
            said = now
    print(f"pulled {ref} in {time.monotonic() - started:.0f} s: {progress.line()}", flush=True)
    return None


def main(spec):
    host = docker_endpoint()["host"] or ""
    if not host.startswith("unix://"):
        print(f"error: the Docker engine at {host} is not a unix socket", file=sys.stderr)
        return 1
    engine = Engine(host[len("unix://") :])
    logins = spec.get("logins") or {}
    if spec.get("present"):
        answers = {}
        for ref in spec["images"]:
            status, lines = engine.request("GET", f"/images/{quote(ref, safe='')}/json")
            answers[ref] = status == 200
            for _ in lines:
                pass
        print(json.dumps(answers))
        return 0
    if spec.get("check"):
        print(json.dumps(check(engine, spec["images"], logins)))
        return 0
    for ref in spec["images"]:
        address = registry_of(ref)
        print(f"pulling {ref} from {address}", flush=True)
        try:
            error = pull(engine, ref, registry_auth(address, logins.get(address)), spec["interval"])
        except OSError as exc:
            error = f"Docker is not usable: {exc}"
        if error:
            print(f"error: pulling {ref}: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
