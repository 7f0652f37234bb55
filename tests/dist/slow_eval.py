"""A torchrun worker whose in-training evaluation is slow (each batch of samples waits a second, as a large one on a
real extractor would), so that a SIGTERM sent to torchrun lands in the middle of it.

    torchrun --standalone --nproc-per-node=2 tests/dist/slow_eval.py PRESET OUT RESULT_DIR [overrides...]

Rank 0 touches RESULT_DIR/evaluating when the evaluation's first batch starts; each rank writes RESULT_DIR/rank-R.json:
{"stopped": the Interrupted message or null, "code", "step"}.
"""

import os
import sys
import time
from pathlib import Path

from counterfeit import sampling
from stopped_run import leave, train_and_report


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
    return train_and_report(preset, out, result_dir, overrides)


if __name__ == "__main__":
    leave(main(*sys.argv[1:]))
