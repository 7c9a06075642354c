"""Operations of the lab PCs: the members in a group and a member's checkout of the project
(made once, then theirs). Their base images are pulled by ``operations.pull``."""

from __future__ import annotations

import posixpath

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from isaac_deploy.facts.files import PathKinds
from isaac_deploy.operations.util import fail, quoted_command


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
