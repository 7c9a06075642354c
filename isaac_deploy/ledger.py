"""The submission ledger on a login node: one JSON line per submitted job (job id, run key,
git commit, image digest, arguments, time), so that the same run key is submitted once."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError

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


def state_of(entry: Entry, states: dict, active: set[str] | None) -> str:
    """A ledger entry's job state for people: the scheduler's, or what its silence means."""
    state = states.get(entry.job_id)
    if state is not None:
        code = "" if state.exit_code in (None, 0) or state.active else f" ({state.exit_code})"
        return state.state + code
    if active is None:
        return "UNKNOWN"
    return "ACTIVE" if entry.job_id.split(".", 1)[0] in active else "ENDED"


def table(entries: list[Entry], states: dict, active: set[str] | None) -> list[str]:
    """The ledger as aligned lines: run key, job, state, submitted, commit, arguments."""
    rows = [("RUN KEY", "JOB", "STATE", "SUBMITTED", "COMMIT", "ARGUMENTS")]
    for entry in entries:
        args = " ".join(shlex.quote(arg) for arg in entry.args)
        rows.append((entry.run_key, entry.job_id, state_of(entry, states, active),
                     entry.time or "-", entry.commit or "-", args or "-"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        lines.append("  ".join(cells) + "  " + row[5])
    return lines
