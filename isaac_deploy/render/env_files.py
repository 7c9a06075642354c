"""The extension's env files (``docker/.env.<extension>`` and ``...-dev``), rendered from
``templates/env.<profile>.j2`` for the detected user; every value quoted so that bash
``source`` and ``docker compose --env-file`` read it alike."""

from __future__ import annotations

from pathlib import Path

from isaac_deploy.model.workstation import WorkstationConfig
from isaac_deploy.render.templates import render


def env_file_text(
    templates: Path, config: WorkstationConfig, profile: str, wandb_key_file: str | None
) -> str:
    """The env file of ``profile`` (``ext`` or ``ext-dev``); ``wandb_key_file`` is where the
    W&B key lies on the host (the key itself is never in the file)."""
    return render(
        templates,
        f"env.{profile}.j2",
        config=config,
        profile=profile,
        wandb_key_file=wandb_key_file or "",
    )
