"""How a job starts its training (the cluster setting ``launch``): with ``python`` (one process)
or ``torchrun`` (``python -m torch.distributed.run``: one worker per GPU of a node, the training
script's ``--distributed`` flag; on several nodes one launcher per node, rendezvous on the first
node), which NCCL/UCX/libfabric settings reach the container, and what happens before the wall
time: the scheduler warns the job ``signal`` seconds ahead, the job asks the training to write a
checkpoint and is started again (Slurm: requeued; PBS: resubmitted by the next roll-out),
resuming from the run folder it checkpointed, at most ``attempts`` times in all."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from isaac_deploy.model import validate as v
from isaac_deploy.model.errors import ConfigError

LAUNCHERS = ("python", "torchrun")
# what a site's interconnect settings are called: NCCL's, UCX's, libfabric's, PyTorch's own
ENV_NAME = (
    r"(?:NCCL|UCX|FI|GLOO|TORCH_NCCL|TORCH_DISTRIBUTED)_[A-Z0-9_]+",
    "a NCCL_*, UCX_*, FI_*, GLOO_*, TORCH_NCCL_* or TORCH_DISTRIBUTED_* variable",
)
SLURM_SIGNAL_MAX = 65535  # sbatch --signal: sig_time is at most 65535 seconds
CHECKPOINT = "model_*.pt"  # rsl_rl's checkpoints: a run folder holding one can be resumed


@dataclass(frozen=True)
class Launch:
    """How a job starts its training and keeps going past the wall time."""

    launcher: str = "python"
    rdzv_port: int = 29500  # torchrun on several nodes: the rendezvous port on the first node
    env: dict[str, str] = field(default_factory=dict)  # into the container, e.g. NCCL_DEBUG
    signal: int = 0  # seconds before the wall time the job is warned (0: not warned)
    attempts: int = 1  # how many times a run starts in all (requeued or resubmitted)
    checkpoint: str = CHECKPOINT  # a glob: run folders holding such a file can be resumed

    @property
    def continues(self) -> bool:
        """Whether a warned job is started again from its checkpoint."""
        return bool(self.signal) and self.attempts > 1

    @classmethod
    def parse(cls, key: str, raw: Any) -> Launch:
        raw = v.mapping(key, raw or {}, (f.name for f in fields(cls)))
        env = v.mapping(f"{key}[env]", raw.get("env") or {}, raw.get("env") or {})
        return cls(
            launcher=v.choice(f"{key}[launcher]", raw.get("launcher", "python"), LAUNCHERS),
            rdzv_port=v.integer(f"{key}[rdzv_port]", raw.get("rdzv_port", 29500), 1024, 65535),
            env={
                v.text(f"{key}[env]", name, *ENV_NAME): v.text(f"{key}[env][{name}]", str(value))
                for name, value in env.items()
            },
            signal=v.integer(f"{key}[signal]", raw.get("signal", 0), 0, SLURM_SIGNAL_MAX),
            attempts=v.integer(f"{key}[attempts]", raw.get("attempts", 1), 1, 100),
            checkpoint=v.text(
                f"{key}[checkpoint]",
                raw.get("checkpoint", CHECKPOINT),
                r"[A-Za-z0-9_.*?-]+",
                "a file name pattern such as model_*.pt (letters, digits, _ . - * ?)",
            ),
        )

    def override(self, key: str, launcher: str | None) -> Launch:
        """These settings with one submission's launcher."""
        if launcher in (None, ""):
            return self
        return replace(self, launcher=v.choice(key, launcher, LAUNCHERS))


def workers(launch: Launch, gpus: int) -> int:
    """Training processes per node: one per GPU with torchrun (one without a GPU), else one."""
    return max(gpus, 1) if launch.launcher == "torchrun" else 1


def check(key: str, launch: Launch, nodes: int, walltime_seconds: int) -> None:
    """Settings that cannot work together: several nodes without torchrun, a warning that would
    come before the job starts."""
    if nodes > 1 and launch.launcher != "torchrun":
        raise ConfigError(
            key, f"{nodes} nodes need launcher 'torchrun' (one launcher per node), not 'python'"
        )
    if launch.signal and launch.signal >= walltime_seconds:
        raise ConfigError(
            f"{key}[signal]",
            f"{launch.signal} s before the end is not within the wall time of "
            f"{walltime_seconds} s: give fewer seconds or a longer wall time",
        )
    if launch.attempts > 1 and not launch.signal:
        raise ConfigError(
            f"{key}[attempts]",
            "a job is started again after the warning before its wall time: set signal "
            "(seconds before the end, e.g. 300) too",
        )


@dataclass(frozen=True)
class Attempt:
    """One line of a job's ``attempts-<job id>.txt`` in the run's bookkeeping: the job script
    writes one when an attempt starts and one when it ends (``requeued``, ``checkpointed``: the
    next roll-out resubmits it, ``stopped``: the last attempt was warned, ``ended (CODE)``)."""

    number: int
    time: str
    host: str
    outcome: str

    @property
    def event(self) -> str:
        return self.outcome.split(" ", 1)[0]


def parse_attempt(line: str) -> Attempt | None:
    parts = line.strip().split(" ", 3)
    if len(parts) < 4 or not parts[0].isdigit():
        return None
    return Attempt(int(parts[0]), parts[1], parts[2], parts[3])
