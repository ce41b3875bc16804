"""Score normalisation from a versioned table: (return - random) / (reference - random).

The table (`results/normalization.json`) is fixed per version, never derived from the runs being
reported, so adding a method or a seed never shifts anyone's earlier normalised numbers (the
"max-min over the data" normalisation some tools use does). A change of the table bumps its version,
which every report prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_TABLE = Path(__file__).resolve().parent.parent / "results" / "normalization.json"


@dataclass
class NormalizationTable:
    version: str
    tasks: dict[str, dict]
    path: str

    def has(self, task: str) -> bool:
        return task in self.tasks

    def normalize(self, task: str, returns) -> np.ndarray:
        entry = self.tasks[task]
        return (np.asarray(returns, dtype=float) - entry["random"]) / (entry["reference"] - entry["random"])

    def threshold(self, task: str) -> float | None:
        return self.tasks.get(task, {}).get("threshold")

    def describe(self) -> str:
        parts = [f"{t}: random {e['random']:,.0f} -> 0, reference {e['reference']:,.0f} -> 1"
                 + (f" [reference: {e['reference_is']}]" if e.get("reference_is") else "") for t, e in sorted(self.tasks.items())]
        return f"table {Path(self.path).name} v{self.version} ({'; '.join(parts)})"


def load_normalization(path: str | Path | None = None) -> NormalizationTable:
    path = Path(path) if path is not None else DEFAULT_TABLE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the normalisation table {path}: {err}") from None
    for task, entry in data.get("tasks", {}).items():
        if not {"random", "reference"} <= set(entry) or entry["reference"] == entry["random"]:
            raise ValueError(f"{path}: task {task!r} needs distinct 'random' and 'reference' returns")
    return NormalizationTable(str(data.get("version", "?")), data.get("tasks", {}), str(path))
