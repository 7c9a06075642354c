"""Task registry of the example extension: each task's environment and RSL-RL agent
configurations, as the Isaac Lab extension template registers them with gym (``env_cfg`` and
``rsl_rl_cfg`` entry points); a real extension registers gym environments."""

from __future__ import annotations

import copy

# the agent configuration of RslRlOnPolicyRunnerCfg that train.py reads and the command line
# overrides (experiment_name names the logs folder: logs/rsl_rl/<experiment_name>/)
AGENT = {
    "seed": 42,
    "device": "cuda:0",
    "experiment_name": "ext_template",
    "run_name": "",
    "max_iterations": 20,
    "save_interval": 10,
    "step_seconds": 0.0,  # the wall time of one iteration (Isaac Sim's stepping takes some)
    "resume": False,
    "load_run": ".*",
    "load_checkpoint": "model_.*.pt",
    "logger": "tensorboard",
    "wandb_project": "ext_template",
}
TASKS = {
    "Template-Reach-v0": {
        "env_cfg": {"seed": 42, "scene": {"num_envs": 1}, "sim": {"device": "cuda:0"}},
        "agent_cfg": {**AGENT, "target": 3.0, "lr": 0.1},
    },
    "Template-Balance-v0": {
        "env_cfg": {"seed": 42, "scene": {"num_envs": 1}, "sim": {"device": "cuda:0"}},
        "agent_cfg": {**AGENT, "target": -1.5, "lr": 0.05},
    },
}


def get_task(name: str) -> tuple[dict, dict]:
    """A copy of the environment and agent configurations registered for ``name``."""
    try:
        task = TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None
    return copy.deepcopy(task["env_cfg"]), copy.deepcopy(task["agent_cfg"])
