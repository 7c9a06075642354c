"""Plan a packaged deploy on a real pyinfra State whose host answers facts from fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_host, ctx_state

from isaac_deploy.deploys import workstation
from isaac_deploy.facts.toolkit import WorkstationToolkit
from isaac_deploy.model.mounts import MountConfig
from isaac_deploy.model.workstation import WorkstationConfig
from tests.helpers import ROOT, answer_fact, command_repr, fixture_lines


@dataclass
class PlannedOp:
    name: str
    sudo: bool
    commands: list[Any]


def make_workstation(fixture: str, **data) -> workstation.Workstation:
    toolkit = WorkstationToolkit().process(fixture_lines(f"toolkit/{fixture}"))
    config = WorkstationConfig.from_host_data(
        data, toolkit.user, "/home/alice/ext", (data.get("isaac_extension_name", "ext_template"),)
    )
    return workstation.Workstation(
        config, toolkit, MountConfig.loads(None), Path(ROOT / "templates"), None, None
    )


def plan(deploy_func, ws: workstation.Workstation, facts: dict[str, dict[str, Any]] | None = None):
    """Run ``deploy_func(ws)`` in prepare mode; return its operations with their commands.

    ``facts`` as for ``tests.helpers.run_op``: ``{"FactName": {"arg=value": value}}``, pyinfra's
    own facts (``File``, ``Users``, ...) included; every fact the deploy asks needs its entry
    (none falls back to the fact's default), else ``MissingFact``."""
    facts = facts or {}
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    host = inventory.get_host("@local")

    def get_fact(cls, *args, **kwargs):
        return answer_fact(facts, cls, args, kwargs)

    host.get_fact = get_fact  # type: ignore[method-assign]
    with ctx_state.use(state), ctx_host.use(host):
        deploy_func(ws)
        ops = []
        for op_hash in state.get_op_order():
            data = state.get_op_data_for_host(host, op_hash)
            name = next(iter(state.get_op_meta(op_hash).names)).split(" | ", 1)[-1]
            commands = [command_repr(c) for c in data.command_generator()]
            ops.append(PlannedOp(name, bool(data.global_arguments.get("_sudo")), commands))
    return ops
