"""Fact: the workstation's image and the Apptainer image (SIF) cached for it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyinfra.api import FactBase, QuoteString, StringCommand

from isaac_deploy.model.images import sif_name
from isaac_deploy.probes import PYTHON, program


@dataclass(frozen=True)
class SifState:
    image_id: str | None
    image_error: str | None
    sif: str | None  # the cached SIF's path, when it exists with its checksum sidecar
    sha256: str | None = None


class CachedSif(FactBase[SifState]):
    """The local image's ID (engine API) and ``cache_dir/<id>.sif`` with its ``.sha256``."""

    def command(self, image: str, cache_dir: str) -> StringCommand:
        source = program("dockerapi", "registry_state")  # reuses its local-image lookup
        args = json.dumps(
            {
                "local": image,
                "repository": "",
                "version": "",
                "folder": "/",
                "flags": [],
                "no_remote": True,
            }
        )
        return StringCommand(
            PYTHON,
            "$py",
            "-c",
            QuoteString(source),
            QuoteString(args),
            "; echo @@cache;",
            "cd",
            QuoteString(cache_dir),
            "2>/dev/null && for f in *.sif.sha256; do",
            '[ -f "$f" ] && [ -f "${f%.sha256}" ] &&',
            'printf "%s %s\\n" "${f%.sha256}" "$(cat "$f")"; done; true',
        )

    @staticmethod
    def default() -> SifState:
        return SifState(None, "could not inspect the workstation", None)

    def process(self, output: list[str]) -> SifState:
        marker = output.index("@@cache") if "@@cache" in output else len(output)
        try:
            data = json.loads("\n".join(output[:marker]))
        except ValueError:
            return SifState(None, "could not inspect the local image", None)
        local = data.get("local") or {}
        image_id = local.get("id")
        if not image_id:
            error = "missing" if local.get("missing") else str(local.get("error") or "unknown")
            return SifState(None, error, None)
        cached = dict(line.split(" ", 1) for line in output[marker + 1 :] if " " in line)
        name = sif_name(image_id)
        sha = (cached.get(name) or "").split()
        return SifState(image_id, None, name if sha else None, sha[0] if sha else None)
