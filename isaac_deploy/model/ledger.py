"""The submission ledger on a login node: one JSON line per submitted job (job id, run key,
git commit, image digest, arguments, time), so that the same run key is submitted once."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from isaac_deploy.model.errors import ConfigError

RUN_KEY_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


@dataclass(frozen=True)
class Entry:
    run_key: str
    job_id: str
    scheduler: str
    commit: str | None = None
    image: str | None = None
    snapshot: str | None = None
    args: tuple[str, ...] = ()
    time: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["args"] = list(self.args)
        return json.dumps(data, ensure_ascii=False, sort_keys=True)


def check_run_key(run_key: str) -> str:
    if not re.fullmatch(RUN_KEY_RE, run_key or ""):
        raise ConfigError(
            "run key", f"{run_key!r}: letters, digits, _ . - (at most 64), e.g. 2026-11-24_lr-3e-4"
        )
    return run_key


def parse_ledger(lines: list[str]) -> list[Entry]:
    """Entries in file order; lines that are not entries (a torn write, garbage) are skipped."""
    entries = []
    for line in lines:
        try:
            data = json.loads(line)
            entries.append(Entry(**{**data, "args": tuple(data.get("args") or ())}))
        except (ValueError, TypeError):
            continue
    return entries


def submitted(entries: list[Entry], run_key: str) -> list[Entry]:
    return [entry for entry in entries if entry.run_key == run_key]


def entry_line_parts(entry: Entry) -> tuple[str, str]:
    """The JSON line split around the job id, which only ``sbatch``/``qsub`` can tell: the
    submitting shell writes ``prefix + id + suffix`` in one append."""
    marker = "\x00JOBID\x00"
    text = Entry(**{**asdict(entry), "job_id": marker, "args": entry.args}).to_json()
    prefix, suffix = text.split(json.dumps(marker)[1:-1], 1)
    return prefix, suffix
