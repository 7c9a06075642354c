"""Task registry of the example extension (a real extension registers gym environments)."""

from __future__ import annotations

TASKS = {
    "Template-Reach-v0": {"target": 3.0, "lr": 0.1},
    "Template-Balance-v0": {"target": -1.5, "lr": 0.05},
}


def get_task(name: str) -> dict:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None
