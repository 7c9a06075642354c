"""What the roll-out decides before anything changes: yes/no settings, arguments, run keys."""

from __future__ import annotations

import pytest

from isaac_deploy.deploys.cluster.plan import default_run_key, flag, job_args
from isaac_deploy.model.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("yes", True), ("on", True), (True, True)]
    + [("0", False), ("false", False), ("no", False), ("off", False), (False, False)],
)
def test_yes_no_settings_take_the_usual_words(value, expected):
    assert flag({"isaac_submit": value}, "isaac_submit", default=not expected) is expected


def test_an_unset_yes_no_setting_is_its_default():
    assert flag({}, "isaac_submit", default=True) is True
    assert flag({"isaac_resubmit": ""}, "isaac_resubmit") is False


@pytest.mark.parametrize("value", ["maybe", "enable", "2", "yess"])
def test_a_value_that_is_neither_yes_nor_no_names_the_key(value):
    with pytest.raises(ConfigError, match=f"isaac_submit: must be true or false, got '{value}'"):
        flag({"isaac_submit": value}, "isaac_submit", default=True)


def test_job_arguments_from_a_list_or_a_string():
    assert job_args(["--task", "a b", "$(id)"]) == ("--task", "a b", "$(id)")
    assert job_args("--task 'a b' --n 3") == ("--task", "a b", "--n", "3")
    assert job_args(None) == ()


def test_the_default_run_key_follows_the_commit_the_arguments_and_the_code():
    code = "sha256:" + "a" * 64
    key = default_run_key("abc123", ("--task", "X"), code)
    assert key.startswith("abc123-") and len(key) == len("abc123-") + 8
    assert key == default_run_key("abc123", ("--task", "X"), code)  # nothing changed: no new run
    assert key != default_run_key("abc123", ("--task", "Y"), code)
    assert key != default_run_key("abc123", ("--task", "X"), "sha256:" + "b" * 64)  # an edit
    assert default_run_key(None, (), code).startswith("run-")
