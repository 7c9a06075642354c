"""Operations of the lab PCs: the members in a group, a member's checkout of the project (made
once, then theirs) and images pulled once per PC, with a registry login that is never kept."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.hiddenvalue import HiddenValue

from isaac_deploy.facts.files import PathKinds
from isaac_deploy.facts.toolkit import Toolkit
from isaac_deploy.model.registries import Registry, auth_file_content
from isaac_deploy.operations.files import secret_staged, staged_installed
from isaac_deploy.operations.util import fail, quoted_command

PULL_CONFIG = "/run/isaac-deploy/pull/config.json"
"""The Docker config the pulls read their registry logins from: root's (``/run`` is writable by
root only, so nobody can prepare the folder), removed after the pulls."""


@operation()
def group_members(group: str, users: list[str], members: tuple[str, ...] | None):
    """``users`` in the supplementary group ``group`` (run as root: ``_sudo``).

    The group is made when missing (``groupadd -f``: a package may make it first); each user not
    in it yet is added with ``gpasswd -a``, which edits the local group and so works for
    accounts of a directory service too (never ``useradd``/``usermod``, which would make or need a
    local account). They have it from their next login.

    + group: the group, e.g. ``docker``
    + users: user names with an account on the host
    + members: the group's members as read before (``/etc/group``; ``model.fleet.group_members``),
      ``None`` when the group was not there

    **Example:**

    .. code:: python

        fleet.group_members(
            name="Lab members in the docker group",
            group="docker",
            users=["alice", "bob"],
            members=group_members(toolkit.files["/etc/group"], "docker"),
            _sudo=True,
        )
    """
    if members is None:
        yield quoted_command(["groupadd", "-f", group])
    missing = [user for user in users if user not in (members or ())]
    if not missing:
        host.noop(f"{', '.join(users)} in the {group} group")
        return
    for user in missing:
        yield quoted_command(["gpasswd", "--add", user, group])


def clone_path(dest: str) -> str:
    """Where a checkout of ``dest`` is cloned before it is renamed into place."""
    return posixpath.join(
        posixpath.dirname(dest), f".{posixpath.basename(dest)}.isaac-deploy-clone"
    )


@operation()
def project_cloned(src: str, dest: str, branch: str | None = None):
    """A git checkout of ``src`` in ``dest``, made once; after that it is its owner's work.

    Run as the member who owns it (``_sudo_user``), so every file is theirs. A missing ``dest``
    is cloned next to it (a clone an earlier run left half-done is removed first) and renamed
    into place, so a folder that carries the name is a whole checkout. An existing checkout is
    left exactly as it is: never fetched, pulled, reset or switched to another branch. Anything
    else at ``dest`` fails with one line and is not touched. git never prompts (a remote that
    asks for credentials fails).

    + src: the URL of the lab's git remote
    + dest: the checkout, absolute (in the member's home)
    + branch: the branch to check out (default: the remote's default branch)

    **Example:**

    .. code:: python

        fleet.project_cloned(
            name="Member's checkout of the project",
            src="https://git.lab.example.org/robotics/ext_template.git",
            dest="/home/alice/ext_template",
            branch="main",
            _sudo=True,
            _sudo_user="alice",
        )
    """
    git_dir = posixpath.join(dest, ".git")
    kinds = host.get_fact(PathKinds, paths=[dest, git_dir])
    if kinds.get(git_dir, "missing") != "missing":
        host.noop(f"{dest} is a checkout (left as it is)")
        return
    if kinds.get(dest, "missing") != "missing":
        yield fail(
            f"{dest} exists but is no git checkout: move it away (it is left as it is), then "
            "run the deploy again"
        )
        return
    partial = clone_path(dest)
    options = ["--branch", branch] if branch else []
    yield StringCommand(
        "rm -rf",
        QuoteString(partial),
        "&& mkdir -p",
        QuoteString(posixpath.dirname(dest)),
        "&& GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND='ssh -o BatchMode=yes'",
        quoted_command(["git", "clone", "--quiet", *options, src, partial]),
        "&& mv -T",
        QuoteString(partial),
        QuoteString(dest),
    )


def registry_of(ref: str, registries: Sequence[Registry]) -> Registry | None:
    """The registry of ``registries`` that serves the image ``ref`` (by its address)."""
    return next((r for r in registries if ref.startswith(f"{r.address}/")), None)


def login_config(registries: Sequence[Registry], passwords: Mapping[str, HiddenValue]) -> str:
    """A Docker config with the logins of ``registries`` (``passwords`` by registry name), as
    ``docker login`` would store them."""
    auths = {}
    for registry in registries:
        auths.update(
            json.loads(auth_file_content(registry, passwords[registry.name].unmask()))["auths"]
        )
    return json.dumps({"auths": auths})


@operation()
def images_pulled(
    images: list[str],
    toolkit: Toolkit,
    registries: Sequence[Registry] = (),
    passwords: Mapping[str, HiddenValue] | None = None,
):
    """The images in the Docker engine, each pulled once (run as root: ``_sudo``).

    Only the images the engine lacks (by the toolkit fact gathered before) are pulled. The
    logins of the registries they come from (those of ``registries`` with a password) go to a
    Docker config of these pulls only, a 0600 file in a 0700 folder of root's under ``/run``,
    which is removed after the pulls whether they worked or not: the password never reaches a
    command line, the output or a file that stays. The pull's exit code stays the operation's.

    + images: image references, ``registry/repository:tag``
    + toolkit: the ``WorkstationToolkit`` fact, gathered before (the images the engine has)
    + registries: the registries they may come from (``isaac_registries``)
    + passwords: the passwords of the registries with a login, by registry name, each wrapped in
      ``HiddenValue``

    **Example:**

    .. code:: python

        fleet.images_pulled(
            name="Base images, pulled once for every member",
            images=["registry.lab.example.org:5000/isaac/isaac-lab-ros2:4.5.0"],
            toolkit=host.get_fact(WorkstationToolkit),
            registries=[lab],  # the model.registries.Registry named "lab"
            passwords={"lab": HiddenValue(os.environ["LAB_REGISTRY_TOKEN"])},
            _sudo=True,
        )
    """
    missing = [ref for ref in images if not toolkit.has_image(ref)]
    if not missing:
        host.noop(f"{', '.join(images)} present")
        return
    passwords = passwords or {}
    logins = []
    for ref in missing:
        registry = registry_of(ref, registries)
        if registry is not None and registry.name in passwords and registry not in logins:
            logins.append(registry)
    pulls = [quoted_command(["docker", "pull", "--quiet", ref]) for ref in missing]
    if not logins:
        yield StringCommand(*_joined(pulls, "&&"))
        return
    config_dir = posixpath.dirname(PULL_CONFIG)
    yield from secret_staged(PULL_CONFIG, login_config(logins, passwords))
    yield staged_installed(PULL_CONFIG, 0o600)
    with_config = [
        quoted_command(["docker", "--config", config_dir, "pull", "--quiet", ref])
        for ref in missing
    ]
    yield StringCommand(
        "(",
        *_joined(with_config, "&&"),
        "); code=$?; rm -rf",
        QuoteString(config_dir),
        "; exit $code",
    )


def _joined(commands: list[StringCommand], separator: str) -> list[StringCommand | str]:
    joined: list[StringCommand | str] = []
    for command in commands:
        joined += [separator, command] if joined else [command]
    return joined
