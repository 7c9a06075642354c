"""What of an extension project enters its images and its code snapshots, and the digest of it.

Stdlib only: the ``ImageBuildInputs`` fact runs it on the target as part of one ``python3 -c``
program (see ``build_inputs``), the build context's stream (``build_context``) on the target too,
and the cluster roll-out on the workstation (``local``). One selection serves all three, so an
image, its inputs digest and a code snapshot always hold the same files:

- the files under the include roots: ``source/``, ``scripts/`` and the project-relative paths
  the user adds (``isaac_image_paths``; ``.`` is the whole project);
- minus the built-in deny-list :data:`DENY` (rendered env files, the compose override,
  ``.mount.config``, keys, isaac-deploy's own folder, logs, ``.git``, editor folders, caches,
  build outputs), whatever the project says;
- minus what the project's own ``.dockerignore`` ignores (an extra deny, as Docker applies it:
  a deny-list like the Isaac Lab template's, or an allow-list);
- minus private keys found by their first line (``-----BEGIN ... PRIVATE KEY-----``), whatever
  their name.

:func:`context_files` lists them (a FIFO or socket is left out), :func:`context_digest` gives
``{"digest": "sha256:...", "jobs_digest": ..., "files": N, "bytes": N, "missing": [...]}``.
Ignore patterns follow Docker's rules: ``#`` comments, ``!`` exceptions (last match wins),
``*``, ``?``, ``[...]`` and ``**`` (any number of directories), a leading ``/`` ignored, and a
match on a parent directory counting for everything below it.
"""

import hashlib
import os
import posixpath
import re
import stat

__all__ = [
    "Pattern",
    "DockerIgnore",
    "Selection",
    "context_digest",
    "context_files",
    "files_digest",
    "bound_by_jobs",
    "is_private_key",
]

INCLUDE = ("source", "scripts")
"""What enters an image and a code snapshot whatever the project says (with ``.dockerignore``
and the deny-list applied): the extension's package and its scripts."""
DENY = (
    "**/.env*",  # rendered env files, docker/cluster/.env.cluster (a W&B key in clear), .envrc
    "**/docker-compose.override.yaml",
    "**/.mount.config",
    "**/*.key",
    "**/*.pem",
    "**/id_rsa",
    "**/id_dsa",
    "**/id_ecdsa",
    "**/id_ecdsa_sk",
    "**/id_ed25519",
    "**/id_ed25519_sk",
    "**/.isaac-deploy",
    "**/.devcontainer/isaac-deploy",  # VS Code's dev container of this host's user
    "**/logs",
    "**/.git",
    "**/.vscode",
    "**/.idea",
    "**/__pycache__",
    "**/*.pyc",
    "**/.pytest_cache",
    "**/.ruff_cache",
    "**/.mypy_cache",
    "**/*.egg-info",
    "**/build",
    "**/dist",
)
"""Never in an image or a snapshot, whatever the project's ``.dockerignore`` or include paths."""
HEAD = 4096  # the first bytes of each file: enough for a private key's first line

# A cluster job binds its code snapshot (these very files) over the extension's folder in the
# image, so edits there reach the job without a new image. Packaging metadata still matters:
# the image's install of the extension (and its dependencies) was made from it.
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


def _normalized(path):
    """A project-relative path as the selection names it (``""``: the whole project); one that
    leaves the project is refused here too (the inventory's check comes first)."""
    norm = posixpath.normpath(str(path)).lstrip("/")
    if norm == ".." or norm.startswith("../"):
        raise ValueError("include path outside the project: " + str(path))
    return "" if norm == "." else norm


def include_roots(extra=()):
    """:data:`INCLUDE` and the ``extra`` project-relative paths, normalized, without one that
    another covers."""
    roots = {_normalized(path) for path in (*INCLUDE, *extra)}
    return sorted(r for r in roots if not any(_covers(o, r) for o in roots))


def _covers(outer, inner):
    return outer != inner and (outer == "" or inner.startswith(outer + "/"))


class Selection:
    """The files of ``context`` that enter an image and a code snapshot (see the module)."""

    def __init__(self, context, include=()):
        self.context = context
        self.roots = include_roots(include)
        self.extra = {_normalized(path) for path in include}
        self.deny = DockerIgnore(DENY)
        self.project = DockerIgnore.from_file(os.path.join(context, ".dockerignore"))
        self.missing = []  # include paths of the user's the project lacks (after entries())

    def excluded(self, rel):
        return self.deny.ignored(rel) or self.project.ignored(rel)

    def prunable(self, rel):
        return self.deny.ignored(rel) or self.project.can_prune(rel)

    def entries(self):
        """``(relative_path, lstat)`` of every selected entry but directories, sorted by path
        (private keys not yet left out: that needs their first bytes)."""
        found, self.missing = {}, []
        for root in self.roots:
            try:
                st = os.lstat(os.path.join(self.context, root)) if root else None
            except FileNotFoundError:
                if root in self.extra:
                    self.missing.append(root)
                continue
            if st is None or stat.S_ISDIR(st.st_mode):
                if not (root and self.prunable(root)):
                    found.update(self._walk(root))
            elif not self.excluded(root):
                found[root] = st
        return sorted(found.items())

    def _walk(self, top):
        stack = [top]
        while stack:
            rel_dir = stack.pop()
            abs_dir = os.path.join(self.context, rel_dir) if rel_dir else self.context
            try:
                names = os.listdir(abs_dir)
            except OSError:
                continue
            for name in names:
                rel = rel_dir + "/" + name if rel_dir else name
                st = os.lstat(os.path.join(self.context, rel))
                if stat.S_ISDIR(st.st_mode):
                    if not self.prunable(rel):
                        stack.append(rel)
                elif not self.excluded(rel):
                    yield rel, st


def is_private_key(head):
    """Whether a file starting with ``head`` is a private key (PEM, OpenSSH, PuTTY)."""
    first = head.lstrip()[:200].split(b"\n", 1)[0]
    pem = first.startswith(b"-----BEGIN") and b"PRIVATE KEY-----" in first
    return pem or first.startswith(b"PuTTY-User-Key-File-")


def bound_by_jobs(rel):
    """Whether a cluster job replaces this file by its snapshot's copy (every selected file
    but packaging metadata), so that the image's copy does not matter to the job."""
    name = rel.rsplit("/", 1)[-1]
    return not (name in PACKAGING or (name.startswith("requirements") and name.endswith(".txt")))


def context_files(context, include=()):
    """``(path, mode, content, size)`` of each selected file, sorted by path: ``mode`` is ``x``
    (executable) or ``-``, ``content`` the file's SHA-256, or ``link:<target>`` for a symbolic
    link (size 0). Raises ``OSError`` for a file that cannot be read."""
    return selected_files(Selection(context, include))


def selected_files(selection):
    """:func:`context_files` of ``selection``."""
    files = []
    for rel, st in selection.entries():
        path = os.path.join(selection.context, rel)
        if stat.S_ISLNK(st.st_mode):
            files.append((rel, "x", "link:" + os.readlink(path), 0))
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as handle:
                head = handle.read(HEAD)
                if is_private_key(head):
                    continue
                digest = hashlib.sha256(head)
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            files.append((rel, "x" if st.st_mode & 0o111 else "-", digest.hexdigest(), st.st_size))
    return files


def files_digest(files):
    """``sha256:...`` of :func:`context_files`' names, modes and contents."""
    total = hashlib.sha256()
    for rel, mode, content, _ in files:
        total.update(f"{rel}\0{mode}\0{content}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + total.hexdigest()


def context_digest(context, include=()):
    selection = Selection(context, include)
    files = selected_files(selection)
    return {
        "digest": files_digest(files),
        "jobs_digest": files_digest([f for f in files if not bound_by_jobs(f[0])]),
        "files": len(files),
        "bytes": sum(size for _, _, _, size in files),
        "missing": selection.missing,
    }
