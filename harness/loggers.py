"""Optional mirrors of `metrics.jsonl` to TensorBoard and Weights & Biases (off by default).

`metrics.jsonl` is always written and is the only source the report reads; these loggers only
make the same records visible in the tools people already watch. Each needs its package
(`pip install -e ".[tensorboard]"` or `".[wandb]"`); asking for one that is not installed is a
usage error reported before any run starts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

LOGGER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def missing_logger_packages(names: list[str]) -> list[str]:
    return [f"{name} (pip install {LOGGER_PACKAGES[name]})" for name in names if importlib.util.find_spec(LOGGER_PACKAGES[name]) is None]


def _scalars(record: dict) -> dict[str, float]:
    """Flatten one metrics record into `group/name` scalars (lists such as per-episode returns are skipped)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            out[f"eval/{key}" if key.startswith("eval_") else f"train/{key}"] = float(value)
        elif isinstance(value, dict):
            for sub, sub_value in value.items():
                if isinstance(sub_value, (int, float)) and not isinstance(sub_value, bool):
                    out[f"{key}/{sub}"] = float(sub_value)
    return out


class TensorBoardLogger:
    def __init__(self, folder: Path, run_id: str, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"))
        self.writer.add_text("run", f"`{run_id}`\n\n" + "\n".join(f"- {k}: {v}" for k, v in sorted(config.items())))

    def log(self, record: dict, step: int) -> None:
        for name, value in _scalars(record).items():
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, folder: Path, run_id: str, config: dict, project: str = "dva-bench"):
        import wandb

        # The run id is stable per run folder, so a resumed run continues the same W&B run.
        wandb_id = run_id.replace("/", "-")
        self.run = wandb.init(project=project, id=wandb_id, name=run_id, config=config, dir=str(folder), resume="allow")

    def log(self, record: dict, step: int) -> None:
        self.run.log(_scalars(record), step=step)

    def close(self) -> None:
        self.run.finish()


def make_loggers(names: list[str], folder: Path, run_id: str, config: dict) -> list:
    builders = {"tensorboard": TensorBoardLogger, "wandb": WandbLogger}
    return [builders[name](folder, run_id, config) for name in names]
