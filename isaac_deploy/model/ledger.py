"""The submission ledger on a login node: append-only JSON lines (job id, run key, git commit,
image digest, arguments, time, job name), so that the same run key is submitted once.

A submission writes two lines: a *pending* record (``"status": "pending"``, no job id) before
the scheduler is called, then the same record with the job id (``"status": "submitted"``), or
``"status": "refused"`` when the scheduler took no job. A pending record that is the last
record of its run is a submission whose outcome was never written (a dropped connection, a full
disk): its job is found by its name. Lines written before pending records existed (no
``status``) are submitted records.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from isaac_deploy.model.errors import ConfigError

RUN_KEY_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
STATUSES = ("submitted", "pending", "refused")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


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
    job_name: str | None = None  # what the scheduler calls the job (found by it when unrecorded)
    status: str = "submitted"  # or "pending" (before the scheduler answered), "refused"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["args"] = list(self.args)
        return json.dumps(data, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Ledger:
    """The ledger's entries in file order, and the lines that are not entries (a torn write,
    a hand edit) with their line numbers: reported, never silently dropped."""

    entries: tuple[Entry, ...] = ()
    unreadable: tuple[tuple[int, str], ...] = ()


def check_run_key(run_key: str) -> str:
    if not re.fullmatch(RUN_KEY_RE, run_key or ""):
        raise ConfigError(
            "run key", f"{run_key!r}: letters, digits, _ . - (at most 64), e.g. 2026-11-24_lr-3e-4"
        )
    return run_key


FIELDS = {f.name for f in fields(Entry)}
TEXT_FIELDS = ("run_key", "job_id", "scheduler")


def parse_entry(line: str) -> Entry | None:
    """One ledger line as an entry, or ``None`` when it is not one. Keys this version does not
    know are kept in ``extra`` (a newer isaac-deploy may add some)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    values = {k: v for k, v in data.items() if k in FIELDS}
    extra = values.get("extra") or {}
    if not (
        all(isinstance(values.get(k), str) for k in TEXT_FIELDS)
        and re.fullmatch(RUN_KEY_RE, values["run_key"])
        and values.get("status", "submitted") in STATUSES
        and isinstance(extra, dict)
        and isinstance(values.get("args") or [], list)
    ):
        return None
    values["args"] = tuple(str(arg) for arg in values.get("args") or ())
    values["extra"] = {**extra, **{k: v for k, v in data.items() if k not in FIELDS}}
    return Entry(**values)


def parse_ledger(lines: list[str]) -> Ledger:
    """The ledger's entries and its unreadable lines (empty lines are neither)."""
    entries, unreadable = [], []
    for number, line in enumerate(lines, 1):
        if line.strip():
            entry = parse_entry(line)
            if entry is None:
                unreadable.append((number, line))
            else:
                entries.append(entry)
    return Ledger(tuple(entries), tuple(unreadable))


def submitted(entries: tuple[Entry, ...], run_key: str) -> list[Entry]:
    """The records of ``run_key`` that have a job id (its submitted jobs)."""
    return [entry for entry in entries if entry.run_key == run_key and entry.job_id]


def unresolved(entries: tuple[Entry, ...], run_key: str) -> Entry | None:
    """The last record of ``run_key`` when it has no outcome: a pending record (no job id, not
    refused) whose job, if the scheduler took one, is known only by its name."""
    mine = [entry for entry in entries if entry.run_key == run_key]
    last = mine[-1] if mine else None
    return last if last is not None and not last.job_id and last.status != "refused" else None


def listing(entries: tuple[Entry, ...]) -> list[Entry]:
    """Each submission once, for people: a pending record followed by a later record of its
    run (its outcome, or a later submission) is left out."""
    later: set[str] = set()
    shown = []
    for entry in reversed(entries):
        if entry.status != "pending" or entry.run_key not in later:
            shown.append(entry)
        later.add(entry.run_key)
    return shown[::-1]


def search_start(times: list[str], now: datetime | None = None) -> str:
    """The day (``YYYY-MM-DD``) from which to look for a run's jobs by name in the scheduler's
    history: a day before the earliest of ``times`` (clocks and time zones differ between the
    workstation and the login node); today's when none parses."""
    parsed = []
    for text in times:
        try:
            parsed.append(datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc))
        except ValueError:
            continue
    start = min(parsed) if parsed else (now or datetime.now(timezone.utc))
    return (start - timedelta(days=1)).strftime("%Y-%m-%d")
