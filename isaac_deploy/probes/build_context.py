"""An image's build context, made where the image is built and streamed into ``docker build -``.

Run by the images operation on the target as ``python3 -c <program> SPEC docker build ... -``
(joined after ``context_digest``), and called by ``isaac-deploy build`` on the workstation with
the same SPEC and argv. SPEC (JSON) names the project (``context``), the extra include paths
(``include``), the digest of the project's selected files the image will be labelled with
(``digest``), the folder they go to in the tar (``prefix``) and isaac-deploy's own files
(``files``: ``[name, mode, base64 text]``: its Dockerfile and helpers, passed inline, so nothing
depends on the control machine's paths).

The tar holds exactly those files (no root ``.dockerignore`` for a builder to apply), then the
project's selection (``context_digest.Selection``) under ``prefix/``: regular files with mode
0644 or 0755, symbolic links as links, their parent folders (0755), everything owned by 0:0.
This program runs ``docker build`` itself and writes the tar into its standard input, so a
failing tar fails the build (pipefail, without a shell that has it): the project's files are
hashed while they are sent, and when they are not those of SPEC's digest (edited meanwhile) or
one cannot be read, ``docker build`` is killed before the context is complete and the exit code
is 1 with one line; no image is then labelled with inputs it was not built from. Otherwise the
exit code is ``docker build``'s, and its progress is on the terminal; elsewhere (a log, a pipe)
a line the builder redraws (the legacy builder's ``Sending build context ...\r``) is written
once, as it last stood.
"""

import base64
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import threading
import time

if "Selection" not in globals():  # imported as a module, not joined into one program
    from isaac_deploy.probes.context_digest import HEAD, Selection, files_digest, is_private_key


class ContextError(Exception):
    """The project's files cannot be sent as the digest says they are."""


class _Hashing:
    """Reads a file for the tar (its first bytes already read), hashing what it hands out."""

    def __init__(self, handle, head):
        self.handle, self.head, self.sha = handle, head, hashlib.sha256()

    def read(self, size):
        data, self.head = self.head[:size], self.head[size:]
        if len(data) < size:
            data += self.handle.read(size - len(data))
        self.sha.update(data)
        return data


def _info(name, kind, mode, size=0, mtime=0, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime, info.linkname = kind, mode, size, int(mtime), link
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_context(out, spec):
    """The build context as a tar into the binary stream ``out``; raises :class:`ContextError`
    when the project's files are not those of ``spec["digest"]`` or one cannot be read (the tar
    is then left unfinished)."""
    now = time.time()
    made = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:

        def parents(name):
            parts = name.split("/")[:-1]
            for end in range(1, len(parts) + 1):
                folder = "/".join(parts[:end])
                if folder not in made:
                    made.add(folder)
                    tar.addfile(_info(folder, tarfile.DIRTYPE, 0o755, mtime=now))

        for name, mode, text in spec["files"]:
            data = base64.b64decode(text)
            parents(name)
            tar.addfile(_info(name, tarfile.REGTYPE, mode, len(data), now), io.BytesIO(data))
        prefix = spec["prefix"].strip("/")
        selection = Selection(spec["context"], spec["include"])
        sent = []
        for rel, st in selection.entries():
            name, path = prefix + "/" + rel, os.path.join(spec["context"], rel)
            try:
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(path)
                    parents(name)
                    tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, mtime=st.st_mtime, link=target))
                    sent.append((rel, "x", "link:" + target, 0))
                elif stat.S_ISREG(st.st_mode):
                    sent += _send_file(tar, parents, name, rel, path)
            except BrokenPipeError:
                raise
            except OSError as error:
                raise ContextError(f"cannot send {rel}: {error.strerror or error}") from None
        if files_digest(sent) != spec["digest"]:
            raise ContextError(
                "the project's files changed while the image was being built (they are not "
                "those its inputs label names): run the build again"
            )


def _send_file(tar, parents, name, rel, path):
    """One regular file into ``tar`` (none for a private key): its :func:`context_files` row."""
    with open(path, "rb") as handle:
        st = os.fstat(handle.fileno())
        head = handle.read(HEAD)
        if is_private_key(head):
            return []
        executable = bool(st.st_mode & 0o111)
        reader = _Hashing(handle, head)
        parents(name)
        mode = 0o755 if executable else 0o644
        tar.addfile(_info(name, tarfile.REGTYPE, mode, st.st_size, st.st_mtime), reader)
        if handle.read(1):  # grew after it was measured: what was sent is not the file
            raise ContextError(f"{rel} changed while the image was being built: run it again")
    return [(rel, "x" if executable else "-", reader.sha.hexdigest(), st.st_size)]


def plain_lines(source, out):
    """Copy ``source`` (bytes) to ``out`` as plain lines: of a line redrawn with ``\\r``, only
    its last state, written when the line ends."""
    pending, redrawn = b"", b""
    for chunk in iter(lambda: source.read1(65536), b""):
        *ended, pending = re.split(rb"(\r|\n)", pending + chunk)
        for index in range(0, len(ended), 2):  # text, then the character that ended it
            text, end = ended[index], ended[index + 1]
            if end == b"\r":
                redrawn = text or redrawn
                continue
            out.write((text or redrawn) + b"\n")
            redrawn = b""
        out.flush()
    if pending or redrawn:
        out.write((pending or redrawn) + b"\n")
        out.flush()


def build(spec, argv):
    """Run ``argv`` (``docker build ... -``) with the build context of ``spec`` on its standard
    input; its exit code, or 1 after one line when the context could not be sent whole."""
    terminal = sys.stdout.isatty()
    try:
        docker = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=None if terminal else subprocess.PIPE
        )
    except OSError as error:
        print(f"isaac-deploy: cannot run {argv[0]}: {error.strerror}", file=sys.stderr)
        return 127
    sys.stdout.flush()
    copier = None
    if not terminal:
        copier = threading.Thread(target=plain_lines, args=(docker.stdout, sys.stdout.buffer))
        copier.start()
    try:
        return _fed(docker, spec)
    finally:
        if copier is not None:
            copier.join()


def _fed(docker, spec):
    """``docker``'s exit code once it has read the build context of ``spec`` (see ``build``)."""
    try:
        write_context(docker.stdin, spec)
        docker.stdin.close()
    except BrokenPipeError:  # docker build stopped reading: its exit code says why
        try:
            docker.stdin.close()
        except OSError:
            pass
    except ContextError as error:
        docker.kill()  # before the context ends: the builder never gets a complete one
        docker.wait()
        print(f"isaac-deploy: {error}", file=sys.stderr, flush=True)
        return 1
    return docker.wait()


if __name__ == "__main__":
    sys.exit(build(json.loads(sys.argv[1]), sys.argv[2:]))
