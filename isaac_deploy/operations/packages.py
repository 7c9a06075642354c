"""Operations: Debian packages installed with apt's progress shown as it goes."""

from __future__ import annotations

from pyinfra.api import StringCommand, operation
from pyinfra.operations import apt

from isaac_deploy.operations.util import shown


@operation()
def apt_installed(packages: list[str], cache_time: int = 3600):
    """``packages`` installed (with ``apt-get update`` first when the package lists are older
    than ``cache_time`` seconds): pyinfra's ``apt.packages``, whose ``apt-get`` output (what is
    fetched, unpacked and set up) is shown line by line as it runs, on a terminal and in a log
    (plain lines: dpkg gets no pseudo-terminal of apt's), where pyinfra would show a spinner
    only (and nothing in a log) for the minutes it takes.

    + packages: Debian package names; those installed already are left alone
    + cache_time: how old the package lists may be before they are updated

    **Example:**

    .. code:: python

        packages.apt_installed(
            name="Docker engine and Compose packages",
            packages=["docker.io", "docker-compose"],
            _sudo=True,
        )
    """
    # dpkg in no pseudo-terminal of apt's: its "(Reading database ... 5%" steps would be
    # carriage returns in a log or a pipe
    for command in apt.packages._inner(
        packages=packages,
        update=True,
        cache_time=cache_time,
        extra_install_args="-o Dpkg::Use-Pty=0",
    ):
        yield shown(command) if isinstance(command, (str, StringCommand)) else command
