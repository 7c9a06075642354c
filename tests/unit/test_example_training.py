"""The example extension's scripts/rsl_rl/train.py behaves like the Isaac Lab extension
template's: runs under logs/rsl_rl/<experiment>/<YYYY-MM-DD_HH-MM-SS>[_<run name>]/ below the
working directory (params/, model_<i>.pt), --resume --load_run finds earlier runs in that tree;
no environment variable moves its logs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

EXPERIMENT = ("logs", "rsl_rl", "ext_template")


def train(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "source" / "ext_template"),
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rsl_rl" / "train.py"), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
    )


def runs(cwd: Path) -> list[Path]:
    return sorted(cwd.joinpath(*EXPERIMENT).iterdir())


def test_a_run_goes_below_the_working_directory_whatever_the_environment(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    done = train(
        tmp_path,
        "--task",
        "Template-Reach-v0",
        "--max_iterations",
        "12",
        "--run_name",
        "first",
        "agent.save_interval=5",
        "it's $(not) run",
        env={"EXT_LOGS_DIR": str(elsewhere)},
    )
    assert done.returncode == 0, done.stderr
    [run] = runs(tmp_path)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_first", run.name)
    assert sorted(p.name for p in run.glob("model_*.pt")) == [
        "model_10.pt",
        "model_12.pt",
        "model_5.pt",
    ]
    assert "save_interval: 5" in (run / "params" / "agent.yaml").read_text()
    assert (run / "params" / "env.yaml").is_file()
    recorded = json.loads((run / "args.json").read_text())
    assert recorded["unknown"] == ["it's $(not) run"] and recorded["argv"][-1] == "it's $(not) run"
    assert not elsewhere.exists()
    assert f"Logging experiment in directory: {tmp_path.joinpath(*EXPERIMENT)}" in done.stdout


def test_resume_finds_the_earlier_run_in_the_same_tree(tmp_path):
    assert train(tmp_path, "--task", "Template-Reach-v0", "--run_name", "a").returncode == 0
    [first] = runs(tmp_path)
    resumed = train(
        tmp_path,
        "--task",
        "Template-Reach-v0",
        "--max_iterations",
        "3",
        "--resume",
        "--load_run",
        first.name,
        "--checkpoint",
        "model_.*.pt",
        "--run_name",
        "b",
    )
    assert resumed.returncode == 0, resumed.stderr
    second = [run for run in runs(tmp_path) if run != first][0]
    checkpoint = json.loads((second / "model_23.pt").read_text())
    assert checkpoint["resumed_from"] == str(first / "model_20.pt")
    assert f"Loading model checkpoint from: {first / 'model_20.pt'}" in resumed.stdout
    (tmp_path / "empty").mkdir()
    missing = train(tmp_path / "empty", "--task", "Template-Reach-v0", "--resume")
    assert missing.returncode == 2 and "No runs present in the directory" in missing.stderr


def test_exit_codes(tmp_path):
    assert train(tmp_path, "--task", "Template-Reach-v0", "--fail").returncode == 1
    unknown = train(tmp_path, "--task", "Nope")
    assert unknown.returncode == 2 and "unknown task 'Nope'" in unknown.stderr
