"""Operations: images pulled into the Docker engine once, with their progress shown and a
registry login that never reaches a command line, the output or a file that stays.

One way to log in and pull for the workstation and the lab PCs: the ``image_pull`` probe asks
the engine's API, sending each registry's login in the request's ``X-Registry-Auth`` header.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.hiddenvalue import HiddenValue

from isaac_deploy.facts.registry import pull_probe
from isaac_deploy.facts.toolkit import Toolkit
from isaac_deploy.model.registries import Registry, auth_file_content
from isaac_deploy.operations.files import secret_staged, staged_installed
from isaac_deploy.operations.util import shown

ROOT_CONFIG_DIR = "/run/isaac-deploy/pull"
"""Where root's pulls read logins staged for them (``/run`` is writable by root only, so nobody
can prepare the folder); removed after the pulls."""
PROGRESS_SECONDS = 5
"""At most one progress line per pull this often: a log stays short, a terminal stays alive."""


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


def login_reference(registry: Registry) -> dict[str, str]:
    """The login of ``registry`` as the probe finds it on the machine it runs on: the variable's
    and the file's names, never the password."""
    login = {"username": registry.username or ""}
    if registry.password_env:
        login["env"] = registry.password_env
    if registry.password_file:
        login["file"] = registry.password_file
    return login


@operation()
def images_pulled(
    images: list[str],
    toolkit: Toolkit,
    registries: Sequence[Registry] = (),
    passwords: Mapping[str, HiddenValue] | None = None,
    config_dir: str = ROOT_CONFIG_DIR,
    local_logins: bool = False,
):
    """The images in the Docker engine, each pulled once, its progress shown as it goes.

    Only the images the engine lacks (by the toolkit fact gathered before) are pulled, each
    with a line every few seconds (layers, bytes) and one when it is there. A registry's login
    reaches the engine in the pull request itself, never on a command line:

    - ``local_logins``: the deploy runs on this machine, so the probe reads the password where
      the registry's settings say (``password_env`` in its environment, else ``password_file``);
    - else the logins of ``passwords`` go to a Docker config of these pulls only, a 0600 file in
      ``config_dir`` (made 0700), removed after the pulls whether they worked or not.

    A failed pull is one ``error:`` line (the engine's reason) and fails the operation.

    + images: image references, ``registry/repository:tag``
    + toolkit: the ``WorkstationToolkit`` fact, gathered before (the images the engine has)
    + registries: the registries they may come from (``isaac_registries``, NGC's)
    + passwords: the passwords of the registries with a login, by registry name, each wrapped in
      ``HiddenValue`` (not with ``local_logins``)
    + config_dir: the private folder of the staged logins (root's: under ``/run``)
    + local_logins: read the logins on the target itself (the deploy runs there)

    **Example:**

    .. code:: python

        pull.images_pulled(
            name="Base images, pulled once for every member",
            images=["registry.lab.example.org:5000/isaac/isaac-lab:2.1.0"],
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
    sources: list[Registry] = []
    for ref in missing:
        registry = registry_of(ref, registries)
        if registry is not None and registry.has_login and registry not in sources:
            sources.append(registry)
    spec: dict = {"images": missing, "interval": PROGRESS_SECONDS}
    if local_logins:
        spec["logins"] = {r.address: login_reference(r) for r in sources}
        yield shown(pull_probe(spec))
        return
    staged = [r for r in sources if r.name in passwords]
    if not staged:
        yield shown(pull_probe(spec))
        return
    config = posixpath.join(config_dir, "config.json")
    yield from secret_staged(config, login_config(staged, passwords))
    yield staged_installed(config, 0o600)
    spec["logins"] = {r.address: {"config": config} for r in staged}
    yield shown(
        StringCommand(
            "(", pull_probe(spec), "); code=$?; rm -rf", QuoteString(config_dir), "; exit $code"
        )
    )
