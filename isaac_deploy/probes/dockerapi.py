"""Minimal read-only Docker Engine API client over the unix socket (stdlib only).

Asking the engine directly costs a few milliseconds, where each ``docker`` CLI call costs
20-50 ms; the facts use it for version, info and image queries. :func:`docker_endpoint` says
which engine the ``docker`` CLI would ask and why; an endpoint that is not a unix socket, or a
Docker context, is asked through the CLI.
"""

import hashlib
import json
import os
import socket
import threading

__all__ = ["DEFAULT_HOST", "DockerAPI", "DockerCLI", "docker_client", "docker_endpoint"]

DEFAULT_HOST = "unix:///var/run/docker.sock"


class DockerAPI:
    def __init__(self, host=DEFAULT_HOST, timeout=10.0):
        self.path = host[len("unix://") :] if host.startswith("unix://") else None
        self.host = host
        self.timeout = timeout

    def get(self, url):
        """``(status, data)``; status 0 with an error string when the engine is unreachable."""
        if self.path is None:
            return 0, f"DOCKER_HOST {self.host} is not a unix socket"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
            request = f"GET {url} HTTP/1.0\r\nHost: docker\r\nAccept: application/json\r\n\r\n"
            sock.sendall(request.encode())
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if isinstance(exc, PermissionError):
                return 0, (
                    "permission denied while trying to connect to the Docker daemon socket at "
                    + self.host
                )
            return 0, f"Cannot connect to the Docker daemon at {self.host} ({reason})"
        finally:
            sock.close()
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return 0, f"unexpected answer from the Docker daemon at {self.host}"
        try:
            return status, json.loads(body.decode("utf-8", "replace") or "null")
        except ValueError:
            return status, body.decode("utf-8", "replace")

    def get_many(self, urls):
        """``{url: (status, data)}``, the requests made in parallel (one connection each)."""
        results = {}

        def fetch(url):
            results[url] = self.get(url)

        threads = [threading.Thread(target=fetch, args=(url,)) for url in urls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results


class DockerCLI:
    """The same questions through the ``docker`` CLI, for a ``DOCKER_HOST`` that is not a unix
    socket or a non-default Docker context (slower: one CLI process per question)."""

    def __init__(self, docker="docker"):
        self.docker = docker

    def _run(self, args):
        import subprocess

        try:
            proc = subprocess.run([self.docker, *args], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 0, str(exc)
        if proc.returncode != 0:
            error = proc.stderr.strip() or proc.stdout.strip()
            if "no such image" in error.lower() or "no such object" in error.lower():
                return 404, error
            return 0, error
        return 200, proc.stdout

    def get(self, url):
        if url == "/version":
            status, out = self._run(["version", "--format", "{{json .Server}}"])
        elif url == "/info":
            status, out = self._run(["info", "--format", "{{json .}}"])
        elif url == "/images/json":
            status, out = self._run(["images", "--no-trunc", "--format", "{{json .}}"])
            if status == 200:
                rows = [json.loads(line) for line in out.splitlines() if line.strip()]
                tags = [
                    (r.get("ID"), "{}:{}".format(r.get("Repository"), r.get("Tag"))) for r in rows
                ]
                return 200, [{"Id": image_id, "RepoTags": [tag]} for image_id, tag in tags]
            return status, out
        elif url.startswith(("/images/", "/containers/")) and url.endswith("/json"):
            from urllib.parse import unquote

            kind, _, rest = url[1:].partition("/")
            ref = unquote(rest[: -len("/json")])
            status, out = self._run([kind[:-1], "inspect", ref])
            if status == 200:
                return 200, (json.loads(out) or [None])[0]
            return status, out
        else:
            return 0, "unsupported question " + url
        if status != 200:
            return status, out
        try:
            return 200, json.loads(out)
        except ValueError:
            return 0, out.strip()

    get_many = DockerAPI.get_many


def docker_config_dir():
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def current_context():
    """``(name, source)``: the Docker context the CLI uses and what chose it (``DOCKER_CONTEXT``,
    ``context``: the config's current context, ``default``)."""
    name = os.environ.get("DOCKER_CONTEXT", "")
    if name:
        return name, "DOCKER_CONTEXT"
    try:
        with open(os.path.join(docker_config_dir(), "config.json"), encoding="utf-8") as handle:
            name = json.load(handle).get("currentContext") or ""
    except (OSError, ValueError, AttributeError):
        name = ""
    return (name, "context") if name else ("default", "default")


def context_host(name):
    """The Docker endpoint of the context ``name`` from its metadata, ``None`` if it has none."""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    path = os.path.join(docker_config_dir(), "contexts", "meta", digest, "meta.json")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)["Endpoints"]["docker"]["Host"] or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_default_socket(host):
    """Whether ``host`` is this machine's default socket, where a started dockerd listens."""
    if not host or not host.startswith("unix://"):
        return False
    default = DEFAULT_HOST[len("unix://") :]
    return os.path.realpath(host[len("unix://") :]) == os.path.realpath(default)


def docker_endpoint():
    """Where the ``docker`` CLI connects and why, as it decides: ``DOCKER_HOST``, else the Docker
    context (``DOCKER_CONTEXT``, else the config's current one), else the default socket.

    ``{"host": endpoint or None (a context without one), "source": "DOCKER_HOST" |
    "DOCKER_CONTEXT" | "context" | "default", "context": name or None, "local_default": bool}``
    """
    host = os.environ.get("DOCKER_HOST", "")
    context, source = (None, "DOCKER_HOST") if host else current_context()
    if context == "default":
        host, context, source = DEFAULT_HOST, None, "default"
    elif context:
        host = context_host(context)
    return {
        "host": host,
        "source": source,
        "context": context,
        "local_default": is_default_socket(host),
    }


def docker_client(endpoint=None):
    """The engine API on its socket when the CLI would use it too, else the CLI itself."""
    endpoint = endpoint or docker_endpoint()
    host = endpoint["host"]
    if endpoint["context"] is None and host.startswith("unix://"):
        return DockerAPI(host)
    return DockerCLI()
