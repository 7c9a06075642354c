"""The workstation's own side of the cluster roll-out and the CLI: what the deploy and the CLI
read or run on this machine (git, the build context's file list, a SIF's checksum sidecar and
size, rsync pulls and pushes), in one place, with the same probes the facts send to a target
where there is one (the image inputs: ``facts.images.local_build_inputs``)."""

from __future__ import annotations

import atexit
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from isaac_deploy.probes.context_digest import context_files, files_digest
from isaac_deploy.probes.pull import rsync
from isaac_deploy.probes.registry_state import git_commit


def commit(folder: str) -> str | None:
    """The short commit of the git checkout ``folder`` (``None``: not a git checkout)."""
    return git_commit(folder)[0]


def path_kind(path: str) -> str:
    """``dir``, ``file`` (anything else that exists) or ``missing``."""
    return "dir" if os.path.isdir(path) else "file" if os.path.lexists(path) else "missing"


@dataclass(frozen=True)
class SnapshotFiles:
    """The project's files that enter its images, read once, as a code snapshot sends and checks
    them."""

    digest: str  # of names, modes and contents: the digest of the images' project files
    files_from: str  # a temporary ``--files-from`` list of them, removed when this process exits
    sha256sums: str  # ``sha256sum -c`` lines of the regular files (links count in the digest)


def snapshot_files(folder: str, include: tuple[str, ...] = ()) -> SnapshotFiles:
    """The files of ``folder`` that enter its images (``source/``, ``scripts/``, the ``include``
    paths, without env files, keys, logs, caches and what ``.dockerignore`` ignores; see
    ``probes.context_digest``): their digest, a list for rsync and their checksums, from one
    reading."""
    files = context_files(folder, include)
    fd, path = tempfile.mkstemp(prefix="isaac-deploy-files-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{rel}\n" for rel, *_ in files)
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    sums = [
        f"{content}  {rel}\n" for rel, _, content, _ in files if not content.startswith("link:")
    ]
    return SnapshotFiles(files_digest(files), path, "".join(sums))


def context_file_list(folder: str) -> str:
    """A temporary ``--files-from`` list of :func:`snapshot_files` (without include paths);
    removed when this process exits."""
    return snapshot_files(folder).files_from


def sidecar_sha256(path: str) -> str | None:
    """The SHA-256 in ``<path>.sha256`` (written once ``path`` is complete), if there is one."""
    try:
        with open(f"{path}.sha256") as handle:
            return handle.read().split()[0]
    except (OSError, IndexError):
        return None


def file_size(path: str) -> int:
    """The size of the file ``path`` in bytes."""
    return os.path.getsize(path)


def rsync_pull(rsh: str, source: str, destination: str) -> tuple[bool, str]:
    """``rsync -a --partial`` of ``source`` (``host:path``) into ``destination`` over ``rsh``;
    rsync's progress goes to the terminal. Returns success and rsync's error text."""
    os.makedirs(destination, exist_ok=True)
    result = rsync(rsh, "--partial", "--info=progress2,stats1", source, destination, progress=True)
    return result.returncode == 0, result.stderr.strip()


class ProgressLines:
    """A tool's progress on stderr: as it comes on a terminal (rsync redraws its line with
    ``\\r``); elsewhere (a log, a pipe) as plain lines: the redrawn progress line (one with a
    ``%``) at most every ``interval`` seconds, and the last one at the end."""

    def __init__(self, terminal: bool, interval: float = 5.0) -> None:
        self.terminal, self.interval = terminal, interval
        self.pending, self.last, self.said = b"", b"", time.monotonic()

    def write(self, chunk: bytes) -> None:
        if self.terminal:
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            return
        *done, self.pending = re.split(rb"\r|\n", self.pending + chunk)
        progress = [line.strip() for line in done if b"%" in line]
        if progress:
            self.last = progress[-1]
            if time.monotonic() - self.said >= self.interval:
                self._say()

    def close(self) -> None:
        if b"%" in self.pending:
            self.last = self.pending.strip()
        if not self.terminal and self.last:
            self._say()
        self.pending = b""

    def _say(self) -> None:
        sys.stderr.buffer.write(self.last + b"\n")
        sys.stderr.flush()
        self.last, self.said = b"", time.monotonic()


def rsync_push(
    rsh: str, source: str, destination: str, flags: tuple[str, ...]
) -> tuple[bool, int, str]:
    """rsync ``source`` (a file here) to ``destination`` (``host:path``) over ``rsh`` with
    ``flags`` (``--info=...stats1`` among them); rsync's progress goes to the terminal. Returns
    success, the bytes rsync sent (its own count, protocol included) and its error text."""
    argv = ["rsync", *flags, "-e", rsh, source, destination]
    output = bytearray()
    shown = ProgressLines(sys.stderr.isatty())
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors)
        stdout = process.stdout
        for chunk in iter(lambda: stdout.read1(65536) if stdout else b"", b""):
            shown.write(chunk)
            output += chunk
        shown.close()
        code = process.wait()
        errors.seek(0)
        error = errors.read().decode(errors="replace").strip()
    sent = re.search(r"^sent ([\d,]+) bytes", output.decode(errors="replace"), re.M)
    return code == 0, int(sent.group(1).replace(",", "")) if sent else 0, error


def _complete_temp(path: str, text: str, mode: int) -> str:
    """A temp file beside ``path`` holding all of ``text`` with ``mode``: its name."""
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".isaac-deploy.tmp", dir=folder or ".")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def atomic_write(path: str, text: str, mode: int) -> None:
    """Write through a temp file in the same folder, then rename: never half-written."""
    tmp = _complete_temp(path, text, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def create_new(path: str, text: str, mode: int) -> bool:
    """Write ``path`` only if it does not exist, never half-written: a complete temp file is
    hard-linked to the name (which fails when something is there), so a file another program
    made in the meantime is never replaced. True when this call created it."""
    tmp = _complete_temp(path, text, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


class UnsafeFolder(Exception):
    """A folder that should be this user's alone is not (owner, mode or a link)."""


def private_folder(path: str) -> str:
    """``path`` as a folder only this user can enter: created with mode 0700 (parents too),
    refused when it is a symbolic link or belongs to someone else, tightened to 0700 when it
    is ours but open to others."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise UnsafeFolder(f"{path}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeFolder(f"{path} is not a folder but a link or a file: remove it")
    if info.st_uid != os.getuid():
        raise UnsafeFolder(f"{path} belongs to uid {info.st_uid}, not to you: remove it")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def runtime_dir() -> str:
    """This user's private folder for files that live as long as a session (the compose file
    that binds the SSH agent): ``$XDG_RUNTIME_DIR/isaac-deploy`` when the session has one,
    else ``~/.cache/isaac-deploy/run``; never a predictable folder in ``/tmp``."""
    session = os.environ.get("XDG_RUNTIME_DIR", "")
    if session.startswith("/") and os.path.isdir(session):
        return private_folder(os.path.join(private_folder(session), "isaac-deploy"))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return private_folder(os.path.join(cache, "isaac-deploy", "run"))
