"""Digest of a Docker build context as the builder sees it, honouring ``.dockerignore``.

Stdlib only: the ``ImageBuildInputs`` fact runs it on the target as part of one
``python3 -c`` program (see ``build_inputs``); :func:`context_digest` gives
``{"digest": "sha256:...", "files": N, "bytes": N}`` (of the files :func:`context_files` lists,
which are also what a code snapshot sends to a cluster) and :func:`dockerfile_digest` the digest
of a Dockerfile's text, which the context need not hold (``.dockerignore`` may leave it out, as
this project's allow-list does). Patterns follow
Docker's rules: ``#`` comments, ``!`` exceptions (last match wins), ``*``, ``?``, ``[...]`` and
``**`` (any number of directories), a leading ``/`` ignored, and a match on a parent directory
counting for everything below it.
"""

import hashlib
import os
import re
import stat

__all__ = [
    "Pattern",
    "DockerIgnore",
    "context_digest",
    "context_files",
    "dockerfile_digest",
    "file_sha256",
    "files_digest",
    "bound_by_jobs",
]

# A cluster job binds its code snapshot (the context's files) over the extension's folder in the
# image, where isaac-deploy's Dockerfiles copy source/ and scripts/: edits there reach the job
# without a new image. Packaging metadata under them still matters (the image's install of the
# extension was made from it), as does everything else the image copies elsewhere.
CODE_FOLDERS = ("source/", "scripts/")
PACKAGING = ("setup.py", "setup.cfg", "pyproject.toml", "extension.toml", "MANIFEST.in")


def _translate(pattern):
    """Turn one Docker ignore pattern into an anchored regular expression."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern[i : i + 2] == "**":
                i += 2
                if pattern[i : i + 1] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("^"):
                    body = "!" + body[1:]
                body = body.replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


class Pattern:
    def __init__(self, text):
        self.exclusion = text.startswith("!")
        text = text[1:].strip() if self.exclusion else text
        text = os.path.normpath(text).replace(os.sep, "/").lstrip("/")
        self.text = "" if text == "." else text
        self.regex = _translate(self.text)

    def matches(self, path):
        """True when ``path`` or one of its parent directories matches."""
        parts = path.split("/")
        return any(self.regex.match("/".join(parts[:k])) for k in range(len(parts), 0, -1))


class DockerIgnore:
    def __init__(self, lines):
        self.patterns = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                pattern = Pattern(line)
                if pattern.text:
                    self.patterns.append(pattern)
        # literal leading part of each exception: only directories on its way can hold re-included
        # files; a directory off every such way can be skipped when it is ignored
        self.exception_prefixes = [
            re.split(r"[*?\[\\]", p.text, maxsplit=1)[0] for p in self.patterns if p.exclusion
        ]

    @classmethod
    def from_file(cls, path):
        try:
            with open(path, encoding="utf-8") as handle:
                return cls(handle.read().splitlines())
        except FileNotFoundError:
            return cls([])

    def ignored(self, path):
        result = False
        for pattern in self.patterns:
            if pattern.matches(path):
                result = not pattern.exclusion
        return result

    def can_prune(self, directory):
        """True when ``directory`` is ignored and no exception can re-include anything in it."""
        if not self.ignored(directory):
            return False
        below = directory + "/"
        for prefix in self.exception_prefixes:
            if not prefix or prefix.startswith(below) or below.startswith(prefix):
                return False
        return True


def walk(context, ignore):
    """Yield ``(relative_path, lstat)`` of every non-ignored entry, in sorted order."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(context, rel_dir) if rel_dir else context
        try:
            names = sorted(os.listdir(abs_dir), reverse=True)
        except OSError:
            continue
        for name in names:
            rel = rel_dir + "/" + name if rel_dir else name
            st = os.lstat(os.path.join(context, rel))
            if stat.S_ISDIR(st.st_mode):
                if not ignore.can_prune(rel):
                    stack.append(rel)
                continue
            if not ignore.ignored(rel):
                yield rel, st


def file_sha256(path):
    """Hex SHA-256 of the file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dockerfile_digest(path):
    """``{"digest": "sha256:..."}`` of the Dockerfile's text, or ``{"error": "..."}`` in one line
    when it cannot be read: the deploy's probe and ``isaac-deploy build`` both use it, so they
    agree on an image's inputs."""
    try:
        return {"digest": "sha256:" + file_sha256(path)}
    except FileNotFoundError:
        return {"error": "no such Dockerfile: " + path}
    except OSError as error:
        return {"error": f"cannot read Dockerfile {path}: {error.strerror or error}"}


def bound_by_jobs(rel):
    """Whether a cluster job replaces this context file by its snapshot's copy (code), so that
    the image's copy does not matter to the job."""
    name = rel.rsplit("/", 1)[-1]
    packaging = name in PACKAGING or (name.startswith("requirements") and name.endswith(".txt"))
    return rel.startswith(CODE_FOLDERS) and not packaging


def context_files(context, dockerignore=None):
    """``(path, mode, content, size)`` of each file of the build context, sorted by path: ``mode``
    is ``x`` (executable) or ``-``, ``content`` the file's SHA-256, or ``link:<target>`` for a
    symbolic link (size 0); other kinds of files (FIFOs, sockets) are left out."""
    ignore = DockerIgnore.from_file(dockerignore or os.path.join(context, ".dockerignore"))
    files = []
    for rel, st in sorted(walk(context, ignore)):
        path = os.path.join(context, rel)
        if stat.S_ISLNK(st.st_mode):
            content, size = "link:" + os.readlink(path), 0
        elif stat.S_ISREG(st.st_mode):
            content, size = file_sha256(path), st.st_size
        else:
            continue
        files.append((rel, "x" if st.st_mode & 0o111 else "-", content, size))
    return files


def files_digest(files):
    """``sha256:...`` of :func:`context_files`' names, modes and contents."""
    total = hashlib.sha256()
    for rel, mode, content, _ in files:
        total.update(f"{rel}\0{mode}\0{content}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + total.hexdigest()


def context_digest(context, dockerignore=None):
    files = context_files(context, dockerignore)
    return {
        "digest": files_digest(files),
        "jobs_digest": files_digest([f for f in files if not bound_by_jobs(f[0])]),
        "files": len(files),
        "bytes": sum(size for _, _, _, size in files),
    }
