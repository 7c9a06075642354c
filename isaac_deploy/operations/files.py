"""Operations for files the user may edit (kept when edited) and for secrets (never shown)."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Generator, Iterator
from io import StringIO

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.command import PyinfraCommand
from pyinfra.api.hiddenvalue import HiddenValue
from pyinfra.operations.util.files import generate_color_diff

from isaac_deploy.facts.files import FileSha256WithMode, FileWithMode
from isaac_deploy.render.managed import decide


def staged_path(path: str) -> str:
    """The temp file beside ``path`` that its new content is written to first."""
    return posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.isaac-deploy.tmp")


def _staged(path: str, content: str) -> Iterator[PyinfraCommand]:
    """Write ``content`` to ``staged_path(path)``, a 0600 file from its first byte."""
    tmp = staged_path(path)
    yield StringCommand(
        "rm", "-f", QuoteString(tmp), "&& ( umask 077 && : >", QuoteString(tmp), ")"
    )
    yield FileUploadCommand(StringIO(content), tmp, remote_temp_filename=tmp)


def staged_installed(path: str, mode: int) -> StringCommand:
    """Move the staged content of ``path`` into place, with ``mode``."""
    tmp = staged_path(path)
    return StringCommand(
        "chmod", f"{mode:o}", QuoteString(tmp), "&& mv -f", QuoteString(tmp), QuoteString(path)
    )


def staged_dropped(path: str) -> StringCommand:
    """Remove the staged content of ``path`` (``path`` itself stays as it was)."""
    return StringCommand("rm -f", QuoteString(staged_path(path)))


def _atomic_write(path: str, content: str, mode: int) -> Iterator[PyinfraCommand]:
    """Write via a 0600 temp file in the same directory, then chmod and rename into place."""
    yield from _staged(path, content)
    yield staged_installed(path, mode)


def _diff(old: list[str], new: str) -> list[str]:
    return list(generate_color_diff([f"{line}\n" for line in old], new.splitlines(keepends=True)))


@operation()
def managed_file(
    path: str,
    content: str,
    mode: int = 0o600,
    overwrite_edited: bool = False,
    comment: str = "#",
):
    """A rendered file the user may edit: written unless edited by hand since the deploy wrote it.

    The file ends with a checksum line over the rest; a file whose checksum no longer matches
    was edited: it is kept and the diff of what would be written is shown. Writes go through a
    0600 temp file renamed into place (never half-written).

    + path: absolute path on the target
    + content: rendered text; a checksum line is appended to recognise later hand edits
    + mode: file mode (also fixed on an edited file)
    + overwrite_edited: replace an edited file anyway (a copy is kept as ``<path>.edited``)
    + comment: what starts a comment line in the file (``//`` for JSON with comments)

    **Example:**

    .. code:: python

        files.managed_file(
            name="Env file .env.ext_template-dev",
            path="/home/alice/ext/docker/.env.ext_template-dev",
            content=env_file_text(TEMPLATES, config, "ext-dev", None),
            mode=0o600,
        )
    """
    current = host.get_fact(FileWithMode, path=path)
    lines = current.lines if current else None
    decision = decide(lines, content, overwrite_edited, comment)
    if decision.action == "up-to-date":
        if current.mode != mode:
            yield StringCommand("chmod", f"{mode:o}", QuoteString(path))
        else:
            host.noop(f"{path} is up to date")
        return

    if decision.action == "keep-edited":
        logger.warning(
            f"{host.print_prefix}kept {path}: it was edited by hand. The deploy would write:\n"
            + "\n".join(f"  {line}" for line in _diff(lines or [], decision.desired))
            + "\n  Merge the changes yourself, or delete the file (or set "
            "isaac_env_overwrite_edited=True) to let the deploy rewrite it."
        )
        if current and current.mode != mode:
            yield StringCommand("chmod", f"{mode:o}", QuoteString(path))
        return

    if state.config.DIFF:
        host.log(f"Will {'create' if lines is None else 'modify'} {path}", logger.info)
        for line in _diff(lines or [], decision.desired):
            logger.info(f"  {line}")
    if decision.action == "replace-edited":
        yield StringCommand("cp", "-p", QuoteString(path), QuoteString(f"{path}.edited"))
    yield from _atomic_write(path, decision.desired, mode)


@operation()
def secret_file(path: str, secret: HiddenValue, mode: int = 0o600):
    """A secret in a file of its own: ``path`` holds ``secret`` (mode 0600, folder 0700).

    The value never reaches the output, a command line or a diff: only its SHA-256 is compared
    with the file's, and it travels as an upload.

    + path: absolute path on the target
    + secret: the value, wrapped in ``HiddenValue`` so it is masked wherever it is printed
    + mode: the file's mode

    **Example:**

    .. code:: python

        files.secret_file(
            name="W&B API key (secret file, not shown)",
            path="/home/alice/.config/isaac-deploy/ext_template/wandb_api_key",
            secret=HiddenValue(os.environ["WANDB_API_KEY"]),
        )
    """
    value = secret_text(secret)
    if (yield from secret_kept(path, value, mode)):
        return
    yield from secret_staged(path, value)
    yield staged_installed(path, mode)


def secret_text(secret: HiddenValue | str) -> str:
    """The secret's value as a file holds it: one trailing newline."""
    value = secret.unmask() if isinstance(secret, HiddenValue) else str(secret)
    return value.rstrip("\n") + "\n"


def secret_kept(path: str, value: str, mode: int = 0o600) -> Generator[StringCommand, None, bool]:
    """Whether ``path`` already holds ``value`` (only SHA-256 digests are compared); yields the
    ``chmod`` of such a file whose mode drifted."""
    current = host.get_fact(FileSha256WithMode, path=path)
    if current is None or current.sha256 != hashlib.sha256(value.encode()).hexdigest():
        return False
    if current.mode == mode:
        host.noop(f"{path} is up to date (secret not shown)")
    else:
        yield StringCommand("chmod", f"{mode:o}", QuoteString(path))
    return True


def secret_staged(path: str, value: str) -> Iterator[PyinfraCommand]:
    """A secret on its way to ``path``: in ``staged_path(path)`` (0600, folder 0700) until
    ``staged_installed`` moves it into place, once it worked, or ``staged_dropped`` removes it."""
    yield StringCommand("mkdir -p -m 700", QuoteString(posixpath.dirname(path)))
    yield from _staged(path, value)
