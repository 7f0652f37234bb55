"""A torchrun worker whose in-training evaluation is slow (each batch of samples waits a second, as a large one on a
real extractor would), so that a SIGTERM sent to torchrun lands in the middle of it.

    torchrun --standalone --nproc-per-node=2 tests/dist/slow_eval.py PRESET OUT RESULT_DIR [overrides...]

Rank 0 touches RESULT_DIR/evaluating when the evaluation's first batch starts; each rank writes RESULT_DIR/rank-R.json:
{"stopped": the Interrupted message or null, "code"}.
"""

import json
import os
import sys
import time
from pathlib import Path

from counterfeit import config, sampling
from counterfeit.errors import TrainingStopped
from counterfeit.loop import train


def main(preset: str, out: str, result_dir: str, *overrides: str) -> int:
    real = sampling.generate

    def slow(*args, stop=None, **kw):
        def slow_stop():
            if os.environ["RANK"] == "0":
                Path(result_dir, "evaluating").touch()
            time.sleep(1.0)
            return stop is not None and stop()

        return real(*args, stop=slow_stop, **kw)

    sampling.generate = slow
    result, code = {"stopped": None, "code": 0}, 0
    try:
        train(config.load_config(preset, list(overrides)), out, progress=False)
    except TrainingStopped as e:
        result.update(stopped=str(e), code=e.exit_code)
        code = e.exit_code
    with open(os.path.join(result_dir, f"rank-{os.environ['RANK']}.json"), "w") as f:
        json.dump(result, f)
    return code


if __name__ == "__main__":
    code = main(*sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
