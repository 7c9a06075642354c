"""What a folder synced to a cluster holds: the files never synced, and a digest of the names,
sizes, modes and times of the rest (what rsync's quick check looks at)."""

import hashlib
import os
import posixpath
import stat

# never synced: version control, caches, environments, outputs
EXCLUDES = (
    ".git/",
    "__pycache__/",
    "*.pyc",
    ".venv/",
    "venv/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    "*.egg-info/",
    "logs/",
    "outputs/",
    "wandb/",
)


MARKER = ".isaac-deploy-mirror"  # in a synced folder: the digest of what was sent


def excluded(rel: str, is_dir: bool) -> bool:
    """Whether ``rel`` (a path below the synced folder) matches :data:`EXCLUDES`."""
    base = posixpath.basename(rel)
    for pattern in EXCLUDES:
        if pattern.endswith("/"):
            if is_dir and (
                base == pattern[:-1] or (pattern.startswith("*") and base.endswith(pattern[1:-1]))
            ):
                return True
        elif pattern.startswith("*") and base.endswith(pattern[1:]):
            return True
    return False


def tree_digest(folder: str) -> str:
    """A digest of the names, sizes, modes and modification times below ``folder`` (what
    rsync's quick check looks at), excludes applied: equal digests, nothing to send."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        rel_root = "" if rel_root == "." else rel_root
        dirs[:] = sorted(d for d in dirs if not excluded(posixpath.join(rel_root, d), True))
        for name in sorted(files):
            rel = posixpath.join(rel_root, name)
            if excluded(rel, False):
                continue
            info = os.lstat(os.path.join(root, name))
            kind = "l" if stat.S_ISLNK(info.st_mode) else "f"
            digest.update(
                f"{kind}\0{rel}\0{info.st_size}\0{info.st_mode:o}\0"
                f"{info.st_mtime_ns // 10**9}\n".encode()
            )
    return "sha256:" + digest.hexdigest()
