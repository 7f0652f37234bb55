"""What the torchrun workers that stop a training on purpose share: train, catch the stop, write this rank's
result, and leave without interpreter teardown (as counterfeit.cli.__main__.run does once the group is gone)."""

import json
import os
import sys

from counterfeit import config
from counterfeit.errors import TrainingStopped
from counterfeit.loop import train


def train_and_report(preset: str, out: str, result_dir: str, overrides) -> int:
    """Train; RESULT_DIR/rank-R.json gets {"stopped": the stop's message or null, "code", "step"}."""
    result, code = {"stopped": None, "code": 0, "step": None}, 0
    try:
        result["step"] = train(config.load_config(preset, list(overrides)), out, progress=False).step
    except TrainingStopped as e:
        result.update(stopped=str(e), code=e.exit_code)
        code = e.exit_code
    with open(os.path.join(result_dir, f"rank-{os.environ['RANK']}.json"), "w") as f:
        json.dump(result, f)
    return code


def leave(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
