"""Operations: the login saved for a registry, replaced only once the registry accepted the new
one; a registry holds the local image under its tags, layers sent only when missing."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.hiddenvalue import HiddenValue

from isaac_deploy.facts.registry import RegistryImage, RegistryLogin
from isaac_deploy.model.registries import Registry, auth_file_content, explain, skopeo_flags
from isaac_deploy.operations.files import (
    secret_kept,
    secret_staged,
    secret_text,
    staged_dropped,
    staged_installed,
    staged_path,
)
from isaac_deploy.operations.util import fail


@operation()
def login_saved(
    registry: Registry,
    auth_file: str,
    password: HiddenValue,
    repository: str,
    cert_dir: str | None = None,
):
    """The registry's login in ``auth_file`` (0600, folder 0700), replaced only once the
    registry accepted it.

    New credentials go to a 0600 file beside ``auth_file`` first; the registry is asked with
    them (``skopeo inspect`` of ``repository:latest``; a missing image is fine) and only then
    do they replace the saved login. Refused, unreachable or failing TLS: one line, the saved
    login stays as it was (bytes and mode) and the new one is removed. The password never
    reaches a command line or the output.

    + registry: the registry (its address and ``username``)
    + auth_file: the saved login, a containers auth file (what ``docker login`` stores)
    + password: the password, wrapped in ``HiddenValue``
    + repository: a repository the credentials are tried on, ``address/prefix/name``
    + cert_dir: the registry's CA folder for skopeo (``None``: the system's CAs)

    **Example:**

    .. code:: python

        registry.login_saved(
            name="lab: credentials (auth file, not shown)",
            registry=lab,  # the model.registries.Registry named "lab"
            auth_file="/home/alice/.config/isaac-deploy/registries/lab/auth.json",
            password=HiddenValue(os.environ["LAB_REGISTRY_TOKEN"]),
            repository="registry.example.org:5000/robotics/isaac/isaac-lab-ext-template",
            cert_dir="/home/alice/.config/isaac-deploy/registries/lab/certs",
        )
    """
    value = secret_text(auth_file_content(registry, password.unmask()))
    if (yield from secret_kept(auth_file, value)):
        return
    yield from secret_staged(auth_file, value)
    flags = skopeo_flags(registry, staged_path(auth_file), cert_dir, "")
    error = host.get_fact(RegistryLogin, reference=f"{repository}:latest", flags=flags)
    if error:
        yield staged_dropped(auth_file)
        yield fail(explain(registry, error))
        return
    yield staged_installed(auth_file, 0o600)


@operation()
def image_pushed(
    registry: Registry,
    local: str,
    repository: str,
    version: str,
    folder: str,
    src_flags: tuple[str, ...] = (),
    dest_flags: tuple[str, ...] = (),
    inspect_flags: tuple[str, ...] = (),
):
    """Push ``local`` to ``repository`` under its content tag, the commit, version and ``latest``.

    The first tag that is not current gets the image from the Docker engine (skopeo sends only
    the layers the registry lacks); the others are copied inside the registry, ``latest`` last.

    + registry: the target registry (for its name in messages)
    + local: the local image, e.g. ``isaac-lab-ext-template:alice``
    + repository: ``address/prefix/name`` without a tag
    + version: the extension's version (its ``pyproject.toml``), a tag too; ``""``: none
    + folder: the extension project, for its git commit (the commit tag)
    + src_flags / dest_flags / inspect_flags: skopeo flags for the registry in each role

    **Example:**

    .. code:: python

        registry.image_pushed(
            name="lab: registry.example.org:5000/robotics/isaac/isaac-lab-ext-template",
            registry=lab,  # the model.registries.Registry named "lab"
            local="isaac-lab-ext-template:alice",
            repository="registry.example.org:5000/robotics/isaac/isaac-lab-ext-template",
            version="0.1.0",
            folder="/home/alice/ext_template",
            inspect_flags=skopeo_flags(lab, auth_file, cert_dir, ""),
            src_flags=skopeo_flags(lab, auth_file, cert_dir, "src"),
            dest_flags=skopeo_flags(lab, auth_file, cert_dir, "dest"),
        )
    """
    state = host.get_fact(
        RegistryImage,
        local=local,
        repository=repository,
        version=version,
        folder=folder,
        flags=tuple(inspect_flags),
    )
    if state.local_error == "missing":
        yield fail(
            f"image {local} is not built: run deploy/dev.py with its profile in isaac_profiles"
        )
        return
    if state.local_error:
        yield fail(f"Docker is not usable: {state.local_error}")
        return
    for tag in state.tags:
        if tag.error:
            yield fail(explain(registry, tag.error))
            return
    stale = [tag.tag for tag in state.tags if tag.digest != state.local_id]
    if not stale:
        current = ", ".join(t.tag for t in state.tags)
        host.noop(f"{registry.name}: {repository} is current ({current})")
        return
    logger.info(f"{host.print_prefix}{registry.name}: pushing {local} as {', '.join(stale)}")
    first = f"{repository}:{stale[0]}"
    yield copy_command(dest_flags, f"docker-daemon:{local}", f"docker://{first}")
    for tag in stale[1:]:  # inside the registry: no layer is sent again
        yield copy_command(
            (*src_flags, *dest_flags), f"docker://{first}", f"docker://{repository}:{tag}"
        )


def copy_command(flags: tuple[str, ...], source: str, destination: str) -> StringCommand:
    parts = ["skopeo", "copy", "--quiet", *flags, source, destination]
    return StringCommand(*(QuoteString(part) for part in parts))
