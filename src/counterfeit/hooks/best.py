"""best.pt: the best step so far by one score (an evaluation's fid/kid/is, or the Parzen monitor)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import checkpoint as ckpt
from ..checkpoint import write_json


class Best:
    """The best step so far by one score: its full training state in run/best.pt (a checkpoint like the others:
    sample and resume from it), the score and step in run/best.json. A resumed run reads best.json back and keeps
    competing with it; `stale(step)` says how many steps have passed without an improvement (train.patience).

    Not a hook of its own: the hook that computes the score offers it here, with the extra it alone knows (an
    evaluation's provenance, the monitor's sigma) for best.json."""

    def __init__(self, run: Path, key: str, lower_is_better: bool):
        self.run, self.key, self.lower = run, key, lower_is_better
        self.value, self.step = None, None
        if (run / "best.json").is_file():
            b = json.loads((run / "best.json").read_text())
            if b.get("metric") == key:  # a best by another score (train.select changed) starts afresh
                self.value, self.step = b["value"], b["step"]

    def offer(self, value: float, step: int, state_now, extra: dict | None = None) -> bool:
        """Keep step if its value beats the best so far; state_now() makes the checkpoint only then."""
        if self.value is not None and not (value < self.value if self.lower else value > self.value):
            return False
        self.value, self.step = value, step
        ckpt.atomic_save(state_now(), self.run / "best.pt")
        write_json(self.run / "best.json", {"step": step, "metric": self.key, "value": value, **(extra or {})})
        return True

    def stale(self, step: int) -> int:
        return 0 if self.step is None else step - self.step
