"""A sweep: a set of training runs submitted as one job array, each element with its own exact
argument list, run key (``<sweep key>.<index>``), run folder and ledger line.

A sweep is declared as a mapping (a JSON file for ``isaac-deploy cluster sweep --file``, or
``--data isaac_sweep='{...}'``)::

    {
      "args": ["--task", "Template-Reach-v0", "--headless"],
      "grid": {"seed": [1, 2], "agent.algorithm.learning_rate": ["1e-3", "3e-4"]},
      "runs": [["--max_iterations", "100"], ["--max_iterations", "200", "--video"]],
      "throttle": 2
    }

Each element's arguments are ``args``, then one combination of ``grid`` (every product of its
values, in the order given: the last name varies fastest), then one of ``runs`` (argument lists
taken word for word); ``grid`` and ``runs`` may be used alone or together (then every grid
combination with every run). A grid name with a dot is a Hydra override of Isaac Lab's scripts
(``agent.algorithm.learning_rate=3e-4``, one word), any other name an option (``--seed 1``, two
words; ``--seed`` as a name is the same). ``throttle``: at most that many elements run at once.
Unless an element's arguments already hold it, ``--run_name <element run key>`` is added
(``run_name_option``; ``null`` for an entry script without it): Isaac Lab's RSL-RL script then
names each element's run folder ``<time>_<element run key>``, so two elements that start in the
same second still get a folder each.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from isaac_deploy.model import validate as v
from isaac_deploy.model.errors import ConfigError
from isaac_deploy.model.launch import Launch
from isaac_deploy.model.ledger import check_run_key

KEYS = ("args", "grid", "runs", "throttle", "run_name_option")
MAX_ELEMENTS = 1000  # Slurm's default MaxArraySize is 1001 (indices 0-1000)
RUN_NAME_OPTION = "--run_name"
OPTION_RE = r"--?[A-Za-z][A-Za-z0-9_.-]*"


@dataclass(frozen=True)
class Sweep:
    """The elements of one sweep (each its full argument list) and how many run at once."""

    key: str
    elements: tuple[tuple[str, ...], ...]
    throttle: int | None = None

    def element_key(self, index: int) -> str:
        """The run key of element ``index``: ``<sweep key>.<index>``."""
        return f"{self.key}.{index}"

    @property
    def array_range(self) -> str:
        """The array's indices with the throttle, as ``--array`` and PBS's ``-J`` take them
        (``0-3%2``)."""
        last = len(self.elements) - 1
        return f"0-{last}" + (f"%{self.throttle}" if self.throttle else "")

    @property
    def summary(self) -> str:
        throttle = f", at most {self.throttle} at once" if self.throttle else ""
        return f"sweep of {len(self.elements)} runs ({self.array_range}){throttle}"


def element_ids(job_id: str, scheduler: str, count: int) -> list[str]:
    """The ids of an array job's elements: Slurm ``1234_0``; PBS ``12[0].server`` of
    ``12[].server``."""
    if scheduler == "pbs":
        head, _, tail = job_id.partition("[]")
        return [f"{head}[{index}]{tail}" for index in range(count)]
    return [f"{job_id}_{index}" for index in range(count)]


def _word(key: str, value: Any) -> str:
    """One argument: text, or a number (as JSON writes it); never a list, a mapping, a yes/no."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(key, f"must be text or a number, got {value!r}")
    return v.text(key, value if isinstance(value, str) else json.dumps(value))


def _words(key: str, raw: Any) -> tuple[str, ...]:
    if raw in (None, ""):
        return ()
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(key, f"must be a list of arguments, got {raw!r}")
    return tuple(_word(f"{key}[{i}]", item) for i, item in enumerate(raw))


def grid_words(name: str, value: str) -> tuple[str, ...]:
    """A grid value as arguments: ``name=value`` for a Hydra override (a name with a dot and no
    leading dash), else ``--name value``."""
    if "." in name and not name.startswith("-"):
        return (f"{name}={value}",)
    return (name if name.startswith("-") else f"--{name}", value)


def _grid(key: str, raw: Any) -> list[tuple[str, ...]]:
    if raw in (None, {}):
        return [()]
    grid = v.mapping(key, raw, raw if isinstance(raw, Mapping) else ())
    axes = []
    for name, values in grid.items():
        where = f"{key}[{name}]"
        v.text(where, name, OPTION_RE + r"|[A-Za-z_][A-Za-z0-9_.]*", "an option or a Hydra key")
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(where, "must be a non-empty list of values")
        axes.append([grid_words(name, _word(f"{where}[{i}]", x)) for i, x in enumerate(values)])
    return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*axes)]


def _runs(key: str, raw: Any) -> list[tuple[str, ...]]:
    if raw in (None, []):
        return [()]
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(key, "must be a list of argument lists")
    return [_words(f"{key}[{i}]", run) for i, run in enumerate(raw)]


def parse_sweep(key: str, raw: Any, run_key: str, common: tuple[str, ...] = ()) -> Sweep:
    """The sweep ``raw`` (a mapping or its JSON text) of run key ``run_key``, after the
    arguments ``common`` (those given after ``--``); every value checked, naming it."""
    data = v.mapping(key, v.json_value(key, raw), KEYS)
    if data.get("grid") in (None, {}) and data.get("runs") in (None, []):
        raise ConfigError(key, "give a grid of values or a list of runs")
    option = data.get("run_name_option", RUN_NAME_OPTION)
    if option is not None:
        v.text(f"{key}[run_name_option]", option, OPTION_RE, "an option such as --run_name")
    throttle = data.get("throttle")
    if throttle not in (None, ""):
        throttle = v.integer(f"{key}[throttle]", throttle, minimum=1)
    base = common + _words(f"{key}[args]", data.get("args"))
    combos = [
        g + r
        for g in _grid(f"{key}[grid]", data.get("grid"))
        for r in _runs(f"{key}[runs]", data.get("runs"))
    ]
    if not 2 <= len(combos) <= MAX_ELEMENTS:
        raise ConfigError(
            key, f"makes {len(combos)} runs: a sweep has 2 to {MAX_ELEMENTS} (one run: submit)"
        )
    sweep = Sweep(check_run_key(run_key), (), throttle or None)
    elements = []
    for index, combo in enumerate(combos):
        check_run_key(sweep.element_key(index))
        words = base + combo
        if option is not None and not any(w == option or w.startswith(f"{option}=") for w in words):
            words += (option, sweep.element_key(index))
        elements.append(words)
    return Sweep(sweep.key, tuple(elements), sweep.throttle)


def check_launch(key: str, launch: Launch) -> None:
    """A sweep's elements run once: a launch that starts warned jobs again (``attempts`` > 1)
    is refused for a sweep, in one line (its elements share the sweep's bookkeeping folder, where
    a resumed run finds its checkpoint)."""
    if launch.continues:
        raise ConfigError(
            f"{key}[attempts]",
            "a sweep's elements are not started again after the warning: set attempts to 1 "
            "for the sweep (--data) or submit its runs one by one",
        )


def parse_grid_option(text: str) -> tuple[str, list[str]]:
    """``NAME=V1,V2,...`` of ``isaac-deploy cluster sweep --grid`` as ``(NAME, values)``
    (values with a comma: the sweep file's ``grid``)."""
    name, equals, values = text.partition("=")
    if not equals or not re.fullmatch(OPTION_RE + r"|[A-Za-z_][A-Za-z0-9_.]*", name):
        raise ConfigError("--grid", f"{text!r} is not NAME=VALUE1,VALUE2 (e.g. seed=1,2,3)")
    return name, values.split(",")
