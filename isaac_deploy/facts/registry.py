"""Facts: the local image and what the registry holds under each of its tags, in one command;
whether the registry accepts a set of credentials."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pyinfra.api import FactBase, QuoteString, StringCommand

from isaac_deploy.probes import PYTHON, program


def _probe(args: dict) -> StringCommand:
    """The registry probe (``probes/registry_state.py``) run with ``args``."""
    source = program("dockerapi", "registry_state")
    return StringCommand(PYTHON, "$py", "-c", QuoteString(source), QuoteString(json.dumps(args)))


@dataclass(frozen=True)
class TagState:
    tag: str
    digest: str | None = None  # the image config digest (= the local image ID when current)
    missing: bool = False
    error: str | None = None


@dataclass(frozen=True)
class RegistryImageState:
    local_id: str | None
    local_error: str | None
    tags: tuple[TagState, ...] = field(default_factory=tuple)
    commit: str | None = None


class RegistryImage(FactBase[RegistryImageState]):
    """``local`` image vs ``repository``:<tag> for the commit, ``version`` and ``latest`` tags.

    + flags: skopeo flags for the registry (auth file, cert dir, tls)
    + folder: the project, for its git commit
    """

    def command(
        self, local: str, repository: str, version: str, folder: str, flags: tuple[str, ...] = ()
    ) -> StringCommand:
        return _probe(
            {
                "local": local,
                "repository": repository,
                "version": version,
                "folder": folder,
                "flags": list(flags),
            }
        )

    @staticmethod
    def default() -> RegistryImageState:
        return RegistryImageState(None, "could not inspect (is python3 installed?)")

    def process(self, output: list[str]) -> RegistryImageState:
        return parse_registry_state("\n".join(output))


def parse_registry_state(output: str) -> RegistryImageState:
    try:
        data = json.loads(output)
    except ValueError:
        return RegistryImageState(None, f"could not inspect: {output[:200]}")
    local = data.get("local") or {}
    error = None if local.get("id") else ("missing" if local.get("missing") else local.get("error"))
    tags = tuple(
        TagState(tag, state.get("digest"), bool(state.get("missing")), state.get("error"))
        for tag, state in data.get("tags") or []
    )
    return RegistryImageState(local.get("id"), error, tags, data.get("commit"))


class RegistryLogin(FactBase["str | None"]):
    """``None`` when the registry accepts the credentials in ``flags`` (an auth file) for
    ``reference`` (the image itself may be missing), else why not (skopeo's error).

    + reference: ``address/repository:tag``
    + flags: skopeo flags for the registry (auth file, cert dir, tls)
    """

    def command(self, reference: str, flags: tuple[str, ...] = ()) -> StringCommand:
        return _probe({"login": reference, "flags": list(flags)})

    @staticmethod
    def default() -> str:
        return "could not ask the registry (is python3 installed?)"

    def process(self, output: list[str]) -> str | None:
        try:
            return json.loads("\n".join(output)).get("error")
        except (ValueError, AttributeError):
            return f"could not ask the registry: {' '.join(output)[:200]}"


def pull_probe(args: dict) -> StringCommand:
    """The pull probe (``probes/image_pull.py``) run with ``args``; no secret is in them."""
    source = program("dockerapi", "image_pull")
    return StringCommand(PYTHON, "$py", "-c", QuoteString(source), QuoteString(json.dumps(args)))


class PullableImages(FactBase["dict[str, str | None]"]):
    """For each image, ``None`` when its registry would serve it to the Docker engine with the
    login given (credentials, TLS, the tag), else the engine's error; nothing is pulled.

    + images: image references, ``registry/repository:tag``
    + logins: ``{address: login}`` as ``probes/image_pull.py`` takes them (a variable's or a
      file's name, never a password)
    """

    def command(self, images: tuple[str, ...], logins: dict | None = None) -> StringCommand:
        return pull_probe({"images": list(images), "logins": logins or {}, "check": True})

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, str | None]:
        try:
            answers = json.loads("\n".join(output))
        except ValueError:
            answers = None
        if not isinstance(answers, dict):
            return {"": f"could not ask the Docker engine: {' '.join(output)[:200]}"}
        return answers
